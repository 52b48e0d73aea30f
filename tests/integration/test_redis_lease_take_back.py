"""A holder taking back the lease it lost with Redis's data on a real redis-server: at once,
kept through failed take-ups for three leases from the loss (shown by
``exesdb_redis_work_queue_lease_kept``), then given back and counted; alike when the take-back's
answer was lost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import pytest
import redis as redis_py
from redis.asyncio import Redis

from bridge.bus.redis.lease import Lease
from tests.integration.redis_lease_support import EPOCH, LEADER, TakeAnswerLost, running_lease
from tests.integration.redis_replicas import Replica, calls, replicas
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "replicas"]  # the fixtures, imported for the tests below


KEPT = "exesdb_redis_work_queue_lease_kept"
GIVEN_BACK = "exesdb_redis_work_queue_lease_kept_given_back_total"


async def test_a_holder_whose_read_found_its_lease_gone_with_redis_data_takes_it_back_at_once(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A holder whose consumer group read found the lease gone (FLUSHALL: Redis's data, lease
    and all) takes it back at once, not at its next renewal a third of the lease (10 s) later:
    what that read got waits, pending, for it to hold the lease again."""
    server = redis_server()
    taken: list[int] = []

    async def took() -> None:
        taken.append(1)

    async with running_lease(server, on_lead=took, lease_ms=30_000) as lease:
        await async_wait_until(lambda: lease.leading, 10, "the lease taken")
        with server.client() as other:
            other.flushall()
        lease.lost(None)  # as the consumer group's read, in one round trip with its GET, tells
        assert not lease.leading
        await async_wait_until(lambda: lease.leading, 3, "the lease taken back")
        assert taken == [1, 1]


async def test_a_holder_taking_back_a_lease_lost_with_redis_data_keeps_it_through_a_failed_take_up(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A holder taking back the lease it lost with Redis's data, whose take-up hangs past the
    lease and then fails, keeps the lease and takes the work queue up again, rather than give
    it back: b:2 standing by, its wait for a:1 over by then, would take it at once, and lacks
    a:1's open alerts (kept only in a:1's outbox)."""
    server = redis_server()
    attempts: list[int] = []
    b2_took: list[int] = []

    async def take_up() -> None:
        attempts.append(len(attempts))
        if len(attempts) == 2:  # the take-back's first
            # Two leases of 900 ms (Redis slow to take the alerts): past b:2's wait for a:1 (one
            # lease from the loss), and as far from the three a:1 keeps it through at most.
            await asyncio.sleep(1.8)  # the take-up hanging: not a wait for anything
            raise ConnectionError("Redis closed the connection")

    async def b2_take_up() -> None:
        b2_took.append(1)

    seen: set[object] = set()

    def looked(other: redis_py.Redis) -> bool:
        seen.add(other.get(LEADER))
        return len(attempts) >= 3 or bool(b2_took)

    # Leases of 900 ms, each looked at every 300 ms.
    async with running_lease(server, on_lead=take_up, lease_ms=900) as a1:
        await async_wait_until(lambda: a1.leading, 10, "a:1 holding the lease")
        async with running_lease(server, on_lead=b2_take_up, lease_ms=900, consumer="b:2") as b2:
            await async_wait_until(lambda: b2.holder == "a:1", 10, "b:2 seeing a:1 hold it")
            with server.client() as other:
                other.flushall()  # a restart without persistence: the lease gone with the data
                await async_wait_until(lambda: len(attempts) >= 2, 10, "a:1 taking it back")
                # async_wait_until looks every 20 ms: many looks within each lease.
                await async_wait_until(lambda: looked(other), 10, "a:1 taking it up again")
            await async_wait_until(lambda: a1.leading or b2_took, 10, "a:1 holding it again")
            assert b2_took == []
    assert seen == {b"a:1"}
    assert attempts == [0, 1, 2]


GIVING_BACK_TO_NOBODY = (
    "taking the work queue up still fails 2700 ms after Redis lost its data while this"
    " replica (a:1) held the work-queue lease: it gives the lease back, for another replica"
    " to serve the work queue; this replica's open alerts, kept only in its outbox, are"
    " taken up by no replica (their resolves are never sent)"
)


def giving_back_to_nobody(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The lines a:1 logged saying it gives the lease back with its open alerts taken up by no
    replica."""
    told = "their resolves are never sent"
    return [r.getMessage() for r in caplog.records if told in r.getMessage()]


class FailingTakeBack:
    """a:1 (``a1``) taking back the lease it lost with Redis's data, every take-up after its
    first failing (listed in ``attempts``), b:2 (``b2``) standing by (``b2_took`` gets a 1 each
    time it takes the work queue up), both timed by ``now[0]``, which moves only when a test
    moves it."""

    def __init__(
        self, a1: Lease, b2: Lease, now: list[float], attempts: list[int], b2_took: list[int]
    ) -> None:
        self.a1, self.b2, self.now, self.attempts, self.b2_took = a1, b2, now, attempts, b2_took

    async def failed_again(self) -> None:
        """Once a:1's take-up has failed twice more."""
        tried = len(self.attempts)
        await async_wait_until(lambda: len(self.attempts) >= tried + 2, 10, "a:1 failing again")


@contextlib.asynccontextmanager
async def a1_failing_to_take_back_the_lease(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[FailingTakeBack]:
    """a:1 holding the lease (of 900 ms, looked at every 300 ms) on ``server``, b:2 seeing it
    hold it, then Redis losing its data (FLUSHALL), after which each of a:1's take-ups fails (a
    corrupt outbox); the lease's warnings captured in ``caplog`` until the block ends."""
    now = [0.0]
    attempts: list[int] = []
    b2_took: list[int] = []

    async def take_up() -> None:
        attempts.append(len(attempts))
        if len(attempts) >= 2:  # each of the take-backs'
            raise RuntimeError("the alert outbox is corrupt")

    async def b2_take_up() -> None:
        b2_took.append(1)

    with caplog.at_level(logging.WARNING, logger="bridge.bus.redis.lease"):
        async with running_lease(server, on_lead=take_up, lease_ms=900, clock=lambda: now[0]) as a1:
            await async_wait_until(lambda: a1.leading, 10, "a:1 holding the lease")
            async with running_lease(
                server, on_lead=b2_take_up, lease_ms=900, consumer="b:2", clock=lambda: now[0]
            ) as b2:
                await async_wait_until(lambda: b2.holder == "a:1", 10, "b:2 seeing a:1 hold it")
                with server.client() as other:
                    other.flushall()  # a restart without persistence: the lease gone with it
                yield FailingTakeBack(a1, b2, now, attempts, b2_took)


async def test_a_holder_whose_take_up_keeps_failing_after_redis_lost_its_data_gives_it_back(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A holder taking back the lease it lost with Redis's data keeps it through failed take-ups
    for three leases from the loss, past the lease b:2 left it, and, failing still (a corrupt
    outbox), then gives it back, warning once that its open alerts are taken up by no replica:
    b:2 serves the work queue, not nobody for ever."""
    server = redis_server()
    async with a1_failing_to_take_back_the_lease(server, caplog) as kept:
        await kept.failed_again()
        kept.now[0] += 1.8  # two leases from the loss: b:2's wait for a:1 is over
        await kept.failed_again()
        assert kept.b2_took == []
        assert giving_back_to_nobody(caplog) == []
        kept.now[0] += 1.0  # three leases from the loss
        await async_wait_until(lambda: kept.b2_took, 10, "b:2 taking the work queue up")
        await async_wait_until(lambda: kept.b2.leading, 10, "b:2 holding the lease")
        await async_wait_until(lambda: kept.a1.holder == "b:2", 10, "a:1 seeing b:2 hold it")
    assert giving_back_to_nobody(caplog) == [GIVING_BACK_TO_NOBODY]


async def test_a_second_loss_of_redis_data_while_the_lease_is_kept_times_three_leases_anew(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """Redis losing its data again while a holder keeps the lease it took back through failed
    take-ups gives it three leases from that second loss, as b:2 leaves it one lease from it:
    timed from the first, a loss late in them had it give the lease back to nobody (b:2 still
    leaving it alone), a take-up failing at once for a Redis that had just restarted."""
    server = redis_server()
    async with a1_failing_to_take_back_the_lease(server, caplog) as kept:
        await kept.failed_again()
        kept.now[0] += 2.5  # two leases and a half from the first loss
        await kept.failed_again()
        with server.client() as other:
            other.flushall()  # the second loss
        await kept.failed_again()  # taken back in the new data set, failing still
        kept.now[0] += 0.6  # past three leases from the first loss, within them from this
        await kept.failed_again()
        assert giving_back_to_nobody(caplog) == []
        assert kept.b2_took == []
        kept.now[0] += 2.2  # three leases from the second loss
        await async_wait_until(lambda: kept.b2_took, 10, "b:2 taking the work queue up")
        await async_wait_until(lambda: kept.b2.leading, 10, "b:2 holding the lease")
    assert giving_back_to_nobody(caplog) == [GIVING_BACK_TO_NOBODY]


async def _keeping_holder(
    server: RedisServer, replicas: list[Replica], failures: int
) -> tuple[Replica, list[int]]:
    """A started replica holding the lease (of 900 ms) whose take-up fails ``failures`` times
    once Redis lost its data, which it then did (FLUSHALL); each take-up's attempt listed."""
    attempts: list[int] = []

    async def take_up() -> None:
        attempts.append(len(attempts))
        if 2 <= len(attempts) <= failures + 1:  # the take-back's first ``failures``
            raise RuntimeError("the alert outbox is corrupt")

    holder = Replica(server.url, "node-a", claim_idle_ms=900)
    lease = holder.transport.capabilities.lease
    assert lease is not None
    lease.on_lead(take_up)
    replicas.append(await holder.start())
    await async_wait_until(lambda: holder.sample("exesdb_redis_work_queue_leader") == 1, 10)
    with server.client() as other:
        other.flushall()  # a restart without persistence: the lease gone with the data
    return holder, attempts


async def test_a_holder_keeping_its_lease_after_redis_lost_its_data_shows_it_until_it_takes_up(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """A holder keeping the lease it took back after Redis lost its data through a failed
    take-up shows ``exesdb_redis_work_queue_lease_kept`` 1 (its leader gauge 0: the work queue
    served by nobody), and 0 again once a take-up works and it leads, nothing given back."""
    holder, attempts = await _keeping_holder(redis_server(), replicas, failures=3)
    await async_wait_until(lambda: holder.sample(KEPT) == 1, 10, "the lease shown kept")
    assert holder.sample("exesdb_redis_work_queue_leader") == 0
    await async_wait_until(
        lambda: holder.sample("exesdb_redis_work_queue_leader") == 1, 10, "taken up"
    )
    assert holder.sample(KEPT) == 0
    assert holder.sample(GIVEN_BACK) == 0
    assert len(attempts) == 5


async def test_a_holder_giving_back_a_lease_kept_after_redis_lost_its_data_counts_it(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """A holder whose take-up still fails three leases after Redis lost its data gives the lease
    back, counted in ``exesdb_redis_work_queue_lease_kept_given_back_total``, and shows it kept
    no more: its open alerts taken up by no replica is a count to alert on, not a log line."""
    holder, _ = await _keeping_holder(redis_server(), replicas, failures=1_000)
    await async_wait_until(lambda: holder.sample(KEPT) == 1, 10, "the lease shown kept")
    assert holder.sample(GIVEN_BACK) == 0
    await async_wait_until(lambda: holder.sample(GIVEN_BACK) == 1, 10, "the lease given back")
    assert holder.sample(KEPT) == 0
    assert holder.sample("exesdb_redis_work_queue_leader") == 0


@pytest.mark.parametrize("ended_by", ["unfit", "another holder", "Redis out of reach", "a stop"])
async def test_a_lease_kept_after_redis_lost_its_data_is_shown_kept_no_more_once_it_ends(
    redis_server: Callable[[], RedisServer], ended_by: str
) -> None:
    """A lease kept through failed take-ups after Redis lost its data is shown kept
    (``exesdb_redis_work_queue_lease_kept``) no more once this replica, found unfit or stopping,
    gives it back, or finds b:2 holding it, or its own runs out with Redis out of reach for
    longer than the lease: none of them keeps the work queue from a replica standing by."""
    server = redis_server()
    now = [0.0]  # the replica's clock, moved only by the test
    unfit: list[str] = []
    taken: list[int] = []

    async def take_up() -> None:
        if taken:  # each of the take-backs'
            raise RuntimeError("the alert outbox is corrupt")
        taken.append(1)

    # A lease of 900 ms, looked at every 300 ms.
    async with running_lease(server, on_lead=take_up, lease_ms=900, clock=lambda: now[0]) as a1:
        a1.require(lambda: unfit[0] if unfit else None)
        await async_wait_until(lambda: a1.leading, 10, "a:1 holding the lease")
        with server.client() as other:
            other.flushall()  # a restart without persistence: the lease gone with the data
        await async_wait_until(lambda: a1.kept, 10, "a:1 keeping the lease")
        if ended_by == "unfit":
            unfit.append("the alert outbox has not answered for 15 s")
        elif ended_by == "another holder":
            with server.client() as other:
                other.set(LEADER, "b:2", px=60_000)
        elif ended_by == "a stop":
            a1.stop_taking()
            await a1.release()
        else:
            server.kill()
            now[0] += 1.0  # past the lease since its last renewal
        await async_wait_until(lambda: not a1.kept, 10, "the lease kept no more")
        assert not a1.leading


class TakeBackAnswerLost(TakeAnswerLost):
    """``TakeAnswerLost`` once ``armed``: the take that takes the lease back, not the first."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.armed = False

    async def sent(self, data: bytes, marked: asyncio.Event) -> None:
        if self.armed:
            await super().sent(data, marked)


async def test_a_holder_taking_back_its_lease_by_a_set_whose_answer_was_lost_keeps_it_alike(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A holder taking back the lease it lost with Redis's data by a SET whose answer was lost
    (the lease found in its own name at its next look, in the new data set) keeps it through a
    failed take-up as it would had the answer come, rather than give it back."""
    server = redis_server()
    proxy = await TakeBackAnswerLost(server.port).start()
    attempts: list[int] = []

    async def take_up() -> None:
        attempts.append(len(attempts))
        if len(attempts) == 2:  # the take-back's first
            raise ConnectionError("Redis closed the connection")

    try:
        async with running_lease(server, on_lead=take_up, url=proxy.url, lease_ms=900) as lease:
            await async_wait_until(lambda: lease.leading, 10, "a:1 holding the lease")
            released = calls(server, "del")  # run by the release script alone, here
            proxy.armed = True
            with server.client() as other:
                other.flushall()  # a restart without persistence: the lease gone with the data
            await async_wait_until(proxy.cut.is_set, 10, "the take-back's answer lost")
            await async_wait_until(
                lambda: len(attempts) >= 3 and lease.leading, 10, "a:1 holding it again"
            )
            assert calls(server, "del") == released  # never given back
    finally:
        await proxy.aclose()
    assert attempts == [0, 1, 2]


class EpochEvictedTakeBack(TakeBackAnswerLost):
    """``TakeBackAnswerLost`` that also deletes the epoch (as an eviction would) before cutting
    the take's answer: the holder finds the lease in its own name with no epoch beside it."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self._redis = Redis(port=upstream_port)

    async def answered(self, data: bytes, marked: asyncio.Event) -> bool:
        if marked.is_set() and not self.cut.is_set():
            await self._redis.delete(EPOCH)
        return await super().answered(data, marked)

    async def aclose(self) -> None:
        await super().aclose()
        await self._redis.aclose()


async def test_a_take_back_that_found_no_epoch_keeps_the_lease_at_the_next_loss_alike(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A holder that took back its lease by a SET whose answer was lost, and found the epoch
    gone beside it (evicted), sets one then: at the next loss of Redis's data it keeps the lease
    through a failed take-up, as it would had the epoch been there, rather than give it back."""
    server = redis_server()
    proxy = await EpochEvictedTakeBack(server.port).start()
    attempts: list[int] = []

    async def take_up() -> None:
        attempts.append(len(attempts))
        if len(attempts) == 3:  # the second take-back's first
            raise ConnectionError("Redis closed the connection")

    try:
        async with running_lease(server, on_lead=take_up, url=proxy.url, lease_ms=900) as lease:
            await async_wait_until(lambda: lease.leading, 10, "a:1 holding the lease")
            proxy.armed = True
            with server.client() as other:
                other.flushall()  # the first loss: taken back, the answer lost, no epoch
            await async_wait_until(
                lambda: len(attempts) >= 2 and lease.leading, 10, "a:1 holding it again"
            )
            released = calls(server, "del")  # the proxy's DEL of the epoch counted already
            with server.client() as other:
                other.flushall()  # the second loss
            await async_wait_until(
                lambda: len(attempts) >= 4 and lease.leading, 10, "a:1 holding it once more"
            )
            assert calls(server, "del") == released  # never given back
    finally:
        await proxy.aclose()
    assert attempts == [0, 1, 2, 3]
