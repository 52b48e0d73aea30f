"""What the tests of the fast envelope decoders share: an envelope's body for a payload of each
message type, and the checks that the fast paths and the reference decoder agree."""

from __future__ import annotations

import json
from typing import Any

from bridge.bus import Envelope, Rejection, decode_envelope
from bridge.bus.batch_scans import is_clean
from bridge.bus.decoding import _decode_fast, _decode_structs, _named_once
from bridge.bus.problems import decode_envelope_reference
from bridge.messages import Message

TS = "2026-11-28T00:00:00.123Z"


NODE = "node1@host"


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
    if isinstance(body, bytes) and is_clean(body):
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
    "2026-11-28T00:00",
    "2026-11-28T00:00Z",
    "2026-11-28T00:00:00",
    "2026-11-28 00:00:00.123456789+02:00",
    "0",
    "1764288000",
    "1764288000123",
    "+02:00",
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
    0,
    True,
    "not a time",
]


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


def health_of(**changes: Any) -> bytes:
    """A NodeHealth envelope's JSON (ENVELOPE's fields, then the payload), ``changes`` made."""
    data: dict[str, Any] = {**ENVELOPE, "payload": HEALTH}
    data.update(changes)
    return json.dumps(data, ensure_ascii=False).encode()


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


def with_number(body: bytes, text: str) -> bytes:
    """``body`` with the placeholder string ``"#"`` replaced by the JSON text ``text``."""
    assert body.count(b'"#"') == 1
    return body.replace(b'"#"', text.encode())


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


TIMESTAMP_FIELDS = frozenset(
    {"timestamp", "ack_timestamp", "first_seen", "last_seen", "last_check"}
)
