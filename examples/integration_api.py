"""Run a bridge inside your application, broadcast health, metrics and an alert, read /metrics.

    .venv/bin/python examples/integration_api.py   # the virtualenv `make run` makes

Its bridge keeps apart from any you run from the same shell: it listens on a free port of
127.0.0.1, keeps its state in a temporary folder, uses the in-process bus and sends its made-up
alert to no webhook receiver or Alertmanager, whatever EXESDB_HTTP_ADDR, EXESDB_STATE_DIR,
EXESDB_BUS and the receiver settings say; every other setting is read from the environment as
`exesdb-bridge run` reads it, and a bad one stops it as it stops `run`: each problem on a line,
exit 2. The integration API is described in docs/integration.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import urllib.request
from typing import Final

import bridge.integration as exesdb
from bridge.app import Bridge
from bridge.config import load_settings
from bridge.errors import ConfigError
from bridge.urls import own_url

# The shell may be set up for a bridge running beside this one (README: EXESDB_HTTP_ADDR exported).
OWN_SETTINGS: Final = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_BUS": "memory"}  # port 0: free
NO_RECEIVERS: Final = (
    "EXESDB_WEBHOOK_URLS",
    "EXESDB_WEBHOOK_CONFIG_FILE",
    "EXESDB_ALERTMANAGER_URL",
)


def scrape(url: str) -> list[str]:
    """The series of GET /metrics that the broadcasts below produce."""
    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
    return [
        line
        for line in text.splitlines()
        if '"orders' in line or line.startswith("exesdb_alerts_total{")
    ]


async def main(state_dir: str) -> None:
    os.environ.update(OWN_SETTINGS, EXESDB_STATE_DIR=state_dir)
    for name in NO_RECEIVERS:
        os.environ.pop(name, None)
    bridge = Bridge(load_settings())
    await bridge.start()  # also installs the bridge's integration: the functions below publish
    try:
        assert bridge.address is not None
        metrics_url = own_url(*bridge.address) + "/metrics"
        print("bridge at", metrics_url)

        # Each broadcast returns a PublishResult; bad arguments raise ValueError naming the field.
        print(exesdb.broadcast_health_update("orders_store", "degraded", {"reason": "slow disk"}))
        print(exesdb.broadcast_metrics("orders", {"latency_ms": 12.5, "queue_depth_count": 3}))
        print(exesdb.broadcast_alert("disk_full", "critical", "Disk full", {"node": "node2"}))

        # The sinks take the messages off the bus in the background: wait until /metrics shows
        # all three (a few milliseconds), for at most five seconds.
        deadline = time.monotonic() + 5
        lines = await asyncio.to_thread(scrape, metrics_url)
        while len({line.split("{")[0] for line in lines}) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            lines = await asyncio.to_thread(scrape, metrics_url)
        print("\n".join(lines))
    finally:
        await bridge.aclose()  # drains the bus, closes the outbox, uninstalls the integration


if __name__ == "__main__":
    # It takes no arguments: --help prints the docstring above, and any other argument is a
    # usage error, where the program would start a bridge whatever was asked of it.
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    with tempfile.TemporaryDirectory(prefix="exesdb-example-") as state:
        try:
            asyncio.run(main(state))
        except ConfigError as exc:
            # A bad setting in the environment (EXESDB_INGEST=true without SECRET_KEY_BASE, say):
            # one line per problem, after the program's name, as `exesdb-bridge run` says them
            # before it exits 2.
            print(f"{os.path.basename(sys.argv[0])}: bad configuration:", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
            sys.exit(2)
