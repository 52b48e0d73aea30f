"""Node names refuse every character drawn as nothing (zero-width and other format characters,
bidirectional controls, default ignorable, private-use and noncharacters, line separators) and
blank names on every decoder; names in any script are taken; free text keeps those characters."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field, TypeAdapter, ValidationError

from bridge.bus import Envelope, Rejection, RejectReason, decode_envelope
from bridge.bus.batch_scans import is_clean, unclean
from bridge.bus.decoding import decode_envelopes
from bridge.bus.problems import decode_envelope_reference
from bridge.bus.struct_patterns import NODE_TEXT
from bridge.hidden import NODE_REFUSED, NODE_SCHEMA_PATTERN
from bridge.messages import (
    NODE_PATTERN,
    ClusterHealth,
    ClusterMembership,
    Message,
    NodeHealth,
    SystemAlert,
)
from tests.bus.envelope_helpers import assert_builds_the_reference, msgspec_paths
from tests.support.blank_names import DEFAULT_IGNORABLE_ASTRAL, DEFAULT_IGNORABLE_BMP

NODE = "node-1"
# Zero-width characters and Unicode's bidirectional controls: refused before the rest below.
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
# The other characters a node name may not hold beyond control characters, one or two of each
# kind: the rest of the format characters (Cf), past the BMP too.
FORMAT = ["\u00ad", "\u0600", "\u06dd", "\u070f", "\u0890", "\u08e2", "\u180e", "\u2062",
          "\u206a", "\ufff9", "\U000110bd", "\U00013430", "\U0001bca0", "\U0001d173",
          "\U000e0001", "\U000e0041"]  # fmt: skip
# Default ignorable characters of other categories: drawn as nothing, beside others too.
IGNORABLE = ["\u034f", "\u115f", "\u1160", "\u17b4", "\u180b", "\u2065", "\u3164", "\ufe00",
             "\ufe0f", "\uffa0", "\ufff0", "\U000e0000", "\U000e0100", "\U000e0fff"]  # fmt: skip
SEPARATORS = ["\u2028", "\u2029"]  # line and paragraph separators (Zl, Zp)
PRIVATE_USE = ["\ue000", "\uf8ff", "\U000f0000", "\U0010fffd"]  # Co
NONCHARACTERS = ["\ufdd0", "\ufdef", "\ufffe", "\uffff", "\U0001fffe", "\U0010ffff"]
REFUSED = INVISIBLE + FORMAT + IGNORABLE + SEPARATORS + PRIVATE_USE + NONCHARACTERS
# Their neighbours in Unicode, and names of any script a host may have, taken. U+0301 alone is
# drawn (on a dotted circle); an emoji of one code point, a flag, a skin tone are drawn.
NEIGHBOURS = ["\u200a", "\u2010", "\u2027", "\u202f", "\u205f", "\u2070", "\ufefe", "\u061b",
              "é", "\u00ac", "\u00ae", "\u034e", "\u0606", "\u115e", "\u1161", "\u17b6",
              "\u180a", "\u1810", "\u2800", "\u3163", "\u3165", "\ud7ff", "\uf900", "\ufdcf",
              "\ufdf0", "\ufe10", "\uff9f", "\uffa1", "\uffef", "\ufffc", "\ufffd",
              "\U000110be", "\U00013440", "\U0001d17b", "\U0001fffd", "\U00020000",
              "\U000e1000", "\U000efffd"]  # fmt: skip
NAMES = ["ex_esdb@host-1", "ex_esdb@\u0443\u0437\u0435\u043b-1", "\u30ce\u30fc\u30c9-1",
         "\u0928\u094b\u0921-\u0967", "\u05e9\u05dc\u05d5\u05dd", "\u0301",
         "\U0001f680", "\U0001f1e9\U0001f1ea", "\U0001f44d\U0001f3fd"]  # fmt: skip
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
@pytest.mark.parametrize("character", REFUSED, ids=ascii)
def test_a_node_name_with_a_character_drawn_as_nothing_is_refused(
    character: str, place: str, ascii_only: bool
) -> None:
    """``node-1`` with a zero-width or other format character, a bidirectional control, a
    default ignorable, private-use or noncharacter or a line separator after it, written escaped
    or raw, is refused wherever a node name is, by every decoder: the envelope's as malformed, a
    payload's as invalid_payload, naming the field and what it refuses in words."""
    name = NODE + character
    envelope = PLACES[place](name)
    if not ascii_only:
        envelope = envelope.replace(json.dumps(name).encode(), f'"{name}"'.encode())
        assert character.encode() in envelope
    rejection = refused_everywhere(envelope)
    reason = RejectReason.MALFORMED if place == "node" else RejectReason.INVALID_PAYLOAD
    assert (rejection.reason, rejection.field) == (reason, place)
    for kind in KINDS:
        assert kind in rejection.detail
    assert not re.search(f"[{''.join(REFUSED)}]", rejection.detail)  # said in words


# What a refusal names, each kind of character refused.
KINDS = ["control character", "zero-width character", "bidirectional control", "format character",
         "drawn as nothing", "line or paragraph separator", "private-use character",
         "noncharacter"]  # fmt: skip


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
@pytest.mark.parametrize("character", NEIGHBOURS, ids=ascii)
def test_a_node_name_with_a_neighbouring_character_is_taken(
    character: str, ascii_only: bool
) -> None:
    """The characters next to those refused in Unicode are taken in a node name (inside it:
    some are blanks), by both decoders alike."""
    taken_as_sent("node" + character + "1", ascii_only)


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
@pytest.mark.parametrize("name", NAMES, ids=ascii)
def test_a_node_name_in_any_script_or_an_emoji_is_taken(name: str, ascii_only: bool) -> None:
    """An Erlang node name, a host's name in Cyrillic, Japanese, Devanagari (its vowel signs
    are marks) or Hebrew, a lone combining mark and an emoji drawn without a joiner or variation
    selector (one code point, a flag, a skin tone) are taken, by both decoders alike."""
    taken_as_sent(name, ascii_only)


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


# Node names of Unicode whitespace alone (str.isspace) or braille blanks (U+2800, drawn as an
# empty cell): a series, a cluster member and alerts for no one seen; and names with one at
# their start or end: " node-1" would be another node than "node-1", looking the same.
BLANK = [" ", "   ", "\xa0", "\u3000", " \u2003\u205f\u1680\u202f ", "\t", " " * 255, "\u2800",
         " \u2800 ", "\u2800" * 255, "\u3000\u2800\xa0", " node-1", "node-1 ", " node 1 ",
         "\u3000n\u3000", "\xa0x", "\u2800n", "n\u2800", "n\u2800 ", "node-1\t"]  # fmt: skip
# Blanks between other characters: kept, as they are.
INSIDE = ["node 1", "n\u3000n", "x\xa0y", "n\u2800n", "ex esdb  node\u2003one"]


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("name", BLANK, ids=lambda name: ascii(name[:8]) + f"-{len(name)}")
def test_a_node_name_blank_at_either_end_is_refused(
    name: str, place: str, ascii_only: bool
) -> None:
    """A node name of spaces or other Unicode whitespace only, or with a blank at its start or
    end, written escaped or raw, is refused wherever a node name is, by every decoder: the
    envelope's as malformed, a payload's as invalid_payload, naming the field and saying it
    must not be blank at its start or end."""
    envelope = PLACES[place](name)
    if not ascii_only:
        envelope = envelope.replace(
            json.dumps(name).encode(), json.dumps(name, ensure_ascii=False).encode()
        )
    rejection = refused_everywhere(envelope)
    reason = RejectReason.MALFORMED if place == "node" else RejectReason.INVALID_PAYLOAD
    assert (rejection.reason, rejection.field) == (reason, place)
    assert "blank at its start or end" in rejection.detail


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
@pytest.mark.parametrize("name", INSIDE, ids=ascii)
def test_a_node_name_with_blanks_between_other_characters_is_taken(
    name: str, ascii_only: bool
) -> None:
    """A node name with blanks inside it is taken as it is, blanks and all, in the envelope and
    in a payload, by both decoders alike."""
    taken_as_sent(name, ascii_only)


def test_the_node_pattern_reads_alike_in_every_engine_that_checks_it() -> None:
    """NODE_PATTERN takes the same one-character names in pydantic-core's Rust regex (the
    reference decoder, the models, the pydantic-core path) as in Python's re (the reference's
    own envelope check, EXESDB_NODE) on every code point, past the BMP too; the Structs'
    pattern and the JSON Schema's take the same in the BMP, and the Structs' none past it (a
    name holding one is left to the pydantic-core path)."""
    pydantic_core = TypeAdapter(Annotated[str, Field(pattern=NODE_PATTERN)])
    python_re = re.compile(NODE_PATTERN.removesuffix("$") + r"\Z")
    struct = re.compile(NODE_TEXT)
    schema = re.compile(NODE_SCHEMA_PATTERN.removesuffix("$") + r"\Z")
    differ = []
    for code in range(0x110000):
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
        if code <= 0xFFFF and not taken == bool(struct.match(character)) == bool(
            schema.match(character)
        ):
            differ.append(hex(code))
        if code > 0xFFFF and struct.match(character):
            differ.append(hex(code))
    assert differ == []


def _in(ranges: tuple[tuple[int, int], ...], code: int) -> bool:
    return any(low <= code <= high for low, high in ranges)


def test_the_node_pattern_refuses_what_unicode_says_is_drawn_as_nothing_and_no_more() -> None:
    """A one-character node name is refused exactly when its character is a control, format,
    line or paragraph separator or private-use character (general categories Cc, Cf, Zl, Zp,
    Co: unicodedata's, and U+13439-U+1343F, format characters since Unicode 15.0), a
    Default_Ignorable_Code_Point, a noncharacter, or blank (whitespace, U+2800)."""
    ignorable = DEFAULT_IGNORABLE_BMP + DEFAULT_IGNORABLE_ASTRAL + ((0x13439, 0x1343F),)
    refused = re.compile(f"[{NODE_REFUSED}]")
    python_re = re.compile(NODE_PATTERN.removesuffix("$") + r"\Z")
    differ = []
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        character = chr(code)
        invisible = (
            unicodedata.category(character) in ("Cc", "Cf", "Zl", "Zp", "Co")
            or _in(ignorable, code)
            or 0xFDD0 <= code <= 0xFDEF
            or code & 0xFFFE == 0xFFFE  # the last two of each plane
        )
        blank = character.isspace() or character == "\u2800"
        if bool(refused.match(character)) != invisible:
            differ.append(hex(code))
        if bool(python_re.match(character)) == (invisible or blank):
            differ.append(hex(code))
    assert differ == []


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
@given(text=st.text(alphabet=st.one_of(st.sampled_from(REFUSED), st.characters(codec="utf-8"))))
def test_clean_bytes_hold_no_node_name_the_pattern_refuses(text: str) -> None:
    """Where is_clean lets the decoder leave the node pattern out (checking a name's ends for
    blanks alone), no string can hold a character NODE_PATTERN refuses, however it is
    written, nor a joiner."""
    for ascii_only in (True, False):
        envelope = json.dumps({"node": text}, ensure_ascii=ascii_only).encode()
        if is_clean(envelope):
            # Between two "x" no blank is at an end: only its characters are judged.
            assert re.fullmatch(NODE_PATTERN.removesuffix("$") + r"\Z", "x" + text + "x")
            assert "\u200c" not in text
            assert "\u200d" not in text


def test_no_character_the_node_pattern_refuses_is_clean_however_written() -> None:
    """Every character NODE_REFUSED names (read from the class itself, not a list kept beside
    it) but the C0 controls, which are not JSON raw, and the braille blank U+2800, written raw
    in UTF-8 or escaped as JSON escapes it (a surrogate pair past the BMP) in lower or upper
    case, makes bytes unclean: the decoder that leaves the node pattern out (telling a blank
    name by str.isspace alone) never reads one; nor does a batch's line."""
    refused = re.compile(f"[{NODE_REFUSED}\\u2800]")
    for code in range(0x20, 0x110000):
        character = chr(code)
        if 0xD800 <= code <= 0xDFFF or not refused.match(character):
            continue
        escape = json.dumps(character)[1:-1]
        for written in (character, escape, escape.upper().replace("\\U", "\\u")):
            assert not is_clean(f'{{"node": "a{written}b"}}'.encode()), hex(code)
    for character in [*REFUSED, "\u2800"]:
        for written in (character, json.dumps(character)[1:-1]):
            bodies = [b'"a"', f'"{written}"'.encode()]
            assert unclean(bodies, b"\n".join(bodies)) == [1]  # a batch's line


def test_clean_bytes_may_hold_any_other_character_written_raw() -> None:
    """Every character a node name may hold but U+2800, written raw in UTF-8, leaves bytes
    clean: is_clean sends no other body to the decoder checking the patterns (escaped, a few
    past the BMP do, their high surrogate shared with a refused one)."""
    refused = re.compile(f'[{NODE_REFUSED}\\u2800\\\\"]')
    unclean_ones = [
        hex(code)
        for code in range(0x20, 0x110000)
        if not 0xD800 <= code <= 0xDFFF
        and not refused.match(chr(code))
        and not is_clean(f'{{"node": "a{chr(code)}b"}}'.encode())
    ]
    assert unclean_ones == []


_BODY_PARTS = st.sampled_from(
    [
        '{"node": "',
        '"}',
        "a",
        "\u0645",
        "\u200c",
        "\\u200c",
        "\u00ad",
        "\\n",
        "\x7f",
        "\u2800",
        "\U000e0041",
        "\\ud83d\\ude80",
        "\ue000",
        "\\\\",
        "\U0001f680",
        "\u0301",
    ]
)


@settings(max_examples=300, deadline=None)
@given(bodies=st.lists(st.lists(_BODY_PARTS, max_size=6).map("".join).map(str.encode), max_size=8))
def test_a_batch_names_exactly_the_lines_that_are_not_clean(bodies: list[bytes]) -> None:
    """unclean, finding the escapes and the characters written raw in a batch's lines joined,
    names exactly the lines is_clean refuses one by one, in order, whatever the lines hold
    (a Persian name's joiner raw in several, an escape in one, a DEL)."""
    expected = [index for index, body in enumerate(bodies) if not is_clean(body)]
    assert unclean(bodies, b"\n".join(bodies)) == expected
