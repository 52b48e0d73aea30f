"""The connection guard: the connections counted, capped and timed, and each answer sent.

It counts each connection from its accept (with TLS, before its handshake, and answers 400 one
that opens with plain HTTP instead), times its head, its handshake and its body, closes the one
idle longest (else the slowest body) at the cap, keeps ``RESERVE`` more for the probes, has
the bytes of bodies and of heads held at once bounded (``budgets.py``, which it closes and
refuses connections for), bounds the answers not read (and has the kernel
reset a connection whose client takes none of its answer for the write timeout), and, as
aiohttp's middleware, sends each answer itself and lets its body go (the package docstring says
why each); at a stop it lets the bodies still arriving come in
(``settle``) and waits for the requests in progress, cancelling those that do not end
(``end_requests``), before aiohttp's shutdown, which reads nothing more, and after it lets every
connection go, its socket closed, once its last answer is sent (``let_go``).
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import errno
import logging
import socket
import ssl
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, cast

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Gauge

from bridge.expect_continue import body_owed, when_body_asked
from bridge.listener.accept import BACKLOG, Listener
from bridge.listener.budgets import BODIES_HELD, HeldBytes, OverBudget
from bridge.listener.connection import Connection, Phase
from bridge.listener.handshakes import HandshakeFailures
from bridge.listener.plain_http import PLAIN_HTTP_ANSWER
from bridge.listener.sockets import bind
from bridge.listener.versions import unsupported_version
from bridge.routes import PROBES, error_response

__all__ = [
    "BODY_GRACE",
    "CLOSE_AFTER",
    "HEAD_KEPT",
    "MAX_STALLED",
    "PROBE_PATHS",
    "RESERVE",
    "ConnectionGuard",
    "Limits",
]

_logger = logging.getLogger(__name__)

PROBE_PATHS: Final = PROBES | {"/metrics"}
RESERVE: Final = 32
# Seconds a body read is given before its rate counts: the slowest one past it is closed at the cap.
BODY_GRACE: Final = 1.0
# Connections whose client is not reading the answer (each may hold a whole /metrics exposition).
MAX_STALLED: Final = 32
# The most bytes of request target and header fields a request may send and its connection stay
# open after the answer: the connection would hold them until its next request (~1 MiB each
# otherwise, ~50 KB of an alert's longest link).
HEAD_KEPT: Final = 16 * 1024
# Set (True) in a request whose connection closes after its answer: a handler that sends its
# answer itself (a StreamResponse) calls force_close() before prepare(), so that it says so.
CLOSE_AFTER: Final = web.RequestKey("close_after", bool)
# Descriptors kept for everything but HTTP connections: the outbox, Redis, webhook and OTLP
# clients, logs, the interpreter's own.
_OTHER_DESCRIPTORS: Final = 128
# The shortest handshake timeout given: what is left of the header timeout when it has all but
# passed (start_tls takes none at or below 0).
_SOONEST: Final = 0.001
# The socket option of the write timeout: Linux's (other systems have none, and the kernel's own
# limits stand there).
_USER_TIMEOUT: Final[int | None] = getattr(socket, "TCP_USER_TIMEOUT", None)
# How often a stop looks again at the connections still sending their last answer (``let_go``).
_SENT_POLL: Final = 0.01
# The read buffer of asyncio's TLS protocol (start_tls makes one for each connection, and keeps
# it, zeroed so resident, for the connection's life): 256 KiB by default, which made an idle TLS
# connection hold 284 KiB against 7 KiB over plain HTTP (bridge process, 400 idle connections,
# 6 Dec 2026). 64 KiB, four TLS records, took 92 KiB a connection; a larger read only takes more
# turns of the loop. Set for the process, so the Redis bus's and the senders' TLS too.
_TLS_READ: Final = 64 * 1024
asyncio.sslproto.SSLProtocol.max_size = _TLS_READ
_REASONS: Final = (
    "header_timeout",
    "body_timeout",
    "evicted",
    "slow_body",
    "stalled",
    "write_timeout",
    "refused",
    "bad_request",
    "unsupported_version",
    "body_budget",
    "slow_head",
    "head_too_large",
    "head_budget",
)


@dataclass(frozen=True, slots=True)
class Limits:
    """The deadlines (seconds) and the connection cap of the listener."""

    header_timeout: float
    body_timeout: float
    idle_timeout: float
    max_connections: int
    write_timeout: float
    max_body_bytes: int
    # The budget of bodies held at once (EXESDB_MAX_BODIES_BYTES); None: BODIES_HELD, or twice
    # max_body_bytes when that is more.
    max_bodies_bytes: int | None = None


class _BodyTimeout(TimeoutError):
    """Raised into a handler reading a body that did not arrive in time.

    A TimeoutError, so that aiohttp, draining the rest of the body after the 408, stops quietly.
    """


class ConnectionGuard:
    """Counts, caps and times the HTTP server's connections (see the package docstring)."""

    def __init__(self, limits: Limits, *, registry: CollectorRegistry | None = None) -> None:
        self.limits = limits
        self.max_connections = limits.max_connections
        self.max_stalled = MAX_STALLED
        self._open: dict[asyncio.BaseTransport, Connection] = {}
        # Live connections with no request in progress, the one idle longest first.
        self._idle: OrderedDict[Connection, None] = OrderedDict()
        self._reading: set[Connection] = set()  # requests whose body is being read
        # Live connections whose client does not read the answer, the one stalled longest first.
        self._stalled: OrderedDict[Connection, None] = OrderedDict()
        self._regular = 0
        self._reserved = 0
        self._handshakes: set[asyncio.Task[None]] = set()
        # Stopping (settle): every answer closes its connection. ``_progress`` is set whenever what
        # a stop waits for may have ended: a request answered, a body all come, a connection let go.
        self._stopping = False
        self._progress = asyncio.Event()
        self._write_timeout_said = False  # that the write timeout is not in force, logged once
        self._listener: Listener | None = None
        self._before_handshake: Callable[[], object] = lambda: None
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
            "HTTP connections the bridge closed, by reason (header_timeout, body_timeout, "
            "evicted, slow_body, stalled, write_timeout, refused, bad_request, "
            "unsupported_version, body_budget, slow_head, head_too_large, head_budget).",
            ["reason"],
            registry=registry,
        )
        for reason in _REASONS:
            self._closed.labels(reason)
        self._budgets = HeldBytes(
            self,
            bodies_held=limits.max_bodies_bytes or max(BODIES_HELD, 2 * limits.max_body_bytes),
            grace=BODY_GRACE,
            registry=registry,
        )
        # What each connection calls as its head and body arrive (``Watcher``): the budgets'
        # own methods, with no call of the guard's between.
        self.head_grew = self._budgets.head_grew
        self.ahead_grew = self._budgets.ahead_grew
        self.ahead_taken = self._budgets.ahead_taken
        self.body_grew = self._budgets.body_grew
        self._handshake_failures = HandshakeFailures(registry)

    @property
    def idle(self) -> int:
        """Open connections with no request in progress."""
        return len(self._idle)

    @property
    def descriptor_budget(self) -> int:
        """Most descriptors the HTTP connections may hold at once: the cap, the probe reserve
        and one burst of accepts (each connection accepted holds one before the cap closes the
        idle one it evicts, which lets its own go an iteration of the loop later)."""
        return self.max_connections + RESERVE + BACKLOG

    def fit(self, descriptors: int) -> int:
        """Lower the cap to what ``descriptors`` allows beside everything else; the cap."""
        # The listener accepts up to a backlog of connections at once, each holding a descriptor
        # before the cap can close the idle one it evicts for it: room for one such burst (the
        # descriptor budget, which the listener keeps to).
        kept = _OTHER_DESCRIPTORS + RESERVE + BACKLOG
        allowed = max(1, descriptors - kept)
        if allowed < self.limits.max_connections:
            _logger.warning(
                "EXESDB_HTTP_MAX_CONNECTIONS %d lowered to %d: the descriptor limit is %d, %d of"
                " them kept for the rest of the bridge; raise the hard open-file limit to %d or"
                " more (LimitNOFILE= in a systemd unit, ulimit -Hn in a shell, --ulimit nofile="
                " for docker run), or set EXESDB_HTTP_MAX_CONNECTIONS to %d or less",
                self.limits.max_connections,
                allowed,
                descriptors,
                kept,
                self.limits.max_connections + kept,
                allowed,
            )
        self.max_connections = min(self.limits.max_connections, allowed)
        return self.max_connections

    async def serve(
        self,
        factory: Callable[[], web.RequestHandler],
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
        before_handshake: Callable[[], object] = lambda: None,
    ) -> Listener:
        """Bind ``host:port`` (every address it resolves to, as ``asyncio`` binds them), each
        connection's protocol from ``factory`` (aiohttp's ``runner.server``) under this guard;
        it accepts once the listener's ``start_serving()`` is awaited.

        With TLS each connection is counted from its accept, before its handshake (which gets
        the header timeout: it is the first part of reading a request), so that half-open
        handshakes are held to the cap like idle connections. ``before_handshake`` is called
        just before each connection's TLS is made from ``ssl_context`` (the web config's look
        at its files: OpenSSL fixes the client-auth mode and versions of a connection from the
        context as it is then).
        """
        self._before_handshake = before_handshake
        sockets = await bind(host, port)
        self._listener = Listener(self, sockets, lambda: Connection(self, factory(), ssl_context))
        return self._listener

    def close(self) -> None:
        """Abort the handshakes still under way, and the TLS connections whose first bytes are
        still to come (the listener has stopped accepting; aiohttp never saw these); close the
        connections answered whose request body aiohttp still reads and drops."""
        for task in list(self._handshakes):
            task.cancel()
        for connection in [c for c in self._open.values() if c.phase is Phase.HELLO]:
            self._release(connection)
            assert connection.transport is not None
            connection.transport.abort()
        for connection in [c for c in self._open.values() if c.phase is Phase.IDLE and _left(c)]:
            # Answered in full (Connection: close or not), the rest of a body left unread being
            # read and dropped (aiohttp's lingering close, up to 10 s, waiting on a client that
            # may never send it): the runner's shutdown would wait out all of its share (2 s)
            # for nothing owed.
            assert connection.transport is not None
            connection.transport.close()
            if connection.body_left is not None:
                # The lingering close waits on the body, not the connection: a TLS close waits
                # on the client's close_notify, and aiohttp is told of it only then, once the
                # runner's shutdown waits on this connection. Closed (reading no more), it ends.
                connection.body_left.feed_eof()

    async def settle(self, within: float) -> None:
        """Stop: from now on every answer closes its connection; wait, up to ``within`` seconds,
        until no request is still receiving its body (or waiting to be asked for it), and close
        the connections of those that still are.

        The runner's shutdown, which follows, waits for the requests in progress itself, but
        drops every byte that arrives once it has begun (aiohttp reads no more): a body still
        arriving could never come, its request never be answered, and the stop would wait out
        the runner's whole share for it.
        """
        self._stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while any(_body_to_come(c) for c in self._reading):
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), deadline - loop.time())
            except TimeoutError:
                for connection in [c for c in self._reading if _body_to_come(c)]:
                    # Its body can come no more: let go at once (a TLS close would wait for the
                    # client's close_notify, and the runner's shutdown on it, before the handler
                    # learnt it).
                    if connection.transport is not None:
                        connection.transport.abort()
                return

    async def end_requests(self, within: float) -> None:
        """Stop, once no request can begin (aiohttp's ``pre_shutdown``): wait up to ``within``
        seconds for the requests in progress to end, then cancel those still running and give
        them as long again.

        aiohttp's shutdown, which follows, would wait for them itself, but a request that ends
        in the turn of the loop its wait runs out in fails as it ends (``InvalidStateError``,
        logged as an "Unhandled exception", its answer sent all the same: aiohttp 3.14.5's
        ``RequestHandler.shutdown``); with none left in progress, it does not wait.
        """
        await self._ended(within)
        for task in self._handling():
            task.cancel()
        await self._ended(within)

    async def _ended(self, within: float) -> None:
        """Until no request is in progress, for ``within`` seconds at most."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while (handling := self._handling()) and (left := deadline - loop.time()) > 0:
            await asyncio.wait(handling, timeout=left)

    def _handling(self) -> set[asyncio.Task[Any]]:
        """The tasks of the requests in progress."""
        tasks = (connection.handling for connection in self._open.values())
        return {task for task in tasks if task is not None and not task.done()}

    async def let_go(self, within: float) -> None:
        """After aiohttp's shutdown, which closed every connection: until each is gone, its
        socket closed. One with nothing left to send is aborted at once, the others once they
        have had ``within`` seconds to send it.

        A TLS connection closed has sent its close_notify and waits for the client's, which a
        client keeping its connection open and reading nothing never sends: asyncio would hold
        its socket for 30 s (its ``ssl_shutdown_timeout``), and, once the loop stops (``run``'s,
        or that of a program running the bridge), for good, to be found unclosed when collected.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self._open:
            late = loop.time() >= deadline
            for connection in [c for c in self._open.values() if late or _sent(c)]:
                # The socket's own transport: asyncio's TLS one, once closed twice (by close(),
                # then by aiohttp's shutdown), has let go of its protocol and aborts nothing.
                # Set as the connection is made, before it is counted open.
                if connection.raw is not None:
                    connection.raw.abort()
            if late:
                break
            # asyncio tells nothing when a transport has sent all it held: looked at again.
            await asyncio.sleep(_SENT_POLL)
        # An aborted connection's socket closes at the loop's next turn (its TLS protocol is told
        # at the one after): this stop returns with none left open.
        for _ in range(2):
            await asyncio.sleep(0)

    # -- the connections' phases --

    def admit(self, connection: Connection) -> bool:
        """Take a new connection under the cap (closing the longest idle one when full), into
        the probe reserve, or not at all (False: closed at once)."""
        if (
            self._regular < self.max_connections
            or self._evict(reserved=False)
            or self.evict_slowest_body()
        ):
            self._regular += 1
        elif self._reserved < RESERVE or self._evict(reserved=True):
            connection.reserved = True
            self._reserved += 1
        else:
            self._close(connection, "refused")
            return False
        assert connection.transport is not None
        sock = connection.transport.get_extra_info("socket")
        if sock is not None and _USER_TIMEOUT is None:
            self._no_write_timeout("this system has no TCP_USER_TIMEOUT")
        elif sock is not None and _USER_TIMEOUT is not None:
            # The write timeout, kept by the kernel: an answer (a whole one may sit in the kernel's
            # send buffer, up to 4 MiB, with nothing left here) its client takes nothing of, its
            # window shut, for so long has the connection reset, also once closed here (orphaned).
            # A kernel that names the option but refuses it (WSL1) keeps its own limits.
            try:
                sock.setsockopt(
                    socket.IPPROTO_TCP, _USER_TIMEOUT, round(self.limits.write_timeout * 1000)
                )
            except OSError as exc:
                self._no_write_timeout(
                    f"the kernel refuses TCP_USER_TIMEOUT ({exc.strerror or exc})"
                )
        connection.live = True
        self._open[connection.transport] = connection
        self._idle[connection] = None
        return True

    def _no_write_timeout(self, why: str) -> None:
        """Say once (not per connection), at info, that the write timeout is not in force."""
        if self._write_timeout_said:
            return
        self._write_timeout_said = True
        _logger.info(
            "EXESDB_HTTP_WRITE_TIMEOUT_MS is not in force on this system: %s, so a client that"
            " reads nothing of an answer is left to the kernel's own limits",
            why,
        )

    def _evict(self, *, reserved: bool) -> bool:
        for candidate in self._idle:  # the longest idle first
            if candidate.reserved is reserved:
                self._close(candidate, "evicted")
                return True
        return False

    def evict_slowest_body(self) -> bool:
        """Close the body read going slowest of those past ``BODY_GRACE``; False when none is."""
        now = asyncio.get_running_loop().time()
        slowest: Connection | None = None
        lowest = float("inf")
        for candidate in self._reading:
            if candidate.reserved:
                continue  # closing it frees a reserve place, not the regular one taken here
            reading = candidate.reading
            if reading is None or reading.content.is_eof():
                continue  # read whole: the request waits on the bridge, not on its client
            if body_owed(reading):
                continue  # its 100 Continue not sent (its password being checked): ours to wait on
            body = reading.content
            elapsed = now - candidate.body_since  # from its head, or its 100 Continue
            if elapsed >= BODY_GRACE and body.total_bytes / elapsed < lowest:
                slowest, lowest = candidate, body.total_bytes / elapsed
        if slowest is None:
            return False
        self.close_slow(slowest, "slow_body")
        return True

    def close_slow(self, connection: Connection, reason: str) -> None:
        """Close ``connection``, its client sending too slowly, counted under ``reason``; a
        handler reading its body stops, and its answer closes the connection."""
        if connection.reading is not None:
            connection.body_expired = True
            connection.reading.content.set_exception(_BodyTimeout())
        self._close(connection, reason)

    def stalled(self, connection: Connection) -> None:
        """``connection``'s client stopped reading its answer: past ``MAX_STALLED`` such, the
        one stalled longest closes."""
        if not connection.live:
            return
        self._stalled[connection] = None
        while len(self._stalled) > self.max_stalled:
            self._close(next(iter(self._stalled)), "stalled")

    def evict_stalled_head(self) -> bool:
        """Close, of the connections whose client reads nothing of its answer, the one holding
        the most head bytes (the one stalled longest of those holding as many); False when
        none holds any."""
        holding = [c for c in self._stalled if c.head_held + c.ahead_held > 0]
        if not holding:
            return False
        self._close(max(holding, key=lambda c: c.head_held + c.ahead_held), "stalled")
        return True

    def flowing(self, connection: Connection) -> None:
        """``connection``'s client reads its answer again."""
        self._stalled.pop(connection, None)

    def handshake(self, connection: Connection, context: ssl.SSLContext, hello: bytes) -> None:
        """Make ``connection``'s TLS handshake, from ``hello`` (its first bytes, read already)
        on, within what is left of its header timeout; until it is done the connection counts as
        idle (evicted first at the cap)."""
        loop = asyncio.get_running_loop()
        timeout = self.limits.header_timeout
        if connection.timer is not None:  # the header timeout, from the accept
            timeout = max(connection.timer.when() - loop.time(), _SOONEST)
            connection.cancel_timer()
        task = loop.create_task(self._handshake(connection, context, hello, timeout))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    def plain_http(self, connection: Connection) -> None:
        """Answer ``connection``, which opened with a plain HTTP request, 400 as Go's servers
        do, and close it; counted and logged as a failed handshake of kind plain_http."""
        raw = connection.transport
        assert raw is not None
        self._handshake_failures.plain_http(raw.get_extra_info("peername"))
        self._release(connection)
        raw.write(PLAIN_HTTP_ANSWER)  # a few bytes: the socket takes them at once
        raw.close()

    async def _handshake(
        self, connection: Connection, context: ssl.SSLContext, hello: bytes, within: float
    ) -> None:
        raw = connection.transport
        assert raw is not None
        loop = asyncio.get_running_loop()
        # start_tls sets its TLS protocol on ``raw`` before it first waits, and ``raw`` reads
        # again only on a later turn of the loop than this callback's: the protocol gets
        # ``hello`` before any byte after it (asyncio's keeps it for the handshake that its
        # connection_made, queued just after, begins; tests/test_listener.py cuts a ClientHello
        # into pieces to hold this).
        loop.call_soon(_give_back, raw, hello)
        # Before start_tls makes the connection's SSL object, which takes the client-auth mode,
        # versions and ciphers the context has then (a handshake's own look is too late).
        self._before_handshake()
        try:
            tls = await loop.start_tls(
                raw,
                connection,
                context,
                server_side=True,
                ssl_handshake_timeout=within,
            )
        except asyncio.CancelledError:
            self._abandon(connection, raw)
            raise
        except OSError as exc:  # ssl.SSLError too
            # Failed, too slow (asyncio aborts it: ConnectionAbortedError) or evicted.
            if connection.live and isinstance(exc, ConnectionAbortedError):
                self.count_closed(connection, "header_timeout")
            elif connection.live:
                self._handshake_failures.failed(exc, raw.get_extra_info("peername"))
            self._abandon(connection, raw)
            # The traceback holds start_tls's frame, which holds its waiter, which holds exc: a
            # cycle keeping the SSL protocol (and its read buffer, _TLS_READ) until a cyclic
            # collection, seldom in a busy bridge (1 000 stalled handshakes held 280 MB, with
            # asyncio's 256 KiB buffer).
            exc.__traceback__ = None
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

    def _abandon(self, connection: Connection, raw: asyncio.Transport) -> None:
        if not raw.is_closing():
            raw.abort()
        # After the abort: the listener, told the descriptor is going, looks once it has gone.
        self.lost(connection)

    def head_started(self, connection: Connection) -> None:
        """A request head has begun, or, with TLS, the connection was accepted: each has the
        header timeout."""
        connection.timer = asyncio.get_running_loop().call_later(
            self.limits.header_timeout, self._head_expired, connection
        )

    def refuse(self, connection: Connection, reason: str, answer: bytes) -> None:
        """Answer ``connection``, whose head is not whole, with ``answer`` and close it (aiohttp,
        with no request yet, has nothing to answer), counted under ``reason``."""
        self.count_closed(connection, reason)
        self._release(connection)
        connection.answer_early(answer)

    def _head_expired(self, connection: Connection) -> None:
        connection.timer = None
        if connection.phase in (Phase.HEAD, Phase.HELLO):
            self._close(connection, "header_timeout")

    def lost(self, connection: Connection, exc: BaseException | None = None) -> None:
        if connection.live and isinstance(exc, OSError) and exc.errno == errno.ETIMEDOUT:
            # The kernel reset it at the write timeout (TCP_USER_TIMEOUT, set at the accept).
            self.count_closed(connection, "write_timeout")
        elif connection.live and connection.phase is Phase.HELLO:
            self._handshake_failures.closed()  # before TLS or HTTP was told: a port check
        self._release(connection)
        if connection.transport is not None:
            self._open.pop(connection.transport, None)
        if self._listener is not None:
            self._listener.freed()

    def bad_request(self, transport: asyncio.BaseTransport | None) -> None:
        """Count a request the HTTP parser refused on ``transport`` (``bridge.listener.
        refusals``): answered 400, its connection closed after the answer."""
        connection = self._open.get(transport) if transport is not None else None
        self.count_closed(connection, "bad_request")

    def count_closed(self, connection: Connection | None, reason: str) -> None:
        """Count ``connection`` closed by the bridge for ``reason``, unless it was counted
        already: one refused (its answer closing it) and then timed out, evicted or reset
        before it is gone (a TLS close waits for the client's close_notify) is one connection
        closed, under its first reason."""
        if connection is not None:
            if connection.closed_for is not None:
                return
            connection.closed_for = reason
        self._closed.labels(reason).inc()
        _logger.debug("HTTP connection closed: %s", reason)

    def _close(self, connection: Connection, reason: str) -> None:
        """Drop ``connection`` now (nothing is owed to it), counted under ``reason``."""
        self.count_closed(connection, reason)
        self._release(connection)
        transport = connection.transport
        if transport is not None and not transport.is_closing():
            transport.abort()
        elif connection.raw is not None:
            # Closed already (by aiohttp: a head its parser refused, an answer saying
            # Connection: close): over TLS that close waits for the client's close_notify, the
            # socket held for asyncio's 30 s once let go here, uncounted; its own transport is
            # aborted (the TLS one, closed, aborts nothing).
            connection.raw.abort()

    def _release(self, connection: Connection) -> None:
        connection.cancel_timer()
        if not connection.live:
            return
        connection.live = False
        self._progress.set()
        self._idle.pop(connection, None)
        self._stalled.pop(connection, None)
        self._reading.discard(connection)
        connection.reading = None
        self._budgets.let_go(connection)
        self._budgets.ahead_taken(connection)
        connection.drop_ahead()
        connection.body_left = None
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
        # aiohttp's task for the request, answer sent included: what a stop waits for. Once it is
        # done, what arrived meanwhile is read: a head begun then drops the keep-alive timer
        # aiohttp sets after the answer (which cut a head pipelined with the request when the
        # idle timeout is shorter than the header timeout), and a head refused then is answered
        # after this answer (answer_early resets a connection whose request's task still runs).
        handling = connection.handling = asyncio.current_task()
        if handling is not None:
            handling.add_done_callback(lambda _: connection.read_ahead())
        connection.cancel_timer()
        connection.phase = Phase.BUSY
        connection.head.ended = True  # whole, as the parser found it: nothing more is counted
        if request.body_exists and not request.content.is_eof():
            connection.read_body(request)  # what came after the head, held until now, is its body
        connection.body_expired = False
        self._idle.pop(connection, None)
        if connection.reserved or _large_head(request) or _asks_to_switch(request):
            # Decided before the handler, so that an answer it sends itself (a StreamResponse)
            # or raises (an HTTPException) says so too: the reserve is for one probe at a time;
            # a large head would be held by the idle connection until its next request (aiohttp
            # keeps the last one); after a request asking to switch protocols aiohttp's parser
            # reads no request arriving with it (``_asks_to_switch``).
            request[CLOSE_AFTER] = True
        try:
            response = await self._handle(connection, request, handler)
        finally:
            connection.cancel_timer()
            connection.reading = None
            self._reading.discard(connection)
            self._budgets.let_go(connection)
            connection.phase = Phase.IDLE
            connection.answering = True
            if connection.live:
                self._idle[connection] = None
        if request.get(CLOSE_AFTER) or connection.body_expired or self._stopping:
            response.force_close()
        if isinstance(response, web.Response) and not response.prepared:
            await _send_and_let_go(request, response)
        # Said before aiohttp reads on: its keep-alive is not to be taken up again (keep_alive()
        # in Connection) by bytes arriving while it drops a body the answer left unread.
        connection.closing = response.keep_alive is False
        connection.body_left = None if request.content.is_eof() else request.content
        if self._stopping:
            if connection.body_left is not None and request.transport is not None:
                # The answer says Connection: close, and aiohttp closes the connection once it is
                # sent, but first reads and drops the rest of the body (its lingering close, as
                # after close()): nothing more is read, and the body taken for whole.
                request.transport.pause_reading()
                connection.body_left.feed_eof()
            self._progress.set()
        return response

    async def _handle(
        self, connection: Connection, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        if (refusal := unsupported_version(request)) is not None:
            self.count_closed(connection, "unsupported_version")
            return refusal  # before the reserve: Go's server answers it before any handler
        if connection.reserved and request.path not in PROBE_PATHS:
            self.count_closed(connection, "refused")
            response = error_response(
                503,
                "too_many_connections",
                f"{self.max_connections} connections are open; beyond them only "
                f"{', '.join(sorted(PROBE_PATHS))} are answered; retry later",
            )
            response.headers["Retry-After"] = "1"
            return response
        if request.body_exists and not request.content.is_eof():
            connection.reading = request
            self._reading.add(connection)
            request.content.on_eof(self._progress.set)  # a stop waits for it (settle)
            # From when the body is asked for: a client waiting for 100 Continue is sent it only
            # once every check of the head has passed (a bcrypt check among them), and is given
            # the whole body timeout, and BODY_GRACE at the cap, from then.
            when_body_asked(request, lambda: self._time_body(connection, request))
        if request.body_exists:
            # Counted also when it all came with its head: it is held until the answer.
            connection.holding = request
            self.body_grew(connection)
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
        except ConnectionError:
            if request.transport is not None and not request.transport.is_closing():
                raise
            # The client left mid-request (a trickle given up, or an answer it stopped reading:
            # aiohttp's wait for the socket raises a bare ConnectionError): nobody reads an
            # answer, and aiohttp would log the traceback as an error.
            _logger.debug("HTTP client went away during %s %s", request.method, request.path)
            return error_response(400, "connection_lost", "the client closed the connection")
        except OverBudget:
            return self._budgets.overloaded()
        except _BodyTimeout:
            return error_response(
                408,
                "body_timeout",
                f"the body did not arrive within EXESDB_HTTP_BODY_TIMEOUT_MS "
                f"({self.limits.body_timeout * 1000:.0f} ms)",
            )

    def _time_body(self, connection: Connection, request: web.Request) -> None:
        """Time ``request``'s body from now (its body just asked for): its rate at the cap, and
        the body timeout."""
        if connection.reading is not request:
            return  # answered meanwhile
        loop = asyncio.get_running_loop()
        connection.body_since = loop.time()
        if connection.live:
            connection.timer = loop.call_later(
                self.limits.body_timeout, self._body_expired, connection, request
            )

    def _body_expired(self, connection: Connection, request: web.Request) -> None:
        connection.timer = None
        if request.content.is_eof():
            return
        self.count_closed(connection, "body_timeout")
        connection.body_expired = True
        request.content.set_exception(_BodyTimeout())


def _give_back(raw: asyncio.Transport, hello: bytes) -> None:
    """Give ``hello``, the first bytes read from ``raw``, to the TLS protocol start_tls set on
    it (asyncio's, a buffered protocol), as ``raw`` gives it what it reads: no copy is added
    to what is read after."""
    if raw.is_closing():
        return
    tls = cast(asyncio.BufferedProtocol, raw.get_protocol())
    given = memoryview(hello)
    while given:
        buffer = memoryview(tls.get_buffer(len(given)))
        size = min(len(buffer), len(given))
        buffer[:size] = given[:size]
        tls.buffer_updated(size)
        given = given[size:]


def _sent(connection: Connection) -> bool:
    """Nothing is left to send on ``connection``: its socket's transport holds nothing (over
    TLS, asyncio's protocol hands it each record as it is made; the TLS transport, closed
    twice, has let go of its protocol and cannot say)."""
    return connection.raw is None or connection.raw.get_write_buffer_size() == 0


def _body_to_come(connection: Connection) -> bool:
    """Whether ``connection``'s request still waits for (part of) its body."""
    request = connection.reading
    return connection.live and request is not None and not request.content.is_eof()


def _left(connection: Connection) -> bool:
    """Whether ``connection`` was answered before its request's body came, and aiohttp reads
    (and drops) the rest still, or reads nothing more (``Connection: close``)."""
    body = connection.body_left
    return connection.closing or (body is not None and not body.is_eof())


def _asks_to_switch(request: web.Request) -> bool:
    """Whether ``request`` asks to switch protocols: ``Connection: upgrade`` with an ``Upgrade``
    field (``h2c``, ``websocket``), or ``CONNECT``.

    aiohttp's parser (llhttp) stops at the end of such a request and drops what arrived with it
    (aiohttp 3.14.5): a request pipelined after it was never answered, its connection held open
    with nothing owed (Go's server reads on and answers it). The bridge switches to nothing, so
    its answer closes the connection, and the client sends again what it had sent after.
    """
    if request.method == "CONNECT":
        return True
    tokens = ",".join(request.headers.getall("Connection", ())).lower().split(",")
    return "upgrade" in (token.strip() for token in tokens) and "Upgrade" in request.headers


def _large_head(request: web.Request) -> bool:
    """Whether ``request``'s head holds more than ``HEAD_KEPT`` bytes of target and fields."""
    fields = request.raw_headers
    return len(request.raw_path) + sum(len(k) + len(v) for k, v in fields) > HEAD_KEPT


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
