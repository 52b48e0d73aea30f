"""What the work-queue lease tests share: a replica's lease run alone on a real redis-server
(its clock, its step of taking the work queue up and its client's timeout the test's), the
keys it holds, its stop as the work queue makes it, and a proxy that loses a take's answer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from redis.asyncio import Redis

from bridge.backoff import Backoff
from bridge.bus.redis.layout import Layout
from bridge.bus.redis.lease import Lease
from bridge.bus.redis.link import Link
from tests.integration.redis_proxy import Proxy
from tests.integration.servers.redis import RedisServer

LEADER = "exesdb:bus:leader"
EPOCH = "exesdb:bus:epoch"


@contextlib.asynccontextmanager
async def running_lease(
    server: RedisServer,
    on_lead: Callable[[], Awaitable[None]] | None = None,
    url: str | None = None,
    lease_ms: int = 300,
    socket_timeout: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    consumer: str = "a:1",
) -> AsyncIterator[Lease]:
    """Replica ``consumer``'s lease (``lease_ms``, timed by ``clock``) on ``server`` (reached at
    ``url``, if given, by a client with ``socket_timeout``, if given), running (``on_lead`` its
    step of taking the work queue up, if given) until the block ends."""
    url = url or server.url
    client = Redis.from_url(url, socket_timeout=socket_timeout)
    link = Link(url, client, Backoff(0.01, 0.1, 0.0))
    lease = Lease(link, Layout("exesdb"), consumer=consumer, lease_ms=lease_ms, clock=clock)
    if on_lead is not None:
        lease.on_lead(on_lead)
    running = asyncio.create_task(lease.run())
    try:
        yield lease
    finally:
        link.stopping.set()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await client.aclose()


async def release_as_the_work_queue_does(running: asyncio.Task[None], lease: Lease) -> None:
    """Stop ``lease`` as WorkQueue.release does: its task cancelled, then the lease released."""
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    await lease.release()


class TakeAnswerLost(Proxy):
    """A proxy that, once, lets the lease's take (its SET NX) run and cuts the connection
    instead of passing its answer back (a reset or timeout after Redis ran it)."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.cut = asyncio.Event()

    async def sent(self, data: bytes, marked: asyncio.Event) -> None:
        if LEADER.encode() in data and b"\r\nNX\r\n" in data:
            marked.set()

    async def answered(self, data: bytes, marked: asyncio.Event) -> bool:
        if marked.is_set() and not self.cut.is_set():
            self.cut.set()
            return False
        return True
