"""Every address of the bridge's host, in the order to try them, as curl finds them.

``localhost``, and any name under it (``bridge.localhost``), is both loopback addresses, ``::1``
then ``127.0.0.1``, without asking the system (RFC 6761 section 6.3, as curl does): /etc/hosts
may list ``127.0.0.1`` alone, and a bridge told ``EXESDB_HTTP_ADDR=[::1]:9570`` listens on
``::1`` alone. Any other name is every address ``getaddrinfo`` gives, its IPv6 ones kept on a
host whose only IPv6 address is loopback (aiohttp's own resolver asks with ``AI_ADDRCONFIG``,
which drops them there). ``bridge.cli.exchange`` tries them in turn, so one nothing listens on
is passed over at once.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any, Final

__all__ = ["every_address"]

# RFC 6724's order, which getaddrinfo gives for a name listed with both.
_LOOPBACK: Final = (("::1", socket.AF_INET6), ("127.0.0.1", socket.AF_INET))
# What getaddrinfo gives: (family, type, proto, canonical name, socket address).
_AddrInfo = tuple[Any, Any, Any, Any, tuple[Any, ...]]


def _is_localhost(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a name under it."""
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def _found(infos: Iterable[_AddrInfo]) -> list[tuple[int, tuple[Any, ...]]]:
    """The IPv4 and IPv6 addresses among getaddrinfo's ``infos``, each once, in its order."""
    kept = (
        (kind, address)
        for kind, _type, _proto, _name, address in infos
        if kind in (socket.AF_INET, socket.AF_INET6)
    )
    return list(dict.fromkeys(kept))


def every_address(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
    """Every (family, socket address) of ``host`` to try, in order (OSError,
    ``socket.gaierror``, when it has none)."""
    if _is_localhost(host):
        return [
            (kind, (address, port, 0, 0) if kind == socket.AF_INET6 else (address, port))
            for address, kind in _LOOPBACK
        ]
    return _found(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
