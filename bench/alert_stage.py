"""The alert stage's rate: alerts from the bus into the outbox, batch commits vs one per alert.

    .venv/bin/python -m bench.alert_stage [--alerts 8000]

An in-process bridge (alert sink only, no webhook) gets ``--alerts`` distinct SystemAlerts
published at once; the figure is the time until the last one is committed to the outbox. Run once
with the subscription's batches capped at 1 message (one fsync'd transaction per alert, as before
batch commits) and once with the default cap (1 000 per transaction).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from bench._util import argument_parser
from bridge.app import Bridge
from bridge.messages import SystemAlert
from bridge.settings import Settings
from bridge.sinks.alerts import AlertSink


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

    def factory(bridge: Bridge) -> AlertSink:
        sink = AlertSink(
            bridge.settings, bus=bridge.bus, publish=bridge.integration.publish,
            registry=bridge.registry,
        )  # fmt: skip
        sink.subscription.max_batch = max_batch  # type: ignore[attr-defined]
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
        assert await sink.subscription.wait_handled(count, 600)  # type: ignore[attr-defined]
        return count / (time.perf_counter() - started)
    finally:
        await bridge.aclose()


def main() -> None:
    """Print both figures."""
    parser = argument_parser(__doc__)
    parser.add_argument("--alerts", type=int, default=8000)
    args = parser.parse_args()
    for label, cap in (("one transaction per alert", 1), ("batch commit (<= 1000)", 1000)):
        with tempfile.TemporaryDirectory(dir=".") as directory:
            rate = asyncio.run(stage_rate(args.alerts, cap, Path(directory)))
        print(f"{label:>28}: {rate:8.0f} alerts/s ({args.alerts} alerts)")


if __name__ == "__main__":
    main()
