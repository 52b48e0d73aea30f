"""The durable outbox: alert states, grouping queues and deliveries stored in one SQLite file.

A delivery is committed here (WAL journal, ``synchronous=FULL``: fsync'd on commit) before its
first attempt, so a crash or SIGKILL loses nothing: a new process on the same directory resumes.

The tables (alerts, grouping queues, deliveries, history, ``meta``, plans, ``told``) and their
upgrades from earlier versions are in ``tables``; how a row reads as a record, in ``rows``. Every
change of alert states is a ``Plan`` (``transitions``), worked out and then stored in one
transaction (on the Redis bus it is made in Redis in between, see ``index``).

A receiver is named by its key (``bridge.receivers.ReceiverKeys``, under ``receiver_secret``: a
random key made once, when the file is created, and kept in its ``meta`` table) in the column
``url``, whose name comes from version 2, when the key was the webhook URL itself;
``move_receiver_rows`` moves rows under an earlier key (the URL, then an unkeyed digest of it,
or a ``url_file`` path as spelled) to the receiver's key when the bridge starts, so nothing
waiting is lost across the change. The keys the bridge started with are kept in ``meta`` too
(``configured``), so ``exesdb-bridge outbox retry`` can tell a dead letter no worker would send
(``unretryable``). (Not
to be confused with ``adopt_open_alerts``: on Redis, the alert states a new work-queue holder
takes up.)

Times are Unix seconds from the injected wall clock, since they must survive a restart. Every
method is one transaction and safe to call from any one thread at a time (a lock serialises
them); the ``exesdb-bridge outbox`` commands open the same file beside a running bridge.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from bridge.bus import new_message_id
from bridge.sinks.alerts.payload import alerts_told
from bridge.sinks.alerts.records import (
    MAX_LEVEL,
    Acknowledgement,
    AlertDetail,
    AlertRecord,
    AlertState,
    Applied,
    Delivery,
    DeliveryState,
    Escalated,
    HistoryEntry,
    HistoryEvent,
    OutboxDepth,
    Unretryable,
)
from bridge.sinks.alerts.rows import alert_params, delivery_of, matching, one_of, record_of
from bridge.sinks.alerts.sources import AlertEvent
from bridge.sinks.alerts.tables import connect, migrate
from bridge.sinks.alerts.transitions import (
    Effect,
    Plan,
    Transition,
    adopted,
    escalation,
    expiry,
    on_ack,
    on_event,
    opens,
)

__all__ = ["FILE_NAME", "HISTORY_KEPT", "BuildPayloads", "Keep", "Outbox", "escalations"]

FILE_NAME: Final = "alerts.sqlite3"
# History entries kept per alert (the newest), so a flapping alert's history stays bounded.
HISTORY_KEPT: Final = 100
# Deliveries an alert's page lists at most (the newest).
_DETAIL_DELIVERIES: Final = 50
_STORE_ALERT: Final = """
INSERT OR REPLACE INTO alerts (
    alert_id, alertname, severity, category, node, title, description, requires_ack, state,
    level, starts_at, updated_at, ends_at, level_since, ack_by, ack_note, ack_at, resolution,
    auto_resolve, last_seen
) VALUES (
    :alert_id, :alertname, :severity, :category, :node, :title, :description, :requires_ack,
    :state, :level, :starts_at, :updated_at, :ends_at, :level_since, :ack_by, :ack_note,
    :ack_at, :resolution, :auto_resolve, :last_seen
)
"""
_SEEN_ALERT: Final = (
    "UPDATE alerts SET last_seen = :last_seen, auto_resolve = :auto_resolve"
    " WHERE alert_id = :alert_id"
)
_NEW_DELIVERY: Final = """
INSERT INTO deliveries (
    id, url, body, alert_ids, created_at, next_attempt_at, state, last_error, finished_at
) VALUES (
    :id, :url, :body, :alert_ids, :now, :now, :state, :last_error, :finished_at
)
"""
# A receiver's deliveries go out one at a time, in the order they were made (see next_due).
_OLDEST_PENDING: Final = (
    "SELECT * FROM deliveries WHERE url = :url AND state = :pending ORDER BY rowid LIMIT 1"
)
_PENDING: Final = {"pending": DeliveryState.PENDING.value}
_DEAD_LETTER_REASON: Final = (
    "the receiver is no longer in EXESDB_WEBHOOK_URLS nor in EXESDB_WEBHOOK_CONFIG_FILE"
)

# The meta row holding the keys of the receivers the bridge last started with (JSON).
_CONFIGURED: Final = "receivers"

BuildPayloads = Callable[[Sequence[AlertRecord]], Sequence[tuple[bytes, Sequence[str]]]]
"""Turn one group of alerts into payloads: ``(body, alert_ids)`` each."""
Keep = Callable[[AlertRecord, bool], bool]
"""Whether a receiver gets an alert of its group, given whether it was sent the alert before
(open since then): a receiver's filters (``min_severity``, ``send_resolved``)."""


class Outbox:
    """The SQLite store; see the module docstring. ``urls`` are the keys of the receivers every
    notified alert is queued for."""

    def __init__(self, path: Path | str, *, urls: Sequence[str] = ()) -> None:
        self.path = Path(path)
        self.urls = tuple(urls)
        self._lock = threading.Lock()
        self._db = connect(self.path)
        migrate(self._db)
        # The key of the receiver keys' digests: made once with the file, never shown.
        self.receiver_secret: bytes = bytes(
            self._db.execute("SELECT value FROM meta WHERE name = 'receiver_secret'").fetchone()[0]
        )
        # Ids of the alerts not resolved, kept beside the table (written only in _store, under
        # the lock): a resolved event for any other alert changes nothing, and the sink asks
        # may_be_active() before paying a thread hop and a transaction to learn that.
        self._active: set[str] = {
            row[0]
            for row in self._db.execute(
                "SELECT alert_id FROM alerts WHERE state != :resolved",
                {"resolved": AlertState.RESOLVED.value},
            )
        }
        self._resolved: set[str] = set()  # resolved in the open transaction
        self._closed = False

    @classmethod
    def in_dir(cls, state_dir: Path | str, *, urls: Sequence[str] = ()) -> Outbox:
        """Open (creating as needed) the outbox of ``EXESDB_STATE_DIR``."""
        directory = Path(state_dir)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(directory / FILE_NAME, urls=urls)

    def queue_for(self, keys: Sequence[str]) -> None:
        """Queue every notified alert for the receivers of ``keys`` from now on, and record them
        in the file as the receivers the bridge started with (``configured``)."""
        with self._lock, self._tx():
            self.urls = tuple(keys)
            self._db.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (:name, :keys)",
                {"name": _CONFIGURED, "keys": json.dumps(self.urls)},
            )

    def configured(self) -> tuple[str, ...] | None:
        """The keys of the receivers the bridge last started with (``queue_for``), which have
        a worker while it runs; None when none has started on the file since it records them."""
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM meta WHERE name = :name", {"name": _CONFIGURED}
            ).fetchone()
        return None if row is None else tuple(json.loads(row[0]))

    def close(self) -> None:
        """Close the database; idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            self._resolved.clear()
            raise
        self._db.execute("COMMIT")
        # Forgotten as active only once the resolution is committed (see may_be_active).
        self._active.difference_update(self._resolved)
        self._resolved.clear()

    # -- alert states --

    def alert(self, alert_id: str) -> AlertRecord | None:
        """The alert named ``alert_id``, if known."""
        with self._lock:
            return self._alert(alert_id)

    def _alert(self, alert_id: str) -> AlertRecord | None:
        row = self._db.execute(
            "SELECT * FROM alerts WHERE alert_id = :alert_id", {"alert_id": alert_id}
        ).fetchone()
        return record_of(row) if row is not None else None

    def alerts(
        self, state: str | None = None, limit: int = 1000, *, alert_id: str | None = None
    ) -> list[AlertRecord]:
        """Alerts, most recently changed first; only those matching each filter given."""
        where, params = matching({"state": state, "alert_id": alert_id})
        query = f"SELECT * FROM alerts{where} ORDER BY updated_at DESC LIMIT :limit"  # noqa: S608
        with self._lock:
            return [record_of(row) for row in self._db.execute(query, {**params, "limit": limit})]

    def detail(self, alert_id: str) -> AlertDetail | None:
        """The alert named ``alert_id`` with its history, its deliveries (the newest 50) and the
        grouping windows it waits in; None when unknown. One consistent read."""
        with self._lock:
            record = self._alert(alert_id)
            if record is None:
                return None
            key = {"alert_id": alert_id}
            history = self._db.execute(
                "SELECT at, event, detail FROM history WHERE alert_id = :alert_id"
                " ORDER BY at DESC, rowid DESC LIMIT :kept",
                {**key, "kept": HISTORY_KEPT},
            ).fetchall()
            # instr() on the JSON text first (cheap), json_each() to be exact.
            deliveries = self._db.execute(
                "SELECT * FROM deliveries WHERE instr(alert_ids, :needle) > 0 AND EXISTS"
                " (SELECT 1 FROM json_each(deliveries.alert_ids) WHERE value = :alert_id)"
                " ORDER BY created_at DESC, id LIMIT :limit",
                {**key, "needle": json.dumps(alert_id), "limit": _DETAIL_DELIVERIES},
            ).fetchall()
            waiting = self._db.execute(
                "SELECT url, queued_at FROM queued WHERE alert_id = :alert_id ORDER BY url", key
            ).fetchall()
        return AlertDetail(
            record,
            tuple(
                HistoryEntry(float(at), HistoryEvent(event), detail)
                for at, event, detail in reversed(history)
            ),
            tuple(delivery_of(row) for row in deliveries),
            tuple((str(url), float(queued_at)) for url, queued_at in waiting),
        )

    def current(self, since: float, *, after: str = "", limit: int = 1000) -> list[AlertRecord]:
        """Alerts not resolved, and those resolved since ``since`` (for Alertmanager): a page of
        at most ``limit``, by id, those after ``after``."""
        return self._page(
            "(state != :resolved OR updated_at >= :since)",
            {"resolved": AlertState.RESOLVED.value, "since": since},
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
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM alerts WHERE {where} AND alert_id > :after"  # noqa: S608
                " ORDER BY alert_id LIMIT :limit",
                {**params, "after": after, "limit": limit},
            ).fetchall()
        return [record_of(row) for row in rows]

    # Every change of alert states is a Plan (``transitions``): ``plan_*`` work one out (reading
    # only), ``commit`` stores it in one transaction; ``apply``, ``acknowledge``,
    # ``escalate_due`` and ``resolve_expired`` do both at once (the in-process bus). On Redis the
    # alert stage makes a plan in Redis between the two (``index``).

    def apply(
        self,
        changes: Sequence[AlertEvent | Acknowledgement],
        now: float,
        *,
        max_open: int | None = None,
    ) -> Applied:
        """Apply alert events and acknowledgements, in order, in ONE transaction.

        Each goes through ``transitions.on_event`` / ``on_ack``. A new alert beyond
        ``max_open`` open alerts is refused (counted in ``Applied.refused``).
        """
        with self._lock, self._tx():
            return self._store_plan(self._plan(changes, now, max_open))

    def plan(
        self,
        changes: Sequence[AlertEvent | Acknowledgement],
        now: float,
        *,
        max_open: int | None = None,
    ) -> Plan:
        """What ``apply`` would do, stored by nobody yet."""
        with self._lock:
            return self._plan(changes, now, max_open)

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
        with self._lock, self._tx():
            step = on_ack(self._alert(alert_id), ack, now)
            self._commit(step, now)
            return step.record

    def escalate_due(self, now: float, after_seconds: float) -> list[Escalated]:
        """Move every unacknowledged ``requires_ack`` alert that waited too long up one level."""
        with self._lock, self._tx():
            return escalations(self._store_plan(self._plan_escalations(now, after_seconds)))

    def plan_escalations(self, now: float, after_seconds: float) -> Plan:
        """What ``escalate_due`` would do, stored by nobody yet."""
        with self._lock:
            return self._plan_escalations(now, after_seconds)

    def resolve_expired(self, now: float, after_seconds: float) -> list[AlertRecord]:
        """Resolve the event alerts not seen for ``after_seconds`` (``transitions.expiry``);
        each resolution is queued for the receivers."""
        with self._lock, self._tx():
            return self._store_plan(self._plan_expiries(now, after_seconds)).changed

    def plan_expiries(self, now: float, after_seconds: float) -> Plan:
        """What ``resolve_expired`` would do, stored by nobody yet."""
        with self._lock:
            return self._plan_expiries(now, after_seconds)

    def commit(self, plan: Plan) -> Applied:
        """Store ``plan`` in one transaction, once: a plan stored before (its id is remembered
        for a week) changes nothing again."""
        with self._lock, self._tx():
            seen = self._db.execute(
                "SELECT 1 FROM plans WHERE id = :id", {"id": plan.id}
            ).fetchone()
            if seen is not None:
                return Applied([], plan.refused)
            self._db.execute(
                "INSERT INTO plans (id, stored_at) VALUES (:id, :now)",
                {"id": plan.id, "now": plan.now},
            )
            return self._store_plan(plan)

    def adopt_open_alerts(self, kept: Mapping[str, AlertRecord], now: float) -> int:
        """Make the open alerts here those the work-queue holders keep (``transitions.adopted``),
        in one transaction, notifying nothing; returns how many alerts changed here."""
        changed = 0
        with self._lock, self._tx():
            for alert_id in sorted(set(kept) | self._active):
                record = self._commit(adopted(self._alert(alert_id), kept.get(alert_id), now), now)
                if record is not None:
                    changed += 1
            # Which receivers the holders before told of them is not known here (even of an
            # alert open here too: it may have changed while another replica held the lease):
            # each counts as told, so none is left with one firing (one may hear a change of an
            # alert it was never sent, as after the upgrade to version 6).
            self._db.executemany(
                "INSERT OR IGNORE INTO told (url, alert_id) VALUES (:url, :alert_id)",
                [
                    {"url": url, "alert_id": alert_id}
                    for url in self.urls
                    for alert_id, record in kept.items()
                    if record.open
                ],
            )
        return changed

    def _plan(
        self, changes: Sequence[AlertEvent | Acknowledgement], now: float, max_open: int | None
    ) -> Plan:
        steps: list[Transition] = []
        # The plan's own results so far: a later change of the same alert starts from them.
        planned: dict[str, AlertRecord | None] = {}
        refused = 0
        opened = 0  # alerts the plan opened, less those it closed
        open_count: int | None = None
        for change in changes:
            alert_id = change.alert_id
            if alert_id in planned:
                current = planned[alert_id]
            elif isinstance(change, Acknowledgement) or alert_id in self._active:
                current = self._alert(alert_id)
            else:
                # An alert not active is unknown or resolved, which no event tells apart: the
                # lookup (the hot path of a burst of new alerts) can be skipped.
                current = None
            if isinstance(change, Acknowledgement):
                step = on_ack(current, change, now)
            else:
                if max_open is not None and opens(current, change):
                    if open_count is None:
                        open_count = self._open_count() + opened
                    if open_count >= max_open:
                        refused += 1
                        continue
                step = on_event(current, change, now)
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
        return Plan(new_message_id(), now, tuple(steps), refused)

    def _plan_escalations(self, now: float, after_seconds: float) -> Plan:
        rows = self._db.execute(
            "SELECT * FROM alerts WHERE state = :firing AND requires_ack = 1"
            " AND level < :max_level AND level_since <= :due ORDER BY level_since",
            {"firing": AlertState.FIRING.value, "max_level": MAX_LEVEL, "due": now - after_seconds},
        ).fetchall()
        steps = (escalation(record_of(row), now, after_seconds) for row in rows)
        return Plan(new_message_id(), now, tuple(s for s in steps if s.effect is Effect.NOTIFY))

    def _plan_expiries(self, now: float, after_seconds: float) -> Plan:
        rows = self._db.execute(
            "SELECT * FROM alerts WHERE auto_resolve = 1 AND ("
            " (state = :firing AND requires_ack = 0) OR state = :acknowledged)"
            " AND max(COALESCE(last_seen, updated_at), COALESCE(ack_at, 0)) <= :cutoff"
            " LIMIT 10000",
            {
                "firing": AlertState.FIRING.value,
                "acknowledged": AlertState.ACKNOWLEDGED.value,
                "cutoff": now - after_seconds,
            },
        ).fetchall()
        steps = (expiry(record_of(row), now, after_seconds) for row in rows)
        return Plan(new_message_id(), now, tuple(s for s in steps if s.effect is Effect.NOTIFY))

    def _store_plan(self, plan: Plan) -> Applied:
        """Store a plan's steps (inside a transaction); the alerts receivers must hear of."""
        changed: dict[str, AlertRecord] = {}
        for step in plan.steps:
            record = self._commit(step, plan.now)
            if record is not None:
                changed[record.alert_id] = record
        return Applied(list(changed.values()), plan.refused)

    def active_counts(self) -> dict[str, int]:
        """Open alerts (firing or acknowledged) by severity."""
        with self._lock:
            rows = self._db.execute(
                "SELECT severity, COUNT(*) FROM alerts WHERE state != :resolved GROUP BY severity",
                {"resolved": AlertState.RESOLVED.value},
            ).fetchall()
        return {str(severity): int(count) for severity, count in rows}

    def may_be_active(self, alert_id: str) -> bool:
        """False when the alert is unknown or resolved (so a resolved event would change nothing).

        Lock-free (a set lookup): a stale answer can only be True, and observe() decides then.
        """
        return alert_id in self._active

    def _open_count(self) -> int:
        row = self._db.execute(
            "SELECT COUNT(*) FROM alerts WHERE state != :resolved",
            {"resolved": AlertState.RESOLVED.value},
        ).fetchone()
        return int(row[0])

    def _commit(self, step: Transition, now: float) -> AlertRecord | None:
        """Store what a transition asks for; the alert when it is reported as changed."""
        record = step.record
        if step.effect is Effect.NONE or record is None:
            return None
        if step.effect is Effect.SEEN:
            self._db.execute(
                _SEEN_ALERT,
                {
                    "alert_id": record.alert_id,
                    "last_seen": record.last_seen,
                    "auto_resolve": int(record.auto_resolve),
                },
            )
            return None
        self._store(record)
        if step.entry is not None:
            entry = step.entry
            self._db.execute(
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
            self._queue(record.alert_id, now)
        return record

    def _store(self, record: AlertRecord) -> None:
        if record.state is AlertState.RESOLVED:
            self._resolved.add(record.alert_id)
        else:
            self._active.add(record.alert_id)
            self._resolved.discard(record.alert_id)
        self._db.execute(_STORE_ALERT, alert_params(record))

    def _queue(self, alert_id: str, now: float) -> None:
        if not self.urls:
            return
        # OR IGNORE: an alert already waiting keeps its place (and its window's start).
        self._db.executemany(
            "INSERT OR IGNORE INTO queued (url, alert_id, queued_at)"
            " VALUES (:url, :alert_id, :now)",
            [{"url": url, "alert_id": alert_id, "now": now} for url in self.urls],
        )

    # -- deliveries --

    def group(
        self,
        url: str,
        now: float,
        wait_seconds: float,
        build: BuildPayloads,
        keep: Keep | None = None,
    ) -> int:
        """Turn ``url``'s queued alerts into deliveries once the oldest waited ``wait_seconds``;
        only those ``keep`` keeps, when given.

        Returns how many deliveries were created. Alerts and deliveries change in one
        transaction, so each queued alert ends up in exactly one delivery (or, left out by
        ``keep``, in none).
        """
        with self._lock:
            oldest = self._db.execute(
                "SELECT MIN(queued_at) FROM queued WHERE url = :url", {"url": url}
            ).fetchone()[0]
            # Queued after now: the wall clock was set back since, and the wait is over rather
            # than made longer by the jump.
            if oldest is None or now - wait_seconds < oldest <= now:
                return 0
            with self._tx():
                ids = [
                    row[0]
                    for row in self._db.execute(
                        "SELECT alert_id FROM queued WHERE url = :url ORDER BY queued_at, alert_id",
                        {"url": url},
                    )
                ]
                created = self._deliver(url, ids, now, build, DeliveryState.PENDING, keep=keep)
                self._db.executemany(
                    "DELETE FROM queued WHERE url = :url AND alert_id = :alert_id",
                    [{"url": url, "alert_id": alert_id} for alert_id in ids],
                )
                return created

    def _deliver(
        self,
        url: str,
        alert_ids: Sequence[str],
        now: float,
        build: BuildPayloads,
        state: DeliveryState,
        reason: str | None = None,
        *,
        keep: Keep | None = None,
    ) -> int:
        """Create the deliveries of ``alert_ids`` for ``url``, in ``state``, of the alerts
        ``keep`` keeps (all when not given); how many."""
        records = [r for r in (self._alert(i) for i in alert_ids) if r is not None]
        if keep is not None:
            records = self._kept(url, records, keep)
        created = 0
        for body, ids in build(records) if records else ():
            self._db.execute(
                _NEW_DELIVERY,
                {
                    "id": new_message_id(),
                    "url": url,
                    "body": body,
                    "alert_ids": json.dumps(list(ids)),
                    "now": now,
                    "state": state.value,
                    "last_error": reason,
                    "finished_at": None if state is DeliveryState.PENDING else now,
                },
            )
            created += 1
        return created

    def _kept(self, url: str, records: list[AlertRecord], keep: Keep) -> list[AlertRecord]:
        """The records ``keep`` keeps for ``url``, remembering which open ones it is told of
        and forgetting those resolved."""
        told = {
            row[0]
            for row in self._db.execute(
                "SELECT alert_id FROM told WHERE url = :url"
                " AND alert_id IN (SELECT value FROM json_each(:ids))",
                {"url": url, "ids": json.dumps([r.alert_id for r in records])},
            )
        }
        kept = [r for r in records if keep(r, r.alert_id in told)]
        self._db.executemany(
            "INSERT OR IGNORE INTO told (url, alert_id) VALUES (:url, :alert_id)",
            [{"url": url, "alert_id": r.alert_id} for r in kept if r.open],
        )
        self._db.executemany(
            "DELETE FROM told WHERE url = :url AND alert_id = :alert_id",
            [{"url": url, "alert_id": r.alert_id} for r in records if not r.open],
        )
        return kept

    def move_receiver_rows(self, old: str, new: str) -> int:
        """Move what waits under the key ``old`` (a receiver's earlier key: its raw URL, as
        version 2 keyed it, the unkeyed digest, or its url_file's path spelled another way) to
        ``new``, deliveries of every state
        included; returns how many rows moved."""
        if old == new:
            return 0
        with self._lock, self._tx():
            # An alert queued under both keys keeps its place under the new one.
            moved = self._db.execute(
                "UPDATE OR IGNORE queued SET url = :new WHERE url = :old", {"old": old, "new": new}
            ).rowcount
            self._db.execute("DELETE FROM queued WHERE url = :old", {"old": old})
            self._db.execute(
                "UPDATE OR IGNORE told SET url = :new WHERE url = :old", {"old": old, "new": new}
            )
            self._db.execute("DELETE FROM told WHERE url = :old", {"old": old})
            moved += self._db.execute(
                "UPDATE deliveries SET url = :new WHERE url = :old", {"old": old, "new": new}
            ).rowcount
            return int(moved)

    def receiver_keys(self) -> set[str]:
        """Every key something is stored under (queued alerts, deliveries, what was told)."""
        with self._lock:
            return {
                str(row[0])
                for row in self._db.execute(
                    "SELECT url FROM queued UNION SELECT url FROM deliveries"
                    " UNION SELECT url FROM told"
                )
            }

    def next_due(self, url: str, now: float) -> Delivery | None:
        """``url``'s oldest pending delivery, when its next attempt is due.

        Oldest first, in the order they were made (rowid), whatever their attempt times: a
        resolve must not reach the receiver before the firing it ends, waiting for a retry.
        One made after ``now`` is due: the wall clock was set back since, and its next attempt
        time, reckoned on the clock before the jump, would hold the receiver back by as much.
        """
        with self._lock:
            row = self._db.execute(_OLDEST_PENDING, {"url": url, **_PENDING}).fetchone()
        if row is None:
            return None
        if float(row["next_attempt_at"]) > now and float(row["created_at"]) <= now:
            return None
        return delivery_of(row)

    def next_wake(self, url: str, wait_seconds: float) -> float | None:
        """When ``url``'s worker next has something to do (its oldest pending delivery due, or
        a closing window)."""
        with self._lock:
            head = self._db.execute(_OLDEST_PENDING, {"url": url, **_PENDING}).fetchone()
            due = None if head is None else head["next_attempt_at"]
            oldest = self._db.execute(
                "SELECT MIN(queued_at) FROM queued WHERE url = :url", {"url": url}
            ).fetchone()[0]
        times = [float(due)] if due is not None else []
        if oldest is not None:
            times.append(float(oldest) + wait_seconds)
        return min(times) if times else None

    def finish_attempt(
        self,
        delivery_id: str,
        *,
        state: DeliveryState,
        next_attempt_at: float,
        status: int | None,
        error: str | None,
        now: float,
    ) -> None:
        """Record one attempt's outcome.

        A delivery made after ``now`` (the wall clock was set back since) is dated ``now``, so
        that its next attempt, reckoned on this clock, waits its backoff (see ``next_due``).
        """
        with self._lock, self._tx():
            self._db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, state = :state,"
                " created_at = MIN(created_at, :now),"
                " next_attempt_at = :next_attempt_at, last_status = :status,"
                " last_error = :error, finished_at = :finished_at WHERE id = :id",
                {
                    "id": delivery_id,
                    "state": state.value,
                    "next_attempt_at": next_attempt_at,
                    "status": status,
                    "error": error,
                    "finished_at": None if state is DeliveryState.PENDING else now,
                    "now": now,
                },
            )

    def dead_letter_orphans(self, now: float, build: BuildPayloads) -> int:
        """Dead-letter what waits for URLs no longer configured; returns how many deliveries.

        Queued alerts become deliveries built at once, and those and the pending deliveries
        for such URLs are dead-lettered with a reason, so they no longer count as waiting; they
        stay retryable with ``exesdb-bridge outbox retry`` once the URL is configured again.
        """
        where, params = self._not_configured()
        with self._lock, self._tx():
            queued: dict[str, list[str]] = {}
            for url, alert_id in self._db.execute(
                f"SELECT url, alert_id FROM queued WHERE {where}"  # noqa: S608
                " ORDER BY url, queued_at, alert_id",
                params,
            ):
                queued.setdefault(url, []).append(alert_id)
            created = sum(
                self._deliver(url, ids, now, build, DeliveryState.DEAD, _DEAD_LETTER_REASON)
                for url, ids in queued.items()
            )
            self._db.execute(f"DELETE FROM queued WHERE {where}", params)  # noqa: S608
            moved = self._db.execute(
                "UPDATE deliveries SET state = :dead, last_error = :reason,"  # noqa: S608
                f" finished_at = :now WHERE state = :pending AND {where}",
                {
                    **params,
                    "dead": DeliveryState.DEAD.value,
                    "reason": _DEAD_LETTER_REASON,
                    "now": now,
                    "pending": DeliveryState.PENDING.value,
                },
            ).rowcount
            return created + int(moved)

    def _not_configured(self) -> tuple[str, dict[str, str]]:
        # Only generated placeholder names go into the SQL text; the URLs are bound parameters.
        if not self.urls:
            return "1 = 1", {}
        return one_of("url", self.urls, negate=True)

    def deliveries(
        self, state: str | None = None, limit: int = 1000, *, ids: Sequence[str] | None = None
    ) -> list[Delivery]:
        """Deliveries, newest first, optionally in one state or among ``ids``."""
        where, params = matching({"state": state})
        if ids is not None:
            named, id_params = one_of("id", ids) if ids else ("0 = 1", {})
            where += (" AND " if where else " WHERE ") + named
            params = {**params, **id_params}
        query = f"SELECT * FROM deliveries{where} ORDER BY created_at DESC, id LIMIT :limit"  # noqa: S608
        with self._lock:
            return [delivery_of(row) for row in self._db.execute(query, {**params, "limit": limit})]

    def unretryable(
        self, delivery_ids: Sequence[str] | None = None, *, force: bool = False
    ) -> list[Unretryable]:
        """The dead letters (all, or those named) that ``retry`` must be told to leave: those
        for a receiver the bridge did not last start with (``configured``), which no worker
        would send until a restart, when they would be dead-lettered again; and, unless
        ``force``, those that tell the receiver of an alert otherwise than the last it was sent
        of it since: a firing whose resolve it was sent would leave the alert firing for good,
        a resolve of an alert it was sent firing again would show it resolved while it fires."""
        configured = self.configured()
        where, params = "", dict[str, str]()
        if delivery_ids is not None:
            named, params = one_of("id", delivery_ids) if delivery_ids else ("0 = 1", {})
            where = f" AND {named}"
        query = f"SELECT rowid, id, url, body FROM deliveries WHERE state = :dead{where}"  # noqa: S608
        left = []
        with self._lock:
            for row in self._db.execute(
                query + " ORDER BY rowid", {**params, "dead": DeliveryState.DEAD.value}
            ).fetchall():
                if configured is not None and row["url"] not in configured:
                    left.append(Unretryable(row["id"], row["url"], configured=False))
                elif not force:
                    resolved, refired = self._told_since(row)
                    if resolved or refired:
                        left.append(Unretryable(row["id"], row["url"], True, resolved, refired))
        return left

    def _told_since(self, dead: sqlite3.Row) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
        """The alerts ``dead`` fires whose resolve its receiver was last sent since, with when
        each resolved; and those it resolves that the receiver was last sent firing since."""
        resolved, refired = [], []
        for alert_id, (status, _) in alerts_told(bytes(dead["body"])).items():
            last = self._db.execute(
                "SELECT body FROM deliveries WHERE url = :url AND state = :delivered"
                " AND rowid > :rowid AND instr(alert_ids, :needle) > 0 AND EXISTS"
                " (SELECT 1 FROM json_each(deliveries.alert_ids) WHERE value = :alert_id)"
                " ORDER BY rowid DESC LIMIT 1",
                {
                    "url": dead["url"],
                    "delivered": DeliveryState.DELIVERED.value,
                    "rowid": dead["rowid"],
                    "needle": json.dumps(alert_id),
                    "alert_id": alert_id,
                },
            ).fetchone()
            told = alerts_told(bytes(last["body"])).get(alert_id) if last is not None else None
            if told is None or told[0] == status:
                continue
            if told[0] == "resolved":
                resolved.append((alert_id, told[1]))
            elif told[0] == "firing":
                refired.append(alert_id)
        return tuple(resolved), tuple(refired)

    def retry(
        self, now: float, delivery_ids: Sequence[str] | None = None, *, leave: Sequence[str] = ()
    ) -> int:
        """Put dead-lettered deliveries (all, or those named, but those of ``leave``) back to
        pending; returns how many.

        The next attempt is due at once and the deadline starts afresh; the body, the delivery
        id and the count of attempts made stay (so the backoff goes on from that count).
        """
        query = (
            "UPDATE deliveries SET state = :pending, created_at = :now, next_attempt_at = :now,"
            " finished_at = NULL WHERE state = :dead"
            " AND id NOT IN (SELECT value FROM json_each(:leave))"
        )
        params: dict[str, Any] = {
            "pending": DeliveryState.PENDING.value,
            "dead": DeliveryState.DEAD.value,
            "now": now,
            "leave": json.dumps(list(leave)),
        }
        if delivery_ids is not None:
            if not delivery_ids:
                return 0
            named, ids = one_of("id", delivery_ids)
            query += f" AND {named}"
            params.update(ids)
        with self._lock, self._tx():
            return int(self._db.execute(query, params).rowcount)

    def depth(self) -> OutboxDepth:
        """Counts of what is waiting."""
        with self._lock:
            queued = self._db.execute("SELECT COUNT(*) FROM queued").fetchone()[0]
            counts = dict(
                self._db.execute(
                    "SELECT state, COUNT(*) FROM deliveries WHERE state != :delivered"
                    " GROUP BY state",
                    {"delivered": DeliveryState.DELIVERED.value},
                ).fetchall()
            )
        return OutboxDepth(
            int(queued),
            int(counts.get(DeliveryState.PENDING.value, 0)),
            int(counts.get(DeliveryState.DEAD.value, 0)),
        )

    def forget_dead_letters(self, now: float, older_than: float) -> int:
        """Delete dead-lettered deliveries that died more than ``older_than`` seconds ago (a
        receiver refusing everything must not grow the file without bound); how many."""
        with self._lock, self._tx():
            gone = self._db.execute(
                "DELETE FROM deliveries WHERE state = :dead AND finished_at < :before",
                {"dead": DeliveryState.DEAD.value, "before": now - older_than},
            ).rowcount
        return int(gone)

    def prune(self, now: float, *, delivered_for: float, resolved_for: float) -> int:
        """Forget delivered deliveries and resolved alerts older than the given ages (and the
        history of the alerts forgotten, and the ids of plans stored as long ago)."""
        with self._lock, self._tx():
            self._db.execute(
                "DELETE FROM plans WHERE stored_at < :before", {"before": now - resolved_for}
            )
            gone = self._db.execute(
                "DELETE FROM deliveries WHERE state = :delivered AND finished_at < :before",
                {"delivered": DeliveryState.DELIVERED.value, "before": now - delivered_for},
            ).rowcount
            gone += self._db.execute(
                "DELETE FROM alerts WHERE state = :resolved AND updated_at < :before"
                " AND alert_id NOT IN (SELECT alert_id FROM queued)",
                {"resolved": AlertState.RESOLVED.value, "before": now - resolved_for},
            ).rowcount
            # History goes with its alert, and beyond the newest HISTORY_KEPT entries of each;
            # so does what receivers were told of it (a receiver removed never hears its resolve).
            self._db.execute(
                "DELETE FROM history WHERE alert_id NOT IN (SELECT alert_id FROM alerts)"
            )
            self._db.execute("DELETE FROM told WHERE alert_id NOT IN (SELECT alert_id FROM alerts)")
            self._db.execute(
                "DELETE FROM history WHERE rowid IN (SELECT rowid FROM (SELECT rowid,"
                " row_number() OVER (PARTITION BY alert_id ORDER BY at DESC, rowid DESC) AS n"
                " FROM history) WHERE n > :kept)",
                {"kept": HISTORY_KEPT},
            )
            return int(gone)


def escalations(applied: Applied) -> list[Escalated]:
    """The escalation steps among the alerts a plan of escalations changed."""
    return [Escalated(r, f"level{r.level - 1}", r.level_name) for r in applied.changed]
