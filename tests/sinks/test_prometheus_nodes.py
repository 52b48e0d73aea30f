"""The cluster's nodes read back from the Prometheus sink's series (for the status page)."""

from __future__ import annotations

from collections.abc import Callable

from bridge.bus import Envelope
from bridge.sinks.prometheus import NodeSummary, SeriesStore, Translator, node_summaries
from tests.sinks.prometheus_support import envelope, propagate, translate
from tests.support import ManualClock


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
    clock = ManualClock()
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
    clock = ManualClock()
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


def lifecycle(node: str, event: str) -> Envelope:
    """A NodeLifecycle ``event`` about ``node``, as the cluster monitor publishes it."""
    return envelope("node_lifecycle_event", node=node, event=event, cluster_size=2)


def feed(clock: ManualClock, *envelopes: Envelope) -> tuple[SeriesStore, Callable[..., None]]:
    """A fresh store with ``envelopes`` translated into it, and a function translating more."""
    store = SeriesStore(clock=clock)
    translator = Translator(store)

    def more(*later: Envelope) -> None:
        translator.handle_batch(later, propagate)

    more(*envelopes)
    return store, more


def test_a_node_announced_down_or_left_shows_so_with_the_seconds_since():
    """A node whose latest lifecycle event is ``down`` or ``left``, said after its latest
    reading, has that as its status (its last figures kept) and the seconds since it was said."""
    clock = ManualClock()
    store, more = feed(
        clock,
        envelope("node_health_updated", node="a", status="healthy", memory_usage=30.0),
        envelope("node_health_updated", node="b", status="healthy"),
        envelope("node_health_updated", node="c", status="degraded"),
        lifecycle("a", "joined"),
    )
    clock.now += 30
    more(lifecycle("a", "down"), lifecycle("b", "left"))
    clock.now += 45
    assert node_summaries(store) == [
        NodeSummary("a", "down", None, 30.0, None, 75.0, 45.0),
        NodeSummary("b", "left", None, None, None, 75.0, 45.0),
        NodeSummary("c", "degraded", None, None, None, 75.0),
    ]


def test_a_node_heard_after_its_down_shows_its_health_again():
    """A reconnected node, or one whose reading came after the down, is no longer down."""
    clock = ManualClock()
    store, more = feed(clock, lifecycle("a", "down"), lifecycle("b", "down"))
    clock.now += 10
    more(
        envelope("node_health_updated", node="a", status="healthy"),
        envelope("node_health_updated", node="b", status="healthy"),
        lifecycle("b", "reconnected"),
    )
    assert [(n.node, n.status, n.gone_for) for n in node_summaries(store)] == [
        ("a", "healthy", None),
        ("b", "healthy", None),
    ]


def test_an_unknown_health_after_the_down_leaves_the_node_down():
    """A health status of ``unknown`` reported after the down (what a monitor says of a node it
    cannot reach) does not bring the node back: it stays down; a known status does."""
    clock = ManualClock()
    store, more = feed(
        clock,
        envelope("node_health_updated", node="a", status="healthy"),
        envelope("node_health_updated", node="b", status="healthy"),
    )
    clock.now += 10
    more(lifecycle("a", "down"), lifecycle("b", "down"))
    clock.now += 1
    more(
        envelope("node_health_updated", node="a", status="unknown"),
        envelope("node_health_updated", node="b", status="unknown"),
    )
    clock.now += 5
    more(envelope("node_health_updated", node="b", status="degraded"))
    assert [(n.node, n.status, n.gone_for) for n in node_summaries(store)] == [
        ("a", "down", 6.0),
        ("b", "degraded", None),
    ]


def test_a_gone_node_stays_listed_until_its_announcement_expires():
    """A down node whose readings expired is still listed as down (with no figures), until the
    series of its announcement expires too."""
    clock = ManualClock()
    store, more = feed(clock, envelope("node_health_updated", node="a", status="healthy"))
    clock.now += 100
    more(lifecycle("a", "down"))
    clock.now += 550  # the reading is 650 s old, past the default TTL of 600 s; the down 550 s
    assert node_summaries(store) == [NodeSummary("a", "down", None, None, None, 550.0, 550.0)]
    clock.now += 51
    assert node_summaries(store) == []


def test_a_node_heard_joined_is_listed_before_its_first_reading():
    """A node heard only by its NodeLifecycle ``joined`` (the heartbeat with which a replica
    answers another's start) is listed at once, without status or figures, silent since that
    event, until its first reading gives them or its series expire; so is one that joined again
    after it left, and one heartbeating on after its readings expired."""
    clock = ManualClock()
    store, more = feed(clock, lifecycle("a", "joined"), lifecycle("b", "left"))
    clock.now += 5
    more(lifecycle("b", "joined"))
    clock.now += 2
    assert node_summaries(store) == [
        NodeSummary("a", None, None, None, None, 7.0),
        NodeSummary("b", None, None, None, None, 2.0),
    ]
    more(envelope("node_health_updated", node="a", status="healthy"))
    assert node_summaries(store)[0] == NodeSummary("a", "healthy", None, None, None, 0.0)
    clock.now += 590
    more(lifecycle("a", "joined"))  # a heartbeat: a bridge whose broadcasts are off
    clock.now += 11  # the reading past the default TTL of 600 s, the heartbeat 11 s old
    assert node_summaries(store) == [NodeSummary("a", None, None, None, None, 11.0)]
    clock.now += 600
    assert node_summaries(store) == []
