"""Servers on loopback ports for the client commands' tests: each reads a request, notes it, and
answers it in one way (a bridge's 200, a redirect, a connection closed or reset, no HTTP, an
answer cut short), one request a connection (``Connection: close``); and a real aiohttp server
(``aiohttp_answering``) answering as a hostile or broken one would (``flood``)."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

from tests.support import stop_serving


@dataclass(frozen=True)
class Asked:
    """One request a server read: its method, path (with the query), headers (names in lower
    case) and body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Answer = Callable[[socket.socket, Asked], None]


@dataclass
class Server:
    """A server's URL and the requests it has read, in order."""

    url: str
    asked: list[Asked] = field(default_factory=list)


def _read(conn: socket.socket) -> Asked | None:
    """The request on ``conn``, its body read to its Content-Length (a server closing on an
    unread body would reset the connection); None when the client sent none."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    line, *lines = head.decode("latin-1").split("\r\n")
    method, path, _version = line.split(" ", 2)
    headers = {}
    for header in lines:
        name, _, value = header.partition(":")
        headers[name.strip().lower()] = value.strip()
    while len(body) < int(headers.get("content-length", "0")):
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return Asked(method, path, headers, body)


@contextmanager
def answering(answer: Answer) -> Iterator[Server]:
    """A server on a loopback port answering each request with ``answer`` (then closing the
    connection)."""
    listener = socket.create_server(("127.0.0.1", 0))
    server = Server(f"http://127.0.0.1:{listener.getsockname()[1]}")

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            with conn:
                asked = _read(conn)
                if asked is not None:
                    server.asked.append(asked)
                    answer(conn, asked)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes accept(), which close() alone does not
        listener.close()
        thread.join(10)


def closed_at_once(conn: socket.socket, asked: Asked) -> None:
    """No answer: the connection closed."""


def reset(conn: socket.socket, asked: Asked) -> None:
    """No answer: the connection reset."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def not_http(conn: socket.socket, asked: Asked) -> None:
    """Another protocol's greeting."""
    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")


def cut_short(conn: socket.socket, asked: Asked) -> None:
    """A 200 whose body ends after 1 of its 100 bytes."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 100\r\n\r\n{")


def latin_1(conn: socket.socket, asked: Asked) -> None:
    """A bridge's 401 in Latin-1, which its Content-Type names."""
    body = '{"error": "unauthorized", "detail": "caf\xe9"}'.encode("latin-1")
    conn.sendall(
        b"HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n"
        b"Content-Type: application/json; charset=latin-1\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def not_in_its_charset(conn: socket.socket, asked: Asked) -> None:
    """A proxy's 502 page saying UTF-8, with bytes that are not."""
    body = b"<h1>Bad gateway \xff\xfe</h1>"
    conn.sendall(
        b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def events(body: bytes) -> Answer:
    """A 200 event stream (``text/event-stream``) whose body is ``body``, then the end."""

    def answer(conn: socket.socket, asked: Asked) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/event-stream\r\n\r\n"
            + body
        )

    return answer


def gone_silent(conn: socket.socket, asked: Asked) -> None:
    """A 200 event stream that opens with a comment, then sends nothing, the connection held
    open until the client closes it (10 s at most), as a connection lost unannounced is."""
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/event-stream\r\n\r\n"
        b": connected\n\n"
    )
    conn.settimeout(10)
    try:
        conn.recv(1)  # b"" once the client closes
    except OSError:
        return


def trickling(conn: socket.socket, asked: Asked) -> None:
    """A 200 whose body comes a byte every 0.1 s, for 5 s, then ends."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n")
    until = time.monotonic() + 5
    try:
        while time.monotonic() < until:
            conn.sendall(b" ")
            time.sleep(0.1)  # a byte at a time, each well within a client's timeout
    except OSError:
        return  # the client gave up and closed


def trickling_head(conn: socket.socket, asked: Asked) -> None:
    """A 200 whose head comes a byte every 0.1 s, for 5 s (a header without end), then ends."""
    head = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000
    until = time.monotonic() + 5
    try:
        for byte in head:
            if time.monotonic() >= until:
                return
            conn.sendall(bytes([byte]))
            time.sleep(0.1)  # a byte at a time, each well within a client's timeout
    except OSError:
        return  # the client gave up and closed


def endless_page(sent: list[int]) -> Answer:
    """A 404 page that goes on (up to 128 MiB, sent as fast as it is read): ``sent`` gets how
    many bytes of it were sent before the client closed."""

    def answer(conn: socket.socket, asked: Asked) -> None:
        conn.sendall(
            b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Type: text/html\r\n\r\n"
        )
        count = 0
        try:
            while count < 128 << 20:
                conn.sendall(b"<p>" + b"x" * 65533)
                count += 65536
        except OSError:
            pass  # the client had enough and closed
        sent.append(count)

    return answer


def endless_event(sent: list[int]) -> Answer:
    """A 200 event stream whose one line goes on (up to 1 GiB, sent as fast as it is read):
    ``sent`` gets how many bytes of it were sent before the client closed."""

    def answer(conn: socket.socket, asked: Asked) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/event-stream\r\n\r\ndata: "
        )
        count, piece = 0, b"x" * (1 << 20)
        try:
            while count < 1 << 30:
                conn.sendall(piece)
                count += len(piece)
        except OSError:
            pass  # the client had enough and closed
        sent.append(count)

    return answer


def healthy(conn: socket.socket, asked: Asked) -> None:
    """The bridge's /healthz answer."""
    body = json.dumps({"status": "ok"}).encode()
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def redirect(status: int, location: str) -> Answer:
    """An answer redirecting with ``status`` to ``location``, as written (relative or not)."""

    def answer(conn: socket.socket, asked: Asked) -> None:
        conn.sendall(
            f"HTTP/1.1 {status} Redirect\r\nConnection: close\r\nLocation: {location}\r\n"
            "Content-Length: 0\r\n\r\n".encode()
        )

    return answer


def moved_to(url: str) -> Answer:
    """An answer redirecting (307) to the same path and query at ``url``, as a proxy would."""
    return lambda conn, asked: redirect(307, url + asked.path)(conn, asked)


def by_path(answers: dict[str, Answer]) -> Answer:
    """An answer chosen by the request's path (without its query)."""
    return lambda conn, asked: answers[asked.path.partition("?")[0]](conn, asked)


def behind(url: str) -> Answer:
    """A proxy serving the bridge at ``url`` under ``/bridge`` and redirecting (307) every
    other path there, within its own origin, as a proxy that moved the bridge would: what the
    bridge answers is passed on as it comes (a stream too) until either side closes."""
    parts = urlsplit(url)

    def answer(conn: socket.socket, asked: Asked) -> None:
        if not asked.path.startswith("/bridge/"):
            redirect(307, "/bridge" + asked.path)(conn, asked)
            return
        # Closed after the answer, so the next request is served (one connection at a time).
        headers = "".join(f"{name}: {value}\r\n" for name, value in asked.headers.items())
        path = asked.path.removeprefix("/bridge")
        head = f"{asked.method} {path} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n"
        try:
            with socket.create_connection((parts.hostname, parts.port), timeout=30) as upstream:
                upstream.sendall(head.encode("latin-1") + asked.body)
                while chunk := upstream.recv(65536):
                    conn.sendall(chunk)
        except OSError:
            return  # the client has what it wanted and closed (tail --count 1)

    return answer


@contextmanager
def black_holed(host: str, port: int) -> Iterator[None]:
    """``host``:``port`` dropping every connection attempt unanswered, as a route that loses
    packets does: a listener that accepts nothing, its queue filled, so the kernel drops each
    further SYN and the client waits for an answer that never comes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family, backlog=0)
    held: list[socket.socket] = []
    try:
        for _ in range(16):
            attempt = socket.socket(family)
            # A connection on loopback is made in microseconds: one not made in 1 s was dropped.
            attempt.settimeout(1)
            try:
                attempt.connect((host, port))
            except TimeoutError:
                attempt.close()
                break
            held.append(attempt)
        else:
            raise AssertionError(f"[{host}]:{port} took 16 connections and dropped none")
        yield
    finally:
        for attempt in held:
            attempt.close()
        listener.close()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextmanager
def aiohttp_answering(handler: Handler) -> Iterator[str]:
    """A real aiohttp server on a loopback port, in a thread of its own, answering every
    request with ``handler``; its URL."""
    started = threading.Event()
    loop = asyncio.new_event_loop()
    runner: list[web.AppRunner] = []
    listening = socket.create_server(("127.0.0.1", 0))  # for stop_serving to stop accepting

    async def serve() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner.append(web.AppRunner(app, access_log=None, shutdown_timeout=0.5))
        await runner[0].setup()
        await web.SockSite(runner[0], listening).start()
        started.set()

    thread = threading.Thread(target=loop.run_forever, name="aiohttp-answering", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop).result(10)
    try:
        yield f"http://127.0.0.1:{runner[0].addresses[0][1]}"
    finally:
        asyncio.run_coroutine_threadsafe(stop_serving(runner[0], [listening]), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def flood(sent: list[int], size: int, *, declared: bool = False) -> Handler:
    """A 200 answer of JSON's type whose body is ``size`` bytes, sent as fast as it is read:
    ``sent`` gets how many bytes of it were sent before the client closed; ``declared``, with
    its Content-Length (else chunked)."""

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if declared:
            response.content_length = size
        await response.prepare(request)
        count = 0
        try:
            while count < size:
                piece = min(65536, size - count)
                await response.write(b" " * piece)
                count += piece
        except ConnectionError:
            pass  # the client had enough and closed
        sent.append(count)
        return response

    return answer


def answering_with(status: int, body: bytes) -> Handler:
    """Every request answered ``status`` with ``body``, of JSON's type."""

    async def answer(request: web.Request) -> web.StreamResponse:
        await request.read()
        return web.Response(status=status, body=body, content_type="application/json")

    return answer
