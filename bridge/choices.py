"""How a refused word is told: the words allowed, and the one meant (``did you mean 'warning'?``).

pydantic refuses a value outside a ``Literal`` naming the choices (``'info', 'warning', 'error'
or 'critical'``); ``choice_refused`` says it as every refusal does (``must be 'info', …``) and
adds the choice the value is spelt nearly as, in any letter case. ``did_you_mean`` names one
among any words (``word_meant`` finds it), for an unknown key, option, field or message type;
``field_refused`` words a message's field refused for either. One wording for all who say these:
the settings (``bridge.settings_errors``), the YAML files (``bridge.yamlconfig``), ``publish``
and ``schema`` (``bridge.cli``, ``bridge.schema``), the integration API (``bridge.integration``),
ingest's refusals (``bridge.bus.problems``) and the admin API's (an unknown field of an ack in
``bridge.routes``, a refused ``?state=`` in ``bridge.sinks.alerts.admin``), the message
stream's ``?instance=`` (``bridge.bus``), ``EXESDB_BUS``'s query options (``bridge.bus_url``),
an IPv6 host without brackets (``bridge.probe_settings``), the command line's options
(``bridge.cli.parser``) and the variables nothing reads (``bridge.unknown_variables``). Here,
with no import of the package, for them all.

One quoting rule: a word given as a value, or as a key or field inside one (a setting's word,
a YAML key, a message field, a bus instance, a URL's query option), is quoted as Python quotes
it (``did you mean 'warning'?``); a name typed as it stands on the command line or in the
environment (an option, a variable, a command line) is not (``did you mean --count?``,
``did you mean EXESDB_LOG_LEVEL?``): quotes there would read as part of what to type.
``meant_said(…, name=True)`` says one so. Names are found by ``word_meant`` as values are, but
for ``likeness`` (how alike, difflib's ratio) and ``prefix`` (one common to them all, left out:
it would make every ``EXESDB_*`` name look close to every other).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = ["choice_refused", "did_you_mean", "field_refused", "meant_said", "word_meant"]

# difflib's cutoff: a word farther from the one given would point the wrong way.
_LIKENESS: Final = 0.6


def word_meant(
    given: object,
    words: Iterable[str],
    aliases: Mapping[str, str] | None = None,
    *,
    likeness: float = _LIKENESS,
    prefix: str = "",
) -> str | None:
    """The one of ``words`` that ``given`` is spelt nearly as, compared in any letter case and
    without the blanks around it (``warn``, ``WARNING``: ``warning``), as written among
    ``words``; ``aliases`` are other spellings of some of them (a class name for its tag). None
    when ``given`` is no text or none is ``likeness`` alike (difflib's ratio; by default its
    cutoff, 0.6: one farther would point the wrong way). ``prefix``, when a word or ``given``
    starts with it, is left out of the comparison (``EXESDB_``)."""
    meant = {_stem(word, prefix): word for word in words}
    meant |= {_stem(alias, prefix): word for alias, word in (aliases or {}).items()}
    # None is alike a text over 2.4 times as long as the longest (difflib's ratio, at least 0.6,
    # is twice the characters in common over both lengths): a sender's megabyte key is not read.
    if not isinstance(given, str) or len(given) > 3 * max(map(len, meant), default=0):
        return None
    import difflib  # here: a command that refuses nothing does not import it

    close = difflib.get_close_matches(_stem(given.strip(), prefix), list(meant), 1, likeness)
    return meant[close[0]] if close else None


def _stem(word: str, prefix: str) -> str:
    """``word`` in lower case (``casefold``), without ``prefix`` (in any case) before it."""
    folded = word.casefold()
    return folded.removeprefix(prefix.casefold())


def did_you_mean(
    given: object, words: Iterable[str], aliases: Mapping[str, str] | None = None
) -> str | None:
    """``did you mean 'x'?``, ``x`` the word ``given`` was likely meant as (``word_meant``),
    quoted; None when there is none."""
    meant = word_meant(given, words, aliases)
    return meant_said(meant) if meant is not None else None


def meant_said(meant: str, *, name: bool = False) -> str:
    """``did you mean 'x'?`` for a word ``meant`` found otherwise than by its spelling (another
    name for it, a rule): quoted as a value is, or as it stands when ``name`` (an option, a
    variable, a command line: ``did you mean EXESDB_HTTP_ADDR?``)."""
    return f"did you mean {meant if name else repr(meant)}?"


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
