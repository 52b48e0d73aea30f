"""How aiohttp finds the addresses of the bridge's host for the client commands: every one.

The addresses are ``bridge.cli.addresses``' (both loopback ones for ``localhost``, every one
``getaddrinfo`` gives for any other name), asked without blocking the event loop; the connector
tries them in turn.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Final

from aiohttp.abc import AbstractResolver, ResolveResult

from bridge.cli.addresses import LOOPBACK, found, is_localhost, numeric

__all__ = ["EveryAddress"]

# What the connector is told of an address it is given: a number, not a name to look up again.
_NUMERIC: Final = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


class EveryAddress(AbstractResolver):
    """An aiohttp resolver: every address a name has, and both loopback ones for ``localhost``."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        """Every address of ``host`` of ``family`` (AF_UNSPEC: of either); OSError
        (``socket.gaierror``) when it has none."""
        addresses: list[tuple[str, int]]
        if is_localhost(host):
            addresses = [(address, kind) for address, kind in LOOPBACK if family in (0, kind)]
        else:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, family=family, type=socket.SOCK_STREAM
            )
            addresses = [(numeric(kind, address), kind) for kind, address in found(infos)]
        return [
            ResolveResult(
                hostname=host, host=address, port=port, family=kind, proto=0, flags=_NUMERIC
            )
            for address, kind in dict.fromkeys(addresses)
        ]

    async def close(self) -> None:
        """Nothing to release: each lookup is its own."""
