"""A stop whose requests in progress end just as their share of the shutdown timeout runs out:
each is answered or cut off unanswered, and nothing is logged as an error (aiohttp's own wait
for them, running out then, failed as the request ended: an "Unhandled exception")."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest

from bridge.app import Bridge
from bridge.bus import SIGNATURE_HEADER, Keyring
from tests.http.helpers import envelope
from tests.listener_support import Serve, connect, sent_before_the_cut, serve
from tests.support import TEST_SECRET

__all__ = ["serve"]  # the fixture, imported for the tests below

# EXESDB_SHUTDOWN_TIMEOUT_MS=2000: requests in progress get a quarter of it (docs/configuration.md).
_SHARE = 0.5


async def test_a_request_ending_as_its_share_of_the_stop_runs_out_logs_no_error(
    serve: Serve, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An ingest request whose handler ends in the very turn of the loop in which the share of
    the shutdown timeout requests in progress get runs out is answered 202 or cut off with no
    answer, and the stop logs no error."""
    bridge = await serve(EXESDB_INGEST="true", EXESDB_SHUTDOWN_TIMEOUT_MS="2000")
    loop = asyncio.get_running_loop()
    release: asyncio.Future[None] = loop.create_future()
    entered = asyncio.Event()
    publish = bridge.bus.publish_verified_durably

    async def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await release
        return await publish(*args, **kwargs)

    monkeypatch.setattr(bridge.bus, "publish_verified_durably", held)
    reader, _writer = await _ingest(bridge)
    await asyncio.wait_for(entered.wait(), 10)

    def run_out_and_release() -> None:
        # The loop held until the share (begun with the stop, half a share ago) has run out:
        # at the next turn the request's release, queued now, runs first, then the timeout.
        time.sleep(_SHARE)  # the loop held past the end of the share, on purpose
        loop.call_soon(release.set_result, None)

    caplog.set_level(logging.ERROR)
    began = loop.time()
    stopping = asyncio.create_task(bridge.aclose())
    loop.call_at(began + _SHARE / 2, run_out_and_release)
    await asyncio.wait_for(stopping, 10)
    sent = await sent_before_the_cut(reader)
    assert sent == b"" or sent.startswith(b"HTTP/1.1 202 "), sent
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_request_still_running_after_its_share_is_cancelled_unanswered(
    serve: Serve, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An ingest request whose handler does not end within the share of the shutdown timeout
    requests in progress get is cancelled then: its connection closes with no answer (no 202),
    the stop goes on once it has ended, not after a second share, and nothing is logged as an
    error."""
    bridge = await serve(EXESDB_INGEST="true", EXESDB_SHUTDOWN_TIMEOUT_MS="2000")
    loop = asyncio.get_running_loop()
    never: asyncio.Future[None] = loop.create_future()
    entered = asyncio.Event()

    async def hangs(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        await never

    monkeypatch.setattr(bridge.bus, "publish_verified_durably", hangs)
    reader, _writer = await _ingest(bridge)
    await asyncio.wait_for(entered.wait(), 10)
    caplog.set_level(logging.ERROR)
    began = loop.time()
    await asyncio.wait_for(bridge.aclose(), 10)
    took = loop.time() - began
    sent = await sent_before_the_cut(reader)
    assert b"HTTP/1.1" not in sent, sent
    assert _SHARE * 0.9 < took < _SHARE * 1.5, took
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def _ingest(bridge: Bridge) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A signed ingest request of one envelope, sent whole on a new connection to ``bridge``."""
    body = json.dumps(envelope()).encode()
    signature = Keyring.from_secrets(TEST_SECRET).sign_header(body, int(time.time()))
    reader, writer = await connect(bridge)
    writer.write(
        f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"{SIGNATURE_HEADER}: {signature}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    return reader, writer
