"""Signed NDJSON ingest into a real bridge process: messages/s and the bridge's CPU per 1 000.

The bridge runs as ``python -m bridge run`` with ``EXESDB_INGEST=true`` on loopback; batches of
1 000 signed envelopes are POSTed over two keep-alive connections. CPU is the bridge process's
utime + stime from ``/proc/<pid>/stat`` (not wall time), read once its queues have drained. The
baseline, measured in the same run in this process, is the naive per-message pipeline of
``bench.bus`` (hmac + json + pydantic + ``Gauge.labels().set``) on the same kind of messages.
"""

from __future__ import annotations

import asyncio
import http.client
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any, Final

from prometheus_client import CollectorRegistry

from bench._util import BridgeProcess, ProcStat, median, table
from bench.bus import naive
from bench.naive import naive_sink
from bench.workload import SECRET, Source
from bridge.app import Bridge, default_components
from bridge.config import Settings

BATCH: Final = 1_000
TARGET_MS: Final = 5.0
_CLIENTS: Final = 2


def _post_all(port: int, batches: Sequence[tuple[bytes, str]], failures: list[str]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for body, header in batches:
            connection.request(
                "POST",
                "/v1/messages",
                body,
                {"Content-Type": "application/x-ndjson", "X-ExESDB-Signature": header},
            )
            response = connection.getresponse()
            answer = response.read()
            if response.status != 202:
                failures.append(f"{response.status} {answer[:200]!r}")
    finally:
        connection.close()


def _send(port: int, batches: Sequence[tuple[bytes, str]]) -> float:
    """POST every batch over ``_CLIENTS`` connections; the wall time taken."""
    failures: list[str] = []
    shares = [batches[i::_CLIENTS] for i in range(_CLIENTS)]
    threads = [threading.Thread(target=_post_all, args=(port, s, failures)) for s in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} batch(es) refused, first: {failures[0]}")
    return elapsed


def settle(bridge: BridgeProcess, timeout: float = 10.0) -> ProcStat:
    """The bridge's stat once its CPU time stops moving (queues drained)."""
    last = bridge.stat()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = bridge.stat()
        if now.cpu_seconds == last.cpu_seconds:
            return now
        last = now
    return last


async def _in_process(components: list[Any], batches: Sequence[tuple[bytes, str]]) -> float:
    """CPU us per message for ``batches`` through an in-process bridge with ``components``."""
    with tempfile.TemporaryDirectory(prefix="exesdb-bench-") as state:
        settings = Settings(  # type: ignore[call-arg]
            SECRET_KEY_BASE=SECRET, EXESDB_INGEST=True, EXESDB_STATE_DIR=state
        )
        bridge = Bridge(settings, registry=CollectorRegistry(), components=components)
        await bridge.start(serve_http=False)
        subscriptions = bridge.bus.subscriptions
        verifier = bridge.verifier
        count = 0
        started = time.process_time()
        for body, header in batches:
            if verifier.keyring.check_header(header, body, time.time(), 300.0).value != "ok":
                raise RuntimeError("bad header")
            lines = [line for line in body.split(b"\n") if line and not line.isspace()]
            envelopes = verifier.verify_batch(lines)
            if not isinstance(envelopes, list):
                raise RuntimeError(f"batch refused: {envelopes}")
            count += bridge.bus.publish_verified(envelopes)
            while not all(s.idle for s in subscriptions):  # noqa: ASYNC110 (as in bench.bus)
                await asyncio.sleep(0)
        elapsed = time.process_time() - started
        await bridge.aclose()
    return elapsed / count * 1e6


def breakdown(*, quick: bool = False) -> str:
    """Where an ingested message's CPU goes: the same batches with components added in turn."""
    factories = {factory.__name__: factory for factory in default_components()}
    steps = [
        ("bus only (verify, decode, replay, dispatch)", []),
        ("+ Prometheus sink", ["prometheus_sink"]),
        (
            "+ collectors (throughput, health, lifecycle)",
            ["prometheus_sink", "throughput_collector", "health_collector", "lifecycle_collector"],
        ),
        ("+ alert sink (all default components)", list(factories)),
    ]
    repeats = 3 if quick else 5
    source = Source()
    results: dict[str, list[float]] = {name: [] for name, _ in steps}
    for _ in range(repeats):
        for name, chosen in steps:
            batches = [source.batch(BATCH) for _ in range(5 if quick else 10)]
            components = [factories[n] for n in chosen]
            results[name].append(asyncio.run(_in_process(components, batches)))
    rows = []
    previous = 0.0
    for name, _ in steps:
        us = median(results[name])
        rows.append([name, us, us - previous])
        previous = us
    return table(
        f"Where ingest CPU goes (in-process, no HTTP, {repeats} repeats, median)",
        ["bridge with", "CPU ms / 1000 msgs", "added by the step"],
        [[name, us, added] for name, us, added in rows],
    )


def run(*, quick: bool = False) -> str:
    """Measure ingest; the tables."""
    repeats = 3 if quick else 5
    per_repeat = 10 if quick else 20
    source = Source()
    cpu_ms: list[float] = []
    rates: list[float] = []
    naive_ms: list[float] = []
    with BridgeProcess(EXESDB_INGEST="true") as bridge:
        # Warm up: first requests create gauge children, caches and aiohttp state.
        _send(bridge.port, [source.batch(BATCH) for _ in range(4)])
        settle(bridge)
        for _ in range(repeats):
            batches = [source.batch(BATCH) for _ in range(per_repeat)]
            before = bridge.stat()
            wall = _send(bridge.port, batches)
            after = settle(bridge)
            messages = per_repeat * BATCH
            cpu_ms.append((after.cpu_seconds - before.cpu_seconds) / messages * BATCH * 1e3)
            rates.append(messages / wall)

            frames = source.frames(10 * BATCH)
            sink = naive_sink(CollectorRegistry())
            started = time.process_time()
            naive(frames, sink)
            naive_ms.append((time.process_time() - started) / len(frames) * BATCH * 1e3)
        rss = bridge.stat().rss_bytes
        components = bridge.components()
    bridge_ms, base_ms = median(cpu_ms), median(naive_ms)
    return (
        breakdown(quick=quick)
        + "\n"
        + table(
            f"Signed NDJSON ingest ({repeats} x {per_repeat} batches of {BATCH:,}, median; "
            f"bridge RSS after: {rss / 2**20:.0f} MiB)",
            ["pipeline", "msgs/s (wall)", "CPU ms / 1000 msgs", "x naive", "target 5 ms"],
            [
                [
                    f"bridge process: HTTP, verify, decode, bus, sinks ({components})",
                    median(rates),
                    bridge_ms,
                    base_ms / bridge_ms,
                    "met" if bridge_ms <= TARGET_MS else "not met",
                ],
                ["naive per message, in-process, no HTTP", 1e6 / base_ms, base_ms, 1.0, ""],
            ],
        )
    )


if __name__ == "__main__":
    print(run())
