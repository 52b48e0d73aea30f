"""A failover on real redis-servers: the primary a replica writes to is demoted (``REPLICAOF``)
and answers READONLY, while the name or address the replica reaches Redis by is moved to the
new primary (a DNS name, a load balancer, a Kubernetes Service: here a TCP forwarder)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from bridge.backoff import Backoff
from bridge.bus.redis.link import Link, redis_client
from tests.integration.redis_proxy import Proxy
from tests.integration.redis_replicas import ALERTS, Replica, has_seen, refused_writes, replicas
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import ManualClock, async_wait_until, refusing_port

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "replicas"]

RECONNECTING = (
    "; reconnecting (a failover may have moved the name it is reached by to the new primary)"
    " and retrying with backoff"
)


def client_ids(server: RedisServer) -> set[int]:
    """The ids of the connections of clients other than this one (CLIENT LIST)."""
    with server.client() as client:
        own = client.client_id()
        return {int(c["id"]) for c in client.client_list() if int(c["id"]) != own}


def blocked_reads(server: RedisServer) -> int:
    """How many clients wait in a blocking read (CLIENT LIST's flag ``b``)."""
    with server.client() as client:
        listed = client.client_list()
    return sum("b" in c["flags"] and c["cmd"] in ("xread", "xreadgroup") for c in listed)


@pytest.fixture
async def proxy(redis_server: Callable[[], RedisServer]) -> AsyncIterator[Proxy]:
    """A TCP forwarder, closed afterwards; its ``upstream_port`` is where new connections go."""
    forwarder = await Proxy(0).start()
    yield forwarder
    await forwarder.aclose()


async def test_a_readonly_refusal_drops_the_connections_it_came_on(
    redis_server: Callable[[], RedisServer],
    replicas: list[Replica],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After Redis refuses a write READONLY (its primary demoted), the replica does not keep
    the connections it had (redis-py's client would): each is closed, and new ones opened
    (CLIENT LIST); the warning says so."""
    old, new = redis_server(), redis_server()
    replica = await Replica(old.url, "node-a", group=False).start()
    replicas.append(replica)
    await async_wait_until(replica.ready, 10, "ready")
    before = client_ids(old)
    with old.client() as client:
        client.replicaof("127.0.0.1", new.port)
    replica.publish_alert(1)
    await async_wait_until(lambda: refused_writes(replica), 10, "held back")
    await async_wait_until(lambda: not client_ids(old) & before, 10, "the old ones closed")
    # The new connections come after a reconnection backoff, not with the closing.
    await async_wait_until(lambda: client_ids(old) - before, 10, "new connections opened")
    told = [r.message for r in caplog.records if "READONLY" in r.message]
    assert told
    assert all(message.endswith(RECONNECTING) for message in told), told


async def test_writes_held_back_by_a_demoted_primary_go_to_the_new_one_behind_the_name(
    redis_server: Callable[[], RedisServer], replicas: list[Replica], proxy: Proxy
) -> None:
    """A replica reaching Redis through a forwarder keeps its alerts while the demoted primary
    refuses them READONLY; once the forwarder leads to the new primary, every alert is written
    there once and heard once, and the replica is ready again."""
    old, new = redis_server(), redis_server()
    proxy.upstream_port = old.port
    replica = await Replica(proxy.url, "node-a", group=False).start()
    replicas.append(replica)
    await async_wait_until(replica.ready, 10, "ready")
    first = replica.publish_alert(1)
    await async_wait_until(lambda: has_seen(replica, [first]), 10, "the first heard")
    with old.client() as client:
        client.replicaof("127.0.0.1", new.port)  # the old primary's stream gone: new's is empty
    held = [replica.publish_alert(number) for number in (2, 3)]
    await async_wait_until(lambda: refused_writes(replica), 10, "held back")
    proxy.upstream_port = new.port
    await async_wait_until(lambda: has_seen(replica, [first, *held]), 15, "the held ones heard")
    await async_wait_until(replica.ready, 10, "ready again")
    with new.client() as client:
        assert client.xlen(f"exesdb:bus:{ALERTS}") >= len(held)  # written to the new primary


async def test_loops_refused_readonly_together_reconnect_once_per_backoff_step(
    redis_server: Callable[[], RedisServer],
) -> None:
    """Two loops refused READONLY again and again within one backoff step (the clock held) close
    the connections once between them, not at each refusal; a step later, once again."""
    old, new = redis_server(), redis_server()
    with old.client() as client:
        client.replicaof("127.0.0.1", new.port)
    clock = ManualClock()
    backoff = Backoff(base=0.001, cap=0.004, jitter=0.0)  # waits of 1-4 ms, on the held clock
    link = Link(old.url, redis_client(old.url, block_ms=200), backoff, clock=clock)
    failures = [0]

    def failed() -> None:
        failures[0] += 1

    async def write() -> float:
        await link.command("SET", "k", "v")
        return 0.0

    async def refused(times: int) -> None:
        """Wait until the loops were refused ``times`` more times."""
        until = failures[0] + times
        await async_wait_until(lambda: failures[0] >= until, 10, f"{times} refusals")

    stats = old.client()
    try:
        before = stats.info("stats")["total_connections_received"]
        loops = [asyncio.create_task(link.keep_trying(write, failed=failed)) for _ in "ab"]
        await refused(40)
        opened = stats.info("stats")["total_connections_received"] - before
        assert 3 <= opened <= 4  # one for each loop, again after the one reconnection
        clock.advance(1.0)  # past the backoff step
        await refused(40)
        again = stats.info("stats")["total_connections_received"] - before - opened
        assert 1 <= again <= 2
        link.stopping.set()
        await asyncio.gather(*loops)
    finally:
        stats.close()
        await link.client.aclose()


async def test_a_read_cut_short_by_a_demotion_is_told_as_one_and_reconnects(
    redis_server: Callable[[], RedisServer],
    replicas: list[Replica],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A blocked read that a demotion cuts short (``UNBLOCKED … (master -> replica?)``) is taken
    as the demotion it is, not a refusal of the bridge's commands: the warning says the bridge
    reconnects, and the connections it had are closed (CLIENT LIST)."""
    old, new = redis_server(), redis_server()
    replica = await Replica(old.url, "node-a", group=False).start()
    replicas.append(replica)
    first = replica.publish_alert(1)
    await async_wait_until(lambda: has_seen(replica, [first]), 10, "the first heard")
    before = client_ids(old)
    # A read blocked now (each waits a second): the demotion cuts it short, where one between
    # reads (the bridge slow on a loaded host) would meet no error, XREAD being served replicas.
    await async_wait_until(lambda: blocked_reads(old), 10, "a read blocked")
    with old.client() as client:
        client.replicaof("127.0.0.1", new.port)
    await async_wait_until(
        lambda: any("UNBLOCKED" in r.message for r in caplog.records), 10, "the read cut short"
    )
    told = [r.message for r in caplog.records if "UNBLOCKED" in r.message]
    assert all("master -> replica" in message for message in told), told
    assert all(message.endswith(RECONNECTING) for message in told), told
    await async_wait_until(lambda: not client_ids(old) & before, 10, "the old ones closed")


async def test_readonly_past_a_minute_of_reconnections_says_once_the_url_names_a_read_replica(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis that still refuses writes READONLY a minute of reconnections on (the URL names a
    read replica, not a primary a failover demoted) is told once to be one, with what to do."""
    server = redis_server()
    clock = ManualClock()
    backoff = Backoff(base=0.001, cap=0.004, jitter=0.0)
    link = Link(server.url, redis_client(server.url, block_ms=200), backoff, clock=clock)
    failures = [0]

    def failed() -> None:
        failures[0] += 1

    async def write() -> float:
        await link.command("SET", "k", "v")
        return 0.0

    def told() -> list[str]:
        return [r.getMessage() for r in caplog.records if "read replica" in r.getMessage()]

    with refusing_port() as port, server.client() as client:
        client.replicaof("127.0.0.1", port)  # a read replica whose primary is away
        loop = asyncio.create_task(link.keep_trying(write, failed=failed))
        try:
            for step in range(30):  # a minute, then another, in steps within one refusal
                clock.advance(4.0)
                await refused_again(failures, 3)
                if step < 14 or step >= 16:  # the first refusal came at 0 or 4 s
                    assert len(told()) == (step >= 16), (step, told())
        finally:
            link.stopping.set()
            await asyncio.gather(loop)
            await link.client.aclose()
    [said] = told()
    assert "EXESDB_BUS names a read replica" in said
    assert "point EXESDB_BUS at the primary" in said


async def refused_again(failures: list[int], times: int) -> None:
    """Wait until ``failures[0]`` (a loop's failures) grew by ``times``."""
    until = failures[0] + times
    await async_wait_until(lambda: failures[0] >= until, 10, f"{times} refusals")
