"""Bridge replicas as real processes sharing one real redis-server.

Every replica runs the full set of components (Prometheus sink, collectors, alert sink, cluster
monitor); alerts go to a real HTTP receiver. Health thresholds are disabled so that a busy test
machine raises no alerts of its own.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from bridge.bus import Envelope, Keyring, new_message_id
from bridge.messages import Message, NodeHealth, NodeLifecycle, SystemAlert, utc_now
from bridge.sinks.alerts.index import encode, encode_plan
from bridge.sinks.alerts.sources import AlertEvent
from bridge.sinks.alerts.transitions import Plan, escalation, on_event
from tests.deploy.files import RULE_FILES, rules
from tests.integration.dashboards_support import (
    cluster_names,
    queries,
    restricted,
    substitute,
    variables,
)
from tests.integration.servers.prometheus import PrometheusServer
from tests.integration.servers.redis import RedisServer
from tests.integration.servers.webhook import WebhookReceiver, webhook_receiver
from tests.integration.test_alert_crash import AUTH, QUIET, listed_alerts
from tests.support import (
    ADMIN_TOKEN,
    TEST_SECRET,
    BridgeProcess,
    free_port,
    http_get,
    post_signed,
    run_in_process,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["webhook_receiver"]

HEALTH_INTERVAL_MS = 500
CLAIM_IDLE_MS = 1_500
# The Redis transport's tries a second apart at most (5 s by default): a Redis back (started
# again, un-paused, put right) is taken within a second of it.
REDIS_MAX_BACKOFF_MS = 1_000


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """One redis-server for the test, stopped afterwards."""
    server = RedisServer().start(tmp_path / "redis")
    yield server
    server.stop()


def replica_env(url: str, node: str, receiver: WebhookReceiver | None = None) -> dict[str, str]:
    env = {
        **QUIET,
        "EXESDB_BUS": url,
        "EXESDB_NODE": node,
        "EXESDB_INGEST": "true",
        "EXESDB_HEALTH_BROADCAST_INTERVAL": str(HEALTH_INTERVAL_MS),
        "EXESDB_METRICS_BROADCAST_INTERVAL": "60000",
        "EXESDB_REDIS_CLAIM_IDLE_MS": str(CLAIM_IDLE_MS),
        "EXESDB_REDIS_MAX_BACKOFF_MS": str(REDIS_MAX_BACKOFF_MS),
        "EXESDB_WEBHOOK_GROUP_WAIT_MS": "100",
        "EXESDB_WEBHOOK_BACKOFF_MS": "200",
        "EXESDB_WEBHOOK_MAX_BACKOFF_MS": "1000",
    }
    if receiver is not None:
        env["EXESDB_WEBHOOK_URLS"] = receiver.url
    return env


def new_replica(
    tmp_path: Path,
    started: list[BridgeProcess],
    url: str,
    node: str,
    receiver: WebhookReceiver | None = None,
    **extra: str,
) -> BridgeProcess:
    """Replica ``node`` on the bus at ``url``, its state directory its own, not started yet (put
    in ``started``, so that it is stopped after the test)."""
    env = replica_env(url, node, receiver)
    env["EXESDB_STATE_DIR"] = str(tmp_path / f"state-{node}")
    env.update(extra)
    process = BridgeProcess(**env)  # type: ignore[arg-type]
    started.append(process)
    return process


def start_replica(
    tmp_path: Path,
    started: list[BridgeProcess],
    url: str,
    node: str,
    receiver: WebhookReceiver | None = None,
    **extra: str,
) -> BridgeProcess:
    return new_replica(tmp_path, started, url, node, receiver, **extra).start(tmp_path)


def start_together(tmp_path: Path, processes: list[BridgeProcess]) -> list[BridgeProcess]:
    """Start ``processes`` at once, as a deployment starts its replicas, and wait until each
    answers: one start-up's time, not one each, where the cores are free.

    Each has the start-up deadline of all of them one after another (a start-up's 20 s each): on
    cores taken by others they share them, and each may take as long as all of them would."""
    deadline = 20.0 * len(processes)
    with ThreadPoolExecutor(len(processes)) as pool:
        return list(pool.map(lambda process: process.start(tmp_path, deadline), processes))


def start_replicas(
    tmp_path: Path,
    started: list[BridgeProcess],
    url: str,
    count: int,
    receiver: WebhookReceiver | None = None,
    **extra: str,
) -> list[BridgeProcess]:
    """Replicas bridge-0 … bridge-<count - 1> on the bus at ``url``, started together
    (``extra``: settings of their own)."""
    names = [f"bridge-{n}" for n in range(count)]
    return start_together(
        tmp_path, [new_replica(tmp_path, started, url, name, receiver, **extra) for name in names]
    )


def restart(process: BridgeProcess, started: list[BridgeProcess], tmp_path: Path) -> BridgeProcess:
    """Start a process again with the same node name and state directory (a new port)."""
    env = {
        key: value
        for key, value in process.env.items()
        if key.startswith("EXESDB_") and key != "EXESDB_HTTP_ADDR"
    }
    again = BridgeProcess(**env)  # type: ignore[arg-type]
    started.append(again)
    return again.start(tmp_path)


def ingest(bridge_url: str, messages: list[tuple[str, str, Message]]) -> None:
    """POST (topic, publishing node, message) envelopes to a bridge's signed ingest."""
    lines = []
    for topic, node, payload in messages:
        now = utc_now()
        envelope = Envelope(
            new_message_id(), payload.INSTANCE, topic, payload.TAG, node, now, payload
        )
        lines.append(envelope.to_bytes())
    post_signed(bridge_url, b"\n".join(lines))


def alert(alert_id: str) -> tuple[str, str, Message]:
    return (
        "disk_full",
        "app-1",
        SystemAlert(
            alert_id=alert_id,
            severity="critical",
            category="system",
            title=f"alert {alert_id}",
            description="replica test",
            source="test",
            node="app-1",
        ),
    )


def metric(bridge_url: str, name: str, **labels: str) -> float | None:
    """One sample's value from a bridge's /metrics (None when absent)."""
    wanted = {f'{k}="{v}"' for k, v in labels.items()}
    for line in http_get(f"{bridge_url}/metrics")[1].decode().splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match and match.group(1) == name:
            have = set(re.findall(r'\w+="[^"]*"', match.group(2) or ""))
            if wanted <= have:
                return float(match.group(3))
    return None


def gauge(process: BridgeProcess, name: str, value: float, **labels: str) -> Callable[[], bool]:
    """A condition: the sample ``name{labels}`` on ``process``'s /metrics equals ``value``."""

    def check() -> bool:
        return metric(process.url, name, **labels) == value

    return check


def health_runs(process: BridgeProcess) -> float:
    """How many times ``process``'s health collector has run (once per health interval)."""
    return metric(process.url, "exesdb_collector_runs_total", collector="health", result="ok") or 0


def ran_health(process: BridgeProcess, times: float) -> bool:
    """Whether ``process``'s health collector has run ``times`` times by now."""
    return health_runs(process) >= times


def health_ran(replicas: list[BridgeProcess], more: int) -> None:
    """Wait until each of ``replicas`` has run its health collector ``more`` times again."""
    runs = {r.url: health_runs(r) for r in replicas}
    for replica in replicas:
        wait_until(
            partial(ran_health, replica, runs[replica.url] + more),
            15,
            f"{more} more health intervals on {replica.url}",
        )


def intervals_known(replicas: list[BridgeProcess]) -> None:
    """Wait until each replica has run its health collector twice more, so that each has heard
    the others' NodeHealth again: their intervals are known to it (a node heard once whose
    interval was not declared to a replica, started after it, may stay silent 90 s)."""
    health_ran(replicas, 2)


def is_ready(process: BridgeProcess) -> bool:
    return http_get(process.url + "/readyz")[0] == 200


def leader(replicas: list[BridgeProcess]) -> BridgeProcess:
    """The replica holding the work-queue lease."""

    def find() -> BridgeProcess | None:
        holders = [r for r in replicas if metric(r.url, "exesdb_redis_work_queue_leader") == 1]
        return holders[0] if len(holders) == 1 else None

    holder: BridgeProcess = wait_until(find, 15, "exactly one work-queue lease holder")
    return holder


def notifications(receiver: WebhookReceiver, alert_id: str) -> list[dict[str, Any]]:
    """Every alert object the receiver accepted for ``alert_id``, in arrival order."""
    return [
        item
        for request in receiver.accepted()
        for item in request.json()["alerts"]
        if item["labels"].get("alert_id") == alert_id
    ]


def delivered_counts(receiver: WebhookReceiver, prefix: str) -> Counter[str]:
    return Counter(
        item["labels"]["alert_id"]
        for request in receiver.accepted()
        for item in request.json()["alerts"]
        if item["labels"]["alert_id"].startswith(prefix) and item["status"] == "firing"
    )


def settled(replicas: list[BridgeProcess], redis: RedisServer) -> bool:
    """Every outbox empty and nothing pending in the work queue."""
    if any(metric(r.url, "exesdb_webhook_outbox_depth") != 0 for r in replicas):
        return False
    with redis.client() as client:
        for key in client.scan_iter("exesdb:bus:ex_esdb_*"):
            if client.type(key) == b"stream":
                groups = client.xinfo_groups(key)
                if any(int(group["pending"]) for group in groups):
                    return False
    return True


@pytest.mark.parametrize("count", [2, 3])
def test_every_replica_shows_a_message_published_on_any_of_them(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess], count: int
) -> None:
    """A NodeHealth ingested at one replica appears in every replica's /metrics, and every
    replica's cluster gauges count all the bridges."""
    replicas = start_replicas(tmp_path, bridge_processes, redis.url, count)
    for n, publisher in enumerate(replicas):
        ingest(
            publisher.url,
            [
                (
                    "node:health",
                    f"bridge-{n}",  # a bridge reporting on an application node
                    NodeHealth(node=f"app-{n}", status="healthy", memory_usage=10.0 + n),
                )
            ],
        )
    for replica in replicas:
        for n in range(count):
            wait_until(
                gauge(replica, "exesdb_node_memory_usage_percent", 10.0 + n, node=f"app-{n}"),
                30,  # a deadline, not a wait: three replicas on a loaded machine
                f"app-{n}'s memory gauge on {replica.url}",
            )
        wait_until(
            gauge(replica, "exesdb_cluster_nodes", count, state="total"),
            30,
            f"cluster gauges on {replica.url}",
        )
        assert metric(replica.url, "exesdb_cluster_quorum_available") == 1


def test_two_scraped_replicas_give_the_rules_and_dashboards_the_answers_of_one(
    tmp_path: Path,
    redis: RedisServer,
    bridge_processes: list[BridgeProcess],
    start_prometheus: Callable[..., PrometheusServer],
) -> None:
    """Two replicas on Redis, both scraped by a real Prometheus with the shipped rules (as
    docs/redis.md advises): the nodes per health status, the node health timeline and the node
    count are what each replica alone gives, and a degraded node is one pending alert, not one
    per replica."""
    replicas = start_replicas(tmp_path, bridge_processes, redis.url, 2)
    ingest(
        replicas[0].url,
        [("node:health", "bridge-0", NodeHealth(node="app-0", status="degraded"))],
    )
    prometheus = start_prometheus(
        [f"127.0.0.1:{replica.port}" for replica in replicas], rule_files=RULE_FILES
    )
    recorded = {rule.get("record") or rule["alert"]: rule["expr"] for rule in rules()}
    panels = {(uid, title): substitute(expr, variables()) for uid, title, expr in queries()}
    expected = {
        recorded["exesdb:node_health:count"]: {
            "healthy": 2.0,
            "degraded": 1.0,
            "unhealthy": 0.0,
            "unknown": 0.0,
        },
        panels["exesdb-cluster-overview", "Node health"]: {
            "bridge-0": 0.0,
            "bridge-1": 0.0,
            "app-0": 1.0,
        },
        panels["exesdb-cluster-overview", "Nodes"]: {"total": 2.0},
    }

    def answer(expr: str) -> dict[str, float]:
        """The samples of ``expr``, keyed by their one label (status, node or state)."""
        found = {}
        for sample in prometheus.query(expr):
            labels = set(sample["metric"]) - {"__name__"}
            assert len(labels) == 1, sample["metric"]  # no target label: instance, job
            found[sample["metric"][labels.pop()]] = float(sample["value"][1])
        return found

    def agreed() -> bool:
        # Raised, not returned: the last disagreement is what a timeout reports.
        targets = [f'instance="127.0.0.1:{replica.port}"' for replica in replicas]
        for expr, want in expected.items():
            assert answer(expr) == want, (expr, answer(expr))
            for target in targets:
                alone = restricted(expr, cluster_names(), target)
                assert answer(alone) == want, (alone, answer(alone))
        return True

    wait_until(agreed, 30, "both replicas scraped, with the answers of one")  # a deadline
    degraded = prometheus.wait_for('ALERTS{alertname="ExesdbNodeDegraded"}')
    assert [sample["metric"]["node"] for sample in degraded] == ["app-0"]
    assert "instance" not in degraded[0]["metric"]


def test_a_hundred_alerts_across_three_replicas_are_delivered_once_each(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """100 alerts ingested round-robin at three replicas reach the receiver exactly once each."""
    receiver: WebhookReceiver = webhook_receiver()
    replicas = start_replicas(tmp_path, bridge_processes, redis.url, 3, receiver)
    leader(replicas)
    ids = [f"once-{n:03d}" for n in range(100)]
    for n in range(0, 100, 10):
        ingest(replicas[(n // 10) % 3].url, [alert(i) for i in ids[n : n + 10]])
    wait_until(lambda: set(delivered_counts(receiver, "once-")) == set(ids), 30, "100 alerts")
    wait_until(lambda: settled(replicas, redis), 15, "outboxes empty, nothing pending")
    counts = delivered_counts(receiver, "once-")
    assert [k for k, v in counts.items() if v > 1] == []
    for replica in replicas:  # and every replica counted all of them
        wait_until(
            gauge(replica, "exesdb_alerts_total", 100, severity="critical", category="system"),
            10,
            f"alert counter on {replica.url}",
        )


def test_alerts_pending_on_a_sigkilled_replica_are_delivered_by_another(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """The lease holder is killed with SIGKILL while it holds unacknowledged alerts: a live
    replica takes the lease, claims them and delivers them; nothing is lost."""
    receiver: WebhookReceiver = webhook_receiver()
    replicas = start_replicas(tmp_path, bridge_processes, redis.url, 2, receiver)
    holder = leader(replicas)
    survivor = next(r for r in replicas if r is not holder)
    ids = [f"kill-{n:04d}" for n in range(1500)]
    ingest(survivor.url, [alert(i) for i in ids])
    with redis.client() as client:
        # Polled often: the holder works through the alerts in a short window.
        wait_until(
            lambda: client.xpending("exesdb:bus:ex_esdb_alerts", "exesdb-bridge")["pending"],
            15,
            "the lease holder holds unacknowledged alerts",
            every=0.005,
        )
    holder.kill()  # while it works through 1500 alerts, each written to its outbox first
    wait_until(
        lambda: metric(survivor.url, "exesdb_redis_work_queue_leader") == 1,
        15,
        "the survivor takes the lease",
    )
    wait_until(
        lambda: (metric(survivor.url, "exesdb_redis_claimed_total") or 0) > 0,
        15,
        "the survivor claims the dead replica's pending alerts",
    )
    # What the dead replica had acknowledged sits in its durable outbox: its restart (same
    # state directory) delivers those.
    restart(holder, bridge_processes, tmp_path)
    wait_until(lambda: set(delivered_counts(receiver, "kill-")) == set(ids), 60, "all 1500")


def test_a_killed_node_raises_one_node_failure_and_its_restart_resolves_it(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """Three replicas; one is SIGKILLed: one critical node_failure alert for it, labelled with
    its node; started again, the alert is resolved, and the others show its restart as a new
    exesdb_node_start_time_seconds."""
    receiver: WebhookReceiver = webhook_receiver()
    replicas = start_replicas(tmp_path, bridge_processes, redis.url, 3, receiver)
    holder = leader(replicas)
    victim = next(r for r in replicas if r is not holder)
    name = victim.env["EXESDB_NODE"]
    for replica in replicas:
        wait_until(
            gauge(replica, "exesdb_cluster_nodes", 3, state="total"),
            15,
            "three nodes known",
        )
    intervals_known(replicas)
    killed_at = time.time()
    victim.kill()
    alert_id = f"node_failure:{name}"
    wait_until(lambda: notifications(receiver, alert_id), 15, "the node_failure alert")
    for replica in replicas:
        if replica is not victim:
            wait_until(
                gauge(replica, "exesdb_cluster_nodes", 1, state="down"),
                10,
                "the down node counted",
            )
    # Both survivors saw the silence; a second announcement would come within a tick or two:
    # each survivor runs three more health intervals (its health collector's runs tell them).
    health_ran([r for r in replicas if r is not victim], 3)
    for replica in replicas:
        if replica is not victim:
            downs = metric(
                replica.url, "exesdb_node_lifecycle_events_total", node=name, event="down"
            )
            assert downs == 1, f"{replica.url} saw {downs} down announcement(s)"
    firing = notifications(receiver, alert_id)
    assert len(firing) == 1, firing
    assert firing[0]["status"] == "firing"
    assert firing[0]["labels"]["severity"] == "critical"
    assert firing[0]["labels"]["node"] == name
    restart(victim, bridge_processes, tmp_path)
    wait_until(
        lambda: [n["status"] for n in notifications(receiver, alert_id)] == ["firing", "resolved"],
        15,
        "the resolve",
    )
    for replica in replicas:
        if replica is not victim:
            wait_until(
                gauge(replica, "exesdb_cluster_nodes", 0, state="down"),
                10,
                "no node down",
            )
            started = metric(replica.url, "exesdb_node_start_time_seconds", node=name)
            assert started is not None, replica.url
            assert started >= killed_at, (replica.url, started)


def test_a_redis_restart_mid_stream_loses_no_alert(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """Alerts ingested before, during and after a Redis restart all reach the receiver."""
    receiver: WebhookReceiver = webhook_receiver()
    replicas = start_replicas(tmp_path, bridge_processes, redis.url, 2, receiver)
    leader(replicas)
    ids = [f"restart-{n:03d}" for n in range(90)]
    ingest(replicas[0].url, [alert(i) for i in ids[:30]])
    redis.stop()
    ingest(replicas[1].url, [alert(i) for i in ids[30:60]])  # buffered: Redis is down
    wait_until(lambda: http_get(replicas[1].url + "/readyz")[0] == 503, 10, "not ready")
    redis.start()
    ingest(replicas[0].url, [alert(i) for i in ids[60:]])
    wait_until(lambda: set(delivered_counts(receiver, "restart-")) == set(ids), 30, "all 90")
    for replica in replicas:
        wait_until(partial(is_ready, replica), 15, "ready again")


def test_entries_forged_straight_into_redis_are_refused_and_counted_by_every_replica(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """A SystemAlert signed with another key and one whose body was changed after signing,
    XADDed by hand, are counted as invalid_signature on every replica and never delivered."""
    receiver: WebhookReceiver = webhook_receiver()
    replicas = start_replicas(tmp_path, bridge_processes, redis.url, 2, receiver)
    leader(replicas)
    _, _, forged = alert("forged-1")
    now = utc_now()
    body = Envelope(
        new_message_id(), forged.INSTANCE, "disk_full", forged.TAG, "intruder", now, forged
    ).to_bytes()
    wrong_key = Keyring.from_secrets("an-intruder-secret-of-at-least-32-chars").sign(body)
    tampered = body.replace(b"forged-1", b"forged-2")
    with redis.client() as client:
        client.xadd("exesdb:bus:ex_esdb_alerts", {b"e": body, b"s": wrong_key.encode()})
        client.xadd(
            "exesdb:bus:ex_esdb_alerts",
            {b"e": tampered, b"s": Keyring.from_secrets(TEST_SECRET).sign(body).encode()},
        )
    ingest(replicas[0].url, [alert("genuine")])  # a good one after the forged ones
    wait_until(lambda: delivered_counts(receiver, "genuine"), 15, "the genuine alert")
    for replica in replicas:
        wait_until(
            gauge(replica, "exesdb_bus_rejected_total", 2, reason="invalid_signature"),
            10,
            f"two refusals counted on {replica.url}",
        )
    assert delivered_counts(receiver, "forged") == Counter()
    wait_until(lambda: settled(replicas, redis), 10, "the forged entries acknowledged")


def test_without_redis_a_bridge_starts_not_ready_and_becomes_ready_when_redis_comes(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """/readyz answers 503 naming the unreachable Redis (without credentials), then 200."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    bridge = start_replica(tmp_path, bridge_processes, url, "lonely")
    status, body = http_get(bridge.url + "/readyz")
    assert status == 503
    reason = json.loads(body)["checks"]["bus"]["reason"]
    assert "unreachable" in reason
    assert f"redis://127.0.0.1:{port}/…" in reason
    server = RedisServer(port=port).start(tmp_path / "late-redis")
    try:
        wait_until(lambda: http_get(bridge.url + "/readyz")[0] == 200, 15, "ready")
    finally:
        bridge.stop()
        server.stop()


def fired_on_the_holder(
    tmp_path: Path,
    redis: RedisServer,
    bridge_processes: list[BridgeProcess],
    receiver: WebhookReceiver,
    node: str,
) -> tuple[BridgeProcess, BridgeProcess]:
    """Two replicas, ``node`` ingested down on the lease holder A and its node_failure sent to
    ``receiver``: A and the other replica, B."""
    replicas = start_replicas(tmp_path, bridge_processes, redis.url, 2, receiver)
    holder = leader(replicas)
    survivor = next(r for r in replicas if r is not holder)
    down = NodeLifecycle(node=node, event="down", cluster_size=1)
    ingest(holder.url, [("lifecycle", holder.env["EXESDB_NODE"], down)])
    wait_until(lambda: notifications(receiver, f"node_failure:{node}"), 15, "the node_failure")
    return holder, survivor


def resolved_by_the_next_holder(
    survivor: BridgeProcess, receiver: WebhookReceiver, node: str
) -> None:
    """Once ``survivor`` holds the lease, ``node``'s return ingested there resolves its
    node_failure: the receiver has the firing, then the resolve."""
    wait_until(
        lambda: metric(survivor.url, "exesdb_redis_work_queue_leader") == 1, 15, "B holds it"
    )
    back = NodeLifecycle(node=node, event="reconnected", cluster_size=2)
    ingest(survivor.url, [("lifecycle", survivor.env["EXESDB_NODE"], back)])
    wait_until(
        lambda: (
            [n["status"] for n in notifications(receiver, f"node_failure:{node}")]
            == ["firing", "resolved"]
        ),
        15,
        "B sends the resolve",
    )


def test_after_a_graceful_stop_the_next_holder_resolves_the_open_alert(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """A node_failure fires on the lease holder A; A stops gracefully (SIGTERM) and gives the
    lease up; B takes up the open alerts kept in Redis, and the node's return, ingested on B,
    resolves it from B."""
    receiver: WebhookReceiver = webhook_receiver()
    holder, survivor = fired_on_the_holder(tmp_path, redis, bridge_processes, receiver, "app-9")
    assert holder.stop() == 0
    resolved_by_the_next_holder(survivor, receiver, "app-9")


def test_alerts_answered_202_while_redis_is_down_are_delivered_once_after_a_sigkill(
    tmp_path: Path, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """Redis is down: 200 alerts ingested at a bridge are answered 202 (in its spool on disk);
    the bridge is SIGKILLed; Redis and the bridge start again: each alert reaches the receiver
    exactly once."""
    receiver: WebhookReceiver = webhook_receiver()
    server = RedisServer()  # its port, not started yet
    bridge = start_replica(tmp_path, bridge_processes, server.url, "bridge-0", receiver)
    ids = [f"down-{n:03d}" for n in range(200)]
    for first in range(0, 200, 50):
        ingest(bridge.url, [alert(i) for i in ids[first : first + 50]])  # each answered 202
    assert metric(bridge.url, "exesdb_redis_spooled_total") == 200
    bridge.kill()
    server.start(tmp_path / "redis")
    try:
        again = restart(bridge, bridge_processes, tmp_path)
        wait_until(lambda: set(delivered_counts(receiver, "down-")) == set(ids), 60, "all 200")
        wait_until(lambda: metric(again.url, "exesdb_redis_spool_bytes") == 0, 15, "spool sent")
        wait_until(lambda: settled([again], server), 30, "outbox empty, nothing pending")
        counts = delivered_counts(receiver, "down-")
        assert [k for k, v in counts.items() if v != 1] == []
    finally:
        server.stop()


def acknowledge(bridge_url: str, alert_id: str) -> tuple[int, dict[str, Any]]:
    """POST ops' acknowledgement of ``alert_id`` to a bridge's admin API; (status, JSON body)."""
    request = urllib.request.Request(
        f"{bridge_url}/v1/alerts/{alert_id}/ack",
        data=json.dumps({"ack_by": "ops"}).encode(),
        method="POST",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_an_ack_answered_200_while_redis_is_down_reaches_the_holder_after_a_sigkill(
    tmp_path: Path, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """Redis goes down after an alert that needs an acknowledgement fired: the bridge, its
    work-queue lease lapsed, answers an ack 200 only once its AlertAck is in the spool on disk;
    it is SIGKILLed; Redis and the bridge start again: the AlertAck reaches the lease holder,
    which acknowledges the alert."""
    receiver: WebhookReceiver = webhook_receiver()
    server = RedisServer().start(tmp_path / "redis")
    try:
        bridge = start_replica(tmp_path, bridge_processes, server.url, "bridge-0", receiver)
        leader([bridge])
        needs_ack = SystemAlert.model_validate(
            {**alert("acked-1")[2].model_dump(), "metadata": {"requires_ack": True}}
        )
        ingest(bridge.url, [("disk_full", "app-1", needs_ack)])
        wait_until(lambda: notifications(receiver, "acked-1"), 15, "the alert notified")
        server.stop()
        wait_until(gauge(bridge, "exesdb_redis_work_queue_leader", 0), 15, "the lease lapsed")
        spooled = metric(bridge.url, "exesdb_redis_spooled_total") or 0  # the ingested alert
        status, body = acknowledge(bridge.url, "acked-1")
        assert (status, body["alert"]["state"]) == (200, "acknowledged"), body
        assert metric(bridge.url, "exesdb_redis_spooled_total") == spooled + 1  # the AlertAck
        bridge.kill()
        server.start()
        again = restart(bridge, bridge_processes, tmp_path)
        wait_until(
            lambda: [a["state"] for a in listed_alerts(again.url)] == ["acknowledged"],
            30,
            "the holder acknowledged the alert",
        )
    finally:
        server.stop()


def test_a_sigkilled_holders_open_alert_is_resolved_by_the_next_holder(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """A node_failure fires on the lease holder A; A is SIGKILLed (it says nothing); B takes
    the lease and the open alerts kept in Redis; the node's return, ingested on B, resolves it:
    the receiver gets the firing and then the resolved notification, once each."""
    receiver: WebhookReceiver = webhook_receiver()
    holder, survivor = fired_on_the_holder(tmp_path, redis, bridge_processes, receiver, "app-7")
    holder.kill()
    resolved_by_the_next_holder(survivor, receiver, "app-7")
    wait_until(lambda: settled([survivor], redis), 15, "outbox empty, nothing pending")
    statuses = [n["status"] for n in notifications(receiver, "node_failure:app-7")]
    assert statuses == ["firing", "resolved"]


def test_a_down_taken_again_after_the_next_holder_resolved_it_fires_nothing(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """A node_failure fires on the lease holder A; A is SIGKILLed; B resolves it on the node's
    return, then takes the node's down again (sent before that return, as a redelivery of A's
    entry brings it): the alert stays resolved, the receiver hears nothing more, and B counts
    the down stale."""
    receiver: WebhookReceiver = webhook_receiver()
    replicas = start_replicas(tmp_path, bridge_processes, redis.url, 2, receiver)
    holder = leader(replicas)
    survivor = next(r for r in replicas if r is not holder)
    down = NodeLifecycle(node="app-4", event="down", cluster_size=1)
    ingest(holder.url, [("lifecycle", holder.env["EXESDB_NODE"], down)])
    wait_until(lambda: notifications(receiver, "node_failure:app-4"), 15, "the node_failure")
    holder.kill()
    resolved_by_the_next_holder(survivor, receiver, "app-4")
    ingest(survivor.url, [("lifecycle", holder.env["EXESDB_NODE"], down)])
    wait_until(
        lambda: metric(survivor.url, "exesdb_alerts_stale_events_total") == 1,
        15,
        "B counts the old down stale",
    )
    wait_until(lambda: settled([survivor], redis), 15, "outbox empty, nothing pending")
    statuses = [n["status"] for n in notifications(receiver, "node_failure:app-4")]
    assert statuses == ["firing", "resolved"]


def test_only_the_lease_holder_shows_the_open_alerts(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """A node_failure is open on the lease holder A: A shows it in exesdb_alerts_active, B (which
    never held the lease) 0; the lease taken from A while it runs, A shows 0 although its outbox
    still holds the alert; whichever replica takes the lease next shows it and the other 0, so
    the sum over the replicas is the one open alert."""
    receiver: WebhookReceiver = webhook_receiver()
    holder, other = fired_on_the_holder(tmp_path, redis, bridge_processes, receiver, "app-6")
    replicas = [holder, other]

    def shown(process: BridgeProcess) -> float | None:
        return metric(process.url, "exesdb_alerts_active", severity="critical")

    wait_until(lambda: shown(holder) == 1, 15, "A shows the open alert")
    assert shown(other) == 0
    with redis.client() as client:  # another consumer's for a minute: nobody takes it meanwhile
        client.set("exesdb:bus:leader", "elsewhere", px=60_000)
    wait_until(gauge(holder, "exesdb_redis_work_queue_leader", 0), 15, "A loses the lease")
    wait_until(lambda: shown(holder) == 0, 5, "A no longer shows its outbox's open alert")
    assert shown(other) == 0
    with redis.client() as client:
        client.delete("exesdb:bus:leader")
    now = leader(replicas)
    wait_until(lambda: shown(now) == 1, 15, "the next holder shows the open alert")
    assert sum(shown(r) or 0 for r in replicas) == 1


def test_a_silent_nodes_alert_open_on_a_sigkilled_holder_resolves_when_the_node_returns(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """Three replicas; one (not the holder) is SIGKILLed and the cluster monitor declares it
    down: its node_failure fires; the holder is SIGKILLed too; the node starts again and
    heartbeats: the remaining replica, now holding the lease, sends the resolve."""
    receiver: WebhookReceiver = webhook_receiver()
    replicas = start_replicas(tmp_path, bridge_processes, redis.url, 3, receiver)
    holder = leader(replicas)
    victim, survivor = [r for r in replicas if r is not holder]
    for replica in replicas:
        wait_until(gauge(replica, "exesdb_cluster_nodes", 3, state="total"), 15, "three nodes")
    intervals_known(replicas)
    victim.kill()
    alert_id = f"node_failure:{victim.env['EXESDB_NODE']}"
    wait_until(lambda: notifications(receiver, alert_id), 15, "the node_failure alert")
    holder.kill()
    wait_until(lambda: metric(survivor.url, "exesdb_redis_work_queue_leader") == 1, 15, "the lease")
    restart(victim, bridge_processes, tmp_path)
    wait_until(
        lambda: [n["status"] for n in notifications(receiver, alert_id)] == ["firing", "resolved"],
        20,
        "the resolve from the new holder",
    )


def test_a_crashed_holders_escalation_is_notified_and_counted_by_the_next_holder(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """A holder SIGKILLed between Redis and its outbox as it escalated an alert, never started
    again, left its note in Redis: the next holder takes the note over with the lease, sends
    the escalated notification once and publishes the AlertEscalation the crash cut off (counted
    in ``exesdb_alert_escalations_total``)."""
    receiver: WebhookReceiver = webhook_receiver()
    now = time.time() - 120
    firing = on_event(None, alert_event("node_failure:app-5"), now - 60).record
    assert firing is not None
    step = escalation(firing, now, 30.0)
    assert step.record is not None
    assert step.record.level == 2
    plan = Plan(new_message_id(), now, (step,), 0)
    with redis.client() as client:  # what the killed holder "gone-1" left
        client.hset("exesdb:state:alerts", firing.alert_id, encode(step.record))
        client.set("exesdb:state:alerts:kept", "1")
        client.hset("exesdb:state:alerts:notes:gone-1", plan.id, encode_plan(plan))
    replicas = start_replicas(tmp_path, bridge_processes, redis.url, 2, receiver)
    holder = leader(replicas)
    wait_until(lambda: notifications(receiver, firing.alert_id), 15, "the escalated notification")
    # A replica reads the streams from where they were when it started: the holder published
    # the escalation as it took the lease, perhaps before the other began to read.
    wait_until(
        gauge(holder, "exesdb_alert_escalations_total", 1, level="level2"),
        15,
        "the escalation counted",
    )
    wait_until(lambda: settled([holder], redis), 15, "outbox empty")
    [sent] = notifications(receiver, firing.alert_id)
    assert (sent["status"], sent["labels"]["escalation_level"]) == ("firing", "level2")
    with redis.client() as client:
        assert client.keys("exesdb:state:alerts:notes:*") == []


def alert_event(alert_id: str) -> AlertEvent:
    """A firing node_failure event that needs an acknowledgement."""
    return AlertEvent(
        alert_id=alert_id,
        alertname="node_failure",
        status="firing",
        severity="critical",
        category="system",
        node="app-5",
        title="node app-5 is down",
        description="silent",
        requires_ack=True,
        at=utc_now(),
    )


def test_alerts_list_and_ack_on_a_replica_without_the_lease_say_to_ask_the_holder(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess]
) -> None:
    """`exesdb-bridge alerts list`, and `alerts ack` of an alert it does not know, pointed at a
    replica that does not hold the work-queue lease say on stderr that its alerts may be missing
    and how to find the holder; at the holder they say nothing of the kind."""
    replicas = start_replicas(tmp_path, bridge_processes, redis.url, 2)
    holder = leader(replicas)
    other = next(r for r in replicas if r is not holder)
    env = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN}
    asked = {
        process: run_in_process("alerts", "list", "--url", process.url, env=env)
        for process in (holder, other)
    }
    assert [asked[p].returncode for p in (holder, other)] == [0, 0]
    assert "does not hold the work-queue lease" not in asked[holder].stderr
    assert f"the replica at {other.url} does not hold the work-queue lease" in asked[other].stderr
    # An acknowledgement of an alert the replica never held: 404 at either, the hint at the other.
    acked = {
        process: run_in_process(
            "alerts", "ack", "gone-1", "--by", "ops", "--url", process.url, env=env
        )
        for process in (holder, other)
    }
    assert [acked[p].returncode for p in (holder, other)] == [1, 1]
    assert all("answered 404: no alert 'gone-1'" in acked[p].stderr for p in (holder, other))
    assert "does not hold the work-queue lease" not in acked[holder].stderr
    assert f"the replica at {other.url} does not hold the work-queue lease" in acked[other].stderr
