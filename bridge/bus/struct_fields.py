"""The translation of a message model's core schema into the fields of its msgspec Structs.

Each field's core schema (the contract) becomes a msgspec type that accepts a subset of what the
model accepts, to the same values: strict JSON types, the same bounds, lengths, literals and
patterns (``struct_patterns``), a number refusing a bool and a bool taking true and false alone
(as ``Message`` makes every number's and bool's). A number given as text, or any other form only
the model's lax rules take, is not in that subset: the pydantic-core path and the reference
decoder judge it. A part of a schema this translation does not know raises ``Unsupported``,
which keeps its model off the msgspec path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, Union

import msgspec

from bridge.bus.struct_patterns import ALERT_ID, ALERT_ID_CLEAN, LABEL, NAME, NODE_NAME
from bridge.messages import (
    ALERT_ID_PATTERN,
    LABEL_PATTERN,
    NAME_PATTERN,
    NODE_PATTERN,
    Message,
    visible_name,
)
from bridge.messages._base import (
    boolean_schema,
    node_joiners_placed,
    number_schema,
    to_utc_ms,
)

__all__ = [
    "PayloadField",
    "Unsupported",
    "fields_schema",
    "is_name",
    "node_fields",
    "struct_field",
]

_UNSET: Final = msgspec.UNSET


class Unsupported(Exception):
    """A part of a core schema the translation does not know: its model stays off the msgspec
    path."""


@dataclass(frozen=True, slots=True)
class PayloadField:
    """One payload field as the Struct decodes it and as the model instance gets it."""

    name: str
    # The default of a field that may be left out (a factory is called for each message).
    default: Any = _UNSET
    factory: Callable[[], Any] | None = None
    timestamp: bool = False
    # A JSON string when given and not null (for counting the strings a payload holds).
    text: bool = False

    @property
    def required(self) -> bool:
        """Whether a payload must give the field: it has no default."""
        return self.factory is None and self.default is _UNSET


def _annotated(kind: type, schema: Mapping[str, Any], **meta: Any) -> Any:
    bounds = {key: schema[key] for key in ("ge", "gt", "le", "lt") if key in schema}
    meta.update(bounds)
    return Annotated[kind, msgspec.Meta(**meta)] if meta else kind


_KNOWN_KEYS: Final = {
    "str": {"type", "min_length", "max_length", "pattern", "strict", "metadata"},
    "int": {"type", "ge", "gt", "le", "lt", "strict", "metadata"},
    # allow_inf_nan: msgspec reads no JSON number as a NaN or an infinity.
    "float": {"type", "ge", "gt", "le", "lt", "strict", "allow_inf_nan", "metadata"},
    "bool": {"type", "strict", "metadata"},
    "chain": {"type", "steps", "metadata"},
    "custom-error": {"type", "schema", "custom_error_type", "custom_error_message", "metadata"},
    "any": {"type", "metadata"},
    "literal": {"type", "expected", "metadata"},
    "nullable": {"type", "schema", "metadata"},
    "list": {"type", "items_schema", "strict", "metadata"},
    "dict": {"type", "keys_schema", "values_schema", "strict", "metadata"},
}


def _type(schema: Mapping[str, Any], str_max: int | None, checked: bool) -> Any:
    """The msgspec type that decodes a strict subset of what ``schema`` validates, to the same
    values (timestamps aside: see struct_field)."""
    kind = schema["type"]
    if _is_node_name(schema):
        # Where a node name's joiners stand: the Structs' NODE_NAME takes none (clean bytes hold
        # none), leaving a name with one to the pydantic-core path, so there is nothing to check.
        return _type(schema["schema"], str_max, checked)
    if kind not in _KNOWN_KEYS or not schema.keys() <= _KNOWN_KEYS[kind]:
        raise Unsupported(kind)
    if kind == "str":
        meta: dict[str, Any] = {"max_length": schema.get("max_length", str_max)}
        if schema.get("min_length"):
            meta["min_length"] = schema["min_length"]
        pattern = schema.get("pattern")
        if pattern == NAME_PATTERN:
            meta["pattern"] = NAME
        elif pattern == LABEL_PATTERN:
            if checked:
                meta["pattern"] = LABEL
        elif pattern == NODE_PATTERN:
            if checked:
                meta["pattern"] = NODE_NAME
        elif pattern == ALERT_ID_PATTERN:
            meta["pattern"] = ALERT_ID if checked else ALERT_ID_CLEAN
        elif pattern is not None:
            raise Unsupported(pattern)
        return _annotated(str, schema, **{k: v for k, v in meta.items() if v is not None})
    if kind == "chain":  # a number refusing a bool (msgspec's refuses one anyway)
        number = number_schema(schema)
        if number is None:
            raise Unsupported("chain")
        return _type(number, str_max, checked)
    if kind == "custom-error":  # a bool taking true and false alone (msgspec's takes no more)
        boolean = boolean_schema(schema)
        if boolean is None:
            raise Unsupported("custom-error")
        return _type(boolean, str_max, checked)
    if kind == "int":
        return _annotated(int, schema)
    if kind == "float":
        return _annotated(float, schema)
    if kind == "bool":
        return bool
    if kind == "any":
        return Any
    if kind == "literal":
        expected = tuple(schema["expected"])
        if not all(isinstance(value, str) for value in expected):
            raise Unsupported("literal")
        return Literal[expected]
    if kind == "nullable":
        return _type(schema["schema"], str_max, checked) | None
    if kind == "list":
        items = schema.get("items_schema")
        return list[_type(items, str_max, checked) if items else Any]  # type: ignore[misc]
    keys, values = schema.get("keys_schema"), schema.get("values_schema")
    return dict[  # type: ignore[misc]
        _type(keys, str_max, checked) if keys else Any,
        _type(values, str_max, checked) if values else Any,
    ]


def _is_node_name(schema: Mapping[str, Any]) -> bool:
    """Whether ``schema`` is a ``NodeLabel``'s: its pattern, then ``node_joiners_placed``."""
    return (
        schema["type"] == "function-after"
        and schema["function"]["function"] is node_joiners_placed
        and schema["schema"].get("pattern") == NODE_PATTERN
    )


def _is_timestamp(schema: Mapping[str, Any]) -> bool:
    return schema["type"] == "function-after" and schema["function"]["function"] is to_utc_ms


def struct_field(
    name: str, schema: Mapping[str, Any], filled: bool, str_max: int | None, checked: bool
) -> tuple[PayloadField, Any, Any]:
    """The field ``name`` (its ``schema`` in the model's fields) as a Struct holds it: the
    ``PayloadField``, its Struct annotation and its Struct default."""
    # serialization_exclude_if (OmittedWhenNone) says how the model writes the field, not how
    # a payload is read.
    if not schema.keys() <= {"type", "schema", "metadata", "frozen", "serialization_exclude_if"}:
        raise Unsupported(f"field {name}: {sorted(schema)}")
    inner = schema["schema"]
    default: Any = _UNSET
    factory = None
    if inner["type"] == "default":
        if inner.get("default_factory_takes_data") or inner.get("validate_default"):
            raise Unsupported(f"field {name}: default")
        factory = inner.get("default_factory")
        default = inner.get("default", _UNSET)
        if factory is None and not isinstance(default, str | int | float | bool | None):
            raise Unsupported(f"field {name}: a mutable default")
        inner = inner["schema"]
    optional = filled or factory is not None or default is not _UNSET
    stamp = _is_timestamp(inner) or (inner["type"] == "nullable" and _is_timestamp(inner["schema"]))
    if stamp:
        # Decoded as text; the builder makes an RFC 3339 one the instant (instants.timestamp).
        kind: Any = str | None if inner["type"] == "nullable" else str
    else:
        kind = _type(inner, str_max, checked)
    if filled:
        kind = kind | None  # left out or null: filled from the envelope or derived
    value = inner["schema"] if inner["type"] == "nullable" else inner
    if _is_node_name(value):
        value = value["schema"]
    text = stamp or value["type"] in ("str", "literal")
    if optional:
        field = PayloadField(name, default, factory, stamp, text)
        return field, Union[kind, msgspec.UnsetType], _UNSET  # noqa: UP007
    return PayloadField(name, timestamp=stamp, text=text), kind, msgspec.NODEFAULT


def fields_schema(model: type[Message]) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
    """The model's ``model-fields`` schema, its config and its after-validators."""
    schema: Any = model.built_core_schema()
    after = []
    while schema["type"] in ("function-after", "function-before"):
        if schema["type"] == "function-after":
            if schema["function"]["type"] != "no-info":
                raise Unsupported("an after-validator taking info")
            after.append(schema["function"]["function"])
        schema = schema["schema"]
    if schema["type"] != "model" or schema["cls"] is not model:
        raise Unsupported(schema["type"])
    config = schema.get("config", {})
    inner = schema["schema"]
    # Before-validators around the fields only fill the FILLED fields (see Message.wire_schema).
    while inner["type"] == "function-before":
        inner = inner["schema"]
    if inner["type"] != "model-fields" or inner.get("computed_fields"):
        raise Unsupported(inner["type"])
    if config.get("extra_fields_behavior") != "forbid":
        raise Unsupported("extra fields")
    return inner["fields"], config, after


def is_name(schema: Mapping[str, Any]) -> bool:
    """Whether a field is a ``Name``: its value checked by ``visible_name`` after its pattern
    (on this path by ``build``, on the Struct's value, before any model is built)."""
    inner = schema["schema"]
    return inner["type"] == "function-after" and inner["function"]["function"] is visible_name


def node_fields(fields: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The payload fields holding a node name (``NODE_PATTERN``): those holding one, and those
    holding a list of them."""
    ones, lists = [], []
    for name, field in fields.items():
        schema = field["schema"]
        while schema["type"] in ("default", "nullable"):
            schema = schema["schema"]
        if schema["type"] == "list":
            if "items_schema" in schema and _is_node_name(schema["items_schema"]):
                lists.append(name)
        elif _is_node_name(schema):
            ones.append(name)
    return tuple(ones), tuple(lists)
