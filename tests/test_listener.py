"""The HTTP listener: idle, head, body and write deadlines, heads the HTTP parser refuses,
heads too big to keep a connection alive, and what a stop waits for, against a bridge serving
on a loopback port, over raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import socket
import time
from functools import partial

import psutil
import pytest

from bridge.app import Bridge
from bridge.bus import SIGNATURE_HEADER, Keyring
from bridge.listener import HEAD_KEPT, LINE_MAX
from bridge.listener.refusals import NamedRefusals
from tests.http.helpers import envelope
from tests.listener_support import (
    Serve,
    answered,
    closed,
    closed_within,
    connect,
    get,
    sent_before_the_cut,
    serve,
)
from tests.support import ADMIN_TOKEN, TEST_SECRET, alive, async_wait_until, collector_off

__all__ = ["serve"]  # the fixture, imported for the tests below

# An ingest head whose body is read: a signature sent (one checked once the body is in; with
# none, the head alone is refused, 401).
_HEAD = (
    b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"X-ExESDB-Signature: t=1,v1=" + b"0" * 64 + b"\r\n"
)


async def test_an_idle_connection_is_closed_after_the_idle_timeout(serve: Serve) -> None:
    """A connection that sends nothing, or nothing after its response, is closed once idle
    for EXESDB_HTTP_IDLE_TIMEOUT_MS."""
    bridge = await serve(EXESDB_HTTP_IDLE_TIMEOUT_MS="300")
    began = time.monotonic()  # before the accept, which starts the idle timeout
    reader, _ = await connect(bridge)
    assert await closed_within(reader, 10) == b""
    assert time.monotonic() - began >= 0.25
    reader, status = await get(bridge, "/healthz")
    assert status.startswith(b"HTTP/1.1 200")
    assert (await closed_within(reader, 10)).endswith(b'{"status": "ok"}')


async def test_a_half_sent_head_is_closed_after_the_header_timeout(serve: Serve) -> None:
    """Part of a request head and then silence: closed after EXESDB_HTTP_HEADER_TIMEOUT_MS
    from its first byte, while a connection that sent nothing waits for the idle timeout."""
    bridge = await serve(EXESDB_HTTP_HEADER_TIMEOUT_MS="300", EXESDB_HTTP_IDLE_TIMEOUT_MS="60000")
    quiet, quiet_writer = await connect(bridge)
    reader, writer = await connect(bridge)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()
    began = time.monotonic()
    assert await closed_within(reader, 10) == b""
    assert time.monotonic() - began >= 0.25
    assert closed(bridge, "header_timeout") == 1
    # The quiet one, accepted first, has outlived the header timeout: still open, it is served.
    assert (await answered(quiet, quiet_writer)).startswith(b"HTTP/1.1 200")


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


async def test_a_trickled_body_is_answered_408_and_closed(serve: Serve) -> None:
    """A body not complete within EXESDB_HTTP_BODY_TIMEOUT_MS of its head gets 408 naming the
    setting, and the connection closes."""
    bridge = await serve(EXESDB_INGEST="true", EXESDB_HTTP_BODY_TIMEOUT_MS="400")
    reader, writer = await connect(bridge)
    writer.write(_HEAD + b"Content-Length: 100\r\n\r\n{")
    await writer.drain()
    began = time.monotonic()
    answer = await closed_within(reader, 10)
    assert time.monotonic() - began >= 0.35
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"EXESDB_HTTP_BODY_TIMEOUT_MS (400 ms)" in answer
    assert closed(bridge, "body_timeout") == 1


# A secret of the sender's, in each request the parser refuses: no answer may quote it.
_SECRET = b"c2VjcmV0LXBhc3N3b3Jk"


@pytest.mark.parametrize(
    ("request_bytes", "detail", "field"),
    [
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad " + _SECRET + b": y\r\n\r\n",
            "the request head is malformed",
            "head",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
            + _SECRET * 500
            + b"\r\n\r\n",
            f"the request line is over {LINE_MAX} bytes or a header field over 8190",
            "head",
        ),
        (
            b"GET /alerts/"
            + _SECRET * (LINE_MAX // len(_SECRET) + 1)
            + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            f"the request line is over {LINE_MAX} bytes or a header field over 8190",
            "head",
        ),
        (
            b"GET /" + _SECRET + b" x HTTP/1.1\r\nHost: x\r\n\r\n",
            "the request line is not METHOD TARGET HTTP/1.1",
            "request line",
        ),
        (  # lines ended by a bare LF, as typed into nc: the line is right but for its end
            b"GET /" + _SECRET + b" HTTP/1.1\nHost: x\n\n",
            "the request line is not METHOD TARGET HTTP/1.1 (or HTTP/1.0), ended by CRLF",
            "request line",
        ),
        (
            b"GET /" + _SECRET + b" HTTP/1.1\r\n\r\n",
            "one given twice, or Host missing)",
            "head",
        ),
        (
            _HEAD + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "the request head is malformed",
            "head",
        ),
    ],
    ids=[
        "header-token",
        "long-authorization",
        "long-request-line",
        "request-line",
        "bare-line-feeds",
        "no-host",
        "length-and-chunked",
    ],
)
async def test_a_request_the_http_parser_refuses_is_answered_400_naming_the_problem_not_its_bytes(
    serve: Serve, request_bytes: bytes, detail: str, field: str
) -> None:
    """A head aiohttp's parser refuses (a bad header, one over 8 KiB, a bad request line or one
    ended by a bare LF, no Host, Content-Length beside chunked) is answered 400 at once,
    before any route, in the JSON error body naming what was wrong (aiohttp's own quotes up to
    ~100 bytes of the line at fault: an over-long Authorization header's credentials), the
    connection closes, and the refusal is counted (aiohttp logs it at debug level alone)."""
    bridge = await serve(EXESDB_INGEST="true")
    assert closed(bridge, "bad_request") == 0
    reader, writer = await connect(bridge)
    writer.write(request_bytes)
    await writer.drain()
    answer = await closed_within(reader, 10)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 400")
    assert b"Content-Type: application/json" in head
    refusal = json.loads(body)
    assert refusal["error"] == "bad_request"
    assert detail in refusal["detail"]
    assert refusal["field"] == field
    assert _SECRET not in answer
    assert closed(bridge, "bad_request") == 1


async def test_a_head_the_parser_refuses_is_let_go_with_its_connection_however_much_follows(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A head the parser refuses (a field over 8 KiB), followed by half a megabyte more of head
    in pieces, is let go with its connection, what followed not parsed and not kept in a cycle
    for the collector, which the bridge's thresholds run some 500 requests later: a megabyte
    each, they held 460 MB."""
    bridge = await serve()
    # aiohttp logs each refusal with its traceback: a record kept by the capture would hold it.
    caplog.set_level(logging.CRITICAL, logger="aiohttp.server")
    with collector_off():
        before = alive(NamedRefusals)
        for _ in range(3):
            reader, writer = await connect(bridge)
            writer.write(_HEAD + b"X-Long: " + b"a" * 9000 + b"\r\n")
            for _ in range(8):
                writer.write((b"X-More: " + b"b" * 8000 + b"\r\n") * 8)
                await writer.drain()
            with contextlib.suppress(ConnectionError):  # reset: bytes sent after the close
                assert (await closed_within(reader, 10)).startswith(b"HTTP/1.0 400")
            writer.close()
        await async_wait_until(
            lambda: alive(NamedRefusals) <= before, what="the refused connections let go"
        )


async def test_requests_sent_together_are_answered_up_to_one_saying_connection_close(
    serve: Serve,
) -> None:
    """Requests sent together in one write are answered in turn up to the one saying
    Connection: close, and what follows it is not answered (RFC 9112 section 9.6): the bridge
    gives aiohttp's parser one request head at a time, so it no longer refuses the whole read
    (400, the requests before it unanswered), as docs/http-api.md says."""
    bridge = await serve()
    reader, writer = await connect(bridge)
    writer.write(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    await writer.drain()
    answer = await closed_within(reader, 10)
    assert answer.count(b"HTTP/1.1 200") == 2, answer
    assert answer.count(b"HTTP/1.") == 2, answer
    assert answer.rpartition(b"HTTP/1.1 200")[2].count(b"Connection: close") == 1, answer
    assert closed(bridge, "bad_request") == 0


_GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(
    ("sent", "statuses"),
    [
        (_GET, [b"200"]),
        (_GET * 3, [b"200"] * 3),
        (_HEAD + b"Content-Length: 9\r\n\r\n" + b'{"a": 1}\n' + _GET, [b"401", b"200"]),
        (_GET + b"GET /healthz HTTP/1.1\r\nHost:", [b"200"]),
    ],
    ids=["one", "three", "body-then-one", "one-then-half-a-head"],
)
async def test_requests_sent_before_the_client_ends_its_side_are_all_answered_then_closed(
    serve: Serve, sent: bytes, statuses: list[bytes]
) -> None:
    """Requests sent whole before the client shuts its side (shutdown(SHUT_WR)) are each
    answered, in turn, and then the connection closes (a head begun but not ended is not
    answered): aiohttp closed it as the end was read, and the answers in progress were lost."""
    bridge = await serve(EXESDB_INGEST="true")
    reader, writer = await connect(bridge)
    writer.write(sent)
    writer.write_eof()
    answer = await closed_within(reader, 10)
    assert [each[:3] for each in answer.split(b"HTTP/1.1 ")[1:]] == statuses, answer


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/0.9\r\nHost: x\r\n\r\n",
        _HEAD.replace(b"HTTP/1.1", b"HTTP/2.0")
        + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    ],
    ids=["2.0", "0.9", "2.0-expecting-continue"],
)
async def test_a_request_in_an_http_version_not_served_is_answered_505_and_closed(
    serve: Serve, caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    """A request line naming a version other than HTTP/1.0 and 1.1, which aiohttp's parser
    takes, is answered as Go's servers answer it: ``HTTP/1.1 505`` (not a status line in the
    version named), the JSON error body, Connection: close, no 100 Continue; logged at debug."""
    bridge = await serve(EXESDB_INGEST="true")
    assert closed(bridge, "unsupported_version") == 0
    reader, writer = await connect(bridge)
    with caplog.at_level(logging.DEBUG, logger="bridge.listener"):
        writer.write(request_bytes)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 505 HTTP Version Not Supported\r\n")
    assert b"\r\nConnection: close\r\n" in head
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    body = json.loads(await asyncio.wait_for(reader.readexactly(length), 10))
    assert body["error"] == "http_version_not_supported"
    named = request_bytes.split(b"\r\n")[0].rsplit(b" ", 1)[1].decode()
    assert named in body["detail"]
    said = [r.getMessage() for r in caplog.records if r.name.startswith("bridge.listener")]
    assert any(f"refused an {named} request from 127.0.0.1: 505" in line for line in said)
    if b"Content-Length" not in request_bytes:
        assert await closed_within(reader, 10) == b""
    assert closed(bridge, "unsupported_version") == 1


@pytest.mark.parametrize("together", [False, True], ids=["after-the-head", "with-the-head"])
async def test_a_chunked_body_broken_after_its_head_is_answered_408_at_the_body_timeout(
    serve: Serve, together: bool
) -> None:
    """A chunk-size line that is not hex, arriving after the head or in the same read, is not
    reported to the request reading the body by aiohttp's parser: the request is answered 408
    once EXESDB_HTTP_BODY_TIMEOUT_MS has passed (as docs/http-api.md says), and the connection
    closes."""
    bridge = await serve(EXESDB_INGEST="true", EXESDB_HTTP_BODY_TIMEOUT_MS="400")
    reader, writer = await connect(bridge)
    head = _HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    if together:
        writer.write(head + b"zz\r\n")
        await writer.drain()
    else:
        writer.write(head)
        await writer.drain()
        await async_wait_until(lambda: bridge.connections.idle == 0, what="the body being read")
        writer.write(b"zz\r\n")
    await writer.drain()
    answer = await closed_within(reader, 10)
    assert answer.startswith(b"HTTP/1.1 408")
    assert closed(bridge, "body_timeout") == 1


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


@pytest.mark.parametrize(("size", "closes"), [(HEAD_KEPT - 100, False), (HEAD_KEPT, True)])
async def test_a_connection_whose_request_target_is_past_head_kept_closes_after_its_answer(
    serve: Serve, size: int, closes: bool
) -> None:
    """A request whose target and header fields are over HEAD_KEPT bytes (an alert's link with
    a long id: the request line may be up to LINE_MAX) is answered with Connection: close; one
    under stays open for the next request."""
    bridge = await serve()
    reader, writer = await connect(bridge)
    writer.write(f"GET /alerts/{'a' * size} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert (b"\r\nConnection: close\r\n" in head) is closes


async def test_a_long_request_line_sent_slowly_is_closed_after_the_header_timeout(
    serve: Serve,
) -> None:
    """A request line near LINE_MAX bytes, sent in part and then left unfinished, is closed
    after EXESDB_HTTP_HEADER_TIMEOUT_MS as any unfinished head is."""
    bridge = await serve(EXESDB_HTTP_HEADER_TIMEOUT_MS="300", EXESDB_HTTP_IDLE_TIMEOUT_MS="60000")
    reader, writer = await connect(bridge)
    writer.write(b"GET /alerts/" + b"a" * (LINE_MAX - 1024))
    await writer.drain()
    began = time.monotonic()
    assert await closed_within(reader, 10) == b""
    assert time.monotonic() - began >= 0.25
    assert closed(bridge, "header_timeout") == 1


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


async def test_an_answer_with_connection_close_answers_nothing_sent_after_it(
    serve: Serve,
) -> None:
    """An answer saying Connection: close before its body was read (a head past HEAD_KEPT
    refused 401) ends the connection: the body the client sends after it is dropped (aiohttp's
    lingering close) and a request sent after that is not answered, the connection closed."""
    bridge = await serve(EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    reader, writer = await connect(bridge)
    fields = "".join(f"X-Pad-{n}: {'a' * (HEAD_KEPT // 3)}\r\n" for n in range(3))
    writer.write(
        f"POST /v1/integration HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: 99\r\n{fields}\r\n".encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert b"\r\nConnection: close\r\n" in head
    writer.write(b"x" * 99 + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    rest = await closed_within(reader, 10)
    assert b"HTTP/1.1" not in rest


async def test_a_stop_does_not_wait_for_a_body_an_answer_left_unsent(serve: Serve) -> None:
    """A kept-alive connection answered before its body came (a POST to a path not served,
    404, without Expect), whose client never sends it, is closed at once when the bridge
    stops, not after the share of the shutdown timeout (2 s) requests in progress get; a
    request in progress as the stop begins is still answered."""
    bridge = await serve(EXESDB_INGEST="true")
    unsent, unsent_writer = await connect(bridge)
    unsent_writer.write(b"POST /no/such/path HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
    await unsent_writer.drain()
    head = await asyncio.wait_for(unsent.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert b"\r\nConnection: close\r\n" not in head
    # Both accepted, one of them with a request in progress (its body's last byte to come).
    busy, busy_writer, last = await _ingest_short_of_its_last_byte(bridge, idle=1)
    loop = asyncio.get_running_loop()
    began = loop.time()
    stopping = asyncio.create_task(bridge.aclose())
    busy_writer.write(last)
    await busy_writer.drain()
    assert (await closed_within(busy, 10)).startswith(b"HTTP/1.1 202 ")
    await asyncio.wait_for(stopping, 10)
    assert loop.time() - began < 1.0
    assert (await closed_within(unsent, 10)).startswith(b'{"error": "not_found"')  # its body


async def test_a_stop_sends_answers_its_client_has_yet_to_read_in_full(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answers written but waiting on a client slow to read them (more than the sockets'
    buffers hold) are sent in full before a stop returns (within the share of the shutdown
    timeout requests get), not left to a loop that may stop next: only a connection with
    nothing left to send is cut at once."""
    bridge = await serve()
    rendered: list[str] = []
    render = bridge.render_metrics

    def counted(accept: str) -> tuple[bytes, str]:
        rendered.append(accept)
        return render(accept)

    monkeypatch.setattr(bridge, "render_metrics", counted)
    assert bridge.address is not None
    address = bridge.address
    loop = asyncio.get_running_loop()
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel keeps little
    client.setblocking(False)
    try:
        await loop.sock_connect(client, address)
        await async_wait_until(lambda: _shrink_send_buffer(address), what="the accept")
        request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
        await loop.sock_sendall(
            client, (request + b"\r\n") * 2 + request + b"Connection: close\r\n\r\n"
        )
        await async_wait_until(lambda: len(rendered) == 3, what="the third answer begun")
        stopping = asyncio.create_task(bridge.aclose())
        # Time for a stop that cut the answers to have ended: this one waits for them.
        done, _ = await asyncio.wait({stopping}, timeout=0.3)
        assert not done
        received = bytearray()
        while chunk := await asyncio.wait_for(loop.sock_recv(client, 65536), 10):
            received += chunk
        await asyncio.wait_for(stopping, 10)
    finally:
        client.close()
    assert _whole_answers(bytes(received)) == 3


def _shrink_send_buffer(address: tuple[str, int]) -> bool:
    """Give the accepted connection to ``address`` (in this process) the smallest send buffer,
    so that an answer not read waits in its transport; False while it is not accepted yet."""
    for found in psutil.Process().net_connections("tcp"):
        if found.raddr and found.laddr.port == address[1]:
            with socket.socket(fileno=os.dup(found.fd)) as accepted:
                accepted.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            return True
    return False


def _whole_answers(received: bytes) -> int:
    """How many answers, each whole (its Content-Length of body), ``received`` holds; fails on
    one cut short."""
    count = 0
    while received:
        head, _, rest = received.partition(b"\r\n\r\n")
        field = re.search(rb"\r\nContent-Length: (\d+)", head, re.IGNORECASE)
        assert field is not None, head
        length = int(field[1])
        assert len(rest) >= length, f"an answer cut short: {len(rest)} of {length} bytes"
        received = rest[length:]
        count += 1
    return count


async def _refused(bridge: Bridge) -> bool:
    """True once ``bridge`` refuses new connections (its stop has begun)."""
    assert bridge.address is not None
    try:
        _, writer = await asyncio.open_connection(*bridge.address)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def _ingest_short_of_its_last_byte(
    bridge: Bridge, *, idle: int = 0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A signed ingest request sent but for its body's last byte, in progress at the bridge
    beside ``idle`` connections open and idle: the connection and that byte."""
    body = json.dumps(envelope()).encode()
    signature = Keyring.from_secrets(TEST_SECRET).sign_header(body, int(time.time()))
    reader, writer = await connect(bridge)
    writer.write(
        f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"{SIGNATURE_HEADER}: {signature}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body[:-1]
    )
    await writer.drain()
    await async_wait_until(
        lambda: (
            bridge.registry.get_sample_value("exesdb_http_connections") == idle + 1
            and bridge.connections.idle == idle
        ),
        what="the request in progress",
    )
    return reader, writer, body[-1:]


async def test_a_stop_reads_a_body_still_arriving_and_answers_it(serve: Serve) -> None:
    """A request whose body is still arriving as the bridge stops has the share of the shutdown
    timeout requests in progress get (2 s) to receive it: the rest, sent once the bridge
    refuses new connections, is read and answered (202, with Connection: close), and the stop
    ends then, not when the share is out."""
    bridge = await serve(EXESDB_INGEST="true")
    reader, writer, last = await _ingest_short_of_its_last_byte(bridge)
    stopping = asyncio.create_task(bridge.aclose())
    await async_wait_until(partial(_refused, bridge), what="the stop begun")
    loop = asyncio.get_running_loop()
    began = loop.time()
    writer.write(last)
    await writer.drain()
    answer = await closed_within(reader, 10)
    assert answer.startswith(b"HTTP/1.1 202 "), answer
    assert b"\r\nConnection: close\r\n" in answer
    await asyncio.wait_for(stopping, 10)
    assert loop.time() - began < 1.0


async def test_a_stop_cuts_off_a_body_that_does_not_come_within_its_share(serve: Serve) -> None:
    """A request whose body stops arriving as the bridge stops is waited for the share of the
    shutdown timeout requests in progress get (2 s), then its connection is cut, unanswered:
    the stop goes on then, not after that share a second time (aiohttp's own shutdown, which
    reads nothing more, waiting for its handler)."""
    bridge = await serve(EXESDB_INGEST="true")
    reader, _writer, _last = await _ingest_short_of_its_last_byte(bridge)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.wait_for(bridge.aclose(), 10)
    took = loop.time() - began
    sent = await sent_before_the_cut(reader)
    assert b"HTTP/1.1" not in sent, sent
    assert 1.5 < took < 3.0, took


_BIG_JSON = b"[" + b"0," * 1_000 + b"0]"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"200"),
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", b"200"),  # streamed
        (b"GET /alerts HTTP/1.1\r\nHost: x\r\n\r\n", b"302"),  # raised as an HTTPException
        (b"GET /no/such/path HTTP/1.1\r\nHost: x\r\n\r\n", b"404"),
        (b"DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"405"),
        (
            b"POST /v1/integration HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + ADMIN_TOKEN.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(_BIG_JSON), _BIG_JSON),
            b"413",  # aiohttp's own, past client_max_size
        ),
        (b"GET /v1/integration HTTP/1.1\r\nHost: x\r\n\r\n", b"401"),
        (b"GET / HTTP/1.1 junk\r\nHost: x\r\n\r\n", b"400"),  # a request line aiohttp refuses
        (b"\x00\x01\x02 / HTTP/1.1\r\n\r\n", b"400"),  # not HTTP at all
    ],
    ids=["ok", "streamed", "raised", "404", "405", "413", "401", "bad-line", "not-http"],
)
async def test_no_answer_carries_a_server_header(
    serve: Serve, request_bytes: bytes, status: bytes
) -> None:
    """No answer says Server (aiohttp's names the Python and aiohttp versions): the routes',
    the refusals', and aiohttp's own 400 to a head it cannot parse, which no route sees."""
    bridge = await serve(EXESDB_ADMIN_TOKEN=ADMIN_TOKEN, EXESDB_MAX_BODY_BYTES="1024")
    reader, writer = await connect(bridge)
    writer.write(request_bytes)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.split(b" ", 2)[1] == status
    assert b"\r\nserver:" not in head.lower()
