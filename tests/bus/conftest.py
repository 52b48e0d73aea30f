"""A bus wired like the bridge's, on its own registry."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.bus import Bus, Keyring
from tests.bus.helpers import SECRET, BusFactory, BusKit, build_bus


@pytest.fixture
async def make_bus() -> AsyncIterator[BusFactory]:
    """Build buses (closed at the end); ``queue_size`` and ``queue_bytes`` set the default
    subscriber queue's bounds."""
    made: list[Bus] = []

    def build(queue_size: int = 10_000, queue_bytes: int = 128 * 1024 * 1024) -> BusKit:
        kit = build_bus(
            Keyring.from_secrets(SECRET), queue_size=queue_size, queue_bytes=queue_bytes
        )
        made.append(kit.bus)
        return kit

    yield build
    for bus in made:
        await bus.aclose(drain_seconds=0.5)
