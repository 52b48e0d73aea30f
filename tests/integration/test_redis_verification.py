"""Entries on a real redis-server verified as any input: refused when wrongly signed,
unsigned, malformed or replayed (counted, logged, acknowledged), and taken when they
waited in a buffer or in Redis past the replay window.

Replicas are in-process bridges (``redis_replicas.Replica``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from bridge.bus import Envelope, Frame, Keyring, new_message_id
from bridge.messages import SystemAlert, utc_now
from tests.integration.redis_replicas import (
    ALERTS,
    Replica,
    pending,
    replicas,
    signed_entry,
)
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import (
    TEST_SECRET,
    async_wait_until,
)

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "replicas"]


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
