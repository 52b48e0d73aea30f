"""The fast decoders against the reference decoder on what only the models' lax rules take (the
pydantic-core path): the wire schema's first error, unknown fields, strings opening with a colon."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from pydantic_core import SchemaValidator

import bridge.bus.decoding as decoding_module
from bridge.bus import Envelope, Rejection, decode_envelope
from bridge.bus.decoding import _decode_fast, _decode_unchecked, decode_envelopes
from bridge.bus.payload_walks import object_fields
from bridge.bus.problems import decode_envelope_reference, with_every_problem
from bridge.messages import ClusterMembership, LogSummary, Message, NodeHealth
from tests.bus.envelope_helpers import (
    ENVELOPE,
    HEALTH,
    SEPARATORS,
    agreed,
    body_of,
    decoded_alike,
    health_of,
    msgspec_paths,
    pairs_json,
)


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
    assert object_fields(ClusterMembership) == ()
    assert object_fields(LogSummary) == ("log_counts", "top_errors")
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
    # 'a" :' is written with a quote, a blank and a colon (a name opens with no blank).
    names = ["::1", ':"a":', 'a" :', "\\:"] * 25_000
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
