"""What the simulated nodes report about their health: node, resources, components, cluster.

``ex_esdb_health`` (NodeHealth, ComponentHealth, the raft HealthCheck, ClusterHealth) and the
resource usage of ``ex_esdb_metrics``.
"""

from __future__ import annotations

from typing import Final

from bridge.messages import ClusterHealth, ComponentHealth, HealthCheck, NodeHealth, ResourceUsage
from collectors.demo.state import NODE_MEMORY_BYTES, Build, ClusterState, Pairs, SimNode

__all__ = ["cluster_health", "node_health"]

_GiB: Final = 1024.0**3
_TOTALS: Final = {
    "cpu": 4.0,
    "memory": float(NODE_MEMORY_BYTES),
    "disk": 200 * _GiB,
    "network": 1e9,
}


def node_health(state: ClusterState, build: Build, node: SimNode) -> Pairs:
    """An up node's health, resource usage, store components and raft check."""
    status = node.status
    load_avg = round(node.cpu / 100 * 4 + state.rng.uniform(0, 0.3), 2)
    # The raft check rolled before any message is built (the draws in the order they always
    # were), so that the NodeHealth's "raft" says what the raft HealthCheck beside it says.
    raft_failed = state.rng.random() < (0.3 if status == "unhealthy" else 0.02)
    out: Pairs = [
        (
            "cluster:health",
            build(
                NodeHealth,
                node=node.name,
                status=status,
                checks={"cpu": status == "healthy", "raft": not raft_failed},
                load_avg=load_avg,
                memory_usage=round(node.memory, 2),
                disk_usage=round(node.disk, 2),
            ),
        )
    ]
    for resource, percent in (
        ("cpu", node.cpu),
        ("memory", node.memory),
        ("disk", node.disk),
        ("network", node.network),
    ):
        total = _TOTALS[resource]
        out.append(
            (
                "resources",
                build(
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
    for store in state.stores:
        for component in ("persistence", "emitter_pool"):
            out.append(
                (
                    f"{store}:health",
                    build(
                        ComponentHealth,
                        component=component,
                        node=node.name,
                        status=component_status,
                        details={"store_id": store},
                    ),
                )
            )
    out.append(
        (
            "cluster:health",
            build(
                HealthCheck,
                check_name="raft_leader",
                node=node.name,
                result="fail" if raft_failed else "pass",
                duration_ms=round(state.rng.uniform(0.5, 8), 3),
                details={},
                error="no leader elected" if raft_failed else None,
            ),
        )
    )
    return out


def cluster_health(state: ClusterState, build: Build) -> Pairs:
    """The cluster's health: quorum, and the up nodes by status."""
    up = state.up()
    healthy = [node.name for node in up if node.status == "healthy"]
    degraded = [node.name for node in up if node.status == "degraded"]
    # A down node is in neither list: the sink counts it as down (total - the others).
    unhealthy = [node.name for node in up if node.status == "unhealthy"]
    quorum = state.quorum()
    if quorum == "lost":
        status = "unhealthy"
    elif degraded or unhealthy:
        status = "degraded"
    else:
        status = "healthy"
    return [
        (
            "cluster:health",
            build(
                ClusterHealth,
                status=status,
                healthy_nodes=len(healthy),
                total_nodes=len(state.nodes),
                degraded_nodes=degraded,
                unhealthy_nodes=unhealthy,
                quorum_status=quorum,
            ),
        )
    ]
