"""A flood of wrong basic-auth passwords, each one new, over many connections until killed.

``python -m tests.webconfig.flood URL CA_FILE USER CONNECTIONS SOURCE_ADDRESS``: each connection
asks ``URL`` again and again, from ``SOURCE_ADDRESS`` (another loopback address, as another host
would), with a password never sent before, so that no remembered outcome answers it, again as
soon as it is answered (after the ``Retry-After`` of an answer that has one).
"""

from __future__ import annotations

import asyncio
import ssl
import sys

import aiohttp

from tests.webconfig.files import basic


async def _connection(url: str, context: ssl.SSLContext, user: str, source: str, n: int) -> None:
    connector = aiohttp.TCPConnector(ssl=context, local_addr=(source, 0), limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        for attempt in range(sys.maxsize):
            headers = {"Authorization": basic(user, f"wrong-{n}-{attempt}")}
            try:
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    # Told to wait, it waits (as Prometheus does till its next scrape): a client
                    # that does not costs the bridge a 429 a request, which rate_limit bounds.
                    told = float(response.headers.get("Retry-After", 0))
                    await asyncio.sleep(told)  # the Retry-After told, as Prometheus waits
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)  # the bridge refused the connection: not a busy loop


async def _flood(url: str, ca_file: str, user: str, connections: int, source: str) -> None:
    context = ssl.create_default_context(cafile=ca_file)
    await asyncio.gather(*(_connection(url, context, user, source, n) for n in range(connections)))


if __name__ == "__main__":
    url, ca_file, user, connections, source = sys.argv[1:]
    asyncio.run(_flood(url, ca_file, user, int(connections), source))
