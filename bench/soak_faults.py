"""A soak with faults: signed ingest with alerts flowing to a webhook receiver that fails a third
of the time, for 30 minutes at 2 000 msg/s (parameters make a short run).

    .venv/bin/python -m bench.soak_faults [--seconds 1800] [--rate 2000] [--alert-share 0.01]
    make bench ARGS="--only faults --faults-seconds 1800"

A real bridge process (``EXESDB_INGEST=true``, one webhook URL) takes batches of signed NDJSON,
ten a second on a monotonic schedule; ``--alert-share`` of each batch are SystemAlerts with
distinct ids (warning: they resolve ``--resolve-seconds`` after they were last seen, so resolved
notifications flow too), the rest the metrics mix of ``bench.workload``. The receiver, an aiohttp
server in a thread of this process, answers 500 to a seeded third of the deliveries; the bridge
retries them (backoff 200 ms, at most 2 s). The table shows RSS, open descriptors and the outbox
(``exesdb_webhook_outbox_depth``, dead letters) at the start, half way, at the end of the load
and once the outbox drained, and alerts accepted (answered 202) against alerts delivered: their
firing notification answered 2xx, or, for an alert that fired and resolved while the receiver's
grouping window was held behind a failing delivery, its resolve alone (docs/alerts.md, Delivery:
the window then carries each alert as it stands, so the receiver never hears it fire).
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from bench._util import (
    ROOT,
    BridgeProcess,
    argument_parser,
    free_port,
    http_get,
    median,
    table,
)
from bench.workload import Source, now_ts, sign_header

BATCHES_PER_SECOND: Final = 10
QUIET: Final = {
    f"EXESDB_{resource}_{status}": "100"
    for resource in ("CPU", "MEMORY", "DISK")
    for status in ("DEGRADED", "UNHEALTHY")
}


class FlakyReceiver:
    """A webhook receiver failing a seeded share of deliveries, recording what it accepted."""

    def __init__(self, fail: float, seed: int = 7) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._fail = fail
        self._chance = random.Random(seed)
        self._lock = threading.Lock()
        self.requests = 0
        self.failed = 0
        self.firing: set[str] = set()
        self.resolved: set[str] = set()
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="receiver", daemon=True)

    def __enter__(self) -> FlakyReceiver:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the webhook receiver did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _serve(self) -> None:
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/hook", self._hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        with self._lock:
            self.requests += 1
            if self._chance.random() < self._fail:
                self.failed += 1
                return web.Response(status=500)
            for alert in body["alerts"]:
                alert_id = alert["labels"]["alert_id"]
                (self.firing if alert["status"] == "firing" else self.resolved).add(alert_id)
        return web.Response(status=200)

    def delivered(self, prefix: str) -> tuple[int, int, int]:
        """Distinct alerts the receiver was told of (their firing, or their resolve alone,
        accepted), whose resolved notification it accepted, and of which that alone."""
        with self._lock:
            firing = {a for a in self.firing if a.startswith(prefix)}
            resolved = {a for a in self.resolved if a.startswith(prefix)}
            return len(firing | resolved), len(resolved), len(resolved - firing)


@dataclass(frozen=True, slots=True)
class Sample:
    """The bridge at one moment."""

    elapsed: float
    rss_mib: float
    descriptors: int
    outbox: float
    dead: float
    accepted: int
    delivered: int
    resolved: int


def _alert(message_id: str, ts: str, alert_id: str) -> bytes:
    payload = (
        f'{{"timestamp":"{ts}","alert_id":"{alert_id}","severity":"warning",'
        f'"category":"system","title":"soak alert {alert_id}","description":"a soak alert",'
        f'"source":"bench","node":"node1@bench"}}'
    )
    return (
        f'{{"v":1,"id":"{message_id}","instance":"ex_esdb_alerts","topic":"soak_alert",'
        f'"tag":"system_alert","node":"node1@bench","ts":"{ts}","payload":{payload}}}'
    ).encode()


def _metric(bridge: BridgeProcess, name: str) -> float:
    """``name``'s value on ``bridge``'s /metrics, summed over its label sets (the dead letters
    come by ``state``); NaN when it has no sample."""
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in http_get(bridge.url + "/metrics")[1].decode().splitlines()
        if line.startswith((name + " ", name + "{"))
    ]
    return sum(values) if values else float("nan")


def run(
    *,
    seconds: float = 1_800.0,
    rate: int = 2_000,
    alert_share: float = 0.01,
    fail: float = 1 / 3,
    resolve_seconds: float = 60.0,
    drain_seconds: float = 120.0,
) -> str:
    """Hold ``rate`` messages/s for ``seconds`` with alerts and a flaky receiver; the table."""
    source = Source()
    batch = max(1, rate // BATCHES_PER_SECOND)
    alerts_per_batch = max(1, round(batch * alert_share))
    interval = 1.0 / BATCHES_PER_SECOND
    prefix = f"soak-{os.urandom(4).hex()}-"
    numbers = itertools.count()
    accepted = refused = sent = 0
    lag: list[float] = []
    samples: list[tuple[str, Sample]] = []
    with (
        FlakyReceiver(fail) as receiver,
        BridgeProcess(
            ROOT,
            EXESDB_INGEST="true",
            EXESDB_WEBHOOK_URLS=receiver.url,
            EXESDB_WEBHOOK_BACKOFF_MS="200",
            EXESDB_WEBHOOK_MAX_BACKOFF_MS="2000",
            EXESDB_ALERT_RESOLVE_TIMEOUT_MS=str(int(resolve_seconds * 1000)),
            **QUIET,
        ) as bridge,
    ):

        def sample(label: str, elapsed: float) -> None:
            stat = bridge.stat()
            told, resolved, _ = receiver.delivered(prefix)
            samples.append(
                (
                    label,
                    Sample(
                        elapsed,
                        stat.rss_bytes / 2**20,
                        len(os.listdir(f"/proc/{bridge.pid}/fd")),
                        _metric(bridge, "exesdb_webhook_outbox_depth"),
                        _metric(bridge, "exesdb_webhook_dead_letters"),
                        accepted,
                        told,
                        resolved,
                    ),
                )
            )

        connection = http.client.HTTPConnection("127.0.0.1", bridge.port, timeout=30)
        started = time.monotonic()
        sample("start", 0.0)
        next_send = started
        halfway = False
        while (now := time.monotonic()) - started < seconds:
            if not halfway and now - started >= seconds / 2:
                halfway = True
                sample("half way", now - started)
            if now < next_send:
                time.sleep(next_send - now)
                continue
            lag.append(now - next_send)
            ts = now_ts()
            ids = [f"{prefix}{next(numbers)}" for _ in range(alerts_per_batch)]
            lines = source.envelopes(batch - alerts_per_batch)
            lines += [_alert(f"{prefix}m{a}", ts, a) for a in ids]
            body = b"\n".join(lines) + b"\n"
            connection.request(
                "POST",
                "/v1/messages",
                body,
                {"Content-Type": "application/x-ndjson", "X-ExESDB-Signature": sign_header(body)},
            )
            response = connection.getresponse()
            response.read()
            if response.status == 202:
                accepted += len(ids)
            else:
                refused += 1
            sent += batch
            next_send += interval
        elapsed = time.monotonic() - started
        connection.close()
        sample("end of load", elapsed)
        deadline = time.monotonic() + drain_seconds
        while time.monotonic() < deadline:
            if (
                receiver.delivered(prefix)[0] >= accepted
                and _metric(bridge, "exesdb_webhook_outbox_depth") == 0
            ):
                break
            time.sleep(0.5)
        sample("drained", time.monotonic() - started)
        requests, failed = receiver.requests, receiver.failed
        resolve_alone = receiver.delivered(prefix)[2]
    rows = [
        [label, s.elapsed, s.rss_mib, s.descriptors, s.outbox, s.dead, s.accepted, s.delivered]
        for label, s in samples
    ]
    final = samples[-1][1]
    title = (
        f"Soak with faults: {sent / elapsed:,.0f} msgs/s achieved (target {rate:,}) for "
        f"{elapsed:.0f} s, {alerts_per_batch * BATCHES_PER_SECOND} alerts/s; receiver failed "
        f"{failed} of {requests} deliveries; {refused} batch(es) refused; median send lag "
        f"{median(lag) * 1e3:.1f} ms"
    )
    text = table(
        title,
        ["when", "t (s)", "RSS MiB", "fds", "outbox", "dead", "alerts accepted", "delivered"],
        rows,
    )
    lost = final.accepted - final.delivered
    return text + (
        f"\nAlerts accepted {final.accepted:,}, delivered {final.delivered:,} "
        f"({lost:,} not yet; {resolve_alone:,} as their resolve alone), resolved notifications "
        f"delivered {final.resolved:,}; "
        f"RSS {samples[-1][1].rss_mib - samples[0][1].rss_mib:+.1f} MiB over the run\n"
    )


if __name__ == "__main__":
    parser = argument_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=1_800.0)
    parser.add_argument("--rate", type=int, default=2_000)
    parser.add_argument("--alert-share", type=float, default=0.01)
    parser.add_argument("--fail", type=float, default=1 / 3)
    parser.add_argument("--resolve-seconds", type=float, default=60.0)
    args = parser.parse_args()
    print(
        run(
            seconds=args.seconds,
            rate=args.rate,
            alert_share=args.alert_share,
            fail=args.fail,
            resolve_seconds=args.resolve_seconds,
        )
    )
