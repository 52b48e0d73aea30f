"""Node names refuse zero-width characters, bidirectional controls and blank names on every
decoder; free text keeps those characters."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field, TypeAdapter, ValidationError

from bridge.bus import Envelope, Rejection, RejectReason, decode_envelope
from bridge.bus.batch_scans import is_clean, unclean
from bridge.bus.decoding import decode_envelopes
from bridge.bus.problems import decode_envelope_reference
from bridge.hidden import HIDDEN_CHARACTERS
from bridge.messages import (
    NODE_PATTERN,
    ClusterHealth,
    ClusterMembership,
    Message,
    NodeHealth,
    SystemAlert,
)
from tests.bus.envelope_helpers import assert_builds_the_reference, msgspec_paths

NODE = "node-1"
# What a node name may not hold beyond control characters: zero-width characters and Unicode's
# bidirectional controls.
INVISIBLE = [
    "\u200b",  # zero width space
    "\u200c",
    "\u200d",
    "\u200e",  # left-to-right mark
    "\u200f",
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",  # right-to-left override
    "\u2060",  # word joiner
    "\u2066",  # isolates
    "\u2067",
    "\u2068",
    "\u2069",
    "\ufeff",  # zero width no-break space (BOM)
    "\u061c",  # Arabic letter mark
]
# Their neighbours in Unicode, taken.
NEIGHBOURS = ["\u200a", "\u2010", "\u2029", "\u2061", "\u206a", "\ufefe", "\u061b", "é"]
GOOD_ID = "01JDX0Y8C7H1V4N0W5Z3Q2M6TA"

HEALTH: dict[str, Any] = {"status": "healthy", "timestamp": "2026-11-28T00:00:00.123Z"}
ALERT: dict[str, Any] = {
    "severity": "warning",
    "category": "system",
    "title": "t",
    "description": "d",
    "source": "tests",
    "timestamp": "2026-11-28T00:00:00.123Z",
}
CLUSTER: dict[str, Any] = {
    "status": "degraded",
    "healthy_nodes": 1,
    "total_nodes": 2,
    "timestamp": "2026-11-28T00:00:00.123Z",
}
MEMBERSHIP: dict[str, Any] = {
    "event": "node_added",
    "affected_nodes": ["n2"],
    "active_nodes": ["n1", "n2"],
    "timestamp": "2026-11-28T00:00:00.123Z",
}


def body(
    model: type[Message],
    payload: dict[str, Any],
    *,
    node: str = NODE,
    ascii_only: bool = True,
    message_id: str = "01JDX0Y8C7H1V4N0W5Z3Q2M6TB",
) -> bytes:
    """An envelope of ``model`` with ``payload`` from ``node``, each character outside ASCII
    escaped (``ascii_only``) or written raw in UTF-8."""
    data = {
        "v": 1,
        "id": message_id,
        "instance": model.INSTANCE,
        "topic": "some:topic",
        "tag": model.TAG,
        "node": node,
        "ts": "2026-11-28T00:00:00.123Z",
        "payload": payload,
    }
    return json.dumps(data, ensure_ascii=ascii_only).encode()


def refused_everywhere(envelope: bytes) -> Rejection:
    """The rejection every decoder gives ``envelope``: the fast one and the reference agree, the
    msgspec path alone takes it with neither of its decoders, and a batch refuses it at its line
    (judged on its own, and cut from the batch's bytes)."""
    fast, reference = decode_envelope(envelope), decode_envelope_reference(envelope)
    assert isinstance(fast, Rejection)
    assert fast == reference
    assert set(msgspec_paths(envelope)) == {None}
    good = body(NodeHealth, HEALTH, message_id=GOOD_ID)
    assert decode_envelopes([good, envelope])[1] == (1, fast)
    assert decode_envelopes([good, envelope], good + b"\n" + envelope)[1] == (1, fast)
    return fast


# Where a node name is: the envelope's node, a payload's, and those a payload lists.
PLACES = {
    "node": lambda name: body(NodeHealth, HEALTH, node=name),
    "payload.node": lambda name: body(NodeHealth, {**HEALTH, "node": name}),
    "payload.degraded_nodes.0": lambda name: body(
        ClusterHealth, {**CLUSTER, "degraded_nodes": [name]}
    ),
    "payload.active_nodes.1": lambda name: body(
        ClusterMembership, {**MEMBERSHIP, "active_nodes": ["n1", name]}
    ),
    "payload.originating_node": lambda name: body(
        ClusterMembership, {**MEMBERSHIP, "originating_node": name}
    ),
}


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("character", INVISIBLE, ids=ascii)
def test_a_node_name_with_a_zero_width_or_bidirectional_character_is_refused(
    character: str, place: str, ascii_only: bool
) -> None:
    """``node-1`` with a zero-width character or a bidirectional control after it, written
    escaped or raw, is refused wherever a node name is, by every decoder: the envelope's as
    malformed, a payload's as invalid_payload, naming the field and what it refuses."""
    name = NODE + character
    envelope = PLACES[place](name)
    if not ascii_only:
        envelope = envelope.replace(json.dumps(name).encode(), f'"{name}"'.encode())
        assert character.encode() in envelope
    rejection = refused_everywhere(envelope)
    reason = RejectReason.MALFORMED if place == "node" else RejectReason.INVALID_PAYLOAD
    assert (rejection.reason, rejection.field) == (reason, place)
    assert "zero-width character" in rejection.detail
    assert "bidirectional control" in rejection.detail
    assert not re.search(f"[{''.join(INVISIBLE)}]", rejection.detail)  # said in words


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
@pytest.mark.parametrize("character", NEIGHBOURS, ids=ascii)
def test_a_node_name_with_a_neighbouring_character_is_taken(
    character: str, ascii_only: bool
) -> None:
    """The characters next to those refused in Unicode are taken in a node name, by both
    decoders alike."""
    taken_as_sent(NODE + character, ascii_only)


def taken_as_sent(name: str, ascii_only: bool) -> None:
    """A NodeHealth of node ``name``, in the envelope and the payload (escaped when
    ``ascii_only``), is decoded by both decoders alike with ``name`` as sent."""
    envelope = body(NodeHealth, {**HEALTH, "node": name}, node=name, ascii_only=ascii_only)
    fast, reference = decode_envelope(envelope), decode_envelope_reference(envelope)
    assert isinstance(fast, Envelope)
    assert isinstance(reference, Envelope)
    assert_builds_the_reference(fast, reference, set())
    assert isinstance(fast.payload, NodeHealth)
    assert (fast.node, fast.payload.node) == (name, name)


# Node names of Unicode whitespace alone (str.isspace): a series, a cluster member and alerts
# for no one seen. U+2028 and U+3000 are neither controls nor hidden characters.
BLANK = [" ", "   ", "\xa0", "\u3000", "\u2028", " \u2003\u205f\u1680\u202f ", "\t", " " * 255]
# Blanks beside other characters: kept, as they were.
AROUND = [" node-1", "node-1 ", " node 1 ", "\u3000n\u3000", "\xa0x", "n\u2028n"]


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("name", BLANK, ids=lambda name: ascii(name[:8]) + f"-{len(name)}")
def test_a_blank_node_name_is_refused(name: str, place: str, ascii_only: bool) -> None:
    """A node name of spaces or other Unicode whitespace only, written escaped or raw, is
    refused wherever a node name is, by every decoder: the envelope's as malformed, a payload's
    as invalid_payload, naming the field and saying it must not be blank."""
    envelope = PLACES[place](name)
    if not ascii_only:
        envelope = envelope.replace(
            json.dumps(name).encode(), json.dumps(name, ensure_ascii=False).encode()
        )
    rejection = refused_everywhere(envelope)
    reason = RejectReason.MALFORMED if place == "node" else RejectReason.INVALID_PAYLOAD
    assert (rejection.reason, rejection.field) == (reason, place)
    assert "blank (whitespace only)" in rejection.detail


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
@pytest.mark.parametrize("name", AROUND, ids=ascii)
def test_a_node_name_with_blanks_beside_other_characters_is_taken(
    name: str, ascii_only: bool
) -> None:
    """A node name with blanks around or inside it is taken as it is, blanks and all, in the
    envelope and in a payload, by both decoders alike."""
    taken_as_sent(name, ascii_only)


def test_the_node_pattern_reads_whitespace_alike_in_every_engine_that_checks_it() -> None:
    """NODE_PATTERN refuses the same one-character names in pydantic-core's Rust regex (the
    reference decoder, the models) as in Python's re (the msgspec path, the reference's own
    envelope check): whitespace by str.isspace, all of it in the BMP, and the refused
    characters; they differ on no character of the BMP."""
    pydantic_core = TypeAdapter(Annotated[str, Field(pattern=NODE_PATTERN)])
    python_re = re.compile(NODE_PATTERN.removesuffix("$") + r"\Z")
    differ = []
    for code in range(0x10000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        character = chr(code)
        try:
            pydantic_core.validate_python(character)
            taken = True
        except ValidationError:
            taken = False
        if taken != bool(python_re.match(character)):
            differ.append(hex(code))
    assert differ == []
    assert not any(chr(code).isspace() for code in range(0x10000, 0x110000))


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
def test_free_text_keeps_zero_width_and_bidirectional_characters(ascii_only: bool) -> None:
    """A SystemAlert's title and description (free text, not node names) keep every one of
    those characters, on both decoders alike."""
    text = "disk " + "".join(INVISIBLE) + " full"
    payload = {**ALERT, "title": text, "description": text, "node": NODE}
    envelope = body(SystemAlert, payload, ascii_only=ascii_only)
    fast, reference = decode_envelope(envelope), decode_envelope_reference(envelope)
    assert isinstance(fast, Envelope)
    assert isinstance(reference, Envelope)
    assert_builds_the_reference(fast, reference, {"alert_id"})  # a random id each
    assert isinstance(fast.payload, SystemAlert)
    assert (fast.payload.title, fast.payload.description) == (text, text)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.one_of(st.sampled_from(INVISIBLE), st.characters(codec="utf-8"))))
def test_clean_bytes_hold_no_node_name_the_pattern_refuses(text: str) -> None:
    """Where is_clean lets the decoder leave the node pattern out (checking a blank name
    alone), no string can hold a character NODE_PATTERN refuses, however it is written."""
    for ascii_only in (True, False):
        envelope = json.dumps({"node": text}, ensure_ascii=ascii_only).encode()
        if is_clean(envelope):
            # After "x" the name is not blank: only its characters are judged.
            assert re.fullmatch(NODE_PATTERN.removesuffix("$") + r"\Z", "x" + text)


def test_no_character_the_node_pattern_refuses_is_clean_however_written() -> None:
    """Every character of HIDDEN_CHARACTERS (read from the class itself, not a list kept
    beside it), raw, escaped in lower or upper case, makes bytes unclean: the decoder that
    leaves the node pattern out never reads one."""
    hidden = [chr(c) for c in range(0x10000) if re.fullmatch(f"[{HIDDEN_CHARACTERS}]", chr(c))]
    assert sorted(hidden) == sorted(INVISIBLE)
    for character in hidden:
        escape = f"\\u{ord(character):04x}"
        for written in (character, escape, escape.upper().replace("\\U", "\\u")):
            assert not is_clean(f'{{"node": "a{written}b"}}'.encode())
        for written in (character, escape):
            bodies = [b'"a"', f'"{written}"'.encode()]
            assert unclean(bodies, b"\n".join(bodies)) == [1]  # a batch's line
