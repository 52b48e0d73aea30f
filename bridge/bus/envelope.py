"""The envelope every message travels in: its fields, its wire form, a fresh id, a topic checked.

Decoding one from bytes is ``bridge.bus.decoding``'s job; this module stays light, so that a
client command that builds and sends an envelope (``publish``) imports no decoder.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Final

import msgspec

from bridge.messages import Message, format_timestamp

__all__ = [
    "ENVELOPE_VERSION",
    "TOPIC_PATTERN",
    "Envelope",
    "RejectReason",
    "Rejection",
    "check_topic",
    "new_message_id",
]

ENVELOPE_VERSION: Final = 1
TOPIC_PATTERN: Final = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
"""What a topic may be: 1-128 characters of letters, digits and ``_.:-``."""


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
    """A refused message: the reason, the field at fault (if any) and a short explanation."""

    reason: RejectReason
    detail: str
    field: str | None = None


class Envelope(msgspec.Struct, frozen=True, eq=False, gc=False):
    """A verified (or locally built) message with its routing data.

    Immutable; equal to another when all but ``unix_ts`` (which only mirrors ``ts``) are equal.
    A msgspec Struct rather than a dataclass: the decoder builds one per message, in C.
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

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Envelope:
            return NotImplemented
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash(self._compared())

    def _compared(self) -> tuple[Any, ...]:
        return (self.id, self.instance, self.topic, self.tag, self.node, self.ts, self.payload)

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


def new_message_id() -> str:
    """A fresh, unguessable message id (32 hex characters)."""
    return secrets.token_hex(16)


def check_topic(topic: str) -> str:
    """Return ``topic`` if it is 1-128 characters of ``[A-Za-z0-9_.:-]``, else ValueError."""
    if not isinstance(topic, str) or not TOPIC_PATTERN.fullmatch(topic):
        raise ValueError(f"topic {topic!r} must be 1-128 characters of letters, digits and '_.:-'")
    return topic
