"""One HTTP connection under the guard: aiohttp's protocol wrapped, its phase and its timer.

The connection tells the guard what happens to it (``Watcher``: accepted, a head begun, a TLS
handshake to make or plain HTTP on the TLS port, an answer not read or read again, lost); the
guard decides what follows.
"""

from __future__ import annotations

import asyncio
import ssl
from enum import Enum
from typing import Any, Final, Protocol, cast

from aiohttp import StreamReader, web

from bridge.expect_continue import body_owed
from bridge.listener.framing import BodyFrame
from bridge.listener.heads import HeadSize
from bridge.listener.plain_http import Opening, opening

__all__ = ["Connection", "Phase", "Watcher"]

# How long a connection whose head was refused before it was whole is kept, its answer sent and
# what arrives dropped, before it is reset: a socket closed with bytes unread is reset at once,
# and the client would read the reset, not the answer (Go's rstAvoidanceDelay).
_LINGER: Final = 0.5


class Phase(Enum):
    """Where a connection is in its requests."""

    HELLO = "hello"  # with TLS: waiting for the first bytes (a handshake, or plain HTTP)
    IDLE = "idle"  # waiting for a request
    HEAD = "head"  # part of a request head has arrived
    BUSY = "busy"  # a request is being handled


class Watcher(Protocol):
    """What a connection tells the guard watching it (``bridge.listener.guard.ConnectionGuard``)."""

    def admit(self, connection: Connection) -> bool: ...

    def handshake(self, connection: Connection, context: ssl.SSLContext, hello: bytes) -> None: ...

    def plain_http(self, connection: Connection) -> None: ...

    def head_started(self, connection: Connection) -> None: ...

    def head_grew(self, connection: Connection, grown: int) -> bool: ...

    def ahead_grew(self, connection: Connection, grown: int) -> bool: ...

    def ahead_taken(self, connection: Connection) -> None: ...

    def stalled(self, connection: Connection) -> None: ...

    def body_grew(self, connection: Connection) -> None: ...

    def flowing(self, connection: Connection) -> None: ...

    def lost(self, connection: Connection, exc: BaseException | None = None) -> None: ...


class Connection(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the guard watching its phases.

    With TLS the connection is taken plain at its accept (counted then) and read until its
    first bytes tell a handshake from plain HTTP (``bridge.listener.plain_http``): plain HTTP is
    answered 400; a handshake is made with ``loop.start_tls``, from those bytes on. Only once it
    is done does aiohttp see the connection (``start``), with what arrived over TLS before
    start_tls returned.
    """

    __slots__ = (
        "_ahead",
        "_body",
        "_client_done",
        "_early",
        "_guard",
        "_hello",
        "_inner",
        "_made",
        "_tls",
        "ahead_held",
        "answering",
        "body_expired",
        "body_left",
        "body_since",
        "closed_for",
        "closing",
        "handling",
        "head",
        "head_held",
        "held",
        "holding",
        "live",
        "phase",
        "raw",
        "reading",
        "reserved",
        "timer",
        "transport",
    )

    def __init__(
        self, guard: Watcher, inner: web.RequestHandler, tls: ssl.SSLContext | None = None
    ) -> None:
        self._guard = guard
        self._inner = inner
        self._tls = tls
        self._made = False
        self._early: list[bytes] = []  # TLS data before start_tls returned
        self._hello = bytearray()  # with TLS, the first bytes until they tell what they open
        # What arrived while a request was handled, its body all in, or its answer sent: requests
        # sent ahead (pipelined), read once the answer is sent (``read_ahead``), reading paused
        # meanwhile, as Go's server reads one request at a time. aiohttp parses and keeps up to
        # 32 of them, heads whole: 100 clients pipelining 1 MiB heads behind answers they did not
        # read grew the bridge by 507 MiB (14 MiB so). Counted as head bytes held (``ahead_held``,
        # against the heads' budget) until read or let go: up to a read (256 KiB) a connection.
        self._ahead = bytearray()
        self.ahead_held = 0
        # Where the body of the request in progress (or the last one's, answered before it all
        # came) ends: what arrives after it is the next request's head.
        self._body: BodyFrame | None = None
        # The client sent its end of the stream (shutdown(SHUT_WR)) with requests whole still to
        # answer: the connection closes once they are.
        self._client_done = False
        self.answering = False  # the answer is being sent (``read_ahead`` once it is)
        self.transport: asyncio.Transport | None = None
        # The socket's own transport; with TLS, ``transport`` becomes the one over it once
        # handshaken, and what it sends waits here until the socket takes it.
        self.raw: asyncio.Transport | None = None
        self.phase = Phase.IDLE
        self.reserved = False
        self.live = False  # counted against the cap (or the reserve) and not closing
        self.body_expired = False
        # The reason the bridge closes it for, once counted (``ConnectionGuard.count_closed``):
        # one refused and then timed out, or reset, before it is gone is counted once.
        self.closed_for: str | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.reading: web.Request | None = None  # the request whose body is being read
        # The request in progress that has a body, and how many bytes of it the guard counts as
        # held (against its budget of bodies held at once), until its answer.
        self.holding: web.Request | None = None
        self.held = 0
        self.body_since = 0.0
        # The request head arriving (or the last one), and how many of its bytes the guard counts
        # as held (against its budget of heads held at once), until its answer.
        self.head = HeadSize()
        self.head_held = 0
        # The body of the last request answered, when the answer went before all of it came:
        # aiohttp reads and drops the rest before the next request (its lingering close).
        self.body_left: StreamReader | None = None
        # The last answer said Connection: close: what arrives after it is aiohttp's to read and
        # drop (its lingering close, over a body not read), never the head of another request.
        self.closing = False
        # The task handling its request (the last one's, done, until the next begins): a stop
        # waits for it, then cancels it (``ConnectionGuard.end_requests``).
        self.handling: asyncio.Task[Any] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = self.raw = cast(asyncio.Transport, transport)
        if not self._guard.admit(self):
            return
        if self._tls is not None:
            # Within the header timeout, as a head: a client that sends nothing is closed.
            self.phase = Phase.HELLO
            self._guard.head_started(self)
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
        if self.phase is Phase.HELLO:
            self._hello_received(data)
            return
        if not self._made:
            if self._tls is not None and self.live:
                self._early.append(data)  # handshaken, start_tls about to return
            return  # refused: closing, and aiohttp never saw it
        if self._body is not None and not self._body.ended:
            stop = self._body.read(data)
            self._inner.data_received(data[:stop] if stop < len(data) else data)
            if self.holding is not None:
                self._guard.body_grew(self)
            if stop == len(data):
                return
            # The body ended within this read: what follows is the next request's head.
            data = data[stop:]
        if self.answering or self._waits_for_its_request():
            self._hold(data)
            return
        if self.phase is Phase.IDLE and not self.closing:
            self.phase = Phase.HEAD
            self.head.begin(asyncio.get_running_loop().time())
            self._guard.head_started(self)
            # A request is in progress: the header timeout bounds it from here, not aiohttp's
            # keep-alive timer, which would cut a head that began just before the idle timeout.
            # keep_alive() drops that timer; aiohttp starts it again after the answer.
            self._inner.keep_alive(True)
        if self.phase is Phase.HEAD:
            before = self.head.size
            stop = self.head.read(data)
            if not self._guard.head_grew(self, self.head.size - before):
                return  # refused (answered, closing) or closed: aiohttp's parser sees no more
            if stop < len(data):
                # The head ended within this read: what follows (a body, or the next request's
                # head) waits until the middleware knows which (``read_body``, ``read_ahead``),
                # else a head sent with the request before it would reach aiohttp uncounted.
                if not self._hold(data[stop:]):
                    return  # refused: the heads held are past their budget
                data = data[:stop]
        self._inner.data_received(data)

    def _waits_for_its_request(self) -> bool:
        """Whether what arrives waits until the request in progress is handled: its head is
        whole and the middleware has yet to see it, or it is handled with no body to come."""
        if self.phase is Phase.HEAD:
            return self.head.ended
        return self.phase is Phase.BUSY and (self._body is None or self._body.ended)

    def _hold(self, data: bytes) -> bool:
        """Hold ``data`` until the request in progress is handled, reading paused, counted
        against the heads' budget; False when that closed the connection (``data`` let go)."""
        if not self.live:
            return False
        self._ahead += data
        if self.transport is not None:
            self.transport.pause_reading()
        return self._guard.ahead_grew(self, len(data))

    def _read_held(self) -> None:
        """Read what was held back: let go of by the budget, reading resumed, and handed on
        as it had just arrived."""
        ahead, self._ahead = bytes(self._ahead), bytearray()
        if not ahead:
            return
        self._guard.ahead_taken(self)
        if self.transport is not None:
            self.transport.resume_reading()  # paused as it arrived
        self.data_received(ahead)

    def drop_ahead(self) -> None:
        """Let go of what was held: the connection is closing (the guard uncounts it)."""
        self._ahead = bytearray()

    def _hello_received(self, data: bytes) -> None:
        self._hello += data
        first = opening(self._hello)
        if first is Opening.UNDECIDED:
            return
        assert self.transport is not None
        assert self._tls is not None
        hello, self._hello = bytes(self._hello), bytearray()
        self.phase = Phase.IDLE
        if first is Opening.HTTP:
            self._guard.plain_http(self)
            return
        # Nothing more may be read before start_tls takes the socket over.
        self.transport.pause_reading()
        self._guard.handshake(self, self._tls, hello)

    def read_ahead(self) -> None:
        """The answer is sent (its request's task is done: aiohttp has written all of it, and
        waits for the next request): read what arrived meanwhile, and read on; once the client
        has sent its end and no request whole is left, close the connection."""
        self.answering = False
        self._read_held()
        if self._client_done and not self._owed():
            # The answer is all written: closed after it (what the transport holds is sent).
            # Not aiohttp's close(), which, its loop waiting for the next request by now,
            # ends that loop and leaves the connection open.
            self._inner.force_close()

    def read_body(self, request: web.Request) -> None:
        """``request``, in progress, has a body (its Content-Length, or chunked), read from now
        on: what arrived after its head is (the start of) it, for aiohttp to read now, reading
        going on; what arrives after it is the next request's, held."""
        chunked = "Transfer-Encoding" in request.headers  # else the parser refused it (400)
        self._body = BodyFrame(request.content_length, chunked=chunked)
        self._read_held()

    def _owed(self) -> bool:
        """Whether a request whole is in progress, or held, still to answer."""
        return self.answering or bool(self._ahead) or self._waits_for_its_request()

    def eof_received(self) -> bool | None:
        if not self._made:
            return None
        if self._tls is None and self.live and self._owed():
            # The client sent its end after its requests (shutdown(SHUT_WR)): each is owed its
            # answer, and the connection closes after the last (``read_ahead``); aiohttp's
            # transport closed at once, the answers in progress lost. asyncio's TLS closes
            # whatever this says (and warns of each that says otherwise).
            self._client_done = True
            return True
        self._inner.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._ahead = bytearray()
        self._guard.lost(self, exc)
        if self._made:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()
        self._guard.stalled(self)

    def resume_writing(self) -> None:
        self._guard.flowing(self)
        self._inner.resume_writing()

    def sending(self, now: float, grace: float) -> float | None:
        """The bytes a second its client sends what the request in progress waits for: its head
        (since it began), or, once that is whole, its body (since it was asked for); None when
        it waits for nothing of the client's, or began less than ``grace`` seconds ago."""
        request = self.reading
        if not self.head.ended:
            sent, since = self.head.size, self.head.since
        elif request is not None and not request.content.is_eof() and not body_owed(request):
            sent, since = request.content.total_bytes, self.body_since
        else:
            return None
        return sent / (now - since) if now - since >= grace else None

    def answer_early(self, answer: bytes) -> None:
        """Send ``answer`` (its head not whole, aiohttp has no request to answer) and close the
        connection, ``_LINGER`` later at the latest; reset it when its last answer is still
        being sent, which this one cannot follow."""
        transport, raw = self.transport, self.raw
        if transport is None or raw is None or transport.is_closing():
            return
        if self.handling is not None and not self.handling.done():
            raw.abort()
            return
        transport.write(answer)
        if transport.can_write_eof():
            transport.write_eof()
        else:
            transport.close()  # TLS: its close_notify after the answer
        asyncio.get_running_loop().call_later(_LINGER, raw.abort)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
