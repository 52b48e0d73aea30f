"""What the receivers-file tests share: an in-process bridge on a receivers file (retrying
fast) and one alert delivered through it, a file written in a line, a receiver's HTTPS context,
a signature checked, a plain-HTTP forward proxy."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import socket
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import trustme
from aiohttp import web

from bridge.app import Bridge
from bridge.sinks.alerts import AlertSink, DeliveryState
from bridge.sinks.alerts.records import Delivery
from tests.integration.servers.webhook import Received, WebhookReceiver
from tests.sinks.alerts.helpers import Watcher, alert_bridge, system_alert
from tests.support import async_wait_until, stop_serving

FAST: dict[str, Any] = {
    "EXESDB_WEBHOOK_BACKOFF_MS": "50",
    "EXESDB_WEBHOOK_MAX_BACKOFF_MS": "200",
    "EXESDB_WEBHOOK_GROUP_WAIT_MS": "0",
}


def served_by(ca: trustme.CA) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 signed by ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def delivery_to(key: str, body: bytes = b"{}") -> Delivery:
    """A pending delivery of one alert, as the outbox hands a worker."""
    return Delivery(
        id="d" * 16,
        url=key,
        body=body,
        alert_ids=("a1",),
        created_at=0.0,
        attempts=0,
        next_attempt_at=0.0,
        state=DeliveryState.PENDING,
        last_status=None,
        last_error=None,
        finished_at=None,
    )


def configured(
    state: Path, config: Path, **env: str
) -> contextlib.AbstractAsyncContextManager[tuple[Bridge, AlertSink, Watcher]]:
    """An in-process bridge on ``state`` with the receivers file ``config`` (and the settings
    ``env``), retrying fast."""
    return alert_bridge(
        state, serve_http=False, EXESDB_WEBHOOK_CONFIG_FILE=str(config), **{**FAST, **env}
    )


async def delivered(
    state: Path,
    config: Path,
    receiver: WebhookReceiver,
    alert_id: str,
    what: str = "an accepted delivery",
    **env: str,
) -> None:
    """Publish one alert through a bridge on the receivers file ``config`` (and the settings
    ``env``) and wait until ``receiver`` accepted a delivery."""
    async with configured(state, config, **env) as (bridge, _, _):
        bridge.bus.publish("disk_full", system_alert(alert_id))
        await async_wait_until(lambda: receiver.accepted(), what=what)


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` and return the path."""
    path.write_text(text)
    return path


def signed_with(key: str, request: Received) -> bool:
    """True when ``request``'s X-ExESDB-Signature is the HMAC of its body under ``key``."""
    fields = dict(part.split("=", 1) for part in request.headers["X-ExESDB-Signature"].split(","))
    mac = hmac.new(key.encode(), f"{fields['t']}.".encode() + request.body, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), fields["v1"])


class ForwardProxy:
    """A plain-HTTP forward proxy on 127.0.0.1: takes absolute-form requests, forwards them,
    and records the target URL and Proxy-Authorization of each."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.runner: web.AppRunner | None = None
        self.listening: list[socket.socket] = []
        self.port = 0

    async def start(self) -> ForwardProxy:
        async def forward(request: web.Request) -> web.Response:
            self.seen.append((str(request.url), request.headers.get("Proxy-Authorization")))
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
            async with (
                aiohttp.ClientSession() as session,
                session.request(
                    request.method, request.url, data=await request.read(), headers=headers
                ) as answer,
            ):
                return web.Response(status=answer.status, body=await answer.read())

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        self.listening.append(socket.create_server(("127.0.0.1", 0)))  # for stop_serving
        await web.SockSite(self.runner, self.listening[0]).start()
        self.port = self.runner.addresses[0][1]
        return self

    async def aclose(self) -> None:
        if self.runner is not None:
            await stop_serving(self.runner, self.listening)


HOP_BY_HOP = {"proxy-authorization", "proxy-connection", "connection", "host", "content-length"}
