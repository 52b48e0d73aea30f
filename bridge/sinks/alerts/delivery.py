"""Sending deliveries: one worker per webhook receiver, retries (docs/alerts.md#delivery).

Retried, as Alertmanager and the OpenTelemetry HTTP exporters do: connection errors, timeouts,
408, 425, 429 and every 5xx (RFC 9110 and RFC 8470: a request timed out, or sent too early, may be
repeated), after the delay ``bridge.backoff.Backoff`` gives (``backoff * 2**(attempt-1)``
seconds, capped at the largest backoff, ±jitter), or after ``Retry-After`` when the receiver asks
for longer, up to that largest backoff.
Anything else that is not 2xx (400, 401, 404, a redirect...) is final, but for a 301, 302 or 303 to
a receiver whose ``http_config`` follows redirects (the default), retried: only 307 and 308 are
followed (``bridge.httpclient.redirects``), and the others would lose the alerts; and for a 401 to
a receiver with ``oauth2``, retried with a new token. A delivery still
failing when its next attempt would fall after ``EXESDB_WEBHOOK_DEADLINE_MS`` is dead-lettered; it
stays in the outbox until ``exesdb-bridge outbox retry``.

Each receiver has its own worker and sender, and at most one attempt in flight, so a dead or
hanging receiver only ever delays its own deliveries; those go out in the order they were made
(``DeliveryQueue.next_due``), so a resolve never overtakes the firing it ends. Before each
attempt the worker asks its ``vet`` what of the delivery may go (on Redis the sink leaves out
the alerts another replica has notified newer states of since: ``AlertIndex.stale``; while
Redis cannot tell, the delivery goes unchecked; to a receiver with ``send_resolved: false``, the
alerts resolved since).
A sender reads its receiver's URL, secrets and certificates again when their files change
(``bridge.httpclient``), so they rotate without a restart; a file it cannot use fails the
attempt, which is retried.
Senders whose receivers have equal ``oauth2`` blocks share one token (``TokenSources``).
Each attempt ends in a CLIENT span handed to the span recorders (``bridge.tracing``). Clock,
sleep and the backoff's randomness are injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Final, Protocol

import aiohttp

from bridge import __version__
from bridge.backoff import Backoff
from bridge.bus import SIGNATURE_HEADER, Keyring
from bridge.hidden import on_one_line
from bridge.httpclient import (
    REQUEST_ERRORS,
    ClientSettings,
    ClientSetupError,
    FileSetting,
    TokenSources,
    request_failure,
)
from bridge.httpclient.redirects import post, refused_redirect
from bridge.receiver_keys import receiver_label
from bridge.redaction import redact_sent, redact_urls
from bridge.sinks.alerts.queue import BuildPayloads, DeliveryQueue, Keep
from bridge.sinks.alerts.receiver_log import ReceiverLog
from bridge.sinks.alerts.records import (
    RETRIED_STATUSES,
    AlertRecord,
    AlertState,
    Delivery,
    DeliveryState,
)
from bridge.sinks.alerts.sources import meets
from bridge.sinks.alerts.thread import DbThread
from bridge.tasks import cancel_and_wait
from bridge.tracing import ClientSpan, http_client_span
from bridge.urls import http_url_problem

if TYPE_CHECKING:  # the receivers file's models: imported by Settings when it has receivers
    from bridge.receivers import Receiver

__all__ = [
    "ANSWER_LIMIT",
    "DELIVERY_HEADER",
    "USER_AGENT",
    "AttemptResult",
    "DeliveryWorker",
    "Outcome",
    "RetryPolicy",
    "Sender",
    "WebhookSender",
    "answer_said",
    "classify",
    "keep_for",
    "parse_retry_after",
    "read_answer",
    "wait_or_wake",
]

_logger = logging.getLogger(__name__)

DELIVERY_HEADER: Final = "X-ExESDB-Delivery"
USER_AGENT: Final = f"exesdb-bridge/{__version__}"
_POLL_SECONDS: Final = 5.0  # also picks up `outbox retry` run beside a live bridge
_ERROR_PAUSE_SECONDS: Final = 1.0
# After a step that failed (the outbox on a full disk): 1 s, doubling with each failure in a
# row, at most 30 s, so a fault that lasts is not hammered once a second. No jitter: the fault is
# this process's own (its disk), not a server that many clients retry at once.
_STEP_BACKOFF: Final = Backoff(base=_ERROR_PAUSE_SECONDS, cap=30.0, jitter=0.0)
_MAX_RETRY_AFTER_SECONDS: Final = 86_400.0
# The most of a receiver's answer body read: nothing in it counts, and a receiver answering
# gigabytes must not fill the bridge's memory.
ANSWER_LIMIT: Final = 64 * 1024
# How long an answer's body is read once its status came: the status decided the attempt, and a
# body trickling in must not hold the receiver's worker (or the Alertmanager poster) until the
# timeout. Past it the connection is closed, as past ANSWER_LIMIT.
_ANSWER_SECONDS: Final = 1.0
_OAUTH2_REFUSED: Final = "HTTP 401: the oauth2 token was refused; the next attempt fetches another"

Sleep = Callable[[float, asyncio.Event], Awaitable[None]]
"""Wait ``seconds`` or until the event is set, whichever comes first."""


async def wait_or_wake(seconds: float, wake: asyncio.Event) -> None:
    """The real ``Sleep``."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), max(seconds, 0.0))


class Outcome(StrEnum):
    """What one attempt means for its delivery."""

    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"


def classify(status: int) -> Outcome:
    """The outcome of an HTTP answer: 2xx delivered; 408, 425, 429 and 5xx retried; the rest
    final."""
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status in RETRIED_STATUSES or status >= 500:
        return Outcome.RETRY
    return Outcome.REJECTED


def answer_said(head: bytes, url: str, response: aiohttp.ClientResponse) -> str:
    """The start of ``head``, the body of ``response`` refusing a post to ``url``, as a log line
    shows it: an HTML page (by its ``Content-Type``, or a leading ``<`` when it has none or a
    generic one: Go's "<nil>" said as text/plain is not a page) as the text a browser shows of
    it (``_page_text``), on one line (a server's "404 page not found\n" would break
    it), every URL in it redacted, and what the request sent that may be a secret hidden, should
    the answer quote it (``redact_sent``: the path of ``url`` and of the URL a redirect led to,
    and the request's headers but the delivery's id), at most 200 characters, a control
    character in it shown as its escape."""
    sent = response.request_info.headers
    text = head.decode(errors="replace")
    kind = response.headers.get("Content-Type", "").partition(";")[0].strip().lower()
    if "html" in kind or (kind in _UNTYPED and text.lstrip().startswith("<")):
        text = _page_text(text) or text
    text = redact_sent(text, (url, str(response.url)), sent, shown={DELIVERY_HEADER})
    return on_one_line(" ".join(redact_urls(text).split())[:_SAID_LIMIT])


_SAID_LIMIT: Final = 200  # characters of a refusal's body a log line quotes
# Content-Types that say nothing of what a body is (aiohttp's when the answer names none).
_UNTYPED: Final = frozenset({"", "application/octet-stream"})
# An HTML page is read a piece at a time, until it has given enough text to quote.
_PAGE_PIECE: Final = 4096


class _PageText(HTMLParser):
    """The text of an HTML page as a browser shows it: its body's words, not its markup, head,
    scripts or styles; and its title apart."""

    _UNSHOWN: Final = frozenset({"head", "script", "style", "template", "noscript"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.words: list[str] = []
        self.title: list[str] = []
        self.length = 0
        self._unshown = 0
        self._in_title = False
        self.markup = False  # an element closed: a page, not "<nil>"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._UNSHOWN:
            self._unshown += 1
        self._in_title = self._in_title or tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self.markup = True
        if tag in self._UNSHOWN:
            self._unshown = max(self._unshown - 1, 0)
        self._in_title = self._in_title and tag != "title"

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._unshown:
            words = data.split()
            self.words.extend(words)
            self.length += sum(len(word) + 1 for word in words)


def _page_text(page: str) -> str | None:
    """What of an HTML ``page`` a log line quotes: its body's text (Python's http.server 501:
    "Error response Error code: 501 Message: Unsupported method ('POST')..."), or else its
    title, or else "an HTML page" if it is markup (an element closed), or else None
    (``<no value>`` is no page: quoted as it came); read only as far as it needs to fill the
    line."""
    parser = _PageText()
    for start in range(0, len(page), _PAGE_PIECE):
        parser.feed(page[start : start + _PAGE_PIECE])
        if parser.length > 2 * _SAID_LIMIT:  # room for what redaction shortens
            break
    words = parser.words or " ".join(parser.title).split()
    if words:
        return " ".join(words)
    return "an HTML page" if parser.markup else None


async def read_answer(
    response: aiohttp.ClientResponse,
    limit: int = ANSWER_LIMIT,
    within: float = _ANSWER_SECONDS,
) -> bytes:
    """The start of an answer's body: at most ``limit`` bytes, read for at most ``within``
    seconds; past either the connection is closed rather than read to its end (or kept for
    another request).

    Only the status counts, and it came before the body: a body cut off (a connection reset,
    an answer shorter than its ``Content-Length``, one still coming after ``within``) ends the
    reading, not the attempt, as Alertmanager's notifiers only drain it. Counted failed, a 2xx
    would be sent again to a receiver that took it; waited for, a trickle would hold the
    receiver's other deliveries back until the timeout.
    """
    head = b""
    try:
        async with asyncio.timeout(within):
            while len(head) < limit:
                chunk = await response.content.read(limit - len(head))
                if not chunk:
                    return head
                head += chunk
    except (TimeoutError, aiohttp.ClientError, OSError):
        response.close()
        return head
    if not response.content.at_eof():
        response.close()
    return head


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` (seconds or an HTTP date) as seconds from ``now``; None when unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() alone takes "²", which float() refuses
        return min(float(value), _MAX_RETRY_AFTER_SECONDS)
    try:
        when = email.utils.parsedate_to_datetime(value)
    # OverflowError: a date whose hour or zone offset no C integer holds (a receiver's junk).
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(when.timestamp() - now, 0.0), _MAX_RETRY_AFTER_SECONDS)


def keep_for(receiver: Receiver) -> Keep:
    """What ``receiver`` gets: an alert at or above its ``min_severity``, and every later change
    of one it was told of (eased below it, resolved), so it never keeps an alert firing that
    ended; a resolve only of an alert it was told of (as Alertmanager sends none to a receiver it
    never notified), and with ``send_resolved: false`` none."""

    def keep(record: AlertRecord, told: bool) -> bool:
        if record.state is AlertState.RESOLVED:
            return told and receiver.send_resolved
        return told or meets(record.severity, receiver.min_severity)

    return keep


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to try a delivery again (``backoff``) and when to give up on it (``deadline``
    seconds after it was created, or last retried by hand)."""

    backoff: Backoff
    deadline: float

    def next_attempt(
        self, since: float, failures: int, now: float, retry_after: float | None = None
    ) -> float | None:
        """When to try again after ``failures`` failed attempts (the last one ``now``), or None
        when that would fall after the deadline: the delivery is then dead-lettered. Never
        later than the largest backoff after ``now``: a delay that is no number of seconds up
        to it (NaN, infinite: an overflow) is that largest backoff, never a time that never
        comes (the outbox refuses to store one)."""
        delay = self.backoff.delay(failures, retry_after)
        if not 0.0 <= delay <= self.backoff.cap:  # False for NaN too
            delay = self.backoff.cap
        next_at = now + delay
        return None if next_at > since + self.deadline else next_at


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """How one HTTP attempt went; ``error_type`` is the status code of a failed answer or the
    class name of the error when none came (OpenTelemetry's ``error.type``)."""

    outcome: Outcome
    status: int | None
    error: str | None
    retry_after: float | None
    seconds: float
    error_type: str | None = None
    # The start of a refusing answer's body, for the log alone (``answer_said``): a span, the
    # outbox and NotificationStatus keep the status, as a receiver's page may hold anything.
    said: str | None = None

    @property
    def ok(self) -> bool:
        """True when the receiver took the delivery."""
        return self.outcome is Outcome.DELIVERED


class Sender(Protocol):
    """Makes one delivery attempt to one receiver; the plug-in point between workers and HTTP."""

    async def send(self, delivery: Delivery) -> AttemptResult:
        """POST ``delivery``'s body; never raises for a failed attempt."""


def _no_span(span: ClientSpan) -> None:
    """No span recorder: nothing is recorded."""


class WebhookSender:
    """POSTs one receiver's signed deliveries; never raises for a failed attempt, returns an
    ``AttemptResult`` and records the attempt's CLIENT span."""

    def __init__(
        self,
        receiver: Receiver,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        record_span: Callable[[ClientSpan], None] = _no_span,
        tokens: TokenSources | None = None,
    ) -> None:
        """``tokens``: the oauth2 tokens shared with other senders whose receivers have the
        same ``oauth2`` block (``ClientSettings``); without them, this sender's own."""
        self.receiver = receiver
        self._url = FileSetting("url_file", receiver.url, receiver.url_file)
        secret = receiver.secret.get_secret_value() if receiver.secret else None
        self._secret = FileSetting("secret_file", secret, receiver.secret_file)
        self._keyring: tuple[str, Keyring] | None = None
        self._client = ClientSettings(receiver.http_config, clock=monotonic, tokens=tokens)
        self._timeout = receiver.timeout
        self._clock = clock
        self._monotonic = monotonic
        self._record_span = record_span
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the HTTP client (on the running loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                headers={"User-Agent": USER_AGENT},
            )

    async def aclose(self) -> None:
        """Close the HTTP client; idempotent."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def headers(self, delivery_id: str, body: bytes) -> dict[str, str]:
        """The headers of one attempt; the signature's ``t`` is the attempt's time.
        ClientSetupError when the ``secret_file`` cannot be read or is empty."""
        headers = {
            "Content-Type": "application/json",
            DELIVERY_HEADER: delivery_id,
            "User-Agent": USER_AGENT,
        }
        secret = self._secret.get()
        if not secret and self.receiver.secret_file:
            # Emptied (a rotation half written): sent unsigned, the alert would be refused by a
            # receiver checking signatures, or taken unproven by one that does not.
            raise ClientSetupError(f"secret_file {self.receiver.secret_file} is empty")
        if secret:
            if self._keyring is None or self._keyring[0] != secret:
                self._keyring = (secret, Keyring.from_secrets(secret))
            headers[SIGNATURE_HEADER] = self._keyring[1].sign_header(body, int(self._clock()))
        return headers

    async def send(self, delivery: Delivery) -> AttemptResult:
        """One attempt."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        started = self._monotonic()
        start_ns = int(self._clock() * 1e9)
        url: str | None = None
        try:
            url = self._url.get()
            if not url:
                raise ClientSetupError(f"url_file {self.receiver.url_file} is empty")
            # Checked here, not by aiohttp: its error would show the URL (the path a token).
            if self.receiver.url_file and (problem := http_url_problem(url)):
                raise ClientSetupError(f"url_file {self.receiver.url_file}: {problem}")
            headers = self.headers(delivery.id, delivery.body)
            result = await self._post(url, delivery.body, headers, started)
        except ClientSetupError as exc:
            failure = request_failure(exc, self._timeout)
            result = AttemptResult(
                Outcome.RETRY, None, failure.text, None, self._monotonic() - started, failure.kind
            )
        end_ns = start_ns + int(result.seconds * 1e9)
        span = http_client_span(
            "POST",
            url or self.receiver.label,
            start_ns=start_ns,
            end_ns=end_ns,
            status=result.status,
            error_type=result.error_type,
            error=result.error,
            resend_count=delivery.attempts,
            extra={
                "exesdb.receiver": self.receiver.label,
                "exesdb.delivery_id": delivery.id,
                "exesdb.alerts": len(delivery.alert_ids),
            },
        )
        self._record_span(span)
        return result

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str], started: float
    ) -> AttemptResult:
        assert self._session is not None
        try:
            async with post(self._session, self._client, url, body, headers) as response:
                head = await read_answer(response)
                status = response.status
                outcome = classify(status)
                error = f"HTTP {status}" if outcome is not Outcome.DELIVERED else None
                if refused := refused_redirect(self._client, status):
                    # A redirect the receiver asked for but that would lose the alerts: tried
                    # again until the deadline, then dead-lettered, never counted delivered.
                    outcome, error = Outcome.RETRY, refused
                elif (
                    status == 401
                    and self._client.oauth2 is not None
                    and "Authorization" in response.request_info.headers
                ):
                    # The token may have been revoked or lapsed early: post() dropped it, and
                    # the next attempt fetches another. A redirect's other origin, sent no
                    # token, refuses for another reason: final, as without oauth2.
                    outcome, error = Outcome.RETRY, _OAUTH2_REFUSED
                retry_after = (
                    parse_retry_after(response.headers.get("Retry-After"), self._clock())
                    if outcome is Outcome.RETRY
                    else None
                )
                return AttemptResult(
                    outcome,
                    status,
                    error,
                    retry_after,
                    self._monotonic() - started,
                    str(status) if error else None,
                    answer_said(head, url, response) if error else None,
                )
        except REQUEST_ERRORS as exc:
            failure = request_failure(exc, self._timeout)
        return AttemptResult(
            Outcome.RETRY, None, failure.text, None, self._monotonic() - started, failure.kind
        )


Report = Callable[[Delivery, AttemptResult, DeliveryState, int], None]
"""Told of every attempt: the delivery as sent, the result, the state the outbox left it in
(``stale`` when it was left out while the attempt was in flight and the attempt failed) and the
attempt number."""
Vet = Callable[[Delivery], Awaitable[Delivery | None]]
"""Before each attempt: the delivery as it may go now (without the alerts whose newer
notifications are another replica's), or None when none of it may go now (all of it
stale)."""


async def _as_made(delivery: Delivery) -> Delivery | None:
    """No vetting: every delivery goes as it was made."""
    return delivery


@dataclass(frozen=True, slots=True)
class _Attempted:
    """One attempt's outcome, until the outbox has recorded it."""

    delivery: Delivery
    result: AttemptResult
    state: DeliveryState
    number: int
    next_attempt_at: float
    at: float


class DeliveryWorker:
    """Groups one receiver's queued alerts into deliveries and sends them, retrying as needed.

    ``key`` is the receiver's key in the outbox; ``label`` how it is shown; ``keep`` its
    filters (``DeliveryQueue.group``).
    """

    def __init__(
        self,
        key: str,
        *,
        queue: DeliveryQueue,
        db: DbThread,
        sender: Sender,
        policy: RetryPolicy,
        group_wait: float,
        build: BuildPayloads,
        report: Report,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = wait_or_wake,
        on_error: Callable[[], None] = lambda: None,
        label: str | None = None,
        keep: Keep | None = None,
        vet: Vet = _as_made,
        told_again: Callable[[int], None] = lambda count: None,
    ) -> None:
        """``told_again`` is called with how many alerts left out of an attempt in flight, and
        changed since by another replica, were queued for the receiver again."""
        self.key = key
        self.label = label or receiver_label(key)
        self._queue = queue
        self._db = db
        self._sender = sender
        self._policy = policy
        self._group_wait = group_wait
        self._build = build
        self._keep = keep
        self._vet = vet
        self._report = report
        self._told_again = told_again
        self._clock = clock
        self._sleep = sleep
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._on_error = on_error
        self._log = ReceiverLog(self.label)
        # An attempt made whose outcome the outbox could not record yet (its disk full): only
        # the write is tried again, never the send, until it goes through.
        self._unrecorded: _Attempted | None = None
        self._unrecorded_fault: str | None = None
        self._sending = False  # an attempt is waiting on the receiver's answer

    @property
    def unrecorded_fault(self) -> str | None:
        """Why the outcome of an attempt made could not be recorded (it is kept in memory until
        it can be), or None when every attempt made is recorded."""
        return self._unrecorded_fault if self._unrecorded is not None else None

    def start(self) -> None:
        """Start working on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"webhook-{self.label}"
            )

    def wake(self) -> None:
        """Something changed in the outbox: look now rather than at the next planned time."""
        self._wake.set()

    def stop(self) -> None:
        """Start no new attempt (``aclose`` then ends the worker); idempotent."""
        self._stopping = True
        self._wake.set()

    async def aclose(self, grace: float = 0.0) -> None:
        """Stop; idempotent. An attempt in flight is given up to ``grace`` seconds to end and
        be recorded (no new one starts), so a receiver that took it is not sent it again after
        the restart; one still in flight then is abandoned and made again after restart."""
        self.stop()
        task, self._task = self._task, None
        if task is None:
            return
        # Said, as the stop would otherwise wait in silence (a hanging receiver: half the
        # shutdown's deadline), and what becomes of the delivery.
        in_flight = self._sending and grace > 0
        if in_flight:
            _logger.info(
                "stopping: the delivery in flight to webhook receiver %s gets %.1fs to end",
                self.label,
                grace,
            )
        try:
            if grace > 0:
                await asyncio.wait({task}, timeout=grace)
        finally:  # cancelled meanwhile too: the attempt is abandoned, and the caller told
            if in_flight and self._sending:  # nothing lost: no failure to warn of
                _logger.info(
                    "stopping: the delivery in flight to webhook receiver %s did not end: it"
                    " stays pending in the outbox and is sent again at the next start",
                    self.label,
                )
            await cancel_and_wait(task)

    async def _run(self) -> None:
        failed = 0  # steps failed in a row
        fault = ""  # what the last one logged failed with
        while not self._stopping:
            try:
                delay = await self.step()
            except Exception as exc:
                self._on_error()
                failed += 1
                # A fault that repeats at every step (a full disk) is logged once, not once a
                # second: each is counted in exesdb_sink_errors_total all the same.
                if failed == 1 or f"{type(exc).__name__}: {exc}" != fault:
                    fault = f"{type(exc).__name__}: {exc}"
                    _logger.exception("webhook worker for %s failed; retrying", self.label)
                delay = _STEP_BACKOFF.delay(failed)
            else:
                if failed:
                    _logger.info(
                        "webhook worker for %s works again after %d failed step(s)",
                        self.label,
                        failed,
                    )
                failed = 0
            if delay > 0:
                await self._sleep(delay, self._wake)

    async def step(self) -> float:
        """Group, then attempt the oldest pending delivery when it is due; returns how long to
        wait before the next step."""
        self._wake.clear()
        # An earlier attempt's outcome first: until it is recorded its delivery looks pending.
        await self._record()
        now = self._clock()
        await self._db.call(
            self._queue.group, self.key, now, self._group_wait, self._build, self._keep
        )
        longest = self._policy.backoff.cap
        delivery = await self._db.call(self._queue.next_due, self.key, now, longest)
        if delivery is not None and not self._stopping:  # stopping: no new attempt
            vetted = await self._vet(delivery)
            if self._stop_asked():  # while it was vetted (a read of Redis, or of the outbox)
                return 0.0
            if vetted is not None:
                await self.attempt(vetted)
                return 0.0
            # All of it stale: the next one is due at once, else a pause.
            head = await self._db.call(self._queue.next_due, self.key, self._clock(), longest)
            if head is None or head.id != delivery.id:
                return 0.0
            return _ERROR_PAUSE_SECONDS
        wake_at = await self._db.call(self._queue.next_wake, self.key, self._group_wait)
        if wake_at is None:
            return _POLL_SECONDS
        return min(_POLL_SECONDS, max(wake_at - self._clock(), 0.0))

    def _stop_asked(self) -> bool:
        # Read anew after an await (a stop may come meanwhile), where mypy would take the
        # attribute as it was last tested.
        return self._stopping

    async def attempt(self, delivery: Delivery) -> DeliveryState:
        """Send ``delivery`` once and record the outcome durably; returns the state it is left
        in. Raises when the outbox cannot record it (a full disk): the outcome is kept, and
        written again at the next step."""
        self._sending = True
        try:
            result = await self._sender.send(delivery)
        finally:
            self._sending = False
        number = delivery.attempts + 1
        now = self._clock()
        next_at: float | None = now
        if result.outcome is Outcome.DELIVERED:
            state = DeliveryState.DELIVERED
        elif result.outcome is Outcome.REJECTED:
            state = DeliveryState.DEAD
        else:
            next_at = self._policy.next_attempt(
                delivery.deadline_from, number, now, result.retry_after
            )
            state = DeliveryState.PENDING if next_at is not None else DeliveryState.DEAD
        self._unrecorded = _Attempted(
            delivery, result, state, number, now if next_at is None else next_at, now
        )
        return await self._record() or state

    async def _record(self) -> DeliveryState | None:
        """Record the outcome of the attempt made last, if it is not yet, then log and report
        it; raises when the outbox cannot (the outcome is then kept, and written again at the
        next step). Returns the state its delivery is left in: that of the outcome, but for one
        left out as stale while in flight and not taken by the receiver, which stays so
        (``DeliveryQueue.finish_attempt``) and is reported so."""
        attempted = self._unrecorded
        if attempted is None:
            return None
        try:
            kept, told_again = await self._db.call(
                self._queue.finish_attempt,
                attempted.delivery.id,
                state=attempted.state,
                next_attempt_at=attempted.next_attempt_at,
                status=attempted.result.status,
                error=attempted.result.error,
                now=attempted.at,
                sent=attempted.delivery,
            )
        except Exception as exc:
            self._unrecorded_fault = f"{type(exc).__name__}: {exc}"
            raise
        self._unrecorded = self._unrecorded_fault = None
        state = kept or attempted.state  # None: the delivery is gone (pruned meanwhile)
        result = attempted.result
        self._log.attempted(
            attempted.delivery.id,
            state,
            result.error,
            attempted.number,
            result.said,
            refused=result.outcome is Outcome.REJECTED,
            status=result.status,
        )
        self._report(attempted.delivery, result, state, attempted.number)
        if told_again:
            self._told_again(told_again)
        return state
