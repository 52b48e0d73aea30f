"""A replica whose clock is off dates its cluster announcements and its start by Redis's clock.

A node's ``down`` and its ``reconnected`` may be announced by different replicas, and the alert
stage takes a resolve dated before the down it follows as stale: dated by a replica's own clock,
behind by more than the outage, a return would leave the node's ``node_failure`` open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from bridge.backoff import Backoff
from bridge.bus import Envelope, decode_envelope
from bridge.bus.redis.coordination import RedisCoordinator
from bridge.bus.redis.layout import Layout
from bridge.bus.redis.link import Link
from bridge.cluster import ClusterMonitor
from bridge.messages import NodeLifecycle
from tests.cluster.helpers import Clock
from tests.cluster.helpers import Replica as Monitored
from tests.integration.redis_replicas import Replica, replicas
from tests.integration.servers.redis import RedisServer, redis_server
from tests.integration.test_cluster_keys import time_refused
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "replicas"]

LIFECYCLE = "exesdb:bus:ex_esdb_lifecycle"
# How far behind Redis's clock this process's runs: within the replay window (300 s), whose
# readers would refuse the replica's every message past it, and longer than the outage.
SKEW = 120.0
INTERVAL_MS = 100
# How close to Redis's clock an announcement must be dated: the round trip measuring the skew
# errs by half of it at most, a loaded host's scheduling included.
TOLERANCE = 5.0


def redis_seconds(server: RedisServer) -> float:
    """Now by Redis's clock (TIME)."""
    with server.client() as client:
        seconds, microseconds = client.time()
    return seconds + microseconds / 1_000_000


def announced(server: RedisServer, node: str) -> dict[str, float]:
    """The NodeLifecycle events announced of ``node`` on the bus, each with its date (the
    last of each event)."""
    with server.client() as client:
        entries = client.xrange(LIFECYCLE)
    dates: dict[str, float] = {}
    for _, fields in entries:
        envelope = decode_envelope(fields[b"e"])
        assert isinstance(envelope, Envelope)
        payload = envelope.payload
        if isinstance(payload, NodeLifecycle) and payload.node == node:
            dates[payload.event] = payload.timestamp.timestamp()
    return dates


@asynccontextmanager
async def heartbeats(app: Replica) -> AsyncIterator[asyncio.Event]:
    """Publish ``app``'s heartbeat every half interval while the event yielded is set."""
    beating = asyncio.Event()
    beating.set()

    async def beat() -> None:
        while True:
            await beating.wait()
            app.bridge.bus.publish(
                "lifecycle",
                NodeLifecycle(
                    node=app.bridge.settings.node,
                    event="joined",
                    cluster_size=1,
                    metadata={"heartbeat": True, "interval_ms": INTERVAL_MS},
                ),
            )
            await asyncio.sleep(INTERVAL_MS / 2000)  # a heartbeat each half interval

    task = asyncio.create_task(beat())
    try:
        yield beating
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_replica_whose_clock_is_behind_dates_a_down_and_a_return_by_redis_clock(
    redis_server: Callable[[], RedisServer],
    replicas: list[Replica],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replica on a host whose clock is two minutes behind Redis's dates the down and the
    return it announces by Redis's clock, not its own: a return it announces after another
    replica's down is not older than that down."""
    server = redis_server()
    real_time, real_time_ns = time.time, time.time_ns
    # This process's host clock, behind: what every message is dated by unless told otherwise.
    monkeypatch.setattr(time, "time", lambda: real_time() - SKEW)
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() - int(SKEW * 1e9))
    app = await Replica(server.url, "app-1", group=False).start()
    replicas.append(app)
    skewed = Replica(server.url, "bridge-behind", group=False)
    monitor = ClusterMonitor(
        skewed.bridge.bus,
        node="bridge-behind",
        interval_ms=INTERVAL_MS,
        coordinator=skewed.transport.capabilities.coordinator,
        wall_clock=time.time,  # this host's, as patched above
    )
    replicas.append(await skewed.start())
    await monitor.start()
    try:
        async with heartbeats(app) as beating:
            await async_wait_until(lambda: monitor.health().total_nodes == 2, 10, "app-1 heard")
            beating.clear()
            await async_wait_until(lambda: "down" in announced(server, "app-1"), 10, "down")
            beating.set()
            await async_wait_until(
                lambda: "reconnected" in announced(server, "app-1"), 10, "reconnected"
            )
        now = redis_seconds(server)
        dates = announced(server, "app-1")
        assert now - TOLERANCE < dates["down"] < dates["reconnected"] < now + TOLERANCE
    finally:
        await monitor.aclose()


async def test_a_redis_refusing_time_dates_by_the_replicas_clock_said_once(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """Where the ACL refuses the bridge's user TIME, the coordinator's clock is the replica's
    own (dates are not refused), one warning saying so."""
    server = redis_server()
    caplog.set_level(logging.INFO, "bridge.bus.redis.coordination")
    async with time_refused(server) as coordinator:
        assert await coordinator.unix_time() == 1_800_000_010.25
        assert await coordinator.unix_time() == 1_800_000_010.25
        with server.client() as admin:
            admin.execute_command("ACL", "SETUSER", "limited", "+time")
        assert abs(await coordinator.unix_time() - redis_seconds(server)) < TOLERANCE
        told = [r.getMessage() for r in caplog.records]
        assert len(told) == 1, told
        assert "refuses the bridge's user TIME" in told[0]
        assert "pw" not in told[0]


@pytest.mark.parametrize("heard", ["before", "after"])
async def test_a_start_redis_could_not_date_is_dated_by_its_clock_once_it_answers(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture, heard: str
) -> None:
    """A replica started while Redis was out of reach, on a host two minutes behind Redis's
    clock, dates its start by Redis's clock once Redis answers: an earlier run's left under its
    name, dated by Redis just before this run started (written late from that run's spool), is
    told as that run's, and this node stays in the cluster, heard before Redis's clock was
    first read or after."""
    server = redis_server()
    client = Redis.from_url(server.url)
    link = Link(server.url, client, Backoff(0.01, 0.1, 0.0))
    coordinator = RedisCoordinator(link, Layout("exesdb"), owner="bridge-1:a", data_losses=int)
    stopped = datetime.fromtimestamp(redis_seconds(server), UTC)
    server.stop()  # out of reach as this run starts
    caplog.set_level(logging.INFO, "bridge.cluster")
    replica = Monitored("bridge-1", Clock(), coordinator, wall_clock=lambda: time.time() - SKEW)
    await replica.start()
    try:
        server.start()
        left = NodeLifecycle(node="bridge-1", event="left", cluster_size=1, timestamp=stopped)
        if heard == "before":
            await replica.hear("bridge-1", left)
        await replica.tick()  # Redis's clock read
        if heard == "after":
            await replica.hear("bridge-1", left)
        await replica.tick()
        assert "two processes share EXESDB_NODE" not in caplog.text
        assert "a left of this node (bridge-1) made at " in caplog.text
        assert replica.monitor.health().total_nodes == 1
    finally:
        await replica.monitor.aclose()
        await replica.bridge.aclose()
        await client.aclose()
