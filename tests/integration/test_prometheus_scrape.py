"""A real Prometheus scrapes a running bridge; promtool checks the live exposition."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.bus import Envelope, new_message_id
from bridge.messages import DebugTrace, FeatureToggle, utc_now
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import BridgeProcess, http_get, post_signed, require_binary, wait_until

__all__ = ["redis_server"]  # the fixture, imported for the tests below

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


def _value(bridge: BridgeProcess, sample: str) -> float | None:
    """The value of the sample line that starts with ``sample`` on /metrics (None when absent)."""
    status, body = http_get(bridge.url + "/metrics", timeout=20)
    assert status == 200
    found = re.search(rf"^{re.escape(sample)} (\S+)$", body.decode(), re.MULTILINE)
    return float(found[1]) if found else None


@pytest.fixture
def bus_env(
    request: pytest.FixtureRequest, redis_server: Callable[[], RedisServer]
) -> dict[str, str]:
    """The bridge's bus settings: the in-process bus, or a redis-server of its own, stopped
    after the bridge (redis_server, set up before bridge_processes, is torn down after it)."""
    if request.param == "memory":
        return {}
    return {"EXESDB_BUS": redis_server().url}


@pytest.mark.parametrize(
    ("flooder", "bus_env"),
    [("flood-node", "memory"), ("it-node", "memory"), ("it-node", "redis")],
    indirect=["bus_env"],
)
def test_a_flood_past_the_series_cap_leaves_the_bridges_own_series_updating(
    tmp_path, bus_env, bridge_processes, flooder
):
    """A signed sender's flood of new label values past EXESDB_MAX_SERIES is refused and
    counted, while the bridge's own series still update and new ones of its own still appear:
    also when the sender names the bridge's own node (the room kept for the bridge's own
    series is for what the bridge itself publishes), on Redis too (where its own messages come
    back from Redis like everyone's)."""
    bridge = BridgeProcess(
        state_dir=tmp_path / "state",
        **bus_env,
        EXESDB_NODE="it-node",
        EXESDB_INGEST="true",
        EXESDB_MAX_SERIES="2000",
        EXESDB_HEALTH_BROADCAST_INTERVAL="1000",
        EXESDB_METRICS_BROADCAST_INTERVAL="1000",
        # An unhealthy resource fails the host check: these pass whatever the host reads.
        EXESDB_CPU_UNHEALTHY="100",
        EXESDB_MEMORY_UNHEALTHY="100",
        EXESDB_DISK_UNHEALTHY="100",
    ).start(tmp_path)
    bridge_processes.append(bridge)
    checks = 'exesdb_health_checks_total{node="it-node",check="host_resources",result="pass"}'
    before = wait_until(lambda: _value(bridge, checks), 20, "the health collector's first check")
    # The diagnostics instance carries nothing of the bridge's before the flood: its delivery
    # series (the throughput collector's) are made only after the cap is reached.
    operation = f"bus.{DebugTrace.INSTANCE}"
    assert f'operation="{operation}"'.encode() not in http_get(bridge.url + "/metrics")[1]
    for start in range(0, 3_000, 1_000):
        traces = [
            DebugTrace(component=f"junk-{n:05d}", operation="op", node=flooder)
            for n in range(start, start + 1_000)
        ]
        post_signed(
            bridge.url,
            b"\n".join(
                Envelope(
                    new_message_id(), t.INSTANCE, "traces", t.TAG, flooder, utc_now(), t
                ).to_bytes()
                for t in traces
            ),
        )
    refused = 'exesdb_prometheus_series_refused_total{metric="exesdb_debug_traces"}'
    wait_until(lambda: (_value(bridge, refused) or 0) > 0, 20, "the flood's refusals counted")
    delivered = (
        f'exesdb_operations_total{{node="it-node",operation="{operation}",result="success"}}'
    )
    assert wait_until(lambda: _value(bridge, delivered), 20, "the bridge's own new series")
    wait_until(
        lambda: (_value(bridge, checks) or 0) > before + 1, 20, "the health checks still counted"
    )
    assert (_value(bridge, "exesdb_prometheus_series") or 0) <= 2_000


def test_a_live_node_keeps_its_newest_toggles_past_the_ttl_and_counts_those_let_go(
    tmp_path, bridge_processes
):
    """Ten feature names past the 256 a live node keeps are let go and counted on /metrics, and
    expire with EXESDB_SERIES_TTL_MS, while the node's newest 256 stay past it (its NodeHealth
    keeping them)."""
    bridge = BridgeProcess(
        state_dir=tmp_path / "state",
        EXESDB_NODE="it-node",
        EXESDB_INGEST="true",
        EXESDB_SERIES_TTL_MS="3000",
        EXESDB_HEALTH_BROADCAST_INTERVAL="1000",
        EXESDB_METRICS_BROADCAST_INTERVAL="1000",
    ).start(tmp_path)
    bridge_processes.append(bridge)
    wait_until(
        lambda: (
            _value(bridge, 'exesdb_node_health_status{node="it-node",status="healthy"}') is not None
        ),
        20,
        "the bridge's own NodeHealth",
    )
    toggles = [
        FeatureToggle(
            feature=f"f{n:03d}",
            enabled=True,
            previous_state=False,
            changed_by="ops",
            node="it-node",
        )
        for n in range(266)
    ]
    post_signed(
        bridge.url,
        b"\n".join(
            Envelope(
                new_message_id(), t.INSTANCE, "features", t.TAG, "it-node", utc_now(), t
            ).to_bytes()
            for t in toggles
        ),
    )
    released = 'exesdb_prometheus_kept_series_released_total{metric="exesdb_feature_enabled"}'
    assert wait_until(lambda: _value(bridge, released), 20, "the toggles let go counted") == 10.0

    def enabled(feature: str) -> float | None:
        return _value(bridge, f'exesdb_feature_enabled{{node="it-node",feature="{feature}"}}')

    # Written with the rest: once the first is gone, the kept ones are past the TTL too.
    wait_until(lambda: enabled("f000") is None, 20, "the toggles let go expired")
    assert [enabled(f"f{n:03d}") for n in (9, 10, 265)] == [None, 1.0, 1.0]
