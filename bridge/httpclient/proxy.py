"""Which proxy a request takes: ``proxy_url`` and ``no_proxy``, or the environment's, as in Go.

prometheus/common hands ``proxy_url`` and ``no_proxy`` (or, with ``proxy_from_environment``,
``HTTP_PROXY``, ``HTTPS_PROXY`` and ``NO_PROXY``) to golang.org/x/net/http/httpproxy, so its
rules hold here: ``localhost`` and loopback addresses are never proxied once ``no_proxy`` is
set, nor ever with the environment's proxies; ``*`` skips the proxy for every host; an IP
address or a CIDR range matches the URL's address; ``example.com`` matches that name and every
name under it, ``.example.com`` (or ``*.example.com``) only the names under it; an entry with
``:port`` matches that port only (a URL without one has its scheme's). Entries are separated by
commas; case does not matter.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from bridge.httpclient.files import ClientSetupError
from bridge.redaction import safe_url
from bridge.urls import DEFAULT_PORTS

__all__ = ["ProxyRule"]

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class ProxyRule:
    """The proxy of each scheme (``http``, ``https``; none when absent) and the hosts that skip
    it. ``source`` names where the proxies came from, for errors."""

    by_scheme: Mapping[str, str]
    no_proxy: str = ""
    loopback_direct: bool = False
    source: str = "proxy_url"

    @classmethod
    def configured(cls, proxy_url: str | None, no_proxy: str | None) -> ProxyRule:
        """``proxy_url`` for every request but those ``no_proxy`` names."""
        if not proxy_url:
            return cls({})
        return cls({"http": proxy_url, "https": proxy_url}, no_proxy or "", bool(no_proxy))

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> ProxyRule:
        """The proxies of ``HTTP_PROXY`` / ``HTTPS_PROXY`` (or their lower-case forms) but for
        the hosts of ``NO_PROXY``, as Go's ``httpproxy.FromEnvironment`` reads them."""

        def first(*names: str) -> str:
            return next((environ[name] for name in names if environ.get(name)), "")

        by_scheme = {
            scheme: value
            for scheme, value in (
                ("http", first("HTTP_PROXY", "http_proxy")),
                ("https", first("HTTPS_PROXY", "https_proxy")),
            )
            if value
        }
        no_proxy = first("NO_PROXY", "no_proxy")
        return cls(by_scheme, no_proxy, True, "the environment's HTTP_PROXY / HTTPS_PROXY")

    def proxy_for(self, url: str) -> str | None:
        """The proxy URL a request to ``url`` goes through, None to go straight to it;
        ClientSetupError when the proxy given is no HTTP proxy URL."""
        scheme = urlsplit(url).scheme.lower()
        proxy = self.by_scheme.get(scheme)
        if not proxy or _bypassed(url, self.no_proxy, loopback_direct=self.loopback_direct):
            return None
        if "://" not in proxy:
            proxy = "http://" + proxy  # Go's reading of a bare host:port
        if urlsplit(proxy).scheme.lower() not in ("http", "https"):
            raise ClientSetupError(
                f"{self.source}: {safe_url(proxy)!r} is not an http:// or https:// proxy"
            )
        return proxy


def _bypassed(url: str, no_proxy: str, *, loopback_direct: bool) -> bool:
    if not loopback_direct and not no_proxy.strip():
        return False
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        port = None
    address = _address(host)
    if loopback_direct and (host == "localhost" or (address is not None and address.is_loopback)):
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
        return name, _port(rest.removeprefix(":"))
    if entry.count(":") == 1:
        name, _, port_text = entry.partition(":")
        return name, _port(port_text)
    return entry, None


def _port(text: str) -> int | None:
    """``text`` as a port, or None: ASCII digits only (str.isdigit() takes a superscript, which
    int() refuses: every request's look at no_proxy raised; int() takes a fullwidth port, which
    Go's httpproxy never matches)."""
    return int(text) if text.isascii() and text.isdigit() else None
