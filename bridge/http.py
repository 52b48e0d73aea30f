"""The HTTP edge (SPEC section 6): probes, /metrics, signed ingest and the admin API.

Admin endpoints need ``Authorization: Bearer $EXESDB_ADMIN_TOKEN``; with no token configured
they answer 403 and say how to enable them. Error answers are JSON objects with ``error`` (a
stable code), ``detail`` and, where one is at fault, ``field``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from bridge.bus import (
    SIGNATURE_HEADER,
    Durability,
    Envelope,
    HeaderCheck,
    Rejection,
    RejectReason,
    check_topic,
)
from bridge.component import HasRoutes

if TYPE_CHECKING:
    from bridge.app import Bridge
    from bridge.integration import Integration

__all__ = ["BRIDGE_KEY", "build_app", "error", "require_admin"]

_logger = logging.getLogger(__name__)

BRIDGE_KEY: Final[web.AppKey[Bridge]] = web.AppKey("bridge")
_CLOSING: Final[web.AppKey[asyncio.Event]] = web.AppKey("closing", asyncio.Event)
_STREAM_QUEUE: Final = 1_000
_STREAM_HEARTBEAT_SECONDS: Final = 15.0
_JSON: Final = "application/json"
_NDJSON: Final = "application/x-ndjson"
# Ingest: how long a 202 may wait for the alert outbox's commit; the Retry-After of a 503.
_COMMIT_WAIT_SECONDS: Final = 10.0
_RETRY_AFTER_SECONDS: Final = 1

# SPEC section 6: the status for each rejection reason at ingest.
_STATUS_FOR: Final = {
    RejectReason.MALFORMED: 400,
    RejectReason.UNKNOWN_INSTANCE: 400,
    RejectReason.UNKNOWN_TAG: 400,
    RejectReason.INVALID_PAYLOAD: 400,
    RejectReason.UNSIGNED: 401,
    RejectReason.INVALID_SIGNATURE: 401,
    RejectReason.REPLAYED: 409,
    RejectReason.EXPIRED: 409,
    RejectReason.TOO_LARGE: 413,
}


def error(status: int, code: str, detail: str, field: str | None = None) -> web.Response:
    """A JSON error answer."""
    body: dict[str, Any] = {"error": code, "detail": detail}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status)


def _rejected(rejection: Rejection) -> web.Response:
    return web.json_response(rejection.as_json(), status=_STATUS_FOR[rejection.reason])


def require_admin(request: web.Request) -> web.Response | None:
    """None when the request carries the admin token, else the answer to send instead."""
    token = request.app[BRIDGE_KEY].settings.admin_token
    if token is None or not token.get_secret_value():
        return error(
            403,
            "admin_disabled",
            "admin endpoints are off: set EXESDB_ADMIN_TOKEN to enable them",
        )
    given = request.headers.get("Authorization", "")
    scheme, _, credential = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        # surrogateescape: header bytes that are not UTF-8 compare as what they are.
        credential.strip().encode("utf-8", "surrogateescape"),
        token.get_secret_value().encode(),
    ):
        answer = error(401, "unauthorized", "send Authorization: Bearer <EXESDB_ADMIN_TOKEN>")
        answer.headers["WWW-Authenticate"] = 'Bearer realm="exesdb-bridge"'
        return answer
    return None


Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


def admin(handler: Route) -> Route:
    """Wrap a handler so it runs only for requests with the admin token."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        refused = require_admin(request)
        return refused if refused is not None else await handler(request)

    guarded.__name__ = handler.__name__
    guarded.__doc__ = handler.__doc__
    return guarded


# -- probes and metrics --


async def healthz(request: web.Request) -> web.Response:
    """200 while the process runs."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when the bus and the required sinks are ready, else 503 with the reasons."""
    checks = request.app[BRIDGE_KEY].readiness()
    ready = all(check["ready"] or not check["required"] for check in checks.values())
    return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text 0.0.4, OpenMetrics 1.0 on request, gzip when accepted."""
    bridge = request.app[BRIDGE_KEY]
    body, content_type = bridge.render_metrics(request.headers.get("Accept", ""))
    response = web.Response(body=body, headers={"Content-Type": content_type})
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        response.enable_compression(web.ContentCoding.gzip)
    return response


# -- ingest --


async def ingest(request: web.Request) -> web.Response:
    """Signed ingest: one envelope (JSON) or many (NDJSON), one signature over the body."""
    bridge = request.app[BRIDGE_KEY]
    settings = bridge.settings
    if not settings.ingest:
        return error(404, "ingest_disabled", "ingest is off: set EXESDB_INGEST=true to enable it")
    verifier = bridge.verifier
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return _rejected(verifier.reject(_too_large(limit)))
    content_type = request.content_type
    if content_type not in (_JSON, _NDJSON):
        return error(
            415,
            "unsupported_media_type",
            f"send {_JSON} (one envelope) or {_NDJSON} (many), not {content_type or 'nothing'}",
        )
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _rejected(verifier.reject(_too_large(limit)))
    check = verifier.keyring.check_header(
        request.headers.get(SIGNATURE_HEADER), body, time.time(), verifier.window_seconds
    )
    if check is not HeaderCheck.OK:
        reason = RejectReason(check.value)
        detail = {
            HeaderCheck.MISSING: f"the {SIGNATURE_HEADER} header is missing",
            HeaderCheck.BAD: f"the {SIGNATURE_HEADER} header does not match the body",
            HeaderCheck.EXPIRED: f"the {SIGNATURE_HEADER} timestamp is outside the replay window",
        }[check]
        return _rejected(verifier.reject(Rejection(reason, detail, SIGNATURE_HEADER)))
    if content_type == _JSON:
        lines = [body]
    else:
        # isspace() tests what strip() would remove without copying each line.
        lines = [line for line in body.split(b"\n") if line and not line.isspace()]
        if not lines:
            return _rejected(
                verifier.reject(Rejection(RejectReason.MALFORMED, "the body has no envelope"))
            )
    # Judged first, admitted (ids remembered) only once nothing will refuse the batch, so a
    # batch answered 503 can be sent again as it is.
    judged = verifier.judge_batch(lines)
    if isinstance(judged, Rejection):
        return _rejected(judged)
    busy = bridge.bus.congestion(judged)
    if busy is not None:
        # An extra to SPEC section 6: refusing now beats accepting what the queue would drop.
        return _retry_later(
            "overloaded", f"subscriber {busy.name!r} has {busy.depth} message(s) waiting"
        )
    if not bridge.bus.can_take(len(judged)):
        return _retry_later("overloaded", "the bus transport's buffer is full")
    result = verifier.admit(judged)
    if isinstance(result, Rejection):
        return _rejected(result)
    # On the in-process bus, 202 waits until durable subscribers (the alert outbox) hold them.
    accepted, durability = await bridge.bus.publish_verified_durably(result, _COMMIT_WAIT_SECONDS)
    if durability is Durability.FAILED:
        # The alert outbox could not store them: forget the ids so the sender's retry is taken.
        verifier.forget(result)
        return _retry_later(
            "not_committed", "the alert outbox could not store the batch; send it again"
        )
    answer: dict[str, Any] = {"accepted": accepted}
    if durability is Durability.PENDING:
        # Still queued for the outbox (a retry would be refused as replayed): say so.
        _logger.warning("ingest: answered 202 before the alert outbox committed the batch")
        answer["committed"] = False
    return web.json_response(answer, status=202)


def _retry_later(code: str, detail: str) -> web.Response:
    response = error(503, code, f"{detail}; retry later")
    response.headers["Retry-After"] = str(_RETRY_AFTER_SECONDS)
    return response


def _too_large(limit: int) -> Rejection:
    return Rejection(
        RejectReason.TOO_LARGE, f"the body exceeds EXESDB_MAX_BODY_BYTES ({limit} bytes)"
    )


# -- admin --


@admin
async def get_integration(request: web.Request) -> web.Response:
    """The runtime switch and the intervals."""
    return _integration_state(request.app[BRIDGE_KEY].integration)


def _integration_state(integration: Integration) -> web.Response:
    return web.json_response(
        {
            "enabled": integration.enabled(),
            "health_broadcast_interval": integration.health_broadcast_interval(),
            "metrics_broadcast_interval": integration.metrics_broadcast_interval(),
        }
    )


@admin
async def set_integration(request: web.Request) -> web.Response:
    """Turn the integration on or off: ``{"enabled": bool}``."""
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the parser
        return error(400, "malformed", 'the body must be JSON: {"enabled": true|false}')
    if not isinstance(body, dict) or not isinstance(body.get("enabled"), bool):
        return error(400, "invalid", "enabled must be true or false", "enabled")
    integration = request.app[BRIDGE_KEY].integration
    if body["enabled"]:
        integration.enable()
    else:
        integration.disable()
    return _integration_state(integration)


@admin
async def stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events of verified messages; ``?instance=`` and ``?topic=`` filter."""
    bridge = request.app[BRIDGE_KEY]
    instance = request.query.get("instance")
    topic = request.query.get("topic", "*")
    if topic != "*":
        try:
            check_topic(topic.removesuffix("*"))
        except ValueError as exc:
            return error(400, "invalid", str(exc), "topic")
    try:
        queue: asyncio.Queue[Envelope] = asyncio.Queue(_STREAM_QUEUE)
        dropped = bridge.bus.metrics.dropped.labels("stream")

        def enqueue(envelope: Envelope) -> None:
            try:
                queue.put_nowait(envelope)
            except asyncio.QueueFull:
                dropped.inc()

        # One name for every stream client keeps the per-subscriber metrics' labels bounded.
        subscription = bridge.bus.subscribe(
            "stream",
            enqueue,
            instances=[instance] if instance else None,
            topic=topic,
        )
    except ValueError as exc:
        return error(400, "invalid", str(exc), "instance")
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    # Shutdown ends every stream at once instead of waiting out aiohttp's shutdown timeout.
    closed = asyncio.ensure_future(request.app[_CLOSING].wait())
    getter: asyncio.Future[Envelope] | None = None
    try:
        await response.write(b": connected\n\n")
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait(
                {getter, closed},
                timeout=_STREAM_HEARTBEAT_SECONDS,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if getter not in done:
                getter.cancel()
                if closed in done:
                    break
                await response.write(b": keep-alive\n\n")
                continue
            envelope = getter.result()
            await response.write(
                b"event: " + envelope.tag.encode() + b"\ndata: " + envelope.to_bytes() + b"\n\n"
            )
    except ConnectionResetError:
        pass  # the client went away
    finally:
        closed.cancel()
        if getter is not None:
            getter.cancel()
        await bridge.bus.unsubscribe(subscription)
    return response


async def _close_streams(app: web.Application) -> None:
    app[_CLOSING].set()


def build_app(bridge: Bridge) -> web.Application:
    """The aiohttp application serving ``bridge``."""
    app = web.Application(client_max_size=bridge.settings.max_body_bytes)
    app[BRIDGE_KEY] = bridge
    app[_CLOSING] = asyncio.Event()
    app.on_shutdown.append(_close_streams)
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/metrics", metrics),
            web.post("/v1/messages", ingest),
            web.get("/v1/integration", get_integration),
            web.post("/v1/integration", set_integration),
            web.get("/v1/stream", stream),
        ]
    )
    for component in bridge.components:
        if isinstance(component, HasRoutes):
            app.add_routes(component.routes())
    return app
