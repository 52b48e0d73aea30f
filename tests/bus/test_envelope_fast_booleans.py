"""The fast decoders against the reference decoder on boolean fields: JSON's true and false
alone, where pydantic's lax bool also reads numbers and words ("yes", "0")."""

from __future__ import annotations

from typing import Any, Final

import pytest

from bridge.bus import Envelope, Rejection, RejectReason
from bridge.bus.decoding import decode_envelopes
from bridge.bus.problems import decode_envelope_reference
from bridge.messages import FeatureToggle, Message
from tests.bus.envelope_helpers import agreed, body_of, decoded_alike
from tests.messages.helpers import CASES

# What pydantic's lax bool reads as true or false, and other values no boolean is.
NOT_BOOLEANS: Final[list[Any]] = [
    *("true", "false", "True", "FALSE", "yes", "no", "on", "off", "t", "f", "y", "n", "1", "0"),
    *(1, 0, 1.0, 0.0, 2, ""),
    *([True], {"value": True}),
]
WITH_BOOLEANS: Final = [
    model for model, case in CASES.items() if any(type(v) is bool for v in case.full.values())
]


@pytest.mark.parametrize("model", WITH_BOOLEANS, ids=lambda m: m.TAG)
def test_a_boolean_field_given_anything_but_true_or_false_is_refused_naming_it(
    model: type[Message],
) -> None:
    """Each boolean field of each type, given text, a number or a container (what pydantic's lax
    bool reads as true or false among them), in a complete and in a minimal payload, is
    invalid_payload from both decoders alike, naming the field and saying it takes true or
    false."""
    case = CASES[model]
    booleans = [name for name, value in case.full.items() if type(value) is bool]
    for name in booleans:
        for base in (case.full, case.minimal):
            for given in NOT_BOOLEANS:
                rejection = decoded_alike(body_of({**base, name: given}, model))
                assert isinstance(rejection, Rejection), (name, given)
                assert (rejection.reason, rejection.field, rejection.detail) == (
                    RejectReason.INVALID_PAYLOAD,
                    f"payload.{name}",
                    f"payload.{name}: Input should be a boolean, true or false",
                ), given


@pytest.mark.parametrize("model", WITH_BOOLEANS, ids=lambda m: m.TAG)
def test_a_boolean_field_takes_true_and_false_on_the_fast_path(model: type[Message]) -> None:
    """true and false in each boolean field decode on the fast path as the reference decodes
    them, to the bool given."""
    case = CASES[model]
    booleans = [name for name, value in case.full.items() if type(value) is bool]
    for name in booleans:
        for base in (case.full, case.minimal):
            for given in (True, False):
                payload = {**base, name: given}
                envelope = agreed(body_of(payload, model), payload, model)
                assert isinstance(envelope, Envelope), (name, given)
                assert getattr(envelope.payload, name) is given


def test_a_batch_is_refused_at_its_line_holding_a_boolean_as_text() -> None:
    """A batch whose third line gives a boolean field as text ("false") decodes its first two
    and is refused at the third with the reference decoder's rejection of that line alone."""
    case = CASES[FeatureToggle]
    good = body_of(case.full, FeatureToggle)
    bad = body_of({**case.full, "enabled": "false"}, FeatureToggle)
    envelopes, refused = decode_envelopes([good, good, bad, good])
    assert len(envelopes) == 2
    assert refused == (2, decode_envelope_reference(bad))
    assert isinstance(refused[1], Rejection)
    assert refused[1].field == "payload.enabled"
