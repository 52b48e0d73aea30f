"""A real HTTP webhook receiver for integration tests: scriptable answers, every request recorded.

``WebhookReceiver().start()`` serves on a 127.0.0.1 port of its own (bound as port 0) from its
own thread (so sync tests, async tests and bridge subprocesses can all use it); one whose ``url``
is asked before its first start serves on the free port that answer named. ``url`` is where to
POST. Answers come from ``script(...)`` (used in order, one per request), then from
``fail_randomly(...)`` when set, then ``default`` (200). An ``Answer`` may carry
``Retry-After``, come ``delay`` seconds late, or hang (until the client gives up or the receiver
stops), or send its status and
then a body cut off by a connection reset (``cut``) or trickling until the client leaves
(``trickle``). Given an
``ssl_context`` it serves HTTPS; given ``authorization`` (the exact ``Authorization`` header it
demands, changeable while it runs) it answers 401 to any other. ``requests`` lists what
arrived, with the answer each one got. ``stop()`` and ``start()`` again on the same port
simulate an outage. Tests use the ``webhook_receiver`` fixture, a factory whose receivers are
stopped afterwards.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.support import free_port, stop_serving, wait_until

__all__ = ["HANG", "Answer", "Received", "WebhookReceiver", "webhook_receiver"]


@dataclass(frozen=True)
class Answer:
    """What the receiver answers one request: a status, maybe Retry-After, maybe ``delay``
    seconds late, maybe a hang, maybe a body of ``flood`` bytes (streamed) or a ``text`` (as
    ``content_type``) in place of the usual small JSON; or, after the status, a body cut off by
    a reset (``cut``) or one trickling a byte a tenth of a second until the client leaves
    (``trickle``)."""

    status: int = 200
    retry_after: str | None = None
    hang: bool = False
    flood: int = 0
    text: str | None = None
    content_type: str = "text/plain"
    cut: bool = False
    trickle: bool = False
    delay: float = 0.0


HANG = Answer(status=200, hang=True)


@dataclass(frozen=True)
class Received:
    """One request as it arrived, and the answer it was given."""

    path: str
    headers: dict[str, str]
    body: bytes
    answer: Answer
    at: float = field(default_factory=time.monotonic)
    query: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    @property
    def accepted(self) -> bool:
        """True when the receiver answered 2xx without hanging."""
        return 200 <= self.answer.status < 300 and not self.answer.hang

    @property
    def delivery_id(self) -> str | None:
        """The ``X-ExESDB-Delivery`` header."""
        return self.headers.get("X-ExESDB-Delivery")

    def alert_ids(self) -> list[str]:
        """The ``alert_id`` labels of the alerts in the payload."""
        return [alert["labels"]["alert_id"] for alert in self.json().get("alerts", [])]


class WebhookReceiver:
    """An aiohttp server on 127.0.0.1, in a thread of its own."""

    def __init__(
        self,
        port: int | None = None,
        path: str = "/hook",
        *,
        ssl_context: ssl.SSLContext | None = None,
        authorization: str | None = None,
    ) -> None:
        self._port = port
        self.path = path
        self.ssl_context = ssl_context
        self.authorization = authorization
        self.default = Answer()
        self.flooded: list[int] = []  # bytes each flood answer got out before the client left
        self._script: deque[Answer] = deque()
        self._random: random.Random | None = None
        self._fail_ratio = 0.0
        self._fail_answer = Answer(500)
        self._requests: list[Received] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._release: asyncio.Event | None = None

    @property
    def port(self) -> int:
        """The port it serves on; asked before the first start (to hand the URL on while
        nothing listens), a free one it will then serve on."""
        if self._port is None:
            self._port = free_port()
        return self._port

    @property
    def url(self) -> str:
        """The URL to POST deliveries to."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}{self.path}"

    # -- scripting --

    def script(self, *answers: Answer | int) -> WebhookReceiver:
        """Answer the next requests with these, in order (an int is a bare status)."""
        with self._lock:
            self._script.extend(a if isinstance(a, Answer) else Answer(a) for a in answers)
        return self

    def fail_randomly(self, ratio: float, seed: int, answer: Answer | int = 500) -> WebhookReceiver:
        """Once the script is used up, answer ``answer`` to a ``ratio`` of requests (seeded)."""
        with self._lock:
            self._random = random.Random(seed)
            self._fail_ratio = ratio
            self._fail_answer = answer if isinstance(answer, Answer) else Answer(answer)
        return self

    def _next_answer(self) -> Answer:
        with self._lock:
            if self._script:
                return self._script.popleft()
            if self._random is not None and self._random.random() < self._fail_ratio:
                return self._fail_answer
            return self.default

    # -- what arrived --

    @property
    def requests(self) -> list[Received]:
        """Every request so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def accepted(self) -> list[Received]:
        """The requests answered 2xx."""
        return [r for r in self.requests if r.accepted]

    def accepted_alert_ids(self) -> set[str]:
        """The alert ids of every payload answered 2xx."""
        return {alert_id for r in self.accepted() for alert_id in r.alert_ids()}

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until at least ``count`` requests arrived."""
        wait_until(lambda: len(self.requests) >= count, timeout, f"{count} webhook request(s)")
        return self.requests

    # -- serving --

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        demanded = self.authorization
        if demanded is not None and request.headers.get("Authorization") != demanded:
            answer = Answer(401)
        else:
            answer = self._next_answer()
        with self._lock:
            self._requests.append(
                Received(
                    request.path,
                    dict(request.headers.items()),
                    body,
                    answer,
                    query=dict(request.query.items()),
                )
            )
        if answer.hang:
            assert self._release is not None
            await self._release.wait()
        if answer.delay:
            await asyncio.sleep(answer.delay)  # a receiver slow to answer, as scripted
        headers = {"Retry-After": answer.retry_after} if answer.retry_after else None
        if answer.flood:
            return await self._flood(request, answer)
        if answer.cut or answer.trickle:
            return await self._break_off(request, answer)
        if answer.text is not None:
            return web.Response(
                text=answer.text,
                content_type=answer.content_type,
                status=answer.status,
                headers=headers,
            )
        return web.json_response({"status": answer.status}, status=answer.status, headers=headers)

    async def _flood(self, request: web.Request, answer: Answer) -> web.StreamResponse:
        """Answer with ``answer.flood`` bytes, written as fast as the client takes them; how
        many it took before it stopped reading goes in ``flooded``."""
        response = web.StreamResponse(status=answer.status)
        response.content_length = answer.flood
        await response.prepare(request)
        chunk = b"x" * 2**20
        sent = 0
        try:
            while sent < answer.flood:
                part = chunk[: answer.flood - sent]
                await response.write(part)
                sent += len(part)
        except ConnectionError:
            pass  # the client stopped reading
        finally:
            self.flooded.append(sent)
        return response

    async def _break_off(self, request: web.Request, answer: Answer) -> web.StreamResponse:
        """Send the status and the start of a body promised longer, then reset the connection
        (``cut``) or go on a byte at a time until the client leaves (``trickle``)."""
        response = web.StreamResponse(status=answer.status)
        response.content_length = 1_000_000
        await response.prepare(request)
        await response.write(b"partial")
        transport = request.transport
        assert transport is not None
        assert self._release is not None
        if answer.cut:
            # Linger 0: the close is a TCP reset, not an orderly end.
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            return response
        try:
            while not transport.is_closing() and not self._release.is_set():
                await response.write(b"x")
                await asyncio.sleep(0.1)  # a trickle: one byte a tenth of a second
        except ConnectionError:
            pass  # the client left
        return response

    def start(self, timeout: float = 10.0) -> WebhookReceiver:
        """Serve (again) on ``port``; returns once the socket listens."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready))
            except BaseException as exc:
                failure.append(exc)
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=serve, name="webhook-receiver", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or failure:
            self._thread = None
            raise RuntimeError(f"webhook receiver did not start on {self._port}: {failure}")
        return self

    async def _serve(self, ready: threading.Event) -> None:
        self._stopped = asyncio.Event()
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        # Made here, for the stop to stop its accepts (stop_serving); with SO_REUSEADDR (as
        # create_server sets it), so that a restart on the same port does not wait for TIME_WAIT.
        listening = socket.create_server(("127.0.0.1", self._port or 0))
        await web.SockSite(runner, listening, ssl_context=self.ssl_context).start()
        self._port = runner.addresses[0][1]
        ready.set()
        try:
            await self._stopped.wait()
        finally:
            self._release.set()
            await stop_serving(runner, [listening])

    def stop(self) -> None:
        """Stop serving (hung requests are released first); start() serves again."""
        thread, self._thread = self._thread, None
        if thread is None or self._loop is None:
            return
        stopped = self._stopped
        assert stopped is not None
        self._loop.call_soon_threadsafe(stopped.set)
        thread.join(10.0)


@pytest.fixture
def webhook_receiver() -> Iterator[Callable[..., WebhookReceiver]]:
    """``webhook_receiver(port=None, start=True, **options)`` makes a receiver (options: TLS and
    the demanded authorization); all stop afterwards."""
    made: list[WebhookReceiver] = []

    def make(port: int | None = None, start: bool = True, **options: Any) -> WebhookReceiver:
        receiver = WebhookReceiver(port, **options)
        made.append(receiver)
        return receiver.start() if start else receiver

    yield make
    for receiver in made:
        receiver.stop()
