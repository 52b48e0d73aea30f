"""The builders: generated code making a model's values and its envelope of a decoded Struct.

For each message model on the msgspec path one ``build`` is written out and compiled: it reads
the payload Struct a decoder returned as the model would have it (timestamps read, a node name
with a blank at an end or a ``Name`` showing nothing left to the pydantic-core path, defaults
filled, derived fields computed, after-validators run), appends the ``Envelope`` carrying it,
and counts the keys and string values its JSON held for the duplicate-key check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec

from bridge.bus.envelope import Unbuilt
from bridge.bus.instants import Instant, known_timestamp, timestamp
from bridge.bus.payload_walks import keys_in, object_fields, string_lists, strings_in
from bridge.bus.struct_fields import PayloadField, Unsupported
from bridge.hidden import joiners_placed
from bridge.messages import Message, visible_name
from bridge.messages._base import MAX_WHOLE

__all__ = ["Build", "builder"]

_UNSET: Final = msgspec.UNSET


Build = Callable[[Any, Instant, Callable[[Any], None], Callable[..., Any]], int | None]
"""``build(wire, instant, append, envelope)``: see ``builder``."""


def builder(
    model: type[Message],
    described: list[PayloadField],
    after: tuple[Callable[[Any], Any], ...],
    names: frozenset[str],
    nodes: tuple[tuple[str, ...], tuple[str, ...]],
    checked: bool,
) -> Build:
    """``build(wire, instant, append, envelope)`` for ``model``: ``append``s the
    ``envelope(...)`` made of the wire envelope ``wire`` (its ``ts`` read as ``instant``, an
    ``Instant``) and the payload Struct it holds, its values made the model's (timestamps read,
    defaults filled), and returns how many keys and string values (at any depth) its JSON
    held (each opens and closes with a quote): or None, appending nothing, where the
    pydantic-core path must decide.

    The model instance is not built here: the Envelope holds the Struct in its payload's place
    and an ``Unbuilt`` (the model and its fields set), and the model is built from them when
    ``payload`` is first read (a sink reading ``fields`` never needs it). A model with an
    after-validator is built here, for the validator to judge it. The ``names`` (its ``Name``
    fields) are judged by ``visible_name`` on the Struct's values, with no model built; the
    envelope's node and the ``nodes`` (its fields holding a node name, and lists of them) are
    looked at for a blank at either end, which the clean Structs do not check; ``checked`` (the
    builder of the Structs checking the patterns, which take a joiner inside a node name), for
    where a joiner stands (``joiners_placed``) in one outside ASCII too: clean bytes hold
    none, so the clean Structs' builder does not look.

    It runs for every message, so it is written out for each model as straight-line code (one
    step per field that needs one; loops over a model's fields cost a third more), then
    compiled, as dataclasses writes ``__init__``. The names it uses are bound in ``scope``. The
    envelope is made here, not by the caller, so that nothing is handed back but a count.
    """
    filled = model.FILLED
    scope: dict[str, Any] = {
        "UNSET": _UNSET,
        "known_timestamps": known_timestamp,
        "timestamp": timestamp,
        "keys_in": keys_in,
        "strings_in": strings_in,
        "model": model,
        "TAG": model.TAG,
        "after": after,
        "setattr": setattr,
        "visible_name": visible_name,
        "joiners_placed": joiners_placed,
        "MAX_WHOLE": MAX_WHOLE,
    }
    # A required string is always one; any other is counted when given.
    always = [f for f in described if f.text and f.name not in filled and f.required]
    code = [
        "def build(wire, instant, append, envelope):",
        "    node = wire.node",
        # A blank at either end: NODE_PATTERN refuses it, the clean Struct does not. On clean
        # bytes a blank is whitespace: the other, the braille blank U+2800, makes bytes unclean
        # (batch_scans.is_clean). str.strip returns the very string when it strips nothing
        # (CPython): a third of the cost of testing both ends' characters.
        "    if node.strip() is not node:",
        "        return None",
        *(
            ["    if not node.isascii() and not joiners_placed(node):", "        return None"]
            if checked
            else []
        ),
        "    payload = wire.payload",
        # One per field, less those left out, and one per string value.
        f"    keys = {len(described) + len(always)}",
    ]
    # Timestamps and the node are counted where they are read anyway (below).
    counted_below = {field.name for field in described if field.timestamp}
    if "node" in filled:
        counted_below.add("node")
    node_text = any(field.name == "node" and field.text for field in described)
    for field in described:
        if field.text and field not in always and field.name not in counted_below:
            code += [
                f"    if payload.{field.name}.__class__ is str:",
                "        keys += 1",
            ]
    for field in described:
        if field.timestamp:  # an RFC 3339 text becomes the instant, any other goes on
            code += [
                f"    text = payload.{field.name}",
                "    if text.__class__ is str:",
                *(["        keys += 1"] if field.text and field not in always else []),
                "        if text == wire.ts:",  # mostly the envelope's: read already
                "            instant_ = instant[2]",
                "        else:",
                "            instant_ = known_timestamps(text) or timestamp(text)",
                "        if instant_ is None:",
                "            return None",
                f"        payload.{field.name} = instant_",
            ]
    ones, lists = nodes
    for name in ones:  # a node name with a blank at an end (left out or null: the envelope's)
        code += [
            f"    value = payload.{name}",
            "    if value.__class__ is str and value.strip() is not value:",
            "        return None",
        ]
        if checked:
            code += [
                "    if value.__class__ is str and not value.isascii()"
                " and not joiners_placed(value):",
                "        return None",
            ]
    for name in lists:
        code += [
            f"    value = payload.{name}",
            "    if value.__class__ is list:",
            "        for item in value:",
            "            if item.strip() is not item:",
            "                return None",
            *(
                [
                    "            if not item.isascii() and not joiners_placed(item):",
                    "                return None",
                ]
                if checked
                else []
            ),
        ]
    for name in sorted(names):  # a Name the pattern took may still show nothing: goes on
        code += [
            f"    value = payload.{name}",
            "    if value.__class__ is str:",
            "        try:",
            "            visible_name(value)",
            "        except ValueError:",
            "            return None",
        ]
    defaulted = [
        field
        for field in described
        if field.name not in filled and (field.factory is not None or field.default is not _UNSET)
    ]
    # The model and fields set of each combination of defaulted fields left out (bit n: the
    # n-th), made once and shared: a message's model is frozen, so nothing adds to its set
    # (model_copy copies it), and a set made for each message cost 4% of decoding it.
    scope["unbuilt"] = tuple(
        Unbuilt(
            model,
            {field.name for field in described}
            - {field.name for bit, field in enumerate(defaulted) if left_out >> bit & 1},
        )
        for left_out in range(2 ** len(defaulted))
    )
    code.append("    left_out = 0")
    for bit, field in enumerate(defaulted):  # left out: the default, and not set
        default = f"default_{field.name}"
        scope[default] = field.factory or field.default
        code += [
            f"    if payload.{field.name} is UNSET:",
            "        keys -= 1",
            f"        left_out |= {1 << bit}",
            f"        payload.{field.name} = {default}{'()' if field.factory else ''}",
        ]
    if model.DERIVED:  # left out or null: None, then derived (as fill_derived does)
        code.append("    missing = []")
    for name in model.DERIVED:
        code += [
            f"    value = payload.{name}",
            "    if value is UNSET:",
            "        keys -= 1",
            f"        payload.{name} = None",
            f"        missing.append({name!r})",
            "    elif value is None:",
            f"        missing.append({name!r})",
        ]
    if "node" in filled:  # left out or null: the envelope's
        code += [
            "    value = payload.node",
            *(["    if value.__class__ is str:", "        keys += 1"] if node_text else []),
            f"    {'elif' if node_text else 'if'} value is UNSET:",
            "        keys -= 1",
            "        payload.node = node",
            "    elif value is None:",
            "        payload.node = node",
        ]
    for name in string_lists(model):  # each item a string (the Struct's type), no key
        code += [
            f"    value = payload.{name}",
            "    if value:",
            "        keys += len(value)",
        ]
    for name in object_fields(model):  # the keys (and strings) of the objects it holds
        code += [
            f"    value = payload.{name}",
            "    if value:",
            "        keys += keys_in(value)",
            "        keys += strings_in(value)",
        ]
    if model.DERIVED:
        # _derived's values; the names fill_derived would add to the fields set are in every
        # shared one already (a DERIVED field is FILLED, never left out of it).
        if not all(set(model.DERIVED) <= found.fields_set for found in scope["unbuilt"]):
            raise Unsupported("a DERIVED field that may be left out of the fields set")
        code += [
            "    if missing:",
            "        for name, value in model._derived(payload, missing, node).items():",
            # A whole number past its field's bound (a sum of counts each within it): the
            # reference refuses it, naming the field.
            "            if value.__class__ is int and value > MAX_WHOLE:",
            "                return None",
            "            setattr(payload, name, value)",
        ]
    if after:  # what pydantic turns into a validation error goes on to pydantic
        code += [
            "    message = unbuilt[left_out].build(payload)",
            "    for check in after:",
            "        try:",
            "            check(message)",
            "        except (ValueError, AssertionError):",
            "            return None",
            "    append(envelope(wire.id, wire.instance, wire.topic, TAG, node, instant[0],"
            " message, instant[1]))",
        ]
    else:
        code.append(
            "    append(envelope(wire.id, wire.instance, wire.topic, TAG, node, instant[0],"
            " payload, instant[1], unbuilt[left_out]))"
        )
    code.append("    return keys")
    # Field names are identifiers and every value is bound by name: the source is ours alone.
    exec("\n".join(code), scope)  # noqa: S102
    build: Build = scope["build"]
    return build
