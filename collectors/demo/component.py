"""The ``--demo`` component: publishes a simulation's steps on the bus, on a schedule."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from bridge.bus import PublishStatus
from bridge.component import Context
from bridge.integration import Integration
from bridge.messages import Message
from collectors.demo.simulation import DEMO_SEED, Simulation
from collectors.demo.state import Pairs
from collectors.health import thresholds_from
from collectors.scheduler import CollectorMetrics, Schedule

__all__ = ["DemoCluster", "Steps", "demo_component"]

_logger = logging.getLogger(__name__)


class Steps(Protocol):
    """What the component publishes: a ``Simulation``, seen from here."""

    @property
    def interval(self) -> float:
        """Seconds between steps."""

    def step(self) -> Pairs:
        """The next step's (topic, message) pairs."""

    def published(self, message: Message, message_id: str) -> None:
        """Told that a message of a step went out, with the id of its envelope."""


class DemoCluster:
    """A Component publishing a simulated ExESDB cluster's traffic every ``interval`` seconds.

    Every message goes through the bridge's ``Integration`` onto the signed bus, so it reaches
    the same sinks as real traffic.
    """

    name = "demo"
    required = False

    def __init__(
        self,
        integration: Integration,
        simulation: Steps,
        *,
        metrics: CollectorMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._integration = integration
        self._simulation = simulation
        self.interval = simulation.interval
        # The collectors' scheduler: steady ticks, failures logged and counted in
        # exesdb_collector_runs_total{collector="demo",result="error"}, quiet while disabled.
        self.schedule = Schedule(
            self.name,
            self.interval,
            self._tick,
            enabled=integration.enabled,
            metrics=metrics,
            clock=clock,
            sleep=sleep,
        )

    async def start(self) -> None:
        """Begin publishing, one step every ``interval`` seconds."""
        if not self.schedule.running:
            _logger.info("demo traffic on: a simulated cluster, a step every %.2fs", self.interval)
        self.schedule.start()

    def readiness(self) -> str | None:
        """Always ready: demo traffic is optional."""
        return None

    async def aclose(self) -> None:
        """Stop publishing; idempotent."""
        await self.schedule.aclose()

    def _tick(self) -> None:
        self.publish_step()

    def publish_step(self) -> int:
        """Run one step and publish what it produced; returns how many were published."""
        if not self._integration.enabled():
            return 0  # the runtime switch is off: the simulated cluster goes quiet too
        count = 0
        for topic, message in self._simulation.step():
            result = self._integration.publish(topic, message)
            if result.status is PublishStatus.PUBLISHED:
                count += 1
                if result.message_id is not None:
                    self._simulation.published(message, result.message_id)
        return count


def demo_component(context: Context) -> DemoCluster:
    """The ``--demo`` factory: a DemoCluster on the bridge's integration and thresholds.

    It steps every second (sooner when ``EXESDB_HEALTH_BROADCAST_INTERVAL`` is shorter), so
    the dashboards fill at once.
    """
    settings = context.settings
    integration = context.integration
    simulation = Simulation(
        integration.build,
        interval=min(1.0, settings.health_broadcast_interval / 1000),
        seed=DEMO_SEED,
        thresholds=thresholds_from(settings),
    )
    return DemoCluster(
        integration, simulation, metrics=CollectorMetrics.for_registry(context.registry)
    )
