"""The token of ``http_config.oauth2``: fetched by the client-credentials grant, kept, dropped.

As prometheus/common's ``oauth2RoundTripper`` gets it (golang.org/x/oauth2's
``clientcredentials``): a form POSTed to ``token_url`` with ``grant_type=client_credentials``,
``scope`` (the ``scopes`` joined by spaces) and the ``endpoint_params``; the client authenticated
by HTTP basic auth, its id and secret each form-urlencoded first (RFC 6749 section 2.3.1), and, if
the endpoint answers that with an error, once more with ``client_id`` and ``client_secret`` in the
form, the way that worked kept for the next tokens (golang.org/x/oauth2's auth style probe; a
connection that fails is not tried the other way). The token request goes through the token
endpoint's own ``tls_config`` and proxy, follows no redirect, and reads at most 1 MiB of answer.

The token is kept until shortly before its ``expires_in`` (10 s before, as golang.org/x/oauth2,
or half its lifetime when that is shorter); without ``expires_in`` until a request is answered 401
(``refused``). ``client_secret_file`` is read at each request, as prometheus/common reads it (a
``stat`` unless it changed): a new secret drops the token, so the next one is fetched with it. An
endpoint that cannot be reached, or answers anything but a token (not 2xx, an ``error``, a body
that is not a token, no ``access_token``, a ``token_type`` other than Bearer, in any case) raises
``TokenError`` naming the token URL as ``safe_url`` shows it and why, never the secret nor a token:
the request that needed it fails as any failed request, and is retried.

Clients whose ``oauth2`` blocks are equal (the same token URL, client, secret or secret file,
scopes, endpoint parameters, TLS and proxy) share one ``TokenSource`` (``TokenSources``): one
token request serves them all, and a 401 to any of them drops the token for all. Requests asking
for a token while one is being fetched wait for that fetch (within their own timeout) and take
its outcome, a failure too, rather than each asking the endpoint again; except a fetch that timed
out, which was timed by its own request's timeout: a waiter with time left then fetches itself
(still one fetch at a time).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import parse_qsl, quote_plus, urlencode

import aiohttp

from bridge.httpclient.failures import REQUEST_ERRORS, request_failure
from bridge.httpclient.files import ClientSetupError, FileSetting
from bridge.redaction import redact_urls, safe_url

if TYPE_CHECKING:  # the http_config models: a bridge without receivers builds none
    from bridge.httpclient.schema import OAuth2

__all__ = ["EndpointOptions", "TokenError", "TokenSource", "TokenSources"]

_EXPIRY_MARGIN_SECONDS: Final = 10.0  # golang.org/x/oauth2's expiryDelta
_ANSWER_LIMIT: Final = 1 << 20  # golang.org/x/oauth2 reads no more of a token answer
_SHOWN_LIMIT: Final = 200  # of the endpoint's error_description
_FORM: Final = "application/x-www-form-urlencoded"
# The token request goes through the oauth2 block's own tls_config, not the http_config's.
_IDENTITY_PROVIDER_CA: Final = (
    "the token endpoint's own CA goes in the tls_config ca_file of the oauth2 block, not in its"
    " http_config's"
)
# What no token may hold: RFC 6750's b64token is printable ASCII, and a header can carry no
# control character (RFC 9110 section 5.5).
_NOT_IN_TOKEN: Final = re.compile(r"[^\x20-\x7e]")


class TokenError(ClientSetupError):
    """The token endpoint gave no token this request can use (the message names the token URL as
    ``safe_url`` shows it and why, never the client secret nor a token)."""


class EndpointOptions(Protocol):
    """What a token request takes from the token endpoint's own ``http_config`` (TLS, proxy):
    ``bridge.httpclient.RequestOptions``."""

    @property
    def headers(self) -> dict[str, str]:
        """Headers the request carries (a plain-HTTP proxy's credentials)."""

    def connection(self) -> dict[str, Any]:
        """The connection's keyword arguments (``ssl``, ``proxy``, …)."""


class _TimedOut(TokenError):
    """The token request outlasted the timeout of the request it was for: a request with more
    time may still get a token."""


class _Unusable(Exception):
    """The endpoint answered, but with no usable token (the message says why)."""


@dataclass(frozen=True, slots=True)
class _Token:
    header: str  # the Authorization value: "Bearer <access_token>"
    renew_at: float | None  # when to fetch another (clock time); None: only once refused
    secret: str  # the client secret it was fetched with


class TokenSource:
    """The token of one ``oauth2`` block, fetched when needed; shared by the requests of every
    client with that block (``TokenSources``), one fetch at a time."""

    def __init__(
        self,
        config: OAuth2,
        endpoint: Callable[[str], EndpointOptions],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``endpoint`` gives the options of a request to the token URL (its TLS and proxy);
        ``clock`` tells when a token expires."""
        self._config = config
        self._endpoint = endpoint
        self._clock = clock
        inline = config.client_secret.get_secret_value() if config.client_secret else None
        self._secret = FileSetting("oauth2.client_secret_file", inline, config.client_secret_file)
        self._token: _Token | None = None
        self._in_form: bool | None = None  # how the client authenticates; None: not known yet
        self.shown_url = safe_url(config.token_url)
        # One fetch at a time: a request arriving during one waits for its outcome.
        self._fetching = asyncio.Lock()
        self._fetched = 0  # fetches ended so far, so a waiter can tell one ended while it waited
        # The last fetch's secret and error, if it failed other than by timing out.
        self._failed: tuple[str, str] | None = None

    async def authorization(
        self, session: aiohttp.ClientSession, limit: aiohttp.ClientTimeout
    ) -> str:
        """The ``Authorization`` value for the next request (``Bearer <token>``), the kept token
        or a new one fetched on ``session`` within ``limit``; ``ClientSetupError`` (a
        ``TokenError`` from the endpoint) when there is none."""
        secret = self._secret.get()
        if (kept := self._kept(secret)) is not None:
            return kept.header
        fetched = self._fetched
        clock = asyncio.get_running_loop().time
        deadline = None if limit.total is None else clock() + limit.total
        try:
            async with asyncio.timeout(limit.total):
                await self._fetching.acquire()
        except TimeoutError:
            # Another request's fetch outlasted this request's timeout.
            raise TokenError(
                f"oauth2 token_url {self.shown_url}: timed out after {limit.total:g}s"
            ) from None
        try:
            if self._fetched != fetched:
                # A fetch ended while this request waited: its outcome is this request's too.
                if (kept := self._kept(secret)) is not None:
                    return kept.header
                if self._failed is not None and self._failed[0] == secret:
                    raise TokenError(self._failed[1])
            left = limit if deadline is None else aiohttp.ClientTimeout(total=deadline - clock())
            self._token = None
            try:
                token = await self._fetch(session, secret, left, limit.total or 0.0)
            except TokenError as exc:
                # A timeout was told against the fetching request's timeout, not a waiter's.
                failed = None if isinstance(exc, _TimedOut) else (secret, str(exc))
                self._failed, self._fetched = failed, self._fetched + 1
                raise
            self._token, self._failed, self._fetched = token, None, self._fetched + 1
            return token.header
        finally:
            self._fetching.release()

    def _kept(self, secret: str) -> _Token | None:
        """The kept token, if it is still good and was fetched with ``secret``."""
        token = self._token
        if token is not None and token.secret != secret:
            token = self._token = None  # rotated: the kept token belongs to the old secret
            self._in_form = None
        if token is not None and (token.renew_at is None or self._clock() < token.renew_at):
            return token
        return None

    def refused(self, header: str) -> None:
        """A request carrying ``header`` was answered 401: that token is dropped, so the next
        request fetches another."""
        if self._token is not None and self._token.header == header:
            self._token = None

    async def _fetch(
        self,
        session: aiohttp.ClientSession,
        secret: str,
        limit: aiohttp.ClientTimeout,
        budget: float,
    ) -> _Token:
        """A new token, within ``limit`` (what is left of the ``budget`` seconds its failure is
        told against)."""
        ways = (False, True) if self._in_form is None else (self._in_form,)
        reasons: list[str] = []
        timed_out = False
        # Both ways together within ``limit``, as the request they are for.
        clock = asyncio.get_running_loop().time
        deadline = None if limit.total is None else clock() + limit.total
        for in_form in ways:
            left = limit if deadline is None else aiohttp.ClientTimeout(total=deadline - clock())
            if left.total is not None and left.total <= 0:  # aiohttp reads 0 as no limit
                reasons.append(f"timed out after {budget:g}s")
                timed_out = True
                break
            try:
                token = await self._request(session, secret, in_form, left, budget)
            except _Unusable as exc:
                reasons.append(str(exc))
                continue
            self._in_form = in_form
            return token
        if len(reasons) == 2 and reasons[0] != reasons[1]:
            reasons[1] = f"with client_id and client_secret in the form instead, {reasons[1]}"
        text = "; ".join(dict.fromkeys(reasons))
        if secret:  # text the endpoint wrote may quote what it was sent
            text = text.replace(secret, "<redacted>")
        raise (_TimedOut if timed_out else TokenError)(f"oauth2 token_url {self.shown_url}: {text}")

    async def _request(
        self,
        session: aiohttp.ClientSession,
        secret: str,
        in_form: bool,
        limit: aiohttp.ClientTimeout,
        budget: float,
    ) -> _Token:
        """One token request, ``in_form`` or by basic auth, within ``limit`` (what is left of
        the ``budget`` seconds its failure is told against)."""
        config = self._config
        form = {"grant_type": "client_credentials"}
        if config.scopes:
            form["scope"] = " ".join(config.scopes)
        form.update(config.endpoint_params)  # grant_type included, as golang.org/x/oauth2 lets it
        try:
            options = self._endpoint(config.token_url)
        except ClientSetupError as exc:
            raise TokenError(f"oauth2: {exc}") from None
        headers = {**options.headers, "Content-Type": _FORM}
        if in_form:
            form = {**form, "client_id": config.client_id, "client_secret": secret}
        else:
            headers["Authorization"] = "Basic " + _basic_pair(config.client_id, secret)
        asked = self._clock()
        try:
            async with session.post(
                config.token_url,
                data=urlencode(form).encode(),
                headers=headers,
                allow_redirects=False,
                timeout=limit,
                **options.connection(),
            ) as response:
                body = await _read(response)
                status, content_type = response.status, response.content_type
        except REQUEST_ERRORS as exc:
            failure = request_failure(exc, budget, whose_ca=_IDENTITY_PROVIDER_CA)
            error = _TimedOut if isinstance(exc, TimeoutError) else TokenError
            raise error(f"oauth2 token_url {self.shown_url}: {failure.text}") from None
        fields = _fields(body, content_type)
        return self._token_of(status, fields, secret, asked)

    def _token_of(
        self, status: int, fields: Mapping[str, Any] | None, secret: str, asked: float
    ) -> _Token:
        """The token of an answer, as golang.org/x/oauth2 reads it; _Unusable when none."""
        error = fields.get("error") if fields is not None else None
        if not 200 <= status < 300 or error:
            said = _said(fields, _sent_forms(self._config.client_id, secret)) if fields else ""
            raise _Unusable(f"answered HTTP {status}{said}")
        if fields is None:
            raise _Unusable(f"answered HTTP {status} with a body that is no token (not JSON)")
        access = fields.get("access_token")
        if not isinstance(access, str) or not access:
            raise _Unusable(f"answered HTTP {status} without an access_token")
        kind = fields.get("token_type") or "Bearer"  # none: Bearer, as golang.org/x/oauth2 reads it
        if not isinstance(kind, str) or kind.lower() != "bearer":
            shown = repr(kind)[:40] if isinstance(kind, str) else type(kind).__name__
            raise _Unusable(f"answered a token of type {shown}, not Bearer, which the bridge sends")
        if _NOT_IN_TOKEN.search(access):
            raise _Unusable("answered an access_token holding a character no HTTP header may carry")
        header = f"Bearer {access}"
        lifetime = _expires_in(fields.get("expires_in"))
        renew_at = None
        if lifetime is not None:
            renew_at = asked + lifetime - min(_EXPIRY_MARGIN_SECONDS, max(lifetime, 0.0) / 2)
        return _Token(header, renew_at, secret)


class TokenSources:
    """The ``TokenSource`` of each ``oauth2`` block's value, for the clients that share tokens
    (a sink's receivers): clients whose blocks are equal get the same one."""

    def __init__(self) -> None:
        # Compared by value, as pydantic compares models: a list, since a block holding
        # mappings (endpoint_params) has no hash. A handful of receivers: a scan is enough.
        self._sources: list[tuple[OAuth2, TokenSource]] = []

    def source(self, config: OAuth2, build: Callable[[], TokenSource]) -> TokenSource:
        """The token source of blocks equal to ``config``, made by ``build`` the first time."""
        for known, made in self._sources:
            if known == config:
                return made
        made = build()
        self._sources.append((config, made))
        return made


async def _read(response: aiohttp.ClientResponse) -> bytes:
    body = b""
    while len(body) < _ANSWER_LIMIT:
        chunk = await response.content.read(_ANSWER_LIMIT - len(body))
        if not chunk:
            break
        body += chunk
    return body


def _fields(body: bytes, content_type: str) -> Mapping[str, Any] | None:
    """The answer's fields: a form for ``application/x-www-form-urlencoded`` and ``text/plain``
    (as golang.org/x/oauth2 reads them), else a JSON object; None when it is neither."""
    text = body.decode("utf-8", errors="replace")
    if content_type in (_FORM, "text/plain"):
        return dict(reversed(parse_qsl(text)))  # the first of a field given twice, as Go's Get
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _basic_pair(client_id: str, secret: str) -> str:
    """The Basic credentials of RFC 6749 section 2.3.1: each part form-urlencoded first."""
    return base64.b64encode(f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()).decode()


def _sent_forms(client_id: str, secret: str) -> tuple[str, ...]:
    """The ways the secret went out (as is, form-urlencoded, in the Basic pair): an endpoint
    that quotes what it was sent may quote any of them."""
    if not secret:
        return ()
    return (_basic_pair(client_id, secret), secret, quote_plus(secret))


def _said(fields: Mapping[str, Any], hidden: Sequence[str] = ()) -> str:
    """The endpoint's ``error`` and ``error_description`` (RFC 6749 section 5.2), shortened, on
    one line, URLs and the ``hidden`` texts redacted (before shortening, which could cut one)."""
    said = " ".join(
        str(fields[key]) for key in ("error", "error_description") if fields.get(key) is not None
    )
    if not said:
        return ""
    for text in hidden:
        said = said.replace(text, "<redacted>")
    text = " ".join(said.split())[:_SHOWN_LIMIT]
    return f": {redact_urls(text)}"


def _expires_in(value: Any) -> float | None:
    """``expires_in`` in seconds; None for none (or 0, as golang.org/x/oauth2 reads it)."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    # OverflowError: a whole number (of 309 digits or more) that no float holds.
    except (TypeError, ValueError, OverflowError):
        raise _Unusable("answered an expires_in that is not a number") from None
    if not math.isfinite(seconds):
        raise _Unusable("answered an expires_in that is not a number")
    return seconds or None
