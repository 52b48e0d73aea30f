"""The bus on Redis, replicas in separate processes: capacity, latency at half of it, failover.

    .venv/bin/python -m bench.redis_bus [--messages 60000] [--repeats 3] [--seconds 8]
                                        [--components none|default] [--baseline REV]

Starts a throw-away ``redis-server`` on a free loopback port, two bridge replicas
(``bench/redis_replica.py``, each its own process: the production Redis transport, a batch
subscriber on the fan-out and one on the work queue) and a publisher process (the bridge's own
writer: pipelined XADD of signed envelopes from ``bench.workload``, a metrics-heavy mix whose
instances are all work-queue instances, so the lease holder also reads every message through
the consumer group).

- **Capacity**: both replicas are stopped (SIGSTOP) while the publisher writes ``--messages``;
  then both continue (SIGCONT) and drain the backlog as fast as they can. Per replica: messages
  per second of wall time (continue → last message received) and messages per CPU-second of
  the replica process (utime + stime from ``/proc``, the figure that does not move with the
  machine's load); the median of ``--repeats``.
- **Latency**: the publisher writes at half the slower replica's median capacity for
  ``--seconds``; per replica, publish-to-receipt latency (the envelope's ``ts``, set when the
  publisher signs it, to the subscriber's clock) at p50 and p99, and CPU per message.
- **Failover**: the lease holder is killed (SIGKILL); the time until the other replica's
  work-queue subscriber has messages published after the kill (lease ``--claim-idle-ms``).

``--baseline REV`` runs the same measurements, interleaved, on replicas from ``git archive REV``
(the publisher is always this tree's): same-run ratios against another revision.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import redis

from bench._util import ROOT, free_port, median, proc_stat, table
from bench.workload import Source

_REPLICA_SCRIPT: Final = Path(__file__).resolve().parent / "redis_replica.py"
_TARGET_RATE: Final = 20_000
_TARGET_P99_MS: Final = 50.0


# -- the processes --


class _Child:
    """A subprocess answering one JSON line per command line."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT):
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=str(cwd),
            text=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def ask(self, command: str, timeout: float = 600.0) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        line = _read_line(self.process.stdout, timeout)
        if not line:
            raise RuntimeError(f"{self.process.args!r} exited with {self.process.poll()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def cpu(self) -> float:
        return proc_stat(self.pid).cpu_seconds

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                self.resume()
                self.ask("quit", timeout=20)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def _read_line(stream: IO[str], timeout: float) -> str:
    # The children answer promptly; the deadline only guards against a hung one.
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise RuntimeError(f"no answer within {timeout}s")
    return stream.readline()


def _redis_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (make test installs it)")
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        + ["--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    client.close()
    return server, f"redis://127.0.0.1:{port}/0"


@dataclass
class _Tree:
    """Which bridge the replicas run: this tree, or another revision's extracted copy."""

    name: str
    path: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EXESDB_", "OTEL_"))}
        env["PYTHONPATH"] = str(self.path)
        return env


def _replicas(tree: _Tree, url: str, args: argparse.Namespace) -> list[_Child]:
    replicas = [
        _Child(
            [sys.executable, str(_REPLICA_SCRIPT), url, f"bench-{n}"]
            + ["--components", args.components, "--claim-idle-ms", str(args.claim_idle_ms)],
            env=tree.env(),
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


def _wait(replicas: list[_Child], wanted: int, work: int, timeout: float) -> list[dict[str, Any]]:
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
class _Capacity:
    wall: list[float]  # messages/s per replica
    per_cpu: list[float]  # messages per CPU-second per replica
    holder: int


def _capacity(
    replicas: list[_Child], publisher: _Child, messages: int, flush: redis.Redis
) -> _Capacity:
    for replica in replicas:
        replica.ask("reset")
        replica.pause()
    try:
        publisher.ask(f"burst {messages}")
    finally:
        before = [r.cpu() for r in replicas]
        started = time.time()
        for replica in replicas:
            replica.resume()
    states = _wait(replicas, messages, messages, 600)
    # Let the processes settle (acknowledgements written), then read their CPU.
    time.sleep(0.5)
    after = [r.cpu() for r in replicas]
    holder = next(n for n, s in enumerate(states) if s["work"]["count"])
    cpu = [b - a for a, b in zip(before, after, strict=True)]
    # The holder's CPU also covers its work-queue copy: per fan-out message, as for the other.
    return _Capacity(
        wall=[messages / (s["fanout"]["last"] - started) for s in states],
        per_cpu=[messages / seconds for seconds in cpu],
        holder=holder,
    )


def _paced(
    replicas: list[_Child], publisher: _Child, rate: int, seconds: float
) -> list[dict[str, Any]]:
    for replica in replicas:
        replica.ask("reset")
    before = [r.cpu() for r in replicas]
    sent = int(publisher.ask(f"paced {rate} {seconds}")["sent"])
    states = _wait(replicas, sent, sent, 120)
    after = [r.cpu() for r in replicas]
    for state, a, b in zip(states, before, after, strict=True):
        state["cpu_us"] = (b - a) / sent * 1e6
    return states


def _failover(replicas: list[_Child], publisher: _Child) -> float:
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


def _extract(revision: str, into: Path) -> Path:
    archive = into / "tree.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", revision], cwd=ROOT, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree"


@contextlib.contextmanager
def _setting(args: argparse.Namespace) -> Iterator[tuple[str, redis.Redis, _Child, list[_Tree]]]:
    with tempfile.TemporaryDirectory(prefix="exesdb-bench-redis-") as scratch:
        trees = [_Tree("this tree", ROOT)]
        if args.baseline:
            trees.insert(0, _Tree(args.baseline, _extract(args.baseline, Path(scratch))))
        server, url = _redis_server(Path(scratch))
        client = redis.Redis.from_url(url)
        publisher = _Child([sys.executable, "-m", "bench.redis_bus", "--publisher", url])
        try:
            yield url, client, publisher, trees
        finally:
            publisher.close()
            client.close()
            server.terminate()
            server.wait()


def run(
    *,
    quick: bool = False,
    messages: int | None = None,
    repeats: int | None = None,
    seconds: float | None = None,
    components: str = "none",
    baseline: str | None = None,
    claim_idle_ms: int = 10_000,
) -> str:
    """Measure; the tables (``make bench --only redis`` and ``python -m bench.redis_bus``)."""
    args = argparse.Namespace(
        messages=messages or (30_000 if quick else 60_000),
        repeats=repeats or (2 if quick else 3),
        seconds=seconds or (5.0 if quick else 8.0),
        components=components,
        baseline=baseline,
        claim_idle_ms=claim_idle_ms,
    )
    load = os.getloadavg()[0]
    capacities: dict[str, list[_Capacity]] = {}
    paced: dict[str, list[dict[str, Any]]] = {}
    rates: dict[str, int] = {}
    failover: float | None = None
    with _setting(args) as (url, client, publisher, trees):
        for repeat in range(args.repeats):
            # Alternate which tree goes first: both see the same drift in the machine's load.
            for tree in trees if repeat % 2 == 0 else list(reversed(trees)):
                client.flushall()
                replicas = _replicas(tree, url, args)
                try:
                    publisher.ask("burst 2000")  # warm up: caches, gauge children, the group
                    _wait(replicas, 2000, 2000, 60)
                    capacities.setdefault(tree.name, []).append(
                        _capacity(replicas, publisher, args.messages, client)
                    )
                finally:
                    for replica in replicas:
                        replica.close()
        for tree in trees:
            runs = capacities[tree.name]
            slower = min(median([c.wall[n] for c in runs]) for n in range(2))
            rates[tree.name] = int(slower / 2)
        for tree in trees:
            client.flushall()
            replicas = _replicas(tree, url, args)
            try:
                publisher.ask("burst 2000")
                _wait(replicas, 2000, 2000, 60)
                paced[tree.name] = _paced(replicas, publisher, rates[tree.name], args.seconds)
                if tree.name == "this tree":
                    failover = _failover(replicas, publisher)
            finally:
                for replica in replicas:
                    replica.close()
    return _tables(args, load, trees, capacities, paced, rates, failover)


def _tables(
    args: argparse.Namespace,
    load: float,
    trees: list[_Tree],
    capacities: dict[str, list[_Capacity]],
    paced: dict[str, list[dict[str, Any]]],
    rates: dict[str, int],
    failover: float | None,
) -> str:
    rows: list[list[Any]] = []
    for tree in trees:
        runs = capacities[tree.name]
        for n in range(2):
            holds = sum(1 for c in runs if c.holder == n)
            rows.append(
                [
                    f"{tree.name}: replica {n + 1} (lease holder in {holds} of {len(runs)})",
                    median([c.wall[n] for c in runs]),
                    median([c.per_cpu[n] for c in runs]),
                    1e6 / median([c.per_cpu[n] for c in runs]),
                ]
            )
    capacity = table(
        f"Redis bus, two replica processes: capacity ({args.repeats} x {args.messages:,} "
        f"messages drained after SIGSTOP; median; load average {load:.1f}; "
        f"components: {args.components})",
        ["replica", "msgs/s (wall)", "msgs per CPU-s", "CPU us/msg"],
        rows,
    )
    latency_rows: list[list[Any]] = []
    for tree in trees:
        for n, state in enumerate(paced[tree.name]):
            p99 = state["fanout"]["p99"] * 1e3
            latency_rows.append(
                [
                    f"{tree.name}: replica {n + 1}" + (" (holder)" if state["leading"] else ""),
                    rates[tree.name],
                    state["fanout"]["p50"] * 1e3,
                    p99,
                    state["work"]["p99"] * 1e3 if state["work"]["count"] else float("nan"),
                    state["cpu_us"],
                ]
            )
    latency = table(
        f"Publish to delivery at half the slower replica's capacity ({args.seconds:g} s)",
        ["replica", "msgs/s", "p50 ms", "p99 ms", "work queue p99 ms", "CPU us/msg"],
        latency_rows,
    )
    mine = capacities["this tree"]
    slowest = min(median([c.wall[n] for c in mine]) for n in range(2))
    p99 = max(s["fanout"]["p99"] * 1e3 for s in paced["this tree"])
    verdict = (
        f"Target >= {_TARGET_RATE:,} msg/s per replica: {slowest:,.0f} "
        f"({'met' if slowest >= _TARGET_RATE else 'not met'}); p99 under {_TARGET_P99_MS:g} ms at "
        f"half of it: {p99:.1f} ms ({'met' if p99 < _TARGET_P99_MS else 'not met'})"
    )
    if failover is not None:
        verdict += (
            f"\nFailover: SIGKILL of the lease holder to the other replica's work queue "
            f"delivering: {failover:.2f} s (lease {args.claim_idle_ms} ms)"
        )
    return capacity + "\n" + latency + "\n" + verdict + "\n"


# -- the publisher process --


async def _publisher(url: str) -> None:
    """Write signed envelopes with the bridge's own writer, as commands on stdin ask."""
    from redis.asyncio import Redis

    from bridge.app import settle_garbage_collector
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
    settle_garbage_collector()
    source = Source()
    instances = {t.tag: t.instance for t in source._templates}

    def frames(count: int) -> list[Frame]:
        out = []
        for body, signature in source.frames(count):
            tag = body.split(b'"tag":"', 1)[1].split(b'"', 1)[0].decode()
            out.append(Frame(instances[tag], body, signature))
        return out

    async def written(target: int) -> None:
        while writer.written < target or writer.buffered:
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--components", choices=["none", "default"], default="none")
    parser.add_argument("--baseline", help="a git revision whose replicas run beside this tree's")
    parser.add_argument("--claim-idle-ms", type=int, default=10_000)
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
        )
    )


if __name__ == "__main__":
    main()
