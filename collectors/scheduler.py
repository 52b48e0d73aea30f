"""Runs a collection on a fixed interval: no drift, no overlap, slow runs skip ticks.

Ticks fall at ``start + k * interval`` whatever each run took, so the schedule does not drift.
A run is awaited before the next one starts; ticks that pass while a run is still going are
skipped and counted (``exesdb_collector_skipped_total``), never stacked. While the integration is
disabled ticks pass without running. Clock and sleep are injected for tests.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from bridge.tasks import cancel_and_wait

__all__ = ["CollectorMetrics", "Schedule"]

_logger = logging.getLogger(__name__)

Collect = Callable[[], Awaitable[None] | None]
Sleep = Callable[[float], Awaitable[None]]
_METRICS: Final[weakref.WeakKeyDictionary[CollectorRegistry, CollectorMetrics]] = (
    weakref.WeakKeyDictionary()
)


class CollectorMetrics:
    """Self-metrics of the collectors, one set per registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "exesdb_collector_runs",
            "Collections run, by collector and result (ok, error).",
            ["collector", "result"],
            registry=registry,
        )
        self.skipped = Counter(
            "exesdb_collector_skipped",
            "Ticks skipped because the collector's previous run was still going.",
            ["collector"],
            registry=registry,
        )
        self.duration = Gauge(
            "exesdb_collector_duration_seconds",
            "How long the collector's latest run took.",
            ["collector"],
            registry=registry,
        )

    @classmethod
    def for_registry(cls, registry: CollectorRegistry) -> CollectorMetrics:
        """The one set of collector metrics on ``registry``."""
        metrics = _METRICS.get(registry)
        if metrics is None:
            metrics = _METRICS[registry] = cls(registry)
        return metrics


class Schedule:
    """Runs ``collect`` every ``interval`` seconds from ``start()`` until ``aclose()``.

    The first run is at ``start()`` unless ``first_at_once`` is False (then one interval later).
    """

    def __init__(
        self,
        name: str,
        interval: float,
        collect: Collect,
        *,
        enabled: Callable[[], bool] = lambda: True,
        first_at_once: bool = True,
        metrics: CollectorMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"{name}: interval must be positive, got {interval}")
        self.name = name
        self.interval = interval
        self._collect = collect
        self._enabled = enabled
        self._first_at_once = first_at_once
        self._clock = clock
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        if metrics is not None:
            self._ok = metrics.runs.labels(name, "ok")
            self._error = metrics.runs.labels(name, "error")
            self._skipped = metrics.skipped.labels(name)
            self._duration = metrics.duration.labels(name)
            self._has_metrics = True
        else:
            self._has_metrics = False

    @property
    def running(self) -> bool:
        """True while the schedule's task runs."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start ticking on the running loop."""
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name=f"collector-{self.name}"
            )

    async def _loop(self) -> None:
        next_at = self._clock() + (0.0 if self._first_at_once else self.interval)
        while not self._closed:
            delay = next_at - self._clock()
            if delay > 0:
                await self._sleep(delay)
                continue  # the sleep may end early (or late): re-read the clock
            if self._enabled():
                await self.run_once()
            next_at += self.interval
            behind = self._clock() - next_at
            if behind >= 0:
                # Ticks that fell due during the run: skip them rather than stack them.
                missed = math.floor(behind / self.interval) + 1
                next_at += missed * self.interval
                if self._has_metrics:
                    self._skipped.inc(missed)
                _logger.debug("collector %s skipped %d tick(s)", self.name, missed)

    async def run_once(self) -> bool:
        """One collection now; a failure is logged, counted and survived. True when it worked."""
        started = self._clock()
        try:
            result = self._collect()
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            if self._has_metrics:
                self._error.inc()
            _logger.exception("collector %s failed", self.name)
            return False
        finally:
            if self._has_metrics:
                self._duration.set(max(0.0, self._clock() - started))
        if self._has_metrics:
            self._ok.inc()
        return True

    async def aclose(self) -> None:
        """Stop ticking (a run in progress is cancelled); idempotent."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
