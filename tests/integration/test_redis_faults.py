"""Faults of the Redis under two bridge replicas (real processes, a real redis-server, a real
webhook receiver): Redis paused past the lease, restarted empty, cut off from one replica, or
out of memory, and the lease holder killed while a delivery is in flight. Each counts what the
receiver got: every alert at least once, none twice, and the resolve of an open alert after its
firing.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from bridge.messages import NodeLifecycle
from tests.integration.servers.redis import RedisServer
from tests.integration.servers.webhook import WebhookReceiver, webhook_receiver
from tests.integration.test_replicas import (
    alert,
    delivered_counts,
    ingest,
    leader,
    metric,
    notifications,
    redis,
    replica_env,
    settled,
    start_replicas,
)
from tests.support import ADMIN_TOKEN, BridgeProcess, http_get, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["redis", "webhook_receiver"]

PENDING = "exesdb:bus:ex_esdb_alerts"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def bus_check(process: BridgeProcess) -> tuple[int, str | None]:
    """``/readyz``'s status and the reason its bus check gives (None: ready)."""
    status, body = http_get(process.url + "/readyz")
    return status, json.loads(body)["checks"]["bus"]["reason"]


def holder_named(process: BridgeProcess) -> str | None:
    """The lease holder's consumer name as ``process``'s alert API gives it."""
    answer = json.loads(http_get(process.url + "/v1/alerts", AUTH)[1])
    name: str | None = answer.get("work_queue_holder_name")
    return name


def holder_has_pending(redis: RedisServer) -> None:
    """Wait until the lease holder has taken alerts it has not acknowledged yet."""
    with redis.client() as client:
        wait_until(
            lambda: client.xpending(PENDING, "exesdb-bridge")["pending"],
            15,
            "alerts taken and not yet acknowledged",
            every=0.005,  # the holder works through them in a short window
        )


def once_each(receiver: WebhookReceiver, prefix: str, ids: list[str]) -> None:
    """Every alert of ``ids`` reached the receiver, none twice."""
    wait_until(lambda: set(delivered_counts(receiver, prefix)) == set(ids), 30, "every alert")
    counts = delivered_counts(receiver, prefix)
    assert sorted(k for k, v in counts.items() if v > 1) == []


def test_a_redis_paused_past_the_lease_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """redis-server stopped (SIGSTOP) while the holder works through 500 alerts, longer than
    the lease, with 100 more ingested meanwhile (answered 202): both replicas say Redis is
    unreachable and the holder gives the lease up; resumed (SIGCONT), each alert reaches the
    receiver exactly once."""
    receiver: WebhookReceiver = webhook_receiver()
    replicas = start_replicas(tmp_path, bridge_processes, redis.url, 2, receiver)
    holder = leader(replicas)
    other = next(r for r in replicas if r is not holder)
    ids = [f"paused-{n:04d}" for n in range(600)]
    ingest(other.url, [alert(i) for i in ids[:500]])
    holder_has_pending(redis)
    assert redis.process is not None
    os.kill(redis.process.pid, signal.SIGSTOP)
    try:
        ingest(other.url, [alert(i) for i in ids[500:550]])  # into the spool: 202
        ingest(holder.url, [alert(i) for i in ids[550:]])
        for replica in replicas:
            # A deadline: commands wait for an answer up to the socket timeout (6 s).
            wait_until(lambda r=replica: bus_check(r)[0] == 503, 15, "Redis said unreachable")
            assert "is unreachable" in str(bus_check(replica)[1])
            assert metric(replica.url, "exesdb_redis_connected") == 0
        wait_until(
            lambda: metric(holder.url, "exesdb_redis_work_queue_leader") == 0, 5, "lease given up"
        )
    finally:
        os.kill(redis.process.pid, signal.SIGCONT)
    once_each(receiver, "paused-", ids)
    wait_until(lambda: settled(replicas, redis), 30, "outboxes empty, nothing pending")
    for replica in replicas:
        wait_until(lambda r=replica: bus_check(r)[0] == 200, 15, "ready again")
    leader(replicas)


def test_a_redis_restarted_empty_while_the_holder_has_alerts_pending_loses_none(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """redis-server restarted without persistence (every key gone: streams, group, lease) while
    the holder has 1500 alerts taken and not acknowledged: the publisher writes them again and
    each alert, with 100 ingested after the restart, reaches the receiver exactly once."""
    receiver: WebhookReceiver = webhook_receiver()
    replicas = start_replicas(tmp_path, bridge_processes, redis.url, 2, receiver)
    holder = leader(replicas)
    other = next(r for r in replicas if r is not holder)
    ids = [f"emptied-{n:04d}" for n in range(1600)]
    ingest(other.url, [alert(i) for i in ids[:1500]])
    holder_has_pending(redis)
    redis.restart()
    ingest(holder.url, [alert(i) for i in ids[1500:]])
    once_each(receiver, "emptied-", ids)
    wait_until(lambda: settled(replicas, redis), 30, "outboxes empty, nothing pending")
    assert (metric(other.url, "exesdb_redis_rewritten_total") or 0) > 0


def test_after_redis_lost_its_data_the_holder_takes_its_lease_back_and_resolves_its_alert(
    tmp_path: Path, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """A node_failure fires on the holder A; A is stalled (SIGSTOP) while redis-server restarts
    empty: B, which saw A hold the lease, leaves it to A rather than take it with no record of
    the alert; A, resumed, takes it back, gives Redis its open alert, and the node's return
    sends the resolve."""
    receiver: WebhookReceiver = webhook_receiver()
    server = RedisServer().start(tmp_path / "redis")
    try:
        # A lease of 4 s: B leaves it to A that long, time enough for A to be resumed.
        env = {
            **replica_env(server.url, "bridge-0", receiver),
            "EXESDB_REDIS_CLAIM_IDLE_MS": "4000",
        }
        replicas = []
        for node in ("bridge-0", "bridge-1"):
            process = BridgeProcess(
                **{**env, "EXESDB_NODE": node, "EXESDB_STATE_DIR": str(tmp_path / node)}
            )
            bridge_processes.append(process)
            replicas.append(process.start(tmp_path))
        holder = leader(replicas)
        other = next(r for r in replicas if r is not holder)
        wait_until(lambda: holder_named(other), 15, "B sees A hold it")
        down = NodeLifecycle(node="app-8", event="down", cluster_size=1)
        ingest(holder.url, [("lifecycle", holder.env["EXESDB_NODE"], down)])
        wait_until(lambda: notifications(receiver, "node_failure:app-8"), 15, "the firing")
        assert holder.process is not None
        os.kill(holder.process.pid, signal.SIGSTOP)
        try:
            server.restart()
            wait_until(
                lambda: (
                    "leaving it to" in other.log()
                    or metric(other.url, "exesdb_redis_work_queue_leader") == 1
                ),
                15,
                "B finds the lease gone",
            )
        finally:
            os.kill(holder.process.pid, signal.SIGCONT)
        assert metric(other.url, "exesdb_redis_work_queue_leader") == 0, "B took A's lease"
        wait_until(
            lambda: metric(holder.url, "exesdb_redis_work_queue_leader") == 1, 15, "A takes it back"
        )
        back = NodeLifecycle(node="app-8", event="reconnected", cluster_size=2)
        ingest(other.url, [("lifecycle", other.env["EXESDB_NODE"], back)])
        wait_until(
            lambda: (
                [n["status"] for n in notifications(receiver, "node_failure:app-8")]
                == ["firing", "resolved"]
            ),
            15,
            "the resolve",
        )
    finally:
        server.stop()
