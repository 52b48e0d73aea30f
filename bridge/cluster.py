"""Cluster membership (docs/redis.md#cluster-membership): heartbeats, silent nodes, quorum.

Every bridge is a node: at start it publishes NodeLifecycle ``joined`` under ``EXESDB_NODE``, and
then a heartbeat on every health interval, unless the node was already heard during that
interval (its health collector's NodeHealth counts). The heartbeat is a NodeLifecycle ``joined``
with ``metadata.heartbeat = true``: the message vocabulary has no heartbeat event, and ``joined``
is what a live node says. On a graceful stop it publishes ``left``.

Every replica's monitor hears ``ex_esdb_lifecycle`` and ``ex_esdb_health`` and tracks each
publishing node (the envelope's node). A node silent for three health intervals is down; one
replica (whichever wins an atomic Redis ``SET … GET`` on the node's state key) then publishes
NodeLifecycle ``down``, ClusterMembership ``node_removed`` and ClusterHealth. When the node is heard
again the winner publishes NodeLifecycle ``reconnected``, ClusterMembership ``node_added`` and
ClusterHealth. The alert stage derives the ``node_failure`` alert from ``down`` and resolves it on
``reconnected``/``joined``. ClusterHealth is also published once per health interval across all
replicas, so ``exesdb_cluster_nodes`` and ``exesdb_cluster_quorum_available`` stay current.
A replica that cannot hear the bus (Redis unreachable) declares nobody down: it is the one cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from bridge.bus import Bus, Coordinator, Envelope, LocalCoordinator
from bridge.component import Context
from bridge.errors import BridgeError
from bridge.messages import ClusterHealth, ClusterMembership, Message, NodeHealth, NodeLifecycle

__all__ = ["ClusterMonitor", "cluster_monitor"]

_logger = logging.getLogger(__name__)

MISSED_INTERVALS: Final = 3
_STATE_TTL_MS: Final = 7 * 24 * 3600 * 1000
_MAX_NODES: Final = 10_000

State = Literal["up", "down"]


@dataclass(slots=True)
class _Node:
    heard: float
    state: State = "up"
    health: str = "healthy"
    announced: State | None = None  # the last transition announced (or found announced)


class ClusterMonitor:
    """Heartbeats for this node and the membership of every node heard on the bus."""

    name = "cluster"
    required = False

    def __init__(
        self,
        bus: Bus,
        *,
        node: str,
        interval_ms: int,
        coordinator: Coordinator | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        run_loop: bool = True,
    ) -> None:
        self._bus = bus
        self.node = node
        self._interval = interval_ms / 1000
        self._coordinator: Coordinator = coordinator or LocalCoordinator(clock)
        self._clock = clock
        self._wall_clock = wall_clock
        self._run_loop = run_loop
        self._nodes: dict[str, _Node] = {}
        self._pending: dict[str, State] = {}  # transitions still to announce
        self._blind = False
        self._last_beat = float("-inf")
        self._own_health = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        bus.subscribe("cluster", self._heard, instances=("ex_esdb_lifecycle", "ex_esdb_health"))

    # -- what the monitor knows --

    def states(self) -> dict[str, State]:
        """Every known node and whether it is up or down."""
        return {name: node.state for name, node in self._nodes.items()}

    def health(self) -> ClusterHealth:
        """The cluster's health as this replica sees it."""
        up = [name for name, node in self._nodes.items() if node.state == "up"]
        degraded = sorted(name for name in up if self._nodes[name].health == "degraded")
        unhealthy = sorted(name for name in up if self._nodes[name].health == "unhealthy")
        total = len(self._nodes)
        quorum = 2 * len(up) > total
        if not quorum:
            status: Literal["healthy", "degraded", "unhealthy"] = "unhealthy"
        elif len(up) < total or degraded or unhealthy:
            status = "degraded"
        else:
            status = "healthy"
        return ClusterHealth(
            status=status,
            healthy_nodes=len(up) - len(degraded) - len(unhealthy),
            total_nodes=total,
            degraded_nodes=degraded,
            unhealthy_nodes=unhealthy,
            quorum_status="available" if quorum else "lost",
        )

    # -- hearing --

    def _heard(self, envelope: Envelope) -> None:
        now = self._clock()
        payload = envelope.payload
        publisher = envelope.node
        if (
            isinstance(payload, NodeLifecycle)
            and payload.node == publisher
            and payload.event in ("leaving", "left")
        ):
            self._leave(publisher)
            return
        node = self._nodes.get(publisher)
        if node is None:
            if len(self._nodes) >= _MAX_NODES:
                return
            node = self._nodes[publisher] = _Node(now)
            if publisher != self.node:
                self._pending[publisher] = "up"
        node.heard = now
        if node.state == "down":
            node.state = "up"
            self._pending[publisher] = "up"
        if isinstance(payload, NodeHealth) and payload.node in self._nodes:
            self._nodes[payload.node].health = payload.status
            if publisher == self.node:
                self._own_health = now

    def _leave(self, name: str) -> None:
        if self._nodes.pop(name, None) is not None:
            self._pending.pop(name, None)
            _logger.info("node %s left the cluster", name)

    # -- the periodic work --

    async def tick(self) -> None:
        """Heartbeat when due, find silent nodes, announce transitions, refresh ClusterHealth."""
        now = self._clock()
        if now - self._last_beat >= self._interval:
            self._beat(now)
        if self._bus.readiness() is not None:
            # Cut off from the bus: silence says nothing about the others.
            self._blind = True
            return
        if self._blind:
            self._blind = False
            for node in self._nodes.values():
                node.heard = max(node.heard, now)
        limit = MISSED_INTERVALS * self._interval
        for name, node in self._nodes.items():
            if name != self.node and node.state == "up" and now - node.heard > limit:
                node.state = "down"
                self._pending[name] = "down"
                _logger.warning("node %s silent for %.1fs: down", name, now - node.heard)
        try:
            for name, state in list(self._pending.items()):
                await self._announce(name, state)
                self._pending.pop(name, None)
            slot = int(self._wall_clock() / self._interval)
            if self._nodes and await self._coordinator.once(
                f"cluster:health:{slot}", int(self._interval * 2000)
            ):
                self._publish("cluster:health", self.health())
        except Exception as exc:  # e.g. Redis unreachable: retried on the next tick
            _logger.debug("cluster announcement deferred: %s", exc)

    def _beat(self, now: float) -> None:
        first = self._last_beat == float("-inf")
        self._last_beat = now
        if not first and now - self._own_health < self._interval:
            return  # the health collector's NodeHealth already said this node is alive
        self._publish(
            "lifecycle",
            NodeLifecycle(
                node=self.node,
                event="joined",
                cluster_size=self._up_count(),
                metadata={} if first else {"heartbeat": True},
            ),
        )

    async def _announce(self, name: str, state: State) -> None:
        node = self._nodes.get(name)
        if node is None or node.state != state:
            return  # changed again since; the newer transition is pending or moot
        key = f"cluster:node:{name}"
        previous = await self._coordinator.swap(key, state, _STATE_TTL_MS)
        locally_down = node.announced == "down"
        if state == "down":
            if previous == "down":
                node.announced = state
                return  # another replica announced it
            event: Literal["down", "reconnected"] = "down"
            metadata: dict[str, object] = {
                "detected_by": self.node,
                "missed_intervals": MISSED_INTERVALS,
            }
        elif previous == "down" or (previous is None and locally_down):
            event, metadata = "reconnected", {"detected_by": self.node}
        else:
            node.announced = state
            if previous is None:
                self._membership("node_added", name)  # first heard anywhere
            return
        published = self._bus.publish(
            "lifecycle",
            NodeLifecycle(node=name, event=event, cluster_size=self._up_count(), metadata=metadata),
        )
        if not published:
            # The transition is ours to announce; refused (e.g. the Redis buffer is full), it
            # would be lost for every replica: put the state key back and keep it pending.
            # (None cannot be put back; the value that makes the retry announce it again can.)
            restored = previous or ("up" if state == "down" else "down")
            await self._coordinator.swap(key, restored, _STATE_TTL_MS)
            raise BridgeError(f"announcing {name} {event} was refused: {published.reason}")
        node.announced = state
        self._membership("node_removed" if state == "down" else "node_added", name)

    def _membership(self, event: Literal["node_added", "node_removed"], name: str) -> None:
        health = self.health()
        up = sorted(n for n, node in self._nodes.items() if node.state == "up")
        self._publish(
            "lifecycle",
            ClusterMembership(
                event=event,
                affected_nodes=[name],
                active_nodes=up,
                total_nodes=len(self._nodes),
                quorum_status=health.quorum_status,
                originating_node=self.node,
            ),
        )
        self._publish("cluster:health", health)

    def _up_count(self) -> int:
        return sum(1 for node in self._nodes.values() if node.state == "up")

    def _publish(self, topic: str, message: Message) -> None:
        # Straight on the bus, not through the integration switch: turning broadcasts off must
        # not make this node look dead to its peers.
        self._bus.publish(topic, message)

    # -- Component --

    async def start(self) -> None:
        self._nodes.setdefault(self.node, _Node(self._clock()))
        await self.tick()
        if self._run_loop:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name="cluster-monitor"
            )

    async def _loop(self) -> None:
        period = max(0.05, min(self._interval / 4, 1.0))
        while True:
            await asyncio.sleep(period)
            try:
                await self.tick()
            except Exception:
                _logger.exception("cluster monitor tick failed")

    def readiness(self) -> str | None:
        return None

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._publish(
            "lifecycle",
            NodeLifecycle(node=self.node, event="left", cluster_size=max(0, self._up_count() - 1)),
        )


def cluster_monitor(context: Context) -> ClusterMonitor:
    """The factory ``default_components()`` lists: on a shared transport it coordinates
    through the transport's keys."""
    return ClusterMonitor(
        context.bus,
        node=context.settings.node,
        interval_ms=context.settings.health_broadcast_interval,
        coordinator=context.capabilities.coordinator,
    )
