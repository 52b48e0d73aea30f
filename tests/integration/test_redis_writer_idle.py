"""An idle writer on a real redis-server sleeps until there is work: it does not poll.

The writer's ``clock`` is injected and counts its calls: each pass of the writer's loop that
looks at what it keeps reads it, so calls over an idle stretch are the passes it made.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from bridge.bus import Frame
from bridge.bus.redis import GROUP
from bridge.bus.redis.writer import Writer
from tests.integration.redis_replicas import ALERTS
from tests.integration.redis_spool_support import running_writer
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server"]

STREAM = f"exesdb:bus:{ALERTS}"
# How long the writer is watched while idle: the old loop woke every 50 ms meanwhile.
IDLE_SECONDS = 0.5


class CountingClock:
    """The wall clock, counting how often it is read, and when (``times``: monotonic seconds)."""

    def __init__(self) -> None:
        self.reads = 0
        self.times: list[float] = []

    def __call__(self) -> float:
        self.reads += 1
        self.times.append(time.monotonic())
        return time.time()


@asynccontextmanager
async def counted_writer(url: str, clock: CountingClock) -> AsyncIterator[Writer]:
    """A writer on Redis at ``url`` reading ``clock``, its loop running (stopped afterwards)."""
    async with running_writer(url, clock=clock) as (writer, _):
        yield writer


async def test_a_writer_whose_work_queue_frames_were_all_taken_sleeps_until_there_is_work(
    redis_server: Callable[[], RedisServer],
) -> None:
    """Once a consumer group has taken every work-queue frame written, the writer makes no
    pass while nothing is sent (it woke 20 times a second before), and still writes at once
    what is sent next."""
    server = redis_server()
    with server.client() as client:
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    clock = CountingClock()
    async with counted_writer(server.url, clock) as writer:
        assert writer.send(Frame(ALERTS, b"first", "00"))
        await async_wait_until(lambda: writer.written == 1, 10, "written")
        with server.client() as client:
            [[_, [(entry_id, _)]]] = client.xreadgroup(GROUP, "tester", {STREAM: ">"})
            client.xack(STREAM, GROUP, entry_id)
        await async_wait_until(lambda: writer.retained == 0, 10, "forgotten once taken")
        reads = clock.reads
        await asyncio.sleep(IDLE_SECONDS)  # the idle stretch watched: no condition to wait on
        assert clock.reads - reads == 0
        assert writer.send(Frame(ALERTS, b"second", "00"))
        await async_wait_until(lambda: writer.written == 2, 10, "the next one written")
