"""A bus wired as the bridge wires it, on its own registry, for the tests of the bus and
of what publishes on it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

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
    node: str = "node1@host",
    queue_size: int = 10_000,
    queue_bytes: int = 128 * 1024 * 1024,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.time,
) -> BusKit:
    """A bus wired as the bridge wires it (a verifier counting rejections, queue depths
    registered), on its own registry and an in-process transport (``transport``, if given);
    ``clock`` is its replay memory's."""
    registry = CollectorRegistry()
    metrics = BusMetrics(registry)
    verifier = Verifier(
        keyring,
        ReplayGuard(300.0, 10_000, clock),
        window_seconds=300.0,
        max_bytes=1_048_576,
        count_rejection=metrics.count_rejection,
    )
    transport = transport or MemoryTransport()
    bus = Bus(
        node=node,
        keyring=keyring,
        verifier=verifier,
        metrics=metrics,
        transport=transport,
        queue_size=queue_size,
        queue_bytes=queue_bytes,
        sleep=sleep,
    )
    register_queue_depth(bus, registry)
    return BusKit(bus, registry, transport, keyring, verifier)
