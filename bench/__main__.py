"""``python -m bench`` (``make bench``): every benchmark, one table each, in under 5 minutes."""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
from collections.abc import Callable


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, shorter runs")
    parser.add_argument(
        "--soak-seconds", type=float, default=60.0, help="duration of the 10k msg/s soak"
    )
    parser.add_argument("--idle-seconds", type=float, default=25.0)
    parser.add_argument(
        "--only", action="append", default=[], help="run only these (bus, ingest, render, ...)"
    )
    args = parser.parse_args(argv)

    from bench import alerts, bus, idle, ingest, soak

    suites: dict[str, Callable[[], str]] = {
        "bus": lambda: bus.run(quick=args.quick),
        "ingest": lambda: ingest.run(quick=args.quick),
    }
    if importlib.util.find_spec("bench.render") is not None:
        from bench import render

        suites["render"] = lambda: render.run(quick=args.quick)  # type: ignore[attr-defined]
    else:
        suites["render"] = lambda: (
            "### /metrics render\n\nskipped: bench/render.py (issue 3) is not merged\n"
        )
    suites["idle"] = lambda: idle.run(seconds=args.idle_seconds)
    suites["soak"] = lambda: soak.run(seconds=args.soak_seconds)
    suites["alerts"] = lambda: alerts.run(quick=args.quick)

    print(f"## exesdb-bridge benchmarks\n\nMachine: {_machine()}\n", flush=True)
    started = time.monotonic()
    failed = 0
    for name, suite in suites.items():
        if args.only and name not in args.only:
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
