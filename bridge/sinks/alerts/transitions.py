"""The alert state machine as pure functions: an alert, what happened and when → the next alert.

Nothing here reads a clock or a database: the outbox looks the alert up, asks one of these
functions what follows, and stores that in the same transaction. The transitions::

    (none), resolved ── firing event ──> firing, at level1 (a new episode)
    firing ── ack ──> acknowledged
    firing ── escalation ──> firing at the next level (level1 → level2 → level3)
    firing, acknowledged ── resolved event, ack with a resolution, expiry ──> resolved

An event sent before the one that last changed the alert (``superseded``) moves nothing; a
resolved event for an alert resolved already moves only its date (``event_at``).

Each change also says what happened, in a sentence, for the alert's history. A ``Plan`` is
the transitions one change makes (a batch of events, an escalation tick), worked out before
anything is stored; on the Redis bus it is made in Redis first (see ``index``). ``adopted``
brings a replica's alert in line with the open alerts kept in Redis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Final

from bridge.sinks.alerts.records import (
    MAX_LEVEL,
    Acknowledgement,
    AlertRecord,
    AlertState,
    HistoryEntry,
    HistoryEvent,
)

if TYPE_CHECKING:  # sources imports the cluster and the bus: `outbox list` needs neither
    from bridge.sinks.alerts.sources import AlertEvent

__all__ = [
    "HEALTH_CONDITIONS",
    "STALE_CONDITIONS",
    "Effect",
    "Plan",
    "Transition",
    "adopted",
    "escalation",
    "event_alert_cap",
    "event_date",
    "expiry",
    "notified_state",
    "on_ack",
    "on_event",
    "open_cap",
    "opens",
    "superseded",
]


# The alerts a health reading keeps up (each reading at their status is seen) and a healthy one
# ends: a host resource's metric_threshold is not among them, being kept up by its MetricAlerts
# (sent again with every sample that breaches) and ended by its resource's own check.
HEALTH_CONDITIONS: Final = frozenset({"node_health", "component_health"})
# The condition alerts (not auto_resolve) that end once nothing kept them up for the stale time
# (``expiry``): the health conditions, and a host resource's metric_threshold, which the health
# collector keeps up by sending its MetricAlert again with every sample that breaches.
_RESOURCE_THRESHOLD: Final = "metric_threshold"
STALE_CONDITIONS: Final = HEALTH_CONDITIONS | {_RESOURCE_THRESHOLD}


class Effect(Enum):
    """What a transition asks of the store."""

    NONE = "none"  # nothing changes
    SEEN = "seen"  # only last_seen (and auto_resolve) move: stored, nobody is told
    CHANGED = "changed"  # stored and reported as changed, no notification queued
    NOTIFY = "notify"  # stored, reported, and queued for every receiver


@dataclass(frozen=True, slots=True)
class Transition:
    """The alert after what happened (None: no such alert), what that asks of the store, and
    the entry for the alert's history (stored with a change; not compared: it describes the
    change, it is not part of it)."""

    record: AlertRecord | None
    effect: Effect = Effect.NONE
    entry: HistoryEntry | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Plan:
    """What one change does to the alerts, in order: the transitions that ask something of the
    store (each with its record), the new alerts refused (the open-alert cap), the events left
    out as stale (``superseded``: counted where the plan was made, not carried in its note),
    its id, and the time it is stored at. ``resolves``: the resolved events of alerts unknown
    here, as (alert id, date, until when it is kept), which the store remembers as it stores
    the plan (``AlertStore.plan``; kept by this replica alone, not carried in its note), or on
    Redis the index keeps with the dates of notified changes (``AlertIndex.change``)."""

    id: str
    now: float
    steps: tuple[Transition, ...] = ()
    refused: int = 0
    stale: int = 0
    resolves: tuple[tuple[str, float, float], ...] = ()

    @property
    def records(self) -> list[AlertRecord]:
        """The alerts as the plan leaves them, each once (its last step)."""
        last = {step.record.alert_id: step.record for step in self.steps if step.record}
        return list(last.values())


def opens(current: AlertRecord | None, event: AlertEvent) -> bool:
    """True when ``event`` would open an alert that is not open now (the open-alert cap)."""
    return event.firing and (current is None or not current.open)


# The alerts the last tenth of the open-alert cap is kept for: those the bridge derives about
# the cluster's nodes (the conditions below, and node_failure, the cluster monitor's grouped one
# included), so that a sender raising event alerts under ids of its own, a new one per message,
# never keeps a node going down from alerting.
_NODE_FAILURE: Final = "node_failure"


def open_cap(event: AlertEvent, max_open: int) -> int:
    """The open alerts (firing or acknowledged) at which ``event`` may open no new alert:
    ``max_open`` for a node's condition (health, a host resource, ``node_failure``),
    ``event_alert_cap`` for an event alert (one that resolves itself: SystemAlert,
    SecurityAlert, AccessViolation, a MetricAlert on another metric)."""
    if not event.auto_resolve or event.alertname == _NODE_FAILURE:
        return max_open
    return event_alert_cap(max_open)


def event_alert_cap(max_open: int) -> int:
    """Nine tenths of ``max_open``: the open alerts at which an event alert opens no new one."""
    return max_open - max_open // 10


def superseded(
    current: AlertRecord | None,
    event: AlertEvent,
    now: float,
    *,
    latest: float | None = None,
    known_at: float | None = None,
) -> bool:
    """True when ``event`` would re-open, resolve, or change the severity of ``current`` but
    was sent before the event that last fired, kept up, changed or resolved it
    (``AlertRecord.event_at``): a message delivered late (redelivered after a work-queue
    holder died, or overtaken on the way) must not undo a newer one. Only the times of messages
    about the same alert are compared, each as ``on_event`` takes it (never after its receipt);
    an alert without ``event_at`` (stored before it was kept) takes every event, as before.
    ``latest`` (``now`` when None) is now by the clock the replicas share: see ``event_date``.
    ``known_at``: the date of the alert's last notified change at the work-queue holders
    (``AlertIndex.dates``), which a firing event sent before it does not re-open where the
    alert is unknown either: the event of that change may never come here again.
    """
    latest = now if latest is None else latest
    if current is None and known_at is not None and event.firing:
        return event_date(event, latest) < known_at
    if current is None or current.event_at is None or event_date(event, latest) >= current.event_at:
        return False
    if event.firing:
        return not current.open or current.severity != event.severity
    return current.open


def on_event(
    current: AlertRecord | None, event: AlertEvent, now: float, *, latest: float | None = None
) -> Transition:
    """An alert event: a firing one opens or updates the alert, a resolved one ends it.

    A firing event for an alert already open at the same severity only records that it was seen
    (``last_seen``, which keeps an event alert from auto-resolving): an ongoing condition is not
    notified again. At another severity it is notified again, keeping its start, and needs
    acknowledging as the event says (a warning turned critical escalates from then on). An
    event alert repeated by a condition alert becomes a condition alert. A resolved event for
    a resolved alert only moves its date (``event_at``) forward, when sent after it, notifying
    nobody: a firing event sent before the resolve, delivered after it, is then ``superseded``.
    One for an unknown alert changes nothing here (``AlertStore.plan`` remembers its date for a
    while), and neither does a ``superseded`` event (``latest`` as there).
    """
    latest = now if latest is None else latest
    if superseded(current, event, now, latest=latest):
        return Transition(current)
    if not event.firing:
        if current is None:
            return Transition(current)
        if not current.open:
            when = event_date(event, latest)
            if current.event_at is not None and when <= current.event_at:
                return Transition(current)
            return Transition(replace(current, event_at=when), Effect.SEEN)
        ended = replace(
            current,
            state=AlertState.RESOLVED,
            ends_at=max(min(event_date(event, latest), now), current.starts_at),
            updated_at=now,
            event_at=event_date(event, latest),
        )
        cleared = HistoryEntry(now, HistoryEvent.RESOLVED, "the condition cleared")
        return Transition(ended, Effect.NOTIFY, cleared)
    if current is None or not current.open:
        fired = HistoryEntry(now, HistoryEvent.FIRED, f"{event.severity} on {event.node}")
        return Transition(_new(event, now, latest), Effect.NOTIFY, fired)
    auto_resolve = current.auto_resolve and event.auto_resolve
    # The newest of the events that kept it up (one older than it, at the same severity, is
    # still seen: it changes nothing a receiver hears of).
    event_at = max(event_date(event, latest), current.event_at or 0.0)
    if current.severity == event.severity:
        seen = replace(current, last_seen=now, auto_resolve=auto_resolve, event_at=event_at)
        return Transition(seen, Effect.SEEN)
    # Whether it needs acknowledging follows the severity; the escalation period starts when
    # it begins to.
    needs_ack = event.requires_ack and not current.requires_ack
    changed = replace(
        current,
        severity=event.severity,
        title=event.title,
        description=event.description,
        details=event.details,
        requires_ack=event.requires_ack,
        updated_at=now,
        level_since=now if needs_ack else current.level_since,
        last_seen=now,
        auto_resolve=auto_resolve,
        event_at=event_at,
    )
    entry = HistoryEntry(
        now, HistoryEvent.SEVERITY_CHANGED, f"{current.severity} → {event.severity}"
    )
    return Transition(changed, Effect.NOTIFY, entry)


def event_date(event: AlertEvent, latest: float) -> float:
    """When ``event`` happened, by its message's timestamp, but never after ``latest``: a
    sender whose clock runs ahead would otherwise start (or end) an alert in the future, which
    Alertmanager holds active until then whatever ``endsAt`` says later. ``latest`` is now by
    the clock the replicas share (Redis's): by a holder's own, behind the last holder's by more
    than an outage, a node's return dated by Redis would be taken as older than its down. The
    times receivers are told (``starts_at``, ``ends_at``) are capped at ``now`` as well: a Redis
    clock ahead of this replica's must not put them in the future either."""
    return min(event.at.timestamp(), latest)


def _new(event: AlertEvent, now: float, latest: float) -> AlertRecord:
    return AlertRecord(
        alert_id=event.alert_id,
        alertname=event.alertname,
        severity=event.severity,
        category=event.category,
        node=event.node,
        title=event.title,
        description=event.description,
        requires_ack=event.requires_ack,
        state=AlertState.FIRING,
        level=1,
        starts_at=min(event_date(event, latest), now),
        updated_at=now,
        ends_at=None,
        level_since=now,
        auto_resolve=event.auto_resolve,
        last_seen=now,
        source=event.source,
        details=event.details,
        event_at=event_date(event, latest),
    )


def on_ack(current: AlertRecord | None, ack: Acknowledgement, now: float) -> Transition:
    """An acknowledgement; one with a ``resolution`` also resolves the alert (and notifies),
    dated (``event_at``) just after the newest event the alert had seen.

    Acknowledging twice, or after the alert resolved, changes nothing (the alert is returned as
    it is), nor does an ack for another episode of it (``ack.starts_at``: it resolved and fired
    again since the ack was made); an unknown alert gives ``Transition(None)``.
    """
    if current is None or current.state is AlertState.RESOLVED:
        return Transition(current)
    if ack.starts_at is not None and ack.starts_at != current.started:
        return Transition(current)
    if current.state is AlertState.ACKNOWLEDGED and ack.resolution is None:
        return Transition(current)
    event_at = current.event_at
    if ack.resolution and event_at is not None:
        # The resolve is dated just after the newest event the alert had seen, the date the
        # next work-queue holders keep (``AlertIndex.dates``): every event it had seen then,
        # one delivered again among them, is ``superseded``; any sent since fires it anew.
        # Not by the clock: an event's date is its sender's, a holder's own may run ahead.
        event_at = math.nextafter(event_at, math.inf)
    changed = replace(
        current,
        state=AlertState.RESOLVED if ack.resolution else AlertState.ACKNOWLEDGED,
        ack_by=ack.ack_by,
        ack_note=ack.ack_note,
        ack_at=now,
        resolution=ack.resolution,
        updated_at=now,
        ends_at=now if ack.resolution else current.ends_at,
        event_at=event_at,
    )
    if ack.resolution:
        resolved = HistoryEntry(now, HistoryEvent.RESOLVED, f"by {ack.ack_by}: {ack.resolution}")
        return Transition(changed, Effect.NOTIFY, resolved)
    by = f"by {ack.ack_by}" + (f": {ack.ack_note}" if ack.ack_note else "")
    return Transition(changed, Effect.CHANGED, HistoryEntry(now, HistoryEvent.ACKNOWLEDGED, by))


def escalation(current: AlertRecord, now: float, after_seconds: float) -> Transition:
    """One level up for a firing ``requires_ack`` alert left ``after_seconds`` at its level.

    One whose period started after ``now`` (the wall clock was set back since) has it restart
    ``now``, stored without a notification: it escalates a period after the jump, not as much
    later as the clock went back, nor at once.
    """
    waiting = (
        current.state is AlertState.FIRING and current.requires_ack and current.level < MAX_LEVEL
    )
    if waiting and current.level_since > now:
        return Transition(replace(current, level_since=now), Effect.CHANGED)
    if not (waiting and current.level_since <= now - after_seconds):
        return Transition(current)
    raised = replace(current, level=current.level + 1, level_since=now, updated_at=now)
    entry = HistoryEntry(
        now, HistoryEvent.ESCALATED, f"{current.level_name} → {raised.level_name}, not acknowledged"
    )
    return Transition(raised, Effect.NOTIFY, entry)


def expiry(
    current: AlertRecord, now: float, after_seconds: float, stale_after: float | None = None
) -> Transition:
    """An event alert not seen for ``after_seconds`` resolves (Alertmanager's
    ``resolve_timeout``); a ``requires_ack`` one only once acknowledged, counting from the
    acknowledgement. It ends ``after_seconds`` after it was last seen.

    With ``stale_after``, so does a condition alert (``STALE_CONDITIONS``) nothing has kept up
    for that long: a health condition alert no reading kept up (every reading at its status
    keeps it up, a healthy one resolves it), and a host resource's ``metric_threshold`` no
    MetricAlert kept up (the health collector sends one with every sample that breaches). A
    component or node removed, renamed or no longer run, or a sender that raised one once and
    reports no per-resource checks, sends nothing more, so nothing else would ever end it (as
    a Prometheus rule's alert ends once its series is gone).

    One last seen (or acknowledged) after ``now`` (the wall clock was set back since) has its
    wait restart ``now``, stored without a notification: it resolves ``after_seconds`` after the
    jump, not as much later as the clock went back, nor at once."""
    after: float | None
    if current.auto_resolve:
        after, why = after_seconds, f"not seen for {after_seconds:g} s"
    elif current.alertname in STALE_CONDITIONS:
        after = stale_after  # None: not yet (the sink has not run long enough)
        why = "" if stale_after is None else _stale_reason(current.alertname, stale_after)
    else:
        return Transition(current)
    waiting = current.state is AlertState.ACKNOWLEDGED or (
        current.state is AlertState.FIRING and not current.requires_ack
    )
    last_seen = current.updated_at if current.last_seen is None else current.last_seen
    seen = max(last_seen, 0.0 if current.ack_at is None else current.ack_at)
    if waiting and seen > now:
        ack_at = None if current.ack_at is None else min(current.ack_at, now)
        restarted = replace(current, last_seen=min(last_seen, now), ack_at=ack_at)
        return Transition(restarted, Effect.CHANGED)
    if after is None or not waiting or seen > now - after:
        return Transition(current)
    ended = replace(
        current,
        state=AlertState.RESOLVED,
        ends_at=max(seen + after, current.starts_at),
        updated_at=now,
    )
    return Transition(ended, Effect.NOTIFY, HistoryEntry(now, HistoryEvent.RESOLVED, why))


def _stale_reason(alertname: str, stale_after: float) -> str:
    if alertname == _RESOURCE_THRESHOLD:
        return f"no MetricAlert for {stale_after:g} s"
    return f"no health reading for {stale_after:g} s"


def notified_state(record: AlertRecord | None) -> tuple[object, ...] | None:
    """What only a notified change of an alert moves (its episode's start, severity and level;
    None once it is not open): two records that differ in it were told of different changes.
    An acknowledgement, or the alert seen again, is no notified change."""
    if record is None or not record.open:
        return None
    return (record.starts_at, record.severity, record.level)


def adopted(current: AlertRecord | None, kept: AlertRecord | None, now: float) -> Transition:
    """This replica's alert brought in line with the open alert the work-queue holders keep in
    Redis (``kept``, None when it is not open there). Receivers already heard of every change,
    so nothing is notified: a kept record replaces ours, and an alert open here but not there
    was resolved by another holder."""
    if kept is not None:
        # Redis does not carry event_at (a replica of the version before it could not read a
        # record that does): ours stands for the same episode; of another, none is known.
        if current is not None and kept.event_at is None and current.starts_at == kept.starts_at:
            kept = replace(kept, event_at=current.event_at)
        if current == kept:
            return Transition(current)
        taken = f"taken over {kept.state} at {kept.level_name}"
        return Transition(kept, Effect.CHANGED, HistoryEntry(now, HistoryEvent.TAKEN_OVER, taken))
    if current is None or not current.open:
        return Transition(current)
    closed = replace(current, state=AlertState.RESOLVED, ends_at=now, updated_at=now)
    entry = HistoryEntry(now, HistoryEvent.RESOLVED, "resolved by another work-queue holder")
    return Transition(closed, Effect.CHANGED, entry)
