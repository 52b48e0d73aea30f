"""``python -m bench`` (``make bench``): every benchmark, one table each, in about six minutes."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Final

from bench._util import argument_parser

# The suites, in the order they run; --only takes these names.
SUITES: Final = (
    "bus",
    "decode",
    "ingest",
    "render",
    "idle",
    "soak",
    "alerts",
    "webauth",
    "redis",
    "healthcheck",
    "startup",
    "faults",
    "instructions",
)
# Only when named (--only faults, --only instructions): the soak with faults is long by design,
# and the instruction counts take ten minutes or more under valgrind.
WHEN_NAMED: Final = frozenset({"faults", "instructions"})


def _machine() -> str:
    cpus = os.cpu_count()
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{model}, {cpus} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; load average at start {load}"
    )


def _render(*, quick: bool) -> str:
    """bench.render's figures (issue 3) as a table: the sink's store against generate_latest."""
    from bench import render
    from bench._util import table

    rows = []
    for size in (1_000, 10_000, 50_000):
        # generate_latest takes seconds at 50k series on this machine: fewer runs there.
        runs = 3 if quick or size > 10_000 else 5
        client, dirty, cached, client_full, store_full = render._measure(size, runs)
        rows.append(
            [
                size,
                client * 1e3,
                dirty * 1e3,
                client / dirty,
                cached * 1e3,
                client / cached,
                client_full * 1e3,
                store_full * 1e3,
                client_full / store_full,
            ]
        )
    return table(
        "/metrics render: the Prometheus sink's store vs prometheus_client generate_latest "
        "(median wall ms)",
        [
            "series",
            "generate_latest",
            "store dirty",
            "x",
            "store cached",
            "x",
            "client update+render",
            "store update+render",
            "x",
        ],
        rows,
    )


def baseline_revision(revision: str, only: list[str]) -> str | None:
    """``revision`` if this clone has it, else None with a note printed: the health check and
    start-up then go without their baseline columns rather than fail."""
    from bench._util import missing_revision

    if only and not {"healthcheck", "startup"} & set(only):
        return revision  # not used: no need to ask git
    missing = missing_revision(revision)
    if missing is None:
        return revision
    print(
        f"Note: {missing}; the health check and start-up are measured without a baseline "
        "revision (beside python -c pass alone). --baseline REV names another.\n",
        flush=True,
    )
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__, prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, shorter runs")
    parser.add_argument(
        "--soak-seconds", type=float, default=60.0, help="duration of the 10k msg/s soak"
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=25.0, help="duration of the idle measurement"
    )
    parser.add_argument(
        "--faults-seconds",
        type=float,
        default=60.0,
        help="duration of the soak with faults (--only faults; 1800 for the full 30 minutes)",
    )
    parser.add_argument("--faults-rate", type=int, default=2_000, help="its messages/s")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        choices=SUITES,
        metavar="SUITE",
        help=f"run only this suite, given again for more: {', '.join(SUITES)}",
    )
    parser.add_argument(
        "--baseline",
        default="main",
        help="the git revision the health check and start-up are measured beside (main; if this "
        "clone has no such commit, they are measured beside python -c pass alone); redis and "
        "instructions take their own (python -m bench.redis_bus --baseline REV), not this one",
    )
    args = parser.parse_args(argv)
    print(f"## exesdb-bridge benchmarks\n\nMachine: {_machine()}\n", flush=True)
    baseline = baseline_revision(args.baseline, args.only)

    from bench import (
        alerts,
        bus,
        decode,
        healthcheck,
        idle,
        ingest,
        instructions,
        redis_bus,
        soak,
        soak_faults,
        startup,
        web_auth,
    )

    suites: dict[str, Callable[[], str]] = {
        "bus": lambda: bus.run(quick=args.quick),
        "decode": lambda: decode.run(quick=args.quick),
        "ingest": lambda: ingest.run(quick=args.quick),
    }
    suites["render"] = lambda: _render(quick=args.quick)
    suites["idle"] = lambda: idle.run(seconds=args.idle_seconds)
    suites["soak"] = lambda: soak.run(seconds=args.soak_seconds)
    suites["alerts"] = lambda: alerts.run(quick=args.quick)
    suites["webauth"] = lambda: web_auth.run(quick=args.quick)
    suites["redis"] = lambda: redis_bus.run(quick=args.quick)
    # Beside another revision's tree (git archive), as `python -m bench.healthcheck REV` does.
    suites["healthcheck"] = lambda: healthcheck.run(baseline, 7 if args.quick else 15)
    suites["startup"] = lambda: startup.run(baseline, 5 if args.quick else 11)
    # Long by design: only when asked for (--only faults).
    suites["faults"] = lambda: soak_faults.run(seconds=args.faults_seconds, rate=args.faults_rate)
    # Against its own baseline (python -m bench.instructions --baseline REV), not --baseline's.
    suites["instructions"] = lambda: instructions.run(repeats=2 if args.quick else 3)
    assert tuple(suites) == SUITES, "SUITES names every suite, in order"

    started = time.monotonic()
    failed = 0
    for name, suite in suites.items():
        if (args.only and name not in args.only) or (name in WHEN_NAMED and not args.only):
            continue
        began = time.monotonic()
        try:
            text = suite()
        except Exception as exc:  # one broken suite must not hide the others' figures
            failed += 1
            text = f"### {name}\n\nFAILED: {type(exc).__name__}: {exc}\n"
        print(text + f"\n({name}: {time.monotonic() - began:.0f} s)\n", flush=True)
    print(f"Total: {time.monotonic() - started:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
