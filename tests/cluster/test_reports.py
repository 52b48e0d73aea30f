"""The ClusterHealth the cluster monitor reports (bridge.cluster.reports), as the docs tell it."""

from __future__ import annotations

from bridge.cluster.cadence import Cadence
from bridge.cluster.nodes import Node
from bridge.cluster.reports import cluster_health
from tests.support import ROOT


def test_a_lone_unhealthy_node_makes_the_cluster_degraded_as_the_metrics_docs_say() -> None:
    """A one-node cluster whose node is unhealthy is degraded with quorum, not unhealthy (that
    takes quorum lost), and docs/metrics.md says so with the fields a user reads."""
    health = cluster_health({"vm": Node(heard=0.0, cadence=Cadence(30.0), health="unhealthy")})
    assert (health.status, health.healthy_nodes, health.unhealthy_nodes, health.quorum_status) == (
        "degraded",
        0,
        ["vm"],
        "available",
    )
    [row] = [
        line
        for line in (ROOT / "docs" / "metrics.md").read_text().splitlines()
        if line.startswith("| `exesdb_cluster_health_status` |")
    ]
    assert "unhealthy` only when it has lost quorum" in row
    for said in (
        f"reports `{health.status}`",
        f"`healthy_nodes: {health.healthy_nodes}`",
        '`unhealthy_nodes: ["vm"]`',
        f"`quorum_status: {health.quorum_status}`",
    ):
        assert said in row
