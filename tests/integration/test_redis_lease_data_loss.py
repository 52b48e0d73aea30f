"""A lease lost with Redis's data, as a replica standing by sees it on a real redis-server:
left for its holder to take back until a lease from the loss (from each loss) is out, then
taken; one its holder took back and held past that is taken at once once given up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from functools import partial

import pytest
from redis.asyncio import Redis

from bridge.bus.redis.lease import Lease
from tests.integration.redis_lease_support import EPOCH, LEADER, running_lease
from tests.integration.redis_proxy import Proxy
from tests.integration.redis_replicas import calls
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server"]  # the fixture, imported for the tests below


@pytest.mark.parametrize("epoch", ["before", None], ids=["epoch written", "no epoch yet"])
async def test_a_lease_lost_with_redis_data_is_left_to_its_holder_to_take_back(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture, epoch: str | None
) -> None:
    """A replica that saw b:2 hold the lease, finding it gone with Redis's data (a new epoch),
    leaves it for b:2 to take back (b:2's open alerts went with Redis's copy) rather than take
    it at once, also when no writer had written an epoch yet as it looked (the first moments of
    a deployment); b:2 taking it back, a:1 never took it (a 2 s lease: the test's own steps, a
    synchronous client's, fit well within the lease a:1 leaves it for)."""
    server = redis_server()
    with server.client() as other:
        if epoch is not None:
            other.set(EPOCH, epoch)
        other.set(LEADER, "b:2")
    taken: list[int] = []

    async def took() -> None:
        taken.append(1)

    with caplog.at_level(logging.INFO, logger="bridge.bus.redis.lease"):
        async with running_lease(server, on_lead=took, lease_ms=2000) as lease:
            await async_wait_until(lambda: lease.holder == "b:2", 10, "b:2 seen holding it")
            with server.client() as other:  # a restart without persistence: everything gone
                other.flushall()
            await async_wait_until(
                lambda: "leaving it to b:2" in caplog.text or taken, 10, "the lease found free"
            )
            assert taken == []
            with server.client() as other:
                other.set(LEADER, "b:2", px=30_000)  # b:2 takes it back, and keeps it
            await async_wait_until(lambda: lease.holder == "b:2", 10, "b:2 seen again")
            assert taken == []


async def test_a_lease_lost_with_redis_data_goes_to_another_once_its_holder_stays_away(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A lease lost with Redis's data whose holder does not come back is taken by a replica
    standing by after one lease, as a dead holder's is."""
    server = redis_server()
    held_by_b2(server)
    async with running_lease(server) as lease:
        await async_wait_until(lambda: lease.holder == "b:2", 10, "b:2 seen holding it")
        with server.client() as other:
            other.flushall()
        await async_wait_until(lambda: lease.leading, 10, "the lease taken after a while")


class TakeLostThenData(Proxy):
    """A proxy that, at the lease's first SET NX of the lease, sets it first as replica b:2
    would (so that the take fails), and empties Redis (a restart without persistence) before
    the failed take's answer reaches the lease: the lease free again before its next look."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.done = False
        self._redis = Redis(port=upstream_port)

    async def sent(self, data: bytes, marked: asyncio.Event) -> None:
        if not self.done and LEADER.encode() in data and b"\r\nNX\r\n" in data:
            await self._redis.set(LEADER, "b:2", px=30_000)
            marked.set()

    async def answered(self, data: bytes, marked: asyncio.Event) -> bool:
        # Redis answers once it ran all the take sent: the data goes after the take.
        if marked.is_set() and not self.done:
            await self._redis.flushall()
            self.done = True
        return True

    async def aclose(self) -> None:
        await super().aclose()
        await self._redis.aclose()


@pytest.mark.parametrize("epoch", ["before", None], ids=["epoch written", "no epoch yet"])
async def test_a_take_lost_to_another_leaves_it_the_lease_lost_with_redis_data_at_once(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture, epoch: str | None
) -> None:
    """A replica whose first take of a free lease lost to b:2 records b:2 as its holder then,
    not at its next look a second later: Redis losing its data in between, it leaves the lease
    for b:2 to take back rather than take it at once (also with no epoch written yet, which
    the take sets)."""
    server = redis_server()
    if epoch is not None:
        with server.client() as other:
            other.set(EPOCH, epoch)
    proxy = await TakeLostThenData(server.port).start()
    taken: list[int] = []

    async def took() -> None:
        taken.append(1)

    try:
        with caplog.at_level(logging.INFO, logger="bridge.bus.redis.lease"):
            # A clock that stands still: the lease is left to b:2 for as long as the test looks.
            async with running_lease(
                server, on_lead=took, url=proxy.url, lease_ms=900, clock=lambda: 0.0
            ) as lease:
                await async_wait_until(lambda: proxy.done, 10, "the take lost, then the data")
                await async_wait_until(
                    lambda: "leaving it to b:2" in caplog.text or taken, 10, "the lease found free"
                )
                assert taken == []
                assert not lease.leading
    finally:
        await proxy.aclose()


async def looked_again(server: RedisServer, taken: list[int]) -> None:
    """Wait until replica a:1 looked at the lease twice since now, or took it (``taken``)."""
    # Each look GETs the lease and the epoch: three more, two whole after now, unless a:1 took
    # the lease (its take GETs both too, and is taken up before a GET more).
    gets = calls(server, "get")
    await async_wait_until(lambda: taken or calls(server, "get") >= gets + 6, 10, "looked")


def held_by_b2(server: RedisServer) -> None:
    """Redis as replica b:2 leaves it holding the lease, in the data set of epoch ``before``."""
    with server.client() as other:
        other.set(EPOCH, "before")
        other.set(LEADER, "b:2")


class StandingBy:
    """Replica a:1's lease standing by for b:2 (``held_by_b2``), timed by ``now[0]``, which
    moves only when a test moves it; ``taken`` gets a 1 each time a:1 takes the lease."""

    def __init__(self, lease: Lease, now: list[float], taken: list[int]) -> None:
        self.lease, self.now, self.taken = lease, now, taken


@contextlib.asynccontextmanager
async def standing_by_for_b2(server: RedisServer) -> AsyncIterator[StandingBy]:
    """a:1's lease of 900 ms (looked at every 300 ms) run against ``server`` once b:2 holds
    it there, yielded once a:1 has seen b:2 hold it."""
    held_by_b2(server)
    now = [0.0]
    taken: list[int] = []

    async def took() -> None:
        taken.append(1)

    async with running_lease(server, on_lead=took, lease_ms=900, clock=lambda: now[0]) as lease:
        await async_wait_until(lambda: lease.holder == "b:2", 10, "b:2 seen holding it")
        yield StandingBy(lease, now, taken)


def leaving_to_b2(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The lines a:1 logged saying it leaves the lease to b:2 to take back."""
    return [r.getMessage() for r in caplog.records if "leaving it to b:2" in r.getMessage()]


@pytest.mark.parametrize("looked", [True, False], ids=["found free", "taken back unseen"])
async def test_a_lease_lost_with_redis_data_is_left_to_its_holder_whose_take_up_failed(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture, looked: bool
) -> None:
    """b:2, taking back the lease it lost with Redis's data (whether a:1 found it free first or
    not), gives it back as a step of taking the work queue up failed: a:1 still leaves it to b:2
    until a lease from the loss is out (b:2 tries again a second later; its open alerts are
    only in its outbox), not taking it at once as if given up in the new data set; a:1 takes
    it then."""
    server = redis_server()
    leaving = partial(leaving_to_b2, caplog)
    with caplog.at_level(logging.INFO, logger="bridge.bus.redis.lease"):
        async with standing_by_for_b2(server) as a1:
            lease, now, taken = a1.lease, a1.now, a1.taken
            with server.client() as other:
                pipe = other.pipeline(transaction=True)
                pipe.flushall()
                if looked:
                    pipe.execute()
                    await async_wait_until(lambda: leaving() or taken, 10, "found free")
                # b:2 takes its lease back, its writer writing a new epoch.
                pipe.set(EPOCH, "after")
                pipe.set(LEADER, "b:2")
                pipe.execute()
            await looked_again(server, taken)
            with server.client() as other:
                other.delete(LEADER)  # b:2's take-up failed: it gives the lease back
            await looked_again(server, taken)
            assert taken == []
            assert len(leaving()) == 1
            now[0] += 1.0  # a lease from the loss is out: b:2 stayed away
            await async_wait_until(lambda: lease.leading, 10, "the lease taken")
            assert taken == [1]


async def test_a_second_loss_of_redis_data_leaves_the_lease_a_lease_from_that_loss(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """Redis losing its data again while a:1 leaves the lease to b:2 (b:2 took it back, and
    lost it with the data once more) leaves it to b:2 for a lease from the second loss, not
    only until a lease from the first is out: b:2 finds the second loss at its next renewal,
    a third of a lease later at most, after the first loss's lease may be out."""
    server = redis_server()
    leaving = partial(leaving_to_b2, caplog)
    with caplog.at_level(logging.INFO, logger="bridge.bus.redis.lease"):
        async with standing_by_for_b2(server) as a1:
            lease, now, taken = a1.lease, a1.now, a1.taken
            with server.client() as other:
                other.flushall()
            await async_wait_until(lambda: leaving() or taken, 10, "the first loss found")
            with server.client() as other:
                pipe = other.pipeline(transaction=True)
                pipe.set(EPOCH, "after")  # b:2 takes its lease back, its writer writing one
                pipe.set(LEADER, "b:2")
                pipe.execute()
            await looked_again(server, taken)
            now[0] += 0.6  # two thirds of a lease from the first loss
            with server.client() as other:
                pipe = other.pipeline(transaction=True)
                pipe.flushall()  # Redis lost its data again, a writer writes a new epoch
                pipe.set(EPOCH, "again")
                pipe.execute()
            await looked_again(server, taken)  # the second loss found, two thirds in
            now[0] += 0.6  # a lease from the first loss is out, not from the second
            await looked_again(server, taken)
            assert taken == []
            assert len(leaving()) == 2  # each loss told
            now[0] += 0.4  # a lease from the second loss is out: b:2 stayed away
            await async_wait_until(lambda: lease.leading, 10, "the lease taken")
            assert taken == [1]


async def test_a_lease_taken_back_and_held_past_a_lease_from_the_loss_is_taken_at_once_given_up(
    redis_server: Callable[[], RedisServer],
) -> None:
    """b:2, having taken back the lease it lost with Redis's data and held it past a lease from
    the loss (its work queue taken up), gives it up: a:1 takes it at once, as any lease given
    up, not left for b:2 a lease more."""
    server = redis_server()
    async with standing_by_for_b2(server) as a1:
        lease, now, taken = a1.lease, a1.now, a1.taken
        with server.client() as other:
            pipe = other.pipeline(transaction=True)
            pipe.flushall()  # Redis lost its data, and b:2 takes its lease back
            pipe.set(EPOCH, "after")
            pipe.set(LEADER, "b:2")
            pipe.execute()
        await looked_again(server, taken)
        now[0] += 1.0  # a lease from the loss is out, b:2 holding the lease still
        await looked_again(server, taken)
        with server.client() as other:
            other.delete(LEADER)  # b:2 stops
        await async_wait_until(lambda: lease.leading, 10, "the lease taken")
    assert taken == [1]
