"""The envelope decoder's fast path: msgspec Structs generated from the message models.

Each message model's core schema (the contract) is translated, when the decoders are first
read, into a msgspec Struct that accepts a subset of what the model accepts (its fields:
``bridge.bus.struct_fields``), and a ``build`` that then makes the very model instance pydantic
would, defaults filled (``bridge.bus.builders``); anything outside that subset is left to the
pydantic-core path and the reference decoder. A model whose schema holds a part this
translation does not know stays off this path (``OFF_PATH``).

Two decoders: ``CHECKED`` checks the label and node patterns (no control character nor one
drawn as nothing; a node name without a blank at either end, nor a joiner) itself; ``CLEAN``
leaves them out, for bytes in which no JSON string can hold any of those characters nor a
braille blank (``batch_scans.is_clean``: escapes that write none, ``\\u00b5`` or ``\\"``, may
be there).
Both check the name pattern (``NAME_PATTERN``): clean bytes may still hold a line or paragraph
separator, written unescaped; and a name's ``visible_name`` (what no pattern says) is checked
as the model is made. A node name with a blank at either end (``" node1"``, ``" "``), which
clean bytes may hold (of whitespace: they hold no U+2800), is left to the pydantic-core path by
``build`` on either (``str.strip``: a regex search for each node name made decoding 11-20%
slower); so is one holding a joiner, which only the pydantic-core path judges. Neither
checks the alphabets of ``id`` and ``topic`` (``batch_scans.in_alphabets``, a batch at once).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, Union

import msgspec

from bridge.bus.builders import Build, builder
from bridge.bus.envelope import (
    ENVELOPE_VERSION,
    ID_MAX_LENGTH,
    ID_MIN_LENGTH,
    NODE_MAX_LENGTH,
    TOPIC_MAX_LENGTH,
    TS_MAX_LENGTH,
)
from bridge.bus.struct_fields import (
    PayloadField,
    Unsupported,
    fields_schema,
    is_name,
    node_fields,
    struct_field,
)
from bridge.bus.struct_patterns import NODE_TEXT
from bridge.messages import MESSAGE_TYPES, Message

__all__ = [
    "BUILDERS",
    "CHECKED",
    "CLEAN",
    "DECODE_ERRORS",
    "OFF_PATH",
    "PAYLOADS",
    "Payload",
    "Variant",
]

DECODE_ERRORS: Final = (msgspec.DecodeError, RecursionError)
"""What both decoders raise for bytes they do not take (ValidationError is a DecodeError;
RecursionError: nesting deeper than the decoder goes)."""


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
        fields, config, after = fields_schema(model)
        names = frozenset(name for name, schema in fields.items() if is_name(schema))
        nodes = node_fields(fields)
        # A copy without the names' validator (the model's core schema is not changed).
        fields = {
            name: {**schema, "schema": schema["schema"]["schema"]} if name in names else schema
            for name, schema in fields.items()
        }
        str_max = config.get("str_max_length")
        structs = []
        described: list[PayloadField] = []
        for checked in (False, True):
            described, members = [], []
            for name, schema in fields.items():
                filled = name in model.FILLED
                field, kind, default = struct_field(name, schema, filled, str_max, checked)
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
        # A builder for each: the Structs differ only in the patterns they check, and the
        # checked ones take a joiner inside a node name, which their builder judges.
        self.clean = Variant(
            structs[0], builder(model, described, tuple(after), names, nodes, False)
        )
        self.checked = Variant(
            structs[1], builder(model, described, tuple(after), names, nodes, True)
        )


def _payloads() -> tuple[dict[str, Payload], tuple[type[Message], ...]]:
    payloads, off = {}, []
    for model in MESSAGE_TYPES.values():
        try:
            payloads[model.TAG] = Payload(model)
        except Unsupported:
            off.append(model)
    return payloads, tuple(off)


def _envelope(payload: Payload, checked: bool) -> type[msgspec.Struct]:
    node: Any = Annotated[
        str,
        msgspec.Meta(min_length=1, max_length=NODE_MAX_LENGTH, pattern=NODE_TEXT)
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
"""The decoder for bytes ``batch_scans.is_clean`` passed, and the ``build`` of each Struct it
returns (counting keys and string values: each opens and closes with a quote)."""
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
