"""The idle cost of a bridge at default intervals (no OTLP): CPU percent and RSS.

    .venv/bin/python -m bench.idle [--seconds 25] [--warmup 3] [--redis N ...] [--repeats 1]
                                   [--baseline REV ...]

The bridge and a baseline process run side by side for the same window: the baseline is a bare
interpreter that imported the same libraries (aiohttp, prometheus_client, pydantic) and sleeps in
an asyncio loop, so the table shows what the bridge itself adds.

``--redis N`` (given again for more) adds a set of N bridges on the Redis bus
(``EXESDB_BUS=redis://…``, each its own node name and state directory) on a throw-away
``redis-server`` of the set's own, idle in the same window beside the in-process bridge: each
replica's CPU and RSS by its role (the work-queue lease holder, a replica standing by), and
redis-server's CPU and the commands it ran per second (``INFO commandstats``, the commands of
scripts counted too), by name below the table; and a redis-server no client uses (its floor).
``--repeats`` starts every process afresh that many times, one window each, all processes
measured in the same window (the host is shared: what loads it loads them alike); the table
gives medians, and the runs' range. ``--baseline REV`` (again for more) runs the same bridges
from ``git archive REV`` too, in the same windows.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import redis

from bench._util import (
    ROOT,
    BridgeProcess,
    Tree,
    argument_parser,
    http_get,
    median,
    proc_stat,
    redis_server,
    revision_trees,
    table,
)

CPU_TARGET_PERCENT: Final = 1.0
RSS_TARGET_MB: Final = 80.0
_BASELINE: Final = (
    "import asyncio, aiohttp.web, prometheus_client, pydantic, pydantic_settings\n"
    "asyncio.run(asyncio.sleep(3600))\n"
)
_BRIDGE: Final = "bridge (python -m bridge run)"
_THIS: Final = Tree("this tree", ROOT)
_BARE_REDIS: Final = "redis-server with no client"
_BASE: Final = "baseline: bare interpreter, same libraries"
_HOLDING: Final = re.compile(rb"^exesdb_redis_work_queue_leader 1(\.0)?$", re.MULTILINE)


@dataclass
class _RedisSet:
    """N bridges on the Redis bus and the redis-server they share."""

    tree: str  # which tree's bridges ("" when only this tree's run)
    replicas: int
    server: subprocess.Popen[bytes]
    url: str
    bridges: list[BridgeProcess]

    def name(self, what: str) -> str:
        prefix = f"{self.tree}: " if self.tree else ""
        return f"{prefix}Redis bus, {self.replicas} replica(s): {what}"

    def commands(self) -> Counter[str]:
        """Every command redis-server ran so far, by name (this reading's INFO left out)."""
        client = redis.Redis.from_url(self.url)
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        return Counter(
            {
                key.removeprefix("cmdstat_"): int(value["calls"])
                for key, value in stats.items()
                if key != "cmdstat_info"
            }
        )

    def roles(self) -> list[str]:
        """Each bridge's row name: the lease holder, or a replica standing by."""
        return [
            self.name(
                "lease holder"
                if _HOLDING.search(http_get(bridge.url + "/metrics")[1])
                else "replica standing by"
            )
            for bridge in self.bridges
        ]


def run(
    *,
    seconds: float = 25.0,
    warmup: float = 3.0,
    redis_sets: Sequence[int] = (),
    repeats: int = 1,
    trees: Sequence[Tree] = (_THIS,),
) -> str:
    """Measure ``seconds`` of idling after ``warmup``, ``repeats`` times, each on fresh
    processes (per tree of ``trees``, an in-process bridge and, for each of ``redis_sets``, a
    set of that many Redis-bus replicas); the table."""
    cpu: dict[str, list[float]] = defaultdict(list)
    mib: dict[str, list[float]] = defaultdict(list)
    per_second: dict[str, list[Counter[str]]] = defaultdict(list)
    components = ""
    wall = 0.0
    for _ in range(repeats):
        with contextlib.ExitStack() as stack:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="exesdb-idle-")))
            baseline = subprocess.Popen([sys.executable, "-c", _BASELINE])
            stack.callback(_stop, baseline)
            sets: list[_RedisSet] = []
            bridges_in_process: dict[str, BridgeProcess] = {}
            for tree in trees:
                named = tree.name if len(trees) > 1 else ""
                for replicas in redis_sets:
                    folder = scratch / f"redis-{len(sets)}"
                    folder.mkdir()
                    server, url = redis_server(folder)
                    stack.callback(_stop, server)
                    bridges = [
                        stack.enter_context(
                            BridgeProcess(
                                tree.path,
                                EXESDB_BUS=url,
                                EXESDB_NODE=f"idle-{len(sets)}-{replica}",
                            )
                        )
                        for replica in range(replicas)
                    ]
                    sets.append(_RedisSet(named, replicas, server, url, bridges))
                bridge = stack.enter_context(BridgeProcess(tree.path))
                bridges_in_process[f"{named}: {_BRIDGE}" if named else _BRIDGE] = bridge
            bare = None
            if sets:
                # redis-server's own floor (its cron), beside those the bridges use.
                (scratch / "redis-bare").mkdir()
                bare, _ = redis_server(scratch / "redis-bare")
                stack.callback(_stop, bare)
            # Start-up settles (the lease taken up, the first broadcasts sent) before the window.
            time.sleep(warmup)
            pids = {name: bridge.pid for name, bridge in bridges_in_process.items()}
            for each in sets:
                pids.update(sorted(zip(each.roles(), (b.pid for b in each.bridges), strict=True)))
                pids[each.name("redis-server")] = each.server.pid
            if bare is not None:
                pids[_BARE_REDIS] = bare.pid
            pids[_BASE] = baseline.pid
            start = {name: proc_stat(pid) for name, pid in pids.items()}
            counted = [each.commands() for each in sets]
            started = time.monotonic()
            # The window measured: every process left idle.
            time.sleep(seconds)
            wall = time.monotonic() - started
            end = {name: proc_stat(pid) for name, pid in pids.items()}
            for each, before in zip(sets, counted, strict=True):
                ran = each.commands() - before
                per_second[each.name("redis-server")].append(
                    Counter({name: calls / wall for name, calls in ran.items()})
                )
            components = bridge.components()
        for name in pids:
            cpu[name].append((end[name].cpu_seconds - start[name].cpu_seconds) / wall * 100)
            mib[name].append(end[name].rss_bytes / 2**20)
    return _table(cpu, mib, per_second, seconds=wall, warmup=warmup, components=components)


def _table(
    cpu: dict[str, list[float]],
    mib: dict[str, list[float]],
    per_second: dict[str, list[Counter[str]]],
    *,
    seconds: float,
    warmup: float,
    components: str,
) -> str:
    base_mb = median(mib[_BASE])
    runs = max(len(samples) for samples in cpu.values())
    rows = []
    for name in cpu:  # as first measured: each tree's, each set's replicas and then Redis
        cpu_percent, rss = median(cpu[name]), median(mib[name])
        commands = (
            median([sum(counts.values()) for counts in per_second[name]])
            if name in per_second
            else float("nan")
        )
        bridge_process = name not in per_second and name not in (_BASE, _BARE_REDIS)
        target = (
            (
                "met"
                if cpu_percent < CPU_TARGET_PERCENT and rss * 2**20 < RSS_TARGET_MB * 1e6
                else "not met"
            )
            if bridge_process
            else ""
        )
        spread = f"{min(cpu[name]):.2f} to {max(cpu[name]):.2f}" if runs > 1 else ""
        rows.append([name, cpu_percent, spread, rss, rss / base_mb, commands, target])
    text = table(
        f"Idle at default intervals, no OTLP ({seconds:.0f} s after {warmup:.0f} s warm-up, "
        f"median of {runs} run(s); components: {components})",
        [
            "process",
            "CPU %",
            "CPU % runs",
            "RSS MiB",
            "RSS x baseline",
            "Redis commands/s",
            "target <1% and <80 MB",
        ],
        rows,
    )
    for name, counts in per_second.items():
        names = set().union(*counts)
        by_name = sorted(
            ((median([c[command] for c in counts]), command) for command in names), reverse=True
        )
        text += f"\n{name}, commands/s by name (median): " + ", ".join(
            f"{command} {rate:.2f}" for rate, command in by_name if rate > 0
        )
    return text + "\n"


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__.splitlines()[0], prog="python -m bench.idle")
    parser.add_argument("--seconds", type=float, default=25.0, help="the window measured (25)")
    parser.add_argument("--warmup", type=float, default=3.0, help="after start-up (3)")
    parser.add_argument(
        "--redis",
        action="append",
        type=int,
        default=[],
        metavar="N",
        help="a set of N bridges on the Redis bus beside the in-process one; again for more",
    )
    parser.add_argument("--repeats", type=int, default=1, help="fresh starts, one window each")
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="REV",
        help="the same bridges from this git revision too; again for more",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="exesdb-idle-trees-") as scratch:
        print(
            run(
                seconds=args.seconds,
                warmup=args.warmup,
                redis_sets=args.redis,
                repeats=args.repeats,
                trees=revision_trees(args.baseline, Path(scratch)),
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
