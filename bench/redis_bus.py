"""The bus on Redis, replicas in separate processes: capacity, latency at half rate, failover.

    .venv/bin/python -m bench.redis_bus [--messages 60000] [--repeats 3] [--seconds 8]
                                        [--components none|default] [--baseline REV]
                                        [--latency-only [--rate 10000]]

Starts a throw-away ``redis-server`` on a free loopback port, two bridge replicas
(``bench/redis_replica.py``, each its own process: the production Redis transport, a batch
subscriber on the fan-out and one on the work queue) and a publisher process (the bridge's own
writer: batches of XADDs, one round trip each, of signed envelopes from ``bench.workload``, a
metrics-heavy mix whose instances are all work-queue instances, so the lease holder also reads
every message through the consumer group). Each replica's garbage collector is set as
``exesdb-bridge run`` sets it once started (``--gc default`` leaves Python's defaults).

- **Capacity**: both replicas are stopped (SIGSTOP) while the publisher writes ``--messages``;
  then both continue (SIGCONT) and drain the backlog as fast as they can. Per replica: messages
  per second of wall time (continue → last message received) and messages per CPU-second of
  the replica process (its CPU-time clock, the figure that does not move with the
  machine's load); the median of ``--repeats``.
- **Latency**: the publisher writes at half the target rate (10 000 msg/s) and at half the
  slower replica's median capacity, ``--seconds`` each; per replica, publish-to-receipt latency
  (the envelope's ``ts``, set when the publisher signs it, to the subscriber's clock) at p50 and
  p99, and CPU per message; and that p99 split where Redis took the entry (its id's
  milliseconds): the publisher's side (signed to written: the bench's own process waiting for
  a core) and the replica's (written to received). The publisher and redis-server share the
  machine's cores with the replicas here (not while draining), so the higher rate may be past
  what the machine holds.
- **Failover**: the lease holder is killed (SIGKILL); the time until the other replica's
  work-queue subscriber has messages published after the kill (lease ``--claim-idle-ms``).

``--baseline REV`` runs the same measurements, interleaved, on replicas from ``git archive REV``
(the publisher is always this tree's): same-run ratios against another revision; given more
than once, against each.
``--latency-only`` measures only the latency at ``--rate`` (10 000 msg/s by default), each
repeat on a fresh pair, and prints every run's p99 beside the medians: on a shared machine the
spread from run to run is the point.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import redis

from bench._util import (
    Child,
    Tree,
    argument_parser,
    median,
    proc_stat,
    redis_server,
    revision_trees,
    table,
)
from bench.workload import Source

_REPLICA_SCRIPT: Final = Path(__file__).resolve().parent / "redis_replica.py"
_TARGET_RATE: Final = 20_000
_TARGET_P99_MS: Final = 50.0


# -- the processes --


def _replicas(tree: Tree, url: str, args: argparse.Namespace, scratch: Path) -> list[Child]:
    # Each replica makes its state directory in ``scratch`` (TMPDIR), which outlives it: the one
    # the failover SIGKILLs cannot remove its own.
    replicas = [
        Child(
            [
                sys.executable,
                str(_REPLICA_SCRIPT),
                url,
                f"bench-{n}",
                "--components",
                args.components,
                "--claim-idle-ms",
                str(args.claim_idle_ms),
                "--gc",
                args.gc,
            ],
            env={**tree.env(), "TMPDIR": str(scratch)},
            cwd=tree.path,
        )
        for n in range(2)
    ]
    deadline = time.monotonic() + 30
    while True:
        states = [r.ask("stats") for r in replicas]
        if all(s["ready"] for s in states) and sum(s["leading"] for s in states) == 1:
            return replicas
        if time.monotonic() > deadline:
            raise RuntimeError(f"replicas not ready: {states}")
        time.sleep(0.1)


def _wait(replicas: list[Child], wanted: int, work: int, timeout: float) -> list[dict[str, Any]]:
    """Poll until every replica's fan-out has ``wanted`` and the holder's work queue ``work``."""
    deadline = time.monotonic() + timeout
    while True:
        states = [r.ask("stats") for r in replicas]
        fanned = all(s["fanout"]["count"] >= wanted for s in states)
        if fanned and sum(s["work"]["count"] for s in states) >= work:
            return states
        if time.monotonic() > deadline:
            raise RuntimeError(f"not all received within {timeout}s: {states}")
        time.sleep(0.05)


# -- the measurements --


@dataclass
class _Run:
    """One measurement of a pair of replicas: per role, messages/s (wall), CPU us per message;
    the publisher's and redis-server's CPU us per message; latencies when paced."""

    wall: dict[str, float]
    cpu_us: dict[str, float]
    publisher_us: float
    redis_us: float
    p50_ms: dict[str, float] = field(default_factory=dict)
    p99_ms: dict[str, float] = field(default_factory=dict)
    work_p99_ms: float = float("nan")
    # The p99 of the replica's side alone (Redis took the entry to the subscriber received it),
    # and of the publisher's (signed to Redis took it).
    read_p99_ms: dict[str, float] = field(default_factory=dict)
    written_p99_ms: float = float("nan")


_ROLES: Final = ("lease holder", "other replica")


def _roles(states: list[dict[str, Any]]) -> list[str]:
    holder = next((n for n, s in enumerate(states) if s["leading"]), 0)
    return [_ROLES[0] if n == holder else _ROLES[1] for n in range(len(states))]


def _capacity(replicas: list[Child], publisher: Child, server: int, messages: int) -> _Run:
    """Both replicas stopped while ``messages`` are written, then draining them at once."""
    roles = _roles([r.ask("reset") for r in replicas])
    for replica in replicas:
        replica.pause()
    try:
        publisher_before, redis_before = publisher.cpu(), proc_stat(server).cpu_seconds
        publisher.ask(f"burst {messages}")
        publisher_after = publisher.cpu()
    finally:
        before = [r.cpu() for r in replicas]
        started = time.time()
        for replica in replicas:
            replica.resume()
    states = _wait(replicas, messages, messages, 600)
    time.sleep(0.5)  # acknowledgements written, the processes idle again
    after = [r.cpu() for r in replicas]
    redis_after = proc_stat(server).cpu_seconds
    return _Run(
        wall={
            role: messages / (s["fanout"]["last"] - started)
            for role, s in zip(roles, states, strict=True)
        },
        cpu_us={
            role: (b - a) / messages * 1e6 for role, a, b in zip(roles, before, after, strict=True)
        },
        publisher_us=(publisher_after - publisher_before) / messages * 1e6,
        redis_us=(redis_after - redis_before) / messages * 1e6,
    )


def _paced(
    replicas: list[Child], publisher: Child, server: int, rate: int, seconds: float, url: str
) -> _Run:
    """The publisher writing ``rate`` messages/s for ``seconds``, the replicas reading along."""
    roles = _roles([r.ask("reset") for r in replicas])
    since_ms = int(time.time() * 1000)
    before = [r.cpu() for r in replicas]
    publisher_before, redis_before = publisher.cpu(), proc_stat(server).cpu_seconds
    sent = int(publisher.ask(f"paced {rate} {seconds}")["sent"])
    states = _wait(replicas, sent, sent, 120)
    after = [r.cpu() for r in replicas]
    holder = next(s for role, s in zip(roles, states, strict=True) if role == _ROLES[0])
    read_p99, written_p99 = _split(url, since_ms, replicas, roles)
    return _Run(
        wall={role: float(rate) for role in roles},
        cpu_us={
            role: (b - a) / sent * 1e6 for role, a, b in zip(roles, before, after, strict=True)
        },
        publisher_us=(publisher.cpu() - publisher_before) / sent * 1e6,
        redis_us=(proc_stat(server).cpu_seconds - redis_before) / sent * 1e6,
        p50_ms={role: s["fanout"]["p50"] * 1e3 for role, s in zip(roles, states, strict=True)},
        p99_ms={role: s["fanout"]["p99"] * 1e3 for role, s in zip(roles, states, strict=True)},
        work_p99_ms=holder["work"]["p99"] * 1e3 if holder["work"]["count"] else float("nan"),
        read_p99_ms=read_p99,
        written_p99_ms=written_p99,
    )


def _split(
    url: str, since_ms: int, replicas: list[Child], roles: list[str]
) -> tuple[dict[str, float], float]:
    """Each message's latency split where Redis took it (the entry id's milliseconds): per
    role, the p99 of written to received; and the p99 of signed to written."""
    from bridge.bus.redis.layout import Layout

    written: dict[str, float] = {}
    client = redis.Redis.from_url(url)
    try:
        for key in Layout("exesdb").streams.values():
            start: str = f"{since_ms}-0"
            while entries := client.xrange(key, start, "+", count=10_000):
                for entry_id, fields in entries:
                    # Bytes, as the client decodes no reply (redis-py's types allow str and None).
                    assert isinstance(entry_id, bytes), entry_id
                    assert fields is not None, entry_id
                    body = fields.get(b"e", b"")
                    assert isinstance(body, bytes), entry_id
                    at = body.find(b'"id":"') + 6
                    if at >= 6:
                        message_id = body[at : body.index(b'"', at)].decode()
                        written[message_id] = int(entry_id.split(b"-", 1)[0]) / 1000
                    start = "(" + entry_id.decode()
    finally:
        client.close()
    read: dict[str, float] = {}
    signed_to_written: list[float] = []
    with tempfile.TemporaryDirectory(prefix="exesdb-bench-receipts-") as scratch:
        for number, (role, replica) in enumerate(zip(roles, replicas, strict=True)):
            path = Path(scratch) / f"{number}.json"
            replica.ask(f"receipts {path}")
            ids, receipts, latencies = json.loads(path.read_text())["fanout"]
            spans = []
            for message_id, received, latency in zip(ids, receipts, latencies, strict=True):
                taken = written.get(message_id)
                if taken is not None:
                    spans.append(received - taken)
                    if number == 0:
                        signed_to_written.append(taken - (received - latency))
            read[role] = _p99(spans) * 1e3
    return read, _p99(signed_to_written) * 1e3


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else float("nan")


def _failover(replicas: list[Child], publisher: Child) -> float:
    states = [r.ask("stats") for r in replicas]
    holder = next(n for n, s in enumerate(states) if s["leading"])
    survivor = replicas[1 - holder]
    survivor.ask("reset")
    replicas[holder].kill()
    started = time.monotonic()
    publisher.ask("burst 100")
    deadline = started + 120
    while survivor.ask("stats")["work"]["count"] < 100:
        if time.monotonic() > deadline:
            raise RuntimeError("the survivor never took the work queue")
        time.sleep(0.02)
    return time.monotonic() - started


@contextlib.contextmanager
def _setting(args: argparse.Namespace) -> Iterator[tuple[str, int, Child, list[Tree]]]:
    with tempfile.TemporaryDirectory(prefix="exesdb-bench-redis-") as scratch:
        trees = revision_trees(args.baseline, Path(scratch))
        server, url = redis_server(Path(scratch))
        publisher = Child([sys.executable, "-m", "bench.redis_bus", "--publisher", url])
        try:
            yield url, server.pid, publisher, trees
        finally:
            publisher.close()
            server.terminate()
            server.wait()


@contextlib.contextmanager
def _pair(
    tree: Tree, url: str, publisher: Child, args: argparse.Namespace
) -> Iterator[list[Child]]:
    with tempfile.TemporaryDirectory(prefix="exesdb-bench-replicas-") as scratch:
        replicas = _replicas(tree, url, args, Path(scratch))
        try:
            publisher.ask("burst 3000")  # warm up: caches, gauge children, the consumer group
            _wait(replicas, 3000, 3000, 60)
            yield replicas
        finally:
            for replica in replicas:
                replica.close()


def run(
    *,
    quick: bool = False,
    messages: int | None = None,
    repeats: int | None = None,
    seconds: float | None = None,
    components: str = "none",
    baseline: Sequence[str] = (),
    claim_idle_ms: int = 10_000,
    collector: str = "settled",
    latency_only: bool = False,
    rate: int = _TARGET_RATE // 2,
) -> str:
    """Measure; the tables (``make bench --only redis`` and ``python -m bench.redis_bus``)."""
    args = argparse.Namespace(
        gc=collector,
        messages=messages or (30_000 if quick else 60_000),
        repeats=repeats or (2 if quick else 3),
        seconds=seconds or (5.0 if quick else 8.0),
        components=components,
        baseline=baseline,
        claim_idle_ms=claim_idle_ms,
    )
    if latency_only:
        return _latency_only(args, rate)
    loads = [os.getloadavg()[0]]
    capacity: dict[str, list[_Run]] = {}
    paced: dict[tuple[str, int], list[_Run]] = {}
    rates: dict[str, list[int]] = {}
    failover: float | None = None
    with _setting(args) as (url, server, publisher, trees):
        # Each tree in turn, alternating which goes first: both see the machine's load drift.
        for repeat in range(args.repeats):
            for tree in trees if repeat % 2 == 0 else list(reversed(trees)):
                with _pair(tree, url, publisher, args) as replicas:
                    runs = capacity.setdefault(tree.name, [])
                    runs.append(_capacity(replicas, publisher, server, args.messages))
        loads.append(os.getloadavg()[0])
        for tree in trees:
            half = int(min(_median(capacity[tree.name], "wall", r) for r in _ROLES) / 2)
            rates[tree.name] = sorted({_TARGET_RATE // 2, half})
        for repeat in range(args.repeats):
            for tree in trees if repeat % 2 == 0 else list(reversed(trees)):
                with _pair(tree, url, publisher, args) as replicas:
                    for rate in rates[tree.name]:
                        run = _paced(replicas, publisher, server, rate, args.seconds, url)
                        paced.setdefault((tree.name, rate), []).append(run)
                    if tree.name == "this tree" and repeat == args.repeats - 1:
                        failover = _failover(replicas, publisher)
        loads.append(os.getloadavg()[0])
    return _tables(args, loads, trees, capacity, paced, rates, failover)


def _latency_only(args: argparse.Namespace, rate: int) -> str:
    """Publish to delivery at ``rate``, each repeat on a fresh pair of each tree, interleaved."""
    loads = [os.getloadavg()[0]]
    paced: dict[str, list[_Run]] = {}
    with _setting(args) as (url, server, publisher, trees):
        for repeat in range(args.repeats):
            for tree in trees if repeat % 2 == 0 else list(reversed(trees)):
                with _pair(tree, url, publisher, args) as replicas:
                    run = _paced(replicas, publisher, server, rate, args.seconds, url)
                    paced.setdefault(tree.name, []).append(run)
            loads.append(os.getloadavg()[0])
    rows: list[list[Any]] = []
    for tree in trees:
        runs = paced[tree.name]
        for role in _ROLES:
            p99s = [run.p99_ms[role] for run in runs]
            rows.append(
                [
                    f"{tree.name}: {role}",
                    _median(runs, "p50_ms", role),
                    _median(runs, "p99_ms", role),
                    f"{min(p99s):.1f}-{max(p99s):.1f}",
                    median([r.work_p99_ms for r in runs]) if role == _ROLES[0] else float("nan"),
                    _median(runs, "read_p99_ms", role),
                    median([r.written_p99_ms for r in runs]),
                    _median(runs, "cpu_us", role),
                    " ".join(f"{value:.0f}" for value in p99s),
                    " ".join(f"{run.read_p99_ms[role]:.0f}" for run in runs),
                ]
            )
    load = " ".join(f"{value:.1f}" for value in loads)
    mine = [max(run.p99_ms.values()) for run in paced["this tree"]]
    met = sum(value < _TARGET_P99_MS for value in mine)
    read = [max(run.read_p99_ms.values()) for run in paced["this tree"]]
    read_met = sum(value < _TARGET_P99_MS for value in read)
    verdict = (
        f"p99 under {_TARGET_P99_MS:g} ms at {rate:,} msg/s (this tree, the slower role): "
        f"{met} of {len(mine)} runs; from Redis to delivery alone: {read_met} of {len(read)}\n"
    )
    title = (
        f"Publish to delivery at {rate:,} msg/s ({args.repeats} x {args.seconds:g} s, a fresh "
        f"pair each, interleaved; median; load average {load} at the start and after each repeat)"
    )
    header = [
        "replica",
        "p50 ms",
        "p99 ms",
        "p99 range",
        "work queue p99 ms",
        "Redis to delivery p99 ms",
        "signed to Redis p99 ms",
        "CPU us/msg",
    ]
    each = ["each run's p99 ms", "each run's Redis to delivery p99 ms"]
    return table(title, [*header, *each], rows) + "\n" + verdict


def _median(runs: list[_Run], what: str, role: str) -> float:
    return median([getattr(run, what)[role] for run in runs])


def _tables(
    args: argparse.Namespace,
    loads: list[float],
    trees: list[Tree],
    capacity: dict[str, list[_Run]],
    paced: dict[tuple[str, int], list[_Run]],
    rates: dict[str, list[int]],
    failover: float | None,
) -> str:
    load = "/".join(f"{value:.1f}" for value in loads)
    rows: list[list[Any]] = []
    for tree in trees:
        runs = capacity[tree.name]
        for role in _ROLES:
            cpu = _median(runs, "cpu_us", role)
            rows.append([f"{tree.name}: {role}", _median(runs, "wall", role), 1e6 / cpu, cpu])
        rows.append(
            [
                f"{tree.name}: publisher, redis-server (CPU us/msg)",
                float("nan"),
                float("nan"),
                f"{median([r.publisher_us for r in runs]):.1f}, "
                f"{median([r.redis_us for r in runs]):.1f}",
            ]
        )
    capacity_table = table(
        f"Redis bus, two replica processes: capacity ({args.repeats} x {args.messages:,} "
        f"messages drained after SIGSTOP, median; components: {args.components}, gc {args.gc}; "
        f"load average {load} at start/middle/end)",
        ["replica", "msgs/s (wall)", "msgs per CPU-s", "CPU us/msg"],
        rows,
    )
    latency_rows: list[list[Any]] = []
    for tree in trees:
        for rate in rates[tree.name]:
            runs = paced[(tree.name, rate)]
            for role in _ROLES:
                latency_rows.append(
                    [
                        f"{tree.name}: {role}",
                        rate,
                        _median(runs, "p50_ms", role),
                        _median(runs, "p99_ms", role),
                        median([r.work_p99_ms for r in runs])
                        if role == _ROLES[0]
                        else float("nan"),
                        _median(runs, "read_p99_ms", role),
                        median([r.written_p99_ms for r in runs]),
                        _median(runs, "cpu_us", role),
                    ]
                )
    latency_table = table(
        f"Publish to delivery at half the target rate and at half the slower role's capacity "
        f"({args.repeats} x {args.seconds:g} s each, median)",
        [
            "replica",
            "msgs/s",
            "p50 ms",
            "p99 ms",
            "work queue p99 ms",
            "Redis to delivery p99 ms",
            "signed to Redis p99 ms",
            "CPU us/msg",
        ],
        latency_rows,
    )
    mine = capacity["this tree"]
    slowest = min(_median(mine, "wall", role) for role in _ROLES)
    per_cpu = min(1e6 / _median(mine, "cpu_us", role) for role in _ROLES)
    at = _TARGET_RATE // 2
    p99 = max(_median(paced[("this tree", at)], "p99_ms", role) for role in _ROLES)
    verdict = (
        f"Target >= {_TARGET_RATE:,} msg/s per replica: {slowest:,.0f} msg/s wall, "
        f"{per_cpu:,.0f} per CPU-second ({'met' if slowest >= _TARGET_RATE else 'not met'}); "
        f"p99 under {_TARGET_P99_MS:g} ms at half that rate ({at:,} msg/s): {p99:.1f} ms "
        f"({'met' if p99 < _TARGET_P99_MS else 'not met'})"
    )
    if failover is not None:
        verdict += (
            f"\nFailover: SIGKILL of the lease holder to the other replica's work queue "
            f"delivering: {failover:.2f} s (lease {args.claim_idle_ms} ms)"
        )
    return capacity_table + "\n" + latency_table + "\n" + verdict + "\n"


# -- the publisher process --


async def _publisher(url: str) -> None:
    """Write signed envelopes with the bridge's own writer, as commands on stdin ask."""
    from redis.asyncio import Redis

    from bridge.backoff import Backoff
    from bridge.bus import Frame
    from bridge.bus.redis.layout import Layout
    from bridge.bus.redis.link import Link
    from bridge.bus.redis.writer import Writer

    link = Link(url, Redis.from_url(url), Backoff(0.1, 1.0, 0.2))
    positioned = asyncio.Event()
    positioned.set()
    writer = Writer(
        link,
        Layout("exesdb"),
        positioned=positioned,
        buffer_size=10_000_000,
        stream_maxlen=1_000_000,
        batch_size=500,
        claim_idle_ms=30_000,
        replay_window_ms=300_000,
        clock=time.time,
    )
    task = asyncio.get_running_loop().create_task(link.keep_running("writer", writer.run))
    gc.freeze()  # as a bridge process does once started
    gc.set_threshold(50_000, 20, 20)
    source = Source()
    instances = {t.tag: t.instance for t in source._templates}

    def frames(count: int) -> list[Frame]:
        out = []
        for body, signature in source.frames(count):
            tag = body.split(b'"tag":"', 1)[1].split(b'"', 1)[0].decode()
            out.append(Frame(instances[tag], body, signature))
        return out

    async def written(target: int) -> None:
        while writer.written < target or writer.buffered:  # noqa: ASYNC110 (a counter, no event)
            await asyncio.sleep(0.002)

    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().split():
        command, *values = line
        answer: dict[str, Any] = {}
        if command == "burst":
            target = writer.written + int(values[0])
            started = time.perf_counter()
            for frame in frames(int(values[0])):
                writer.send(frame)
            await written(target)
            answer["seconds"] = time.perf_counter() - started
        elif command == "paced":
            rate, seconds = int(values[0]), float(values[1])
            sent, started = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - started) < seconds:
                due = int(rate * elapsed) - sent
                for frame in frames(due):
                    writer.send(frame)
                sent += due
                await asyncio.sleep(0.002)
            answer["sent"] = sent
        elif command == "quit":
            break
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main() -> None:
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--components", choices=["none", "default"], default="none")
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        help="a git revision whose replicas run beside this tree's (may be given again)",
    )
    parser.add_argument("--claim-idle-ms", type=int, default=10_000)
    parser.add_argument(
        "--gc", choices=["settled", "default"], default="settled", help="the replicas' collector"
    )
    parser.add_argument(
        "--latency-only", action="store_true", help="only publish to delivery, at --rate"
    )
    parser.add_argument("--rate", type=int, default=_TARGET_RATE // 2)
    parser.add_argument("--publisher", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publisher:
        asyncio.run(_publisher(args.publisher))
        return
    print(
        run(
            messages=args.messages,
            repeats=args.repeats,
            seconds=args.seconds,
            components=args.components,
            baseline=args.baseline,
            claim_idle_ms=args.claim_idle_ms,
            collector=args.gc,
            latency_only=args.latency_only,
            rate=args.rate,
        )
    )


if __name__ == "__main__":
    main()
