"""The envelope decoder's fast path: msgspec Structs generated from the message models.

Each message model's core schema (the contract) is translated, when the decoders are first
read, into a msgspec Struct that accepts a subset of what the model accepts (strict JSON types,
the same bounds, lengths, literals and patterns) and then builds the very model instance pydantic
would, defaults filled; anything outside that subset is left to the pydantic-core path and the
reference decoder. A model whose schema holds a part this translation does not know stays off
this path (``OFF_PATH``).

Two decoders: ``CHECKED`` checks the label and node patterns (no control characters; in a node
name no zero-width character or bidirectional control either) itself; ``CLEAN`` leaves them
out, for bytes in which no JSON string can hold any of those (``is_clean``: escapes that write
none, ``\\u00b5`` or ``\\"``, may be there).
Both check the name pattern (``NAME_PATTERN``): clean bytes may still hold a line or paragraph
separator, written unescaped; and a name's ``visible_name`` (what no pattern says) is checked
as the model is made. A blank node name (``" "``), which clean bytes may hold, is left to the
pydantic-core path by ``build`` on either (``str.isspace``: a regex search for each node name
made decoding 11-20% slower). Neither checks the alphabets of ``id`` and ``topic``
(``in_alphabets``, a batch at once).
"""

from __future__ import annotations

import math
import re
import string
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

import msgspec

from bridge.bus.depth import MAX_DEPTH
from bridge.bus.envelope import (
    ENVELOPE_VERSION,
    ID_MAX_LENGTH,
    ID_MIN_LENGTH,
    NODE_MAX_LENGTH,
    TOPIC_MAX_LENGTH,
    TS_MAX_LENGTH,
    Unbuilt,
)
from bridge.hidden import HIDDEN_CHARACTERS
from bridge.messages import (
    ALERT_ID_PATTERN,
    MESSAGE_TYPES,
    NAME_PATTERN,
    NO_CONTROL_CHARACTERS,
    NODE_PATTERN,
    Message,
    visible_name,
)
from bridge.messages._base import MAX_WHOLE, boolean_schema, number_schema, to_utc_ms
from bridge.messages.timestamps import parse_timestamp

__all__ = [
    "BUILDERS",
    "CHECKED",
    "CLEAN",
    "DECODE_ERRORS",
    "MAX_DEPTH",
    "NOT_IN_NODE",
    "OFF_PATH",
    "PAYLOADS",
    "TOO_DEEP",
    "Build",
    "Instant",
    "Payload",
    "Variant",
    "finite",
    "in_alphabets",
    "is_clean",
    "keys_in",
    "object_fields",
    "strings_in",
    "timestamp",
    "unclean",
]

DECODE_ERRORS: Final = (msgspec.DecodeError, RecursionError)
"""What both decoders raise for bytes they do not take (ValidationError is a DecodeError;
RecursionError: nesting deeper than the decoder goes)."""

_UNSET: Final = msgspec.UNSET
_CONTROL: Final = r"\x00-\x1f\x7f-\x9f"  # C0 (NUL included), DEL and C1
_NODE_REFUSED: Final = _CONTROL + HIDDEN_CHARACTERS  # the characters NODE_PATTERN refuses
NOT_IN_NODE: Final = _NODE_REFUSED + r"\ud800-\udfff"
"""The characters the envelope's ``node`` may not hold, as a regular expression's class: a
control character, a zero-width character or bidirectional control (``NODE_PATTERN``), or a
lone surrogate (an unpaired ``\\ud800``-``\\udfff`` escape: valid JSON, but no text a label, a
page or a message sent on can carry; the payload's strings are refused one by the models as
they are built)."""
# Python's re reads ``$`` as "end, or before a final newline": the patterns end at \Z instead.
_NO_CONTROL: Final = rf"\A[^{_CONTROL}]*\Z"
# A node name: not blank and none of those characters, as NODE_PATTERN (whitespace, then one
# character neither whitespace nor refused, then any not refused).
_NODE_NAME: Final = rf"\A[^{_NODE_REFUSED}\S]*[^{_NODE_REFUSED}\s][^{_NODE_REFUSED}]*\Z"
_NODE_TEXT: Final = rf"\A[^{NOT_IN_NODE}\S]*[^{NOT_IN_NODE}\s][^{NOT_IN_NODE}]*\Z"
# An alert id: neither "." nor ".." (ALERT_ID_PATTERN), checked by both decoders (clean bytes
# may hold either), and without control characters (CHECKED's).
_ALERT_ID_CLEAN: Final = r"\A(?!\.{1,2}\Z)"
_ALERT_ID: Final = rf"\A(?!\.{{1,2}}\Z)[^{_CONTROL}]*\Z"
# The name pattern, ending at \Z too; only AlertAck's ack_by holds it, so no other message pays
# for it.
_NAME: Final = rf"\A{NAME_PATTERN.removeprefix('^').removesuffix('$')}\Z"

_ID_CHARACTERS: Final = string.ascii_letters.encode() + string.digits.encode() + b"_-"
_TOPIC_CHARACTERS: Final = _ID_CHARACTERS + b".:"


def in_alphabets(ids: str, topics: str) -> bool:
    """True when every character of ``ids`` may be in an ``id`` and every one of ``topics`` in a
    ``topic`` (their lengths the Structs check): a batch's, joined, checked at once."""
    # Deleting the characters allowed (in C) leaves nothing: several times a regular
    # expression's speed.
    return (
        ids.isascii()
        and topics.isascii()
        and not ids.encode().translate(None, _ID_CHARACTERS)
        and not topics.encode().translate(None, _TOPIC_CHARACTERS)
    )


def is_clean(data: bytes) -> bool:
    """True when no JSON string in ``data`` can hold a control character, a zero-width
    character or a bidirectional control (what a node name may not hold): no escape that
    writes one (``\\n``, ``\\u0085``, ``\\u200b``; ``\\u00b5`` or ``\\"`` write none), and none
    written raw but for C0 characters, which are not JSON."""
    return not _raw_unclean(data) and (b"\\" not in data or _UNCLEAN_ESCAPE.search(data) is None)


def _raw_unclean(data: bytes) -> bool:
    """Whether ``data`` holds, written raw in UTF-8, a DEL, a C1 control (``c2 80``-``c2 9f``),
    or a zero-width character or bidirectional control (``e2 80 8b``, ``ef bb bf``, ``d8 9c``)."""
    # Single bytes first (memchr); the searches only where the byte is. Each lead byte
    # searched for starts its character (no continuation byte is one).
    return (
        b"\x7f" in data
        or (b"\xc2" in data and _RAW_C1.search(data) is not None)
        or (b"\xe2" in data and _RAW_INVISIBLE.search(data) is not None)
        # A lead byte first: searching for two or three bytes is about 70 times slower.
        or (b"\xef" in data and b"\xef\xbb\xbf" in data)
        or (b"\xd8" in data and b"\xd8\x9c" in data)
    )


def unclean(bodies: Sequence[bytes], whole: bytes) -> list[int]:
    """The indexes of the ``bodies`` that are not ``is_clean`` (``whole``: the bytes they were
    cut from, or all of them): the escapes searched for in the bodies joined, unless a
    character they may not hold is written raw in one of them."""
    if _raw_unclean(whole):
        return [index for index, body in enumerate(bodies) if not is_clean(body)]
    # Each escape found in the bodies joined is given to the body it is in by its offset: a
    # search of each body, or a test of each for a backslash, costs more than finding the few
    # escapes of a batch (Python's json.dumps writes \u00b5 for a µ). An escape is matched from
    # its backslash over bytes that are none, so a body's own are found in the join as in it
    # alone; a body ending inside an escape (not JSON: the decoder refused it) may be named too.
    joined = b"".join(bodies)
    ends = list(accumulate(map(len, bodies)))
    found: list[int] = []
    for start in backslash_matches(_UNCLEAN_ESCAPE, joined):
        index = bisect_right(ends, start)
        if not found or found[-1] != index:
            found.append(index)
    return found


def backslash_matches(pattern: re.Pattern[bytes], data: bytes) -> Iterator[int]:
    """Where each match of ``pattern`` (one that starts with a backslash) in ``data`` starts,
    in order."""
    match, find = pattern.match, data.find
    at = find(b"\\")
    # Few backslashes: each found by memchr, several times faster than re's scan for them;
    # past one in about 1 000 bytes, the scan is.
    for _ in range(len(data) >> 10):
        if at < 0:
            return
        found = match(data, at)
        if found is None:
            at = find(b"\\", at + 1)
        else:
            yield at
            at = find(b"\\", found.end())
    if at >= 0:
        for found in pattern.finditer(data, at):
            yield found.start()


# An escape of U+0000-U+001F, U+007F or U+0080-U+009F, or of a character NODE_PATTERN refuses
# (U+061C, U+200B-U+200F, U+202A-U+202E, U+2060, U+2066-U+2069, U+FEFF), or one matching it
# (``\\\\n``: a backslash, then "n"), which is only taken for one.
_UNCLEAN_ESCAPE: Final = re.compile(
    rb"\\(?:[bfnrt]|u00(?:[0189]|7[fF])"
    rb"|u(?:061[cC]|200[b-fB-F]|202[a-eA-E]|206[06-9]|[fF][eE][fF][fF]))"
)
_RAW_C1: Final = re.compile(rb"\xc2[\x80-\x9f]")
# U+200B-U+200F, U+202A-U+202E, U+2060 and U+2066-U+2069 in UTF-8.
_RAW_INVISIBLE: Final = re.compile(rb"\xe2(?:\x80[\x8b-\x8f\xaa-\xae]|\x81[\xa0\xa6-\xa9])")


class _Unsupported(Exception):
    """A part of a core schema the translation does not know."""


# -- timestamps --
# A payload timestamp is taken on this path in the form format_timestamp writes (which the
# model's validator, to_utc_ms, returns as fromisoformat parses it) and in the RFC 3339 forms
# other writers use (parse_timestamp): more fraction digits (Python's isoformat, Go's
# RFC3339Nano), a numeric offset (``+00:00``), a lower-case "t" or "z", which it turns to UTC
# and truncates to the millisecond as pydantic's parse of them is
# (tests/bus/test_envelope_fast_values.py holds the two to agreeing). Any other text goes on to
# the pydantic-core path.
_CANONICAL: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,3})?Z"
)
# The datetime of each text seen lately; bounded by clearing it (and by the texts' length: any
# other text is not kept).
_TIMESTAMPS: dict[str, datetime] = {}
_TIMESTAMPS_SIZE: Final = 1024


def timestamp(text: str) -> datetime | None:
    """The instant an RFC 3339 text names, in UTC and truncated to the millisecond as the
    models keep it (``2026-11-28T00:00:00.123Z``, ``2026-11-28T02:00:00.123456+02:00``), or
    None for any other text (the pydantic-core path then decides)."""
    value = _TIMESTAMPS.get(text)
    if value is not None:
        return value
    if _CANONICAL.fullmatch(text):
        try:
            value = datetime.fromisoformat(text)
        except ValueError:  # a day or an hour that does not exist
            return None
    elif (value := parse_timestamp(text)) is None:
        return None
    if len(_TIMESTAMPS) >= _TIMESTAMPS_SIZE:
        _TIMESTAMPS.clear()
    _TIMESTAMPS[text] = value
    return value


# -- the translation --


@dataclass(frozen=True, slots=True)
class _Field:
    """One payload field as the Struct decodes it and as the model instance gets it."""

    name: str
    # The default of a field that may be left out (a factory is called for each message).
    default: Any = _UNSET
    factory: Callable[[], Any] | None = None
    timestamp: bool = False
    # A JSON string when given and not null (for counting the strings a payload holds).
    text: bool = False


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
    values (timestamps aside: see _field)."""
    kind = schema["type"]
    if kind not in _KNOWN_KEYS or not schema.keys() <= _KNOWN_KEYS[kind]:
        raise _Unsupported(kind)
    if kind == "str":
        meta: dict[str, Any] = {"max_length": schema.get("max_length", str_max)}
        if schema.get("min_length"):
            meta["min_length"] = schema["min_length"]
        pattern = schema.get("pattern")
        if pattern == NAME_PATTERN:
            meta["pattern"] = _NAME
        elif pattern == NO_CONTROL_CHARACTERS:
            if checked:
                meta["pattern"] = _NO_CONTROL
        elif pattern == NODE_PATTERN:
            if checked:
                meta["pattern"] = _NODE_NAME
        elif pattern == ALERT_ID_PATTERN:
            meta["pattern"] = _ALERT_ID if checked else _ALERT_ID_CLEAN
        elif pattern is not None:
            raise _Unsupported(pattern)
        return _annotated(str, schema, **{k: v for k, v in meta.items() if v is not None})
    if kind == "chain":  # a number refusing a bool (msgspec's refuses one anyway)
        number = number_schema(schema)
        if number is None:
            raise _Unsupported("chain")
        return _type(number, str_max, checked)
    if kind == "custom-error":  # a bool taking true and false alone (msgspec's takes no more)
        boolean = boolean_schema(schema)
        if boolean is None:
            raise _Unsupported("custom-error")
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
            raise _Unsupported("literal")
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


def _is_timestamp(schema: Mapping[str, Any]) -> bool:
    return schema["type"] == "function-after" and schema["function"]["function"] is to_utc_ms


def _field(
    name: str, schema: Mapping[str, Any], filled: bool, str_max: int | None, checked: bool
) -> tuple[_Field, Any, Any]:
    """The field, its Struct annotation and its Struct default."""
    # serialization_exclude_if (OmittedWhenNone) says how the model writes the field, not how
    # a payload is read.
    if not schema.keys() <= {"type", "schema", "metadata", "frozen", "serialization_exclude_if"}:
        raise _Unsupported(f"field {name}: {sorted(schema)}")
    inner = schema["schema"]
    default: Any = _UNSET
    factory = None
    if inner["type"] == "default":
        if inner.get("default_factory_takes_data") or inner.get("validate_default"):
            raise _Unsupported(f"field {name}: default")
        factory = inner.get("default_factory")
        default = inner.get("default", _UNSET)
        if factory is None and not isinstance(default, str | int | float | bool | None):
            raise _Unsupported(f"field {name}: a mutable default")
        inner = inner["schema"]
    optional = filled or factory is not None or default is not _UNSET
    stamp = _is_timestamp(inner) or (inner["type"] == "nullable" and _is_timestamp(inner["schema"]))
    if stamp:
        # Decoded as text; an RFC 3339 one becomes the instant (timestamp()).
        kind: Any = str | None if inner["type"] == "nullable" else str
    else:
        kind = _type(inner, str_max, checked)
    if filled:
        kind = kind | None  # left out or null: filled from the envelope or derived
    value = inner["schema"] if inner["type"] == "nullable" else inner
    text = stamp or value["type"] in ("str", "literal")
    if optional:
        field = _Field(name, default, factory, stamp, text)
        return field, Union[kind, msgspec.UnsetType], _UNSET  # noqa: UP007
    return _Field(name, timestamp=stamp, text=text), kind, msgspec.NODEFAULT


def _fields_schema(model: type[Message]) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
    """The model's ``model-fields`` schema, its config and its after-validators."""
    schema: Any = model.built_core_schema()
    after = []
    while schema["type"] in ("function-after", "function-before"):
        if schema["type"] == "function-after":
            if schema["function"]["type"] != "no-info":
                raise _Unsupported("an after-validator taking info")
            after.append(schema["function"]["function"])
        schema = schema["schema"]
    if schema["type"] != "model" or schema["cls"] is not model:
        raise _Unsupported(schema["type"])
    config = schema.get("config", {})
    inner = schema["schema"]
    # Before-validators around the fields only fill the FILLED fields (see Message.wire_schema).
    while inner["type"] == "function-before":
        inner = inner["schema"]
    if inner["type"] != "model-fields" or inner.get("computed_fields"):
        raise _Unsupported(inner["type"])
    if config.get("extra_fields_behavior") != "forbid":
        raise _Unsupported("extra fields")
    return inner["fields"], config, after


Instant = tuple[datetime, float, datetime | None]
"""An envelope's ``ts`` as a builder takes it: the instant, its Unix time, and the instant
``timestamp`` reads the same text as (None where it reads none): a payload timestamp given as
the same text needs no look-up of its own."""

Build = Callable[[Any, Instant, Callable[[Any], None], Callable[..., Any]], int | None]
"""``build(wire, instant, append, envelope)``: see ``_builder``."""


@dataclass(frozen=True, slots=True)
class Variant:
    """A message type's payload Struct for one of the two decoders, and the ``build`` its
    values go to."""

    struct: type[msgspec.Struct]
    build: Build


class Payload:
    """One message type on this path: its ``clean`` and ``checked`` variants (for ``CLEAN``
    and ``CHECKED``), each with the Struct and the ``build`` that makes the model instance it
    stands for and the envelope that carries it."""

    __slots__ = ("checked", "clean", "model", "tag")

    def __init__(self, model: type[Message]) -> None:
        self.model = model
        self.tag = model.TAG
        fields, config, after = _fields_schema(model)
        names = frozenset(name for name, schema in fields.items() if _is_name(schema))
        nodes = _node_fields(fields)
        # A copy without the names' validator (the model's core schema is not changed).
        fields = {
            name: {**schema, "schema": schema["schema"]["schema"]} if name in names else schema
            for name, schema in fields.items()
        }
        str_max = config.get("str_max_length")
        structs = []
        described: list[_Field] = []
        for checked in (False, True):
            described, members = [], []
            for name, schema in fields.items():
                field, kind, default = _field(name, schema, name in model.FILLED, str_max, checked)
                described.append(field)
                members.append((name, kind, default))
            structs.append(
                msgspec.defstruct(
                    f"{model.__name__}Payload",
                    members,
                    kw_only=True,
                    forbid_unknown_fields=True,
                    gc=False,
                )
            )
        # One builder for both: the Structs differ only in the patterns they check.
        build = _builder(model, described, tuple(after), names, nodes)
        self.clean = Variant(structs[0], build)
        self.checked = Variant(structs[1], build)


def _is_name(schema: Mapping[str, Any]) -> bool:
    """Whether a field is a ``Name``: its value checked by ``visible_name`` after its pattern
    (on this path by ``build``, on the Struct's value, before any model is built)."""
    inner = schema["schema"]
    return inner["type"] == "function-after" and inner["function"]["function"] is visible_name


def _node_fields(fields: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The payload fields holding a node name (``NODE_PATTERN``): those holding one, and those
    holding a list of them."""
    ones, lists = [], []
    for name, field in fields.items():
        schema = field["schema"]
        while schema["type"] in ("default", "nullable"):
            schema = schema["schema"]
        if schema["type"] == "list":
            if schema.get("items_schema", {}).get("pattern") == NODE_PATTERN:
                lists.append(name)
        elif schema.get("pattern") == NODE_PATTERN:
            ones.append(name)
    return tuple(ones), tuple(lists)


def _builder(
    model: type[Message],
    described: list[_Field],
    after: tuple[Callable[[Any], Any], ...],
    names: frozenset[str],
    nodes: tuple[tuple[str, ...], tuple[str, ...]],
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
    looked at for a blank one, which the clean Structs do not check.

    It runs for every message, so it is written out for each model as straight-line code (one
    step per field that needs one; loops over a model's fields cost a third more), then
    compiled, as dataclasses writes ``__init__``. The names it uses are bound in ``scope``. The
    envelope is made here, not by the caller, so that nothing is handed back but a count.
    """
    filled = model.FILLED
    scope: dict[str, Any] = {
        "UNSET": _UNSET,
        "known_timestamps": _TIMESTAMPS.get,
        "timestamp": timestamp,
        "keys_in": keys_in,
        "strings_in": strings_in,
        "model": model,
        "TAG": model.TAG,
        "after": after,
        "setattr": setattr,
        "visible_name": visible_name,
        "MAX_WHOLE": MAX_WHOLE,
    }
    # A required string is always one; any other is counted when given.
    always = [f for f in described if f.text and f.name not in filled and _required(f)]
    code = [
        "def build(wire, instant, append, envelope):",
        "    node = wire.node",
        "    if node.isspace():",  # blank: NODE_PATTERN refuses it, the clean Struct does not
        "        return None",
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
    for name in ones:  # a node name of whitespace alone (left out or null: the envelope's)
        code += [
            f"    value = payload.{name}",
            "    if value.__class__ is str and value.isspace():",
            "        return None",
        ]
    for name in lists:
        code += [
            f"    value = payload.{name}",
            "    if value.__class__ is list:",
            "        for item in value:",
            "            if item.isspace():",
            "                return None",
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
    for name in _string_lists(model):  # each item a string (the Struct's type), no key
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
            raise _Unsupported("a DERIVED field that may be left out of the fields set")
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


TOO_DEEP: Final = 1 << 62
"""What ``keys_in`` counts for a value nested past MAX_DEPTH: more keys than any body names, so
that the decoders leave it to the reference (which refuses it)."""


def _walker(
    level: Callable[[Callable[[Any], int]], Callable[[Any], int]], deepest: Callable[[Any], int]
) -> Callable[[Any], int]:
    """A walk of a payload field's value, one function per level of nesting (a closure over the
    next, as cheap as a recursive function), ``deepest`` past MAX_DEPTH: never deeper than the
    envelope may be, whatever the decoders took."""
    walk = deepest
    for _ in range(MAX_DEPTH - 2):  # the envelope and its payload are the first two levels
        walk = level(walk)
    return walk


def _counting_keys(inner: Callable[[Any], int]) -> Callable[[Any], int]:
    def keys_in(value: Any) -> int:
        if isinstance(value, dict):
            return len(value) + sum(map(inner, value.values()))
        if isinstance(value, list):
            return sum(map(inner, value))
        return 0

    return keys_in


def _counting_strings(inner: Callable[[Any], int]) -> Callable[[Any], int]:
    def strings_in(value: Any) -> int:
        if isinstance(value, str):
            return 1
        if isinstance(value, dict):
            return sum(map(inner, value.values()))
        if isinstance(value, list):
            return sum(map(inner, value))
        return 0

    return strings_in


keys_in: Final = _walker(
    _counting_keys, lambda value: TOO_DEEP if isinstance(value, dict | list) else 0
)
"""The keys of the JSON objects in a payload field's ``value``, at any depth; TOO_DEEP for one
nested past MAX_DEPTH."""
strings_in: Final = _walker(_counting_strings, lambda value: int(isinstance(value, str)))
"""The string values in a payload field's ``value`` (keys aside), at any depth (up to
MAX_DEPTH: a deeper one has TOO_DEEP keys)."""


def finite(value: Any) -> bool:
    """False when ``value`` is or holds (at any depth) a float that is not finite."""
    if value.__class__ is float:
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(map(finite, value.values()))
    if isinstance(value, list):
        return all(map(finite, value))
    return True


def _required(field: _Field) -> bool:
    return field.factory is None and field.default is _UNSET


def object_fields(model: type[Message]) -> tuple[str, ...]:
    """The fields of ``model`` whose values may hold JSON objects (Any, dicts, and lists of
    anything but strings)."""
    return tuple(
        name
        for name, info in model.__pydantic_fields__.items()
        if _holds_objects(info.annotation) and not _is_string_list(info.annotation)
    )


def _holds_objects(annotation: Any) -> bool:
    if annotation is Any or get_origin(annotation) in (dict, list):
        return True
    return any(_holds_objects(arg) for arg in get_args(annotation))


def _string_lists(model: type[Message]) -> tuple[str, ...]:
    """The fields of ``model`` whose values are lists of strings (a cluster's node names): each
    item one string value and no key, so counted by the list's length (walking 200 000 names
    twice took some 45 ms, several times what decoding them takes)."""
    return tuple(
        name for name, info in model.__pydantic_fields__.items() if _is_string_list(info.annotation)
    )


def _is_string_list(annotation: Any) -> bool:
    if get_origin(annotation) is not list:
        return False
    (item,) = get_args(annotation)
    if get_origin(item) is Annotated:
        item = get_args(item)[0]
    return item is str


def _payloads() -> tuple[dict[str, Payload], tuple[type[Message], ...]]:
    payloads, off = {}, []
    for model in MESSAGE_TYPES.values():
        try:
            payloads[model.TAG] = Payload(model)
        except _Unsupported:
            off.append(model)
    return payloads, tuple(off)


def _envelope(payload: Payload, checked: bool) -> type[msgspec.Struct]:
    node: Any = Annotated[
        str,
        msgspec.Meta(min_length=1, max_length=NODE_MAX_LENGTH, pattern=_NODE_TEXT)
        if checked
        else msgspec.Meta(min_length=1, max_length=NODE_MAX_LENGTH),
    ]
    return msgspec.defstruct(
        f"{payload.model.__name__}Envelope",
        [
            # A number equal to the version, as the reference reads it: 1.0 and 1e0 too.
            ("v", Annotated[float, msgspec.Meta(ge=ENVELOPE_VERSION, le=ENVELOPE_VERSION)]),
            (
                "id",
                Annotated[str, msgspec.Meta(min_length=ID_MIN_LENGTH, max_length=ID_MAX_LENGTH)],
            ),
            ("instance", Literal[payload.model.INSTANCE]),
            ("topic", Annotated[str, msgspec.Meta(min_length=1, max_length=TOPIC_MAX_LENGTH)]),
            ("node", node),
            ("ts", Annotated[str, msgspec.Meta(max_length=TS_MAX_LENGTH)]),
            ("payload", (payload.checked if checked else payload.clean).struct),
        ],
        tag_field="tag",
        tag=payload.tag,
        forbid_unknown_fields=True,
        gc=False,
    )


def _decoder(
    payloads: Mapping[str, Payload], checked: bool
) -> tuple[msgspec.json.Decoder[Any], dict[type, Build]]:
    envelopes = {_envelope(payload, checked): payload for payload in payloads.values()}
    decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(Union[tuple(envelopes)])  # noqa: UP007
    return decoder, {
        struct: (payload.checked if checked else payload.clean).build
        for struct, payload in envelopes.items()
    }


# The Structs, builders and decoders are made when one of these names is first read (the
# module's __getattr__), not at import: a bridge that decodes no bytes (no ingest, the
# in-process bus) never uses them, and they were a tenth of its start's CPU. One that decodes
# reads them as it starts (bridge.bus.decoding.build_decoders), before its heap is frozen.
PAYLOADS: dict[str, Payload]
"""Each message type on this path by tag."""
OFF_PATH: tuple[type[Message], ...]
"""The models left to the pydantic-core path."""
CLEAN: tuple[msgspec.json.Decoder[Any], dict[type, Build]]
"""The decoder for bytes ``is_clean`` passed, and the ``build`` of each Struct it returns
(counting keys and string values: each opens and closes with a quote)."""
CHECKED: tuple[msgspec.json.Decoder[Any], dict[type, Build]]
"""The decoder for any bytes, and the ``build`` of each Struct it returns (the same)."""
BUILDERS: dict[type, Build]
"""The ``build`` of each Struct either decoder returns."""
_BUILT_ON_FIRST_USE: Final = frozenset({"PAYLOADS", "OFF_PATH", "CLEAN", "CHECKED", "BUILDERS"})
# Built once: a second build's Structs would not be the keys of the first one's BUILDERS.
_BUILDING: Final = threading.Lock()


def __getattr__(name: str) -> Any:
    if name not in _BUILT_ON_FIRST_USE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    global PAYLOADS, OFF_PATH, CLEAN, CHECKED, BUILDERS
    with _BUILDING:
        if "BUILDERS" not in globals():  # set last: the others are set when it is
            PAYLOADS, OFF_PATH = _payloads()
            CLEAN = _decoder(PAYLOADS, checked=False)
            CHECKED = _decoder(PAYLOADS, checked=True)
            BUILDERS = {**CLEAN[1], **CHECKED[1]}
    return globals()[name]
