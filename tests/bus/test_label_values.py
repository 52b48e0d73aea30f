"""Strings that become label values (and a SystemAlert's alert_id, a label of its webhooks)
refuse what a node name refuses, blanks aside, on every decoder alike: two series must not look
the same on /metrics."""

from __future__ import annotations

import json

import pytest

from bridge.bus import Envelope, Rejection, RejectReason
from bridge.messages import LABEL_PATTERN, Message, SystemAlert
from tests.bus.envelope_helpers import agreed, body_of
from tests.messages.helpers import CASES

# Every payload field that becomes a label value (its pattern LABEL_PATTERN), by message type.
LABEL_FIELDS = [
    (model, name)
    for model in CASES
    for name, field in model.__pydantic_fields__.items()
    if any(getattr(part, "pattern", None) == LABEL_PATTERN for part in field.metadata)
]
# One of each kind a node name refuses: zero-width, soft hyphen, Hangul filler, variation
# selector, line separator, private use, noncharacter, tag, private use past the BMP.
REFUSED = ["\u200b", "\u00ad", "\u3164", "\ufe0f", "\u2028", "\ue000", "\ufffe", "\U000e0041",
           "\U0010fffd", "\u202e"]  # fmt: skip
# Text in any script, an emoji, a unit and blanks: taken as sent.
TAKEN = ["\u00b5s", "\u0445\u0440\u0430\u043d\u0438\u043b\u0438\u0449\u0435",
         "\u30b9\u30c8\u30a2", "disk \U0001f680", " ", "disk 1", "\u2800"]  # fmt: skip


def _with(model: type[Message], name: str, value: str, ascii_only: bool) -> bytes:
    payload = {**CASES[model].full, name: value}
    return body_of(payload, model, ascii_only=ascii_only)


def test_every_label_field_is_found() -> None:
    """The label fields of the table below are those /metrics shows (a component, an
    operation, a unit...): at least the PerformanceMetric's three."""
    names = {(model.TAG, name) for model, name in LABEL_FIELDS}
    assert {("performance_metric", n) for n in ("metric_name", "unit", "component")} <= names
    assert len(LABEL_FIELDS) >= 20


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
@pytest.mark.parametrize("character", REFUSED, ids=ascii)
@pytest.mark.parametrize(
    ("model", "name"), LABEL_FIELDS, ids=[f"{m.TAG}.{n}" for m, n in LABEL_FIELDS]
)
def test_a_label_value_with_a_character_drawn_as_nothing_is_refused(
    model: type[Message], name: str, character: str, ascii_only: bool
) -> None:
    """A label value with a character drawn as nothing after ``disk``, written escaped or raw,
    is refused as invalid_payload by both paths alike, naming the field and what it refuses in
    words."""
    value = "disk" + character
    payload = {**CASES[model].full, name: value}
    rejection = agreed(_with(model, name, value, ascii_only), payload, model)
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.field) == (RejectReason.INVALID_PAYLOAD, f"payload.{name}")
    assert "a label value must not contain a control character" in rejection.detail
    assert "format character" in rejection.detail
    assert "drawn as nothing" in rejection.detail
    assert character not in rejection.detail  # said in words


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
@pytest.mark.parametrize("value", TAKEN, ids=ascii)
@pytest.mark.parametrize(
    ("model", "name"), LABEL_FIELDS, ids=[f"{m.TAG}.{n}" for m, n in LABEL_FIELDS]
)
def test_a_label_value_in_any_script_or_blank_is_taken(
    model: type[Message], name: str, value: str, ascii_only: bool
) -> None:
    """A label value in Cyrillic or Japanese, with a unit's µ, an emoji, or blank (unlike a node
    name), is taken as sent by both paths alike."""
    payload = {**CASES[model].full, name: value}
    envelope = agreed(_with(model, name, value, ascii_only), payload, model)
    assert isinstance(envelope, Envelope)
    assert getattr(envelope.payload, name) == value


def test_the_json_schema_publishes_the_rule_in_the_bmp() -> None:
    """A label field's JSON Schema pattern names the refused characters of the BMP, none past it
    (ECMAScript's regular expressions read no \\U escape)."""
    model, name = LABEL_FIELDS[0]
    pattern = model.model_json_schema()["properties"][name]["pattern"]
    assert "\\u200b" in pattern
    assert "\\U" not in pattern
    assert json.dumps(pattern).isascii()


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
@pytest.mark.parametrize("character", REFUSED, ids=ascii)
def test_an_alert_id_with_a_character_drawn_as_nothing_is_refused(
    character: str, ascii_only: bool
) -> None:
    """A SystemAlert's alert_id (a label of its webhooks and of Alertmanager's alerts) with a
    character drawn as nothing is refused as a label value is, by both paths alike, worded with
    the rule on . and .. it keeps."""
    value = "a-1" + character
    payload = {**CASES[SystemAlert].full, "alert_id": value}
    rejection = agreed(_with(SystemAlert, "alert_id", value, ascii_only), payload, SystemAlert)
    assert isinstance(rejection, Rejection)
    assert rejection.field == "payload.alert_id"
    assert rejection.detail.startswith("payload.alert_id: an alert id must not be . or ..")
    assert "drawn as nothing" in rejection.detail


@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
@pytest.mark.parametrize("value", [*TAKEN, "...", "a/../b"], ids=ascii)
def test_an_alert_id_in_any_script_is_taken(value: str, ascii_only: bool) -> None:
    """An alert_id in any script, with an emoji, blank, or of dots but . and .., is taken as
    sent by both paths alike."""
    payload = {**CASES[SystemAlert].full, "alert_id": value}
    envelope = agreed(_with(SystemAlert, "alert_id", value, ascii_only), payload, SystemAlert)
    assert isinstance(envelope, Envelope)
    assert envelope.payload.alert_id == value  # type: ignore[attr-defined]
