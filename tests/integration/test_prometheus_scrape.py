"""A real Prometheus scrapes a running bridge; promtool checks the live exposition."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import BridgeProcess, http_get, require_binary, wait_until

pytestmark = pytest.mark.integration


def _bridge(tmp_path: Path, bridge_processes: list[BridgeProcess]) -> BridgeProcess:
    bridge = BridgeProcess(
        state_dir=tmp_path / "state",
        EXESDB_NODE="it-node",
        EXESDB_HEALTH_BROADCAST_INTERVAL="1000",
        EXESDB_METRICS_BROADCAST_INTERVAL="1000",
    )
    bridge_processes.append(bridge)
    return bridge.start(tmp_path)


def test_prometheus_scrapes_the_bridge(tmp_path, bridge_processes, start_prometheus):
    """Prometheus scrapes /metrics: the target is up and the CPU gauge is queryable."""
    bridge = _bridge(tmp_path, bridge_processes)
    prometheus = start_prometheus([f"127.0.0.1:{bridge.port}"])
    up = prometheus.wait_for('up{job="exesdb-bridge"} == 1')
    assert up[0]["metric"]["instance"] == f"127.0.0.1:{bridge.port}"
    cpu = prometheus.wait_for('exesdb_node_cpu_usage_percent{node="it-node"}')
    assert 0 <= float(cpu[0]["value"][1]) <= 100
    health = prometheus.wait_for('exesdb_node_health_status{node="it-node"} == 1')
    assert health[0]["metric"]["status"] in {"healthy", "degraded", "unhealthy"}
    latency = prometheus.wait_for(
        'exesdb_operation_latency_seconds{operation="bus.delivery",quantile="0.99"}'
    )
    assert float(latency[0]["value"][1]) >= 0
    # The bus instance is the pubsub label: Prometheus's own instance label is left alone.
    published = prometheus.wait_for('exesdb_bus_published_total{pubsub="ex_esdb_health"} > 0')
    assert published[0]["metric"]["instance"] == f"127.0.0.1:{bridge.port}"
    targets = prometheus.api("targets")["activeTargets"]
    assert [t["health"] for t in targets] == ["up"], targets


def test_promtool_finds_nothing_in_the_live_exposition(tmp_path, bridge_processes):
    """promtool check metrics prints nothing for a running bridge's /metrics."""
    promtool = require_binary("promtool")
    bridge = _bridge(tmp_path, bridge_processes)
    body = wait_until(
        lambda: (
            lambda answer: answer[1] if b"exesdb_node_cpu_usage_percent" in answer[1] else None
        )(http_get(bridge.url + "/metrics")),
        20,
        "the collectors' first figures on /metrics",
    )
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=30, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
