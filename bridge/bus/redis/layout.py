"""Where the bus lives in Redis: the key names, the consumer group, and a frame's entry fields."""

from __future__ import annotations

from typing import Final

from bridge.messages import INSTANCES

__all__ = ["GROUP", "Layout", "entry_fields", "stream_id", "text", "unpack"]

GROUP: Final = "exesdb-bridge"
"""The consumer group every bridge replica reads the work queue through."""

_BODY: Final = b"e"
_SIGNATURE: Final = b"s"


class Layout:
    """The keys under ``prefix`` (``exesdb`` by default); see ``bridge.bus.redis``."""

    __slots__ = ("_instances", "prefix", "streams")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.streams: dict[str, str] = {name: f"{prefix}:bus:{name}" for name in INSTANCES}
        """The stream key of each bus instance."""
        self._instances = {key.encode(): name for name, key in self.streams.items()}

    def instance_of(self, key: bytes) -> str:
        """The bus instance whose stream is ``key``."""
        return self._instances[key]

    @property
    def leader(self) -> str:
        """The work-queue lease: holds the consumer name of the replica reading the group."""
        return f"{self.prefix}:bus:leader"

    @property
    def epoch(self) -> str:
        """A random value set once per Redis data set: a new one means Redis lost its data."""
        return f"{self.prefix}:bus:epoch"

    def hand_over(self, name: str) -> str:
        """Where a stopping lease holder leaves ``name`` state for the next one."""
        return f"{self.prefix}:handover:{name}"

    def coordination(self, key: str) -> str:
        """A cluster monitor's coordination key."""
        return f"{self.prefix}:{key}"


def entry_fields(body: bytes, signature: str | None) -> dict[bytes, bytes | str]:
    """A frame as stream entry fields: its bytes and its hex signature."""
    return {_BODY: body, _SIGNATURE: signature or ""}


def unpack(fields: dict[bytes, bytes]) -> tuple[bytes, str | None]:
    """A stream entry's body and signature (never trusted: the bus verifies them)."""
    body = fields.get(_BODY, b"")
    raw = fields.get(_SIGNATURE)
    try:
        signature = raw.decode("ascii") if raw else None
    except UnicodeDecodeError:
        signature = "?"  # not hex: fails verification as an invalid signature
    return body, signature


def text(value: object) -> str:
    """A Redis reply value as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def stream_id(value: object) -> tuple[int, int]:
    """A stream entry id (``b"1700000000000-3"``) as a comparable pair."""
    ms, _, seq = text(value).partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return (0, 0)
