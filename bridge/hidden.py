"""Characters that hide in text shown to people: zero-width characters and bidirectional controls.

Drawn as nothing, ``node-1`` followed by U+200B looks like ``node-1`` on the status page, in
alerts and in /metrics; a right-to-left override (U+202E) turns the text shown after it around.
Node names refuse them (``bridge.messages.NODE_PATTERN``), links shown whole hold none
(``bridge.urls``), and the pages show each as its escape (``bridge.pages.html``). Here, with no
import, so that the light command paths can read it.
"""

from __future__ import annotations

from typing import Final

__all__ = ["HIDDEN_CHARACTERS"]

HIDDEN_CHARACTERS: Final = r"\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff"
"""U+200B-U+200F, U+2060 and U+FEFF (zero width), U+061C, U+202A-U+202E and U+2066-U+2069
(bidirectional controls), as a regular expression's class written in escapes (Python's re,
pydantic-core's and JSON Schema's read them alike), so that no message quoting it holds the
characters themselves."""
