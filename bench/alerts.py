"""Alert latency: ``bus.publish`` of a SystemAlert to the webhook POST received, p50/p99.

A bridge runs in this process (no HTTP server of its own) with its alert sink posting to a
loopback receiver; each alert carries a unique id, found in the received body. The baseline,
measured in the same run, is a bare aiohttp POST to the same receiver (the floor any webhook
delivery pays on loopback).
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from typing import Final

from aiohttp import ClientSession, web
from prometheus_client import CollectorRegistry

from bench._util import free_port, percentile, table
from bench.workload import SECRET

ALERTS: Final = 200


class _Receiver:
    """A loopback webhook receiver noting when each alert id arrived."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrived: dict[str, float] = {}
        self.pending: set[str] = set()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.perf_counter()
        for alert_id in [a for a in self.pending if a.encode() in body]:
            self.arrived.setdefault(alert_id, now)
            self.pending.discard(alert_id)
        return web.Response(status=200)

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def _wait(condition: object, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.001)
    return False


async def _measure(count: int) -> tuple[list[float], list[float]]:
    from bridge.app import Bridge
    from bridge.config import Settings
    from bridge.messages import SystemAlert

    receiver = _Receiver()
    await receiver.start()
    url = f"http://127.0.0.1:{receiver.port}/hook"
    settings = Settings(  # type: ignore[call-arg]
        SECRET_KEY_BASE=SECRET,
        EXESDB_WEBHOOK_URLS=url,
        EXESDB_WEBHOOK_GROUP_WAIT_MS=0,
        EXESDB_WEBHOOK_MIN_SEVERITY="info",
        EXESDB_LOG_LEVEL="warning",
    )
    bridge = Bridge(settings, registry=CollectorRegistry())
    await bridge.start(serve_http=False)
    latencies: list[float] = []
    baseline: list[float] = []
    try:
        async with ClientSession() as session:
            for number in range(count):
                alert_id = f"bench-alert-{number:06d}-{time.time_ns()}"
                receiver.pending.add(alert_id)
                sent = time.perf_counter()
                async with session.post(url, data=alert_id.encode()) as response:
                    await response.read()
                baseline.append(receiver.arrived.pop(alert_id) - sent)

                alert_id = f"bench-alert-{number:06d}-{time.time_ns()}"
                receiver.pending.add(alert_id)
                alert = SystemAlert(
                    alert_id=alert_id,
                    severity="critical",
                    category="performance",
                    title="bench alert",
                    description="latency benchmark",
                    source="bench",
                    node="bench@host",
                )
                sent = time.perf_counter()
                if not bridge.bus.publish("alerts:system", alert):
                    raise RuntimeError("publish refused")
                if not await _wait(lambda a=alert_id: a in receiver.arrived, 10.0):
                    raise RuntimeError(f"alert {alert_id} never reached the webhook")
                latencies.append(receiver.arrived.pop(alert_id) - sent)
    finally:
        await bridge.aclose()
        await receiver.aclose()
    return latencies, baseline


def _has_alert_sink() -> bool:
    try:
        return importlib.util.find_spec("bridge.sinks.alerts") is not None
    except ModuleNotFoundError:
        return False


def run(*, quick: bool = False) -> str:
    """Measure; the table (or why it was skipped)."""
    if not _has_alert_sink():
        return (
            "### Alert latency\n\n"
            "skipped: the alert sink (bridge.sinks.alerts, issue 5) is not merged\n"
        )
    latencies, baseline = asyncio.run(_measure(50 if quick else ALERTS))
    rows = []
    for name, values in (
        ("bridge: publish -> alert sink -> webhook received", latencies),
        ("baseline: bare aiohttp POST to the same receiver", baseline),
    ):
        rows.append([name, percentile(values, 0.5) * 1e3, percentile(values, 0.99) * 1e3])
    base50 = rows[1][1]
    rows[0].append(rows[0][1] / base50)
    rows[1].append(1.0)
    return table(
        f"Alert latency on loopback ({len(latencies)} alerts, one at a time)",
        ["path", "p50 ms", "p99 ms", "p50 x baseline"],
        rows,
    )


if __name__ == "__main__":
    print(run())
