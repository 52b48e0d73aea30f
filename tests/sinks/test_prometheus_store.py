"""The series store: expiry after the TTL, the cardinality cap, formatting and caching."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from bridge.sinks.prometheus import MetricType, SeriesStore
from bridge.sinks.prometheus.store import Family, format_value
from tests.sinks.prometheus_support import envelope, propagate, sample, translate
from tests.support import ManualClock


def _store(clock: ManualClock, ttl: float = 60.0, max_series: int = 100) -> SeriesStore:
    return SeriesStore(ttl_seconds=ttl, max_series=max_series, clock=clock)


def put_state(
    store: SeriesStore,
    family: Family,
    labels: tuple[str, ...],
    states: tuple[str, ...],
    current: str,
) -> bool:
    """Write a state set as the translator does: inside ``store.writing()``."""
    with store.writing():
        return family.put_state(labels, states, current)


def test_series_not_reported_again_expire_after_the_ttl():
    """A series untouched for the TTL disappears; one written meanwhile stays."""
    clock = ManualClock()
    store = _store(clock, ttl=60)
    gauge = store.family("exesdb_test_value", MetricType.GAUGE, "A test gauge.", ("node",))
    gauge.set(("old",), 1.0)
    gauge.set(("fresh",), 2.0)
    clock.now += 59
    gauge.set(("fresh",), 3.0)
    assert 'exesdb_test_value{node="old"} 1.0\n' in store.render()
    clock.now += 2  # old is now 61 s stale, fresh 2 s
    text = store.render()
    assert 'node="old"' not in text
    assert 'exesdb_test_value{node="fresh"} 3.0\n' in text
    assert "exesdb_prometheus_series_expired_total 1.0\n" in text
    assert "exesdb_prometheus_series 1.0\n" in text


def test_an_expired_family_disappears_with_its_metadata():
    """When a family's last series expires, its HELP and TYPE lines go too."""
    clock = ManualClock()
    store = _store(clock, ttl=10)
    store.family("exesdb_test_value", MetricType.GAUGE, "A test gauge.").set((), 1.0)
    clock.now += 11
    text = store.render()
    assert "exesdb_test_value" not in text
    assert "exesdb_prometheus_series_expired_total 1.0\n" in text


def test_an_expired_counter_starts_again_from_zero():
    """A counter reported again after expiring restarts (Prometheus treats it as a reset)."""
    clock = ManualClock()
    store = _store(clock, ttl=10)
    counter = store.family("exesdb_test_events", MetricType.COUNTER, "Test events.")
    counter.inc((), 5)
    clock.now += 11
    assert "exesdb_test_events" not in store.render()
    counter.inc(())
    assert "exesdb_test_events_total 1.0\n" in store.render()


def test_a_state_set_written_again_after_expiring_comes_back_whole():
    """A state set that expired is made again by its next write, every state in it (the
    series it was last written to are not reused)."""
    clock = ManualClock()
    store = _store(clock, ttl=10)
    states = store.family("exesdb_test_state", MetricType.GAUGE, "A state set.", ("n", "s"))
    put_state(store, states, ("a",), ("x", "y"), "x")
    put_state(store, states, ("a",), ("x", "y"), "y")
    clock.now += 11
    assert "exesdb_test_state" not in store.render()
    put_state(store, states, ("a",), ("x", "y"), "x")
    text = store.render()
    assert 'exesdb_test_state{n="a",s="x"} 1.0\n' in text
    assert 'exesdb_test_state{n="a",s="y"} 0.0\n' in text
    assert "exesdb_prometheus_series 2.0\n" in text


def test_translated_series_expire_with_the_store_clock():
    """Series made from messages expire too; the sink's own counters do not."""
    clock = ManualClock()
    store = translate(envelope("node_health_updated", status="healthy"), clock=clock)
    clock.now += 601
    text = store.render()
    assert "exesdb_node_health_status" not in text
    assert (
        'exesdb_prometheus_messages_total{pubsub="ex_esdb_health",tag="node_health_updated"}'
        in text
    )
    assert "exesdb_alerts_active" not in text  # the alert sink's, from its outbox


def test_cap_refuses_new_label_sets_and_counts_them():
    """Past max_series a new label set is refused and counted; known ones still update."""
    clock = ManualClock()
    store = _store(clock, max_series=3)
    gauge = store.family("exesdb_test_value", MetricType.GAUGE, "A test gauge.", ("id",))
    assert all(gauge.set((str(i),), float(i)) for i in range(3))
    assert not gauge.set(("3",), 3.0)
    assert not gauge.set(("4",), 4.0)
    assert gauge.set(("0",), 10.0)
    text = store.render()
    assert 'id="3"' not in text
    assert 'id="4"' not in text
    assert 'exesdb_test_value{id="0"} 10.0\n' in text
    assert 'exesdb_prometheus_series_refused_total{metric="exesdb_test_value"} 2.0\n' in text
    assert "exesdb_prometheus_series_limit 3.0\n" in text
    assert len(store) == 3


def test_cap_makes_room_once_series_expire():
    """Expired series free their place under the cap for new label sets."""
    clock = ManualClock()
    store = _store(clock, ttl=10, max_series=2)
    gauge = store.family("exesdb_test_value", MetricType.GAUGE, "A test gauge.", ("id",))
    gauge.set(("a",), 1.0)
    gauge.set(("b",), 1.0)
    assert not gauge.set(("c",), 1.0)
    clock.now += 11
    assert gauge.set(("c",), 1.0)
    assert len(store) == 1


def _scans(store: SeriesStore) -> float:
    """How many times the store has scanned the series held for expired ones. Reading it
    sweeps too, but only when a second has passed and a series can have expired: none of the
    reads in these tests does."""
    return sample(store, "exesdb_prometheus_series_scans_total") or 0.0


def test_a_series_refused_at_the_cap_costs_no_scan_while_nothing_can_have_expired():
    """At the cap, a flood of new label sets within the TTL of every series held is refused
    and counted without scanning the series held: the cost of a refusal does not grow with
    the cap."""
    clock = ManualClock()
    store = _store(clock, ttl=60, max_series=100)
    gauge = store.family("exesdb_test_value", MetricType.GAUGE, "A test gauge.", ("id",))
    assert all(gauge.set((str(i),), 1.0) for i in range(100))
    clock.now += 59
    assert not any(gauge.set((f"new-{i}",), 1.0) for i in range(1000))
    assert _scans(store) == 0
    assert sample(store, "exesdb_prometheus_series_refused_total", metric="exesdb_test_value") == (
        1000
    )


def test_at_the_cap_a_new_series_is_admitted_as_soon_as_an_old_one_has_expired():
    """With no scrape in between, the first new label set after some series pass the TTL
    takes their place; a series written again since keeps its own, and each scan either frees
    room or moves the next possible expiry later, so refusals in between cost no scan."""
    clock = ManualClock(1000.0)
    store = _store(clock, ttl=60, max_series=4)
    gauge = store.family("exesdb_test_value", MetricType.GAUGE, "A test gauge.", ("id",))
    gauge.set(("a",), 1.0)
    gauge.set(("b",), 1.0)  # a and b written at 1000
    clock.now = 1030.0
    gauge.set(("c",), 1.0)
    gauge.set(("d",), 1.0)  # c and d at 1030
    clock.now = 1050.0
    gauge.set(("a",), 2.0)  # a written again: now due at 1110
    clock.now = 1060.0
    assert not gauge.set(("e",), 1.0)  # exactly the TTL: nothing has expired yet
    assert _scans(store) == 0
    clock.now = 1060.5
    assert gauge.set(("e",), 1.0)  # b has expired: e takes its place at once
    assert not gauge.set(("f",), 1.0)  # a was written again, so it stays
    clock.now = 1080.0
    assert not any(gauge.set((f"g-{i}",), 1.0) for i in range(100))
    assert _scans(store) == 1  # the one that freed b's place; c and d are next, at 1090
    clock.now = 1090.5
    assert gauge.set(("f",), 1.0)
    assert gauge.set(("g",), 1.0)
    assert _scans(store) == 2
    assert set(store.values("exesdb_test_value")) == {("a",), ("e",), ("f",), ("g",)}


def test_a_scan_that_finds_every_series_written_again_moves_the_next_expiry_later():
    """When the oldest series held was written again before its TTL passed, the scan that
    finds it finds nothing to drop, and the refusals after it wait for the new oldest write."""
    clock = ManualClock(0.0)
    store = _store(clock, ttl=10, max_series=2)
    gauge = store.family("exesdb_test_value", MetricType.GAUGE, "A test gauge.", ("id",))
    gauge.set(("a",), 1.0)
    clock.now = 4.0
    gauge.set(("b",), 1.0)
    clock.now = 8.0
    gauge.set(("a",), 2.0)
    clock.now = 11.0
    assert not gauge.set(("c",), 1.0)  # a's first write is past the TTL, but a was written again
    assert _scans(store) == 1
    assert not any(gauge.set((f"d-{i}",), 1.0) for i in range(50))  # b is due at 14
    assert _scans(store) == 1
    clock.now = 14.5
    assert gauge.set(("c",), 1.0)
    assert set(store.values("exesdb_test_value")) == {("a",), ("c",)}


def test_cap_admits_a_state_set_whole_or_not_at_all():
    """A state set that does not fit under the cap is refused entirely, not half written."""
    clock = ManualClock()
    store = _store(clock, max_series=5)
    states = store.family("exesdb_test_state", MetricType.GAUGE, "A state set.", ("n", "s"))
    assert put_state(store, states, ("a",), ("x", "y", "z"), "x")
    assert not put_state(store, states, ("b",), ("x", "y", "z"), "y")
    assert 'n="b"' not in store.render()
    assert put_state(
        store, states, ("a",), ("x", "y", "z"), "z"
    )  # known series: no new room needed
    refused = sample(store, "exesdb_prometheus_series_refused_total", metric="exesdb_test_state")
    assert refused == 3


def test_flood_of_label_sets_stays_bounded():
    """A publisher inventing a new label value per message cannot grow the store past the cap."""
    clock = ManualClock()
    store = SeriesStore(max_series=50, clock=clock)
    from bridge.sinks.prometheus import Translator

    flood = [envelope("debug_trace", component=f"c{i}", operation="op") for i in range(500)]
    Translator(store).handle_batch(flood, propagate)
    assert len(store) == 50
    assert (
        sample(store, "exesdb_prometheus_series_refused_total", metric="exesdb_debug_traces") == 450
    )


def test_wrong_label_count_is_a_programming_error():
    """Giving the wrong number of label values raises, naming the family."""
    store = _store(ManualClock())
    gauge = store.family("exesdb_test_value", MetricType.GAUGE, "A test gauge.", ("a", "b"))
    with pytest.raises(ValueError, match="exesdb_test_value"):
        gauge.set(("only",), 1.0)


def test_family_names_are_declared_once():
    """Declaring a family name twice raises."""
    store = _store(ManualClock())
    store.family("exesdb_test_value", MetricType.GAUGE, "A test gauge.")
    with pytest.raises(ValueError, match="already declared"):
        store.family("exesdb_test_value", MetricType.GAUGE, "Again.")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1.0"),
        (0.1, "0.1"),
        (1e-7, "1e-07"),
        (12345678901234.0, "12345678901234.0"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
)
def test_values_are_formatted_as_prometheus_reads_them(value: float, text: str):
    """Finite values keep full precision; infinities and NaN use Prometheus's spelling."""
    assert format_value(value) == text


def test_unchanged_families_are_served_from_cache_and_changes_show():
    """A second render without writes returns the same text; a write shows up in the next."""
    clock = ManualClock()
    store = _store(clock)
    gauge = store.family("exesdb_test_value", MetricType.GAUGE, "A test gauge.", ("id",))
    gauge.set(("a",), 1.0)
    first = store.render()
    assert store.render() == first
    gauge.set(("a",), 2.0)
    assert 'exesdb_test_value{id="a"} 2.0\n' in store.render()
    gauge.set(("b",), 0.0)  # a new series at the default value still invalidates the cache
    assert 'exesdb_test_value{id="b"} 0.0\n' in store.render()


def test_collect_reads_what_render_shows_as_values():
    """collect() gives each rendered family as a prometheus_client family, with the same samples."""
    clock = ManualClock()
    store = translate(
        envelope("node_health_updated", status="degraded", memory_usage=71.5),
        envelope("log_entry", level="warn", message="m", module="x", metadata={}),
        clock=clock,
    )
    families = {family.name: family for family in store.collect()}
    rendered = {
        line.split()[2] for line in store.render().splitlines() if line.startswith("# TYPE")
    }
    # Text 0.0.4 names a counter's metadata after its sample (``_total``), the family without.
    assert {name.removesuffix("_total") for name in rendered} == set(families)
    memory = families["exesdb_node_memory_usage_percent"]
    assert (memory.type, [(s.name, s.labels, s.value) for s in memory.samples]) == (
        "gauge",
        [("exesdb_node_memory_usage_percent", {"node": "n1"}, 71.5)],
    )
    health = {s.labels["status"]: s.value for s in families["exesdb_node_health_status"].samples}
    assert (health["degraded"], sum(health.values())) == (1.0, 1.0)


def test_a_counter_that_comes_back_after_expiring_has_a_new_created_time():
    """Each counter series carries _created; one that expired and returns is created anew."""
    clock = ManualClock(1000.0)
    store = SeriesStore(ttl_seconds=10, clock=clock, wall_clock=lambda: 1_700_000_000.0)
    counter = store.family("exesdb_test_events", MetricType.COUNTER, "Test events.", ("node",))
    counter.inc(("a",), 5)
    first = sample(store, "exesdb_test_events_created", node="a")
    assert first == 1_700_000_000.0
    clock.now += 5
    counter.inc(("a",))
    assert sample(store, "exesdb_test_events_created", node="a") == first
    clock.now += 11
    assert sample(store, "exesdb_test_events_total", node="a") is None  # expired
    counter.inc(("a",))
    assert sample(store, "exesdb_test_events_total", node="a") == 1.0
    assert sample(store, "exesdb_test_events_created", node="a") == first + 16
    assert "_created" not in store.render()  # the text keeps the 0.0.4 shape it always had


def test_label_values_written_to_the_store_are_escaped():
    """Quotes, backslashes and newlines written to a family directly are escaped."""
    store = _store(ManualClock())
    gauge = store.family("exesdb_test_value", MetricType.GAUGE, "A test gauge.", ("node",))
    gauge.set(('a"b\\c\nd',), 1.0)
    assert 'exesdb_test_value{node="a\\"b\\\\c\\nd"} 1.0\n' in store.render()


def test_help_text_is_escaped_as_prometheus_client_escapes_it_in_each_format():
    """HELP lines match prometheus_client's for the same text: backslash and line feed escaped in
    both formats, the double quote in OpenMetrics only (its escaped-string)."""
    text = 'Say "a\\b"\nthen.'
    store = _store(ManualClock())
    store.family("exesdb_test_value", MetricType.GAUGE, text, ("node",)).set(("n1",), 1.0)
    registry = CollectorRegistry()
    Gauge("exesdb_test_value", text, registry=registry)
    for openmetrics, encode in ((False, generate_latest), (True, generate_openmetrics)):
        help_line = encode(registry).decode().splitlines()[0]
        assert help_line.startswith("# HELP exesdb_test_value Say ")
        assert help_line + "\n" in store.render(openmetrics)


def test_writes_of_a_batch_share_one_reading_of_the_clock():
    """Inside writing(), put/add/put_state stamp every series with the same time."""
    clock = ManualClock()
    store = _store(clock, ttl=60)
    gauge = store.family("exesdb_test_value", MetricType.GAUGE, "A test gauge.", ("node",))
    with store.writing():
        gauge.put(("a",), 1.0)
        clock.now += 30
        gauge.put(("b",), 2.0)
    clock.now += 31  # 61 s after the batch's reading, 31 s after b was written
    assert "exesdb_test_value" not in store.render()


def test_the_last_tenth_of_the_cap_is_kept_for_the_bridges_own_node():
    """Series of other nodes stop a tenth short of max_series, and are refused and counted;
    the bridge's own node's new series still fit, up to the cap itself."""
    clock = ManualClock()
    store = SeriesStore(max_series=20, clock=clock, own_node="me")
    gauge = store.family("exesdb_test_value", MetricType.GAUGE, "A test gauge.", ("node", "id"))
    flood = [gauge.set(("flood", str(i)), 1.0) for i in range(30)]
    assert flood == [True] * 18 + [False] * 12
    assert sample(store, "exesdb_prometheus_series_refused_total", metric="exesdb_test_value") == 12
    assert gauge.set(("me", "a"), 1.0)
    assert gauge.set(("me", "b"), 1.0)
    assert not gauge.set(("me", "c"), 1.0)
    assert len(store) == 20
    assert 'exesdb_test_value{node="me",id="b"} 1.0\n' in store.render()


def test_the_kept_tenth_is_for_the_bridges_own_writes_not_a_sender_naming_its_node():
    """With own_write, a series labelled with the bridge's node but written for a sender (not
    the bridge's own write) stops at nine tenths like any other; the bridge's own still fit."""
    clock = ManualClock()
    own = [False]
    store = SeriesStore(max_series=20, clock=clock, own_node="me", own_write=lambda: own[0])
    gauge = store.family("exesdb_test_value", MetricType.GAUGE, "A test gauge.", ("node", "id"))
    flood = [gauge.set(("me", f"junk-{i}"), 1.0) for i in range(30)]
    assert flood == [True] * 18 + [False] * 12
    own[0] = True
    assert gauge.set(("me", "a"), 1.0)
    assert gauge.set(("me", "b"), 1.0)
    assert not gauge.set(("me", "c"), 1.0)
    assert len(store) == 20


def test_a_state_set_of_the_bridges_own_node_fits_in_the_kept_share():
    """A state set labelled with the bridge's own node is admitted where another node's is not."""
    clock = ManualClock()
    store = SeriesStore(max_series=10, clock=clock, own_node="me")
    states = store.family("exesdb_test_state", MetricType.GAUGE, "A state set.", ("node", "s"))
    assert put_state(store, states, ("other",), ("x", "y", "z"), "x")
    assert put_state(store, states, ("another",), ("x", "y", "z"), "x")
    assert put_state(store, states, ("third",), ("x", "y", "z"), "x")
    assert not put_state(store, states, ("fourth",), ("x",), "x")
    assert put_state(store, states, ("me",), ("x",), "x")


def test_series_past_the_byte_cap_are_refused_and_counted_whatever_their_number():
    """9 000 series with 4 000-character label values stay under max_series but not under
    max_bytes: new ones stop there, counted as refused, and /metrics stays under the cap;
    known ones still update."""
    clock = ManualClock()
    store = SeriesStore(max_series=10_000, max_bytes=8 * 1024 * 1024, clock=clock)
    gauge = store.family("exesdb_test_value", MetricType.GAUGE, "A test gauge.", ("a", "b"))
    admitted = [gauge.set((f"{i:04d}".ljust(4_000, "x"), "y" * 4_000), 1.0) for i in range(9_000)]
    kept = admitted.count(True)
    assert 0 < kept < 9_000
    assert admitted == [True] * kept + [False] * (9_000 - kept)
    refused = sample(store, "exesdb_prometheus_series_refused_total", metric="exesdb_test_value")
    assert refused == 9_000 - kept
    assert gauge.set((f"{0:04d}".ljust(4_000, "x"), "y" * 4_000), 2.0)
    text = store.render()
    assert len(text.encode()) <= 8 * 1024 * 1024 + 2_000  # the self-metrics besides
    held = sample(store, "exesdb_prometheus_series_bytes")
    assert held is not None
    assert 8 * 1024 * 1024 - 8_100 < held <= 8 * 1024 * 1024
    assert sample(store, "exesdb_prometheus_series_bytes_limit") == 8 * 1024 * 1024
    assert gauge.set(("short", "label"), 1.0)  # a small one still fits in what is left


def test_expired_series_give_their_bytes_back():
    """Bytes held go down as series expire, so new long series fit again."""
    clock = ManualClock()
    store = SeriesStore(ttl_seconds=10, max_bytes=1024 * 1024, clock=clock)
    gauge = store.family("exesdb_test_value", MetricType.GAUGE, "A test gauge.", ("a",))
    assert all(gauge.set((f"{i:03d}".ljust(100_000, "x"),), 1.0) for i in range(10))
    assert not gauge.set(("late".ljust(100_000, "x"),), 1.0)
    clock.now += 11
    assert gauge.set(("late".ljust(100_000, "x"),), 1.0)
    store.render()
    held = sample(store, "exesdb_prometheus_series_bytes")
    assert held is not None
    assert 100_000 < held < 101_000


def test_the_last_tenth_of_the_byte_cap_is_kept_for_the_bridges_own_node():
    """Long series of other nodes stop a tenth short of max_bytes; the bridge's own still fit,
    state sets included (admitted whole or not at all)."""
    clock = ManualClock()
    store = SeriesStore(max_bytes=1024 * 1024, clock=clock, own_node="me")
    gauge = store.family("exesdb_test_value", MetricType.GAUGE, "A test gauge.", ("node", "id"))
    flood = [gauge.set(("flood", str(i).ljust(50_000, "x")), 1.0) for i in range(30)]
    assert flood == [True] * 18 + [False] * 12
    states = store.family("exesdb_test_state", MetricType.GAUGE, "A state set.", ("node", "s"))
    assert not put_state(store, states, ("flood",), ("x" * 30_000, "y" * 30_000), "x")
    assert put_state(store, states, ("me",), ("x" * 30_000, "y" * 30_000), "x")
    assert gauge.set(("me", "a".ljust(30_000, "x")), 1.0)
