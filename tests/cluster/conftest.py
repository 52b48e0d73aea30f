"""Fixtures of the cluster monitor's tests: the clock and replicas, closed afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bridge.bus import Coordinator
from tests.cluster.helpers import Clock, Replica


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make_replica(clock: Clock) -> AsyncIterator[Callable[..., object]]:
    started: list[Replica] = []

    async def make(node: str, coordinator: Coordinator | None = None, **options: Any) -> Replica:
        replica = await Replica(node, clock, coordinator, **options).start()
        started.append(replica)
        return replica

    yield make
    for replica in started:
        await replica.monitor.aclose()
        await replica.bridge.aclose()
