"""One request to a running bridge with the standard library's HTTP client, redirects followed.

``publish``, ``alerts`` and ``tail`` make a request or two, and importing aiohttp and asyncio cost
more than the rest of the command (aiohttp's connector reads the system's CA bundle twice as it
is imported: docs/performance.md, "Start-up"). ``http.client`` makes them here: every address of
the host (``bridge.cli.addresses``) tried in Happy Eyeballs' way (the next one 250 ms after the
one before, or as soon as it fails), TLS with the target's context (the
system's CAs, asking for HTTP/1.1, as aiohttp's own), its headers, and one deadline for the
whole request, the name's lookup included, as aiohttp's total timeout (for a stream, until its
head has come). Redirects are followed as aiohttp followed them (at most ten requests, 303 and a
POST's 301/302 asked again with GET and no body, 307/308 with the same method and body), the
credentials (``Authorization``, the admin token's header) sent to the target's origin alone
(docs/cli.md#finding-the-bridge).

An answer is read no further than the most its caller asks (``TooLarge`` past it, the rest left
unread): read whole by the deadline alone, a server sending an endless answer as fast as loopback
goes had ``alerts list`` take 4.4 GB in its 10 s.

Each failure is raised in the terms ``Target`` tells: ``Unreachable`` with the reason (the
system's words, or these for an answer that is not HTTP and a redirect not followed),
``CutShort`` for an answer broken off (the request may have been taken: nothing is ever sent
twice), ``TooLarge`` for an answer past its bound, or ``TimeoutError`` (nothing connected or
answered in time, as aiohttp's total timeout raised it; a name the resolver did not look up in
time is ``Unreachable``, saying so).
"""

from __future__ import annotations

import codecs
import errno
import http.client
import io
import os
import selectors
import socket
import ssl
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final, NamedTuple
from urllib.parse import SplitResult, quote, urlencode, urljoin, urlsplit

from bridge.cli.addresses import every_address
from bridge.headers import ADMIN_TOKEN_HEADER
from bridge.httpclient.reasons import connection_reason
from bridge.redaction import redact_urls, safe_url

__all__ = [
    "Answered",
    "CutShort",
    "Request",
    "Streamed",
    "TooLarge",
    "Unreachable",
    "send",
    "stream",
]

# The requests one asks at most, redirects included: aiohttp's max_redirects, which refused the
# tenth redirect.
_MOST_REQUESTS: Final = 10
# The answers followed to another URL (aiohttp's allow_redirects).
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
# How much of an answer's body one read takes, at most.
_READ: Final = 65536
# How much of a refusal to the message stream is read, at most: the bridge's are JSON of a few
# KiB, and a page is told as one from its start.
_MOST_REFUSAL: Final = 1 << 20
# What aiohttp says of a connection closed before any answer (ServerDisconnectedError).
_DISCONNECTED: Final = "Server disconnected"
_NOT_HTTP: Final = "the program there answered with something that is not HTTP"
# How long a connection attempt has before the next address is tried beside it: RFC 8305's
# recommended Connection Attempt Delay, aiohttp's happy_eyeballs_delay.
_NEXT_ATTEMPT: Final = 0.25
# Headers that travel to the target's origin alone (scheme, host and port), lower-cased.
_CREDENTIALS: Final = frozenset({"authorization", ADMIN_TOKEN_HEADER.lower()})
# Headers that describe a body, dropped with it when a redirect turns the request into a GET.
_BODY_HEADERS: Final = frozenset({"content-type", "content-length"})
# What a request target keeps as it is when a redirect's Location is quoted (RFC 3986's
# reserved characters and the percent of an escape): a space or a non-ASCII letter is quoted.
_KEPT: Final = "!#$%&'()*+,/:;=?@[]~"


class _Failed(Exception):
    """A request that failed; ``redirected``, the URL a redirect led to where it failed (None:
    the request's own)."""

    redirected: str | None = None


class Unreachable(_Failed):
    """Nothing answered, or nothing the commands can read: ``reason``, in words; ``tls``,
    whether TLS refused."""

    def __init__(self, reason: str, *, tls: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tls = tls


class CutShort(_Failed):
    """The answer broke off after ``received`` bytes of its body, of ``expected`` when it said
    how many (None for a chunked one): the request may have been taken."""

    def __init__(self, received: int, expected: int | None) -> None:
        super().__init__(received, expected)
        self.received = received
        self.expected = expected


class TooLarge(_Failed):
    """The answer held more than ``most`` bytes, the most asked to be read of it: the rest was
    left unread."""

    def __init__(self, most: int) -> None:
        super().__init__(most)
        self.most = most


class _Deadline:
    """Seconds left until a moment ``seconds`` from its start, for each operation in turn."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._until = time.monotonic() + seconds

    def left(self) -> float:
        left = self._until - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left


def _port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), _port(parts)


def _connect(
    parts: SplitResult, context: ssl.SSLContext | None, deadline: _Deadline
) -> socket.socket:
    """A socket to the host of ``parts``, TLS-wrapped for https: its name looked up and its
    addresses tried (``_first_to_connect``) within ``deadline``."""
    host, port = parts.hostname or "", _port(parts)
    within = deadline.left()  # out of time already: TimeoutError, no lookup to blame
    try:
        addresses = every_address(host, port, within)
    except TimeoutError:
        raise Unreachable(
            f"the system's resolver gave no address for {host} within {deadline.seconds:g} s"
        ) from None
    except OSError as exc:  # no such host: socket.gaierror
        raise Unreachable(connection_reason(exc)) from None
    sock = _first_to_connect(addresses, deadline)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock if parts.scheme != "https" else _tls(sock, host, context, deadline)


def _first_to_connect(
    addresses: list[tuple[int, tuple[Any, ...]]], deadline: _Deadline
) -> socket.socket:
    """A socket connected to the first of ``addresses`` to take the connection: each attempt
    started ``_NEXT_ATTEMPT`` after the one before, or as soon as that one fails, and the
    earlier ones kept waiting (RFC 8305's Happy Eyeballs, as aiohttp and curl connect), so an
    address that drops the connection unanswered does not hold the next one up until the
    deadline. ``Unreachable`` when every one failed, ``TimeoutError`` at the deadline."""
    waiting = list(enumerate(addresses))
    failed: list[tuple[int, tuple[Any, ...], OSError]] = []
    trying = selectors.DefaultSelector()
    next_attempt = time.monotonic()
    try:
        while waiting or trying.get_map():
            now = time.monotonic()
            if waiting and now >= next_attempt:
                index, (family, address) = waiting.pop(0)
                try:
                    sock = socket.socket(family, socket.SOCK_STREAM)
                except OSError as exc:  # a family the host lacks: IPv6 turned off
                    failed.append((index, address, exc))
                    continue
                sock.setblocking(False)
                code = sock.connect_ex(address)
                if code not in (0, errno.EINPROGRESS):  # 0: loopback may connect at once
                    sock.close()
                    failed.append((index, address, OSError(code, os.strerror(code))))
                    continue
                trying.register(sock, selectors.EVENT_WRITE, (index, address, sock))
                next_attempt = now + _NEXT_ATTEMPT
                continue
            wait = deadline.left() if not waiting else min(deadline.left(), next_attempt - now)
            for key, _events in trying.select(wait):
                attempt: tuple[int, tuple[Any, ...], socket.socket] = key.data
                index, address, sock = attempt
                trying.unregister(sock)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code == 0:
                    return sock
                sock.close()
                failed.append((index, address, OSError(code, os.strerror(code))))
                next_attempt = now
    finally:
        for key in trying.get_map().values():  # the attempts still waiting when one connected
            key.data[2].close()
        trying.close()
    failed.sort(key=lambda failure: failure[0])  # in the addresses' order
    raise Unreachable(_refused([(address, error) for _index, address, error in failed]))


def _refused(failed: list[tuple[tuple[Any, ...], OSError]]) -> str:
    """Why no address took the connection: one error's reason, or the errno they share, as
    aiohttp said it; else each address with its own."""
    errors = [error for _address, error in failed]
    if not errors:
        return "the host has no IPv4 or IPv6 address"
    if len({str(error) for error in errors}) == 1:
        return connection_reason(errors[0])
    shared = {error.errno for error in errors}
    if len(shared) == 1 and (code := shared.pop()) and code > 0:
        return os.strerror(code)
    return ", ".join(f"{_shown(address)} {connection_reason(error)}" for address, error in failed)


def _shown(address: tuple[Any, ...]) -> str:
    """A socket address as a URL writes it: ``[::1]:9570``, ``127.0.0.1:9570``."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _tls(
    sock: socket.socket, host: str, context: ssl.SSLContext | None, deadline: _Deadline
) -> socket.socket:
    """``sock`` after the TLS handshake with ``context``, else aiohttp's default one."""
    if context is None:
        # aiohttp's verified default: the system's CAs, asking for HTTP/1.1.
        context = ssl.create_default_context()
        context.set_alpn_protocols(["http/1.1"])
    try:
        sock.settimeout(deadline.left())
        return context.wrap_socket(sock, server_hostname=host)
    except TimeoutError:
        sock.close()
        raise
    except ssl.SSLError as exc:  # the certificate not verified, plain http answering TLS...
        sock.close()
        raise Unreachable(connection_reason(exc), tls=True) from None
    except OSError as exc:
        sock.close()
        raise Unreachable(connection_reason(exc)) from None


class _Connection(http.client.HTTPConnection):
    """An HTTP/1.1 connection over a socket already made (``_connect``)."""

    def __init__(self, parts: SplitResult, sock: socket.socket) -> None:
        super().__init__(parts.hostname or "", _port(parts))
        # The Host header leaves out the scheme's own port, as aiohttp's does.
        self.default_port = 443 if parts.scheme == "https" else 80
        self.sock = sock

    def connect(self) -> None:
        """Made already: a request is never sent again on a new connection."""
        raise http.client.NotConnected


class _Reads(io.RawIOBase):
    """The reads of an answer from its socket, each timed out at ``deadline`` (None: each at
    ``idle`` seconds after it began, or waiting without end): the socket's own timeout bounds
    each read alone, and a server sending its head or body a byte a second was read for ever."""

    def __init__(self, sock: socket.socket, deadline: _Deadline | None) -> None:
        super().__init__()
        self._sock = sock
        self.deadline = deadline
        self.idle: float | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(self.idle if self.deadline is None else self.deadline.left())
        return self._sock.recv_into(buffer)


class _Answer(http.client.HTTPResponse):
    """An answer read from ``sock`` by ``deadline`` (``reads``: its deadline may be lifted once
    its head has come), head and body alike."""

    def __init__(self, sock: socket.socket, method: str, deadline: _Deadline) -> None:
        super().__init__(sock, method=method)
        self.fp.close()  # the socket's own file, whose reads only the socket's timeout bounds
        self.reads = _Reads(sock, deadline)
        self.fp = io.BufferedReader(self.reads)


class Request(NamedTuple):
    """What to send: ``method`` of ``url``, its query extended by ``params``."""

    url: str
    method: str
    headers: Mapping[str, str]
    params: Mapping[str, str] | None = None
    body: bytes | None = None


class Answered(NamedTuple):
    """``send``'s answer: its status, its text, and the bytes of its body."""

    status: int
    text: str
    size: int


def send(
    request: Request, context: ssl.SSLContext | None, timeout: float, *, most: int
) -> Answered:
    """The answer to ``request``, its text decoded as aiohttp decodes it; raises
    ``TimeoutError`` after ``timeout`` seconds, ``Unreachable``, ``CutShort``, or ``TooLarge``
    for a body of more than ``most`` bytes (one saying so in its Content-Length is not read)."""
    deadline = _Deadline(timeout)
    with _exchanged(request, context, deadline, waits=False) as (at, answer), _told(at):
        if answer.length is not None and answer.length > most:
            raise TooLarge(most)
        body = _body(answer, most=most + 1)  # a byte past it tells it is over
        if len(body) > most:
            raise TooLarge(most)
        return Answered(answer.status, _decoded(answer, body), len(body))


def _body(answer: _Answer, *, most: int) -> bytearray:
    """The first ``most`` bytes of ``answer``'s body (the rest left unread), read by its
    deadline (TimeoutError past it). IncompleteRead when it ends short of its Content-Length."""
    # Grown in place: pieces joined at the end took twice the body's size at once.
    body = bytearray()
    while len(body) < most:
        if not (chunk := answer.read1(min(_READ, most - len(body)))):
            if answer.length:  # what its Content-Length said was left when the connection closed
                raise http.client.IncompleteRead(bytes(body), answer.length)
            break
        body += chunk
    return body


class Streamed(NamedTuple):
    """``stream``'s answer: its head, and for an answer other than 200 its text (None for a
    200, whose body is the stream)."""

    answer: http.client.HTTPResponse
    refusal: str | None


@contextmanager
def stream(
    request: Request, context: ssl.SSLContext | None, timeout: float, *, idle: float
) -> Iterator[Streamed]:
    """The answer to ``request`` once its head has come (raising as ``send`` does until then):
    a 200's body then read without a deadline (the bridge's message stream waits for
    messages), but for ``idle``: a read of it getting nothing for that long raises
    TimeoutError (the bridge sends something every 15 s: a connection lost unannounced waited
    for ever); another's text read as ``send`` reads it, by the deadline, its first
    ``_MOST_REFUSAL`` bytes (read whole, a page without end was held in memory without end)."""
    deadline = _Deadline(timeout)
    with _exchanged(request, context, deadline, waits=True) as (at, answer):
        if answer.status == 200:
            answer.reads.idle = idle
            yield Streamed(answer, None)
            return
        answer.reads.deadline = deadline
        with _told(at):
            refusal = _decoded(answer, _body(answer, most=_MOST_REFUSAL))
        yield Streamed(answer, refusal)


def _decoded(answer: http.client.HTTPResponse, body: bytes | bytearray) -> str:
    """``body`` decoded as aiohttp's ``text()`` decodes it, bytes not in the charset
    ``answer`` names replaced (a proxy's page is told, not a traceback)."""
    return body.decode(_encoding(answer.getheader("Content-Type", "")), "replace")


@contextmanager
def _exchanged(
    request: Request, context: ssl.SSLContext | None, deadline: _Deadline, *, waits: bool
) -> Iterator[tuple[str | None, _Answer]]:
    """The URL a redirect led to (None: ``request``'s own), redirects followed, and its answer
    once its head has come by ``deadline``, each read of its body timed out at ``deadline`` too
    (or with none, ``waits``); the connection closed on leaving. Nothing is asked twice but by
    a redirect."""
    asked, redirected = request, None
    for _ in range(_MOST_REQUESTS):
        parts = urlsplit(asked.url)
        with _told(redirected):
            sock = _connect(parts, context, deadline)
        connection = _Connection(parts, sock)
        try:
            with _told(redirected):
                sock.settimeout(deadline.left())
                target = _request_target(parts, asked)
                connection.request(asked.method, target, asked.body, dict(asked.headers))
                # Read here, not by getresponse: each read of the head by the deadline too.
                answer = _Answer(sock, asked.method, deadline)
                answer.begin()
                location = answer.getheader("Location") if answer.status in _REDIRECTS else None
                if location is None:
                    answer.reads.deadline = None if waits else deadline
                else:
                    asked = _redirected(asked, answer.status, location)
            if location is None:
                yield redirected, answer
                return
        finally:
            connection.close()
        redirected = asked.url
    raise _at(Unreachable(f"redirected more than {_MOST_REQUESTS - 1} times"), redirected)


def _request_target(parts: SplitResult, request: Request) -> str:
    """The path and query ``request`` asks (its params after the URL's own query)."""
    query = "&".join(filter(None, [parts.query, urlencode(request.params or {})]))
    return quote((parts.path or "/") + (f"?{query}" if query else ""), safe=_KEPT)


def _redirected(request: Request, status: int, location: str) -> Request:
    """What to ask next for a redirect to ``location`` (relative to ``request``'s URL), as
    aiohttp asked it: 303 (and 301 or 302 to a POST) a GET without the body, the others the same
    method and body; the credentials left out for another origin."""
    try:
        url = urljoin(request.url, location.strip()).partition("#")[0]
        parts = urlsplit(url)
        parts.port  # noqa: B018 (read for its refusal: a port out of range, or not a number)
    except ValueError as exc:  # an IPv6 address unclosed too: tracebacks, until said so
        raise Unreachable(f"redirected to a Location that is no URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Unreachable(f"redirected to {safe_url(url)}, not an http:// or https:// URL")
    method, body, dropped = request.method, request.body, set[str]()
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, body, dropped = "GET", None, set(_BODY_HEADERS)
    if _origin(url) != _origin(request.url):
        dropped |= _CREDENTIALS
    kept = {name: value for name, value in request.headers.items() if name.lower() not in dropped}
    return Request(url, method, kept, None, body)


@contextmanager
def _told(redirected: str | None) -> Iterator[None]:
    """A failure, raised in the terms ``send`` raises, noting ``redirected``, the URL a redirect
    led to (None: the request's own)."""
    try:
        yield
    except _Failed as exc:
        raise _at(exc, redirected) from None
    except http.client.RemoteDisconnected:  # closed before answering
        raise _at(Unreachable(_DISCONNECTED), redirected) from None
    except http.client.IncompleteRead as exc:  # the body broken off
        expected = None if exc.expected is None else len(exc.partial) + exc.expected
        raise _at(CutShort(len(exc.partial), expected), redirected) from None
    except http.client.HTTPException:  # a status line or headers that are not HTTP
        raise _at(Unreachable(_NOT_HTTP), redirected) from None
    except TimeoutError:
        raise
    except OSError as exc:  # a reset: aiohttp's ClientOSError of the same arguments
        raise _at(Unreachable(redact_urls(str(OSError(*exc.args)))), redirected) from None


def _at(exc: _Failed, redirected: str | None) -> _Failed:
    exc.redirected = redirected
    return exc


def _encoding(content_type: str) -> str:
    """The encoding aiohttp's ``text()`` decodes an answer with: the charset ``content_type``
    names when Python knows it, else UTF-8."""
    for parameter in content_type.lower().split(";")[1:]:
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"')
        if name.strip() == "charset" and charset:
            try:
                return codecs.lookup(charset).name
            except (LookupError, ValueError):
                break
    return "utf-8"
