"""The alert stage's values: alert records, deliveries, their states and what a change did."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from bridge.messages import format_timestamp, utc_from_seconds

__all__ = [
    "MAX_LEVEL",
    "RETRIED_STATUSES",
    "Acknowledgement",
    "ActiveCounts",
    "AlertDetail",
    "AlertRecord",
    "AlertState",
    "Applied",
    "Delivery",
    "DeliveryState",
    "Escalated",
    "HistoryEntry",
    "HistoryEvent",
    "OutboxDepth",
    "Recipients",
    "Unretryable",
    "refused",
]

MAX_LEVEL: Final = 3
# Answers below 500 that ask for the request again (``delivery.classify`` retries them, as every
# 5xx): 408 Request Timeout (RFC 9110 15.5.9: the server gave up waiting for it, and the client
# may repeat it), 425 Too Early (RFC 8470 5.2: "MAY automatically retry") and 429 Too Many
# Requests.
RETRIED_STATUSES: Final = frozenset({408, 425, 429})


class AlertState(StrEnum):
    """Where an alert is in its life."""

    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class HistoryEvent(StrEnum):
    """What happened to an alert, as its history records it."""

    FIRED = "fired"
    SEVERITY_CHANGED = "severity_changed"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    TAKEN_OVER = "taken_over"


class DeliveryState(StrEnum):
    """Where a delivery is: still to send, sent, dead-lettered (kept for ``outbox retry``), or
    stale: never to be sent, its alerts' newer notifications (or the same ones, of a change whose
    note it took over) being another replica's (on Redis, ``DeliveryQueue.withhold``); one left
    out while an attempt was in flight that the receiver took is delivered all the same. The
    moves between them: ``DeliveryQueue.finish_attempt``."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    STALE = "stale"


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return format_timestamp(utc_from_seconds(seconds))


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert condition as stored; times are Unix seconds (they must survive a restart)."""

    alert_id: str
    alertname: str
    severity: str
    category: str
    node: str
    title: str
    description: str
    requires_ack: bool
    state: AlertState
    level: int
    starts_at: float
    updated_at: float
    ends_at: float | None
    level_since: float
    ack_by: str | None = None
    ack_note: str | None = None
    ack_at: float | None = None
    resolution: str | None = None
    auto_resolve: bool = False
    last_seen: float | None = None
    # A SystemAlert's component and its metadata as annotations (sources.details_of).
    source: str | None = None
    details: tuple[tuple[str, str], ...] = ()
    # When the newest message that fired, kept up, changed or resolved it was sent (its
    # timestamp, never after its receipt): an event older than it is stale (transitions.on_event).
    # Resolved by an acknowledgement's resolution, just after it (transitions.on_ack).
    # None for an alert stored before it was kept, or taken from Redis, which does not carry it.
    event_at: float | None = None

    @property
    def open(self) -> bool:
        """Firing or acknowledged: not resolved."""
        return self.state is not AlertState.RESOLVED

    @property
    def started(self) -> datetime:
        """When this episode of the alert started, to the millisecond, as ``GET /v1/alerts``
        shows it (``starts_at``): what names the episode an acknowledgement is for (truncated
        as a message's ``Timestamp`` is, without the models' module: ``outbox list`` reads
        records without pydantic)."""
        started = utc_from_seconds(self.starts_at)
        return started.replace(microsecond=started.microsecond - started.microsecond % 1000)

    @property
    def level_name(self) -> str:
        """``level1`` … ``level3``."""
        return f"level{self.level}"

    @property
    def labels(self) -> dict[str, str]:
        """The labels every notification of this alert carries."""
        labels = {
            "alertname": self.alertname,
            "severity": self.severity,
            "category": self.category,
            "node": self.node,
            "alert_id": self.alert_id,
        }
        if self.source is not None:
            labels["source"] = self.source
        if self.level > 1:
            labels["escalation_level"] = self.level_name
        return labels

    @property
    def annotations(self) -> dict[str, str]:
        """The human text: title, description and the metadata its message carried."""
        return {"title": self.title, "description": self.description, **dict(self.details)}

    @property
    def sent_annotations(self) -> dict[str, str]:
        """The annotations as receivers and Alertmanager get them: ``summary`` (the title, under
        the name Alertmanager and Prometheus rules give it: ``amtool`` shows it) beside
        ``annotations``."""
        return {"summary": self.title, **self.annotations}

    def as_json(self) -> dict[str, Any]:
        """The alert as ``GET /v1/alerts`` shows it."""
        return {
            "alert_id": self.alert_id,
            "state": str(self.state),
            "level": self.level_name,
            "severity": self.severity,
            "requires_ack": self.requires_ack,
            "labels": self.labels,
            # As receivers get them, as the alert's page shows them: one set of annotations.
            "annotations": self.sent_annotations,
            "starts_at": _iso(self.starts_at),
            "updated_at": _iso(self.updated_at),
            "ends_at": _iso(self.ends_at),
            "ack_by": self.ack_by,
            "ack_note": self.ack_note,
            "ack_at": _iso(self.ack_at),
            "resolution": self.resolution,
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    """One payload for one receiver, with its attempts so far."""

    id: str
    url: str
    body: bytes
    alert_ids: tuple[str, ...]
    created_at: float
    attempts: int
    next_attempt_at: float
    state: DeliveryState
    last_status: int | None
    last_error: str | None
    finished_at: float | None
    retried_at: float | None = None
    renotified_at: float | None = None

    @property
    def deadline_from(self) -> float:
        """When its deadline started: when it was made, or last put back by ``outbox retry``
        (the later of the two: a retry by an older version, which reset ``created_at``, wins)."""
        if self.retried_at is None:
            return self.created_at
        return max(self.created_at, self.retried_at)

    def summary(self) -> dict[str, Any]:
        """The delivery without its body, for listings."""
        return {
            "id": self.id,
            "url": self.url,
            "state": str(self.state),
            "alerts": len(self.alert_ids),
            "attempts": self.attempts,
            "created_at": _iso(self.created_at),
            "next_attempt_at": _iso(self.next_attempt_at)
            if self.state is DeliveryState.PENDING
            else None,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "finished_at": _iso(self.finished_at),
            "retried_at": _iso(self.retried_at),
            "renotified_at": _iso(self.renotified_at),
        }


@dataclass(frozen=True, slots=True)
class Unretryable:
    """A dead letter ``DeadLetters.retry`` must leave, and why: its receiver (``receiver``, its key)
    is not one the bridge last started with (``configured`` false: no worker would send it), or
    it fires alerts whose resolve the receiver has since been sent (``resolved``: each alert's
    id and when it resolved, as the resolve said), so sent again it would leave them firing, or
    it resolves alerts the receiver has since been sent firing again (``refired``: their ids),
    so sent again it would show them resolved while they fire; or it is ``superseded`` (with
    these, and the last two below, too when each of its alerts is one of them or one taken
    since): the receiver took a later delivery of each of its alerts, so sent again it would
    tell it an older state of them after the newer one; or, named without them, it fires
    alerts whose resolves wait dead-lettered too (``resolves_dead``: each alert's id and the id
    of the delivery of its resolve), so sent alone it would leave them firing at the receiver;
    or a later notification of some of its alerts to the receiver, the latest made of them, was
    left out as stale (``left_out``: their ids): never to be sent (another replica notified a
    newer state of them, on Redis, or they resolved before reaching a receiver not sent
    resolves), so sent again this older one would tell the receiver an older state last; or
    it fires alerts resolved since of which nothing was made for the receiver since nor waits
    for it (``resolved_untold``: their ids; another replica resolved them, on Redis, or the
    receiver is not sent resolves), so sent again it would leave them firing there for good."""

    delivery_id: str
    receiver: str
    configured: bool
    resolved: tuple[tuple[str, str], ...] = ()
    refired: tuple[str, ...] = ()
    superseded: bool = False
    resolves_dead: tuple[tuple[str, str], ...] = ()
    left_out: tuple[str, ...] = ()
    resolved_untold: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Escalated:
    """An alert that moved up one escalation level."""

    alert: AlertRecord
    from_level: str
    to_level: str


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """An AlertAck to apply along with alert events; with ``starts_at`` (the start of the
    episode its maker saw, to the millisecond), only to that episode of the alert."""

    alert_id: str
    ack_by: str
    ack_note: str | None = None
    resolution: str | None = None
    starts_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    """What a batch of changes did: the alerts receivers must hear of, refusals, the events
    left out as stale (older than the event that last changed their alert), and the resolves
    of unknown alerts forgotten before their time (``RESOLVES_REMEMBERED`` kept already)."""

    changed: list[AlertRecord]
    refused: int = 0
    stale: int = 0
    forgotten: int = 0


@dataclass(frozen=True, slots=True)
class OutboxDepth:
    """How much is waiting: alerts in grouping windows, pending and dead deliveries, and of
    the dead ones how many are superseded (``DeadLetters.superseded_count``)."""

    queued: int
    pending: int
    dead: int
    superseded: int = 0


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One change of an alert: when (Unix seconds), what, and a sentence of detail."""

    at: float
    event: HistoryEvent
    detail: str


@dataclass(frozen=True, slots=True)
class ActiveCounts:
    """The open alerts by severity as the alert sink last counted them, and whether any alert
    fired since (then there may be more than counted: the count is not known to be whole)."""

    by_severity: Mapping[str, int]
    fired_since: bool


@dataclass(frozen=True, slots=True)
class Recipients:
    """Where the alert sink sends alerts, as the pages show it: each webhook receiver's outbox
    key and label (``receiver_label`` without user info), and the Alertmanager posted to
    (``safe_url`` without user info), if any, with why its posts fail while they do, and how
    many dead-lettered deliveries need someone (not superseded) as last counted."""

    webhooks: tuple[tuple[str, str], ...]
    alertmanager: str | None = None
    alertmanager_failing: str | None = None  # "<why> (<n> failed posts)"; None: taken
    dead_letters: int = 0


@dataclass(frozen=True, slots=True)
class AlertDetail:
    """One alert with its history (oldest first), its deliveries (newest first), the
    receivers whose grouping window it waits in: ``(url, queued since)``, and ``ahead``: for
    each receiver one of its pending deliveries waits for, the older delivery of another alert
    at the head of that receiver's queue (sent in order, its retries hold this one back), and
    ``held``: for each grouping window it waits in that is held while its receiver fails, the
    failing delivery holding it (docs/alerts.md#delivery)."""

    alert: AlertRecord
    history: tuple[HistoryEntry, ...]
    deliveries: tuple[Delivery, ...]
    waiting: tuple[tuple[str, float], ...]
    ahead: tuple[Delivery, ...] = ()
    held: tuple[Delivery, ...] = ()


def refused(status: int | None, error: str | None) -> bool:
    """Whether a delivery's last attempt, answered ``status`` and recorded with ``error``, had
    a final answer: the receiver answered, and refused it (a 4xx, a redirect not followed),
    rather than failing to take it (no answer, a 5xx, a 408, 425 or 429, or a redirect or an
    oauth2 401 retried, each recorded with its reason)."""
    if status is None or error != f"HTTP {status}":
        return False
    return not (200 <= status < 300 or status >= 500 or status in RETRIED_STATUSES)
