"""How the client commands find the addresses of the bridge's host: every one, as curl finds them.

``localhost``, and any name under it (``bridge.localhost``), is both loopback addresses, ``::1``
then ``127.0.0.1``, without asking the system (RFC 6761 section 6.3, as curl does): /etc/hosts
may list ``127.0.0.1`` alone, and a bridge told ``EXESDB_HTTP_ADDR=[::1]:9570`` listens on
``::1`` alone. Any other name is every address ``getaddrinfo`` gives, its IPv6 ones kept on a
host whose only IPv6 address is loopback (aiohttp's own resolver asks with ``AI_ADDRCONFIG``,
which drops them there). The connector tries the addresses in turn, so an address nothing
listens on is passed over at once.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Final

from aiohttp.abc import AbstractResolver, ResolveResult

__all__ = ["EveryAddress"]

# RFC 6724's order, which getaddrinfo gives for a name listed with both.
_LOOPBACK: Final = (("::1", socket.AF_INET6), ("127.0.0.1", socket.AF_INET))
# What the connector is told of an address it is given: a number, not a name to look up again.
_NUMERIC: Final = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


def _is_localhost(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def _numeric(kind: int, address: tuple[Any, ...]) -> str:
    """The address as the connector takes it: a link-local IPv6 one with its scope
    (``fe80::1%2``), which getaddrinfo gives apart."""
    if kind == socket.AF_INET6 and address[3]:
        return f"{address[0]}%{address[3]}"
    return str(address[0])


class EveryAddress(AbstractResolver):
    """An aiohttp resolver: every address a name has, and both loopback ones for ``localhost``."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        """Every address of ``host`` of ``family`` (AF_UNSPEC: of either); OSError
        (``socket.gaierror``) when it has none."""
        if _is_localhost(host):
            found = [(address, kind) for address, kind in _LOOPBACK if family in (0, kind)]
        else:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, family=family, type=socket.SOCK_STREAM
            )
            found = [
                (_numeric(kind, address), kind)
                for kind, _type, _proto, _name, address in infos
                if kind in (socket.AF_INET, socket.AF_INET6)
            ]
        return [
            ResolveResult(
                hostname=host, host=address, port=port, family=kind, proto=0, flags=_NUMERIC
            )
            for address, kind in dict.fromkeys(found)
        ]

    async def close(self) -> None:
        """Nothing to release: each lookup is its own."""
