"""The alert admin API: ``GET /v1/alerts`` and ``POST /v1/alerts/{alert_id}/ack``, admin only.

Requests are read into pydantic models (``AlertQuery``, ``AckRequest``); a refusal names the field
at fault in the shape every route shares (``bridge.routes.error_response``), and an ack whose body
is not JSON by its headers is refused 415 as ingest refuses one
(``bridge.routes.unsupported_json``). An ack the outbox cannot store (its disk full), or on Redis
one stored nowhere here whose AlertAck the bus refused (``AlertSink.acknowledge``), is answered 503
``not_committed`` with ``Retry-After``, as ingest answers a batch it cannot store, and logged once
while the fault lasts; so is every ack while the outbox file is gone (its folder removed:
``OutboxDisplaced``), and the one that found it gone, stored only in the file gone. An ack naming
the episode it is for (``starts_at``, as the alert was listed) that is not the alert's current one
(it fired anew since, or the time given is not its start) is answered 409 ``another_episode``, the
alert unchanged; of an earlier time, the alert's history says whether it resolved since (an
episode that ended) or not (a typo). What the routes read and change is behind ``AlertKeeper``
(the alert sink is one).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated, Final, Protocol

from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    StringConstraints,
    ValidationError,
    field_validator,
)

from bridge.bodies import read_json
from bridge.choices import choice_refused
from bridge.errors import TransportError
from bridge.hidden import CONTROL_CHARACTERS
from bridge.json_objects import DuplicateKey
from bridge.listener import CLOSE_AFTER
from bridge.messages import (
    MAX_NAME,
    MAX_TEXT,
    NAME_PATTERN,
    NO_CONTROL_CHARACTERS,
    Timestamp,
    format_timestamp,
    utc_from_seconds,
    visible_name,
)
from bridge.routes import (
    ALERT_ID_SEGMENT,
    AdminGuard,
    error_response,
    key_given_twice,
    missing_field,
    unknown_field,
    unknown_parameter,
    unsupported_json,
)
from bridge.sinks.alerts.database import OutboxDisplaced
from bridge.sinks.alerts.records import (
    Acknowledgement,
    AlertDetail,
    AlertRecord,
    AlertState,
    HistoryEntry,
    HistoryEvent,
)
from bridge.sinks.alerts.retention import HISTORY_KEPT, RESOLVED_KEPT_SECONDS

__all__ = [
    "MAX_LIST",
    "AckRequest",
    "AlertKeeper",
    "AlertQuery",
    "LeaseView",
    "alert_routes",
    "work_queue_lease",
]

_logger = logging.getLogger(__name__)

MAX_LIST: Final = 10_000
# Alerts read from the outbox and sent at a time by GET /v1/alerts: an alert's JSON is at most
# some 400 kB (its texts of 4 096 characters, each escaped to 12 bytes), so a page some 8 MB.
_PAGE: Final = 20
# The Retry-After of an ack the outbox could not store, as ingest's 503 has it.
_RETRY_AFTER_SECONDS: Final = 1
# A control character in an alert id: ingest refuses one, so no alert has it (_alert_id_fault).
_CONTROL_CHARACTER: Final = re.compile(f"[{CONTROL_CHARACTERS}]")

Text = Annotated[StrictStr, StringConstraints(min_length=1, max_length=MAX_TEXT)]
# No control character: a NUL, line break or ESC in a name would forge lines in logs and
# terminals (exesdb-bridge alerts list) and break the history's "by NAME: note"; nor a line or
# paragraph separator, or a bidirectional control, which reorders the text shown after it; nor
# blanks only, shown as no one. The messages' length and pattern, so that an AlertAck from the
# bus is held to the same, and its visible_name (nor blanks past the BMP, nor marks alone).
Name = Annotated[
    StrictStr,
    StringConstraints(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN),
    AfterValidator(visible_name),
]


class AlertQuery(BaseModel):
    """``GET /v1/alerts`` query parameters: each filter given narrows the list."""

    # Built for the first request that reads one, not as the bridge starts (so is AckRequest).
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    state: AlertState | None = None
    # Refused as a bad ?state= is, not answered with no alert: ingest refuses an alert id that
    # is empty, too long or holds a control character, so none could match (_alert_id_fault
    # says which).
    alert_id: (
        Annotated[
            str,
            StringConstraints(min_length=1, max_length=MAX_TEXT, pattern=NO_CONTROL_CHARACTERS),
        ]
        | None
    ) = None
    limit: int = Field(default=1000, ge=1, le=MAX_LIST)

    @field_validator("limit", mode="before")
    @classmethod
    def _digits_only(cls, value: object) -> object:
        # Plain ASCII digits only: no sign, space or decimal point, nor the other scripts'
        # digits str.isdigit() and int() take (a fullwidth or Arabic-Indic 5).
        if isinstance(value, str):
            if not (value.isascii() and value.isdigit()):
                raise ValueError("limit must be digits")
            return int(value)
        return value


_ACK_REFUSALS: Final = {
    "ack_by": f"ack_by must be a string of 1-{MAX_NAME} characters that is not blank (spaces,"
    " other whitespace, invisible characters or combining marks only), with no control"
    " character (such as NUL, a line break, a tab or ESC, or a bidirectional control such as"
    " U+202E)",
    "starts_at": "starts_at must be the alert's starts_at as GET /v1/alerts shows it (RFC 3339,"
    " such as 2026-12-05T11:40:00.123Z)",
}

_QUERY_REFUSALS: Final = {
    "limit": f"limit must be an integer from 1 to {MAX_LIST}",
}


class AckRequest(BaseModel):
    """``POST /v1/alerts/{alert_id}/ack`` body: who acknowledges, a note, a resolution (which
    also resolves the alert), and the episode it is for (``starts_at``, as the alert was
    listed: the ack applies to that episode only); any other field is refused (a misspelt
    ``resolution`` would otherwise acknowledge without resolving)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    ack_by: Name
    ack_note: Text | None = None
    resolution: Text | None = None
    starts_at: Timestamp | None = None


class LeaseView(Protocol):
    """What the alert sink says of the work-queue lease (``work_queue_lease`` reads it)."""

    def holds_work_queue(self) -> bool:
        """Whether this replica's alerts are current: always on the in-process bus, on Redis
        while it holds the work-queue lease."""

    def work_queue_holder(self) -> str | None:
        """On Redis, the replica that holds the work-queue lease (its consumer name), as this
        one last saw it; None on the in-process bus, or when it saw none."""

    def work_queue_reachable(self) -> bool:
        """Whether this replica can use the lease's store (Redis: it answers, and takes the
        lease's commands): while it cannot, and this replica does not hold the lease, which
        replica does cannot be known here; True on the in-process bus."""

    def work_queue_lease_kept(self) -> bool:
        """On Redis, whether this replica keeps the work-queue lease without serving the work
        queue (taken back after Redis lost its data, its take-up failing); never on the
        in-process bus."""


class AlertKeeper(LeaseView, Protocol):
    """What the admin routes read and change."""

    async def list_alerts(
        self, query: AlertQuery, *, after: AlertRecord | None = None
    ) -> Sequence[AlertRecord]:
        """The alerts matching ``query``, most recently changed first; only those listed after
        ``after`` (the last of the page before)."""

    async def acknowledge(self, ack: Acknowledgement) -> AlertRecord | None:
        """Apply ``ack`` and announce it; the alert, or None when unknown. Raises ``OSError``
        or ``sqlite3.Error`` when it could not be stored (``OutboxDisplaced`` when the outbox file
        is gone), ``TransportError`` when it was stored nowhere here and its announcement could
        not be handed to the bus."""

    async def alert_detail(self, alert_id: str) -> AlertDetail | None:
        """The alert with its history (whether it resolved before its current episode, for a
        409 ``another_episode``); None when unknown."""


def alert_routes(guard: AdminGuard, keeper: AlertKeeper) -> list[web.RouteDef]:
    """The two routes, each behind ``guard``."""
    unstored = _UnstoredAcks()

    async def list_alerts(request: web.Request) -> web.StreamResponse:
        """Alerts with state, level, severity, labels and timestamps; ``?state=``, ``?limit=``,
        ``?alert_id=``; whether they are current (``work_queue_holder``), and if known which
        replica's are (``work_queue_holder_name``); which of the four cases that is
        (``work_queue_lease``: ``work_queue_lease``'s words)."""
        if refusal := unknown_parameter(request, AlertQuery.model_fields):
            return refusal
        try:
            query = AlertQuery.model_validate(dict(request.query))
        except ValidationError as exc:
            field = _field_of(exc)
            error = exc.errors()[0]
            if error["type"] == "enum":  # ?state=, as every refused word is said
                detail = f"{field} {choice_refused(error['input'], error['ctx']['expected'])}"
            elif field == "alert_id":
                detail = _alert_id_fault(error["input"]) or f"{field} is not valid"
            else:
                detail = _QUERY_REFUSALS.get(field, f"{field} is not valid")
            return error_response(400, "invalid", detail, field)
        # Read and sent a page at a time: 10 000 alerts of the longest fields are gigabytes of
        # JSON, and one read of them all held the outbox's thread (ingest waits on it) for
        # seconds. A fault before the first page is answered 500; after it, the answer is cut.
        page = await keeper.list_alerts(query.model_copy(update={"limit": min(_PAGE, query.limit)}))
        response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
        if request.get(CLOSE_AFTER):
            response.force_close()  # a large head (a long alert_id): said before the headers go
        await response.prepare(request)
        if request.method == "HEAD":
            # No body, as a whole answer's HEAD has none: a StreamResponse would send what is
            # written, and it would open the next answer on the connection.
            await response.write_eof()
            return response
        # A client gone meanwhile leaves the rest unsent, quietly, as a whole answer's send does.
        with contextlib.suppress(ConnectionError):
            await _send_alerts(response, keeper, query, page)
        return response

    async def ack(request: web.Request) -> web.Response:
        """Acknowledge: ``{"ack_by", "ack_note"?, "resolution"?, "starts_at"?}``; publishes
        AlertAck."""
        alert_id = request.match_info["alert_id"]
        if refusal := unsupported_json(request):
            return refusal
        try:
            body = await read_json(request)
        except DuplicateKey as exc:
            return key_given_twice(exc)
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply
            return error_response(
                400, "malformed", 'the body must be JSON: {"ack_by": "..."}', "body"
            )
        if not isinstance(body, dict):
            return error_response(
                400, "malformed", 'the body must be a JSON object: {"ack_by": "..."}', "body"
            )
        try:
            fields = AckRequest.model_validate(body)
        except ValidationError as exc:
            if refusal := unknown_field(exc, AckRequest.model_fields):
                return refusal
            if refusal := missing_field(exc, '{"ack_by": "..."}'):
                return refusal
            field = _field_of(exc)
            detail = (
                _ACK_REFUSALS.get(field) or f"{field} must be a string of 1-{MAX_TEXT} characters"
            )
            return error_response(400, "invalid", detail, field)
        # Refused before storing (AlertAck could not carry a longer one), in GET's words.
        if fault := _alert_id_fault(alert_id):
            return error_response(400, "invalid", fault, "alert_id")
        try:
            record = await keeper.acknowledge(
                Acknowledgement(
                    alert_id, fields.ack_by, fields.ack_note, fields.resolution, fields.starts_at
                )
            )
        except OutboxDisplaced as exc:
            # Not rolled back: stored (if at all) in the file gone, whose webhooks still go out,
            # lost at the next start; refused while it is gone.
            fault = str(exc)
            return unstored.refusal(
                fault,
                "the acknowledgement is not stored in the alert outbox at its path, and is lost"
                f" at the next start ({fault})",
            )
        except (OSError, sqlite3.Error) as exc:  # rolled back: the outbox is as it was
            fault = str(exc)
            return unstored.refusal(
                fault, f"the acknowledgement could not be stored in the alert outbox ({fault})"
            )
        except TransportError as exc:  # on Redis, stored nowhere and not handed to the holder
            fault = str(exc)
            return unstored.refusal(
                fault, f"the acknowledgement could not be stored or handed on ({fault})"
            )
        unstored.stored()
        if record is None:
            return error_response(404, "unknown_alert", f"no alert {alert_id!r}", "alert_id")
        meant = fields.starts_at
        # Told only where the alerts are current: another replica's copy may be behind.
        if meant is not None and meant != record.started and keeper.holds_work_queue():
            try:
                known = await keeper.alert_detail(alert_id)
            except (OSError, sqlite3.Error):  # only what the refusal says hangs on it
                known = None
            history = () if known is None else known.history
            return error_response(
                409, "another_episode", _another_episode(record, meant, history), "starts_at"
            )
        return web.json_response({"alert": record.as_json()})

    return [
        web.get("/v1/alerts", guard(list_alerts)),
        web.post(f"/v1/alerts/{ALERT_ID_SEGMENT}/ack", guard(ack)),
    ]


class _UnstoredAcks:
    """Acks the outbox could not store: each answered 503, the fault logged when it begins or
    changes, and its end once an ack is stored again."""

    def __init__(self) -> None:
        self._fault: str | None = None
        self._count = 0

    def refusal(self, fault: str, detail: str) -> web.Response:
        """The 503 of an ack refused for ``fault``, said as ``detail``."""
        self._count += 1
        if fault != self._fault:
            self._fault = fault
            _logger.warning(
                "alerts: an acknowledgement could not be stored (%s): answered 503 until it can",
                fault,
            )
        response = error_response(503, "not_committed", f"{detail}; retry later")
        response.headers["Retry-After"] = str(_RETRY_AFTER_SECONDS)
        return response

    def stored(self) -> None:
        if self._fault is not None:
            _logger.info("alerts: acknowledgements are stored again after %d refused", self._count)
            self._fault, self._count = None, 0


def _another_episode(record: AlertRecord, meant: datetime, history: Sequence[HistoryEntry]) -> str:
    """Why an ack naming the episode that started at ``meant`` left ``record`` as it is: its
    current (or, resolved, its last) episode started at another time, said with how far from
    ``meant`` and on which side, so that a typo (a day, 15:00 for 15:21) shows as one; an
    earlier time, by what the alert's ``history`` (oldest first) tells of it."""
    started = format_timestamp(record.started)
    given = format_timestamp(meant)
    if meant > record.started:  # the newest episode started before it: none started then
        where = f"{_gap(meant - record.started)} before the {given} given, which is later"
        why = "no episode of it started then, so that time is mistyped"
    else:
        where = f"{_gap(record.started - meant)} after the {given} given, which is earlier"
        why = _since_earlier(history, meant)
        if meant == record.started.replace(microsecond=0):
            # Its start cut to the second (typed, or copied from a page showing seconds): an
            # earlier episode that started at that second's very start is all but impossible.
            why = "that is its start to the second only: give it to the millisecond"
    if record.open:
        return (
            f"the current episode of alert {record.alert_id!r} started at {started}, {where}:"
            f" {why} ({started} names the episode firing now); it is left as it is"
        )
    # Resolved: whichever episode was meant, none is firing (an earlier one, or a typo's).
    ended = "" if record.ends_at is None else f" at {record.as_json()['ends_at']}"
    return (
        f"the last episode of alert {record.alert_id!r} started at {started}, {where}, and"
        f" resolved{ended}: no episode of it is firing to acknowledge; it is left as it is"
    )


def _since_earlier(history: Sequence[HistoryEntry], meant: datetime) -> str:
    """What the alert's ``history`` (oldest first) tells of a time earlier than its current
    episode's start: that it resolved after it (when, the first time) and fired again, so any
    episode then has ended; that it did not, so no episode started then (a typo); or, where the
    history does not reach back that far, either of the two."""
    since = meant.timestamp()
    fired = [index for index, entry in enumerate(history) if entry.event is HistoryEvent.FIRED]
    # Taken over from another replica, the changes made there are not in this one's history.
    taken_over = any(
        entry.event is HistoryEvent.TAKEN_OVER and entry.at >= since for entry in history
    )
    if fired and not taken_over:
        # An episode's start is capped at its receipt (``event_date``), and the resolve ending
        # it is dated by its own, later receipt: never before that start.
        ended = [
            entry.at
            for entry in history[: fired[-1]]
            if entry.event is HistoryEvent.RESOLVED and entry.at >= since
        ]
        if ended:
            resolved = format_timestamp(utc_from_seconds(ended[0]))
            return f"it resolved at {resolved} and fired again since"
        first = history[0]
        # The history reaches back to that time: it holds an entry as old (it is the newest
        # entries, unbroken), or it is whole from the alert's first firing here, and an earlier
        # record of it, forgotten only that long after it resolved, cannot have resolved since.
        if first.at <= since or (
            len(history) < HISTORY_KEPT
            and first.event is HistoryEvent.FIRED
            and since > first.at - RESOLVED_KEPT_SECONDS
        ):
            return (
                "it has not resolved since then, so no episode of it started then: that time is"
                " mistyped"
            )
    return "it resolved and fired again since, or that time is mistyped"


def _gap(between: timedelta) -> str:
    """``between`` exactly, to the millisecond, as people read it: ``1 day``, ``21 min``,
    ``2 h 0.599 s``: a whole day or hour apart reads as the typo it likely is."""
    millis = round(between.total_seconds() * 1000)
    days, millis = divmod(millis, 86_400_000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    parts = [f"{days} day" + ("s" if days > 1 else "")] if days else []
    parts += [f"{hours} h"] if hours else []
    parts += [f"{minutes} min"] if minutes else []
    if millis:
        parts.append(f"{millis / 1000:.3f}".rstrip("0").rstrip(".") + " s")
    return " ".join(parts)


def work_queue_lease(keeper: LeaseView) -> str:
    """Where the work-queue lease is, as ``GET /v1/alerts`` says it: ``here`` (this replica
    holds it, or runs the in-process bus: its alerts are the cluster's), ``elsewhere`` (another
    replica holds it, named in ``work_queue_holder_name`` when known: ask it), ``kept`` (this
    replica keeps the lease it took back after Redis lost its data, its take-up of the work queue
    failing: no replica serves the work queue meanwhile), or ``unknown`` (this replica cannot use
    Redis: unreachable, or refusing the lease's commands; so whichever replica holds it cannot be
    known here)."""
    if keeper.holds_work_queue():
        return "here"
    if not keeper.work_queue_reachable():
        return "unknown"
    return "kept" if keeper.work_queue_lease_kept() else "elsewhere"


async def _send_alerts(
    response: web.StreamResponse,
    keeper: AlertKeeper,
    query: AlertQuery,
    page: Sequence[AlertRecord],
) -> None:
    """``GET /v1/alerts``'s body: ``page`` (the first), then the pages after it up to
    ``query.limit``, each read as the one before is sent, then the lease fields."""
    await response.write(b'{"alerts": [')
    listed = 0
    # An alert that changed between two pages with the wall clock set back (its updated_at
    # below the cursor) would be read again: each alert is sent once, as first read. Ids by a
    # 16-byte digest: 10 000 of them some 1.5 MB, where ids of 4 096 characters would be 40.
    sent: set[bytes] = set()
    asked = min(_PAGE, query.limit)  # what the page read was asked for: fewer, and none is left
    while page:
        fresh = [record for record in page if _first(record.alert_id, sent)]
        if fresh:
            await response.write((", " if listed else "").encode() + _json_list(fresh))
        listed += len(fresh)
        left = query.limit - listed
        if len(page) < asked or not left:
            break
        asked = min(_PAGE, left)
        after = query.model_copy(update={"limit": asked})
        page = await keeper.list_alerts(after, after=page[-1])
    lease = {
        "work_queue_holder": keeper.holds_work_queue(),
        "work_queue_holder_name": keeper.work_queue_holder(),
        "work_queue_lease": work_queue_lease(keeper),
        "work_queue_reachable": keeper.work_queue_reachable(),
    }
    await response.write(b"], " + json.dumps(lease)[1:].encode())
    await response.write_eof()


def _first(alert_id: str, sent: set[bytes]) -> bool:
    """Whether ``alert_id`` is not in ``sent`` (by its digest), which it is added to."""
    digest = hashlib.blake2b(alert_id.encode(errors="surrogatepass"), digest_size=16).digest()
    if digest in sent:
        return False
    sent.add(digest)
    return True


def _json_list(records: Sequence[AlertRecord]) -> bytes:
    """``records`` as ``GET /v1/alerts`` lists them, without the brackets."""
    return ", ".join(json.dumps(record.as_json()) for record in records).encode()


def _alert_id_fault(alert_id: str) -> str | None:
    """Why no alert has ``alert_id``, as both routes refuse it: empty, longer than an alert id
    can be, or holding a control character (ingest refuses each); None when an alert may have
    it."""
    if len(alert_id) > MAX_TEXT:
        return f"alert_id must be a string of 1-{MAX_TEXT} characters"
    if not alert_id:
        return (
            "alert_id must not be empty (no alert id is): give an alert's id, as GET /v1/alerts"
            " lists it, or leave alert_id out to list every alert"
        )
    if _CONTROL_CHARACTER.search(alert_id):
        return "alert_id must not contain control characters (no alert id holds one)"
    return None


def _field_of(exc: ValidationError) -> str:
    """The field of the first error (fields are checked in the order the model lists them)."""
    return str(exc.errors()[0]["loc"][0])
