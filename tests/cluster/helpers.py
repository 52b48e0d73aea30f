"""The cluster monitor's test bench: a hand-moved clock, a loop moved a tick at a time through its
injected sleep, and replicas that record what they hear."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bridge.app import Bridge
from bridge.bus import Coordinator, Envelope, Frame, MemoryTransport, Transport, new_message_id
from bridge.cluster import ClusterMonitor
from bridge.messages import Message, NodeLifecycle
from bridge.settings import Settings
from tests.support import TEST_SECRET, async_wait_until

__all__ = ["INTERVAL_MS", "Clock", "CutOffTransport", "Naps", "Replica", "envelope"]

INTERVAL_MS = 1_000
# Turns of the loop a settle looks at the subscribers after, before it polls them.
SETTLE_TURNS = 20


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, intervals: float) -> None:
        self.now += intervals * INTERVAL_MS / 1000

    def forward(self, seconds: float) -> None:
        self.now += seconds


class Naps:
    """The monitor's sleep: each nap lasts until the test wakes the loop for one more tick."""

    def __init__(self) -> None:
        self.taken = 0  # naps begun
        self.lengths: list[float] = []  # what each nap was asked to last
        self._wake: asyncio.Event | None = None
        # Set as each nap begins, which is all that changes what the waits below look at: they
        # wake then rather than polling (a poll's 20 ms, each tick, made the cadence tests'
        # thousands of ticks a minute of sleep).
        self._nap_begun = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.taken += 1
        self.lengths.append(seconds)
        self._wake = asyncio.Event()
        self._nap_begun.set()
        await self._wake.wait()

    @property
    def napping(self) -> bool:
        """True while the loop waits between two ticks."""
        return self._wake is not None and not self._wake.is_set()

    async def wake(self) -> int:
        """Once the loop naps, wake it for one tick (not waiting for the tick); the naps so far."""
        await self._until(lambda: self.napping, "the monitor's loop napping")
        assert self._wake is not None
        taken = self.taken
        self._wake.set()
        return taken

    async def napped_since(self, taken: int) -> None:
        """Wait until the loop naps again after the tick that ``taken`` naps woke."""
        await self._until(lambda: self.taken > taken, "the monitor's tick done")

    async def _until(self, condition: Callable[[], bool], what: str, within: float = 5.0) -> None:
        """Wait until ``condition`` holds, looked at again as each nap begins; fail after
        ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                while not condition():
                    self._nap_begun.clear()
                    await self._nap_begun.wait()
        except TimeoutError:
            pytest.fail(f"timed out after {within}s waiting for {what}")

    async def tick(self) -> None:
        """Let the loop run one tick and wait until it is done."""
        await self.napped_since(await self.wake())


class CutOffTransport(MemoryTransport):
    """The in-process transport, with a readiness the test can take away."""

    reason: str | None = None
    refuse = False

    def readiness(self) -> str | None:
        return self.reason or super().readiness()

    def send(self, frame: Frame) -> bool:
        return not self.refuse and super().send(frame)


class Replica:
    """A bridge with a monitor on a hand-moved clock, its loop moved by ``naps``, recording what
    it hears."""

    def __init__(
        self,
        node: str,
        clock: Clock,
        coordinator: Coordinator | None = None,
        *,
        transport: Transport | None = None,
        interval_ms: int = INTERVAL_MS,
        **options: Any,
    ) -> None:
        """``transport`` is the in-process one (``CutOffTransport``) unless given (Redis);
        ``interval_ms`` is its EXESDB_HEALTH_BROADCAST_INTERVAL."""
        settings = Settings(**{"EXESDB_NODE": node, "SECRET_KEY_BASE": TEST_SECRET})  # type: ignore[arg-type]
        # Typed as the in-process one: the tests that give another do not cut it off.
        self.transport: CutOffTransport = transport or CutOffTransport()  # type: ignore[assignment]
        self.bridge = Bridge(
            settings, registry=CollectorRegistry(), transport=self.transport, components=[]
        )
        self.heard: list[Envelope] = []
        self.naps = Naps()
        self.bridge.bus.subscribe(
            "recorder",
            self.heard.append,
            instances=["ex_esdb_lifecycle", "ex_esdb_health", "ex_esdb_alerts"],
        )
        self.monitor = ClusterMonitor(
            self.bridge.bus,
            node=node,
            interval_ms=interval_ms,
            coordinator=coordinator,
            registry=self.bridge.registry,
            clock=clock,
            sleep=self.naps,
            # The clock jumps while the loop naps, which stands for time the monitor listened
            # through: its naps are timed on a clock that stands still, unless a test says.
            **{"nap_clock": lambda: 0.0, **options},
        )

    async def start(self) -> Replica:
        await self.bridge.start(serve_http=False)
        await self.monitor.start()
        await self.settle()
        return self

    async def settle(self) -> None:
        """Wait until every subscriber has handled what it was given (5 s at the most)."""
        # A delivery takes a few turns of the loop: looked at after each of the first ones, as
        # a poll every 20 ms made the thousands of ticks and messages of a test seconds of sleep.
        for _ in range(SETTLE_TURNS):
            if self.idle():
                return
            await asyncio.sleep(0)
        await async_wait_until(self.idle, 5, "subscribers idle")

    def idle(self) -> bool:
        """Whether every subscriber has handled all it was given."""
        return all(s.idle for s in self.bridge.bus.subscriptions)

    async def hear(self, node: str, message: Message | None = None) -> None:
        """Deliver a message published by ``node`` (a heartbeat unless told otherwise)."""
        self.bridge.bus.publish_verified([envelope(node, message)])
        await self.settle()

    async def hear_all(self, nodes: list[str]) -> None:
        """Deliver a heartbeat from each of ``nodes``, in one batch."""
        self.bridge.bus.publish_verified([envelope(node) for node in nodes])
        await self.settle()

    async def tick(self) -> None:
        """One tick of the monitor's loop, and what it published delivered."""
        await self.naps.tick()
        await self.settle()

    def forgotten(self, reason: str) -> float:
        """exesdb_cluster_nodes_forgotten_total for one reason."""
        value = self.bridge.registry.get_sample_value(
            "exesdb_cluster_nodes_forgotten_total", {"reason": reason}
        )
        return value or 0.0

    def farewells_dropped(self) -> float:
        """exesdb_cluster_farewells_dropped_total."""
        value = self.bridge.registry.get_sample_value("exesdb_cluster_farewells_dropped_total")
        return value or 0.0

    def storms(self) -> float:
        """exesdb_cluster_down_storms_total."""
        return self.bridge.registry.get_sample_value("exesdb_cluster_down_storms_total") or 0.0

    def published(self, kind: type[Message], **fields: object) -> list[Message]:
        """Messages of ``kind`` this replica published, matching ``fields``."""
        return [
            e.payload
            for e in self.heard
            if e.node == self.monitor.node
            and isinstance(e.payload, kind)
            and all(getattr(e.payload, k) == v for k, v in fields.items())
        ]


def envelope(node: str, message: Message | None = None) -> Envelope:
    """``message`` (a heartbeat unless told otherwise) as published by ``node``, on the topic its
    instance names (``health``, ``lifecycle``). The heartbeat declares the interval the tests'
    replicas have, as a bridge's does."""
    payload = message or NodeLifecycle(
        node=node,
        event="joined",
        cluster_size=1,
        metadata={"heartbeat": True, "interval_ms": INTERVAL_MS},
    )
    now = datetime.now(UTC)
    return Envelope(
        new_message_id(),
        payload.INSTANCE,
        payload.INSTANCE.removeprefix("ex_esdb_"),
        payload.TAG,
        node,
        now,
        payload,
        now.timestamp(),
    )
