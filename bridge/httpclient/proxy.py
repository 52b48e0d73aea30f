"""``no_proxy``: which hosts skip ``proxy_url``, matched as Go's ``httpproxy`` matches them.

prometheus/common hands ``proxy_url`` and ``no_proxy`` to golang.org/x/net/http/httpproxy, so
its rules hold here: ``localhost`` and loopback addresses are never proxied once ``no_proxy`` is
set; ``*`` skips the proxy for every host; an IP address or a CIDR range matches the URL's
address; ``example.com`` matches that name and every name under it, ``.example.com`` (or
``*.example.com``) only the names under it; an entry with ``:port`` matches that port only (a URL
without one has its scheme's). Entries are separated by commas; case does not matter.
"""

from __future__ import annotations

import ipaddress
from typing import Final
from urllib.parse import urlsplit

__all__ = ["bypasses_proxy"]

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def bypasses_proxy(url: str, no_proxy: str) -> bool:
    """True when a request to ``url`` goes straight to it rather than through the proxy."""
    if not no_proxy.strip():
        return False
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        port = None
    address = _address(host)
    if host == "localhost" or (address is not None and address.is_loopback):
        return True
    return any(
        _matches(entry.strip().lower(), host, port, address) for entry in no_proxy.split(",")
    )


def _address(text: str) -> _Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _matches(entry: str, host: str, port: int | None, address: _Address | None) -> bool:
    if not entry:
        return False
    if entry == "*":
        return True
    if "/" in entry:
        try:
            return address is not None and address in ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False
    name, wanted_port = _split_port(entry)
    if wanted_port is not None and wanted_port != port:
        return False
    entry_address = _address(name)
    if entry_address is not None:
        return entry_address == address
    if name.startswith("*."):
        name = name[1:]
    if name.startswith("."):
        return host.endswith(name)
    return host == name or host.endswith("." + name)


def _split_port(entry: str) -> tuple[str, int | None]:
    """(host, port) of ``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    if entry.startswith("["):
        name, _, rest = entry[1:].partition("]")
        port_text = rest.removeprefix(":")
        return name, int(port_text) if port_text.isdigit() else None
    if entry.count(":") == 1:
        name, _, port_text = entry.partition(":")
        return name, int(port_text) if port_text.isdigit() else None
    return entry, None
