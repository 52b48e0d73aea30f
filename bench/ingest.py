"""Signed NDJSON ingest into a real bridge process, beside Prometheus Pushgateway in the same run.

    .venv/bin/python -m bench.ingest [--repeats N] [--batches N]

The bridge runs as ``python -m bridge run`` with ``EXESDB_INGEST=true`` on loopback; batches of
1 000 signed envelopes are POSTed over two keep-alive connections, in both payload shapes
(complete: every field set; minimal: only the required ones), and the complete one as Python's
json.dumps writes it by default (``python``: spaces, ``\\u00b5`` escapes, a newline in a string,
``isoformat()`` timestamps; the table's third bridge row). The baseline is Pushgateway
(``bench.pushgateway``), PUT the same series as text exposition over keep-alive HTTP: the samples
the bridge's ``/metrics`` shows for a batch's messages, one body per batch. CPU is each process's
CPU-time clock (``bench._util.cpu_seconds``, not wall time), read once it is idle again; the
loads take turns, their order rotating each repeat, and the tables show medians; the shapes
are compared with the complete one by the median of each repeat's ratio (both measured within
the repeat). ``--repeats`` and ``--batches`` (per repeat, the first in process a warm-up) size
both tables alike (by default 5 x 11 in process, 9 x 40 over HTTP): small ones for a smoke run.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from functools import partial
from typing import Any, Final

from prometheus_client import CollectorRegistry

from bench import pushgateway
from bench._util import (
    BridgeProcess,
    argument_parser,
    at_least_one,
    http_get,
    median,
    send,
    settle,
    settled_heap,
    table,
    verified_batch,
)
from bench.workload import SECRET, SHAPES, WRITTEN, Shape, Source
from bridge.app import Bridge, default_components
from bridge.settings import Settings

BATCH: Final = 1_000
TARGET_MS: Final = 5.0
SHAPE_SPREAD: Final = 0.15
# The mix is eight messages per node: with 125 nodes a batch of 1 000 is the mix once over, so
# each message of a batch sets series of its own (Pushgateway takes no repeated series in a push).
NODES: Final = 125


def post_batches(port: int, batches: Sequence[tuple[bytes, str]]) -> float:
    """POST each signed NDJSON batch to ``/v1/messages``; the wall time taken."""
    requests = [
        (body, {"Content-Type": "application/x-ndjson", "X-ExESDB-Signature": header})
        for body, header in batches
    ]
    return send(port, "POST", "/v1/messages", requests, (202,))


async def _in_process(components: list[Any], batches: Sequence[tuple[bytes, str]]) -> float:
    """CPU us per message for ``batches`` (the first a warm-up) through an in-process bridge
    with ``components``."""
    with tempfile.TemporaryDirectory(prefix="exesdb-bench-") as state:
        settings = Settings(SECRET_KEY_BASE=SECRET, EXESDB_INGEST=True, EXESDB_STATE_DIR=state)
        bridge = Bridge(settings, registry=CollectorRegistry(), components=components)
        await bridge.start(serve_http=False)
        subscriptions = bridge.bus.subscriptions
        verifier = bridge.verifier
        count = 0
        with settled_heap():  # as `exesdb-bridge run` settles its heap once started
            for number, (body, header) in enumerate(batches):
                if number == 1:  # the first batch creates the series: a warm-up, not counted
                    count, started = 0, time.process_time()
                count += bridge.bus.publish_verified(*verified_batch(verifier, body, header))
                while not all(s.idle for s in subscriptions):  # noqa: ASYNC110 (as in bench.bus)
                    await asyncio.sleep(0)
            elapsed = time.process_time() - started
        await bridge.aclose()
    return elapsed / count * 1e6


def breakdown(
    *, quick: bool = False, repeats: int | None = None, batches: int | None = None
) -> str:
    """Where an ingested message's CPU goes: the same batches with components added in turn;
    ``repeats`` of ``batches`` each (the first a warm-up), else the ``quick`` or full sizes."""
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
    repeats = repeats or (3 if quick else 5)
    per_repeat = max(2, batches or (6 if quick else 11))  # one to warm up, one to measure
    sources = {shape: Source(shape, NODES) for shape in SHAPES}
    results: dict[tuple[str, Shape], list[float]] = {
        (name, shape): [] for name, _ in steps for shape in SHAPES
    }
    for _ in range(repeats):
        for name, chosen in steps:
            components = [factories[n] for n in chosen]
            for shape in SHAPES:
                sent = [sources[shape].batch(BATCH) for _ in range(per_repeat)]
                results[name, shape].append(asyncio.run(_in_process(components, sent)))
    rows = []
    previous = dict.fromkeys(SHAPES, 0.0)
    for name, _ in steps:
        row: list[Any] = [name]
        for shape in SHAPES:
            us = median(results[name, shape])
            row += [us, us - previous[shape]]
            previous[shape] = us
        rows.append(row)
    return table(
        f"Where ingest CPU goes (in-process, no HTTP, {repeats} repeats, median)",
        [
            "bridge with",
            "complete: CPU ms / 1000 msgs",
            "added by the step",
            "minimal: CPU ms / 1000 msgs",
            "added by the step",
        ],
        rows,
    )


def warm_up(bridge: BridgeProcess, sources: Mapping[Shape, Source]) -> bytes:
    """Send ``bridge`` a few batches of each shape (the first requests create series, caches
    and aiohttp state); the samples a batch of complete messages sets, as text exposition.

    Those are read before the other shapes are sent: the ``python`` shape's ``µs`` unit makes
    series of its own, which a batch of complete messages does not set (2.75 samples per
    message, not 2.625), and the bridge's CPU per sample would be divided by too many.
    """
    post_batches(bridge.port, [sources["complete"].batch(BATCH) for _ in range(4)])
    settle(bridge.stat)
    complete_samples = pushgateway.exposition(
        http_get(bridge.url + "/metrics")[1].decode(), '@bench"'
    )
    for shape in [shape for shape in WRITTEN if shape != "complete"]:
        post_batches(bridge.port, [sources[shape].batch(BATCH) for _ in range(4)])
    settle(bridge.stat)
    return complete_samples


def run(*, quick: bool = False, repeats: int | None = None, batches: int | None = None) -> str:
    """Measure ingest of both payload shapes beside Pushgateway; the tables. ``repeats`` of
    ``batches`` each size both, else the ``quick`` or full sizes."""
    # 40 batches: ~0.2 s of CPU, several scheduler time slices.
    per_repeat = batches or (20 if quick else 40)
    sources = {shape: Source(shape, NODES) for shape in WRITTEN}
    binary = pushgateway.installed()
    cpu: dict[str, list[float]] = {name: [] for name in (*WRITTEN, "pushgateway")}
    rates: dict[str, list[float]] = {name: [] for name in cpu}
    with ExitStack() as stack:
        bridge = stack.enter_context(BridgeProcess(EXESDB_INGEST="true"))
        samples_body = warm_up(bridge, sources)
        samples = sum(1 for line in samples_body.splitlines() if not line.startswith(b"#"))

        # Each load: (CPU seconds, wall seconds, batches) of one turn.
        def ingest(shape: Shape) -> tuple[float, float, int]:
            batches = [sources[shape].batch(BATCH) for _ in range(per_repeat)]
            before = bridge.stat()
            wall = post_batches(bridge.port, batches)
            return settle(bridge.stat).cpu_seconds - before.cpu_seconds, wall, per_repeat

        loads: dict[str, Callable[[], tuple[float, float, int]]] = {
            shape: partial(ingest, shape) for shape in WRITTEN
        }
        if binary is not None:
            gateway = stack.enter_context(pushgateway.Pushgateway(binary))
            gateway.push([samples_body] * 4)
            settle(gateway.stat)

            def push() -> tuple[float, float, int]:
                before = gateway.stat()
                wall = gateway.push([samples_body] * per_repeat)
                return settle(gateway.stat).cpu_seconds - before.cpu_seconds, wall, per_repeat

            loads["pushgateway"] = push
        names = list(loads)
        turns = repeats or (3 if quick else 9)
        for repeat in range(turns):
            turn = repeat % len(names)
            for name in names[turn:] + names[:turn]:
                seconds, wall, sent = loads[name]()
                cpu[name].append(seconds / sent * 1e3)  # per batch: 1 000 messages' worth
                rates[name].append(sent * BATCH / wall)
        rss = bridge.stat().rss_bytes
        components = bridge.components()
    note = "" if binary else "Pushgateway not installed: apt-get install prometheus-pushgateway\n"
    return (
        breakdown(quick=quick, repeats=repeats, batches=batches)
        + "\n"
        + _tables(cpu, rates, samples, turns, per_repeat, rss)
        + f"bridge components: {components}\n"
        + note
    )


def _tables(
    cpu: dict[str, list[float]],
    rates: dict[str, list[float]],
    samples: int,
    repeats: int,
    per_repeat: int,
    rss: int,
) -> str:
    per_message = samples / BATCH
    gateway = median(cpu["pushgateway"]) if cpu["pushgateway"] else float("nan")
    rows: list[list[Any]] = [
        [
            "bridge, complete payloads as Python's json.dumps writes them"
            if shape == "python"
            else f"bridge, {shape} payloads",
            median(rates[shape]),
            median(cpu[shape]),
            median(cpu[shape]) / per_message if shape == "complete" else float("nan"),
            gateway / (median(cpu[shape]) / per_message) if shape == "complete" else float("nan"),
            "met" if median(cpu[shape]) <= TARGET_MS else "not met",
        ]
        for shape in WRITTEN
    ]
    rows.append(
        [
            "Pushgateway: the same samples as text (a PUT per batch)",
            median(rates["pushgateway"]) if cpu["pushgateway"] else float("nan"),
            gateway * per_message,
            gateway,
            1.0,
            "",
        ]
    )
    # Each repeat measured both shapes within about a second: their ratio, paired, cancels most
    # of the host's swings from one repeat to the next, which the ratio of two medians keeps.
    spread = median([m / c for m, c in zip(cpu["minimal"], cpu["complete"], strict=True)]) - 1
    python = median([p / c for p, c in zip(cpu["python"], cpu["complete"], strict=True)]) - 1
    return (
        table(
            f"Signed NDJSON ingest beside Pushgateway ({repeats} x {per_repeat} batches of "
            f"{BATCH:,} each, interleaved, median; {per_message:.2f} samples per complete "
            f"message; bridge RSS after: {rss / 2**20:.0f} MiB)",
            [
                "process",
                "msgs/s (wall)",
                "CPU ms / 1000 msgs",
                "CPU ms / 1000 samples",
                "Pushgateway's CPU per sample / its",
                f"target {TARGET_MS:g} ms / 1000 msgs",
            ],
            rows,
        )
        + f"\nminimal vs complete payloads: {spread:+.1%} CPU per message, the median of each"
        f" repeat's ratio (target within "
        f"{SHAPE_SPREAD:.0%}: {'met' if abs(spread) <= SHAPE_SPREAD else 'not met'})\n"
        f"complete payloads as Python writes them vs compact: {python:+.1%} CPU per message, the"
        " median of each repeat's ratio\n"
    )


def main() -> None:
    """``python -m bench.ingest``: both tables, sized by ``--repeats`` and ``--batches``."""
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=at_least_one, help="repeats of each table (default 5 and 9)"
    )
    parser.add_argument(
        "--batches", type=at_least_one, help="batches of 1 000 per repeat (default 11 and 40)"
    )
    args = parser.parse_args()
    print(run(repeats=args.repeats, batches=args.batches))


if __name__ == "__main__":
    main()
