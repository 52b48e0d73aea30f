"""A spool whose disk hangs (in fsync, or storing its head) on a real redis-server: the
bridge's stop keeps to its shutdown timeout and says what it left unstored, another bridge is
refused the spool until the write is over, and a resend after the restart is taken."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.app import Bridge
from bridge.bus import SIGNATURE_HEADER, decode_envelope
from bridge.errors import ConfigError
from bridge.settings import Settings
from tests.integration.redis_replicas import ALERTS
from tests.integration.redis_spool_support import KEYRING, alert, alert_ids
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import async_wait_until, make_settings

pytestmark = pytest.mark.integration

__all__ = ["redis_server"]  # the fixture, imported for the tests below


class HangingDisk:
    """``os.fsync`` of a spool segment (a ``.spool`` file under ``directory``) that hangs until
    ``release``, then fails with EIO, as a dying disk's does; every other fsync as it is."""

    def __init__(self, directory: Path, fsync: Callable[[int], None]) -> None:
        self.directory = str(directory)
        self.entered = threading.Event()
        self.released = threading.Event()
        self._fsync = fsync

    def fsync(self, descriptor: int) -> None:
        path = os.readlink(f"/proc/self/fd/{descriptor}")
        if not (path.startswith(self.directory) and path.endswith(".spool")):
            self._fsync(descriptor)
            return
        self.entered.set()
        self.released.wait(30)  # the test releases it once the stop ended the request
        raise OSError(errno.EIO, os.strerror(errno.EIO))


@dataclass
class HungIngest:
    """A started bridge whose ingest request (``sent``) waits in the spool's fsync on
    ``disk``, hung; ``closing``, its stop once ``close`` began it."""

    bridge: Bridge
    disk: HangingDisk
    sent: asyncio.Future[tuple[int, Any]]
    closing: asyncio.Future[None] | None = None

    def close(self) -> asyncio.Future[None]:
        """Begin the bridge's stop, the disk still hung."""
        self.closing = asyncio.ensure_future(self.bridge.aclose())
        return self.closing


@contextlib.asynccontextmanager
async def ingest_on_a_hung_disk(
    settings: Settings, state: Path, body: bytes, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[HungIngest]:
    """A bridge on ``settings`` started, then ``body`` posted to it and waited for until its
    store hangs in the spool's fsync; afterwards the disk released, the request cancelled, the
    bridge stopped and ``os.fsync`` the disk's again."""
    disk = HangingDisk(state / "spool", os.fsync)
    bridge = Bridge(settings, components=[], keep_replay=True)
    await bridge.start()
    monkeypatch.setattr(os, "fsync", disk.fsync)
    hung = HungIngest(bridge, disk, asyncio.ensure_future(ingest(bridge, body)))
    try:
        await async_wait_until(disk.entered.is_set, 10, "the spool's fsync under way")
        yield hung
    finally:
        disk.released.set()
        hung.sent.cancel()
        await (hung.closing or bridge.aclose())
        monkeypatch.undo()


async def ingest(bridge: Bridge, body: bytes) -> tuple[int, Any]:
    """POST ``body``, signed, to ``bridge``'s /v1/messages: the status and the JSON answer."""
    assert bridge.address is not None
    url = f"http://127.0.0.1:{bridge.address[1]}/v1/messages"
    headers = {
        "Content-Type": "application/x-ndjson",
        SIGNATURE_HEADER: KEYRING.sign_header(body, int(time.time())),
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        return response.status, await response.json()


def spool_thread_ended() -> bool:
    """True once no spool thread runs (one a hung disk held is done, the write it failed cut
    off its segment)."""
    return not any(thread.name == "redis-spool" for thread in threading.enumerate())


def ingesting_on(server: RedisServer, state: Path, *, shutdown_ms: int) -> Settings:
    """A bridge's settings with ingest on, on ``server``'s bus, its state in ``state``."""
    return make_settings(
        EXESDB_BUS=server.url,
        EXESDB_HTTP_ADDR="127.0.0.1:0",
        EXESDB_INGEST="true",
        EXESDB_STATE_DIR=str(state),
        EXESDB_SHUTDOWN_TIMEOUT_MS=str(shutdown_ms),
    )


async def resend_is_taken(settings: Settings, server: RedisServer, body: bytes) -> None:
    """A bridge started again on ``settings`` takes ``body`` (202), not refused as replayed,
    and writes it to the alerts stream of ``server``, empty until then."""
    bridge = Bridge(settings, components=[], keep_replay=True)
    await bridge.start()
    try:
        assert await ingest(bridge, body) == (202, {"accepted": 1})
        with server.client() as client:
            stream = f"exesdb:bus:{ALERTS}"
            await async_wait_until(lambda: client.xlen(stream) == 1, 10, "written to Redis")
    finally:
        await bridge.aclose()


async def test_a_batch_whose_ingest_a_stop_ended_unanswered_and_unstored_is_taken_after_restart(
    redis_server: Callable[[], RedisServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose ingest request the bridge's stop ended before it answered (the spool's
    disk hanging), and whose store the disk then refused, has its ids forgotten before the stop
    keeps the replay memory: the sender's resend after the restart is taken and written to
    Redis, not refused as replayed (which tells the sender the bridge holds it)."""
    server = redis_server()
    state = tmp_path / "state"
    settings = ingesting_on(server, state, shutdown_ms=2000)
    body = alert(1).to_bytes()

    async with ingest_on_a_hung_disk(settings, state, body, monkeypatch) as hung:
        closing = hung.close()
        with pytest.raises(aiohttp.ClientError):  # ended unanswered
            await hung.sent
        hung.disk.released.set()
        await closing
    await resend_is_taken(settings, server, body)


async def test_a_stop_whose_spool_disk_hangs_ends_within_the_shutdown_timeout_and_says_why(
    redis_server: Callable[[], RedisServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stop while the spool's disk hangs in fsync ends within EXESDB_SHUTDOWN_TIMEOUT_MS
    (not when the disk comes back), logs at error the batch it leaves unstored and forgotten,
    and the sender's resend after the restart is taken, not refused as replayed."""
    server = redis_server()
    state = tmp_path / "state"
    settings = ingesting_on(server, state, shutdown_ms=2000)
    body = alert(1).to_bytes()

    async with ingest_on_a_hung_disk(settings, state, body, monkeypatch) as hung:
        closing = hung.close()
        # The disk stays hung: the stop must end without it (2 s, and a margin for the spool's
        # last half second and a loaded machine), not wait for it.
        done, _ = await asyncio.wait([closing], timeout=2.0 + 1.5)
        assert done, "the stop waits for the hung disk"
        closing.result()
        with pytest.raises(aiohttp.ClientError):  # ended unanswered
            await hung.sent
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(
        "the disk did not finish writing within the stop's" in line
        and "1 batch(es) of 1 frame(s) not stored" in line
        and "ids forgotten" in line
        and "EXESDB_SHUTDOWN_TIMEOUT_MS" in line
        for line in errors
    ), errors
    await async_wait_until(spool_thread_ended, 10, "the hung fsync over")
    await resend_is_taken(settings, server, body)


async def test_a_bridge_started_while_a_stopped_ones_spool_write_hangs_is_refused_the_spool(
    redis_server: Callable[[], RedisServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop that leaves its spool's write to a hung disk keeps the spool's lock until that
    write is over: a bridge started in the same process meanwhile is refused the spool (the
    write, cut back when it fails, would cut off the batches it answered 202), and opens it
    once the write ended."""
    server = redis_server()
    state = tmp_path / "state"
    settings = ingesting_on(server, state, shutdown_ms=1000)
    body = alert(1).to_bytes()

    async with ingest_on_a_hung_disk(settings, state, body, monkeypatch) as hung:
        await hung.close()  # within the shutdown timeout, the disk still hung
        with pytest.raises(aiohttp.ClientError):  # ended unanswered
            await hung.sent
        monkeypatch.undo()  # the hung write keeps its fsync; the next bridge's are the disk's
        second = Bridge(settings, components=[], keep_replay=True)
        try:
            with pytest.raises(ConfigError, match="another bridge process has it open"):
                await second.start(serve_http=False)
        finally:
            await second.aclose()
    await async_wait_until(spool_thread_ended, 10, "the hung fsync over")
    await resend_is_taken(settings, server, body)


async def test_a_stop_whose_spool_disk_hangs_moving_the_head_ends_within_the_shutdown_timeout(
    redis_server: Callable[[], RedisServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stop while the spool's disk hangs storing the head (a batch sent, its head file
    renamed into place on a hung mount) ends within EXESDB_SHUTDOWN_TIMEOUT_MS, says so at
    error, and the batch, already in Redis, is not sent again after the restart."""
    server = redis_server()
    state = tmp_path / "state"
    settings = ingesting_on(server, state, shutdown_ms=1000)
    entered, released = threading.Event(), threading.Event()
    replace = os.replace

    def hanging_replace(source: Any, target: Any, **kwargs: Any) -> None:
        if str(target) == str(state / "spool" / "head"):
            entered.set()
            released.wait(30)  # the test releases it once the stop ended
        replace(source, target, **kwargs)

    first = Bridge(settings, components=[], keep_replay=True)
    await first.start()
    monkeypatch.setattr(os, "replace", hanging_replace)
    closing: asyncio.Future[None] | None = None
    try:
        assert await ingest(first, alert(1).to_bytes()) == (202, {"accepted": 1})
        await async_wait_until(entered.is_set, 10, "the spool's head being stored")
        closing = asyncio.ensure_future(first.aclose())
        # The disk stays hung: the stop must end without it (1 s, and a margin for the spool's
        # last half second and a loaded machine), not wait for it.
        done, _ = await asyncio.wait([closing], timeout=1.0 + 1.5)
        assert done, "the stop waits for the hung disk"
        closing.result()
    finally:
        released.set()
        await (closing or first.aclose())
        monkeypatch.undo()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("the disk did not finish a call within the stop's" in line for line in errors)
    await async_wait_until(spool_thread_ended, 10, "the hung rename over")
    second = Bridge(settings, components=[], keep_replay=True)
    await second.start()
    try:
        assert await ingest(second, alert(2).to_bytes()) == (202, {"accepted": 1})
        with server.client() as client:
            stream = f"exesdb:bus:{ALERTS}"
            await async_wait_until(lambda: client.xlen(stream) == 2, 10, "written to Redis")
            written = [decode_envelope(fields[b"e"]) for _, fields in client.xrange(stream)]
        assert alert_ids(written) == ["spooled-0001", "spooled-0002"]  # type: ignore[arg-type]
    finally:
        await second.aclose()
