"""What a replica tells of the work-queue lease on a real redis-server: why a holder steps
down, which replica holds it while it stands by (once per holder, once a minute when it goes
back and forth), and never a holder it saw before it took the lease itself."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import pytest

from tests.integration.redis_lease_support import EPOCH, LEADER, running_lease
from tests.integration.redis_replicas import calls
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server"]  # the fixture, imported for the tests below


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
    async with running_lease(server, lease_ms=2000) as lease:
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
    async with running_lease(server, lease_ms=2000) as lease:
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
        async with running_lease(server, lease_ms=900) as lease:
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
        async with running_lease(server, lease_ms=900, clock=lambda: now[0]) as lease:

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
    async with running_lease(server) as lease:
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

    async with running_lease(server, on_lead=not_ready) as lease:
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
    async with running_lease(server) as lease:
        await async_wait_until(lambda: lease.holder == "b:2", 10, "b:2 seen holding the lease")
        server.kill()
        await async_wait_until(lambda: lease.holder is None, 10, "the holder forgotten")
        assert not lease.leading
