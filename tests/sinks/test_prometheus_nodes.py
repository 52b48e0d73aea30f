"""The cluster's nodes read back from the Prometheus sink's series (for the status page)."""

from __future__ import annotations

from bridge.sinks.prometheus import NodeSummary, node_summaries
from tests.sinks.prometheus_support import FakeClock, envelope, translate


def test_each_node_has_its_status_and_resource_use():
    """NodeHealth and ResourceUsage of a node become one summary; nodes come sorted by name."""
    store = translate(
        envelope("node_health_updated", node="b", status="degraded", memory_usage=71.5),
        envelope(
            "resource_usage",
            node="b",
            resource_type="cpu",
            usage_percent=88.0,
            total_available=8,
            current_used=7,
        ),
        envelope(
            "resource_usage",
            node="a",
            resource_type="disk",
            usage_percent=40.0,
            total_available=100,
            current_used=40,
        ),
    )
    assert node_summaries(store) == [
        NodeSummary("a", None, None, None, 40.0),
        NodeSummary("b", "degraded", 88.0, 71.5, None),
    ]


def test_the_latest_status_wins_and_silent_nodes_drop_out():
    """A node's status is the one its latest NodeHealth set; once its series expire it is gone."""
    clock = FakeClock()
    store = translate(
        envelope("node_health_updated", node="a", status="unhealthy"),
        envelope("node_health_updated", node="a", status="healthy"),
        clock=clock,
    )
    assert [node.status for node in node_summaries(store)] == ["healthy"]
    clock.now += 601  # past the default TTL of 600 s
    assert node_summaries(store) == []
