"""The fast decoders (msgspec Structs, then pydantic-core, straight from bytes) against the
reference decoder.

The fast paths may only ever agree: for every input one accepts, the reference builds the very
same Envelope; for everything else ``decode_envelope`` falls back to the reference, so the
rejection (reason, detail, field) is the reference's. And they take every valid envelope, complete
or relying on defaults, unless its JSON is a corner the parsers read differently. The msgspec path
is held to this on its own too, with each of its two decoders (label patterns checked, or left
out for bytes in which no string can hold a control character).
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
import unicodedata
from pathlib import Path
from types import FrameType
from typing import Any, Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from pydantic_core import SchemaValidator

import bridge
import bridge.bus.decoding as decoding_module
from bridge.bus import Envelope, Rejection, RejectReason, decode_envelope, depth, structs
from bridge.bus.decoding import (
    _decode_fast,
    _decode_structs,
    _decode_unchecked,
    _named_once,
    decode_envelopes,
)
from bridge.bus.problems import decode_envelope_reference, with_every_problem
from bridge.client_settings import NodeName
from bridge.messages import (
    AlertAck,
    ClusterHealth,
    ClusterMembership,
    LogEntry,
    LogSummary,
    Message,
    NodeHealth,
    PerformanceMetric,
    SystemAlert,
    ThroughputMetric,
)
from tests.messages.test_models import CASES
from tests.support import drawn_as_nothing

TS = "2026-11-28T00:00:00.123Z"
NODE = "node1@host"
BRIDGE = str(Path(bridge.__file__).parent)
DECODERS = {
    str(Path(bridge.__file__).parent / "bus" / name)
    for name in ("envelope.py", "decoding.py", "problems.py", "structs.py")
}


def body_of(
    payload: dict[str, Any], model: type[Message], *, ascii_only: bool = True, **changes: Any
) -> bytes:
    data: dict[str, Any] = {
        "v": 1,
        "id": "01JDX0Y8C7H1V4N0W5Z3Q2M6TB",
        "instance": model.INSTANCE,
        "topic": "some:topic",
        "tag": model.TAG,
        "node": NODE,
        "ts": TS,
        "payload": payload,
    }
    data.update(changes)
    return json.dumps(data, ensure_ascii=ascii_only).encode()


def msgspec_paths(body: bytes | str) -> list[Envelope | None]:
    """What the msgspec path alone makes of ``body`` with each decoder that may read it (the
    one checking label patterns; the one leaving them out, where ``is_clean`` lets it), keys
    given twice refused as decode_envelope refuses them."""
    tries = [_decode_structs([body], None)]
    if isinstance(body, bytes) and structs.is_clean(body):
        tries.append(_decode_structs([body], body))
    return [
        taken[0] if taken[0] is not None and _named_once(body, held[0]) else None
        for taken, held, _ in tries
    ]


def assert_builds_the_reference(fast: Envelope, reference: Envelope, drawn: set[str]) -> None:
    """``fast`` is ``reference``, the fields in ``drawn`` (from the clock or randomness) aside:
    what a sink reads from its ``fields`` (before its payload is built) and its payload."""
    assert type(fast) is type(reference)
    _assert_fields_are(fast.fields, reference.payload, drawn)
    assert type(fast.payload) is type(reference.payload)
    assert fast.payload.model_dump(exclude=drawn) == reference.payload.model_dump(exclude=drawn)
    assert list(fast.payload.__dict__) == list(reference.payload.__dict__)  # the field order
    assert fast.payload.model_fields_set == reference.payload.model_fields_set
    assert (fast.id, fast.instance, fast.topic, fast.tag, fast.node, fast.ts) == (
        reference.id,
        reference.instance,
        reference.topic,
        reference.tag,
        reference.node,
        reference.ts,
    )
    assert fast.unix_ts == reference.unix_ts
    assert fast.ts.tzinfo is reference.ts.tzinfo
    if not drawn:
        assert fast == reference


def _assert_fields_are(fields: Any, payload: Message, drawn: set[str]) -> None:
    """``fields`` reads as ``payload``'s values, each of the same type, ``drawn`` aside."""
    expected = {name: v for name, v in payload.__dict__.items() if name not in drawn}
    read = {name: getattr(fields, name) for name in expected}
    assert read == expected
    assert [type(value) for value in read.values()] == [type(v) for v in expected.values()]
    for name in drawn:
        assert type(getattr(fields, name)) is type(payload.__dict__[name])


def decoded_alike(body: bytes | str) -> Envelope | Rejection:
    """Decode both ways (and on the msgspec path alone); they must agree exactly (types of
    the payloads included).

    A payload without a ``timestamp`` gets "now" from each decode, which may differ by a
    millisecond between the two: that field is then compared for type only.
    """
    fast, reference = decode_envelope(body), decode_envelope_reference(body)
    if isinstance(fast, Envelope) and isinstance(reference, Envelope):
        drawn = set() if "timestamp" in json.loads(body)["payload"] else {"timestamp"}
        assert_builds_the_reference(fast, reference, drawn)
        for taken in msgspec_paths(body):
            if taken is not None:
                assert_builds_the_reference(taken, reference, drawn)
    else:
        assert fast == reference
        assert msgspec_paths(body) == [None] * len(msgspec_paths(body))
    return fast


@pytest.mark.parametrize("model", list(CASES), ids=lambda m: m.TAG)
def test_full_payloads_take_the_fast_path_and_build_the_reference_envelope(
    model: type[Message],
) -> None:
    """Every message type with every field set decodes on the fast path to the same Envelope."""
    body = body_of(CASES[model].full, model)
    assert _decode_fast(body) is not None
    assert isinstance(decoded_alike(body), Envelope)


def drawn_fields(model: type[Message], payload: dict[str, Any]) -> set[str]:
    """The fields left to a default drawn from the clock or randomness (timestamps, ids)."""
    return {
        name
        for name, info in model.__pydantic_fields__.items()
        if payload.get(name) is None and info.default_factory not in (None, dict, list)
    }


def agreed(body: bytes, payload: dict[str, Any], model: type[Message]) -> Envelope | Rejection:
    """The fast path takes ``body`` exactly when the reference accepts it, and builds its Envelope.

    Fields drawn from the clock or randomness are compared for presence only.
    """
    fast, reference = _decode_fast(body), decode_envelope_reference(body)
    taken = msgspec_paths(body)
    if isinstance(reference, Rejection):
        assert fast is None, "the fast path accepted what the reference refuses"
        assert taken == [None] * len(taken), "the msgspec path accepted what the reference refuses"
        assert decode_envelope(body) == reference
        return reference
    assert isinstance(fast, Envelope), "a valid envelope missed the fast path"
    drawn = drawn_fields(model, payload)
    assert_builds_the_reference(fast, reference, drawn)
    for envelope in taken:
        if envelope is not None:
            assert_builds_the_reference(envelope, reference, drawn)
    return fast


@pytest.mark.parametrize("model", list(CASES), ids=lambda m: m.TAG)
def test_minimal_payloads_take_the_fast_path_with_the_node_from_the_envelope(
    model: type[Message],
) -> None:
    """Payloads relying on defaults (node from the envelope included) decode on the fast path."""
    minimal = CASES[model].minimal
    envelope = agreed(body_of(minimal, model), minimal, model)
    assert isinstance(envelope, Envelope)
    if "node" in model.__pydantic_fields__:
        assert envelope.payload.model_dump()["node"] == NODE


def test_every_message_type_is_on_the_msgspec_path() -> None:
    """The Structs are generated for all 36 models: none is left to the slower paths."""
    assert structs.OFF_PATH == ()
    assert sorted(structs.PAYLOADS) == sorted(model.TAG for model in CASES)


@pytest.mark.parametrize("shape", ["full", "minimal"])
@pytest.mark.parametrize("model", list(CASES), ids=lambda m: m.TAG)
def test_valid_payloads_take_the_msgspec_path_with_either_decoder(
    model: type[Message], shape: str
) -> None:
    """A complete or a minimal payload of each type is taken by the msgspec path, by the
    decoder checking label patterns and (for bytes without escapes) by the one leaving them
    out, and builds the reference's Envelope."""
    payload = getattr(CASES[model], shape)
    for ascii_only in (True, False):
        body = body_of(payload, model, ascii_only=ascii_only)
        taken = msgspec_paths(body)
        assert None not in taken
        assert len(taken) == (2 if structs.is_clean(body) else 1)
        agreed(body, payload, model)


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_clean_bytes_hold_no_string_with_a_control_character(text: str) -> None:
    """Where is_clean lets the decoder leave the label patterns out, no string can hold a
    control character, however it is written."""
    for ascii_only in (True, False):
        body = json.dumps({"node": text}, ensure_ascii=ascii_only).encode()
        if structs.is_clean(body):
            assert re.fullmatch(r"[^\x00-\x1f\x7f-\x9f]*", text)


def test_a_batch_with_an_id_or_topic_outside_their_alphabets_is_refused_at_that_line() -> None:
    """The alphabets of ids and topics, checked a batch at once, still refuse the one line at
    fault with the reference's rejection."""
    good = health_of()
    for bad in (health_of(id="abcdefgh!"), health_of(id="abcdéfgh"), health_of(topic="a b")):
        envelopes, failure = decode_envelopes([good, bad, good.replace(b"TB", b"TC")])
        assert len(envelopes) == 1
        assert failure == (1, decode_envelope_reference(bad))


def test_a_key_longer_than_the_string_limit_is_refused_either_way() -> None:
    """A key in a payload map longer than the models' string limit (65 536) is refused as
    the reference refuses it; a value that long in a map is taken, as it is."""
    for checks, accepted in (({"k" * 65_537: 1}, False), ({"k": "v" * 65_537}, True)):
        result = decoded_alike(health_of(payload={**HEALTH, "checks": checks}))
        assert isinstance(result, Envelope) is accepted


@pytest.mark.parametrize("model", list(CASES), ids=lambda m: m.TAG)
@pytest.mark.parametrize("value", [None, "absent"])
def test_each_defaulted_field_left_out_or_null_is_filled_on_the_fast_path(
    model: type[Message], value: str | None
) -> None:
    """Leaving out (or sending null for) any one field with a default gives the reference's."""
    full = CASES[model].full
    for name in set(full) - set(CASES[model].minimal):
        payload = {key: item for key, item in full.items() if key != name}
        if value is None:
            payload[name] = None
        agreed(body_of(payload, model), payload, model)


# The checks a model runs in Python: rules across its fields, or past a pattern's reach.
_PYTHON_CHECKS: Final = {ClusterHealth: ["_counts_cover_their_nodes"], AlertAck: ["visible_name"]}


@pytest.mark.parametrize("model", list(CASES), ids=lambda m: m.TAG)
def test_a_complete_canonical_payload_calls_no_python_validator(model: type[Message]) -> None:
    """A canonical envelope is checked in pydantic-core, bar ClusterHealth's cross-field rules
    and AlertAck's visible_name (ack_by's check past what a pattern holds): no other model code
    runs in Python."""
    called = _python_calls_decoding(body_of(CASES[model].full, model))
    assert called == _PYTHON_CHECKS.get(model, [])


def _python_calls_decoding(body: bytes) -> list[str]:
    """The functions of the bridge's model code that decoding ``body`` on the fast path calls,
    in order (the decoder's own helpers aside: a collection may run some other object's
    finalizer); the body is decoded once first, so its ts text is cached, as in a batch."""
    assert _decode_fast(body) is not None
    called: list[str] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        where = frame.f_code.co_filename
        if event == "call" and where.startswith(BRIDGE) and where not in DECODERS:
            called.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        envelope = _decode_fast(body)
    finally:
        sys.setprofile(None)
    assert isinstance(envelope, Envelope)
    return called


# What a minimal payload may run in Python on the fast path: its defaults made (now, random
# ids, the DERIVED fields computed from the others), never a check of a field.
DEFAULT_MAKERS = frozenset(
    {"utc_now", "random_hex", "fill_derived", "_derived", "<listcomp>", "_rate"}
)


@pytest.mark.parametrize("model", list(CASES), ids=lambda m: m.TAG)
def test_a_minimal_payload_runs_only_its_defaults_in_python(model: type[Message]) -> None:
    """A payload leaving every defaulted field out runs no validator in Python on the fast
    path (ClusterHealth's cross-field rules and AlertAck's visible_name aside): only the code
    making its defaults."""
    called = set(_python_calls_decoding(body_of(CASES[model].minimal, model)))
    assert called <= DEFAULT_MAKERS | set(_PYTHON_CHECKS.get(model, []))


TIMESTAMPS = [
    "2026-11-28T02:00:00.123+02:00",
    "2026-11-28T00:00:00.123456Z",
    "2026-11-28T00:00:00.1234Z",
    "2026-11-28T00:00:00Z",
    "2026-11-28T00:00:00.1Z",
    "2026-11-28T00:00:00.123+00:00",
    "2026-11-28T00:00:00.123z",
    "2026-11-28t00:00:00.123Z",
    "2026-11-28 00:00:00.123Z",
    "2026-11-28T00:00:00.123",
    "2026-11-28",
    "2026-02-30T00:00:00.000Z",
    "2026-11-28T24:00:00.000Z",
    "2026-11-28T23:59:60.000Z",
    "0000-01-01T00:00:00.000Z",
    "9999-12-31T23:59:59.999Z",
    "+2026-11-28T00:00:00.123Z",
    "2026-11-28T00:00:00.123Z\n",
    1764288000,
    1764288000.1234567,
    1764288000123,
    True,
    "not a time",
]


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


_FIRST = next(iter(CASES))
HEALTH = {"status": "healthy", "node": NODE, "timestamp": TS}
# An envelope's fields but its payload, in the order a sender writes them.
ENVELOPE = {
    "v": 1,
    "id": "01JDX0Y8C7H1V4N0W5Z3Q2M6TB",
    "instance": "ex_esdb_health",
    "topic": "cluster:health",
    "tag": "node_health_updated",
    "node": NODE,
    "ts": TS,
}
EDGE_CASES: dict[str, bytes | str] = {
    "text input": body_of(HEALTH, _FIRST).decode(),
    "version as float": b"",
    "not json": b"{nope",
    "empty": b"",
    "top-level array": b"[1, 2]",
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "deep payload": b'{"v":1,"payload":' + b'{"a":' * 5_000 + b"1" + b"}" * 5_001,
    "utf-8 bom": b"\xef\xbb\xbf" + body_of(HEALTH, _FIRST),
    "invalid utf-8": body_of(HEALTH, _FIRST).replace(b"node1", b"n\xffde1"),
    "trailing garbage": body_of(HEALTH, _FIRST) + b"x",
    "surrounding whitespace": b" \n" + body_of(HEALTH, _FIRST) + b"\n ",
}


def health_of(**changes: Any) -> bytes:
    """A NodeHealth envelope's JSON (ENVELOPE's fields, then the payload), ``changes`` made."""
    data: dict[str, Any] = {**ENVELOPE, "payload": HEALTH}
    data.update(changes)
    return json.dumps(data, ensure_ascii=False).encode()


FIELD_CASES: list[tuple[str, Any]] = [
    ("v", 1.0),
    ("v", True),
    ("v", "1"),
    ("v", 2),
    ("v", 0),
    ("v", None),
    ("id", "short"),
    ("id", "x" * 129),
    ("id", "x" * 128),
    ("id", "abcdefgh\n"),
    ("id", "abcdefgh!"),
    ("id", 12345678),
    ("topic", ""),
    ("topic", "a" * 129),
    ("topic", "a b"),
    ("topic", "a:b\n"),
    ("topic", ["a"]),
    ("node", ""),
    ("node", "n" * 255),
    ("node", "n" * 256),
    ("node", "é" * 255),
    ("node", "é" * 256),
    ("node", None),
    ("node", 7),
    ("ts", "2026-11-28T02:00:00.123+02:00"),
    ("ts", "2026-11-28T00:00:00.123"),
    ("ts", "2026-11-28T00:00:00.123456Z"),
    ("ts", "2026-11-28T00:00:00Z"),
    ("ts", "2026-11-28"),
    ("ts", "0001-01-01T00:00:00+01:00"),
    ("ts", "9999-12-31T23:59:59-01:00"),
    ("ts", "2026-11-28T00:00:00.123Z" + " " * 20),
    ("ts", "not a time"),
    ("ts", 1764288000),
    ("ts", None),
    ("instance", "ex_esdb_metrics"),
    ("instance", "ex_esdb_nothing"),
    ("instance", 3),
    ("tag", "resource_usage"),
    ("tag", "nothing_like_it"),
    ("tag", None),
    ("payload", None),
    ("payload", []),
    ("payload", "healthy"),
    ("payload", {}),
    ("payload", {**HEALTH, "extra": 1}),
    ("payload", {**HEALTH, "status": "fine"}),
    ("payload", {**HEALTH, "node": None}),
    ("payload", {"status": "healthy", "timestamp": TS}),
    ("payload", {**HEALTH, "node": "other@host"}),
    ("payload", {**HEALTH, "load_avg": 1e400}),
    ("payload", {**HEALTH, "memory_usage": -1}),
    ("payload", {**HEALTH, "checks": {"big": 10**40, "nested": [1.5, None, True]}}),
    ("payload", {**HEALTH, "timestamp": "2026-11-28T03:00:00.123456+03:00"}),
    ("payload", {**HEALTH, "timestamp": "2026-11-28T00:00:00"}),
    ("payload", {**HEALTH, "timestamp": 1764288000}),
    ("extra", 1),
]


@pytest.mark.parametrize(("field", "value"), FIELD_CASES, ids=lambda x: repr(x)[:40])
def test_envelope_fields_decode_the_same_either_way(field: str, value: Any) -> None:
    """Every odd envelope field value gives the reference's Envelope or Rejection."""
    decoded_alike(health_of(**{field: value}))


@pytest.mark.parametrize(
    "missing", ["v", "id", "instance", "topic", "tag", "node", "ts", "payload"]
)
def test_a_missing_envelope_field_is_refused_as_the_reference_does(missing: str) -> None:
    """Leaving out any envelope key gives the reference's rejection naming it."""
    data = json.loads(health_of())
    del data[missing]
    rejection = decoded_alike(json.dumps(data).encode())
    assert isinstance(rejection, Rejection)
    assert rejection.field == missing


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_odd_bodies_decode_the_same_either_way(name: str) -> None:
    """Bodies that are barely or not JSON give the reference's result, never an exception."""
    body = EDGE_CASES[name] or health_of().replace(b'"v": 1', b'"v": 1.0')
    decoded_alike(body)


@pytest.mark.parametrize(
    "body",
    [
        # Duplicate keys: the last one wins in both parsers.
        health_of()[:-1] + b', "node": "other@host"}',
        health_of()[:-1] + b', "tag": "resource_usage"}',
        health_of()[:-1] + b', "payload": {"status": "degraded"}}',
        # A lone surrogate escape: json.loads takes it, pydantic-core refuses it (then falls back).
        health_of().replace(b'"node1@host"', b'"\\ud800x"', 1),
        health_of().replace(b'"node1@host"', b'"n\\u0000x"', 1),
        # UTF-16: json.loads detects it, pydantic-core does not (then falls back).
        health_of().decode().encode("utf-16"),
    ],
    ids=["dup-node", "dup-tag", "dup-payload", "surrogate", "nul", "utf-16"],
)
def test_parser_corner_cases_decode_the_same_either_way(body: bytes) -> None:
    """Where the two JSON parsers could differ, the result is still the reference's."""
    decoded_alike(body)


def pairs_json(value: Any, separators: tuple[str, str]) -> str:
    """JSON of ``value``, where a list of pairs is an object (so a key may repeat)."""
    item, key = separators
    if isinstance(value, list) and value and all(isinstance(p, tuple) for p in value):
        inner = item.join(json.dumps(k) + key + pairs_json(v, separators) for k, v in value)
        return "{" + inner + "}"
    if isinstance(value, dict):
        return pairs_json(list(value.items()), separators)
    if isinstance(value, list):
        return "[" + item.join(pairs_json(v, separators) for v in value) + "]"
    return json.dumps(value)


SEPARATORS = {"compact": (",", ":"), "spaced": (", ", ": "), "before": (" ,", " : "),
               "tabs": (",\t", "\t:\t"), "lines": (",\r\n", "\n:\n")}  # fmt: skip


@pytest.mark.parametrize("style", list(SEPARATORS))
@pytest.mark.parametrize(
    ("pairs", "field"),
    [
        ([*ENVELOPE.items(), ("id", "01JDX0Y8C7H1V4N0W5Z3Q2M6TC"), ("payload", HEALTH)], "id"),
        ([*ENVELOPE.items(), ("payload", HEALTH), ("node", "other@host")], "node"),
        ([*ENVELOPE.items(), ("payload", HEALTH), ("payload", HEALTH)], "payload"),
        ([*ENVELOPE.items(), ("payload", [("status", "degraded"), ("status", "healthy")])],
         "payload.status"),
        ([*ENVELOPE.items(), ("payload", [("status", "healthy"), ("node", "a"), ("node", "a")])],
         "payload.node"),
        ([*ENVELOPE.items(), ("payload", [("status", "healthy"),
          ("checks", [("disk", [("x", [1, [("a", 1), ("b", 2), ("a", 3)]])])])])],
         "payload.checks.disk.x.1.a"),
    ],
)  # fmt: skip
def test_a_key_given_twice_is_refused_either_way_naming_it(
    pairs: list[tuple[str, Any]], field: str, style: str
) -> None:
    """A key repeated in the envelope, the payload or deeper, however the JSON is spaced, is
    refused as malformed by both decoders, naming the key where it repeats."""
    body = pairs_json(pairs, SEPARATORS[style]).encode()
    assert _decode_fast(body) is None
    rejection = decoded_alike(body)
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.field) == (RejectReason.MALFORMED, field)
    envelopes, failure = decode_envelopes([health_of(), body])
    assert len(envelopes) == 1
    assert failure == (1, rejection)


@pytest.mark.parametrize("style", [style for style in SEPARATORS if style != "lines"])
@pytest.mark.parametrize("escaped", [False, True], ids=["clean", "escaped"])
def test_a_key_given_twice_in_a_batch_cut_from_its_body_is_refused_as_alone(
    style: str, escaped: bool
) -> None:
    """A batch decoded with the body its lines were cut from (blank, spaced and CRLF lines
    around them), as ingest decodes it, refuses a key given twice as each line alone would, on
    clean bytes (the quotes counted in the body) and with an escape (the keys in the lines)."""
    node = "node\\u00e9@host" if escaped else NODE  # a backslash: the bytes are not clean
    pairs = [*ENVELOPE.items(), ("node", node), ("payload", HEALTH), ("node", "other@host")]
    repeated = pairs_json(pairs, SEPARATORS[style]).encode()
    good = health_of(node=node)
    whole = b"\n \t\n" + good + b"\r\n\n" + repeated + b"\n" + good + b"\n"
    lines = [line for line in whole.split(b"\n") if line and not line.isspace()]
    rejection = decoded_alike(repeated)
    assert isinstance(rejection, Rejection)
    expected = ([decoded_alike(good)], (1, rejection))
    assert decode_envelopes(lines, whole) == decode_envelopes(lines) == expected


def test_a_clean_batch_cut_from_its_body_decodes_on_the_fast_path_as_its_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Clean lines decoded with the body they were cut from (CRLF endings, blank and spaced
    lines between) give what the lines alone give, the batch on the fast path: the quotes
    counted in the body are the lines' own."""
    lines = [health_of(id=f"id{n:08d}") for n in range(3)]
    whole = b"\r\n".join(lines) + b"\r\n\n  \n"
    cut = [line for line in whole.split(b"\n") if line and not line.isspace()]
    expected = decode_envelopes(cut)

    def alone(*args: Any) -> Any:
        raise AssertionError("a body was decoded alone")

    monkeypatch.setattr(decoding_module, "_decode_each", alone)
    assert decode_envelopes(cut, whole) == expected
    assert expected[1] is None
    assert len(expected[0]) == len(lines)


@pytest.mark.parametrize(
    "body",
    [
        # An escaped key is the same key.
        health_of()[:-1] + b', "n\\u006fde": "other@host"}',
        health_of().replace(b'{"status"', b'{"st\\u0061tus": "degraded", "status"'),
        # A quote and colon inside strings, and strings opening with a colon: no key repeats.
        health_of(node='a":b', topic="x:y").replace(b": ", b":").replace(b", ", b","),
        health_of(payload={**HEALTH, "checks": {"::1": "up", 'say "x": y': ":"}}),
        health_of(payload={**HEALTH, "checks": {"a": {"a": {"a": 1}}, "b": [{"a": 1}, {"a": 1}]}}),
    ],
    ids=["escaped-envelope-key", "escaped-payload-key", "quoted-colons", "colon-strings",
         "same-keys-nested"],
)  # fmt: skip
def test_keys_that_look_alike_decode_the_same_either_way(body: bytes) -> None:
    """Escaped keys, quotes and colons inside strings and equal keys in different objects are
    read alike by both decoders (the fast path leaves the doubtful ones to the reference)."""
    decoded_alike(body)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"node": "node\x00host"}, "node"),
        ({"node": "node\nhost"}, "node"),
        ({"node": "node\x7fhost"}, "node"),
        ({"node": "node\x9fhost"}, "node"),
        ({"payload": {**HEALTH, "node": "a\x00b"}}, "payload.node"),
        ({"payload": {"status": "healthy", "node": "a\x80"}}, "payload.node"),
        (
            {
                "instance": "ex_esdb_alerts",
                "tag": "system_alert",
                "payload": {"severity": "warning", "category": "system", "title": "t",
                            "description": "d", "source": "a\x00b", "node": NODE},
            },
            "payload.source",
        ),
    ],
)  # fmt: skip
def test_control_characters_in_node_and_labels_are_refused_either_way(
    changes: dict[str, Any], field: str
) -> None:
    """A C0 (NUL included), DEL or C1 control character in the envelope's node or a payload
    string that becomes a label value is refused by both decoders, naming the field."""
    for ascii_only in (True, False):
        data = json.loads(health_of())
        data.update(changes)
        body = json.dumps(data, ensure_ascii=ascii_only).encode()
        rejection = decoded_alike(body)
        assert isinstance(rejection, Rejection)
        assert rejection.field == field


@pytest.mark.parametrize("alert_id", [".", "..", "...", ".a", "a..", "%2e%2e", "a/.."])
@pytest.mark.parametrize("title", ["disk full", "disk µ full"], ids=["ascii", "utf-8"])
def test_an_alert_id_of_one_or_two_dots_alone_is_refused_either_way(
    alert_id: str, title: str
) -> None:
    """A SystemAlert's alert_id of ``.`` or ``..`` (which a link's path drops: no page link or
    generatorURL would reach the alert) is refused by both decoders, from clean bytes or not,
    naming ``payload.alert_id`` and saying why; any other id with dots is taken."""
    payload = {
        "alert_id": alert_id,
        "severity": "error",
        "category": "system",
        "title": title,
        "description": "d",
        "source": "tests",
        "node": NODE,
    }
    for ascii_only in (True, False):
        decoded = decoded_alike(body_of(payload, SystemAlert, ascii_only=ascii_only))
        if alert_id in (".", ".."):
            assert isinstance(decoded, Rejection)
            assert decoded.field == "payload.alert_id"
            assert decoded.detail.startswith("payload.alert_id: an alert id must not be . or ..")
        else:
            assert isinstance(decoded, Envelope)
            assert decoded.payload.alert_id == alert_id  # type: ignore[attr-defined]


@pytest.mark.parametrize("node", ["a\ud800b", "\udfff", "a\udc80"])
def test_a_lone_surrogate_in_node_is_refused_either_way(node: str) -> None:
    """An unpaired surrogate escape (``\\ud800``) in the envelope's node, which no UTF-8 text
    can carry, is refused by both decoders and on a batch's path, naming ``node``."""
    data = json.loads(health_of())
    data["node"] = node
    body = json.dumps(data).encode()  # the surrogate as its escape
    rejection = decoded_alike(body)
    assert isinstance(rejection, Rejection)
    assert rejection.field == "node"
    good = health_of()
    assert decode_envelopes([good, body, good])[1] == (1, rejection)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**HEALTH, "checks": {"disk": "a\ud800"}}, "payload.checks.disk"),
        ({**HEALTH, "checks": {"disk": [1, {"x": "\udfff"}]}}, "payload.checks.disk.1.x"),
        ({**HEALTH, "checks": {"disk": {"\ud800": 1}}}, "payload.checks.disk"),
        ({**HEALTH, "checks": {"disk": "\ud800"}, "load_avg": "1.5"}, "payload.checks.disk"),
    ],
    ids=["value", "deep", "key", "lax"],
)
def test_a_lone_surrogate_anywhere_is_refused_either_way_naming_where(
    payload: dict[str, Any], field: str
) -> None:
    """An unpaired surrogate escape in a payload's free-form object (a value or a key, at any
    depth), which no envelope sent on could carry, is refused as malformed by both decoders
    and on a batch's path, naming where it is; a paired one (an emoji) is taken."""
    body = json.dumps(json.loads(health_of()) | {"payload": payload}).encode()
    rejection = decoded_alike(body)
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.field) == (RejectReason.MALFORMED, field)
    assert "lone surrogate" in rejection.detail
    assert decode_envelopes([health_of(), body])[1] == (1, rejection)
    paired = body.replace(b"\\ud800", b"\\ud83d\\ude00").replace(b"\\udfff", b"\\ud83d\\ude00")
    taken = decoded_alike(paired)
    assert isinstance(taken, Envelope)
    assert json.loads(taken.to_bytes())["payload"]["checks"]


def _nested(levels: int, inner: Any = 1) -> Any:
    """``inner`` in ``levels`` arrays, objects and arrays by turns (``[{"x": [...]}]``)."""
    value = inner
    for level in reversed(range(levels)):
        value = [value] if level % 2 == 0 else {"x": value}
    return value


@pytest.mark.parametrize("lax", [False, True], ids=["msgspec", "pydantic-core"])
def test_nesting_up_to_the_limit_is_taken_and_sent_on(lax: bool) -> None:
    """An envelope nested exactly MAX_DEPTH deep (the envelope, its payload, ``checks`` and 61
    levels in it) is taken by a fast path as the reference takes it, and its wire form, which
    every sink and transport writes, decodes to it again."""
    payload = {**HEALTH, "checks": {"a": _nested(structs.MAX_DEPTH - 3)}}
    if lax:
        payload["load_avg"] = "1.5"
    body = health_of(payload=payload)
    assert _decode_fast(body) is not None
    envelope = decoded_alike(body)
    assert isinstance(envelope, Envelope)
    assert decode_envelope(envelope.to_bytes()) == envelope


@pytest.mark.parametrize("lax", [False, True], ids=["msgspec", "pydantic-core"])
@pytest.mark.parametrize("levels", [structs.MAX_DEPTH - 2, 300, 900])
def test_nesting_past_the_limit_is_refused_either_way_naming_where(levels: int, lax: bool) -> None:
    """One level more (or hundreds more, which some parsers take and no serializer writes) is
    refused as malformed by both decoders and on a batch's path, naming the first object or
    array past the limit."""
    payload = {**HEALTH, "checks": {"a": _nested(levels)}}
    if lax:
        payload["load_avg"] = "1.5"
    body = health_of(payload=payload)
    rejection = decoded_alike(body)
    assert isinstance(rejection, Rejection)
    where = "payload.checks.a" + ".0.x" * ((structs.MAX_DEPTH - 3) // 2) + ".0"
    assert (rejection.reason, rejection.field) == (RejectReason.MALFORMED, where)
    assert f"deeper than {structs.MAX_DEPTH} levels" in rejection.detail
    assert decode_envelopes([health_of(), body, health_of()])[1] == (1, rejection)


def _nested_text(levels: int) -> bytes:
    """``_nested(levels)``'s JSON, written without recursing (json.dumps would not go so deep)."""
    openings = [b"[" if level % 2 == 0 else b'{"x":' for level in range(levels)]
    closings = [b"]" if level % 2 == 0 else b"}" for level in reversed(range(levels))]
    return b"".join(openings) + b"1" + b"".join(closings)


@pytest.mark.parametrize("lax", [False, True], ids=["msgspec", "pydantic-core"])
def test_nesting_deeper_than_the_parser_goes_is_refused_naming_where(lax: bool) -> None:
    """10 000 levels, past the recursion of json.loads, get the nesting rejection of 65 levels
    (the limit and where the first level past it is), alone and in a batch: not "not JSON"."""
    payload = {**HEALTH, "checks": {"a": "#"}}
    if lax:
        payload["load_avg"] = "1.5"
    body = with_number(health_of(payload=payload), _nested_text(10_000).decode())
    rejection = decoded_alike(body)
    assert isinstance(rejection, Rejection)
    where = "payload.checks.a" + ".0.x" * ((structs.MAX_DEPTH - 3) // 2) + ".0"
    assert (rejection.reason, rejection.field) == (RejectReason.MALFORMED, where)
    assert rejection.detail.startswith(f"nested deeper than {structs.MAX_DEPTH} levels of")
    assert decode_envelopes([health_of(), body, health_of()])[1] == (1, rejection)
    with pytest.raises(ValueError, match=f"^{re.escape(where)}: nested deeper than 64 levels"):
        depth.check_depth(body)


def test_the_docs_give_the_nesting_limit_in_force() -> None:
    """docs/messages.md (generated) and docs/http-api.md name MAX_DEPTH as the limit."""
    docs = Path(bridge.__file__).parent.parent / "docs"
    for page in ("messages.md", "http-api.md"):
        text = " ".join((docs / page).read_text().split())
        assert f"more than {structs.MAX_DEPTH} levels" in text or (
            f"at most {structs.MAX_DEPTH} levels" in text
        ), page


# A length bound as docs/messages.md's envelope table words it: "8-128 characters", "at most 40
# characters".
_DOCUMENTED_BOUND = re.compile(r"(?:(\d+)-)?(\d+) characters")
# Each bounded envelope field: a value of it ``length`` characters long (a timestamp's fraction
# as long as it takes: Python reads any number of its digits).
_OF_LENGTH: dict[str, Any] = {
    "id": lambda length: "x" * length,
    "topic": lambda length: "a" * length,
    "node": lambda length: "n" * length,
    "ts": lambda length: "2026-11-28T00:00:00." + "1" * (length - 21) + "Z",
}


def test_the_docs_give_the_envelope_bounds_in_force() -> None:
    """Each length docs/messages.md gives an envelope field (id, topic, node, ts) is the one
    both decoders keep to: its shortest and longest taken, one character fewer or more refused
    naming the field; and ``EXESDB_NODE`` takes the longest node the envelope does."""
    docs = Path(bridge.__file__).parent.parent / "docs"
    rows: dict[str, str] = {}
    for line in (docs / "messages.md").read_text().splitlines():
        if line.startswith("| `"):
            rows.setdefault(line.split("`")[1], line)  # the envelope's table comes first
    for name, of_length in _OF_LENGTH.items():
        bound = _DOCUMENTED_BOUND.search(rows[name])
        assert bound is not None, rows[name]
        longest = int(bound.group(2))
        taken = [longest]
        refused = [longest + 1]
        if bound.group(1) is not None:
            taken.append(int(bound.group(1)))
            refused.append(int(bound.group(1)) - 1)
        for length in taken:
            body = health_of(**{name: of_length(length)})
            assert isinstance(decode_envelope(body), Envelope), (name, length)
            assert isinstance(decode_envelope_reference(body), Envelope), (name, length)
        for length in refused:
            body = health_of(**{name: of_length(length)})
            for decoded in (decode_envelope(body), decode_envelope_reference(body)):
                assert isinstance(decoded, Rejection), (name, length)
                assert decoded.field == name, (name, length)
        if name == "node":
            node = TypeAdapter(NodeName)
            assert node.validate_python(of_length(longest)) == of_length(longest)
            with pytest.raises(ValidationError):
                node.validate_python(of_length(longest + 1))


# Numbers no float holds: tokens json.loads takes but RFC 8259 does not, and numbers past a
# float's range (which parsers read as an infinity).
NOT_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e999", "1" + "0" * 400 + ".5"]


def with_number(body: bytes, text: str) -> bytes:
    """``body`` with the placeholder string ``"#"`` replaced by the JSON text ``text``."""
    assert body.count(b'"#"') == 1
    return body.replace(b'"#"', text.encode())


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


@pytest.mark.parametrize(
    "model", [m for m in CASES if "node" in m.__pydantic_fields__], ids=lambda m: m.TAG
)
def test_every_node_field_refuses_control_characters(model: type[Message]) -> None:
    """Each message type's ``node`` (a label value everywhere) refuses a NUL on both paths."""
    payload = {**CASES[model].full, "node": "a\x00b"}
    rejection = agreed(body_of(payload, model), payload, model)
    assert isinstance(rejection, Rejection)
    assert rejection.field == "payload.node"


# Names with a character that breaks their line or reorders what follows (refused), and with
# their neighbours in Unicode (taken): AlertAck's ack_by is shown as who acknowledged.
REFUSED_NAMES = [
    "\u202eadmin",  # right-to-left override
    "ops\u202a",
    "ops\u2066x\u2069",  # isolates
    "ops\u2068",
    "ops\u200e",
    "ops\u200f",
    "ops\u061cx",  # Arabic letter mark
    "ops\u2028ack_by: admin",
    "ops\u2029",
    "ops\x00",
    "ops\nack_by: admin",
    "ops\x7f",
    "ops\x85",
]
TAKEN_NAMES = ["ops", "Zoë", "名前", "ops\u061b", "ops\u200d", "ops\u2027", "ops\u202f",
               "ops\u2065", "ops\u206a", "ops\u00a0", "\u05e9\u05dc\u05d5\u05dd"]  # fmt: skip


@pytest.mark.parametrize("lax", [False, True], ids=["msgspec", "pydantic-core"])
@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
@pytest.mark.parametrize("name", REFUSED_NAMES + TAKEN_NAMES, ids=ascii)
def test_an_ack_by_with_a_separator_or_bidirectional_control_is_refused_either_way(
    name: str, ascii_only: bool, lax: bool
) -> None:
    """AlertAck's ack_by with a line or paragraph separator, a bidirectional control or a
    control character, written escaped or as raw UTF-8 (which is_clean lets through), in a
    complete and in a minimal payload, on the msgspec path or in a form only pydantic-core
    reads, is refused by every decoder and on a batch's path, invalid_payload naming the field
    and what it refuses; a name with the characters next to those is taken."""
    for base in (CASES[AlertAck].full, CASES[AlertAck].minimal):
        payload = {**base, "ack_by": name}
        if lax:
            payload["ack_timestamp"] = "2026-11-28T02:00:00.123+02:00"
        body = body_of(payload, AlertAck, ascii_only=ascii_only)
        result = agreed(body, payload, AlertAck)
        if name in TAKEN_NAMES:
            assert isinstance(result, Envelope)
            assert isinstance(result.payload, AlertAck)
            assert result.payload.ack_by == name
            continue
        assert isinstance(result, Rejection)
        assert (result.reason, result.field) == (RejectReason.INVALID_PAYLOAD, "payload.ack_by")
        assert "bidirectional control" in result.detail
        assert not re.search(
            r"[\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]", result.detail
        )
        good = body_of(base, AlertAck, ascii_only=ascii_only, id="01JDX0Y8C7H1V4N0W5Z3Q2M6TA")
        assert decode_envelopes([good, body])[1] == (1, result)
        assert decode_envelopes([good, body], good + b"\n" + body)[1] == (1, result)


@pytest.mark.parametrize("lax", [False, True], ids=["msgspec", "pydantic-core"])
@pytest.mark.parametrize("length", [200, 201])
def test_an_ack_by_over_200_characters_is_refused_either_way(length: int, lax: bool) -> None:
    """AlertAck's ack_by is at most 200 characters, as the admin API's: one longer is refused
    by every decoder, invalid_payload naming the field; one of 200 is taken."""
    payload = {**CASES[AlertAck].minimal, "ack_by": "x" * length}
    if lax:
        payload["ack_timestamp"] = "2026-11-28T02:00:00.123+02:00"
    result = agreed(body_of(payload, AlertAck), payload, AlertAck)
    if length <= 200:
        assert isinstance(result, Envelope)
        return
    assert isinstance(result, Rejection)
    assert (result.reason, result.field) == (RejectReason.INVALID_PAYLOAD, "payload.ack_by")
    assert "200 characters" in result.detail


@pytest.mark.parametrize("lax", [False, True], ids=["msgspec", "pydantic-core"])
@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
@pytest.mark.parametrize(
    "name",
    [
        *(" ", "   ", "\xa0", "\u3000", " \u2003\u205f\u1680\u202f ", " " * 200),
        *("\u2800", "\U000e0041\U000e0001", "\U0001d173\U0001bca0", "\u0301", " \u0301 "),
    ],
    ids=ascii,
)
def test_a_blank_ack_by_is_refused_either_way(name: str, ascii_only: bool, lax: bool) -> None:
    """AlertAck's ack_by of spaces or other Unicode whitespace only, or of characters drawn as
    nothing past the BMP, or of combining marks alone (shown as no one), escaped
    or raw, on the msgspec path or in a form only pydantic-core reads, is refused by every
    decoder and on a batch's path, invalid_payload naming the field and saying it is blank."""
    payload = {**CASES[AlertAck].minimal, "ack_by": name}
    if lax:
        payload["ack_timestamp"] = "2026-11-28T02:00:00.123+02:00"
    body = body_of(payload, AlertAck, ascii_only=ascii_only)
    result = agreed(body, payload, AlertAck)
    assert isinstance(result, Rejection)
    assert (result.reason, result.field) == (RejectReason.INVALID_PAYLOAD, "payload.ack_by")
    assert "must not be blank" in result.detail
    good = body_of(
        CASES[AlertAck].minimal, AlertAck, ascii_only=ascii_only, id="01JDX0Y8C7H1V4N0W5Z3Q2M6TA"
    )
    assert decode_envelopes([good, body])[1] == (1, result)
    assert decode_envelopes([good, body], good + b"\n" + body)[1] == (1, result)


def _shown_wrongly(name: str) -> bool:
    """Whether ``name`` holds a character that breaks its line or reorders what follows, by
    Unicode's own data: a control (Cc), a line or paragraph separator (Zl, Zp), an embedding,
    override or isolate, or one of the three directional marks (ALM, LRM, RLM); or is blank,
    whitespace or default ignorable characters only (U+200B), shown as no one."""
    return all(drawn_as_nothing(character) for character in name) or any(
        unicodedata.category(character) in ("Cc", "Zl", "Zp")
        or unicodedata.bidirectional(character) in _EXPLICIT
        or character in "\u061c\u200e\u200f"
        for character in name
    )


_EXPLICIT = frozenset({"LRE", "RLE", "PDF", "LRO", "RLO", "LRI", "RLI", "FSI", "PDI"})
_NEAR_BIDI = st.sampled_from(
    [chr(c) for c in (*range(0x2026, 0x2030), *range(0x2064, 0x206B), *range(0x200B, 0x2011))]
    + ["\u061b", "\u061c", "\u061d", "\x00", "\x1f", "\x7f", "\x85", "\x9f", "\xa0"]
    + [" ", "\u1680", "\u2003", "\u205f", "\u3000", "\ufeff"]
)


@settings(max_examples=300, deadline=None)
@given(
    name=st.text(st.characters(codec="utf-8") | _NEAR_BIDI, min_size=1, max_size=12),
    ascii_only=st.booleans(),
    full=st.booleans(),
)
def test_generated_ack_by_names_decode_the_same_and_as_unicode_says(
    name: str, ascii_only: bool, full: bool
) -> None:
    """Generated ack_by names, rich in the characters around the refused ones: the fast paths
    take exactly what the reference accepts, and that is a name Unicode's data says holds no
    control, separator or bidirectional control and is not whitespace or invisible only."""
    base = CASES[AlertAck].full if full else CASES[AlertAck].minimal
    payload = {**base, "ack_by": name}
    result = agreed(body_of(payload, AlertAck, ascii_only=ascii_only), payload, AlertAck)
    if _shown_wrongly(name):
        assert isinstance(result, Rejection)
        assert result.field == "payload.ack_by"
    else:
        assert isinstance(result, Envelope), result


def test_the_fast_path_is_taken_for_a_valid_envelope() -> None:
    """A well-formed envelope is decoded by the fast path (not by the fallback)."""
    assert isinstance(_decode_fast(health_of()), Envelope)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
_keys = st.sampled_from(["v", "id", "instance", "topic", "tag", "node", "ts", "payload"])
_payload_keys = st.sampled_from(
    ["status", "node", "checks", "load_avg", "memory_usage", "disk_usage", "timestamp", "x"]
)


@settings(max_examples=300, deadline=None)
@given(key=_keys, value=_json, payload_key=_payload_keys, payload_value=_json)
def test_random_field_values_decode_the_same_either_way(
    key: str, value: Any, payload_key: str, payload_value: Any
) -> None:
    """Arbitrary JSON in any envelope or payload field gives the reference's result."""
    decoded_alike(health_of(**{key: value}))
    decoded_alike(health_of(payload={**HEALTH, payload_key: payload_value}))


def test_decode_envelopes_stops_at_the_first_refused_line() -> None:
    """A batch decodes in order up to its first refused line, reported with its index."""
    good = health_of()
    envelopes, failure = decode_envelopes([good, good.replace(b'"v": 1', b'"v": 2'), b"{nope"])
    assert len(envelopes) == 1
    assert failure is not None
    assert failure[0] == 1
    assert failure[1] == decode_envelope_reference(good.replace(b'"v": 1', b'"v": 2'))


# JSON that both parsers read alike: no lone surrogates (hypothesis' text has none), no numbers
# beyond a float's range, which json.loads reads as infinity and pydantic-core refuses.
_plain_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
TIMESTAMP_FIELDS = frozenset(
    {"timestamp", "ack_timestamp", "first_seen", "last_seen", "last_check"}
)


def _odd_values(model: type[Message], name: str) -> st.SearchStrategy[Any]:
    """Null, the case table's other values for the field, a timestamp in any form, or any JSON."""
    case = CASES[model]
    odd: list[Any] = [None]
    for bad in (case.bad_type, case.bad_enum):
        if bad is not None and bad[0] == name:
            odd.append(bad[1])
    if name in case.minimal:
        odd.append(case.minimal[name])
    if model is AlertAck and name == "ack_by":
        odd.extend(REFUSED_NAMES)
    values = st.sampled_from(odd) | _plain_json
    if name in TIMESTAMP_FIELDS:
        values = values | st.sampled_from(TIMESTAMPS)
    return values


@st.composite
def _payloads(draw: st.DrawFn, model: type[Message]) -> dict[str, Any]:
    """A payload of ``model``: its required fields, some of the others, then up to two fields
    changed to odd values; now and then an unknown field or a required one left out."""
    case = CASES[model]
    optional = sorted(set(case.full) - set(case.minimal))
    kept = draw(st.sets(st.sampled_from(optional))) if optional else set()
    payload = {
        name: value for name, value in case.full.items() if name in case.minimal or name in kept
    }
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(sorted(case.full)))
        payload[name] = draw(_odd_values(model, name))
    mishap = draw(st.integers(0, 9))
    if mishap == 0:
        payload["surprise"] = 1
    elif mishap == 1:
        payload.pop(case.required, None)
    return payload


@pytest.mark.parametrize("model", list(CASES), ids=lambda m: m.TAG)
@settings(max_examples=60, deadline=None)
@given(data=st.data(), ascii_only=st.booleans())
def test_generated_payloads_of_every_type_decode_the_same_on_the_fast_path(
    model: type[Message], data: st.DataObject, ascii_only: bool
) -> None:
    """Generated payloads of each type, written with escapes or as raw UTF-8: the fast paths
    take exactly what the reference accepts."""
    payload = data.draw(_payloads(model))
    result = agreed(body_of(payload, model, ascii_only=ascii_only), payload, model)
    if isinstance(result, Rejection):
        assert result.field is not None


def _compact(bodies: list[bytes]) -> list[bytes]:
    """``bodies`` as compact JSON, each with an id of its own."""
    out = []
    for number, body in enumerate(bodies):
        data = json.loads(body)
        data["id"] = f"{data['tag'][:20]}{number:08d}"
        out.append(json.dumps(data, separators=(",", ":")).encode())
    return out


@pytest.mark.parametrize("escapes", [False, True], ids=["no-escapes", "escapes"])
def test_a_batch_of_valid_envelopes_is_taken_at_once(
    escapes: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of valid envelopes passes the key count at once: every type's complete and
    minimal payloads (nested maps and lists of strings among them), their quotes counted when
    no string holds an escape; else, compact, the keys' closing quotes. No body is decoded
    alone."""
    if escapes:
        nodes = ['a"quoted"node', "back\\slash", 'x"y']
        bodies = _compact([health_of(node=node) for node in nodes])
        assert all(b"\\" in body for body in bodies)
    else:
        payloads = [(m, p) for m, case in CASES.items() for p in (case.full, case.minimal)]
        bodies = _compact([body_of(payload, model) for model, payload in payloads])
        assert b"\\" not in b"".join(bodies)

    def alone(*args: Any) -> Any:
        raise AssertionError("a body was decoded alone")

    monkeypatch.setattr(decoding_module, "_decode_each", alone)
    envelopes, failure = decode_envelopes(bodies)
    assert failure is None
    assert len(envelopes) == len(bodies)


@pytest.mark.parametrize("model", [m for m in CASES if m.DERIVED] + [AlertAck], ids=lambda m: m.TAG)
def test_a_decoded_message_s_fields_set_is_not_changed_by_another_s(model: type[Message]) -> None:
    """Decoded messages of one type and shape may share their (never written) set of fields
    set: filling one's derived fields, or ``model_copy`` with an update, leaves the others'
    as the reference decodes it."""
    full, minimal = CASES[model].full, CASES[model].minimal
    for payload in (minimal, full, minimal, full):  # each shape after the other
        bodies = [body_of(payload, model, id=f"message{n:04d}") for n in range(2)]
        envelopes, failure = decode_envelopes(bodies)
        assert failure is None
        expected = decode_envelope_reference(bodies[0])
        assert isinstance(expected, Envelope)
        first, second = (envelope.payload for envelope in envelopes)
        changed = first.model_copy(update={"node": "elsewhere"})
        assert changed.model_fields_set == expected.payload.model_fields_set | {"node"}
        assert first.model_fields_set == expected.payload.model_fields_set
        assert second.model_fields_set == expected.payload.model_fields_set


def _writers() -> dict[str, list[bytes]]:
    """Batches as other writers write them: Python's json.dumps defaults (spaces after the
    separators, ``\\u00b5`` for µ), Go's encoding/json (compact, ``\\u003c`` for <), a log
    line quoting JSON (``\\":``), a newline in a message, an emoji (a surrogate pair), and
    payload timestamps with microseconds or an offset."""
    entry = CASES[LogEntry].full
    lines = {
        "python": [
            json.dumps(
                {
                    **json.loads(body_of({**entry, "message": "took 5 µs"}, LogEntry)),
                    "id": f"py{n:06d}",
                }
            ).encode()
            for n in range(3)
        ],
        "go": [
            json.dumps(
                {**json.loads(body_of(entry, LogEntry)), "id": f"golang{n:04d}"},
                separators=(",", ":"),
            )
            .replace("<", "\\u003c")
            .encode()
            for n in range(3)
        ],
    }
    messages = {
        "quoted-json": 'sent {"id": "x", "ok": true} to {"a":1}',
        "newline": "line one\nline two",
        "unicode": "took 5 µs ✓ 😀",
    }
    for name, message in messages.items():
        lines[name] = [
            body_of({**entry, "message": message}, LogEntry, id=f"{name[:8]}{n:04d}")
            for n in range(3)
        ]
    for name, stamp in {"micro": "2026-11-28T00:00:00.123456Z", "offset": "+00:00"}.items():
        text = stamp if name == "micro" else "2026-11-28T01:00:00.123456" + stamp
        lines[name] = [
            body_of({**entry, "timestamp": text}, LogEntry, id=f"{name}{n:04d}") for n in range(3)
        ]
    return lines


@pytest.mark.parametrize(("writer", "lines"), list(_writers().items()), ids=list(_writers()))
def test_a_batch_with_escapes_in_its_values_is_taken_at_once(
    writer: str, lines: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches as other writers write them (escapes in string values, spaces, JSON quoted in
    a message, payload timestamps in other RFC 3339 forms) decode on the msgspec path at once,
    cut from their body or not, as each line alone does by the reference."""
    expected = [decode_envelope_reference(line) for line in lines]
    assert all(isinstance(envelope, Envelope) for envelope in expected)
    whole = b"\n".join(lines) + b"\n"
    if writer != "newline":
        assert structs.is_clean(whole)

    def alone(*args: Any) -> Any:
        raise AssertionError("a body was decoded alone")

    monkeypatch.setattr(decoding_module, "_decode_each", alone)
    assert decode_envelopes(lines, whole) == decode_envelopes(lines) == (expected, None)


@pytest.mark.parametrize("spaced", [False, True], ids=["compact", "spaced"])
@pytest.mark.parametrize(
    ("key", "field"),
    [('"i\\u0064"', "id"), ('"\\u0069d"', "id"), ('"tag"', "tag")],
    ids=["escaped-id", "escaped-first", "plain"],
)
@pytest.mark.parametrize("where", ["envelope", "payload"])
def test_a_key_given_twice_escaped_in_a_batch_with_escapes_is_refused_at_its_line(
    key: str, field: str, where: str, spaced: bool
) -> None:
    """A key given twice, once written with an escape (``"i\\u0064"`` is ``"id"``), in a batch
    whose other lines hold escapes in their values (µ as ``\\u00b5``, quoted JSON), is refused
    at its line as alone, naming the key: the quotes are counted, the escaped ones aside."""
    entry = {**CASES[LogEntry].full, "message": 'took 5 µs: {"a": 1}'}
    good = [body_of(entry, LogEntry, id=f"message{n:04d}") for n in range(3)]
    if where == "envelope":
        value = '"log_entry"' if field == "tag" else '"01JDX0Y8C7H1V4N0W5Z3Q2M6TB"'
        repeated = good[1][:-1] + f", {key}: {value}}}".encode()
        expected_field = field
    else:  # in the payload's metadata (a map: any key is taken), after its plain spelling
        plain = json.dumps(json.loads(key))
        repeated = good[1].replace(
            b'"metadata": {', f'"metadata": {{{plain}: "0", {key}: "1", '.encode()
        )
        expected_field = f"payload.metadata.{field}"
    if not spaced:
        repeated = repeated.replace(b'": ', b'":').replace(b", ", b",")
    rejection = decode_envelope_reference(repeated)
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.field) == (RejectReason.MALFORMED, expected_field)
    lines = [good[0], repeated, good[2]]
    whole = b"\n".join(lines)
    assert decode_envelopes(lines, whole) == decode_envelopes(lines)
    assert decode_envelopes(lines, whole) == ([decode_envelope_reference(good[0])], (1, rejection))
    assert decode_envelope(repeated) == rejection


@pytest.mark.parametrize("fault", ["escaped-key-twice", "control-in-label", "none"])
@pytest.mark.parametrize("escapes", ["few", "many"])
def test_escapes_anywhere_in_a_long_batch_are_read_as_each_line_alone(
    escapes: str, fault: str
) -> None:
    """In a batch of 60 lines written as json.dumps writes them (µ as ``\\u00b5``, quoted JSON,
    newlines in free text), with a few escapes or with dozens in every line, a key given twice
    (once escaped) or a control character in a label near the end is refused at its line as
    alone, and a batch without either is taken whole: as the reference decodes each line."""
    per_line = 1 if escapes == "few" else 40
    message = 'took 5 µs: {"a": "b"}\n' * per_line
    lines = [
        body_of({**CASES[LogEntry].full,
                 "message": message if n % 30 == 0 or per_line > 1 else "x"},
                LogEntry, id=f"message{n:04d}")
        for n in range(60)
    ]  # fmt: skip
    if fault == "escaped-key-twice":
        lines[55] = lines[55][:-1] + b', "i\\u0064": "01JDX0Y8C7H1V4N0W5Z3Q2M6TB"}'
    elif fault == "control-in-label":
        lines[55] = body_of({**CASES[LogEntry].full, "node": "a\u0007b"}, LogEntry)
    expected_lines = [decode_envelope_reference(line) for line in lines]
    refused = [(n, e) for n, e in enumerate(expected_lines) if isinstance(e, Rejection)]
    expected = (expected_lines[:55], refused[0]) if refused else (expected_lines, None)
    assert len(refused) == (fault != "none")
    whole = b"\n".join(lines) + b"\n"
    assert decode_envelopes(lines, whole) == decode_envelopes(lines) == expected


def test_a_long_run_of_backslashes_before_a_quote_is_counted_in_linear_time() -> None:
    """A value of 40 000 backslashes escaped and then a quote (an 80 kB envelope) is decoded
    in well under a second: each run of backslashes is read once (counted once per run length,
    it took some 13 s of CPU, the event loop held)."""
    line = health_of(payload={**HEALTH, "checks": {"disk": "\\" * 40_000 + '"'}})
    started = time.process_time()
    decoded = decode_envelopes([line], line)
    assert time.process_time() - started < 1.0
    assert decoded == ([decode_envelope_reference(line)], None)


def test_one_odd_line_is_the_only_one_decoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """In a batch of 40, a line only the pydantic-core path takes (a payload timestamp without
    its offset) and one with a key given twice are the only ones decoded again; the rest
    are decoded once, by msgspec, and all is as each line alone decodes it."""
    lines = [health_of(id=f"id{n:08d}") for n in range(40)]
    lines[7] = health_of(id="id00000007", payload={**HEALTH, "timestamp": "2026-11-28T00:00:00"})
    lines[30] = lines[30][:-1] + b', "node": "other@host"}'
    expected = ([decode_envelope(line) for line in lines[:30]], (30, decode_envelope(lines[30])))
    again: list[bytes] = []
    for name in ("_decode_unchecked", "decode_envelope_reference"):
        decoder = getattr(decoding_module, name)

        def counted(body: bytes, decoder: Any = decoder) -> Any:
            again.append(body)
            return decoder(body)

        monkeypatch.setattr(decoding_module, name, counted)
    decoded: list[bytes] = []

    class Counted:
        def __init__(self, decoder: Any) -> None:
            self.wrapped = decoder

        def decode(self, body: bytes) -> Any:
            decoded.append(body)
            return self.wrapped.decode(body)

    for name in ("CLEAN", "CHECKED"):
        decoder, builders = getattr(structs, name)
        monkeypatch.setattr(structs, name, (Counted(decoder), builders))
    assert decode_envelopes(lines, b"\n".join(lines)) == expected
    assert again == [lines[7], lines[30]]
    assert decoded == lines


def test_a_batch_as_json_dumps_writes_it_is_decoded_once_a_line_by_msgspec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch as Python's json.dumps writes it by default (spaces, µ as ``\\u00b5``, a newline
    escaped in some lines' free text, isoformat() timestamps) is decoded once a line, by
    msgspec: the lines holding the newline by the decoder checking the label patterns, the
    others by the clean one, none by the other paths; as each line alone decodes it."""
    stamp = "2026-11-28T00:00:00.123456+00:00"
    lines = [
        json.dumps(
            {
                **ENVELOPE,
                "id": f"id{n:08d}",
                "ts": stamp,
                "payload": {**HEALTH, "timestamp": stamp, "checks": {"disk": text}},
            }
        ).encode()
        for n, text in enumerate("ok\nlast run fine" if n % 8 == 3 else "5 µs" for n in range(40))
    ]
    expected = ([decode_envelope_reference(line) for line in lines], None)
    again: list[bytes] = []
    for name in ("_decode_unchecked", "decode_envelope_reference"):
        decoder = getattr(decoding_module, name)

        def counted(body: bytes, decoder: Any = decoder) -> Any:
            again.append(body)
            return decoder(body)

        monkeypatch.setattr(decoding_module, name, counted)
    decoded: dict[str, list[bytes]] = {"CLEAN": [], "CHECKED": []}

    class Counted:
        def __init__(self, decoder: Any, name: str) -> None:
            self.wrapped, self.name = decoder, name

        def decode(self, body: bytes) -> Any:
            decoded[self.name].append(body)
            return self.wrapped.decode(body)

    for name in ("CLEAN", "CHECKED"):
        decoder, builders = getattr(structs, name)
        monkeypatch.setattr(structs, name, (Counted(decoder, name), builders))
    assert decode_envelopes(lines, b"\n".join(lines) + b"\n") == expected
    assert again == []
    assert decoded["CHECKED"] == [line for line in lines if b"\\n" in line]
    assert decoded["CLEAN"] == [line for line in lines if b"\\n" not in line]


@pytest.mark.parametrize("control", ["\n", "\x85", "\x7f", "\x1b"], ids=repr)
@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
def test_a_control_character_in_a_label_is_refused_in_a_batch_with_escapes_elsewhere(
    control: str, ascii_only: bool
) -> None:
    """In a batch whose other lines hold escapes (a newline in a log message, µ), a control
    character in a label value (escaped or raw) is refused at its line, naming the field; the
    lines around it, whose controls are in free text, are taken."""
    entry = CASES[LogEntry].full
    free = body_of({**entry, "message": f"a{control}b µs"}, LogEntry, ascii_only=ascii_only)
    label = body_of({**entry, "node": f"a{control}b"}, LogEntry, ascii_only=ascii_only)
    lines = [free, label, free]
    rejection = decode_envelope_reference(label)
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.field) == (RejectReason.INVALID_PAYLOAD, "payload.node")
    expected = ([decode_envelope_reference(free)], (1, rejection))
    assert decode_envelopes(lines, b"\n".join(lines)) == decode_envelopes(lines) == expected
    assert decode_envelopes([free, free], b"\n".join([free, free]))[1] is None


@pytest.mark.parametrize(
    ("model", "payload"),
    [
        (
            ClusterMembership,
            {
                "event": "node_added",
                "affected_nodes": [1] * 1_000,
                "active_nodes": ["a"],
                "originating_node": "a",
            },
        ),
        (LogSummary, {"time_period": "1h", "log_counts": {f"k{n}": 1 for n in range(1_000)}}),
    ],
)
def test_the_wire_schema_stops_at_the_first_wrong_item_of_a_list_or_object(
    model: type[Message], payload: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pydantic-core path's payload schema refuses a list (or object) of 1 000 wrong items
    at its first (one error built, not 1 000: the path only asks whether a payload passes)."""
    schema = model.wire_schema()
    # As the decoder builds its validator: a complete model's own would be used instead.
    monkeypatch.setattr(model, "__pydantic_complete__", False)
    validator = SchemaValidator(schema)
    monkeypatch.undo()
    with pytest.raises(ValidationError) as raised:
        validator.validate_python(payload)
    assert raised.value.error_count() == 1


_MEMBERSHIP = {
    "event": "node_added",
    "affected_nodes": [f"n{n}" for n in range(1_000)],
    "active_nodes": ["a"],
    "originating_node": "a",
}
# A form only the models' lax rules take (a count as a string): the pydantic-core path's.
_LAX = {**_MEMBERSHIP, "total_nodes": "1"}


@pytest.mark.parametrize(
    ("payload", "edit"),
    [
        (_MEMBERSHIP, lambda body: body.replace(b'"v": 1', b'"v": 1.0')),
        (_MEMBERSHIP, lambda body: body.replace(b'"v": 1', b'"v": 1e0')),
        (_MEMBERSHIP, lambda body: b"\xef\xbb\xbf" + body),
        (_LAX, lambda body: b"\xef\xbb\xbf" + body.replace(b'"v": 1', b'"v": 1.0')),
        (_LAX, lambda body: body.replace(b'"v": 1', b'"v": 1.0').decode()),
    ],
    ids=["v-1.0", "v-1e0", "byte-order-mark", "lax-mark-and-1.0", "lax-text-1.0"],
)  # fmt: skip
def test_valid_envelopes_the_parsers_once_read_differently_take_the_fast_path(
    payload: dict[str, Any], edit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A valid envelope whose ``v`` is written as a float (``1.0``, ``1e0``) or which opens
    with a UTF-8 byte order mark, on the msgspec path or in a form only pydantic-core's takes,
    is taken by the fast paths, alone and in a batch, and builds the reference's Envelope: the
    reference decoder, which checks a long list twice, is not asked."""
    body = edit(body_of(payload, ClusterMembership))
    fast = agreed(body if isinstance(body, bytes) else body.encode(), payload, ClusterMembership)
    assert isinstance(fast, Envelope)

    def refused(*args: Any, **options: Any) -> Any:
        raise AssertionError("the reference decoder was asked")

    monkeypatch.setattr(decoding_module, "decode_envelope_reference", refused)
    assert isinstance(decode_envelope(body), Envelope)
    if isinstance(body, bytes):
        plain = body_of(_MEMBERSHIP, ClusterMembership)
        envelopes, failure = decode_envelopes([plain, body], plain + b"\n" + body)
        assert failure is None
        assert len(envelopes) == 2


@pytest.mark.parametrize("where", ["envelope", "payload"])
def test_unknown_fields_cost_the_pydantic_core_path_no_error_each(where: str) -> None:
    """An envelope of 1 000 unknown fields, in its envelope or its payload, passes the
    pydantic-core path's validator as if they were not there (no error built for each, 71 000
    of them took 30 ms), its keys counted short of the body's: the reference refuses it as
    before, its first ten named and all 1 000 counted."""
    unknown = {f"x{n:04d}": n for n in range(1_000)}
    if where == "payload":
        body = health_of(payload={**HEALTH, **unknown})
        first = "payload.x0000"
    else:
        body = health_of(**unknown)
        first = "x0000"
    decoded = _decode_unchecked(body)
    assert decoded is not None, "the unknown fields were refused, an error built for each"
    assert decoded[1] == len(ENVELOPE) + 1 + len(HEALTH)
    assert _decode_fast(body) is None
    rejection = decode_envelope(body)
    assert rejection == decode_envelope_reference(body)
    assert isinstance(rejection, Rejection)
    assert rejection.field == first
    every = with_every_problem(body, rejection)
    assert [problem.field for problem in (every, *every.also)][:2] == [first, first[:-1] + "1"]
    assert len(every.also) == 9
    assert every.also_found == 999


def test_lists_of_strings_are_counted_by_their_length() -> None:
    """A payload's lists of strings (node names) hold no key: the msgspec path counts their
    items by the list's length rather than walk them as it walks a field that may hold objects,
    and 100 000 names holding quotes and colons decode as the reference decodes them, with a
    key given twice beside them refused as it refuses it."""
    assert structs.object_fields(ClusterMembership) == ()
    assert structs.object_fields(LogSummary) == ("log_counts", "top_errors")
    names = ['a"b', "::1", 'say "x": y', "\\", "µ"] * 20_000
    _names_agree_and_a_key_more_is_refused(_MEMBERSHIP, names)


@pytest.mark.parametrize("version", [b"1.0", b"1e0", b"10E-1", b"1.0000000000000001"])
def test_a_version_written_as_a_float_is_taken_by_the_msgspec_path(version: bytes) -> None:
    """``v`` written as a float equal to 1 is taken by the msgspec path itself, with either
    decoder, and builds the reference's Envelope."""
    body = body_of(_MEMBERSHIP, ClusterMembership).replace(b'"v": 1', b'"v": ' + version)
    taken = msgspec_paths(body)
    assert len(taken) == 2
    assert all(isinstance(envelope, Envelope) for envelope in taken)
    agreed(body, _MEMBERSHIP, ClusterMembership)


# A NodeHealth in a form only the models' lax rules take (its load as a string): the
# pydantic-core path's, whose key count a string opening with a colon once took one further.
_LAX_HEALTH = {**HEALTH, "load_avg": "1.5"}


def _never_asked(*args: Any, **options: Any) -> Any:
    raise AssertionError("the reference decoder was asked")


@pytest.mark.parametrize("style", ["compact", "spaced", "tabs"])
@pytest.mark.parametrize(
    "changes",
    [
        {"node": "::1"},
        {"payload": {**_LAX_HEALTH, "node": ":x"}},
        {"payload": {**_LAX_HEALTH, "checks": {":x": "up", "::": ":", "a": ":"}}},
        {"payload": {**_LAX_HEALTH, "checks": {"a": " :x", "b": "  :", "c": ", :"}}},
        {"payload": {**_LAX_HEALTH, "checks": {"a": 'say "x" : y', 'b "c"': ':"', "d": "\\"}}},
        {"payload": {**_LAX_HEALTH, "checks": {"a": 'say "x": y', "b": '{"c":":"}'}}},
    ],
    ids=["node", "payload-node", "colon-keys", "spaced-colons", "escaped-spaced", "escaped"],
)
def test_lax_envelopes_with_strings_opening_with_a_colon_take_the_fast_path(
    changes: dict[str, Any], style: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A valid envelope in a lax form holding strings (keys or values) that open with a colon,
    or an escaped quote and whitespace before a colon, as bytes or text, is taken by the fast
    paths, alone and in a batch, and builds the reference's Envelope: the reference decoder is
    not asked."""
    data = {**ENVELOPE, "payload": _LAX_HEALTH, **changes}
    text = pairs_json(data, SEPARATORS[style])
    body = text.encode()
    assert isinstance(agreed(body, data["payload"], NodeHealth), Envelope)
    monkeypatch.setattr(decoding_module, "decode_envelope_reference", _never_asked)
    assert isinstance(decode_envelope(body), Envelope)
    assert isinstance(decode_envelope(text), Envelope)
    plain = health_of()
    envelopes, failure = decode_envelopes([plain, body], plain + b"\n" + body)
    assert failure is None
    assert len(envelopes) == 2


_COLONS = [("status", "healthy"), ("load_avg", "1.5"), ("node", "::1"), ("checks", [(":x", ":")])]


@pytest.mark.parametrize("style", ["compact", "spaced", "tabs"])
@pytest.mark.parametrize(
    ("pairs", "field"),
    [
        ([*ENVELOPE.items(), ("payload", _COLONS), ("node", "::1")], "node"),
        ([*ENVELOPE.items(), ("payload", [*_COLONS, ("status", ":")])], "payload.status"),
        ([*ENVELOPE.items(), ("payload", [*_COLONS[:3], ("checks", [(":x", ":"), (":x", ":")])])],
         "payload.checks.:x"),
        ([*ENVELOPE.items(), ("payload", _COLONS), (":x", ":")], ":x"),
        ([*ENVELOPE.items(), ("payload", [*_COLONS, (":x", ":")])], "payload.:x"),
    ],
    ids=["envelope-twice", "payload-twice", "nested-twice", "unknown", "unknown-in-payload"],
)  # fmt: skip
def test_a_key_given_twice_or_unknown_beside_colon_strings_is_refused_either_way(
    pairs: list[tuple[str, Any]], field: str, style: str
) -> None:
    """A lax envelope holding strings that open with a colon, and a key given twice or one no
    field has, is left by the fast paths to the reference, which refuses it naming the key,
    alone and in a batch."""
    body = pairs_json(pairs, SEPARATORS[style]).encode()
    assert _decode_fast(body) is None
    rejection = decoded_alike(body)
    assert isinstance(rejection, Rejection)
    assert rejection.field == field
    envelopes, failure = decode_envelopes([health_of(), body])
    assert len(envelopes) == 1
    assert failure == (1, rejection)


def _names_agree_and_a_key_more_is_refused(base: dict[str, Any], names: list[str]) -> bytes:
    """A ClusterMembership body of ``base`` listing ``names``, decoded as the reference
    decodes it, and refused naming the key given twice when ``event`` is added again: the
    body."""
    payload = {**base, "affected_nodes": names}
    body = body_of(payload, ClusterMembership)
    assert isinstance(agreed(body, payload, ClusterMembership), Envelope)
    twice = decoded_alike(body[:-2] + b', "event": "node_removed"}}')
    assert isinstance(twice, Rejection)
    assert twice.field == "payload.event"
    return body


def test_many_names_opening_with_a_colon_in_a_lax_body_take_the_fast_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """100 000 node names opening with a colon (or holding quotes before one) in a lax
    envelope are taken by the fast paths without the reference decoder; one key more beside
    them is refused as the reference refuses it."""
    names = ["::1", ':"a":', ' :"', "\\:"] * 25_000
    body = _names_agree_and_a_key_more_is_refused(_LAX, names)
    monkeypatch.setattr(decoding_module, "decode_envelope_reference", _never_asked)
    assert isinstance(decode_envelope(body), Envelope)


def test_unknown_fields_beside_a_string_opening_with_a_colon_are_not_counted_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lax envelope of 1 000 unknown payload fields beside a ``::1`` is refused as the
    reference refuses it, its keys not counted again: the strings that may open with a colon
    are fewer than the keys counted over."""
    unknown = {f"x{n:04d}": n for n in range(1_000)}
    body = health_of(node="::1", payload={**_LAX_HEALTH, **unknown})

    def counted_again(*args: Any) -> Any:
        raise AssertionError("the keys were counted again")

    monkeypatch.setattr(decoding_module, "_keys_in", counted_again)
    assert _decode_fast(body) is None
    rejection = decode_envelope(body)
    assert rejection == decode_envelope_reference(body)
    assert isinstance(rejection, Rejection)
    assert rejection.field == "payload.x0000"


# Texts made of what a key count could misread: colons, quotes, backslashes, whitespace and
# the characters an opening quote follows.
_COLON_TEXTS = st.text(alphabet=':" \\,[{}]\t\nab', max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    node=st.one_of(st.just("::1"), _COLON_TEXTS),
    checks=st.lists(st.tuples(_COLON_TEXTS, _COLON_TEXTS), max_size=5),
    extra=st.lists(st.tuples(st.sampled_from(["status", "node", "checks", ":x"]), _COLON_TEXTS),
                   max_size=1),
    style=st.sampled_from(list(SEPARATORS)),
)  # fmt: skip
def test_lax_bodies_of_colons_quotes_and_keys_given_twice_decode_as_the_reference_does(
    node: str, checks: list[tuple[str, str]], extra: list[tuple[str, str]], style: str
) -> None:
    """A lax envelope whose node and checks are drawn from colons, quotes, backslashes and
    whitespace, a check or a payload key now and then given twice or unknown, is taken by the
    fast paths exactly when the reference takes it, as bytes and as text, with its result."""
    payload = [("status", "healthy"), ("load_avg", "1.5"), ("checks", checks), *extra]
    envelope = [*ENVELOPE.items(), ("payload", payload)]
    text = pairs_json([(k, node if k == "node" else v) for k, v in envelope], SEPARATORS[style])
    agreed(text.encode(), dict(payload), NodeHealth)
    decoded_alike(text)
