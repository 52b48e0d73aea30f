"""The fast decoders against the reference decoder on generated input: random field values, and
payloads of every type drawn by hypothesis."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.bus import Envelope, Rejection
from bridge.bus.decoding import _decode_fast, decode_envelopes
from bridge.bus.problems import decode_envelope_reference
from bridge.messages import AlertAck, Message
from tests.bus.envelope_helpers import (
    HEALTH,
    REFUSED_NAMES,
    TIMESTAMP_FIELDS,
    TIMESTAMPS,
    agreed,
    body_of,
    decoded_alike,
    health_of,
)
from tests.messages.helpers import CASES


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
