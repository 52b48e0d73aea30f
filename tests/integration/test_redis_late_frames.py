"""Frames a replica held through a Redis outage, written minutes late: no reading taken as now.

A replica cut off from Redis keeps what it takes in (its spool) and writes it when Redis returns,
signed again with a fresh ``ts`` when it waited half the replay window. The other replicas take
those messages, but a reading made minutes before (a node's health) sets no gauge and is no sign
of the node's life: it says how things were, not how they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.bus import Envelope, Frame, Keyring, new_message_id
from bridge.bus.redis.spool import Spool
from bridge.cluster import ClusterMonitor
from bridge.messages import ClusterMembership, NodeHealth, NodeLifecycle
from bridge.sinks.prometheus import PrometheusSink
from tests.integration.redis_replicas import Replica, replicas
from tests.integration.servers.redis import RedisServer, redis_server
from tests.integration.test_cluster_skew import announced
from tests.support import TEST_SECRET, async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "replicas"]

# The replay window of every replica here: a frame that waited half of it is signed again.
WINDOW_MS = 60_000
# How long before now the spooled reading was made: past half the window, as after an outage.
HELD_SECONDS = 120.0
INTERVAL_MS = 100


async def spool_reading(
    directory: Path,
    node: str,
    status: str,
    *,
    timestamped: bool = True,
    held_seconds: float = HELD_SECONDS,
) -> Envelope:
    """Put in the spool at ``directory`` a NodeHealth of ``node`` made ``held_seconds`` ago, as
    a replica cut off from Redis took it in at its ingest (``timestamped`` False: its sender
    left the payload's ``timestamp`` out, its default); its envelope."""
    then = datetime.now(UTC) - timedelta(seconds=held_seconds)
    reading = NodeHealth(node=node, status=status, timestamp=then)
    envelope = Envelope(
        new_message_id(), reading.INSTANCE, "node_health", reading.TAG, node, then, reading,
        then.timestamp(),
    )  # fmt: skip
    body = envelope.to_bytes()
    if not timestamped:
        body = re.sub(rb'"timestamp":"[^"]*",?', b"", body)
        assert b'"timestamp"' not in body
    spool = Spool(directory, max_bytes=1 << 20, segment_bytes=1 << 20)
    await spool.open()
    signature = Keyring.from_secrets(TEST_SECRET).sign(body)
    assert await spool.append([Frame(envelope.instance, body, signature, envelope)])
    await spool.aclose()
    return envelope


def health_states(sink: PrometheusSink, node: str) -> list[str]:
    """The exesdb_node_health_status lines of ``node`` set to 1 in ``sink``'s exposition."""
    return [
        line
        for line in sink.render(False).splitlines()
        if line.startswith(f'exesdb_node_health_status{{node="{node}"') and line.endswith(" 1.0")
    ]


def heard(replica: Replica, envelope: Envelope) -> bool:
    """Whether ``replica``'s fan-out subscriber got ``envelope``'s message."""
    return any(seen.id == envelope.id for seen in replica.seen)


def added(replica: Replica, node: str) -> bool:
    """Whether ``replica`` heard a ClusterMembership announcing ``node`` added."""
    return any(
        isinstance(seen.payload, ClusterMembership)
        and seen.payload.event == "node_added"
        and node in seen.payload.affected_nodes
        for seen in replica.seen
    )


async def started_on_the_spool(
    server: RedisServer, spool: Path, replicas: list[Replica]
) -> Replica:
    """bridge-a, the replica cut off from Redis as ``spool_reading`` left its spool, started
    now that Redis answers: it writes what the spool holds, late."""
    cut_off = Replica(
        server.url, "bridge-a", group=False, replay_window_ms=WINDOW_MS, spool_dir=spool
    )
    replicas.append(await cut_off.start())
    return cut_off


@pytest.mark.parametrize("timestamped", [True, False], ids=["timestamp sent", "timestamp left out"])
async def test_a_health_reading_written_minutes_late_leaves_the_newer_one_in_the_gauges(
    redis_server: Callable[[], RedisServer],
    tmp_path: Path,
    replicas: list[Replica],
    timestamped: bool,
) -> None:
    """A node's ``unhealthy`` reading spooled through an outage and written two minutes late,
    after a newer ``healthy`` one, is taken (counted) but leaves the node healthy on /metrics;
    so is one whose sender left its ``timestamp`` out, which was made by its envelope's ``ts``,
    not when it was decoded again to be signed anew."""
    server = redis_server()
    watcher = Replica(server.url, "bridge-b", group=False, replay_window_ms=WINDOW_MS)
    sink = PrometheusSink(watcher.bridge.bus)
    replicas.append(await watcher.start())
    await sink.start()
    await async_wait_until(watcher.ready, 10, "ready")
    late = await spool_reading(tmp_path / "spool", "app-1", "unhealthy", timestamped=timestamped)
    assert watcher.bridge.bus.publish("node_health", NodeHealth(node="app-1", status="healthy"))
    healthy = ['exesdb_node_health_status{node="app-1",status="healthy"} 1.0']
    await async_wait_until(lambda: health_states(sink, "app-1") == healthy, 10, "healthy")
    cut_off = await started_on_the_spool(server, tmp_path / "spool", replicas)
    await async_wait_until(lambda: heard(watcher, late), 10, "the late reading taken")
    assert cut_off.sample("exesdb_redis_resigned_total") == 1
    # The sink's batch is handled on the bus's task: the reading is through once the next is.
    assert watcher.bridge.bus.publish("node_health", NodeHealth(node="app-2", status="healthy"))
    await async_wait_until(lambda: health_states(sink, "app-2") != [], 10, "app-2 translated")
    assert health_states(sink, "app-1") == healthy
    exposition = sink.render(False)
    assert (
        'exesdb_prometheus_messages_total{pubsub="ex_esdb_health",tag="node_health_updated"} 3.0'
        in exposition
    )
    assert "exesdb_prometheus_late_readings_total 1.0" in exposition


async def test_a_down_node_is_not_brought_back_by_a_reading_written_minutes_late(
    redis_server: Callable[[], RedisServer], tmp_path: Path, replicas: list[Replica]
) -> None:
    """A node found down is not announced back (``reconnected``) by its reading that a replica
    cut off from Redis held and wrote two minutes late: made before it went silent, the reading
    is no sign of its life now. (A fresh reading of another node, spooled after it, tells when
    the monitor has taken both and announced what they changed.)"""
    server = redis_server()
    app = await Replica(server.url, "app-1", group=False, replay_window_ms=WINDOW_MS).start()
    replicas.append(app)
    watcher = Replica(server.url, "bridge-b", group=False, replay_window_ms=WINDOW_MS)
    monitor = ClusterMonitor(
        watcher.bridge.bus,
        node="bridge-b",
        interval_ms=INTERVAL_MS,
        coordinator=watcher.transport.capabilities.coordinator,
    )
    replicas.append(await watcher.start())
    await monitor.start()
    try:
        late = await spool_reading(tmp_path / "spool", "app-1", "healthy")
        await spool_reading(tmp_path / "spool", "app-9", "healthy", held_seconds=0)
        joined = NodeLifecycle(
            node="app-1",
            event="joined",
            cluster_size=1,
            metadata={"heartbeat": True, "interval_ms": INTERVAL_MS},
        )
        assert app.bridge.bus.publish("lifecycle", joined)
        await async_wait_until(lambda: monitor.health().total_nodes == 2, 10, "app-1 heard")
        await async_wait_until(lambda: "down" in announced(server, "app-1"), 10, "down")
        await started_on_the_spool(server, tmp_path / "spool", replicas)
        await async_wait_until(lambda: heard(watcher, late), 10, "the late reading taken")
        # app-9's membership is announced at the monitor's first tick after it took both
        # readings, in order: any reconnected of app-1 would be announced by then.
        await async_wait_until(lambda: added(watcher, "app-9"), 10, "app-9 announced")
        assert "reconnected" not in announced(server, "app-1")
        assert monitor.health().healthy_nodes == 2  # bridge-b and app-9, not app-1
    finally:
        await monitor.aclose()
