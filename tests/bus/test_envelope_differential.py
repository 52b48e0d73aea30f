"""The fast decoding paths against the reference decoder on generated envelopes.

For every message type, hypothesis draws payloads from the type's complete and minimal cases:
each field kept, left out (when it has a default) or given another value of any JSON type
(text with escapes, controls, surrogates and unicode; boundary and lax numbers; timestamps in
odd forms), the envelope's ``node`` and ``ts`` too, sometimes a key given twice (escaped or
not), written compact or spaced, escaped or raw UTF-8. Alone and in batches, the fast paths and
the reference must agree: the same Envelope (fields drawn from the clock or randomness aside)
or the same rejection.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.bus import Envelope, Rejection, decode_envelope
from bridge.bus.decoding import (
    _decode_fast,
    decode_envelopes,
    decode_failures,
)
from bridge.bus.problems import decode_envelope_reference
from bridge.messages import Message
from tests.bus.envelope_helpers import (
    assert_builds_the_reference,
    drawn_fields,
    msgspec_paths,
)
from tests.messages.helpers import CASES

DIFFERENTIAL = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
MODELS = list(CASES)

# Texts that have taken a decoder off its path before: escapes, JSON quoted in a string, a
# string opening with a colon, controls written raw or escaped, lone and paired surrogates.
ODD_TEXTS = [
    "µs",
    "took 5 µs ✓ 😀",
    "line one\nline two",
    'sent {"id": "x", "ok": true}',
    ':{"a":1}',
    ": spaced",
    "back\\slash\\",
    '"',
    "\\u0041",
    "tab\there",
    "\x7f",
    "\x85",
    "\u2028",
    "\ud800",
    "a\udfffb",
    "<script>&",
    " ",
    "",
    "x" * 200,
]
TIMESTAMP_TEXTS = st.builds(
    lambda date, sep, time, fraction, zone: f"{date}{sep}{time}{fraction}{zone}",
    st.sampled_from(["2026-11-28", "2026-02-30", "0001-01-01", "9999-12-31", "2026-1-28"]),
    st.sampled_from(["T", "t", " "]),
    st.sampled_from(["00:00:00", "23:59:59", "24:00:00", "12:30"]),
    st.sampled_from(["", ".1", ".123", ".1234", ".123456", ".123456789", ".1234567891", "."]),
    st.sampled_from(["Z", "z", "+00:00", "-00:00", "+02:00", "-05:30", "+23:59", "+24:00", ""]),
)
TEXTS = st.one_of(
    st.sampled_from(ODD_TEXTS), st.sampled_from(ODD_TEXTS), st.text(max_size=12), TIMESTAMP_TEXTS
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 1.5, 1e308, "1.5", "12", "NaN", "inf", True]),
)
SCALARS = st.one_of(TEXTS, NUMBERS, st.none(), st.booleans())
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXTS, inner, max_size=3)),
    max_leaves=6,
)


@st.composite
def _payload(draw: st.DrawFn, model: type[Message]) -> dict[str, Any]:
    """A payload of ``model``: its complete or minimal case with up to three fields changed,
    each left out (refused alike where it is required), given a value drawn for its kind (a
    text, a number, a map) or, one time in four, of any kind."""
    case = CASES[model]
    base = dict(draw(st.sampled_from([case.full, case.minimal])))
    names = sorted(case.full)
    for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True)):
        value = case.full[name]
        choice = draw(st.integers(min_value=0, max_value=7))
        if choice == 0:
            base.pop(name, None)
        elif choice == 1:
            base[name] = draw(VALUES)
        elif isinstance(value, str):
            base[name] = draw(TEXTS)
        elif isinstance(value, bool):
            base[name] = draw(st.one_of(st.booleans(), SCALARS))
        elif isinstance(value, int | float):
            base[name] = draw(NUMBERS)
        else:
            base[name] = draw(VALUES)
    return base


@st.composite
def _mostly(draw: st.DrawFn, usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> Any:
    """A value from ``usual`` four times in five, else from ``odd``."""
    return draw(odd if draw(st.integers(min_value=0, max_value=4)) == 0 else usual)


@st.composite
def _envelope(draw: st.DrawFn, number: int = 0) -> tuple[bytes, dict[str, Any], type[Message]]:
    """An envelope's bytes, its payload and its model: now and then with ``v`` written as a
    float or not 1, a byte order mark first, or an unknown field in the envelope or payload."""
    model = draw(st.sampled_from(MODELS))
    payload = draw(_payload(model))
    unknown = draw(st.sampled_from([None] * 8 + ["envelope", "payload"]))
    if unknown == "payload":
        payload = {**payload, "unknown": draw(VALUES)}
    data: dict[str, Any] = {
        "v": draw(_mostly(st.just(1), st.sampled_from([1.0, 1.5, 2, 0, True, "1", None]))),
        "id": f"generated{number:06d}",
        "instance": model.INSTANCE,
        "topic": "some:topic",
        "tag": model.TAG,
        "node": draw(_mostly(st.sampled_from(["node1@host", "nœud-µ@host"]), TEXTS)),
        "ts": draw(_mostly(st.just("2026-11-28T00:00:00.123Z"), TIMESTAMP_TEXTS)),
        "payload": payload,
    }
    if unknown == "envelope":
        data["unknown"] = draw(VALUES)
    spaced, ascii_only = draw(st.booleans()), draw(st.booleans())
    separators = (", ", ": ") if spaced else (",", ":")
    body = json.dumps(data, separators=separators, ensure_ascii=ascii_only)
    repeat = draw(st.sampled_from([None] * 17 + ["id", "i\\u0064", "\\u0074ag"]))
    if repeat is not None:  # a key given twice, at the envelope's end
        value = '"generated999999"' if "d" in repeat else json.dumps(model.TAG)
        body = body[:-1] + f'{separators[0]}"{repeat}"{separators[1]}{value}}}'
    mark = draw(st.sampled_from([b""] * 9 + [b"\xef\xbb\xbf"]))  # UTF-8's byte order mark
    return mark + body.encode(errors="surrogatepass"), payload, model


def _same_or_same_rejection(
    fast: Envelope | Rejection, reference: Envelope | Rejection, payload: dict[str, Any]
) -> None:
    """``fast`` is ``reference``: the same rejection, or the same Envelope but for the fields
    the payload left to the clock or randomness."""
    if isinstance(reference, Rejection) or isinstance(fast, Rejection):
        assert fast == reference
        return
    assert_builds_the_reference(fast, reference, drawn_fields(type(reference.payload), payload))


@DIFFERENTIAL
@given(drawn=_envelope())
def test_generated_envelopes_decode_alone_as_the_reference_decodes_them(
    drawn: tuple[bytes, dict[str, Any], type[Message]],
) -> None:
    """A generated envelope: the fast paths take it only if the reference accepts it, and
    build the reference's Envelope; decode_envelope gives the reference's result either way."""
    body, payload, _ = drawn
    reference = decode_envelope_reference(body)
    fast = _decode_fast(body)
    if isinstance(reference, Rejection):
        assert fast is None, "the fast path accepted what the reference refuses"
        assert msgspec_paths(body) == [None] * len(msgspec_paths(body))
    else:
        assert fast is not None, "missed the fast path"
        for taken in [fast, *msgspec_paths(body)]:
            if taken is not None:
                _same_or_same_rejection(taken, reference, payload)
    _same_or_same_rejection(decode_envelope(body), reference, payload)


@st.composite
def _batch(draw: st.DrawFn) -> list[tuple[bytes, dict[str, Any], type[Message]]]:
    return [draw(_envelope(number)) for number in range(draw(st.integers(1, 6)))]


@DIFFERENTIAL
@given(drawn=_batch(), cut=st.booleans())
def test_generated_batches_decode_as_the_reference_decodes_each_line(
    drawn: list[tuple[bytes, dict[str, Any], type[Message]]], cut: bool
) -> None:
    """A generated batch, cut from its NDJSON body or not, decodes as the reference decodes
    its lines one at a time, up to the first it refuses."""
    lines = [body for body, _, _ in drawn]
    envelopes, failure = decode_envelopes(lines, b"\n".join(lines) + b"\n" if cut else None)
    for index, (body, payload, _) in enumerate(drawn):
        reference = decode_envelope_reference(body)
        if isinstance(reference, Rejection):
            assert failure == (index, reference)
            assert len(envelopes) == index
            return
        _same_or_same_rejection(envelopes[index], reference, payload)
    assert failure is None
    assert len(envelopes) == len(lines)


@DIFFERENTIAL
@given(drawn=_batch(), copies=st.integers(1, 120))
def test_a_batchs_failures_are_the_lines_the_reference_refuses(
    drawn: list[tuple[bytes, dict[str, Any], type[Message]]], copies: int
) -> None:
    """``decode_failures`` names every line of a generated batch (repeated, to span its groups
    of lines) that the reference refuses, in order, with the reference's rejection."""
    lines = [body for body, _, _ in drawn] * copies
    refused = [(index, decode_envelope_reference(body)) for index, body in enumerate(lines)]
    assert list(decode_failures(lines)) == [
        (index, rejection) for index, rejection in refused if isinstance(rejection, Rejection)
    ]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.TAG)
def test_every_message_type_is_drawn_valid_and_refused(model: type[Message]) -> None:
    """The generator reaches each type's valid and invalid payloads (it is no test of one
    outcome only)."""
    outcomes: set[bool] = set()

    # Derandomized: the same draws each run, so that this holds or fails for good.
    @settings(max_examples=12, deadline=None, derandomize=True, database=None)
    @given(payload=_payload(model))
    def sample(payload: dict[str, Any]) -> None:
        body = json.dumps(
            {
                **json.loads(json.dumps(_BASE)),
                "instance": model.INSTANCE,
                "tag": model.TAG,
                "payload": payload,
            }
        ).encode(errors="surrogatepass")
        outcomes.add(isinstance(decode_envelope_reference(body), Envelope))

    sample()
    assert outcomes == {True, False}


_BASE = {
    "v": 1,
    "id": "generated000000",
    "topic": "some:topic",
    "node": "node1@host",
    "ts": "2026-11-28T00:00:00.123Z",
}
