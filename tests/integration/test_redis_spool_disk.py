"""A bridge on a real redis-server whose spool's disk refuses it: the spool's folder turned
read-only under it (as a file system is remounted on errors). It is told as the spool's disk,
naming the file, not as Redis failing; ingest's batch is refused, what the spool holds is still
sent."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.bus import Durability
from tests.integration.redis_replicas import Replica, replicas
from tests.integration.redis_spool_support import alert, alert_ids
from tests.integration.servers.redis import RedisServer
from tests.support import async_wait_until, free_port, unavailable

pytestmark = pytest.mark.integration

__all__ = ["replicas"]  # the fixture, for the test below

_READ_ONLY = "[Errno 30] Read-only file system"


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` read-only for the block: a bind mount of it on itself, remounted read-only
    (the files open for writing, the spool's lock, were opened through the mount below, which
    would refuse the remount), unmounted on leaving."""
    if os.geteuid() != 0:
        unavailable("a read-only bind mount needs root")
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield
    finally:
        # Lazily: a segment the spool reads at that moment does not hold the mount.
        subprocess.run(["umount", "-l", str(folder)], check=True)


async def test_a_spool_on_a_disk_turned_read_only_is_told_as_its_disk_not_as_redis(
    tmp_path: Path,
    replicas: list[Replica],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Ten frames spooled while Redis is down, then the spool's file system remounted read-only:
    the next batch is refused, the bus's reason (ingest's 503 detail) and readiness naming the
    spool's disk and segment; Redis started, the ten are sent and the segment sent cannot be
    deleted: counted and tried again, not told as frames waiting (none do), Redis counts as
    connected and is logged as failing nowhere. Writable again, the segment is deleted on the
    next try, a batch is taken and sent, and both faults end."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    spool_dir = tmp_path / "state" / "spool"
    replica = await Replica(url, "node-a", group=False, spool_dir=spool_dir).start()
    replicas.append(replica)
    bus = replica.bridge.bus
    assert await bus.publish_verified_durably([alert(n) for n in range(10)], 10) == (
        10,
        Durability.COMMITTED,
    )
    (segment,) = spool_dir.glob("*.spool")
    words = f"{_READ_ONLY}: '{segment}'"
    server: RedisServer | None = None
    try:
        with caplog.at_level(logging.INFO):
            with read_only(spool_dir):
                batch = [alert(n) for n in range(10, 20)]
                assert await bus.publish_verified_durably(batch, 10) == (0, Durability.FAILED)
                assert bus.unstorable() == (
                    f"the Redis bus spool's disk refused the batch ({words}); send it again"
                )
                refused = f"the Redis bus spool's disk refused a write 0 s ago ({words})"
                assert replica.reason().startswith(refused)
                server = RedisServer(port=port).start(tmp_path / "redis")
                await async_wait_until(
                    lambda: replica.sample("exesdb_redis_spool_bytes") == 0, 15, "the ten sent"
                )
                await async_wait_until(
                    lambda: replica.sample("exesdb_redis_spool_errors_total") >= 3,
                    10,
                    "the segment sent left undeleted, its deletion tried again",
                )
                # Nothing waits in the spool: only the write refused is told, not frames held.
                assert replica.reason().startswith("the Redis bus spool's disk refused a write"), (
                    replica.reason()
                )
                assert segment.exists()
                assert replica.sample("exesdb_redis_connected") == 1
            await async_wait_until(lambda: not segment.exists(), 15, "the spent one deleted")
            assert await bus.publish_verified_durably([alert(20)], 10) == (
                1,
                Durability.COMMITTED,
            )
            await async_wait_until(replica.ready, 15, "ready again, the faults ended")
            sent = [f"spooled-{n:04d}" for n in (*range(10), 20)]
            await async_wait_until(lambda: alert_ids(replica.seen) == sent, 15, "each sent once")
    finally:
        if server is not None:
            server.stop()
    # Not Redis's: no line says Redis failed for it (the spool's head, not stored, is told).
    assert not any(
        _READ_ONLY in record.getMessage() and "Redis at" in record.getMessage()
        for record in caplog.records
    )
    told = [
        (record.levelname, record.getMessage())
        for record in caplog.records
        if record.name == "bridge.bus.redis.spool_disk"
    ]
    assert [level for level, _ in told] == ["ERROR", "ERROR", "INFO", "INFO"], told
