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
        NodeSummary("a", None, None, None, 40.0, 0.0),
        NodeSummary("b", "degraded", 88.0, 71.5, None, 0.0),
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


def test_a_node_says_how_long_it_has_been_silent():
    """silent_for is the seconds since the node's latest reading of any kind (a status or a
    resource use), so a node still sending one of them is not silent."""
    clock = FakeClock()
    store = translate(
        envelope("node_health_updated", node="a", status="healthy"),
        envelope("node_health_updated", node="b", status="healthy"),
        clock=clock,
    )
    clock.now += 90
    cpu = next(f for f in store.families if f.name == "exesdb_node_cpu_usage_percent")
    cpu.set(("b",), 5.0)  # b reports its CPU use 30 s before the summary is read
    clock.now += 30
    assert [(node.node, node.silent_for) for node in node_summaries(store)] == [
        ("a", 120.0),
        ("b", 30.0),
    ]
