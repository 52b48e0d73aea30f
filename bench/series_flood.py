"""A flood of new series at the Prometheus sink's cap, this tree against another git revision.

``python -m bench.series_flood [REV] [--seconds S] [--repeats N]`` (REV defaults to ``main``)
extracts REV with ``git archive`` and, for each tree in turn (alternating which goes first), starts
``python -m bridge run`` with ingest on and the default cap (``EXESDB_MAX_SERIES`` 10 000), fills
the sink to the cap with resource readings of 6 000 nodes (3 series each, so the first 3 000 fill
the nine tenths other nodes than the bridge's may use), then for ``S`` seconds posts batches of ten
readings each naming a new node over two keep-alive connections, while probing ``/healthz`` every
50 ms and ``/metrics`` every 250 ms. It reports batches answered per second and the probes' p50 and
p95.
"""

from __future__ import annotations

import http.client
import itertools
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from bench._util import (
    ROOT,
    BridgeProcess,
    argument_parser,
    extract,
    http_get,
    median,
    send,
    table,
    wait_for,
)
from bench.workload import Template, now_ts, sign_header

_FILL_NODES: Final = 6_000
_BATCH: Final = 10
_CLIENTS: Final = 2
# The nine tenths of the default cap that series of other nodes than the bridge's may fill.
_SHARED: Final = 9_000


class _Readings:
    """Signed NDJSON batches of resource readings, one per node named."""

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._ids = itertools.count()

    def batch(self, nodes: Sequence[str]) -> tuple[bytes, Mapping[str, str]]:
        ts = now_ts()
        lines = []
        for node in nodes:
            payload = {
                "timestamp": ts,
                "resource_type": "cpu",
                "usage_percent": 12.5,
                "total_available": 1024.0,
                "current_used": 128.0,
                "node": node,
            }
            template = Template(
                "ex_esdb_metrics", "resource_usage", "metrics:resources", node, payload
            )
            lines.append(template.render(f"{self._prefix}{next(self._ids):012d}", ts))
        body = b"\n".join(lines) + b"\n"
        headers = {"Content-Type": "application/x-ndjson", "X-ExESDB-Signature": sign_header(body)}
        return body, headers


def _probe(url: str, every: float, until: float, into: list[float]) -> None:
    while time.monotonic() < until:
        started = time.perf_counter()
        http_get(url, 30.0)
        into.append(time.perf_counter() - started)
        time.sleep(every)  # the probe's own pace, not a wait for a condition


def _series(url: str) -> float:
    _, body = http_get(url + "/metrics", 30.0)
    for line in body.decode().splitlines():
        if line.startswith("exesdb_prometheus_series "):
            return float(line.split()[1])
    return 0.0


def _flood(tree: Path, seconds: float) -> dict[str, float]:
    readings = _Readings()
    with BridgeProcess(tree, EXESDB_INGEST="true") as bridge:
        fill = [f"fill{n}@flood" for n in range(_FILL_NODES)]
        send(
            bridge.port,
            "POST",
            "/v1/messages",
            [readings.batch(fill[i : i + 200]) for i in range(0, _FILL_NODES, 200)],
            (202,),
        )
        wait_for(lambda: _series(bridge.url) >= _SHARED, 30.0, "the sink filled to the cap")
        until = time.monotonic() + seconds
        healthz: list[float] = []
        metrics: list[float] = []
        answered = [0] * _CLIENTS
        fresh = itertools.count()

        def client(index: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", bridge.port, timeout=60)
            try:
                while time.monotonic() < until:
                    nodes = [f"new{next(fresh)}@flood" for _ in range(_BATCH)]
                    connection.request("POST", "/v1/messages", *readings.batch(nodes))
                    response = connection.getresponse()
                    response.read()
                    if response.status != 202:
                        raise RuntimeError(f"ingest answered {response.status}")
                    answered[index] += 1
            finally:
                connection.close()

        threads = [
            threading.Thread(target=_probe, args=(bridge.url + "/healthz", 0.05, until, healthz)),
            threading.Thread(target=_probe, args=(bridge.url + "/metrics", 0.25, until, metrics)),
            *(threading.Thread(target=client, args=(i,)) for i in range(_CLIENTS)),
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        health_q = statistics.quantiles(healthz, n=20)
        metrics_q = statistics.quantiles(metrics, n=20)
        return {
            "batches/s": sum(answered) / elapsed,
            "healthz p50 ms": health_q[9] * 1e3,
            "healthz p95 ms": health_q[18] * 1e3,
            "metrics p50 ms": metrics_q[9] * 1e3,
            "metrics p95 ms": metrics_q[18] * 1e3,
        }


def run(revision: str = "main", seconds: float = 20.0, repeats: int = 2) -> str:
    """The table: medians over ``repeats`` floods of ``seconds`` each, per tree."""
    with tempfile.TemporaryDirectory(prefix="exesdb-flood-") as scratch:
        trees = {revision: extract(revision, Path(scratch)), "this tree": ROOT}
        results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for repeat in range(repeats):
            order = list(trees.items())
            for name, tree in order if repeat % 2 == 0 else reversed(order):
                results[name].append(_flood(tree, seconds))
    columns = list(next(iter(results.values()))[0])
    return table(
        f"New series at the cap: {_FILL_NODES:,} nodes filled, then {seconds:g} s of batches of "
        f"{_BATCH} readings of new nodes on {_CLIENTS} connections ({repeats} runs each, median)",
        ["bridge process", *columns],
        [
            [name, *(median([r[c] for r in runs]) for c in columns)]
            for name, runs in results.items()
        ],
    )


def main() -> None:
    """Parse the arguments and print the table."""
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("revision", nargs="?", default="main", help="git revision (main)")
    parser.add_argument("--seconds", type=float, default=20.0, help="flood per run (20)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each tree (2)")
    arguments = parser.parse_args()
    print(run(arguments.revision, arguments.seconds, arguments.repeats))


if __name__ == "__main__":
    main()
