"""A flood of distinct node names through signed ingest into a real ``exesdb-bridge run``: memory
stays bounded, the alerts stay few, a node down before it keeps its alert open until it is heard
again, and a node first heard afterwards is still declared down."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

from bridge.bus import SIGNATURE_HEADER, Envelope, Keyring, new_message_id
from bridge.cluster import ALERTS_PER_INTERVAL, MAX_NODES, MISSED_INTERVALS
from bridge.messages import NodeHealth, NodeLifecycle, utc_now
from tests.integration.servers.webhook import WebhookReceiver, webhook_receiver
from tests.support import TEST_SECRET, BridgeProcess, http_get, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["webhook_receiver"]

FLOOD = 20_000
BATCH = 1_000
# A storm of downs lasts until three intervals pass without one (3 s). A busy machine may pause
# that long in taking the flood in, and so make it several storms, each with its alerts of its
# own: the test bounds the alerts by the storms the bridge counts, and those by how long the
# flood took.
INTERVAL_MS = 1_000
INTERVAL = INTERVAL_MS / 1000
RSS_LIMIT = 200 * 2**20
KEYRING = Keyring.from_secrets(TEST_SECRET)
# The bridge's own health collector would raise node_health alerts on a busy test machine.
QUIET: dict[str, Any] = {
    f"EXESDB_{resource}_{status}": "100"
    for resource in ("CPU", "MEMORY", "DISK")
    for status in ("DEGRADED", "UNHEALTHY")
}


def node_health(node: str) -> bytes:
    """A NodeHealth published by ``node`` (the envelope's node), as one NDJSON line."""
    now = utc_now()
    payload = NodeHealth(node=node, status="healthy")
    return Envelope(
        new_message_id(), payload.INSTANCE, "cluster:health", payload.TAG, node, now, payload
    ).to_bytes()


def heartbeat(node: str) -> bytes:
    """A heartbeat published by ``node``, declaring the bridge's interval (as a bridge's does, so
    that its silence is timed by that, not by the 90 s given a node whose interval is not known
    yet), as one NDJSON line."""
    now = utc_now()
    payload = NodeLifecycle(
        node=node,
        event="joined",
        cluster_size=1,
        metadata={"heartbeat": True, "interval_ms": INTERVAL_MS},
    )
    return Envelope(
        new_message_id(), payload.INSTANCE, "lifecycle", payload.TAG, node, now, payload
    ).to_bytes()


def ingest(url: str, lines: list[bytes]) -> None:
    """POST ``lines`` as one signed NDJSON batch, again while the bridge answers 503.

    Only a 503 is sent again: after any other failure (a timeout included) the batch may have
    been taken, and a resend would be refused as replayed."""
    body = b"\n".join(lines)
    deadline = time.monotonic() + 60
    while True:
        request = urllib.request.Request(
            f"{url}/v1/messages",
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/x-ndjson",
                SIGNATURE_HEADER: KEYRING.sign_header(body, int(time.time())),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                assert response.status == 202
                return
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or time.monotonic() > deadline:
                raise
        time.sleep(0.05)  # 503: busy, the batch was not taken; send it again


def sample(url: str, name: str, labels: str = "") -> float:
    """One sample's value from /metrics (0 when absent)."""
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in http_get(f"{url}/metrics")[1].decode().splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def node_failures(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    """Every firing node_failure alert the receiver was sent."""
    return [
        alert
        for request in receiver.requests
        for alert in request.json()["alerts"]
        if alert["labels"]["alertname"] == "node_failure" and alert["status"] == "firing"
    ]


def statuses(receiver: WebhookReceiver, alert_id: str) -> list[str]:
    """The statuses the receiver was sent for the alert ``alert_id``, in order."""
    return [
        alert["status"]
        for request in receiver.requests
        for alert in request.json()["alerts"]
        if alert["labels"]["alert_id"] == alert_id
    ]


def grouped(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The grouped node_failure alerts among ``alerts``."""
    return [a for a in alerts if "nodes are down" in a["annotations"]["title"]]


def test_a_flood_of_node_names_keeps_memory_bounded_and_a_later_node_is_still_declared_down(
    tmp_path: Path, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """20 000 distinct node names keep RSS under 200 MB and make a few alerts per storm of downs
    plus grouped ones, not one each, storms being at least three intervals apart; a node down
    before the flood, evicted by it, keeps its node_failure open until it is heard again; a
    node first heard afterwards is tracked and, once silent, gets its node_failure."""
    receiver: WebhookReceiver = webhook_receiver()
    # Built beforehand, so that the flood comes in as fast as the bridge takes it.
    batches = [
        [heartbeat(f"flood-{n}@host") for n in range(start, start + BATCH)]
        for start in range(0, FLOOD, BATCH)
    ]
    bridge = _monitoring_bridge(tmp_path, receiver.url)
    bridge_processes.append(bridge)
    assert bridge.process is not None
    # A real node goes down before the flood: the longest silent, it is the first evicted.
    ingest(bridge.url, [heartbeat("real@host")])
    wait_until(
        lambda: "firing" in statuses(receiver, "node_failure:real@host"),
        30,
        "the node_failure webhook of the node down before the flood",
    )
    process = psutil.Process(bridge.process.pid)
    peak = process.memory_info().rss
    began = time.monotonic()
    for lines in batches:
        ingest(bridge.url, lines)
        peak = max(peak, process.memory_info().rss)
    assert sample(bridge.url, "exesdb_cluster_nodes_forgotten_total", 'reason="evicted"') >= (
        FLOOD - MAX_NODES
    )

    def flood_down() -> bool:
        nonlocal peak
        peak = max(peak, process.memory_info().rss)
        return sample(bridge.url, "exesdb_cluster_nodes", 'state="down"') == MAX_NODES - 1

    wait_until(flood_down, 60, "every tracked flood node declared down")
    # Every down of the flood was found within this span.
    found_within = time.monotonic() - began
    # The grouped alert goes out at the end of a tick that announced grouped downs, after the
    # alerts of their own: wait for it, not for the first alert.
    wait_until(lambda: grouped(node_failures(receiver)), 30, "the flood's grouped alert")

    # Every flood node was found down before this node was heard: its own down, three intervals
    # later, comes after the storm, however long the flood's announcements trail.
    ingest(bridge.url, [heartbeat("late@host")])
    wait_until(
        lambda: any(a["labels"]["node"] == "late@host" for a in node_failures(receiver)),
        30,
        "a node_failure webhook for the node heard after the flood",
    )
    alerted_within = time.monotonic() - began
    [late] = [a for a in node_failures(receiver) if a["labels"]["node"] == "late@host"]
    assert (late["labels"]["alert_id"], late["labels"]["severity"]) == (
        "node_failure:late@host",
        "critical",
    )
    # Evicted long since (a farewell would have gone out on the tick after), still not resolved.
    assert "resolved" not in statuses(receiver, "node_failure:real@host")
    # Announced after the flood's downs (behind them in the queue): so were their own alerts.
    flood_alerts = [
        a for a in node_failures(receiver) if a["labels"]["node"] not in ("late@host", "real@host")
    ]
    groups = grouped(flood_alerts)
    # A storm begins only three intervals after the last down of the one before.
    storms = sample(bridge.url, "exesdb_cluster_down_storms_total")
    assert 1 <= storms <= 1 + found_within / (MISSED_INTERVALS * INTERVAL), storms
    # Ten alerts of their own per storm, the rest in at most one grouped alert per interval.
    assert len(flood_alerts) - len(groups) <= ALERTS_PER_INTERVAL * storms, (storms, groups)
    assert len(groups) <= 1 + alerted_within / INTERVAL
    assert len(receiver.requests) < 50  # deliveries, for 20 000 nodes gone silent
    peak = max(peak, process.memory_info().rss)
    assert peak < RSS_LIMIT, f"peak RSS {peak / 2**20:.0f} MiB"
    # Heard again, tracked as new: its return is announced, which resolves its alert.
    ingest(bridge.url, [node_health("real@host")])
    wait_until(
        lambda: "resolved" in statuses(receiver, "node_failure:real@host"),
        30,
        "the node_failure of the node evicted down resolved once it is heard again",
    )


def _monitoring_bridge(tmp_path: Path, webhook_url: str) -> BridgeProcess:
    """A started bridge taking signed ingest, its cluster monitor on a short health interval,
    sending alerts to ``webhook_url``."""
    return BridgeProcess(
        EXESDB_INGEST="true",
        EXESDB_HEALTH_BROADCAST_INTERVAL=str(INTERVAL_MS),
        EXESDB_WEBHOOK_URLS=webhook_url,
        EXESDB_WEBHOOK_GROUP_WAIT_MS="100",
        **QUIET,
    ).start(tmp_path)


def test_a_grouped_node_failure_resolves_when_its_nodes_come_back(
    tmp_path: Path, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """Thirty nodes silent within one interval fire one grouped node_failure; once they all
    heartbeat again the receiver is sent that alert resolved, with no acknowledgement."""
    receiver: WebhookReceiver = webhook_receiver()
    bridge = _monitoring_bridge(tmp_path, receiver.url)
    bridge_processes.append(bridge)
    names = [f"app-{n:02d}@host" for n in range(30)]
    ingest(bridge.url, [heartbeat(name) for name in names])
    wait_until(lambda: grouped(node_failures(receiver)), 30, "the grouped node_failure")
    [group] = grouped(node_failures(receiver))
    alert_id = group["labels"]["alert_id"]

    def resolved() -> bool:
        return any(
            alert["labels"]["alert_id"] == alert_id and alert["status"] == "resolved"
            for request in receiver.requests
            for alert in request.json()["alerts"]
        )

    ingest(bridge.url, [node_health(name) for name in names])
    wait_until(resolved, 30, "the grouped node_failure resolved")
