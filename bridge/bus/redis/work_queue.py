"""The work queue on Redis as the alert stage sees it: the lease and reading.

This is the transport's ``WorkQueueLease`` (``bridge.bus.capabilities``): it runs the lease
(``lease.py``) and the consumer group (``consumer_group.py``), and stops reading when the alert
stage begins a graceful stop; a graceful hand-over writes the acknowledgements of what this
replica handled before it gives the lease up. What the holder keeps for the next one is
``shared_state.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from bridge.bus.redis.consumer_group import ConsumerGroup
from bridge.bus.redis.lease import Lease
from bridge.bus.redis.link import Link
from bridge.tasks import cancel_and_wait

__all__ = ["WorkQueue"]

_logger = logging.getLogger(__name__)

# How long a graceful hand-over waits for the acknowledgements of what this replica handled
# (written within milliseconds while Redis takes them): as long as the writer's flush at a stop.
_ACKS_SECONDS: Final = 2.0


class WorkQueue:
    """Runs the lease and the consumer group of one replica."""

    def __init__(
        self,
        link: Link,
        lease: Lease,
        group: ConsumerGroup,
        *,
        write_acks: Callable[[float], Awaitable[bool]],
    ) -> None:
        """``write_acks(seconds)`` writes the acknowledgements queued now, within ``seconds``
        (whether it did: the writer's)."""
        self._link = link
        self._write_acks = write_acks
        self._lease = lease
        self._group = group
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

    @property
    def holder(self) -> str | None:
        """The consumer that holds the work-queue lease, as this replica last saw it."""
        return self._lease.holder

    @property
    def reachable(self) -> bool:
        """Whether this replica can use Redis for the lease: Redis answers (it has, and has
        not been found unreachable since) and takes the lease's commands (refuses none of them
        now); False before Redis first answered."""
        return self._link.connected and not self._lease.refused

    @property
    def kept(self) -> bool:
        """True while this replica keeps the work-queue lease it took back after Redis lost its
        data, through failed take-ups (``exesdb_redis_work_queue_lease_kept``)."""
        return self._lease.kept

    async def first_answer(self, within: float) -> bool:
        """Wait at most ``within`` seconds for Redis's first answer since the start (at once
        when it has answered before); whether it has."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._link.answered.wait()
        return self._link.answered.is_set()

    def on_lead(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Await ``callback`` each time this replica takes the work-queue lease, before it
        reads the consumer group (e.g. to take up the open alerts the last holder kept)."""
        self._lease.on_lead(callback)

    def require(self, check: Callable[[], str | None]) -> None:
        """Hold the work-queue lease only while ``check()`` is None (else why this replica
        cannot serve the work queue now): a holder found unfit gives it up at its next renewal,
        so that a replica standing by takes over, and takes it again only once fit."""
        self._lease.require(check)

    async def stop_reading(self) -> None:
        """Stop reading the consumer group, and taking the lease; the first step of a graceful
        stop, before the alert stage drains what it took. A lease held is still renewed until
        ``release``; frames already taken are still acknowledged (the writer keeps running)."""
        self._lease.stop_taking()
        readers, self._readers = self._readers, []
        await cancel_and_wait(*readers)

    async def release(self, within: float = _ACKS_SECONDS) -> None:
        """Stop reading the consumer group, write the acknowledgements of what was handled (for
        up to ``within`` seconds, 2 s at most, the lease still renewed), and release the lease
        at once (rather than after it runs out), so that another replica takes the work queue
        over. Written after the lease went, they would race the next holder, which claims what
        it finds pending: entries handled here would be handled there again. A release
        cancelled part way (the stop's deadline) is done again by the next call, the
        transport's stop."""
        if self._released:
            return
        await self.stop_reading()
        seconds = max(0.0, min(within, _ACKS_SECONDS))
        if self._lease.leading and not await self._write_acks(seconds):
            _logger.warning(
                "handing the work queue over with acknowledgements unwritten (Redis did not take"
                " them within %g s): the next holder may handle those entries again",
                seconds,
            )
        if self._lease_task is not None:
            await cancel_and_wait(self._lease_task)
            self._lease_task = None
        await self._lease.release()
        self._released = True
