"""Ingest's work per message in instructions (valgrind's callgrind), this tree beside a revision's.

    .venv/bin/python -m bench.instructions [--baseline REV] [--repeats N] [--batches N]

Why instructions: a shared host's pace moves by a factor of two within a day, so CPU time cannot
tell a change of a few percent from the load (``bench.compare`` read 0.91x to 1.02x for one pair
of trees on one afternoon). The instructions a piece of code executes do not depend on the load.

What is counted: the in-process path of ``bench.ingest``'s "Where ingest CPU goes" table, with
every default component: each signed batch of 1 000 envelopes (complete and minimal payloads in
turn; the same messages, ids included, in every run and tree) through the steps HTTP ingest takes
with it (the signature header's HMAC checked, the body split, decoded, verified and its ids
remembered), published to the bus, and handled until every subscriber (the Prometheus sink, the
collectors, the cluster monitor, the alert sink) is idle again; a new bridge for each shape,
``--warm-up`` batches first (they make the series), then ``--batches`` counted. No HTTP edge.
Only the event loop's thread, where all of that runs: the alert stage's database thread runs its
housekeeping pass every second of the wall clock, which valgrind stretches by as much as the
load does (counted, one tree's runs were up to 1.6% apart; left out, up to 1.1%, and two runs'
medians within 0.3%). The HMAC is in the count, and high there: under valgrind libcrypto's
SHA-256 runs in software (about 9 600 instructions a message), natively 3% of the CPU.

How: REV's tree (``git archive REV`` into a temporary folder, removed after; the repository is
not touched) and this one each run this script's worker under ``valgrind --tool=callgrind`` with
the same interpreter, ``PYTHONHASHSEED=0`` and byte code compiled first; callgrind zeroes its
counts where the worker calls ``sys.getswitchinterval`` (after the warm-up) and writes them where
it calls ``sys.getallocatedblocks`` (after the counted batches), so start-up and shutdown are not
counted. The trees take turns, in reverse order every other repeat; the table gives each tree's
median and runs, in millions of instructions per ``--batches`` batches, and this tree's ratio. A
worker takes one to two and a half minutes under valgrind (the longer at load average 12 on two
cores): the default 3 repeats of two trees, 6 to 15 minutes. A worker still running after a
minute for each of its batches is taken for stuck: killed, and the run ends naming its tree.

valgrind is installed with apt-get when missing and running as root (as Pushgateway is for
``bench.ingest``); otherwise the command says how to install it and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from bench._util import (
    Tree,
    add_baseline_argument,
    apt_installed,
    argument_parser,
    at_least_one,
    interleaved,
    median,
    revision_trees,
    settled_heap,
    table,
)
from bench.workload import SECRET, SHAPES, Shape, Source

BASELINE: Final = "6c3c5492"
"""The tree of the README's ingest row (5 Dec 2026), which docs/performance.md counts against."""
BATCH: Final = 1_000
# 125 nodes: a batch of 1 000 is the mix once over, as in bench.ingest.
NODES: Final = 125
_WARM_UP: Final = 3
# The calls the worker makes where callgrind starts counting and writes the counts: functions of
# the interpreter nothing on the ingest path calls (a dump more or less than expected is refused).
_ZERO_AT: Final = "sys_getswitchinterval"
_DUMP_AT: Final = "sys_getallocatedblocks"
# A worker under callgrind takes some 6 s a batch at the slowest seen (two and a half minutes for
# 26 batches at load average 12); ten times that, and it is taken for stuck, not slow.
WORKER_SECONDS_PER_BATCH: Final = 60.0
INSTALL: Final = (
    "valgrind is not installed: apt-get install valgrind (as root), then run this again"
)


def _ingest_steps(bridge: Any) -> Callable[[bytes, str], int]:
    """A batch (body, signature header) through the steps HTTP ingest takes with it in the
    tree this worker runs on, published to ``bridge``'s bus; the count published."""
    from bridge import bus

    if hasattr(bus, "decode_ndjson"):  # what verified_batch imports
        from bench._util import verified_batch

        return lambda body, header: bridge.bus.publish_verified(
            *verified_batch(bridge.verifier, body, header)
        )
    # Before decode_ndjson (6c3c5492, the default baseline): verify_batch took the lines and the
    # body, and HTTP ingest handed the bus each line's length.
    import time

    def older(body: bytes, header: str) -> int:
        verifier = bridge.verifier
        check = verifier.keyring.check_header(header, body, time.time(), verifier.window_seconds)
        if check is not bus.HeaderCheck.OK:
            raise RuntimeError(f"header check failed: {check}")
        lines = [line for line in body.split(b"\n") if line and not line.isspace()]
        envelopes = verifier.verify_batch(lines, whole=body)
        if isinstance(envelopes, bus.Rejection):
            raise RuntimeError(f"batch refused: {envelopes}")
        count: int = bridge.bus.publish_verified(envelopes, list(map(len, lines)))
        return count

    return older


async def _count_one_shape(shape: Shape, warm_up: int, batches: int) -> None:
    """The worker's part for one shape: a bridge with every default component, ``warm_up``
    batches, then ``batches`` between the two calls callgrind counts between."""
    from prometheus_client import CollectorRegistry

    from bridge.app import Bridge, default_components
    from bridge.settings import Settings

    # The same ids in every run and tree: the same input for both.
    source = Source(shape, NODES, prefix="bench" + "0" * 15)
    # Signed before the bridge starts: making them is not ingest's work.
    sent = [source.batch(BATCH) for _ in range(warm_up + batches)]
    with tempfile.TemporaryDirectory(prefix="exesdb-bench-") as state:
        settings = Settings(
            SECRET_KEY_BASE=SECRET,
            EXESDB_INGEST=True,
            EXESDB_STATE_DIR=state,
            # Whatever depends on the time a day apart: a process runs some fifty times slower
            # under valgrind, and by how much depends on the load. A collector's broadcast would
            # fall inside the counted batches, their ids be pruned from the replay memory or a
            # reading count as late (half the replay window after it was made: no gauge set).
            EXESDB_HEALTH_BROADCAST_INTERVAL=86_400_000,
            EXESDB_METRICS_BROADCAST_INTERVAL=86_400_000,
            EXESDB_REPLAY_WINDOW_MS=86_400_000,
        )
        bridge = Bridge(settings, registry=CollectorRegistry(), components=default_components())
        await bridge.start(serve_http=False)
        try:
            ingest = _ingest_steps(bridge)
            subscriptions = bridge.bus.subscriptions
            with settled_heap():  # as `exesdb-bridge run` settles its heap once started
                for number, (body, header) in enumerate(sent):
                    if number == warm_up:
                        sys.getswitchinterval()  # callgrind --zero-before: counting starts here
                    ingest(body, header)
                    while not all(s.idle for s in subscriptions):  # noqa: ASYNC110 (as bench.ingest)
                        await asyncio.sleep(0)
                sys.getallocatedblocks()  # callgrind --dump-before: the counts written here
        finally:
            # A batch refused too: the alert stage's thread would outlive the loop.
            await bridge.aclose()


def _worker(shapes: Sequence[Shape], warm_up: int, batches: int) -> None:
    for shape in shapes:
        asyncio.run(_count_one_shape(shape, warm_up, batches))


def valgrind() -> str | None:
    """valgrind's path, installed with apt-get when missing and running as root; None when it
    is missing and cannot be installed."""
    return apt_installed("valgrind", "valgrind")


def counted(out_file: Path, dumps: int) -> list[int]:
    """The event loop's thread's instructions in each of callgrind's ``dumps`` dumps of one run
    (``--separate-threads=yes``: the files ``out_file``.1-01, .2-01, ...; the other threads'
    parts left out), in order; RuntimeError when there are more or fewer."""
    found = sorted(
        out_file.parent.glob(out_file.name + ".*-01"),
        key=lambda path: int(path.name.rsplit(".", 1)[1].split("-")[0]),
    )
    if len(found) != dumps:
        raise RuntimeError(f"callgrind wrote {len(found)} dumps, not {dumps}: {found}")
    counts = []
    for dump in found:
        summary = [line for line in dump.read_text().splitlines() if line.startswith("summary:")]
        counts.append(int(summary[0].split()[1]))
    return counts


def _run_worker(
    binary: str, tree: Tree, shapes: Sequence[Shape], warm_up: int, batches: int, scratch: Path
) -> dict[Shape, int]:
    """One worker process of ``tree`` under callgrind: the instructions of ``batches`` batches
    of each shape."""
    out_file = Path(tempfile.mkdtemp(dir=scratch)) / "callgrind.out"
    env = tree.script_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONHASHSEED"] = "0"
    command = [
        binary,
        "--tool=callgrind",
        # The event loop's thread counted alone (the module's docstring says why).
        "--separate-threads=yes",
        f"--callgrind-out-file={out_file}",
        f"--zero-before={_ZERO_AT}",
        f"--dump-before={_DUMP_AT}",
        sys.executable,
        str(Path(__file__)),
        "--worker",
        *shapes,
        *("--warm-up", str(warm_up), "--batches", str(batches)),
    ]
    deadline = WORKER_SECONDS_PER_BATCH * (warm_up + batches) * len(shapes)
    try:
        done = subprocess.run(
            command, cwd=tree.path, env=env, capture_output=True, text=True, timeout=deadline
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(
            f"the worker of {tree.name} did not finish within {deadline:g} s"
            f" ({WORKER_SECONDS_PER_BATCH:g} s a batch), and was killed"
        ) from None
    if done.returncode != 0:
        raise RuntimeError(f"the worker of {tree.name} exited {done.returncode}:\n{done.stderr}")
    return dict(zip(shapes, counted(out_file, len(shapes)), strict=True))


def render(
    figures: Mapping[str, Mapping[str, Sequence[float]]],
    trees: Sequence[Tree],
    repeats: int,
    batches: int,
) -> str:
    """The table: by shape and tree, the median and each run in millions of instructions per
    ``batches`` batches, and a message's share; on this tree's row (the last tree), per baseline
    how many times fewer this tree's are, and its change in percent."""
    this = trees[-1].name
    rows: list[list[Any]] = []
    for shape, samples in figures.items():
        for tree in trees:
            runs = samples[tree.name]
            row: list[Any] = [
                shape,
                tree.name,
                f"{median(runs):.1f}",
                ", ".join(f"{run:.1f}" for run in runs),
                median(runs) * 1e6 / (batches * BATCH),
            ]
            for baseline in trees[:-1]:
                before, after = median(samples[baseline.name]), median(runs)
                row.append(
                    f"{before / after:.3f} ({after / before - 1:+.1%})" if tree.name == this else ""
                )
            rows.append(row)
    spread = max(max(runs) / min(runs) - 1 for s in figures.values() for runs in s.values())
    return (
        table(
            f"Ingest's instructions, in process with every default component, HMAC included, "
            "the event loop's thread "
            f"(callgrind; {repeats} runs per tree and shape, interleaved, each {batches} batches "
            f"of {BATCH:,}); x REV: how many times fewer this tree's are than REV's (its change)",
            [
                "payloads",
                "tree",
                f"M instructions / {batches} batches (median)",
                "each run",
                "a message",
                *(f"x {tree.name}" for tree in trees[:-1]),
            ],
            rows,
        )
        + f"\nThe runs of one tree {spread:.2%} apart at most.\n"
    )


def run(
    baseline: Sequence[str] = (BASELINE,),
    repeats: int = 3,
    batches: int = 10,
    warm_up: int = _WARM_UP,
) -> str:
    """Count each shape's ``batches`` in each tree, ``repeats`` times interleaved; the table.
    RuntimeError saying how to install valgrind when it is missing."""
    binary = valgrind()
    if binary is None:
        raise RuntimeError(INSTALL)
    figures: dict[str, dict[str, list[float]]] = {shape: {} for shape in SHAPES}
    with tempfile.TemporaryDirectory(prefix="exesdb-bench-instructions-") as scratch:
        trees = revision_trees(baseline, Path(scratch))
        for tree in trees:  # byte code cached, as an installed package has it
            subprocess.run(
                [sys.executable, "-m", "compileall", "-q", "bridge", "bench"],
                cwd=tree.path,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        for repeat, tree in enumerate(interleaved(trees, repeats)):
            # The shapes take turns too, each first in every other process.
            shapes = SHAPES if repeat // len(trees) % 2 == 0 else SHAPES[::-1]
            counts = _run_worker(binary, tree, shapes, warm_up, batches, Path(scratch))
            for shape, count in counts.items():
                figures[shape].setdefault(tree.name, []).append(count / 1e6)
    return render(figures, trees, repeats, batches)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line: ``--baseline REV`` (repeatable; 6c3c5492 when none), ``--repeats``,
    ``--batches`` and ``--warm-up``; the worker's shapes after ``--worker``."""
    parser = argument_parser(__doc__, prog="python -m bench.instructions")
    add_baseline_argument(parser, "ingest", BASELINE)
    parser.add_argument("--repeats", type=at_least_one, default=3, help="per tree (3)")
    parser.add_argument(
        "--batches",
        type=at_least_one,
        default=10,
        help="batches of 1 000 counted (10)",
    )
    parser.add_argument(
        "--warm-up",
        type=at_least_one,
        default=_WARM_UP,
        help=f"batches sent first, not counted ({_WARM_UP})",
    )
    parser.add_argument("--worker", nargs="+", choices=SHAPES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.baseline = args.baseline or [BASELINE]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table; 2 when valgrind is missing and cannot be installed."""
    args = parse(argv)
    if args.worker:
        _worker(args.worker, args.warm_up, args.batches)
        return 0
    if valgrind() is None:
        print(f"python -m bench.instructions: {INSTALL}", file=sys.stderr)
        return 2
    print(run(args.baseline, args.repeats, args.batches, args.warm_up))
    return 0


if __name__ == "__main__":
    sys.exit(main())
