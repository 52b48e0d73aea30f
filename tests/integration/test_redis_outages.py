"""Redis unreachable, restarted, flushed or started again from older data under in-process
replicas (``redis_replicas.Replica``): what was published is delivered, once, and the
lease goes where Redis says it is.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.bus import Envelope
from bridge.messages import SystemAlert
from tests.doc_text import page, spans
from tests.integration.redis_replicas import (
    ALERTS,
    Replica,
    calls,
    holder_and_publisher,
    pending,
    replicas,
)
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import (
    async_wait_until,
    free_port,
)

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "replicas"]


async def test_starts_without_redis_says_why_and_connects_when_redis_comes(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    """With Redis down the bridge starts, readiness names the reason, publishes are buffered,
    and all of them arrive once Redis is up."""
    port = free_port()
    url = f"redis://:hunter2@127.0.0.1:{port}/0"
    replica = await Replica(url, "node-a").start()
    replicas.append(replica)
    await async_wait_until(
        lambda: "unreachable" in (replica.bridge.readiness()["bus"]["reason"] or ""), 10
    )
    reason = replica.bridge.readiness()["bus"]["reason"]
    assert f"redis://:<redacted>@127.0.0.1:{port}/…" in reason
    assert "hunter2" not in reason
    expected = [replica.publish_alert(n) for n in range(3)]
    assert replica.transport.buffered == 3
    server = RedisServer(port=port)
    # The password in the URL is refused by a server without one, so start one that has it.
    server.start(tmp_path / "redis")
    try:
        with server.client() as client:
            client.config_set("requirepass", "hunter2")
        await async_wait_until(replica.ready, 15, "ready")
        await async_wait_until(lambda: sorted(replica.seen_alerts()) == expected, 10)
        await async_wait_until(lambda: sorted(replica.taken_alerts()) == expected, 10)
    finally:
        await replica.aclose()
        server.stop()


async def test_a_database_number_redis_lacks_is_told_with_the_numbers_it_has(
    replicas: list[Replica], redis_server: Callable[[], RedisServer]
) -> None:
    """A URL's database number past Redis's 16 (/99, which check-config cannot judge) is told
    in readiness as refused, with which numbers to use: Redis's words alone (``DB index is out
    of range``) name neither, and the shown URL hides the number."""
    server = redis_server()
    replica = await Replica(f"redis://127.0.0.1:{server.port}/99", "node-a").start()
    replicas.append(replica)

    await async_wait_until(lambda: "DB index is out of range" in replica.reason(), 10, "refused")
    assert "refuses the bridge's commands" in replica.reason(), replica.reason()
    assert "below Redis's number of databases" in replica.reason(), replica.reason()
    assert "/0 to /15" in replica.reason(), replica.reason()


async def test_a_full_buffer_refuses_and_counts_what_overflows(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    """With Redis unreachable, publishes past the buffer size are refused and counted."""
    replica = await Replica(f"redis://127.0.0.1:{free_port()}/0", "node-a", buffer_size=5).start()
    replicas.append(replica)
    results = [
        replica.bridge.bus.publish(
            "t",
            SystemAlert(
                severity="info", category="system", title="t", description="d", source="s", node="n"
            ),
        )
        for _ in range(8)
    ]
    assert [bool(r) for r in results] == [True] * 5 + [False] * 3
    assert replica.sample("exesdb_bus_dropped_total", subscriber="transport") == 3
    assert replica.sample("exesdb_redis_buffer_depth") == 5


async def test_a_redis_restart_mid_stream_loses_no_alert(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """Alerts published before, during and after a Redis restart (which loses all its data)
    are all taken; only the few taken in the instant before the restart may come twice."""
    server = redis_server()
    a = await Replica(server.url, "node-a").start()
    b = await Replica(server.url, "node-b").start()
    replicas += [a, b]
    for replica in (a, b):
        await async_wait_until(replica.ready, 10)
    expected: list[str] = []

    async def publish(numbers: range) -> None:
        for n in numbers:
            expected.append((a, b)[n % 2].publish_alert(n))
            await asyncio.sleep(0.005)  # a paced publisher (load, not a wait): a steady stream

    await publish(range(0, 60))
    server.stop()
    await publish(range(60, 120))  # Redis down: buffered
    await async_wait_until(lambda: not a.transport.connected, 10, "outage noticed")
    server.start()
    await publish(range(120, 200))

    def taken() -> list[str]:
        return a.taken_alerts() + b.taken_alerts()

    await async_wait_until(lambda: set(taken()) == set(expected), 20, "every alert taken")
    twice = [k for k, v in Counter(taken()).items() if v > 1]
    # Redis forgot which entries were taken. A publisher writes again what no group had
    # acknowledged at its last look (every 50 ms): the last few it wrote before the restart,
    # which come twice when the lease moved meanwhile (the new holder never saw them). How many
    # depends on how far behind the looks were, never on the outage's length.
    rewritten = sum(r.sample("exesdb_redis_rewritten_total") for r in (a, b))
    assert len(twice) <= rewritten < 60, (twice, rewritten)
    assert all(alert_id < "alert-0060" for alert_id in twice), twice
    assert len(expected) == 200


async def _lease_gone_to_a_rival(
    server: RedisServer, replicas: list[Replica], lease_ms: int = 30_000
) -> tuple[Replica, Replica]:
    """A lease holder and a publisher on ``server``, the lease then a rival's in Redis unknown
    to the holder (its next renewal, a third of ``lease_ms`` on, is seconds away, past the end
    of a test)."""
    holder = await Replica(server.url, "holder", claim_idle_ms=lease_ms).start()
    replicas.append(holder)
    await async_wait_until(lambda: holder.transport.leading, 10, "the holder holds the lease")
    publisher = await Replica(server.url, "publisher", group=False).start()
    replicas.append(publisher)
    await async_wait_until(publisher.ready, 10)
    with server.client() as client:
        client.set("exesdb:bus:leader", "node-x:rival")
    return holder, publisher


async def test_a_replica_whose_lease_went_elsewhere_unawares_takes_nothing_more(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """A lease holder whose lease is, in Redis, another replica's before its own renewal says so
    (it went with Redis's data, and the other took it) reads the queue no more, and steps down:
    what it would take, the new holder takes too, claiming it before the acknowledgement lands
    (seen as an alert published after a Redis restart taken twice)."""
    server = redis_server()
    # A renewal 40 s on: on a loaded host the publisher's start took the 10 s to a renewal of
    # a 30 s lease, which found the rival first, and the holder then read nothing at all.
    holder, publisher = await _lease_gone_to_a_rival(server, replicas, lease_ms=120_000)
    expected = [publisher.publish_alert(n) for n in range(5)]
    await async_wait_until(
        lambda: len(holder.taken_alerts()) == 5 or pending(server) == 5, 10, "read from the queue"
    )
    assert holder.taken_alerts() == []  # left pending, for the rival to claim
    assert not holder.transport.leading
    # The fan-out reaches the publisher on its own reader's turn, not with the queue's entries.
    await async_wait_until(lambda: len(publisher.seen_alerts()) == 5, 10, "the fan-out read")
    assert sorted(publisher.seen_alerts()) == expected


async def test_entries_read_under_a_lease_gone_elsewhere_are_taken_at_once_when_it_is_back(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """What a holder read as Redis gave its lease to another stays pending, untaken; the lease
    back (the other gone before claiming it), the holder takes it from its own history at once,
    not after it idled for a claim (30 s: after FLUSHALL, every alert read before the holder took
    its lease back waited that long)."""
    server = redis_server()
    holder, publisher = await _lease_gone_to_a_rival(server, replicas)
    expected = [publisher.publish_alert(n) for n in range(5)]
    await async_wait_until(lambda: pending(server) == 5, 10, "read, and left pending")
    assert holder.taken_alerts() == []
    with server.client() as client:
        client.delete("exesdb:bus:leader")  # the rival gone, its lease with it
    await async_wait_until(lambda: sorted(holder.taken_alerts()) == expected, 15, "taken")
    await async_wait_until(lambda: pending(server) == 0, 10, "acknowledged")
    assert holder.sample("exesdb_redis_claimed_total") == 0


async def test_entries_trimmed_before_the_holder_takes_them_from_its_history_are_told_trimmed(
    redis_server: Callable[[], RedisServer],
    replicas: list[Replica],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Entries a holder read under a lease gone elsewhere, trimmed away before it takes them
    from its own history (Redis sends each without its fields), are counted and logged as
    trimmed, as a claim finds them, not refused as unsigned; none stays pending."""
    server = redis_server()
    holder, publisher = await _lease_gone_to_a_rival(server, replicas)
    for n in range(5):
        publisher.publish_alert(n)
    await async_wait_until(lambda: pending(server) == 5, 10, "read, and left pending")
    with caplog.at_level(logging.WARNING, logger="bridge.bus.redis"):
        with server.client() as client:
            client.xtrim(f"exesdb:bus:{ALERTS}", maxlen=0)
            client.delete("exesdb:bus:leader")  # the rival gone, its lease with it
        await async_wait_until(lambda: pending(server) == 0, 15, "the trimmed entries let go")
        await async_wait_until(
            lambda: holder.sample("exesdb_redis_trimmed_total") == 5, 10, "counted as trimmed"
        )
    assert holder.sample("exesdb_bus_rejected_total", reason="unsigned") == 0
    said = [r.getMessage() for r in caplog.records if "trimmed" in r.getMessage()]
    assert said == [f"5 pending entr(y/ies) of exesdb:bus:{ALERTS} were trimmed"]


async def test_entries_still_handled_here_are_not_told_trimmed_when_read_from_history(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """Entries a holder is still handling, trimmed away before it reads its own history again
    (its lease gone elsewhere and back), are neither counted trimmed nor acknowledged there:
    their handling acknowledges them, once it ends."""
    server = redis_server()
    holder = Replica(server.url, "holder", claim_idle_ms=30_000, group=False)
    replicas.append(holder)
    handling: list[Envelope] = []
    release = asyncio.Event()

    async def slow(envelope: Envelope) -> None:
        handling.append(envelope)
        await release.wait()

    holder.bridge.bus.subscribe("slow", slow, instances=[ALERTS], group=True)
    await holder.start()
    await async_wait_until(lambda: holder.transport.leading, 10, "the holder holds the lease")
    publisher = await Replica(server.url, "publisher", group=False).start()
    replicas.append(publisher)
    await async_wait_until(publisher.ready, 10)
    publisher.publish_alert(0)
    await async_wait_until(lambda: handling and pending(server) == 1, 10, "being handled")
    with server.client() as client:
        client.set("exesdb:bus:leader", "node-x:rival")
    await async_wait_until(lambda: not holder.transport.leading, 10, "stepped down")
    with server.client() as client:
        client.xtrim(f"exesdb:bus:{ALERTS}", maxlen=0)
        client.delete("exesdb:bus:leader")  # the rival gone: its history read again
    publisher.publish_alert(1)
    await async_wait_until(lambda: pending(server) == 2, 15, "the next one read past its history")
    assert holder.sample("exesdb_redis_trimmed_total") == 0
    release.set()
    await async_wait_until(lambda: pending(server) == 0, 10, "each acknowledged once handled")


async def test_flushall_under_a_blocked_read_makes_the_group_again_without_a_warning(
    redis_server: Callable[[], RedisServer],
    replicas: list[Replica],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """FLUSHALL while the holder's read blocks ends the read with UNBLOCKED (its stream gone):
    the group is made again as after NOGROUP, with no warning that Redis refuses commands."""
    server = redis_server()
    holder = await Replica(server.url, "holder").start()
    replicas.append(holder)
    await async_wait_until(lambda: holder.transport.leading, 10, "the holder holds the lease")
    publisher = await Replica(server.url, "publisher", group=False).start()
    replicas.append(publisher)
    await async_wait_until(publisher.ready, 10)
    first = publisher.publish_alert(0)
    await async_wait_until(lambda: holder.taken_alerts() == [first], 10, "the first taken")
    with caplog.at_level(logging.WARNING, logger="bridge.bus.redis"):
        with server.client() as client:
            client.flushall()
        second = publisher.publish_alert(1)
        await async_wait_until(lambda: holder.taken_alerts() == [first, second], 10, "taken")
    said = [
        r.getMessage() for r in caplog.records if "refuses the bridge's commands" in r.getMessage()
    ]
    assert said == []


async def test_frames_published_before_the_restart_but_not_yet_taken_are_written_again(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """Work-queue frames in Redis that no replica took when Redis lost its data are written
    again by their publisher after it reconnects; a replica that read them before (here the
    publisher's own fan-out) refuses each copy as a replay, counted."""
    server = redis_server()
    publisher = await Replica(server.url, "publisher", group=False).start()
    replicas.append(publisher)
    await async_wait_until(publisher.ready, 10)
    expected = [publisher.publish_alert(n) for n in range(10)]
    await async_wait_until(lambda: len(publisher.seen_alerts()) == 10, 10, "written")
    server.restart()  # nobody took them; Redis forgets them
    consumer = await Replica(server.url, "consumer").start()
    replicas.append(consumer)
    await async_wait_until(lambda: sorted(consumer.taken_alerts()) == expected, 15, "rewritten")
    assert publisher.sample("exesdb_redis_rewritten_total") == 10
    await async_wait_until(
        lambda: publisher.sample("exesdb_bus_rejected_total", reason="replayed") == 10,
        10,
        "each copy refused as a replay where the first was read",
    )


async def test_a_redis_that_lost_only_frames_already_taken_is_not_said_to_need_a_rewrite(
    redis_server: Callable[[], RedisServer],
    replicas: list[Replica],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """When every work-queue frame written before Redis lost its data had been taken, nothing
    is written again and no warning says "writing 0 frame(s) again"."""
    server = redis_server()
    replica = await Replica(server.url, "node-a").start()
    replicas.append(replica)
    await async_wait_until(replica.ready, 10)
    first = replica.publish_alert(1)
    await async_wait_until(lambda: replica.taken_alerts() == [first], 10, "taken")
    await async_wait_until(
        lambda: replica.sample("exesdb_redis_retained") == 0, 10, "taken frames forgotten"
    )
    with caplog.at_level(logging.WARNING, logger="bridge.bus.redis.writer"):
        server.stop()
        await async_wait_until(lambda: not replica.transport.connected, 10, "outage noticed")
        server.start()
        await async_wait_until(replica.ready, 10, "back on Redis")
        # Each pass checks Redis's epoch before it writes: once this one is taken, it was.
        second = replica.publish_alert(2)
        await async_wait_until(lambda: replica.taken_alerts() == [first, second], 15, "taken")
    assert replica.sample("exesdb_redis_rewritten_total") == 0
    said = [r.getMessage() for r in caplog.records if r.name == "bridge.bus.redis.writer"]
    assert said == []


async def test_an_entry_still_being_handled_when_redis_loses_its_data_is_not_lost(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """An entry delivered to the lease holder, whose handler is still at work when Redis
    restarts without its data and then fails, is still taken: its publisher keeps it until it
    is acknowledged and writes it again, and the holder leaves that copy pending (not
    acknowledged as a replay) while the first is handled, so a claim hands it back."""
    server = redis_server()
    release = asyncio.Event()
    attempts: list[str] = []
    handled: list[str] = []

    async def fail_first(envelope: Envelope) -> None:
        attempts.append(envelope.payload.alert_id)  # type: ignore[attr-defined]
        if len(attempts) == 1:
            await release.wait()
            raise RuntimeError("the first attempt fails")
        handled.append(envelope.payload.alert_id)  # type: ignore[attr-defined]

    publisher = await holder_and_publisher(server, replicas, fail_first)
    alert = publisher.publish_alert(1)
    await async_wait_until(lambda: attempts == [alert], 10, "the holder took it")
    # The publisher looks at the group (XINFO) twice since: it knows the entry delivered.
    looks = calls(server, "xinfo|groups")
    await async_wait_until(lambda: calls(server, "xinfo|groups") >= looks + 2, 10, "looked")
    server.restart()
    await async_wait_until(
        lambda: publisher.sample("exesdb_redis_rewritten_total") == 1, 10, "written again"
    )
    await async_wait_until(lambda: pending(server) == 1, 10, "the copy read, and left pending")
    release.set()
    await async_wait_until(lambda: handled == [alert], 15, "taken after all")
    await async_wait_until(lambda: pending(server) == 0, 10, "acknowledged")


async def test_one_entry_stuck_pending_keeps_no_handled_frame_to_be_written_twice(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """With one alert pending (its handler failing) and twenty after it handled, a Redis that
    loses its data gets only the pending one written again: the handled ones are not kept for
    a rewrite, so no replica can take them twice."""
    server = redis_server()
    handled: list[str] = []

    def fail_on_first(envelope: Envelope) -> None:
        alert_id = envelope.payload.alert_id  # type: ignore[attr-defined]
        if alert_id == first:
            raise RuntimeError("this one keeps failing")
        handled.append(alert_id)

    publisher = await holder_and_publisher(server, replicas, fail_on_first)
    first, *rest = [publisher.publish_alert(n) for n in range(21)]
    await async_wait_until(lambda: sorted(handled) == sorted(rest), 10, "all but one handled")
    await async_wait_until(lambda: pending(server) == 1, 10, "only the first pending")
    # The publisher looks at the group (XINFO) twice since: it knows what was handled.
    looks = calls(server, "xinfo|groups")
    await async_wait_until(lambda: calls(server, "xinfo|groups") >= looks + 2, 10, "looked")
    server.restart()
    await async_wait_until(
        lambda: publisher.sample("exesdb_redis_rewritten_total") >= 1, 10, "written again"
    )
    await async_wait_until(lambda: pending(server) >= 1, 10, "the stuck one read again")
    assert publisher.sample("exesdb_redis_rewritten_total") == 1


async def test_frames_a_redis_restarted_from_an_older_snapshot_lost_are_written_again(
    redis_server: Callable[[], RedisServer],
    replicas: list[Replica],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Redis killed and started again from a snapshot taken before the last work-queue frames
    were written (RDB, or an append-only file fsync'd once a second, on a machine crash) keeps
    its epoch but not those frames: their publisher writes those again, and only those, with
    the warning docs/redis.md quotes."""
    server = redis_server()
    # Its frames are kept twice the claim idle time (10 s at least): under a full make test's
    # load, restarting Redis and noticing took longer than 10 s once, and nothing was left.
    publisher = await Replica(server.url, "publisher", group=False, claim_idle_ms=30_000).start()
    replicas.append(publisher)
    await async_wait_until(publisher.ready, 10)
    kept = publisher.publish_alert(0)
    await async_wait_until(lambda: publisher.seen_alerts() == [kept], 10, "written")
    with server.client() as client:
        client.save()  # what a restart finds: the epoch and the first alert
    lost = [publisher.publish_alert(n) for n in range(1, 11)]
    await async_wait_until(lambda: len(publisher.seen_alerts()) == 11, 10, "written")
    server.kill()
    server.start()
    consumer = await Replica(server.url, "consumer").start()
    replicas.append(consumer)

    def all_taken() -> bool:
        # Asserted, so that a wait that times out says what was taken and written again.
        taken = sorted(consumer.taken_alerts())
        rewritten = publisher.sample("exesdb_redis_rewritten_total")
        assert taken == [kept, *lost], f"taken {taken}, {rewritten:g} written again"
        return True

    # 30 s: once, under a full make test's load, 15 s went by with the lost ones not yet taken.
    await async_wait_until(all_taken, 30, "the lost ones again")
    assert publisher.sample("exesdb_redis_rewritten_total") == len(lost)
    [said] = [r.getMessage() for r in caplog.records if "writing 10 recent" in r.getMessage()]
    assert said.replace("10", "3") in spans(page("redis"))
