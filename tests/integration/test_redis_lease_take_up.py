"""Taking the work queue up under the lease on a real redis-server: a step failing alike
logged once, a long one kept under a renewed lease, an unfit replica giving the lease back
until fit, a stop meanwhile giving it back at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
import redis as redis_py
from redis.asyncio import Redis

from bridge.backoff import Backoff
from bridge.bus.redis.layout import Layout
from bridge.bus.redis.lease import Lease
from bridge.bus.redis.link import Link
from tests.integration.redis_lease_support import (
    LEADER,
    release_as_the_work_queue_does,
    running_lease,
)
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server"]  # the fixture, imported for the tests below


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
        async with running_lease(server, on_lead=full_disk) as lease:
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

    async with running_lease(server, on_lead=slow_take_up) as lease:
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
        async with running_lease(server, on_lead=hanging_take_up) as lease:
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
