"""What every message model accepts: its minimal and its full payload, each value kept, through a
JSON round trip unchanged, and frozen once built."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from bridge.messages import Message
from tests.messages.helpers import ALL_MODELS, CASES, build, recent


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_accepts_minimal_payload(model: type[Message]) -> None:
    """Each model accepts only its required fields, with node from the context."""
    message = build(model, CASES[model].minimal)
    assert recent(message.timestamp)


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_accepts_full_payload_and_keeps_every_value(model: type[Message]) -> None:
    """Each model accepts every one of its fields and keeps the values as given."""
    full = CASES[model].full
    assert set(full) == set(model.model_fields), "the full payload must set every field"
    assert build(model, full).model_dump(mode="json") == full


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("which", ["minimal", "full"])
def test_json_round_trip_is_lossless(model: type[Message], which: str) -> None:
    """model_dump_json then model_validate_json gives back an equal message."""
    message = build(model, getattr(CASES[model], which))
    assert model.model_validate_json(message.model_dump_json()) == message


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_messages_are_frozen(model: type[Message]) -> None:
    """Assigning to a field of a built message fails."""
    message = build(model, CASES[model].minimal)
    with pytest.raises(ValidationError):
        message.timestamp = datetime.now(UTC)  # type: ignore[misc]
