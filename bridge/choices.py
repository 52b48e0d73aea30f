"""How a refused word is told: the words allowed, and the one meant (``did you mean 'warning'?``).

pydantic refuses a value outside a ``Literal`` naming the choices (``'info', 'warning', 'error'
or 'critical'``); ``choice_refused`` says it as every refusal does (``must be 'info', …``) and
adds the choice the value is spelt nearly as, in any letter case. ``did_you_mean`` names one
among any words (``word_meant`` finds it), for an unknown key, option, field or message type;
``field_refused`` words a message's field refused for either. One wording for all who say these:
the settings (``bridge.settings_errors``), the YAML files (``bridge.yamlconfig``), ``publish``
and ``schema`` (``bridge.cli``, ``bridge.schema``), the integration API (``bridge.integration``),
ingest's refusals (``bridge.bus.problems``) and the admin API's (an unknown field of an ack in
``bridge.routes``, a refused ``?state=`` in ``bridge.sinks.alerts.admin``). Here, with no import
of the package, for them all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["choice_refused", "did_you_mean", "field_refused", "word_meant"]


def word_meant(
    given: object, words: Iterable[str], aliases: Mapping[str, str] | None = None
) -> str | None:
    """The one of ``words`` that ``given`` is spelt nearly as, compared in any letter case and
    without the blanks around it (``warn``, ``WARNING``: ``warning``), as written among
    ``words``; ``aliases`` are other spellings of some of them (a class name for its tag). None
    when ``given`` is no text or none is alike enough (difflib's cutoff, 0.6: one farther would
    point the wrong way)."""
    meant = {word.casefold(): word for word in words}
    meant |= {alias.casefold(): word for alias, word in (aliases or {}).items()}
    # None is alike a text over 2.4 times as long as the longest (difflib's ratio, at least 0.6,
    # is twice the characters in common over both lengths): a sender's megabyte key is not read.
    if not isinstance(given, str) or len(given) > 3 * max(map(len, meant), default=0):
        return None
    import difflib  # here: a command that refuses nothing does not import it

    close = difflib.get_close_matches(given.strip().casefold(), list(meant), n=1)
    return meant[close[0]] if close else None


def did_you_mean(
    given: object, words: Iterable[str], aliases: Mapping[str, str] | None = None
) -> str | None:
    """``did you mean 'x'?``, ``x`` the word ``given`` was likely meant as (``word_meant``),
    quoted; None when there is none."""
    meant = word_meant(given, words, aliases)
    return f"did you mean {meant!r}?" if meant is not None else None


def choice_refused(given: object, expected: str, *, hint: bool = True) -> str:
    """A value ``given`` outside pydantic's ``expected`` (a ``literal_error``'s ``'a', 'b' or
    'c'``), in the words of every refusal: ``must be 'a', 'b' or 'c'``, and with ``hint``
    ``; did you mean 'b'?`` after it when ``given`` is spelt nearly as one of them."""
    refused = f"must be {expected}"
    meant = did_you_mean(given, re.findall(r"'([^']*)'", expected)) if hint else None
    return f"{refused}; {meant}" if meant else refused


def field_refused(
    error: Mapping[str, Any], fields: Iterable[str], owner: str, *, hint: bool = True
) -> str | None:
    """One of pydantic's errors for a message field, when a word tells it: a value outside the
    field's choices (``choice_refused``) or a field that ``owner`` (a message type, whose fields
    are ``fields``) does not have (``not a field of performance_metric; did you mean
    'value'?``); None for any other. With ``hint`` false, the word meant is left out, for a
    refusal only counted (the difflib run costs more than the rest of its wording)."""
    if error["type"] == "literal_error":
        return choice_refused(error.get("input"), str(error["ctx"]["expected"]), hint=hint)
    if error["type"] == "extra_forbidden":
        meant = did_you_mean(error["loc"][-1], fields) if hint else None
        return f"not a field of {owner}" + (f"; {meant}" if meant else "")
    return None
