"""The alert stage's rate: alerts from the bus into the outbox, batch commits vs one per alert.

    .venv/bin/python -m bench.alert_stage [--alerts 8000] [--baseline REV [--repeats 3]]

An in-process bridge (alert sink only, no webhook) gets ``--alerts`` distinct SystemAlerts
published at once; the figure is the time until the last one is committed to the outbox. Run once
with the subscription's batches capped at 1 message (one fsync'd transaction per alert, as before
batch commits) and once with the default cap (1 000 per transaction).

``--baseline REV`` (repeatable) runs both in one process per tree (REV's from ``git archive
REV``), interleaved, ``--repeats`` times: each tree's median rate and this tree's ratio against
each REV.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry

from bench._util import (
    add_baseline_argument,
    argument_parser,
    baseline_table,
    interleaved,
    revision_trees,
    serve,
    tree_workers,
)
from bridge.app import Bridge
from bridge.messages import SystemAlert
from bridge.settings import Settings
from bridge.sinks.alerts import AlertSink

if TYPE_CHECKING:
    # Only named: a --baseline worker runs this script on a revision's bridge, whose factories
    # may have taken the Bridge (it has the same four fields the factory reads).
    from bridge.component import Context


async def stage_rate(count: int, max_batch: int, directory: Path) -> float:
    """Alerts per second from publish to outbox commit."""
    settings = Settings(
        **{  # type: ignore[arg-type]
            "EXESDB_STATE_DIR": str(directory),
            "EXESDB_HTTP_ADDR": "127.0.0.1:0",
            "EXESDB_ALERT_QUEUE_SIZE": str(max(count, 10)),
        }
    )
    sinks: list[AlertSink] = []

    def factory(context: Context) -> AlertSink:
        sink = AlertSink(
            context.settings, bus=context.bus, publish=context.integration.publish,
            registry=context.registry,
        )  # fmt: skip
        sink.subscription.max_batch = max_batch
        sinks.append(sink)
        return sink

    bridge = Bridge(settings, registry=CollectorRegistry(), components=[factory])
    await bridge.start(serve_http=False)
    sink = sinks[0]
    try:
        started = time.perf_counter()
        for n in range(count):
            bridge.bus.publish(
                "disk_full",
                SystemAlert(
                    alert_id=f"bench-{n}", severity="critical", category="system", title="t",
                    description="d", source="bench", node="n1",
                ),
            )  # fmt: skip
        # The k-th message the subscription takes is handled once its counter reaches k.
        assert await sink.subscription.wait_handled(count, 600)
        return count / (time.perf_counter() - started)
    finally:
        await bridge.aclose()


CAPS: Final = {"one transaction per alert": 1, "batch commit (<= 1000)": 1000}


def _rate(count: int, cap: int, under: Path) -> float:
    with tempfile.TemporaryDirectory(dir=under) as directory:
        return asyncio.run(stage_rate(count, cap, Path(directory)))


def against(revisions: Sequence[str], count: int, repeats: int) -> str:
    """Both rates from this tree and each revision, one worker process per tree, interleaved;
    the table of medians and ratios."""
    figures: dict[str, dict[str, list[float]]] = {label: {} for label in CAPS}
    with tempfile.TemporaryDirectory(prefix="exesdb-bench-alert-stage-") as scratch:
        trees = revision_trees(revisions, Path(scratch))
        with tree_workers(trees, Path(__file__), "--worker") as workers:
            for tree in interleaved(trees, repeats):
                for label, cap in CAPS.items():
                    # The outboxes go where the command runs, as without --baseline (not /tmp).
                    answer = workers[tree.name].ask(f"{count} {cap} {Path.cwd()}")
                    figures[label].setdefault(tree.name, []).append(answer["rate"])
    return baseline_table(
        f"Alert stage, publish to outbox commit ({repeats} x {count:,} alerts, interleaved)",
        "alerts/s",
        figures,
        trees,
        lower_is_better=False,
    )


def main() -> None:
    """Print both figures (beside each ``--baseline``'s, given any)."""
    parser = argument_parser(__doc__)
    parser.add_argument("--alerts", type=int, default=8000)
    add_baseline_argument(parser, "alert stage")
    parser.add_argument("--repeats", type=int, default=3, help="with --baseline (3)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        serve(lambda words: {"rate": _rate(int(words[0]), int(words[1]), Path(words[2]))})
        return
    if args.baseline:
        print(against(args.baseline, args.alerts, args.repeats))
        return
    for label, cap in CAPS.items():
        rate = _rate(args.alerts, cap, Path.cwd())
        print(f"{label:>28}: {rate:8.0f} alerts/s ({args.alerts} alerts)")


if __name__ == "__main__":
    main()
