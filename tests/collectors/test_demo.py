"""The --demo traffic: a seeded, clock-driven simulation of a three-node ExESDB cluster."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bridge.app import Bridge
from bridge.bus import Envelope, decode_envelope
from bridge.messages import (
    MESSAGE_TYPES,
    AlertAck,
    AlertEscalation,
    ClusterHealth,
    FeatureToggle,
    HealthCheck,
    LatencyMetric,
    Message,
    NodeHealth,
    NodeLifecycle,
    PerformanceMetric,
    ResourceUsage,
    SystemAlert,
    SystemState,
    ThroughputMetric,
)
from bridge.settings import Settings
from bridge.sinks.alerts.sources import alert_events
from collectors.demo import (
    DEFAULT_NODES,
    DEFAULT_STORES,
    DEMO_SEED,
    DemoCluster,
    Simulation,
    Steps,
    demo_component,
)
from collectors.demo.activity import features
from collectors.health import Thresholds, resource_statuses, worst_status
from collectors.scheduler import CollectorMetrics
from tests.sinks.alerts.helpers import alert_bridge
from tests.support import TEST_SECRET, ManualClock, async_wait_until

_VIOLATION_TYPES = frozenset(
    ("unauthorized_access", "permission_denied", "rate_limit_exceeded", "invalid_token")
)


def make_bridge(**env: Any) -> Bridge:
    settings = Settings.model_validate({"SECRET_KEY_BASE": TEST_SECRET, "EXESDB_NODE": "b1", **env})
    return Bridge(settings, registry=CollectorRegistry(), components=[])


def simulation(bridge: Bridge | None = None, **options: Any) -> Simulation:
    """A quiet simulation (seed 7, no failures, no stress, no showcase) unless told otherwise."""
    options.setdefault("seed", 7)
    options.setdefault("failure_chance", 0.0)
    options.setdefault("stress_chance", 0.0)
    options.setdefault("showcase", False)
    return Simulation((bridge or make_bridge()).integration.build, **options)


def demo(bridge: Bridge, steps: Steps | None = None, **timing: Any) -> DemoCluster:
    """The component publishing ``steps`` (a quiet simulation by default) on ``bridge``."""
    return DemoCluster(bridge.integration, steps or simulation(bridge), **timing)


class BrokenSimulation:
    """Steps that always raise, counting the calls."""

    interval = 1.0

    def __init__(self) -> None:
        self.calls = 0

    def step(self) -> list[tuple[str, Message]]:
        self.calls += 1
        raise RuntimeError("boom")

    def published(self, message: Message, message_id: str) -> None:
        raise AssertionError("a step that raised published nothing")


def down(sim: Simulation) -> list[str]:
    """The simulated nodes that are down."""
    return [node.name for node in sim.state.nodes if not node.up]


def of(messages: list[tuple[str, Message]], model: type[Message]) -> list[Any]:
    return [message for _, message in messages if isinstance(message, model)]


def comparable(messages: list[tuple[str, Message]]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (
            topic,
            m.TAG,
            m.model_dump(exclude={"timestamp", "ack_timestamp", "first_seen", "last_seen"}),
        )
        for topic, m in messages
        if not hasattr(m, "log_id") and not hasattr(m, "trace_id") and not hasattr(m, "error_id")
    ]


def test_same_seed_gives_the_same_traffic() -> None:
    """Two simulations with one seed and one clock publish identical messages, step by step."""
    clock_a, clock_b = ManualClock(), ManualClock()
    a = simulation(clock=clock_a, failure_chance=0.1)
    b = simulation(clock=clock_b, failure_chance=0.1)
    for _ in range(30):
        assert comparable(a.step()) == comparable(b.step())
        clock_a.now += 1
        clock_b.now += 1
    assert comparable(simulation(seed=8).step()) != comparable(simulation(seed=7).step())


def test_first_step_announces_the_three_nodes() -> None:
    """The first step says every node started and joined, and that they form the cluster."""
    first = simulation().step()
    joined = of(first, NodeLifecycle)
    assert [(m.node, m.event, m.cluster_size) for m in joined] == [
        (node, "joined", 3) for node in DEFAULT_NODES
    ]
    assert {m.TAG for _, m in first} >= {"system_lifecycle_event", "cluster_membership_changed"}
    assert not of(simulation().step()[len(first) :], NodeLifecycle)


def test_every_step_reports_each_node_and_operation() -> None:
    """Each step has health, four resources, and per operation a throughput and six percentiles."""
    cluster = simulation()
    cluster.step()
    step = cluster.step()
    for node in DEFAULT_NODES:
        assert len([m for m in of(step, NodeHealth) if m.node == node]) == 1
        assert {m.resource_type for m in of(step, ResourceUsage) if m.node == node} == {
            "cpu",
            "memory",
            "disk",
            "network",
        }
        latencies = [m for m in of(step, LatencyMetric) if m.node == node]
        operations = {m.operation for m in latencies}
        assert len(operations) == 5 * len(DEFAULT_STORES)
        assert Counter(m.percentile for m in latencies) == {
            p: len(operations) for p in ("p50", "p95", "p99", "min", "max", "avg")
        }
        ok = [(t, m) for t, m in step if isinstance(m, ThroughputMetric) and m.node == node]
        assert {t for t, _ in ok} == {"metrics", "metrics:error"}
    health = of(step, ClusterHealth)
    assert [(h.total_nodes, h.quorum_status) for h in health] == [(3, "available")]


def test_latency_percentiles_are_ordered() -> None:
    """For each operation min <= p50 <= p95 <= p99 <= max."""
    step = simulation().step()
    by_op: dict[tuple[str, str], dict[str, float]] = {}
    for m in of(step, LatencyMetric):
        by_op.setdefault((m.node, m.operation), {})[m.percentile] = m.latency_ms
    for values in by_op.values():
        assert values["min"] <= values["p50"] <= values["p95"] <= values["p99"] <= values["max"]


def test_throughput_spans_the_clock_time_between_steps() -> None:
    """A ThroughputMetric covers the time the injected clock moved since the previous step."""
    clock = ManualClock()
    cluster = simulation(clock=clock)
    cluster.step()
    clock.now += 2.5
    durations = {m.duration_ms for m in of(cluster.step(), ThroughputMetric)}
    assert durations == {2500.0}


def test_throughput_counts_the_successes_and_the_failures_apart() -> None:
    """As the throughput collector reports them: the ``metrics`` ThroughputMetric counts the
    operations that succeeded, the ``metrics:error`` one those that failed, and its rate is
    that of every operation, so the two counts add up to the rate over the step."""
    clock = ManualClock()
    cluster = simulation(seed=3, stress_chance=1.0, clock=clock)  # stressed: many failures
    failed = 0
    stored: dict[tuple[str, str], float] = {}
    for _ in range(20):
        clock.now += 1.0
        step = cluster.step()
        # The events a store holds grow by the appends that succeeded, not by those that failed.
        for m in of(step, PerformanceMetric):
            if m.metric_name == "events_stored":
                before = stored.get((m.node, m.component))
                stored[(m.node, m.component)] = m.value
                if before is not None:
                    [appended] = [
                        a.count
                        for t, a in step
                        if isinstance(a, ThroughputMetric)
                        and t == "metrics"
                        and (a.node, a.operation) == (m.node, f"{m.component}.stream_append")
                    ]
                    assert m.value - before == appended
        errors = {
            (m.node, m.operation): m.count
            for t, m in step
            if isinstance(m, ThroughputMetric) and t == "metrics:error"
        }
        failed += sum(n for (_, operation), n in errors.items() if operation.endswith("append"))
        for topic, m in step:
            if isinstance(m, ThroughputMetric) and topic == "metrics":
                operations = m.rate_per_sec * m.duration_ms / 1000
                assert m.count + errors[(m.node, m.operation)] == pytest.approx(operations)
    assert failed > 0


def test_every_instance_gets_traffic() -> None:
    """Within a few minutes of steps, all nine bus instances carry demo messages."""
    cluster = simulation(failure_chance=0.02, stress_chance=0.05)
    seen = {m.INSTANCE for _ in range(200) for _, m in cluster.step()}
    assert seen >= {instance for instance, _ in MESSAGE_TYPES}


# The rarer kinds of message the showcase sends within its first 15 steps.
RARER_KINDS = frozenset(
    {
        "alert_escalated",
        "compliance_event",
        "performance_analysis",
        "feature_toggle_changed",
        "system_state",
    }
)


def test_showcase_shows_every_rare_event_within_fifteen_steps() -> None:
    """By default each rare event happens once early: a node fails at step 8 and is back by 14."""
    cluster = simulation(showcase=True)
    steps = [cluster.step() for _ in range(15)]
    assert down(cluster) == []
    tags = {m.TAG for step in steps for _, m in step}
    assert tags >= {
        "access_violation",
        "security_alert",
        "error_analysis",
        "debug_trace",
        "admin_action",
        "process_lifecycle_event",
        "supervision_event",
        "system_alert",
        "alert_acknowledged",
        *RARER_KINDS,
    }
    events = [(i, m.event) for i, step in enumerate(steps, 1) for m in of(step, NodeLifecycle)]
    assert (8, "down") in events
    assert (14, "reconnected") in events


def test_the_rarer_kinds_pass_the_wire_schema_ingest_applies() -> None:
    """Each escalation, compliance event, performance analysis, feature toggle and system state
    snapshot the showcase sends decodes, as an envelope on the wire, to the message sent."""
    cluster = simulation(showcase=True)
    sent = [(t, m) for _ in range(15) for t, m in cluster.step() if m.TAG in RARER_KINDS]
    assert {m.TAG for _, m in sent} == RARER_KINDS
    ts = datetime(2026, 12, 7, tzinfo=UTC)
    for number, (topic, message) in enumerate(sent):
        envelope = Envelope(
            f"{number:016x}",
            message.INSTANCE,
            topic,
            message.TAG,
            "b1",
            ts,
            message,
            ts.timestamp(),
        )
        decoded = decode_envelope(envelope.to_bytes())
        assert isinstance(decoded, Envelope), decoded
        assert decoded.payload == message


def test_a_node_fails_then_reconnects() -> None:
    """A failed node stays down for a while, then reconnects and its alert is acknowledged."""
    cluster = simulation(failure_chance=1.0)
    cluster.step()  # the announcement step also fails one node
    [failed_node] = down(cluster)
    steps = []
    for _ in range(40):
        steps.append(cluster.step())
        assert len(down(cluster)) <= 1
    flat = [pair for step in steps for pair in step]
    acks = of(flat, AlertAck)
    assert acks
    assert acks[0].alert_id == f"node_failure:{failed_node}"
    reconnected = [m for m in of(flat, NodeLifecycle) if m.event == "reconnected"]
    assert reconnected[0].node == failed_node


def test_a_node_still_down_has_its_alert_escalated_once_by_the_cluster_monitor() -> None:
    """Five steps after a node failed the simulated monitor escalates its node_failure alert to
    level2, once, on the topic the bridge's own escalations go out on."""
    cluster = simulation(failure_chance=1.0)
    cluster.step()  # the announcement step fails one node, for 15 to 30 steps
    [failed_node] = down(cluster)
    steps = [cluster.step() for _ in range(40)]
    escalations = [
        (i, topic, m)
        for i, step in enumerate(steps, 2)
        for topic, m in step
        if isinstance(m, AlertEscalation)
    ]
    assert [(i, topic) for i, topic, _ in escalations][:1] == [(6, "alert_escalated")]
    first = escalations[0][2]
    assert (first.alert_id, first.from_level, first.to_level, first.escalated_by) == (
        f"node_failure:{failed_node}",
        "level1",
        "level2",
        "demo_cluster_monitor",
    )
    assert [m.alert_id for _, _, m in escalations].count(first.alert_id) == 1


def test_feature_toggles_say_what_they_switched_from() -> None:
    """Each feature toggle's previous_state is what the last toggle of that feature on that
    node set (off at first), and it always flips."""
    cluster = simulation()
    # The toggling step alone, drawn often: whole steps toggle some once in 240, and 1 500 of
    # them (to see a feature toggled twice) took seconds.
    build = make_bridge().integration.build
    toggles = [m for _ in range(4000) for m in of(features(cluster.state, build), FeatureToggle)]
    assert len(toggles) >= 3
    assert len({(t.node, t.feature) for t in toggles}) < len(toggles)  # some toggled again
    held: dict[tuple[str, str], bool] = {}
    for toggle in toggles:
        key = (toggle.node, toggle.feature)
        assert toggle.previous_state == held.get(key, False)
        assert toggle.enabled is not toggle.previous_state
        held[key] = toggle.enabled


def test_each_node_up_sends_a_system_state_snapshot_a_minute() -> None:
    """Every node takes a snapshot in the first steps and then one every 60 steps, with its
    process count and its used memory."""
    cluster = simulation()
    snapshots = [(i, m) for i in range(1, 122) for m in of(cluster.step(), SystemState)]
    assert [(i, m.node) for i, m in snapshots] == [
        (step + offset, node)
        for step in (1, 61, 121)
        for offset, node in zip((0, 3, 6), DEFAULT_NODES, strict=True)
        if step + offset <= 121
    ]
    assert all(m.process_count > 0 and m.memory_usage > 0 for _, m in snapshots)


def test_failure_step_contents() -> None:
    """The failing step: NodeLifecycle down, unknown health, the alert on topic node_failure."""
    cluster = simulation(failure_chance=1.0)
    step = cluster.step()
    [node] = down(cluster)
    assert [m.event for m in of(step, NodeLifecycle) if m.node == node][-1] == "down"
    assert any(m.node == node and m.status == "unknown" for m in of(step, NodeHealth))
    alerts = [(t, m) for t, m in step if isinstance(m, SystemAlert)]
    assert [(t, m.severity, m.node, m.requires_ack) for t, m in alerts] == [
        ("node_failure", "critical", node, True)
    ]
    health = of(step, ClusterHealth)[-1]
    assert health.total_nodes == 3
    assert health.healthy_nodes <= 2
    assert node not in health.unhealthy_nodes + health.degraded_nodes
    assert not [m for m in of(step, ResourceUsage) if m.node == node]


def test_stress_degrades_nodes_by_the_thresholds() -> None:
    """Stressed nodes turn degraded or unhealthy as the health collector's rules say."""
    thresholds = {"cpu": Thresholds(70.0, 90.0), "memory": Thresholds(85.0, 95.0)}
    cluster = simulation(stress_chance=1.0, thresholds=thresholds)
    statuses = set()
    for _ in range(30):
        step = cluster.step()
        cpu = {m.node: m.usage_percent for m in of(step, ResourceUsage) if m.resource_type == "cpu"}
        for health in of(step, NodeHealth):
            readings = {
                "cpu": cpu[health.node],
                "memory": health.memory_usage,
                "disk": health.disk_usage,
            }
            expected = worst_status(resource_statuses(readings, thresholds).values())
            # The published readings are rounded to two decimals; allow the boundary case.
            assert health.status == expected or abs(cpu[health.node] - 70) < 0.01
            statuses.add(health.status)
    assert {"degraded", "unhealthy"} <= statuses


def test_a_node_s_health_says_of_raft_what_its_raft_check_says() -> None:
    """In every step a node's NodeHealth ``checks.raft`` is true exactly when the raft_leader
    HealthCheck beside it passes: a failed check is never shown beside a raft said fine."""
    cluster = simulation(stress_chance=0.5)
    said = set()
    for _ in range(100):
        step = cluster.step()
        checks = {m.node: m.result == "pass" for m in of(step, HealthCheck)}
        for health in of(step, NodeHealth):
            assert health.checks["raft"] is checks[health.node], health.node
            said.add(checks[health.node])
    assert said == {True, False}


def test_the_cluster_is_whole_for_thirty_steps_between_failures() -> None:
    """However often nodes fail, one fails only once the last one down has been back for 30
    steps, so no stretch with a node down outlasts ExesdbNodeDown's minute (its `for:`): at the
    demo's odds two outages back to back kept one down 75 s about once a day."""
    state = simulation(failure_chance=0.5).state
    came_back, stretch, longest, failures = -100, 0, 0, 0
    for step in range(1, 3601):
        state.steps = step  # as Simulation.step counts them, without building messages
        for node in state.nodes:
            if state.count_down(node):
                came_back = step
        if state.maybe_fail() is not None:
            failures += 1
            assert step - came_back >= 30, (step, came_back)
        stretch = stretch + 1 if len(state.up()) < len(state.nodes) else 0
        longest = max(longest, stretch)
    assert failures > 30
    assert longest <= 30


def test_a_node_left_alone_stays_healthy_for_hours() -> None:
    """Six hours of steps (a compose stack left running) of a node never stressed: its
    resource use wanders and comes back, so it stays healthy; its disk filled by 0.02 points a
    step, and some 40 minutes in every node was unhealthy for good."""
    cluster = simulation(seed=2026)
    state = cluster.state
    disks: list[float] = []
    for _ in range(6 * 3600):
        for node in state.nodes:
            state.drift(node)
            assert node.status == "healthy", (node.name, node.cpu, node.memory, node.disk)
            disks.append(node.disk)
    assert min(disks) > 20
    assert max(disks) < 70


@pytest.mark.parametrize(
    ("options", "message"),
    [({"nodes": ()}, "nodes"), ({"interval": 0}, "interval"), ({"ack_after": 0}, "ack_after")],
)
def test_rejects_bad_options(options: dict[str, Any], message: str) -> None:
    """An empty node list, a non-positive interval or ack delay is refused, naming the option."""
    with pytest.raises(ValueError, match=message):
        simulation(**options)


async def test_publishes_through_the_signed_bus() -> None:
    """publish_step puts every message on the bus, where subscribers receive them verified."""
    bridge = make_bridge()
    received: list[Envelope] = []
    bridge.bus.subscribe("test", received.append)
    await bridge.start(serve_http=False)
    try:
        cluster = demo(bridge)
        count = cluster.publish_step()
        assert count > 100
        await async_wait_until(lambda: len(received) == count, what="all demo messages")
        assert {e.node for e in received} == {"b1"}
        assert {e.payload.node for e in received if hasattr(e.payload, "node")} >= set(
            DEFAULT_NODES
        )
    finally:
        await bridge.aclose()


async def test_the_demos_alerts_name_a_simulated_node_never_the_bridges_host() -> None:
    """Every alert the demo's traffic makes (an AccessViolation's included, which has no node
    field and is published by the bridge's own node ``b1``) names a simulated node."""
    bridge = make_bridge()
    received: list[Envelope] = []
    bridge.bus.subscribe("test", received.append)
    await bridge.start(serve_http=False)
    try:
        cluster = demo(bridge, simulation(bridge, showcase=True))
        count = sum(cluster.publish_step() for _ in range(20))
        await async_wait_until(lambda: len(received) == count, what="all demo messages")
        alerts = [event for e in received for event in alert_events(e)]
        violations = {a.node for a in alerts if a.alertname in _VIOLATION_TYPES}
        assert violations, "the showcase raises an access violation within 15 steps"
        assert {a.node for a in alerts} <= set(DEFAULT_NODES)
    finally:
        await bridge.aclose()


async def test_the_demos_security_alerts_that_wait_for_an_ack_are_acknowledged(
    tmp_path: Path,
) -> None:
    """Each security alert the demo raises at error severity or above (which waits for an
    acknowledgement, and escalates without one) is acknowledged by the simulated security desk
    ``ack_after`` steps after it fired: left alone, some 150 an hour piled up firing."""
    clock = ManualClock()
    async with alert_bridge(tmp_path, serve_http=False) as (bridge, sink, _):
        steps = Simulation(bridge.integration.build, seed=DEMO_SEED, clock=clock, ack_after=30)
        cluster = DemoCluster(bridge.integration, steps)
        for _ in range(90):
            clock.advance(1.0)
            cluster.publish_step()

        def waiting() -> list[Any]:
            found = sink.outbox.alerts.find(limit=10_000)
            return [a for a in found if a.category == "security" and a.requires_ack]

        # Those raised in the first 60 steps (the showcase's brute force at step 4 among them)
        # have had their 30 steps; those raised since still fire. Judged once the sink has
        # handled all 90 steps: part way, the later alerts are not stored yet.
        alerts = await async_wait_until(
            lambda: (
                sink.subscription.idle
                and sum(a.ack_by is not None for a in waiting()) >= 3
                and waiting()
            ),
            what="the desk's acknowledgements",
        )
        acknowledged = [a for a in alerts if a.ack_by is not None]
        assert {(a.ack_by, a.state.value) for a in acknowledged} == {
            ("demo_security_desk", "acknowledged")
        }
        assert "brute_force" in {a.alertname for a in acknowledged}
        assert any(a.state.value == "firing" for a in alerts)


async def test_quiet_while_the_integration_is_disabled() -> None:
    """With the runtime switch off, a step publishes nothing."""
    bridge = make_bridge(EXESDB_PUBSUB_INTEGRATION="false")
    await bridge.start(serve_http=False)
    try:
        assert demo(bridge).publish_step() == 0
    finally:
        await bridge.aclose()


async def test_runs_on_its_interval_and_closes_idempotently() -> None:
    """start() steps once per interval of the injected clock; aclose() stops it, twice is fine."""
    bridge = make_bridge()
    clock = ManualClock()

    async def sleep(seconds: float) -> None:
        clock.now += seconds
        await asyncio.sleep(0)

    registry = CollectorRegistry()

    def runs() -> float:
        found = registry.get_sample_value(
            "exesdb_collector_runs_total", {"collector": "demo", "result": "ok"}
        )
        return found or 0.0

    await bridge.start(serve_http=False)
    steps = simulation(bridge, interval=0.25, clock=clock)
    cluster = demo(bridge, steps, metrics=CollectorMetrics(registry), clock=clock, sleep=sleep)
    started = clock.now
    try:
        await cluster.start()
        await cluster.start()
        await async_wait_until(lambda: runs() >= 4, what="four steps")
        assert cluster.readiness() is None
    finally:
        await cluster.aclose()
        await cluster.aclose()
        await bridge.aclose()
    # aclose() returned with the schedule's task finished: no step can run any more.
    assert not cluster.schedule.running
    assert clock.now - started == pytest.approx((runs() - 1) * 0.25, abs=0.25)


async def test_a_failing_step_is_counted_and_the_loop_goes_on() -> None:
    """An exception in a step is logged and counted as an error run; the next step still runs."""
    bridge = make_bridge()
    registry = CollectorRegistry()
    clock = ManualClock()

    async def sleep(seconds: float) -> None:
        clock.now += seconds
        await asyncio.sleep(0)

    broken = BrokenSimulation()
    cluster = demo(bridge, broken, metrics=CollectorMetrics(registry), clock=clock, sleep=sleep)
    await bridge.start(serve_http=False)
    try:
        await cluster.start()
        await async_wait_until(lambda: broken.calls >= 2, what="a second step after a failure")
    finally:
        await cluster.aclose()
        await bridge.aclose()
    errors = registry.get_sample_value(
        "exesdb_collector_runs_total", {"collector": "demo", "result": "error"}
    )
    assert errors is not None
    assert errors >= 2


async def first_node_statuses(**env: str) -> set[str]:
    """The NodeHealth statuses of the first step of the demo that ``demo_component`` builds."""
    bridge = make_bridge(**env)
    received: list[Envelope] = []
    bridge.bus.subscribe("test", received.append, instances=["ex_esdb_health"])
    await bridge.start(serve_http=False)
    try:
        demo_component(bridge.context).publish_step()
        await async_wait_until(
            lambda: any(e.payload.TAG == "cluster_health_updated" for e in received),
            what="the step's cluster health",
        )
    finally:
        await bridge.aclose()
    return {e.payload.status for e in received if isinstance(e.payload, NodeHealth)}


async def test_factory_takes_the_thresholds_from_the_settings() -> None:
    """Nodes of demo_component are judged by EXESDB_*_DEGRADED: healthy at 85 %, not at 10 %."""
    assert await first_node_statuses() == {"healthy"}
    assert await first_node_statuses(EXESDB_CPU_DEGRADED="10") == {"degraded"}


def test_factory_follows_the_health_interval() -> None:
    """demo_component steps on the health interval, capped at 1 s."""
    fast = demo_component(make_bridge(EXESDB_HEALTH_BROADCAST_INTERVAL="200").context)
    assert fast.interval == pytest.approx(0.2)
    assert demo_component(make_bridge().context).interval == 1.0
    assert (fast.name, fast.required) == ("demo", False)
