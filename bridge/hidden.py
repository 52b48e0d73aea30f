"""Characters that hide in text shown to people: zero-width characters and bidirectional controls.

Drawn as nothing, ``node-1`` followed by U+200B looks like ``node-1`` on the status page, in
alerts and in /metrics; a right-to-left override (U+202E) turns the text shown after it around.
Node names refuse them (``bridge.messages.NODE_PATTERN``), links shown whole hold none
(``bridge.urls``), and the pages and the commands' tables show each as its escape
(``bridge.pages.html``, ``on_one_line``). Here, with no
import, so that the light command paths can read it.
"""

from __future__ import annotations

from typing import Final

__all__ = ["HIDDEN_CHARACTERS", "on_one_line"]

HIDDEN_CHARACTERS: Final = r"\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff"
"""U+200B-U+200F, U+2060 and U+FEFF (zero width), U+061C, U+202A-U+202E and U+2066-U+2069
(bidirectional controls), as a regular expression's class written in escapes (Python's re,
pydantic-core's and JSON Schema's read them alike), so that no message quoting it holds the
characters themselves."""

_SHOWN_ESCAPED: Final = {
    code: f"\\u{code:04x}"
    for code in (
        *range(0x20),
        *range(0x7F, 0xA0),
        0x061C,
        *range(0x200B, 0x2010),
        0x2028,
        0x2029,
        *range(0x202A, 0x202F),
        0x2060,
        *range(0x2066, 0x206A),
        0xFEFF,
    )
}


def on_one_line(text: str) -> str:
    """``text`` with each control character (tab and line break too), line or paragraph
    separator and hidden character shown as its escape (``\\u202e``): on a terminal it stays
    on its line, in the order written, and nothing in it is drawn as nothing."""
    return text.translate(_SHOWN_ESCAPED)
