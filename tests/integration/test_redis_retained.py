"""Which work-queue frames a publisher keeps for a rewrite once a consumer group has read them.

The test plays the consumer group itself (XREADGROUP, XACK with a plain client), so what was
delivered, what is pending and what was acknowledged are exactly as each test says; the
publisher's ``exesdb_redis_retained`` gauge and what it writes again after Redis loses its data
show what it kept. A Redis started again from older data (a snapshot) keeps its epoch: what it
lost of a stream is told by the latest entry it holds or, for a stream it holds empty, by the
last id it generated (``XINFO STREAM``), asked even of the ACL user docs/redis.md gave before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bridge.bus.redis import GROUP
from tests.doc_text import page, spans
from tests.integration.redis_replicas import ALERTS, Replica, calls, replicas
from tests.integration.servers.redis import RedisServer, redis_server
from tests.integration.test_redis_acl import documented_rules
from tests.support import async_wait_until

__all__ = ["redis_server", "replicas"]

STREAM = f"exesdb:bus:{ALERTS}"
EPOCH = "exesdb:bus:epoch"
# What the writer says on a restart from older data, and on the ACL refusing XINFO STREAM.
REWRITING = "Redis lost its latest writes (started again from older data)"
REFUSED = "refuses the bridge's user XINFO STREAM"
WATCH_REFUSED = "refuses the bridge's user WATCH"
GRANTED = "lets the bridge's user run its watched transaction again"
PASSWORD = "old-acl-password"


async def publisher_of(
    server: RedisServer, replicas: list[Replica], count: int, url: str | None = None
) -> tuple[Replica, list[bytes]]:
    """A replica that takes no work (on ``url``, by default ``server``'s), having written
    ``count`` alerts to the work queue (whose group, made here, has read none of them); the
    stream's entry ids in the order written."""
    with server.client() as client:
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    publisher = await Replica(url or server.url, "publisher", group=False).start()
    replicas.append(publisher)
    await async_wait_until(publisher.ready, 10)
    for number in range(count):
        publisher.publish_alert(number)
    with server.client() as client:
        await async_wait_until(lambda: client.xlen(STREAM) == count, 10, "written")
        ids = [entry_id for entry_id, _ in client.xrange(STREAM)]
    return publisher, ids


def read_by_the_group(server: RedisServer, count: int) -> None:
    """The group reads the next ``count`` entries (delivered, pending until acknowledged)."""
    with server.client() as client:
        client.xreadgroup(GROUP, "tester", {STREAM: ">"}, count=count)


def acknowledge(server: RedisServer, *ids: bytes) -> None:
    with server.client() as client:
        client.xack(STREAM, GROUP, *ids)


async def kept_after_two_looks(server: RedisServer, publisher: Replica) -> float:
    """The publisher's retained gauge once it has looked at the group (XINFO) twice more."""
    looks = calls(server, "xinfo|groups")
    await async_wait_until(lambda: calls(server, "xinfo|groups") >= looks + 2, 10, "looked")
    return publisher.sample("exesdb_redis_retained")


async def written_again(server: RedisServer, publisher: Replica) -> list[str]:
    """The alerts the publisher writes again after Redis restarts without its data, in order."""
    server.restart()
    with server.client() as client:

        def all_written() -> bool:
            # Counted when put back in the writer's buffer, before they are written: wait for both.
            rewritten = publisher.sample("exesdb_redis_rewritten_total")
            return rewritten >= 1 and client.xlen(STREAM) >= rewritten

        await async_wait_until(all_written, 10, "written again")
        return alerts_in(client)


def alerts_in(client: redis.Redis) -> list[str]:
    """The alerts in the work-queue stream, in order."""
    entries: Any = client.xrange(STREAM)
    return [
        next(f"alert-{n:04d}" for n in range(100) if f"alert-{n:04d}".encode() in fields[b"e"])
        for _, fields in entries
    ]


def restarted_from_the_snapshot(server: RedisServer) -> None:
    """Kill Redis and start it again from its last ``SAVE``, as after a crash of its machine."""
    server.kill()
    server.start()


async def test_handled_frames_go_and_pending_or_undelivered_ones_stay_in_order(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """Delivered and acknowledged frames are forgotten one by one; a pending one and every one
    not yet delivered are kept, and written again in the order written."""
    server = redis_server()
    publisher, ids = await publisher_of(server, replicas, 6)
    read_by_the_group(server, 4)
    acknowledge(server, ids[0], ids[2])
    await async_wait_until(
        lambda: publisher.sample("exesdb_redis_retained") == 4, 10, "the handled two forgotten"
    )
    assert await written_again(server, publisher) == [
        "alert-0001",
        "alert-0003",
        "alert-0004",
        "alert-0005",
    ]


async def test_a_full_pending_page_keeps_everything_past_its_last_entry(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """When the group has more entries pending (another publisher's among them) than the
    publisher asks XPENDING for, later entries may be pending unseen: every frame past the
    page's last entry is kept, even when delivered and acknowledged."""
    server = redis_server()
    publisher, _ = await publisher_of(server, replicas, 1)
    with server.client() as client:
        # Another publisher's entries, more than the page's room above the frames kept.
        pipe = client.pipeline(transaction=False)
        for _ in range(1_010):
            pipe.xadd(STREAM, {"e": b"{}", "s": b"other"})
        pipe.execute()
    for number in (1, 2):
        publisher.publish_alert(number)
    with server.client() as client:
        await async_wait_until(lambda: client.xlen(STREAM) == 1_013, 10, "written")
        last_two = [entry_id for entry_id, _ in client.xrevrange(STREAM, count=2)]
    read_by_the_group(server, 1_013)
    acknowledge(server, *last_two)
    assert await kept_after_two_looks(server, publisher) == 3


async def test_nothing_delivered_keeps_every_frame(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """A group that has read none of them yet leaves every frame kept."""
    server = redis_server()
    publisher, _ = await publisher_of(server, replicas, 3)
    assert await kept_after_two_looks(server, publisher) == 3


@pytest.mark.parametrize("stream_made", ["before the snapshot", "after it"])
async def test_frames_written_after_a_snapshot_of_their_stream_empty_are_written_again(
    redis_server: Callable[[], RedisServer],
    replicas: list[Replica],
    caplog: pytest.LogCaptureFixture,
    stream_made: str,
) -> None:
    """A Redis started again from a snapshot taken while the work-queue stream was empty (made
    by its consumer group, nothing written yet) or not made yet holds it empty, or none: every
    frame the publisher wrote since is written again."""
    server = redis_server()
    with server.client() as client:
        client.set(EPOCH, "written-before")  # as by the first publisher that wrote anything
        if stream_made != "before the snapshot":
            client.save()  # what the restart finds: the epoch alone
    publisher, _ = await publisher_of(server, replicas, 0)
    if stream_made == "before the snapshot":
        with server.client() as client:
            client.save()  # what the restart finds: the epoch, the stream empty
    alerts = [publisher.publish_alert(number) for number in range(3)]
    with server.client() as client:
        await async_wait_until(lambda: alerts_in(client) == alerts, 10, "written")
    restarted_from_the_snapshot(server)
    with server.client() as client:
        await async_wait_until(lambda: alerts_in(client) == alerts, 15, "written again")
    assert publisher.sample("exesdb_redis_rewritten_total") == 3
    assert [r.getMessage() for r in caplog.records if REWRITING in r.getMessage()] == [
        f"{REWRITING}; writing 3 recent work-queue frame(s) again"
    ]


async def test_frames_of_a_stream_trimmed_before_the_snapshot_are_not_written_again(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """A stream trimmed past the publisher's frames (``XTRIM``) holds none of them, yet
    generated their ids: a Redis started again from a snapshot of it lost nothing of them."""
    server = redis_server()
    publisher, _ = await publisher_of(server, replicas, 3)
    with server.client() as client:
        client.xtrim(STREAM, maxlen=0, approximate=False)
        client.save()  # what the restart finds: the stream trimmed, the epoch kept
    restarted_from_the_snapshot(server)
    # Written after the publisher looked at what Redis holds (its first pass once connected).
    later = publisher.publish_alert(3)
    with server.client() as client:
        await async_wait_until(lambda: alerts_in(client) == [later], 15, "the next written")
    assert publisher.sample("exesdb_redis_rewritten_total") == 0


@pytest.fixture
def old_acl_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server whose ACL file (read again at each start) gives the user ``exesdb`` the
    rules of docs/redis.md without ``+xinfo|stream``, as docs/redis.md gave them before."""
    rules, _ = documented_rules()
    old = [f">{PASSWORD}" if rule == ">PASSWORD" else rule for rule in rules]
    old.remove("+xinfo|stream")
    acl_file = tmp_path / "users.acl"
    acl_file.write_text(f"user default on nopass ~* &* +@all\nuser exesdb {' '.join(old)}\n")
    server = RedisServer(options=["--aclfile", str(acl_file)]).start(tmp_path / "redis")
    yield server
    server.stop()


async def test_a_user_without_xinfo_stream_is_told_once_and_rewrites_as_before_until_granted(
    old_acl_server: RedisServer,
    replicas: list[Replica],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On a user without ``+xinfo|stream`` the publisher writes again what the latest entry
    Redis holds says it lost, as before, and says once which rule to grant; granted at run
    time, its next look asks XINFO STREAM, and says so."""
    server = old_acl_server
    url = f"redis://exesdb:{PASSWORD}@127.0.0.1:{server.port}/0"
    with server.client() as client:
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    publisher = await Replica(url, "publisher", group=False).start()
    replicas.append(publisher)
    await async_wait_until(publisher.ready, 10)
    written = [publisher.publish_alert(0)]

    async def written_after_restart(*, lost: int, later: int) -> None:
        """``lost`` alerts written after a snapshot, Redis started again from it, then ``later``
        alerts: every one in the stream, in order."""
        with server.client() as client:
            await async_wait_until(lambda: alerts_in(client) == written, 10, "written")
            client.save()
        written.extend(publisher.publish_alert(len(written)) for _ in range(lost))
        with server.client() as client:
            await async_wait_until(lambda: alerts_in(client) == written, 10, "written")
        restarted_from_the_snapshot(server)
        written.extend(publisher.publish_alert(len(written)) for _ in range(later))
        with server.client() as client:
            await async_wait_until(lambda: alerts_in(client) == written, 15, "written again")

    await written_after_restart(lost=2, later=0)
    assert publisher.sample("exesdb_redis_rewritten_total") == 2
    await written_after_restart(lost=0, later=1)  # looked again, refused again
    [refused] = [r.getMessage() for r in caplog.records if REFUSED in r.getMessage()]
    assert "give the user +xinfo|stream" in refused
    assert publisher.ready()  # nothing else refused: the bridge stays ready
    with server.client() as client:
        client.execute_command("ACL", "SETUSER", "exesdb", "+xinfo|stream")
        client.execute_command("ACL", "SAVE")  # into the ACL file, which the restart reads
    with caplog.at_level(logging.INFO, logger="bridge.bus.redis.writer"):
        await written_after_restart(lost=0, later=1)
        # The look may come after the alert written since: only the first command after the
        # restart fails (and has the writer look), the next open a connection anew; when that
        # first is another loop's, the alert may go first (on a loaded host, it does).
        await async_wait_until(
            lambda: [r for r in caplog.records if "XINFO STREAM again" in r.getMessage()],
            10,
            "the look after the grant",
        )
    assert calls(server, "xinfo|stream") >= 1
    assert len([r for r in caplog.records if "XINFO STREAM again" in r.getMessage()]) == 1
    assert len([r for r in caplog.records if REFUSED in r.getMessage()]) == 1
    assert publisher.sample("exesdb_redis_rewritten_total") == 2
    # docs/redis.md quotes the warning, its elisions aside.
    [quoted] = [span for span in spans(page("redis")) if REFUSED in span]
    assert all(part.strip() in refused for part in quoted.split("…"))


def without_scripts(server: RedisServer, *lacking: str) -> str:
    """The URL of a user ``exesdb`` with the rules of docs/redis.md but ``+eval``, ``+evalsha``
    and ``lacking`` (made on ``server``): its batches are written one XADD each."""
    rules, _ = documented_rules()
    rules = [f">{PASSWORD}" if rule == ">PASSWORD" else rule for rule in rules]
    for rule in ("+eval", "+evalsha", *lacking):
        rules.remove(rule)
    with server.client() as client:
        client.execute_command("ACL", "SETUSER", "exesdb", *rules)
    return f"redis://exesdb:{PASSWORD}@127.0.0.1:{server.port}/0"


@pytest.mark.parametrize("user", ["default", "without scripts"])
async def test_a_frame_published_just_after_flushall_goes_after_those_flushall_lost(
    redis_server: Callable[[], RedisServer], replicas: list[Replica], user: str
) -> None:
    """FLUSHALL breaks no connection: a frame published just after it is written only after
    the publisher wrote again the frames Redis lost, so a consumer takes the two in the order
    published, not the newer first (a resolve before the firing it ends); so too by a user
    without EVAL and EVALSHA, whose batches are written one XADD each."""
    server = redis_server()
    url = without_scripts(server) if user == "without scripts" else None
    publisher, _ = await publisher_of(server, replicas, 0, url)
    older = publisher.publish_alert(0)
    with server.client() as client:
        await async_wait_until(lambda: alerts_in(client) == [older], 10, "written")
    # Just after a look at the consumer groups (XINFO), the next one a second away at most.
    looks = calls(server, "xinfo|groups")
    await async_wait_until(lambda: calls(server, "xinfo|groups") >= looks + 4, 10, "looked")
    looks = calls(server, "xinfo|groups")
    await async_wait_until(lambda: calls(server, "xinfo|groups") > looks, 10, "looked again")
    with server.client() as client:
        client.flushall()
    newer = publisher.publish_alert(1)
    await async_wait_until(
        lambda: publisher.sample("exesdb_redis_rewritten_total") >= 1, 10, "written again"
    )
    consumer = await Replica(server.url, "consumer").start()
    replicas.append(consumer)
    await async_wait_until(lambda: len(set(consumer.taken_alerts())) == 2, 15, "both taken")
    assert consumer.taken_alerts() == [older, newer]
    if url is not None:
        assert calls(server, "watch") >= 2
        assert not calls(server, "evalsha")


async def test_a_user_without_scripts_or_watch_writes_unwatched_told_once_until_granted(
    redis_server: Callable[[], RedisServer],
    replicas: list[Replica],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A user without EVAL, EVALSHA and WATCH (the rules of a version before it) has its
    batches written one XADD each, unwatched, is told once which rules to grant and stays
    ready; granted at run time, its batches WATCH the epoch again, and it says so."""
    server = redis_server()
    url = without_scripts(server, "+watch", "+unwatch")
    publisher, _ = await publisher_of(server, replicas, 2, url)
    written = ["alert-0000", "alert-0001"]
    with server.client() as client:
        assert alerts_in(client) == written
        client.execute_command("ACL", "SETUSER", "exesdb", "+watch", "+unwatch")
    assert publisher.ready()  # nothing else refused: the bridge stays ready
    refused = [r.getMessage() for r in caplog.records if WATCH_REFUSED in r.getMessage()]
    assert len(refused) == 1
    assert "give the user +watch +unwatch" in refused[0]
    with caplog.at_level(logging.INFO, logger="bridge.bus.redis.unscripted"):

        def watched() -> bool:
            # WATCH is tried again the backoff's cap (half a second here) after its refusal.
            written.append(publisher.publish_alert(len(written)))
            return calls(server, "watch") > 0

        await async_wait_until(watched, 10, "a batch watched")
        with server.client() as client:
            await async_wait_until(lambda: alerts_in(client) == written, 10, "all written")
    assert len([r for r in caplog.records if GRANTED in r.getMessage()]) == 1
    assert len([r for r in caplog.records if WATCH_REFUSED in r.getMessage()]) == 1
    # docs/redis.md quotes the warning, its elisions aside.
    [quoted] = [span for span in spans(page("redis")) if WATCH_REFUSED in span]
    assert all(part.strip() in refused[0] for part in quoted.split("…"))
