"""The idle cost of a bridge at default intervals (no OTLP): CPU percent and RSS.

The bridge and a baseline process run side by side for the same window: the baseline is a bare
interpreter that imported the same libraries (aiohttp, prometheus_client, pydantic) and sleeps in
an asyncio loop, so the table shows what the bridge itself adds.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Final

from bench._util import BridgeProcess, proc_stat, table

CPU_TARGET_PERCENT: Final = 1.0
RSS_TARGET_MB: Final = 80.0
_BASELINE: Final = (
    "import asyncio, aiohttp.web, prometheus_client, pydantic, pydantic_settings\n"
    "asyncio.run(asyncio.sleep(3600))\n"
)


def run(*, seconds: float = 25.0, warmup: float = 3.0) -> str:
    """Measure ``seconds`` of idling after ``warmup``; the table."""
    baseline = subprocess.Popen([sys.executable, "-c", _BASELINE])
    try:
        with BridgeProcess() as bridge:
            time.sleep(warmup)
            bridge_start, base_start = bridge.stat(), proc_stat(baseline.pid)
            started = time.monotonic()
            time.sleep(seconds)
            wall = time.monotonic() - started
            bridge_end, base_end = bridge.stat(), proc_stat(baseline.pid)
            components = bridge.components()
    finally:
        baseline.terminate()
        baseline.wait(10)
    bridge_cpu = (bridge_end.cpu_seconds - bridge_start.cpu_seconds) / wall * 100
    base_cpu = (base_end.cpu_seconds - base_start.cpu_seconds) / wall * 100
    bridge_mb, base_mb = bridge_end.rss_bytes / 2**20, base_end.rss_bytes / 2**20
    return table(
        f"Idle at default intervals, no OTLP ({wall:.0f} s after {warmup:.0f} s warm-up; "
        f"components: {components})",
        ["process", "CPU %", "RSS MiB", "RSS x baseline", "target <1% and <80 MB"],
        [
            [
                "bridge (python -m bridge run)",
                bridge_cpu,
                bridge_mb,
                bridge_mb / base_mb,
                "met"
                if bridge_cpu < CPU_TARGET_PERCENT and bridge_mb * 2**20 < RSS_TARGET_MB * 1e6
                else "not met",
            ],
            ["baseline: bare interpreter, same libraries", base_cpu, base_mb, 1.0, ""],
        ],
    )


if __name__ == "__main__":
    print(run())
