"""The fast decoders against the reference decoder on payload values: timestamps in any form, a
batch whose ts changes from line to line, numbers at the edges, invalid payloads of every type."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bridge.bus.decoding as decoding_module
from bridge.bus import Envelope, Rejection, decode_envelope
from bridge.bus.decoding import decode_envelopes
from bridge.bus.problems import decode_envelope_reference
from bridge.messages import AlertAck, Message, PerformanceMetric
from bridge.messages.timestamps import parse_timestamp, rfc3339_pattern
from tests.bus.envelope_helpers import (
    HEALTH,
    TIMESTAMP_FIELDS,
    TIMESTAMPS,
    TS,
    agreed,
    body_of,
    decoded_alike,
    health_of,
)
from tests.messages.helpers import CASES

# Numbers at the edges of what the parsers and the models hold: integer widths, a float's
# range and precision (subnormals among them), and forms an integer field may be given in.
BOUNDARY_NUMBERS: list[Any] = [
    0,
    -1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    1.0,
    1.5,
    -0.0,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    253402300800,
    253402300800000,
    -62135596801,
]


@pytest.mark.parametrize("model", list(CASES), ids=lambda m: m.TAG)
def test_boundary_numbers_in_every_numeric_field_decode_as_the_reference_does(
    model: type[Message],
) -> None:
    """Each numeric or timestamp field of each type, set to a number at a boundary in a
    complete and in a minimal payload: the fast path takes exactly what the reference accepts,
    and neither raises."""
    case = CASES[model]
    for name, value in case.full.items():
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not numeric and name not in TIMESTAMP_FIELDS:
            continue
        for number in BOUNDARY_NUMBERS:
            for base in (case.full, case.minimal):
                payload = {**base, name: number}
                agreed(body_of(payload, model), payload, model)


@pytest.mark.parametrize("value", TIMESTAMPS, ids=repr)
@pytest.mark.parametrize("field", ["timestamp", "ack_timestamp"])
def test_timestamps_in_any_form_decode_as_the_reference_does(value: Any, field: str) -> None:
    """Offsets, sub-millisecond digits, numbers and bad dates give the reference's result."""
    payload = {**CASES[AlertAck].full, field: value}
    agreed(body_of(payload, AlertAck), payload, AlertAck)


@pytest.mark.parametrize("value", [t for t in TIMESTAMPS if isinstance(t, str)], ids=repr)
def test_a_payload_timestamp_given_as_the_envelope_ts_decodes_as_the_reference_does(
    value: str,
) -> None:
    """A payload timestamp in the very text of the envelope's ``ts`` (which the fast path reads
    once for both), in any form, gives the reference's result."""
    for model in (AlertAck, PerformanceMetric):
        payload = {**CASES[model].full, "timestamp": value}
        agreed(body_of(payload, model, ts=value), payload, model)


# Texts at the edges of RFC 3339's date-time, each a day and an hour that exist: offsets at and
# past their range, fractions of 9 and 10 digits, no offset, ISO 8601's other offset forms.
RFC3339_EDGES = [
    "2026-11-28T00:00:00Z",
    "2026-11-28t00:00:00z",
    "2026-11-28 00:00:00+23:59",
    "2026-11-28T00:00:00-23:59",
    "2026-11-28T00:00:00+24:00",
    "2026-11-28T00:00:00+23:60",
    "2026-11-28T00:00:00+99:99",
    "2026-11-28T00:00:00+0100",
    "2026-11-28T00:00:00+01",
    "2026-11-28T00:00:00.123456789Z",
    "2026-11-28T00:00:00.1234567891Z",
    "2026-11-28T00:00:00.Z",
    "2026-11-28T00:00:00",
    "2026-11-28T00:00:00.123456789",
    "2026-11-28T00:00:00Z\n",
    "2026-11-28T00:00Z",
]


@pytest.mark.parametrize("text", RFC3339_EDGES, ids=repr)
def test_every_reader_of_rfc_3339_text_takes_what_the_one_pattern_matches(text: str) -> None:
    """The envelope's ts (on both decoders), a payload's timestamp (on both decoders) and
    parse_timestamp take a text exactly when rfc3339_pattern matches it: with its offset for
    the envelope, the offset optional for a payload, up to nine fraction digits for
    parse_timestamp."""
    taken_as_ts = isinstance(decoded_alike(health_of(ts=text)), Envelope)
    assert taken_as_ts == bool(re.fullmatch(rfc3339_pattern(), text))
    payload = {**HEALTH, "timestamp": text}
    taken_in_payload = isinstance(decoded_alike(health_of(payload=payload)), Envelope)
    assert taken_in_payload == bool(re.fullmatch(rfc3339_pattern(offset_required=False), text))
    read = parse_timestamp(text) is not None
    assert read == bool(re.fullmatch(rfc3339_pattern(fraction_digits=9), text))


def test_a_batch_whose_ts_changes_from_line_to_line_decodes_as_each_line_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Envelopes of one batch with their ``ts`` the same, then another, then the first again
    (the fast path reads a run of equal texts once), with an offset or not, and payload
    timestamps the same text or another, each get their own."""
    later, offset = "2026-11-28T00:00:01.500Z", "2026-11-28T02:00:00.123+02:00"
    stamps = [(TS, TS), (TS, later), (later, later), (TS, TS), (offset, TS), (TS, later)]
    bodies = [
        health_of(id=f"id{number:08d}", ts=ts, payload={**HEALTH, "timestamp": timestamp})
        for number, (ts, timestamp) in enumerate(stamps)
    ]
    references = [decode_envelope_reference(body) for body in bodies]

    def alone(*args: Any) -> Any:
        raise AssertionError("a body was decoded alone")

    monkeypatch.setattr(decoding_module, "_decode_each", alone)  # the batch on the fast path
    envelopes, failure = decode_envelopes(bodies)
    assert failure is None
    assert envelopes == references
    for envelope, reference in zip(envelopes, references, strict=True):
        assert isinstance(reference, Envelope)
        assert envelope.unix_ts == reference.ts.timestamp()


_TS_TEXTS = st.sampled_from(
    [
        TS,
        "2026-11-28T00:00:01.500Z",
        "2026-11-28T02:00:00.123+02:00",
        "2026-11-28T00:00:00.123456Z",
        "not a time",
    ]
)


@settings(max_examples=300, deadline=None)
@given(stamps=st.lists(st.tuples(_TS_TEXTS, _TS_TEXTS), min_size=1, max_size=8))
def test_batches_of_any_ts_and_payload_timestamps_decode_as_each_line_alone(
    stamps: list[tuple[str, str]],
) -> None:
    """A batch whose envelopes' ``ts`` and payload timestamps are drawn from a few texts (runs
    of equal ones, forms the fast path does not take, invalid ones) decodes as its lines do one
    at a time, up to the first refused."""
    bodies = [
        health_of(id=f"id{number:08d}", ts=ts, payload={**HEALTH, "timestamp": timestamp})
        for number, (ts, timestamp) in enumerate(stamps)
    ]
    expected: list[Envelope] = []
    failure = None
    for index, body in enumerate(bodies):
        decoded = decode_envelope(body)
        if isinstance(decoded, Rejection):
            failure = (index, decoded)
            break
        expected.append(decoded)
    assert decode_envelopes(bodies) == (expected, failure)


@pytest.mark.parametrize("model", list(CASES), ids=lambda m: m.TAG)
def test_invalid_payloads_are_refused_with_the_reference_reason_and_field(
    model: type[Message],
) -> None:
    """A payload field of the wrong type gets the reference's rejection, naming the field."""
    name, value = CASES[model].bad_type
    rejection = decoded_alike(body_of({**CASES[model].full, name: value}, model))
    assert isinstance(rejection, Rejection)
    assert rejection.field is not None
