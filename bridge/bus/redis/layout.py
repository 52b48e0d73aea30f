"""Where the bus lives in Redis: the key names, the consumer group, and a frame's entry fields."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from bridge.bus.transport import Frame
from bridge.messages import INSTANCES

__all__ = [
    "GROUP",
    "RAW_REPLIES",
    "Layout",
    "entry_fields",
    "fan_out_frames",
    "read_reply",
    "stream_id",
    "text",
    "unpack",
    "unpack_flat",
]

GROUP: Final = "exesdb-bridge"
"""The consumer group every bridge replica reads the work queue through."""

_BODY: Final = b"e"
_SIGNATURE: Final = b"s"

RAW_REPLIES: Final = ("XREAD", "XREADGROUP", "XAUTOCLAIM")
"""Commands whose replies the link's client hands over as Redis sent them (``read_reply``,
``unpack_flat``): redis-py would turn every entry's fields into a dict, in Python, which costs
more per message than the rest of reading it."""

RawEntries = list[tuple[bytes, list[bytes] | None]]


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

    def state(self, name: str) -> str:
        """The work queue's shared ``name`` records (``shared_state.py``)."""
        return f"{self.prefix}:state:{name}"

    def replica(self, node: str) -> str:
        """The mark of the process running as ``node`` (``node_name.py``)."""
        return f"{self.prefix}:state:replica:{node}"

    def spool(self, segment: str) -> str:
        """How far a bridge's spool segment ``segment`` (a random id) has been written here."""
        return f"{self.prefix}:spool:{segment}"

    def written(self, consumer: str) -> str:
        """The number of the last batch the writer of ``consumer`` (one process) wrote here."""
        return f"{self.prefix}:bus:written:{consumer}"

    def coordination(self, key: str) -> str:
        """A cluster monitor's coordination key."""
        return f"{self.prefix}:{key}"


def entry_fields(body: bytes, signature: str | None) -> dict[bytes, bytes | str]:
    """A frame as stream entry fields: its bytes and its hex signature."""
    return {_BODY: body, _SIGNATURE: signature or ""}


def unpack(fields: dict[bytes, bytes]) -> tuple[bytes, str | None]:
    """A stream entry's body and signature (never trusted: the bus verifies them)."""
    return fields.get(_BODY, b""), _signature(fields.get(_SIGNATURE))


def read_reply(reply: Any) -> Iterable[tuple[bytes, RawEntries]]:
    """The streams of a raw XREAD/XREADGROUP reply (a RESP2 list or a RESP3 map, see
    ``RAW_REPLIES``): each key with its entries, ``[id, [name, value, …]]`` each (the fields
    None for an entry deleted since it was delivered); ``unpack_flat`` reads the fields."""
    if not reply:
        return ()
    streams: Iterable[tuple[bytes, RawEntries]] = (
        reply.items() if isinstance(reply, dict) else reply
    )
    return streams


def unpack_flat(fields: list[bytes]) -> tuple[bytes, str | None]:
    """``unpack`` for an entry's fields as Redis sends them: ``[name, value, name, value, …]``."""
    if len(fields) == 4 and fields[0] == _BODY and fields[2] == _SIGNATURE:
        return fields[1], _signature(fields[3])  # what the bridge writes: no dict needed
    return unpack(dict(zip(fields[::2], fields[1::2], strict=False)))


def fan_out_frames(instance: str, entries: RawEntries) -> list[Frame]:
    """``Frame(instance, body, signature, group=False)`` of each entry of a read (``read_reply``),
    in order: ``unpack_flat`` inlined for the fields the bridge writes (a call, a tuple and
    keyword arguments per message cost a twentieth of a replica's CPU), through it for others."""
    frames: list[Frame] = []
    append = frames.append
    for _, fields in entries:
        if fields and len(fields) == 4 and fields[0] == _BODY and fields[2] == _SIGNATURE:
            raw = fields[3]
            try:
                signature = raw.decode("ascii") if raw else None
            except UnicodeDecodeError:
                signature = "?"  # not hex: fails verification as an invalid signature
            append(Frame(instance, fields[1], signature, None, False))
        else:
            append(Frame(instance, *unpack_flat(fields or []), None, False))
    return frames


def _signature(raw: bytes | None) -> str | None:
    try:
        return raw.decode("ascii") if raw else None
    except UnicodeDecodeError:
        return "?"  # not hex: fails verification as an invalid signature


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
