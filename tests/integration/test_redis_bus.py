"""The bus on a real redis-server: fan-out, the work queue, claiming, verification, outages.

Replicas here are in-process bridges (``Bridge`` without HTTP) sharing one redis-server; the
multi-process tests are in ``test_replicas.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from functools import partial
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from redis.exceptions import OutOfMemoryError

from bridge.app import Bridge
from bridge.bus import Envelope, Frame, Keyring, new_message_id
from bridge.bus.redis import GROUP, RedisTransport
from bridge.messages import SecurityAlert, SystemAlert, utc_now
from bridge.regular_files import MAX_FILE_BYTES
from bridge.settings import Settings
from tests.doc_text import page, spans
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import (
    TEST_SECRET,
    BridgeProcess,
    async_wait_until,
    free_port,
    pem_files,
    wait_until,
)

pytestmark = pytest.mark.integration

__all__ = ["redis_server"]

ALERTS = "ex_esdb_alerts"


class Replica:
    """An in-process bridge on the Redis bus, recording what its subscribers got."""

    def __init__(
        self,
        url: str,
        node: str,
        *,
        group: bool = True,
        claim_idle_ms: int = 300,
        buffer_size: int = 10_000,
        secret: str = TEST_SECRET,
        replay_window_ms: int = 300_000,
        spool_dir: Path | None = None,
        block_ms: int = 200,
        http: bool = False,
        max_inflight: int = 4_000,
    ) -> None:
        self.registry = CollectorRegistry()
        self.http = http  # served on a loopback port (``scrape``)
        settings = Settings(
            **{  # type: ignore[arg-type]
                "EXESDB_BUS": url,
                "SECRET_KEY_BASE": secret,
                "EXESDB_NODE": node,
                "EXESDB_REPLAY_WINDOW_MS": str(replay_window_ms),
                "EXESDB_HTTP_ADDR": "127.0.0.1:0",
            }
        )
        self.transport = RedisTransport(
            url,
            node=node,
            claim_idle_ms=claim_idle_ms,
            buffer_size=buffer_size,
            replay_window_ms=replay_window_ms,
            spool_dir=spool_dir,
            block_ms=block_ms,
            max_inflight=max_inflight,
            backoff_seconds=0.05,
            max_backoff_seconds=0.5,
            registry=self.registry,
        )
        self.bridge = Bridge(
            settings, registry=self.registry, transport=self.transport, components=[]
        )
        self.seen: list[Envelope] = []
        self.taken: list[Envelope] = []
        self.bridge.bus.subscribe("fanout", self.seen.append)
        if group:
            self.bridge.bus.subscribe("work", self.taken.append, instances=[ALERTS], group=True)

    async def start(self) -> Replica:
        await self.bridge.start(serve_http=self.http)
        return self

    async def scrape(self) -> dict[str, float]:
        """The samples without labels of the replica's /metrics (served with ``http``)."""
        assert self.bridge.address is not None
        host, port = self.bridge.address
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{host}:{port}/metrics") as response,
        ):
            assert response.status == 200
            text = await response.text()
        samples = (line.split(" ") for line in text.splitlines() if not line.startswith("#"))
        return {fields[0]: float(fields[1]) for fields in samples if len(fields) == 2}

    def publish_alert(self, number: int) -> str:
        """Publish SystemAlert number ``number``; returns its alert_id."""
        alert = SystemAlert(
            alert_id=f"alert-{number:04d}",
            severity="critical",
            category="system",
            title=f"alert {number}",
            description="test",
            source="test",
            node=self.bridge.settings.node,
        )
        result = self.bridge.bus.publish("node_failure", alert)
        assert result, result
        return alert.alert_id

    def ready(self) -> bool:
        return bool(self.bridge.readiness()["bus"]["ready"])

    def reason(self) -> str:
        """Why the bus is not ready, as readiness tells it."""
        return str(self.bridge.readiness()["bus"]["reason"])

    def seen_alerts(self) -> list[str]:
        return [e.payload.alert_id for e in self.seen if isinstance(e.payload, SystemAlert)]

    def taken_alerts(self) -> list[str]:
        return [e.payload.alert_id for e in self.taken if isinstance(e.payload, SystemAlert)]

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    async def aclose(self) -> None:
        await self.bridge.aclose()


@pytest.fixture
async def replicas():
    """A list to put started replicas in; every one is closed afterwards."""
    started: list[Replica] = []
    yield started
    for replica in started:
        await replica.aclose()


def has_seen(replica: Replica, alerts: list[str]) -> bool:
    return sorted(replica.seen_alerts()) == alerts


def pending(server: RedisServer, instance: str = ALERTS) -> int:
    with server.client() as client:
        try:
            return int(client.xpending(f"exesdb:bus:{instance}", GROUP)["pending"])
        except Exception:
            return -1


def signed_entry(
    *, secret: str = TEST_SECRET, tamper: bool = False, message_id: str | None = None
) -> dict[bytes, bytes]:
    """Stream fields for a SystemAlert envelope signed with ``secret`` (body changed if told)."""
    now = utc_now()
    alert = SystemAlert(
        alert_id="forged",
        severity="critical",
        category="security",
        title="forged",
        description="x",
        source="intruder",
        node="intruder",
    )
    envelope = Envelope(
        message_id or new_message_id(),
        ALERTS,
        "node_failure",
        alert.TAG,
        "intruder",
        now,
        alert,
        now.timestamp(),
    )
    body = envelope.to_bytes()
    signature = Keyring.from_secrets(secret).sign(body)
    if tamper:
        body = body.replace(b'"critical"', b'"info"')
    return {b"e": body, b"s": signature.encode()}


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


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            lambda: signed_entry(secret="another-secret-key-base-of-32-characters!"),
            "invalid_signature",
        ),
        (lambda: signed_entry(tamper=True), "invalid_signature"),
        (lambda: {b"e": signed_entry()[b"e"]}, "unsigned"),
        (
            lambda: {
                b"e": b"not json",
                b"s": Keyring.from_secrets(TEST_SECRET).sign(b"not json").encode(),
            },
            "malformed",
        ),
        (lambda: {b"e": signed_entry()[b"e"], b"s": "ü".encode()}, "invalid_signature"),
    ],
    ids=["wrong-key", "tampered", "unsigned", "malformed", "non-ascii-signature"],
)
async def test_an_entry_written_straight_into_redis_is_verified_and_refused(
    redis_server: Callable[[], RedisServer],
    replicas: list[Replica],
    fields: Callable[[], dict[bytes, bytes]],
    reason: str,
) -> None:
    """A bad entry XADDed by hand reaches no subscriber, is counted once by reason, and is
    acknowledged so that it is not redelivered forever."""
    server = redis_server()
    replica = await Replica(server.url, "node-a").start()
    replicas.append(replica)
    await async_wait_until(replica.ready, 10)
    await async_wait_until(lambda: pending(server) >= 0, 10, "group created")
    with server.client() as client:
        client.xadd(f"exesdb:bus:{ALERTS}", fields())
    sentinel = replica.publish_alert(1)  # a good message after the bad one
    await async_wait_until(lambda: replica.taken_alerts() == [sentinel], 10, "sentinel")
    await async_wait_until(lambda: replica.seen_alerts() == [sentinel], 10, "sentinel fan-out")
    assert replica.sample("exesdb_bus_rejected_total", reason=reason) == 1
    await async_wait_until(lambda: pending(server) == 0, 10, "bad entry acknowledged")


async def test_the_warning_of_a_replica_signing_with_another_key_names_its_node(
    redis_server: Callable[[], RedisServer],
    replicas: list[Replica],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A replica whose SECRET_KEY_BASE differs has what it writes refused by the others as
    invalid_signature, and their warning names the node its envelopes give (unverified), so
    that with several replicas the one to mend is known; neither the key nor a signature is
    logged."""
    server = redis_server()
    good = await Replica(server.url, "bridge-good").start()
    other_key = "another-secret-key-base-of-32-characters!"
    wrong = await Replica(server.url, "bridge-wrong-key", group=False, secret=other_key).start()
    replicas += [good, wrong]
    await async_wait_until(good.ready, 10)
    await async_wait_until(wrong.ready, 10)
    with caplog.at_level(logging.DEBUG, logger="bridge.bus"):
        wrong.publish_alert(1)
        await async_wait_until(
            lambda: good.sample("exesdb_bus_rejected_total", reason="invalid_signature") == 1,
            10,
            "refused",
        )
    with server.client() as client:
        [(_, fields)] = client.xrange(f"exesdb:bus:{ALERTS}")
    signature = fields[b"s"].decode()
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == 1, said
    assert said[0].startswith("refused a message as invalid_signature"), said
    assert "node 'bridge-wrong-key'" in said[0], said
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (other_key, TEST_SECRET, signature):
        assert secret not in logged


async def test_an_alert_nested_deeper_than_a_reader_decodes_is_refused_before_redis(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """Publishing an alert nested past the readers' depth limit raises at once and writes
    nothing to Redis, where every reader would refuse it and the work queue acknowledge it."""
    server = redis_server()
    replica = await Replica(server.url, "node-a").start()
    replicas.append(replica)
    await async_wait_until(replica.ready, 10)
    nested: dict[str, object] = {}
    for _ in range(70):
        nested = {"a": nested}
    deep = SystemAlert(
        severity="critical",
        category="system",
        title="deep",
        description="deep",
        source="test",
        node="node-a",
        metadata=nested,
    )
    with pytest.raises(ValueError, match="deeper than 64"):
        replica.bridge.bus.publish("node_failure", deep)
    sentinel = replica.publish_alert(1)
    await async_wait_until(lambda: replica.taken_alerts() == [sentinel], 10, "sentinel")
    with server.client() as client:
        assert client.xlen(f"exesdb:bus:{ALERTS}") == 1
    assert replica.sample("exesdb_bus_rejected_total", reason="malformed") == 0


async def test_a_replayed_entry_is_refused(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """The same signed entry written twice is delivered once and counted as replayed once."""
    server = redis_server()
    replica = await Replica(server.url, "node-a").start()
    replicas.append(replica)
    await async_wait_until(replica.ready, 10)
    await async_wait_until(lambda: pending(server) >= 0, 10, "group created")
    entry = signed_entry()
    with server.client() as client:
        client.xadd(f"exesdb:bus:{ALERTS}", entry)
        client.xadd(f"exesdb:bus:{ALERTS}", entry)
    await async_wait_until(
        lambda: replica.sample("exesdb_bus_rejected_total", reason="replayed") == 1, 10
    )
    await async_wait_until(lambda: pending(server) == 0, 10, "both acknowledged")
    assert replica.seen_alerts() == ["forged"]
    assert replica.taken_alerts() == ["forged"]


async def test_entries_read_together_are_each_verified_and_counted(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """Entries written in one transaction (so read together, fan-out and work queue): the
    good ones are delivered once each, in order, on both paths; each tampered, unsigned,
    wrongly keyed and replayed one reaches no subscriber, is counted once by its reason and
    acknowledged."""
    server = redis_server()
    replica = await Replica(server.url, "node-a").start()
    replicas.append(replica)
    await async_wait_until(replica.ready, 10)
    await async_wait_until(lambda: pending(server) >= 0, 10, "group created")
    first, second = signed_entry(message_id="read-0001"), signed_entry(message_id="read-0002")
    entries = [
        first,
        signed_entry(message_id="read-0003", tamper=True),
        {b"e": signed_entry(message_id="read-0004")[b"e"], b"s": b""},
        signed_entry(message_id="read-0005", secret="another-secret-of-at-least-32-chars!!"),
        first,
        second,
    ]
    with server.client() as client:
        pipe = client.pipeline(transaction=True)
        for entry in entries:
            pipe.xadd(f"exesdb:bus:{ALERTS}", entry)
        pipe.execute()
    await async_wait_until(lambda: len(replica.taken) == 2, 10, "the good entries taken")
    await async_wait_until(lambda: pending(server) == 0, 10, "every entry acknowledged")
    assert [envelope.id for envelope in replica.seen] == ["read-0001", "read-0002"]
    assert [envelope.id for envelope in replica.taken] == ["read-0001", "read-0002"]
    counted = {
        reason: replica.sample("exesdb_bus_rejected_total", reason=reason)
        for reason in ("invalid_signature", "unsigned", "replayed", "expired", "malformed")
    }
    assert counted == {
        "invalid_signature": 2,
        "unsigned": 1,
        "replayed": 1,
        "expired": 0,
        "malformed": 0,
    }


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
    server: RedisServer, replicas: list[Replica]
) -> tuple[Replica, Replica]:
    """A lease holder and a publisher on ``server``, the lease then a rival's in Redis unknown
    to the holder (its next renewal, of a long lease, is seconds away, past the end of a test)."""
    holder = await Replica(server.url, "holder", claim_idle_ms=30_000).start()
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
    holder, publisher = await _lease_gone_to_a_rival(server, replicas)
    expected = [publisher.publish_alert(n) for n in range(5)]
    await async_wait_until(
        lambda: len(holder.taken_alerts()) == 5 or pending(server) == 5, 10, "read from the queue"
    )
    assert holder.taken_alerts() == []  # left pending, for the rival to claim
    assert not holder.transport.leading
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


def calls(server: RedisServer, command: str) -> int:
    """How many times ``command`` (``xinfo|groups``: a subcommand) ran on ``server``."""
    with server.client() as client:
        stats = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def holder_and_publisher(
    server: RedisServer,
    replicas: list[Replica],
    handler: Callable[[Envelope], Awaitable[None] | None],
) -> Replica:
    """A lease holder whose alert stage is ``handler`` alone, and a publisher beside it."""
    holder = Replica(server.url, "holder", group=False)
    holder.bridge.bus.subscribe("flaky", handler, instances=[ALERTS], group=True)
    await holder.start()
    replicas.append(holder)
    await async_wait_until(lambda: holder.transport.leading, 10, "the holder holds the lease")
    publisher = await Replica(server.url, "publisher", group=False).start()
    replicas.append(publisher)
    await async_wait_until(publisher.ready, 10)
    return publisher


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


def tls_server_and_ca_file(tmp_path: Path) -> tuple[RedisServer, Path, str]:
    """A started redis-server over TLS, a CA file trusting its certificate, and the rediss://
    URL naming that file."""
    server = RedisServer(tls=True).start(tmp_path / "redis-tls")
    ca = tmp_path / "redis-ca.pem"
    ca.write_bytes((tmp_path / "redis-tls" / "cert.pem").read_bytes())
    return server, ca, f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={ca}"


async def test_the_bus_runs_over_tls_with_rediss(tmp_path: Path, replicas: list[Replica]) -> None:
    """With a rediss:// URL the replicas talk TLS to a TLS-only redis-server, and fan-out and
    the work queue work as over plain TCP."""
    server = RedisServer(tls=True).start(tmp_path / "redis-tls")
    try:
        a = await Replica(server.url, "node-a").start()
        b = await Replica(server.url, "node-b").start()
        replicas += [a, b]
        for replica in (a, b):
            await async_wait_until(replica.ready, 10)
        published = a.publish_alert(1)
        for replica in (a, b):
            await async_wait_until(partial(has_seen, replica, [published]), 10, "fan-out")
        await async_wait_until(
            lambda: a.taken_alerts() + b.taken_alerts() == [published], 10, "work queue"
        )
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


async def test_a_ca_file_gone_is_told_by_a_connection_that_needs_it_and_its_return_taken(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    """A rediss:// URL's CA file removed after a replica connected with it (a rotation half
    done) fails the next replica's connections before Redis is tried: its readiness names the
    query option and the file, not Redis unreachable, and the file put back is taken at the
    next try, without a restart."""
    server, ca, url = tls_server_and_ca_file(tmp_path)
    certificate = ca.read_bytes()
    said = (
        "is not connected: a TLS file EXESDB_BUS names does not load: query option"
        f" 'ssl_ca_certs': cannot read {ca}: No such file or directory"
    )
    try:
        first = await Replica(url, "node-a").start()
        replicas.append(first)
        await async_wait_until(first.ready, 10, "the first replica connected")
        ca.unlink()
        second = await Replica(url, "node-b").start()
        replicas.append(second)

        await async_wait_until(lambda: second.reason().endswith(said), 10, f"told: {said}")
        ca.write_bytes(certificate)
        await async_wait_until(second.ready, 10, "the second replica connected")
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


async def test_a_rotated_ca_file_is_taken_by_the_running_bus_without_a_restart(
    tmp_path: Path, replicas: list[Replica], caplog: pytest.LogCaptureFixture
) -> None:
    """The server's certificate rotated to a new CA (its connections dropped) and the rediss://
    URL's CA file replaced by the new CA while a replica runs: the replica connects again with
    the new file, says once that the TLS files changed, and delivers what was published while
    it could not connect and after, through fan-out and the work queue."""
    server, ca, url = tls_server_and_ca_file(tmp_path)
    try:
        with caplog.at_level(logging.INFO, logger="bridge.bus.redis"):
            replica = await Replica(url, "node-a").start()
            replicas.append(replica)
            await async_wait_until(replica.ready, 10, "connected with the first CA")
            published = [replica.publish_alert(1)]
            await async_wait_until(partial(has_seen, replica, published), 10, "delivered")
            certificate = server.rotate_certificate()
            await async_wait_until(lambda: not replica.ready(), 10, "the new CA not trusted")
            published.append(replica.publish_alert(2))
            staged = tmp_path / "redis-ca.pem.new"
            staged.write_bytes(certificate)
            staged.replace(ca)  # as rotation tools do: the new file whole, at once
            await async_wait_until(replica.ready, 10, "connected with the new CA file")
            published.append(replica.publish_alert(3))
            await async_wait_until(partial(has_seen, replica, published), 10, "fan-out")
            await async_wait_until(
                lambda: sorted(replica.taken_alerts()) == published, 10, "work queue"
            )
        changed = [r.getMessage() for r in caplog.records if "TLS files" in r.getMessage()]
        assert len(changed) == 1, changed
        assert f"ssl_ca_certs {ca}" in changed[0]
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


def tls_refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The log lines refusing TLS files that do not load."""
    return [r.getMessage() for r in caplog.records if "do not load;" in r.getMessage()]


async def connected_replica(url: str, replicas: list[Replica]) -> Replica:
    """Replica node-a on ``url``, started (stopped with ``replicas``) and connected to Redis."""
    replica = await Replica(url, "node-a").start()
    replicas.append(replica)
    await async_wait_until(replica.ready, 10, "connected")
    return replica


async def test_a_ca_file_rewritten_with_what_does_not_load_is_not_taken(
    tmp_path: Path, replicas: list[Replica], caplog: pytest.LogCaptureFixture
) -> None:
    """A rediss:// URL's CA file rewritten with what does not load (a rotation half done) is
    logged once and not taken: the replica's connections, dropped by Redis, open again with the
    CA loaded before and deliver."""
    server, ca, url = tls_server_and_ca_file(tmp_path)
    certificate = ca.read_bytes()

    try:
        with caplog.at_level(logging.INFO, logger="bridge.bus.redis"):
            replica = await connected_replica(url, replicas)
            ca.write_bytes(certificate[: len(certificate) // 2])
            await async_wait_until(
                lambda: tls_refusals(caplog) or "TLS files changed" in caplog.text,
                10,
                "the change judged",
            )
            with server.client() as client:
                client.client_kill_filter(_type="normal")
            published = [replica.publish_alert(1)]
            await async_wait_until(partial(has_seen, replica, published), 10, "delivered")
        [refusal] = tls_refusals(caplog)
        assert f"query option 'ssl_ca_certs': {ca}" in refusal, refusal
        assert "TLS files changed" not in caplog.text
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


RELOADED = "exesdb_redis_tls_files_last_reload_successful"
LOADED_AT = "exesdb_redis_tls_files_last_reload_success_timestamp_seconds"


async def test_a_tls_file_grown_over_its_limit_is_refused_and_the_one_loaded_kept(
    tmp_path: Path, replicas: list[Replica], caplog: pytest.LogCaptureFixture
) -> None:
    """A rediss:// URL's CA file grown over MAX_FILE_BYTES (the CA with a log copied after it
    by mistake, which OpenSSL would load) is refused, logged once naming the query option, the
    file and the limit, and not taken (the reload gauge at 0): read and hashed whole each second
    on the event loop, 500 MB there held every request for most of each second. The replica's
    connections, dropped by Redis, open again with the CA loaded before and deliver; the file
    put back is taken."""
    server, ca, url = tls_server_and_ca_file(tmp_path)
    certificate = ca.read_bytes()
    staged = tmp_path / "redis-ca.pem.new"

    try:
        with caplog.at_level(logging.INFO, logger="bridge.bus.redis"):
            replica = await connected_replica(url, replicas)
            staged.write_bytes(certificate + b"#" * MAX_FILE_BYTES + b"\n")
            staged.replace(ca)
            await async_wait_until(lambda: replica.sample(RELOADED) == 0, 10, "the file refused")
            with server.client() as client:
                client.client_kill_filter(_type="normal")
            published = [replica.publish_alert(1)]
            await async_wait_until(partial(has_seen, replica, published), 10, "delivered")
            staged.write_bytes(certificate)
            staged.replace(ca)
            await async_wait_until(lambda: replica.sample(RELOADED) == 1, 10, "put back")
        [refusal] = tls_refusals(caplog)
        said = f"query option 'ssl_ca_certs': cannot read {ca}: larger than 1024 KiB, the most"
        assert said in refusal, refusal
        assert "TLS files changed" not in caplog.text
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


@pytest.mark.parametrize("rotation", ["ca half-written", "certificate before its key"])
async def test_tls_files_caught_mid_rotation_leave_every_connection_on_the_ones_loaded(
    tmp_path: Path, replicas: list[Replica], rotation: str
) -> None:
    """A rediss:// URL's CA file caught half-written, or its client certificate replaced before
    its key (a rotation under way), is refused and told (the reload gauge at 0), and the files
    loaded before stay in force for every connection, those the pool opens from then on too: a
    burst of commands needing more connections than it holds gets through, the replica stays
    ready and delivers; the files put right are taken."""
    server = RedisServer(tls=True).start(tmp_path / "redis-tls")
    pem_files(tmp_path)
    ca, client = tmp_path / "redis-ca.pem", tmp_path / "client.pem"
    certificate = (tmp_path / "redis-tls" / "cert.pem").read_bytes()
    ca.write_bytes(certificate)
    url = (
        f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={ca}"
        f"&ssl_certfile={client}&ssl_keyfile={tmp_path / 'client.key'}"
    )
    spoiled, whole = (
        (ca, certificate) if rotation == "ca half-written" else (client, client.read_bytes())
    )
    try:
        replica = await Replica(url, "node-a").start()
        replicas.append(replica)
        await async_wait_until(replica.ready, 10, "connected")
        assert replica.sample(RELOADED) == 1
        if rotation == "ca half-written":
            ca.write_bytes(certificate[: len(certificate) // 2])
        else:
            # The next certificate, before its key: another key's (pem_files' CA's).
            client.write_bytes((tmp_path / "ca.pem").read_bytes())
        await async_wait_until(lambda: replica.sample(RELOADED) == 0, 10, "the change refused")
        state = replica.transport.capabilities.state
        assert state is not None
        # More commands at once than the loops keep connections for: the pool opens new ones.
        await asyncio.gather(*(state.load(f"burst-{n}") for n in range(20)))
        # Ready, or again within seconds: twenty TLS handshakes on a loaded host can hold the
        # 300 ms lease's renewal past its end, which is not the files refused.
        await async_wait_until(replica.ready, 10, "ready after the burst")
        published = [replica.publish_alert(1)]
        await async_wait_until(partial(has_seen, replica, published), 10, "delivered")
        await async_wait_until(replica.ready, 10, "ready after the delivery")
        spoiled.write_bytes(whole)
        await async_wait_until(lambda: replica.sample(RELOADED) == 1, 10, "put right")
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


async def test_a_redis_failure_while_a_rotation_waits_is_told_as_redis_not_as_the_files(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    """A rediss:// URL's CA file caught half-written (the change refused) while Redis's
    certificate rotates to a CA the bus has not loaded: the connections, which load nothing
    from the files any more, fail on Redis's certificate, and readiness says so, not that a TLS
    file does not load."""
    server, ca, url = tls_server_and_ca_file(tmp_path)
    certificate = ca.read_bytes()
    try:
        replica = await Replica(url, "node-a").start()
        replicas.append(replica)
        await async_wait_until(replica.ready, 10, "connected")
        ca.write_bytes(certificate[: len(certificate) // 2])
        await async_wait_until(lambda: replica.sample(RELOADED) == 0, 10, "the change refused")
        server.rotate_certificate()

        await async_wait_until(lambda: not replica.ready(), 10, "the new CA not trusted")
        await async_wait_until(
            lambda: "certificate verify failed" in replica.reason(),
            10,
            "told: certificate verify failed",
        )
        assert "TLS file" not in replica.reason(), replica.reason()
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


async def test_a_rediss_url_without_the_private_ca_says_to_name_it(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    """A rediss:// URL without ?ssl_ca_certs, for a Redis whose certificate a private CA
    signed, is told in readiness as unreachable with what to do: name that CA's file."""
    server = RedisServer(tls=True).start(tmp_path / "redis-tls")
    try:
        replica = await Replica(f"rediss://127.0.0.1:{server.port}/0", "node-a").start()
        replicas.append(replica)

        await async_wait_until(lambda: "certificate verify failed" in replica.reason(), 10, "told")
        assert "is unreachable" in replica.reason(), replica.reason()
        assert "?ssl_ca_certs=FILE" in replica.reason(), replica.reason()
        assert "docs/redis.md#settings" in replica.reason(), replica.reason()
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


async def test_a_rediss_url_at_a_redis_without_tls_says_it_may_be_meant_as_redis(
    replicas: list[Replica], redis_server: Callable[[], RedisServer]
) -> None:
    """A rediss:// URL at a Redis that speaks no TLS times out (the handshake is never
    answered): readiness says so with what to do, not only "Timeout connecting to server"."""
    port = redis_server().port
    replica = await Replica(f"rediss://127.0.0.1:{port}/0", "node-a").start()
    replicas.append(replica)

    await async_wait_until(lambda: "Timeout" in replica.reason(), 15, "the timeout told")
    assert "is unreachable" in replica.reason(), replica.reason()
    assert "a Redis without TLS never answers" in replica.reason(), replica.reason()
    assert "EXESDB_BUS is redis://" in replica.reason(), replica.reason()


def test_the_log_tells_a_rediss_url_at_a_redis_without_tls_the_scheme_meant(
    tmp_path: Path, redis_server: Callable[[], RedisServer]
) -> None:
    """A bridge process's log, every line of it redacted, keeps the scheme the hint names for a
    rediss:// URL at a Redis without TLS, not ``<not a URL>`` in its place."""
    port = redis_server().port
    process = BridgeProcess(
        state_dir=tmp_path / "state",
        EXESDB_BUS=f"rediss://:pw@127.0.0.1:{port}/0",
        SECRET_KEY_BASE=TEST_SECRET,
    ).start(tmp_path)
    try:
        line = wait_until(
            lambda: next((x for x in process.log().splitlines() if "Timeout" in x), None),
            15,
            "the timeout logged",
        )
    finally:
        process.stop()
    assert "for such a Redis, EXESDB_BUS is redis://)" in line, line
    assert "<not a URL>" not in line
    assert ":pw@" not in line


async def test_a_rediss_url_naming_another_host_than_the_certificate_is_not_told_to_name_its_ca(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    """A certificate for another name than the URL's host, signed by the CA the URL names,
    fails verification, but is not told to name the CA that signed it: that one is trusted."""
    server = RedisServer(tls=True).start(tmp_path / "redis-tls")
    try:
        url = server.url.replace("127.0.0.1", "localhost")  # the certificate is for 127.0.0.1
        replica = await Replica(url, "node-a").start()
        replicas.append(replica)

        await async_wait_until(lambda: "certificate verify failed" in replica.reason(), 10, "told")
        assert "mismatch" in replica.reason(), replica.reason()
        assert "?ssl_ca_certs=FILE" not in replica.reason(), replica.reason()
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


async def test_a_tls_redis_that_answered_and_stops_answering_is_not_told_to_be_without_tls(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    """A TLS Redis paused after it answered times out, and is not told to be a Redis without
    TLS (EXESDB_BUS redis://): it answered TLS on this URL."""
    server = RedisServer(tls=True).start(tmp_path / "redis-tls")
    assert server.process is not None
    try:
        replica = await Replica(server.url, "node-a").start()
        replicas.append(replica)
        await async_wait_until(replica.ready, 15, "ready over TLS")

        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            await async_wait_until(lambda: "Timeout" in replica.reason(), 20, "the timeout told")
            assert "without TLS" not in replica.reason(), replica.reason()
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()


async def test_the_tls_files_gauges_say_whether_a_change_was_taken_and_when(
    tmp_path: Path, replicas: list[Replica], redis_server: Callable[[], RedisServer]
) -> None:
    """With a rediss:// URL naming a CA file, /metrics shows the TLS files taken (1) and when
    they were loaded from the start; the file rewritten with what does not load, 0 and the time
    kept; the new CA of a rotation taken, 1 and the time it was. A URL naming no TLS file has
    neither series."""
    plain = await Replica(redis_server().url, "node-plain", http=True).start()
    replicas.append(plain)
    server, ca, url = tls_server_and_ca_file(tmp_path)
    certificate = ca.read_bytes()
    try:
        began = time.time()
        replica = await Replica(url, "node-a", http=True).start()
        replicas.append(replica)
        await async_wait_until(replica.ready, 10, "connected")
        first = await replica.scrape()
        assert first[RELOADED] == 1
        assert began <= first[LOADED_AT] <= time.time()
        ca.write_bytes(certificate[: len(certificate) // 2])

        async def reloaded(value: float) -> bool:
            return (await replica.scrape())[RELOADED] == value

        await async_wait_until(partial(reloaded, 0), 10, "the change refused")
        assert (await replica.scrape())[LOADED_AT] == first[LOADED_AT]
        rotated = server.rotate_certificate()
        staged = tmp_path / "redis-ca.pem.new"
        staged.write_bytes(rotated)
        staged.replace(ca)
        await async_wait_until(partial(reloaded, 1), 10, "the new CA taken")
        assert (await replica.scrape())[LOADED_AT] > first[LOADED_AT]
        await async_wait_until(replica.ready, 10, "connected with the new CA")
        assert {RELOADED, LOADED_AT}.isdisjoint(await plain.scrape())
    finally:
        for started in replicas:
            await started.aclose()
        server.stop()


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


async def test_a_write_refused_for_want_of_memory_is_retried_not_dropped(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """While Redis refuses writes with OOM (maxmemory reached, noeviction) buffered frames wait
    and are retried with backoff; once it takes writes again they arrive, none dropped."""
    server = redis_server()
    replica = await Replica(server.url, "node-a", group=False).start()
    replicas.append(replica)
    first = replica.publish_alert(0)
    await async_wait_until(lambda: replica.seen_alerts() == [first], 10, "connected")
    with server.client() as client:
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)
    errors = replica.sample("exesdb_redis_connection_errors_total")
    expected = [first] + [replica.publish_alert(n) for n in range(1, 6)]
    await async_wait_until(
        lambda: replica.sample("exesdb_redis_connection_errors_total") > errors + 1,
        10,
        "the writes are refused (and retried)",
    )
    with server.client() as client:
        assert client.xlen(f"exesdb:bus:{ALERTS}") == 1
        client.config_set("maxmemory", 0)
    await async_wait_until(lambda: has_seen(replica, expected), 10, "written once Redis takes them")
    assert replica.sample("exesdb_bus_dropped_total", subscriber="transport") == 0


async def test_entries_taken_while_redis_is_out_of_memory_are_acknowledged_meanwhile(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """While Redis refuses writes with OOM, the holder's acknowledgements still go through
    (XACK frees memory, Redis takes it): entries it claims then are not left pending."""
    server = redis_server()
    holder = await Replica(server.url, "holder", claim_idle_ms=1000).start()
    replicas.append(holder)
    await async_wait_until(lambda: holder.transport.leading, 10, "leading")
    first = holder.publish_alert(0)  # its first write: the epoch set
    await async_wait_until(lambda: holder.taken_alerts() == [first], 10, "written and taken")
    await async_wait_until(lambda: pending(server) == 0, 10, "acknowledged")
    key = f"exesdb:bus:{ALERTS}"
    with server.client() as client:
        with client.pipeline(transaction=True) as pipe:  # taken by a consumer gone at once
            for _ in range(5):
                pipe.xadd(key, signed_entry())
            pipe.xreadgroup(GROUP, "dead-replica", {key: ">"}, count=5)
            pipe.execute()
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)
    errors = holder.sample("exesdb_redis_connection_errors_total")
    holder.publish_alert(1)  # its write refused: the epoch to be checked again
    await async_wait_until(
        lambda: holder.sample("exesdb_redis_connection_errors_total") > errors,
        10,
        "the write refused",
    )
    assert pending(server) == 5
    await async_wait_until(lambda: len(holder.taken_alerts()) == 6, 10, "claimed")
    await async_wait_until(lambda: pending(server) == 0, 10, "acknowledged under OOM")
    with server.client() as client:
        with pytest.raises(OutOfMemoryError):
            client.set("still-full", "1")
        client.config_set("maxmemory", 0)


async def test_a_redis_out_of_memory_is_told_once_whichever_script_it_refused(
    redis_server: Callable[[], RedisServer],
    replicas: list[Replica],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis's OOM refusal of a script names the script (its hash): refusals of the lease
    holder's scripts and of its other commands alike are one reason, warned of once."""
    server = redis_server()
    holder = await Replica(server.url, "holder").start()
    replicas.append(holder)
    await async_wait_until(lambda: holder.transport.leading, 10, "leading")
    first = holder.publish_alert(0)
    await async_wait_until(lambda: holder.taken_alerts() == [first], 10, "written and taken")
    with server.client() as client:
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)
    errors = holder.sample("exesdb_redis_connection_errors_total")
    holder.publish_alert(1)
    await async_wait_until(  # each loop refused again and again: its script's and the rest
        lambda: holder.sample("exesdb_redis_connection_errors_total") >= errors + 20,
        20,
        "twenty refusals",
    )
    told = [r.message for r in caplog.records if "OOM" in r.message]
    assert len(told) == 1, told
    assert "refuses the bridge's commands: OOM" in told[0]
    with server.client() as client:
        client.config_set("maxmemory", 0)


def refused_writes(replica: Replica) -> bool:
    """Whether the replica's bus tells its cluster monitor that Redis refuses writes (READONLY)."""
    return "refuses writes for now: READONLY" in (replica.bridge.bus.hearing() or "")


async def test_a_replica_on_a_read_replica_alone_is_held_back_and_not_ready(
    redis_server: Callable[[], RedisServer], replicas: list[Replica], tmp_path: Path
) -> None:
    """A replica whose Redis is a read replica (``replicaof``) is refused READONLY alone: not
    ready, saying so, and taken by its cluster monitor for one hearing nothing, though it reads
    the others' messages through replication; the replica on the primary hears all."""
    primary = redis_server()
    with primary.client() as client:
        client.config_set("repl-diskless-sync-delay", 0)  # the first sync at once, not after 5 s
    read_only = RedisServer(options=["--replicaof", "127.0.0.1", str(primary.port)])
    read_only.start(tmp_path / "read-only")
    try:
        with read_only.client() as client:
            await async_wait_until(
                lambda: client.info("replication")["master_link_status"] == "up", 10, "in sync"
            )
        right = await Replica(primary.url, "node-a", group=False).start()
        replicas.append(right)
        wrong = await Replica(read_only.url, "node-b", group=False).start()
        replicas.append(wrong)
        wrong.publish_alert(1)
        await async_wait_until(lambda: refused_writes(wrong), 10, "held back")
        assert not wrong.ready()
        said = wrong.reason()
        assert "refuses the bridge's commands: READONLY" in said
        [quoted] = [span for span in spans(page("redis")) if "commands: READONLY" in span]
        assert all(part.strip() in said for part in quoted.split("…"))
        heard = right.publish_alert(2)
        await async_wait_until(lambda: wrong.seen_alerts() == [heard], 10, "read through")
        assert right.ready()
        assert right.bridge.bus.hearing() is None
    finally:
        read_only.stop()


async def test_a_primary_demoted_under_two_replicas_holds_both_back(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """A primary turned into a replica (``REPLICAOF``, as a failover demotes it) refuses every
    replica still connected to it READONLY alike: each is held back, declaring nobody down."""
    old, new = redis_server(), redis_server()
    pair = [await Replica(old.url, f"node-{n}", group=False).start() for n in "ab"]
    replicas.extend(pair)
    await async_wait_until(lambda: all(r.ready() for r in pair), 10, "ready")
    with old.client() as client:
        client.replicaof("127.0.0.1", new.port)
    for number, replica in enumerate(pair):
        replica.publish_alert(number)
    await async_wait_until(lambda: all(refused_writes(r) for r in pair), 10, "both held back")


@pytest.mark.parametrize(
    "scripts", [["+eval", "+evalsha"], ["-eval", "-evalsha"]], ids=["scripts", "no scripts"]
)
async def test_a_frame_redis_refuses_for_good_is_dropped_and_counted(
    redis_server: Callable[[], RedisServer], replicas: list[Replica], scripts: list[str]
) -> None:
    """A frame Redis refuses permanently (NOPERM: an ACL makes its stream read-only) is dropped
    and counted in exesdb_bus_dropped_total{subscriber="transport"}; the frames around it are
    written, by a user without EVAL and EVALSHA too (one XADD each, in transactions)."""
    server = redis_server()
    with server.client() as client:
        client.execute_command(
            "ACL",
            "SETUSER",
            "default",
            *scripts,
            "resetkeys",
            "%R~exesdb:bus:ex_esdb_security",
            "~exesdb:bus:ex_esdb_[a-rt-z]*",
            "~exesdb:bus:ex_esdb_s[a-df-z]*",
            "~exesdb:bus:epoch",
            "~exesdb:bus:leader",
            "~exesdb:state:replica:*",
        )
    replica = await Replica(server.url, "node-a", group=False).start()
    replicas.append(replica)
    await async_wait_until(replica.ready, 10)
    before = replica.publish_alert(1)
    refused = replica.bridge.bus.publish(
        "login_failed",
        SecurityAlert(alert_type="brute_force", severity="high", description="x", node="node-a"),
    )
    assert refused
    after = replica.publish_alert(2)
    await async_wait_until(lambda: has_seen(replica, [before, after]), 10, "the others written")
    await async_wait_until(
        lambda: replica.sample("exesdb_bus_dropped_total", subscriber="transport") == 1,
        10,
        "the refused frame counted",
    )


async def test_frames_buffered_longer_than_the_replay_window_are_re_signed_and_accepted(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """A frame that waited in the local buffer past the replay window (Redis unreachable) is
    re-signed with a fresh ts and the same id when written, so every replica accepts it."""
    server = redis_server()
    replica = Replica(server.url, "node-a", group=False, replay_window_ms=1_000)
    replicas.append(replica)
    alert = SystemAlert(
        alert_id="buffered",
        severity="critical",
        category="system",
        title="t",
        description="d",
        source="s",
        node="node-a",
    )
    # Buffered before start, 1.3 s old: past the window, it would be refused as it is.
    then = utc_now() - timedelta(seconds=1.3)
    envelope = Envelope(
        new_message_id(), ALERTS, "node_failure", alert.TAG, "node-a", then, alert, then.timestamp()
    )
    body = envelope.to_bytes()
    assert replica.transport.send(
        Frame(ALERTS, body, Keyring.from_secrets(TEST_SECRET).sign(body), envelope)
    )
    await replica.start()
    await async_wait_until(lambda: replica.seen_alerts() == ["buffered"], 10, "accepted")
    assert replica.seen[0].id == envelope.id
    assert replica.seen[0].unix_ts > then.timestamp() + 1.0
    assert replica.sample("exesdb_redis_resigned_total") == 1
    assert replica.sample("exesdb_bus_rejected_total", reason="expired") == 0


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


async def test_alerts_that_waited_in_redis_past_the_replay_window_are_taken_and_replays_are_not(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """Every replica is down longer than the replay window while application nodes write
    alerts straight to Redis: the next holder takes each of them (fresh when Redis took them;
    counted in ``exesdb_bus_waited_total``), and an old envelope written anew meanwhile (a
    replay) is still refused as expired."""
    server = redis_server()
    first = await Replica(server.url, "node-a", replay_window_ms=1_000).start()
    await async_wait_until(lambda: first.sample("exesdb_redis_work_queue_leader") == 1, 10)
    await first.aclose()  # the consumer group stays, nobody reads it
    keyring = Keyring.from_secrets(TEST_SECRET)
    stream = "exesdb:bus:ex_esdb_alerts"

    def written(alert_id: str, ts: float) -> None:
        alert = SystemAlert(
            alert_id=alert_id,
            severity="critical",
            category="system",
            title=alert_id,
            description="waited",
            source="test",
            node="app-1",
        )
        at = utc_now() - timedelta(seconds=time.time() - ts)
        body = Envelope(
            new_message_id(), alert.INSTANCE, "t", alert.TAG, "app-1", at, alert, ts
        ).to_bytes()
        with server.client() as client:
            client.xadd(stream, {b"e": body, b"s": keyring.sign(body)})

    began = time.time()
    for n in range(3):
        written(f"waited-{n}", time.time())
    written("replayed", began - 5)  # written now, five windows after its ts
    await async_wait_until(lambda: time.time() > began + 1.5, 5, "the replay window passed")
    second = await Replica(server.url, "node-b", replay_window_ms=1_000).start()
    replicas.append(second)
    expected = ["waited-0", "waited-1", "waited-2"]
    await async_wait_until(lambda: sorted(second.taken_alerts()) == expected, 15, "taken")
    await async_wait_until(
        lambda: second.sample("exesdb_bus_rejected_total", reason="expired") == 1, 10
    )
    assert second.sample("exesdb_bus_waited_total") == 3
    assert sorted(second.taken_alerts()) == expected


async def test_two_entries_of_one_message_that_waited_past_the_replay_window_are_taken_once(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """A publisher's write retried after its answer was lost (a Redis stalled past the socket
    timeout runs both) leaves two entries of one message; read only after the replay window
    (every replica down), the next holder takes it once and acknowledges both entries."""
    server = redis_server()
    first = await Replica(server.url, "node-a", replay_window_ms=1_000).start()
    await async_wait_until(lambda: first.sample("exesdb_redis_work_queue_leader") == 1, 10)
    await first.aclose()  # the consumer group stays, nobody reads it
    stream = f"exesdb:bus:{ALERTS}"
    began = time.time()
    once, twice = signed_entry(), signed_entry()
    with server.client() as client:
        for fields in (once, twice, twice):
            last = client.xadd(stream, fields)
    await async_wait_until(lambda: time.time() > began + 1.5, 5, "the replay window passed")
    second = await Replica(server.url, "node-b", replay_window_ms=1_000).start()
    replicas.append(second)

    def all_acknowledged() -> bool:
        with server.client() as client:
            (group,) = client.xinfo_groups(stream)
        return bool(group["last-delivered-id"] == last and group["pending"] == 0)

    await async_wait_until(all_acknowledged, 15, "every entry taken and acknowledged")
    assert len(second.taken) == 2
    assert second.sample("exesdb_bus_waited_total") == 2
    assert second.sample("exesdb_bus_rejected_total", reason="replayed") == 1


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
    publisher = await Replica(server.url, "publisher", group=False).start()
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
    await async_wait_until(
        lambda: sorted(consumer.taken_alerts()) == [kept, *lost], 15, "the lost ones again"
    )
    assert publisher.sample("exesdb_redis_rewritten_total") == len(lost)
    [said] = [r.getMessage() for r in caplog.records if "writing 10 recent" in r.getMessage()]
    assert said.replace("10", "3") in spans(page("redis"))


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
