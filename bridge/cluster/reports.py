"""What the cluster monitor publishes of the nodes: their ClusterHealth, and membership changes.

What it means for users: docs/redis.md#cluster-membership. Each message names at most
``LISTED_NODES`` nodes, whatever the cluster's size: it stays far below the bus's size limit.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping, Sequence
from typing import Final, Literal

from bridge.cluster.nodes import Node
from bridge.messages import ClusterHealth, ClusterMembership
from bridge.messages.health import HealthStatus

__all__ = ["LISTED_NODES", "Change", "cluster_health", "memberships"]

# Nodes named in one ClusterMembership; more changes make more messages.
LISTED_NODES: Final = 100

Change = Literal["node_added", "node_removed"]


def cluster_health(nodes: Mapping[str, Node]) -> ClusterHealth:
    """The cluster's health as the tracked ``nodes`` show it."""
    up = [name for name, node in nodes.items() if node.state == "up"]
    degraded = [name for name in up if nodes[name].health == "degraded"]
    unhealthy = [name for name in up if nodes[name].health == "unhealthy"]
    total = len(nodes)
    # Down nodes count until forgotten or evicted, a flood's silent names too: nothing heard
    # tells them from real nodes down (docs/redis.md, "Quorum after a flood").
    quorum = 2 * len(up) > total
    # Unhealthy means quorum lost: nodes up but unhealthy (a one-node cluster's only node too)
    # make the cluster degraded, each named in unhealthy_nodes (docs/metrics.md).
    if not quorum:
        status: HealthStatus = "unhealthy"
    elif len(up) < total or degraded or unhealthy:
        status = "degraded"
    else:
        status = "healthy"
    return ClusterHealth(
        status=status,
        healthy_nodes=len(up) - len(degraded) - len(unhealthy),
        total_nodes=total,
        # Named up to LISTED_NODES each, as membership messages are, and counted in full:
        # the message stays far below the bus's size limit whatever the cluster's size.
        degraded_nodes=heapq.nsmallest(LISTED_NODES, degraded),
        unhealthy_nodes=heapq.nsmallest(LISTED_NODES, unhealthy),
        quorum_status="available" if quorum else "lost",
        # Counted only past a cut list: a count an older replica's model does not know is
        # refused there whole (docs/redis.md#cluster-membership, on rolling upgrades).
        degraded_count=len(degraded) if len(degraded) > LISTED_NODES else None,
        unhealthy_count=len(unhealthy) if len(unhealthy) > LISTED_NODES else None,
    )


def memberships(
    changes: Mapping[Change, Sequence[str]], *, health: ClusterHealth, active: int, node: str
) -> Iterator[ClusterMembership]:
    """ClusterMembership naming the nodes of ``changes`` (at most ``LISTED_NODES`` a message),
    each with the ``active`` nodes' count and ``health``'s quorum, from ``node``."""
    for event, names in changes.items():
        for start in range(0, len(names), LISTED_NODES):
            chunk = names[start : start + LISTED_NODES]
            yield ClusterMembership(
                event=event,
                affected_nodes=chunk,
                active_nodes=chunk if event == "node_added" else [],
                total_nodes=active,
                quorum_status=health.quorum_status,
                originating_node=node,
            )
