"""The bus on a real redis-server: fan-out, the work queue, claiming, and the lease handed
over as a holder dies or stops.

Replicas here are in-process bridges (``redis_replicas.Replica``, ``Bridge`` without HTTP)
sharing one redis-server; the multi-process tests are in ``test_replicas.py``. Entries
verified and refused are in ``test_redis_verification.py``, outages and lost data in
``test_redis_outages.py``, writes Redis refuses in ``test_redis_refused_writes.py``, TLS in
``test_redis_tls.py``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial

import pytest

from bridge.bus import Envelope
from bridge.bus.redis import GROUP
from tests.integration.redis_replicas import (
    ALERTS,
    Replica,
    has_seen,
    holder_and_publisher,
    pending,
    replicas,
    signed_entry,
)
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import (
    async_wait_until,
)

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "replicas"]


async def test_a_message_published_on_one_replica_reaches_every_replica(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """Fan-out: each replica's fan-out subscribers get every message, whoever published it."""
    server = redis_server()
    a = await Replica(server.url, "node-a").start()
    b = await Replica(server.url, "node-b").start()
    replicas += [a, b]
    await async_wait_until(a.ready, 10, "a ready")
    await async_wait_until(b.ready, 10, "b ready")
    first, second = a.publish_alert(1), b.publish_alert(2)
    for replica in (a, b):
        await async_wait_until(partial(has_seen, replica, [first, second]), 10, "fan-out")
    assert {e.node for e in a.seen} == {"node-a", "node-b"}


async def test_replicas_started_together_hear_what_is_written_the_moment_their_starts_return(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """Two replicas started together each hear an entry written to Redis the moment their
    starts return, and each other's first publishes: a start returns once its fan-out reader
    knows where each stream ends, not before."""
    server = redis_server()
    a, b = Replica(server.url, "node-a"), Replica(server.url, "node-b")
    replicas += [a, b]
    await asyncio.gather(a.start(), b.start())
    # Written with a synchronous client: the event loop runs nothing until it is in Redis.
    with server.client() as client:
        client.xadd(f"exesdb:bus:{ALERTS}", signed_entry())
    expected = sorted(["forged", a.publish_alert(1), b.publish_alert(2)])
    for replica in (a, b):
        await async_wait_until(partial(has_seen, replica, expected), 10, "fan-out")


async def test_a_start_waits_for_a_redis_that_does_not_answer_five_seconds_at_most(
    replicas: list[Replica],
) -> None:
    """A Redis that takes connections and never answers holds a replica's start back 5 s,
    not the 10 s its commands wait for an answer: the bridge then starts, not ready."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        replica = Replica(url, "node-a", block_ms=5_000)  # answers waited for 10 s
        replicas.append(replica)
        began = time.monotonic()
        await replica.start()
        took = time.monotonic() - began
        assert 4.9 < took < 8.0
        reason = replica.bridge.readiness()["bus"]["reason"]
        assert reason.endswith("is not connected yet"), reason
        await replica.aclose()


async def test_each_work_queue_entry_reaches_exactly_one_replica_and_is_acknowledged(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """100 alerts published across three replicas are taken once each, then acknowledged."""
    server = redis_server()
    group = [await Replica(server.url, f"node-{n}").start() for n in "abc"]
    replicas += group
    for replica in group:
        await async_wait_until(replica.ready, 10)
    expected = [group[n % 3].publish_alert(n) for n in range(100)]

    def taken() -> list[str]:
        return [alert for replica in group for alert in replica.taken_alerts()]

    await async_wait_until(lambda: len(taken()) >= 100, 15, "100 alerts taken")
    await async_wait_until(lambda: pending(server) == 0, 10, "every entry acknowledged")
    counts = Counter(taken())
    assert sorted(counts) == sorted(expected)
    assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1]
    for replica in group:  # fan-out still gives every replica all of them
        await async_wait_until(partial(has_seen, replica, sorted(expected)), 10)


async def test_entries_pending_on_a_dead_consumer_are_claimed_by_a_live_replica(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """Entries a consumer took but never acknowledged are delivered by a replica after the idle
    time, and acknowledged."""
    server = redis_server()
    publisher = await Replica(server.url, "publisher", group=False).start()
    replicas.append(publisher)
    key = f"exesdb:bus:{ALERTS}"
    with server.client() as client:
        client.xgroup_create(key, GROUP, id="0", mkstream=True)
    await async_wait_until(publisher.ready, 10)
    expected = [publisher.publish_alert(n) for n in range(5)]
    await async_wait_until(lambda: len(publisher.seen_alerts()) == 5, 10, "written")
    with server.client() as client:  # a replica that takes the entries, then dies
        taken = client.xreadgroup(GROUP, "dead-replica", {key: ">"}, count=100)
    assert len(taken[0][1]) == 5
    assert pending(server) == 5
    rescuer = await Replica(server.url, "rescuer", claim_idle_ms=300).start()
    replicas.append(rescuer)
    await async_wait_until(lambda: len(rescuer.taken_alerts()) == 5, 10, "claimed")
    assert sorted(rescuer.taken_alerts()) == expected
    await async_wait_until(lambda: pending(server) == 0, 10, "acknowledged")
    assert rescuer.sample("exesdb_redis_claimed_total") == 5


async def test_a_new_holder_takes_what_a_dead_one_left_pending_before_anything_newer(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """Entries a holder took and died holding are taken by the next holder as it takes the
    lease, once idle for half a lease, before the entries written after them: a node's return
    read before its going down would raise the node_failure again."""
    server = redis_server()
    publisher = await Replica(server.url, "publisher", group=False).start()
    replicas.append(publisher)
    key = f"exesdb:bus:{ALERTS}"
    with server.client() as client:
        client.xgroup_create(key, GROUP, id="0", mkstream=True)
    await async_wait_until(publisher.ready, 10)
    left = [publisher.publish_alert(n) for n in range(3)]
    await async_wait_until(lambda: len(publisher.seen_alerts()) == 3, 10, "written")
    with server.client() as client:  # the holder that takes them, then dies
        assert len(client.xreadgroup(GROUP, "dead-holder", {key: ">"}, count=100)[0][1]) == 3
    newer = [publisher.publish_alert(n) for n in range(3, 6)]
    await async_wait_until(lambda: len(publisher.seen_alerts()) == 6, 10, "written")
    # Read a moment ago: a claim round takes them once idle for 2 s, after the newer ones.
    heir = await Replica(server.url, "heir", claim_idle_ms=2_000).start()
    replicas.append(heir)
    await async_wait_until(lambda: len(heir.taken_alerts()) == 6, 10, "all six taken")
    assert heir.taken_alerts() == left + newer
    await async_wait_until(lambda: pending(server) == 0, 10, "acknowledged")
    assert heir.sample("exesdb_redis_claimed_total") == 3


def own_user(server: RedisServer, user: str) -> str:
    """A URL of ``server`` as ``user``, an ACL user made for one replica (so it can be cut off)."""
    with server.client() as client:
        client.execute_command("ACL", "SETUSER", user, "on", ">pw-" + user, "~*", "&*", "+@all")
    return server.url.replace("redis://", f"redis://{user}:pw-{user}@")


def cut_off(server: RedisServer, user: str) -> None:
    """Disable ``user`` and drop its connections: to Redis, as if its replica had died."""
    with server.client() as client:
        client.execute_command("ACL", "SETUSER", user, "off")
        client.execute_command("CLIENT", "KILL", "USER", user)


async def test_when_the_lease_holder_dies_another_replica_delivers_its_pending_entries(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """Only the lease holder takes the work queue; when it is gone holding unacknowledged
    entries, the other replica takes the lease once it lapses, and delivers them."""
    server = redis_server()
    release = asyncio.Event()
    stuck: list[str] = []

    async def stall(envelope: Envelope) -> None:
        stuck.append(envelope.payload.alert_id)  # type: ignore[attr-defined]
        await release.wait()

    a = Replica(own_user(server, "node-a"), "node-a", group=False)
    a.bridge.bus.subscribe("stalled", stall, instances=[ALERTS], group=True)
    await a.start()
    replicas.append(a)
    await async_wait_until(lambda: a.transport.leading, 10, "a holds the lease")
    b = await Replica(server.url, "node-b").start()
    replicas.append(b)
    await async_wait_until(b.ready, 10)
    expected = [b.publish_alert(n) for n in range(5)]
    await async_wait_until(lambda: len(stuck) >= 1, 10, "a took the entries")
    await async_wait_until(lambda: pending(server) == 5, 10, "all five pending on a")
    assert not b.transport.leading
    assert b.taken_alerts() == []
    # a is gone for Redis: no acknowledgement, no renewal, no hand-over.
    cut_off(server, "node-a")
    await async_wait_until(lambda: b.transport.leading, 10, "b takes the lease")
    await async_wait_until(lambda: sorted(b.taken_alerts()) == expected, 10, "b delivers")
    await async_wait_until(lambda: pending(server) == 0, 10, "acknowledged")
    assert b.sample("exesdb_redis_work_queue_leader") == 1
    release.set()
    # a, still running, sees its lease lapse while Redis is out of its reach.
    await async_wait_until(lambda: not a.transport.leading, 10, "a steps down")


async def test_a_graceful_stop_hands_the_lease_over_at_once(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """Closing the lease holder releases the lease, so another replica takes over without
    waiting for it to lapse."""
    server = redis_server()
    a = Replica(server.url, "node-a", claim_idle_ms=60_000)
    await a.start()
    await async_wait_until(lambda: a.transport.leading, 10, "a holds the lease")
    b = await Replica(server.url, "node-b", claim_idle_ms=60_000).start()
    replicas.append(b)
    await a.aclose()
    await async_wait_until(lambda: b.transport.leading, 5, "b takes the lease")
    alert = b.publish_alert(1)
    await async_wait_until(lambda: b.taken_alerts() == [alert], 10)


async def test_consumers_of_departed_replicas_are_forgotten(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """A consumer left in the group by a replica that is gone, holding nothing, is deleted once
    silent for ten claim intervals; the live one stays."""
    server = redis_server()
    key = f"exesdb:bus:{ALERTS}"
    with server.client() as client:  # a replica that took one entry, acknowledged it, left
        client.xgroup_create(key, GROUP, id="0", mkstream=True)
        client.xadd(key, signed_entry())
        taken = client.xreadgroup(GROUP, "departed-replica", {key: ">"}, count=1)
        client.xack(key, GROUP, taken[0][1][0][0])
    replica = await Replica(server.url, "node-a", claim_idle_ms=100).start()
    replicas.append(replica)
    await async_wait_until(lambda: replica.transport.leading, 10)
    alert = replica.publish_alert(1)
    await async_wait_until(lambda: replica.taken_alerts() == [alert], 10)

    def consumers() -> set[str]:
        with server.client() as client:
            return {c["name"].decode() for c in client.xinfo_consumers(key, GROUP)}

    assert "departed-replica" in consumers()
    await async_wait_until(lambda: "departed-replica" not in consumers(), 10, "swept")
    assert replica.transport.consumer in consumers()


async def test_closing_writes_what_is_buffered_first(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """A graceful close writes buffered frames to Redis before stopping."""
    server = redis_server()
    replica = await Replica(server.url, "node-a", group=False).start()
    await async_wait_until(replica.ready, 10)
    for n in range(50):
        replica.publish_alert(n)
    started = time.monotonic()
    await replica.aclose()
    assert time.monotonic() - started < 5
    with server.client() as client:
        assert client.xlen(f"exesdb:bus:{ALERTS}") == 50


async def test_a_work_queue_entry_whose_handler_failed_is_handled_when_claimed_again(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """The alert stage's batch handler fails on an entry (e.g. SQLite locked): the entry stays
    pending, is claimed again after the idle time and handled, then acknowledged."""
    server = redis_server()
    calls: list[int] = []

    def handler(envelopes: Sequence[Envelope]) -> None:
        calls.append(len(envelopes))
        if len(calls) == 1:
            raise RuntimeError("database is locked")

    replica = Replica(server.url, "node-a", group=False, claim_idle_ms=300)
    # No retry in process: the claim hands it back.
    replica.bridge.bus.subscribe(
        "alerts", handler, instances=[ALERTS], group=True, batch=True, retries=0
    )
    await replica.start()
    replicas.append(replica)
    await async_wait_until(lambda: replica.transport.leading, 10, "holds the lease")
    replica.publish_alert(1)
    await async_wait_until(lambda: calls == [1, 1], 15, "handled again after the claim")
    await async_wait_until(lambda: pending(server) == 0, 10, "acknowledged")
    assert replica.sample("exesdb_redis_claimed_total") >= 1


async def test_stopping_releases_the_work_queue_before_the_alert_stage_drains(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """Releasing the work-queue lease (what the alert stage does first when it stops) stops
    this replica reading the group and hands the lease over at once: entries published
    afterwards go to the next holder, none to this one."""
    server = redis_server()
    a = await Replica(server.url, "node-a", claim_idle_ms=60_000).start()
    replicas.append(a)
    await async_wait_until(lambda: a.transport.leading, 10, "a holds the lease")
    b = await Replica(server.url, "node-b", claim_idle_ms=60_000).start()
    replicas.append(b)
    lease = a.transport.capabilities.lease
    assert lease is not None
    await lease.release()
    assert not a.transport.leading
    await async_wait_until(lambda: b.transport.leading, 5, "b takes the lease")
    alert = a.publish_alert(1)
    await async_wait_until(lambda: b.taken_alerts() == [alert], 10, "b takes the entry")
    await async_wait_until(lambda: pending(server) == 0, 10, "acknowledged")
    assert a.taken_alerts() == []


async def test_entries_claimed_again_and_again_are_told_once_a_minute(
    redis_server: Callable[[], RedisServer],
    replicas: list[Replica],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An entry whose handling keeps failing (an alert stage that cannot store it: a Redis out
    of memory) is claimed again each time it has been idle for the claim time: told in one line
    for the stream, not one per claim."""
    server = redis_server()
    tries: list[str] = []

    def failing(envelope: Envelope) -> None:
        tries.append(envelope.payload.alert_id)  # type: ignore[attr-defined]
        raise RuntimeError("cannot store it")

    with caplog.at_level(logging.INFO, logger="bridge.bus.redis.consumer_group"):
        publisher = await holder_and_publisher(server, replicas, failing)
        publisher.publish_alert(1)
        await async_wait_until(lambda: len(tries) >= 5 * 4, 30, "claimed four times")
    said = [r.getMessage() for r in caplog.records if "claimed" in r.getMessage()]
    assert said == [f"claimed 1 pending entr(y/ies) of exesdb:bus:{ALERTS}"]
