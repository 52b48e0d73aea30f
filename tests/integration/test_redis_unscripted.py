"""Batches written one XADD each (an ACL user without EVAL and EVALSHA) on a real redis-server:
only an XADD refused is a stream refused; a command of the watched transaction refused (UNWATCH,
MULTI, EXEC) drops nothing and writes nothing twice.

A writer is built alone on a ``Link`` (``running_writer`` of ``redis_spool_support.py``); its
user is docs/redis.md's without the scripts (``without_scripts``) and what each test takes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection, Connection
from redis.exceptions import ExecAbortError

from bridge.bus import Durability, Frame
from bridge.bus.redis.link import Link
from bridge.bus.redis.spool import Spool
from bridge.bus.redis.writer import Writer
from tests.doc_text import page, spans
from tests.integration.redis_replicas import calls
from tests.integration.redis_spool_support import running_writer
from tests.integration.servers.redis import RedisServer, redis_server
from tests.integration.test_redis_retained import GRANTED, without_scripts
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


@contextlib.asynccontextmanager
async def watched_writer_with_audit_read_only(
    server: RedisServer, connection_class: type[Connection] | None = None
) -> AsyncIterator[tuple[Writer, Link, list[int]]]:
    """A running writer of docs/redis.md's user without the scripts whose ACL keeps AUDIT's
    stream read-only (SYSTEM's and the epoch writable), on connections of ``connection_class``
    if given, past its first SYSTEM frame (the epoch found: its batches go watched next);
    yielded with its link and the counts of frames it dropped, in the order told."""
    url = without_scripts(server)
    with server.client() as admin:
        admin.execute_command(
            "ACL", "SETUSER", "exesdb", "resetkeys", "~exesdb:bus:epoch",
            f"~exesdb:bus:{SYSTEM}", f"%R~exesdb:bus:{AUDIT}",
        )  # fmt: skip
    client = None
    if connection_class is not None:
        client = Redis.from_pool(ConnectionPool.from_url(url, connection_class=connection_class))
    dropped: list[int] = []
    async with running_writer(url, client=client) as (writer, link):
        writer.attach(resign=lambda envelope: pytest.fail("nothing waits"), dropped=dropped.append)
        writer.send(Frame(SYSTEM, b"one", "00"))
        await async_wait_until(lambda: writer.written == 1, 10, "the epoch found, watched next")
        yield writer, link, dropped


async def test_a_stream_refused_in_a_watched_batch_drops_only_its_own_frames(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A batch of two streams, one the ACL keeps read-only, while the epoch is watched: the
    transaction, aborted whole, is written again one stream at a time, so the other stream's
    frames are written, in order, and only the refused one's dropped."""
    server = redis_server()
    async with watched_writer_with_audit_read_only(server) as (writer, _, dropped):
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


async def test_a_stream_refused_then_multi_taken_away_drops_only_the_refused_frame(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A watched batch of two streams, one read-only, MULTI taken away once the transaction
    aborts: each stream written again finds MULTI refused, and each frame's reply is still
    known, so the other stream's frames are written once and the refused one dropped."""
    server = redis_server()

    class TakingMultiAway(Connection):
        """Takes MULTI away from the user as the first transaction aborts (EXECABORT)."""

        async def read_response(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return await super().read_response(*args, **kwargs)
            except ExecAbortError:
                with server.client() as admin:
                    admin.execute_command("ACL", "SETUSER", "exesdb", "-multi")
                raise

    async with watched_writer_with_audit_read_only(server, TakingMultiAway) as (writer, _, dropped):
        for body, instance in [(b"two", SYSTEM), (b"refused", AUDIT), (b"three", SYSTEM)]:
            writer.send(Frame(instance, body, "00"))  # one batch: the loop runs at the next await
        await async_wait_until(lambda: dropped == [1], 10, "the refused frame dropped")
        assert writer.written == 3
        with server.client() as admin:
            assert bodies(admin, SYSTEM) == [b"one", b"two", b"three"]
            assert bodies(admin, AUDIT) == []


async def test_multi_and_exec_taken_away_after_the_probe_write_the_batch_once(
    redis_server: Callable[[], RedisServer],
) -> None:
    """MULTI and EXEC taken away once batches go watched: the batch that finds it out ran its
    XADDs at once (MULTI refused), so it is not written again unwatched."""
    server = redis_server()
    url = without_scripts(server)
    async with running_writer(url) as (writer, _):
        writer.send(Frame(SYSTEM, b"one", "00"))
        await async_wait_until(lambda: writer.written == 1, 10, "written, watched")
        with server.client() as client:
            client.execute_command("ACL", "SETUSER", "exesdb", "-multi", "-exec")
            writer.send(Frame(SYSTEM, b"two", "00"))
            await async_wait_until(lambda: writer.written == 2, 10, "written")
            writer.send(Frame(SYSTEM, b"three", "00"))
            await async_wait_until(lambda: writer.written == 3, 10, "the next one written")
            assert bodies(client, SYSTEM) == [b"one", b"two", b"three"]


@pytest.mark.parametrize("lacking", ["+multi", "+exec"])
async def test_spooled_frames_of_a_user_without_a_transaction_are_each_written_once(
    redis_server: Callable[[], RedisServer], tmp_path: Path, lacking: str
) -> None:
    """A user without MULTI or EXEC has spooled batches written by a plain pipeline with the
    spool's progress, as the probe found: each frame written once and counted, none stalled."""
    server = redis_server()
    url = without_scripts(server, lacking)
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=1 << 20)
    await spool.open()
    sent = [Frame(SYSTEM, b"spooled %d" % n, "00") for n in range(15)]  # the writer's batch: 10
    try:
        async with running_writer(url, spool) as (writer, _):
            writer.send(Frame(SYSTEM, b"buffered", "00"))
            await async_wait_until(lambda: writer.written == 1, 10, "the probe made")
            assert await writer.send_durably(sent) is Durability.COMMITTED
            await async_wait_until(lambda: writer.written == 16, 10, "written and counted")
            await async_wait_until(lambda: not writer.spool_bytes, 10, "the spool emptied")
            with server.client() as client:
                assert bodies(client, SYSTEM) == [b"buffered", *(f.body for f in sent)]
    finally:
        await spool.aclose()


async def test_no_connection_goes_back_to_the_pool_watching_or_in_a_transaction(
    redis_server: Callable[[], RedisServer],
) -> None:
    """MULTI and UNWATCH taken away after the probe: the batch's EXEC without MULTI leaves its
    connection watching, which is closed before it goes back to the pool, not after."""
    server = redis_server()
    url = without_scripts(server)
    given_back: list[dict[str, Any]] = []

    class Inspected(ConnectionPool):
        """Notes each connection given back that Redis has watching or in MULTI."""

        async def release(self, connection: AbstractConnection) -> None:
            if connection.is_connected:
                with server.client() as admin:
                    epoch = admin.get("exesdb:bus:epoch")
                    if epoch is not None:
                        admin.set("exesdb:bus:epoch", epoch)  # a WATCH of it is flagged "d"
                    users: Any = admin.client_list()
                given_back.extend(
                    each
                    for each in users
                    if each["user"] == "exesdb" and ("d" in each["flags"] or each["multi"] != "-1")
                )
            await super().release(connection)

    client = Redis.from_pool(Inspected.from_url(url))
    async with running_writer(url, client=client) as (writer, _):
        writer.send(Frame(SYSTEM, b"one", "00"))
        await async_wait_until(lambda: writer.written == 1, 10, "written, watched")
        with server.client() as admin:
            admin.execute_command("ACL", "SETUSER", "exesdb", "-multi", "-unwatch")
            writer.send(Frame(SYSTEM, b"two", "00"))
            await async_wait_until(lambda: bodies(admin, SYSTEM) == [b"one", b"two"], 10, "written")
    assert given_back == []


async def test_a_connection_whose_closing_fails_is_given_back_to_the_pool_all_the_same(
    redis_server: Callable[[], RedisServer],
) -> None:
    """MULTI and UNWATCH taken away after the probe, and closing the connection left watching
    times out: it goes back to the pool all the same, not left taken, and the batch is
    written."""
    server = redis_server()
    url = without_scripts(server)
    failures = [TimeoutError("closing timed out")]
    armed: list[bool] = []  # set once MULTI is taken away: the batches' closes fail from then

    class SlowToClose(Connection):
        """Its first close once armed fails, as a close taking too long does."""

        async def disconnect(self, *args: Any, **kwargs: Any) -> None:
            await super().disconnect(*args, **kwargs)
            if armed and failures:
                raise failures.pop()

    taken: set[int] = set()

    class Counted(ConnectionPool):
        """Notes which connections are taken and not yet given back."""

        async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
            connection: AbstractConnection = await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
            taken.add(id(connection))
            return connection

        async def release(self, connection: AbstractConnection) -> None:
            taken.discard(id(connection))
            await super().release(connection)

    client = Redis.from_pool(Counted.from_url(url, connection_class=SlowToClose))
    async with running_writer(url, client=client) as (writer, _):
        writer.send(Frame(SYSTEM, b"one", "00"))
        await async_wait_until(lambda: writer.written == 1, 10, "written, watched")
        with server.client() as admin:
            admin.execute_command("ACL", "SETUSER", "exesdb", "-multi", "-unwatch")
            armed.append(True)
            writer.send(Frame(SYSTEM, b"two", "00"))
            await async_wait_until(lambda: b"two" in bodies(admin, SYSTEM), 10, "written")
        await async_wait_until(lambda: not failures, 10, "the close failed")
        await async_wait_until(lambda: not taken, 10, "every connection given back")


@contextlib.asynccontextmanager
async def spooled_while_redis_is_full(
    server: RedisServer, url: str, tmp_path: Path, sent: list[Frame], refused: int
) -> AsyncIterator[tuple[Writer, redis.Redis]]:
    """A running writer on Redis at ``url`` with a spool (in ``tmp_path``), past its first frame
    (b"buffered"), that spooled ``sent`` while Redis was out of memory (maxmemory reached) until
    ``server`` refused ``refused`` commands for them (none written); yielded, with an admin client,
    once Redis has room again."""
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=1 << 20)
    await spool.open()
    try:
        async with running_writer(url, spool) as (writer, _):
            writer.send(Frame(SYSTEM, b"buffered", "00"))
            await async_wait_until(lambda: writer.written == 1, 10, "the epoch found")
            with server.client() as client:
                client.config_set("maxmemory", 1)
                assert await writer.send_durably(sent) is Durability.COMMITTED
                await async_wait_until(lambda: refused_for_memory(server) >= refused, 10, "refused")
                assert writer.written == 1
                client.config_set("maxmemory", 0)
                yield writer, client
    finally:
        await spool.aclose()


async def test_spooled_frames_redis_refuses_for_memory_wait_in_the_spool_without_multi(
    redis_server: Callable[[], RedisServer], tmp_path: Path
) -> None:
    """A user without MULTI, Redis out of memory as a spooled batch goes (its XADDs and its
    progress refused): the batch waits in the spool, and is written once Redis has room."""
    server = redis_server()
    url = without_scripts(server, "+multi")
    sent = [Frame(SYSTEM, b"spooled %d" % n, "00") for n in range(3)]
    async with spooled_while_redis_is_full(server, url, tmp_path, sent, 2) as (writer, client):
        await async_wait_until(lambda: writer.written == 4, 10, "written once Redis has room")
        assert bodies(client, SYSTEM) == [b"buffered", *(f.body for f in sent)]


async def test_spooled_frames_go_on_when_their_progress_is_refused_without_a_transaction(
    redis_server: Callable[[], RedisServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A user without MULTI whose ACL keeps the spool's progress read-only: spooled frames Redis
    refuses for memory wait in the spool; once it has room each is written once (the XADDs ran
    before the progress was refused), and one warning says so."""
    server = redis_server()
    url = without_scripts(server, "+multi")
    with server.client() as client:
        client.execute_command(
            "ACL", "SETUSER", "exesdb", "resetkeys", "~exesdb:bus:*", "%R~exesdb:spool:*"
        )
    sent = [Frame(SYSTEM, b"spooled %d" % n, "00") for n in range(25)]  # the writer's batch: 10
    async with spooled_while_redis_is_full(server, url, tmp_path, sent, 20) as (writer, client):
        await async_wait_until(lambda: not writer.spool_bytes, 10, "the spool emptied")
        assert writer.written == 1 + len(sent)
        assert bodies(client, SYSTEM) == [b"buffered", *(f.body for f in sent)]
    said = "refuses the bridge's user the spool's progress"
    [told] = [r.getMessage() for r in caplog.records if said in r.getMessage()]
    # docs/redis.md quotes the warning, its elisions aside.
    [quoted] = [span for span in spans(page("redis")) if said in span]
    assert all(part.strip() in told for part in quoted.split("…"))


async def test_a_stream_refused_in_a_watched_batch_is_told_with_its_error_code(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A frame of a stream the ACL keeps read-only, refused in a watched batch, is told as
    docs/redis.md says (``refuses the bridge's commands: NOPERM …``), as a plain pipeline's
    refusal is: Redis's error code kept."""
    server = redis_server()
    async with watched_writer_with_audit_read_only(server) as (writer, link, dropped):
        writer.send(Frame(AUDIT, b"refused", "00"))
        await async_wait_until(lambda: dropped == [1], 10, "the refused frame dropped")
        told = link.trouble()
    assert told is not None
    assert told.startswith("refuses the bridge's commands: NOPERM "), told
