"""Writes a real redis-server refuses, for now (OOM, READONLY) or for good, under in-process
replicas (``redis_replicas.Replica``): retried or dropped and counted, and told once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from redis.exceptions import OutOfMemoryError

from bridge.bus.redis import GROUP
from bridge.messages import SecurityAlert
from tests.doc_text import page, spans
from tests.integration.redis_replicas import (
    ALERTS,
    Replica,
    has_seen,
    pending,
    refused_writes,
    replicas,
    signed_entry,
)
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import (
    async_wait_until,
)

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "replicas"]


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
