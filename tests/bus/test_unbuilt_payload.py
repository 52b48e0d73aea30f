"""A decoded envelope's payload, built when first read: what ``payload`` and ``fields`` give.

The fast decoder leaves the message model unbuilt (the values in its Struct, which hot sinks read
through ``Envelope.fields``); whoever reads ``payload`` gets the very model the reference
decoder builds, once, whatever happened to the envelope before.
"""

from __future__ import annotations

import copy
import json
import pickle
import types
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from bridge.bus import Envelope, decode_envelope
from bridge.bus.decoding import decode_envelopes
from bridge.bus.problems import decode_envelope_reference
from bridge.bus.structs import PAYLOADS
from bridge.messages import (
    ClusterHealth,
    LogEntry,
    Message,
    NodeHealth,
    ResourceUsage,
    ThroughputMetric,
)
from tests.messages.helpers import CASES

TS = "2026-11-28T00:00:00.123Z"
NODE = "node1@host"


def _body(model: type[Message], payload: dict[str, Any], number: int = 0) -> bytes:
    return json.dumps(
        {
            "v": 1,
            "id": f"message{number:04d}",
            "instance": model.INSTANCE,
            "topic": "some:topic",
            "tag": model.TAG,
            "node": NODE,
            "ts": TS,
            "payload": payload,
        },
        separators=(",", ":"),
    ).encode()


def _decoded(model: type[Message], payload: dict[str, Any]) -> tuple[Envelope, Envelope]:
    """``payload`` decoded in a batch (the fast path), and by the reference decoder."""
    body = _body(model, payload)
    (envelope,), failure = decode_envelopes([body])
    assert failure is None
    reference = decode_envelope_reference(body)
    assert isinstance(reference, Envelope)
    return envelope, reference


def _unbuilt(envelope: Envelope) -> bool:
    return not isinstance(envelope.fields, Message)


@pytest.mark.parametrize("model", [m for m in CASES if m is not ClusterHealth], ids=lambda m: m.TAG)
def test_a_decoded_payload_is_built_on_its_first_read_and_kept(model: type[Message]) -> None:
    """Decoded on the fast path, a payload is not built until ``payload`` is read; then it is
    the reference's model (its fields set too), and the same object at every later read."""
    envelope, reference = _decoded(model, CASES[model].full)
    assert _unbuilt(envelope)
    payload = envelope.payload
    assert type(payload) is model
    assert payload == reference.payload
    assert payload.model_fields_set == reference.payload.model_fields_set
    assert envelope.payload is payload
    assert envelope.fields is payload


def test_a_minimal_payload_built_late_keeps_the_defaults_of_its_decoding() -> None:
    """Defaults are filled as the message is decoded (its timestamp is when it was decoded, not
    when first read), derived ones too; the fields set is the reference's (no timestamp)."""
    envelope, reference = _decoded(ThroughputMetric, CASES[ThroughputMetric].minimal)
    expected = reference.payload
    assert isinstance(expected, ThroughputMetric)
    decoded_at = envelope.fields.timestamp
    assert isinstance(decoded_at, datetime)
    assert envelope.fields.rate_per_sec == expected.rate_per_sec
    assert envelope.payload.timestamp is decoded_at
    assert envelope.payload.model_fields_set == reference.payload.model_fields_set
    assert "timestamp" not in envelope.payload.model_fields_set


def test_a_given_payload_is_its_envelope_s_fields() -> None:
    """An envelope built with its payload reads its fields from the payload itself."""
    payload = NodeHealth(status="healthy", node=NODE)
    ts = datetime(2026, 11, 28, tzinfo=UTC)
    envelope = Envelope("message0001", payload.INSTANCE, "t", payload.TAG, NODE, ts, payload)
    assert envelope.payload is payload
    assert envelope.fields is payload


def test_a_model_with_a_cross_field_rule_is_built_as_it_is_decoded() -> None:
    """A ClusterHealth is judged by its model's own rule, so the decoder builds it at once."""
    envelope, reference = _decoded(ClusterHealth, CASES[ClusterHealth].full)
    assert isinstance(envelope.fields, ClusterHealth)
    assert envelope.payload is envelope.fields
    assert envelope == reference


def test_an_unbuilt_envelope_compares_hashes_and_is_sent_on_as_the_reference() -> None:
    """Equality, hash and the wire form of an envelope whose payload is not built yet are the
    reference envelope's."""
    envelope, reference = _decoded(ResourceUsage, CASES[ResourceUsage].full)
    assert _unbuilt(envelope)
    assert hash(envelope) == hash(reference)
    envelope, reference = _decoded(NodeHealth, CASES[NodeHealth].full)
    assert _unbuilt(envelope)
    assert envelope == reference
    envelope, reference = _decoded(NodeHealth, CASES[NodeHealth].full)
    assert _unbuilt(envelope)
    assert envelope.to_bytes() == reference.to_bytes()


def test_a_payload_replaced_on_an_unbuilt_envelope_is_the_one_read() -> None:
    """``msgspec.structs.replace`` with another payload gives that payload, to ``payload`` and
    ``fields`` alike; the envelope it was made from still builds its own."""
    envelope, reference = _decoded(NodeHealth, CASES[NodeHealth].full)
    other = LogEntry(level="info", message="m", module="x", node=NODE)
    replaced = msgspec.structs.replace(envelope, payload=other)
    assert replaced.payload is other
    assert replaced.fields is other
    assert envelope.payload == reference.payload


def test_copies_of_an_unbuilt_envelope_each_build_the_same_payload() -> None:
    """An unbuilt envelope copied (``restamped``, or replaced in another field) builds in each
    copy a payload equal to the reference's, whichever is read first."""
    envelope, reference = _decoded(NodeHealth, CASES[NodeHealth].full)
    copy = envelope.restamped(datetime(2026, 11, 28, 1, tzinfo=UTC))
    other = msgspec.structs.replace(envelope, topic="elsewhere")
    assert copy.payload == reference.payload
    assert envelope.payload == reference.payload
    assert other.payload == reference.payload
    assert copy.payload is not envelope.payload


def test_decode_envelope_alone_gives_a_payload_equal_to_the_reference() -> None:
    """``decode_envelope`` (one body) gives the same payload, built or not."""
    body = _body(NodeHealth, CASES[NodeHealth].full)
    decoded = decode_envelope(body)
    assert isinstance(decoded, Envelope)
    reference = decode_envelope_reference(body)
    assert isinstance(reference, Envelope)
    assert decoded.payload == reference.payload


def test_an_unbuilt_envelope_pickles_and_deep_copies_as_the_reference() -> None:
    """Pickled or deep-copied before its payload is read, a decoded envelope comes back equal to
    the reference, its payload the model (the Struct the decoder left is no module's to pickle).
    """
    envelope, reference = _decoded(NodeHealth, CASES[NodeHealth].full)
    assert _unbuilt(envelope)
    for copied in (pickle.loads(pickle.dumps(envelope)), copy.deepcopy(envelope)):
        assert copied == reference
        assert type(copied.fields) is NodeHealth
        assert copied.unix_ts == reference.unix_ts


def test_what_the_unbuilt_payload_takes_from_msgspec_still_holds() -> None:
    """What ``Envelope.payload`` relies on in msgspec, each said on its own so that an upgrade
    that changes one fails here by name rather than hands a subscriber a Struct: the decoder's
    payload Structs have msgspec's own metaclass (how a payload not built yet is told), the
    envelope's payload slot is a plain member descriptor (read as ``fields``, written past the
    frozen check when the model is built), and ``payload`` is the property over it."""
    for payload in PAYLOADS.values():
        for variant in (payload.clean, payload.checked):
            assert type(variant.struct) is type(msgspec.Struct), (payload.tag, msgspec.__version__)
    slot = Envelope.__dict__["fields"]
    assert type(slot) is types.MemberDescriptorType, msgspec.__version__
    assert isinstance(Envelope.__dict__["payload"], property)
    envelope, _ = _decoded(NodeHealth, CASES[NodeHealth].full)
    with pytest.raises(AttributeError):
        envelope.payload = envelope.payload  # type: ignore[misc]
    assert envelope.fields is envelope.payload
