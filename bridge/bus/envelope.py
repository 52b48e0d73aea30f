"""The envelope every message travels in: its fields, its wire form, a topic checked.

Decoding one from bytes is ``bridge.bus.decoding``'s job; this module stays light, so that a
client command that builds and sends an envelope (``publish``) imports no decoder. A fresh id
is ``bridge.bus.ids``', which the alert outbox takes without msgspec or pydantic.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Final

import msgspec
from msgspec.structs import asdict
from pydantic import BaseModel

from bridge.messages import Message, format_timestamp

__all__ = [
    "ENVELOPE_VERSION",
    "ID_MAX_LENGTH",
    "ID_MIN_LENGTH",
    "ID_PATTERN",
    "NODE_MAX_LENGTH",
    "TOPIC_MAX_LENGTH",
    "TOPIC_PATTERN",
    "TS_MAX_LENGTH",
    "Envelope",
    "LineRejection",
    "RejectReason",
    "Rejection",
    "Unbuilt",
    "check_topic",
    "name_shown",
]

ENVELOPE_VERSION: Final = 1
# The envelope's bounds, written once: both decoders, their refusals and docs/messages.md
# (bridge.schema.markdown) read them here.
ID_MIN_LENGTH: Final = 8
ID_MAX_LENGTH: Final = 128
ID_PATTERN: Final = re.compile(rf"[A-Za-z0-9_-]{{{ID_MIN_LENGTH},{ID_MAX_LENGTH}}}")
"""What an id may be: ``ID_MIN_LENGTH``-``ID_MAX_LENGTH`` characters of ``[A-Za-z0-9_-]``."""
TOPIC_MAX_LENGTH: Final = 128
TOPIC_PATTERN: Final = re.compile(rf"[A-Za-z0-9_.:-]{{1,{TOPIC_MAX_LENGTH}}}")
"""What a topic may be: 1-``TOPIC_MAX_LENGTH`` characters of letters, digits and ``_.:-``."""
NODE_MAX_LENGTH: Final = 255
"""The longest ``node`` (characters), as ``EXESDB_NODE`` takes it."""
TS_MAX_LENGTH: Final = 40
"""The longest ``ts`` text read as a timestamp (characters)."""


class RejectReason(Enum):
    """Why a message was refused (``exesdb_bus_rejected_total{reason}``)."""

    INVALID_SIGNATURE = "invalid_signature"
    UNSIGNED = "unsigned"
    MALFORMED = "malformed"
    INVALID_PAYLOAD = "invalid_payload"
    UNKNOWN_INSTANCE = "unknown_instance"
    UNKNOWN_TAG = "unknown_tag"
    EXPIRED = "expired"
    REPLAYED = "replayed"
    TOO_LARGE = "too_large"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused message: the reason, the field at fault (if any) and a short explanation.

    A message refused for what it holds may have more problems than its first (fields missing,
    of the wrong type): where they are asked for (``problems.with_every_problem``, for a refusal
    answered to its sender), ``also`` words the others, in order, each as it would be were it
    the only one (its ``field`` always set), a few of them only, and ``also_found`` counts them
    all. The reason is the first problem's alone, whatever the others'.
    """

    reason: RejectReason
    detail: str
    field: str | None = None
    also: tuple[Rejection, ...] = dataclasses.field(default=(), kw_only=True)
    also_found: int = dataclasses.field(default=0, kw_only=True)


# The characters of a key, tag or instance a rejection quotes (in its detail and its field): a
# sender's megabyte key is refused in a sentence, not sent back whole.
NAME_SHOWN: Final = 64


def name_shown(name: object) -> str:
    """``name`` as a rejection names it: cut to ``NAME_SHOWN`` characters, ending in ``...``."""
    text = str(name)
    return text if len(text) <= NAME_SHOWN else text[:NAME_SHOWN] + "..."


@dataclass(frozen=True, slots=True)
class TagRejection(Rejection):
    """An ``unknown_tag`` rejection holding what was sent: ``instance`` (one of the bus's) and
    ``tag`` (None when not text, or longer than ``NAME_SHOWN``), for a refusal answered to a
    sender to name the tag meant (``bridge.bus.problems.with_tag_meant``); an
    ``unknown_instance`` one holds the instance sent alike (``instance``, empty when not text
    or longer), for the instance meant."""

    instance: str = ""
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class LineRejection(Rejection):
    """A batch (or a lone envelope) refused for what its lines hold, the first line at fault
    being the Rejection itself: the reason is ``malformed``, ``unknown_instance``,
    ``unknown_tag`` or ``invalid_payload``.

    ``later``: the lines at fault after the first, in order, each worded as it would be were it
    the first, a few of them only; ``found``: how many lines at fault were found, the first
    among them (decoding may stop before the batch's end: docs/http-api.md#ingest).
    """

    later: tuple[Rejection, ...] = ()
    found: int = 1


class Unbuilt:
    """What an Envelope whose payload the decoder left unbuilt holds beside its values: the
    model's class and fields set (one for every message with the same fields left out)."""

    __slots__ = ("fields_set", "model")

    def __init__(self, model: type[Message], fields_set: set[str]) -> None:
        self.model = model
        self.fields_set = fields_set

    def __repr__(self) -> str:
        return f"<{self.model.__name__}, not built yet>"

    def build(self, fields: Any) -> Message:
        """The model instance pydantic would make of ``fields``' values (checked already)."""
        message: Message = _new(self.model)
        # The Struct's fields are the model's, in its order: asdict is its __dict__.
        _set_dict(message, asdict(fields))
        # A message's model is frozen, so nothing adds to the shared set (model_copy copies it).
        _set_fields(message, self.fields_set)
        _set_extra(message, None)
        _set_private(message, None)
        return message


class Envelope(msgspec.Struct, frozen=True, eq=False, gc=False):
    """A verified (or locally built) message with its routing data.

    Immutable; equal to another when all but ``unix_ts`` (which only mirrors ``ts``) are equal.
    A msgspec Struct rather than a dataclass: the decoder builds one per message, in C.

    ``payload`` is the message model. The decoder's fast path builds it only when ``payload``
    is first read: until then the envelope holds its values in the msgspec Struct they were
    decoded into (defaults filled), which ``fields`` gives. A hot path that reads fields by
    name reads ``fields``: the same values, as attributes, without building the model.
    """

    id: str
    instance: str
    topic: str
    tag: str
    node: str
    ts: datetime
    payload: Message
    # Seconds since the epoch, kept beside ``ts`` so hot paths need not convert.
    unix_ts: float = 0.0
    # The model and fields set of a payload not built yet (see Unbuilt), else None.
    _unbuilt: Unbuilt | None = None

    @property
    def fields(self) -> Any:
        """The payload's fields, read as attributes: the payload itself, or the Struct of the
        values it is built from when first read (no model is built to read them)."""
        # Replaced below by the payload's slot itself: read in C, no Python call.
        return self.payload

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Envelope:
            return NotImplemented
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash(self._compared())

    def _compared(self) -> tuple[Any, ...]:
        return (self.id, self.instance, self.topic, self.tag, self.node, self.ts, self.payload)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (and deep-copied) with its payload built: msgspec's own reduce would take the
        # decoder's Struct, a class generated at run time that pickle cannot find by name.
        fields = (self.id, self.instance, self.topic, self.tag, self.node, self.ts)
        return (Envelope, (*fields, self.payload, self.unix_ts))

    def restamped(self, ts: datetime) -> Envelope:
        """This envelope (the same id) with ``ts`` as its timestamp."""
        return msgspec.structs.replace(self, ts=ts, unix_ts=ts.timestamp())

    def to_bytes(self) -> bytes:
        """The wire form: one compact JSON object, UTF-8."""
        # id, instance, topic and tag are from JSON-safe alphabets; node is free text.
        return b"".join(
            (
                b'{"v":1,"id":"',
                self.id.encode(),
                b'","instance":"',
                self.instance.encode(),
                b'","topic":"',
                self.topic.encode(),
                b'","tag":"',
                self.tag.encode(),
                b'","node":',
                json.dumps(self.node).encode(),
                b',"ts":"',
                format_timestamp(self.ts).encode(),
                b'","payload":',
                self.payload.model_dump_json().encode(),
                b"}",
            )
        )


_new: Final = object.__new__
_set_dict: Final = BaseModel.__dict__["__dict__"].__set__
_set_fields: Final = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra: Final = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private: Final = BaseModel.__dict__["__pydantic_private__"].__set__

# ``payload`` is read through a property over its slot, which msgspec's own code (construction,
# replace, repr) reaches by offset: for a payload not built yet the slot holds the Struct of its
# values, until the first read builds the model and writes it there (the Envelope is frozen to
# assignment, not to its slot's descriptor). ``fields`` is that slot's own descriptor.
_payload_slot: Final = Envelope.__dict__["payload"]
_write_payload: Final = _payload_slot.__set__
_StructMeta: Final = type(msgspec.Struct)


def _payload(envelope: Envelope) -> Message:
    payload = envelope.fields
    # Any message given, or built already; a Struct only where the decoder left it unbuilt.
    if payload.__class__.__class__ is not _StructMeta:
        return payload  # type: ignore[no-any-return]
    unbuilt = envelope._unbuilt
    assert unbuilt is not None
    message = unbuilt.build(payload)
    _write_payload(envelope, message)
    return message


type.__setattr__(Envelope, "fields", _payload_slot)
type.__setattr__(Envelope, "payload", property(_payload, doc="The message model."))


def check_topic(topic: str) -> str:
    """Return ``topic`` if it matches ``TOPIC_PATTERN``, else ValueError."""
    if not isinstance(topic, str) or not TOPIC_PATTERN.fullmatch(topic):
        raise ValueError(
            f"topic {topic!r} must be 1-{TOPIC_MAX_LENGTH} characters of letters, digits and '_.:-'"
        )
    return topic
