"""The delivery queue per receiver: alerts waiting for a grouping window, deliveries, attempts.

A receiver is named by its key (``bridge.receiver_keys.ReceiverKeys``) in the column ``url``, whose
name comes from version 2, when the key was the webhook URL itself; ``move_receiver_rows`` moves
rows under an earlier key (the URL, then an unkeyed digest of it, or a ``url_file`` path as
spelled) to the receiver's key when the bridge starts, so nothing waiting is lost across the
change. The keys the bridge started with are kept in the file's meta table too
(``configured``), so ``exesdb-bridge outbox retry`` can tell a dead letter no worker would send.

A delivery is committed here before its first attempt, so a crash or SIGKILL loses nothing; its
body and id never change across retries, but for the alerts ``withhold`` leaves out of it (their
newer notifications are another replica's, on Redis), given back should the receiver take the
attempt in flight as they were left out (``finish_attempt``), and for a dead letter's alerts
told as they stand when ``exesdb-bridge outbox retry`` puts it back (``dead_letters``). A
receiver's deliveries go out one at a time, in the order they were made (``next_due``); while
the oldest fails, the receiver's grouping window is held open (``group``), so what an outage
leaves waiting is bounded by the alerts, not by how often they change.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Final

from bridge.bus import new_message_id
from bridge.messages import SEVERITIES
from bridge.sinks.alerts.database import Database
from bridge.sinks.alerts.payload import alerts_told, split_body, webhook_alert
from bridge.sinks.alerts.records import (
    AlertRecord,
    AlertState,
    Delivery,
    DeliveryState,
    OutboxDepth,
)
from bridge.sinks.alerts.rows import delivery_of, matching, one_of, record_of

__all__ = ["QUEUE_ALERT", "BuildPayloads", "DeliveryQueue", "Keep"]

BuildPayloads = Callable[[Sequence[AlertRecord]], Sequence[tuple[bytes, Sequence[str]]]]
"""Turn one group of alerts into payloads: ``(body, alert_ids)`` each."""
Keep = Callable[[AlertRecord, bool], bool]
"""Whether a receiver gets an alert of its group, given whether it was sent the alert before
(open since then): a receiver's filters (``min_severity``, ``send_resolved``)."""

# Deliveries an alert's page lists at most (the newest).
_ALERT_DELIVERIES: Final = 50
# An alert's newest deliveries, for its page (refreshed every few seconds while open): the first
# entries of its key in ``carried``, already in order, each delivery found by its id; not a read
# of every delivery of the day (86 000) and its alert ids.
_OF_ALERT: Final = (
    "SELECT deliveries.* FROM carried JOIN deliveries ON deliveries.id = carried.delivery_id"
    " WHERE carried.alert_id = :alert_id"
    " ORDER BY carried.created_at DESC, carried.delivery_id LIMIT :limit"
)
# The meta row holding the keys of the receivers the bridge last started with (JSON).
_CONFIGURED: Final = "receivers"
_NEW_DELIVERY: Final = """
INSERT INTO deliveries (
    id, url, body, alert_ids, created_at, next_attempt_at, state, last_error, finished_at
) VALUES (
    :id, :url, :body, :alert_ids, :now, :now, :state, :last_error, :finished_at
)
"""
# The alerts waiting for a receiver, in the order they came (an alert pruned meanwhile is none).
_WAITING: Final = (
    "SELECT alerts.* FROM queued JOIN alerts USING (alert_id) WHERE queued.url = :url"
    " ORDER BY queued.queued_at, queued.alert_id"
)
# Of ``ids``, those queued for ``url``: the most severe severity each had while queued in the
# window still open (``peak``; NULL in a row queued before the outbox kept it), and whether it
# is resolved and was queued before it resolved (``updated_at``, the resolve's time): queued
# while open (``_kept``).
_QUEUED_PEAKS: Final = (
    "SELECT alert_id, peak, alerts.state = :resolved AND queued.queued_at < alerts.updated_at"
    " FROM queued JOIN alerts USING (alert_id) WHERE queued.url = :url"
    " AND alert_id IN (SELECT value FROM json_each(:ids))"
)


def _rank(column: str) -> str:
    """SQL ranking the severity in ``column`` as ``sources.meets`` does (-1: none of them)."""
    ranks = " ".join(f"WHEN '{name}' THEN {rank}" for rank, name in enumerate(SEVERITIES))
    return f"CASE {column} {ranks} ELSE -1 END"


# Queue the alert ``alert_id`` for ``url`` (parameters: url, alert_id, now): one already waiting
# keeps its place (and its window's start, ``queued_at``), its ``peak`` raised to the alert's
# severity now when that is more severe.
QUEUE_ALERT: Final = f"""
INSERT INTO queued (url, alert_id, queued_at, peak)
VALUES (:url, :alert_id, :now, (SELECT severity FROM alerts WHERE alert_id = :alert_id))
ON CONFLICT (url, alert_id) DO UPDATE SET peak = excluded.peak
WHERE queued.peak IS NULL OR {_rank("excluded.peak")} > {_rank("queued.peak")}
"""  # noqa: S608 (constant fragments)
# Of an alert queued for both ``:old`` and ``:new``, the row under ``:new`` takes the earlier
# start and the more severe peak of the two (``move_receiver_rows``).
_MERGE_QUEUED: Final = f"""
UPDATE queued SET
    queued_at = MIN(queued.queued_at, earlier.queued_at),
    peak = CASE WHEN {_rank("earlier.peak")} > {_rank("queued.peak")}
        THEN earlier.peak ELSE queued.peak END
FROM queued AS earlier
WHERE queued.url = :new AND earlier.url = :old AND earlier.alert_id = queued.alert_id
"""  # noqa: S608 (constant fragments)
# A receiver's deliveries go out one at a time, in the order they were made (see next_due).
_OLDEST_PENDING: Final = (
    "SELECT * FROM deliveries WHERE url = :url AND state = :pending ORDER BY rowid LIMIT 1"
)
_PENDING: Final = {"pending": DeliveryState.PENDING.value}
_RESOLVED: Final = {"resolved": AlertState.RESOLVED.value}
# The pending and dead deliveries by state, for ``depth`` (read every second): their entries of
# the index by state alone, not the day of delivered ones (86 000) a ``state !=`` would scan.
_WAITING_BY_STATE: Final = (
    "SELECT state, COUNT(*) FROM deliveries WHERE state IN (:pending, :dead) GROUP BY state"
)
_DEPTH_STATES: Final = {**_PENDING, "dead": DeliveryState.DEAD.value}


class DeliveryQueue:
    """Each receiver's queue in the outbox file; ``urls`` are the keys of the receivers every
    notified alert is queued for."""

    def __init__(self, database: Database, *, urls: Sequence[str] = ()) -> None:
        self._database = database
        self.urls = tuple(urls)

    def queue_for(self, keys: Sequence[str]) -> None:
        """Queue every notified alert for the receivers of ``keys`` from now on, and record them
        in the file as the receivers the bridge started with (``configured``)."""
        with self._database.transaction():
            self.urls = tuple(keys)
            self._database.set_meta(_CONFIGURED, json.dumps(self.urls))

    def configured(self) -> tuple[str, ...] | None:
        """The keys of the receivers the bridge last started with (``queue_for``), which have
        a worker while it runs; None when none has started on the file since it records them."""
        value = self._database.meta(_CONFIGURED)
        return None if value is None else tuple(json.loads(value))

    def enqueue(self, alert_id: str, now: float) -> None:
        """Queue a notified alert for every receiver (in the caller's transaction)."""
        if not self.urls:
            return
        with self._database.transaction() as db:
            db.executemany(
                QUEUE_ALERT,
                [{"url": url, "alert_id": alert_id, "now": now} for url in self.urls],
            )

    def tell_all(self, alert_ids: Iterable[str]) -> None:
        """Count every receiver as told of ``alert_ids`` (open alerts), so each hears how they
        end whatever its filters (``Keep``)."""
        with self._database.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO told (url, alert_id) VALUES (:url, :alert_id)",
                [{"url": url, "alert_id": alert_id} for alert_id in alert_ids for url in self.urls],
            )

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

        Not while ``url``'s oldest pending delivery has failed an attempt (the receiver is down,
        or answers it with a status to retry): the window is held until that delivery is
        delivered or dead-lettered, as Alertmanager holds a group's next notification while its
        receiver fails. An alert queued again meanwhile keeps its one row, and the delivery made
        when the window closes carries its state as it is then: a receiver down for hours is
        sent each alert's latest state once, not a delivery per window in which alerts changed.
        They go after the failing one all the same, so a resolve never overtakes its firing.

        Returns how many deliveries were created. Alerts and deliveries change in one
        transaction, so each queued alert ends up in exactly one delivery (or, left out by
        ``keep``, in none).
        """
        with self._database.read() as db:
            oldest = db.execute(
                "SELECT MIN(queued_at) FROM queued WHERE url = :url", {"url": url}
            ).fetchone()[0]
            # Queued after now: the wall clock was set back since, and the wait is over rather
            # than made longer by the jump.
            if oldest is None or now - wait_seconds < oldest <= now or self._held(url):
                return 0
            with self._database.transaction():
                records = [record_of(row) for row in db.execute(_WAITING, {"url": url})]
                created = self.deliver(url, records, now, build, DeliveryState.PENDING, keep=keep)
                db.execute("DELETE FROM queued WHERE url = :url", {"url": url})
                return created

    def _held(self, url: str) -> bool:
        """Whether ``url``'s grouping window is held: its oldest pending delivery failed an
        attempt (``group``)."""
        with self._database.read() as db:
            head = db.execute(_OLDEST_PENDING, {"url": url, **_PENDING}).fetchone()
        return head is not None and bool(head["attempts"])

    def deliver(
        self,
        url: str,
        records: Sequence[AlertRecord],
        now: float,
        build: BuildPayloads,
        state: DeliveryState,
        reason: str | None = None,
        *,
        keep: Keep | None = None,
    ) -> int:
        """Create the deliveries of ``records`` for ``url``, in ``state``, of the alerts ``keep``
        keeps (all when not given), in one transaction; how many."""
        with self._database.transaction() as db:
            if keep is not None:
                records = self._kept(url, records, keep)
            created = 0
            for body, ids in build(records) if records else ():
                db.execute(
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

    def _kept(self, url: str, records: Sequence[AlertRecord], keep: Keep) -> list[AlertRecord]:
        """The records ``keep`` keeps for ``url``, remembering which open ones it is told of
        and forgetting those resolved (in the caller's transaction).

        An alert is judged by the most severe state it had while queued in the window (a
        window held while a delivery fails, for as long as the receiver is down): one that
        resolved in the window it was queued in while open, or that eased in it, counts as told
        when ``keep`` would have kept it firing at its most severe: had the window closed then,
        the receiver would have been told it fires, so it is sent the resolve alone (or the
        alert as it stands) rather than never hear of the alert."""
        ids = json.dumps([r.alert_id for r in records])
        with self._database.transaction() as db:
            told = {
                row[0]
                for row in db.execute(
                    "SELECT alert_id FROM told WHERE url = :url"
                    " AND alert_id IN (SELECT value FROM json_each(:ids))",
                    {"url": url, "ids": ids},
                )
            }
            by_id = {r.alert_id: r for r in records}
            for alert_id, peak, queued_open in db.execute(
                _QUEUED_PEAKS, {"url": url, "ids": ids, **_RESOLVED}
            ):
                record = by_id[alert_id]
                severity = record.severity if peak is None else peak
                open_at_peak = record.open and severity == record.severity
                # Told already; open at its peak (``keep`` is asked of it as it stands, below);
                # or resolved and queued only once resolved (a resolve alone).
                if alert_id in told or open_at_peak or not (record.open or queued_open):
                    continue
                state = record.state if record.open else AlertState.FIRING
                if keep(dataclasses.replace(record, state=state, severity=severity), False):
                    told.add(alert_id)
            kept = [r for r in records if keep(r, r.alert_id in told)]
            db.executemany(
                "INSERT OR IGNORE INTO told (url, alert_id) VALUES (:url, :alert_id)",
                [{"url": url, "alert_id": r.alert_id} for r in kept if r.open],
            )
            db.executemany(
                "DELETE FROM told WHERE url = :url AND alert_id = :alert_id",
                [{"url": url, "alert_id": r.alert_id} for r in records if not r.open],
            )
            return kept

    def next_due(self, url: str, now: float, longest: float = math.inf) -> Delivery | None:
        """``url``'s oldest pending delivery, when its next attempt is due.

        Oldest first, in the order they were made (rowid), whatever their attempt times: a
        resolve must not reach the receiver before the firing it ends, waiting for a retry.
        One made (or retried by hand) after ``now`` is due: the wall clock was set back since,
        and its next attempt time, reckoned on the clock before the jump, would hold the
        receiver back by as much. One planned more than ``longest`` seconds (the largest
        backoff) after ``now`` (infinite, or years ahead: an older version's row, or one
        edited by hand) would never be due, and hold back every later one: it is planned
        ``longest`` after ``now`` instead, and stored so.
        """
        with self._database.read() as db:
            row = db.execute(_OLDEST_PENDING, {"url": url, **_PENDING}).fetchone()
        if row is None:
            return None
        delivery = delivery_of(row)
        if delivery.next_attempt_at > now and delivery.deadline_from <= now:
            if delivery.next_attempt_at > now + longest:
                self._plan_again(delivery.id, now + longest)
            return None
        return delivery

    def _plan_again(self, delivery_id: str, at: float) -> None:
        """Plan the next attempt of the pending delivery ``delivery_id`` at ``at``, should it
        still be later (see ``next_due``)."""
        with self._database.transaction() as db:
            db.execute(
                "UPDATE deliveries SET next_attempt_at = :at"
                " WHERE id = :id AND state = :pending AND next_attempt_at > :at",
                {"id": delivery_id, "at": at, **_PENDING},
            )

    def next_wake(self, url: str, wait_seconds: float) -> float | None:
        """When ``url``'s worker next has something to do (its oldest pending delivery due, or
        a closing window)."""
        with self._database.read() as db:
            head = db.execute(_OLDEST_PENDING, {"url": url, **_PENDING}).fetchone()
            due = None if head is None else head["next_attempt_at"]
            oldest = db.execute(
                "SELECT MIN(queued_at) FROM queued WHERE url = :url", {"url": url}
            ).fetchone()[0]
        times = [float(due)] if due is not None else []
        # A window held behind a failing delivery (``group``) closes when that one ends.
        if oldest is not None and not (head is not None and head["attempts"]):
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
        sent: Delivery | None = None,
    ) -> tuple[DeliveryState | None, int]:
        """Record one attempt's outcome (``state``: what it makes of a pending delivery);
        returns the state the delivery is left in (None when it is gone: pruned meanwhile) and
        how many of its alerts were queued for the receiver again (``_tell_again``).
        ``sent`` is the delivery as the attempt sent it.

        A delivery made (or retried) after ``now`` (the wall clock was set back since) is dated
        ``now``, so that its next attempt, reckoned on this clock, waits its backoff (see
        ``next_due``). The states it moves between (``DeliveryState``)::

            pending ── attempt taken (2xx) ──> delivered
            pending ── attempt failed ──> pending (retried), or dead (final answer, deadline)
            pending ── withhold ──> stale (all its alerts left out: see there)
            stale, dead, delivered ── attempt taken (2xx) ──> delivered
            stale, dead, delivered ── attempt failed ──> as it was (the attempt counted)
            dead ── outbox retry ──> pending (``dead_letters``)

        One left out as stale while its attempt was in flight (``withhold``, on Redis as the
        lease is taken up) keeps its state and last error when the attempt failed: made pending
        again, it would be sent after the newer notifications it was left out for; the caller
        reports it so, not as retried. When the receiver took the attempt it is delivered,
        whatever became of it meanwhile, and holds again what was ``sent``: alerts withheld
        from it meanwhile were taken all the same, so the stale delivery they went into is
        dropped, and the receiver counts as having taken them (the ``taken`` table: a dead
        letter of theirs is superseded by it). Either way, those of its alerts left out while in
        flight that another replica changed meanwhile are queued for the receiver again
        (``_tell_again``). One dead-lettered leaves its receiver told of the alerts it resolved
        (``_told_of_dead_resolves``).
        """
        taken = state is DeliveryState.DELIVERED
        told_again = 0
        with self._database.transaction() as db:
            if sent is not None:
                told_again = self._tell_again(sent, now)
            if taken and sent is not None:
                self._as_sent(sent)
            if state is DeliveryState.DEAD:
                self._told_of_dead_resolves(delivery_id)
            db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_status = :status"
                " WHERE id = :id AND state != :pending AND NOT :taken",
                {"id": delivery_id, "status": status, "taken": taken, **_PENDING},
            )
            db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, state = :state,"
                " created_at = MIN(created_at, :now), retried_at = MIN(retried_at, :now),"
                " next_attempt_at = :next_attempt_at, last_status = :status,"
                " last_error = :error, finished_at = :finished_at"
                " WHERE id = :id AND (state = :pending OR :taken)",
                {
                    "id": delivery_id,
                    "state": state.value,
                    "next_attempt_at": next_attempt_at,
                    "status": status,
                    "error": error,
                    "finished_at": None if state is DeliveryState.PENDING else now,
                    "now": now,
                    "taken": taken,
                    **_PENDING,
                },
            )
            row = db.execute(
                "SELECT state FROM deliveries WHERE id = :id", {"id": delivery_id}
            ).fetchone()
            return None if row is None else DeliveryState(row[0]), told_again

    def _told_of_dead_resolves(self, delivery_id: str) -> None:
        """Count the receiver of a pending delivery about to be dead-lettered as told of the
        alerts it resolves (``_told_of_unsent_resolves``): never told of those resolves, it may
        still show the alerts firing, so a later resolve is sent to it (``Keep``) even when the
        dead letter is not queued again (its alert, fired anew, queued already). In the caller's
        transaction."""
        with self._database.transaction() as db:
            row = db.execute(
                "SELECT url, body FROM deliveries WHERE id = :id AND state = :pending",
                {"id": delivery_id, **_PENDING},
            ).fetchone()
            if row is not None:
                self._told_of_unsent_resolves(str(row["url"]), bytes(row["body"]))

    def _as_sent(self, sent: Delivery) -> None:
        """Give the delivery of ``sent``, which its receiver took, back the alerts ``withhold``
        left out of it while the attempt was in flight, dropping the stale deliveries they went
        into (in the caller's transaction)."""
        with self._database.transaction() as db:
            row = db.execute(
                "SELECT rowid, alert_ids FROM deliveries WHERE id = :id", {"id": sent.id}
            ).fetchone()
            if row is None or tuple(json.loads(row["alert_ids"])) == sent.alert_ids:
                return
            left_out = set(sent.alert_ids).difference(json.loads(row["alert_ids"]))
            # Each went into a stale delivery split off from it (made finished, never tried),
            # made after it: the part of the body sent with those alerts alone (``split_body``,
            # whatever was split off before). Another delivery's notifications of them may read
            # the same, a delivery of their own or split off from one, left out by the same
            # ``withhold_everywhere``: so one split-off per alert, not each that reads so, the
            # newest first (that pass leaves the newest deliveries out first, this one last).
            for stale in db.execute(
                "SELECT id, alert_ids, body FROM deliveries"
                " WHERE url = :url AND state = :stale AND rowid > :rowid"
                " AND attempts = 0 AND created_at = finished_at ORDER BY rowid DESC",
                {"url": sent.url, "stale": DeliveryState.STALE.value, "rowid": row["rowid"]},
            ).fetchall():
                ids = json.loads(stale["alert_ids"])
                if not ids or not left_out.issuperset(ids):
                    continue
                try:
                    part = split_body(sent.body, ids)[1]
                except ValueError:  # a body not in the format, which withhold never splits
                    break
                if bytes(stale["body"]) == part:
                    db.execute("DELETE FROM deliveries WHERE id = :id", {"id": stale["id"]})
                    left_out.difference_update(ids)
            db.execute(
                "UPDATE deliveries SET body = :body, alert_ids = :alert_ids WHERE id = :id",
                {"id": sent.id, "body": sent.body, "alert_ids": json.dumps(list(sent.alert_ids))},
            )

    def _tell_again(self, sent: Delivery, now: float) -> int:
        """Queue for the receiver of ``sent`` again the alerts left out of its delivery while
        the attempt was in flight (``withhold``) that ``sent`` told otherwise than they stand
        now: another replica notified their newer state meanwhile, which may have reached the
        receiver first, the older one then left standing there (taken, or so the receiver may
        have, its answer lost); sent again as they stand, they reach it last (in the caller's
        transaction). Returns how many were queued (not those waiting for it already)."""
        with self._database.transaction() as db:
            row = db.execute(
                "SELECT alert_ids, state FROM deliveries WHERE id = :id", {"id": sent.id}
            ).fetchone()
            if row is None:
                return 0
            alert_ids = set(sent.alert_ids)
            if row["state"] != DeliveryState.STALE.value:  # not all of it left out: which
                alert_ids.difference_update(json.loads(row["alert_ids"]))
            if not alert_ids:
                return 0
            try:
                data = json.loads(sent.body)
                entries = {str(e["labels"]["alert_id"]): e for e in data["alerts"]}
                external = str(data["externalURL"])
            except (ValueError, TypeError, KeyError):  # not in the format: nothing to compare
                return 0
            rows = db.execute(
                "SELECT * FROM alerts WHERE alert_id IN (SELECT value FROM json_each(:ids))",
                {"ids": json.dumps(sorted(alert_ids))},
            ).fetchall()
            changed = [
                record.alert_id
                for record in map(record_of, rows)
                if webhook_alert(record, external).as_json() != entries.get(record.alert_id)
            ]
            waiting = {
                row[0]
                for row in db.execute(
                    "SELECT alert_id FROM queued WHERE url = :url"
                    " AND alert_id IN (SELECT value FROM json_each(:ids))",
                    {"url": sent.url, "ids": json.dumps(changed)},
                )
            }
            db.executemany(
                QUEUE_ALERT,
                [{"url": sent.url, "alert_id": alert_id, "now": now} for alert_id in changed],
            )
            return len(set(changed) - waiting)

    def withhold(
        self, delivery_id: str, alert_ids: Collection[str], now: float, reason: str
    ) -> tuple[Delivery | None, int]:
        """Leave the alerts of ``alert_ids`` out of a pending delivery, in one transaction: they
        go into a delivery of their own in state ``stale``, with ``reason`` as its last error
        (the whole delivery becomes it when they are all of its alerts); the delivery as it is
        to be sent now, with its id and place in the queue (None when nothing is left of it,
        or it is no longer pending), and how many notifications were left out (none when it is
        no longer pending, or holds none of them: left out meanwhile, they are counted once).

        Its id stays: a receiver that took the whole of it before (its answer lost) takes what
        is left as the same delivery. A resolve left out leaves the receiver counted as told of
        its alert (``_told_of_unsent_resolves``): the receiver may still show it firing, and its
        next resolve must not be kept from it (``Keep``).
        """
        with self._database.transaction() as db:
            row = db.execute(
                "SELECT * FROM deliveries WHERE id = :id AND state = :pending",
                {"id": delivery_id, **_PENDING},
            ).fetchone()
            if row is None:
                return None, 0
            delivery = delivery_of(row)
            left = [a for a in delivery.alert_ids if a not in alert_ids]
            withheld = len(delivery.alert_ids) - len(left)
            if not withheld:
                return delivery, 0
            finished = {"id": delivery_id, "state": DeliveryState.STALE.value, "now": now}
            if not left:
                db.execute(
                    "UPDATE deliveries SET state = :state, last_error = :reason,"
                    " finished_at = :now WHERE id = :id",
                    {**finished, "reason": reason},
                )
                self._told_of_unsent_resolves(delivery.url, delivery.body)
                return None, withheld
            kept, stale = split_body(delivery.body, alert_ids)
            self._told_of_unsent_resolves(delivery.url, stale)
            db.execute(
                "UPDATE deliveries SET body = :body, alert_ids = :alert_ids WHERE id = :id",
                {"id": delivery_id, "body": kept, "alert_ids": json.dumps(left)},
            )
            db.execute(
                _NEW_DELIVERY,
                {
                    **finished,
                    "id": new_message_id(),
                    "url": delivery.url,
                    "body": stale,
                    "alert_ids": json.dumps([a for a in delivery.alert_ids if a in alert_ids]),
                    "last_error": reason,
                    "finished_at": now,
                },
            )
            row = db.execute("SELECT * FROM deliveries WHERE id = :id", {"id": delivery_id})
            return delivery_of(row.fetchone()), withheld

    def _told_of_unsent_resolves(self, url: str, body: bytes) -> None:
        """Count ``url`` as told of the alerts whose resolves ``body`` held and it was not sent
        (withheld, or dead-lettered): what it was told of them open stands (``told``), so a
        later resolve of them is still sent to it (in the caller's transaction)."""
        resolved = [a for a, (status, _) in alerts_told(body).items() if status == "resolved"]
        with self._database.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO told (url, alert_id) VALUES (:url, :alert_id)",
                [{"url": url, "alert_id": alert_id} for alert_id in resolved],
            )

    def withhold_everywhere(self, alert_ids: Collection[str], now: float, reason: str) -> int:
        """Leave the alerts of ``alert_ids`` out of every pending delivery (``withhold``) and
        out of every grouping window, in one transaction; how many notifications were left out
        (one per receiver and alert)."""
        wanted = set(alert_ids)
        if not wanted:
            return 0
        with self._database.transaction() as db:
            count = db.execute(
                "DELETE FROM queued WHERE alert_id IN (SELECT value FROM json_each(:ids))",
                {"ids": json.dumps(sorted(wanted))},
            ).rowcount
            for delivery in self.deliveries(DeliveryState.PENDING.value, None):
                among = wanted.intersection(delivery.alert_ids)
                if among:
                    count += self.withhold(delivery.id, among, now, reason)[1]
            return int(count)

    def deliveries(
        self,
        state: str | None = None,
        limit: int | None = 1000,
        *,
        ids: Sequence[str] | None = None,
    ) -> list[Delivery]:
        """Deliveries, newest first, optionally in one state or among ``ids``; at most ``limit``
        of them (None: every one)."""
        where, params = matching({"state": state})
        if ids is not None:
            named, id_params = one_of("id", ids) if ids else ("0 = 1", {})
            where += (" AND " if where else " WHERE ") + named
            params = {**params, **id_params}
        query = f"SELECT * FROM deliveries{where} ORDER BY created_at DESC, id LIMIT :limit"  # noqa: S608
        with self._database.read() as db:
            # SQLite reads a negative LIMIT as none.
            bound = -1 if limit is None else limit
            return [delivery_of(row) for row in db.execute(query, {**params, "limit": bound})]

    def count(self, state: str | None = None) -> int:
        """How many deliveries there are, optionally in one state (``deliveries``' filter)."""
        where, params = matching({"state": state})
        query = f"SELECT COUNT(*) FROM deliveries{where}"  # noqa: S608
        with self._database.read() as db:
            return int(db.execute(query, params).fetchone()[0])

    def of_alert(
        self, alert_id: str
    ) -> tuple[
        tuple[Delivery, ...],
        tuple[tuple[str, float], ...],
        tuple[Delivery, ...],
        tuple[Delivery, ...],
    ]:
        """The deliveries of the alert named ``alert_id`` (the newest 50, newest first), the
        grouping windows it waits in (receiver key, since when), for each receiver one of
        them waits for, the older delivery at the head of its queue, if another (deliveries go
        out one at a time in order: that one's retries hold this alert's back), and, for each
        window it waits in that is held (``group``), the failing delivery that holds it."""
        key = {"alert_id": alert_id}
        with self._database.read() as db:
            rows = db.execute(_OF_ALERT, {**key, "limit": _ALERT_DELIVERIES}).fetchall()
            waiting = db.execute(
                "SELECT url, queued_at FROM queued WHERE alert_id = :alert_id ORDER BY url", key
            ).fetchall()
            deliveries = tuple(delivery_of(row) for row in rows)
            ours = {delivery.id for delivery in deliveries}
            pending = sorted({d.url for d in deliveries if d.state is DeliveryState.PENDING})
            heads = [
                db.execute(_OLDEST_PENDING, {"url": url, **_PENDING}).fetchone() for url in pending
            ]
            holding = [
                db.execute(_OLDEST_PENDING, {"url": url, **_PENDING}).fetchone()
                for url, _ in waiting
            ]
        return (
            deliveries,
            tuple((str(url), float(queued_at)) for url, queued_at in waiting),
            tuple(delivery_of(row) for row in heads if row is not None and row["id"] not in ours),
            tuple(delivery_of(row) for row in holding if row is not None and row["attempts"]),
        )

    def failing(self) -> tuple[tuple[Delivery, int, int], ...]:
        """Each receiver of ``urls`` whose oldest pending delivery failed an attempt (it holds
        the later ones back: they go out in order): that delivery, how many deliveries wait in
        all, and how many alerts wait in the grouping window it holds (``group``)."""
        found: list[tuple[Delivery, int, int]] = []
        with self._database.read() as db:
            for url in self.urls:  # each an index lookup, however many were delivered
                head = db.execute(_OLDEST_PENDING, {"url": url, **_PENDING}).fetchone()
                if head is None or not head["attempts"]:
                    continue
                count = db.execute(
                    "SELECT COUNT(*) FROM deliveries WHERE url = :url AND state = :pending",
                    {"url": url, **_PENDING},
                ).fetchone()[0]
                held = db.execute(
                    "SELECT COUNT(*) FROM queued WHERE url = :url", {"url": url}
                ).fetchone()[0]
                found.append((delivery_of(head), int(count), int(held)))
        return tuple(found)

    def depth(self) -> OutboxDepth:
        """Counts of what is waiting."""
        with self._database.read() as db:
            queued = db.execute("SELECT COUNT(*) FROM queued").fetchone()[0]
            counts = dict(db.execute(_WAITING_BY_STATE, _DEPTH_STATES).fetchall())
        return OutboxDepth(
            int(queued),
            int(counts.get(DeliveryState.PENDING.value, 0)),
            int(counts.get(DeliveryState.DEAD.value, 0)),
        )

    def move_receiver_rows(self, old: str, new: str) -> int:
        """Move what waits under the key ``old`` (a receiver's earlier key: its raw URL, as
        version 2 keyed it, the unkeyed digest, or its url_file's path spelled another way) to
        ``new``, deliveries of every state included; returns how many rows moved."""
        if old == new:
            return 0
        keys = {"old": old, "new": new}
        with self._database.transaction() as db:
            # An alert queued under both keys keeps its place under the new one, its window
            # reckoned from the earlier start and at the more severe peak of the two (``_kept``).
            db.execute(_MERGE_QUEUED, keys)
            moved = db.execute("UPDATE OR IGNORE queued SET url = :new WHERE url = :old", keys)
            count = moved.rowcount
            db.execute("DELETE FROM queued WHERE url = :old", keys)
            db.execute("UPDATE OR IGNORE told SET url = :new WHERE url = :old", keys)
            db.execute("DELETE FROM told WHERE url = :old", keys)
            count += db.execute("UPDATE deliveries SET url = :new WHERE url = :old", keys).rowcount
            return int(count)

    def receiver_keys(self) -> set[str]:
        """Every key something is stored under (queued alerts, deliveries, what was told)."""
        with self._database.read() as db:
            return {
                str(row[0])
                for row in db.execute(
                    "SELECT url FROM queued UNION SELECT url FROM deliveries"
                    " UNION SELECT url FROM told"
                )
            }
