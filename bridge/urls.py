"""The URLs the bridge is given, checked one way: http:// or https:// with a host.

Every URL setting (``EXESDB_WEBHOOK_URLS``, ``EXESDB_ALERTMANAGER_URL``, ``EXESDB_URL``,
``EXESDB_EXTERNAL_URL``), the receivers file's ``url`` and ``proxy_url``, and the client
commands' ``--url`` are checked here. A problem shows the URL only as ``safe_url`` shows it, and
text that is no URL at all not at all (it may be a URL mistyped around a password).
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from bridge.redaction import safe_url

__all__ = ["HTTP_SCHEMES", "http_url_problem", "require_http_url"]

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
    return None


def require_http_url(url: str, what: str = "URL") -> str:
    """``url`` when it is an http:// or https:// ``what`` with a host; ValueError saying why not
    (what a pydantic validator raises)."""
    problem = http_url_problem(url, what)
    if problem is not None:
        raise ValueError(problem)
    return url
