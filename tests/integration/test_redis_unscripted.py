"""Batches written one XADD each (an ACL user without EVAL and EVALSHA) on a real redis-server:
only an XADD refused is a stream refused; a command of the watched transaction refused (UNWATCH,
MULTI, EXEC) drops nothing and writes nothing twice.

A writer is built alone on a ``Link`` (``running_writer``, as in ``test_redis_spool.py``); its
user is docs/redis.md's without the scripts (``without_scripts``) and what each test takes away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
import redis

from bridge.bus import Frame
from tests.integration.servers.redis import RedisServer, redis_server
from tests.integration.test_redis_bus import calls
from tests.integration.test_redis_retained import GRANTED, without_scripts
from tests.integration.test_redis_spool import running_writer
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server"]

# Instances no consumer group takes (the writer keeps none of their frames, nor looks at the
# groups): nothing but the next batch finds that Redis lost its data.
SYSTEM, AUDIT = "ex_esdb_system", "ex_esdb_audit"


def bodies(client: redis.Redis, instance: str) -> list[bytes]:
    """The bodies of the entries of ``instance``'s stream, in order."""
    entries: Any = client.xrange(f"exesdb:bus:{instance}")
    return [fields[b"e"] for _, fields in entries]


def warnings_naming(caplog: pytest.LogCaptureFixture, command: str) -> list[str]:
    """The warnings that the ACL refuses the bridge's user ``command``."""
    said = f"refuses the bridge's user {command} "
    return [r.getMessage() for r in caplog.records if said in r.getMessage()]


async def test_a_frame_after_flushall_is_written_by_a_user_that_may_watch_but_not_unwatch(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A user granted WATCH but not UNWATCH: the batch that finds Redis lost its data (FLUSHALL)
    sends UNWATCH, refused, which is not its stream refused: the frame is written, and one
    warning names UNWATCH."""
    server = redis_server()
    url = without_scripts(server, "+unwatch")
    async with running_writer(url) as (writer, _):
        writer.send(Frame(SYSTEM, b"before", "00"))
        await async_wait_until(lambda: writer.written == 1, 10, "written")
        with server.client() as client:
            client.flushall()
            writer.send(Frame(SYSTEM, b"after", "00"))
            await async_wait_until(lambda: bodies(client, SYSTEM) == [b"after"], 10, "written")
    assert len(warnings_naming(caplog, "UNWATCH")) == 1


async def each_frame_written_once_while_probed_twice(server: RedisServer, url: str) -> None:
    """A writer on ``url`` sends a frame at each look until the transaction was tried twice,
    then writes each, once, in order."""
    sent: list[bytes] = []
    async with running_writer(url) as (writer, _):

        def tried_twice() -> bool:
            # The transaction (two WATCHes) is tried again the backoff's cap (0.1 s here) after
            # a refusal.
            sent.append(b"%d" % len(sent))
            writer.send(Frame(SYSTEM, sent[-1], "00"))
            return calls(server, "watch") >= 4

        await async_wait_until(tried_twice, 10, "the transaction tried twice")
        await async_wait_until(lambda: writer.written == len(sent), 10, "written")
        with server.client() as client:
            assert bodies(client, SYSTEM) == sent


async def test_a_user_without_multi_has_each_batch_written_once(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A user without MULTI: the transaction that finds it out writes nothing, so each batch is
    written once, unwatched, not again after each backoff; the transaction is tried again, one
    warning names MULTI, none says it is granted."""
    server = redis_server()
    url = without_scripts(server, "+multi")
    with caplog.at_level(logging.INFO, logger="bridge.bus.redis.unscripted"):
        await each_frame_written_once_while_probed_twice(server, url)
    assert len(warnings_naming(caplog, "MULTI")) == 1
    assert not [r for r in caplog.records if GRANTED in r.getMessage()]


async def test_a_user_without_exec_writes_each_frame_once_told_once(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A user without EXEC (Redis answers EXECABORT, no NOPERM): each frame is written once,
    unwatched, the transaction tried again now and then, and one warning names EXEC."""
    server = redis_server()
    url = without_scripts(server, "+exec")
    await each_frame_written_once_while_probed_twice(server, url)
    assert len(warnings_naming(caplog, "EXEC")) == 1


def refused_for_memory(server: RedisServer) -> int:
    """How many commands ``server`` refused with OOM."""
    with server.client() as client:
        stats: Any = client.info("errorstats")
    return int(stats.get("errorstat_OOM", {}).get("count", 0))


async def test_a_user_without_multi_loses_no_frame_redis_refuses_for_memory(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A user without MULTI, Redis out of memory (maxmemory reached): the frame refused (OOM) is
    not counted written but kept, and written once Redis has room."""
    server = redis_server()
    url = without_scripts(server, "+multi")
    async with running_writer(url) as (writer, _):
        writer.send(Frame(SYSTEM, b"one", "00"))
        await async_wait_until(lambda: writer.written == 1, 10, "written")
        with server.client() as client:
            client.config_set("maxmemory", 1)
        await asyncio.sleep(0.2)  # past the backoff's cap (0.1 s): the transaction is tried again
        writer.send(Frame(SYSTEM, b"two", "00"))
        await async_wait_until(lambda: refused_for_memory(server) >= 1, 10, "refused (OOM)")
        assert writer.written == 1
        with server.client() as client:
            client.config_set("maxmemory", 0)
            await async_wait_until(lambda: writer.written == 2, 10, "written once Redis has room")
            assert bodies(client, SYSTEM) == [b"one", b"two"]


async def test_a_stream_refused_in_a_watched_batch_drops_only_its_own_frames(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A batch of two streams, one the ACL keeps read-only, while the epoch is watched: the
    transaction, aborted whole, is written again one stream at a time, so the other stream's
    frames are written, in order, and only the refused one's dropped."""
    server = redis_server()
    url = without_scripts(server)
    with server.client() as client:
        client.execute_command(
            "ACL", "SETUSER", "exesdb", "resetkeys", "~exesdb:bus:epoch",
            f"~exesdb:bus:{SYSTEM}", f"%R~exesdb:bus:{AUDIT}",
        )  # fmt: skip
    dropped: list[int] = []
    async with running_writer(url) as (writer, _):
        writer.attach(resign=lambda envelope: pytest.fail("nothing waits"), dropped=dropped.append)
        writer.send(Frame(SYSTEM, b"one", "00"))
        await async_wait_until(lambda: writer.written == 1, 10, "the epoch found, watched next")
        for body, instance in [(b"two", SYSTEM), (b"refused", AUDIT), (b"three", SYSTEM)]:
            writer.send(Frame(instance, body, "00"))  # one batch: the loop runs at the next await
        await async_wait_until(lambda: writer.written == 3 and dropped == [1], 10, "written")
        with server.client() as client:
            assert bodies(client, SYSTEM) == [b"one", b"two", b"three"]
            assert bodies(client, AUDIT) == []


async def test_exec_taken_away_after_the_probe_writes_the_batch_once_unwatched(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """EXEC taken away once batches go watched: the batch that finds it out (EXECABORT, nothing
    written) is written once, unwatched, and one warning names EXEC."""
    server = redis_server()
    url = without_scripts(server)
    async with running_writer(url) as (writer, _):
        writer.send(Frame(SYSTEM, b"one", "00"))
        await async_wait_until(lambda: writer.written == 1, 10, "written, watched")
        assert calls(server, "exec") == 2  # the probe's and the batch's
        with server.client() as client:
            client.execute_command("ACL", "SETUSER", "exesdb", "-exec")
            writer.send(Frame(SYSTEM, b"two", "00"))
            await async_wait_until(lambda: writer.written == 2, 10, "written")
            assert bodies(client, SYSTEM) == [b"one", b"two"]
    assert len(warnings_naming(caplog, "EXEC")) == 1
