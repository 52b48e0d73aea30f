"""CPU of a ``/metrics`` scrape of a bridge holding many series, this tree beside a baseline.

``python -m bench.scrape [REV] [--repeats N] [--nodes N]`` (REV defaults to ``main``) extracts
REV with ``git archive``, as bench.compare does, and starts ``python -m bridge run`` from each
tree (same interpreter and libraries), ingest on; both take the same signed batches of
``--nodes`` nodes' metrics mix (450 nodes: about 10 000 series, the default cap), then are
scraped in turn, alternating which goes first, as a scraper would ask: text 0.0.4 (no
``Accept``), OpenMetrics as Prometheus 2 asks for it, the same gzipped (Prometheus always sends
``Accept-Encoding: gzip``), and Prometheus 3's ``Accept`` (``escaping=allow-utf-8``) gzipped.
CPU is each bridge process's CPU-time clock over a run of scrapes, read once it is idle again:
the whole request, from the registry's families and the sink's series to the bytes compressed
and written, not the store's rendering alone (``bench.render``).
"""

from __future__ import annotations

import http.client
import tempfile
from pathlib import Path
from typing import Final

from bench._util import (
    ROOT,
    BridgeProcess,
    argument_parser,
    extract,
    median,
    settle,
    table,
)
from bench.ingest import BATCH, post_batches
from bench.workload import Source

# What Prometheus 2 asks for by default, and Prometheus 3 (the protobuf format it asks for
# first is not served: it takes OpenMetrics).
PROMETHEUS_2: Final = (
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;"
    "version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
PROMETHEUS_3: Final = (
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;"
    "q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;"
    "escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)
# Each load: its name, its Accept header, and whether gzip is accepted.
LOADS: Final = (
    ("text 0.0.4", "", False),
    ("OpenMetrics, as Prometheus 2 asks", PROMETHEUS_2, False),
    ("the same, gzip", PROMETHEUS_2, True),
    ("Prometheus 3's Accept, gzip", PROMETHEUS_3, True),
)
_PER_REPEAT: Final = 20
# The store's cap raised past the series made, so none is refused.
_MAX_SERIES: Final = "100000"


class _Scraper:
    """One keep-alive connection to a bridge's ``/metrics``."""

    def __init__(self, port: int) -> None:
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def scrape(self, accept: str = "", gzip: bool = False) -> bytes:
        """One scrape; the answer's body as sent."""
        headers = {"Accept": accept} if accept else {}
        if gzip:
            headers["Accept-Encoding"] = "gzip"
        self._connection.request("GET", "/metrics", headers=headers)
        answer = self._connection.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"/metrics answered {answer.status}: {body[:200]!r}")
        return body

    def close(self) -> None:
        self._connection.close()


def run(revision: str = "main", repeats: int = 7, nodes: int = 450) -> str:
    """The table: CPU ms per scrape of each load for ``revision`` and for this tree."""
    source = Source("complete", nodes)
    with tempfile.TemporaryDirectory(prefix="exesdb-scrape-") as scratch:
        trees = {revision: extract(revision, Path(scratch)), "this tree": ROOT}
        cpu: dict[tuple[str, str], list[float]] = {}
        sizes: dict[tuple[str, str], int] = {}
        with (
            BridgeProcess(
                trees[revision], EXESDB_INGEST="true", EXESDB_MAX_SERIES=_MAX_SERIES
            ) as before,
            BridgeProcess(ROOT, EXESDB_INGEST="true", EXESDB_MAX_SERIES=_MAX_SERIES) as after,
        ):
            processes = {revision: before, "this tree": after}
            # Each node's mix is eight messages: a batch at a time, both take the same ones.
            for _ in range(nodes * 8 // BATCH + 2):
                batch = source.batch(BATCH)
                for process in processes.values():
                    post_batches(process.port, [batch])
            scrapers = {name: _Scraper(process.port) for name, process in processes.items()}
            series = _series(scrapers["this tree"])
            for name, process in processes.items():
                settle(process.stat)
                for load, accept, gzip in LOADS:
                    sizes[name, load] = len(scrapers[name].scrape(accept, gzip))  # a warm-up too
            for repeat in range(repeats):
                order = list(processes.items())
                for load, accept, gzip in LOADS:
                    for name, process in order if repeat % 2 == 0 else reversed(order):
                        start = process.stat()
                        for _ in range(_PER_REPEAT):
                            scrapers[name].scrape(accept, gzip)
                        end = settle(process.stat)
                        cpu.setdefault((name, load), []).append(
                            (end.cpu_seconds - start.cpu_seconds) / _PER_REPEAT * 1e3
                        )
            for scraper in scrapers.values():
                scraper.close()
    rows = []
    for load, _, _ in LOADS:
        base = median(cpu[revision, load])
        for name in (revision, "this tree"):
            mine = median(cpu[name, load])
            rows.append([f"{name}: {load}", sizes[name, load] / 1024, mine, base / mine])
    return table(
        f"GET /metrics of {series:,} series, {revision} vs this tree ({repeats} x {_PER_REPEAT} "
        "scrapes of each, interleaved; median)",
        ["bridge process: scrape", "body kB (as sent)", "CPU ms / scrape", f"x {revision}"],
        rows,
    )


def _series(scraper: _Scraper) -> int:
    """How many series the Prometheus sink holds (its ``exesdb_prometheus_series``)."""
    for line in scraper.scrape().decode().splitlines():
        if line.startswith("exesdb_prometheus_series "):
            return int(float(line.split()[1]))
    return 0


def main() -> None:
    """Parse the arguments and print the table."""
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("revision", nargs="?", default="main", help="git revision (main)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repeats (7)")
    parser.add_argument(
        "--nodes", type=int, default=450, help="nodes reporting (450: about 10 000 series)"
    )
    arguments = parser.parse_args()
    print(run(arguments.revision, arguments.repeats, arguments.nodes))


if __name__ == "__main__":
    main()
