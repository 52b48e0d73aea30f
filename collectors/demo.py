"""Demo traffic: a simulated three-node ExESDB cluster, for ``exesdb-bridge run --demo``.

Every message goes through the bridge's ``Integration`` onto the signed bus, so it reaches the
same sinks as real traffic and every shipped dashboard shows data within seconds. The simulation
is seeded and steps on an injected clock: ``DemoCluster.step()`` is pure apart from the random
generator, which is how the tests drive it without sleeping.

What one step (about a second) publishes, per node that is up: NodeHealth, ResourceUsage (cpu,
memory, disk, network), PerformanceMetric, per store and operation a ThroughputMetric and the six
LatencyMetric percentiles, ComponentHealth of each store's persistence and emitter pool, a
HealthCheck; for the cluster: ClusterHealth, auth events and the odd access violation, audit
changes, log entries and diagnostics. Resource use drifts and now and then a node is stressed
into ``degraded`` or ``unhealthy``; now and then a node fails (NodeLifecycle ``down``,
ClusterMembership, ClusterHealth, a critical ``node_failure`` SystemAlert) and later reconnects.
With ``showcase`` (the default) each rare event also happens once in the first fifteen steps, so
no panel waits minutes for its first sample.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bridge.bus import PublishStatus
from bridge.component import Context
from bridge.integration import Integration
from bridge.messages import (
    AccessLog,
    AccessViolation,
    AdminAction,
    AlertAck,
    AuthEvent,
    ClusterHealth,
    ClusterMembership,
    ComponentHealth,
    DataChange,
    DebugTrace,
    ErrorAnalysis,
    HealthCheck,
    LatencyMetric,
    LogEntry,
    Message,
    MetricAlert,
    NodeHealth,
    NodeLifecycle,
    PerformanceAnalysis,
    PerformanceMetric,
    ProcessLifecycle,
    ResourceUsage,
    SecurityAlert,
    SessionEvent,
    SupervisionEvent,
    SystemAlert,
    SystemLifecycle,
    ThroughputMetric,
)
from collectors.health import Thresholds
from collectors.scheduler import CollectorMetrics, Schedule

__all__ = [
    "DEFAULT_NODES",
    "DEFAULT_STORES",
    "DEFAULT_THRESHOLDS",
    "DEMO_SEED",
    "DemoCluster",
    "demo_component",
]

_logger = logging.getLogger(__name__)

DEFAULT_NODES: Final = ("exesdb-1@demo", "exesdb-2@demo", "exesdb-3@demo")
DEFAULT_STORES: Final = ("orders_store", "inventory_store")

# Operation → (base p50 latency in ms, mean operations per second per store and node).
_OPERATIONS: Final[dict[str, tuple[float, float]]] = {
    "stream_append": (2.5, 180.0),
    "stream_read": (0.9, 420.0),
    "persistence_flush": (14.0, 6.0),
    "emitter_broadcast": (1.4, 160.0),
    "subscription_ack": (0.6, 90.0),
}
_PERCENTILES: Final = ("p50", "p95", "p99", "min", "max", "avg")
_LATENCY_ALERT_MS: Final = 400.0
_LOG_LEVELS: Final = (("debug", 20), ("info", 60), ("warn", 14), ("error", 5), ("critical", 1))
_MODULES: Final = (
    "ExESDB.StreamsWriter",
    "ExESDB.StreamsReader",
    "ExESDB.PersistenceWorker",
    "ExESDB.EmitterWorker",
    "ExESDB.SubscriptionsStore",
)
_USERS: Final = ("alice", "bob", "carol", "ops-bot", "billing-svc")
_GiB: Final = 1024.0**3
# The step at which each rare event happens once anyway, so every panel has data within
# seconds of start: a node fails at step 8 and is back at step 14.
_SHOWCASE: Final = {
    "debug_trace": 2,
    "access_violation": 2,
    "error_analysis": 3,
    "brute_force": 4,
    "process_restart": 5,
    "admin_action": 6,
    "node_failure": 8,
}
_SHOWCASE_DOWN_STEPS: Final = 6
DEMO_SEED: Final = 2026
"""The ``--demo`` seed: every demo run tells the same story (same failures, same drift)."""

DEFAULT_THRESHOLDS: Final = {
    "cpu": Thresholds(85.0, 95.0),
    "memory": Thresholds(85.0, 95.0),
    "disk": Thresholds(85.0, 95.0),
}
"""SPEC section 5's defaults; the factory takes the configured ones."""


@dataclass(slots=True)
class _Node:
    name: str
    cpu: float
    memory: float
    disk: float
    network: float
    stress_left: int = 0
    down_left: int = 0
    status: str = "healthy"
    events_stored: dict[str, int] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        return self.down_left == 0


class DemoCluster:
    """A Component publishing a simulated ExESDB cluster's traffic every ``interval`` seconds."""

    name = "demo"
    required = False

    def __init__(
        self,
        integration: Integration,
        *,
        nodes: Sequence[str] = DEFAULT_NODES,
        stores: Sequence[str] = DEFAULT_STORES,
        interval: float = 1.0,
        seed: int | None = None,
        thresholds: Mapping[str, Thresholds] = DEFAULT_THRESHOLDS,
        failure_chance: float = 1 / 120,
        stress_chance: float = 1 / 40,
        showcase: bool = True,
        metrics: CollectorMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not nodes:
            raise ValueError("nodes: the demo needs at least one node")
        if interval <= 0:
            raise ValueError(f"interval: must be above 0 seconds (got {interval!r})")
        self._integration = integration
        self._stores = tuple(stores)
        self.interval = interval
        self._rng = random.Random(seed)
        self._thresholds = dict(thresholds)
        self._failure_chance = failure_chance
        self._stress_chance = stress_chance
        self._showcase = showcase
        self._clock = clock
        self._nodes = [self._new_node(name) for name in nodes]
        self._last_step: float | None = None
        self._steps = 0
        self.published = 0
        # The collectors' scheduler: steady ticks, failures logged and counted in
        # exesdb_collector_runs_total{collector="demo",result="error"}, quiet while disabled.
        self.schedule = Schedule(
            self.name,
            interval,
            self._tick,
            enabled=integration.enabled,
            metrics=metrics,
            clock=clock,
            sleep=sleep,
        )

    def _new_node(self, name: str) -> _Node:
        rng = self._rng
        return _Node(
            name,
            cpu=rng.uniform(20, 45),
            memory=rng.uniform(35, 60),
            disk=rng.uniform(30, 55),
            network=rng.uniform(5, 20),
            events_stored={store: rng.randint(10_000, 500_000) for store in self._stores},
        )

    # -- the Component protocol --

    async def start(self) -> None:
        """Begin publishing, one step every ``interval`` seconds."""
        if not self.schedule.running:
            _logger.info(
                "demo traffic on: %d simulated nodes, a step every %.2fs",
                len(self._nodes),
                self.interval,
            )
        self.schedule.start()

    def readiness(self) -> str | None:
        """Always ready: demo traffic is optional."""
        return None

    async def aclose(self) -> None:
        """Stop publishing; idempotent."""
        await self.schedule.aclose()

    def _tick(self) -> None:
        self.publish_step()

    def publish_step(self) -> int:
        """Run one step and publish what it produced; returns how many were published."""
        if not self._integration.enabled():
            return 0  # the runtime switch is off: the simulated cluster goes quiet too
        count = 0
        for topic, message in self.step():
            result = self._integration.publish(topic, message)
            if result.status is PublishStatus.PUBLISHED:
                count += 1
        self.published += count
        return count

    # -- the simulation --

    @property
    def nodes(self) -> list[str]:
        """The simulated nodes' names."""
        return [node.name for node in self._nodes]

    def down_nodes(self) -> list[str]:
        """The simulated nodes that are down right now."""
        return [node.name for node in self._nodes if not node.up]

    def step(self) -> list[tuple[str, Message]]:
        """Advance the simulation by one step; returns the (topic, message) pairs to publish."""
        now = self._clock()
        elapsed = self.interval if self._last_step is None else max(now - self._last_step, 1e-3)
        self._last_step = now
        out: list[tuple[str, Message]] = []
        if self._steps == 0:
            self._announce(out)
        self._steps += 1
        self._fail_or_recover(out)
        for node in self._nodes:
            if node.up:
                self._drift(node)
                self._node_health(node, out)
                self._node_metrics(node, elapsed, out)
        self._cluster_health(out)
        self._security(out)
        self._audit(out)
        self._logs(out)
        self._diagnostics(out)
        return out

    def _chance(self, probability: float, event: str) -> bool:
        """True with ``probability``, and at the event's showcase step."""
        hit = self._rng.random() < probability  # always drawn: the sequence stays seeded
        return hit or (self._showcase and self._steps == _SHOWCASE[event])

    def _build(self, model: type[Message], **fields: Any) -> Message:
        return self._integration.build(model, **fields)

    def _up(self) -> list[_Node]:
        return [node for node in self._nodes if node.up]

    def _pick_up(self) -> _Node:
        up = self._up()
        return self._rng.choice(up) if up else self._nodes[0]

    def _announce(self, out: list[tuple[str, Message]]) -> None:
        size = len(self._nodes)
        for node in self._nodes:
            out.append(
                (
                    "lifecycle",
                    self._build(
                        SystemLifecycle,
                        event="started",
                        system_name="ex_esdb",
                        version="0.8.0-demo",
                        node=node.name,
                    ),
                )
            )
            out.append(
                (
                    "lifecycle",
                    self._build(
                        NodeLifecycle,
                        node=node.name,
                        event="joined",
                        cluster_size=size,
                        metadata={"demo": True},
                    ),
                )
            )
            for store in self._stores:
                out.append(self._process(node, store, "started"))
        out.append(self._membership("node_added", self.nodes))

    def _process(self, node: _Node, store: str, event: str) -> tuple[str, Message]:
        return (
            "lifecycle",
            self._build(
                ProcessLifecycle,
                pid=f"<0.{self._rng.randint(200, 9999)}.0>",
                name=f"{store}_emitter_pool",
                module="ExESDB.EmitterPool",
                event=event,
                node=node.name,
                reason="demo" if event != "started" else None,
                restart_count=1 if event == "restarted" else 0,
            ),
        )

    def _membership(self, event: str, affected: list[str]) -> tuple[str, Message]:
        active = [node.name for node in self._up()]
        return (
            "cluster:membership",
            self._build(
                ClusterMembership,
                event=event,
                affected_nodes=affected,
                active_nodes=active,
                total_nodes=len(self._nodes),
                quorum_status=self._quorum(),
                originating_node=active[0] if active else self._nodes[0].name,
            ),
        )

    def _quorum(self) -> str:
        return "available" if len(self._up()) * 2 > len(self._nodes) else "lost"

    def _fail_or_recover(self, out: list[tuple[str, Message]]) -> None:
        rng = self._rng
        for node in self._nodes:
            if node.down_left == 0:
                continue
            node.down_left -= 1
            if node.down_left == 0:
                self._recovered(node, out)
        # At most one node down at a time, so the demo cluster keeps its quorum.
        if all(node.up for node in self._nodes) and self._chance(
            self._failure_chance, "node_failure"
        ):
            self._failed(rng.choice(self._nodes), out)

    def _alert_id(self, node: _Node) -> str:
        # The id the alert sink derives from NodeLifecycle ``down``: one node_failure alert,
        # not two, which the ``reconnected`` event resolves.
        return f"node_failure:{node.name}"

    def _failed(self, node: _Node, out: list[tuple[str, Message]]) -> None:
        node.down_left = self._rng.randint(15, 30)
        if self._showcase and self._steps == _SHOWCASE["node_failure"]:
            node.down_left = _SHOWCASE_DOWN_STEPS
        node.status = "unknown"
        size = len(self._up())
        out.append(
            (
                "lifecycle",
                self._build(
                    NodeLifecycle,
                    node=node.name,
                    event="down",
                    cluster_size=size,
                    metadata={"reason": "heartbeat timeout"},
                ),
            )
        )
        out.append(self._membership("node_removed", [node.name]))
        out.append(("cluster:health", self._build(NodeHealth, node=node.name, status="unknown")))
        out.append(
            (
                "node_failure",
                self._build(
                    SystemAlert,
                    alert_id=self._alert_id(node),
                    severity="critical",
                    category="system",
                    title=f"Node {node.name} is down",
                    description=f"{node.name} stopped answering heartbeats",
                    source="demo_cluster_monitor",
                    node=node.name,
                    metadata={"cluster_size": size},
                ),
            )
        )
        out.append(self._log(self._pick_up(), "error", f"node {node.name} is down"))

    def _recovered(self, node: _Node, out: list[tuple[str, Message]]) -> None:
        node.cpu, node.stress_left, node.status = 30.0, 0, "healthy"
        out.append(
            (
                "lifecycle",
                self._build(
                    NodeLifecycle,
                    node=node.name,
                    event="reconnected",
                    cluster_size=len(self._up()),
                    metadata={},
                ),
            )
        )
        out.append(self._membership("node_added", [node.name]))
        out.append(
            (
                "alerts",
                self._build(
                    AlertAck,
                    alert_id=self._alert_id(node),
                    ack_by="demo_cluster_monitor",
                    ack_note=f"{node.name} reconnected",
                    resolution="node reconnected",
                ),
            )
        )
        out.append(self._log(node, "info", f"node {node.name} reconnected"))

    def _drift(self, node: _Node) -> None:
        rng = self._rng
        if node.stress_left == 0 and rng.random() < self._stress_chance:
            node.stress_left = rng.randint(8, 25)
        if node.stress_left:
            node.stress_left -= 1
            cpu_target, memory_target = 93.0, 80.0
        else:
            cpu_target, memory_target = 35.0, 50.0
        # Mean-reverting random walks: values wander but stay plausible.
        node.cpu = _clamp(node.cpu + 0.25 * (cpu_target - node.cpu) + rng.gauss(0, 3), 1, 100)
        node.memory = _clamp(
            node.memory + 0.1 * (memory_target - node.memory) + rng.gauss(0, 1.5), 5, 99.5
        )
        node.disk = _clamp(node.disk + rng.gauss(0.02, 0.1), 5, 99.5)
        node.network = _clamp(node.network + 0.2 * (15 - node.network) + rng.gauss(0, 2), 0, 100)

    def status_of(self, cpu: float, memory: float, disk: float) -> str:
        """The worst status the thresholds give the three readings."""
        statuses = {
            self._thresholds[name].status(value)
            for name, value in (("cpu", cpu), ("memory", memory), ("disk", disk))
            if name in self._thresholds
        }
        for status in ("unhealthy", "degraded"):
            if status in statuses:
                return status
        return "healthy"

    def _node_health(self, node: _Node, out: list[tuple[str, Message]]) -> None:
        status = self.status_of(node.cpu, node.memory, node.disk)
        node.status = status
        out.append(
            (
                "cluster:health",
                self._build(
                    NodeHealth,
                    node=node.name,
                    status=status,
                    checks={"cpu": status == "healthy", "raft": True},
                    load_avg=round(node.cpu / 100 * 4 + self._rng.uniform(0, 0.3), 2),
                    memory_usage=round(node.memory, 2),
                    disk_usage=round(node.disk, 2),
                ),
            )
        )
        totals = {"cpu": 4.0, "memory": 16 * _GiB, "disk": 200 * _GiB, "network": 1e9}
        for resource, percent in (
            ("cpu", node.cpu),
            ("memory", node.memory),
            ("disk", node.disk),
            ("network", node.network),
        ):
            total = totals[resource]
            out.append(
                (
                    "resources",
                    self._build(
                        ResourceUsage,
                        resource_type=resource,
                        usage_percent=round(percent, 2),
                        total_available=total,
                        current_used=round(total * percent / 100, 2),
                        node=node.name,
                    ),
                )
            )
        component_status = "healthy" if status == "healthy" else "degraded"
        for store in self._stores:
            for component in ("persistence", "emitter_pool"):
                out.append(
                    (
                        f"{store}:health",
                        self._build(
                            ComponentHealth,
                            component=component,
                            node=node.name,
                            status=component_status,
                            details={"store_id": store},
                        ),
                    )
                )
        failed = self._rng.random() < (0.3 if status == "unhealthy" else 0.02)
        out.append(
            (
                "cluster:health",
                self._build(
                    HealthCheck,
                    check_name="raft_leader",
                    node=node.name,
                    result="fail" if failed else "pass",
                    duration_ms=round(self._rng.uniform(0.5, 8), 3),
                    details={},
                    error="no leader elected" if failed else None,
                ),
            )
        )

    def _node_metrics(self, node: _Node, elapsed: float, out: list[tuple[str, Message]]) -> None:
        rng = self._rng
        # A busy node is slower; now and then an operation spikes.
        slowdown = 1 + max(node.cpu - 60, 0) / 10
        for store in self._stores:
            for operation, (base_ms, rate) in _OPERATIONS.items():
                count = max(0, round(rng.gauss(rate, rate * 0.15) * elapsed))
                out.append(
                    (
                        "metrics",
                        self._build(
                            ThroughputMetric,
                            operation=f"{store}.{operation}",
                            count=count,
                            duration_ms=elapsed * 1000,
                            node=node.name,
                        ),
                    )
                )
                # Failed operations travel on a topic ending ":error" (result="error").
                error_rate = 0.002 if node.status == "healthy" else 0.03
                errors = round(count * error_rate * rng.uniform(0, 2))
                out.append(
                    (
                        "metrics:error",
                        self._build(
                            ThroughputMetric,
                            operation=f"{store}.{operation}",
                            count=errors,
                            duration_ms=elapsed * 1000,
                            node=node.name,
                        ),
                    )
                )
                if operation == "stream_append":
                    node.events_stored[store] += count
                spike = 12.0 if rng.random() < 0.01 else 1.0
                p50 = base_ms * slowdown * spike * rng.uniform(0.85, 1.15)
                sigma = 0.6
                latencies = {
                    "p50": p50,
                    "p95": p50 * math.exp(1.645 * sigma),
                    "p99": p50 * math.exp(2.326 * sigma),
                    "min": p50 * rng.uniform(0.2, 0.4),
                    "avg": p50 * math.exp(sigma * sigma / 2),
                }
                latencies["max"] = latencies["p99"] * rng.uniform(1.2, 2.0)
                for percentile in _PERCENTILES:
                    out.append(
                        (
                            "metrics",
                            self._build(
                                LatencyMetric,
                                operation=f"{store}.{operation}",
                                latency_ms=round(latencies[percentile], 4),
                                percentile=percentile,
                                sample_count=count,
                                node=node.name,
                            ),
                        )
                    )
                if latencies["p99"] > _LATENCY_ALERT_MS:
                    out.append(
                        (
                            "metrics",
                            self._build(
                                MetricAlert,
                                metric_name=f"{store}.{operation}.latency_p99_ms",
                                current_value=round(latencies["p99"], 2),
                                threshold_value=_LATENCY_ALERT_MS,
                                threshold_type="max",
                                severity="warning",
                                node=node.name,
                            ),
                        )
                    )
            for name, value, unit in (
                ("events_stored", node.events_stored[store], "count"),
                ("persistence_queue_length", max(0, round(rng.gauss(node.cpu / 4, 3))), "count"),
                ("emitter_pool_size", 8, "count"),
            ):
                out.append(
                    (
                        "metrics",
                        self._build(
                            PerformanceMetric,
                            metric_name=name,
                            value=value,
                            unit=unit,
                            node=node.name,
                            component=store,
                            tags={"store_id": store},
                        ),
                    )
                )
        out.append(
            (
                "metrics",
                self._build(
                    PerformanceMetric,
                    metric_name="gc_pause_ms",
                    value=round(rng.uniform(0.1, 2.0) * slowdown, 3),
                    unit="ms",
                    node=node.name,
                    component="beam",
                    tags={},
                ),
            )
        )

    def _cluster_health(self, out: list[tuple[str, Message]]) -> None:
        up = self._up()
        healthy = [node.name for node in up if node.status == "healthy"]
        degraded = [node.name for node in up if node.status == "degraded"]
        # A down node is in neither list: the sink counts it as down (total - the others).
        unhealthy = [node.name for node in up if node.status == "unhealthy"]
        quorum = self._quorum()
        if quorum == "lost":
            status = "unhealthy"
        elif degraded or unhealthy:
            status = "degraded"
        else:
            status = "healthy"
        out.append(
            (
                "cluster:health",
                self._build(
                    ClusterHealth,
                    status=status,
                    healthy_nodes=len(healthy),
                    total_nodes=len(self._nodes),
                    degraded_nodes=degraded,
                    unhealthy_nodes=unhealthy,
                    quorum_status=quorum,
                ),
            )
        )

    def _security(self, out: list[tuple[str, Message]]) -> None:
        rng = self._rng
        node = self._pick_up()
        for _ in range(rng.randint(0, 3)):
            out.append(
                (
                    "auth",
                    self._build(
                        AuthEvent,
                        user_id=rng.choice(_USERS),
                        event_type=rng.choice(("login_success", "token_refresh", "logout")),
                        auth_method=rng.choice(("password", "token", "oauth")),
                        source_ip=f"10.0.{rng.randint(0, 3)}.{rng.randint(2, 250)}",
                        node=node.name,
                        metadata={},
                    ),
                )
            )
        if rng.random() < 0.3:
            out.append(self._auth_failure(node, rng.choice(_USERS), _random_ip(rng)))
        if self._chance(0.02, "brute_force"):
            # A brute-force burst from one address, reported as a security alert.
            ip = _random_ip(rng)
            out.extend(self._auth_failure(node, "admin", ip) for _ in range(rng.randint(5, 10)))
            out.append(
                (
                    "security",
                    self._build(
                        SecurityAlert,
                        alert_type="brute_force",
                        severity="high",
                        description=f"repeated login failures for admin from {ip}",
                        affected_users=["admin"],
                        source_ip=ip,
                        node=node.name,
                        metadata={},
                    ),
                )
            )
        if self._chance(0.1, "access_violation"):
            out.append(
                (
                    "security",
                    self._build(
                        AccessViolation,
                        user_id=rng.choice(_USERS),
                        violation_type=rng.choice(
                            ("permission_denied", "rate_limit_exceeded", "invalid_token")
                        ),
                        resource=f"/stores/{rng.choice(self._stores)}/streams",
                        action=rng.choice(("read", "append", "delete")),
                        source_ip=_random_ip(rng),
                        severity=rng.choice(("low", "medium", "medium", "high")),
                        metadata={},
                    ),
                )
            )
        if rng.random() < 0.2:
            out.append(
                (
                    "sessions",
                    self._build(
                        SessionEvent,
                        session_id=f"sess_{rng.getrandbits(48):012x}",
                        user_id=rng.choice(_USERS),
                        event_type=rng.choice(("created", "destroyed", "expired")),
                        node=node.name,
                    ),
                )
            )

    def _auth_failure(self, node: _Node, user: str, ip: str) -> tuple[str, Message]:
        return (
            "auth",
            self._build(
                AuthEvent,
                user_id=user,
                event_type="login_failure",
                auth_method="password",
                source_ip=ip,
                node=node.name,
                metadata={"reason": "bad credentials"},
            ),
        )

    def _audit(self, out: list[tuple[str, Message]]) -> None:
        rng = self._rng
        node = self._pick_up()
        for _ in range(rng.randint(1, 3)):
            store = rng.choice(self._stores)
            out.append(
                (
                    "audit",
                    self._build(
                        DataChange,
                        user_id=rng.choice(_USERS),
                        resource_type="stream",
                        resource_id=f"{store}/order-{rng.randint(1, 5000)}",
                        action=rng.choices(("create", "update", "delete", "read"), (50, 30, 5, 15))[
                            0
                        ],
                        changes={"events": rng.randint(1, 20)},
                        metadata={"store_id": store},
                        node=node.name,
                    ),
                )
            )
        out.append(
            (
                "audit",
                self._build(
                    AccessLog,
                    user_id=rng.choice(_USERS),
                    resource_type="stream",
                    resource_id=f"{rng.choice(self._stores)}/order-{rng.randint(1, 5000)}",
                    action="read",
                    success=rng.random() > 0.05,
                    duration_ms=round(rng.uniform(0.3, 12), 3),
                    node=node.name,
                ),
            )
        )
        if self._chance(0.02, "admin_action"):
            out.append(
                (
                    "audit",
                    self._build(
                        AdminAction,
                        admin_user_id="alice",
                        action_type=rng.choice(("config_updated", "permissions_changed")),
                        target_resource=rng.choice(self._stores),
                        details={"by": "demo"},
                        justification="routine maintenance",
                        node=node.name,
                    ),
                )
            )

    def _log(self, node: _Node, level: str, message: str) -> tuple[str, Message]:
        return (
            "logs",
            self._build(
                LogEntry,
                level=level,
                message=message,
                module=self._rng.choice(_MODULES),
                node=node.name,
                metadata={},
            ),
        )

    def _logs(self, out: list[tuple[str, Message]]) -> None:
        rng = self._rng
        levels = [level for level, _ in _LOG_LEVELS]
        weights = [weight for _, weight in _LOG_LEVELS]
        for node in self._up():
            for level in rng.choices(levels, weights, k=rng.randint(1, 4)):
                out.append(self._log(node, level, _LOG_TEXT[level]))

    def _diagnostics(self, out: list[tuple[str, Message]]) -> None:
        rng = self._rng
        node = self._pick_up()
        if self._chance(0.1, "debug_trace"):
            out.append(
                (
                    "diagnostics",
                    self._build(
                        DebugTrace,
                        component=rng.choice(self._stores),
                        operation="stream_append",
                        trace_data={"events": rng.randint(1, 50)},
                        duration_ms=round(rng.uniform(0.5, 30), 3),
                        node=node.name,
                        metadata={},
                    ),
                )
            )
        if self._chance(0.05, "error_analysis"):
            out.append(
                (
                    "diagnostics",
                    self._build(
                        ErrorAnalysis,
                        error_type="timeout",
                        error_message="emitter did not acknowledge in time",
                        context={"store_id": rng.choice(self._stores)},
                        frequency=rng.randint(1, 5),
                        node=node.name,
                    ),
                )
            )
        if self._chance(0.02, "process_restart"):
            # An emitter worker crashes and its supervisor restarts it.
            store = rng.choice(self._stores)
            out.append(self._process(node, store, "crashed"))
            out.append(self._process(node, store, "restarted"))
            out.append(
                (
                    "lifecycle",
                    self._build(
                        SupervisionEvent,
                        supervisor="ExESDB.EmitterSystem",
                        child_spec={"id": f"{store}_emitter_pool"},
                        event="child_started",
                        node=node.name,
                        reason="restart after crash",
                    ),
                )
            )
        if node.status != "healthy" and rng.random() < 0.1:
            out.append(
                (
                    "diagnostics",
                    self._build(
                        PerformanceAnalysis,
                        component="persistence",
                        analysis_type="cpu_hotspot",
                        findings={"cpu_percent": round(node.cpu, 1)},
                        recommendations=["add a node", "lower the snapshot frequency"],
                        severity="high" if node.status == "unhealthy" else "medium",
                        node=node.name,
                    ),
                )
            )


def demo_component(context: Context) -> DemoCluster:
    """The ``--demo`` factory: a DemoCluster on the bridge's integration and thresholds.

    It steps every second (sooner when ``EXESDB_HEALTH_BROADCAST_INTERVAL`` is shorter), so
    the dashboards fill at once.
    """
    settings = context.settings
    return DemoCluster(
        context.integration,
        interval=min(1.0, settings.health_broadcast_interval / 1000),
        seed=DEMO_SEED,
        thresholds={
            "cpu": Thresholds(settings.cpu_degraded, settings.cpu_unhealthy),
            "memory": Thresholds(settings.memory_degraded, settings.memory_unhealthy),
            "disk": Thresholds(settings.disk_degraded, settings.disk_unhealthy),
        },
        metrics=CollectorMetrics.for_registry(context.registry),
    )


_LOG_TEXT: Final = {
    "debug": "flushed persistence batch",
    "info": "appended events to stream",
    "warn": "emitter queue above watermark",
    "error": "subscription handler crashed; restarting",
    "critical": "persistence write failed",
}


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _random_ip(rng: random.Random) -> str:
    return f"203.0.113.{rng.randint(1, 254)}"
