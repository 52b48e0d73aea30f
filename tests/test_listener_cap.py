"""The HTTP listener's connection cap: the longest idle or slowest body closed to make room,
the probe reserve, the cap fitted to the descriptor limit (raised at start), and stalled
answers, against a bridge serving on a loopback port, over raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import subprocess
import sys

import pytest
from prometheus_client import CollectorRegistry, Gauge

from bridge.app import Bridge
from bridge.listener import (
    BODY_GRACE,
    MAX_STALLED,
    RESERVE,
    ConnectionGuard,
    Limits,
)
from tests.doc_text import page
from tests.listener_support import Serve, answered, closed, closed_within, connect, get, serve
from tests.support import async_wait_until

__all__ = ["serve"]  # the fixture, imported for the tests below


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
    # The others were left open: each is still served (after the eviction, made at the accept).
    for other, writer in others:
        assert (await answered(other, writer)).startswith(b"HTTP/1.1 200")


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


async def trickle(bridge: Bridge, sent: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An ingest whose 100-byte body stops after ``sent``; the connection's reader and writer."""
    reader, writer = await connect(bridge)
    writer.write(
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        # A signature, checked once the body is in: with none the head alone is refused (401).
        b"X-ExESDB-Signature: t=1,v1=" + b"0" * 64 + b"\r\n"
        b"Content-Length: 100\r\n\r\n" + sent
    )
    await writer.drain()
    return reader, writer


async def test_at_the_cap_with_none_idle_a_new_connection_closes_the_slowest_body(
    serve: Serve,
) -> None:
    """With every connection under the cap reading a trickled body, a new connection is served
    in place of the body read going slowest past BODY_GRACE, counted as slow_body; the faster
    one goes on."""
    bridge = await serve(EXESDB_INGEST="true", EXESDB_HTTP_MAX_CONNECTIONS="2")
    slow, _ = await trickle(bridge, b"{")
    fast, fast_writer = await trickle(bridge, b'{"id": "' + b"0" * 40)
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
    # The faster body goes on: the rest of it comes, and its request is answered (401: its
    # signature, checked once the body is in, is no signature of the key's).
    fast_writer.write(b'"' + b" " * 50 + b"}")
    assert (await asyncio.wait_for(fast.readline(), 10)).startswith(b"HTTP/1.1 401")


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
    warning naming the setting and what to do: the hard limit the cap needs, where it is set,
    or the cap that fits."""
    guard = ConnectionGuard(Limits(1, 1, 1, 4_096, 1, 1_048_576), registry=CollectorRegistry())
    with caplog.at_level(logging.WARNING, "bridge.listener"):
        cap = guard.fit(1_024)
    assert cap + RESERVE < 1_024
    assert cap > 512
    kept = 1_024 - cap
    assert [r.getMessage() for r in caplog.records] == [
        f"EXESDB_HTTP_MAX_CONNECTIONS 4096 lowered to {cap}: the descriptor limit is 1024,"
        f" {kept} of them kept for the rest of the bridge; raise the hard open-file limit to"
        f" {4_096 + kept} or more (LimitNOFILE= in a systemd unit, ulimit -Hn in a shell,"
        f" --ulimit nofile= for docker run), or set EXESDB_HTTP_MAX_CONNECTIONS to {cap} or less"
    ]
    assert ConnectionGuard(Limits(1, 1, 1, 100, 1, 1_048_576)).fit(1_024) == 100


def test_the_pages_give_the_descriptors_kept_and_the_reserve_as_the_guard_counts() -> None:
    """docs/configuration.md and docs/http-api.md give the descriptors kept beside the cap
    (limit minus N, cap + N), the burst of accepts, the probe reserve and the stalled answers held
    as the guard counts them, so that a change to one of them shows on the pages."""
    guard = ConnectionGuard(Limits(1, 1, 1, 4_096, 1, 1_048_576), registry=CollectorRegistry())
    kept = 1_024 - guard.fit(1_024)
    burst = guard.descriptor_budget - guard.max_connections - RESERVE
    minus = "\N{MINUS SIGN}"  # as the pages write it
    configuration = " ".join(page("configuration").split())
    http_api = " ".join(page("http-api").split())
    assert f"(limit {minus} {kept})" in configuration
    assert f"probes and `/metrics` have {RESERVE} more in reserve" in configuration
    assert f"(cap + {kept})" in http_api
    assert f"(limit {minus} {kept}: up to {burst} connections are accepted at once" in http_api
    assert f"the kernel's queue of {burst}" in http_api
    assert f"{RESERVE} more are taken for `GET /healthz`" in http_api
    assert f"at most {MAX_STALLED} connections may hold an answer" in http_api


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
