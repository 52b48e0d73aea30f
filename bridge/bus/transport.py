"""How signed frames travel between publishers and the verification stage.

A ``Transport`` carries frames; the bus verifies what it receives. The in-process transport hands
frames straight back; the Redis transport (``bridge.bus.redis``) carries them between processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum
from typing import Final, NamedTuple, Protocol

from bridge.bus.capabilities import LocalCoordinator, TransportCapabilities
from bridge.bus.envelope import Envelope

__all__ = [
    "WORK_QUEUE_INSTANCES",
    "Durability",
    "Frame",
    "FrameReceiver",
    "MemoryTransport",
    "Transport",
]

WORK_QUEUE_INSTANCES: Final = frozenset(
    {"ex_esdb_alerts", "ex_esdb_health", "ex_esdb_lifecycle", "ex_esdb_metrics", "ex_esdb_security"}
)
"""The bus instances the alert stage takes as a work queue (its group subscription): a shared
transport keeps their frames until a consumer group has taken them."""


class Durability(Enum):
    """Where a durably published batch stands when the publisher stops waiting.

    COMMITTED: safe (a durable subscriber handled it, or the transport stored it where a crash
    of this process cannot lose it); PENDING: still on its way; FAILED: it could not be stored;
    FULL: the transport had no room for it. After FAILED and FULL nothing of it was taken.
    """

    COMMITTED = "committed"
    PENDING = "pending"
    FAILED = "failed"
    FULL = "full"


class Frame(NamedTuple):
    """One signed message on a transport.

    ``group`` says which subscribers may take it: ``None`` for every subscriber (in-process),
    ``False`` for the fan-out subscribers only, ``True`` for the work-queue (group) subscribers
    only, which must call ``ack`` once the message is safely handled, and ``nack`` (when set)
    when it was not (its handler failed, or a full queue dropped it): the entry stays pending.
    Both only note the outcome (the transport writes acknowledgements in batches): they never
    block. ``written`` is when the shared store took a work-queue frame (Unix seconds, from a
    clock of the store's that no publisher sets): a message that waited there past the replay
    window for a replica to take it is still taken when it was fresh as the store took it.

    A named tuple, not a frozen dataclass: a Redis replica makes one or more for each message
    it reads, and a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``, at about three times the cost (``frame._replace`` for a copy).
    """

    instance: str
    body: bytes
    signature: str | None
    decoded: Envelope | None = None
    group: bool | None = None
    ack: Callable[[], None] | None = None
    nack: Callable[[], None] | None = None
    written: float | None = None


FrameReceiver = Callable[[Sequence[Frame]], None]
"""Where a transport hands what it received: the frames of one read, in order."""


class Transport(Protocol):
    """A way to carry frames; plugged into the bus without publishers or sinks knowing."""

    name: str

    @property
    def capabilities(self) -> TransportCapabilities:
        """What it offers beyond carrying frames (``bridge.bus.capabilities``)."""

    def attach(
        self, *, resign: Callable[[Envelope], Frame], dropped: Callable[[int], None]
    ) -> None:
        """Called by the bus: how to re-sign a frame grown old in a buffer (fresh ``ts``, same
        id), and where to count frames dropped for good."""

    async def start(
        self, receive: FrameReceiver, group_instances: frozenset[str] = frozenset()
    ) -> None:
        """Begin delivering incoming frames to ``receive`` (called on the event loop, with the
        frames of one read at a time, in order).

        ``group_instances`` are the bus instances with work-queue (group) subscribers here; a
        shared transport takes work-queue frames only for those, so it never takes work that
        no local subscriber would do.
        """

    def send(self, frame: Frame) -> bool:
        """Queue a frame without blocking; False when it had to be dropped (counted by caller)."""

    async def send_durably(self, frames: Sequence[Frame]) -> Durability:
        """Take ``frames``, all or none, and return once a crash of this process can no longer
        lose them (COMMITTED), or say why none were taken (FULL, FAILED)."""

    def readiness(self) -> str | None:
        """None when ready, else why not."""

    def hearing(self) -> str | None:
        """None while frames the other processes sharing it send reach this one, else why not:
        narrower than ``readiness``, which a refusal of any command (a coordination key's, a
        write's) takes away, so a cluster monitor reading silence goes by this. A store that
        refuses every writer for now (Redis's memory full) leaves nothing to hear."""

    async def aclose(self, seconds: float | None = None) -> None:
        """Stop, within about ``seconds`` (None: no limit); idempotent. Frames already accepted
        by ``send`` are flushed if possible; a durable store not finished by then fails."""


class MemoryTransport:
    """The in-process transport: a sent frame is received at once, in order."""

    name = "memory"

    def __init__(self, max_pending: int = 100_000) -> None:
        self._receive: FrameReceiver | None = None
        self._pending: list[Frame] = []
        self._max_pending = max_pending
        self._capabilities = TransportCapabilities(shared=False, coordinator=LocalCoordinator())

    @property
    def capabilities(self) -> TransportCapabilities:
        return self._capabilities

    def attach(
        self, *, resign: Callable[[Envelope], Frame], dropped: Callable[[int], None]
    ) -> None:
        """Nothing to do: frames never wait long enough here to need re-signing."""

    async def start(
        self, receive: FrameReceiver, group_instances: frozenset[str] = frozenset()
    ) -> None:
        self._receive = receive
        pending, self._pending = self._pending, []
        if pending:
            receive(pending)

    def send(self, frame: Frame) -> bool:
        if self._receive is None:
            # Published before start (or after close): held until start, in bounded memory.
            if len(self._pending) >= self._max_pending:
                return False
            self._pending.append(frame)
        else:
            self._receive((frame,))
        return True

    async def send_durably(self, frames: Sequence[Frame]) -> Durability:
        """Frames received at once are as durable as the subscribers make them (the bus waits
        for its durable ones); before start they wait in memory, if there is room."""
        if self._receive is None and len(self._pending) + len(frames) > self._max_pending:
            return Durability.FULL
        for frame in frames:
            self.send(frame)
        return Durability.COMMITTED

    def readiness(self) -> str | None:
        return None if self._receive is not None else "the in-process bus has not started"

    def hearing(self) -> str | None:
        return self.readiness()  # what this process sends is all there is to hear

    async def aclose(self, seconds: float | None = None) -> None:
        self._receive = None
