"""Helpers for the listener's tests: a bridge served on a loopback port (the ``serve`` fixture),
raw connections to it, closed within a deadline or still served, the descriptor limit lowered
for a block, and the listener's warnings logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from bridge.app import Bridge
from tests.support import make_settings

Serve = Callable[..., Awaitable[Bridge]]


clients: list[asyncio.StreamWriter] = []


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start a bridge (no components) on 127.0.0.1:0 with the given settings; the bridges and
    the test's connections are closed afterwards."""
    started: list[Bridge] = []

    async def start(**env: str) -> Bridge:
        bridge = Bridge(make_settings(EXESDB_HTTP_ADDR="127.0.0.1:0", **env), components=[])
        await bridge.start()
        started.append(bridge)
        return bridge

    yield start
    while clients:
        writer = clients.pop()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    for bridge in started:
        await bridge.aclose()


async def connect(bridge: Bridge) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A new connection to ``bridge`` (closed when the test ends)."""
    assert bridge.address is not None
    reader, writer = await asyncio.open_connection(*bridge.address)
    clients.append(writer)
    return reader, writer


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sent until it closed the connection; fails after ``seconds``."""
    return await asyncio.wait_for(reader.read(), seconds)


async def sent_before_the_cut(reader: asyncio.StreamReader, seconds: float = 10) -> bytes:
    """``closed_within``, a connection reset counted as nothing sent (a cut, not a close)."""
    try:
        return await closed_within(reader, seconds)
    except ConnectionResetError:
        return b""


@contextlib.contextmanager
def no_descriptor_left() -> Iterator[None]:
    """No descriptor left for the block: the soft RLIMIT_NOFILE lowered to the lowest free
    descriptor (so an accept fails with EMFILE), and put back when the block ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest = os.dup(0)
    os.close(lowest)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def get(bridge: Bridge, path: str) -> tuple[asyncio.StreamReader, bytes]:
    """GET ``path`` on a new connection; the reader and the status line."""
    reader, writer = await connect(bridge)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    return reader, await asyncio.wait_for(reader.readline(), 10)


async def answered(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """The status line of a GET /healthz sent on an open connection (b"" when it has closed)."""
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 10)
    except ConnectionError:  # reset: closed by the server
        return b""


def closed(bridge: Bridge, reason: str) -> float:
    value = bridge.registry.get_sample_value(
        "exesdb_http_connections_closed_total", {"reason": reason}
    )
    return value or 0.0


def listener_log(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name.startswith("bridge.listener.") and r.levelname == "WARNING"
    ]
