"""The alert stage on Redis: what keeping the dates of notified changes costs a batch.

    .venv/bin/python -m bench.alert_dates [--alerts 1 --alerts 100] [--batches 1000]
    .venv/bin/python -m bench.alert_dates --cap [--changes 2000] [--runs 5] [--baseline REV]

A throw-away redis-server and, in a scratch directory under the working directory (fsync'd as
in production), an outbox per variant with one receiver; each variant's replica holds the
work-queue lease of its own key prefix. Each batch fires ``--alerts`` alerts and the next
resolves them (their events a second apart), through ``AlertIndex.change`` as the alert stage
makes them: every change is notified, so every one keeps its alerts' dates in Redis
(``exesdb:state:alerts:dates``). The variants take a batch each in turn, batch by batch (each
first in turn, so all see the machine's load drift alike), each on its own key prefix:

- without the dates: the same index on a shared state that leaves the dates out (as before
  they were kept): the baseline;
- dates by a call of their own: the dates written by a script call of their own before the
  change's (as at bdf4c367, where they were first kept);
- dates along (this tree): the dates carried in the change's own script call
  (``StateChange.along``).

Per variant and batch size, the medians over its batches of: the wall time of a batch, the CPU
of this process (the event loop and the outbox's database thread) and of redis-server, each
with its ratio to the baseline's.

``--cap``: the holder's side of a change at the cap of resolves of unknown alerts kept
(``RESOLVES_REMEMBERED``, 10 000), timed alone, no Redis: ``AlertIndex._dates_change`` then
``_dates_kept`` (what ``AlertIndex.change`` runs around Redis's commit), with 10 000 kept, for
``--changes`` changes of one resolve each (a flood of returns of distinct nodes, each newer than
all kept), every one forgetting the oldest. The median microseconds a change, per run; ``--runs``
runs in one process per tree, of this tree and of each ``--baseline REV`` (``git archive
REV``, 4e96f075 before the heap), interleaved; each tree's median of those and this tree's
ratio against each REV.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, cast

import redis
from redis.asyncio import Redis

from bench._util import (
    add_baseline_argument,
    argument_parser,
    baseline_table,
    cpu_seconds,
    interleaved,
    median,
    redis_server,
    revision_trees,
    serve,
    table,
    tree_workers,
)
from bridge.backoff import Backoff
from bridge.bus import StateChange
from bridge.bus.redis.layout import Layout
from bridge.bus.redis.link import Link
from bridge.bus.redis.shared_state import RedisSharedState
from bridge.sinks.alerts.alert_store import RESOLVES_REMEMBERED
from bridge.sinks.alerts.index import AlertIndex
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.sources import AlertEvent
from bridge.sinks.alerts.thread import DbThread

_T0: Final = 1_800_000_000.0
_HOOK: Final = "http://127.0.0.1:9/hook"


class _WithoutDates:
    """A replica's shared state that leaves the dates a change carries out (as before they
    were kept)."""

    def __init__(self, state: RedisSharedState) -> None:
        self._state = state

    async def commit(self, name: str, change: StateChange) -> bool:
        return await self._state.commit(name, replace(change, along={}))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._state, name)


class _DatesApart(_WithoutDates):
    """A replica's shared state that keeps the dates a change carries by a script call of their
    own before it (as bdf4c367 did)."""

    async def commit(self, name: str, change: StateChange) -> bool:
        for other, records in change.along.items():
            if not await self._state.commit(other, records):
                return False
        return await super().commit(name, change)


VARIANTS: Final[dict[str, Callable[[RedisSharedState], Any]]] = {
    "without the dates": _WithoutDates,
    "dates by a call of their own": _DatesApart,
    "dates along (this tree)": lambda state: state,
}


def _event(alert_id: str, status: Literal["firing", "resolved"], at: float) -> AlertEvent:
    return AlertEvent(
        alert_id=alert_id,
        alertname="node_failure",
        status=status,
        severity="critical",
        category="system",
        node=alert_id,
        title=f"node {alert_id} is down",
        description="silent",
        requires_ack=True,
        at=datetime.fromtimestamp(at, UTC),
    )


@dataclass
class _Replica:
    """One variant's replica: its outbox and index, and its clock (a second a batch)."""

    outbox: Outbox
    index: AlertIndex
    now: float = _T0
    fired: bool = False

    async def batch(self, alerts: int, server: int) -> tuple[float, float, float]:
        """A batch of ``alerts`` alerts, firing them or resolving them in turn: its wall
        seconds, and the CPU seconds of this process (all its threads) and of ``server``'s."""
        self.now += 1.0
        status: Literal["firing", "resolved"] = "resolved" if self.fired else "firing"
        events = [_event(f"n{alerts}-{k}", status, self.now) for k in range(alerts)]
        redis_cpu = cpu_seconds(server)
        cpu = time.process_time()
        started = time.perf_counter()
        applied = await self.index.change(
            self.outbox.alerts.plan, events, self.now, max_open=50_000, dates=self.index.dates
        )
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        redis_cpu = cpu_seconds(server) - redis_cpu
        if len(applied.changed) != alerts:
            raise RuntimeError(f"a batch changed {len(applied.changed)} of {alerts} alerts")
        self.fired = not self.fired
        return wall, cpu, redis_cpu


async def measure(sizes: list[int], count: int, scratch: Path) -> str:
    """Every variant's figures per batch size, interleaved batch by batch; the table."""
    server, url = redis_server(scratch)
    client = Redis.from_url(url)
    db = DbThread()
    replicas: dict[str, _Replica] = {}
    try:
        link = Link(url, client, Backoff(0.01, 0.1, 0.0))
        for number, (name, wrap) in enumerate(VARIANTS.items()):
            prefix = f"bench{number}"
            with redis.Redis.from_url(url) as sync:
                sync.set(f"{prefix}:bus:leader", "r:1")  # this replica holds the lease
            state = RedisSharedState(link, Layout(prefix), consumer="r:1", node="r")
            outbox = Outbox.in_dir(scratch / prefix, urls=[_HOOK])
            index = AlertIndex(
                wrap(state), alerts=outbox.alerts, queue=outbox.queue, db=db,
                clock=time.time, limit=50_000,
            )  # fmt: skip
            await index.take_up()
            replicas[name] = _Replica(outbox, index)
        figures: dict[tuple[int, str], list[tuple[float, float, float]]] = {}
        for size in sizes:
            for replica in replicas.values():
                for _ in range(10):  # warm: the alerts known, the scripts cached
                    await replica.batch(size, server.pid)
            names = list(replicas)
            for number in range(count):
                # Batch by batch, each variant first in turn: all see the load drift alike.
                turn = number % len(names)
                for name in names[turn:] + names[:turn]:
                    figure = await replicas[name].batch(size, server.pid)
                    figures.setdefault((size, name), []).append(figure)
    finally:
        for replica in replicas.values():
            replica.outbox.close()
        db.close()
        await client.aclose()
        server.terminate()
        server.wait()
    rows = []
    baseline = next(iter(VARIANTS))
    for size in sizes:
        base = [median([f[column] for f in figures[size, baseline]]) for column in range(3)]
        for name in VARIANTS:
            row: list[object] = [size, name]
            for column in range(3):
                value = median([f[column] for f in figures[size, name]])
                row += [value * 1e3, value / base[column]]
            rows.append(row)
    return table(
        f"Alert changes on Redis, per batch (medians of {count} batches of each, interleaved"
        " batch by batch; x: against the baseline, the first row of each size)",
        ["alerts", "variant", "wall ms", "x", "CPU ms", "x", "redis-server CPU ms", "x"],
        rows,
    )


def change_at_cap(changes: int) -> float:
    """The median microseconds of the holder's side of a change of one resolve of an unknown
    alert (``_dates_change``, then ``_dates_kept``) over ``changes`` of them, each forgetting the
    oldest of the ``RESOLVES_REMEMBERED`` kept."""
    # Only the dates are read and written: no Redis, outbox or database thread behind them.
    nothing = cast(Any, None)
    index = AlertIndex(
        nothing, alerts=nothing, queue=nothing, db=nothing, clock=time.time, limit=50_000
    )
    now = _T0
    kept = {f"k{n}": _T0 - 20 + n / 1e6 for n in range(RESOLVES_REMEMBERED)}
    index._dates_kept(index._dates_change({}, kept, now)[0], now)
    timings = []
    for n in range(changes):
        now += 0.001
        started = time.perf_counter()
        change, forgotten = index._dates_change({}, {f"n{n}": _T0 + n / 1e6}, now)
        index._dates_kept(change, now)
        timings.append(time.perf_counter() - started)
        if forgotten != 1:
            raise RuntimeError(f"a change at the cap forgot {forgotten} resolves, not 1")
    return median(timings) * 1e6


def at_cap(revisions: Sequence[str], changes: int, runs: int) -> str:
    """``change_at_cap`` in a process of its own per tree (this one and each of ``revisions``),
    ``runs`` times, interleaved; the table of medians and ratios."""
    figures: dict[str, dict[str, list[float]]] = {"a change at the cap": {}}
    with tempfile.TemporaryDirectory(prefix="exesdb-bench-alert-dates-") as scratch:
        trees = revision_trees(revisions, Path(scratch))
        with tree_workers(trees, Path(__file__), "--cap-worker") as workers:
            for tree in interleaved(trees, runs):
                answer = workers[tree.name].ask(str(changes))
                figures["a change at the cap"].setdefault(tree.name, []).append(answer["us"])
    return baseline_table(
        f"A resolve of an unknown alert at the cap ({RESOLVES_REMEMBERED:,} kept), the holder's"
        f" side (medians of {runs} runs of {changes:,} changes each, interleaved)",
        "µs a change",
        figures,
        trees,
    )


def main() -> None:
    """Print the table."""
    parser = argument_parser(__doc__)
    parser.add_argument(
        "--alerts", type=int, action="append", help="alerts per batch (may be given again; 1, 100)"
    )
    parser.add_argument(
        "--batches", type=int, default=1000, help="batches of each variant and size (1000)"
    )
    parser.add_argument(
        "--cap", action="store_true", help="time a change at the cap of resolves kept instead"
    )
    parser.add_argument(
        "--changes", type=int, default=2000, help="with --cap: changes a run (2000)"
    )
    parser.add_argument("--runs", type=int, default=5, help="with --cap: runs of each tree (5)")
    add_baseline_argument(parser, "change at the cap (with --cap)")
    parser.add_argument("--cap-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cap_worker:
        serve(lambda words: {"us": change_at_cap(int(words[0]))})
        return
    if args.cap:
        print(at_cap(args.baseline, args.changes, args.runs))
        return
    if args.baseline:
        parser.error("--baseline is for --cap")
    # The outboxes go where the command runs (its disk, fsync'd), not /tmp (often memory).
    with tempfile.TemporaryDirectory(prefix="exesdb-bench-alert-dates-", dir=Path.cwd()) as d:
        print(asyncio.run(measure(args.alerts or [1, 100], args.batches, Path(d))))


if __name__ == "__main__":
    main()
