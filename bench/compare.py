"""Ingest CPU of this tree against another git revision's, both bridge processes in one run.

``python -m bench.compare [REV] [--repeats N] [--shape SHAPE ...]`` (REV defaults to ``main``)
extracts REV with ``git archive`` into a temporary directory and starts ``python -m bridge run``
from each tree (same interpreter and libraries), then POSTs the same kind of signed NDJSON
batches to each in turn, alternating which goes first, and reads each process's CPU-time clock.
Both processes run through the same load on the shared machine, so the ratio of the medians is
what to compare. ``--shape`` may be given more than once (``--shape complete --shape minimal
--shape python``): each repeat then sends every shape to both processes, the shapes in turn, so
that the shapes' figures come from the same run too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from bench._util import ROOT, BridgeProcess, argument_parser, extract, median, settle, table
from bench.ingest import BATCH, post_batches
from bench.workload import WRITTEN, Shape, Source

_PER_REPEAT: Final = 20


def run(revision: str = "main", repeats: int = 7, shapes: Sequence[Shape] = ("complete",)) -> str:
    """The table: CPU ms per 1 000 ingested messages for ``revision`` and for this tree, a
    row each per shape in ``shapes``."""
    sources = {shape: Source(shape) for shape in shapes}
    with tempfile.TemporaryDirectory(prefix="exesdb-compare-") as scratch:
        trees = {revision: extract(revision, Path(scratch)), "this tree": ROOT}
        results: dict[tuple[Shape, str], list[float]] = {
            (shape, name): [] for shape in shapes for name in trees
        }
        with (
            BridgeProcess(trees[revision], EXESDB_INGEST="true") as before,
            BridgeProcess(ROOT, EXESDB_INGEST="true") as after,
        ):
            processes = {revision: before, "this tree": after}
            for process in processes.values():
                for source in sources.values():  # warm up: each shape's series made
                    post_batches(process.port, [source.batch(BATCH) for _ in range(4)])
                settle(process.stat)
            for repeat in range(repeats):
                order = list(processes.items())
                for shape, source in sources.items():
                    for name, process in order if repeat % 2 == 0 else reversed(order):
                        batches = [source.batch(BATCH) for _ in range(_PER_REPEAT)]
                        start = process.stat()
                        post_batches(process.port, batches)
                        end = settle(process.stat)
                        cpu = end.cpu_seconds - start.cpu_seconds
                        results[shape, name].append(cpu / (_PER_REPEAT * BATCH) * BATCH * 1e3)
    rows = []
    for shape in shapes:
        base = median(results[shape, revision])
        for name in trees:
            ms = median(results[shape, name])
            rows.append([shape, name, ms, base / ms])
    return table(
        f"Signed NDJSON ingest, {revision} vs this tree ({repeats} x {_PER_REPEAT} batches of "
        f"{BATCH:,} payloads per shape each, interleaved; median)",
        ["payloads", "bridge process", "CPU ms / 1000 msgs", f"x {revision}"],
        rows,
    )


def main() -> None:
    """Parse the arguments and print the table."""
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("revision", nargs="?", default="main", help="git revision (main)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repeats (7)")
    parser.add_argument(
        "--shape",
        choices=WRITTEN,
        action="append",
        help="payloads (complete); again for more shapes, measured in turn in each repeat",
    )
    arguments = parser.parse_args()
    shapes = tuple(dict.fromkeys(arguments.shape or ["complete"]))
    print(run(arguments.revision, arguments.repeats, shapes))


if __name__ == "__main__":
    main()
