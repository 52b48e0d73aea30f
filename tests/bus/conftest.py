"""A bus wired like the bridge's, on its own registry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from bridge.bus import (
    Bus,
    BusMetrics,
    Keyring,
    MemoryTransport,
    ReplayGuard,
    Verifier,
    register_queue_depth,
)

SECRET = "bus-test-secret-key-base-at-least-32-chars"


@dataclass
class BusKit:
    """A bus and what a test needs to look at around it."""

    bus: Bus
    registry: CollectorRegistry
    transport: MemoryTransport
    keyring: Keyring
    verifier: Verifier

    def sample(self, name: str, **labels: str) -> float:
        """A metric sample's value (0 when absent)."""
        return self.registry.get_sample_value(name, labels) or 0.0


BusFactory = Callable[..., BusKit]


@pytest.fixture
async def make_bus() -> AsyncIterator[BusFactory]:
    """Build buses (closed at the end); ``queue_size`` sets the default subscriber queue."""
    made: list[Bus] = []

    def build(queue_size: int = 10_000) -> BusKit:
        registry = CollectorRegistry()
        metrics = BusMetrics(registry)
        keyring = Keyring.from_secrets(SECRET)
        verifier = Verifier(
            keyring,
            ReplayGuard(300.0, 10_000),
            window_seconds=300.0,
            max_bytes=1_048_576,
            count_rejection=metrics.count_rejection,
        )
        transport = MemoryTransport()
        bus = Bus(
            node="node1@host",
            keyring=keyring,
            verifier=verifier,
            metrics=metrics,
            transport=transport,
            queue_size=queue_size,
        )
        register_queue_depth(bus, registry)
        made.append(bus)
        return BusKit(bus, registry, transport, keyring, verifier)

    yield build
    for bus in made:
        await bus.aclose(drain_seconds=0.5)
