"""What each message type's payload holds, as rows a person reads and JSON Schema a tool reads.

Both come from the pydantic models in ``bridge.messages``. The one thing a model cannot say
itself is what its validators compute or check across fields: defaults computed from other
fields (a ``mode="before"`` validator) are written once in ``DERIVED_DEFAULTS``, checks across
fields (a ``mode="after"`` validator) in ``RULES``; a test holds every such validator to an entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import Any, Final

from bridge.choices import meant_said, word_meant
from bridge.hidden import NODE_SCHEMA_PATTERN
from bridge.messages import (
    INSTANCES,
    MESSAGE_TYPES,
    NAME_PATTERN,
    TAGS,
    Message,
    random_hex,
    utc_now,
)
from bridge.messages._base import ALERT_ID_SCHEMA_PATTERN, LABEL_SCHEMA_PATTERN

__all__ = [
    "CONTEXT_NODE_FIELD",
    "DERIVED_DEFAULTS",
    "RULES",
    "STRING_CAP",
    "FieldDoc",
    "closest_tag",
    "describe",
    "model_named",
    "summary",
    "tags_by_instance",
    "unknown_tag_message",
    "wire_schema",
]

CONTEXT_NODE_FIELD: Final = "node"
"""A payload field of this name left out (or null) is the envelope's ``node``."""

STRING_CAP: Final[int] = int(Message.model_config.get("str_max_length") or 0)
"""The length limit of every string in every payload (the models' ``str_max_length``)."""

_ENVELOPE_NODE: Final = "the envelope's `node`"

DERIVED_DEFAULTS: Final[Mapping[tuple[str, str], str]] = MappingProxyType(
    {
        ("system_alert", "requires_ack"): (
            "`true` when `severity` is `error` or `critical`, else `false`"
        ),
        ("throughput_metric", "rate_per_sec"): "`count` / (`duration_ms` / 1000)",
        ("cluster_membership_changed", "total_nodes"): "the number of `active_nodes`",
        ("cluster_membership_changed", "originating_node"): _ENVELOPE_NODE,
        ("error_analysis", "first_seen"): "now (the same instant as `last_seen`)",
        ("error_analysis", "last_seen"): "now (the same instant as `first_seen`)",
        ("log_summary", "nodes_reporting"): "a list of the envelope's `node`",
        ("log_summary", "total_logs"): "the sum of `log_counts`",
    }
)
"""Defaults computed from the rest of the payload (or the envelope), keyed by (tag, field)."""

RULES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "cluster_health_updated": (
            "`total_nodes` must be at least `healthy_nodes`, and `degraded_count` "
            "(`unhealthy_count`), when given, at least the number of nodes `degraded_nodes` "
            "(`unhealthy_nodes`) names: the count of nodes in that state when the list names only "
            "some of them (the bridge's cluster monitor names at most 100 of each); null means "
            "the list names them all, and the bridge then leaves the field out, which a bridge "
            "of a version before the counts requires (it refuses a payload that has them)."
        )
    }
)
"""Checks across fields, by tag, beyond each field's own type."""


@dataclass(frozen=True, slots=True)
class FieldDoc:
    """One payload field: its name, type, whether it must be given (else its default), values.

    ``default`` is Markdown (literals in backquotes), empty when ``required``.
    """

    name: str
    type: str
    required: bool
    default: str
    allowed: tuple[str, ...]


def model_named(name: str) -> type[Message] | None:
    """The model whose tag (or class name) is ``name``, or None."""
    model = TAGS.get(name)
    if model is not None:
        return model
    return next((m for m in TAGS.values() if m.__name__ == name), None)


def closest_tag(name: str) -> str | None:
    """The known tag nearest to ``name`` (by spelling, class names counted as their tag), or
    None when none is near enough to be what was meant (``nosuch``)."""
    return word_meant(name, TAGS, {model.__name__: model.TAG for model in TAGS.values()})


def unknown_tag_message(name: str) -> str:
    """What a command says of a message type it does not know: the closest tag, and where
    the list is; for a bus instance (``ex_esdb_health``, as ``examples/sign.sh`` takes one
    before the tag), its tags."""
    if name in INSTANCES:
        tags = ", ".join(model.TAG for model in tags_by_instance()[name])
        return (
            f"{name!r} is a bus instance, not a message type; its types: {tags}"
            " (give the type alone: its instance follows from it)"
        )
    meant = closest_tag(name)
    hint = f"; {meant_said(meant)}" if meant else ""  # as ingest names it, and a word meant
    return f"unknown message type {name!r}{hint} (exesdb-bridge schema lists them all)"


def tags_by_instance() -> dict[str, list[type[Message]]]:
    """The models of each bus instance, instances in bus order, models in registry order."""
    grouped: dict[str, list[type[Message]]] = {instance: [] for instance in INSTANCES}
    for (instance, _), model in MESSAGE_TYPES.items():
        grouped[instance].append(model)
    return grouped


def describe(model: type[Message]) -> tuple[FieldDoc, ...]:
    """The payload fields of ``model``, in declaration order."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    rows = []
    for name, node in schema["properties"].items():
        default = _default_text(model, name, node)
        rows.append(
            FieldDoc(
                name=name,
                type=_type_text(node),
                required=name in required and not default,
                default=default,
                allowed=_allowed(node),
            )
        )
    return tuple(rows)


def wire_schema(model: type[Message]) -> dict[str, Any]:
    """The JSON Schema of ``model``'s payload as ingest accepts it.

    Unlike pydantic's own schema, fields the envelope fills are not required, and a computed
    default is described instead of being given as the placeholder the model declares.
    """
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["description"] = f"{summary(model)} (tag {model.TAG}, bus instance {model.INSTANCE})"
    for name, node in schema["properties"].items():
        derived = DERIVED_DEFAULTS.get((model.TAG, name))
        if name == CONTEXT_NODE_FIELD:
            derived = _ENVELOPE_NODE
        if derived is not None:
            node.pop("default", None)
            node["description"] = "Default: " + derived.replace("`", "")
    schema["required"] = [name for name in schema.get("required", ()) if _required(model, name)]
    if not schema["required"]:
        del schema["required"]
    return schema


def _required(model: type[Message], name: str) -> bool:
    return name != CONTEXT_NODE_FIELD and (model.TAG, name) not in DERIVED_DEFAULTS


def summary(model: type[Message]) -> str:
    """The first line of the model's docstring, without its full stop."""
    return (model.__doc__ or model.__name__).strip().splitlines()[0].rstrip(".")


# -- defaults --

_FACTORY_TEXT: Final[Mapping[Callable[..., Any], str]] = MappingProxyType(
    {dict: "`{}`", list: "`[]`", utc_now: "now", random_hex: "16 random hex characters"}
)


def _default_text(model: type[Message], name: str, node: Mapping[str, Any]) -> str:
    derived = DERIVED_DEFAULTS.get((model.TAG, name))
    if derived is not None:
        return derived
    if name == CONTEXT_NODE_FIELD:
        return _ENVELOPE_NODE
    info = model.model_fields[name]
    factory = info.default_factory
    if factory is not None:
        if isinstance(factory, partial) and factory.func is random_hex and factory.args:
            return f"`{factory.args[0]}` + 16 random hex characters"
        return _FACTORY_TEXT.get(factory, "computed")
    if "default" in node:
        return f"`{json.dumps(node['default'])}`"
    return ""


# -- types --


def _allowed(node: Mapping[str, Any]) -> tuple[str, ...]:
    for key in ("enum", "propertyNames"):
        found = node.get(key)
        if isinstance(found, list):
            return tuple(str(value) for value in found)
        if isinstance(found, dict) and isinstance(found.get("enum"), list):
            return tuple(str(value) for value in found["enum"])
    for option in node.get("anyOf", ()):
        values = _allowed(option)
        if values:
            return values
    return ()


def _type_text(node: Mapping[str, Any]) -> str:
    options = node.get("anyOf")
    if options:
        kinds = [_type_text(option) for option in options if option.get("type") != "null"]
        nullable = any(option.get("type") == "null" for option in options)
        return " or ".join(kinds) + (" or null" if nullable else "")
    kind = node.get("type")
    if kind == "string":
        if node.get("format") == "date-time":
            return "timestamp (RFC 3339)"
        return "string" + _length(node)
    if kind in ("number", "integer"):
        return str(kind) + _bounds(node)
    if kind == "array":
        items = node.get("items") or {}
        return f"list of {_plural(_type_text(items))}" if items else "list"
    if kind == "object":
        values = node.get("additionalProperties")
        if "propertyNames" in node and isinstance(values, dict) and "enum" in node["propertyNames"]:
            return f"object of {_type_text(values)}, keyed by an allowed value"
        return "object"
    return str(kind or "any value")


def _plural(text: str) -> str:
    head, space, rest = text.partition(" ")
    return head + "s" + space + rest


# What a string's pattern refuses, as the payload rules of docs/messages.md name it.
_PATTERN_LABELS: Final = {
    LABEL_SCHEMA_PATTERN: ", no control, format or invisible characters",
    ALERT_ID_SCHEMA_PATTERN: ", no control, format or invisible characters, not `.` or `..`",
    NODE_SCHEMA_PATTERN: ", not blank at either end, no control, format or invisible characters",
    NAME_PATTERN: ", not blank, no control characters, line separators or bidirectional controls",
}


def _length(node: Mapping[str, Any]) -> str:
    low, high = node.get("minLength"), node.get("maxLength")
    label = _PATTERN_LABELS.get(node.get("pattern", ""), "")
    if high == STRING_CAP and low is None:
        return f" ({label[2:]})" if label else ""  # every string has this cap: said once
    if low is not None and high is not None:
        return f" ({low}-{high} characters{label})"
    if high is not None:
        return f" (at most {high} characters{label})"
    if low is not None:
        return f" (at least {low} characters{label})"
    return f" ({label[2:]})" if label else ""


def _bounds(node: Mapping[str, Any]) -> str:
    low, high = node.get("minimum"), node.get("maximum")
    above = node.get("exclusiveMinimum")
    if low is not None and high is not None:
        return f" {low}-{high}"
    if above is not None:
        return f" > {above}"
    if low is not None:
        return f" ≥ {low}"
    return f" ≤ {high}" if high is not None else ""
