"""Timestamps as the fast decoders read them: RFC 3339 text to the UTC instant, to the millisecond.

A payload timestamp is taken on the msgspec path in the form format_timestamp writes (which the
model's validator, to_utc_ms, returns as fromisoformat parses it) and in the RFC 3339 forms
other writers use (parse_timestamp): more fraction digits (Python's isoformat, Go's
RFC3339Nano), a numeric offset (``+00:00``), a lower-case "t" or "z", which ``timestamp`` turns
to UTC and truncates to the millisecond as pydantic's parse of them is
(tests/bus/test_envelope_fast_values.py holds the two to agreeing). Any other text goes on to
the pydantic-core path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Final

from bridge.messages.timestamps import parse_timestamp

__all__ = ["Instant", "known_timestamp", "timestamp"]

Instant = tuple[datetime, float, datetime | None]
"""An envelope's ``ts`` as a builder takes it: the instant, its Unix time, and the instant
``timestamp`` reads the same text as (None where it reads none): a payload timestamp given as
the same text needs no look-up of its own."""

_CANONICAL: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,3})?Z"
)
# The datetime of each text seen lately; bounded by clearing it (and by the texts' length: any
# other text is not kept).
_TIMESTAMPS: dict[str, datetime] = {}
_TIMESTAMPS_SIZE: Final = 1024

known_timestamp: Final[Callable[[str], datetime | None]] = _TIMESTAMPS.get
"""The instant ``timestamp`` read a text as lately, or None: its memory alone, looked in first
by the builders (a dict's own ``get``, as cheap as a look-up gets)."""


def timestamp(text: str) -> datetime | None:
    """The instant an RFC 3339 text names, in UTC and truncated to the millisecond as the
    models keep it (``2026-11-28T00:00:00.123Z``, ``2026-11-28T02:00:00.123456+02:00``), or
    None for any other text (the pydantic-core path then decides)."""
    value = _TIMESTAMPS.get(text)
    if value is not None:
        return value
    if _CANONICAL.fullmatch(text):
        try:
            value = datetime.fromisoformat(text)
        except ValueError:  # a day or an hour that does not exist
            return None
    elif (value := parse_timestamp(text)) is None:
        return None
    if len(_TIMESTAMPS) >= _TIMESTAMPS_SIZE:
        _TIMESTAMPS.clear()
    _TIMESTAMPS[text] = value
    return value
