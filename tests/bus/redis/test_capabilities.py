"""What the Redis transport offers beyond frames, and how it fails when Redis cannot be reached."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.exceptions import RedisError

from bridge.bus import StateChange, TransportCapabilities
from bridge.bus.redis import RedisTransport
from bridge.errors import TransportError
from tests.support import free_port


@pytest.fixture
async def unreachable() -> AsyncIterator[RedisTransport]:
    """A Redis transport (never started) whose Redis does not answer; its URL has a password."""
    transport = RedisTransport(f"redis://:hunter2@127.0.0.1:{free_port()}/0", node="node-a")
    yield transport
    await transport.aclose()


def test_it_declares_every_capability(unreachable: RedisTransport) -> None:
    """Shared, with a coordinator, the work-queue lease, shared state and the node name check."""
    capabilities = unreachable.capabilities
    assert isinstance(capabilities, TransportCapabilities)
    assert capabilities.shared
    assert capabilities.lease is not None
    assert capabilities.state is not None
    assert not capabilities.lease.leading
    assert capabilities.node_name is not None
    assert capabilities.node_name.problem() is None  # no other process seen under node-a


CALLS: list[tuple[str, Callable[[TransportCapabilities], Awaitable[Any]]]] = [
    ("swap", lambda c: c.coordinator.swap("cluster:state:n1", "down", 1_000)),
    ("once", lambda c: c.coordinator.once("cluster:announce:n1", 1_000)),
    ("refresh", lambda c: c.coordinator.refresh({"cluster:node:n1": "up"}, 1_000)),
    ("once_per_period", lambda c: c.coordinator.once_per_period("cluster:health", 1_000)),
    ("load", lambda c: c.state.load("alerts")),  # type: ignore[union-attr]
    ("read", lambda c: c.state.read("alerts", ["a1"])),  # type: ignore[union-attr]
    ("commit", lambda c: c.state.commit("alerts", StateChange(put={"a1": b"{}"}))),  # type: ignore[union-attr]
    ("notes", lambda c: c.state.notes("alerts")),  # type: ignore[union-attr]
    ("forget", lambda c: c.state.forget("alerts", ["n1"])),  # type: ignore[union-attr]
]


@pytest.mark.parametrize(("name", "call"), CALLS, ids=[name for name, _ in CALLS])
async def test_a_capability_raises_transport_error_when_redis_is_unreachable(
    unreachable: RedisTransport,
    name: str,
    call: Callable[[TransportCapabilities], Awaitable[Any]],
) -> None:
    """The Redis error is translated at the boundary: a TransportError caused by it, naming
    Redis without the password."""
    with pytest.raises(TransportError) as caught:
        await call(unreachable.capabilities)
    assert isinstance(caught.value.__cause__, RedisError | OSError)
    assert "Redis at redis://:<redacted>@127.0.0.1:" in str(caught.value)
    assert "hunter2" not in str(caught.value)
