"""The field tables and JSON Schemas say what the models really accept, require and fill in."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pydantic import ValidationError

from bridge.messages import TAGS, Message
from bridge.schema import (
    DERIVED_DEFAULTS,
    RULES,
    closest_tag,
    describe,
    model_named,
    tags_by_instance,
    wire_schema,
)

NODE = "node1@host"
TS = "2026-11-28T00:00:00.123Z"
MODELS = sorted(TAGS.values(), key=lambda model: model.TAG)


def _sample(node: dict[str, Any]) -> Any:
    """A valid value for one property of a JSON Schema (the first allowed, the least allowed)."""
    for option in node.get("anyOf", ()):
        if option.get("type") != "null":
            return _sample(option)
    if "enum" in node:
        return node["enum"][0]
    kind = node.get("type")
    if kind == "string":
        return TS if node.get("format") == "date-time" else "x" * max(node.get("minLength", 1), 1)
    if kind in ("integer", "number"):
        low = node.get("minimum", node.get("exclusiveMinimum", 0))
        return int(low) + 1 if kind == "integer" else float(low) + 1.5
    if kind == "boolean":
        return True
    return [] if kind == "array" else {}


def _required_only(model: type[Message]) -> dict[str, Any]:
    """A payload of just the fields the table marks required."""
    schema = model.model_json_schema()
    return {
        row.name: _sample(schema["properties"][row.name]) for row in describe(model) if row.required
    }


def _validators(model: type[Message], mode: str) -> list[str]:
    decorators = model.__pydantic_decorators__.model_validators.values()
    return [d.cls_var_name for d in decorators if d.info.mode == mode]


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.TAG)
def test_a_payload_of_the_required_fields_is_valid(model: type[Message]) -> None:
    """The fields marked required are enough: the envelope's node fills in the rest."""
    model.model_validate(_required_only(model), context={"node": NODE})


@pytest.mark.parametrize(
    ("model", "field"),
    [(m, row.name) for m in MODELS for row in describe(m) if row.required],
    ids=lambda value: value if isinstance(value, str) else value.TAG,
)
def test_every_required_field_is_required(model: type[Message], field: str) -> None:
    """Leaving out a field marked required is refused, naming that field."""
    payload = _required_only(model)
    del payload[field]
    with pytest.raises(ValidationError) as caught:
        model.model_validate(payload, context={"node": NODE})
    assert field in {str(error["loc"][0]) for error in caught.value.errors() if error["loc"]}


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.TAG)
def test_literal_defaults_are_what_the_model_fills_in(model: type[Message]) -> None:
    """A default shown as a literal (`"system"`, `1`, `{}`, `null`) is the value taken."""
    message = model.model_validate(_required_only(model), context={"node": NODE})
    dumped = message.model_dump(mode="json")
    for row in describe(model):
        literal = re.fullmatch(r"`([^`]*)`", row.default)
        if literal:
            # A field the payload leaves out is null (ClusterHealth's counts when unset).
            assert dumped.get(row.name) == json.loads(literal.group(1)), row.name


@pytest.mark.parametrize("model", [m for m in MODELS if "node" in m.model_fields])
def test_node_defaults_to_the_envelopes_node(model: type[Message]) -> None:
    """A payload without ``node`` takes the envelope's; without an envelope it is required."""
    payload = _required_only(model)
    assert model.model_validate(payload, context={"node": NODE}).node == NODE  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="node"):
        model.model_validate(payload)


@pytest.mark.parametrize(("tag", "field"), sorted(DERIVED_DEFAULTS))
def test_computed_defaults_are_filled_when_left_out_or_null(tag: str, field: str) -> None:
    """A field with a computed default takes a value when it is missing and when it is null."""
    model = TAGS[tag]
    assert field in model.model_fields
    payload = _required_only(model)
    for given in (payload, {**payload, field: None}):
        message = model.model_validate(given, context={"node": NODE})
        assert getattr(message, field) is not None


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.TAG)
def test_every_validator_is_documented(model: type[Message]) -> None:
    """Computed defaults are in DERIVED_DEFAULTS, checks across fields in RULES, and only those."""
    derived = {tag for tag, _ in DERIVED_DEFAULTS}
    assert bool(_validators(model, "before")) == (model.TAG in derived)
    assert bool(_validators(model, "after")) == (model.TAG in RULES)


@pytest.mark.parametrize(
    ("model", "field", "allowed"),
    [(m, row.name, row.allowed) for m in MODELS for row in describe(m) if row.allowed],
    ids=lambda value: value if isinstance(value, str) else getattr(value, "TAG", ""),
)
def test_allowed_values_are_accepted_and_others_refused(
    model: type[Message], field: str, allowed: tuple[str, ...]
) -> None:
    """Each allowed value is accepted; a value outside the list is refused."""
    payload = _required_only(model)
    shape = model.model_json_schema()["properties"][field]
    for value in allowed:
        given = {value: 1} if "propertyNames" in shape else value
        model.model_validate({**payload, field: given}, context={"node": NODE})
    outside = {"no_such_value": 1} if "propertyNames" in shape else "no_such_value"
    with pytest.raises(ValidationError):
        model.model_validate({**payload, field: outside}, context={"node": NODE})


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.TAG)
def test_the_json_schema_requires_what_the_table_requires(model: type[Message]) -> None:
    """``schema TAG --json`` and the table agree on the required fields and list the same ones."""
    schema = wire_schema(model)
    rows = describe(model)
    assert set(schema.get("required", ())) == {row.name for row in rows if row.required}
    assert list(schema["properties"]) == [row.name for row in rows]
    assert schema["additionalProperties"] is False


def test_a_computed_default_is_described_not_given_as_its_placeholder() -> None:
    """requires_ack is not "default false" in the JSON Schema: it depends on severity."""
    requires_ack = wire_schema(TAGS["system_alert"])["properties"]["requires_ack"]
    assert "default" not in requires_ack
    assert "severity" in requires_ack["description"]


def test_tags_are_grouped_by_their_instance() -> None:
    """Nine instances, 36 tags, each under its own instance."""
    grouped = tags_by_instance()
    assert len(grouped) == 9
    assert sum(len(models) for models in grouped.values()) == 36
    assert all(instance == m.INSTANCE for instance, models in grouped.items() for m in models)


@pytest.mark.parametrize(
    ("given", "closest"),
    [
        ("performance_metrics", "performance_metric"),
        ("systemalert", "system_alert"),
        ("node_health", "node_health_updated"),
        ("LOG_ENTRY", "log_entry"),
    ],
)
def test_the_closest_tag_is_found(given: str, closest: str) -> None:
    """A misspelt tag or a class name leads to the tag meant."""
    assert closest_tag(given) == closest


@pytest.mark.parametrize("given", ["nosuch", "x", "log", "metrics_of_the_cluster"])
def test_no_tag_is_found_for_a_name_like_none(given: str) -> None:
    """A name no tag resembles much leads to none, rather than to the least unlike."""
    assert closest_tag(given) is None


def test_a_model_is_found_by_tag_or_class_name() -> None:
    """``schema`` takes the tag or the class name; anything else is None."""
    assert model_named("system_alert") is model_named("SystemAlert") is TAGS["system_alert"]
    assert model_named("no_such_tag") is None
