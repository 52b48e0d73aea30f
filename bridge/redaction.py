"""How a URL is shown anywhere the bridge shows one: logs, errors, ``/readyz``, ``check-config``.

One form everywhere: the origin (scheme, host, port), ``user:<redacted>@`` when the URL carries
credentials (``<redacted>@`` for a user name alone, often a token), and ``/…`` when it has a path
or query (webhook paths often hold tokens), e.g. ``https://alice:<redacted>@hooks.example:8443/…``.
Nothing is dropped without a marker. In free text, a ``user:password@`` outside a well-formed URL
(``redis:/default:pw@host``) has its password redacted too. In a span's ``url.full`` the user info
is ``REDACTED:REDACTED@``, the form OpenTelemetry's semantic conventions give it (``span_url``).
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

__all__ = ["REDACTED", "redact_urls", "safe_url", "span_url"]

REDACTED: Final = "<redacted>"
# The semantic conventions' url.full: "https://REDACTED:REDACTED@www.example.com/".
_SPAN_USERINFO: Final = "REDACTED:REDACTED@"
# A password may hold a comma or a quote (allowed unencoded in user info): the user info runs
# to the last ``@`` before the path; the rest of the URL stops at a comma or a quote.
_URL: Final = r"\b[a-zA-Z][a-zA-Z0-9+.-]*://(?:[^\s/?#]*@)?[^\s,'\"]+"
# ``user:password@`` outside a well-formed URL: one typed without its ``//``
# (``redis:/u:pw@host``), or a host given without a scheme.
_USERINFO: Final = r"(?P<name>[^\s:/@,'\"]*):[^\s@,'\"]+@"
_SHOWN: Final = re.compile(f"(?P<url>{_URL})|{_USERINFO}")


def safe_url(url: str, *, lone_user: bool = False) -> str:
    """``url`` as it may be shown: origin, a credentials marker and a path marker.

    ``lone_user`` shows a user name alone as earlier versions did (``https://name:<redacted>@``),
    only to find the outbox keys they made."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return "<not a URL>"
    if not parts.scheme or not parts.netloc:
        return "<not a URL>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    user = ""
    if parts.password is not None:
        user = f"{parts.username or ''}:{REDACTED}@"
    elif parts.username is not None:
        # A name alone is often the token itself (Sentry-style DSNs).
        user = f"{parts.username}:{REDACTED}@" if lone_user else f"{REDACTED}@"
    port_part = f":{port}" if port else ""
    rest = "/…" if (parts.path.strip("/") or parts.query) else ""
    return f"{parts.scheme}://{user}{host}{port_part}{rest}"


def span_url(url: str) -> str:
    """``url`` as a span's ``url.full``: ``safe_url``'s form, any user name and password as
    ``REDACTED:REDACTED@`` (url.full must hold neither; the conventions say how to mark them)."""
    shown = safe_url(url)
    scheme, found, rest = shown.partition("://")
    if not found or "@" not in rest:
        return shown
    return f"{scheme}://{_SPAN_USERINFO}{rest.rpartition('@')[2]}"


def redact_urls(text: str) -> str:
    """``text`` with every URL in it shown as ``safe_url`` shows it, and the password of any
    other ``user:password@`` (a URL mistyped without ``//``) as ``<redacted>``."""
    return _SHOWN.sub(_shown, text)


def _shown(match: re.Match[str]) -> str:
    if match.group("url") is not None:
        return safe_url(match.group("url"))
    return f"{match.group('name')}:{REDACTED}@"
