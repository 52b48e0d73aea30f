"""The outbox's queries that grow with a day of deliveries: the dead-letters gauge's count of
superseded dead letters, the hourly prune, the depth, an alert's page, the re-notification of
dead letters, and what a delivery made or marked delivered pays.

    .venv/bin/python -m bench.dead_letters [--deliveries 86000] [--runs 15] [--prune-runs 5]
        [--commits 100]

An outbox file holds a day of ``--deliveries`` deliveries to four receivers (one to three alerts
each, of 300, with bodies of about 1 KB an alert): one receiver was down for a stretch (2 000
dead letters), came back and took the rest of the day; another refused 50 deliveries spread over
the day. The figures, measured side by side, each the median of ``--runs`` (the queries before,
``*_BEFORE``, from ``bench.outbox_before``):

- ``superseded_count``: ``DeadLetters.superseded_count`` (what the gauge reads), beside the query
  it replaced (``SUPERSEDED_BEFORE``: each delivery the receivers with dead letters took since
  their first read with its alert ids, at every count), which must count the same; and beside
  the count before it counted dead letters another replica told newer of or firing alerts
  resolved since (``SUPERSEDED_TAKEN_BEFORE``), on the day and on a copy of it holding each
  alert resolved (each dead letter then looked at for them, and those of an alert no later
  delivery carried read whole: the bodies tell no status, so none is counted, and both must
  count the same);
- ``prune``: ``Retention.prune`` an hour after the day (it forgets the deliveries of its first
  hour), beside the deletes of deliveries it made before version 11 (``FORGET_DELIVERED_BEFORE``,
  ``STALE_BEFORE``) on a copy of the file as version 10 left it (without the index of the
  deliveries by state); each in a transaction rolled back, so each run forgets the same (medians
  of ``--prune-runs``: the old one takes seconds). They must leave the same deliveries then,
  and a day after the day, when each forgets every delivered one but those it keeps for the
  dead letters. ``Retention.prune`` on a copy whose ``carried`` is kept no more (its triggers,
  which each delivery forgotten fires, dropped; its rows left, as the prune reads them) is timed
  beside them;
- ``depth``: ``DeliveryQueue.depth`` (read every second), beside its queries before version 11
  (``DEPTH_BEFORE``) on that copy, which must count the same;
- ``alert page``: ``DeliveryQueue.of_alert`` (an alert's page reads it at every refresh, every
  5 s while it is open, answered 304 or not), beside its read of the alert's deliveries before
  version 12 (``OF_ALERT_BEFORE``), for the alert of the most deliveries and one of a single
  dead letter, which must list the same deliveries in the same order;
- ``make a delivery``: ``DeliveryQueue.deliver`` of one delivery of two alerts (its fsync'd
  commit), beside the same on the version 11 copy (medians of wall and CPU time): what keeping
  ``carried`` costs a delivery;
- ``mark delivered``: ``DeliveryQueue.finish_attempt`` of a delivery taken (its fsync'd commit),
  beside the same on a copy of the file with the triggers of ``taken`` and ``carried`` dropped,
  and on the version 11 and 10 copies (medians of wall and CPU time): what keeping the tables,
  and the index by state, cost a delivery;
- ``renotify``: ``DeadLetters.renotify`` at the day's end plus the renotify interval (4 h: every
  dead letter due), on a copy of the file holding each alert of the day firing: one pass
  (the oldest 100 dead letters, in a transaction rolled back), beside the same pass with its
  query before it read ``carried`` (``STILL_UNTOLD_BEFORE``: each delivery to the receiver
  since each dead letter, with its alert ids); and, once each, the passes that take up every
  dead letter, one after the other. Each must queue the same alerts for the same receivers;
- ``upgrade``: how long opening the version 11 copy (as a file of that version) takes, once:
  version 12 fills ``carried`` from the day's deliveries;
- ``receiver keys``: ``DeliveryQueue.receiver_keys`` (read once, when the alert sink starts).
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench._util import argument_parser
from bench.outbox_before import (
    DEPTH_BEFORE,
    FORGET_DELIVERED_BEFORE,
    OF_ALERT_BEFORE,
    STALE_BEFORE,
    STILL_UNTOLD_BEFORE,
    SUPERSEDED_BEFORE,
    SUPERSEDED_TAKEN_BEFORE,
)
from bridge.sinks.alerts import Outbox
from bridge.sinks.alerts.records import AlertRecord, DeliveryState
from bridge.sinks.alerts.sources import AlertEvent
from bridge.sinks.alerts.tables import connect

_RECEIVERS = ("r0", "r1", "r2", "r3")
_ALERTS = [
    f"node-{n // 6}/{('disk', 'cpu', 'mem', 'lag', 'down', 'net')[n % 6]}" for n in range(300)
]
# The states SUPERSEDED_BEFORE binds, as the release before version 10 bound them.
_STATES = {"dead": "dead", "delivered": "delivered"}


# The dead letters a pass takes up when every one is due (each receiver configured), oldest first.
_DUE_LETTERS = (
    "SELECT rowid, url, alert_ids, refused(last_status, last_error) AS refused FROM deliveries"
    " WHERE state = 'dead' AND renotified_at IS NULL ORDER BY rowid LIMIT 100"
)
_RENOTIFY_AFTER = 4 * 3600.0  # EXESDB_WEBHOOK_RENOTIFY_INTERVAL_MS's default
# What versions 11 and 12 added, dropped to copy the file as the version before left it.
_ADDED = {
    12: (
        "DROP TRIGGER carried_made",
        "DROP TRIGGER carried_changed",
        "DROP TRIGGER carried_deleted",
        "DROP TABLE carried",
    ),
    11: ("DROP INDEX deliveries_by_state",),
}
_START = 1_780_000_000.0  # when the day of deliveries begins
_DAY = 86_400.0


class _Undone(Exception):
    """Raised to roll a transaction back, so each run finds the same file."""


def day_of_deliveries(path: Path, count: int) -> None:
    """Fill the outbox file at ``path`` (made by ``Outbox``) with a day of ``count``
    deliveries, as described in the module docstring."""
    pick = random.Random(7)
    outage = range(count // 4, count // 4 + 2000 * len(_RECEIVERS))  # r0's 2 000 dead letters
    refused = set(pick.sample(range(1, count, len(_RECEIVERS)), 50))  # r1's
    rows = []
    for n in range(count):
        url = _RECEIVERS[n % len(_RECEIVERS)]
        alert_ids = pick.sample(_ALERTS, pick.randint(1, 3))
        if n in outage and url == "r0" and n % 7 == 0:
            alert_ids.append(f"outage-{n}")  # told of once only: its dead letter stays needed
        body = json.dumps(
            {
                "alerts": [
                    {"labels": {"alert_id": a}, "annotations": {"d": "x" * 900}} for a in alert_ids
                ]
            }
        ).encode()
        dead = (n in outage and url == "r0") or (n in refused and url == "r1")
        at = _START + n * _DAY / count
        rows.append(
            (f"d{n}", url, body, json.dumps(alert_ids), at, at, "dead" if dead else "delivered", at)
        )
    db = connect(path)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO deliveries (id, url, body, alert_ids, created_at, next_attempt_at, state,"
            " finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.execute("COMMIT")
    finally:
        db.close()


def _seconds(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def superseded_counts(path: Path, runs: int) -> tuple[float, float, int, int]:
    """Median seconds of the count before and now, alternated, the count (both agree) and of
    how many dead letters."""
    outbox = Outbox(path, urls=list(_RECEIVERS))
    before_db = connect(path)
    try:
        now = outbox.dead_letters.superseded_count()

        def count_before() -> int:
            return int(before_db.execute(SUPERSEDED_BEFORE, _STATES).fetchone()[0])

        before = count_before()
        if now != before:
            raise AssertionError(f"superseded: {now} counted now, {before} before")
        before_times, now_times = [], []
        for _ in range(runs):
            before_times.append(_seconds(count_before))
            now_times.append(_seconds(outbox.dead_letters.superseded_count))
        dead = outbox.queue.depth().dead
        return statistics.median(before_times), statistics.median(now_times), now, dead
    finally:
        before_db.close()
        outbox.close()


def _with_resolved_alerts(path: Path, copy: Path) -> None:
    """``path`` copied to ``copy``, each alert its deliveries carry stored resolved."""
    source, target = connect(path), connect(copy)
    try:
        source.backup(target)
        target.execute("BEGIN IMMEDIATE")
        target.execute(
            "INSERT INTO alerts (alert_id, alertname, severity, category, node, title,"
            " description, requires_ack, state, level, starts_at, updated_at, ends_at,"
            " level_since) SELECT DISTINCT alert_id, 'bench', 'critical', 'system', 'n1', 't',"
            " 'd', 0, 'resolved', 0, :at, :at, :at, :at FROM carried",
            {"at": _START + _DAY},
        )
        target.execute("COMMIT")
    finally:
        source.close()
        target.close()


def superseded_counts_taken(path: Path, runs: int) -> tuple[float, float, int]:
    """Median seconds of the count as it was before it counted dead letters told newer
    elsewhere or of alerts resolved since (``SUPERSEDED_TAKEN_BEFORE``) and now, alternated,
    and the count (both agree)."""
    outbox = Outbox(path, urls=list(_RECEIVERS))
    before_db = connect(path)
    try:

        def count_before() -> int:
            return int(before_db.execute(SUPERSEDED_TAKEN_BEFORE).fetchone()[0])

        now, before = outbox.dead_letters.superseded_count(), count_before()
        if now != before:
            raise AssertionError(f"superseded: {now} counted now, {before} before")
        before_times, now_times = [], []
        for _ in range(runs):
            before_times.append(_seconds(count_before))
            now_times.append(_seconds(outbox.dead_letters.superseded_count))
        return statistics.median(before_times), statistics.median(now_times), now
    finally:
        before_db.close()
        outbox.close()


def _left_by_prune_before(db: sqlite3.Connection, now: float) -> tuple[float, list[str]]:
    """Seconds the prune's deletes of deliveries before version 11 take at ``now`` on ``db``
    (rolled back), and the ids they leave."""
    params: dict[str, str | float] = {state: state for state in ("delivered", "dead", "stale")}
    params["before"] = now - _DAY
    db.execute("BEGIN IMMEDIATE")
    try:
        started = time.perf_counter()
        db.execute(FORGET_DELIVERED_BEFORE, params)
        db.execute(STALE_BEFORE, params)
        took = time.perf_counter() - started
        return took, [str(row[0]) for row in db.execute("SELECT id FROM deliveries")]
    finally:
        db.execute("ROLLBACK")


def _left_by_prune(outbox: Outbox, now: float) -> tuple[float, list[str]]:
    """Seconds ``Retention.prune`` takes at ``now`` (rolled back), and the ids it leaves."""
    took, left = 0.0, []
    with contextlib.suppress(_Undone), outbox.database.transaction() as db:
        started = time.perf_counter()
        outbox.retention.prune(now)
        took = time.perf_counter() - started
        left = [str(row[0]) for row in db.execute("SELECT id FROM deliveries")]
        raise _Undone
    return took, left


def prunes(
    path: Path, before_path: Path, unkept: Path, runs: int
) -> tuple[float, float, float, int, int]:
    """Median seconds of the prune's deletes before (on ``before_path``, as version 10 left the
    file), of ``Retention.prune`` now and of it on ``unkept`` (``carried`` not kept by
    triggers), an hour after the day, alternated; how many deliveries each forgets then; and
    how many delivered ones they keep for the dead letters a day after the day (every other
    delivered one forgotten). They must leave the same deliveries."""
    outbox = Outbox(path, urls=list(_RECEIVERS))
    outbox_unkept = Outbox(unkept, urls=list(_RECEIVERS))
    before_db = connect(before_path)
    now, late = _START + _DAY + 3600.0, _START + 2 * _DAY
    try:
        with outbox.database.read() as db:
            total = int(db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0])
            other = "SELECT COUNT(*) FROM deliveries WHERE state != 'delivered'"
            undelivered = int(db.execute(other).fetchone()[0])
        before_times, now_times, unkept_times, left = [], [], [], {}
        for at in (late, *[now] * runs):
            took, left_before = _left_by_prune_before(before_db, at)
            before_times.append(took)
            took, left_now = _left_by_prune(outbox, at)
            now_times.append(took)
            took, left_unkept = _left_by_prune(outbox_unkept, at)
            unkept_times.append(took)
            if not sorted(left_now) == sorted(left_before) == sorted(left_unkept):
                raise AssertionError(
                    f"prune: {len(left_now)} deliveries left now, {len(left_before)} before"
                    f" version 11, {len(left_unkept)} without carried's triggers"
                )
            left[at] = len(left_now)
        return (
            statistics.median(before_times[1:]),
            statistics.median(now_times[1:]),
            statistics.median(unkept_times[1:]),
            total - left[now],
            left[late] - undelivered,
        )
    finally:
        before_db.close()
        outbox_unkept.close()
        outbox.close()


def depths(path: Path, before_path: Path, runs: int) -> tuple[float, float]:
    """Median seconds of the depth's queries before (on ``before_path``) and of
    ``DeliveryQueue.depth`` now, alternated; both must count the same."""
    outbox = Outbox(path, urls=list(_RECEIVERS))
    before_db = connect(before_path)
    try:

        def depth_before() -> tuple[int, int, int]:
            queued = int(before_db.execute(DEPTH_BEFORE[0]).fetchone()[0])
            counts = dict(before_db.execute(DEPTH_BEFORE[1], {"delivered": "delivered"}))
            return queued, int(counts.get("pending", 0)), int(counts.get("dead", 0))

        depth = outbox.queue.depth()
        if (depth.queued, depth.pending, depth.dead) != depth_before():
            raise AssertionError(f"depth: {depth} now, {depth_before()} before")
        before_times, now_times = [], []
        for _ in range(runs):
            before_times.append(_seconds(depth_before))
            now_times.append(_seconds(outbox.queue.depth))
        return statistics.median(before_times), statistics.median(now_times)
    finally:
        before_db.close()
        outbox.close()


def alert_pages(path: Path, runs: int) -> list[tuple[str, int, float, float]]:
    """For the alert of the most deliveries and one of a single dead letter: the alert, how
    many deliveries it has, the median seconds of the read of them before version 12 and of
    ``DeliveryQueue.of_alert`` now, alternated; both must list the same deliveries in order."""
    outbox = Outbox(path, urls=list(_RECEIVERS))
    before_db = connect(path)
    try:
        with outbox.database.read() as db:
            busiest = db.execute(
                "SELECT alert_id, COUNT(*) FROM carried GROUP BY alert_id ORDER BY 2 DESC LIMIT 1"
            ).fetchone()
            single = db.execute(
                "SELECT alert_id, COUNT(*) FROM carried WHERE alert_id LIKE 'outage-%'"
                " GROUP BY alert_id LIMIT 1"
            ).fetchone()
        found = []
        for alert_id, count in (busiest, single):
            params = {"alert_id": alert_id, "needle": json.dumps(alert_id)}

            def read_before(params: dict[str, str] = params) -> list[str]:
                return [str(row["id"]) for row in before_db.execute(OF_ALERT_BEFORE, params)]

            def read_now(alert_id: str = alert_id) -> list[str]:
                return [delivery.id for delivery in outbox.queue.of_alert(alert_id)[0]]

            if read_now() != read_before():
                raise AssertionError(f"alert page of {alert_id}: not the deliveries listed before")
            before_times, now_times = [], []
            for _ in range(runs):
                before_times.append(_seconds(read_before))
                now_times.append(_seconds(read_now))
            found.append(
                (
                    str(alert_id),
                    int(count),
                    statistics.median(before_times),
                    statistics.median(now_times),
                )
            )
        return found
    finally:
        before_db.close()
        outbox.close()


def _with_open_alerts(path: Path, copy: Path) -> None:
    """``path`` copied to ``copy``, each alert its deliveries carry stored firing (none waiting
    for a receiver: the sink would have sent them)."""
    source, target = connect(path), connect(copy)
    try:
        source.backup(target)
        alert_ids = [str(row[0]) for row in target.execute("SELECT DISTINCT alert_id FROM carried")]
    finally:
        source.close()
        target.close()
    outbox = Outbox(copy)
    try:
        at = datetime.fromtimestamp(_START, UTC)
        outbox.alerts.apply(
            [
                AlertEvent(
                    alert_id, "bench", "firing", "critical", "system", "n1", "t", "d", True, at
                )
                for alert_id in alert_ids
            ],
            _START,
        )
        with outbox.database.transaction() as db:
            db.execute("DELETE FROM queued")
    finally:
        outbox.close()


def _renotify_before(db: sqlite3.Connection, now: float) -> dict[str, int]:
    """One pass of ``renotify`` with its query before ``carried``, on ``db`` in the transaction
    open: each of the oldest 100 dead letters (all due) taken up; how many alerts queued, by
    receiver."""
    queued: dict[str, int] = {}
    for letter in db.execute(_DUE_LETTERS).fetchall():
        needles = json.dumps([json.dumps(a) for a in json.loads(letter["alert_ids"])])
        params = {
            "url": letter["url"], "rowid": letter["rowid"], "alert_ids": letter["alert_ids"],
            "needles": needles, "resolved": "resolved", "refused": letter["refused"],
            "dead": "dead",
        }  # fmt: skip
        alert_ids = [row[0] for row in db.execute(STILL_UNTOLD_BEFORE, params)]
        db.executemany(
            "INSERT OR IGNORE INTO queued (url, alert_id, queued_at) VALUES (?, ?, ?)",
            [(letter["url"], alert_id, now) for alert_id in alert_ids],
        )
        db.execute(
            "UPDATE deliveries SET renotified_at = ? WHERE rowid = ?", (now, letter["rowid"])
        )
        if alert_ids:
            queued[letter["url"]] = queued.get(letter["url"], 0) + len(alert_ids)
    return queued


# The dead letters no pass took up yet.
_NOT_TAKEN_UP = "SELECT COUNT(*) FROM deliveries WHERE state = 'dead' AND renotified_at IS NULL"


def _passes(
    db: sqlite3.Connection, one_pass: Callable[[], object], every: bool
) -> tuple[float, int, list[tuple[str, str]]]:
    """Seconds ``one_pass`` takes on ``db``, in the transaction open, once or (``every``) until
    no dead letter is left; how many passes, and what they queued."""
    passes = 0
    started = time.perf_counter()
    while not passes or (every and db.execute(_NOT_TAKEN_UP).fetchone()[0]):
        one_pass()
        passes += 1
    took = time.perf_counter() - started
    queued = db.execute("SELECT url, alert_id FROM queued ORDER BY url, alert_id")
    return took, passes, [(str(row[0]), str(row[1])) for row in queued]


def _renotified(
    outbox: Outbox, before_db: sqlite3.Connection, every: bool
) -> tuple[tuple[float, int, list[tuple[str, str]]], ...]:
    """``_passes`` before (on ``before_db``) and now (``DeadLetters.renotify``), each rolled
    back; they must take as many passes and queue the same alerts."""
    now = _START + _DAY + _RENOTIFY_AFTER
    before_db.execute("BEGIN IMMEDIATE")
    try:
        before = _passes(before_db, lambda: _renotify_before(before_db, now), every)
    finally:
        before_db.execute("ROLLBACK")
    found: tuple[float, int, list[tuple[str, str]]] = (0.0, 0, [])
    with contextlib.suppress(_Undone), outbox.database.transaction() as db:
        found = _passes(db, lambda: outbox.dead_letters.renotify(now, _RENOTIFY_AFTER), every)
        raise _Undone
    if before[1:] != found[1:]:
        raise AssertionError(
            f"renotify: {len(found[2])} alerts queued in {found[1]} pass(es) now,"
            f" {len(before[2])} in {before[1]} before"
        )
    return before, found


def renotify_passes(path: Path, runs: int) -> tuple[float, float, int, float, float, int, int]:
    """Median seconds of a pass of ``DeadLetters.renotify`` (100 dead letters) before (its query
    before ``carried``) and now, alternated, and how many alerts it queued; then seconds of the
    passes taking up every dead letter, before and now, once each, how many alerts they queued
    and in how many passes. Each must queue the same alerts."""
    outbox = Outbox(path, urls=list(_RECEIVERS))
    before_db = connect(path)
    try:
        before_times, now_times = [], []
        for _ in range(runs):
            before, found = _renotified(outbox, before_db, every=False)
            before_times.append(before[0])
            now_times.append(found[0])
        queued = len(found[2])
        before, found = _renotified(outbox, before_db, every=True)
        return (
            statistics.median(before_times),
            statistics.median(now_times),
            queued,
            before[0],
            found[0],
            len(found[2]),
            found[1],
        )
    finally:
        before_db.close()
        outbox.close()


def receiver_keys(path: Path, runs: int) -> float:
    """Median seconds of ``DeliveryQueue.receiver_keys``."""
    outbox = Outbox(path, urls=list(_RECEIVERS))
    try:
        return statistics.median(_seconds(outbox.queue.receiver_keys) for _ in range(runs))
    finally:
        outbox.close()


def _two_alerts(outbox: Outbox) -> list[AlertRecord]:
    """Two alerts stored in ``outbox`` (made once), for deliveries of them."""
    at = datetime.fromtimestamp(_START, UTC)
    events = [
        AlertEvent(alert_id, "bench", "firing", "critical", "system", "n1", "t", "d", True, at)
        for alert_id in _ALERTS[:2]
    ]
    outbox.alerts.apply(events, _START)
    return [record for record in outbox.alerts.find() if record.alert_id in _ALERTS[:2]]


def make_deliveries(path: Path, count: int) -> tuple[float, float]:
    """Median seconds of ``DeliveryQueue.deliver`` making one of ``count`` new pending
    deliveries (two alerts each), each in its commit (fsync'd): wall and CPU. They are
    deleted again after."""
    outbox = Outbox(path, urls=list(_RECEIVERS))
    wall, cpu = [], []
    try:
        records = _two_alerts(outbox)

        def build(records: Sequence[AlertRecord]) -> list[tuple[bytes, list[str]]]:
            return [(b"{}", [record.alert_id for record in records])]

        for _ in range(count):
            started, used = time.perf_counter(), time.process_time()
            outbox.queue.deliver("r3", records, _START, build, DeliveryState.PENDING)
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - used)
        with outbox.database.transaction() as db:
            db.execute("DELETE FROM deliveries WHERE url = 'r3' AND state = 'pending'")
    finally:
        outbox.close()
    return statistics.median(wall), statistics.median(cpu)


def mark_delivered(path: Path, marks: int) -> tuple[float, float]:
    """Median seconds of ``DeliveryQueue.finish_attempt`` marking one of ``marks`` new pending
    deliveries (two alerts each) delivered, each in its commit (fsync'd): wall and CPU."""
    db = connect(path)
    try:
        db.execute("DELETE FROM deliveries WHERE id LIKE 'p%'")
        db.executemany(
            "INSERT INTO deliveries (id, url, body, alert_ids, created_at, next_attempt_at, state)"
            " VALUES (?, 'r2', x'7b7d', ?, 0, 0, 'pending')",
            [(f"p{n}", json.dumps(_ALERTS[n % 299 : n % 299 + 2])) for n in range(marks)],
        )
    finally:
        db.close()
    outbox = Outbox(path, urls=list(_RECEIVERS))
    wall, cpu = [], []
    try:
        for n in range(marks):
            started, used = time.perf_counter(), time.process_time()
            outbox.queue.finish_attempt(
                f"p{n}", state=DeliveryState.DELIVERED, next_attempt_at=0.0, status=200,
                error=None, now=1.0,
            )  # fmt: skip
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - used)
    finally:
        outbox.close()
    return statistics.median(wall), statistics.median(cpu)


def _without_triggers(path: Path, copy: Path) -> None:
    """``path`` copied to ``copy``, its ``taken`` and ``carried`` tables no longer kept (as
    before versions 10 and 12)."""
    source, target = connect(path), connect(copy)
    try:
        source.backup(target)
        for (name,) in target.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            target.execute(f"DROP TRIGGER {name}")
    finally:
        source.close()
        target.close()


def _without_carried_triggers(path: Path, copy: Path) -> None:
    """``path`` copied to ``copy``, its ``carried`` no longer kept: the triggers version 12 added
    dropped, its rows left (today's prune reads them; a copy as version 11 left it has none)."""
    source, target = connect(path), connect(copy)
    try:
        source.backup(target)
        for statement in _ADDED[12]:
            if statement.startswith("DROP TRIGGER "):
                target.execute(statement)
    finally:
        source.close()
        target.close()


def _as_version(path: Path, copy: Path, version: int, *, upgraded: bool = False) -> None:
    """``path`` copied to ``copy`` without what the versions after ``version`` added (as that
    version left it); its user_version stays, so that an ``Outbox`` opening it adds them back
    not, unless ``upgraded``: then it reads ``version``, and the first ``Outbox`` upgrades it."""
    source, target = connect(path), connect(copy)
    try:
        source.backup(target)
        for later in sorted(_ADDED, reverse=True):
            if later > version:
                for statement in _ADDED[later]:
                    target.execute(statement)
        if upgraded:
            target.execute(f"PRAGMA user_version={version}")
    finally:
        source.close()
        target.close()


def main() -> None:
    """Print the figures."""
    parser = argument_parser(__doc__)
    parser.add_argument("--deliveries", type=int, default=86_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--prune-runs", type=int, default=5)
    parser.add_argument(
        "--commits", type=int, default=100, help="fsync'd commits a run of each copy times (100)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=".") as directory:
        path = Path(directory) / "alerts.sqlite3"
        Outbox(path).close()
        day_of_deliveries(path, args.deliveries)
        before, now, counted, dead = superseded_counts(path, args.runs)
        print(
            f"superseded_count ({args.deliveries} deliveries, {dead} dead letters, {counted}"
            f" superseded): before {before * 1e3:.1f} ms, now {now * 1e3:.2f} ms,"
            f" {before / now:.0f}x (medians of {args.runs})"
        )
        resolved = Path(directory) / "resolved.sqlite3"
        _with_resolved_alerts(path, resolved)
        for what, copy in (("the day", path), ("each alert resolved", resolved)):
            before, now, counted = superseded_counts_taken(copy, args.runs)
            print(
                f"superseded_count, {what} ({counted} superseded): taken alone {before * 1e3:.2f}"
                f" ms, now {now * 1e3:.2f} ms, {now / before:.2f}x (medians of {args.runs})"
            )
        version_10 = Path(directory) / "version-10.sqlite3"
        _as_version(path, version_10, 10)
        version_11 = Path(directory) / "version-11.sqlite3"
        _as_version(path, version_11, 11)
        unkept = Path(directory) / "carried-unkept.sqlite3"
        _without_carried_triggers(path, unkept)
        before, now, as_unkept, gone, kept = prunes(path, version_10, unkept, args.prune_runs)
        print(
            f"prune, an hour after the day ({gone} deliveries forgotten; a day later, all"
            f" delivered but {kept} kept for dead letters): before {before * 1e3:.0f} ms,"
            f" now {now * 1e3:.1f} ms, {before / now:.0f}x; {as_unkept * 1e3:.1f} ms without"
            f" carried's triggers ({now / as_unkept:.2f}x) (medians of {args.prune_runs}, each"
            " rolled back)"
        )
        before, now = depths(path, version_10, args.runs)
        print(
            f"depth: before {before * 1e3:.2f} ms, now {now * 1e3:.3f} ms, {before / now:.0f}x"
            f" (medians of {args.runs})"
        )
        for alert_id, count, before, now in alert_pages(path, args.runs):
            print(
                f"alert page of {alert_id} ({count} deliveries): before {before * 1e3:.1f} ms,"
                f" now {now * 1e3:.3f} ms, {before / now:.0f}x (medians of {args.runs})"
            )
        made, made_11 = [], []
        for _ in range(args.runs):  # alternated: the file system's pace drifts
            made.append(make_deliveries(path, args.commits))
            made_11.append(make_deliveries(version_11, args.commits))
        for what, at in (("wall", 0), ("CPU", 1)):
            now_ms = statistics.median(m[at] for m in made) * 1e3
            as_11_ms = statistics.median(m[at] for m in made_11) * 1e3
            print(
                f"make a delivery (deliver, its commit), {what}: {now_ms:.3f} ms;"
                f" {as_11_ms:.3f} ms without carried ({now_ms / as_11_ms:.2f}x)"
            )
        bare = Path(directory) / "bare.sqlite3"
        _without_triggers(path, bare)
        copies = {"now": path, "bare": bare, "11": version_11, "10": version_10}
        marks: dict[str, list[tuple[float, float]]] = {name: [] for name in copies}
        for _ in range(args.runs):  # alternated: the file system's pace drifts
            for name, copy in copies.items():
                marks[name].append(mark_delivered(copy, args.commits))
        for what, at in (("wall", 0), ("CPU", 1)):
            ms = {name: statistics.median(m[at] for m in marks[name]) * 1e3 for name in marks}
            now_ms = ms["now"]
            print(
                f"mark delivered (finish_attempt, its commit), {what}: {now_ms:.3f} ms;"
                f" {ms['bare']:.3f} ms without the triggers ({now_ms / ms['bare']:.2f}x),"
                f" {ms['11']:.3f} ms without carried ({now_ms / ms['11']:.2f}x),"
                f" {ms['10']:.3f} ms without it and the index by state"
                f" ({now_ms / ms['10']:.2f}x)"
            )
        alerting = Path(directory) / "alerting.sqlite3"
        _with_open_alerts(path, alerting)
        before, now, queued, all_before, all_now, all_queued, passes = renotify_passes(
            alerting, args.runs
        )
        print(
            f"renotify, a pass of 100 dead letters ({queued} alerts queued again): before"
            f" {before * 1e3:.0f} ms, now {now * 1e3:.2f} ms, {before / now:.0f}x (medians of"
            f" {args.runs}, each rolled back); every dead letter ({passes} passes, {all_queued}"
            f" alerts queued again): before {all_before:.2f} s, now {all_now * 1e3:.1f} ms,"
            f" {all_before / all_now:.0f}x (once)"
        )
        upgrading = Path(directory) / "upgrading.sqlite3"
        _as_version(path, upgrading, 11, upgraded=True)
        took = _seconds(lambda: Outbox(upgrading).close())
        print(f"upgrade of the day's file from version 11 (carried filled): {took * 1e3:.0f} ms")
        took = receiver_keys(path, args.runs)
        print(f"receiver keys (at start): {took * 1e3:.1f} ms (median of {args.runs})")


if __name__ == "__main__":
    main()
