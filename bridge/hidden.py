"""Characters that hide in text shown to people: zero-width characters and bidirectional controls.

Drawn as nothing, ``node-1`` followed by U+200B looks like ``node-1`` on the status page, in
alerts and in /metrics; a right-to-left override (U+202E) turns the text shown after it around.
Node names refuse them (``NODE_PATTERN``, which ``bridge.messages`` gives too), links shown
whole hold none (``bridge.urls``), and the pages, the commands' tables and text log lines show
each as its escape (``bridge.pages.html``, ``on_one_line``, ``escapes``). Here, with no import,
so that the light command paths can read it.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CONTROL_CHARACTERS", "HIDDEN_CHARACTERS", "NODE_PATTERN", "escapes", "on_one_line"]

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

# Zero-width characters and bidirectional controls: in a node name they make two names that
# look the same (``node-1`` and ``node-1`` + U+200B) on the status page, in alerts and in
# /metrics, or reorder the text shown after the name.
_NODE_REFUSED: Final = CONTROL_CHARACTERS + HIDDEN_CHARACTERS
# A blank node name (``" "``) would be a series, a cluster member and alerts for no one seen.
# Whitespace, then one character neither whitespace nor refused, then any not refused: a class
# and its complement meet at the first other character, so no engine backtracks over the
# blanks. ``\s`` is str.isspace's set in Python's re and Unicode's White_Space in pydantic-core's
# (JSON Schema's also takes U+FEFF): they differ only in characters refused anyway.
NODE_PATTERN: Final = rf"^[^{_NODE_REFUSED}\S]*[^{_NODE_REFUSED}\s][^{_NODE_REFUSED}]*$"
"""What a node name (an envelope's ``node``, a payload's, ``EXESDB_NODE``) must match: not
blank (whitespace only), and no control character, zero-width character or bidirectional
control (checked natively)."""


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
