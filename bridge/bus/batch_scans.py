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
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate, chain
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
    """True when no JSON string in ``data`` can hold a control character, another character
    a node name may not hold (``NODE_PATTERN``: a format, private-use or default ignorable
    character, a line separator, a noncharacter) or a braille blank (U+2800, blank in a node
    name, which the clean decoder tells by ``str.isspace`` alone): no escape that writes one
    (``\\n``, ``\\u0085``, ``\\u200b``, ``\\udb40\\udc41``; ``\\u00b5`` or ``\\"`` write none),
    and none written raw but for C0 characters, which are not JSON."""
    return not _raw_unclean(data) and (b"\\" not in data or _UNCLEAN_ESCAPE.search(data) is None)


def _raw_unclean(data: bytes) -> bool:
    """Whether ``data`` holds, written raw in UTF-8, a DEL or a character ``_RAW_REFUSED``
    names."""
    # Single bytes first (memchr), ASCII at once; a lead byte's search only where the byte is.
    # Each lead byte searched for starts its character (no continuation byte is one). One
    # search for them all costs 60 times more: no literal starts it, so re tries every byte.
    if b"\x7f" in data:
        return True
    if data.isascii():
        return False
    return any(
        lead in data and (after is None or after.search(data) is not None)
        for lead, after in _RAW_REFUSED
    )


def unclean(bodies: Sequence[bytes], whole: bytes) -> list[int]:
    """The indexes of the ``bodies`` that are not ``is_clean`` (``whole``: the bytes they were
    cut from, or all of them): the escapes searched for in the bodies joined, unless a
    character they may not hold is written raw in one of them."""
    # Each escape found in the bodies joined, and each character written raw, is given to the
    # body it is in by its offset: a search of each body, or a test of each for a backslash,
    # costs more than finding the few escapes of a batch (Python's json.dumps writes \u00b5 for
    # a µ), and a batch holding one raw (a Persian node name's joiner) mostly holds it in every
    # body. An escape is matched from its backslash over bytes that are none, a raw character
    # from its lead byte, so a body's own are found in the join as in it alone; a body ending
    # inside one (not JSON, or not UTF-8: the decoder refused it) may be named too.
    joined = b"".join(bodies)
    ends = list(accumulate(map(len, bodies)))
    starts: Iterable[int] = backslash_matches(_UNCLEAN_ESCAPE, joined)
    if _raw_unclean(whole):
        starts = chain(starts, _raw_starts(joined))
    return sorted({bisect_right(ends, start) for start in starts})


def _raw_starts(data: bytes) -> Iterator[int]:
    """Where each DEL and each character ``_RAW_REFUSED`` names, written raw, starts in
    ``data``, each kind in order."""
    for lead, after in ((b"\x7f", None), *_RAW_REFUSED):
        if lead not in data:
            continue
        if after is not None:
            yield from (found.start() for found in after.finditer(data))
            continue
        at = data.find(lead)
        while at >= 0:
            yield at
            at = data.find(lead, at + 1)


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


# An escape of a character a node name may not hold (hidden.NODE_REFUSED: U+0000-U+001F,
# U+007F-U+009F, U+00AD, ... in the BMP; past it, the high surrogate of one, of its neighbours
# too, which a batch may hold rarely) or of U+2800, or one matching it (``\\\\n``: a
# backslash, then "n"), which is only taken for one. Hex digits in either case.
_UNCLEAN_ESCAPE: Final = re.compile(
    rb"\\(?:[bfnrt]|u(?i:00[01]|007f|00[89]|00ad|034f|060[0-5]|061c|06dd|070f|089[01]|08e2"
    rb"|115f|1160|17b[45]|180[b-f]|200[b-f]|202[89a-e]|206|2800|3164|e|f[0-8]|fd[de]|fe0|feff|ffa0"
    rb"|fff[0-9abef]"
    rb"|d804|d80d|d82f|d834|d[89ab][37bf]f|db4[0-3]|db[89a-f]))"
)
# The characters of hidden.NODE_REFUSED but ASCII's, and U+2800, in UTF-8, by their lead byte:
# the bytes that follow it (None: any).
_RAW_REFUSED: Final = tuple(
    (lead, None if after is None else re.compile(lead + after))
    for lead, after in (
        (b"\xc2", rb"[\x80-\x9f\xad]"),  # U+0080-U+009F, U+00AD
        (b"\xcd", rb"\x8f"),  # U+034F
        (b"\xd8", rb"[\x80-\x85\x9c]"),  # U+0600-U+0605, U+061C
        (b"\xdb", rb"\x9d"),  # U+06DD
        (b"\xdc", rb"\x8f"),  # U+070F
        (b"\xe0", rb"(?:\xa2[\x90\x91]|\xa3\xa2)"),  # U+0890, U+0891, U+08E2
        (b"\xe1", rb"(?:\x85[\x9f\xa0]|\x9e[\xb4\xb5]|\xa0[\x8b-\x8f])"),  # U+115F, U+17B4, U+180B
        # U+200B-U+200F, U+2028-U+202E, U+2060-U+206F, U+2800
        (b"\xe2", rb"(?:\x80[\x8b-\x8f\xa8-\xae]|\x81[\xa0-\xaf]|\xa0\x80)"),
        (b"\xe3", rb"\x85\xa4"),  # U+3164
        (b"\xee", None),  # U+E000-U+EFFF
        # U+F000-U+F8FF, U+FDD0-U+FDEF, U+FE00-U+FE0F, U+FEFF, U+FFA0, U+FFF0-U+FFFB, U+FFFE
        (
            b"\xef",
            rb"(?:[\x80-\xa3]|\xb7[\x90-\xaf]|\xb8[\x80-\x8f]|\xbb\xbf|\xbe\xa0"
            rb"|\xbf[\xb0-\xbb\xbe\xbf])",
        ),
        # U+110BD, U+110CD, U+13430-U+1343F, U+1BCA0-U+1BCA3, U+1D173-U+1D17A, U+1FFFE-U+3FFFF
        (
            b"\xf0",
            rb"(?:\x91(?:\x82\xbd|\x83\x8d)|\x93\x90[\xb0-\xbf]|\x9b\xb2[\xa0-\xa3]"
            rb"|\x9d\x85[\xb3-\xba]|[\x9f\xaf\xbf]\xbf[\xbe\xbf])",
        ),
        (b"\xf1", rb"[\x8f\x9f\xaf\xbf]\xbf[\xbe\xbf]"),  # U+4FFFE-U+7FFFF
        (b"\xf2", rb"[\x8f\x9f\xaf\xbf]\xbf[\xbe\xbf]"),  # U+8FFFE-U+BFFFF
        # U+CFFFE-U+EFFFF, U+E0000-U+E0FFF, U+F0000-U+FFFFF
        (b"\xf3", rb"(?:[\x8f\x9f\xaf]\xbf[\xbe\xbf]|[\xa0\xb0-\xbf])"),
        (b"\xf4", None),  # U+100000-U+10FFFF
    )
)
