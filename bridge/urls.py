"""The bridge's URLs: those it is given, checked one way, and its own, built one way.

Every URL setting (``EXESDB_WEBHOOK_URLS``, ``EXESDB_ALERTMANAGER_URL``, ``EXESDB_URL``,
``EXESDB_EXTERNAL_URL``), the receivers file's ``url`` and ``proxy_url``, and the client
commands' ``--url`` are checked here. A problem shows the URL only as ``safe_url`` shows it, and
text that is no URL at all not at all (it may be a URL mistyped around a password).

``own_url`` is the bridge's own base URL, from the address it listens on: for a client on this
host (the command line's default target, the health check, the start-up line) or, given the name
other hosts reach this one by, for them (the links in alerts).
"""

from __future__ import annotations

import ipaddress
from typing import Final
from urllib.parse import urlsplit

from bridge.redaction import safe_url

__all__ = ["HTTP_SCHEMES", "http_url_problem", "own_url", "require_http_url"]

HTTP_SCHEMES: Final = ("http", "https")


def http_url_problem(url: str, what: str = "URL") -> str | None:
    """Why ``url`` is no http:// or https:// ``what`` with a host (and a valid port); None when
    it is one."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        return f"not a {what}; allowed: an http:// or https:// {what} with a host"
    if not parts.scheme or not parts.netloc:
        return f"not a {what}; allowed: an http:// or https:// {what} with a host"
    if parts.scheme not in HTTP_SCHEMES or not parts.hostname:
        return f"{safe_url(url)!r} is not an http:// or https:// {what} with a host"
    if "{{" in url:
        # Alertmanager expands Go templates in a webhook URL; sent as written, it would reach
        # some other path without a word.
        return f"holds a template ({{{{ … }}}}), which the bridge does not expand; give the {what}"
    return None


def require_http_url(url: str, what: str = "URL") -> str:
    """``url`` when it is an http:// or https:// ``what`` with a host; ValueError saying why not
    (what a pydantic validator raises)."""
    problem = http_url_problem(url, what)
    if problem is not None:
        raise ValueError(problem)
    return url


def own_url(host: str, port: int, *, tls: bool = False, for_others: str | None = None) -> str:
    """The base URL of the bridge listening on ``host:port`` (``https`` with ``tls``).

    A wildcard host (``0.0.0.0``, ``::``, empty) is asked on loopback by a client on this host,
    and by name by the others: ``for_others`` is that name (the node name), whose URL this is
    then. An IPv6 address goes in brackets; any other host is used as it is.
    """
    scheme = "https" if tls else "http"
    try:
        address = ipaddress.ip_address(host or "0.0.0.0")  # noqa: S104 - the wildcard address
    except ValueError:  # a name
        return f"{scheme}://{host}:{port}"
    if address.is_unspecified:
        if for_others is not None:
            return own_url(for_others, port, tls=tls)
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    shown = f"[{address}]" if address.version == 6 else str(address)
    return f"{scheme}://{shown}:{port}"
