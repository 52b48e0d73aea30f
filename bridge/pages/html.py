"""A tiny safe HTML renderer: ``string.Template`` whose every value is escaped unless it is HTML.

Values are escaped with ``html.escape`` (quotes too, so they are safe in attributes) unless they
are ``Html``, which only this module's functions make: a fragment rendered from a template, or
text escaped once already. So a value that came from a message can only ever become text. A
character that hides in it (a zero-width character, a bidirectional control, a Hangul filler, a
tag: ``bridge.hidden.hidden_shown``) is shown as its escape (``\\u200b``), so that text holding
one does not look like text without it, nor reorders what follows it, while an emoji keeps its
joiners and selectors; a value a script reads back (an alert's id, which the Acknowledge button
posts) is given ``exact``, which keeps them.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from functools import cache
from importlib.resources import files
from string import Template

from bridge.hidden import hidden_shown

__all__ = ["Fragment", "Html", "escape", "exact", "join", "template"]


class Html(str):
    """Markup that is safe to insert as it is (rendered here, never taken from input)."""

    __slots__ = ()


def escape(value: object) -> Html:
    """``value`` as HTML text: escaped, the characters hiding in it shown as escapes
    (``\\u202e``, ``hidden_shown``), unless it is ``Html`` already."""
    if isinstance(value, Html):
        return value
    text = html.escape(str(value), quote=True)
    return Html(hidden_shown(text))


def exact(value: str) -> Html:
    """``value`` as HTML text for an attribute a script reads back: escaped, every character
    kept as it is."""
    return Html(html.escape(value, quote=True))


def join(parts: Iterable[Html], separator: str = "") -> Html:
    """Fragments one after the other (``separator`` is written as it is)."""
    return Html(separator.join(escape(part) for part in parts))


class Fragment:
    """A template for a piece of HTML: ``${name}`` placeholders, each filled escaped.

    A placeholder without a value is an error (``KeyError``), never an empty string.
    """

    __slots__ = ("_template",)

    def __init__(self, text: str) -> None:
        self._template = Template(text)

    def __call__(self, **values: object) -> Html:
        """The fragment with ``values`` escaped into it."""
        return Html(self._template.substitute({k: escape(v) for k, v in values.items()}))


@cache
def template(name: str) -> Fragment:
    """The template file ``templates/<name>`` shipped with this package."""
    return Fragment(files("bridge.pages").joinpath("templates", name).read_text("utf-8"))
