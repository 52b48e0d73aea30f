"""The alert states in the outbox: each alert's record and history, changed only by stored plans.

Every change of alert states is a ``Plan`` (``transitions``): ``plan_*`` work one out (reading
only), ``commit`` stores it in one transaction; ``apply``, ``acknowledge``, ``escalate_due`` and
``resolve_expired`` do both at once (the in-process bus). On Redis the alert stage makes a plan
in Redis between the two (``index``). A stored change the receivers must hear of is queued for
each of them (``DeliveryQueue.enqueue``) in the same transaction. (Not to be confused with
``adopt_open_alerts``: on Redis, the alert states a new work-queue holder takes up.)

Times are Unix seconds from the injected wall clock, since they must survive a restart.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import replace
from typing import TYPE_CHECKING, Final

from bridge.bus import new_message_id
from bridge.sinks.alerts.database import Database, OutboxDisplaced
from bridge.sinks.alerts.queue import DeliveryQueue
from bridge.sinks.alerts.records import (
    MAX_LEVEL,
    Acknowledgement,
    AlertDetail,
    AlertRecord,
    AlertState,
    Applied,
    Escalated,
    HistoryEntry,
    HistoryEvent,
)
from bridge.sinks.alerts.retention import HISTORY_KEPT
from bridge.sinks.alerts.rows import alert_params, matching, record_of
from bridge.sinks.alerts.transitions import (
    STALE_CONDITIONS,
    Effect,
    Plan,
    Transition,
    adopted,
    escalation,
    event_date,
    expiry,
    notified_state,
    on_ack,
    on_event,
    open_cap,
    opens,
    superseded,
)

if TYPE_CHECKING:  # sources imports the cluster and the bus: `outbox list` needs neither
    from bridge.sinks.alerts.sources import AlertEvent

__all__ = ["RESOLVES_REMEMBERED", "AlertStore", "escalations", "resolutions"]

_STORE_ALERT: Final = """
INSERT OR REPLACE INTO alerts (
    alert_id, alertname, severity, category, node, title, description, requires_ack, state,
    level, starts_at, updated_at, ends_at, level_since, ack_by, ack_note, ack_at, resolution,
    auto_resolve, last_seen, source, details, event_at
) VALUES (
    :alert_id, :alertname, :severity, :category, :node, :title, :description, :requires_ack,
    :state, :level, :starts_at, :updated_at, :ends_at, :level_since, :ack_by, :ack_note,
    :ack_at, :resolution, :auto_resolve, :last_seen, :source, :details, :event_at
)
"""
_SEEN_ALERT: Final = (
    "UPDATE alerts SET last_seen = :last_seen, auto_resolve = :auto_resolve,"
    " event_at = :event_at WHERE alert_id = :alert_id"
)
_RESOLVED: Final = {"resolved": AlertState.RESOLVED.value}
# The resolves of unknown alerts remembered at most (``AlertStore.plan``), the oldest forgotten
# first: one per node that came back (node_failure) in the usual case, the cluster's nodes
# being at most 10 000 (``bridge.cluster.MAX_NODES``).
RESOLVES_REMEMBERED: Final = 10_000


class AlertStore:
    """The alerts table and their history; see the module docstring. Notifications go to
    ``queue``.

    ``displaced`` (``Outbox.displaced``: two stats) is asked after each change whose storing
    is answered for (``apply``, ``commit``, ``acknowledge``: ingest's 202, the work queue's
    acknowledgement, the alert API's 200): committed to a file no longer at its path, the
    change raises ``OutboxDisplaced``. It stays in the file held open, whose deliveries the
    workers still send, as do the other changes (attempts, escalations in process).
    """

    def __init__(
        self,
        database: Database,
        queue: DeliveryQueue,
        *,
        displaced: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._database = database
        self._queue = queue
        self._displaced = displaced
        # Ids of the alerts not resolved, kept beside the table (written only in _store, in a
        # transaction): a resolved event for any other alert changes nothing, and the sink asks
        # may_be_active() before paying a thread hop and a transaction to learn that.
        with database.read() as db:
            rows = db.execute("SELECT alert_id FROM alerts WHERE state != :resolved", _RESOLVED)
            self._active: set[str] = {row[0] for row in rows}
        self._resolved: set[str] = set()  # resolved in the open transaction
        # The resolves of alerts unknown here (alert id → the newest one's date, and until when
        # it is kept), oldest first: see plan(). On the database thread, as plans are.
        self._resolves: dict[str, tuple[float, float]] = {}
        self._count_mark = 0  # see count_mark
        database.on_end(self._ended)

    def _ended(self, committed: bool) -> None:
        # Forgotten as active only once the resolution is committed (see may_be_active).
        if committed:
            self._active.difference_update(self._resolved)
        self._resolved.clear()

    def get(self, alert_id: str) -> AlertRecord | None:
        """The alert named ``alert_id``, if known."""
        with self._database.read() as db:
            row = db.execute(
                "SELECT * FROM alerts WHERE alert_id = :alert_id", {"alert_id": alert_id}
            ).fetchone()
        return record_of(row) if row is not None else None

    def find(
        self,
        state: str | None = None,
        limit: int = 1000,
        *,
        alert_id: str | None = None,
        by_start: bool = False,
        after: AlertRecord | None = None,
    ) -> list[AlertRecord]:
        """Alerts, most recently changed first (``by_start``: most recently fired first), those
        changed (fired) at the same time by id, last first; only those matching each filter
        given, and with ``after`` only those listed after it (the last of a page: the next
        page). Read from an index in that order, so a page costs its own rows only."""
        where, params = matching({"state": state, "alert_id": alert_id})
        order = "starts_at" if by_start else "updated_at"
        if after is not None:
            where += " AND" if where else " WHERE"
            where += f" ({order}, alert_id) < (:after_at, :after_id)"
            at = after.starts_at if by_start else after.updated_at
            params = {**params, "after_at": at, "after_id": after.alert_id}
        query = (
            f"SELECT * FROM alerts{where}"  # noqa: S608
            f" ORDER BY {order} DESC, alert_id DESC LIMIT :limit"
        )
        with self._database.read() as db:
            return [record_of(row) for row in db.execute(query, {**params, "limit": limit})]

    def detail(self, alert_id: str) -> AlertDetail | None:
        """The alert named ``alert_id`` with its history, its deliveries (the newest 50), the
        grouping windows it waits in (and the failing deliveries holding them), and the older
        deliveries its pending ones wait behind;
        None when unknown. One consistent read."""
        with self._database.read() as db:
            record = self.get(alert_id)
            if record is None:
                return None
            history = db.execute(
                "SELECT at, event, detail FROM history WHERE alert_id = :alert_id"
                " ORDER BY at DESC, rowid DESC LIMIT :kept",
                {"alert_id": alert_id, "kept": HISTORY_KEPT},
            ).fetchall()
            deliveries, waiting, ahead, held = self._queue.of_alert(alert_id)
        return AlertDetail(
            record,
            tuple(
                HistoryEntry(float(at), HistoryEvent(event), detail)
                for at, event, detail in reversed(history)
            ),
            deliveries,
            waiting,
            ahead,
            held,
        )

    def current(self, since: float, *, after: str = "", limit: int = 1000) -> list[AlertRecord]:
        """Alerts not resolved, and those resolved since ``since`` (for Alertmanager): a page of
        at most ``limit``, by id, those after ``after``."""
        return self._page(
            "(state != :resolved OR updated_at >= :since)",
            {**_RESOLVED, "since": since},
            after,
            limit,
        )

    def changed_since(
        self, since: float, *, after: str = "", limit: int = 1000
    ) -> list[AlertRecord]:
        """Alerts whose state changed at or after ``since`` (for Alertmanager's wake posts): a
        page of at most ``limit``, by id, those after ``after``."""
        return self._page("updated_at >= :since", {"since": since}, after, limit)

    def _page(
        self, where: str, params: dict[str, object], after: str, limit: int
    ) -> list[AlertRecord]:
        # By id (the primary key): pages that neither skip nor repeat an alert changed between.
        with self._database.read() as db:
            rows = db.execute(
                f"SELECT * FROM alerts WHERE {where} AND alert_id > :after"  # noqa: S608
                " ORDER BY alert_id LIMIT :limit",
                {**params, "after": after, "limit": limit},
            ).fetchall()
        return [record_of(row) for row in rows]

    def active_counts(self) -> dict[str, int]:
        """Open alerts (firing or acknowledged) by severity."""
        with self._database.read() as db:
            rows = db.execute(
                "SELECT severity, COUNT(*) FROM alerts WHERE state != :resolved GROUP BY severity",
                _RESOLVED,
            ).fetchall()
        return {str(severity): int(count) for severity, count in rows}

    @property
    def count_mark(self) -> int:
        """A number that moves whenever an alert fires (first, or again once resolved) or
        changes severity: ``active_counts`` taken while it stood still is whole, one taken
        before it moved may count too few of a severity. It moves for a change rolled back
        too (a count is then doubted, never wrongly trusted). Lock-free: read on the loop."""
        return self._count_mark

    def may_be_active(self, alert_id: str) -> bool:
        """False when the alert is unknown or resolved (so a resolved event would change nothing).

        Lock-free (a set lookup): a stale answer can only be True, and observe() decides then.
        """
        return alert_id in self._active

    @property
    def maybe_active_ids(self) -> AbstractSet[str]:
        """The ids ``may_be_active`` answers True for, to test many at once (``in``), lock-free
        alike: the live set, not a copy, so never to be held past the test."""
        return self._active

    # -- changes: worked out as plans, stored in one transaction --

    def apply(
        self,
        changes: Sequence[AlertEvent | Acknowledgement],
        now: float,
        *,
        max_open: int | None = None,
        latest: float | None = None,
        remember_for: float = 0.0,
        arrived_after: float | None = None,
    ) -> Applied:
        """Apply alert events and acknowledgements, in order, in ONE transaction.

        Each goes through ``transitions.on_event`` / ``on_ack``. A new alert beyond
        ``max_open`` open alerts (an event alert beyond nine tenths of it:
        ``transitions.open_cap``) is refused (counted in ``Applied.refused``); an event older
        than the one that last changed its alert (``transitions.superseded``), or than a
        resolve of it remembered (``remember_for``, as in ``plan``), changes nothing (counted
        in ``Applied.stale``). ``latest`` (``now`` when None), now by the clock the replicas
        share, caps each event's date (``transitions.on_event``). ``arrived_after``: as in
        ``plan``.
        """
        with self._database.transaction():
            plan = self.plan(
                changes,
                now,
                max_open=max_open,
                latest=latest,
                remember_for=remember_for,
                arrived_after=arrived_after,
            )
            applied = self._store_plan(plan, arrived_after)
        self.held_still()
        return applied

    def plan(
        self,
        changes: Sequence[AlertEvent | Acknowledgement],
        now: float,
        *,
        max_open: int | None = None,
        latest: float | None = None,
        dates: Mapping[str, float] | None = None,
        remember_for: float = 0.0,
        arrived_after: float | None = None,
    ) -> Plan:
        """What ``apply`` would do, stored by nobody yet; ``dates``: the dates of the alerts'
        last notified changes at the work-queue holders (``AlertIndex.dates``), which events
        sent before them do not undo (``superseded``).

        A resolved event for an alert unknown here is remembered, once the plan is stored, for
        ``remember_for`` seconds (the replay window: a message sent before it is refused after
        that), at most ``RESOLVES_REMEMBERED`` of them: a firing event sent before it, delivered
        after it (a sender's messages overtaking one another, frames Redis lost written again
        in another order), is then ``superseded`` rather than opening an alert that nothing
        would resolve. On Redis the index keeps them with ``dates`` instead, as long as those
        and for the next holders, up to ``RESOLVES_REMEMBERED`` too (``AlertIndex.change``): a
        frame that waited in a replica's spool, cut off from Redis, is signed again as it is
        written, so it is not refused as expired however old the event it carries.

        ``arrived_after`` (``now`` when None): a date every message still queued at the alert
        stage, and every one of ``changes``, was taken in after (``BatchDates.handle``: when the
        queue was handed a batch after which it took in all those, told by its count of the
        messages taken in, ``BatchSubscription.mark``). A resolve is remembered for the
        messages taken in before its time ran out, however long they then waited in that queue
        (an outbox refusing for a while): remembered until ``now`` alone, one taken in time and
        handled after would open the alert.
        """
        latest = now if latest is None else latest
        arrived = now if arrived_after is None else min(arrived_after, now)
        steps: list[Transition] = []
        # The plan's own results so far: a later change of the same alert starts from them.
        planned: dict[str, AlertRecord | None] = {}
        resolves: dict[str, float] = {}  # the plan's resolves of unknown alerts (Plan.resolves)
        refused = stale = 0
        opened = 0  # alerts the plan opened, less those it closed
        open_count: int | None = None
        with self._database.read():
            # An event for an alert not active needs it looked up only when it is resolved (a
            # firing one may be superseded: resolved by a newer event than this one; a resolved
            # one moves its date), and a burst of new alerts is the hot path: which of them the
            # table holds is one query.
            resolved = self._stored(
                [
                    change.alert_id
                    for change in changes
                    if not isinstance(change, Acknowledgement)
                    and change.alert_id not in self._active
                ]
            )
            for change in changes:
                alert_id = change.alert_id
                if alert_id in planned:
                    current = planned[alert_id]
                elif (
                    isinstance(change, Acknowledgement)
                    or alert_id in self._active
                    or alert_id in resolved
                ):
                    current = self.get(alert_id)
                else:
                    current = None  # unknown
                known = None if dates is None else dates.get(alert_id)
                if current is None:
                    # The newest resolve of it known: remembered, or earlier in this plan.
                    for remembered in (self._remembered(alert_id, arrived), resolves.get(alert_id)):
                        if remembered is not None and (known is None or remembered > known):
                            known = remembered
                if (
                    known is not None
                    and alert_id not in planned
                    and current is not None
                    and (current.event_at is None or current.event_at < known)
                ):
                    # Redis's open records carry no event_at: taken up, this one may have none.
                    current = replace(current, event_at=known)
                if isinstance(change, Acknowledgement):
                    step = on_ack(current, change, now)
                elif superseded(current, change, now, latest=latest, known_at=known):
                    stale += 1  # logged by the sink: `outbox list` imports no logging
                    continue
                else:
                    if max_open is not None and opens(current, change):
                        if open_count is None:
                            open_count = self._open_count() + opened
                        if open_count >= open_cap(change, max_open):
                            refused += 1
                            continue
                    if current is None and not change.firing and remember_for > 0:
                        when = event_date(change, latest)
                        resolves[alert_id] = max(when, resolves.get(alert_id, when))
                    step = on_event(current, change, now, latest=latest)
                record = step.record
                if step.effect is Effect.NONE or record is None:
                    continue
                steps.append(step)
                planned[alert_id] = record
                # A resolve frees a place for a later new alert.
                change_in_open = int(record.open) - int(current is not None and current.open)
                opened += change_in_open
                if open_count is not None:
                    open_count += change_in_open
        until = now + remember_for
        remember = tuple((alert_id, at, until) for alert_id, at in resolves.items())
        return Plan(new_message_id(), now, tuple(steps), refused, stale, remember)

    def _remembered(self, alert_id: str, arrived: float) -> float | None:
        """The date of the newest resolve of ``alert_id`` remembered (``plan``) and still kept
        for a message taken in after ``arrived``."""
        kept = self._resolves.get(alert_id)
        return kept[0] if kept is not None and kept[1] > arrived else None

    def _remember(self, plan: Plan, arrived: float) -> int:
        """Remember the resolves of unknown alerts ``plan`` carries (``Plan.resolves``), as
        storing it does. Those kept past their time for the messages taken in after
        ``arrived`` (``plan``'s ``arrived_after``) are forgotten first, then the oldest beyond
        ``RESOLVES_REMEMBERED``: how many of those."""
        memory = self._resolves
        for alert_id, at, until in plan.resolves:
            before = memory.pop(alert_id, None)  # put back last: the order is oldest first
            memory[alert_id] = (at if before is None else max(at, before[0]), until)
        forgotten = 0
        while memory:
            alert_id, (_, until) = next(iter(memory.items()))
            if until > arrived:
                if len(memory) <= RESOLVES_REMEMBERED:
                    break
                forgotten += 1
            del memory[alert_id]
        return forgotten

    def _stored(self, alert_ids: Sequence[str]) -> set[str]:
        """Those of ``alert_ids`` the alerts table holds (inside a read)."""
        if not alert_ids:
            return set()
        with self._database.read() as db:
            rows = db.execute(
                "SELECT alert_id FROM alerts WHERE alert_id IN (SELECT value FROM json_each(:ids))",
                {"ids": json.dumps(alert_ids)},
            )
            return {row[0] for row in rows}

    def acknowledge(
        self,
        alert_id: str,
        ack_by: str,
        now: float,
        *,
        ack_note: str | None = None,
        resolution: str | None = None,
    ) -> AlertRecord | None:
        """Acknowledge an alert (resolve it when a ``resolution`` is given); None when unknown.

        Acknowledging twice, or after the alert resolved, changes nothing and returns the alert.
        """
        ack = Acknowledgement(alert_id, ack_by, ack_note, resolution)
        with self._database.transaction():
            step = on_ack(self.get(alert_id), ack, now)
            self._store_step(step, now)
        self.held_still()
        return step.record

    def escalate_due(self, now: float, after_seconds: float) -> list[Escalated]:
        """Move every unacknowledged ``requires_ack`` alert that waited too long up one level."""
        with self._database.transaction():
            plan = self.plan_escalations(now, after_seconds)
            return escalations(plan, self._store_plan(plan))

    def plan_escalations(self, now: float, after_seconds: float) -> Plan:
        """What ``escalate_due`` would do, stored by nobody yet."""
        with self._database.read() as db:
            rows = db.execute(
                "SELECT * FROM alerts WHERE state = :firing AND requires_ack = 1"
                " AND level < :max_level AND (level_since <= :due OR level_since > :now)"
                " ORDER BY level_since",
                {
                    "firing": AlertState.FIRING.value,
                    "max_level": MAX_LEVEL,
                    "due": now - after_seconds,
                    "now": now,
                },
            ).fetchall()
        # Escalations, and the periods a wall clock set back restarts (``escalation``).
        steps = (escalation(record_of(row), now, after_seconds) for row in rows)
        return Plan(new_message_id(), now, tuple(s for s in steps if s.effect is not Effect.NONE))

    def resolve_expired(
        self, now: float, after_seconds: float, stale_after: float | None = None
    ) -> list[AlertRecord]:
        """Resolve the event alerts not seen for ``after_seconds``, and with ``stale_after`` the
        condition alerts nothing kept up for that long (health conditions no reading kept up,
        host resources' ``metric_threshold`` no MetricAlert kept up: ``transitions.expiry``);
        each resolution is queued for the receivers. Returns the alerts resolved (not those
        whose wait a wall clock set back restarted)."""
        with self._database.transaction():
            plan = self.plan_expiries(now, after_seconds, stale_after)
            return resolutions(self._store_plan(plan))

    def plan_expiries(
        self, now: float, after_seconds: float, stale_after: float | None = None
    ) -> Plan:
        """What ``resolve_expired`` would do, stored by nobody yet: the expiries, and the
        waits a wall clock set back restarts (``expiry``)."""
        with self._database.read() as db:
            rows = db.execute(
                # seen: when last seen or acknowledged, whichever came later (a column past the
                # table's, which record_of leaves): the wait runs from it.
                "SELECT * FROM (SELECT *, max(COALESCE(last_seen, updated_at),"
                " COALESCE(ack_at, 0)) AS seen FROM alerts) WHERE ("
                " (state = :firing AND requires_ack = 0) OR state = :acknowledged) AND ("
                " (auto_resolve = 1 AND (seen <= :cutoff OR seen > :now))"
                " OR (auto_resolve = 0"
                " AND alertname IN (SELECT value FROM json_each(:conditions))"
                " AND ((:stale AND seen <= :stale_cutoff) OR seen > :now))"
                ") LIMIT 10000",
                {
                    "firing": AlertState.FIRING.value,
                    "acknowledged": AlertState.ACKNOWLEDGED.value,
                    "cutoff": now - after_seconds,
                    "stale": stale_after is not None,
                    "conditions": json.dumps(sorted(STALE_CONDITIONS)),
                    "stale_cutoff": now - (stale_after or 0.0),
                    "now": now,
                },
            ).fetchall()
        steps = (expiry(record_of(row), now, after_seconds, stale_after) for row in rows)
        return Plan(new_message_id(), now, tuple(s for s in steps if s.effect is not Effect.NONE))

    def commit(self, plan: Plan, *, tell: bool = False) -> Applied:
        """Store ``plan`` in one transaction, once: a plan stored before (its id is remembered
        for a week, see ``retention``) changes nothing again.

        ``tell``: the plan may be another replica's (its note taken over with the lease),
        which told receivers of alerts this outbox never told them of: every receiver counts as
        told of the alerts it resolves, so that their resolves are sent rather than kept from a
        receiver showing them firing (``DeliveryQueue.tell_all``; those it leaves open are told
        as the open alerts are taken up).
        """
        with self._database.transaction() as db:
            seen = db.execute("SELECT 1 FROM plans WHERE id = :id", {"id": plan.id}).fetchone()
            if seen is None:
                db.execute(
                    "INSERT INTO plans (id, stored_at) VALUES (:id, :now)",
                    {"id": plan.id, "now": plan.now},
                )
                applied = self._store_plan(plan)
                if tell:
                    self._queue.tell_all(
                        record.alert_id for record in applied.changed if not record.open
                    )
            else:
                applied = Applied([], plan.refused, plan.stale)
        # A plan found stored is checked too: stored in the file that went, by a try that
        # raised, it is not stored at the path, and its note in Redis must stay (``index``).
        self.held_still()
        return applied

    def held_still(self) -> None:
        """After a commit answered for (or a read answered for as stored): raise
        ``OutboxDisplaced`` when the file it went to is no longer the file at the outbox's path
        (gone at the next start)."""
        if (displaced := self._displaced()) is not None:
            raise OutboxDisplaced(displaced)

    def withdraw(self, plans: Sequence[Plan], now: float, reason: str) -> int:
        """Leave out of this outbox the notifications of ``plans`` it stored whose notes another
        replica took over (it notifies them: see ``index``), in one transaction: every
        notification waiting of an alert a plan notified that stands here as the plan left it
        (``notified_state``: the other replica's is as new), with ``reason``
        (``DeliveryQueue.withhold_everywhere``). The plans are no longer remembered as stored,
        so one whose note comes back here is stored anew. How many notifications."""
        alert_ids: set[str] = set()
        with self._database.transaction() as db:
            for plan in plans:
                gone = db.execute("DELETE FROM plans WHERE id = :id", {"id": plan.id})
                if not gone.rowcount:
                    continue  # never stored here: nothing of it waits here
                notified = {
                    step.record.alert_id
                    for step in plan.steps
                    if step.record is not None and step.effect is Effect.NOTIFY
                }
                alert_ids |= {
                    record.alert_id
                    for record in plan.records
                    if record.alert_id in notified
                    and notified_state(self.get(record.alert_id)) == notified_state(record)
                }
            return self._queue.withhold_everywhere(alert_ids, now, reason)

    def adopt_open_alerts(self, kept: Mapping[str, AlertRecord], now: float) -> int:
        """Make the open alerts here those the work-queue holders keep (``transitions.adopted``),
        in one transaction, notifying nothing; returns how many alerts changed here."""
        changed = 0
        with self._database.transaction():
            for alert_id in sorted(set(kept) | self._active):
                step = adopted(self.get(alert_id), kept.get(alert_id), now)
                if self._store_step(step, now) is not None:
                    changed += 1
            # Which receivers the holders before told of them is not known here (even of an
            # alert open here too: it may have changed while another replica held the lease):
            # each counts as told, so none is left with one firing (one may hear a change of an
            # alert it was never sent, as after the upgrade to version 6).
            self._queue.tell_all(alert_id for alert_id, record in kept.items() if record.open)
        return changed

    def _open_count(self) -> int:
        with self._database.read() as db:
            row = db.execute(
                "SELECT COUNT(*) FROM alerts WHERE state != :resolved", _RESOLVED
            ).fetchone()
        return int(row[0])

    def _store_plan(self, plan: Plan, arrived_after: float | None = None) -> Applied:
        """Store a plan's steps (inside a transaction); the alerts receivers must hear of.
        ``arrived_after``: as ``plan`` took it."""
        changed: dict[str, AlertRecord] = {}
        forgotten = 0
        if plan.resolves:
            arrived = plan.now if arrived_after is None else min(arrived_after, plan.now)
            forgotten = self._remember(plan, arrived)
        for step in plan.steps:
            record = self._store_step(step, plan.now)
            if record is not None:
                changed[record.alert_id] = record
        return Applied(list(changed.values()), plan.refused, plan.stale, forgotten)

    def _store_step(self, step: Transition, now: float) -> AlertRecord | None:
        """Store what a transition asks for (inside a transaction); the alert when it is
        reported as changed."""
        record = step.record
        if step.effect is Effect.NONE or record is None:
            return None
        with self._database.transaction() as db:
            if step.effect is Effect.SEEN:
                db.execute(
                    _SEEN_ALERT,
                    {
                        "alert_id": record.alert_id,
                        "last_seen": record.last_seen,
                        "auto_resolve": int(record.auto_resolve),
                        "event_at": record.event_at,
                    },
                )
                return None
            if record.state is AlertState.RESOLVED:
                self._resolved.add(record.alert_id)
            else:
                event = step.entry.event if step.entry is not None else None
                fired = record.alert_id not in self._active
                self._count_mark += fired or event is HistoryEvent.SEVERITY_CHANGED
                self._active.add(record.alert_id)
                self._resolved.discard(record.alert_id)
            db.execute(_STORE_ALERT, alert_params(record))
            if step.entry is not None:
                entry = step.entry
                db.execute(
                    "INSERT INTO history (alert_id, at, event, detail)"
                    " VALUES (:alert_id, :at, :event, :detail)",
                    {
                        "alert_id": record.alert_id,
                        "at": entry.at,
                        "event": entry.event.value,
                        "detail": entry.detail,
                    },
                )
            if step.effect is Effect.NOTIFY:
                self._queue.enqueue(record.alert_id, now)
        return record


def resolutions(applied: Applied) -> list[AlertRecord]:
    """The alerts an expiry plan resolved, among what storing it changed (not a wait restarted
    after the wall clock was set back)."""
    return [record for record in applied.changed if not record.open]


def escalations(plan: Plan, applied: Applied) -> list[Escalated]:
    """The escalation steps among what storing ``plan`` changed (not a period restarted after
    the wall clock was set back, nor another change a caught-up note held)."""
    raised = {
        step.record.alert_id
        for step in plan.steps
        if step.record is not None
        and step.entry is not None
        and step.entry.event is HistoryEvent.ESCALATED
    }
    return [
        Escalated(r, f"level{r.level - 1}", r.level_name)
        for r in applied.changed
        if r.alert_id in raised
    ]
