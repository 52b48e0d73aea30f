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
import string
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
# redact_urls replaces what f"(?P<url>{_URL})|{_USERINFO}" finds (tests/test_redaction.py
# compares them), but finds it in linear time: that pattern, searched, scans ahead from every
# position it fails at, a minute of CPU for a 64 KiB metadata value without a space.
# A URL from the first letter of its scheme (_next_url checks the word boundary).
_URL_AT: Final = re.compile(_URL.removeprefix(r"\b"))
_LETTERS: Final = frozenset(string.ascii_letters)
_SCHEME_CHARS: Final = _LETTERS | frozenset(string.digits + "+.-")
# A cell ending in '@' (see _next_user_info), tried only where a cell starts: in C, and once
# for each cell.
_CELL_AT: Final = re.compile(r"(?<![^\s@,'\"])[^\s@,'\"]*@")


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
    other ``user:password@`` (a URL mistyped without ``//``) as ``<redacted>``.

    What ``_URL`` or ``_USERINFO`` (tried in that order at each position) would replace, found
    in time linear in ``text``: each candidate is looked at once. A regular expression of the
    two tries both at every position and scans ahead from each, minutes of CPU for a long text
    without spaces, and the texts come from messages (an alert's metadata).
    """
    shown: list[str] = []
    done = 0
    url: tuple[int, int] | None = None  # the next URL's (start, where its "://" is), if any
    after = 0  # where the next "://" is looked for
    user: tuple[int, int, int] | None = None  # the next user info: (start, its ':', its '@')
    cell = 0  # where the next user info is looked for
    while True:
        if url is not None and url[0] < done:
            url = None  # inside what was just replaced
        if url is None:
            url, after = _next_url(text, max(after, done))
        if user is not None and user[0] < done:
            user = None
        if user is None:
            user, cell = _next_user_info(text, max(cell, done))
        if url is not None and (user is None or url[0] <= user[0]):
            # The URL is tried first at a position; a user info found later starts later.
            match = _URL_AT.match(text, url[0])
            url = None
            if match is None:
                continue  # "://" with nothing after it: the next one
            shown += (text[done : match.start()], safe_url(match.group()))
            done = match.end()
        elif user is not None:
            start, colon, at = user
            shown += (text[done:start], text[start:colon], ":", REDACTED, "@")
            done = at + 1
            user = None
        else:
            shown.append(text[done:])
            return "".join(shown)


def _next_url(text: str, start: int) -> tuple[tuple[int, int] | None, int]:
    """Where the first URL ``_URL`` may match from ``start`` on begins (with where its "://"
    is), and where to look for the next one: each "://" is looked at once.

    Only the first letter after a word boundary in the scheme's run of characters can start
    one: from any later one in the run, ``_URL`` reaches the same "://" and the same rest.
    """
    while (scheme_end := text.find("://", start)) != -1:
        start = scheme_end + 1
        run = scheme_end
        while run > 0 and text[run - 1] in _SCHEME_CHARS:
            run -= 1
        for at in range(run, scheme_end):
            if text[at] in _LETTERS and (at == 0 or not _word(text[at - 1])):
                return (at, scheme_end), start
    return None, len(text)


def _next_user_info(text: str, start: int) -> tuple[tuple[int, int, int] | None, int]:
    """The first ``user:password@`` ``_USERINFO`` matches from ``start`` on, as (its start, its
    ':', its '@'), and where to look for the next one.

    A match lies in one cell (a run without whitespace, '@', ',' or quotes) that ends in '@':
    the first ':' of the cell with a password after it, the user name back to the '/' (or
    ':', none being before it) before it.
    """
    while (cell := _CELL_AT.search(text, start)) is not None:
        begins, at = cell.start(), cell.end() - 1
        colon = text.find(":", begins, at)
        if colon != -1 and colon < at - 1:
            name = text.rfind("/", begins, colon) + 1 or begins
            return (max(name, begins), colon, at), at + 1
        start = at + 1
    return None, len(text)


def _word(char: str) -> bool:
    """Whether ``char`` is a word character to ``re``'s ``\\b``."""
    return char.isalnum() or char == "_"
