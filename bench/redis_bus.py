"""The bus on Redis: publish-to-every-replica throughput and latency, and work-queue failover.

    .venv/bin/python -m bench.redis_bus [--messages 20000] [--replicas 2]

Starts a throw-away ``redis-server`` on a free loopback port and in-process bridges (no HTTP)
sharing it. Publishes ``--messages`` SystemAlerts from the first replica as fast as ``publish``
takes them, and reports: how long until every replica's fan-out subscriber had all of them
(messages per second), the median and p99 publish-to-fan-out latency of that burst, and how long
the work-queue subscribers took to have all of them; then the latency at a steady 200 messages
per second. Then stops the lease holder without handing
its lease over and times how long another replica takes to deliver an alert published after it.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time

import redis
from prometheus_client import CollectorRegistry

from bridge.app import Bridge
from bridge.bus import Envelope
from bridge.bus.redis import RedisTransport
from bridge.config import Settings
from bridge.messages import SystemAlert

SECRET = "bench-secret-key-base-with-at-least-32-characters"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Replica:
    def __init__(self, url: str, node: str, claim_idle_ms: int) -> None:
        settings = Settings(
            **{"EXESDB_BUS": url, "SECRET_KEY_BASE": SECRET, "EXESDB_NODE": node}  # type: ignore[arg-type]
        )
        registry = CollectorRegistry()
        self.transport = RedisTransport(
            url,
            node=node,
            claim_idle_ms=claim_idle_ms,
            buffer_size=1_000_000,
            registry=registry,
        )
        self.bridge = Bridge(
            settings,
            registry=registry,
            transport=self.transport,
            components=[],
        )
        self.latencies: list[float] = []
        self.taken = 0
        self.bridge.bus.subscribe("fanout", self._seen, queue_size=2_000_000)
        self.bridge.bus.subscribe(
            "work", self._take, instances=["ex_esdb_alerts"], group=True, queue_size=2_000_000
        )

    def _seen(self, envelope: Envelope) -> None:
        self.latencies.append(time.time() - envelope.unix_ts)

    def _take(self, envelope: Envelope) -> None:
        self.taken += 1


async def _until(condition, within: float) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > within:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


async def _run(url: str, messages: int, replicas: int) -> None:
    group = [_Replica(url, f"bench-{n}", 1_000) for n in range(replicas)]
    for replica in group:
        await replica.bridge.start(serve_http=False)
    await _until(lambda: all(r.bridge.bus.readiness() is None for r in group), 10)
    await _until(lambda: any(r.transport.leading for r in group), 10)
    alert = SystemAlert(
        severity="warning", category="system", title="t", description="d", source="s", node="n"
    )
    publisher = group[0].bridge.bus
    started = time.perf_counter()
    for _ in range(messages):
        publisher.publish("bench", alert)
        if _ % 1000 == 0:
            await asyncio.sleep(0)
    publish_seconds = time.perf_counter() - started
    await _until(lambda: all(len(r.latencies) >= messages for r in group), 300)
    fanout_seconds = time.perf_counter() - started
    await _until(lambda: sum(r.taken for r in group) >= messages, 300)
    work_seconds = time.perf_counter() - started
    latencies = sorted(x for r in group for x in r.latencies)
    print(f"{messages} messages, {replicas} replicas sharing one redis-server")
    print(f"  publish() calls:            {publish_seconds:7.2f} s")
    print(
        f"  all on every replica:       {fanout_seconds:7.2f} s "
        f"({messages / fanout_seconds:,.0f} msg/s per replica)"
    )
    print(f"  all taken by the work queue:{work_seconds:7.2f} s")
    print(
        f"  publish-to-fan-out latency: median {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms (includes the backlog)"
    )
    # Latency without a backlog: a steady 200 messages per second for five seconds.
    for replica in group:
        replica.latencies.clear()
    for _ in range(1000):
        publisher.publish("bench", alert)
        await asyncio.sleep(0.005)
    await _until(lambda: all(len(r.latencies) >= 1000 for r in group), 60)
    paced = sorted(x for r in group for x in r.latencies)
    print(
        f"  latency at 200 msg/s:       median {statistics.median(paced) * 1000:.1f} ms, "
        f"p99 {paced[int(len(paced) * 0.99)] * 1000:.1f} ms (publish to every replica's sink)"
    )
    # Failover: the lease holder stops without handing over (as a crash would).
    holder = next(r for r in group if r.transport.leading)
    others = [r for r in group if r is not holder]
    if others:
        holder.transport._stopping.set()
        for task in holder.transport._tasks:
            task.cancel()
        before = sum(r.taken for r in others)
        others[0].bridge.bus.publish("bench", alert)
        seconds = await _until(lambda: sum(r.taken for r in others) > before, 60)
        print(f"  failover (lease 1000 ms):   {seconds:7.2f} s until another replica delivered")
    for replica in group:
        await replica.bridge.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    port = _free_port()
    with tempfile.TemporaryDirectory() as workdir:
        server = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            client = redis.Redis(port=port)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            client.close()
            asyncio.run(_run(f"redis://127.0.0.1:{port}/0", args.messages, args.replicas))
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
