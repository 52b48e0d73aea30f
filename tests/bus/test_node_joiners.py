"""The joiners U+200C (ZWNJ) and U+200D (ZWJ) in node names: taken where RFC 5892 Appendix A
takes them in a host name (after a virama; ZWNJ between letters that join), by every decoder
alike; refused anywhere else, and at a name's start or end."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

import idna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field, TypeAdapter, ValidationError

from bridge.bus import Envelope, Rejection, RejectReason
from bridge.bus.decoding import decode_envelopes
from bridge.bus.struct_patterns import NODE_TEXT
from bridge.hidden import NODE_SCHEMA_PATTERN, is_node_name, joiners_placed
from bridge.messages import NODE_JOINERS_SAID, NODE_PATTERN, ClusterHealth, Message, NodeHealth
from tests.bus.envelope_helpers import agreed, body_of, msgspec_paths

# Names a host or an Erlang node may have, each joiner where RFC 5892 takes it.
JOINED = [
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian: yeh, ZWNJ, khah
    "\u06a9\u062a\u0627\u0628\u200c\u0647\u0627",  # Persian "books": beh, ZWNJ, heh
    "\u0628\u064e\u200c\u0628",  # a mark (fatha, joining type T) between the letter and ZWNJ
    "\u0628\u200c\u0651\u0627",  # and one after it, before an alef (R: joins the one before)
    "\u0915\u094d\u200d\u0937",  # Devanagari: ka, virama, ZWJ, ssa (a half form)
    "\u0915\u094d\u200c\u0937",  # ka, virama, ZWNJ, ssa (the virama shown)
    "\u0d28\u0d4d\u200d\u0d28",  # Malayalam: na, virama, ZWJ, na
    "ex_esdb@\u0915\u094d\u200d\u0937-1",
]
# Joiners that change nothing drawn, or stand at an end: two names would look the same.
MISPLACED = [
    "ab\u200dcd",
    "ab\u200ccd",
    "node-1\u200c2",
    "\u200cnode",
    "\u200dnode",
    "node\u200c",
    "\u0915\u094d\u200d",  # after a virama, but at the end
    "\u0915\u200d\u0937",  # ZWJ with no virama before it
    "\u0628\u200d\u0628",  # ZWJ between Arabic letters: no virama
    "\u0627\u200c\u0628",  # alef joins no letter after it (R)
    "\u0628\u200c1",  # a digit joins nothing
    "\u0628\u200c\u200c\u0628",  # two joiners
    "\u0628\u200c \u0628",  # a blank after the joiner
    "\U0001f469\u200d\U0001f4bb",  # an emoji's joiner: as before, drawn as nothing after node-1
]
LAX_TIMESTAMP = "2026-11-28T02:00:00.123+02:00"  # a form only the pydantic-core path reads
HEALTH: dict[str, Any] = {"status": "healthy", "timestamp": "2026-11-28T00:00:00.123Z"}
CLUSTER: dict[str, Any] = {
    "status": "degraded",
    "healthy_nodes": 1,
    "total_nodes": 2,
    "timestamp": "2026-11-28T00:00:00.123Z",
}
# Where a node name is: the envelope's node, a payload's, and one a payload lists.
PLACES: dict[str, tuple[type[Message], dict[str, Any], str | None]] = {
    "node": (NodeHealth, HEALTH, None),
    "payload.node": (NodeHealth, HEALTH, "node"),
    "payload.degraded_nodes.0": (ClusterHealth, CLUSTER, "degraded_nodes"),
}


def payload_at(name: str, place: str, lax: bool) -> dict[str, Any]:
    """The payload of a message holding ``name`` at ``place`` (the envelope's node aside)."""
    _, base, field = PLACES[place]
    payload = {**base, "timestamp": LAX_TIMESTAMP} if lax else dict(base)
    if field is not None:
        payload[field] = [name] if field == "degraded_nodes" else name
    return payload


def body(name: str, place: str, lax: bool, ascii_only: bool) -> bytes:
    """The envelope of a message holding ``name`` at ``place``."""
    changes = {"node": name} if place == "node" else {}
    payload = payload_at(name, place, lax)
    return body_of(payload, PLACES[place][0], ascii_only=ascii_only, **changes)


def decoded(name: str, place: str, lax: bool, ascii_only: bool) -> Envelope | Rejection:
    """What every decoder makes of ``name`` at ``place`` (the fast paths and the reference
    agreeing, ``agreed`` asserts), and a batch of it after a good line alike."""
    envelope = body(name, place, lax, ascii_only)
    result = agreed(envelope, payload_at(name, place, lax), PLACES[place][0])
    good = body_of(HEALTH, NodeHealth, id="01JDX0Y8C7H1V4N0W5Z3Q2M6TA")
    refused = None if isinstance(result, Envelope) else (1, result)
    assert decode_envelopes([good, envelope])[1] == refused
    assert decode_envelopes([good, envelope], good + b"\n" + envelope)[1] == refused
    return result


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
@pytest.mark.parametrize("lax", [False, True], ids=["msgspec", "pydantic-core"])
@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("name", JOINED, ids=ascii)
def test_a_node_name_with_a_joiner_where_rfc_5892_takes_one_is_taken_by_every_decoder(
    name: str, place: str, lax: bool, ascii_only: bool
) -> None:
    """A Persian, Devanagari or Malayalam node name with a ZWNJ or ZWJ where IDNA2008's
    CONTEXTJ rules take one, escaped or raw, in a form the msgspec path reads (and it takes it,
    not leaving it to the slower paths) or one only pydantic-core does, is taken as sent
    wherever a node name is, the fast paths and the reference alike."""
    result = decoded(name, place, lax, ascii_only)
    assert isinstance(result, Envelope)
    if not lax:  # the msgspec path's checked Structs take it, not only the slower paths
        assert msgspec_paths(body(name, place, lax, ascii_only)) == [result]
    if place == "node":
        assert result.node == name
    elif place == "payload.node":
        assert getattr(result.payload, "node") == name  # noqa: B009 - a NodeHealth's
    else:
        assert getattr(result.payload, "degraded_nodes") == [name]  # noqa: B009


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
@pytest.mark.parametrize("lax", [False, True], ids=["msgspec", "pydantic-core"])
@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("name", MISPLACED, ids=ascii)
def test_a_node_name_with_a_joiner_anywhere_else_is_refused_by_every_decoder(
    name: str, place: str, lax: bool, ascii_only: bool
) -> None:
    """A joiner that changes nothing drawn (between Latin letters, after an alef, a digit or
    another joiner, with no virama before a ZWJ), or at a name's start or end, is refused by
    every decoder alike, naming the field and where a joiner may stand, in words."""
    result = decoded(name, place, lax, ascii_only)
    assert isinstance(result, Rejection)
    reason = RejectReason.MALFORMED if place == "node" else RejectReason.INVALID_PAYLOAD
    assert (result.reason, result.field) == (reason, place)
    assert NODE_JOINERS_SAID in result.detail
    assert "\u200c" not in result.detail
    assert "\u200d" not in result.detail


def idna_takes(name: str) -> bool:
    """Whether the idna package's RFC 5892 CONTEXTJ check takes each joiner in ``name``."""
    return all(
        idna.valid_contextj(name, at)
        for at, character in enumerate(name)
        if character in "\u200c\u200d"
    )


def between_two_that_show(name: str) -> bool:
    """Whether each joiner in ``name`` has a character on either side, neither a blank nor a
    joiner (what RFC 5892 leaves to the label's other rules)."""
    return all(
        0 < at < len(name) - 1 and not {name[at - 1], name[at + 1]} & {" ", "\u200c", "\u200d"}
        for at, character in enumerate(name)
        if character in "\u200c\u200d"
    )


@pytest.mark.parametrize("name", JOINED + MISPLACED, ids=ascii)
def test_the_joiner_rule_is_rfc_5892s_as_the_idna_package_reads_it(name: str) -> None:
    """joiners_placed agrees with the idna package's valid_contextj on every name of the
    tables whose joiners stand between two characters that show (and refuses the others);
    is_node_name takes exactly the names of the first table."""
    assert joiners_placed(name) == (idna_takes(name) and between_two_that_show(name))
    assert is_node_name(name) == (name in JOINED)


# Letters that join both sides (beh, yeh, heh), the one after only (alef: R), letters of no
# joining (a, 1), marks (fatha, shadda: T; a Devanagari vowel sign), viramas and the joiners.
_ALPHABET = list(
    "\u0628\u06cc\u0647\u0627\u062f\u0640a1 \u064e\u0651\u093f\u0915\u094d\u0d4d\u0710"
    "\u07ca\u1820\u0301\u200c\u200d"
)


@settings(max_examples=500, deadline=None)
@given(name=st.text(st.sampled_from(_ALPHABET), min_size=1, max_size=8))
def test_generated_names_place_joiners_as_the_idna_package_does(name: str) -> None:
    """Names drawn from joining letters (Arabic, Syriac, N'Ko, Mongolian), letters that join
    one side or none, marks, viramas, a blank and the joiners: joiners_placed says what idna
    says wherever each joiner stands between two characters that show."""
    assert joiners_placed(name) == (idna_takes(name) and between_two_that_show(name))


# The blocks of the scripts whose letters join: Arabic, Syriac, Thaana, N'Ko, Mandaic and the
# Arabic extensions; Mongolian; Phags-pa; Manichaean to Sogdian and Old Uyghur; Adlam.
_JOINING_BLOCKS = [(0x0600, 0x08FF), (0x1800, 0x18AF), (0xA840, 0xA87F), (0x10AC0, 0x10FFF),
                   (0x1E900, 0x1E95F)]  # fmt: skip


def test_which_letters_join_is_unicodes_as_the_idna_package_has_it() -> None:
    """Every assigned character of the scripts that join, before a ZWNJ and a beh, and after a
    beh and a ZWNJ, makes the joiner placed exactly when idna's valid_contextj takes it: the
    joining types hidden.py holds are Unicode's (a virama, a mark skipped over, a letter joining
    one side only)."""
    differ = []
    for low, high in _JOINING_BLOCKS:
        for code in range(low, high + 1):
            character = chr(code)
            if unicodedata.category(character) == "Cn" or character.isspace():
                continue
            for name in (character + "\u200c\u0628", "\u0628\u200c" + character):
                if joiners_placed(name) != idna_takes(name):
                    differ.append(f"{name!a}")
    assert differ == []


# Characters that show, blanks (a space, U+3000, the braille blank), the joiners, a refused one
# (U+200B) and one past the BMP (an emoji): what the node pattern's parts meet at.
_PATTERN_ALPHABET = [*"a\u0628\u094d \u3000\u2800\u200c\u200d\u200b", "\U0001f680"]
_RUST = TypeAdapter(Annotated[str, Field(pattern=NODE_PATTERN)])
_PYTHON = re.compile(NODE_PATTERN.removesuffix("$") + r"\Z")
_SCHEMA = re.compile(NODE_SCHEMA_PATTERN.removesuffix("$") + r"\Z")
_STRUCTS = re.compile(NODE_TEXT)


@settings(max_examples=500, deadline=None)
@given(name=st.text(st.sampled_from(_PATTERN_ALPHABET), min_size=1, max_size=7))
def test_the_node_pattern_reads_alike_in_every_engine_on_names_with_blanks_and_joiners(
    name: str,
) -> None:
    """NODE_PATTERN takes the same names in pydantic-core's Rust regex as in Python's re: one
    opening and ending with a character that shows, a joiner only between two that do; the
    JSON Schema's the same in the BMP, and the Structs' the same but for where a joiner stands
    inside a name (their builder's to judge) and past the BMP (left to pydantic-core)."""
    try:
        _RUST.validate_python(name)
        taken = True
    except ValidationError:
        taken = False
    assert taken == bool(_PYTHON.match(name))
    if name.isascii() or max(name) <= "\uffff":
        assert taken == bool(_SCHEMA.match(name))
        if "\u200c" not in name and "\u200d" not in name:
            assert taken == bool(_STRUCTS.match(name))
    elif _STRUCTS.match(name):
        raise AssertionError(f"the Structs took {name!a}, past the BMP")
