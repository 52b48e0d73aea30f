"""What the Redis transport offers beyond frames, and how it fails when Redis cannot be reached."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.exceptions import RedisError

from bridge.bus import TransportCapabilities
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
    """Shared, with a coordinator, the work-queue lease and the hand-over."""
    capabilities = unreachable.capabilities
    assert isinstance(capabilities, TransportCapabilities)
    assert capabilities.shared
    assert capabilities.lease is not None
    assert capabilities.hand_over is not None
    assert not capabilities.lease.leading


CALLS: list[tuple[str, Callable[[TransportCapabilities], Awaitable[Any]]]] = [
    ("swap", lambda c: c.coordinator.swap("cluster:state:n1", "down", 1_000)),
    ("once", lambda c: c.coordinator.once("cluster:announce:n1", 1_000)),
    ("take_over", lambda c: c.hand_over.take_over("alerts")),  # type: ignore[union-attr]
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


async def test_handing_nothing_over_without_the_lease_needs_no_redis(
    unreachable: RedisTransport,
) -> None:
    """A replica that does not hold the lease has nothing to hand over: no error."""
    assert unreachable.capabilities.hand_over is not None
    await unreachable.capabilities.hand_over.hand_over("alerts", {"a1": b"{}"})
