"""What every message model shares: the base class, timestamps, ids and enum aliases."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    model_validator,
)

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
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond - now.microsecond % 1000)


def _to_utc_ms(value: datetime) -> datetime:
    # Naive datetimes are taken as UTC, as the wire format is always UTC.
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def format_timestamp(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds: ``2026-11-28T00:00:00.123Z``."""
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

    @model_validator(mode="before")
    @classmethod
    def _default_node(cls, data: Any, info: ValidationInfo) -> Any:
        if (
            isinstance(data, dict)
            and "node" in cls.model_fields
            and data.get("node") is None
            and info.context
            and info.context.get("node")
        ):
            data = {**data, "node": info.context["node"]}
        return data
