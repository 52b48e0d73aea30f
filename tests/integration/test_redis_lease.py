"""The work-queue lease on a real redis-server: why a holder steps down is said as it is, the
holder a replica names is never one it saw before it took the lease itself, and what a read
under it got is taken though its answer was lost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import pytest
import redis as redis_py
from redis.asyncio import Redis

from bridge.backoff import Backoff
from bridge.bus.redis.layout import Layout
from bridge.bus.redis.lease import Lease
from bridge.bus.redis.link import Link, redis_client
from tests.integration.redis_proxy import Proxy
from tests.integration.redis_replicas import ALERTS, Replica, calls, replicas, signed_entry
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "replicas"]  # the fixtures, imported for the tests below

LEADER = "exesdb:bus:leader"
EPOCH = "exesdb:bus:epoch"
KEPT = "exesdb_redis_work_queue_lease_kept"
GIVEN_BACK = "exesdb_redis_work_queue_lease_kept_given_back_total"


@contextlib.asynccontextmanager
async def _running_lease(
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


@pytest.mark.parametrize(
    ("taken_by", "reason"),
    [
        ("b:2", "the lease went to another replica (b:2)"),
        (
            None,
            "the lease is gone from Redis (Redis lost its data, or the lease ran out before "
            "this replica renewed it)",
        ),
    ],
    ids=["another replica", "gone"],
)
async def test_a_holder_losing_the_lease_says_whether_another_replica_took_it(
    redis_server: Callable[[], RedisServer],
    caplog: pytest.LogCaptureFixture,
    taken_by: str | None,
    reason: str,
) -> None:
    """A lease another replica holds at renewal is named with its holder; a lease no longer in
    Redis (a restart without its data, with no other replica about) is said to be gone, not
    given to a replica that does not exist (a 2 s lease: a pause of a loaded host between two
    renewals does not let it run out first and log a step down of its own)."""
    server = redis_server()
    async with _running_lease(server, lease_ms=2000) as lease:
        await async_wait_until(lambda: lease.leading, 10, "the lease taken")
        with caplog.at_level(logging.WARNING, logger="bridge.bus.redis.lease"):
            with server.client() as other:
                if taken_by is None:
                    other.delete(LEADER)
                else:
                    other.set(LEADER, taken_by)
            await async_wait_until(lambda: caplog.records, 10, "the step down logged")
        [record] = caplog.records
        assert record.getMessage() == f"this replica no longer takes the work queue: {reason}"


async def test_a_holder_whose_lease_another_took_after_redis_lost_its_data_says_its_alerts_stay(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A holder finding the lease taken by b:2 in a data set Redis made anew (it lost its data,
    and b:2, never having seen this replica hold it, took it first) warns that its open alerts,
    kept only in its outbox, are taken up by nobody (their resolves are never sent): the loss
    is told, not silent (a 2 s lease: no step down of its own on a loaded host)."""
    server = redis_server()
    async with _running_lease(server, lease_ms=2000) as lease:
        await async_wait_until(lambda: lease.leading, 10, "the lease taken")
        with caplog.at_level(logging.WARNING, logger="bridge.bus.redis.lease"):
            with server.client() as other:
                pipe = other.pipeline(transaction=True)
                pipe.flushall()  # a restart without persistence, and b:2 takes the lease
                pipe.set(EPOCH, "after")
                pipe.set(LEADER, "b:2")
                pipe.execute()
            await async_wait_until(lambda: len(caplog.records) >= 2, 10, "the loss told")
    assert [r.getMessage() for r in caplog.records] == [
        "this replica no longer takes the work queue: the lease went to another replica (b:2)",
        "b:2 took the work-queue lease after Redis lost its data while this replica (a:1) held"
        " it: this replica's open alerts, kept only in its outbox, are taken up by no replica"
        " (their resolves are never sent)",
    ]


async def test_a_replica_standing_by_says_so_once_per_holder_naming_it(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A replica finding another holding the lease logs once that it stands by, naming the
    holder (its own log said nothing of the work queue otherwise), and again only when
    another replica holds it."""
    server = redis_server()
    with server.client() as other:
        other.set(LEADER, "b:2")
    with caplog.at_level(logging.INFO, logger="bridge.bus.redis.lease"):
        # A lease of 900 ms: the holder looked at every 300 ms.
        async with _running_lease(server, lease_ms=900) as lease:
            await async_wait_until(lambda: lease.holder == "b:2", 10, "b:2 seen holding it")
            # Two more looks (each GETs the lease and the epoch), b:2 still holding it: not
            # told again.
            gets = calls(server, "get")
            await async_wait_until(lambda: calls(server, "get") >= gets + 4, 10, "looked again")
            with server.client() as other:
                other.set(LEADER, "c:3")
            await async_wait_until(lambda: lease.holder == "c:3", 10, "c:3 seen holding it")
    said = [r.getMessage() for r in caplog.records if "stands by" in r.getMessage()]
    assert said == [
        f"the work queue is taken by {holder}: this replica (a:1) stands by, and takes it over"
        " once that one stops or its lease runs out (900 ms)"
        for holder in ("b:2", "c:3")
    ]


async def test_a_replica_standing_by_names_holders_going_back_and_forth_once_a_minute(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A lease going back and forth between two other replicas is not told at every change:
    a holder named less than a minute before is named again once that minute is out (still
    holding it), with how many changes went unsaid; a holder not named in that minute is named
    at once."""
    server = redis_server()
    now = [0.0]

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if "stands by" in r.getMessage()]

    with caplog.at_level(logging.INFO, logger="bridge.bus.redis.lease"):
        # A lease of 900 ms: the holder looked at every 300 ms (each change seen within it).
        async with _running_lease(server, lease_ms=900, clock=lambda: now[0]) as lease:

            def seen(holder: str) -> bool:
                return lease.holder == holder

            for holder in ("b:2", "c:3", "b:2", "c:3", "b:2"):
                with server.client() as other:
                    other.set(LEADER, holder)
                await async_wait_until(partial(seen, holder), 10, f"{holder} seen")
            assert len(said()) == 2
            now[0] += 61.0  # the minute since b:2 was named is out
            await async_wait_until(lambda: len(said()) == 3, 10, "b:2 named again")
            with server.client() as other:
                other.set(LEADER, "d:4")
            await async_wait_until(lambda: len(said()) == 4, 10, "d:4 named")
    line = (
        "the work queue is taken by {}: this replica (a:1) stands by, and takes it over once"
        " that one stops or its lease runs out (900 ms)"
    )
    assert said() == [
        line.format("b:2"),
        line.format("c:3"),
        line.format("b:2") + "; 3 change(s) of holder went unsaid since the last line like this",
        line.format("d:4"),
    ]


async def test_a_replica_that_took_the_lease_and_lost_redis_names_no_old_holder(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A replica that saw b:2 hold the lease, then took it itself, names no holder once it steps
    down because Redis is unreachable: not b:2, which it last saw long before."""
    server = redis_server()
    with server.client() as other:
        other.set(LEADER, "b:2")
    async with _running_lease(server) as lease:
        await async_wait_until(lambda: lease.holder == "b:2", 10, "b:2 seen holding the lease")
        with server.client() as other:
            other.delete(LEADER)
        await async_wait_until(lambda: lease.leading, 10, "the lease taken")
        server.kill()
        await async_wait_until(lambda: not lease.leading, 10, "the lease lapsed")
        assert lease.holder is None


async def test_a_replica_not_ready_to_take_the_lease_names_no_old_holder(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A replica that saw b:2 hold the lease, then took it when free but gave it back (a step
    of taking it up failed), names no holder: not b:2, whose lease is gone."""
    server = redis_server()
    with server.client() as other:
        other.set(LEADER, "b:2")
    attempts: list[int] = []

    async def not_ready() -> None:
        attempts.append(len(attempts))
        raise RuntimeError("the outbox is still opening")

    async with _running_lease(server, on_lead=not_ready) as lease:
        await async_wait_until(lambda: lease.holder == "b:2", 10, "b:2 seen holding the lease")
        with server.client() as other:
            other.delete(LEADER)
        # The second attempt begins after the first gave the lease back.
        await async_wait_until(lambda: len(attempts) >= 2, 10, "two attempts to take it up")
        assert not lease.leading
        assert lease.holder is None


async def test_a_replica_standing_by_forgets_the_holder_once_redis_is_gone_a_lease_long(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A replica that saw b:2 hold the lease names no holder once Redis has been unreachable
    for longer than a lease: b:2's may have run out, so it is no longer known to hold it."""
    server = redis_server()
    with server.client() as other:
        other.set(LEADER, "b:2")
    async with _running_lease(server) as lease:
        await async_wait_until(lambda: lease.holder == "b:2", 10, "b:2 seen holding the lease")
        server.kill()
        await async_wait_until(lambda: lease.holder is None, 10, "the holder forgotten")
        assert not lease.leading


async def test_a_take_over_failing_alike_each_time_is_logged_once_then_its_success(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A step of taking the work queue up that fails the same way at every attempt (the outbox
    on a full disk: once a second) logs its warning and traceback once, not each attempt, and
    an INFO line counting the failed attempts once a take-over works."""
    server = redis_server()
    failures = 4
    attempts: list[int] = []

    async def full_disk() -> None:
        attempts.append(len(attempts))
        if len(attempts) <= failures:
            raise OSError("database or disk is full")

    with caplog.at_level(logging.INFO, logger="bridge.bus.redis.lease"):
        async with _running_lease(server, on_lead=full_disk) as lease:
            await async_wait_until(lambda: lease.leading, 10, "the lease taken at last")
    lines = [
        (r.levelname, r.getMessage(), r.exc_info is not None)
        for r in caplog.records
        if "taking the work queue over" in r.getMessage()
    ]
    assert lines == [
        ("WARNING", "taking the work queue over: a step of taking it up failed", True),
        ("INFO", "taking the work queue over worked after 4 failed attempt(s)", False),
    ]
    assert len(attempts) == failures + 1


async def test_a_take_up_longer_than_the_lease_keeps_the_lease_and_ends_holding_it(
    redis_server: Callable[[], RedisServer],
) -> None:
    """Taking the work queue up may take longer than the lease (tens of thousands of open
    alerts to adopt): the lease is renewed meanwhile, so no other replica can take it, and the
    replica holds it once the take-up is done, at the first attempt."""
    server = redis_server()
    attempts: list[int] = []
    done = asyncio.Event()

    async def slow_take_up() -> None:
        attempts.append(len(attempts))
        await asyncio.sleep(1.0)  # three and a third leases of 300 ms: adopting many alerts
        done.set()

    seen: set[object] = set()

    def holder_seen(other: redis_py.Redis) -> bool:
        seen.add(other.get(LEADER))
        return done.is_set()

    async with _running_lease(server, on_lead=slow_take_up) as lease:
        await async_wait_until(lambda: attempts, 10, "the take-up begun")
        with server.client() as other:
            # async_wait_until looks every 20 ms: many looks within each lease.
            await async_wait_until(lambda: holder_seen(other), 10, "a take-up done")
        await async_wait_until(lambda: lease.leading, 10, "the lease held")
    assert seen == {b"a:1"}
    assert attempts == [0]


async def test_a_take_up_found_unfit_gives_the_lease_back_and_waits_until_fit(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A replica found unfit (``require``: its outbox hung) while it takes the work queue up
    gives the lease back then, not after the minute a take-up may last, leaves the free lease
    alone while unfit (said once), and takes it up once fit."""
    server = redis_server()
    unfit: list[str] = []
    release = asyncio.Event()

    async def hanging_take_up() -> None:
        await release.wait()  # an outbox call waiting behind one that hangs

    def leader() -> bytes | None:
        with server.client() as other:
            held: bytes | None = other.get(LEADER)
            return held

    with caplog.at_level(logging.INFO, logger="bridge.bus.redis.lease"):
        async with _running_lease(server, on_lead=hanging_take_up) as lease:
            lease.require(lambda: unfit[0] if unfit else None)
            await async_wait_until(lambda: leader() == b"a:1", 10, "the lease taken")
            unfit.append("the alert outbox has not answered for 15 s")
            await async_wait_until(lambda: leader() is None, 10, "the lease given back")
            await async_wait_until(
                lambda: (
                    "the work-queue lease is free but this replica (a:1) does not take it:"
                    " the alert outbox has not answered for 15 s" in caplog.text
                ),
                10,
                "the free lease left alone",
            )
            assert not lease.leading
            assert "taking the work queue up stopped: the alert outbox" in caplog.text
            unfit.clear()
            release.set()
            await async_wait_until(lambda: lease.leading, 10, "the lease held once fit")
    declined = [r for r in caplog.records if "lease is free but" in r.getMessage()]
    assert len(declined) == 1


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
        async with _running_lease(server, on_lead=took, lease_ms=2000) as lease:
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
    async with _running_lease(server) as lease:
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
            async with _running_lease(
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

    async with _running_lease(server, on_lead=took, lease_ms=900, clock=lambda: now[0]) as lease:
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

    async with _running_lease(server, on_lead=took, lease_ms=30_000) as lease:
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
    async with _running_lease(server, on_lead=take_up, lease_ms=900) as a1:
        await async_wait_until(lambda: a1.leading, 10, "a:1 holding the lease")
        async with _running_lease(server, on_lead=b2_take_up, lease_ms=900, consumer="b:2") as b2:
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
        async with _running_lease(
            server, on_lead=take_up, lease_ms=900, clock=lambda: now[0]
        ) as a1:
            await async_wait_until(lambda: a1.leading, 10, "a:1 holding the lease")
            async with _running_lease(
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
    async with _running_lease(server, on_lead=take_up, lease_ms=900, clock=lambda: now[0]) as a1:
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


async def test_a_lease_taken_by_a_set_whose_answer_was_lost_is_held(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A lease naming this replica's own consumer that it does not know it holds (its SET ran
    after the answer was given up on: Redis stalled) is taken up at once, not waited out as
    another's."""
    server = redis_server()
    with server.client() as other:
        other.set(LEADER, "a:1", px=60_000)
    async with _running_lease(server) as lease:
        await async_wait_until(lambda: lease.leading, 10, "the lease taken up")


async def test_an_unfit_replica_gives_back_a_lease_a_lost_set_took_in_its_name(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """An unfit replica (``require``: its outbox hung) finding the lease in its own name unawares
    (a lost SET's) gives it back at once, not left a whole lease for the others to wait out."""
    server = redis_server()
    with server.client() as other:
        other.set(LEADER, "a:1", px=60_000)

    def leader() -> bytes | None:
        with server.client() as other:
            held: bytes | None = other.get(LEADER)
            return held

    with caplog.at_level(logging.INFO, logger="bridge.bus.redis.lease"):
        async with _running_lease(server) as lease:
            lease.require(lambda: "the alert outbox has not answered for 15 s")
            await async_wait_until(lambda: leader() is None, 10, "the lease given back")
            assert not lease.leading
            assert "does not take it: the alert outbox has not answered" in caplog.text


async def test_a_holder_whose_renewal_goes_unanswered_steps_down_as_its_lease_runs_out(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A holder whose link to Redis stops carrying anything (its renewal never answered, the
    client set no socket timeout) no longer says it holds the lease once the lease has run out
    in Redis, where another replica may take it: told as its renewal unanswered before the
    lease ran out, not after redis-py's own read timeout (5 s) however slow the host is."""
    server = redis_server()
    proxy = await Proxy(server.port).start()
    try:
        with caplog.at_level(logging.WARNING, logger="bridge.bus.redis"):
            async with _running_lease(server, url=proxy.url) as lease:
                await async_wait_until(lambda: lease.leading, 10, "the lease taken")
                proxy.stall()
                await async_wait_until(
                    lambda: not lease.leading and "is unreachable" in caplog.text,
                    10,
                    "the lease given up, Redis said unreachable",
                )
    finally:
        await proxy.aclose()
    assert "no answer to the work-queue lease's renewal before it ran out (300 ms)" in caplog.text


async def test_a_holder_told_unreachable_by_the_socket_timeout_keeps_its_lease_until_it_runs_out(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """With a lease whose renewal waits longer than the socket timeout (as the default 30 s
    lease's 20 s do the bridge's 6 s), a stalled Redis is told unreachable by the socket
    timeout, as on a replica standing by, and the holder says it holds the lease until the
    lease would have run out in Redis, then gives it up, told as expired while Redis was
    unreachable: not sooner, and not as its renewal unanswered (docs/redis.md)."""
    server = redis_server()
    proxy = await Proxy(server.port).start()
    lease_s, socket_timeout = 3.6, 0.3  # the renewal, every 1.2 s, waits up to 2.4 s
    try:
        with caplog.at_level(logging.WARNING, logger="bridge.bus.redis"):
            async with _running_lease(
                server, url=proxy.url, lease_ms=int(lease_s * 1000), socket_timeout=socket_timeout
            ) as lease:
                await async_wait_until(lambda: lease.leading, 10, "the lease taken")
                proxy.stall()
                stalled = asyncio.get_running_loop().time()
                await async_wait_until(
                    lambda: "is unreachable: Timeout reading" in caplog.text, 10, "unreachable"
                )
                told = asyncio.get_running_loop().time() - stalled
                still_held = lease.leading
                await async_wait_until(lambda: not lease.leading, 10, "the lease given up")
                given_up = asyncio.get_running_loop().time() - stalled
    finally:
        await proxy.aclose()
    assert told < lease_s / 3 * 2, told  # by the socket timeout, before the renewal's wait ends
    assert still_held
    # The lease runs out two thirds to a whole of it after the stall (renewed a third before).
    assert lease_s / 3 * 2 - 0.1 <= given_up <= lease_s + 1, given_up
    assert "the lease expired while Redis was unreachable" in caplog.text
    assert "no answer to the work-queue lease's renewal" not in caplog.text


async def release_as_the_work_queue_does(running: asyncio.Task[None], lease: Lease) -> None:
    """Stop ``lease`` as WorkQueue.release does: its task cancelled, then the lease released."""
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    await lease.release()


async def test_a_stop_while_taking_the_work_queue_up_gives_the_lease_back_at_once(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A graceful stop that comes while the replica takes the work queue up (the lease set,
    the open alerts still being adopted) gives the lease back at once, as a holder's stop does,
    not left for the replicas standing by to wait out."""
    server = redis_server()
    url = server.url
    client = Redis.from_url(url)
    link = Link(url, client, Backoff(0.01, 0.1, 0.0))
    lease = Lease(link, Layout("exesdb"), consumer="a:1", lease_ms=60_000)
    begun = asyncio.Event()

    async def hanging_take_up() -> None:
        begun.set()
        await asyncio.Event().wait()  # adopting many open alerts: the stop comes meanwhile

    lease.on_lead(hanging_take_up)
    running = asyncio.create_task(link.keep_running("lease", lease.run))
    try:
        await asyncio.wait_for(begun.wait(), 10)
        with server.client() as other:
            assert other.get(LEADER) == b"a:1"
        await release_as_the_work_queue_does(running, lease)
        with server.client() as other:
            assert other.get(LEADER) is None
    finally:
        link.stopping.set()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await client.aclose()


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


async def test_a_stop_after_a_take_whose_answer_was_lost_gives_the_lease_back(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A graceful stop that comes after a take whose answer was lost (Redis set the lease, the
    replica told only that the connection broke, retrying after its backoff) gives the lease
    back at once, not left for the replicas standing by to wait out."""
    server = redis_server()
    proxy = await TakeAnswerLost(server.port).start()
    client = redis_client(proxy.url, block_ms=1_000)  # no retry of its own, as the bridge's
    link = Link(proxy.url, client, Backoff(60.0, 60.0, 0.0))  # the retry comes after the stop
    lease = Lease(link, Layout("exesdb"), consumer="a:1", lease_ms=60_000)
    running = asyncio.create_task(lease.run())
    try:
        await asyncio.wait_for(proxy.cut.wait(), 10)
        with server.client() as other:
            assert other.get(LEADER) == b"a:1"
        assert not lease.leading
        await release_as_the_work_queue_does(running, lease)
        with server.client() as other:
            assert other.get(LEADER) is None
    finally:
        link.stopping.set()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await client.aclose()
        await proxy.aclose()


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
        async with _running_lease(server, on_lead=take_up, url=proxy.url, lease_ms=900) as lease:
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
        async with _running_lease(server, on_lead=take_up, url=proxy.url, lease_ms=900) as lease:
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


class LostRead(Proxy):
    """A proxy that, once, cuts the connection instead of passing back the answer of a consumer
    group's read that got entries of ex_esdb_alerts: Redis holds them pending at the reader,
    which never saw them (as when a Redis that stalled past the socket timeout serves a blocked
    read)."""

    READ = b"XREADGROUP"

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.cut = False

    async def sent(self, data: bytes, marked: asyncio.Event) -> None:
        # Marked: the connection's last command was a group read.
        if self.READ in data:
            marked.set()
        else:
            marked.clear()

    async def answered(self, data: bytes, marked: asyncio.Event) -> bool:
        if marked.is_set() and not self.cut and ALERTS.encode() in data:
            self.cut = True
            return False
        return True


async def test_entries_a_group_read_got_whose_answer_was_lost_are_taken_at_once(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """The holder's read of the consumer group gets an entry and its answer is lost (the
    connection cut): Redis holds the entry pending at the holder, which takes it at its next
    read from its own pending entries, not a claim's idle time later."""
    server = redis_server()
    proxy = await LostRead(server.port).start()
    try:
        holder = await Replica(proxy.url, "node-a", claim_idle_ms=60_000).start()
        replicas.append(holder)
        await async_wait_until(lambda: holder.sample("exesdb_redis_work_queue_leader") == 1, 10)
        with server.client() as client:
            client.xadd(f"exesdb:bus:{ALERTS}", signed_entry())
        await async_wait_until(lambda: proxy.cut, 10, "the read's answer lost")
        await async_wait_until(lambda: holder.taken_alerts() == ["forged"], 10, "taken")
        assert holder.sample("exesdb_redis_claimed_total") == 0
    finally:
        for replica in replicas:
            await replica.aclose()
        replicas.clear()
        await proxy.aclose()


class LostClaim(LostRead):
    """``LostRead`` for a claim (XAUTOCLAIM) that got entries."""

    READ = b"XAUTOCLAIM"


async def test_entries_a_claim_got_whose_answer_was_lost_are_taken_at_once(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """The holder's claim of an entry a dead replica left gets it and its answer is lost (the
    connection cut): Redis holds the entry pending at the holder, idle no more, which takes it
    at its next read from its own pending entries, not another claim's idle time later."""
    server = redis_server()
    stream = f"exesdb:bus:{ALERTS}"
    with server.client() as client:
        client.xgroup_create(stream, "exesdb-bridge", id="0", mkstream=True)
        entry = client.xadd(stream, signed_entry())
        client.xreadgroup("exesdb-bridge", "dead:1", {stream: ">"})
        # Idle past the claim's idle time already: the first claim round takes it.
        client.xclaim(stream, "exesdb-bridge", "dead:1", 0, [entry], idle=120_000)
    proxy = await LostClaim(server.port).start()
    try:
        holder = await Replica(proxy.url, "node-a", claim_idle_ms=4_000).start()
        replicas.append(holder)
        await async_wait_until(lambda: proxy.cut, 10, "the claim's answer lost")
        # Claimed again it would be 4 s later at the soonest (idle once more).
        await async_wait_until(lambda: holder.taken_alerts() == ["forged"], 3, "taken")
    finally:
        for replica in replicas:
            await replica.aclose()
        replicas.clear()
        await proxy.aclose()
