"""Alert latency, outbox and webhook delivery figures.

    .venv/bin/python -m bench.alerts [--alerts 2000] [--fail 0.5]

- ``latency`` (what ``python -m bench`` shows): ``bus.publish`` of one SystemAlert at a time to
  the webhook POST received by a loopback receiver, p50/p99, with the receiver's grouping wait at
  0; the baseline, measured in the same run, is a bare aiohttp POST to the same receiver.

- ``outbox commit``: ``AlertStore.apply`` of one new alert at a time, one fsync'd (WAL,
  synchronous=FULL) transaction each, on the state directory's file system: what bounds the
  alert stage's rate.
- ``end to end``: an in-process bridge publishes ``--alerts`` SystemAlerts to a loopback aiohttp
  receiver (grouping 20 ms, 50 per payload); time until every alert was accepted, once with a
  healthy receiver and once failing ``--fail`` of the requests (backoff 10 ms, cap 100 ms).
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import ClientSession, web
from prometheus_client import CollectorRegistry

from bench._util import argument_parser
from bridge.app import Bridge
from bridge.component import Context
from bridge.messages import SystemAlert
from bridge.settings import Settings
from bridge.sinks.alerts import AlertSink, Outbox
from bridge.sinks.alerts.sources import AlertEvent


def outbox_commits(count: int, directory: Path) -> list[float]:
    """Seconds per apply() of one new alert."""
    outbox = Outbox.in_dir(directory, urls=["http://127.0.0.1:9/hook"])
    now = datetime.now(UTC)
    times = []
    for n in range(count):
        event = AlertEvent(
            f"bench-{n}", "bench", "firing", "critical", "system", "n1", "t", "d", True, now
        )
        started = time.perf_counter()
        outbox.alerts.apply([event], time.time())
        times.append(time.perf_counter() - started)
    outbox.close()
    return times


async def end_to_end(count: int, fail: float, directory: Path) -> tuple[float, int]:
    """Seconds until ``count`` alerts were accepted, and the requests it took."""
    accepted: set[str] = set()
    everything = asyncio.Event()
    requests = 0
    chance = random.Random(7)

    async def hook(request: web.Request) -> web.Response:
        nonlocal requests
        requests += 1
        body = json.loads(await request.read())
        if chance.random() < fail:
            return web.Response(status=503)
        accepted.update(a["labels"]["alert_id"] for a in body["alerts"])
        if len(accepted) >= count:
            everything.set()
        return web.Response(status=200)

    runner, port = await _receiver(hook)
    settings = Settings(
        **{  # type: ignore[arg-type]
            "EXESDB_STATE_DIR": str(directory),
            "EXESDB_WEBHOOK_URLS": f"http://127.0.0.1:{port}/hook",
            "EXESDB_WEBHOOK_GROUP_WAIT_MS": "20",
            "EXESDB_WEBHOOK_MAX_ALERTS": "50",
            "EXESDB_WEBHOOK_BACKOFF_MS": "10",
            "EXESDB_WEBHOOK_MAX_BACKOFF_MS": "100",
        }
    )
    bridge = await _alerting_bridge(settings)
    started = time.perf_counter()
    for n in range(count):
        bridge.bus.publish("bench", _alert(f"e2e-{n}"))
    await everything.wait()
    elapsed = time.perf_counter() - started
    await bridge.aclose()
    await runner.cleanup()
    return elapsed, requests


async def latency(count: int, directory: Path) -> tuple[list[float], list[float]]:
    """Seconds from publish to webhook received, per alert; and the bare-POST baseline."""
    arrived: dict[str, float] = {}
    changed = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        now = time.perf_counter()
        try:
            ids = [a["labels"]["alert_id"] for a in json.loads(body)["alerts"]]
        except (ValueError, KeyError, TypeError):
            ids = [body.decode(errors="replace")]  # the baseline's plain-text POST
        for alert_id in ids:
            arrived.setdefault(alert_id, now)
        changed.set()
        return web.Response(status=200)

    async def arrival(alert_id: str) -> float:
        async with asyncio.timeout(10):
            while alert_id not in arrived:
                changed.clear()
                await changed.wait()
        return arrived.pop(alert_id)

    runner, port = await _receiver(hook)
    url = f"http://127.0.0.1:{port}/hook"
    settings = Settings(
        **{  # type: ignore[arg-type]
            "EXESDB_STATE_DIR": str(directory),
            "EXESDB_WEBHOOK_URLS": url,
            "EXESDB_WEBHOOK_GROUP_WAIT_MS": "0",
            "EXESDB_WEBHOOK_MIN_SEVERITY": "info",
        }
    )
    bridge = await _alerting_bridge(settings)
    published: list[float] = []
    bare: list[float] = []
    try:
        async with ClientSession() as session:
            for n in range(count):
                marker = f"bare-{n}"
                started = time.perf_counter()
                async with session.post(url, data=marker.encode()) as response:
                    await response.read()
                bare.append(await arrival(marker) - started)

                alert_id = f"latency-{n}"
                started = time.perf_counter()
                bridge.bus.publish("bench", _alert(alert_id))
                published.append(await arrival(alert_id) - started)
    finally:
        await bridge.aclose()
        await runner.cleanup()
    return published, bare


async def _receiver(
    hook: Callable[[web.Request], Awaitable[web.Response]],
) -> tuple[web.AppRunner, int]:
    """A loopback aiohttp server answering POST /hook with ``hook``: its runner (to clean up)
    and its port."""
    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port: int = runner.addresses[0][1]
    return runner, port


async def _alerting_bridge(settings: Settings) -> Bridge:
    """An in-process bridge, started, whose one component is the alert sink."""

    def sink(context: Context) -> AlertSink:
        return AlertSink(
            context.settings,
            bus=context.bus,
            publish=context.integration.publish,
            registry=context.registry,
        )

    bridge = Bridge(settings, registry=CollectorRegistry(), components=[sink])
    await bridge.start(serve_http=False)
    return bridge


def _alert(alert_id: str) -> SystemAlert:
    """A critical SystemAlert, ``alert_id`` its id."""
    return SystemAlert(
        alert_id=alert_id,
        severity="critical",
        category="system",
        title="t",
        description="d",
        source="bench",
        node="n1",
    )


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(*, quick: bool = False) -> str:
    """The tables ``python -m bench`` prints: latency, then outbox and delivery rates."""
    from bench._util import table

    count = 50 if quick else 200
    with tempfile.TemporaryDirectory(prefix="exesdb-bench-alerts-") as scratch:
        published, bare = asyncio.run(latency(count, Path(scratch) / "latency"))
        times = outbox_commits(count, Path(scratch) / "commits")
        seconds, requests = asyncio.run(end_to_end(count * 2, 0.0, Path(scratch) / "e2e"))
    p50, p99 = _quantile(published, 0.5), _quantile(published, 0.99)
    b50, b99 = _quantile(bare, 0.5), _quantile(bare, 0.99)
    text = table(
        f"Alert latency on loopback ({count} alerts, one at a time, grouping wait 0)",
        ["path", "p50 ms", "p99 ms", "p50 x baseline"],
        [
            [
                "bridge: bus.publish -> alert sink -> webhook received",
                p50 * 1e3,
                p99 * 1e3,
                p50 / b50,
            ],
            ["baseline: bare aiohttp POST to the same receiver", b50 * 1e3, b99 * 1e3, 1.0],
        ],
    )
    return (
        text
        + "\n"
        + table(
            "Alert stage rates",
            ["figure", "value"],
            [
                ["outbox commit (fsync'd), alerts/s", len(times) / sum(times)],
                ["outbox commit p99 ms", _quantile(times, 0.99) * 1e3],
                [f"end to end, {count * 2} alerts (grouping 20 ms), alerts/s", count * 2 / seconds],
                ["webhook requests it took", requests],
            ],
        )
    )


def main() -> None:
    """Run and print the figures."""
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--fail", type=float, default=0.5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=".") as scratch:
        times = outbox_commits(args.alerts, Path(scratch) / "commits")
        quantiles = statistics.quantiles(times, n=100)
        print(
            f"outbox commit: {len(times) / sum(times):,.0f} alerts/s; "
            f"p50 {quantiles[49] * 1e3:.2f} ms, p99 {quantiles[98] * 1e3:.2f} ms"
        )
        for fail in (0.0, args.fail):
            seconds, requests = asyncio.run(
                end_to_end(args.alerts, fail, Path(scratch) / f"e2e-{fail}")
            )
            print(
                f"end to end, {fail:.0%} failing: {args.alerts} alerts in {seconds:.2f} s "
                f"({args.alerts / seconds:,.0f} alerts/s, {requests} requests)"
            )


if __name__ == "__main__":
    main()
