"""A /metrics scrape over HTTPS with basic auth: with the memory of successful checks, and without.

    .venv/bin/python -m bench.web_auth [--scrapes 40]

Three servers in this process, each a bridge (no components) behind a web config file with TLS,
on loopback: without users (the baseline: TLS only), with a user whose bcrypt hash has cost 10
(the toolkit's example, ~70 ms on its reference machine) and the bridge's memory of successful
checks, and the same with that memory off (``cache_size=0``: bcrypt on every scrape). A client
scrapes ``/metrics`` one request at a time over one kept-alive TLS connection, as Prometheus
does; the table gives the median and p90 wall time per scrape and the ratio to the baseline.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import tempfile
import time
from pathlib import Path
from typing import Final

import bcrypt
import trustme
from aiohttp import ClientSession, TCPConnector, web

from bench._util import argument_parser, median, table
from bridge.app import Bridge
from bridge.http import build_app
from bridge.settings import Settings
from bridge.webconfig import LiveWebConfig, install
from bridge.webconfig.loading import judge

COST: Final = 10
PASSWORD: Final = "bench-password"


async def _scrapes(
    url: str, context: ssl.SSLContext, headers: dict[str, str], n: int
) -> list[float]:
    times = []
    async with ClientSession(connector=TCPConnector(ssl=context, limit=1)) as session:
        for _ in range(n + 1):
            started = time.perf_counter()
            async with session.get(url, headers=headers) as response:
                await response.read()
                assert response.status == 200, response.status
            times.append(time.perf_counter() - started)
    return times[1:]  # the first pays the handshake


async def _measure(
    folder: Path, users: str, cache_size: int, headers: dict[str, str], n: int, ca: trustme.CA
) -> list[float]:
    config = folder / f"web-{cache_size}-{bool(users)}.yml"
    config.write_text(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n" + users
    )
    bridge = Bridge(Settings(EXESDB_NODE="bench", EXESDB_STATE_DIR=str(folder)), components=[])
    app = build_app(bridge)
    live = LiveWebConfig(judge(config), cache_size=cache_size)
    install(app, live)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=live.ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    client = ssl.create_default_context()
    ca.configure_trust(client)
    try:
        return await _scrapes(f"https://127.0.0.1:{port}/metrics", client, headers, n)
    finally:
        await runner.cleanup()


async def _run(scrapes: int) -> str:
    with tempfile.TemporaryDirectory(prefix="exesdb-bench-") as name:
        folder = Path(name)
        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1")
        leaf.cert_chain_pems[0].write_to_path(str(folder / "server.pem"))
        leaf.private_key_pem.write_to_path(str(folder / "server.key"))
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(COST)).decode()
        users = f"basic_auth_users:\n  prometheus: {hashed}\n"
        credentials = base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
        auth = {"Authorization": f"Basic {credentials}"}
        baseline = await _measure(folder, "", 100, {}, scrapes, ca)
        cached = await _measure(folder, users, 100, auth, scrapes, ca)
        uncached = await _measure(folder, users, 0, auth, scrapes, ca)
    base = median(baseline)
    rows = [
        [
            label,
            median(times) * 1e3,
            sorted(times)[int(len(times) * 0.9)] * 1e3,
            median(times) / base,
        ]
        for label, times in (
            ("TLS, no basic auth (baseline)", baseline),
            ("TLS + basic auth, successes remembered", cached),
            ("TLS + basic auth, bcrypt every scrape", uncached),
        )
    ]
    return table(
        f"/metrics over HTTPS, one kept-alive connection ({scrapes} scrapes each, bcrypt cost "
        f"{COST}; wall ms)",
        ["server", "median", "p90", "x baseline"],
        rows,
    )


def run(*, quick: bool = False) -> str:
    """The table (``quick``: fewer scrapes)."""
    return asyncio.run(_run(15 if quick else 40))


def main() -> None:
    parser = argument_parser(__doc__, prog="python -m bench.web_auth")
    parser.add_argument("--scrapes", type=int, default=40)
    args = parser.parse_args()
    print(asyncio.run(_run(args.scrapes)))


if __name__ == "__main__":
    main()
