"""What every message model shares: the base class, timestamps, ids and enum aliases."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.config import ExtraValues

__all__ = [
    "JsonMap",
    "Message",
    "NonNegInt",
    "Text",
    "Timestamp",
    "format_timestamp",
    "random_hex",
    "utc_now",
]


def utc_now() -> datetime:
    """Now in UTC, truncated to the millisecond (the wire precision)."""
    # Whole milliseconds from the integer clock: exact after fromtimestamp's rounding to the
    # microsecond, and cheaper than datetime.now().replace() (every published message).
    return datetime.fromtimestamp(time.time_ns() // 1_000_000 / 1000, UTC)


def _to_utc_ms(value: datetime) -> datetime:
    # Naive datetimes are taken as UTC, as the wire format is always UTC.
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # Hot path (every message): replace() is slow, so only truncate when there is a remainder.
    excess = value.microsecond % 1000
    return value.replace(microsecond=value.microsecond - excess) if excess else value


def format_timestamp(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds: ``2026-11-28T00:00:00.123Z``."""
    if value.year >= 1000:
        # isoformat is several times faster than strftime (every published message) and gives
        # the same first 23 characters; strftime does not zero-pad years before 1000.
        return value.isoformat(timespec="milliseconds")[:23] + "Z"
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


Timestamp = Annotated[
    datetime,
    AfterValidator(_to_utc_ms),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]
"""A UTC timestamp at millisecond precision, serialized as RFC 3339 with ``Z``."""

Text = Annotated[str, Field(min_length=1, max_length=4096)]
"""A non-empty string of bounded length."""

NonNegInt = Annotated[int, Field(ge=0)]
JsonMap = dict[str, Any]


def random_hex(prefix: str = "") -> str:
    """``prefix`` plus 16 random lowercase hex characters (the original's id scheme)."""
    return prefix + secrets.token_hex(8)


class Message(BaseModel):
    """Base of the 36 message types.

    Subclasses set ``TAG`` (the wire name) and ``INSTANCE`` (the bus instance). A subclass with a
    ``node`` field gets it from the validation context ``{"node": ...}`` (the envelope's node)
    when the payload leaves it out.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=65536)

    TAG: ClassVar[str]
    INSTANCE: ClassVar[str]

    timestamp: Timestamp = Field(default_factory=utc_now)

    @classmethod
    def model_validate(
        cls,
        obj: Any,
        *,
        strict: bool | None = None,
        extra: ExtraValues | None = None,
        from_attributes: bool | None = None,
        context: Any | None = None,
        by_alias: bool | None = None,
        by_name: bool | None = None,
    ) -> Self:
        """Validate ``obj``; a missing or null ``node`` comes from ``context["node"]``."""
        # Filled here rather than in a before-validator: that would be a Python call inside every
        # validation, the envelope decoder's single pydantic-core call included (the hot path).
        if (
            context
            and isinstance(obj, dict)
            # __pydantic_fields__, not model_fields: the latter is a slow property.
            and "node" in cls.__pydantic_fields__
            and obj.get("node") is None
            and context.get("node")
        ):
            obj = {**obj, "node": context["node"]}
        return super().model_validate(
            obj,
            strict=strict,
            extra=extra,
            from_attributes=from_attributes,
            context=context,
            by_alias=by_alias,
            by_name=by_name,
        )
