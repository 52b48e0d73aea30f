"""The fast decoders against the reference decoder on numbers no float holds and JSON spellings
json.dumps never writes, in payloads and in the envelope."""

from __future__ import annotations

import json
import math
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from bridge.bus import Envelope, Rejection, RejectReason
from bridge.bus.decoding import decode_envelopes
from bridge.messages import (
    LogRotation,
    LogSummary,
    Message,
    NodeHealth,
    PerformanceMetric,
    ThroughputMetric,
)
from tests.bus.envelope_helpers import (
    HEALTH,
    agreed,
    body_of,
    decoded_alike,
    health_of,
    with_number,
)
from tests.messages.helpers import CASES

# What a number field says of a value it does not take (a bool, text that is no JSON number).
NOT_A_NUMBER = (
    'Input should be a finite number, or text holding one as JSON writes it ("1.5", "-2", "1e3")'
)

# Numbers no float holds: tokens json.loads takes but RFC 8259 does not, and numbers past a
# float's range (which parsers read as an infinity).
NOT_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e999", "1" + "0" * 400 + ".5"]


@pytest.mark.parametrize("model", list(CASES), ids=lambda m: m.TAG)
def test_a_number_no_float_holds_is_refused_in_every_numeric_field_naming_it(
    model: type[Message],
) -> None:
    """NaN, Infinity, -Infinity or a number past a float's range in any numeric field of any
    type, in a complete and in a minimal payload, is refused as malformed by both decoders,
    naming the field."""
    case = CASES[model]
    numeric = [
        name
        for name, value in case.full.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    for name in numeric:
        for base in (case.full, case.minimal):
            for text in NOT_FINITE:
                body = with_number(body_of({**base, name: "#"}, model), text)
                rejection = decoded_alike(body)
                assert isinstance(rejection, Rejection), (name, text)
                assert (rejection.reason, rejection.field) == (
                    RejectReason.MALFORMED,
                    f"payload.{name}",
                )


# Numbers in JSON spellings json.dumps never writes: exponents, a negative zero, a whole number
# with a fraction or an exponent, an underflow to zero, more digits than a float holds, and the
# last digits before a float's range ends (the second rounds to an infinity, the first does not).
NUMBER_SPELLINGS = [
    "1e2",
    "1E2",
    "1e+2",
    "1.5e-3",
    "0e0",
    "-0",
    "-0.0",
    "100.0",
    "100.5",
    "1e19",
    "9.223372036854775807e18",
    "9223372036854775807.0",
    "100000000000000000000000",
    "1e-400",
    "-2.5e-324",
    "0.1000000000000000055511151231257827",
    "1.7976931348623158e308",
    "1.7976931348623159e308",
]


@pytest.mark.parametrize("model", list(CASES), ids=lambda m: m.TAG)
def test_numbers_in_any_json_spelling_decode_as_the_reference_does(model: type[Message]) -> None:
    """Each numeric field of each type, and a free-form object, given a number in a spelling
    json.dumps never writes, in a complete and in a minimal payload: the fast paths take exactly
    what the reference accepts, with its values, and refuse the rest as it does."""
    case = CASES[model]
    numeric = [
        name
        for name, value in case.full.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    for text in NUMBER_SPELLINGS:
        for name in numeric:
            for base in (case.full, case.minimal):
                payload = {**base, name: "#"}
                agreed(with_number(body_of(payload, model), text), payload, model)
        payload = {**HEALTH, "checks": {"disk": [1, "#"]}}
        agreed(with_number(health_of(payload=payload), text), payload, NodeHealth)


@pytest.mark.parametrize("model", list(CASES), ids=lambda m: m.TAG)
def test_a_bool_in_every_numeric_field_is_refused_naming_it_and_text_is_taken(
    model: type[Message],
) -> None:
    """true or false in any numeric field of any type, in a complete and in a minimal payload,
    is invalid_payload from both decoders, naming the field (pydantic's lax number reads it as
    1 or 0); a number given as text decodes as the reference does, which takes it."""
    case = CASES[model]
    numeric = [
        name
        for name, value in case.full.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    for name in numeric:
        for base in (case.full, case.minimal):
            for given in (True, False):
                rejection = decoded_alike(body_of({**base, name: given}, model))
                assert isinstance(rejection, Rejection), (name, given)
                assert (rejection.reason, rejection.field, rejection.detail) == (
                    RejectReason.INVALID_PAYLOAD,
                    f"payload.{name}",
                    f"payload.{name}: {NOT_A_NUMBER}",
                )
            for text in ("0", "1", "2.5", "1e2"):
                payload = {**base, name: text}
                agreed(body_of(payload, model), payload, model)
        payload = {**case.minimal, name: str(case.full[name])}
        assert isinstance(agreed(body_of(payload, model), payload, model), Envelope), name


@pytest.mark.parametrize("text", NOT_FINITE)
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        # Complete: the msgspec path reads it.
        ({**HEALTH, "checks": {"disk": {"free": [1, "#"]}}}, "payload.checks.disk.free.1"),
        # A float as text, a lax form only the pydantic-core path reads.
        ({**HEALTH, "checks": {"disk": "#"}, "load_avg": "1.5"}, "payload.checks.disk"),
    ],
    ids=["msgspec", "pydantic-core"],
)
def test_a_number_no_float_holds_is_refused_in_a_json_object_naming_it(
    payload: dict[str, Any], field: str, text: str
) -> None:
    """Such a number anywhere in a payload's free-form object is refused as malformed by every
    decoder and on a batch's path, naming where it is, whichever fast path reads the rest."""
    body = with_number(health_of(payload=payload), text)
    rejection = decoded_alike(body)
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.field) == (RejectReason.MALFORMED, field)
    assert ("RFC 8259" if text.endswith(("NaN", "Infinity")) else "range") in rejection.detail
    assert decode_envelopes([health_of(), body])[1] == (1, rejection)


@pytest.mark.parametrize("text", ["NaN", "inf", "-Infinity", "1e400"])
def test_a_float_given_as_text_must_be_finite_too(text: str) -> None:
    """A float field given as text (a form the models' lax rules take) that reads as a NaN or
    an infinity is refused by both decoders, naming the field."""
    payload = {**CASES[PerformanceMetric].full, "value": text}
    rejection = agreed(body_of(payload, PerformanceMetric), payload, PerformanceMetric)
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.field) == (RejectReason.INVALID_PAYLOAD, "payload.value")


@pytest.mark.parametrize("text", ["inf", "Infinity", "-inf", "1e400", "NaN"])
def test_a_given_rate_per_sec_reading_as_an_infinity_is_refused(text: str) -> None:
    """A ThroughputMetric's rate_per_sec given as text that reads as an infinity (or a NaN) is
    invalid_payload on both decoders, naming the field: only a derived rate may be infinite."""
    payload = {**CASES[ThroughputMetric].full, "rate_per_sec": text}
    rejection = agreed(body_of(payload, ThroughputMetric), payload, ThroughputMetric)
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.field) == (
        RejectReason.INVALID_PAYLOAD,
        "payload.rate_per_sec",
    )
    assert "finite" in rejection.detail


@pytest.mark.parametrize("rate", [None, "left out"])
def test_a_rate_per_sec_derived_from_a_vanishing_duration_is_infinite(rate: Any) -> None:
    """Left out or null, rate_per_sec derived from a duration_ms too small for a finite rate is
    an infinity, which both decoders accept."""
    payload = {**CASES[ThroughputMetric].full, "duration_ms": 5e-324, "rate_per_sec": rate}
    if rate == "left out":
        del payload["rate_per_sec"]
    envelope = agreed(body_of(payload, ThroughputMetric), payload, ThroughputMetric)
    assert isinstance(envelope, Envelope)
    assert isinstance(envelope.payload, ThroughputMetric)
    assert envelope.payload.rate_per_sec == math.inf


@pytest.mark.parametrize("total", [None, "left out"])
@pytest.mark.parametrize(
    "counts",
    [
        # Numbers: the msgspec path reads them.
        {"error": 2**63 - 1, "info": 1},
        # Numbers as text, a lax form only the pydantic-core path reads.
        {"error": str(2**63 - 1), "warn": "2"},
    ],
    ids=["msgspec", "pydantic-core"],
)
def test_a_total_logs_derived_past_2_63_is_refused_either_way_naming_it(
    counts: dict[str, Any], total: Any
) -> None:
    """A LogSummary's total_logs, left out or null, derived from log_counts each within
    2^63 - 1 but adding up past it, is invalid_payload on every decoder and on a batch's path,
    naming the field, as the reference refuses it; not taken by a fast path."""
    payload = {**CASES[LogSummary].full, "log_counts": counts, "total_logs": total}
    if total == "left out":
        del payload["total_logs"]
    body = body_of(payload, LogSummary)
    rejection = agreed(body, payload, LogSummary)
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.field) == (
        RejectReason.INVALID_PAYLOAD,
        "payload.total_logs",
    )
    assert decode_envelopes([body_of(CASES[LogSummary].full, LogSummary), body])[1] == (
        1,
        rejection,
    )


@pytest.mark.parametrize("field", ["v", "payload"])
def test_a_number_no_float_holds_in_the_envelope_is_refused_naming_it(field: str) -> None:
    """In the envelope itself too (``v``, or a payload that is one)."""
    data = json.loads(health_of())
    data[field] = "#"
    body = with_number(json.dumps(data).encode(), "NaN")
    rejection = decoded_alike(body)
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.field) == (RejectReason.MALFORMED, field)


# Text pydantic's lax int or float reads as a number, which is no JSON number (RFC 8259 section
# 6): spaces, a plus sign, leading zeros, digit separators, a bare point, other digits, other
# words for an infinity or a NaN, a trailing newline.
NOT_JSON_NUMBER_TEXTS = [
    " 10 ",
    "10 ",
    "\t10",
    "1_000",
    "+10",
    "010",
    "-010",
    ".5",
    "5.",
    "-.5",
    "1e",
    "0x10",
    "\u0661\u0660",
    "NaN",
    "inf",
    "Infinity",
    "10\n",
    "",
]
# JSON numbers as text, each read as that number (whole without a fraction or an exponent).
JSON_NUMBER_TEXTS = [
    *("10", "-10", "0", "-0", "-0.0", "-0e0", "10.0", "1e1", "1E+1", "100e-1", "10.5", "1.5e-3"),
    *("9223372036854775807", "9223372036854775808", "9223372036854775807.0", "1e19"),
    *("0.1000000000000000055511151231257827", "1.7976931348623157e308", "5e-324", "1e-400"),
]


def _numeric_fields(model: type[Message]) -> list[str]:
    case = CASES[model]
    return [
        name
        for name, value in case.full.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]


@pytest.mark.parametrize("model", list(CASES), ids=lambda m: m.TAG)
def test_a_number_field_given_text_that_is_no_json_number_is_refused_naming_it(
    model: type[Message],
) -> None:
    """Each numeric field of each type, given text that is no JSON number (" 10 ", "1_000",
    "+10", "010", ".5", "5."), in a complete and in a minimal payload, is invalid_payload from
    both decoders alike, naming the field and saying what it takes."""
    case = CASES[model]
    for name in _numeric_fields(model):
        for base in (case.full, case.minimal):
            for text in NOT_JSON_NUMBER_TEXTS:
                payload = {**base, name: text}
                rejection = agreed(body_of(payload, model), payload, model)
                assert isinstance(rejection, Rejection), (name, text)
                assert (rejection.reason, rejection.field, rejection.detail) == (
                    RejectReason.INVALID_PAYLOAD,
                    f"payload.{name}",
                    f"payload.{name}: {NOT_A_NUMBER}",
                ), text


@pytest.mark.parametrize("model", list(CASES), ids=lambda m: m.TAG)
def test_a_json_number_given_as_text_decodes_as_that_number_does(model: type[Message]) -> None:
    """Each numeric field of each type, given a JSON number as text ("10.0", "1e1", "10.5"), in
    a complete and in a minimal payload, decodes on both decoders alike and as the number
    itself does: taken with the same value ("1e1" is 10 in an integer field, as 1e1 is), or
    refused with the same rejection ("10.5" in an integer field, as 10.5 is)."""
    case = CASES[model]
    for name in _numeric_fields(model):
        for base in (case.full, case.minimal):
            for text in JSON_NUMBER_TEXTS:
                as_text = {**base, name: text}
                given_text = agreed(body_of(as_text, model), as_text, model)
                as_number = {**base, name: "#"}
                given_number = agreed(
                    with_number(body_of(as_number, model), text), as_number, model
                )
                if isinstance(given_number, Rejection):
                    assert given_text == given_number, (name, text)
                else:
                    assert isinstance(given_text, Envelope), (name, text)
                    value = getattr(given_text.payload, name)
                    # repr: the type and the sign of a zero too ("-0" is the int 0, as -0 is).
                    assert repr(value) == repr(getattr(given_number.payload, name)), (name, text)


def test_a_count_given_as_text_derives_the_rate_the_count_itself_would() -> None:
    """A ThroughputMetric's count given as "1e2" (a JSON number as text, 100) derives the rate
    from 100 on both decoders, as the number 1e2 does; given as " 100" it is refused."""
    case = CASES[ThroughputMetric]
    payload = {**case.minimal, "count": "1e2", "duration_ms": 500}
    envelope = agreed(body_of(payload, ThroughputMetric), payload, ThroughputMetric)
    assert isinstance(envelope, Envelope)
    assert isinstance(envelope.payload, ThroughputMetric)
    assert (envelope.payload.count, envelope.payload.rate_per_sec) == (100, 200.0)
    payload = {**case.minimal, "count": " 100"}
    refused = agreed(body_of(payload, ThroughputMetric), payload, ThroughputMetric)
    assert isinstance(refused, Rejection)
    assert refused.field == "payload.count"


def test_log_counts_given_as_text_add_up_to_the_total_the_numbers_would() -> None:
    """A LogSummary's log_counts given as JSON numbers in text ("1e1", "2") add up to the
    total_logs the numbers would (12) on both decoders; one given as "+2" is refused naming
    it."""
    case = CASES[LogSummary]
    payload = {**case.minimal, "log_counts": {"error": "1e1", "info": "2"}}
    payload.pop("total_logs", None)
    envelope = agreed(body_of(payload, LogSummary), payload, LogSummary)
    assert isinstance(envelope, Envelope)
    assert isinstance(envelope.payload, LogSummary)
    assert envelope.payload.total_logs == 12
    payload = {**payload, "log_counts": {"error": "1", "info": "+2"}}
    refused = agreed(body_of(payload, LogSummary), payload, LogSummary)
    assert isinstance(refused, Rejection)
    assert refused.field == "payload.log_counts.info"


# What an integer field says of a number with a fractional part, given as a number or as text.
FRACTIONAL = "Input should be a valid integer, got a number with a fractional part"


def _integer_fields(model: type[Message]) -> list[str]:
    """The fields of ``model`` whose JSON Schema says integer (or integer or null)."""
    properties = model.model_json_schema()["properties"]
    return [
        name
        for name, schema in properties.items()
        if any(each.get("type") == "integer" for each in schema.get("anyOf", [schema]))
    ]


def test_the_integer_fields_are_found() -> None:
    """The integer fields the tests below write to are found: ThroughputMetric's count and
    LogSummary's total_logs among them, no float field."""
    assert "count" in _integer_fields(ThroughputMetric)
    assert "total_logs" in _integer_fields(LogSummary)
    assert "value" not in _integer_fields(PerformanceMetric)
    assert sum(len(_integer_fields(model)) for model in CASES) >= 15


@pytest.mark.parametrize("model", [m for m in CASES if _integer_fields(m)], ids=lambda m: m.TAG)
def test_an_integer_field_takes_a_whole_number_in_any_spelling_as_text_or_not(
    model: type[Message],
) -> None:
    """Each integer field of each type takes its whole value written ``10``, ``10.0``,
    ``1e1`` or ``100e-1``, as a JSON number or as text, on both decoders alike: the int 10,
    whichever was given; ``10.5`` and ``"10.5"`` are invalid_payload from both, naming the
    field in the same words."""
    case = CASES[model]
    for name in _integer_fields(model):
        whole = case.full[name] if isinstance(case.full.get(name), int) else 10
        spellings = [str(whole), f"{whole}.0", f"{whole}e0", f"{whole}0e-1"]
        for base in (case.full, case.minimal):
            for written in spellings:
                as_text = {**base, name: written}
                as_number = {**base, name: "#"}
                for body, payload in (
                    (body_of(as_text, model), as_text),
                    (with_number(body_of(as_number, model), written), as_number),
                ):
                    envelope = agreed(body, payload, model)
                    assert isinstance(envelope, Envelope), (name, written)
                    value = getattr(envelope.payload, name)
                    assert (type(value), value) == (int, whole), (name, written)
            as_text = {**base, name: f"{whole}.5"}
            as_number = {**base, name: "#"}
            for body, payload in (
                (body_of(as_text, model), as_text),
                (with_number(body_of(as_number, model), f"{whole}.5"), as_number),
            ):
                rejection = agreed(body, payload, model)
                assert isinstance(rejection, Rejection), name
                assert (rejection.reason, rejection.field, rejection.detail) == (
                    RejectReason.INVALID_PAYLOAD,
                    f"payload.{name}",
                    f"payload.{name}: {FRACTIONAL}",
                )


# A JSON number's text (RFC 8259 section 6): a whole part, then maybe a fraction and an exponent.
_JSON_NUMBERS = st.builds(
    lambda sign, whole, fraction, exponent: f"{sign}{whole}{fraction}{exponent}",
    st.sampled_from(["", "-"]),
    st.integers(min_value=0, max_value=10**20).map(str),
    st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,6}", fullmatch=True)),
    st.one_of(st.just(""), st.from_regex(r"[eE][+-]?[0-9]{1,2}", fullmatch=True)),
)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(written=_JSON_NUMBERS)
def test_any_json_number_as_text_in_an_integer_field_decodes_as_the_number(written: str) -> None:
    """Any JSON number given as text in an integer field (ThroughputMetric's count) decodes on
    both decoders alike and as the number itself does: the same int, or the same rejection
    (a fraction, a value past the field's bounds)."""
    case = CASES[ThroughputMetric]
    as_text = {**case.minimal, "count": written}
    as_number = {**case.minimal, "count": "#"}
    given_text = agreed(body_of(as_text, ThroughputMetric), as_text, ThroughputMetric)
    number_body = with_number(body_of(as_number, ThroughputMetric), written)
    given_number = agreed(number_body, as_number, ThroughputMetric)
    if isinstance(given_number, Rejection):
        assert given_text == given_number
    else:
        assert isinstance(given_text, Envelope)
        assert isinstance(given_text.payload, ThroughputMetric)
        assert isinstance(given_number.payload, ThroughputMetric)
        assert repr(given_text.payload.count) == repr(given_number.payload.count)
        assert type(given_text.payload.count) is int


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("9007199254740993.0", 9007199254740992),
        ("9007199254740993e0", 9007199254740992),
        ("9007199254740993", 9007199254740993),
    ],
)
def test_a_whole_number_past_2_53_with_a_fraction_is_read_as_a_float_is(
    written: str, read: int
) -> None:
    """2^53 + 1 written with a fraction or an exponent, in an integer field (LogRotation's
    file_size), is the nearest float's value on both decoders, as a number and as text alike
    (what docs/messages.md says); written whole it is exact."""
    case = CASES[LogRotation]
    as_text = {**case.minimal, "file_size": written}
    as_number = {**case.minimal, "file_size": "#"}
    for body, payload in (
        (body_of(as_text, LogRotation), as_text),
        (with_number(body_of(as_number, LogRotation), written), as_number),
    ):
        envelope = agreed(body, payload, LogRotation)
        assert isinstance(envelope, Envelope)
        assert isinstance(envelope.payload, LogRotation)
        assert envelope.payload.file_size == read
