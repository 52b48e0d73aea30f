"""Characters that hide in text shown to people: zero-width, bidirectional and drawn as nothing.

Drawn as nothing, ``node-1`` followed by U+200B looks like ``node-1`` on the status page, in
alerts and in /metrics; a right-to-left override (U+202E) turns the text shown after it around.
Node names refuse them and every other character drawn as nothing (``NODE_PATTERN``, which
``bridge.messages`` gives too: format, private-use and default ignorable characters, a blank at
either end), but a joiner where a word needs it (``joiners_placed``: RFC 5892's rule for host
names; ``is_node_name`` checks both); links shown whole hold none of them (``bridge.urls``),
and the pages, the commands' tables and text log lines show each as its escape
(``bridge.pages.html``, ``on_one_line``, ``escapes``), and those of the node names' set that
no one's text needs (Hangul fillers, tags, noncharacters: ``hidden_shown``), but what an emoji
is made of (a joiner between two, its U+FE0F, a subdivision flag's tags) and a word's joiners.
Here, with no import of ours, so that the light command paths can read it.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from bisect import bisect_right
from typing import Final

__all__ = [
    "CONTROL_CHARACTERS",
    "HIDDEN_CHARACTERS",
    "NODE_BLANK",
    "NODE_BLANKS",
    "NODE_PATTERN",
    "NODE_REFUSED",
    "NODE_REFUSED_BMP",
    "NODE_REFUSED_BMP_BUT_JOINERS",
    "NODE_SCHEMA_PATTERN",
    "escapes",
    "hidden_shown",
    "is_node_name",
    "joiners_placed",
    "on_one_line",
]

# The hidden characters, as ranges of code points: U+200B-U+200F, U+2060 and U+FEFF (zero
# width), U+061C, U+202A-U+202E and U+2066-U+2069 (bidirectional controls). The one list: the
# patterns and the escaped text below are both made from it.
_HIDDEN: Final = (
    (0x061C, 0x061C),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2060),
    (0x2066, 0x2069),
    (0xFEFF, 0xFEFF),
)

HIDDEN_CHARACTERS: Final = "".join(
    rf"\u{first:04x}" if first == last else rf"\u{first:04x}-\u{last:04x}"
    for first, last in _HIDDEN
)
"""The hidden characters as a regular expression's class written in escapes
(``\\u061c\\u200b-\\u200f…``: Python's re, pydantic-core's and JSON Schema's read them alike),
so that no message quoting it holds the characters themselves."""

CONTROL_CHARACTERS: Final = r"\x00-\x1f\x7f-\x9f"
"""C0 control characters (NUL included), DEL and C1 ones, as a regular expression class's range."""

# What a node name may not hold, as ranges of code points: it becomes a label value on /metrics,
# a cluster member and an alert's node, each found by reading it, so nothing in it may be drawn
# as nothing, reorder the text shown after it or break its line. By Unicode 15.1's properties:
# control characters (Cc); format characters (Cf: zero-width ones, bidirectional controls, the
# soft hyphen U+00AD, the tags U+E0020-U+E007F that spell text no one sees); line and paragraph
# separators (Zl, Zp); private-use characters (Co: a glyph of some font's own, or none); the
# default ignorable characters of other categories (drawn as nothing: the Hangul fillers U+115F,
# U+1160, U+3164, U+FFA0, the variation selectors U+FE00-U+FE0F, U+E0100-U+E01EF, U+034F,
# U+17B4, U+17B5, U+180B-U+180F, and those reserved); and the noncharacters (U+FDD0-U+FDEF and
# the last two of each plane). Unassigned ones stay: which are changes with each version of
# Unicode (the decoders' engines, the senders' would disagree), and each is drawn as a box. What
# a Unicode host name holds (IDNA2008's letters, marks, digits and hyphen) is taken. The joiners
# U+200C and U+200D are refused here (format characters: `node-1` with one after it looks the
# same), and taken where IDNA2008 takes them too (NODE_PATTERN, joiners_placed).
_NODE_REFUSED_BMP: Final = (
    (0x0000, 0x001F),
    (0x007F, 0x009F),
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xE000, 0xF8FF),
    (0xFDD0, 0xFDEF),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFFB),
    (0xFFFE, 0xFFFF),
)
_NODE_REFUSED_ASTRAL: Final = (
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    # The last two code points of planes 1-14: noncharacters.
    *((plane << 16 | 0xFFFE, plane << 16 | 0xFFFF) for plane in range(1, 15)),
    (0xE0000, 0xE0FFF),
    (0xF0000, 0x10FFFF),
)
# Unicode's White_Space characters but those refused anyway, and the braille blank U+2800,
# drawn as an empty cell: a name of these alone (`" "`) would be a series, a cluster member and
# alerts for no one seen; beside other characters they stay (`"node 1"`).
_NODE_BLANK: Final = (
    (0x0020, 0x0020),
    (0x00A0, 0x00A0),
    (0x1680, 0x1680),
    (0x2000, 0x200A),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x2800, 0x2800),
    (0x3000, 0x3000),
)


def _escaped(ranges: tuple[tuple[int, int], ...]) -> str:
    """``ranges`` as a regular expression class's contents in escapes: ``\\u`` in the BMP, as
    every engine reads it (Python's re, pydantic-core's Rust regex, JSON Schema's), ``\\U``
    past it, which Python's re and Rust's read alike (JSON Schema's, ECMAScript's, does not)."""

    def one(code: int) -> str:
        return rf"\u{code:04x}" if code <= 0xFFFF else rf"\U{code:08x}"

    return "".join(one(low) if low == high else f"{one(low)}-{one(high)}" for low, high in ranges)


NODE_REFUSED_BMP: Final = _escaped(_NODE_REFUSED_BMP)
"""The characters of the BMP a node name may not hold, as a regular expression's class."""
NODE_REFUSED: Final = NODE_REFUSED_BMP + _escaped(_NODE_REFUSED_ASTRAL)
"""Every character a node name may not hold, as a class Python's re and Rust's read (``\\U``
past the BMP)."""
NODE_REFUSED_BMP_BUT_JOINERS: Final = _escaped(
    tuple(
        pair
        for low, high in _NODE_REFUSED_BMP
        for pair in (((low, 0x200B), (0x200E, high)) if low <= 0x200C <= high else ((low, high),))
    )
)
"""``NODE_REFUSED_BMP`` but for the joiners U+200C and U+200D, which a node name holds where
``joiners_placed`` takes them: what it may hold nowhere."""
# The joiners: ZWNJ and ZWJ, refused (in NODE_REFUSED) but where joiners_placed takes them.
_JOINERS: Final = "\u200c\u200d"
NODE_BLANK: Final = _escaped(_NODE_BLANK)
"""The characters of which a node name may not be made alone, as a regular expression's class."""
NODE_BLANKS: Final = "".join(
    chr(code) for low, high in _NODE_BLANK for code in range(low, high + 1)
)
"""``NODE_BLANK``'s characters, for ``str.strip``: a name it strips to nothing is blank."""

# A character that shows (neither refused nor blank); then, each after the one before it, a joiner
# and another that shows, or blanks (none or more) and another that shows. So a name opens and ends
# with one that shows (blanks around it, `" node1"`, would make another node of it, and alone
# `" "` a node no one sees), and a joiner stands between two that show. Each class meets the next
# at one character, so no engine backtracks. Where RFC 5892 lets a joiner stand, no pattern every
# engine reads can say: ``joiners_placed`` says it.
_SHOWS: Final = rf"[^{NODE_REFUSED}{NODE_BLANK}]"
NODE_PATTERN: Final = rf"^{_SHOWS}(?:[{_JOINERS}]{_SHOWS}|[{NODE_BLANK}]*{_SHOWS})*$"
"""What a node name (an envelope's ``node``, a payload's, ``EXESDB_NODE``) must match, with
``joiners_placed`` (``is_node_name`` checks both): it opens and ends with a character that
shows (no blank: whitespace or the braille blank), holds none of the characters
``_NODE_REFUSED_BMP`` and ``_NODE_REFUSED_ASTRAL`` name but the joiners U+200C and U+200D, and
those only between two characters that show (checked natively by pydantic-core; the JSON
Schema publishes ``NODE_SCHEMA_PATTERN``)."""
_SHOWS_BMP: Final = rf"[^{NODE_REFUSED_BMP}{NODE_BLANK}]"
NODE_SCHEMA_PATTERN: Final = (
    rf"^{_SHOWS_BMP}(?:[{_JOINERS}]{_SHOWS_BMP}|[{NODE_BLANK}]*{_SHOWS_BMP})*$"
)
"""``NODE_PATTERN`` as the JSON Schema publishes it: its characters past U+FFFF left out, which
no ``\\uXXXX`` escape names and ECMAScript's regular expressions read no other way."""
_NODE_NAME: Final = re.compile(NODE_PATTERN.removesuffix("$") + r"\Z")

# The characters that join the one after them (Unicode's Joining_Type L or D: an Arabic beh, a
# Syriac or N'Ko letter, a Mongolian one) and those that join the one before them (R or D: an
# Arabic alef or beh), by Unicode 18.0's DerivedJoiningType.txt (the idna package's table);
# unicodedata has no joining types. Those unassigned in an older Unicode are in no one's text.
_JOINS_NEXT: Final = (
    (0x0620, 0x0620),
    (0x0626, 0x0626),
    (0x0628, 0x0628),
    (0x062A, 0x062E),
    (0x0633, 0x063F),
    (0x0641, 0x0647),
    (0x0649, 0x064A),
    (0x066E, 0x066F),
    (0x0678, 0x0687),
    (0x069A, 0x06BF),
    (0x06C1, 0x06C2),
    (0x06CC, 0x06CC),
    (0x06CE, 0x06CE),
    (0x06D0, 0x06D1),
    (0x06FA, 0x06FC),
    (0x06FF, 0x06FF),
    (0x0712, 0x0714),
    (0x071A, 0x071D),
    (0x071F, 0x0727),
    (0x0729, 0x0729),
    (0x072B, 0x072B),
    (0x072D, 0x072E),
    (0x074E, 0x0758),
    (0x075C, 0x076A),
    (0x076D, 0x0770),
    (0x0772, 0x0772),
    (0x0775, 0x0777),
    (0x077A, 0x077F),
    (0x07CA, 0x07EA),
    (0x0841, 0x0845),
    (0x0848, 0x0848),
    (0x084A, 0x0853),
    (0x0855, 0x0855),
    (0x0860, 0x0860),
    (0x0862, 0x0865),
    (0x0868, 0x0868),
    (0x0886, 0x0886),
    (0x0889, 0x088D),
    (0x088F, 0x088F),
    (0x08A0, 0x08A9),
    (0x08AF, 0x08B0),
    (0x08B3, 0x08B8),
    (0x08BA, 0x08C8),
    (0x1807, 0x1807),
    (0x1820, 0x1878),
    (0x1887, 0x18A8),
    (0x18AA, 0x18AA),
    (0xA840, 0xA872),
    (0x10AC0, 0x10AC4),
    (0x10ACD, 0x10ACD),
    (0x10AD3, 0x10ADC),
    (0x10ADE, 0x10AE0),
    (0x10AEB, 0x10AEE),
    (0x10B80, 0x10B80),
    (0x10B82, 0x10B82),
    (0x10B86, 0x10B88),
    (0x10B8A, 0x10B8B),
    (0x10B8D, 0x10B8D),
    (0x10B90, 0x10B90),
    (0x10BAD, 0x10BAE),
    (0x10D00, 0x10D21),
    (0x10D23, 0x10D23),
    (0x10EC3, 0x10EC4),
    (0x10EC6, 0x10EC7),
    (0x10ED9, 0x10EEE),
    (0x10F30, 0x10F32),
    (0x10F34, 0x10F44),
    (0x10F51, 0x10F53),
    (0x10F70, 0x10F73),
    (0x10F76, 0x10F81),
    (0x10FB0, 0x10FB0),
    (0x10FB2, 0x10FB3),
    (0x10FB8, 0x10FB8),
    (0x10FBB, 0x10FBC),
    (0x10FBE, 0x10FBF),
    (0x10FC1, 0x10FC1),
    (0x10FC4, 0x10FC4),
    (0x10FCA, 0x10FCB),
    (0x1E900, 0x1E943),
)
_JOINS_PREVIOUS: Final = (
    (0x0620, 0x0620),
    (0x0622, 0x063F),
    (0x0641, 0x064A),
    (0x066E, 0x066F),
    (0x0671, 0x0673),
    (0x0675, 0x06D3),
    (0x06D5, 0x06D5),
    (0x06EE, 0x06EF),
    (0x06FA, 0x06FC),
    (0x06FF, 0x06FF),
    (0x0710, 0x0710),
    (0x0712, 0x072F),
    (0x074D, 0x077F),
    (0x07CA, 0x07EA),
    (0x0840, 0x0858),
    (0x0860, 0x0860),
    (0x0862, 0x0865),
    (0x0867, 0x086A),
    (0x0870, 0x0882),
    (0x0886, 0x0886),
    (0x0889, 0x088F),
    (0x08A0, 0x08AC),
    (0x08AE, 0x08C8),
    (0x1807, 0x1807),
    (0x1820, 0x1878),
    (0x1887, 0x18A8),
    (0x18AA, 0x18AA),
    (0xA840, 0xA871),
    (0x10AC0, 0x10AC5),
    (0x10AC7, 0x10AC7),
    (0x10AC9, 0x10ACA),
    (0x10ACE, 0x10AD6),
    (0x10AD8, 0x10AE1),
    (0x10AE4, 0x10AE4),
    (0x10AEB, 0x10AEF),
    (0x10B80, 0x10B91),
    (0x10BA9, 0x10BAE),
    (0x10D01, 0x10D23),
    (0x10EC2, 0x10EC4),
    (0x10EC6, 0x10EC7),
    (0x10F30, 0x10F44),
    (0x10F51, 0x10F54),
    (0x10F70, 0x10F81),
    (0x10FB0, 0x10FB0),
    (0x10FB2, 0x10FB6),
    (0x10FB8, 0x10FBF),
    (0x10FC1, 0x10FC4),
    (0x10FC9, 0x10FCA),
    (0x1E900, 0x1E943),
)
_JOINS_NEXT_STARTS: Final = tuple(low for low, _ in _JOINS_NEXT)
_JOINS_PREVIOUS_STARTS: Final = tuple(low for low, _ in _JOINS_PREVIOUS)
_ZWNJ: Final = "\u200c"
_ZWJ: Final = "\u200d"
_JOINER: Final = re.compile(f"[{_JOINERS}]")
# What a joiner stands between: no blank (NODE_PATTERN's) nor another joiner.
_NOT_SHOWING: Final = frozenset(NODE_BLANKS + _JOINERS)
# Canonical_Combining_Class Virama (a Devanagari halant U+094D, a Bengali hasanta U+09CD).
_VIRAMA: Final = 9


def _in(ranges: tuple[tuple[int, int], ...], starts: tuple[int, ...], character: str) -> bool:
    code = ord(character)
    at = bisect_right(starts, code) - 1
    return at >= 0 and code <= ranges[at][1]


def _transparent(character: str) -> bool:
    """Joining_Type T, as Unicode derives it: a mark (Mn, Me) or format character (Cf) no table
    lists otherwise; in a node name (which refuses the other format characters) a mark, as the
    harakat over an Arabic letter are."""
    return character not in _JOINERS and unicodedata.category(character) in ("Mn", "Me", "Cf")


def _joiner_placed(text: str, at: int) -> bool:
    """Whether the joiner at ``text[at]`` stands where RFC 5892 Appendix A lets a host name
    hold one: right after a virama (A.1 and A.2), or, a ZWNJ, after a character joining the
    next and before one joining the previous, marks between them skipped (A.1: the Persian
    U+06CC U+200C U+062E)."""
    if at > 0 and unicodedata.combining(text[at - 1]) == _VIRAMA:
        return True
    if text[at] != _ZWNJ:
        return False
    before = at - 1
    while before >= 0 and _transparent(text[before]):
        before -= 1
    if before < 0 or not _in(_JOINS_NEXT, _JOINS_NEXT_STARTS, text[before]):
        return False
    after = at + 1
    while after < len(text) and _transparent(text[after]):
        after += 1
    return after < len(text) and _in(_JOINS_PREVIOUS, _JOINS_PREVIOUS_STARTS, text[after])


def joiners_placed(name: str) -> bool:
    """Whether each joiner in ``name`` (U+200C ZWNJ, U+200D ZWJ) stands between two characters
    that show (neither blank nor a joiner) and where IDNA2008 lets a host name hold one (RFC
    5892 Appendix A.1, A.2: its CONTEXTJ rules): right after a virama, which it keeps from
    joining the next consonant (Devanagari, Bengali, Malayalam), or, a ZWNJ, between two
    letters that would otherwise join (Persian, Urdu, Kurdish: U+06CC U+200C U+062E). Anywhere
    else (``ab`` and ``cd`` with one between) it changes nothing drawn, and two names would look
    the same; at an end, or beside a blank or another joiner, it joins nothing. Text without a
    joiner returns at once, a name seen lately nearly so."""
    if _ZWNJ not in name and _ZWJ not in name:
        return True
    if len(name) <= _KEPT_LENGTH:
        return _joiners_placed_lately(name)
    return _joiners_placed(name)


# What joiners_placed said of the names seen lately is kept: a node sends its messages under one
# name, and the rule reads Unicode's tables for each joiner (some 2 us a name, five times the
# decoding of the rest of its message). Bounded: 1 024 names, each up to an envelope node's
# length.
_KEPT_LENGTH: Final = 255


def _joiners_placed(name: str) -> bool:
    last = len(name) - 1
    for found in _JOINER.finditer(name):
        at = found.start()
        if (
            not 0 < at < last
            or name[at - 1] in _NOT_SHOWING
            or name[at + 1] in _NOT_SHOWING
            or not _joiner_placed(name, at)
        ):
            return False
    return True


_joiners_placed_lately: Final = functools.lru_cache(maxsize=1024)(_joiners_placed)


def is_node_name(name: str) -> bool:
    """Whether ``name`` is a node name (its length aside): ``NODE_PATTERN`` matches it whole
    (no final line break either) and ``joiners_placed``: the one rule for a check made in
    Python. Not for every message: Python's re reads the pattern's ranges one after another."""
    return _NODE_NAME.match(name) is not None and joiners_placed(name)


# What else free text (a title, a description, a log line) shows as its escape: the characters a
# node name refuses that have no place in a person's text, drawn as nothing or as a blank that
# reads as no text (the soft hyphen U+00AD, the combining grapheme joiner U+034F, the Hangul
# fillers, the Khmer inherent vowels, the invisible operators U+2061-U+2064, the deprecated
# format characters U+206A-U+206F, the interlinear annotations, the tags and the noncharacters).
# Those of a script's own text stay: the Arabic number signs, the Mongolian vowel separator, the
# Egyptian, Duployan and musical format controls, and the private-use characters (an icon font's,
# drawn as a box elsewhere).
_HIDDEN_IN_TEXT: Final = (
    *_HIDDEN,
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x2061, 0x2065),
    (0x206A, 0x206F),
    (0x3164, 0x3164),
    (0xFDD0, 0xFDEF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFFB),
    (0xFFFE, 0xFFFF),
    *((plane << 16 | 0xFFFE, plane << 16 | 0xFFFF) for plane in range(1, 17)),
    (0xE0000, 0xE00FF),
    (0xE01F0, 0xE0FFF),
)
# Variation selectors (the Mongolian free ones, U+FE00-U+FE0F, U+E0100-U+E01EF): one after a
# character chooses its glyph (U+FE0F its emoji), so it stays; one after another, or after
# nothing shown, is a run that spells text no one sees (bytes hidden one selector each).
_SELECTORS: Final = _escaped(((0x180B, 0x180D), (0x180F, 0x180F), (0xFE00, 0xFE0F)))
_SELECTORS_ASTRAL: Final = _escaped(((0xE0100, 0xE01EF),))
# Extended_Pictographic's characters, nearly (Unicode's emoji-data; the unassigned ones of its
# blocks too): a zero-width joiner between two of them makes one emoji (a woman and a laptop,
# U+1F469 U+200D U+1F4BB, the technologist), so it stays.
_PICTOGRAPHIC: Final = re.compile(
    r"[\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u21aa\u231a-\u23ff\u24c2\u25aa-\u25fe"
    r"\u2600-\u27bf\u2934\u2935\u2b05-\u2b55\u3030\u303d\u3297\u3299\U0001f000-\U0001faff"
    r"\U0001fc00-\U0001fffd]"
)
# What may stand between an emoji and the joiner after it: its U+FE0F or skin tone.
_EMOJI_ENDS: Final = re.compile(r"[\ufe0f\U0001f3fb-\U0001f3ff]")
# A subdivision flag (Scotland's: the black flag U+1F3F4, the tags of "gbsct", the cancel tag
# U+E007F) stays whole: ISO 3166-2's two letters, then one to three letters or digits.
_FLAG: Final = (
    r"\U0001f3f4[\U000e0061-\U000e007a]{2}[\U000e0030-\U000e0039\U000e0061-\U000e007a]{1,3}"
    r"\U000e007f"
)
_IN_TEXT: Final = re.compile(
    rf"(?P<flag>{_FLAG})|(?P<joiner>[{_JOINERS}])|(?P<selector>[{_SELECTORS}{_SELECTORS_ASTRAL}])"
    rf"|[{_escaped(_HIDDEN_IN_TEXT)}]"
)
# Any character ``_IN_TEXT`` looks at, in the BMP (a class Python's re reads as a bitmap, fast)
# and past it, where each is U+1FFFE or above (no emoji is): text holding none is found so at once.
_LOOKED_AT_BMP: Final = re.compile(
    "["
    + _escaped(
        (
            *(pair for pair in _HIDDEN_IN_TEXT if pair[1] <= 0xFFFF),
            *((0x180B, 0x180D), (0x180F, 0x180F), (0x200D, 0x200D), (0xFE00, 0xFE0F)),
        )
    )
    + "]"
)
_LOOKED_AT_PAST: Final = chr(0x1FFFE)
_NOT_CHOOSING: Final = re.compile(
    rf"[{_SELECTORS}{_SELECTORS_ASTRAL}{_escaped(_HIDDEN_IN_TEXT)}{CONTROL_CHARACTERS}]"
)


def _kept_or_escaped(found: re.Match[str]) -> str:
    text, start, end = found.string, found.start(), found.end()
    if found["flag"]:
        return found["flag"]
    if found["joiner"]:
        if _joiner_placed(text, start):  # a word's own (Persian, Devanagari): as a name keeps it
            return found["joiner"]
        before = start - 1
        if before > 0 and _EMOJI_ENDS.fullmatch(text[before]):
            before -= 1
        if (
            before >= 0
            and end < len(text)
            and _PICTOGRAPHIC.fullmatch(text[before])
            and _PICTOGRAPHIC.fullmatch(text[end])
        ):
            return found["joiner"]
    elif found["selector"] and start > 0 and not _NOT_CHOOSING.fullmatch(text[start - 1]):
        return found["selector"]
    code = ord(found.group())
    return rf"\u{code:04x}" if code <= 0xFFFF else rf"\U{code:08x}"


def hidden_shown(text: str) -> str:
    """``text``, free text a person reads (a title, a log line), with each character that hides
    in it shown as its escape (``\\u200b``, ``\\U000e0041``): zero-width characters, bidirectional
    controls, and those a node name refuses that no one's text needs (fillers, tags,
    noncharacters, a run of variation selectors). An emoji keeps its own: the joiner between two
    (U+200D), its variation selector (U+FE0F) and a subdivision flag's tags; and a word its
    joiners where ``joiners_placed`` takes them (after a virama; a ZWNJ between letters that
    join), as a node name holds them."""
    if text.isascii() or (not _LOOKED_AT_BMP.search(text) and max(text) < _LOOKED_AT_PAST):
        return text
    return _IN_TEXT.sub(_kept_or_escaped, text)


def escapes(keep: str = "") -> dict[int, str]:
    """A ``str.translate`` table showing each control character and line or paragraph separator
    (U+2028, U+2029) as its escape (``\\u2028``), but those in ``keep`` (the log's line break
    and tab): made once, so that each text is one ``translate`` (``hidden_shown`` after it
    shows the hidden characters)."""
    codes = (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
    kept = {ord(character) for character in keep}
    return {code: f"\\u{code:04x}" for code in codes if code not in kept}


_ON_ONE_LINE: Final = escapes()


def on_one_line(text: str) -> str:
    """``text`` with each control character (tab and line break too), line or paragraph
    separator and hidden character shown as its escape (``\\u202e``, as ``hidden_shown`` does):
    on a terminal it stays on its line, in the order written, and nothing in it is drawn as
    nothing."""
    return hidden_shown(text.translate(_ON_ONE_LINE))
