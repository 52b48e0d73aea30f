"""The durable outbox and alert states: one SQLite file in ``EXESDB_STATE_DIR``.

A delivery is committed here (WAL journal, ``synchronous=FULL``: fsync'd on commit) before its
first attempt, so a crash or SIGKILL loses nothing: a new process on the same directory resumes.

Three tables:

- ``alerts``: one row per condition (``alert_id``), its state (firing → acknowledged →
  resolved) and escalation level;
- ``queued``: alerts waiting for their receiver's grouping window, one row per (url, alert);
- ``deliveries``: the frozen payloads (body and delivery id never change across retries), their
  attempts, next attempt time and state (pending, delivered, dead).

Times are Unix seconds from the injected wall clock, since they must survive a restart. Every
method is one transaction and safe to call from any one thread at a time (a lock serialises
them); the ``exesdb-bridge outbox`` commands open the same file beside a running bridge.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from bridge.bus import new_message_id
from bridge.messages import format_timestamp
from bridge.sinks.alerts.sources import AlertEvent

__all__ = [
    "MAX_LEVEL",
    "Acknowledgement",
    "AlertRecord",
    "AlertState",
    "Applied",
    "Delivery",
    "DeliveryState",
    "Escalated",
    "Outbox",
    "OutboxDepth",
]

FILE_NAME: Final = "alerts.sqlite3"
MAX_LEVEL: Final = 3
_SCHEMA_VERSION: Final = 2
# Columns added after version 1, with their definitions (appended, so positional inserts work).
_ADDED_COLUMNS: Final = (
    ("auto_resolve", "INTEGER NOT NULL DEFAULT 0"),
    ("last_seen", "REAL"),
)
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT PRIMARY KEY,
    alertname TEXT NOT NULL,
    severity TEXT NOT NULL,
    category TEXT NOT NULL,
    node TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    requires_ack INTEGER NOT NULL,
    state TEXT NOT NULL,
    level INTEGER NOT NULL,
    starts_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    ends_at REAL,
    level_since REAL NOT NULL,
    ack_by TEXT,
    ack_note TEXT,
    ack_at REAL,
    resolution TEXT,
    auto_resolve INTEGER NOT NULL DEFAULT 0,
    last_seen REAL
);
CREATE INDEX IF NOT EXISTS alerts_by_state ON alerts (state, level_since);
CREATE TABLE IF NOT EXISTS queued (
    url TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    queued_at REAL NOT NULL,
    PRIMARY KEY (url, alert_id)
);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    body BLOB NOT NULL,
    alert_ids TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    state TEXT NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (url, state, next_attempt_at);
"""


class AlertState(StrEnum):
    """Where an alert is in its life."""

    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class DeliveryState(StrEnum):
    """Where a delivery is: still to send, sent, or dead-lettered (kept for ``outbox retry``)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return format_timestamp(datetime.fromtimestamp(seconds, UTC))


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert condition as stored."""

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

    @property
    def open(self) -> bool:
        """Firing or acknowledged: not resolved."""
        return self.state is not AlertState.RESOLVED

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
        if self.level > 1:
            labels["escalation_level"] = self.level_name
        return labels

    @property
    def annotations(self) -> dict[str, str]:
        """The human text: title and description."""
        return {"title": self.title, "description": self.description}

    def as_json(self) -> dict[str, Any]:
        """The alert as ``GET /v1/alerts`` shows it."""
        return {
            "alert_id": self.alert_id,
            "state": str(self.state),
            "level": self.level_name,
            "severity": self.severity,
            "requires_ack": self.requires_ack,
            "labels": self.labels,
            "annotations": self.annotations,
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
        }


@dataclass(frozen=True, slots=True)
class Escalated:
    """An alert that moved up one escalation level."""

    alert: AlertRecord
    from_level: str
    to_level: str


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """An AlertAck to apply along with alert events."""

    alert_id: str
    ack_by: str
    ack_note: str | None = None
    resolution: str | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    """What a batch of changes did: the alerts receivers must hear of, and refusals."""

    changed: list[AlertRecord]
    refused: int = 0


@dataclass(frozen=True, slots=True)
class OutboxDepth:
    """How much is waiting: alerts in grouping windows, pending and dead deliveries."""

    queued: int
    pending: int
    dead: int


BuildPayloads = Callable[[Sequence[AlertRecord]], Sequence[tuple[bytes, Sequence[str]]]]
"""Turn one group of alerts into payloads: ``(body, alert_ids)`` each."""


class Outbox:
    """The SQLite store; see the module docstring."""

    def __init__(self, path: Path | str, *, urls: Sequence[str] = ()) -> None:
        self.path = Path(path)
        self.urls = tuple(urls)
        self._lock = threading.Lock()
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE … COMMIT).
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=10.0
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is fsync'd at every commit, so a committed delivery survives power loss.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")
        # Every statement is IF NOT EXISTS, so a bridge and a CLI opening the file race safely.
        self._db.executescript(_SCHEMA)
        self._migrate()
        self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        # Ids of the alerts not resolved, kept beside the table (written only in _store, under
        # the lock): a resolved event for any other alert changes nothing, and the sink asks
        # may_be_active() before paying a thread hop and a transaction to learn that.
        self._active: set[str] = {
            row[0]
            for row in self._db.execute(
                "SELECT alert_id FROM alerts WHERE state != ?", (AlertState.RESOLVED.value,)
            )
        }
        self._resolved: set[str] = set()  # resolved in the open transaction
        self._closed = False

    def _migrate(self) -> None:
        """Bring a version 1 file up to date: add the columns it lacks."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(alerts)")}
        for column, definition in _ADDED_COLUMNS:
            if column not in have:
                try:
                    self._db.execute(f"ALTER TABLE alerts ADD COLUMN {column} {definition}")
                except sqlite3.OperationalError as exc:  # a CLI beside us added it first
                    if "duplicate column" not in str(exc):
                        raise

    @classmethod
    def in_dir(cls, state_dir: Path | str, *, urls: Sequence[str] = ()) -> Outbox:
        """Open (creating as needed) the outbox of ``EXESDB_STATE_DIR``."""
        directory = Path(state_dir)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(directory / FILE_NAME, urls=urls)

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
        row = self._db.execute("SELECT * FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone()
        return _record(row) if row is not None else None

    def alerts(self, state: str | None = None, limit: int = 1000) -> list[AlertRecord]:
        """Alerts, most recently changed first, optionally in one state."""
        query = "SELECT * FROM alerts"
        args: tuple[Any, ...] = ()
        if state is not None:
            query += " WHERE state = ?"
            args = (state,)
        query += " ORDER BY updated_at DESC LIMIT ?"
        with self._lock:
            return [_record(row) for row in self._db.execute(query, (*args, limit))]

    def current(self, since: float, limit: int = 10_000) -> list[AlertRecord]:
        """Alerts not resolved, and those resolved since ``since`` (for Alertmanager)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM alerts WHERE state != ? OR updated_at >= ?"
                " ORDER BY updated_at DESC LIMIT ?",
                (AlertState.RESOLVED.value, since, limit),
            ).fetchall()
        return [_record(row) for row in rows]

    def observe(self, event: AlertEvent, now: float) -> AlertRecord | None:
        """Apply one alert event; the alert when receivers must hear of it, else None."""
        applied = self.apply([event], now)
        return applied.changed[0] if applied.changed else None

    def apply(
        self,
        changes: Sequence[AlertEvent | Acknowledgement],
        now: float,
        *,
        max_open: int | None = None,
    ) -> Applied:
        """Apply alert events and acknowledgements, in order, in ONE transaction.

        A firing event for an alert already firing (or acknowledged) at the same severity only
        records that it was seen (``last_seen``, which keeps an event alert from auto-resolving):
        an ongoing condition is not notified again. A resolved event for an unknown or already
        resolved alert changes nothing. A new alert beyond ``max_open`` open alerts is refused
        (counted in ``Applied.refused``).
        """
        changed: dict[str, AlertRecord] = {}
        refused = 0
        open_count: int | None = None
        with self._lock, self._tx():
            for change in changes:
                if isinstance(change, Acknowledgement):
                    record = self._acknowledge(
                        change.alert_id,
                        change.ack_by,
                        now,
                        ack_note=change.ack_note,
                        resolution=change.resolution,
                    )
                    if record is not None and record.updated_at == now:
                        changed[record.alert_id] = record
                    continue
                current = self._alert(change.alert_id)
                if change.firing and (current is None or not current.open) and max_open is not None:
                    if open_count is None:
                        open_count = self._open_count()
                    if open_count >= max_open:
                        refused += 1
                        continue
                    open_count += 1
                record = self._observe(current, change, now)
                if record is not None:
                    changed[record.alert_id] = record
                    if open_count is not None and not record.open:
                        open_count -= 1
        return Applied(list(changed.values()), refused)

    def _open_count(self) -> int:
        row = self._db.execute(
            "SELECT COUNT(*) FROM alerts WHERE state != ?", (AlertState.RESOLVED.value,)
        ).fetchone()
        return int(row[0])

    def _observe(
        self, current: AlertRecord | None, event: AlertEvent, now: float
    ) -> AlertRecord | None:
        if event.firing:
            if current is not None and current.open:
                # An event alert repeated by a condition alert becomes a condition alert.
                auto_resolve = current.auto_resolve and event.auto_resolve
                if current.severity == event.severity:
                    self._db.execute(
                        "UPDATE alerts SET last_seen = ?, auto_resolve = ? WHERE alert_id = ?",
                        (now, int(auto_resolve), current.alert_id),
                    )
                    return None
                changed = replace(
                    current,
                    severity=event.severity,
                    title=event.title,
                    description=event.description,
                    updated_at=now,
                    last_seen=now,
                    auto_resolve=auto_resolve,
                )
            else:
                changed = AlertRecord(
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
                    starts_at=event.at.timestamp(),
                    updated_at=now,
                    ends_at=None,
                    level_since=now,
                    auto_resolve=event.auto_resolve,
                    last_seen=now,
                )
        else:
            if current is None or not current.open:
                return None
            changed = replace(
                current,
                state=AlertState.RESOLVED,
                ends_at=max(event.at.timestamp(), current.starts_at),
                updated_at=now,
            )
        self._store(changed)
        self._queue(changed.alert_id, now)
        return changed

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

        Acknowledging twice, or after the alert resolved, changes nothing.
        """
        with self._lock, self._tx():
            return self._acknowledge(
                alert_id, ack_by, now, ack_note=ack_note, resolution=resolution
            )

    def _acknowledge(
        self,
        alert_id: str,
        ack_by: str,
        now: float,
        *,
        ack_note: str | None,
        resolution: str | None,
    ) -> AlertRecord | None:
        current = self._alert(alert_id)
        if current is None:
            return None
        if current.state is AlertState.RESOLVED:
            return current
        if current.state is AlertState.ACKNOWLEDGED and resolution is None:
            return current
        changed = replace(
            current,
            state=AlertState.RESOLVED if resolution else AlertState.ACKNOWLEDGED,
            ack_by=ack_by,
            ack_note=ack_note,
            ack_at=now,
            resolution=resolution,
            updated_at=now,
        )
        if resolution:
            changed = replace(changed, ends_at=now)
        self._store(changed)
        if resolution:
            self._queue(alert_id, now)
        return changed

    def resolve_expired(self, now: float, after_seconds: float) -> list[AlertRecord]:
        """Resolve the event alerts not seen for ``after_seconds`` (as Alertmanager's
        ``resolve_timeout``); a ``requires_ack`` one only once acknowledged, counting from the
        acknowledgement. Each resolution is queued for the receivers."""
        cutoff = now - after_seconds
        with self._lock, self._tx():
            rows = self._db.execute(
                "SELECT * FROM alerts WHERE auto_resolve = 1 AND ("
                " (state = ? AND requires_ack = 0) OR state = ?)"
                " AND max(COALESCE(last_seen, updated_at), COALESCE(ack_at, 0)) <= ?"
                " LIMIT 10000",
                (AlertState.FIRING.value, AlertState.ACKNOWLEDGED.value, cutoff),
            ).fetchall()
            resolved: list[AlertRecord] = []
            for row in rows:
                current = _record(row)
                seen = max(current.last_seen or current.updated_at, current.ack_at or 0.0)
                changed = replace(
                    current,
                    state=AlertState.RESOLVED,
                    ends_at=max(seen + after_seconds, current.starts_at),
                    updated_at=now,
                )
                self._store(changed)
                self._queue(changed.alert_id, now)
                resolved.append(changed)
            return resolved

    def active_counts(self) -> dict[str, int]:
        """Open alerts (firing or acknowledged) by severity."""
        with self._lock:
            rows = self._db.execute(
                "SELECT severity, COUNT(*) FROM alerts WHERE state != ? GROUP BY severity",
                (AlertState.RESOLVED.value,),
            ).fetchall()
        return {str(severity): int(count) for severity, count in rows}

    def changed_since(self, since: float, limit: int = 10_000) -> list[AlertRecord]:
        """Alerts whose state changed at or after ``since`` (for Alertmanager's wake posts)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM alerts WHERE updated_at >= ? ORDER BY updated_at DESC LIMIT ?",
                (since, limit),
            ).fetchall()
        return [_record(row) for row in rows]

    def escalate_due(self, now: float, after_seconds: float) -> list[Escalated]:
        """Move every unacknowledged ``requires_ack`` alert that waited too long up one level."""
        with self._lock, self._tx():
            rows = self._db.execute(
                "SELECT * FROM alerts WHERE state = ? AND requires_ack = 1 AND level < ?"
                " AND level_since <= ? ORDER BY level_since",
                (AlertState.FIRING.value, MAX_LEVEL, now - after_seconds),
            ).fetchall()
            escalated: list[Escalated] = []
            for row in rows:
                current = _record(row)
                changed = replace(current, level=current.level + 1, level_since=now, updated_at=now)
                self._store(changed)
                self._queue(changed.alert_id, now)
                escalated.append(Escalated(changed, current.level_name, changed.level_name))
            return escalated

    def next_escalation(self, after_seconds: float) -> float | None:
        """When the next escalation falls due, if any alert can escalate."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(level_since) FROM alerts WHERE state = ? AND requires_ack = 1"
                " AND level < ?",
                (AlertState.FIRING.value, MAX_LEVEL),
            ).fetchone()
        return None if row[0] is None else float(row[0]) + after_seconds

    def may_be_active(self, alert_id: str) -> bool:
        """False when the alert is unknown or resolved (so a resolved event would change nothing).

        Lock-free (a set lookup): a stale answer can only be True, and observe() decides then.
        """
        return alert_id in self._active

    def _store(self, record: AlertRecord) -> None:
        if record.state is AlertState.RESOLVED:
            self._resolved.add(record.alert_id)
        else:
            self._active.add(record.alert_id)
            self._resolved.discard(record.alert_id)
        self._db.execute(
            "INSERT OR REPLACE INTO alerts VALUES"
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.alert_id,
                record.alertname,
                record.severity,
                record.category,
                record.node,
                record.title,
                record.description,
                int(record.requires_ack),
                record.state.value,
                record.level,
                record.starts_at,
                record.updated_at,
                record.ends_at,
                record.level_since,
                record.ack_by,
                record.ack_note,
                record.ack_at,
                record.resolution,
                int(record.auto_resolve),
                record.last_seen,
            ),
        )

    def _queue(self, alert_id: str, now: float) -> None:
        # OR IGNORE: an alert already waiting keeps its place (and its window's start).
        self._db.executemany(
            "INSERT OR IGNORE INTO queued (url, alert_id, queued_at) VALUES (?, ?, ?)",
            [(url, alert_id, now) for url in self.urls],
        )

    # -- deliveries --

    def group(self, url: str, now: float, wait_seconds: float, build: BuildPayloads) -> int:
        """Turn ``url``'s queued alerts into deliveries once the oldest waited ``wait_seconds``.

        Returns how many deliveries were created. Alerts and deliveries change in one
        transaction, so each queued alert ends up in exactly one delivery.
        """
        with self._lock:
            oldest = self._db.execute(
                "SELECT MIN(queued_at) FROM queued WHERE url = ?", (url,)
            ).fetchone()[0]
            if oldest is None or oldest > now - wait_seconds:
                return 0
            with self._tx():
                ids = [
                    row[0]
                    for row in self._db.execute(
                        "SELECT alert_id FROM queued WHERE url = ? ORDER BY queued_at, alert_id",
                        (url,),
                    )
                ]
                records = [r for r in (self._alert(i) for i in ids) if r is not None]
                created = 0
                for body, alert_ids in build(records) if records else ():
                    self._db.execute(
                        "INSERT INTO deliveries (id, url, body, alert_ids, created_at,"
                        " next_attempt_at, state) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            new_message_id(),
                            url,
                            body,
                            json.dumps(list(alert_ids)),
                            now,
                            now,
                            DeliveryState.PENDING.value,
                        ),
                    )
                    created += 1
                self._db.executemany(
                    "DELETE FROM queued WHERE url = ? AND alert_id = ?", [(url, i) for i in ids]
                )
                return created

    def next_due(self, url: str, now: float) -> Delivery | None:
        """The pending delivery for ``url`` whose next attempt is the most overdue."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM deliveries WHERE url = ? AND state = ? AND next_attempt_at <= ?"
                " ORDER BY next_attempt_at, created_at LIMIT 1",
                (url, DeliveryState.PENDING.value, now),
            ).fetchone()
        return _delivery(row) if row is not None else None

    def next_wake(self, url: str, wait_seconds: float) -> float | None:
        """When ``url``'s worker next has something to do (a due attempt or a closing window)."""
        with self._lock:
            due = self._db.execute(
                "SELECT MIN(next_attempt_at) FROM deliveries WHERE url = ? AND state = ?",
                (url, DeliveryState.PENDING.value),
            ).fetchone()[0]
            oldest = self._db.execute(
                "SELECT MIN(queued_at) FROM queued WHERE url = ?", (url,)
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
        """Record one attempt's outcome."""
        finished = None if state is DeliveryState.PENDING else now
        with self._lock, self._tx():
            self._db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, state = ?, next_attempt_at = ?,"
                " last_status = ?, last_error = ?, finished_at = ? WHERE id = ?",
                (state.value, next_attempt_at, status, error, finished, delivery_id),
            )

    def orphaned(self) -> int:
        """Pending deliveries and queued alerts for URLs this outbox was not opened with."""
        where, args = self._not_configured()
        with self._lock:
            pending = self._db.execute(
                f"SELECT COUNT(*) FROM deliveries WHERE state = ? AND {where}",  # noqa: S608
                (DeliveryState.PENDING.value, *args),
            ).fetchone()[0]
            queued = self._db.execute(
                f"SELECT COUNT(*) FROM queued WHERE {where}",  # noqa: S608
                args,
            ).fetchone()[0]
        return int(pending) + int(queued)

    def dead_letter_orphans(self, now: float, build: BuildPayloads) -> int:
        """Dead-letter what waits for URLs no longer configured; returns how many deliveries.

        Queued alerts become deliveries built at once, and those and the pending deliveries
        for such URLs are dead-lettered with a reason, so they no longer count as waiting; they
        stay retryable with ``exesdb-bridge outbox retry`` once the URL is configured again.
        """
        reason = "the URL is no longer in EXESDB_WEBHOOK_URLS"
        where, args = self._not_configured()
        with self._lock, self._tx():
            queued: dict[str, list[str]] = {}
            for url, alert_id in self._db.execute(
                f"SELECT url, alert_id FROM queued WHERE {where}"  # noqa: S608
                " ORDER BY url, queued_at, alert_id",
                args,
            ):
                queued.setdefault(url, []).append(alert_id)
            created = 0
            for url, ids in queued.items():
                records = [r for r in (self._alert(i) for i in ids) if r is not None]
                for body, alert_ids in build(records) if records else ():
                    self._db.execute(
                        "INSERT INTO deliveries (id, url, body, alert_ids, created_at,"
                        " next_attempt_at, state, last_error, finished_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            new_message_id(),
                            url,
                            body,
                            json.dumps(list(alert_ids)),
                            now,
                            now,
                            DeliveryState.DEAD.value,
                            reason,
                            now,
                        ),
                    )
                    created += 1
            self._db.execute(f"DELETE FROM queued WHERE {where}", args)  # noqa: S608
            moved = self._db.execute(
                "UPDATE deliveries SET state = ?, last_error = ?, finished_at = ?"  # noqa: S608
                f" WHERE state = ? AND {where}",
                (DeliveryState.DEAD.value, reason, now, DeliveryState.PENDING.value, *args),
            ).rowcount
            return created + moved

    def _not_configured(self) -> tuple[str, tuple[str, ...]]:
        # Only "?" placeholders go into the SQL text; the URLs are bound parameters.
        if not self.urls:
            return "1 = 1", ()
        return f"url NOT IN ({','.join('?' * len(self.urls))})", self.urls

    def deliveries(self, state: str | None = None, limit: int = 1000) -> list[Delivery]:
        """Deliveries, newest first, optionally in one state."""
        query = "SELECT * FROM deliveries"
        args: tuple[Any, ...] = ()
        if state is not None:
            query += " WHERE state = ?"
            args = (state,)
        query += " ORDER BY created_at DESC, id LIMIT ?"
        with self._lock:
            return [_delivery(row) for row in self._db.execute(query, (*args, limit))]

    def retry(self, now: float, delivery_ids: Sequence[str] | None = None) -> int:
        """Put dead-lettered deliveries (all, or those named) back to pending; returns how many.

        The deadline and the backoff start afresh; the body and delivery id stay the same.
        """
        query = (
            "UPDATE deliveries SET state = ?, created_at = ?, next_attempt_at = ?, attempts = 0,"
            " finished_at = NULL WHERE state = ?"
        )
        args: list[Any] = [DeliveryState.PENDING.value, now, now, DeliveryState.DEAD.value]
        if delivery_ids is not None:
            if not delivery_ids:
                return 0
            query += f" AND id IN ({','.join('?' * len(delivery_ids))})"
            args.extend(delivery_ids)
        with self._lock, self._tx():
            return self._db.execute(query, args).rowcount

    def depth(self) -> OutboxDepth:
        """Counts of what is waiting."""
        with self._lock:
            queued = self._db.execute("SELECT COUNT(*) FROM queued").fetchone()[0]
            counts = dict(
                self._db.execute(
                    "SELECT state, COUNT(*) FROM deliveries WHERE state != ? GROUP BY state",
                    (DeliveryState.DELIVERED.value,),
                ).fetchall()
            )
        return OutboxDepth(
            int(queued),
            int(counts.get(DeliveryState.PENDING.value, 0)),
            int(counts.get(DeliveryState.DEAD.value, 0)),
        )

    def prune(self, now: float, *, delivered_for: float, resolved_for: float) -> int:
        """Forget delivered deliveries and resolved alerts older than the given ages."""
        with self._lock, self._tx():
            gone = self._db.execute(
                "DELETE FROM deliveries WHERE state = ? AND finished_at < ?",
                (DeliveryState.DELIVERED.value, now - delivered_for),
            ).rowcount
            gone += self._db.execute(
                "DELETE FROM alerts WHERE state = ? AND updated_at < ?"
                " AND alert_id NOT IN (SELECT alert_id FROM queued)",
                (AlertState.RESOLVED.value, now - resolved_for),
            ).rowcount
            return gone


def _record(row: sqlite3.Row) -> AlertRecord:
    return AlertRecord(
        alert_id=row["alert_id"],
        alertname=row["alertname"],
        severity=row["severity"],
        category=row["category"],
        node=row["node"],
        title=row["title"],
        description=row["description"],
        requires_ack=bool(row["requires_ack"]),
        state=AlertState(row["state"]),
        level=int(row["level"]),
        starts_at=float(row["starts_at"]),
        updated_at=float(row["updated_at"]),
        ends_at=None if row["ends_at"] is None else float(row["ends_at"]),
        level_since=float(row["level_since"]),
        ack_by=row["ack_by"],
        ack_note=row["ack_note"],
        ack_at=None if row["ack_at"] is None else float(row["ack_at"]),
        resolution=row["resolution"],
        auto_resolve=bool(row["auto_resolve"]),
        last_seen=None if row["last_seen"] is None else float(row["last_seen"]),
    )


def _delivery(row: sqlite3.Row) -> Delivery:
    return Delivery(
        id=row["id"],
        url=row["url"],
        body=bytes(row["body"]),
        alert_ids=tuple(json.loads(row["alert_ids"])),
        created_at=float(row["created_at"]),
        attempts=int(row["attempts"]),
        next_attempt_at=float(row["next_attempt_at"]),
        state=DeliveryState(row["state"]),
        last_status=row["last_status"],
        last_error=row["last_error"],
        finished_at=None if row["finished_at"] is None else float(row["finished_at"]),
    )
