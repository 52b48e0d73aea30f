"""The HTTP listener: a connection cap that keeps room for probes, deadlines on heads and bodies.

aiohttp closes a connection idle for ``EXESDB_HTTP_IDLE_TIMEOUT_MS`` itself (its
``keepalive_timeout``, counted from the accept since aiohttp 3.14.4, the lowest version allowed,
or from the last response). The rest is here, around
aiohttp's protocol (an ``asyncio.Protocol`` wrapped, nothing of aiohttp's private API):

- a request head must arrive complete within ``EXESDB_HTTP_HEADER_TIMEOUT_MS`` of its first byte
  (a TLS handshake within as long), and a body within ``EXESDB_HTTP_BODY_TIMEOUT_MS`` of its head
  (else 408, and the connection closes): a trickle holds a connection for a bounded time;
- at most ``EXESDB_HTTP_MAX_CONNECTIONS`` connections, lowered to what the descriptor limit
  allows, each counted from its accept: at the cap a new connection closes the one idle longest
  (no request in progress, or a TLS handshake not finished), so a flood of idle connections or
  half-open handshakes cannot lock the probes out; with none idle, it closes the body read going
  slowest (bytes a second since its head, once ``BODY_GRACE`` has passed), so trickled bodies
  cannot lock ingest out; when every connection is busy otherwise, up to ``RESERVE`` more are
  taken for ``/healthz``, ``/readyz`` and ``/metrics`` only;
- at most ``MAX_STALLED`` connections may hold an answer their client does not read (past the
  transport's high-water mark): one more closes the one stalled longest, so clients that never
  read ``/metrics`` hold a bounded amount of memory, not a whole exposition each;
- each answer is sent here and its body let go (aiohttp keeps a keep-alive connection's last
  request and response until its next request), so an idle connection does not hold the page
  it last got; a request whose head is over ``HEAD_KEPT`` is answered, then its connection
  closes, so that it does not hold the head;
- connections are accepted here (``Listener``), not by an ``asyncio.Server``, only while the
  descriptors they hold stay within the cap, the reserve and one burst of accepts: asyncio's
  own accept loop takes up to a backlog of connections each time the listening socket is
  ready, several bursts before the idle connections evicted for them have let their
  descriptors go, and clients connecting at once ran the process out of descriptors;
- at start the soft descriptor limit is raised to the hard one.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, cast

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Gauge

from bridge.routes import error_response

__all__ = [
    "BODY_GRACE",
    "CLOSE_AFTER",
    "HEAD_KEPT",
    "MAX_STALLED",
    "PROBE_PATHS",
    "RESERVE",
    "ConnectionGuard",
    "Limits",
    "Listener",
    "raise_descriptor_limit",
]

_logger = logging.getLogger(__name__)
# What _bind resolves a host with: loop.getaddrinfo's signature and results.
_Resolve = Callable[..., Awaitable[list[tuple[int, int, int, str, tuple[Any, ...]]]]]

PROBE_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})
RESERVE: Final = 32
# Seconds a body read is given before its rate counts: the slowest one past it is closed at the cap.
BODY_GRACE: Final = 1.0
# Connections whose client is not reading the answer (each may hold a whole /metrics exposition).
MAX_STALLED: Final = 32
# The most bytes of header fields a request may send and its connection stay open after the
# answer: the connection would hold them until its next request (~1 MiB each otherwise).
HEAD_KEPT: Final = 16 * 1024
# The most bytes of a header field's name and value together: aiohttp's parser refuses more (its
# max_field_size, left at its default).
_FIELD_MAX: Final = 8190
# So many fields cannot hold more than HEAD_KEPT bytes: their sum need not be counted.
_FEW_FIELDS: Final = HEAD_KEPT // _FIELD_MAX
# Set (True) in a request whose connection closes after its answer: a handler that sends its
# answer itself (a StreamResponse) calls force_close() before prepare(), so that it says so.
CLOSE_AFTER: Final = web.RequestKey("close_after", bool)
# Descriptors kept for everything but HTTP connections: the outbox, Redis, webhook and OTLP
# clients, logs, the interpreter's own.
_OTHER_DESCRIPTORS: Final = 128
# Where the soft limit goes when the hard one is unlimited (Linux's default fs.nr_open).
_UNLIMITED: Final = 1_048_576
_BACKLOG: Final = 128
# How often port 0 is picked when the port picked is taken on another of the host's addresses.
_PICKS: Final = 8
# How long the listener stops accepting after the system refused an accept, as asyncio does.
_ACCEPT_RETRY: Final = 1.0
# How often a listener whose accepts the system refuses is told in the log.
_OUT_OF_RESOURCES_EVERY: Final = 60.0
# An accept the system refused: what ran out, and what to do about it.
_OUT_OF_MEMORY: Final = (
    "the HTTP listener finds the system out of memory for sockets",
    "free memory or lower EXESDB_HTTP_MAX_CONNECTIONS",
)
_OUT_OF_RESOURCES: Final = {
    errno.EMFILE: (
        "the HTTP listener is out of file descriptors",
        "raise the descriptor limit (LimitNOFILE, ulimit -n) or lower EXESDB_HTTP_MAX_CONNECTIONS",
    ),
    errno.ENFILE: (
        "the HTTP listener finds the system out of file descriptors",
        "raise its limit (sysctl fs.file-max) or lower EXESDB_HTTP_MAX_CONNECTIONS",
    ),
    errno.ENOBUFS: _OUT_OF_MEMORY,
    errno.ENOMEM: _OUT_OF_MEMORY,
}
# While accepting waits for descriptors: how often it looks again, should no close tell it.
_RECHECK: Final = 0.1
_REASONS: Final = (
    "header_timeout",
    "body_timeout",
    "evicted",
    "slow_body",
    "stalled",
    "refused",
)


@dataclass(frozen=True, slots=True)
class Limits:
    """The deadlines (seconds) and the connection cap of the listener."""

    header_timeout: float
    body_timeout: float
    idle_timeout: float
    max_connections: int


class _Phase(Enum):
    IDLE = "idle"  # waiting for a request
    HEAD = "head"  # part of a request head has arrived
    BUSY = "busy"  # a request is being handled


class _BodyTimeout(TimeoutError):
    """Raised into a handler reading a body that did not arrive in time.

    A TimeoutError, so that aiohttp, draining the rest of the body after the 408, stops quietly.
    """


def raise_descriptor_limit() -> int:
    """Raise the soft descriptor limit (RLIMIT_NOFILE) to the hard one; the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _UNLIMITED if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        _logger.info("descriptor limit %d", soft if soft != resource.RLIM_INFINITY else target)
        return target
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        _logger.warning("descriptor limit stays %d: raising it to %d failed: %s", soft, target, exc)
        return soft
    _logger.info("descriptor limit raised from %d to %d (the hard limit)", soft, target)
    return target


class _Connection(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the guard watching its phases.

    With TLS the connection is taken plain at its accept (counted then) and its handshake made
    with ``loop.start_tls``; only once it is done does aiohttp see the connection (``start``),
    with what arrived over TLS before start_tls returned.
    """

    __slots__ = (
        "_early",
        "_guard",
        "_inner",
        "_made",
        "_tls",
        "body_expired",
        "body_since",
        "live",
        "phase",
        "reading",
        "reserved",
        "timer",
        "transport",
    )

    def __init__(
        self, guard: ConnectionGuard, inner: asyncio.Protocol, tls: ssl.SSLContext | None = None
    ) -> None:
        self._guard = guard
        self._inner = inner
        self._tls = tls
        self._made = False
        self._early: list[bytes] = []  # TLS data before start_tls returned
        self.transport: asyncio.Transport | None = None
        self.phase = _Phase.IDLE
        self.reserved = False
        self.live = False  # counted against the cap (or the reserve) and not closing
        self.body_expired = False
        self.timer: asyncio.TimerHandle | None = None
        self.reading: web.Request | None = None  # the request whose body is being read
        self.body_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if not self._guard.admit(self):
            return
        if self._tls is not None:
            # Nothing may be read before start_tls takes the socket over.
            self.transport.pause_reading()
            self._guard.handshake(self, self._tls)
            return
        self.start(self.transport)

    def start(self, transport: asyncio.Transport) -> None:
        """Hand the connection (``transport``: TLS once handshaken) to aiohttp."""
        self._made = True
        self._inner.connection_made(transport)
        early, self._early = self._early, []
        for data in early:
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        if not self._made:
            if self._tls is not None and self.live:
                self._early.append(data)  # handshaken, start_tls about to return
            return  # refused: closing, and aiohttp never saw it
        if self.phase is _Phase.IDLE:
            self.phase = _Phase.HEAD
            self._guard.head_started(self)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._made else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard.lost(self)
        if self._made:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()
        self._guard.stalled(self)

    def resume_writing(self) -> None:
        self._guard.flowing(self)
        self._inner.resume_writing()

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class ConnectionGuard:
    """Counts, caps and times the HTTP server's connections (see the module docstring)."""

    def __init__(self, limits: Limits, *, registry: CollectorRegistry | None = None) -> None:
        self.limits = limits
        self.max_connections = limits.max_connections
        self.max_stalled = MAX_STALLED
        self._open: dict[asyncio.BaseTransport, _Connection] = {}
        # Live connections with no request in progress, the one idle longest first.
        self._idle: OrderedDict[_Connection, None] = OrderedDict()
        self._reading: set[_Connection] = set()  # requests whose body is being read
        # Live connections whose client does not read the answer, the one stalled longest first.
        self._stalled: OrderedDict[_Connection, None] = OrderedDict()
        self._regular = 0
        self._reserved = 0
        self._handshakes: set[asyncio.Task[None]] = set()
        self._listener: Listener | None = None
        registry = registry if registry is not None else CollectorRegistry()
        Gauge(
            "exesdb_http_connections",
            "Open HTTP connections.",
            registry=registry,
        ).set_function(lambda: float(len(self._open)))
        Gauge(
            "exesdb_http_max_connections",
            "The HTTP connection cap in force: EXESDB_HTTP_MAX_CONNECTIONS, or lower when the "
            "descriptor limit allows fewer.",
            registry=registry,
        ).set_function(lambda: float(self.max_connections))
        self._closed = Counter(
            "exesdb_http_connections_closed",
            "HTTP connections the bridge closed: a head, TLS handshake or body too slow "
            "(header_timeout, body_timeout), the longest idle at the cap (evicted), the slowest "
            "body at the cap with none idle (slow_body), the longest of too many answers not "
            "read (stalled), or over the cap (refused).",
            ["reason"],
            registry=registry,
        )
        for reason in _REASONS:
            self._closed.labels(reason)

    @property
    def idle(self) -> int:
        """Open connections with no request in progress."""
        return len(self._idle)

    @property
    def stalled_count(self) -> int:
        """Open connections holding an answer their client does not read."""
        return len(self._stalled)

    @property
    def descriptor_budget(self) -> int:
        """Most descriptors the HTTP connections may hold at once: the cap, the probe reserve
        and one burst of accepts (each connection accepted holds one before the cap closes the
        idle one it evicts, which lets its own go an iteration of the loop later)."""
        return self.max_connections + RESERVE + _BACKLOG

    def fit(self, descriptors: int) -> int:
        """Lower the cap to what ``descriptors`` allows beside everything else; the cap."""
        # The listener accepts up to a backlog of connections at once, each holding a descriptor
        # before the cap can close the idle one it evicts for it: room for one such burst (the
        # descriptor budget, which the listener keeps to).
        allowed = max(1, descriptors - _OTHER_DESCRIPTORS - RESERVE - _BACKLOG)
        if allowed < self.limits.max_connections:
            _logger.warning(
                "EXESDB_HTTP_MAX_CONNECTIONS %d lowered to %d: the descriptor limit is %d",
                self.limits.max_connections,
                allowed,
                descriptors,
            )
        self.max_connections = min(self.limits.max_connections, allowed)
        return self.max_connections

    async def serve(
        self,
        factory: Callable[[], asyncio.Protocol],
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> Listener:
        """Bind ``host:port`` (every address it resolves to, as ``asyncio`` binds them), each
        connection's protocol from ``factory`` (aiohttp's ``runner.server``) under this guard;
        it accepts once the listener's ``start_serving()`` is awaited.

        With TLS each connection is counted from its accept, before its handshake (which gets
        the header timeout: it is the first part of reading a request), so that half-open
        handshakes are held to the cap like idle connections.
        """
        sockets = await _bind(host, port)
        self._listener = Listener(self, sockets, lambda: _Connection(self, factory(), ssl_context))
        return self._listener

    def close(self) -> None:
        """Abort the handshakes still under way (the listener has stopped accepting)."""
        for task in list(self._handshakes):
            task.cancel()

    # -- the connections' phases --

    def admit(self, connection: _Connection) -> bool:
        """Take a new connection under the cap (closing the longest idle one when full), into
        the probe reserve, or not at all (False: closed at once)."""
        if (
            self._regular < self.max_connections
            or self._evict(reserved=False)
            or self._evict_slowest_body()
        ):
            self._regular += 1
        elif self._reserved < RESERVE or self._evict(reserved=True):
            connection.reserved = True
            self._reserved += 1
        else:
            self._close(connection, "refused")
            return False
        assert connection.transport is not None
        connection.live = True
        self._open[connection.transport] = connection
        self._idle[connection] = None
        return True

    def _evict(self, *, reserved: bool) -> bool:
        for candidate in self._idle:  # the longest idle first
            if candidate.reserved is reserved:
                self._close(candidate, "evicted")
                return True
        return False

    def _evict_slowest_body(self) -> bool:
        """Close the body read going slowest of those past ``BODY_GRACE``; False when none is."""
        now = asyncio.get_running_loop().time()
        slowest: _Connection | None = None
        lowest = float("inf")
        for candidate in self._reading:
            if candidate.reserved:
                continue  # closing it frees a reserve place, not the regular one taken here
            body = candidate.reading.content if candidate.reading is not None else None
            if body is None or body.is_eof():
                continue  # read whole: the request waits on the bridge, not on its client
            elapsed = now - candidate.body_since
            if elapsed >= BODY_GRACE and body.total_bytes / elapsed < lowest:
                slowest, lowest = candidate, body.total_bytes / elapsed
        if slowest is None:
            return False
        request = slowest.reading
        slowest.body_expired = True
        if request is not None:
            request.content.set_exception(_BodyTimeout())  # its handler stops reading
        self._close(slowest, "slow_body")
        return True

    def stalled(self, connection: _Connection) -> None:
        """``connection``'s client stopped reading its answer: past ``MAX_STALLED`` such, the
        one stalled longest closes."""
        if not connection.live:
            return
        self._stalled[connection] = None
        while len(self._stalled) > self.max_stalled:
            self._close(next(iter(self._stalled)), "stalled")

    def flowing(self, connection: _Connection) -> None:
        """``connection``'s client reads its answer again."""
        self._stalled.pop(connection, None)

    def handshake(self, connection: _Connection, context: ssl.SSLContext) -> None:
        """Make ``connection``'s TLS handshake; until it is done the connection counts as idle
        (evicted first at the cap)."""
        task = asyncio.get_running_loop().create_task(self._handshake(connection, context))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, connection: _Connection, context: ssl.SSLContext) -> None:
        raw = connection.transport
        assert raw is not None
        try:
            tls = await asyncio.get_running_loop().start_tls(
                raw,
                connection,
                context,
                server_side=True,
                ssl_handshake_timeout=self.limits.header_timeout,
            )
        except asyncio.CancelledError:
            self._abandon(connection, raw)
            raise
        except OSError as exc:  # ssl.SSLError too
            # Failed, too slow (asyncio aborts it: ConnectionAbortedError) or evicted.
            if connection.live and isinstance(exc, ConnectionAbortedError):
                self._closed.labels("header_timeout").inc()
            self._abandon(connection, raw)
            return
        if tls is None:  # the connection closed as the handshake ended
            self._abandon(connection, raw)
            return
        if not connection.live:  # evicted meanwhile
            tls.abort()
            return
        # From now on the connection is known by its TLS transport (aiohttp's request.transport).
        self._open.pop(raw, None)
        self._open[tls] = connection
        connection.transport = tls
        connection.start(tls)

    def _abandon(self, connection: _Connection, raw: asyncio.Transport) -> None:
        if not raw.is_closing():
            raw.abort()
        # After the abort: the listener, told the descriptor is going, looks once it has gone.
        self.lost(connection)

    def head_started(self, connection: _Connection) -> None:
        connection.timer = asyncio.get_running_loop().call_later(
            self.limits.header_timeout, self._head_expired, connection
        )

    def _head_expired(self, connection: _Connection) -> None:
        connection.timer = None
        if connection.phase is _Phase.HEAD:
            self._close(connection, "header_timeout")

    def lost(self, connection: _Connection) -> None:
        self._release(connection)
        if connection.transport is not None:
            self._open.pop(connection.transport, None)
        if self._listener is not None:
            self._listener.freed()

    def _close(self, connection: _Connection, reason: str) -> None:
        """Drop ``connection`` now (nothing is owed to it), counted under ``reason``."""
        self._closed.labels(reason).inc()
        _logger.debug("HTTP connection closed: %s", reason)
        self._release(connection)
        if connection.transport is not None and not connection.transport.is_closing():
            connection.transport.abort()

    def _release(self, connection: _Connection) -> None:
        connection.cancel_timer()
        if not connection.live:
            return
        connection.live = False
        self._idle.pop(connection, None)
        self._stalled.pop(connection, None)
        self._reading.discard(connection)
        connection.reading = None
        if connection.reserved:
            self._reserved -= 1
        else:
            self._regular -= 1

    # -- requests --

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Times the body, keeps the reserve for probes, and marks the connection busy."""
        transport = request.transport
        if transport is None or transport.is_closing():
            # Closed (to make room, timed out, or by the client) while aiohttp read its head:
            # nobody reads an answer, and the handler would fail reading the body.
            return error_response(400, "connection_lost", "the connection closed")
        connection = self._open.get(transport)
        if connection is None or not connection.live:
            return await handler(request)  # served without this guard (tests)
        connection.cancel_timer()
        connection.phase = _Phase.BUSY
        connection.body_expired = False
        self._idle.pop(connection, None)
        if connection.reserved or _large_head(request):
            # Decided before the handler, so that an answer it sends itself (a StreamResponse)
            # or raises (an HTTPException) says so too: the reserve is for one probe at a time;
            # a large head would be held by the idle connection until its next request (aiohttp
            # keeps the last one).
            request[CLOSE_AFTER] = True
        try:
            response = await self._handle(connection, request, handler)
        finally:
            connection.cancel_timer()
            connection.reading = None
            self._reading.discard(connection)
            connection.phase = _Phase.IDLE
            if connection.live:
                self._idle[connection] = None
        if request.get(CLOSE_AFTER) or connection.body_expired:
            response.force_close()
        if isinstance(response, web.Response) and not response.prepared:
            await _send_and_let_go(request, response)
        return response

    async def _handle(
        self, connection: _Connection, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        if connection.reserved and request.path not in PROBE_PATHS:
            self._closed.labels("refused").inc()
            response = error_response(
                503,
                "too_many_connections",
                f"{self.max_connections} connections are open; beyond them only "
                f"{', '.join(sorted(PROBE_PATHS))} are answered; retry later",
            )
            response.headers["Retry-After"] = "1"
            return response
        if request.body_exists and not request.content.is_eof():
            loop = asyncio.get_running_loop()
            connection.timer = loop.call_later(
                self.limits.body_timeout, self._body_expired, connection, request
            )
            connection.reading = request
            connection.body_since = loop.time()
            self._reading.add(connection)
        try:
            return await handler(request)
        except web.HTTPException as exc:
            # An answer raised (a redirect): sent here as the others are. Raised on, aiohttp would
            # send and keep the exception, and through its traceback the request and its head.
            answer = web.Response(
                status=exc.status, reason=exc.reason, body=exc.body, headers=exc.headers
            )
            answer.cookies.update(exc.cookies)
            return answer
        except ConnectionResetError:
            if request.transport is not None and not request.transport.is_closing():
                raise
            # The client left mid-request (a trickle given up): nobody reads an answer, and
            # aiohttp would log the traceback as an error.
            _logger.debug("HTTP client went away during %s %s", request.method, request.path)
            return error_response(400, "connection_lost", "the client closed the connection")
        except _BodyTimeout:
            return error_response(
                408,
                "body_timeout",
                f"the body did not arrive within EXESDB_HTTP_BODY_TIMEOUT_MS "
                f"({self.limits.body_timeout * 1000:.0f} ms)",
            )

    def _body_expired(self, connection: _Connection, request: web.Request) -> None:
        connection.timer = None
        if request.content.is_eof():
            return
        self._closed.labels("body_timeout").inc()
        _logger.debug("HTTP connection closed: body_timeout")
        connection.body_expired = True
        request.content.set_exception(_BodyTimeout())


def _large_head(request: web.Request) -> bool:
    """Whether ``request``'s head holds more than ``HEAD_KEPT`` bytes of fields."""
    fields = request.raw_headers
    # No more than _FEW_FIELDS fields cannot be a large head: a bare probe's need not be summed.
    return len(fields) > _FEW_FIELDS and sum(len(k) + len(v) for k, v in fields) > HEAD_KEPT


async def _send_and_let_go(request: web.Request, response: web.Response) -> None:
    """Send ``response`` now and drop its body: aiohttp keeps a keep-alive connection's last
    response until its next request, so each idle connection would hold the page it last got
    (the status page is ~100 KB); aiohttp then finds it sent and sends nothing more."""
    try:
        await response.prepare(request)
        await response.write_eof()
    except ConnectionError:
        pass  # the client left: aiohttp, finishing the response, finds so and stops quietly
    finally:
        response.body = None


async def _bind(
    host: str,
    port: int,
    *,
    new_socket: Callable[[int, int, int], socket.socket] = socket.socket,
    resolve: _Resolve | None = None,
) -> list[socket.socket]:
    """Sockets bound to every address ``host`` resolves to, as ``loop.create_server`` makes them
    (address reuse, IPv6 sockets IPv6 only), not yet listening; OSError naming the address that
    failed.

    An address whose family cannot be made a socket is left out, as ``create_server`` leaves it
    (``localhost`` resolves to ``::1`` too on a kernel without IPv6); OSError when none can. An
    address the host does not have (``EADDRNOTAVAIL``: ``::1`` where IPv6 is turned off with
    ``net.ipv6.conf.all.disable_ipv6``) is left out with a warning when another one is bound;
    OSError naming it and its errno when none is. Any other failure (the port taken, not ours
    to bind) is an OSError at once: a client may reach another process on that address.
    Port 0 binds every address on the port the system picked for the first (picked again, a
    few times, when another process has it on a later address): one port, the one reported.
    ``resolve`` stands for ``loop.getaddrinfo`` (the addresses ``host`` resolves to).
    """
    loop = asyncio.get_running_loop()
    infos = await (resolve or loop.getaddrinfo)(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    for _ in range(_PICKS - 1):
        if (sockets := _bind_each(host, port, infos, new_socket, pick_again=True)) is not None:
            return sockets
    sockets = _bind_each(host, port, infos, new_socket, pick_again=False)
    assert sockets is not None  # without pick_again it binds or raises
    return sockets


def _bind_each(
    host: str,
    port: int,
    infos: Sequence[tuple[int, int, int, str, tuple[Any, ...]]],
    new_socket: Callable[[int, int, int], socket.socket],
    *,
    pick_again: bool,
) -> list[socket.socket] | None:
    """``_bind`` on the addresses ``infos`` resolved to; with ``pick_again``, None (nothing
    bound) when port 0 picked a port another process has on a later address."""
    picked = 0
    sockets: list[socket.socket] = []
    unmade: OSError | None = None
    unavailable: list[tuple[tuple[Any, ...], OSError]] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            try:
                sock = new_socket(family, kind, proto)
            except OSError as exc:
                _logger.info("not listening on %r: no socket for it (%s)", address, exc.strerror)
                unmade = exc
                continue
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            on = (address[0], picked, *address[2:]) if picked else address
            try:
                sock.bind(on)
            except OSError as exc:
                if picked and pick_again and exc.errno == errno.EADDRINUSE:
                    for bound in sockets:
                        bound.close()
                    return None
                if exc.errno != errno.EADDRNOTAVAIL:
                    raise OSError(exc.errno, _bind_failure([on], exc)) from None
                sockets.pop().close()
                unavailable.append((address, exc))
                continue
            if port == 0:
                picked = sock.getsockname()[1]
            sock.setblocking(False)
        if not sockets and unavailable:
            addresses, failures = zip(*unavailable, strict=True)
            raise OSError(failures[0].errno, _bind_failure(list(addresses), failures[0]))
        if not sockets and unmade is not None:
            raise OSError(
                unmade.errno,
                f"no socket can be made for {host or 'any address'!r} port {port}: "
                f"{str(unmade.strerror).lower()}",
            )
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    for address, failure in unavailable:
        _logger.warning(
            "not listening on %r, an address %r resolves to: %s ([Errno %d] %s); listening on %s",
            address,
            host or "any address",
            str(failure.strerror).lower(),
            failure.errno,
            errno.errorcode.get(failure.errno or 0, "?"),
            ", ".join(repr(sock.getsockname()) for sock in sockets),
        )
    return sockets


def _bind_failure(addresses: list[tuple[Any, ...]], exc: OSError) -> str:
    shown = ", ".join(repr(address) for address in addresses)
    return f"error while attempting to bind on address {shown}: {str(exc.strerror).lower()}"


class Listener:
    """Accepts the HTTP connections on the listening sockets, within the guard's descriptor
    budget (see the module docstring); what ``bridge.app`` starts and closes."""

    def __init__(
        self,
        guard: ConnectionGuard,
        sockets: list[socket.socket],
        factory: Callable[[], asyncio.Protocol],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sockets = tuple(sockets)
        self._guard = guard
        self._factory = factory
        self._loop = asyncio.get_running_loop()
        self._clock = clock
        # Accepted sockets, until seen closed (their fileno is then -1): what the budget counts.
        self._held: set[socket.socket] = set()
        self._serving = False
        self._watching = False
        self._retry: asyncio.TimerHandle | None = None
        self._resuming = False  # a _resume is scheduled to run soon
        self._refused_until = 0.0  # the loop's time until which an accept refused keeps it off
        self._connecting: set[asyncio.Task[None]] = set()
        self._told: float | None = None
        self._untold = 0

    async def start_serving(self) -> None:
        """Listen and accept connections from now on (until now a connection is refused, as
        with no server at all)."""
        for sock in self.sockets:
            sock.listen(_BACKLOG)
        self._serving = True
        self._watch()

    def close(self) -> None:
        """Stop accepting and close the listening sockets; idempotent. Open connections are
        aiohttp's to close."""
        self._serving = False
        self._unwatch()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        for sock in self.sockets:
            sock.close()
        for task in list(self._connecting):
            task.cancel()

    def freed(self) -> None:
        """A connection is letting its descriptor go (once this callback returns): accept
        again, should the budget have stopped it."""
        if self._serving and not self._watching and not self._resuming:
            self._resuming = True
            self._loop.call_soon(self._resume)

    def _watch(self) -> None:
        if self._serving and not self._watching:
            for sock in self.sockets:
                self._loop.add_reader(sock.fileno(), self._accept, sock)
            self._watching = True

    def _unwatch(self) -> None:
        if self._watching:
            for sock in self.sockets:
                if sock.fileno() != -1:
                    self._loop.remove_reader(sock.fileno())
            self._watching = False

    def _room(self) -> int:
        room = self._guard.descriptor_budget - len(self._held)
        if room <= 0:  # forget the sockets closed since (O(n) only at the budget)
            self._held = {sock for sock in self._held if sock.fileno() != -1}
            room = self._guard.descriptor_budget - len(self._held)
        return room

    def _resume(self) -> None:
        self._resuming = False
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if not self._serving or self._watching:
            return
        if self._loop.time() < self._refused_until:
            self._retry = self._loop.call_at(self._refused_until, self._resume)
        elif self._room() > 0:
            self._watch()
        else:
            self._retry = self._loop.call_later(_RECHECK, self._resume)

    def _accept(self, listening: socket.socket) -> None:
        for _ in range(min(self._room(), _BACKLOG)):
            try:
                sock, _address = listening.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return  # none waiting (or one that left before it was taken)
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    raise
                self._out_of_resources(exc)
                return
            sock.setblocking(False)
            self._held.add(sock)
            task = self._loop.create_task(self._connect(sock))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)
        if self._room() <= 0:
            # At the budget: the next accept waits until a connection lets its descriptor go.
            self._unwatch()
            if self._retry is None:
                self._retry = self._loop.call_later(_RECHECK, self._resume)

    async def _connect(self, sock: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, sock)
        except OSError:
            sock.close()  # reset before its transport was made: nobody to answer
        except asyncio.CancelledError:
            sock.close()
            raise

    def _out_of_resources(self, exc: OSError) -> None:
        """The system refused an accept (descriptors, or memory, used elsewhere in the process or
        the system): stop accepting for a second, and say so once a minute."""
        self._unwatch()
        if self._retry is not None:
            self._retry.cancel()
        self._refused_until = self._loop.time() + _ACCEPT_RETRY
        self._retry = self._loop.call_at(self._refused_until, self._resume)
        now = self._clock()
        if self._told is not None and now - self._told < _OUT_OF_RESOURCES_EVERY:
            self._untold += 1
            return
        what, remedy = _OUT_OF_RESOURCES[cast(int, exc.errno)]
        untold = f" ({self._untold} more accepts refused since the last warning)"
        _logger.warning(
            "%s (%s): it stops accepting for a second; %s%s",
            what,
            exc.strerror,
            remedy,
            untold if self._untold else "",
        )
        self._told, self._untold = now, 0
