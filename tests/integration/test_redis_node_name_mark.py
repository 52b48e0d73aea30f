"""The node name's mark on a real redis-server at a graceful stop: deleted, or left to expire
when Redis does not answer within the half second the stop waits (docs/redis.md)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from bridge.backoff import Backoff
from bridge.bus.redis.layout import Layout
from bridge.bus.redis.link import Link, redis_client, redis_pool
from bridge.bus.redis.node_name import RedisNodeNameCheck
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server"]  # the fixture, imported for the tests below

NODE = "bridge-stopping"
MARK = f"exesdb:state:replica:{NODE}"
# What the transport's stop gives forget (bridge/bus/redis/transport.py; docs/redis.md).
FORGET_SECONDS = 0.5


@contextlib.asynccontextmanager
async def _marked(
    server: RedisServer, client: Redis | None = None
) -> AsyncIterator[RedisNodeNameCheck]:
    """A check on ``server`` that has marked the name and stopped marking it, as the transport's
    stop leaves it before ``forget``; its client ``client``, by default the transport's own
    (``redis_client``)."""
    client = client or redis_client(server.url, block_ms=1_000)
    link = Link(server.url, client, Backoff(0.01, 0.1, 0.0))
    check = RedisNodeNameCheck(link, Layout("exesdb"), node=NODE, lease_ms=60_000)
    marking = asyncio.create_task(check.run())
    try:
        with server.client() as other:
            await async_wait_until(lambda: other.get(MARK), 10, "the name marked")
        link.stopping.set()
        marking.cancel()
        await asyncio.gather(marking, return_exceptions=True)
        yield check
    finally:
        marking.cancel()
        await asyncio.gather(marking, return_exceptions=True)
        await client.aclose()


async def test_forget_deletes_the_mark_it_holds(
    redis_server: Callable[[], RedisServer],
) -> None:
    """Redis answering, forget deletes the process's own mark at once."""
    server = redis_server()
    async with _marked(server) as check:
        await check.forget(FORGET_SECONDS)
        with server.client() as other:
            assert other.get(MARK) is None


class AnswerCutOff(Redis):
    """The transport's client whose SET reaches Redis but whose answer never comes back (the
    stop cancelling the write on its way back)."""

    async def set(self, *args: Any, **kwargs: Any) -> Any:
        await super().set(*args, **kwargs)
        await asyncio.Event().wait()  # the answer lost: until cancelled


async def test_forget_deletes_a_mark_whose_write_the_stop_cut_off_before_its_answer(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A stop cancelling the first mark's write after Redis took it, before its answer: forget
    deletes it all the same (it holds this process's id), rather than leaving it for the lease."""
    server = redis_server()
    cut_off = AnswerCutOff.from_pool(redis_pool(server.url, block_ms=1_000))
    async with _marked(server, cut_off) as check:
        await check.forget(FORGET_SECONDS)
        with server.client() as other:
            assert other.get(MARK) is None


async def test_forget_gives_up_on_a_redis_that_does_not_answer_within_its_bound(
    redis_server: Callable[[], RedisServer],
) -> None:
    """Redis holding every write (CLIENT PAUSE, for 5 s), forget returns after its half second,
    without raising, instead of holding up the stop; the mark is left to expire after the
    lease, as after a crash."""
    server = redis_server()
    async with _marked(server) as check:
        with server.client() as other:
            other.execute_command("CLIENT", "PAUSE", 5_000, "WRITE")
            try:
                started = time.monotonic()
                await check.forget(FORGET_SECONDS)
                waited = time.monotonic() - started
            finally:
                other.execute_command("CLIENT", "UNPAUSE")
            # Its half second; waiting for Redis would take the pause's 5 s. The bound leaves a
            # loaded host seconds to spare.
            assert FORGET_SECONDS - 0.05 <= waited < FORGET_SECONDS + 2.5
            assert other.get(MARK) is not None
            assert 0 < other.pttl(MARK) <= 60_000
