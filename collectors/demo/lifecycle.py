"""The simulated cluster's lifecycle: start-up, process events, membership, a node's ups and downs.

Mostly ``ex_esdb_lifecycle``; a node's failure also raises the ``node_failure`` alert (the one
the alert sink derives from NodeLifecycle ``down``), the simulated cluster monitor escalates it
while the node stays down, and its return acknowledges it.
"""

from __future__ import annotations

from typing import Final

from bridge.messages import (
    AlertAck,
    AlertEscalation,
    ClusterMembership,
    Message,
    NodeHealth,
    NodeLifecycle,
    ProcessLifecycle,
    SystemAlert,
    SystemLifecycle,
)
from collectors.demo.logs import log
from collectors.demo.state import Build, ClusterState, Pairs, SimNode

__all__ = ["ESCALATE_AFTER_STEPS", "announce", "escalated", "failed", "process", "recovered"]

ESCALATE_AFTER_STEPS: Final = 5
"""Steps a node stays down before the simulated cluster monitor escalates its ``node_failure``
alert to level2: every outage (15 to 30 steps, the showcase's 6) reaches it."""


def announce(state: ClusterState, build: Build) -> Pairs:
    """The first step's news: every node started and joined, with its stores' emitter pools."""
    out: Pairs = []
    size = len(state.nodes)
    for node in state.nodes:
        out.append(
            (
                "lifecycle",
                build(
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
                build(
                    NodeLifecycle,
                    node=node.name,
                    event="joined",
                    cluster_size=size,
                    metadata={"demo": True},
                ),
            )
        )
        for store in state.stores:
            out.append(process(state, build, node, store, "started"))
    out.append(_membership(state, build, "node_added", [node.name for node in state.nodes]))
    return out


def process(
    state: ClusterState, build: Build, node: SimNode, store: str, event: str
) -> tuple[str, Message]:
    """A store's emitter pool process ``event`` (started, crashed, restarted) on ``node``."""
    return (
        "lifecycle",
        build(
            ProcessLifecycle,
            pid=f"<0.{state.rng.randint(200, 9999)}.0>",
            name=f"{store}_emitter_pool",
            module="ExESDB.EmitterPool",
            event=event,
            node=node.name,
            reason="demo" if event != "started" else None,
            restart_count=1 if event == "restarted" else 0,
        ),
    )


def _membership(
    state: ClusterState, build: Build, event: str, affected: list[str]
) -> tuple[str, Message]:
    active = [node.name for node in state.up()]
    return (
        "cluster:membership",
        build(
            ClusterMembership,
            event=event,
            affected_nodes=affected,
            active_nodes=active,
            total_nodes=len(state.nodes),
            quorum_status=state.quorum(),
            originating_node=active[0] if active else state.nodes[0].name,
        ),
    )


def _alert_id(node: SimNode) -> str:
    # The id the alert sink derives from NodeLifecycle ``down``: one node_failure alert,
    # not two, which the ``reconnected`` event resolves.
    return f"node_failure:{node.name}"


def failed(state: ClusterState, build: Build, node: SimNode) -> Pairs:
    """``node`` went down: its lifecycle event, membership, unknown health, the alert, a log."""
    size = len(state.up())
    return [
        (
            "lifecycle",
            build(
                NodeLifecycle,
                node=node.name,
                event="down",
                cluster_size=size,
                metadata={"reason": "heartbeat timeout"},
            ),
        ),
        _membership(state, build, "node_removed", [node.name]),
        ("cluster:health", build(NodeHealth, node=node.name, status="unknown")),
        (
            "node_failure",
            build(
                SystemAlert,
                alert_id=_alert_id(node),
                severity="critical",
                category="system",
                title=f"Node {node.name} is down",
                description=f"{node.name} stopped answering heartbeats",
                source="demo_cluster_monitor",
                node=node.name,
                metadata={"cluster_size": size},
            ),
        ),
        log(state, build, state.pick_up(), "error", f"node {node.name} is down"),
    ]


def escalated(build: Build, node: SimNode) -> Pairs:
    """``node`` is still down: the cluster monitor escalates its ``node_failure`` alert.

    Only the simulated cluster's own escalation, counted in ``exesdb_alert_escalations_total``
    and exported as an OTLP log: the bridge's copy of the alert escalates on its own clock
    (``EXESDB_ESCALATION_AFTER_MS``), and the node is back long before.
    """
    return [
        (
            "alert_escalated",
            build(
                AlertEscalation,
                alert_id=_alert_id(node),
                from_level="level1",
                to_level="level2",
                escalation_reason=(
                    f"{node.name} still down {ESCALATE_AFTER_STEPS} heartbeats after it failed"
                ),
                escalated_by="demo_cluster_monitor",
            ),
        )
    ]


def recovered(state: ClusterState, build: Build, node: SimNode) -> Pairs:
    """``node`` is back: its lifecycle event, membership, the alert acknowledged, a log."""
    return [
        (
            "lifecycle",
            build(
                NodeLifecycle,
                node=node.name,
                event="reconnected",
                cluster_size=len(state.up()),
                metadata={},
            ),
        ),
        _membership(state, build, "node_added", [node.name]),
        (
            "alerts",
            build(
                AlertAck,
                alert_id=_alert_id(node),
                ack_by="demo_cluster_monitor",
                ack_note=f"{node.name} reconnected",
                resolution="node reconnected",
            ),
        ),
        log(state, build, node, "info", f"node {node.name} reconnected"),
    ]
