"""Posting alerts to Alertmanager's ``/api/v2/alerts`` (``EXESDB_ALERTMANAGER_URL``).

Its authorization, TLS and proxy come from the ``alertmanager.http_config`` of
``EXESDB_WEBHOOK_CONFIG_FILE`` (``bridge.httpclient``), files read again when they change.

As Prometheus does: every alert still firing is re-posted each ``interval`` with ``endsAt`` four
intervals ahead, so Alertmanager keeps it while the bridge lives and lets it lapse if the bridge
dies; a resolved alert is posted with its real ``endsAt``. Between those full posts, a wake (an
alert changed) posts only the alerts changed since the last post, so a burst of n alerts costs
O(n) posted alerts, not O(n²). Both read the outbox a page of 1 000 alerts at a time and post
each page, so every open alert (up to ``MAX_OPEN_ALERTS``) is re-posted. Alertmanager's routing,
silences and inhibition then apply. The escalation level travels as an annotation, not a label,
so that an escalation does not make Alertmanager see a new alert. The severity is a label (routes
match it), so a severity change does: the alert at the severity Alertmanager last took it at,
firing, is posted resolved beside the new one, as Prometheus sends an alert that stopped firing,
rather than left active until its ``endsAt`` lapsed, up to four intervals after the alert resolved
(the poster remembers the severities from its first post: one posted before a restart, or by
another replica, still lapses). After a failed post the next try waits as
``bridge.backoff.Backoff`` says (from 5 s, doubling, never longer than the interval), unless an
alert changes first. The first failure in a row is logged, with every URL redacted
(``bridge.httpclient.request_failure``), and the post that ends the run of failures; the retries
between are counted, not logged. Each post ends in a CLIENT span with the HTTP client conventions,
as a webhook attempt does (``bridge.tracing``).

On the Redis bus only the work-queue lease holder posts (``holding``): its outbox alone is
current (it took the open alerts up from Redis), while another replica's may still hold as firing
alerts the holder has resolved since, which its posts would keep active in Alertmanager. A
replica without the lease posts nothing (nor what it read as it held the lease, a read that
outlasted it: its outbox hung), and posts in full within a second of taking it. While
Redis cannot be reached (``reachable``) nobody holds the lease: the last holder goes on posting
its alerts, the most current there are, or Alertmanager would let them lapse and send their
resolves after four intervals of outage.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random as _random
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Final

import aiohttp

from bridge.backoff import Backoff
from bridge.httpclient import REQUEST_ERRORS, ClientSettings, request_failure
from bridge.httpclient.redirects import post, refused_redirect
from bridge.messages import format_timestamp, utc_from_seconds
from bridge.redaction import safe_url
from bridge.sinks.alerts.alert_store import AlertStore
from bridge.sinks.alerts.delivery import (
    USER_AGENT,
    Sleep,
    answer_said,
    read_answer,
    wait_or_wake,
)
from bridge.sinks.alerts.payload import alert_url
from bridge.sinks.alerts.records import AlertRecord, AlertState
from bridge.sinks.alerts.thread import DbThread
from bridge.tasks import cancel_and_wait
from bridge.tracing import ClientSpan, http_client_span

__all__ = ["AlertmanagerPoster", "PostResult", "alertmanager_alert"]

_logger = logging.getLogger(__name__)

_RESEND_FACTOR: Final = 4  # endsAt = now + 4 intervals, as Prometheus sends
_FIRST_RETRY_SECONDS: Final = 5.0
# Changes stamped just before a post's query may commit just after it: look back this far.
_CURSOR_MARGIN_SECONDS: Final = 5.0
_MAX_PER_POST: Final = 1000
# How often a replica without the work-queue lease looks whether it holds it now.
_STANDBY_SECONDS: Final = 1.0
_JSON_HEADERS: Final = {"Content-Type": "application/json"}


class PostResult(StrEnum):
    """How one post went: Alertmanager took the alerts, or it did not (an answer or none)."""

    OK = "ok"
    FAILED = "failed"


def _time(seconds: float) -> str:
    return format_timestamp(utc_from_seconds(seconds))


def alertmanager_alert(
    record: AlertRecord,
    *,
    now: float,
    interval: float,
    generator_url: str,
    severity: str | None = None,
) -> dict[str, Any]:
    """One entry of the ``POST /api/v2/alerts`` body; with ``severity`` (the one it was posted at
    before it changed), the alert at that severity, which Alertmanager holds as another, ended
    when the alert last changed: a time past, so that Alertmanager takes it as resolved over
    the ``endsAt`` it holds, ahead."""
    labels = {k: v for k, v in record.labels.items() if k != "escalation_level"}
    annotations = {**record.sent_annotations, "escalation_level": record.level_name}
    if severity is not None:
        labels["severity"] = severity
        ends_at = min(record.updated_at, now)
    elif record.state is AlertState.RESOLVED and record.ends_at is not None:
        ends_at = record.ends_at
    else:
        ends_at = now + _RESEND_FACTOR * interval
    return {
        "labels": labels,
        "annotations": annotations,
        "startsAt": _time(record.starts_at),
        "endsAt": _time(max(ends_at, record.starts_at)),
        "generatorURL": generator_url,
    }


class AlertmanagerPoster:
    """Keeps Alertmanager's view of the bridge's alerts current."""

    def __init__(
        self,
        base_url: str,
        *,
        alerts: AlertStore,
        db: DbThread,
        external_url: Callable[[], str],
        timeout: float,
        client: ClientSettings | None = None,
        interval: float = 60.0,
        count: Callable[[PostResult], None] = lambda result: None,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = wait_or_wake,
        random: Callable[[], float] = _random.random,
        on_error: Callable[[], None] = lambda: None,
        record_span: Callable[[ClientSpan], None] = lambda span: None,
        monotonic: Callable[[], float] = time.monotonic,
        holding: Callable[[], bool] = lambda: True,
        reachable: Callable[[], bool] = lambda: True,
    ) -> None:
        """``record_span`` is handed each post's CLIENT span (``bridge.tracing``); ``clock``
        gives the alerts' times, ``monotonic`` a post's duration; ``holding`` whether this
        replica holds the work queue (on Redis, the lease), without which it posts nothing unless it
        held it last and ``reachable`` (whether the lease's store answers) is False."""
        self.url = base_url.rstrip("/") + "/api/v2/alerts"
        self.shown_url = safe_url(self.url)
        self.interval = interval
        self._alerts = alerts
        self._db = db
        self._external_url = external_url
        self._timeout = timeout
        self._client = client or ClientSettings()
        self._count = count
        self._clock = clock
        self._sleep = sleep
        self._first_retry = min(interval, _FIRST_RETRY_SECONDS)
        self._backoff = Backoff(base=self._first_retry, cap=interval, rng=random)
        self._on_error = on_error
        self._record_span = record_span
        self._monotonic = monotonic
        self._holding = holding
        self._reachable = reachable
        self._held_last = False  # held the work queue when its store last answered
        self._standing_by = False  # not holding the work queue (logged once)
        self._failures = 0  # failed posts in a row
        self._failure = ""  # why the last post failed, as the log says it
        self._last_ok: float | None = None
        self._cursor: float | None = None
        # The severity Alertmanager last took each alert at, firing (until it takes it
        # resolved): at another severity now, the alert at that one is posted resolved.
        self._firing: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        """Start posting on the running loop."""
        if self._task is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                headers={"User-Agent": USER_AGENT},
            )
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="alertmanager-poster"
            )

    def failing(self) -> str | None:
        """Why posts fail and how many failed in a row, as the pages say it, while they do;
        None while Alertmanager takes them (or before the first post)."""
        if not self._failures:
            return None
        return f"{self._failure} ({self._failures} failed post{'s' * (self._failures != 1)})"

    def wake(self) -> None:
        """An alert changed: post now."""
        self._wake.set()

    async def aclose(self) -> None:
        """Stop; idempotent."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            if not self._posting():
                self._stand_by()
                await self._sleep(_STANDBY_SECONDS, self._wake)
                continue
            self._standing_by = False
            now = self._clock()
            full = self._last_ok is None or now - self._last_ok >= self.interval
            try:
                ok = await self._post_once(full=full)
            except Exception:
                self._on_error()
                _logger.exception("posting to Alertmanager failed")
                self._failure = "an error of the bridge's own (logged above)"
                ok = False
            if ok is None:
                continue  # the lease went while the alerts were read: standing by now
            if not ok:
                self._failures += 1
                if self._failures == 1:
                    # One line when posts start failing, as for a webhook receiver: not one a
                    # retry (every minute at most, for as long as Alertmanager is away).
                    _logger.warning(
                        "cannot post to Alertmanager %s: %s; trying again until it takes them"
                        " (counted in exesdb_alertmanager_posts_total)",
                        self.shown_url,
                        self._failure,
                    )
                pause = self._backoff.delay(self._failures)
            else:
                if self._failures:
                    _logger.info(
                        "Alertmanager %s takes posts again after %d failed post(s)",
                        self.shown_url,
                        self._failures,
                    )
                self._failures = 0
                assert self._last_ok is not None
                pause = max(0.0, self._last_ok + self.interval - self._clock())
            began = self._clock()
            await self._sleep(pause, self._wake)
            # On the clock the pauses are reckoned on (a wall clock stepped back lengthens
            # nothing: the rest is never more than the first retry).
            rest = min(self._first_retry, self._first_retry - (self._clock() - began))
            if not ok and self._wake.is_set() and rest > 0:
                # A change cuts the pause after a failure short, but to no less than the first
                # retry's: alerts changing steadily made a post (and a warning) each, a failing
                # Alertmanager asked several times a second.
                await self._sleep(rest, asyncio.Event())

    def _posting(self) -> bool:
        """Whether this replica posts now: it holds the work queue, or held it when the lease's
        store last answered and cannot be reached now (nobody holds it then)."""
        if self._holding():
            self._held_last = True
        elif self._reachable():
            self._held_last = False
        return self._held_last

    def _stand_by(self) -> None:
        """Post nothing until this replica holds the work queue, and then in full at once."""
        self._last_ok = self._cursor = None
        self._firing.clear()  # the holder's posts from now: which labels it posted is its own
        self._failures = 0
        if not self._standing_by:
            self._standing_by = True
            _logger.info(
                "Alertmanager %s: posts left to the replica holding the work-queue lease",
                self.shown_url,
            )

    async def _post_once(self, *, full: bool = True) -> bool | None:
        """Post the current alerts once; True when Alertmanager took them (or none to send),
        None when this replica stopped posting (gave the lease up) while it read them.

        ``full``: every alert not resolved and those resolved lately (the periodic re-post);
        otherwise only those changed since the last post (a wake).
        """
        now = self._clock()
        if full or self._cursor is None:
            since = (self._last_ok if self._last_ok is not None else now) - (
                _RESEND_FACTOR * self.interval
            )
            page = self._alerts.current
        else:
            since, page = self._cursor - _CURSOR_MARGIN_SECONDS, self._alerts.changed_since
        # Page after page (ordered by id, so an alert changing meanwhile neither moves nor is
        # posted twice), one post each: every alert goes out, however many are open.
        after = ""
        while True:
            records = await self._db.call(page, since, after=after, limit=_MAX_PER_POST)
            if not self._posting():
                # The read outlasted the lease (the outbox's disk hung, the lease given up
                # meanwhile): the holder's alerts are current, these may fire one it resolved.
                return None
            if records and not await self._post(records, now):
                return False
            if len(records) < _MAX_PER_POST:
                break
            after = records[-1].alert_id
        if full or self._last_ok is None:
            self._last_ok = now
        self._cursor = now
        return True

    async def _post(self, records: list[AlertRecord], now: float) -> bool:
        """Post ``records`` (and, ended, each at the severity it was posted at firing before it
        changed), at most ``_MAX_PER_POST`` alerts a request; True when Alertmanager took them
        all."""
        body = []
        for record in records:
            url = alert_url(self._external_url(), record.alert_id)
            before = self._firing.get(record.alert_id)
            if before is not None and before != record.severity:
                body.append(
                    alertmanager_alert(
                        record, now=now, interval=self.interval, generator_url=url, severity=before
                    )
                )
            body.append(
                alertmanager_alert(record, now=now, interval=self.interval, generator_url=url)
            )
        for start in range(0, len(body), _MAX_PER_POST):
            if not await self._post_body(body[start : start + _MAX_PER_POST]):
                return False
        for record in records:
            if record.open:
                self._firing[record.alert_id] = sys.intern(record.severity)  # one of four
            else:
                self._firing.pop(record.alert_id, None)
        return True

    async def _post_body(self, body: list[dict[str, Any]]) -> bool:
        if self._session is None:
            return False
        start_ns, started = int(self._clock() * 1e9), self._monotonic()
        status: int | None = None
        error_type: str | None = None
        error: str | None = None  # the span's, as a webhook attempt's: never the answer's body
        try:
            async with post(
                self._session, self._client, self.url, json.dumps(body).encode(), _JSON_HEADERS
            ) as response:
                head = await read_answer(response)
                status = response.status
                if status // 100 != 2:
                    error_type = str(status)
                    refused = refused_redirect(self._client, status)
                    error = refused or f"HTTP {status}"
                    said = answer_said(head, self.url, response)
                    self._failure = refused or f"it answered {status}: {said}"
        except REQUEST_ERRORS as exc:
            failure = request_failure(exc, self._timeout)
            error_type, error = failure.kind, failure.text
            self._failure = failure.text
        self._record_span(
            http_client_span(
                "POST",
                self.url,
                start_ns=start_ns,
                end_ns=start_ns + int((self._monotonic() - started) * 1e9),
                status=status,
                error_type=error_type,
                error=error,
                extra={"exesdb.alerts": len(body)},
            )
        )
        self._count(PostResult.FAILED if error_type else PostResult.OK)
        return error_type is None
