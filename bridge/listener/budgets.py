"""The bytes held by request heads and bodies in progress, bounded.

Each connection's head is counted as it arrives (``heads.py``), and its request's body as aiohttp
reads it, as held until the request is answered (``Connection.head_held``, ``Connection.held``);
what a connection holds back ahead of the request it is handling (requests sent behind it, or
what follows a head before its body is known) counts as heads until it is read
(``Connection.ahead_held``): past ``HEADS_HELD`` of heads in all, a connection whose client reads
none of its answer is closed, else the slowest; past ``BODIES_HELD`` of bodies
(``EXESDB_MAX_BODIES_BYTES``), the slowest is closed; else the request whose bytes went past is
refused (503 ``overloaded``, or the connection reset while it has a request in progress); a
head over ``HEAD_MAX`` alone is answered 431. Closing and refusing are the guard's (``Closer``):
it counts and releases the connection, and the cap closes the slowest body the same way.
"""

from __future__ import annotations

import asyncio
from typing import Final, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from bridge.listener.connection import Connection
from bridge.listener.heads import HEAD_MAX, HEADS_HELD, TOO_LARGE_ANSWER, over_budget_answer
from bridge.routes import error_response

__all__ = ["BODIES_HELD", "Closer", "HeldBytes", "OverBudget"]

# The most bytes of request bodies the requests in progress may hold at once, unless
# EXESDB_MAX_BODIES_BYTES says (twice EXESDB_MAX_BODY_BYTES when that is more): past it the
# slowest body read is closed, else the request whose bytes went past is answered 503. Without
# it, 1 000 connections each sending a body of 1 MiB less a byte, unsigned (its signature is
# checked once it is all in), held 1.1 GB of the bridge's memory for the body timeout, and kept
# it after (the heap fragmented, bridge process, 7 Dec 2026); with EXESDB_MAX_BODY_BYTES at its
# 256 MiB most, the cap times that.
BODIES_HELD: Final = 64 * 1024 * 1024


class OverBudget(TimeoutError):
    """Raised into a handler reading a body whose bytes took the bodies held past their budget
    (``BODIES_HELD``); a TimeoutError, so that aiohttp, draining the rest of the body after the
    503, stops quietly."""


class Closer(Protocol):
    """What the budgets have the connection guard do (``bridge.listener.guard.ConnectionGuard``)."""

    def evict_slowest_body(self) -> bool:
        """Close the body read going slowest, as at the cap; False when none may be."""
        ...

    def evict_stalled_head(self) -> bool:
        """Close, of the connections whose client reads nothing of its answer, the one holding
        the most head bytes; False when none holds any."""
        ...

    def count_closed(self, connection: Connection, reason: str) -> None:
        """Count ``connection`` closed for ``reason`` (once, whatever follows)."""
        ...

    def close_slow(self, connection: Connection, reason: str) -> None:
        """Close ``connection``, its client sending too slowly, counted under ``reason``."""
        ...

    def refuse(self, connection: Connection, reason: str, answer: bytes) -> None:
        """Answer ``connection``, whose head is not whole, with ``answer`` and close it."""
        ...


class HeldBytes:
    """The bytes of heads and of bodies the requests in progress hold, each within its budget."""

    def __init__(
        self,
        closer: Closer,
        *,
        bodies_held: int,
        grace: float,
        registry: CollectorRegistry,
    ) -> None:
        """``grace`` is the seconds a head or body is given before its rate counts
        (``BODY_GRACE``)."""
        self._closer = closer
        self._grace = grace
        self._bodies_held = bodies_held
        self._bodies = 0  # bytes of bodies the requests in progress hold (Connection.held)
        # Bytes of heads the requests in progress hold, and of what connections hold ahead of
        # the request in progress (Connection.head_held, Connection.ahead_held).
        self._heads = 0
        self._heading: set[Connection] = set()  # the connections holding them
        Gauge(
            "exesdb_http_bodies_held_bytes",
            "Bytes of request bodies the HTTP requests in progress hold, counted against "
            "EXESDB_MAX_BODIES_BYTES.",
            registry=registry,
        ).set_function(lambda: float(self._bodies))
        Gauge(
            "exesdb_http_heads_held_bytes",
            "Bytes of request heads the HTTP requests in progress hold, and of requests sent "
            "ahead of those (pipelined) held back, counted against the most the bridge holds "
            f"of them at once ({HEADS_HELD // 2**20} MiB).",
            registry=registry,
        ).set_function(lambda: float(self._heads))

    def body_grew(self, connection: Connection) -> None:
        """More of the body of ``connection``'s request in progress has come: counted as held
        until its answer. Past ``bodies_held`` in all, the body read going slowest is closed
        (as at the cap: trickled bodies cannot hold the memory), else this request is answered
        503 ``overloaded`` (not one whose body has all come: it is the bridge's to answer)."""
        request = connection.holding
        if request is None or not connection.live:
            return
        grown = request.content.total_bytes - connection.held
        if grown <= 0:
            return
        connection.held += grown
        self._bodies += grown
        while self._bodies > self._bodies_held and self._closer.evict_slowest_body():
            pass
        if (
            self._bodies > self._bodies_held
            and connection.live
            and connection.reading is request
            and not request.content.is_eof()
        ):
            self._closer.count_closed(connection, "body_budget")
            connection.body_expired = True  # its answer closes the connection
            self._let_go_of_body(connection)  # its handler reads no more of it
            request.content.set_exception(OverBudget())

    def overloaded(self) -> web.Response:
        """The answer to a request refused with ``OverBudget``: 503 ``overloaded``."""
        response = error_response(
            503,
            "overloaded",
            f"the request bodies being read hold {self._bodies_held} bytes, the most the "
            "bridge holds at once; retry later",
        )
        response.headers["Retry-After"] = "1"
        return response

    def head_grew(self, connection: Connection, grown: int) -> bool:
        """``grown`` more bytes of ``connection``'s request head have come: counted as held
        until its answer. A head over ``HEAD_MAX`` is answered 431; past ``HEADS_HELD`` in all,
        the head (or body) arriving slowest is closed, else this request is answered 503
        ``overloaded``. False when the connection is closing: what arrived goes no further."""
        if not connection.live:
            return False
        if grown <= 0:
            return True
        connection.head_held += grown
        self._heads += grown
        self._heading.add(connection)
        if connection.head.size > HEAD_MAX:
            self._closer.refuse(connection, "head_too_large", TOO_LARGE_ANSWER)
            return False
        return self._within_heads_held(connection)

    def ahead_grew(self, connection: Connection, grown: int) -> bool:
        """``connection`` holds ``grown`` more bytes back, ahead of the request it is handling
        (``Connection.read_ahead``): counted with the heads until read (``ahead_taken``). Past
        ``HEADS_HELD`` in all, the head (or body) arriving slowest is closed, else this
        connection is answered 503 ``overloaded``, or reset when a request of its own is still
        in progress (its answer cannot follow another). False when it closes."""
        if not connection.live:
            return False
        connection.ahead_held += grown
        self._heads += grown
        return self._within_heads_held(connection)

    def ahead_taken(self, connection: Connection) -> None:
        """What ``connection`` held back is read (or let go): held no more."""
        self._heads -= connection.ahead_held
        connection.ahead_held = 0

    def _within_heads_held(self, connection: Connection) -> bool:
        """Past ``HEADS_HELD``, close a connection whose client reads nothing of its answer,
        else the slowest head, else refuse ``connection``, whose bytes went past; whether
        ``connection`` is still live.

        A head is held until its answer is sent; one whose client reads none of it (a large
        /metrics exposition, its window shut) has no rate to be found slowest by, and held
        the budget until the write timeout (60 s): 17 such heads of 983 KB had every other
        request answered 503. Such a connection is closed as one past ``MAX_STALLED`` is
        (``stalled``), before any head still arriving, the one holding the most first."""
        while self._heads > HEADS_HELD and (
            self._closer.evict_stalled_head() or self._evict_slowest_head()
        ):
            pass
        if self._heads > HEADS_HELD and connection.live:
            self._closer.refuse(connection, "head_budget", over_budget_answer(HEADS_HELD))
        return connection.live

    def _evict_slowest_head(self) -> bool:
        """Close the connection whose head (or, once it is whole, body) arrives slowest of those
        holding a head, past the grace; False when none is."""
        now = asyncio.get_running_loop().time()
        rates = {
            candidate: rate
            for candidate in self._heading
            if (rate := candidate.sending(now, self._grace)) is not None
        }
        if not rates:
            return False
        self._closer.close_slow(min(rates, key=rates.__getitem__), "slow_head")
        return True

    def let_go(self, connection: Connection) -> None:
        """``connection``'s request is answered, or the connection closed: what its head and
        body held is held no more."""
        self._let_go_of_body(connection)
        self._heads -= connection.head_held
        connection.head_held = 0
        self._heading.discard(connection)

    def _let_go_of_body(self, connection: Connection) -> None:
        self._bodies -= connection.held
        connection.held = 0
        connection.holding = None
