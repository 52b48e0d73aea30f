"""The work queue on Redis as the alert stage sees it: the lease, reading, and the hand-over.

This is the transport's ``WorkQueueLease`` and ``HandOver`` (``bridge.bus.capabilities``): it
runs the lease (``lease.py``) and the consumer group (``consumer_group.py``), stops reading
when the alert stage begins a graceful stop, and lets a stopping holder leave state for the
next one under ``exesdb:handover:<name>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from bridge.bus.redis.consumer_group import ConsumerGroup
from bridge.bus.redis.layout import Layout, text
from bridge.bus.redis.lease import Lease
from bridge.bus.redis.link import Link

__all__ = ["WorkQueue"]

_logger = logging.getLogger(__name__)

# What a stopping holder leaves is kept at least a week (or the replay window, if longer).
_HAND_OVER_KEPT_MS: Final = 7 * 24 * 3600 * 1000


class WorkQueue:
    """Runs the lease and the consumer group of one replica, and hands over between holders."""

    def __init__(
        self, link: Link, layout: Layout, lease: Lease, group: ConsumerGroup, *, kept_ms: int
    ) -> None:
        """``kept_ms``: how long, at least, handed-over state waits for the next holder."""
        self._link = link
        self._layout = layout
        self._lease = lease
        self._group = group
        self._kept_ms = max(kept_ms, _HAND_OVER_KEPT_MS)
        self._lease_task: asyncio.Task[None] | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._released = False

    def start(self, instances: frozenset[str]) -> list[asyncio.Task[None]]:
        """Take part in the work queue of ``instances`` (none: not at all); the tasks started."""
        if not self._group.read_from(instances):
            return []
        loop = asyncio.get_running_loop()
        keep_running = self._link.keep_running
        self._lease_task = loop.create_task(
            keep_running("lease", self._lease.run), name="redis-lease"
        )
        self._readers = [
            loop.create_task(keep_running("group", self._group.read), name="redis-group"),
            loop.create_task(keep_running("claim", self._group.claim), name="redis-claim"),
        ]
        return [self._lease_task, *self._readers]

    # -- WorkQueueLease --

    @property
    def leading(self) -> bool:
        """True while this replica holds the work-queue lease."""
        return self._lease.leading

    def on_lead(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Await ``callback`` each time this replica takes the work-queue lease, before it
        reads the consumer group (e.g. to import what the previous holder handed over)."""
        self._lease.on_lead(callback)

    async def stop_reading(self) -> None:
        """Stop reading the consumer group, and taking the lease; the first step of a graceful
        stop, before the alert stage drains what it took. A lease held is still renewed until
        ``hand_over``/``release``; frames already taken are still acknowledged (the writer
        keeps running)."""
        self._lease.stop_taking()
        readers, self._readers = self._readers, []
        await _cancel(readers)

    async def release(self) -> None:
        """Stop reading the consumer group and release the lease at once (rather than after it
        runs out), so that another replica takes the work queue over."""
        if self._released:
            return
        self._released = True
        await self.stop_reading()
        if self._lease_task is not None:
            await _cancel([self._lease_task])
            self._lease_task = None
        await self._lease.release()

    # -- HandOver --

    async def hand_over(self, name: str, values: dict[str, bytes]) -> None:
        """Leave ``values`` for the next lease holder (``take_over(name)``), then release the
        lease; for a graceful stop, after ``stop_reading`` and the alert stage's drain.

        Raises ``TransportError`` when Redis cannot take them.
        """
        if values and self._lease.leading:
            key = self._layout.hand_over(name)
            with self._link.boundary(f"keep the {name} records for the next replica"):
                pipe = self._link.client.pipeline(transaction=True)
                pipe.hset(key, mapping=values)  # type: ignore[arg-type]
                pipe.pexpire(key, self._kept_ms)
                await pipe.execute()
            _logger.info("handed %d %s record(s) over to the next replica", len(values), name)
        await self.release()

    async def take_over(self, name: str) -> dict[str, bytes]:
        """What the previous lease holder left under ``name`` (taken: gone from Redis).

        Raises ``TransportError`` when Redis cannot be read.
        """
        key = self._layout.hand_over(name)
        with self._link.boundary(f"read the {name} records of the previous replica"):
            pipe = self._link.client.pipeline(transaction=True)
            pipe.hgetall(key)
            pipe.delete(key)
            values: Any = (await pipe.execute())[0]
        return {text(field): value for field, value in (values or {}).items()}


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
