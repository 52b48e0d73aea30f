"""A bus wired like the bridge's, on its own registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
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


def build_bus(
    keyring: Keyring,
    transport: MemoryTransport | None = None,
    *,
    queue_size: int = 10_000,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> BusKit:
    """A bus wired as the bridge wires it (a verifier counting rejections, queue depths
    registered), on its own registry and an in-process transport (``transport``, if given)."""
    registry = CollectorRegistry()
    metrics = BusMetrics(registry)
    verifier = Verifier(
        keyring,
        ReplayGuard(300.0, 10_000),
        window_seconds=300.0,
        max_bytes=1_048_576,
        count_rejection=metrics.count_rejection,
    )
    transport = transport or MemoryTransport()
    bus = Bus(
        node="node1@host",
        keyring=keyring,
        verifier=verifier,
        metrics=metrics,
        transport=transport,
        queue_size=queue_size,
        sleep=sleep,
    )
    register_queue_depth(bus, registry)
    return BusKit(bus, registry, transport, keyring, verifier)


@pytest.fixture
async def make_bus() -> AsyncIterator[BusFactory]:
    """Build buses (closed at the end); ``queue_size`` sets the default subscriber queue."""
    made: list[Bus] = []

    def build(queue_size: int = 10_000) -> BusKit:
        kit = build_bus(Keyring.from_secrets(SECRET), queue_size=queue_size)
        made.append(kit.bus)
        return kit

    yield build
    for bus in made:
        await bus.aclose(drain_seconds=0.5)
