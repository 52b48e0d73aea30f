"""The health collector: host resources, the bridge's own process and its components.

Every ``EXESDB_HEALTH_BROADCAST_INTERVAL`` ms it publishes a HealthCheck (with the check's
measured duration), ResourceUsage for cpu, memory and disk, a NodeHealth whose status is the worst
of the per-resource statuses (from the ``EXESDB_*_DEGRADED`` / ``EXESDB_*_UNHEALTHY``
thresholds), PerformanceMetrics for the process's RSS and open file descriptors, and a
ComponentHealth for the bus and each component. Every sample shows in those messages as read:
the check fails when the NodeHealth beside it is unhealthy (or unknown: the reading failed),
unheld as that status is, its ``error`` naming the unhealthy resources; a degraded node passes.
A MetricAlert (warning or critical) is published when a resource's status has been degraded or
unhealthy for ``EXESDB_ALERT_FOR_MS``, as a Prometheus rule's ``for:`` holds an alert back
(``bridge.hold``), so one busy sample raises nothing; and again with every sample while it still
holds, as Prometheus sends a firing alert at every evaluation, so that an alert resolved by
someone else's message (another sender's NodeHealth, an acknowledgement with a resolution) is
raised again rather than left resolved while the resource still breaches. The log tells only
the changes. CPU is left out until the probe has measured it over a whole interval
(collectors/host.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from bridge.component import Context
from bridge.hold import Hold
from bridge.integration import Integration
from bridge.messages import (
    ComponentHealth,
    HealthCheck,
    MetricAlert,
    NodeHealth,
    PerformanceMetric,
    ResourceUsage,
)
from bridge.messages.health import resource_metric
from bridge.settings import Settings
from collectors.host import HostProbe, HostSample, PsutilProbe
from collectors.scheduler import CollectorMetrics, Schedule

__all__ = [
    "CHECK_NAME",
    "PROCESS_COMPONENT",
    "HealthCollector",
    "Status",
    "Thresholds",
    "health_collector",
    "resource_statuses",
    "thresholds_from",
    "worst_status",
]

_logger = logging.getLogger(__name__)

Status = Literal["healthy", "degraded", "unhealthy"]
CHECK_NAME: Final = "host_resources"
PROCESS_COMPONENT: Final = "exesdb_bridge"
_RANK: Final[dict[str, int]] = {"healthy": 0, "degraded": 1, "unhealthy": 2}
_LEVELS: Final[tuple[Status, ...]] = ("healthy", "degraded", "unhealthy")
_DISABLED_AT: Final = 100.0
_NOT_TOPIC: Final = re.compile(r"[^A-Za-z0-9_.:-]")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Percentages at which a resource is degraded or unhealthy; 100 or more disables one."""

    degraded: float
    unhealthy: float

    def status(self, percent: float) -> Status:
        """The status of a reading."""
        if self.unhealthy < _DISABLED_AT and percent >= self.unhealthy:
            return "unhealthy"
        if self.degraded < _DISABLED_AT and percent >= self.degraded:
            return "degraded"
        return "healthy"


def thresholds_from(settings: Settings) -> dict[str, Thresholds]:
    """The cpu, memory and disk thresholds ``EXESDB_*_DEGRADED`` / ``_UNHEALTHY`` set."""
    return {name: Thresholds(*pair) for name, pair in settings.resource_thresholds.items()}


def resource_statuses(
    readings: Mapping[str, float], thresholds: Mapping[str, Thresholds]
) -> dict[str, Status]:
    """Each resource's status from its reading (percent); healthy without thresholds."""
    return {
        resource: limits.status(percent) if (limits := thresholds.get(resource)) else "healthy"
        for resource, percent in readings.items()
    }


def worst_status(statuses: Iterable[Status]) -> Status:
    """A node's status: the worst of its resources' (healthy when there are none)."""
    return max(statuses, key=_RANK.__getitem__, default="healthy")


ReadinessSource = Callable[[], Mapping[str, Mapping[str, Any]]]


class HealthCollector:
    """Publishes the node's and the components' health on a schedule."""

    name = "health_collector"
    required = False

    def __init__(
        self,
        integration: Integration,
        *,
        probe: HostProbe,
        thresholds: Mapping[str, Thresholds],
        readiness: ReadinessSource | None = None,
        interval_seconds: float = 30.0,
        alert_for: float = 0.0,
        metrics: CollectorMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._integration = integration
        self._probe = probe
        self._thresholds = dict(thresholds)
        self._readiness = readiness
        self._timer = timer
        self._clock = clock
        self._statuses: dict[str, Status] = {}
        # What each resource's held status is, and what the last sample held (for the log).
        # Readings more than two and a half intervals apart (the integration switched off, the
        # probe failing, two ticks skipped) start the wait afresh: a silence is not a hold. One
        # skipped tick (two intervals, plus however late the next one runs) never does.
        self._hold = Hold(alert_for, forget_after=2.5 * interval_seconds)
        self._alerted: dict[str, Status] = {}
        self.schedule = Schedule(
            "health",
            interval_seconds,
            self.collect,
            enabled=integration.enabled,
            metrics=metrics,
            clock=clock,
            sleep=sleep,
        )

    async def start(self) -> None:
        """Start the schedule (the first collection runs at once)."""
        self.schedule.start()

    def readiness(self) -> str | None:
        """Always None: host health goes onto the bus, it never makes the bridge unready."""
        return None

    async def aclose(self) -> None:
        """Stop the schedule; idempotent."""
        await self.schedule.aclose()

    # -- one collection --

    def collect(self) -> None:
        """Read the host once and publish what it shows."""
        started = self._timer()
        sample: HostSample | None = None
        failure: str | None = None
        try:
            sample = self._probe.sample()
        except Exception as exc:  # a failed reading is a failed check, reported, not raised
            failure = f"{type(exc).__name__}: {exc}"
            _logger.warning("host health check failed: %s", failure)
        duration_ms = max(0.0, (self._timer() - started) * 1000)
        statuses: dict[str, Status] = {}
        if sample is not None:
            statuses = resource_statuses(self._readings(sample), self._thresholds)
        self._publish_check(sample, statuses, duration_ms, failure)
        if sample is None:
            self._publish("node:health", NodeHealth, status="unknown", checks={"error": failure})
        else:
            self._publish_node(sample, statuses)
            self._publish_alerts(sample, statuses)
        self._publish_components()

    @staticmethod
    def _readings(sample: HostSample) -> dict[str, float]:
        readings = {"memory": sample.memory_percent, "disk": sample.disk_percent}
        if sample.cpu_percent is not None:  # not measured over a whole window yet
            readings = {"cpu": sample.cpu_percent, **readings}
        return readings

    def _publish(self, topic: str, model: Any, **fields: Any) -> None:
        self._integration.publish(topic, self._integration.build(model, **fields))

    def _publish_check(
        self,
        sample: HostSample | None,
        statuses: Mapping[str, Status],
        duration_ms: float,
        failure: str | None,
    ) -> None:
        if sample is not None and failure is None:
            failure = self._unhealthy_resources(sample, statuses)
        self._publish(
            "health_checks",
            HealthCheck,
            check_name=CHECK_NAME,
            # Fails exactly when the NodeHealth of the same sample is unhealthy (or unknown),
            # so "checks passing" never sits beside an unhealthy node; degraded still passes.
            result="pass" if failure is None else "fail",
            duration_ms=duration_ms,
            details=dict(statuses),
            error=failure,
        )

    def _unhealthy_resources(
        self, sample: HostSample, statuses: Mapping[str, Status]
    ) -> str | None:
        """What makes the check fail, "memory 96.5% (unhealthy at 95%)", or None."""
        readings = self._readings(sample)
        unhealthy = [
            f"{resource} {readings[resource]:.1f}%"
            f" (unhealthy at {self._thresholds[resource].unhealthy:g}%)"
            for resource, status in statuses.items()
            if status == "unhealthy"
        ]
        return ", ".join(unhealthy) or None

    def _publish_node(self, sample: HostSample, statuses: Mapping[str, Status]) -> None:
        worst = worst_status(statuses.values())
        checks: dict[str, Any] = {
            resource: {"usage_percent": percent, "status": statuses[resource]}
            for resource, percent in self._readings(sample).items()
        }
        checks["process"] = {"rss_bytes": sample.rss_bytes, "open_fds": sample.open_fds}
        self._publish(
            "node:health",
            NodeHealth,
            status=worst,
            checks=checks,
            load_avg=sample.load_average,
            memory_usage=sample.memory_percent,
            disk_usage=sample.disk_percent,
        )
        cpus = float(sample.cpu_count)
        usages = [
            ("memory", sample.memory_percent, sample.memory_total, sample.memory_used),
            ("disk", sample.disk_percent, sample.disk_total, sample.disk_used),
        ]
        if sample.cpu_percent is not None:
            usages.insert(0, ("cpu", sample.cpu_percent, cpus, cpus * sample.cpu_percent / 100))
        for resource, percent, total, used in usages:
            self._publish(
                "resources",
                ResourceUsage,
                resource_type=resource,
                usage_percent=min(max(percent, 0.0), 100.0),
                total_available=max(total, 0.0),
                current_used=max(used, 0.0),
            )
        self._publish(
            "process",
            PerformanceMetric,
            metric_name="resident_memory_bytes",
            value=sample.rss_bytes,
            unit="bytes",
            component=PROCESS_COMPONENT,
        )
        if sample.open_fds is not None:
            self._publish(
                "process",
                PerformanceMetric,
                metric_name="open_fds",
                value=float(sample.open_fds),
                unit="count",
                component=PROCESS_COMPONENT,
            )

    def _publish_alerts(self, sample: HostSample, statuses: Mapping[str, Status]) -> None:
        readings = self._readings(sample)
        now = self._clock()
        for resource, status in statuses.items():
            previous = self._statuses.get(resource, "healthy")
            if status != previous:  # every sample's status is in NodeHealth; the log waits
                _logger.debug("%s is %s (was %s)", resource, status, previous)
            held = _LEVELS[self._hold.observe(resource, _RANK[status], now)]
            alerted = self._alerted.get(resource, "healthy")
            self._alerted[resource] = held
            if held == "healthy":
                if alerted != "healthy":
                    _logger.info("%s is healthy again (%.1f%%)", resource, readings[resource])
                continue
            limits = self._thresholds[resource]
            threshold = limits.unhealthy if held == "unhealthy" else limits.degraded
            if held != alerted:  # sent again every sample, told once
                _logger.warning(
                    "%s %s for %gs (%.1f%%, threshold %g%%): alerting",
                    resource,
                    held,
                    self._hold.for_seconds,
                    readings[resource],
                    threshold,
                )
            self._publish(
                "metric_alert",
                MetricAlert,
                metric_name=resource_metric(resource),
                current_value=readings[resource],
                threshold_value=threshold,
                threshold_type="max",
                severity="critical" if held == "unhealthy" else "warning",
            )
        self._statuses = {**self._statuses, **statuses}

    def _publish_components(self) -> None:
        if self._readiness is None:
            return
        for component, check in self._readiness().items():
            ready = bool(check.get("ready"))
            status: Status = (
                "healthy" if ready else ("unhealthy" if check.get("required") else "degraded")
            )
            self._publish(
                _NOT_TOPIC.sub("_", component)[:120] + ":health",
                ComponentHealth,
                component=component,
                status=status,
                details={"reason": check.get("reason"), "required": bool(check.get("required"))},
            )


def health_collector(context: Context) -> HealthCollector:
    """The factory ``default_components()`` lists."""
    settings = context.settings
    interval = settings.health_broadcast_interval / 1000
    return HealthCollector(
        context.integration,
        # The first CPU reading covers a whole interval, never just the bridge's start-up.
        probe=PsutilProbe(cpu_window=interval),
        thresholds=thresholds_from(settings),
        readiness=context.readiness,
        interval_seconds=interval,
        alert_for=settings.alert_for_seconds,
        metrics=CollectorMetrics.for_registry(context.registry),
    )
