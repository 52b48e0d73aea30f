"""A message's numbers refusing a bool and its bools taking nothing else, made so once however
often its schema passes through: a Message as a field of another, a field marked
BOOLEANS_APART. Both decoders (the reference's model_validate of json.loads, the fast paths'
wire schema and msgspec Struct) read such a model alike."""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Final

import msgspec
import pytest
from pydantic import ValidationError
from pydantic_core import SchemaValidator

from bridge.bus.structs import Payload
from bridge.messages import Message
from bridge.messages._base import BOOLEANS_APART, boolean_schema, number_schema


class Inner(Message):
    """A message used as a field of another (built first, so its schema is reused whole)."""

    TAG: ClassVar[str] = "inner"
    INSTANCE: ClassVar[str] = "tests"

    count: int
    ratio: float
    enabled: bool


Inner.built_core_schema()


class Outer(Message):
    """A message holding an ``Inner``."""

    TAG: ClassVar[str] = "outer"
    INSTANCE: ClassVar[str] = "tests"

    inner: Inner
    count: int


class Marked(Message):
    """A message whose fields are marked BOOLEANS_APART, as the reference decoder's item
    validators are, then made so again by ``Message``."""

    TAG: ClassVar[str] = "marked"
    INSTANCE: ClassVar[str] = "tests"

    count: Annotated[int, BOOLEANS_APART]
    ratio: Annotated[float, BOOLEANS_APART]
    enabled: Annotated[bool, BOOLEANS_APART]


# Given, so that no default is drawn from the clock twice.
TIMESTAMP: Final = "2026-11-28T00:00:00Z"
# Values a number or a boolean field takes or refuses.
GIVEN: Final[list[Any]] = [1, 2.0, 2.5, "3", "1e1", "1_000", " 4 ", True, False, "true", None]


def _fields(schema: Any) -> dict[str, Any]:
    while schema["type"] != "model-fields":
        schema = schema["schema"]
    return {name: field["schema"] for name, field in schema["fields"].items()}


def _read(validate: Any, text: str) -> Any:
    try:
        return validate(text).model_dump()
    except ValidationError as exc:
        return [(error["loc"], error["msg"]) for error in exc.errors()]


def test_a_message_held_by_another_keeps_its_own_field_schemas() -> None:
    """The schema of a Message as another's field is its own, each number and boolean field
    still one ``number_schema`` and ``boolean_schema`` recognise (the fast paths read it by
    them), not wrapped a second time."""
    own = _fields(Inner.built_core_schema())
    held = _fields(_fields(Outer.built_core_schema())["inner"])
    assert held == own
    assert number_schema(held["count"]) == {"type": "int"}
    assert number_schema(held["ratio"]) == {"type": "float"}
    assert boolean_schema(held["enabled"]) == {"type": "bool", "strict": True}


@pytest.mark.parametrize("value", GIVEN, ids=repr)
@pytest.mark.parametrize("name", ["count", "ratio", "enabled"])
def test_a_message_held_by_another_is_read_alike_by_both_decoders(value: Any, name: str) -> None:
    """Each field of the held message, given a number, text or a boolean, is taken or refused
    by the reference and the fast paths' wire schema alike, and as the message alone takes or
    refuses it (the same errors, one level deeper)."""
    fields = {"timestamp": TIMESTAMP, "count": 1, "ratio": 0.5, "enabled": True, name: value}
    text = json.dumps({"inner": fields, "count": 1, "timestamp": TIMESTAMP})
    reference = _read(lambda t: Outer.model_validate(json.loads(t)), text)
    wire = SchemaValidator(Outer.wire_schema()).validate_json
    assert _read(wire, text) == reference
    alone = _read(lambda t: Inner.model_validate(json.loads(t)), json.dumps(fields))
    if isinstance(alone, dict):
        assert reference["inner"] == alone
    else:
        assert reference == [(("inner", *loc), msg) for loc, msg in alone]


@pytest.mark.parametrize("value", GIVEN, ids=repr)
@pytest.mark.parametrize("name", ["count", "ratio", "enabled"])
def test_a_field_marked_booleans_apart_is_on_the_fast_path_and_read_alike(
    value: Any, name: str
) -> None:
    """A message whose fields are marked BOOLEANS_APART has a msgspec Struct (it is not left
    off the fast path), which takes only what the reference takes, with its values; the wire
    schema takes or refuses each value as the reference does."""
    fields = {"timestamp": TIMESTAMP, "count": 1, "ratio": 0.5, "enabled": True, name: value}
    text = json.dumps(fields)
    reference = _read(lambda t: Marked.model_validate(json.loads(t)), text)
    assert _read(SchemaValidator(Marked.wire_schema()).validate_json, text) == reference
    struct = Payload(Marked).checked.struct
    try:
        taken = msgspec.json.decode(text, type=struct)
    except msgspec.ValidationError:
        return  # left to the pydantic-core path
    assert isinstance(reference, dict)
    numbers = ("count", "ratio", "enabled")
    assert {key: getattr(taken, key) for key in numbers} == {key: reference[key] for key in numbers}
