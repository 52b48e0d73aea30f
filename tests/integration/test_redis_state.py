"""The work queue's shared state on a real redis-server: fenced by the lease, notes per replica."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from bridge.backoff import Backoff
from bridge.bus import StateChange
from bridge.bus.redis.layout import Layout
from bridge.bus.redis.link import Link
from bridge.bus.redis.shared_state import RedisSharedState
from tests.integration.servers.redis import RedisServer, redis_server

pytestmark = pytest.mark.integration

__all__ = ["redis_server"]


@pytest.fixture
async def states(
    redis_server: Callable[[], RedisServer],
) -> AsyncIterator[tuple[RedisServer, RedisSharedState, RedisSharedState]]:
    """A server and two replicas' views of its shared state (consumers a:1 and b:1)."""
    server = redis_server()
    client = Redis.from_url(server.url)
    link = Link(server.url, client, Backoff(0.01, 0.1, 0.0))
    layout = Layout("exesdb")
    a = RedisSharedState(link, layout, consumer="a:1", node="a")
    b = RedisSharedState(link, layout, consumer="b:1", node="b")
    yield server, a, b
    await client.aclose()


def hold(server: RedisServer, consumer: str) -> None:
    """Make ``consumer`` the work-queue lease holder."""
    with server.client() as client:
        client.set("exesdb:bus:leader", consumer)


async def test_only_the_lease_holder_changes_the_records(states) -> None:
    """Nothing is kept before the first change (None); the holder's change is made whole, a
    replica without the lease changes nothing."""
    server, a, b = states
    assert await a.load("alerts") is None
    hold(server, "a:1")
    assert await a.commit("alerts", StateChange(put={"x": b"1", "y": b"2"}))
    assert not await b.commit("alerts", StateChange(put={"z": b"3"}, remove=["x"]))
    assert await b.load("alerts") == {"x": b"1", "y": b"2"}
    hold(server, "b:1")
    assert await b.commit("alerts", StateChange(put={"z": b"3"}, remove=["x", "y"]))
    assert await a.load("alerts") == {"z": b"3"}
    assert await b.commit("alerts", StateChange(remove=["z"]))
    assert await a.load("alerts") == {}  # empty, not lost
    assert not await a.commit("alerts", StateChange(put={"late": b"!"}))


async def test_notes_are_kept_per_replica_with_the_change(states) -> None:
    """A note goes in with its change; each replica reads and forgets only its own."""
    server, a, b = states
    hold(server, "a:1")
    assert await a.commit("alerts", StateChange(put={"x": b"1"}, note=("p1", b"plan one")))
    assert not await b.commit("alerts", StateChange(put={"y": b"2"}, note=("p2", b"two")))
    assert await a.notes("alerts") == {"p1": b"plan one"}
    assert await b.notes("alerts") == {}
    await a.forget("alerts", ["p1"])
    assert await a.notes("alerts") == {}


async def test_records_lost_with_redis_read_as_none_and_can_be_put_back_whole(states) -> None:
    """After Redis lost its data the records read as None (not empty); a replacing change puts
    them back whole."""
    server, a, _ = states
    hold(server, "a:1")
    assert await a.commit("alerts", StateChange(put={"old": b"1"}))
    with server.client() as client:
        client.flushall()
    assert await a.load("alerts") is None
    hold(server, "a:1")
    assert await a.commit("alerts", StateChange(put={"x": b"1"}, replace=True))
    assert await a.load("alerts") == {"x": b"1"}
