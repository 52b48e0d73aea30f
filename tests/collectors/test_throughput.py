"""The throughput collector: per-operation throughput and latency, bus delivery, host I/O."""

from __future__ import annotations

from typing import Any

import pytest
from msgspec.structs import replace

from bridge.bus import BatchSubscription
from bridge.messages import LatencyMetric, PerformanceMetric, ThroughputMetric
from collectors import IoCounters, ThroughputCollector
from tests.collectors.fakes import FakeProbe, VirtualTime, make_bus, make_integration
from tests.sinks.prometheus_support import envelope


def _collector(integration=None, probe=None, wall=None) -> Any:
    virtual = VirtualTime()
    integration = integration or make_integration()
    collector = ThroughputCollector(
        integration,
        probe=probe,
        clock=virtual.clock,
        sleep=virtual.sleep,
        wall_clock=wall or (lambda: 0.0),
    )
    return collector, integration, virtual


def test_publishes_throughput_and_six_latency_figures_per_operation():
    """Each drained operation gives success and error throughput and six latency figures."""
    collector, integration, virtual = _collector()
    recorder = integration.recorder
    for ms in range(1, 101):
        recorder.record("append", ms / 1000, ok=ms % 10 != 0)
    virtual.now += 20.0
    collector.collect()
    throughput = [(t, m) for t, m in integration.published if isinstance(m, ThroughputMetric)]
    assert [(t, m.count) for t, m in throughput] == [("throughput", 90), ("throughput:error", 10)]
    ok = throughput[0][1]
    assert ok.duration_ms == pytest.approx(20_000)
    assert ok.rate_per_sec == pytest.approx(5.0)
    latency = {m.percentile: m for m in integration.of(LatencyMetric)}
    assert set(latency) == {"p50", "p95", "p99", "min", "max", "avg"}
    assert latency["min"].latency_ms == pytest.approx(1.0)
    assert latency["max"].latency_ms == pytest.approx(100.0)
    assert latency["avg"].latency_ms == pytest.approx(50.5)
    assert latency["p50"].latency_ms == pytest.approx(50, rel=0.05)
    assert latency["p99"].latency_ms == pytest.approx(99, rel=0.05)
    assert all(m.sample_count == 100 for m in latency.values())
    integration.published.clear()
    collector.collect()  # nothing recorded since: nothing to say
    assert integration.published == []


def test_bus_deliveries_are_recorded_per_instance():
    """The bus subscriber records publish-to-delivery latency overall and per instance."""
    bus = make_bus()
    integration = make_integration()
    message = envelope("log_entry", level="info", message="m", module="M")
    collector = ThroughputCollector(integration, bus=bus, wall_clock=lambda: message.unix_ts + 0.25)
    assert any(s.name == "collectors.bus" for s in bus.subscriptions)
    collector.on_batch([message])
    collector.on_batch([message])
    drained = {s.operation: s for s in integration.recorder.drain()}
    assert set(drained) == {"bus.delivery", "bus.ex_esdb_logging"}
    assert drained["bus.delivery"].count == 2
    assert drained["bus.delivery"].latency.maximum == pytest.approx(0.25)


def test_bus_delivery_batches_are_recorded_per_message():
    """A delivered batch records one latency per message, per instance, from one clock read."""
    bus = make_bus()
    integration = make_integration()
    log = envelope("log_entry", level="info", message="m", module="M")
    older = replace(log, unix_ts=log.unix_ts - 0.5)
    clock = iter([log.unix_ts + 0.25])
    collector = ThroughputCollector(integration, bus=bus, wall_clock=lambda: next(clock))
    subscription = next(s for s in bus.subscriptions if s.name == "collectors.bus")
    assert isinstance(subscription, BatchSubscription)
    collector.on_batch([log, older, log])
    drained = {s.operation: s for s in integration.recorder.drain()}
    assert set(drained) == {"bus.delivery", "bus.ex_esdb_logging"}
    for snapshot in drained.values():
        assert snapshot.count == 3
        assert snapshot.latency.minimum == pytest.approx(0.25)
        assert snapshot.latency.maximum == pytest.approx(0.75)
        assert snapshot.latency.mean == pytest.approx((0.25 + 0.75 + 0.25) / 3)


@pytest.mark.parametrize(("after", "latency"), [(0.25, 0.25), (-1.0, 0.0)])
def test_a_batch_sharing_one_timestamp_is_recorded_per_instance(after: float, latency: float):
    """A batch whose messages share one timestamp (as a sender's batch mostly does) records
    each instance's messages at that one latency, none below zero (a clock behind the sender's)."""
    integration = make_integration()
    log = envelope("log_entry", level="info", message="m", module="M")
    health = envelope("node_health_updated", status="healthy")
    assert health.unix_ts == log.unix_ts
    assert health.instance != log.instance
    collector = ThroughputCollector(integration, wall_clock=lambda: log.unix_ts + after)
    collector.on_batch([log, health, log])
    drained = {s.operation: s for s in integration.recorder.drain()}
    counts = {operation: snapshot.count for operation, snapshot in drained.items()}
    assert counts == {"bus.delivery": 3, "bus.ex_esdb_logging": 2, "bus.ex_esdb_health": 1}
    for snapshot in drained.values():
        assert snapshot.latency.minimum == snapshot.latency.maximum == pytest.approx(latency)


def test_host_io_becomes_byte_rates():
    """Disk and network counters become bytes per second over the interval."""
    probe = FakeProbe()
    collector, integration, virtual = _collector(probe=probe)
    probe.counters = IoCounters(1000 + 5000, 2000 + 10_000, 3000, None)
    virtual.now += 10.0
    collector.collect()
    rates = {m.metric_name: m.value for m in integration.of(PerformanceMetric)}
    assert rates == {
        "disk_read_bytes_per_second": 500.0,
        "disk_write_bytes_per_second": 1000.0,
        "network_receive_bytes_per_second": 0.0,
    }
    assert {m.unit for m in integration.of(PerformanceMetric)} == {"bytes_per_second"}


async def test_the_first_io_rates_leave_out_the_bytes_moved_before_start():
    """The first disk and network rates count the first interval's bytes, not the start's."""
    probe = FakeProbe()
    collector, integration, virtual = _collector(probe=probe)
    # Made, then started half a minute later (files opened, Redis reached, bytes moved).
    probe.counters = IoCounters(1000 + 90_000, 2000, 3000 + 60_000, 4000)
    virtual.now += 30.0
    await collector.start()
    probe.counters = IoCounters(1000 + 90_000 + 5000, 2000, 3000 + 60_000 + 2000, 4000)
    virtual.now += 10.0
    collector.collect()
    await collector.aclose()
    rates = {m.metric_name: m.value for m in integration.of(PerformanceMetric)}
    assert rates == {
        "disk_read_bytes_per_second": 500.0,
        "disk_write_bytes_per_second": 0.0,
        "network_receive_bytes_per_second": 200.0,
        "network_transmit_bytes_per_second": 0.0,
    }


def test_publishes_nothing_while_disabled():
    """With the integration off nothing is published (and the figures wait for later)."""
    collector, integration, virtual = _collector(integration=make_integration(enabled=False))
    integration.recorder.record("op", 0.01)
    virtual.now += 1
    collector.collect()
    assert integration.published == []
