"""One request to a running bridge with the standard library's HTTP client, failures told as before.

``publish``, ``alerts`` and ``tail`` make a request or two, and importing aiohttp and asyncio cost
more than the rest of the command (aiohttp's connector reads the system's CA bundle twice as it
is imported: docs/performance.md, "Start-up"). ``http.client`` makes them here with what
``Target`` gave aiohttp: every address of the host in turn (``bridge.cli.addresses``), TLS with
the target's context (the system's CAs, asking for HTTP/1.1, as aiohttp's own), its headers, and
one deadline for the whole request, as aiohttp's total timeout (for a stream, until its head has
come). Each failure is raised in the terms ``Target`` tells: ``Unreachable`` with the system's
reason, or ``TimeoutError`` (nothing connected or answered in time, as aiohttp's total timeout
raised it). What aiohttp would have told in words of its own (a redirect it follows, an answer
that is not HTTP or is broken off, addresses failing in different ways) raises ``Handover``, and
the caller makes the request again with aiohttp: a redirect, a server that speaks no HTTP or a
refused connection has taken nothing from it.
"""

from __future__ import annotations

import codecs
import http.client
import os
import socket
import ssl
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Final, NamedTuple
from urllib.parse import SplitResult, urlencode, urlsplit

from bridge.cli.addresses import every_address
from bridge.httpclient.reasons import connection_reason
from bridge.redaction import redact_urls

__all__ = [
    "Handover",
    "Request",
    "Unreachable",
    "answer_text",
    "send",
    "stream",
]

# The answers aiohttp follows to another URL (ClientSession's allow_redirects).
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
# What aiohttp says of a connection closed before any answer (ServerDisconnectedError).
_DISCONNECTED: Final = "Server disconnected"


class Handover(Exception):
    """What aiohttp tells in words of its own: the caller makes the request with it instead."""


class Unreachable(Exception):
    """Nothing answered: ``reason``, the system's words; ``tls``, whether TLS refused."""

    def __init__(self, reason: str, *, tls: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tls = tls


class _Deadline:
    """Seconds left until a moment, for each socket operation in turn."""

    def __init__(self, seconds: float) -> None:
        self._until = time.monotonic() + seconds

    def left(self) -> float:
        left = self._until - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left


def _port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def _connect(
    parts: SplitResult, context: ssl.SSLContext | None, deadline: _Deadline
) -> socket.socket:
    """A socket to the host of ``parts``, TLS-wrapped for https: each address tried in turn."""
    host, port = parts.hostname or "", _port(parts)
    try:
        addresses = every_address(host, port)
    except OSError as exc:  # no such host: socket.gaierror
        raise Unreachable(connection_reason(exc)) from None
    errors: list[OSError] = []
    for family, address in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(deadline.left())
            sock.connect(address)
        except TimeoutError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            errors.append(exc)
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock if parts.scheme != "https" else _tls(sock, host, context, deadline)
    raise Unreachable(_refused(errors))


def _refused(errors: list[OSError]) -> str:
    """Why no address took the connection, as aiohttp says it: one error's reason, or the
    errno they share (aiohappyeyeballs raises one error with it); anything else in aiohttp's
    words."""
    if len(errors) == 1 or len({str(error) for error in errors}) == 1:
        return connection_reason(errors[0])
    shared = {error.errno for error in errors}
    if len(shared) == 1 and (errno := shared.pop()) and errno > 0:
        return os.strerror(errno)
    raise Handover


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


class Request(NamedTuple):
    """What to send: ``method`` of ``url``, its query extended by ``params``."""

    url: str
    method: str
    headers: Mapping[str, str]
    params: Mapping[str, str] | None = None
    body: bytes | None = None


def send(request: Request, context: ssl.SSLContext | None, timeout: float) -> tuple[int, str]:
    """The answer to ``request``: its status and text, decoded as aiohttp decodes it; raises
    ``TimeoutError`` after ``timeout`` seconds, ``Unreachable``, or
    ``Handover``."""
    deadline = _Deadline(timeout)
    with _exchanged(request, context, deadline, waits=False) as answer, _told():
        return answer.status, answer_text(answer)


@contextmanager
def stream(
    request: Request, context: ssl.SSLContext | None, timeout: float
) -> Iterator[http.client.HTTPResponse]:
    """The answer to ``request`` once its head has come (raising as ``send`` does until then),
    its body then read without a deadline: the bridge's message stream waits for messages."""
    with _exchanged(request, context, _Deadline(timeout), waits=True) as answer:
        yield answer


def answer_text(answer: http.client.HTTPResponse) -> str:
    """The body of ``answer`` decoded as aiohttp's ``text()`` decodes it."""
    return answer.read().decode(_encoding(answer.getheader("Content-Type", "")))


@contextmanager
def _exchanged(
    request: Request, context: ssl.SSLContext | None, deadline: _Deadline, *, waits: bool
) -> Iterator[http.client.HTTPResponse]:
    """The answer to ``request`` once its head has come, its body read until ``deadline`` (or
    with none, ``waits``); the connection closed on leaving."""
    parts = urlsplit(request.url)
    sock = _connect(parts, context, deadline)
    query = "&".join(filter(None, [parts.query, urlencode(request.params or {})]))
    target = (parts.path or "/") + (f"?{query}" if query else "")
    connection = _Connection(parts, sock)
    try:
        with _told():
            sock.settimeout(deadline.left())
            connection.request(
                request.method, target, body=request.body, headers=dict(request.headers)
            )
            answer = connection.getresponse()
            if answer.status in _REDIRECTS and answer.getheader("Location") is not None:
                raise Handover  # aiohttp follows it
            sock.settimeout(None if waits else deadline.left())
        yield answer
    finally:
        connection.close()


@contextmanager
def _told() -> Iterator[None]:
    """A failure after the connection was made, raised in the terms ``send`` raises."""
    try:
        yield
    except http.client.RemoteDisconnected:  # closed before answering
        raise Unreachable(_DISCONNECTED) from None
    except http.client.HTTPException:  # an answer that is not HTTP, or broken off
        raise Handover from None
    except TimeoutError:
        raise
    except OSError as exc:  # a reset: aiohttp's ClientOSError of the same arguments
        raise Unreachable(redact_urls(str(OSError(*exc.args)))) from None


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
