"""The HTTP edge: probes, /metrics, signed ingest, the admin API and the pages for people.

Admin endpoints and error bodies follow ``bridge.routes`` (one guard, one error shape), shared
with the routes components add.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any, Final, Protocol

from aiohttp import web
from pydantic import BaseModel, ConfigDict, StrictBool, ValidationError

from bridge.bodies import apart, content_coding, read_json, read_judged
from bridge.build import BuildInfo
from bridge.bus import (
    SIGNATURE_HEADER,
    BatchSubscription,
    Bus,
    DecodedBatch,
    Durability,
    Envelope,
    HeaderCheck,
    Keyring,
    LineRejection,
    Rejection,
    RejectReason,
    Verifier,
    check_topic,
    decode_lines,
    decode_ndjson,
)
from bridge.bus.batches import APART
from bridge.bus.replay import outside_window
from bridge.component import Component, HasRoutes, Readiness
from bridge.expect_continue import unmet_expectation
from bridge.headers import HEALTHZ_BODY
from bridge.integration import Integration
from bridge.json_objects import DuplicateKey
from bridge.listener import CLOSE_AFTER, LINE_MAX
from bridge.log_throttle import LogThrottle
from bridge.messages import NodeHealth
from bridge.pages import not_found, page_routes
from bridge.redaction import clipped
from bridge.routes import (
    MAX_NAME_SHOWN,
    AdminGuard,
    Route,
    error_body,
    error_response,
    key_given_twice,
    media_type,
    missing_field,
    unknown_field,
    unknown_parameter,
    unsupported_coding,
    unsupported_json,
)
from bridge.settings import Settings
from bridge.sinks.prometheus import gzip_wanted

__all__ = ["BRIDGE_KEY", "HANDLER_ARGS", "Served", "build_app"]

_logger = logging.getLogger(__name__)


class Served(Protocol):
    """What the HTTP edge serves: the running bridge (``bridge.app.Bridge``), seen from here."""

    @property
    def settings(self) -> Settings: ...
    @property
    def verifier(self) -> Verifier: ...
    @property
    def bus(self) -> Bus: ...
    @property
    def integration(self) -> Integration: ...
    @property
    def components(self) -> Sequence[Component]: ...
    @property
    def admin(self) -> AdminGuard:
        """The guard of every admin route, its refusals counted."""

    @property
    def build(self) -> BuildInfo:
        """The version and revision running."""

    @property
    def node(self) -> str:
        """This bridge's node name."""

    @property
    def started_at(self) -> float:
        """When the bridge started, in Unix seconds."""

    @property
    def clock(self) -> Callable[[], float]:
        """The wall clock (Unix seconds) a message's time is judged by."""

    @property
    def bus_kind(self) -> str:
        """``redis`` or ``memory``."""

    def readiness(self) -> Readiness:
        """Each part's readiness."""

    def render_metrics(self, accept: str) -> tuple[bytes, str]:
        """The exposition body and its content type for an ``Accept`` header."""


BRIDGE_KEY: Final[web.AppKey[Served]] = web.AppKey("bridge")
# The application's settings of aiohttp's protocol (its handler_args), for the listener too,
# which makes each connection's itself (bridge.listener.refusals). Bodies are expanded by
# bridge.bodies, which tells a stream cut short from a whole one; a request line may hold the
# longest alert id's link (LINE_MAX).
HANDLER_ARGS: Final = MappingProxyType({"auto_decompress": False, "max_line_size": LINE_MAX})
_CLOSING: Final[web.AppKey[asyncio.Event]] = web.AppKey("closing", asyncio.Event)
_COMMIT_WAIT: Final[web.AppKey[float]] = web.AppKey("commit_wait", float)
_NODE_HEALTH_TAG: Final = NodeHealth.TAG
_STREAM_QUEUE: Final = 1_000
# The most bytes of events a stream client's queue holds (one event however large when empty):
# 1 000 messages of up to EXESDB_MAX_BODY_BYTES each would be a gigabyte for one stalled client.
_STREAM_QUEUE_BYTES: Final = 8 * 1024 * 1024
_STREAM_HEARTBEAT_SECONDS: Final = 15.0
_JSON: Final = "application/json"
_NDJSON: Final = "application/x-ndjson"
# What a sender must send, as docs/http-api.md#ingest gives it.
_SIGN: Final = 'send t=<unix seconds>,v1=<hex HMAC-SHA256(SECRET_KEY_BASE, "<t>." + body)>'
# The reason a 415 is counted under in exesdb_bus_rejected_total (its error code, like the others).
_UNSUPPORTED_MEDIA_TYPE: Final = "unsupported_media_type"
# Ingest: how long a 202 may wait for the alert outbox's commit; the Retry-After of a 503.
_COMMIT_WAIT_SECONDS: Final = 10.0
_RETRY_AFTER_SECONDS: Final = 1

# The status for each rejection reason at ingest (docs: HTTP API).
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


def _rejected(rejection: Rejection) -> web.Response:
    status = _STATUS_FOR[rejection.reason]
    if isinstance(rejection, LineRejection):
        # The answer is the first line at fault's, as ever; problems lists it and the others.
        problems = [_problem(rejection), *map(_problem, rejection.later)]
        answer = {**problems[0], "problems": problems, "problems_total": rejection.found}
        return web.json_response(answer, status=status)
    return error_response(status, rejection.reason.value, rejection.detail, rejection.field)


def _problem(rejection: Rejection) -> dict[str, Any]:
    """One line at fault as an answer names it: its error, detail and field; when its message
    has several problems, the detail says each of them and ``fields`` lists their fields."""
    if not rejection.also:
        return error_body(rejection.reason.value, rejection.detail, rejection.field)
    details = [rejection.detail, *(problem.detail for problem in rejection.also)]
    unlisted = rejection.also_found - len(rejection.also)
    if unlisted:
        details.append(f"and {unlisted} more problem{'s' if unlisted > 1 else ''}")
    body = error_body(rejection.reason.value, "; ".join(details), rejection.field)
    body["fields"] = [rejection.field, *(problem.field for problem in rejection.also)]
    return body


# -- probes and metrics --


async def healthz(request: web.Request) -> web.Response:
    """200 while the process runs."""
    return web.json_response(HEALTHZ_BODY)


async def readyz(request: web.Request) -> web.Response:
    """200 when the bus and the required sinks are ready, else 503 with the reasons."""
    checks = request.app[BRIDGE_KEY].readiness()
    ready = all(check["ready"] or not check["required"] for check in checks.values())
    return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


# zlib's fastest level: the exposition's repeated names and labels compress almost as well as at
# the default (44 against 38 kB for 10 000 series) in half the CPU or less (docs/performance.md).
_METRICS_GZIP_LEVEL: Final = 1
_GZIP_WBITS: Final = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate stream


async def metrics(request: web.Request) -> web.StreamResponse:
    """The exposition in the format prometheus_client negotiates; gzip when accepted.

    Streamed, not a ``web.Response``: aiohttp keeps a keep-alive connection's last response
    until its next request, and a whole exposition kept by each idle scraper connection made
    hundreds of MB.
    """
    bridge = request.app[BRIDGE_KEY]
    body, content_type = bridge.render_metrics(request.headers.get("Accept", ""))
    response = web.StreamResponse(headers={"Content-Type": content_type})
    if request.get(CLOSE_AFTER):
        # A probe from the reserve or a large head: said before the headers go.
        response.force_close()
    head = request.method == "HEAD"
    # A HEAD answer has no body, not even an empty gzip stream: it would open the next answer.
    if not head and gzip_wanted(request.headers.get("Accept-Encoding", "")):
        # In a worker thread, as aiohttp compressed it: zlib lets go of the GIL, and the loop
        # goes on serving while a large exposition is compressed.
        body = await asyncio.get_running_loop().run_in_executor(
            None, zlib.compress, body, _METRICS_GZIP_LEVEL, _GZIP_WBITS
        )
        response.headers["Content-Encoding"] = "gzip"
    response.content_length = len(body)
    await response.prepare(request)
    # The body given to write_eof, which waits for the socket to take it (aiohttp's write waits
    # only past 64 KiB): a client pipelining requests for /metrics and reading none of the
    # answers would otherwise have every exposition it asked for kept in the bridge's memory.
    await response.write_eof(b"" if head else body)
    return response


# -- ingest --


def _out_of_window(header: str, window: float, now: float) -> str:
    """The ``expired`` detail of a signature whose ``t`` is outside the replay window at
    ``now``, the reading it was judged by: by how much and which way, so that a sender tells a
    clock set wrong from a signature made once and sent again (told only once the signature
    matched: the sender holds the key)."""
    signed_at = Keyring.header_time(header)
    if signed_at is None:
        return f"the {SIGNATURE_HEADER} timestamp is outside the replay window"
    return (
        f"the {SIGNATURE_HEADER} timestamp t={signed_at} is"
        f" {outside_window(now - signed_at, window)}: sign each request as it is sent, on a clock"
        " set right"
    )


def _signature_header(request: web.Request) -> str:
    """The signature header's lines read as one list, as RFC 9110 section 5.3 has a proxy
    combine them (t on one line, v1 on the next: the first alone had no v1, and was refused as
    malformed; an empty first line, as missing); empty when it has none."""
    return ",".join(request.headers.getall(SIGNATURE_HEADER, ()))


async def ingest(request: web.Request) -> web.Response:
    """Signed ingest: one envelope (JSON) or many (NDJSON), one signature over the body."""
    bridge = request.app[BRIDGE_KEY]
    verifier = bridge.verifier
    refused = _refused_by_head(request)
    if isinstance(refused, Rejection):
        return _rejected(verifier.reject(refused))
    if refused is not None:
        # A 415 is counted; a 404 (ingest off) is a setting, not a message refused.
        return _unsupported(bridge, refused) if refused.status == 415 else refused
    limit = bridge.settings.max_body_bytes
    content_type = request.content_type
    encoding = content_coding(request)
    header = _signature_header(request)
    keyring, window, clock = verifier.keyring, verifier.window_seconds, bridge.clock

    def judge(body: bytes) -> tuple[HeaderCheck, float]:
        # One reading of the clock, which the refusal's detail tells too: a second one could
        # put t back inside the window the check found it outside of.
        now = clock()
        return keyring.check_header(header, body, now, window), now

    try:
        # The signature checked where the body is expanded: a compressed one in a worker thread,
        # as what a few bytes sent expand to (1 KB to a 1 MiB body) is checked before the
        # sender is known to hold a key.
        body, (check, judged_at) = await read_judged(request, judge)
    except web.HTTPRequestEntityTooLarge:
        return _rejected(verifier.reject(_too_large(limit)))
    except web.RequestPayloadError as exc:
        return _unreadable_answer(request, verifier.reject(_unreadable(exc)))
    if check is not HeaderCheck.OK:
        reason = RejectReason(check.value)
        detail = {
            HeaderCheck.MISSING: f"the {SIGNATURE_HEADER} header is missing: {_SIGN}",
            HeaderCheck.BAD: f"the {SIGNATURE_HEADER} header does not match the body",
            HeaderCheck.EXPIRED: _out_of_window(header, window, judged_at),
        }[check]
        fault = Keyring.header_fault(header) if check is HeaderCheck.BAD else None
        if fault is not None:
            detail = f"the {SIGNATURE_HEADER} header is malformed ({fault}): {_SIGN}"
        elif check is HeaderCheck.BAD and encoding not in ("", "identity"):
            # Likely signed as sent, compressed; the signature is over the body expanded.
            detail += " once expanded (with Content-Encoding, sign the body before compressing)"
        elif check is HeaderCheck.BAD:
            detail += (
                ": signed with a key other than the bridge's SECRET_KEY_BASE, or the body "
                "changed after it was signed"
            )
        return _rejected(verifier.reject(Rejection(reason, detail, SIGNATURE_HEADER)))
    if content_type == _JSON and len(body) >= APART:
        # One envelope is decoded in one go, with no step between its parts: a large one in
        # the worker thread. On the loop, 1 MiB of one held it 30-140 ms valid (a map of 71 000
        # keys, a list of 88 000 lists), 0.2-0.9 s refused for 71 000 unknown fields, 3.5 s
        # for a list of 524 000 wrong items (pydantic's errors, built in C holding the GIL,
        # still hold it there for their part).
        batch = await apart(_one_envelope, body)
    elif content_type == _JSON:
        batch = decode_lines([body], whole=body)
    else:
        # In steps, the loop serving others between them: a body of many lines held it for up
        # to half a second of CPU. A large line, one envelope, in the worker thread as above.
        decoded = await decode_ndjson(body, apart)
        if decoded is None:
            return _rejected(
                verifier.reject(
                    Rejection(RejectReason.MALFORMED, "the body has no envelope", "body")
                )
            )
        batch = decoded
    # Each envelope's bytes as sent: what it weighs in the subscribers' queues (bounded in
    # bytes too), known here without encoding it again.
    sizes = batch.sizes
    # Judged first, admitted (ids remembered) only once nothing will refuse the batch, so a
    # batch answered 503 can be sent again as it is.
    result: list[Envelope] | Rejection | BatchSubscription = verifier.verify_batch(
        batch, refuse=lambda judged: _refused(bridge, verifier, judged, sizes)
    )
    if isinstance(result, Rejection):
        return _rejected(_located(result, content_type, batch.numbers[0] if batch.numbers else 1))
    if isinstance(result, BatchSubscription):
        if result.refusing is not None:
            # Taken now, the batch would only wait in memory, lost to a crash: the sender keeps
            # it instead and sends it again.
            return _retry_later("not_committed", result.refusing)
        # Refusing now beats accepting what the queue would drop.
        return _retry_later(
            "overloaded",
            f"subscriber {result.name!r} has {result.depth} message(s) "
            f"({result.inbox.bytes} bytes) waiting",
        )
    # 202 waits until the batch is safe: on the in-process bus until durable subscribers (the
    # alert outbox) hold it, on Redis until it is in the spool on disk.
    # A batch answered 202 "committed": false that the transport then fails to store is lost:
    # its ids are forgotten so that the sender's resend is taken.
    try:
        accepted, durability = await bridge.bus.publish_verified_durably(
            result, request.app[_COMMIT_WAIT], lost=verifier.forget, sizes=sizes
        )
    except Exception:
        # A fault below the bus (answered 500): a resend is taken rather than refused as
        # replayed; at worst a batch partly stored arrives twice, never not at all.
        verifier.forget(result)
        raise
    if durability in (Durability.FAILED, Durability.FULL):
        # Not stored: forget the ids so the sender's retry is taken.
        verifier.forget(result)
        if durability is Durability.FULL:
            return _retry_later(
                "overloaded", "the bus transport has no room for it (on Redis: the spool is full)"
            )
        # The transport's reason, when it refuses every batch for one (its files removed), or
        # in process the alert sink's (its outbox file found removed as it stored this batch).
        why = bridge.bus.unstorable() or "the batch could not be stored; send it again"
        return _retry_later("not_committed", why)
    request.app[_OWN_NODE].check(result)
    answer: dict[str, Any] = {"accepted": accepted}
    if durability is Durability.PENDING:
        # Still queued for the outbox (a retry would be refused as replayed): say so.
        request.app[_UNCOMMITTED].answered()
        answer["committed"] = False
    return web.json_response(answer, status=202)


def _one_envelope(body: bytes) -> DecodedBatch:
    """An ``application/json`` body decoded: one envelope, or why it is refused."""
    return decode_lines([body], whole=body)


def _refused_by_head(request: web.Request) -> Rejection | web.Response | None:
    """Ingest's answer decided by the request head alone, before any of the body is read
    (ingest off, a Content-Length over the limit, a content type, charset or coding refused,
    no signature), uncounted; None when the body is to be read."""
    settings = request.app[BRIDGE_KEY].settings
    if not settings.ingest:
        return error_response(
            404, "ingest_disabled", "ingest is off: set EXESDB_INGEST=true to enable it"
        )
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return _too_large(limit)
    content_type = media_type(request)
    if content_type not in (_JSON, _NDJSON):
        detail = f"send {_JSON} (one envelope) or {_NDJSON} (many), not {content_type or 'nothing'}"
        return error_response(415, _UNSUPPORTED_MEDIA_TYPE, detail)
    if (refusal := unsupported_coding(request)) is not None:
        return refusal
    if Keyring.header_missing(_signature_header(request)):
        detail = f"the {SIGNATURE_HEADER} header is missing: {_SIGN}"
        return Rejection(RejectReason.UNSIGNED, detail, SIGNATURE_HEADER)
    return None


class _OwnNodeWatch:
    """Warns once when ingest takes a NodeHealth about this bridge's own ``EXESDB_NODE``:
    another sender speaks for this node, and its readings mix with the health collector's (a
    healthy one resolves this node's ``node_health`` alert until the collector's next sample)."""

    __slots__ = ("node", "warned")

    def __init__(self, node: str) -> None:
        self.node = node
        self.warned = False

    def check(self, envelopes: Sequence[Envelope]) -> None:
        """Look at an accepted batch, until the warning has been given once."""
        if self.warned:
            return
        for envelope in envelopes:
            if envelope.tag == _NODE_HEALTH_TAG and envelope.fields.node == self.node:
                self.warned = True
                _logger.warning(
                    "ingest: a NodeHealth about node %r, this bridge's own EXESDB_NODE, came "
                    "from a sender (envelope node %r): it speaks for this node beside the "
                    "bridge's health collector, and its status changes this node's node_health "
                    "alert; give the sender's NodeHealth its own node name (told once)",
                    self.node,
                    envelope.node,
                )
                return


_OWN_NODE: Final[web.AppKey[_OwnNodeWatch]] = web.AppKey("own_node", _OwnNodeWatch)


class _UncommittedAnswers:
    """Warns of ingest's 202s given before their batch was stored (``"committed": false``) at
    most once a minute, saying how many more there were since: a disk hanging for minutes makes
    one of every request that carries an alert, which with many senders would fill the log."""

    __slots__ = ("_throttle",)

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._throttle = LogThrottle(clock=clock)

    def answered(self) -> None:
        """Count one such answer, warning of it unless a warning was given within a minute."""
        untold = self._throttle.due()
        if untold is None:
            return
        since = f" ({untold} more since the last warning)" if untold else ""
        _logger.warning(
            "ingest: answered 202 before the alert outbox committed the batch%s; said at most "
            "once a minute",
            since,
        )


_UNCOMMITTED: Final[web.AppKey[_UncommittedAnswers]] = web.AppKey(
    "uncommitted", _UncommittedAnswers
)


def _refused(
    bridge: Served, verifier: Verifier, judged: list[Envelope], sizes: list[int]
) -> BatchSubscription | Rejection | None:
    """Why a judged batch (``sizes``: each envelope's bytes) is turned away before its ids are
    remembered: a congested subscriber (503, sent again later), or one whose whole queue is
    smaller than its share of the batch, in messages or bytes (413, counted: a 503 would have
    the sender resend it forever); None when it is taken."""
    busy = bridge.bus.congestion(judged, sizes)
    if busy is None or (over := bridge.bus.never_fits(judged, sizes, busy)) is None:
        return busy
    taken, bound, unit = over
    bounds = (
        "EXESDB_BUS_QUEUE_BYTES"
        if unit == "bytes"
        else "EXESDB_BUS_QUEUE_SIZE, for the alert sink EXESDB_ALERT_QUEUE_SIZE"
    )
    detail = (
        f"the batch holds {taken} {unit} for subscriber {busy.name!r}, more than its "
        f"queue ever holds ({bound}: {bounds}); send them in smaller batches"
    )
    return verifier.reject(Rejection(RejectReason.TOO_LARGE, detail, "body"))


def _located(rejection: Rejection, content_type: str, first: int) -> Rejection:
    """``rejection`` naming where it is when no envelope field does (a body that is not JSON,
    nested too deep, not UTF-8): ``body``, or the line of NDJSON (``first``, that of a lone
    envelope: batches name it already)."""
    if rejection.field is not None:
        return rejection
    return replace(rejection, field="body" if content_type == _JSON else f"line {first}")


def _unsupported(bridge: Served, refusal: web.Response) -> web.Response:
    """``refusal``, a 415 (a body the bridge does not read: its type, charset or coding),
    counted."""
    bridge.bus.metrics.rejected.labels(_UNSUPPORTED_MEDIA_TYPE).inc()
    return refusal


def _retry_later(code: str, detail: str) -> web.Response:
    response = error_response(503, code, f"{detail}; retry later")
    response.headers["Retry-After"] = str(_RETRY_AFTER_SECONDS)
    return response


class _BodyDropped(TimeoutError):
    """Put in place of a body's read error once it is answered.

    aiohttp reads what is left of a body after the answer and logs any error but a timeout with
    a traceback: this one ends that quietly, and the connection closes.
    """


def _unreadable(exc: web.RequestPayloadError) -> Rejection:
    """A body aiohttp could not read: its Content-Encoding does not decode (not gzip)."""
    # str(exc) is "400, message:\n  <why>": the why alone.
    why = " ".join(str(exc).split("message:", 1)[-1].split())
    return Rejection(RejectReason.MALFORMED, f"the body cannot be read: {why}", "body")


def _unreadable_answer(request: web.Request, rejection: Rejection) -> web.Response:
    """The 400 for a body that cannot be read; its rest is dropped and the connection closed."""
    request.content.set_exception(_BodyDropped())
    response = _rejected(rejection)
    response.force_close()
    return response


def _too_large(limit: int) -> Rejection:
    return Rejection(
        RejectReason.TOO_LARGE, f"the body exceeds EXESDB_MAX_BODY_BYTES ({limit} bytes)"
    )


# -- admin --


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


class _Switch(BaseModel):
    """``POST /v1/integration`` body; any other field is refused, as the ack route's are: one
    the bridge does not read (``{"enabled": false, "for": "1h"}``) would seem to be taken."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)  # built when asked

    enabled: StrictBool


async def set_integration(request: web.Request) -> web.Response:
    """Turn the integration on or off: ``{"enabled": bool}``, as ``application/json``."""
    if refusal := unsupported_json(request):
        return refusal
    try:
        body = await read_json(request)
    except DuplicateKey as exc:
        return key_given_twice(exc)
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the parser
        return error_response(
            400, "malformed", 'the body must be JSON: {"enabled": true|false}', "body"
        )
    try:
        switch = _Switch.model_validate(body if isinstance(body, dict) else {})
    except ValidationError as exc:
        if refusal := unknown_field(exc, _Switch.model_fields):
            return refusal
        if refusal := missing_field(exc, '{"enabled": true|false}'):
            return refusal
        return error_response(400, "invalid", "enabled must be true or false", "enabled")
    integration = request.app[BRIDGE_KEY].integration
    if switch.enabled:
        integration.enable()
    else:
        integration.disable()
    return _integration_state(integration)


async def stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events of verified messages; ``?instance=`` and ``?topic=`` filter."""
    bridge = request.app[BRIDGE_KEY]
    if refusal := unknown_parameter(request, ("instance", "topic")):
        return refusal
    instance = request.query.get("instance")
    topic = request.query.get("topic", "*")
    if topic != "*":
        try:
            check_topic(topic.removesuffix("*"))
        except ValueError as exc:
            return error_response(400, "invalid", str(exc), "topic")
    try:
        # Each event as it is written, so that the queue is bounded in bytes too.
        queue: asyncio.Queue[bytes] = asyncio.Queue(_STREAM_QUEUE)
        waiting = [0]  # bytes in the queue
        dropped = bridge.bus.metrics.dropped.labels("stream")

        def enqueue(envelope: Envelope) -> None:
            if queue.full():
                dropped.inc()
                return
            event = b"event: " + envelope.tag.encode() + b"\ndata: " + envelope.to_bytes() + b"\n\n"
            if waiting[0] + len(event) > _STREAM_QUEUE_BYTES and not queue.empty():
                dropped.inc()
                return
            waiting[0] += len(event)
            queue.put_nowait(event)

        # One name for every stream client keeps the per-subscriber metrics' labels bounded.
        subscription = bridge.bus.subscribe(
            "stream",
            enqueue,
            # An empty ?instance= is refused as an unknown one, as an empty ?topic= is: taken
            # as no filter, an unset shell variable ($INSTANCE) would stream every instance.
            instances=None if instance is None else [instance],
            topic=topic,
        )
    except ValueError as exc:
        return error_response(400, "invalid", str(exc), "instance")
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    if request.get(CLOSE_AFTER):
        response.force_close()  # a large head: said before the headers go
    # Shutdown ends every stream at once instead of waiting out aiohttp's shutdown timeout.
    closed = asyncio.ensure_future(request.app[_CLOSING].wait())
    getter: asyncio.Future[bytes] | None = None
    try:
        # Inside the try: a client gone before the head is written must not keep its
        # subscription.
        await response.prepare(request)
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
            event = getter.result()
            waiting[0] -= len(event)
            await response.write(event)
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


@web.middleware
async def _json_refusals(request: web.Request, handler: Route) -> web.StreamResponse:
    """aiohttp's own refusals (no such path, a method a path does not take, a body past the
    limit or one that does not decode, an expectation it does not meet) in the one error shape
    every other refusal has, rather than its plain-text "404: Not Found"; and a transfer coding
    it does not apply."""
    if (refusal := _transfer_coding_refused(request)) is not None:
        return refusal
    # After the web config's rate limit and basic auth (outer middlewares): the rate limit counts
    # every request, and a client without credentials is answered 401 whatever else it asks, as
    # in place of 100 Continue. Before the route: none meets another expectation, so whether the
    # path or method is served is not asked, as Go's server answers 417 before its handler.
    if (refusal := _expectation_refused(request)) is not None:
        return refusal
    # A path or method the router serves not: answered without the raise. The router keeps the
    # exception on the request's match info, and raised, its traceback holds the request and its
    # head (up to a megabyte): a cycle only the collector frees, which the thresholds of
    # bridge.cli.service make run after some 500 such requests, each head held until then.
    unmatched = request.match_info.http_exception
    if isinstance(unmatched, (web.HTTPMethodNotAllowed, web.HTTPNotFound)):
        return _not_served(request, unmatched)
    try:
        return await handler(request)
    except (web.HTTPMethodNotAllowed, web.HTTPNotFound) as exc:
        return _not_served(request, exc)  # a route's own (bridge.pages' static files)
    except web.HTTPRequestEntityTooLarge:
        # Raised by aiohttp reading a body past client_max_size (an admin route's JSON).
        limit = request.app[BRIDGE_KEY].settings.max_body_bytes
        rejection = _too_large(limit)
        return error_response(413, rejection.reason.value, rejection.detail)
    except web.RequestPayloadError as exc:
        # Raised by aiohttp reading a body that does not decode (an admin route's JSON).
        return _unreadable_answer(request, _unreadable(exc))
    except (web.HTTPException, ConnectionError, TimeoutError):
        raise  # answered by the listener: a redirect or other HTTP answer, 408, a client gone
    except Exception:
        if request.writer.output_size > 0:
            raise  # an answer already under way (/metrics, the event stream): aiohttp ends it
        # A fault in the bridge: still the one error shape, so a client tells it from another
        # server answering (aiohttp's own 500 is a plain-text page).
        _logger.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal", "the bridge failed answering; its log says why")


def _not_served(
    request: web.Request, refused: web.HTTPMethodNotAllowed | web.HTTPNotFound
) -> web.Response:
    """405 naming the methods the path takes, or 404: a page for a browser, for every other
    client the JSON error (bridge.pages.missing)."""
    if isinstance(refused, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(refused.allowed_methods))
        answer = error_response(
            405, "method_not_allowed", f"{request.method} is not allowed here; allowed: {allowed}"
        )
        answer.headers["Allow"] = allowed
        return answer
    return not_found(request, request.app[BRIDGE_KEY])


def _transfer_coding_refused(request: web.Request) -> web.Response | None:
    """501 for a request whose ``Transfer-Encoding`` is other than ``chunked`` alone, as RFC 9112
    asks of a transfer coding the server does not understand, 400 for an HTTP/1.0 request with
    one at all, and the connection closed.

    aiohttp frames such a body by its final ``chunked`` and ignores the codings before it
    (``gzip, chunked`` read as plain JSON, ``identity, chunked`` as chunked): a proxy in front
    that reads the framing otherwise would disagree with the bridge on where a request ends.
    """
    coding = request.headers.get("Transfer-Encoding")
    if coding is None:
        return None
    if request.version < (1, 1):
        # RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing, and the
        # connection closes. aiohttp would read such a body chunked and keep the connection;
        # Go's server (so a proxy or exporter in front) ignores the header on HTTP/1.0 and
        # frames by Content-Length: the two would disagree on where the request ends.
        answer = error_response(
            400,
            "bad_request",
            "Transfer-Encoding is not part of HTTP/1.0: send the body with a Content-Length,"
            " or the request as HTTP/1.1",
            "Transfer-Encoding",
        )
        answer.force_close()  # the body is not read: its framing is not trusted
        return answer
    if coding.strip().lower() == "chunked":
        return None
    shown = clipped(repr(coding), MAX_NAME_SHOWN)
    answer = error_response(
        501,
        "not_implemented",
        f"Transfer-Encoding {shown} is not one the bridge applies: send the body chunked or"
        " with a Content-Length",
        "Transfer-Encoding",
    )
    answer.force_close()  # the body is not read: its framing is not trusted
    return answer


def _expectation_refused(request: web.Request) -> web.Response | None:
    """417 for a head whose ``Expect`` is other than ``100-continue`` (RFC 9110 10.1.1: the
    only expectation defined), as Go's server answers it, the body unread: the connection
    closes unless the body has all arrived, since the client may send it after all or its next
    request (``bridge.expect_continue``)."""
    expect = unmet_expectation(request)
    if expect is None:
        return None
    shown = clipped(repr(expect), MAX_NAME_SHOWN)
    answer = error_response(
        417,
        "expectation_failed",
        f"Expect {shown} is not one the bridge meets: send Expect: 100-continue or none",
        "Expect",
    )
    if not request.content.is_eof():
        answer.force_close()
    return answer


def build_app(
    bridge: Served, *, commit_wait_seconds: float = _COMMIT_WAIT_SECONDS
) -> web.Application:
    """The aiohttp application serving ``bridge``; ingest answers 202 ``"committed": false``
    once a batch waited ``commit_wait_seconds`` to be safe."""
    app = web.Application(
        client_max_size=bridge.settings.max_body_bytes,
        middlewares=[_json_refusals],
        handler_args=HANDLER_ARGS,
    )
    app[BRIDGE_KEY] = bridge
    app[_COMMIT_WAIT] = commit_wait_seconds
    app[_OWN_NODE] = _OwnNodeWatch(bridge.node)
    app[_UNCOMMITTED] = _UncommittedAnswers()
    app[_CLOSING] = asyncio.Event()
    app.on_shutdown.append(_close_streams)
    admin = bridge.admin
    bridge.bus.metrics.rejected.labels(_UNSUPPORTED_MEDIA_TYPE)  # shown at 0 from the start
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/metrics", metrics),
            web.post("/v1/messages", ingest),
            web.get("/v1/integration", admin(get_integration)),
            web.post("/v1/integration", admin(set_integration)),
            # No HEAD: an endless stream has no head to give (its events would follow one).
            web.get("/v1/stream", admin(stream), allow_head=False),
        ]
    )
    for component in bridge.components:
        if isinstance(component, HasRoutes):
            app.add_routes(component.routes())
    # The pages read what the routes above serve (readiness, the alert sink's queries).
    app.add_routes(page_routes(bridge))
    return app
