"""Characters that hide in text shown to people: zero-width characters and bidirectional controls.

Drawn as nothing, ``node-1`` followed by U+200B looks like ``node-1`` on the status page, in
alerts and in /metrics; a right-to-left override (U+202E) turns the text shown after it around.
Node names refuse them and every other character drawn as nothing (``NODE_PATTERN``, which
``bridge.messages`` gives too: format, private-use and default ignorable characters, a blank
name), links shown whole hold none (``bridge.urls``), and the pages, the commands' tables and
text log lines show each as its escape (``bridge.pages.html``, ``on_one_line``, ``escapes``).
Here, with no import, so that the light command paths can read it.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CONTROL_CHARACTERS",
    "HIDDEN_CHARACTERS",
    "NODE_BLANK",
    "NODE_BLANKS",
    "NODE_PATTERN",
    "NODE_REFUSED",
    "NODE_REFUSED_BMP",
    "NODE_SCHEMA_PATTERN",
    "escapes",
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
# a Unicode host name holds (IDNA2008's letters, marks, digits and hyphen) is taken, but for
# the joiners U+200C and U+200D (format characters: `node-1` with one after it looks the same).
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
NODE_BLANK: Final = _escaped(_NODE_BLANK)
"""The characters of which a node name may not be made alone, as a regular expression's class."""
NODE_BLANKS: Final = "".join(
    chr(code) for low, high in _NODE_BLANK for code in range(low, high + 1)
)
"""``NODE_BLANK``'s characters, for ``str.strip``: a name it strips to nothing is blank."""

# Blanks, then one character neither blank nor refused, then any not refused: a class and its
# complement meet at the first other character, so no engine backtracks over the blanks.
NODE_PATTERN: Final = rf"^[{NODE_BLANK}]*[^{NODE_REFUSED}{NODE_BLANK}][^{NODE_REFUSED}]*$"
"""What a node name (an envelope's ``node``, a payload's, ``EXESDB_NODE``) must match: not
blank (whitespace or braille blanks only), and none of the characters ``_NODE_REFUSED_BMP`` and
``_NODE_REFUSED_ASTRAL`` name (checked natively by pydantic-core; the JSON Schema publishes
``NODE_SCHEMA_PATTERN``)."""
NODE_SCHEMA_PATTERN: Final = (
    rf"^[{NODE_BLANK}]*[^{NODE_REFUSED_BMP}{NODE_BLANK}][^{NODE_REFUSED_BMP}]*$"
)
"""``NODE_PATTERN`` as the JSON Schema publishes it: its characters past U+FFFF left out, which
no ``\\uXXXX`` escape names and ECMAScript's regular expressions read no other way."""


def escapes(keep: str = "") -> dict[int, str]:
    """A ``str.translate`` table showing each control character, line or paragraph separator
    (U+2028, U+2029) and hidden character as its escape (``\\u202e``), but those in ``keep``
    (the log's line break and tab): made once, so that each text is one ``translate``."""
    codes = (
        *range(0x20),
        *range(0x7F, 0xA0),
        0x2028,
        0x2029,
        *(code for first, last in _HIDDEN for code in range(first, last + 1)),
    )
    kept = {ord(character) for character in keep}
    return {code: f"\\u{code:04x}" for code in codes if code not in kept}


_ON_ONE_LINE: Final = escapes()


def on_one_line(text: str) -> str:
    """``text`` with each control character (tab and line break too), line or paragraph
    separator and hidden character shown as its escape (``\\u202e``): on a terminal it stays
    on its line, in the order written, and nothing in it is drawn as nothing."""
    return text.translate(_ON_ONE_LINE)
