"""States set by rare messages (feature toggles, system lifecycles) outlive the series TTL while
their node is heard, a node's newest-written KEPT_PER_METRIC of each metric, and nothing else
does."""

from __future__ import annotations

import msgspec

from bridge.bus import Envelope
from bridge.sinks.prometheus import SeriesStore, Translator
from bridge.sinks.prometheus.kept import KEPT_PER_METRIC
from bridge.sinks.prometheus.translate import SYSTEM_STATES
from tests.sinks.prometheus_support import envelope, propagate, sample
from tests.support import ManualClock

TTL = 10.0


def _toggle(feature: str, enabled: bool = True, node: str = "n1") -> Envelope:
    return envelope(
        "feature_toggle_changed",
        node=node,
        feature=feature,
        enabled=enabled,
        previous_state=not enabled,
        changed_by="ops",
    )


def _health(node: str = "n1") -> Envelope:
    """A NodeHealth of ``node`` about itself: a sign of life."""
    return envelope("node_health_updated", node=node, status="healthy")


def _cpu(node: str = "n1") -> Envelope:
    return envelope(
        "resource_usage",
        node=node,
        resource_type="cpu",
        usage_percent=42.5,
        total_available=4,
        current_used=1.7,
    )


def _enabled(store: SeriesStore, feature: str, node: str = "n1") -> float | None:
    return sample(store, "exesdb_feature_enabled", node=node, feature=feature)


def _heard_for(
    translator: Translator, clock: ManualClock, seconds: float, node: str = "n1"
) -> None:
    """``node``'s NodeHealth every 3 s for ``seconds``."""
    for _ in range(int(seconds // 3)):
        clock.advance(3)
        translator.handle_batch([_health(node)], propagate)


def test_a_feature_toggle_and_a_system_lifecycle_stay_past_the_ttl_while_their_node_is_heard():
    """A toggle and a SystemLifecycle sent once are still on /metrics three TTLs on, their node's
    NodeHealth keeping them, and a toggle turned off shows 0 as long."""
    clock = ManualClock()
    store = SeriesStore(ttl_seconds=TTL, clock=clock)
    translator = Translator(store)
    lifecycle = envelope(
        "system_lifecycle_event", event="started", system_name="exesdb", version="0.8.0"
    )
    translator.handle_batch([_toggle("snapshots"), _toggle("archive", False), lifecycle], propagate)
    _heard_for(translator, clock, 3 * TTL)
    assert _enabled(store, "snapshots") == 1.0
    assert _enabled(store, "archive") == 0.0
    started = {"node": "n1", "system": "exesdb", "state": "started"}
    assert sample(store, "exesdb_system_lifecycle_state", **started) == 1.0
    assert sample(store, "exesdb_system_lifecycle_state", **started | {"state": "stopped"}) == 0.0


def test_a_resource_reading_still_expires_while_its_node_is_heard():
    """A CPU reading not sent again expires after the TTL, though its node's NodeHealth and a
    kept toggle go on: only states are kept."""
    clock = ManualClock()
    store = SeriesStore(ttl_seconds=TTL, clock=clock)
    translator = Translator(store)
    translator.handle_batch([_toggle("snapshots"), _cpu()], propagate)
    _heard_for(translator, clock, 2 * TTL)
    assert sample(store, "exesdb_node_cpu_usage_percent", node="n1") is None
    assert _enabled(store, "snapshots") == 1.0


def test_a_kept_state_expires_the_ttl_after_its_node_falls_silent_or_says_farewell():
    """A node's toggle goes the TTL after its last sign of life: its own left is none, nor is
    another's word about it (the cluster monitor's down, or its left when it forgets the node);
    a node never heard keeps nothing."""
    clock = ManualClock()
    store = SeriesStore(ttl_seconds=TTL, clock=clock)
    translator = Translator(store)
    translator.handle_batch([_toggle("snapshots"), _toggle("ghost", node="nowhere")], propagate)
    _heard_for(translator, clock, 2 * TTL)
    assert _enabled(store, "snapshots") == 1.0
    assert _enabled(store, "ghost", node="nowhere") is None  # never heard: the TTL as before
    farewell = envelope("node_lifecycle_event", event="left", cluster_size=1)
    about = envelope("node_lifecycle_event", node="bridge-2", event="down", cluster_size=1)
    about = msgspec.structs.replace(about, payload=about.payload.model_copy(update={"node": "n1"}))
    for step in range(4):  # 12 s, past the TTL, of words that are no sign of life
        clock.advance(3)
        translator.handle_batch([farewell if step % 2 else about], propagate)
    assert _enabled(store, "snapshots") is None


def test_kept_states_still_count_against_the_cap():
    """A flood of invented feature names for a heard node is refused at the cap, and the kept
    ones hold their places past the TTL: a new name is still refused then, until the node falls
    silent for the TTL."""
    clock = ManualClock()
    store = SeriesStore(ttl_seconds=TTL, max_series=50, clock=clock)
    translator = Translator(store)
    translator.handle_batch([_toggle(f"feature-{index}") for index in range(80)], propagate)
    assert len(store) == 50
    refused = sample(
        store, "exesdb_prometheus_series_refused_total", metric="exesdb_feature_enabled"
    )
    assert refused == 30.0
    _heard_for(translator, clock, 2 * TTL)
    translator.handle_batch([_toggle("one-more")], propagate)
    assert _enabled(store, "one-more") is None
    assert len(store) == 50
    clock.advance(TTL + 1)  # silent
    translator.handle_batch([_toggle("one-more")], propagate)
    assert _enabled(store, "one-more") == 1.0
    assert len(store) == 1


def _released(store: SeriesStore, metric: str) -> float | None:
    return sample(store, "exesdb_prometheus_kept_series_released_total", metric=metric)


def test_a_node_keeps_its_newest_written_toggles_up_to_the_limit_the_rest_expire_and_are_counted():
    """Past KEPT_PER_METRIC toggles of one heard node, the oldest-written (a toggle sent again
    counts as new) are let go and counted, and expire with the TTL; the rest stay."""
    clock = ManualClock()
    store = SeriesStore(ttl_seconds=TTL, clock=clock)
    translator = Translator(store)
    translator.handle_batch([_toggle(f"f{index}") for index in range(KEPT_PER_METRIC)], propagate)
    assert _released(store, "exesdb_feature_enabled") == 0.0
    clock.advance(1)
    translator.handle_batch([_toggle("f0", enabled=False)], propagate)  # sent again: newest
    translator.handle_batch([_toggle(f"new{index}") for index in range(4)], propagate)
    assert _released(store, "exesdb_feature_enabled") == 4.0
    _heard_for(translator, clock, 2 * TTL)
    first = [_enabled(store, f"f{index}") for index in range(6)]
    assert first == [0.0, None, None, None, None, 1.0]
    assert _enabled(store, f"f{KEPT_PER_METRIC - 1}") == 1.0
    assert _enabled(store, "new3") == 1.0
    kept = store.values("exesdb_feature_enabled")
    assert len(kept) == KEPT_PER_METRIC


def test_a_flood_of_one_kept_metric_lets_go_of_no_other_and_a_state_set_goes_whole():
    """Invented feature names past the limit let go of toggles only, not the node's start time
    nor its system lifecycles; invented system names past it let go of the oldest system's
    whole state set."""
    clock = ManualClock()
    store = SeriesStore(ttl_seconds=TTL, clock=clock)
    translator = Translator(store)
    joined = envelope("node_lifecycle_event", event="joined", cluster_size=1)

    def lifecycle(system: str) -> Envelope:
        return envelope(
            "system_lifecycle_event", event="started", system_name=system, version="0.8.0"
        )

    systems = KEPT_PER_METRIC // len(SYSTEM_STATES)
    translator.handle_batch(
        [joined, *(lifecycle(f"s{index}") for index in range(systems))], propagate
    )
    clock.advance(1)
    translator.handle_batch(
        [_toggle(f"junk{index}") for index in range(2 * KEPT_PER_METRIC)], propagate
    )
    translator.handle_batch([lifecycle("one-more")], propagate)
    assert _released(store, "exesdb_feature_enabled") == float(KEPT_PER_METRIC)
    assert _released(store, "exesdb_system_lifecycle_state") == float(len(SYSTEM_STATES))
    assert _released(store, "exesdb_node_start_time_seconds") is None
    _heard_for(translator, clock, 2 * TTL)
    assert sample(store, "exesdb_node_start_time_seconds", node="n1") is not None
    states = store.values("exesdb_system_lifecycle_state")
    assert {labels[1] for labels in states} == {f"s{index}" for index in range(1, systems)} | {
        "one-more"
    }
    assert len(states) == KEPT_PER_METRIC
