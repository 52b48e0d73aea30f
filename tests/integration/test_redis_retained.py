"""Which work-queue frames a publisher keeps for a rewrite once a consumer group has read them.

The test plays the consumer group itself (XREADGROUP, XACK with a plain client), so what was
delivered, what is pending and what was acknowledged are exactly as each test says; the
publisher's ``exesdb_redis_retained`` gauge and what it writes again after Redis loses its data
show what it kept.
"""

from __future__ import annotations

from collections.abc import Callable

from bridge.bus.redis import GROUP
from tests.integration.servers.redis import RedisServer, redis_server
from tests.integration.test_redis_bus import ALERTS, Replica, calls, replicas
from tests.support import async_wait_until

__all__ = ["redis_server", "replicas"]

STREAM = f"exesdb:bus:{ALERTS}"


async def publisher_of(
    server: RedisServer, replicas: list[Replica], count: int
) -> tuple[Replica, list[bytes]]:
    """A replica that takes no work, having written ``count`` alerts to the work queue (whose
    group, made here, has read none of them); the stream's entry ids in the order written."""
    with server.client() as client:
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    publisher = await Replica(server.url, "publisher", group=False).start()
    replicas.append(publisher)
    await async_wait_until(publisher.ready, 10)
    for number in range(count):
        publisher.publish_alert(number)
    with server.client() as client:
        await async_wait_until(lambda: client.xlen(STREAM) == count, 10, "written")
        ids = [entry_id for entry_id, _ in client.xrange(STREAM)]
    return publisher, ids


def read_by_the_group(server: RedisServer, count: int) -> None:
    """The group reads the next ``count`` entries (delivered, pending until acknowledged)."""
    with server.client() as client:
        client.xreadgroup(GROUP, "tester", {STREAM: ">"}, count=count)


def acknowledge(server: RedisServer, *ids: bytes) -> None:
    with server.client() as client:
        client.xack(STREAM, GROUP, *ids)


async def kept_after_two_looks(server: RedisServer, publisher: Replica) -> float:
    """The publisher's retained gauge once it has looked at the group (XINFO) twice more."""
    looks = calls(server, "xinfo|groups")
    await async_wait_until(lambda: calls(server, "xinfo|groups") >= looks + 2, 10, "looked")
    return publisher.sample("exesdb_redis_retained")


async def written_again(server: RedisServer, publisher: Replica) -> list[str]:
    """The alerts the publisher writes again after Redis restarts without its data, in order."""
    server.restart()
    with server.client() as client:

        def all_written() -> bool:
            # Counted when put back in the writer's buffer, before they are written: wait for both.
            rewritten = publisher.sample("exesdb_redis_rewritten_total")
            return rewritten >= 1 and client.xlen(STREAM) >= rewritten

        await async_wait_until(all_written, 10, "written again")
        entries = client.xrange(STREAM)
    return [
        next(f"alert-{n:04d}" for n in range(100) if f"alert-{n:04d}".encode() in fields[b"e"])
        for _, fields in entries
    ]


async def test_handled_frames_go_and_pending_or_undelivered_ones_stay_in_order(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """Delivered and acknowledged frames are forgotten one by one; a pending one and every one
    not yet delivered are kept, and written again in the order written."""
    server = redis_server()
    publisher, ids = await publisher_of(server, replicas, 6)
    read_by_the_group(server, 4)
    acknowledge(server, ids[0], ids[2])
    await async_wait_until(
        lambda: publisher.sample("exesdb_redis_retained") == 4, 10, "the handled two forgotten"
    )
    assert await written_again(server, publisher) == [
        "alert-0001",
        "alert-0003",
        "alert-0004",
        "alert-0005",
    ]


async def test_a_full_pending_page_keeps_everything_past_its_last_entry(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """When the group has more entries pending (another publisher's among them) than the
    publisher asks XPENDING for, later entries may be pending unseen: every frame past the
    page's last entry is kept, even when delivered and acknowledged."""
    server = redis_server()
    publisher, _ = await publisher_of(server, replicas, 1)
    with server.client() as client:
        # Another publisher's entries, more than the page's room above the frames kept.
        pipe = client.pipeline(transaction=False)
        for _ in range(1_010):
            pipe.xadd(STREAM, {"e": b"{}", "s": b"other"})
        pipe.execute()
    for number in (1, 2):
        publisher.publish_alert(number)
    with server.client() as client:
        await async_wait_until(lambda: client.xlen(STREAM) == 1_013, 10, "written")
        last_two = [entry_id for entry_id, _ in client.xrevrange(STREAM, count=2)]
    read_by_the_group(server, 1_013)
    acknowledge(server, *last_two)
    assert await kept_after_two_looks(server, publisher) == 3


async def test_nothing_delivered_keeps_every_frame(
    redis_server: Callable[[], RedisServer], replicas: list[Replica]
) -> None:
    """A group that has read none of them yet leaves every frame kept."""
    server = redis_server()
    publisher, _ = await publisher_of(server, replicas, 3)
    assert await kept_after_two_looks(server, publisher) == 3
