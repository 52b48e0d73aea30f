"""A real OAuth 2.0 token endpoint for integration tests: client-credentials grants answered.

``TokenServer(client_id, client_secret).start()`` serves ``POST /token`` on a 127.0.0.1 port of
its own (bound as port 0) from its own thread, as the webhook receiver does. A request whose client
authenticates as configured (HTTP basic auth, each part form-urlencoded as RFC 6749 section 2.3.1
says, or, with ``form_auth``, ``client_id`` and ``client_secret`` in the form) gets the next token,
``access-tok3n-1``, ``access-tok3n-2``…, with ``expires_in`` when set; another gets 401
``invalid_client``; ``other_clients`` (client id → secret) are taken too, from the same
sequence of tokens. ``client_secret`` may change while it runs (a rotation); while ``failing`` is
set (an ``Answer`` of the webhook receiver's: its status, its ``text`` as a JSON body, or a hang)
every request gets it instead; ``delay`` answers each request that many seconds late (a slow
identity provider). ``requests`` lists what arrived: headers, the form and the client's
credentials as the server read them. Given an ``ssl_context`` it serves HTTPS. Tests use the
``token_server`` fixture, a factory whose servers are stopped afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import pytest
from aiohttp import web

from tests.integration.servers.webhook import Answer
from tests.support import stop_serving

__all__ = ["TokenRequest", "TokenServer", "token_server"]


@dataclass(frozen=True)
class TokenRequest:
    """One token request as it arrived: its headers, its form, and the client id and secret it
    authenticated with (None when it gave none), the way it gave them (``basic`` or ``form``)."""

    headers: dict[str, str]
    form: dict[str, str]
    client: tuple[str, str] | None
    way: str | None


class TokenServer:
    """An aiohttp token endpoint on 127.0.0.1, in a thread of its own."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        expires_in: Any = 3600,
        token_type: str = "Bearer",
        form_auth: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        other_clients: dict[str, str] | None = None,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.other_clients = dict(other_clients or {})
        self.expires_in = expires_in
        self.token_type = token_type
        self.form_auth = form_auth
        self.ssl_context = ssl_context
        self.issued: list[str] = []
        self.failing: Answer | None = None
        self.delay = 0.0
        self._requests: list[TokenRequest] = []
        self._lock = threading.Lock()
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def url(self) -> str:
        """The token URL."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self._port}/token"

    @property
    def requests(self) -> list[TokenRequest]:
        """Every token request so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    async def _handle(self, request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        client = _basic(request.headers.get("Authorization", ""))
        way = "basic" if client is not None else None
        if client is None and "client_id" in form:
            client, way = (form["client_id"], form.get("client_secret", "")), "form"
        with self._lock:
            self._requests.append(TokenRequest(dict(request.headers), form, client, way))
            failing, delay = self.failing, self.delay
        if delay:
            await asyncio.sleep(delay)  # a slow identity provider, as the test asked
        if failing is not None:
            if failing.hang and self._stopped is not None:
                await self._stopped.wait()  # until the client gives up or the server stops
            return web.Response(
                status=failing.status, text=failing.text or "", content_type="application/json"
            )
        with self._lock:
            known = {**self.other_clients, self.client_id: self.client_secret}
            if (
                client is None
                or known.get(client[0]) != client[1]
                or (way == "form") != self.form_auth
            ):
                return web.json_response({"error": "invalid_client"}, status=401)
            self.issued.append(f"access-tok3n-{len(self.issued) + 1}")
            token: dict[str, Any] = {"access_token": self.issued[-1], "token_type": self.token_type}
            if self.expires_in is not None:
                token["expires_in"] = self.expires_in
        return web.Response(text=json.dumps(token), content_type="application/json")

    def start(self, timeout: float = 10.0) -> TokenServer:
        """Serve; returns once the socket listens."""
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready))
            finally:
                loop.close()

        self._thread = threading.Thread(target=serve, name="token-server", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("the token server did not start")
        return self

    async def _serve(self, ready: threading.Event) -> None:
        self._stopped = asyncio.Event()
        app = web.Application()
        app.router.add_post("/token", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        listening = socket.create_server(("127.0.0.1", 0))  # for stop_serving to stop accepting
        await web.SockSite(runner, listening, ssl_context=self.ssl_context).start()
        self._port = runner.addresses[0][1]
        ready.set()
        try:
            await self._stopped.wait()
        finally:
            await stop_serving(runner, [listening])

    def stop(self) -> None:
        """Stop serving."""
        thread, self._thread = self._thread, None
        if thread is None or self._loop is None or self._stopped is None:
            return
        self._loop.call_soon_threadsafe(self._stopped.set)
        thread.join(10.0)


def _basic(header: str) -> tuple[str, str] | None:
    """The client id and secret of HTTP basic auth, each form-urlencoded (RFC 6749 2.3.1)."""
    kind, _, encoded = header.partition(" ")
    if kind.lower() != "basic":
        return None
    user, _, password = base64.b64decode(encoded).decode().partition(":")
    return unquote_plus(user), unquote_plus(password)


@pytest.fixture
def token_server() -> Iterator[Callable[..., TokenServer]]:
    """``token_server(client_id, client_secret, **options)`` starts a token endpoint; all stop
    afterwards."""
    made: list[TokenServer] = []

    def make(client_id: str, client_secret: str, **options: Any) -> TokenServer:
        server = TokenServer(client_id, client_secret, **options)
        made.append(server)
        return server.start()

    yield make
    for server in made:
        server.stop()
