"""A POST following 307 and 308 redirects, unless ``http_config`` says ``follow_redirects: false``.

Go's client (and so Alertmanager) follows a redirect by default (prometheus/common's
``follow_redirects`` is true unless set false), and so does the bridge's; on a 301, 302 or 303 Go
turns a POST into a GET without a body, which would send no alerts and count its 2xx as delivered.
Only 307 and 308 keep the method and the body, so only they are followed here, at most 10 in a row
as Go's client stops after 10. A 301, 302 or 303 is answered to the caller, which counts it a failed
attempt (``refused_redirect`` says why). The headers that carry credentials
(``RequestOptions.credentials``: ``Authorization`` from ``authorization``, ``basic_auth`` or
``oauth2``, and the ``http_headers`` given as ``secrets`` or ``files``) are sent to the first
URL's origin only, stricter than Alertmanager, whose RoundTrippers (prometheus/common) set them
again on every hop; the signature header goes to every hop (an HMAC of the body, which proves it
and gives away no secret), and so do plain ``http_headers`` ``values``. Each hop's proxy, TLS and
proxy credentials are those of its own URL. The session's timeout covers the whole chain, as Go's
client timeout does, so an attempt never outlasts its receiver's ``timeout``. With
``follow_redirects: false`` every 3xx is answered to the caller as it came.

With ``oauth2`` the token is asked for first (``ClientSettings.oauth2``; fetched on the same
session, within the same timeout), and a 401 to a request that carried it drops it, so the next
request fetches another.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Final

import aiohttp
from yarl import URL

from bridge.httpclient.client import ClientSettings

__all__ = ["MAX_REDIRECTS", "RedirectNotFollowed", "post", "refused_redirect"]

MAX_REDIRECTS: Final = 10  # Go's http.Client: "stopped after 10 redirects"
_FOLLOWED: Final = frozenset({307, 308})
_DROPPING_THE_BODY: Final = frozenset({301, 302, 303})


class RedirectNotFollowed(aiohttp.ClientError):
    """A 307 or 308 that cannot be followed: one too many, or to a URL that is not http(s). The
    message never shows the URL (its path or query may hold a token)."""


def refused_redirect(client: ClientSettings, status: int) -> str | None:
    """Why an answer ``status`` to a client that follows redirects is a failed attempt, when it
    is a redirect the client will not follow (301, 302, 303); None otherwise."""
    if not client.config.follow_redirects or status not in _DROPPING_THE_BODY:
        return None
    return (
        f"HTTP {status}: a {status} redirect is not followed, since following it would turn the "
        "POST into a GET without the alerts (only 307 and 308 keep them); give the final URL"
    )


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    return (url.scheme.lower(), (url.host or "").lower(), url.port)


@asynccontextmanager
async def post(
    session: aiohttp.ClientSession,
    client: ClientSettings,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
) -> AsyncIterator[aiohttp.ClientResponse]:
    """The answer to POSTing ``body`` to ``url`` with ``headers`` and what ``client`` adds (its
    auth, TLS and proxy), after the 307 and 308 redirects it follows; raises what a request raises
    (``RedirectNotFollowed`` included)."""
    follow = client.config.follow_redirects
    first: tuple[str, str | None, int | None] | None = None  # known once a redirect came
    clock = asyncio.get_running_loop().time
    budget = session.timeout.total
    deadline = None if budget is None else clock() + budget
    tokens = client.oauth2
    # oauth2's Authorization value, fetched within the same budget.
    bearer = await tokens.authorization(session, session.timeout) if tokens is not None else None
    for _ in range(MAX_REDIRECTS):
        timeout = session.timeout
        if deadline is not None and (first is not None or bearer is not None):
            left = deadline - clock()
            if left <= 0:  # aiohttp reads a total of 0 as no limit at all
                raise TimeoutError
            timeout = aiohttp.ClientTimeout(total=left)
        options = client.request_options(url)
        sent = {**headers, **options.headers}
        credentials = options.credentials
        if bearer is not None:
            sent["Authorization"] = bearer
            credentials |= {"Authorization"}
        if first is not None and _origin(URL(url)) != first:
            for name in credentials:  # the first origin's; the signature proves the body
                sent.pop(name, None)
        response = await session.post(
            url,
            data=body,
            headers=sent,
            allow_redirects=False,
            timeout=timeout,
            **options.connection(),
        )
        if (
            response.status == 401
            and tokens is not None
            and bearer is not None
            and sent.get("Authorization") == bearer
        ):
            tokens.refused(bearer)  # the next request fetches another token
        location = response.headers.get("Location")
        if not (follow and response.status in _FOLLOWED and location):
            async with response:
                yield response
            return
        response.release()
        first = first or _origin(response.url)
        try:
            target = response.url.join(URL(location))
        except ValueError:
            target = URL()
        if target.scheme not in ("http", "https") or not target.host:
            raise RedirectNotFollowed(
                f"HTTP {response.status}: its Location is not an http(s) URL (not shown)"
            )
        url = str(target)
    raise RedirectNotFollowed(f"stopped after {MAX_REDIRECTS} redirects")
