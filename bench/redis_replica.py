"""One bridge replica on the Redis bus for ``bench.redis_bus``, driven over stdin, one per process.

    python bench/redis_replica.py URL NODE [--components default] [--claim-idle-ms N]
                                           [--gc settled|default]

Runs a ``Bridge`` (the production Redis transport from its settings) with a batch subscriber on
the fan-out (every message) and one on the work queue (the alert stage's instances, read only
while holding the lease). Commands, one per line on stdin, each answered with one JSON line on
stdout: ``reset`` (forget what was counted), ``stats`` (counts, first and last receipt times,
publish-to-receipt latency percentiles, whether ready and holding the lease), ``receipts PATH``
(each message's id and receipt time since the reset, written to PATH as JSON), ``quit``.

Self-contained (imports only ``bridge``): ``bench.redis_bus`` runs it against other revisions'
trees too, with that tree first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from bench._util import argument_parser
from bridge.app import Bridge, build_transport, default_components
from bridge.bus import WORK_QUEUE_INSTANCES, Envelope
from bridge.settings import Settings

SECRET = "bench-secret-key-base-with-at-least-32-characters"


class _GcClock:
    """CPU seconds spent in the garbage collector (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds += time.process_time() - self._started


class _Tally:
    """What one subscriber received since the last reset."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None
        self.latencies: list[float] = []
        # Ids and receipt times, flat: strings and floats the garbage collector never scans.
        self.ids: list[str] = []
        self.receipts: list[float] = []

    def take(self, envelopes: Sequence[Envelope]) -> None:
        now = time.time()
        if self.first is None:
            self.first = now
        self.last = now
        self.count += len(envelopes)
        self.latencies.extend([now - envelope.unix_ts for envelope in envelopes])
        self.ids.extend([envelope.id for envelope in envelopes])
        self.receipts.extend([now] * len(envelopes))

    def stats(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def at(share: float) -> float | None:
            return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else None

        return {
            "count": self.count,
            "first": self.first,
            "last": self.last,
            "p50": at(0.50),
            "p99": at(0.99),
        }


async def _main(args: argparse.Namespace) -> None:
    state = tempfile.TemporaryDirectory(prefix="exesdb-bench-replica-")
    env = {
        "EXESDB_BUS": args.url,
        "SECRET_KEY_BASE": SECRET,
        "EXESDB_NODE": args.node,
        "EXESDB_REDIS_CLAIM_IDLE_MS": str(args.claim_idle_ms),
        "EXESDB_STATE_DIR": state.name,
        "EXESDB_HTTP_ADDR": "127.0.0.1:0",
    }
    for resource in ("CPU", "MEMORY", "DISK"):
        env[f"EXESDB_{resource}_DEGRADED"] = "100"
        env[f"EXESDB_{resource}_UNHEALTHY"] = "100"
    settings = Settings(**env)
    registry = CollectorRegistry()
    bridge = Bridge(
        settings,
        registry=registry,
        transport=build_transport(settings, registry),
        components=default_components() if args.components == "default" else [],
    )
    fanout, work = _Tally(), _Tally()
    collector = _GcClock()
    bridge.bus.subscribe("bench-fanout", fanout.take, batch=True, queue_size=4_000_000)
    bridge.bus.subscribe(
        "bench-work",
        work.take,
        instances=sorted(WORK_QUEUE_INSTANCES),
        group=True,
        batch=True,
        queue_size=4_000_000,
    )
    await bridge.start(serve_http=False)
    if args.gc == "settled":
        # As ``exesdb-bridge run`` does once started (``bridge/cli/service.py``): what start-up
        # built is frozen out of the collector's sight, and collections come far less often.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
    lease = bridge.context.capabilities.lease
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def answer(command: str) -> dict[str, Any]:
        if command == "reset":
            fanout.reset()
            work.reset()
        elif command.startswith("receipts "):
            with open(command.split(" ", 1)[1], "w") as out:
                json.dump({"fanout": [fanout.ids, fanout.receipts, fanout.latencies]}, out)
        elif command == "quit":
            done.set()
        return {
            "ready": bridge.bus.readiness() is None,
            "leading": bool(lease is not None and lease.leading),
            "fanout": fanout.stats(),
            "work": work.stats(),
            "gc_seconds": collector.seconds,
        }

    def read_commands() -> None:
        for line in sys.stdin:
            command = line.strip()
            reply = asyncio.run_coroutine_threadsafe(_on_loop(answer, command), loop).result()
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
            if command == "quit":
                return
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=read_commands, name="commands", daemon=True).start()
    await done.wait()
    await bridge.aclose()
    state.cleanup()


async def _on_loop(answer: Any, command: str) -> dict[str, Any]:
    result: dict[str, Any] = answer(command)
    return result


def main() -> None:
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("node")
    parser.add_argument("--components", choices=["none", "default"], default="none")
    parser.add_argument("--claim-idle-ms", type=int, default=10_000)
    parser.add_argument("--gc", choices=["settled", "default"], default="settled")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
