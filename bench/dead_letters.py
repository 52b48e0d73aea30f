"""The dead-letters gauge's count of superseded dead letters, on a day of deliveries.

    .venv/bin/python -m bench.dead_letters [--deliveries 86000] [--runs 15]

An outbox file holds a day of ``--deliveries`` deliveries to four receivers (one to three alerts
each, of 300, with bodies of about 1 KB an alert): one receiver was down for a stretch (2 000
dead letters), came back and took the rest of the day; another refused 50 deliveries spread over
the day. The figures, measured side by side on the same file, each the median of ``--runs``:

- ``superseded_count``: ``DeadLetters.superseded_count`` (what the gauge reads), beside the query
  it replaced (``_BEFORE``: each delivery the receivers with dead letters took since their first
  read with its alert ids, at every count), which must count the same;
- ``mark delivered``: ``DeliveryQueue.finish_attempt`` of a delivery taken (its fsync'd commit),
  beside the same on a copy of the file with the ``taken`` table's triggers dropped (medians of
  wall and CPU time): what keeping the table costs a delivery.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bridge.sinks.alerts import Outbox
from bridge.sinks.alerts.records import DeliveryState
from bridge.sinks.alerts.tables import connect

_RECEIVERS = ("r0", "r1", "r2", "r3")
_ALERTS = [
    f"node-{n // 6}/{('disk', 'cpu', 'mem', 'lag', 'down', 'net')[n % 6]}" for n in range(300)
]
# The superseded count before the ``taken`` table (schema version 10), as a release left it
# (its states bound, as it bound them: the index of dead letters alone does not serve it).
_STATES = {"dead": "dead", "delivered": "delivered"}
_BEFORE = """
WITH told AS MATERIALIZED (
    SELECT later.url AS url, sent.value AS alert_id, MAX(later.rowid) AS last
    FROM deliveries AS later, json_each(later.alert_ids) AS sent
    WHERE later.state = :delivered
    AND later.url IN (SELECT url FROM deliveries WHERE state = :dead)
    AND later.rowid > (
        SELECT MIN(first.rowid) FROM deliveries AS first
        WHERE first.url = later.url AND first.state = :dead
    )
    GROUP BY later.url, sent.value
)
SELECT COUNT(*) FROM deliveries AS letter
WHERE letter.state = :dead AND json_array_length(letter.alert_ids) > 0
AND NOT EXISTS (
    SELECT 1 FROM json_each(letter.alert_ids) AS sent WHERE NOT EXISTS (
        SELECT 1 FROM told WHERE told.url = letter.url AND told.alert_id = sent.value
        AND told.last > letter.rowid
    )
)
"""


def day_of_deliveries(path: Path, count: int) -> None:
    """Fill the outbox file at ``path`` (made by ``Outbox``) with a day of ``count``
    deliveries, as described in the module docstring."""
    pick = random.Random(7)
    outage = range(count // 4, count // 4 + 2000 * len(_RECEIVERS))  # r0's 2 000 dead letters
    refused = set(pick.sample(range(1, count, len(_RECEIVERS)), 50))  # r1's
    start = 1_780_000_000.0
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
        at = start + n * 86_400 / count
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
            return int(before_db.execute(_BEFORE, _STATES).fetchone()[0])

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
    """``path`` copied to ``copy``, its ``taken`` table no longer kept (as before version 10)."""
    source, target = connect(path), connect(copy)
    try:
        source.backup(target)
        for (name,) in target.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            target.execute(f"DROP TRIGGER {name}")
    finally:
        source.close()
        target.close()


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=86_000)
    parser.add_argument("--runs", type=int, default=15)
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
        bare = Path(directory) / "bare.sqlite3"
        _without_triggers(path, bare)
        kept, bare_marks = [], []
        for _ in range(args.runs):  # alternated: the file system's pace drifts
            kept.append(mark_delivered(path, 100))
            bare_marks.append(mark_delivered(bare, 100))
        for what, at in (("wall", 0), ("CPU", 1)):
            with_them = statistics.median(m[at] for m in kept) * 1e3
            without = statistics.median(m[at] for m in bare_marks) * 1e3
            print(
                f"mark delivered (finish_attempt, its commit), {what}: {without:.3f} ms without"
                f" the triggers, {with_them:.3f} ms with them ({with_them / without:.2f}x)"
            )


if __name__ == "__main__":
    main()
