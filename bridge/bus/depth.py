"""The nesting bound: how deep an envelope's objects and arrays may go, and where one goes past.

``MAX_DEPTH`` is the most a reader of the bus decodes (the decoders' Structs count to it).
Publishers check their payloads against it before sending (``check_depth``,
``check_payload_depth``); the reference decoder names where a refused envelope goes past it
(``too_deep``, ``too_deep_text``).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from bridge.bus.envelope import name_shown
from bridge.messages import Message

__all__ = [
    "MAX_DEPTH",
    "TOO_DEEP_DETAIL",
    "check_depth",
    "check_payload_depth",
    "openings",
    "too_deep",
    "too_deep_text",
]

MAX_DEPTH: Final = 64
"""How deep an envelope may nest objects and arrays: the envelope is the first level, its
payload the second, a payload field's object or array the third."""
TOO_DEEP_DETAIL: Final = f"nested deeper than {MAX_DEPTH} levels of objects and arrays"
"""What a refusal says of an envelope past the bound."""


def check_depth(body: bytes) -> None:
    """ValueError naming where ``body`` (an envelope's wire form) nests past MAX_DEPTH, the
    most a reader decodes; parsed only when its count of openings says it may."""
    if openings(body) <= MAX_DEPTH:
        return
    try:
        where = too_deep(json.loads(body))
    except RecursionError:  # deeper than the parser goes: read from the text
        where = too_deep_text(body)
    if where is not None:
        raise ValueError(f"{where}: {TOO_DEEP_DETAIL} (the most a reader of the bus accepts)")


def check_payload_depth(payload: Message) -> None:
    """``check_depth`` for ``payload`` as an envelope would carry it, where nothing is sent."""
    check_depth(b'{"payload":' + payload.model_dump_json().encode() + b"}")


def openings(body: bytes | str) -> int:
    """Never less than the depth of ``body``'s nesting: its opening brackets (those in strings
    too)."""
    if isinstance(body, bytes):
        return body.count(b"{") + body.count(b"[")
    return body.count("{") + body.count("[")


def too_deep(data: Any) -> str | None:
    """Where (``payload.checks.a.0``) the first object or array past MAX_DEPTH is, if any."""
    # Only the objects and arrays are walked, each with the keys that lead to it.
    stack: list[tuple[Any, tuple[str | int, ...]]] = (
        [(data, ())] if isinstance(data, dict | list) else []
    )
    while stack:
        item, path = stack.pop()
        if len(path) >= MAX_DEPTH:
            return ".".join(map(name_shown, path)) or None
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        children = [(v, (*path, k)) for k, v in pairs if isinstance(v, dict | list)]
        stack.extend(reversed(children))
    return None


def too_deep_text(body: bytes | str) -> str | None:
    """``too_deep`` read from the text of ``body``, for nesting deeper than ``json.loads`` goes:
    where the first object or array past MAX_DEPTH opens, by the keys and indexes that lead to
    it (None where none is, or the text is no JSON the walk can follow)."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    # Each open object or array: its key or index so far (None: an object before its first key).
    path: list[str | int | None] = []
    # Arrays by their place in path, for their indexes.
    arrays: list[bool] = []
    position, end = 0, len(text)
    while position < end:
        character = text[position]
        if character == '"':
            closing = _STRING.match(text, position)
            if closing is None:
                return None
            after = closing.end()
            if arrays and not arrays[-1] and _KEY_COLON.match(text, after):
                try:
                    path[-1] = json.loads(text[position:after])  # the key, escapes read
                except ValueError:
                    return None
            position = after
            continue
        if character in "{[":
            if len(path) >= MAX_DEPTH:
                return ".".join(name_shown(part) for part in path if part is not None) or None
            arrays.append(character == "[")
            path.append(0 if character == "[" else None)
        elif character in "}]":
            if not path:
                return None
            path.pop()
            arrays.pop()
        elif character == "," and arrays and arrays[-1]:
            index = path[-1]
            path[-1] = index + 1 if isinstance(index, int) else 0
        position += 1
    return None


_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_KEY_COLON: Final = re.compile(r"[ \t\r\n]*:")
