"""The HTTP listener: idle, head and body deadlines, the connection cap, the probe reserve and the
descriptor limit, against a bridge serving on a loopback port, over raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import itertools
import logging
import os
import resource
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge

from bridge.app import Bridge
from bridge.listener import (
    BODY_GRACE,
    HEAD_KEPT,
    MAX_STALLED,
    RESERVE,
    ConnectionGuard,
    Limits,
    Listener,
)
from bridge.listener.handshakes import LOG_EVERY, HandshakeFailures
from bridge.listener.sockets import bind
from tests.support import ADMIN_TOKEN, async_wait_until, make_settings
from tests.webconfig.files import WebFiles

Serve = Callable[..., Awaitable[Bridge]]


_clients: list[asyncio.StreamWriter] = []


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
    while _clients:
        writer = _clients.pop()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    for bridge in started:
        await bridge.aclose()


async def connect(bridge: Bridge) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A new connection to ``bridge`` (closed when the test ends)."""
    assert bridge.address is not None
    reader, writer = await asyncio.open_connection(*bridge.address)
    _clients.append(writer)
    return reader, writer


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sent until it closed the connection; fails after ``seconds``."""
    return await asyncio.wait_for(reader.read(), seconds)


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


def closed(bridge: Bridge, reason: str) -> float:
    value = bridge.registry.get_sample_value(
        "exesdb_http_connections_closed_total", {"reason": reason}
    )
    return value or 0.0


async def test_an_idle_connection_is_closed_after_the_idle_timeout(serve: Serve) -> None:
    """A connection that sends nothing, or nothing after its response, is closed once idle
    for EXESDB_HTTP_IDLE_TIMEOUT_MS."""
    bridge = await serve(EXESDB_HTTP_IDLE_TIMEOUT_MS="300")
    reader, _ = await connect(bridge)
    began = time.monotonic()
    assert await closed_within(reader, 10) == b""
    assert time.monotonic() - began >= 0.25
    reader, status = await get(bridge, "/healthz")
    assert status.startswith(b"HTTP/1.1 200")
    assert (await closed_within(reader, 10)).endswith(b'{"status": "ok"}')


async def test_a_half_sent_head_is_closed_after_the_header_timeout(serve: Serve) -> None:
    """Part of a request head and then silence: closed after EXESDB_HTTP_HEADER_TIMEOUT_MS
    from its first byte, while a connection that sent nothing waits for the idle timeout."""
    bridge = await serve(EXESDB_HTTP_HEADER_TIMEOUT_MS="300", EXESDB_HTTP_IDLE_TIMEOUT_MS="60000")
    quiet, _ = await connect(bridge)
    reader, writer = await connect(bridge)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()
    began = time.monotonic()
    assert await closed_within(reader, 10) == b""
    assert time.monotonic() - began >= 0.25
    assert closed(bridge, "header_timeout") == 1
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(quiet.read(1), 0.5)


async def test_a_head_begun_before_the_idle_timeout_has_the_header_timeout_to_finish(
    serve: Serve,
) -> None:
    """A head whose first bytes came before the idle timeout (on a new connection, or on a
    kept-alive one after its answer) is a request in progress: the idle timeout does not cut
    it, it has EXESDB_HTTP_HEADER_TIMEOUT_MS from its first byte, and is answered."""
    bridge = await serve(EXESDB_HTTP_IDLE_TIMEOUT_MS="300", EXESDB_HTTP_HEADER_TIMEOUT_MS="10000")
    fresh, fresh_writer = await connect(bridge)
    kept, kept_writer = await connect(bridge)
    kept_writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(kept.readline(), 10)).startswith(b"HTTP/1.1 200")
    for writer in (fresh_writer, kept_writer):
        writer.write(b"GET /healthz HTTP/1.1\r\n")
    await asyncio.sleep(0.6)  # not a wait: the head's rest comes after the idle timeout
    for writer in (fresh_writer, kept_writer):
        writer.write(b"Host: x\r\nConnection: close\r\n\r\n")
    for reader in (fresh, kept):
        assert (await closed_within(reader, 10)).endswith(b'{"status": "ok"}')
    assert closed(bridge, "header_timeout") == 0


async def test_a_tls_handshake_never_begun_is_closed_after_the_header_timeout(
    serve: Serve, tmp_path: Path
) -> None:
    """With TLS, a connection that never starts its handshake is closed once the header timeout
    passes, not after asyncio's minute, counted as header_timeout, while a real client is
    served."""
    files = WebFiles(tmp_path / "web")
    files.write(files.tls_config())
    bridge = await serve(
        EXESDB_WEB_CONFIG_FILE=str(files.folder / "web.yml"), EXESDB_HTTP_HEADER_TIMEOUT_MS="300"
    )
    reader, _ = await connect(bridge)
    began = time.monotonic()
    assert await closed_within(reader, 10) == b""
    assert time.monotonic() - began >= 0.25
    assert closed(bridge, "header_timeout") == 1
    assert bridge.address is not None
    tls_reader, tls_writer = await asyncio.open_connection(
        *bridge.address, ssl=files.client_context(), server_hostname="127.0.0.1"
    )
    _clients.append(tls_writer)
    tls_writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(tls_reader.readline(), 10)).startswith(b"HTTP/1.1 200")


async def test_a_tls_handshake_under_way_counts_under_the_cap_from_its_accept(
    serve: Serve, tmp_path: Path
) -> None:
    """With TLS, connections whose handshake has not begun count as open and idle: at the cap a
    new one closes the longest waiting, counted as evicted, and a real client is served."""
    files = WebFiles(tmp_path / "web")
    files.write(files.tls_config())
    bridge = await serve(
        EXESDB_WEB_CONFIG_FILE=str(files.folder / "web.yml"), EXESDB_HTTP_MAX_CONNECTIONS="3"
    )
    first, _ = await connect(bridge)
    for _ in range(2):
        await connect(bridge)
    await async_wait_until(lambda: bridge.connections.idle == 3, what="three handshakes counted")
    assert bridge.registry.get_sample_value("exesdb_http_connections") == 3
    assert bridge.address is not None
    tls_reader, tls_writer = await asyncio.open_connection(
        *bridge.address, ssl=files.client_context(), server_hostname="127.0.0.1"
    )
    _clients.append(tls_writer)
    tls_writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(tls_reader.readline(), 10)).startswith(b"HTTP/1.1 200")
    assert await closed_within(first, 10) == b""
    assert closed(bridge, "evicted") == 1


def _tls_bridge_env(tmp_path: Path, **env: str) -> dict[str, str]:
    """The settings of a bridge serving TLS (a web config with a certificate for 127.0.0.1)."""
    files = WebFiles(tmp_path / "web")
    files.write(files.tls_config())
    return {"EXESDB_WEB_CONFIG_FILE": str(files.folder / "web.yml"), **env}


def _failures(bridge: Bridge, kind: str) -> float:
    value = bridge.registry.get_sample_value(
        "exesdb_http_tls_handshake_failures_total", {"kind": kind}
    )
    return value or 0.0


PLAIN_HTTP_BODY = b"\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


async def test_plain_http_trickled_to_the_tls_port_is_answered_400_once_its_method_is_read(
    serve: Serve, tmp_path: Path
) -> None:
    """With TLS, a request whose method arrives a byte at a time is answered Go's 400 once its
    space arrives, then closed, and counted as a plain_http handshake failure; until then the
    bridge waits (a method's first letters could still be anything)."""
    bridge = await serve(**_tls_bridge_env(tmp_path))
    reader, writer = await connect(bridge)
    for byte in b"POS":
        writer.write(bytes([byte]))
        await writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.1)
    writer.write(b"T /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    answer = await closed_within(reader, 10)
    assert answer.startswith(b"HTTP/1.0 400 Bad Request\r\n")
    assert answer.endswith(PLAIN_HTTP_BODY)
    assert b"\r\nConnection: close\r\n" in answer
    await async_wait_until(lambda: _failures(bridge, "plain_http") == 1, what="one counted")
    assert bridge.registry.get_sample_value("exesdb_http_connections") == 0


async def test_what_is_neither_tls_nor_http_goes_to_tls_and_gets_no_http_answer(
    serve: Serve, tmp_path: Path
) -> None:
    """With TLS, first bytes that are no HTTP method (an SSH banner) go to the TLS handshake,
    which fails as before: no HTTP answer, counted by OpenSSL's reason."""
    bridge = await serve(**_tls_bridge_env(tmp_path))
    reader, writer = await connect(bridge)
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
    assert b"HTTP" not in await closed_within(reader, 10)
    await async_wait_until(
        lambda: _failures(bridge, "plain_http") + _failures(bridge, "other") == 1,
        what="the failed handshake counted",
    )


async def test_a_method_begun_and_never_finished_on_the_tls_port_is_closed_at_the_header_timeout(
    serve: Serve, tmp_path: Path
) -> None:
    """With TLS, first bytes that could still be a method, then silence: closed at the header
    timeout with no answer, counted as header_timeout."""
    bridge = await serve(**_tls_bridge_env(tmp_path, EXESDB_HTTP_HEADER_TIMEOUT_MS="300"))
    reader, writer = await connect(bridge)
    writer.write(b"GE")
    began = time.monotonic()
    assert await closed_within(reader, 10) == b""
    assert time.monotonic() - began >= 0.25
    assert closed(bridge, "header_timeout") == 1
    assert _failures(bridge, "plain_http") == 0


async def test_a_tls_handshake_begun_late_has_what_is_left_of_the_header_timeout(
    serve: Serve, tmp_path: Path
) -> None:
    """With TLS, a client that sends the first byte of a handshake late and then nothing is
    closed at the header timeout from its accept, not a whole timeout after that byte."""
    bridge = await serve(**_tls_bridge_env(tmp_path, EXESDB_HTTP_HEADER_TIMEOUT_MS="1000"))
    began = time.monotonic()
    reader, writer = await connect(bridge)
    await asyncio.sleep(0.7)  # not a wait: the handshake's first byte sent late on purpose
    writer.write(b"\x16")
    assert await closed_within(reader, 10) == b""
    assert 0.9 <= time.monotonic() - began < 1.6
    assert closed(bridge, "header_timeout") == 1


async def test_a_stopping_bridge_closes_the_connections_still_to_say_tls_or_http(
    serve: Serve, tmp_path: Path
) -> None:
    """With TLS, a connection that has sent nothing yet, or the start of a method, is closed
    when the bridge stops, not left to its header timeout."""
    bridge = await serve(**_tls_bridge_env(tmp_path, EXESDB_HTTP_HEADER_TIMEOUT_MS="60000"))
    quiet, _ = await connect(bridge)
    begun, writer = await connect(bridge)
    writer.write(b"GE")
    await writer.drain()
    await async_wait_until(lambda: bridge.connections.idle == 2, what="both connections counted")
    await bridge.aclose()
    assert await closed_within(quiet, 5) == b""
    with contextlib.suppress(ConnectionResetError):  # reset, if closed before "GE" was read
        assert await closed_within(begun, 5) == b""


async def _tls_get_in_pieces(
    bridge: Bridge, context: ssl.SSLContext, cuts: tuple[int, ...]
) -> bytes:
    """GET /healthz over TLS made by hand (Python's ssl over memory buffers), its ClientHello
    written in pieces cut at ``cuts``; the answer's status line."""
    reader, writer = await connect(bridge)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")

    async def exchange() -> None:
        writer.write(outgoing.read())
        data = await asyncio.wait_for(reader.read(65536), 10)
        assert data, "the bridge closed the connection"
        incoming.write(data)

    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    bounds = (0, *cuts, len(hello))
    for start, end in itertools.pairwise(bounds):
        writer.write(hello[start:end])
        await writer.drain()
        await asyncio.sleep(0.05)  # not a wait: each piece in a read of its own
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            await exchange()
    tls.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while b"\r\n" not in answer:
        try:
            answer += tls.read(65536)
        except ssl.SSLWantReadError:
            await exchange()
    return answer.split(b"\r\n")[0]


@pytest.mark.parametrize("cuts", [(), (1,), (1, 3, 100)], ids=["whole", "first-byte", "pieces"])
async def test_a_tls_client_hello_arriving_in_pieces_is_handshaken_and_served(
    serve: Serve, tmp_path: Path, cuts: tuple[int, ...]
) -> None:
    """With TLS, the bytes read to tell a handshake from plain HTTP reach the handshake before
    any read after them: a ClientHello whole, or cut after its first byte and more, is served."""
    files = WebFiles(tmp_path / "web")
    files.write(files.tls_config())
    bridge = await serve(EXESDB_WEB_CONFIG_FILE=str(files.folder / "web.yml"))
    status = await _tls_get_in_pieces(bridge, files.client_context(), cuts)
    assert status == b"HTTP/1.1 200 OK"
    assert _failures(bridge, "plain_http") == 0


async def test_a_trickled_body_is_answered_408_and_closed(serve: Serve) -> None:
    """A body not complete within EXESDB_HTTP_BODY_TIMEOUT_MS of its head gets 408 naming the
    setting, and the connection closes."""
    bridge = await serve(EXESDB_INGEST="true", EXESDB_HTTP_BODY_TIMEOUT_MS="400")
    reader, writer = await connect(bridge)
    writer.write(
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    await writer.drain()
    began = time.monotonic()
    answer = await closed_within(reader, 10)
    assert time.monotonic() - began >= 0.35
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"EXESDB_HTTP_BODY_TIMEOUT_MS (400 ms)" in answer
    assert closed(bridge, "body_timeout") == 1


_HEAD = b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 9_000 + b"\r\n\r\n",
        _HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
        _HEAD + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ],
    ids=["header-token", "long-header", "chunk-size", "length-and-chunked"],
)
async def test_a_request_the_http_parser_refuses_is_answered_400_in_plain_text_and_closed(
    serve: Serve, request_bytes: bytes
) -> None:
    """A head aiohttp's parser refuses (a bad header, one over 8 KiB, bad chunking arriving
    with the head) is answered 400 at once, before any route, in
    aiohttp's plain text rather than the JSON error body (docs/http-api.md says so), and the
    connection closes."""
    bridge = await serve(EXESDB_INGEST="true")
    reader, writer = await connect(bridge)
    writer.write(request_bytes)
    await writer.drain()
    answer = await closed_within(reader, 10)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 400")
    assert b"Content-Type: text/plain" in head
    assert not body.startswith(b"{")


async def test_a_chunked_body_broken_after_its_head_is_answered_408_at_the_body_timeout(
    serve: Serve,
) -> None:
    """A chunk-size line that is not hex, arriving after the head, is not reported to the
    request reading the body by aiohttp's parser: the request is answered 408 once
    EXESDB_HTTP_BODY_TIMEOUT_MS has passed (as docs/http-api.md says), and the connection
    closes."""
    bridge = await serve(EXESDB_INGEST="true", EXESDB_HTTP_BODY_TIMEOUT_MS="400")
    reader, writer = await connect(bridge)
    writer.write(_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    await writer.drain()
    await async_wait_until(lambda: bridge.connections.idle == 0, what="the body being read")
    writer.write(b"zz\r\n")
    await writer.drain()
    answer = await closed_within(reader, 10)
    assert answer.startswith(b"HTTP/1.1 408")
    assert closed(bridge, "body_timeout") == 1


async def test_at_the_cap_a_new_connection_closes_the_longest_idle_one(serve: Serve) -> None:
    """With EXESDB_HTTP_MAX_CONNECTIONS open and idle, a new connection is served and the one
    idle longest is closed, counted as evicted."""
    bridge = await serve(EXESDB_HTTP_MAX_CONNECTIONS="3")
    first, _ = await connect(bridge)
    others = [await connect(bridge) for _ in range(2)]
    await async_wait_until(lambda: bridge.connections.idle == 3, what="three idle connections")
    _, status = await get(bridge, "/healthz")
    assert status.startswith(b"HTTP/1.1 200")
    assert await closed_within(first, 10) == b""
    assert closed(bridge, "evicted") == 1
    for other, _ in others:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(other.read(1), 0.2)


_TOKEN = "listener-admin-token-0123456789"


async def open_streams(bridge: Bridge, count: int) -> None:
    """Open ``count`` event streams (/v1/stream with _TOKEN): requests in progress that read no
    body, each answered 200 before the next opens."""
    for _ in range(count):
        reader, writer = await connect(bridge)
        writer.write(
            f"GET /v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {_TOKEN}\r\n\r\n".encode()
        )
        await writer.drain()
        assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 200")


async def trickle(bridge: Bridge, sent: bytes) -> asyncio.StreamReader:
    """An ingest whose 100-byte body stops after ``sent``; the connection's reader."""
    reader, writer = await connect(bridge)
    writer.write(
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n" + sent
    )
    await writer.drain()
    return reader


async def test_at_the_cap_with_none_idle_a_new_connection_closes_the_slowest_body(
    serve: Serve,
) -> None:
    """With every connection under the cap reading a trickled body, a new connection is served
    in place of the body read going slowest past BODY_GRACE, counted as slow_body; the faster
    one goes on."""
    bridge = await serve(EXESDB_INGEST="true", EXESDB_HTTP_MAX_CONNECTIONS="2")
    slow = await trickle(bridge, b"{")
    fast = await trickle(bridge, b'{"id": "' + b"0" * 40)
    await async_wait_until(
        lambda: (
            bridge.connections.idle == 0
            and bridge.registry.get_sample_value("exesdb_http_connections") == 2
        ),
        what="both connections reading a body",
    )

    async def served() -> bytes | None:
        """The status of a request on a new connection, None while the reserve answers it."""
        status = (await get(bridge, "/v1/integration"))[1]
        return None if status.startswith(b"HTTP/1.1 503") else status

    status = await async_wait_until(served, 10 + BODY_GRACE, "a body read making room")
    assert status.startswith(b"HTTP/1.1 403")
    assert closed(bridge, "slow_body") == 1
    assert await closed_within(slow, 10) == b""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(fast.read(1), 0.2)


async def test_a_slow_body_in_the_probe_reserve_makes_no_room_under_the_cap(serve: Serve) -> None:
    """A reserve connection whose /metrics body trickles and whose answer is not read is not
    closed to make room under the cap (that would free a reserve place, not a regular one): a
    new connection is still answered from the reserve, and nothing is counted as slow_body."""
    bridge = await serve(EXESDB_ADMIN_TOKEN=_TOKEN, EXESDB_HTTP_MAX_CONNECTIONS="2")
    padding = Gauge("padding", "An exposition larger than the socket buffers.", ["name"],
                    registry=bridge.registry)  # fmt: skip
    for n in range(20_000):
        padding.labels(f"{n:05d}-{'x' * 100}").set(n)
    await open_streams(bridge, 2)
    loop = asyncio.get_running_loop()
    scraper = socket.socket()
    scraper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    scraper.setblocking(False)
    try:
        assert bridge.address is not None
        await loop.sock_connect(scraper, bridge.address)
        await loop.sock_sendall(
            scraper, b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx"
        )
        await async_wait_until(
            lambda: bridge.registry.get_sample_value("exesdb_http_connections") == 3,
            what="the scraper in the reserve",
        )
        await asyncio.sleep(BODY_GRACE + 0.2)  # not a wait: eviction needs a body past its grace
        _, status = await get(bridge, "/v1/integration")
        assert not status.startswith(b"HTTP/1.1 403"), "served under the cap: the cap was passed"
        assert closed(bridge, "slow_body") == 0
    finally:
        scraper.close()


async def test_with_every_connection_busy_probes_are_answered_from_the_reserve(
    serve: Serve,
) -> None:
    """When every connection under the cap has a request in progress, /healthz, /readyz and
    /metrics are still answered (then the connection closes); other paths get 503."""
    bridge = await serve(EXESDB_ADMIN_TOKEN=_TOKEN, EXESDB_HTTP_MAX_CONNECTIONS="2")
    await open_streams(bridge, 2)
    await async_wait_until(
        lambda: (
            bridge.registry.get_sample_value("exesdb_http_connections") == 2
            and bridge.connections.idle == 0
        ),
        what="both connections busy",
    )
    for path in ("/healthz", "/readyz", "/metrics"):
        reader, status = await get(bridge, path)
        assert status.startswith(b"HTTP/1.1 200"), path
        assert b"Connection: close" in await closed_within(reader, 10)
    reader, status = await get(bridge, "/v1/integration")
    assert status.startswith(b"HTTP/1.1 503")
    assert b"too_many_connections" in await closed_within(reader, 10)


def test_the_cap_is_lowered_to_what_the_descriptor_limit_allows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With 1 024 descriptors, room is kept for the reserve and everything else, with a
    warning naming the setting."""
    guard = ConnectionGuard(Limits(1, 1, 1, 4_096, 1), registry=CollectorRegistry())
    with caplog.at_level(logging.WARNING, "bridge.listener"):
        cap = guard.fit(1_024)
    assert cap + RESERVE < 1_024
    assert cap > 512
    assert "EXESDB_HTTP_MAX_CONNECTIONS 4096 lowered to" in caplog.text
    assert ConnectionGuard(Limits(1, 1, 1, 100, 1)).fit(1_024) == 100


def test_the_soft_descriptor_limit_is_raised_to_the_hard_limit() -> None:
    """At start the soft RLIMIT_NOFILE goes up to the hard one (a process started at 256)."""
    # The child's hard limit set here (lowering it needs no privilege), whatever this one's is.
    ours = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard = 1_024 if ours == resource.RLIM_INFINITY else min(ours, 1_024)

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    code = (
        "import resource; from bridge.listener import raise_descriptor_limit; "
        "print(raise_descriptor_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=lower,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == [str(hard), str(hard)]


async def test_a_starting_bridge_raises_its_soft_descriptor_limit_and_keeps_its_cap(
    serve: Serve,
) -> None:
    """Bridge.start raises the soft RLIMIT_NOFILE to the hard one before it fits the cap, so a
    process started with a soft 512 under a hard 4 096 keeps EXESDB_HTTP_MAX_CONNECTIONS."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4_096:
        pytest.fail(f"the hard descriptor limit {hard} is under the 4 096 this test needs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
    try:
        bridge = await serve(EXESDB_HTTP_MAX_CONNECTIONS="2048")
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert bridge.registry.get_sample_value("exesdb_http_max_connections") == 2048


async def test_past_max_stalled_answers_the_one_stalled_longest_closes(serve: Serve) -> None:
    """Clients that ask for /metrics and never read it hold at most ``max_stalled`` answers
    (MAX_STALLED): each one past that closes the connection stalled longest, counted as stalled.
    The answer is bigger than the kernel's socket buffers take (4 MiB), so it stalls."""
    bridge = await serve()
    assert bridge.connections.max_stalled == MAX_STALLED
    bridge.connections.max_stalled = 1
    padding = Gauge("padding", "Makes /metrics big.", ["name"], registry=bridge.registry)
    for n in range(50_000):
        padding.labels(f"{n:05d}-{'x' * 100}").set(n)
    assert bridge.address is not None
    loop = asyncio.get_running_loop()
    with contextlib.ExitStack() as sockets:
        for _ in range(3):  # clients that never read
            sock = sockets.enter_context(socket.socket())
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            sock.setblocking(False)
            await loop.sock_connect(sock, bridge.address[:2])
            await loop.sock_sendall(sock, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        await async_wait_until(
            lambda: closed(bridge, "stalled") == 2, 30, "two stalled answers closed"
        )
        # The one stalled answer kept stays open, once the two closed are gone.
        await async_wait_until(
            lambda: bridge.registry.get_sample_value("exesdb_http_connections") == 1,
            30,
            "the one stalled answer kept",
        )
        assert closed(bridge, "stalled") == 2


async def test_a_write_timeout_the_kernel_refuses_is_said_once_and_connections_are_served(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A kernel refusing TCP_USER_TIMEOUT on an accepted socket (WSL1 names it and refuses it)
    keeps its own limits: each connection is admitted and answered, none counted as closed, and
    one info line (not one a connection) says EXESDB_HTTP_WRITE_TIMEOUT_MS is not in force. Here
    the real kernel refuses a negative timeout (EINVAL), which the settings never give, so the
    refusal comes through the listener's own path."""
    with socket.socket() as probe, pytest.raises(OSError, match="Invalid argument"):
        probe.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, -1000)
    bridge = await serve()
    bridge.connections.limits = dataclasses.replace(bridge.connections.limits, write_timeout=-1.0)
    with caplog.at_level(logging.INFO, logger="bridge.listener"):
        for _ in range(2):  # two connections, each kept alive between its two answers
            reader, writer = await connect(bridge)
            for _ in range(2):
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                assert head.startswith(b"HTTP/1.1 200 OK\r\n")
                length = int(head.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
                body = await asyncio.wait_for(reader.readexactly(length), 10)
                assert body == b'{"status": "ok"}'
        assert bridge.registry.get_sample_value("exesdb_http_connections") == 2
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert said == [
        (
            logging.INFO,
            "EXESDB_HTTP_WRITE_TIMEOUT_MS is not in force on this system: the kernel refuses"
            " TCP_USER_TIMEOUT (Invalid argument), so a client that reads nothing of an answer"
            " is left to the kernel's own limits",
        )
    ]
    [family] = [m for m in bridge.registry.collect() if m.name == "exesdb_http_connections_closed"]
    counted = [sample.value for sample in family.samples if sample.name.endswith("_total")]
    assert counted
    assert not any(counted)  # closed for no reason


async def test_an_accept_the_descriptor_limit_refuses_is_one_warning_then_accepting_resumes(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """With no descriptor left (the soft limit lowered to the lowest free one), the connections
    waiting are not accepted: one warning naming the fix, no traceback; the listener tries again
    a second later and, the limit back, serves them."""
    bridge = await serve()
    assert bridge.address is not None
    loop = asyncio.get_running_loop()
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(socket.socket()) for _ in range(3)]  # made before
        with caplog.at_level(logging.WARNING), no_descriptor_left():
            for client in clients:
                client.setblocking(False)
                await loop.sock_connect(client, bridge.address[:2])  # taken by the kernel
            await async_wait_until(
                lambda: "out of file descriptors" in caplog.text, 10, "the warning"
            )
        [warning] = [r for r in caplog.records if "out of file descriptors" in r.getMessage()]
        assert (warning.levelname, warning.exc_info) == ("WARNING", None)
        assert "LimitNOFILE" in warning.getMessage()
        assert "Traceback" not in caplog.text
        for client in clients:
            await loop.sock_sendall(client, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await asyncio.wait_for(loop.sock_recv(client, 1024), 10)
            assert answer.startswith(b"HTTP/1.1 200 OK")


@pytest.mark.parametrize(
    ("size", "closes"), [(HEAD_KEPT // 3 - 100, False), (HEAD_KEPT // 3, True)]
)
async def test_a_connection_whose_request_head_is_past_head_kept_closes_after_its_answer(
    serve: Serve, size: int, closes: bool
) -> None:
    """A request with more than HEAD_KEPT bytes of header fields is answered with
    Connection: close (an idle keep-alive connection would hold its head); one under stays
    open for the next request."""
    bridge = await serve()
    reader, writer = await connect(bridge)
    fields = "".join(f"X-Pad-{n}: {'a' * size}\r\n" for n in range(3))
    writer.write(f"GET /healthz HTTP/1.1\r\nHost: x\r\n{fields}\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert (b"\r\nConnection: close\r\n" in head) is closes


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/alerts", b"302 Found"),  # raised as an HTTPException, no token needed
        ("/metrics", b"200 OK"),  # streamed
        ("/v1/stream", b"200 OK"),  # streamed, and kept open until the client leaves
    ],
)
async def test_a_head_past_head_kept_is_answered_with_connection_close_however_the_answer_is_sent(
    serve: Serve, path: str, status: bytes
) -> None:
    """A request with more than HEAD_KEPT bytes of header fields is answered with
    Connection: close also when its handler raises its answer or streams it."""
    bridge = await serve(EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    reader, writer = await connect(bridge)
    fields = "".join(f"X-Pad-{n}: {'a' * (HEAD_KEPT // 3)}\r\n" for n in range(3))
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
        f"{fields}\r\n".encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 " + status + b"\r\n")
    assert b"\r\nConnection: close\r\n" in head


def _no_ipv6(family: int, kind: int, proto: int) -> socket.socket:
    """socket.socket on a kernel without IPv6 (booted with ipv6.disable=1)."""
    if family == socket.AF_INET6:
        raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))
    return socket.socket(family, kind, proto)


async def test_an_address_family_the_kernel_cannot_make_a_socket_for_is_left_out() -> None:
    """A host resolving to IPv4 and IPv6 addresses is bound on IPv4 alone when no IPv6 socket
    can be made (as asyncio's create_server does), not an error stopping start-up."""
    families = {info[0] for info in socket.getaddrinfo(None, 0, type=socket.SOCK_STREAM)}
    assert socket.AF_INET6 in families, "this test needs the host's IPv6 for the wildcard"
    sockets = await bind("", 0, new_socket=_no_ipv6)
    try:
        assert [sock.family for sock in sockets] == [socket.AF_INET]
    finally:
        for sock in sockets:
            sock.close()


async def test_an_address_no_socket_can_be_made_for_is_an_error_naming_it() -> None:
    """When not one socket can be made for the host's addresses, binding fails saying why."""
    with pytest.raises(
        OSError, match=r"^\[Errno \d+\] no socket can be made for '::1' port 0: "
    ) as raised:
        await bind("::1", 0, new_socket=_no_ipv6)
    assert raised.value.errno == errno.EAFNOSUPPORT


async def test_an_address_in_use_is_an_error_naming_it_and_the_errno_once() -> None:
    """Binding a port taken fails naming the address and the reason, the errno said once."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=r"address already in use$") as raised:
            await bind("127.0.0.1", port)
    assert str(raised.value) == (
        f"[Errno {errno.EADDRINUSE}] error while attempting to bind on address "
        f"('127.0.0.1', {port}): address already in use"
    )


# An IPv6 address no host has (the documentation prefix, RFC 3849): binding it fails as binding
# ::1 does where net.ipv6.conf.all.disable_ipv6=1 (EADDRNOTAVAIL), with no sysctl to set.
_NOT_HERE = "2001:db8::1"


def _resolving_to(*hosts: str) -> Callable[..., Awaitable[list[tuple[Any, ...]]]]:
    """A resolver (loop.getaddrinfo) giving ``hosts``' addresses, as a name resolving to them."""

    async def resolve(host: object, port: int, **kwargs: int) -> list[tuple[Any, ...]]:
        return [info for name in hosts for info in socket.getaddrinfo(name, port, **kwargs)]

    return resolve


async def test_an_address_of_a_name_the_host_does_not_have_is_left_out_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A name resolving to an address the host does not have (localhost's ::1 with IPv6 turned
    off by sysctl) is bound on its other addresses, with a warning naming the one left out and
    the errno, not an error stopping start-up."""
    with caplog.at_level(logging.WARNING, logger="bridge.listener"):
        sockets = await bind("localhost", 0, resolve=_resolving_to("127.0.0.1", _NOT_HERE))
    try:
        assert [sock.getsockname()[0] for sock in sockets] == ["127.0.0.1"]
    finally:
        for sock in sockets:
            sock.close()
    [warning] = _listener_log(caplog)
    assert warning.getMessage().startswith(
        f"not listening on ('{_NOT_HERE}', 0, 0, 0), an address 'localhost' resolves to: "
        f"cannot assign requested address ([Errno {errno.EADDRNOTAVAIL}] EADDRNOTAVAIL); "
        "listening on ('127.0.0.1', "
    )


async def test_a_name_none_of_whose_addresses_the_host_has_is_an_error_naming_them() -> None:
    """When the host has none of the addresses a name resolves to, binding fails naming each
    and the errno."""
    with pytest.raises(OSError, match=r"cannot assign requested address$") as raised:
        await bind("localhost", 0, resolve=_resolving_to("192.0.2.1", _NOT_HERE))
    assert raised.value.errno == errno.EADDRNOTAVAIL
    assert str(raised.value) == (
        f"[Errno {errno.EADDRNOTAVAIL}] error while attempting to bind on address "
        f"('192.0.2.1', 0), ('{_NOT_HERE}', 0, 0, 0): cannot assign requested address"
    )


async def test_a_port_taken_on_one_address_of_a_name_is_an_error_though_another_is_free() -> None:
    """Only an address the host does not have is left out: the port taken on one of a name's
    addresses stops the bind (a client may reach the other process there)."""
    with socket.socket(socket.AF_INET6) as taken:
        taken.bind(("::1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=r"address already in use$") as raised:
            await bind("localhost", port, resolve=_resolving_to("127.0.0.1", "::1"))
    assert raised.value.errno == errno.EADDRINUSE


async def test_port_zero_on_a_name_of_several_addresses_picks_one_port_for_all() -> None:
    """Port 0 on a name resolving to several addresses (localhost: 127.0.0.1 and ::1) binds
    each on the one port the system picked for the first: the port the bridge reports and
    links to reaches it on every one of them, not another process on a port of its own."""
    sockets = await bind("localhost", 0, resolve=_resolving_to("127.0.0.1", "::1"))
    try:
        assert [sock.getsockname()[0] for sock in sockets] == ["127.0.0.1", "::1"]
        assert len({sock.getsockname()[1] for sock in sockets}) == 1
    finally:
        for sock in sockets:
            sock.close()


async def test_port_zero_is_picked_again_when_taken_on_a_later_address() -> None:
    """When the port picked for the first address is another process's on a later one, port 0
    is picked afresh, not an error stopping start-up, and every address is bound on the new one."""
    made: list[socket.socket] = []
    others: list[socket.socket] = []

    def taken_on_ipv6_once(family: int, kind: int, proto: int) -> socket.socket:
        """socket.socket, another process listening on ::1 at the first port picked."""
        if family == socket.AF_INET6 and not others:
            other = socket.socket(socket.AF_INET6)
            other.bind(("::1", made[-1].getsockname()[1]))
            other.listen()
            others.append(other)
        made.append(socket.socket(family, kind, proto))
        return made[-1]

    try:
        resolve = _resolving_to("127.0.0.1", "::1")
        sockets = await bind("localhost", 0, new_socket=taken_on_ipv6_once, resolve=resolve)
        try:
            ports = {sock.getsockname()[1] for sock in sockets}
            assert len(sockets) == 2
            assert len(ports) == 1
            assert ports != {others[0].getsockname()[1]}
        finally:
            for sock in sockets:
                sock.close()
    finally:
        for other in others:
            other.close()


def _listener_log(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name.startswith("bridge.listener.") and r.levelname == "WARNING"
    ]


async def test_refused_accepts_are_told_once_a_minute_with_the_count_of_those_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Accepts the descriptor limit refuses (one a second while clients wait) are told in one
    warning; within a minute of it they are left out and counted, and the next warning, a
    minute on, says how many."""
    times = [100.0, 159.0, 159.0, 159.0, 160.0]  # what the listener's clock says at each refusal
    asked: list[float] = []

    def clock() -> float:
        asked.append(times.pop(0) if len(times) > 1 else times[0])
        return asked[-1]

    guard = ConnectionGuard(Limits(1.0, 1.0, 1.0, 10, 1.0))
    listener = Listener(guard, await bind("127.0.0.1", 0), asyncio.Protocol, clock=clock)
    loop = asyncio.get_running_loop()
    with contextlib.ExitStack() as stack:
        stack.callback(listener.close)
        await listener.start_serving()
        client = stack.enter_context(socket.socket())  # made before the limit is lowered
        with caplog.at_level(logging.WARNING, logger="bridge.listener"), no_descriptor_left():
            client.setblocking(False)
            await loop.sock_connect(client, listener.sockets[0].getsockname())
            # The listener tries again a second after each refusal.
            await async_wait_until(lambda: len(asked) >= 5, 15, "five refused accepts")
    first, second = (r.getMessage() for r in _listener_log(caplog))
    assert first.startswith("the HTTP listener is out of file descriptors (")
    assert first.endswith("or lower EXESDB_HTTP_MAX_CONNECTIONS")
    assert second.endswith(
        "or lower EXESDB_HTTP_MAX_CONNECTIONS (3 more accepts refused since the last warning)"
    )
    assert all(r.exc_info is None for r in caplog.records)


@pytest.mark.parametrize(
    ("code", "told"),
    [
        (
            errno.EMFILE,
            "out of file descriptors (Too many open files): it stops accepting for a "
            "second; raise the descriptor limit (LimitNOFILE",
        ),
        (errno.ENFILE, "finds the system out of file descriptors"),
        (errno.ENOBUFS, "finds the system out of memory for sockets"),
        (errno.ENOMEM, "finds the system out of memory for sockets"),
    ],
)
async def test_an_accept_the_system_refuses_is_told_by_what_ran_out(
    caplog: pytest.LogCaptureFixture, code: int, told: str
) -> None:
    """The warning for a refused accept names what ran out: the process's descriptors (raise
    LimitNOFILE), the system's, or its memory for sockets."""
    refusing = _Refusing(code)
    refusing.bind(("127.0.0.1", 0))
    listener = Listener(
        ConnectionGuard(Limits(1.0, 1.0, 1.0, 10, 1.0)), [refusing], asyncio.Protocol
    )
    with contextlib.ExitStack() as stack:
        stack.callback(listener.close)
        await listener.start_serving()
        client = stack.enter_context(socket.socket())
        client.setblocking(False)
        with caplog.at_level(logging.WARNING, logger="bridge.listener"):
            await asyncio.get_running_loop().sock_connect(client, refusing.getsockname())
            await async_wait_until(lambda: _listener_log(caplog), 10, "the warning")
    [warning] = _listener_log(caplog)
    assert told in warning.getMessage()
    assert ("LimitNOFILE" in warning.getMessage()) is (code == errno.EMFILE)


class _Refusing(socket.socket):
    """A listening socket each of whose accepts the system refuses with ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code

    def accept(self) -> tuple[socket.socket, Any]:
        raise OSError(self.code, os.strerror(self.code))


def test_a_kind_of_handshake_failure_logged_again_after_a_minute_says_how_many_came_between(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Within LOG_EVERY seconds of its last line a kind of failure is only counted; the next
    line, once they have passed, says how many were not logged; another kind is logged apart,
    and a client closing mid-handshake never is."""
    now = [0.0]
    failures = HandshakeFailures(CollectorRegistry(), clock=lambda: now[0])
    plain = ssl.SSLError(1, "[SSL: HTTP_REQUEST] http request")
    plain.reason = "HTTP_REQUEST"
    with caplog.at_level(logging.WARNING, logger="bridge.listener.handshakes"):
        failures.failed(plain, ("10.0.0.7", 41000))
        for _ in range(3):
            now[0] += LOG_EVERY / 4
            failures.failed(plain, ("10.0.0.7", 41001))
        failures.failed(ssl.SSLEOFError(), ("10.0.0.8", 41002))
        failures.failed(OSError("odd"), ("::1", 41003, 0, 0))
        now[0] = LOG_EVERY
        failures.failed(plain, ("10.0.0.7", 41004))
        now[0] += 1
        failures.failed(plain, ("10.0.0.7", 41005))
        now[0] = 2 * LOG_EVERY
        failures.failed(plain, ("10.0.0.7", 41006))
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 4, lines
    assert lines[0].startswith(
        "TLS handshake from 10.0.0.7:41000 failed (plain_http, HTTP_REQUEST)"
    )
    assert "more of this kind" not in lines[0]
    assert lines[1].startswith("TLS handshake from [::1]:41003 failed (other, odd)")
    assert lines[2].startswith("TLS handshake from 10.0.0.7:41004 failed (plain_http, ")
    assert lines[2].endswith("; 3 more of this kind since the last line")
    assert lines[3].endswith("; 1 more of this kind since the last line")
