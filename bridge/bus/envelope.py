"""The envelope every message travels in (SPEC section 3), and its decoding.

Decoding never raises: it returns an ``Envelope`` or a ``Rejection`` naming the reason and, where
there is one, the offending field.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, Final, Literal, Union

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from typing_extensions import TypedDict

from bridge.messages import INSTANCES, MESSAGE_TYPES, Message, format_timestamp, model_for

__all__ = [
    "ENVELOPE_VERSION",
    "Envelope",
    "RejectReason",
    "Rejection",
    "check_topic",
    "decode_envelope",
    "decode_envelope_reference",
    "new_message_id",
]

ENVELOPE_VERSION: Final = 1
_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{8,128}")
_TOPIC_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_MAX_NODE_LENGTH: Final = 255
_KNOWN_INSTANCES: Final = frozenset(INSTANCES)
_ENVELOPE_KEYS: Final = frozenset({"v", "id", "instance", "topic", "tag", "node", "ts", "payload"})


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

    def as_json(self) -> dict[str, Any]:
        """The body of an HTTP error answer."""
        body: dict[str, Any] = {"error": self.reason.value, "detail": self.detail}
        if self.field is not None:
            body["field"] = self.field
        return body


@dataclass(frozen=True, slots=True)
class Envelope:
    """A verified (or locally built) message with its routing data."""

    id: str
    instance: str
    topic: str
    tag: str
    node: str
    ts: datetime
    payload: Message
    # Seconds since the epoch, kept beside ``ts`` so hot paths need not convert.
    unix_ts: float = field(default=0.0, compare=False)

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
    if not isinstance(topic, str) or not _TOPIC_RE.fullmatch(topic):
        raise ValueError(f"topic {topic!r} must be 1-128 characters of letters, digits and '_.:-'")
    return topic


def decode_envelope(body: bytes | str) -> Envelope | Rejection:
    """Parse and validate an envelope whose signature was already checked.

    The common case (a well-formed envelope) is validated straight from the bytes in one
    pydantic-core call; anything that path does not accept is decoded again by
    :func:`decode_envelope_reference`, so rejections (reason, detail, field) are exactly its.
    """
    envelope = _decode_fast(body)
    return envelope if envelope is not None else decode_envelope_reference(body)


def decode_envelope_reference(body: bytes | str) -> Envelope | Rejection:
    """The reference decoder: ``json.loads`` then field-by-field checks (and every rejection)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser
        return Rejection(RejectReason.MALFORMED, f"not JSON: {exc}")
    return decode_envelope_object(data)


def decode_envelope_object(data: Any) -> Envelope | Rejection:
    """Validate an already-parsed envelope object."""
    if not isinstance(data, dict):
        return Rejection(RejectReason.MALFORMED, "an envelope must be a JSON object")
    missing = _ENVELOPE_KEYS - data.keys()
    if missing:
        name = sorted(missing)[0]
        return Rejection(RejectReason.MALFORMED, f"envelope field {name!r} is missing", name)
    extra = data.keys() - _ENVELOPE_KEYS
    if extra:
        name = sorted(extra)[0]
        return Rejection(RejectReason.MALFORMED, f"unknown envelope field {name!r}", name)
    if data["v"] != ENVELOPE_VERSION or isinstance(data["v"], bool):
        return Rejection(RejectReason.MALFORMED, "envelope version must be 1", "v")
    message_id, topic, node = data["id"], data["topic"], data["node"]
    if not isinstance(message_id, str) or not _ID_RE.fullmatch(message_id):
        return Rejection(
            RejectReason.MALFORMED, "id must be 8-128 characters of [A-Za-z0-9_-]", "id"
        )
    if not isinstance(topic, str) or not _TOPIC_RE.fullmatch(topic):
        return Rejection(
            RejectReason.MALFORMED, "topic must be 1-128 characters of [A-Za-z0-9_.:-]", "topic"
        )
    if not isinstance(node, str) or not 0 < len(node) <= _MAX_NODE_LENGTH:
        return Rejection(
            RejectReason.MALFORMED, "node must be a string of 1-255 characters", "node"
        )
    ts = _parse_ts(data["ts"])
    if ts is None:
        return Rejection(RejectReason.MALFORMED, "ts must be an RFC 3339 timestamp", "ts")
    instance, tag = data["instance"], data["tag"]
    if not isinstance(instance, str) or instance not in _KNOWN_INSTANCES:
        return Rejection(
            RejectReason.UNKNOWN_INSTANCE, f"unknown bus instance {instance!r}", "instance"
        )
    model = model_for(instance, tag) if isinstance(tag, str) else None
    if model is None:
        return Rejection(
            RejectReason.UNKNOWN_TAG, f"{tag!r} is not a message type of {instance}", "tag"
        )
    payload = data["payload"]
    if not isinstance(payload, dict):
        return Rejection(RejectReason.INVALID_PAYLOAD, "payload must be a JSON object", "payload")
    try:
        message = model.model_validate(payload, context={"node": node})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in ("payload", *first["loc"]))
        return Rejection(RejectReason.INVALID_PAYLOAD, f"{where}: {first['msg']}", where)
    return Envelope(message_id, instance, topic, tag, node, ts, message, ts.timestamp())


# -- the fast path --
# One TypedDict per message type, discriminated on ``tag``: pydantic-core parses the bytes and
# validates envelope and payload in a single call. It must accept nothing the reference refuses
# and build the same Envelope (tests/bus/test_envelope_fast.py holds it to that): strict types,
# the same patterns (Rust's ``$`` is end of text, stricter than Python's), ``instance`` bound to
# the tag's instance, ``ts`` checked as a string and parsed by the reference's own ``_parse_ts``.
# No validation context is given, so a payload missing its ``node`` fails here and the reference
# fills it in from the envelope.

_FastId = Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,128}$")]
_FastTopic = Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
_FastNode = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=_MAX_NODE_LENGTH)]
_FastTs = Annotated[str, Strict(), StringConstraints(max_length=40)]
_FastVersion = Annotated[int, Strict(), Field(ge=ENVELOPE_VERSION, le=ENVELOPE_VERSION)]


def _fast_variant(instance: str, tag: str, model: type[Message]) -> Any:
    variant = TypedDict(  # type: ignore[misc]  # noqa: UP013 (fields built at run time)
        f"_Envelope_{tag}",
        {
            "v": _FastVersion,
            "id": _FastId,
            "instance": Literal[instance],
            "topic": _FastTopic,
            "tag": Literal[tag],
            "node": _FastNode,
            "ts": _FastTs,
            "payload": model,
        },
    )
    variant.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    return variant


_FAST: Final[TypeAdapter[dict[str, Any]]] = TypeAdapter(
    Annotated[  # type: ignore[arg-type]
        Union[  # noqa: UP007 (a runtime-built tuple of types)
            tuple(_fast_variant(i, t, m) for (i, t), m in MESSAGE_TYPES.items())
        ],
        Discriminator("tag"),
    ]
)

_FAST_VALIDATOR: Final = _FAST.validator


# The last timestamp parsed: envelopes of one batch mostly share their millisecond. A tuple is
# swapped in whole, so concurrent threads at worst miss; datetimes are immutable to share.
_last_ts: tuple[str, datetime, float] = ("", datetime.min.replace(tzinfo=UTC), 0.0)


def _decode_fast(body: bytes | str) -> Envelope | None:
    global _last_ts
    try:
        # The SchemaValidator itself: TypeAdapter.validate_json adds Python overhead per call.
        data = _FAST_VALIDATOR.validate_json(body)
    except ValidationError:
        return None
    text = data["ts"]
    last = _last_ts
    if text == last[0]:
        ts, unix_ts = last[1], last[2]
    else:
        parsed = _parse_ts(text)
        if parsed is None:
            return None
        ts, unix_ts = parsed, parsed.timestamp()
        _last_ts = (text, ts, unix_ts)
    return Envelope(
        data["id"],
        data["instance"],
        data["topic"],
        data["tag"],
        data["node"],
        ts,
        data["payload"],
        unix_ts,
    )


def _parse_ts(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        ts = datetime.fromisoformat(value)
        # OverflowError: an instant that falls outside years 1-9999 once converted to UTC.
        return ts.astimezone(UTC) if ts.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None
