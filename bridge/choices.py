"""The choice a refused one-of-a-few-words value was likely meant as: ``warn`` for ``warning``.

pydantic refuses a value outside a ``Literal`` naming the choices (``'info', 'warning', 'error'
or 'critical'``); ``choice_meant`` finds among them the one the value is spelt nearly as, in
any letter case, for the refusal to offer it (``did you mean 'warning'?``): the settings
(``bridge.settings_errors``), which take their words in any case, and the YAML files
(``bridge.yamlconfig``), which take them exactly as written, as Go does, and so offer
``warning`` for ``WARNING`` too. Here, with no import of the package, for both; ``word_meant``
does the same among any words, for the YAML files' unknown keys (``did you mean 'send_resolved'?``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

__all__ = ["choice_meant", "word_meant"]


def choice_meant(given: object, expected: str) -> str | None:
    """The choice of pydantic's ``expected`` (a ``literal_error``'s ``'a', 'b' or 'c'``) that
    ``given`` is spelt nearly as, compared in any letter case and without the blanks around it
    (``warn``, ``WARNING``: ``warning``), as written there; None when ``given`` is no text or
    none is alike enough."""
    return word_meant(given, re.findall(r"'([^']*)'", expected))


def word_meant(given: object, words: Iterable[str]) -> str | None:
    """The one of ``words`` that ``given`` is spelt nearly as, compared as ``choice_meant``
    compares, as written among ``words``; None when ``given`` is no text or none is alike
    enough."""
    if not isinstance(given, str):
        return None
    choices = {word.casefold(): word for word in words}
    close = difflib.get_close_matches(given.strip().casefold(), list(choices), n=1)
    return choices[close[0]] if close else None
