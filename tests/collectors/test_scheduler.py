"""The collector schedule: fixed ticks without drift, no overlap, skipped ticks counted."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry

from collectors import CollectorMetrics, Schedule
from tests.collectors.fakes import VirtualTime
from tests.support import async_wait_until


def _skipped(registry: CollectorRegistry, name: str) -> float | None:
    """``exesdb_collector_skipped_total`` of the collector ``name``."""
    return registry.get_sample_value("exesdb_collector_skipped_total", {"collector": name})


async def _run_until(schedule: Schedule, runs: list[float], count: int) -> None:
    schedule.start()
    await async_wait_until(lambda: len(runs) >= count, within=5, what=f"{count} runs")
    await schedule.aclose()


async def test_runs_at_fixed_ticks_without_drift():
    """Each run starts at start + k * interval even though every run takes time."""
    virtual = VirtualTime()
    start = virtual.now
    runs: list[float] = []

    def collect() -> None:
        runs.append(virtual.now)
        virtual.now += 0.3  # each run takes 0.3 s of the 1 s interval

    registry = CollectorRegistry()
    metrics = CollectorMetrics.for_registry(registry)
    schedule = Schedule(
        "t", 1.0, collect, clock=virtual.clock, sleep=virtual.sleep, metrics=metrics
    )
    await _run_until(schedule, runs, 6)
    assert runs[:6] == pytest.approx([start + k for k in range(6)])
    assert _skipped(registry, "t") == 0


async def test_slow_run_skips_ticks_instead_of_stacking():
    """A run longer than the interval skips the ticks it overlapped, counted, then realigns."""
    virtual = VirtualTime()
    start = virtual.now
    runs: list[float] = []
    registry = CollectorRegistry()

    def collect() -> None:
        runs.append(virtual.now)
        if len(runs) == 2:
            virtual.now += 2.5  # the run started at +1 ends at +3.5: ticks +2 and +3 are lost

    schedule = Schedule(
        "slow",
        1.0,
        collect,
        clock=virtual.clock,
        sleep=virtual.sleep,
        metrics=CollectorMetrics.for_registry(registry),
    )
    await _run_until(schedule, runs, 4)
    assert runs[:4] == pytest.approx([start, start + 1, start + 4, start + 5])
    assert _skipped(registry, "slow") == 2
    ok = registry.get_sample_value(
        "exesdb_collector_runs_total", {"collector": "slow", "result": "ok"}
    )
    assert ok is not None
    assert ok >= 4


async def test_runs_never_overlap():
    """An async collection still running when its next tick falls due is not run twice."""
    virtual = VirtualTime()
    active = 0
    most = 0
    runs: list[float] = []

    async def collect() -> None:
        nonlocal active, most
        active += 1
        most = max(most, active)
        runs.append(virtual.now)
        await virtual.sleep(1.5)  # longer than the interval
        active -= 1

    registry = CollectorRegistry()
    metrics = CollectorMetrics.for_registry(registry)
    schedule = Schedule(
        "overlap", 1.0, collect, clock=virtual.clock, sleep=virtual.sleep, metrics=metrics
    )
    await _run_until(schedule, runs, 4)
    assert most == 1
    assert (_skipped(registry, "overlap") or 0) >= 3


async def test_publishes_nothing_while_disabled():
    """Ticks pass without running while the enabled check says no, and resume after."""
    virtual = VirtualTime()
    enabled = False
    runs: list[float] = []
    schedule = Schedule(
        "switch",
        1.0,
        lambda: runs.append(virtual.now),
        enabled=lambda: enabled,
        clock=virtual.clock,
        sleep=virtual.sleep,
    )
    schedule.start()
    await async_wait_until(lambda: virtual.now >= 110, within=5, what="ten virtual seconds")
    assert runs == []
    enabled = True
    await async_wait_until(lambda: len(runs) >= 2, within=5, what="runs once enabled")
    await schedule.aclose()
    assert all(t == pytest.approx(round(t)) for t in runs)  # still on the original ticks


async def test_a_failing_collection_is_counted_and_survived():
    """An exception in a run is counted as an error and the schedule keeps ticking."""
    virtual = VirtualTime()
    registry = CollectorRegistry()
    calls: list[float] = []

    def collect() -> None:
        calls.append(virtual.now)
        if len(calls) == 1:
            raise RuntimeError("boom")

    schedule = Schedule(
        "flaky",
        1.0,
        collect,
        clock=virtual.clock,
        sleep=virtual.sleep,
        metrics=CollectorMetrics.for_registry(registry),
    )
    await _run_until(schedule, calls, 3)
    labels = {"collector": "flaky", "result": "error"}
    assert registry.get_sample_value("exesdb_collector_runs_total", labels) == 1


async def test_first_run_can_wait_one_interval():
    """With first_at_once=False the first run is one interval after start."""
    virtual = VirtualTime()
    start = virtual.now
    runs: list[float] = []
    schedule = Schedule(
        "later",
        5.0,
        lambda: runs.append(virtual.now),
        first_at_once=False,
        clock=virtual.clock,
        sleep=virtual.sleep,
    )
    await _run_until(schedule, runs, 1)
    assert runs[0] == pytest.approx(start + 5)


async def test_stops_promptly_and_idempotently_with_real_time():
    """aclose() interrupts a long real sleep at once, and a second aclose() is harmless."""
    runs: list[float] = []
    schedule = Schedule("real", 3600.0, lambda: runs.append(time.monotonic()))
    schedule.start()
    await async_wait_until(lambda: runs, within=5, what="the first run")
    started = time.monotonic()
    async with asyncio.timeout(10):  # a regression fails in seconds, not in an hour
        await schedule.aclose()
        await schedule.aclose()
    # At once; waiting out the sleep would take an hour. The bound leaves a loaded host seconds.
    assert time.monotonic() - started < 5
    assert not schedule.running  # its task has ended: no run can follow
    assert len(runs) == 1


async def test_a_deadline_around_the_close_fires_while_the_run_unwinds():
    """A deadline that passes while aclose() waits for the cancelled run to unwind raises
    TimeoutError: the close does not swallow the cancellation meant for its caller."""
    started, ended = asyncio.Event(), asyncio.Event()

    async def collect() -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # never set: a run that hangs
        except asyncio.CancelledError:
            await asyncio.Event().wait()  # and, cancelled, unwinds until cancelled again
            raise
        finally:
            ended.set()

    schedule = Schedule("unwinding", 3600.0, collect)
    schedule.start()
    await asyncio.wait_for(started.wait(), 10)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await schedule.aclose()
    assert ended.is_set()  # the run has ended all the same


def test_interval_must_be_positive():
    """A zero or negative interval is refused, naming the collector."""
    with pytest.raises(ValueError, match="bad"):
        Schedule("bad", 0, lambda: None)
