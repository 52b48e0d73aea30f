"""What the requests in progress hold of heads and bodies: each head's size, the budgets, and the
gauges that show them, over raw sockets to an in-process bridge."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import tracemalloc
from pathlib import Path

import pytest
from aiohttp import web

from bridge.listener import HEAD_MAX, HEADS_HELD
from bridge.listener.framing import BodyFrame
from bridge.listener.heads import HeadSize
from tests.http.helpers import Server, ServerFactory
from tests.support import async_wait_until
from tests.webconfig.files import WebFiles

# A field of 8 190 bytes, name and value: the most aiohttp's parser takes of one.
_FIELD = b"X-Fill-%03d: " + b"v" * (8190 - len(b"X-Fill-000")) + b"\r\n"
_UNSIGNED = b"X-ExESDB-Signature: t=%d,v1=" + b"0" * 64 + b"\r\n"


def _held(server: Server, name: str) -> float:
    """The value of the gauge ``name`` of ``server``'s bridge."""
    return server.bridge.registry.get_sample_value(name) or 0.0


def _closed(server: Server, reason: str) -> float:
    """How many connections ``server``'s bridge closed for ``reason``."""
    closed = server.bridge.registry.get_sample_value(
        "exesdb_http_connections_closed_total", {"reason": reason}
    )
    return closed or 0.0


async def _statuses_until_closed(host: str, port: int, sent: bytes) -> tuple[list[bytes], bytes]:
    """The status codes of the answers to ``sent`` in one write, read until the bridge closes
    the connection (within 10 s a read), and the answers themselves for an assertion's message;
    what of ``sent`` the bridge never read is left unsent."""
    loop = asyncio.get_running_loop()
    with socket.create_connection((host, port)) as client:
        client.setblocking(False)
        sending = asyncio.create_task(loop.sock_sendall(client, sent))
        answers = b""
        while chunk := await asyncio.wait_for(loop.sock_recv(client, 65536), 10):
            answers += chunk
        sending.cancel()
    return [answer[:3] for answer in answers.split(b"HTTP/1.1 ")[1:]], answers


def _ingest_head(length: int) -> bytes:
    """The head of an ingest request of ``length`` bytes with a signature that cannot match."""
    return (
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
        + _UNSIGNED % int(time.time())
        + b"Content-Length: %d\r\n\r\n" % length
    )


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_a_request_head_over_head_max_is_answered_431_and_its_connection_closed(
    serve: ServerFactory, tmp_path: Path, tls: bool
) -> None:
    """A request head totalling more than HEAD_MAX (1 MiB), each of its lines within aiohttp's
    limits, is answered 431 ``request_header_fields_too_large`` before it is whole, counted as
    ``head_too_large``, and its connection closes, over TLS too; the bridge keeps serving."""
    files = WebFiles(tmp_path / "web")
    env: dict[str, str] = {}
    if tls:
        files.write(files.tls_config())
        env["EXESDB_WEB_CONFIG_FILE"] = str(files.folder / "web.yml")
    server = await serve(**env)
    host, port = server.bridge.address or ("", 0)
    context = files.client_context() if tls else None
    reader, writer = await asyncio.open_connection(
        host, port, ssl=context, server_hostname=host if tls else None
    )
    fields = b"".join(_FIELD % number for number in range(127))
    head = b"GET /healthz?" + b"q" * 40_000 + b" HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"
    assert len(head) > HEAD_MAX
    writer.write(head)
    answer = await asyncio.wait_for(reader.read(), 10)  # to the end: the connection closes
    writer.close()
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 431 Request Header Fields Too Large", answer[:200]
    fields_sent, _, body = rest.partition(b"\r\n\r\n")
    assert b"Connection: close" in fields_sent
    refusal = json.loads(body)
    assert refusal["error"] == "request_header_fields_too_large"
    assert refusal["field"] == "head"
    assert _closed(server, "head_too_large") == 1.0
    if not tls:
        assert (await server.get("/healthz"))[0] == 200


async def test_a_body_sent_with_a_head_near_head_max_is_not_counted_as_head(
    serve: ServerFactory,
) -> None:
    """A head just under HEAD_MAX sent with its body, the two over it together, is served: only
    what precedes the blank line that ends the head counts as head."""
    server = await serve()
    host, port = server.bridge.address or ("", 0)
    reader, writer = await asyncio.open_connection(host, port)
    fields = b"".join(_FIELD % number for number in range(120))
    head = _ingest_head(200_000).replace(b"Host: x\r\n", b"Host: x\r\n" + fields)
    assert len(head) < HEAD_MAX < len(head) + 200_000
    writer.write(b"\r\n" + head + b'{"a": 1}\n' * 20_000 + b"\n" * 20_000)
    status = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status.split()[1] == b"401", status  # its signature, checked once the body is in
    assert _held(server, "exesdb_http_heads_held_bytes") == 0.0


@pytest.mark.parametrize("cut", range(1, 8))
def test_a_head_is_counted_to_its_blank_line_however_its_reads_cut_it(cut: int) -> None:
    """``HeadSize`` counts a head up to and with the blank line that ends it, whatever read
    the line ends fall in, and not the CRLFs before its request line (RFC 9112 section 2.2);
    it says where in a read the head stops."""
    head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    sent = b"\r\n" + head + b"body\r\n\r\n"
    at = len(sent) - len(b"body\r\n\r\n") - cut  # a cut among the last line ends, or after
    for reads in (
        [sent[:at], sent[at:]],
        [sent[:2], sent[2:at], sent[at : at + 1], sent[at + 1 :]],
    ):
        size = HeadSize()
        size.begin(0.0)
        for read in reads:
            size.read(read)
        assert (size.size, size.ended) == (len(head), True), reads
    whole = HeadSize()
    whole.begin(0.0)
    assert sent[: whole.read(sent)] == b"\r\n" + head  # where the head stops in the read


@pytest.mark.parametrize(
    ("body", "chunked"),
    [
        (b"x" * 300, False),
        (b"12c;name=value\r\n" + b"x" * 300 + b"\r\n0\r\n\r\n", True),
        (b"a\r\n0123456789\r\n0;last\r\nX-Sum: 1\r\nX-More: 2\r\n\r\n", True),
    ],
    ids=["length", "chunked", "chunked-with-trailer"],
)
def test_a_body_frame_ends_where_its_body_does_however_its_reads_cut_it(
    body: bytes, chunked: bool
) -> None:
    """``BodyFrame`` finds the end of a body (its Content-Length, or its last chunk and trailer
    fields) wherever the reads cut it, and says where in a read it stops: what follows is the
    next request's head."""
    sent = body + b"GET / HTTP/1.1\r\n\r\n"
    for cut in range(1, len(sent)):
        frame = BodyFrame(None if chunked else len(body), chunked=chunked)
        taken = frame.read(sent[:cut])
        taken += frame.read(sent[cut:]) if taken == cut else 0
        assert (taken, frame.ended) == (len(body), True), cut


def test_a_body_frame_takes_what_it_cannot_read_as_chunks_for_body_to_the_end() -> None:
    """A chunk-size line that is not hex, or never ends, is taken for body to the end (aiohttp's
    parser refuses it, 400, and the connection closes), never for the next request's head."""
    for sent in (b"zz\r\nGET / HTTP/1.1\r\n\r\n", b"1" * 10_000):
        frame = BodyFrame(None, chunked=True)
        assert (frame.read(sent), frame.ended) == (len(sent), False)


async def test_the_bytes_held_by_a_head_and_a_body_in_progress_are_shown_until_let_go(
    serve: ServerFactory,
) -> None:
    """``exesdb_http_heads_held_bytes`` counts a head as it arrives and
    ``exesdb_http_bodies_held_bytes`` a body, until the connection is let go: then both are 0."""
    server = await serve()
    host, port = server.bridge.address or ("", 0)
    reader, writer = await asyncio.open_connection(host, port)
    head = _ingest_head(100_000)
    writer.write(head[:-2] + b"X-Fill: " + b"v" * 5000)  # the head not yet ended
    await async_wait_until(lambda: _held(server, "exesdb_http_heads_held_bytes") >= 5000, 10)
    writer.write(b"\r\n\r\n" + b'{"a": 1}\n' * 5000)
    await async_wait_until(lambda: _held(server, "exesdb_http_bodies_held_bytes") == 45_000, 10)
    assert _held(server, "exesdb_http_heads_held_bytes") > 5000  # until its answer
    writer.close()
    await async_wait_until(lambda: _held(server, "exesdb_http_bodies_held_bytes") == 0, 10)
    assert _held(server, "exesdb_http_heads_held_bytes") == 0.0
    del reader


async def test_max_bodies_bytes_bounds_the_bodies_held_at_once(serve: ServerFactory) -> None:
    """With ``EXESDB_MAX_BODIES_BYTES`` at 1 MiB, a second body of 600 KB arriving while a first
    holds 600 KB is answered 503 ``overloaded`` (``body_budget``), or, when the first has been
    read for a second already, the first is closed (``slow_body``): never both held (64 MiB
    unset)."""
    server = await serve(EXESDB_MAX_BODIES_BYTES="1048576")
    host, port = server.bridge.address or ("", 0)
    part = b'{"a": 1}\n' * 66_000  # 594 000 bytes of a body of 1 000 000
    first = await asyncio.open_connection(host, port)
    first[1].write(_ingest_head(1_000_000) + part)
    await async_wait_until(lambda: _held(server, "exesdb_http_bodies_held_bytes") >= len(part), 10)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(_ingest_head(1_000_000) + part)
    await async_wait_until(
        lambda: _closed(server, "body_budget") + _closed(server, "slow_body") == 1, 10
    )
    if _closed(server, "body_budget"):
        status = await asyncio.wait_for(reader.readline(), 10)
        assert status.split()[1] == b"503", status
    writer.close()
    first[1].close()


class _Held:
    """A component serving /held: answered once ``release`` is set."""

    name = "held"
    required = False

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def start(self) -> None:
        pass

    def readiness(self) -> str | None:
        return None

    async def aclose(self) -> None:
        self.release.set()

    def routes(self) -> list[web.RouteDef]:
        async def held(request: web.Request) -> web.Response:
            await self.release.wait()
            return web.Response(text="released")

        return [web.get("/held", held)]


async def test_requests_sent_ahead_of_an_answer_are_read_once_it_is_sent(
    serve: ServerFactory,
) -> None:
    """Requests pipelined behind one in progress are not read until its answer is sent, as Go's
    server reads one at a time: aiohttp parsed and kept up to 32 of them (eight heads of 1 MiB
    held 16 MB); then each is answered in turn."""
    component = _Held()
    server = await serve(components=[lambda bridge: component])
    host, port = server.bridge.address or ("", 0)
    fields = b"".join(_FIELD % number for number in range(120))
    ahead = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"
    sent = memoryview(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n" + ahead * 8)
    loop = asyncio.get_running_loop()
    with socket.create_connection((host, port)) as client:
        client.setblocking(False)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            sending = asyncio.create_task(loop.sock_sendall(client, sent))  # no copy of it made
            await asyncio.sleep(1)  # what the bridge reads of it meanwhile, it reads
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        component.release.set()
        answers = b""
        while answers.count(b"HTTP/1.1 200") < 2:
            answers += await asyncio.wait_for(loop.sock_recv(client, 65536), 10)
        sending.cancel()
    assert held < 2 * 2**20, f"{held / 2**20:.1f} MiB held"
    assert b"released" in answers


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_a_head_sent_with_the_request_before_it_is_counted_and_timed(
    serve: ServerFactory, tmp_path: Path, tls: bool
) -> None:
    """A head begun in the same send as the request before it, and never ended, is counted in
    ``exesdb_http_heads_held_bytes`` once that request is answered, and closed after
    EXESDB_HTTP_HEADER_TIMEOUT_MS as ``header_timeout``, over TLS too: aiohttp was given it with
    the request before it, uncounted, and the connection lived to the idle timeout."""
    files = WebFiles(tmp_path / "web")
    env = {"EXESDB_HTTP_HEADER_TIMEOUT_MS": "500", "EXESDB_HTTP_IDLE_TIMEOUT_MS": "60000"}
    if tls:
        files.write(files.tls_config())
        env["EXESDB_WEB_CONFIG_FILE"] = str(files.folder / "web.yml")
    server = await serve(**env)
    host, port = server.bridge.address or ("", 0)
    reader, writer = await asyncio.open_connection(
        host,
        port,
        ssl=files.client_context() if tls else None,
        server_hostname=host if tls else None,
    )
    partial = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Fill: " + b"v" * 5000
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + partial)
    answer = await asyncio.wait_for(reader.readline(), 10)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    await async_wait_until(
        lambda: _held(server, "exesdb_http_heads_held_bytes") >= len(partial), 10
    )
    await async_wait_until(lambda: _closed(server, "header_timeout") == 1.0, 10)
    writer.close()


async def test_a_head_over_head_max_sent_with_the_request_before_it_is_answered_431(
    serve: ServerFactory,
) -> None:
    """A head over HEAD_MAX in the same send as the request before it is answered 431 once that
    request is answered 200, as when sent on its own."""
    server = await serve()
    host, port = server.bridge.address or ("", 0)
    fields = b"".join(_FIELD % number for number in range(127))
    large = b"GET /healthz?" + b"q" * 40_000 + b" HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"
    assert len(large) > HEAD_MAX
    sent = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + large
    statuses, answers = await _statuses_until_closed(host, port, sent)
    assert statuses == [b"200", b"431"], answers[:400]
    assert _closed(server, "head_too_large") == 1.0


async def test_what_connections_hold_behind_requests_in_progress_counts_against_the_heads_held(
    serve: ServerFactory,
) -> None:
    """Two hundred connections each sending a request the bridge holds unanswered and, in the
    same write, 300 KB of a request behind it have what the bridge reads of those held back
    (a read each, up to 256 KiB) counted in ``exesdb_http_heads_held_bytes``, within HEADS_HELD:
    past it a connection is closed (``head_budget``); what was held is let go once answered and
    closed. It was held uncounted: 200 such connections held some 24 MiB."""
    component = _Held()
    server = await serve(components=[lambda bridge: component])
    host, port = server.bridge.address or ("", 0)
    behind = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(_FIELD % n for n in range(36))
    sent = b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n" + behind
    loop = asyncio.get_running_loop()
    clients: list[socket.socket] = []
    sending: list[asyncio.Task[None]] = []
    try:
        for _ in range(200):
            client = socket.socket()
            clients.append(client)
            client.setblocking(False)
            await loop.sock_connect(client, (host, port))
            sending.append(asyncio.create_task(loop.sock_sendall(client, sent)))
        await async_wait_until(lambda: _closed(server, "head_budget") >= 1, 10)
        held = _held(server, "exesdb_http_heads_held_bytes")
        assert HEADS_HELD / 2 < held <= HEADS_HELD, held
    finally:
        for task in sending:
            task.cancel()
        for client in clients:
            client.close()
    component.release.set()  # a connection reads no more (nor finds it closed) until answered
    await async_wait_until(lambda: _held(server, "exesdb_http_heads_held_bytes") == 0, 10)


def _chunked(body: bytes, trailer: bytes = b"") -> bytes:
    """``body`` sent chunked, in chunks of 1 000 bytes (each size line with an extension), then
    the last chunk and ``trailer``'s fields."""
    pieces = [body[at : at + 1000] for at in range(0, len(body), 1000)]
    chunks = b"".join(b"%x;piece=%d\r\n%s\r\n" % (len(p), n, p) for n, p in enumerate(pieces))
    return chunks + b"0\r\n" + trailer + b"\r\n"


@pytest.mark.parametrize(
    "framed",
    ["length", "chunked", "chunked-with-trailer"],
)
async def test_a_head_over_head_max_sent_with_the_body_before_it_is_answered_431(
    serve: ServerFactory, framed: str
) -> None:
    """A head over HEAD_MAX sent in the same write as the body of the request before it (its
    Content-Length, or chunked, with trailer fields or none) is answered 431 once that request
    is answered (401: its signature cannot match), as when sent on its own: it reached aiohttp's
    parser with that body, uncounted, and was answered 200."""
    server = await serve()
    host, port = server.bridge.address or ("", 0)
    fields = b"".join(_FIELD % number for number in range(127))
    large = b"GET /healthz?" + b"q" * 40_000 + b" HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"
    body = b'{"a": 1}\n' * 2000
    if framed == "length":
        first = _ingest_head(len(body)) + body
    else:
        trailer = b"X-Checksum: 0\r\n" if framed == "chunked-with-trailer" else b""
        head = _ingest_head(0).replace(b"Content-Length: 0", b"Transfer-Encoding: chunked")
        first = head + _chunked(body, trailer)
    statuses, answers = await _statuses_until_closed(host, port, first + large)
    assert statuses == [b"401", b"431"], answers[:400]
    assert _closed(server, "head_too_large") == 1.0


async def test_a_head_sent_with_the_rest_of_a_body_answered_early_is_counted(
    serve: ServerFactory,
) -> None:
    """A request answered before its body has all come (413: the body is over
    EXESDB_MAX_BODY_BYTES) has the rest read and dropped; a head sent in the same write as that
    rest is counted in ``exesdb_http_heads_held_bytes`` and timed (``header_timeout``), not
    taken for part of the body."""
    server = await serve(EXESDB_MAX_BODY_BYTES="4096", EXESDB_HTTP_HEADER_TIMEOUT_MS="500")
    host, port = server.bridge.address or ("", 0)
    reader, writer = await asyncio.open_connection(host, port)
    body = b'{"a": 1}\n' * 20_000
    writer.write(_ingest_head(len(body)) + body[:10_000])
    status = await asyncio.wait_for(reader.readline(), 10)
    assert status.split()[1] == b"413", status
    partial = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Fill: " + b"v" * 5000
    writer.write(body[10_000:] + partial)
    await async_wait_until(
        lambda: _held(server, "exesdb_http_heads_held_bytes") >= len(partial), 10
    )
    await async_wait_until(lambda: _closed(server, "header_timeout") == 1.0, 10)
    writer.close()
