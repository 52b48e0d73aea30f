"""Whole-batch scans: which bodies need the label checks, and the alphabets of ids and topics.

The fast decoders read a batch in one pass over its bytes wherever they can: ``is_clean`` and
``unclean`` find the bodies whose JSON strings may hold a character the clean decoder does not
look for (``structs.CLEAN``), and ``in_alphabets`` checks every id and topic the Structs took,
joined, at once (their lengths the Structs check).
"""

from __future__ import annotations

import re
import string
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from itertools import accumulate
from typing import Final

__all__ = ["backslash_matches", "in_alphabets", "is_clean", "unclean"]

_ID_CHARACTERS: Final = string.ascii_letters.encode() + string.digits.encode() + b"_-"
_TOPIC_CHARACTERS: Final = _ID_CHARACTERS + b".:"


def in_alphabets(ids: str, topics: str) -> bool:
    """True when every character of ``ids`` may be in an ``id`` and every one of ``topics`` in a
    ``topic`` (their lengths the Structs check): a batch's, joined, checked at once."""
    # Deleting the characters allowed (in C) leaves nothing: several times a regular
    # expression's speed.
    return (
        ids.isascii()
        and topics.isascii()
        and not ids.encode().translate(None, _ID_CHARACTERS)
        and not topics.encode().translate(None, _TOPIC_CHARACTERS)
    )


def is_clean(data: bytes) -> bool:
    """True when no JSON string in ``data`` can hold a control character, a zero-width
    character or a bidirectional control (what a node name may not hold): no escape that
    writes one (``\\n``, ``\\u0085``, ``\\u200b``; ``\\u00b5`` or ``\\"`` write none), and none
    written raw but for C0 characters, which are not JSON."""
    return not _raw_unclean(data) and (b"\\" not in data or _UNCLEAN_ESCAPE.search(data) is None)


def _raw_unclean(data: bytes) -> bool:
    """Whether ``data`` holds, written raw in UTF-8, a DEL, a C1 control (``c2 80``-``c2 9f``),
    or a zero-width character or bidirectional control (``e2 80 8b``, ``ef bb bf``, ``d8 9c``)."""
    # Single bytes first (memchr); the searches only where the byte is. Each lead byte
    # searched for starts its character (no continuation byte is one).
    return (
        b"\x7f" in data
        or (b"\xc2" in data and _RAW_C1.search(data) is not None)
        or (b"\xe2" in data and _RAW_INVISIBLE.search(data) is not None)
        # A lead byte first: searching for two or three bytes is about 70 times slower.
        or (b"\xef" in data and b"\xef\xbb\xbf" in data)
        or (b"\xd8" in data and b"\xd8\x9c" in data)
    )


def unclean(bodies: Sequence[bytes], whole: bytes) -> list[int]:
    """The indexes of the ``bodies`` that are not ``is_clean`` (``whole``: the bytes they were
    cut from, or all of them): the escapes searched for in the bodies joined, unless a
    character they may not hold is written raw in one of them."""
    if _raw_unclean(whole):
        return [index for index, body in enumerate(bodies) if not is_clean(body)]
    # Each escape found in the bodies joined is given to the body it is in by its offset: a
    # search of each body, or a test of each for a backslash, costs more than finding the few
    # escapes of a batch (Python's json.dumps writes \u00b5 for a µ). An escape is matched from
    # its backslash over bytes that are none, so a body's own are found in the join as in it
    # alone; a body ending inside an escape (not JSON: the decoder refused it) may be named too.
    joined = b"".join(bodies)
    ends = list(accumulate(map(len, bodies)))
    found: list[int] = []
    for start in backslash_matches(_UNCLEAN_ESCAPE, joined):
        index = bisect_right(ends, start)
        if not found or found[-1] != index:
            found.append(index)
    return found


def backslash_matches(pattern: re.Pattern[bytes], data: bytes) -> Iterator[int]:
    """Where each match of ``pattern`` (one that starts with a backslash) in ``data`` starts,
    in order."""
    match, find = pattern.match, data.find
    at = find(b"\\")
    # Few backslashes: each found by memchr, several times faster than re's scan for them;
    # past one in about 1 000 bytes, the scan is.
    for _ in range(len(data) >> 10):
        if at < 0:
            return
        found = match(data, at)
        if found is None:
            at = find(b"\\", at + 1)
        else:
            yield at
            at = find(b"\\", found.end())
    if at >= 0:
        for found in pattern.finditer(data, at):
            yield found.start()


# An escape of U+0000-U+001F, U+007F or U+0080-U+009F, or of a character NODE_PATTERN refuses
# (U+061C, U+200B-U+200F, U+202A-U+202E, U+2060, U+2066-U+2069, U+FEFF), or one matching it
# (``\\\\n``: a backslash, then "n"), which is only taken for one.
_UNCLEAN_ESCAPE: Final = re.compile(
    rb"\\(?:[bfnrt]|u00(?:[0189]|7[fF])"
    rb"|u(?:061[cC]|200[b-fB-F]|202[a-eA-E]|206[06-9]|[fF][eE][fF][fF]))"
)
_RAW_C1: Final = re.compile(rb"\xc2[\x80-\x9f]")
# U+200B-U+200F, U+202A-U+202E, U+2060 and U+2066-U+2069 in UTF-8.
_RAW_INVISIBLE: Final = re.compile(rb"\xe2(?:\x80[\x8b-\x8f\xaa-\xae]|\x81[\xa0\xa6-\xa9])")
