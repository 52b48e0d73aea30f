"""A refused word is told one way everywhere: the words allowed, and the one meant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from bridge.choices import choice_refused, did_you_mean, field_refused, meant_said, word_meant

SEVERITIES = ("info", "warning", "error", "critical")
EXPECTED_SEVERITIES = "'info', 'warning', 'error' or 'critical'"


class Metric(BaseModel):
    """A message model as pydantic refuses one: a field of choices, no field beyond its own."""

    model_config = ConfigDict(extra="forbid")

    value: float = 0.0
    severity: Literal["info", "warning", "error", "critical"] = "info"


def _error_of(fields: Mapping[str, Any]) -> dict[str, Any]:
    with pytest.raises(ValidationError) as caught:
        Metric.model_validate(fields)
    [error] = caught.value.errors()
    return dict(error)


@pytest.mark.parametrize(
    ("given", "words", "meant"),
    [
        ("warn", SEVERITIES, "warning"),
        ("WARNING", SEVERITIES, "warning"),
        ("Critcal", SEVERITIES, "critical"),
        ("  warn\t", SEVERITIES, "warning"),
        ("warn", ("WARNING", "node"), "WARNING"),
        ("zzz", SEVERITIES, None),
        ("", SEVERITIES, None),
        ("warn", (), None),
        # difflib's cutoff, 0.6 (twice the characters in common over both lengths), is met...
        ("abc", ("abcdefg",), "abcdefg"),
        # ...and one a little under it (28/47) is not.
        ("abcdefghijklmn", ("abcdefghijklmnopqrstuvwxyz0123456",), None),
        # The length guard: up to 3 times the longest word (7 here) is compared, blanks and all...
        ("warning".center(21), ("warning",), "warning"),
        # ...and one character longer never is, though stripped it is the very word.
        ("warning".center(22), ("warning",), None),
        ("warning" * 1_000_000, ("warning",), None),
        (3, SEVERITIES, None),
        (None, SEVERITIES, None),
        (b"warning", SEVERITIES, None),
        (["warning"], SEVERITIES, None),
    ],
    ids=[
        "misspelt",
        "upper-case",
        "mixed-case-misspelt",
        "blanks-around",
        "as-written-among-words",
        "like-none",
        "empty",
        "no-words",
        "at-the-cutoff",
        "below-the-cutoff",
        "longest-compared",
        "too-long-to-compare",
        "megabyte",
        "int",
        "none",
        "bytes",
        "list",
    ],
)
def test_the_word_meant_is_the_one_spelt_nearly_alike_in_any_letter_case(
    given: object, words: tuple[str, ...], meant: str | None
) -> None:
    """The word meant is the one spelt nearly as the text given, letter case and blanks around
    aside, none for a text too long to compare, too unlike any word or not text at all."""
    assert word_meant(given, words) == meant


@pytest.mark.parametrize(
    ("given", "aliases", "meant"),
    [
        ("sev", {}, None),
        ("sev", {"sev": "severity"}, "severity"),
        ("SEV ", {"sev": "severity"}, "severity"),
        ("sevv", {"sev": "severity"}, "severity"),
        ("ab".center(40), {}, None),
        ("ab".center(40), {"a_long_alias_name": "ab"}, "ab"),
    ],
    ids=[
        "no-alias",
        "alias",
        "alias-in-upper-case",
        "alias-misspelt",
        "long-without-alias",
        "long-alias-lifts-the-guard",
    ],
)
def test_an_alias_names_its_word_and_counts_in_the_length_guard(
    given: str, aliases: dict[str, str], meant: str | None
) -> None:
    """An alias (a class name for its tag) is another spelling of its word, meant as it is, and
    as long a text as it is is compared."""
    assert word_meant(given, ("ab", "severity"), aliases) == meant


@pytest.mark.parametrize(
    ("given", "words", "aliases", "said"),
    [
        ("warn", SEVERITIES, None, "did you mean 'warning'?"),
        ("its", ("it's",), None, 'did you mean "it\'s"?'),
        ("LogEntr", ("system_alert",), {"LogEntry": "log_entry"}, "did you mean 'log_entry'?"),
        ("zzz", SEVERITIES, None, None),
        (7, SEVERITIES, None, None),
    ],
    ids=["meant", "quoted-as-repr", "by-alias", "like-none", "not-text"],
)
def test_did_you_mean_quotes_the_word_meant(
    given: object, words: tuple[str, ...], aliases: dict[str, str] | None, said: str | None
) -> None:
    """``did you mean`` quotes the word meant as Python quotes it, and says nothing when none is
    meant."""
    assert did_you_mean(given, words, aliases) == said


@pytest.mark.parametrize(
    ("given", "words", "likeness", "prefix", "meant"),
    [
        # The prefix every name shares is left out: with it, EXESDB_URL would look like any.
        ("EXESDB_WEBHOOK_URL", ("EXESDB_WEBHOOK_URLS",), 0.6, "EXESDB_", "EXESDB_WEBHOOK_URLS"),
        ("EXESDB_BOGUS", ("EXESDB_BUS", "EXESDB_URL"), 0.8, "EXESDB_", None),
        ("EXESDB_BOGUS", ("EXESDB_BUS", "EXESDB_URL"), 0.8, "", "EXESDB_BUS"),
        # Left out in any case, and from the words and the text given alone.
        ("exesdb_log_levl", ("EXESDB_LOG_LEVEL",), 0.8, "EXESDB_", "EXESDB_LOG_LEVEL"),
        ("STATE_DIRR", ("EXESDB_STATE_DIR",), 0.8, "EXESDB_", "EXESDB_STATE_DIR"),
        ("SECRET_KEY", ("SECRET_KEY_BASE",), 0.8, "EXESDB_", "SECRET_KEY_BASE"),
        # A likeness over difflib's cutoff keeps what it would name out (--ct scores 0.73).
        ("--cout", ("--count",), 0.8, "", "--count"),
        ("--COUNT", ("--count",), 0.8, "", "--count"),
        ("--ct", ("--count",), 0.8, "", None),
        ("--ct", ("--count",), 0.6, "", "--count"),
    ],
    ids=[
        "prefix-left-out",
        "prefix-left-out-like-none",
        "prefix-kept-alike",
        "prefix-in-lower-case",
        "given-without-prefix",
        "word-without-prefix",
        "option-misspelt",
        "option-upper-case",
        "under-likeness",
        "over-the-cutoff",
    ],
)  # fmt: skip
def test_names_are_compared_without_their_prefix_and_as_alike_as_asked(
    given: str, words: tuple[str, ...], likeness: float, prefix: str, meant: str | None
) -> None:
    """A name is meant as a word is, compared without the ``prefix`` every name shares and held
    to a ``likeness`` of its own (an option's or an environment variable's)."""
    assert word_meant(given, words, likeness=likeness, prefix=prefix) == meant


@pytest.mark.parametrize(
    ("meant", "name", "said"),
    [
        ("warning", False, "did you mean 'warning'?"),
        ("--count", True, "did you mean --count?"),
        ("EXESDB_LOG_LEVEL", True, "did you mean EXESDB_LOG_LEVEL?"),
        ("EXESDB_STATE_DIR=… exesdb-bridge outbox list", True,
         "did you mean EXESDB_STATE_DIR=… exesdb-bridge outbox list?"),
    ],
    ids=["value-quoted", "option-as-typed", "variable-as-typed", "command-line-as-typed"],
)  # fmt: skip
def test_a_value_meant_is_quoted_and_a_name_meant_is_not(meant: str, name: bool, said: str) -> None:
    """The one meant is quoted when a value (``'warning'``), written as typed when a name on the
    command line or in the environment (``--count``, ``EXESDB_LOG_LEVEL``)."""
    assert meant_said(meant, name=name) == said


@pytest.mark.parametrize(
    ("given", "hint", "said"),
    [
        ("warn", True, f"must be {EXPECTED_SEVERITIES}; did you mean 'warning'?"),
        ("ERROR", True, f"must be {EXPECTED_SEVERITIES}; did you mean 'error'?"),
        ("warn", False, f"must be {EXPECTED_SEVERITIES}"),
        ("huge", True, f"must be {EXPECTED_SEVERITIES}"),
        (3, True, f"must be {EXPECTED_SEVERITIES}"),
    ],
    ids=["meant", "upper-case", "no-hint", "like-none", "not-text"],
)
def test_a_refused_choice_names_the_choices_and_with_a_hint_the_one_meant(
    given: object, hint: bool, said: str
) -> None:
    """A value outside pydantic's choices is said as ``must be`` the choices, and with ``hint``
    the one it is spelt nearly as after them."""
    assert choice_refused(given, EXPECTED_SEVERITIES, hint=hint) == said


@pytest.mark.parametrize(
    ("fields", "hint", "said"),
    [
        ({"severity": "warn"}, True, f"must be {EXPECTED_SEVERITIES}; did you mean 'warning'?"),
        ({"severity": "warn"}, False, f"must be {EXPECTED_SEVERITIES}"),
        ({"valu": 1}, True, "not a field of performance_metric; did you mean 'value'?"),
        ({"valu": 1}, False, "not a field of performance_metric"),
        ({"zzz": 1}, True, "not a field of performance_metric"),
        ({"severity": 3}, True, f"must be {EXPECTED_SEVERITIES}"),
        ({"value": "many"}, True, None),
    ],
    ids=[
        "choice-meant",
        "choice-no-hint",
        "field-meant",
        "field-no-hint",
        "field-like-none",
        "choice-not-text",
        "other-error",
    ],
)
def test_a_refused_field_is_worded_for_a_choice_or_a_field_the_owner_lacks(
    fields: dict[str, Any], hint: bool, said: str | None
) -> None:
    """pydantic's refusal of a word outside a field's choices or of a field the message type
    does not have is worded as every refusal, with the one meant when ``hint``; any other
    error is left to pydantic's words."""
    error = _error_of(fields)
    assert field_refused(error, Metric.model_fields, "performance_metric", hint=hint) == said
