"""JSON objects with each key once: one given twice is refused, not guessed at.

Parsers differ on which of two equal keys counts (Python's keeps the last without a word), so a
body or value holding one is refused, as ingest refuses one (``bridge.bus.problems`` marks them
its own way, to name where they are).
"""

from __future__ import annotations

from typing import Any

__all__ = ["DuplicateKey", "once_each"]


class DuplicateKey(ValueError):
    """A key given twice in one object of a JSON text."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the key {key!r} is given twice")
        self.key = key


def once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's pairs as a dict (``json.loads``' ``object_pairs_hook``); ``DuplicateKey``
    when a key is given twice."""
    found = dict(pairs)
    if len(found) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return found
