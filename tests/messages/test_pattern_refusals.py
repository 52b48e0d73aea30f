"""A string a message field's pattern refuses (``pattern_refused``) is said in the same words by
ingest, ``publish`` and the integration API, never as pydantic's message quoting the pattern."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import pytest

from bridge.bus import Rejection, decode_envelope
from bridge.cli import main
from bridge.errors import MessageError
from bridge.integration import Integration
from bridge.messages import Message
from tests.bus.envelope_helpers import body_of
from tests.collectors.fakes import make_bus
from tests.messages.helpers import CASES

# A control character: every field pattern refuses one.
REFUSED = "disk\x01"
RAW = "String should match pattern"


def _holds_pattern(schema: Any) -> bool:
    if isinstance(schema, dict):
        return isinstance(schema.get("pattern"), str) or any(
            _holds_pattern(part) for part in schema.values()
        )
    return isinstance(schema, list) and any(_holds_pattern(part) for part in schema)


def _is_list(schema: dict[str, Any]) -> bool:
    shapes = [schema, *schema.get("anyOf", ())]
    return any(shape.get("type") == "array" for shape in shapes)


# Every payload field with a pattern, found in the models' JSON Schema (a list of them too), so
# that a field given one later is checked here without being named.
PATTERN_FIELDS = [
    (model, name, [REFUSED] if _is_list(schema) else REFUSED)
    for model in CASES
    for name, schema in model.model_json_schema()["properties"].items()
    if _holds_pattern(schema)
]


def _words(said: str, where: str) -> str:
    """What ``said`` says of the field at ``where``: between it and the value got."""
    assert f"{where}: " in said, said
    return said.split(f"{where}: ", 1)[1].split(" (got ", 1)[0].strip()


def test_every_kind_of_pattern_field_is_found() -> None:
    """The fields found are the node names, label values, alert ids and names of the models:
    at least a node, a label, an alert id, a name and a list of node names."""
    found = {(model.TAG, name) for model, name, _ in PATTERN_FIELDS}
    expected = {
        ("performance_metric", "node"),
        ("performance_metric", "component"),
        ("system_alert", "alert_id"),
        ("alert_acknowledged", "ack_by"),
        ("cluster_health_updated", "degraded_nodes"),
    }
    assert expected <= found
    assert len(found) >= 50


@pytest.mark.parametrize(
    ("model", "name", "value"),
    PATTERN_FIELDS,
    ids=[f"{model.TAG}.{name}" for model, name, _ in PATTERN_FIELDS],
)
def test_a_value_a_pattern_refuses_is_said_alike_by_ingest_publish_and_the_integration_api(
    model: type[Message],
    name: str,
    value: str | list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A field given a control character is refused by ingest, ``publish --stdin`` and the
    integration API's ``build`` in the same words, and none quotes the pattern."""
    payload = {**CASES[model].full, name: value}
    where = name if isinstance(value, str) else f"{name}.0"

    rejection = decode_envelope(body_of(payload, model))
    assert isinstance(rejection, Rejection)
    by_ingest = _words(rejection.detail, f"payload.{where}")

    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(payload)))
    assert main(["publish", model.TAG, "--stdin", "--url", "http://127.0.0.1:9"]) == 2
    by_publish = _words(capsys.readouterr().err, f"{model.TAG}.{where}")

    with pytest.raises(MessageError) as refused:
        Integration(make_bus()).build(model, **payload)
    by_the_api = _words(str(refused.value), f"{model.__name__}.{where}")

    assert by_publish == by_the_api == by_ingest
    assert RAW not in by_ingest
    assert "must not" in by_ingest


def test_publish_shows_a_refused_value_s_hidden_character_as_its_escape(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The value ``publish`` says it got shows a character drawn as nothing (a Hangul filler,
    which Python's repr leaves as it is) as its escape, as the refusal's words name it."""
    model = next(model for model, _, _ in PATTERN_FIELDS if model.TAG == "performance_metric")
    payload = {**CASES[model].full, "component": "db\u3164writer"}
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(payload)))
    assert main(["publish", model.TAG, "--stdin", "--url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "(got 'db\\u3164writer')" in err, err
    assert "\u3164" not in err
