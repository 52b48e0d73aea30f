"""What a transport offers beyond carrying frames, declared so that no component guesses.

A transport's ``capabilities`` names them; ``bridge/app.py`` hands them to the parts that use
them (the alert sink, the cluster monitor). The in-process transport offers only a local
coordinator; the Redis transport offers all four:

- ``shared``: frames cross processes, so ingest keeps a replay memory of its own and the
  transport, not the local subscribers, makes a published message durable;
- ``coordinator``: atomic keys, so exactly one replica announces a cluster transition;
- ``lease``: the work-queue lease, held by one replica at a time (it alone escalates alerts);
- ``hand_over``: a place where a stopping lease holder leaves state for the next one.

A capability that cannot reach what it shares (Redis down) raises ``TransportError``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol

__all__ = [
    "Coordinator",
    "HandOver",
    "LocalCoordinator",
    "TransportCapabilities",
    "WorkQueueLease",
]

# Keys a LocalCoordinator keeps before it sweeps the expired ones.
_MAX_LOCAL_KEYS: Final = 10_000


class Coordinator(Protocol):
    """Decides, across every replica, which one acts on a transition."""

    async def swap(self, key: str, value: str, ttl_ms: int) -> str | None:
        """Atomically set ``key`` to ``value``; the previous value (None if there was none)."""

    async def once(self, key: str, ttl_ms: int) -> bool:
        """True for exactly one caller per ``key`` within ``ttl_ms``."""


class WorkQueueLease(Protocol):
    """The lease that makes one replica at a time the reader of the work queue."""

    @property
    def leading(self) -> bool:
        """True while this replica holds the lease."""

    def on_lead(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Await ``callback`` each time this replica takes the lease, before it reads."""

    async def stop_reading(self) -> None:
        """Take no more work-queue entries (keep the lease until it is handed over)."""


class HandOver(Protocol):
    """State left by a stopping lease holder for the next one."""

    async def hand_over(self, name: str, values: dict[str, bytes]) -> None:
        """Leave ``values`` under ``name`` for the next holder, then release the lease."""

    async def take_over(self, name: str) -> dict[str, bytes]:
        """What the previous holder left under ``name`` (taken: gone from the transport)."""


class LocalCoordinator:
    """The coordinator of a lone bridge (in-process bus): it always decides for itself."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._values: dict[str, tuple[str, float]] = {}
        self._clock = clock

    async def swap(self, key: str, value: str, ttl_ms: int) -> str | None:
        now = self._clock()
        old = self._values.pop(key, None)  # re-inserted: the dict stays in order of last set
        self._values[key] = (value, now + ttl_ms / 1000)
        self._sweep(now)
        return old[0] if old is not None and old[1] > now else None

    async def once(self, key: str, ttl_ms: int) -> bool:
        now = self._clock()
        old = self._values.get(key)
        if old is not None and old[1] > now:
            return False
        self._values[key] = ("1", now + ttl_ms / 1000)
        self._sweep(now)
        return True

    def _sweep(self, now: float) -> None:
        if len(self._values) <= _MAX_LOCAL_KEYS:
            return
        live = {k: v for k, v in self._values.items() if v[1] > now}
        # Still full of live keys (a flood of node names): the least recently set go, down to
        # 90 %, so memory stays bounded and the sweep runs once per many calls, not on each.
        for key in list(live)[: len(live) - _MAX_LOCAL_KEYS * 9 // 10]:
            del live[key]
        self._values = live


@dataclass(frozen=True, slots=True)
class TransportCapabilities:
    """What a transport offers beyond ``send``; see the module docstring."""

    shared: bool
    coordinator: Coordinator
    lease: WorkQueueLease | None = None
    hand_over: HandOver | None = None
