"""``Expect: 100-continue`` answered as Go's server answers it: ``100 Continue`` as a body is read.

aiohttp sends ``100 Continue`` as soon as it has routed the head, before any middleware: before
the web config's rate limit and basic auth, the connection guard's reserve, and aiohttp's own
404 and 405, which have no hook of their own. A client was so asked for a body the bridge then
refused unread. Here the expectation is taken off each HTTP/1.1 head as the server makes its
request (``take_expectations``), and ``100 Continue`` is sent when a route first reads the body
(``ask_for_body``, from ``bridge.bodies``), after every check of the head, as Go's net/http
(exporter-toolkit's server) sends it when a handler first reads its body: a refusal is sent in
its place. A bcrypt check (basic auth not yet remembered) thus comes before the ``100``: it is
bounded (``bridge.webconfig.basic_auth``: 15 checks at most ahead of it, about a second at cost
10), and curl, which waits a second for a ``100``, sends the body then anyway: it is read as any
other. The body timeout and the slowest body at the connection cap are timed from the ``100``
(``when_body_asked``; ``body_owed`` while it is not sent), not from the head: the checks' time
is the bridge's, not the client's.

An answer sent while the ``100`` is still owed and the body has not all arrived says
``Connection: close`` and its connection closes (``close_unasked``, as Go's closes): the client
may send the body after all, or its next request, and the two cannot be told apart. What it
sends of the body meanwhile is read and dropped for at most 10 s, as after a 413 (aiohttp's
lingering close), so that the client reads the answer rather than a reset.

Any other expectation (HTTP/1.1) aiohttp would answer 417 itself before any middleware, in plain
text, the connection guard never told the request had come. It is taken off the head too, and
left to the routes' middleware (``unmet_expectation``: ``bridge.http``), which answers 417 in
the one error shape after the web config's checks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from aiohttp import HttpVersion11, StreamReader, hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import RawRequestMessage
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = [
    "ask_for_body",
    "body_owed",
    "close_unasked",
    "take_expectations",
    "unmet_expectation",
    "when_body_asked",
]

# Set on a request whose client waits for ``100 Continue`` before it sends the body.
_OWED: Final = web.RequestKey("continue_owed", bool)
# Set on a request whose head expects what the bridge does not meet: the Expect value.
_UNMET: Final = web.RequestKey("expectation_unmet", str)
# Called as its ``100 Continue`` is sent: the listener times the body from then.
_ON_ASKED: Final = web.RequestKey[Callable[[], object]]("on_body_asked")
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_EXPECT: Final = hdrs.EXPECT.lower().encode()


def take_expectations(server: web.Server) -> None:
    """Have ``server`` leave ``Expect: 100-continue`` to ``ask_for_body``, and any other
    expectation to the routes' middleware (``unmet_expectation``), before it serves: each
    connection's protocol takes the request factory as it is when it is made."""
    make = server.request_factory

    def request(
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: web.RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        expect = message.headers.get(hdrs.EXPECT)
        # The heads aiohttp would answer, 100 or 417 (by their first Expect line, HTTP/1.1);
        # HTTP/1.0's expectation stays ignored, as aiohttp ignores it (no interim answers).
        if not expect or message.version != HttpVersion11:
            return make(message, payload, protocol, writer, task)
        headers = CIMultiDict(message.headers)
        headers.popall(hdrs.EXPECT)
        raw = tuple(field for field in message.raw_headers if field[0].lower() != _EXPECT)
        taken = message._replace(headers=CIMultiDictProxy(headers), raw_headers=raw)
        made = make(taken, payload, protocol, writer, task)
        if expect.lower() != "100-continue":
            # aiohttp would answer 417 before any middleware, in plain text, its connection
            # left to the guard as a head still arriving.
            made[_UNMET] = expect
        elif not payload.is_eof():  # a body follows, not sent yet (RFC 9110 10.1.1)
            made[_OWED] = True
        return made

    server.request_factory = request


async def ask_for_body(request: web.BaseRequest) -> None:
    """Send ``100 Continue`` if the client waits for it before sending the body; once."""
    if request.pop(_OWED, False):
        if (asked := request.pop(_ON_ASKED, None)) is not None:
            asked()
        await request.writer.write(_CONTINUE)
        request.writer.output_size = 0  # the answer proper has not begun (as aiohttp resets it)


def when_body_asked(request: web.BaseRequest, call: Callable[[], object]) -> None:
    """Call ``call`` when ``request``'s body is asked for: now for a client that sent it unasked
    (or was sent its ``100 Continue`` already), else as its ``100 Continue`` is sent (never, if
    the answer goes in its place)."""
    if _OWED in request:
        request[_ON_ASKED] = call
    else:
        call()


def unmet_expectation(request: web.BaseRequest) -> str | None:
    """The ``Expect`` value of ``request``'s head when it is one the bridge does not meet (any
    but ``100-continue``; HTTP/1.1), to be answered 417; None otherwise."""
    return request.get(_UNMET)


def body_owed(request: web.BaseRequest) -> bool:
    """Whether ``request``'s client still waits for its ``100 Continue`` (its body cannot be
    late: the bridge has not asked for it)."""
    return _OWED in request


async def close_unasked(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """Close the connection after ``response`` when it is sent in place of an owed ``100
    Continue`` and the body has not all arrived (an ``on_response_prepare`` hook)."""
    if request.get(_OWED) and not request.content.is_eof():
        response.force_close()
        # aiohttp 3.14 writes its Connection field before this hook runs.
        response.headers[hdrs.CONNECTION] = "close"
