"""The fast decoders against the reference decoder on names: node fields with control characters
or blank at an end, and an ack_by with a separator, a bidirectional control, blank or over 200
characters."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.bus import Envelope, Rejection, RejectReason
from bridge.bus.decoding import decode_envelopes
from bridge.hidden import NODE_BLANKS
from bridge.messages import AlertAck, Message
from tests.bus.envelope_helpers import REFUSED_NAMES, agreed, body_of
from tests.messages.helpers import CASES
from tests.support import drawn_as_nothing


@pytest.mark.parametrize(
    "model", [m for m in CASES if "node" in m.__pydantic_fields__], ids=lambda m: m.TAG
)
def test_every_node_field_refuses_control_characters(model: type[Message]) -> None:
    """Each message type's ``node`` (a label value everywhere) refuses a NUL on both paths."""
    payload = {**CASES[model].full, "node": "a\x00b"}
    rejection = agreed(body_of(payload, model), payload, model)
    assert isinstance(rejection, Rejection)
    assert rejection.field == "payload.node"


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
@pytest.mark.parametrize(
    "name",
    [" ", "\u3000\xa0", "node 1 ", " node1", " \u2800", "\u2800node", "node 1", "n\u2800n"],
    ids=ascii,
)
@pytest.mark.parametrize(
    "model", [m for m in CASES if "node" in m.__pydantic_fields__], ids=lambda m: m.TAG
)
def test_every_node_field_refuses_a_name_blank_at_either_end_either_way(
    model: type[Message], name: str, ascii_only: bool
) -> None:
    """Each message type's ``node`` and the envelope's, of whitespace or braille blanks only or
    with one at its start or end, escaped or raw (clean bytes, which the decoder leaving the
    node pattern out reads), are refused by both paths alike; with blanks between other
    characters they are taken as they are."""
    for payload, node in (
        ({**CASES[model].full, "node": name}, "node-1"),
        (CASES[model].full, name),
    ):
        result = agreed(body_of(payload, model, ascii_only=ascii_only, node=node), payload, model)
        if name.strip(NODE_BLANKS) == name:
            assert isinstance(result, Envelope)
            assert name in (result.node, getattr(result.payload, "node", None))
            continue
        assert isinstance(result, Rejection)
        assert result.field == ("node" if node == name else "payload.node")
        assert "blank at its start or end" in result.detail


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
