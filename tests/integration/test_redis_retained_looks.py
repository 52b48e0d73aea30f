"""A writer on a real redis-server keeping work-queue frames no group has read looks less often.

Such frames are kept for up to a minute by default (a replica standing by, none holding the
lease): the writer looks at the consumer group soon after it wrote them, then half as often
after each look that found none handled, down to once a second, not 20 times a second all along.
The writer's ``clock`` counts its reads: each look reads it once.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bridge.bus import Frame
from bridge.bus.redis import GROUP
from tests.integration.redis_replicas import ALERTS
from tests.integration.servers.redis import RedisServer, redis_server
from tests.integration.test_redis_writer_idle import CountingClock, counted_writer
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server"]

STREAM = f"exesdb:bus:{ALERTS}"
# Clock reads after the write until the looks have slowed: each look in vain reads it once and
# doubles the wait from 50 ms; five reads (one may be the writer's check, as it wrote, whether
# a look is due) are four looks or more, 0.8 s apart or more by then.
SLOWING_READS = 5
# The least time between two looks once they have slowed: they are 0.8 s apart or more by then,
# where the looks of the old loop were 50 ms apart (a loaded host only stretches the gap).
SLOWED_GAP_SECONDS = 0.5


async def test_a_writer_keeping_frames_no_group_read_looks_once_a_second_and_forgets_them_once_read(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A work-queue frame no consumer reads keeps the writer looking at the group once a second
    at most once it has looked a few times in vain, not every 50 ms, and the frame is still
    forgotten soon after a consumer takes and handles it."""
    server = redis_server()
    with server.client() as client:
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    clock = CountingClock()
    async with counted_writer(server.url, clock) as writer:
        assert writer.send(Frame(ALERTS, b"unread", "00"))
        await async_wait_until(lambda: writer.written == 1, 10, "written")
        slowed = clock.reads + SLOWING_READS
        await async_wait_until(lambda: clock.reads >= slowed, 10, "the looks slowed down")
        # The next look: the time since the last is the looks' pace.
        await async_wait_until(lambda: clock.reads > slowed, 10, "the next look")
        gap = clock.times[slowed] - clock.times[slowed - 1]
        assert gap >= SLOWED_GAP_SECONDS, f"two looks {gap:.3f} s apart"
        assert writer.retained == 1
        with server.client() as client:
            [[_, [(entry_id, _)]]] = client.xreadgroup(GROUP, "tester", {STREAM: ">"})
            client.xack(STREAM, GROUP, entry_id)
        await async_wait_until(lambda: writer.retained == 0, 10, "forgotten once handled")
