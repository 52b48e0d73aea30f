"""The lease holder's claim rounds on a real redis-server: idle, each asks Redis in one round trip
whether an entry waits to be claimed, and claims only where one does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bridge.bus.redis import GROUP
from tests.integration.redis_replicas import ALERTS, Replica, calls, replicas, signed_entry
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "replicas"]  # the fixtures, imported for the tests below

CLAIM_IDLE_MS = 1_000  # a claim round every half of it
ROUNDS = 4


async def test_an_idle_holders_claim_rounds_claim_nothing_and_still_take_what_a_dead_one_left(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """With nothing pending, a lease holder's claim rounds ask Redis which streams hold an entry
    idle for the claim time (XPENDING, in the round trip that reads the lease) and run no
    XAUTOCLAIM, rather than one a stream every round; an entry a dead consumer then leaves
    pending is still claimed once idle that long, and handled."""
    server = redis_server()
    holder = await Replica(server.url, "holder", claim_idle_ms=CLAIM_IDLE_MS).start()
    replicas.append(holder)
    await async_wait_until(lambda: holder.transport.leading, 10, "the holder holds the lease")
    claims, looks = calls(server, "xautoclaim"), calls(server, "xpending")
    await asyncio.sleep(ROUNDS * CLAIM_IDLE_MS / 2000)  # a window of idle rounds, counted
    assert calls(server, "xautoclaim") - claims == 0
    assert calls(server, "xpending") - looks >= ROUNDS - 1
    key = f"exesdb:bus:{ALERTS}"
    with server.client() as client, client.pipeline(transaction=True) as pipe:
        # Written and taken by a consumer that then dies, at once: the holder's blocked read
        # is served after the transaction, the entry already taken.
        pipe.xadd(key, signed_entry())
        pipe.xreadgroup(GROUP, "dead-replica", {key: ">"}, count=1)
        _, taken = pipe.execute()
    assert len(taken[0][1]) == 1
    await async_wait_until(lambda: holder.taken_alerts() == ["forged"], 10, "claimed, handled")
    assert calls(server, "xautoclaim") - claims >= 1


async def test_a_holder_refused_xpending_claims_from_every_stream_each_round(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """A holder whose Redis user may not run XPENDING cannot ask which streams hold an entry to
    claim: its claim rounds claim from every stream, as before they asked, and a dead consumer's
    entry is still claimed and handled."""
    server = redis_server()
    with server.client() as client:
        client.execute_command(
            "ACL", "SETUSER", "limited", "on", ">pw", "~*", "&*", "+@all", "-xpending"
        )
    url = f"redis://limited:pw@127.0.0.1:{server.port}/0"
    holder = await Replica(url, "holder", claim_idle_ms=CLAIM_IDLE_MS).start()
    replicas.append(holder)
    await async_wait_until(lambda: holder.transport.leading, 10, "the holder holds the lease")
    key = f"exesdb:bus:{ALERTS}"
    with server.client() as client, client.pipeline(transaction=True) as pipe:
        # As above: taken by a consumer that then dies, before the holder's blocked read.
        pipe.xadd(key, signed_entry())
        pipe.xreadgroup(GROUP, "dead-replica", {key: ">"}, count=1)
        pipe.execute()
    await async_wait_until(lambda: holder.taken_alerts() == ["forged"], 10, "claimed, handled")
