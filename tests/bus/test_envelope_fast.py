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
import re
import sys
from pathlib import Path
from types import FrameType
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bridge
from bridge.bus import Envelope, structs
from bridge.bus.batch_scans import is_clean
from bridge.bus.decoding import _decode_fast, decode_envelopes
from bridge.bus.problems import decode_envelope_reference
from bridge.messages import AlertAck, ClusterHealth, Message
from tests.bus.envelope_helpers import (
    HEALTH,
    NODE,
    agreed,
    body_of,
    decoded_alike,
    health_of,
    msgspec_paths,
)
from tests.messages.helpers import CASES

BRIDGE = str(Path(bridge.__file__).parent)


DECODERS = {
    str(Path(bridge.__file__).parent / "bus" / name)
    for name in (
        *("envelope.py", "decoding.py", "problems.py", "structs.py", "struct_fields.py"),
        *("struct_patterns.py", "builders.py", "instants.py", "payload_walks.py", "batch_scans.py"),
    )
}


@pytest.mark.parametrize("model", list(CASES), ids=lambda m: m.TAG)
def test_full_payloads_take_the_fast_path_and_build_the_reference_envelope(
    model: type[Message],
) -> None:
    """Every message type with every field set decodes on the fast path to the same Envelope."""
    body = body_of(CASES[model].full, model)
    assert _decode_fast(body) is not None
    assert isinstance(decoded_alike(body), Envelope)


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
        assert len(taken) == (2 if is_clean(body) else 1)
        agreed(body, payload, model)


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_clean_bytes_hold_no_string_with_a_control_character(text: str) -> None:
    """Where is_clean lets the decoder leave the label patterns out, no string can hold a
    control character, however it is written."""
    for ascii_only in (True, False):
        body = json.dumps({"node": text}, ensure_ascii=ascii_only).encode()
        if is_clean(body):
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
