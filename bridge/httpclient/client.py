"""What one request needs from an ``http_config``: its auth header, SSL context and proxy.

With ``oauth2`` the auth header is a token fetched on the request's session (``oauth2``, the
``TokenSource`` kept as ``ClientSettings.oauth2``, shared by the clients given the same
``TokenSources`` whose ``oauth2`` blocks are equal), which ``bridge.httpclient.redirects.post``
asks for; ``request_options`` gives the rest.

``ClientSettings.request_options()`` is asked at every attempt. Secrets given as ``*_file`` are
read again when the file changed (``files.WatchedFile``); the SSL context is built again when
``ca_file``, ``cert_file`` or ``key_file`` changed, and only for a request that makes a TLS
handshake (an ``https://`` URL, or an ``https://`` proxy). A secret file may hold 64 KiB at most,
a certificate, key or CA file 1 MiB (``bridge.regular_files``). A file that cannot be read, is
no regular file (a FIFO, a device: OpenSSL would wait on it) or is larger, a secret that cannot
go in a header (a line break inside a file), or a certificate that does not load, raises
``ClientSetupError`` naming the key, never its content: the caller counts the attempt as failed
and retries it, as it would a refused connection.
"""

from __future__ import annotations

import base64
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from bridge.httpclient.files import ClientSetupError, FileSetting, stamp
from bridge.httpclient.proxy import ProxyRule
from bridge.regular_files import MAX_FILE_BYTES, refuse_irregular
from bridge.tlsutil import (
    ca_file_refusal,
    cert_chain_error,
    load_cert_chain,
    load_error,
    set_versions,
)
from bridge.urls import split_userinfo

if TYPE_CHECKING:
    from bridge.httpclient.oauth2 import TokenSource, TokenSources
    from bridge.httpclient.schema import HTTPClientConfig, TLSConfig

__all__ = ["ClientSettings", "RequestOptions", "basic_auth"]


# What RFC 9110 section 5.5 forbids in a field value (and aiohttp refuses): controls but tab.
_FORBIDDEN_IN_HEADER: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """The keyword arguments of one aiohttp request that the ``http_config`` decides."""

    headers: dict[str, str] = field(default_factory=dict)
    # Those of ``headers`` that carry credentials (Authorization, http_headers given as secrets
    # or files): a redirect takes them to the first URL's origin only (``redirects``).
    credentials: frozenset[str] = frozenset()
    ssl: ssl.SSLContext | bool = True
    proxy: str | None = None
    proxy_headers: dict[str, str] = field(default_factory=dict)
    server_hostname: str | None = None

    def connection(self) -> dict[str, Any]:
        """The keyword arguments of the connection (TLS and proxy), as the request takes them."""
        return {
            "ssl": self.ssl,
            "proxy": self.proxy,
            "proxy_headers": self.proxy_headers,
            "server_hostname": self.server_hostname,
        }


class _TLS:
    """The client SSL context of a ``tls_config``, built again when one of its files changed."""

    def __init__(self, config: TLSConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._stamps: tuple[object, ...] | None = None
        self._context: ssl.SSLContext | None = None

    def context(self) -> ssl.SSLContext:
        config = self._config
        stamps: list[object] = []
        for key in ("ca_file", "cert_file", "key_file"):
            path = getattr(config, key)
            if path:
                try:
                    stamps.append(now := stamp(path))
                    # OpenSSL's open of a FIFO waits for a writer, and it reads a device without
                    # end: on the event loop.
                    refuse_irregular(path)
                except OSError as exc:
                    raise ClientSetupError(
                        f"cannot read tls_config.{key} {path}: {exc.strerror or exc}"
                    ) from None
                if now[1] > MAX_FILE_BYTES:  # OpenSSL would read it whole, on the event loop
                    raise ClientSetupError(
                        f"cannot read tls_config.{key} {path}: larger than"
                        f" {MAX_FILE_BYTES // 1024} KiB, the most this file may hold: is it the"
                        " right file?"
                    )
        with self._lock:
            if self._context is None or tuple(stamps) != self._stamps:
                self._context = _build_context(config)
                self._stamps = tuple(stamps)
            return self._context


def _build_context(config: TLSConfig) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if config.ca_file:
        # Only the CA given is trusted, as Go's client does with a CA file.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            context.load_verify_locations(cafile=config.ca_file)
        except ssl.SSLError:  # none, or one damaged: told as check-config and --cacert tell it
            raise ClientSetupError(
                f"cannot load tls_config.ca_file {config.ca_file}:"
                f" {ca_file_refusal(config.ca_file)}"
            ) from None
        except OSError as exc:
            raise ClientSetupError(
                f"cannot load tls_config.ca_file {config.ca_file}: {load_error(exc)}"
            ) from None
    elif config.ca:
        # Checked when the file was read (schema), so it loads.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cadata=config.ca)
    if (config.cert_file or config.cert) and (config.key_file or config.key):
        try:
            load_cert_chain(
                context,
                cert_file=config.cert_file,
                cert=config.cert,
                key_file=config.key_file,
                key=config.key.get_secret_value() if config.key else None,
            )
        except (OSError, ssl.SSLError) as exc:
            cert = f"cert_file {config.cert_file}" if config.cert_file else "cert (inline)"
            key = f"key_file {config.key_file}" if config.key_file else "key (inline)"
            reason = cert_chain_error(exc, cert_file=config.cert_file, key_file=config.key_file)
            raise ClientSetupError(f"cannot load tls_config.{cert} with {key}: {reason}") from None
    set_versions(context, config.min_version, config.max_version)
    if config.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class ClientSettings:
    """An ``http_config`` ready for requests; safe to share between tasks and threads."""

    def __init__(
        self,
        config: HTTPClientConfig | None = None,
        *,
        environ: Mapping[str, str] = os.environ,
        clock: Callable[[], float] = time.monotonic,
        tokens: TokenSources | None = None,
    ) -> None:
        """``environ`` gives the proxies when ``proxy_from_environment`` is set (``oauth2``'s
        too); ``clock`` tells when an ``oauth2`` token expires. With ``tokens`` the ``oauth2``
        token is shared with the other clients given them whose ``oauth2`` block is equal (the
        first one's ``environ`` and ``clock`` serve them all)."""
        if config is None:
            # Imported here: a bridge that sends nothing builds no client, and needs none of the
            # http_config models (pydantic schemas built at import).
            from bridge.httpclient.schema import HTTPClientConfig

            config = HTTPClientConfig()
        self.config = config
        self.oauth2: TokenSource | None = None
        if (oauth2 := config.oauth2) is not None:
            # Imported only here: it needs aiohttp, which the health check's basic_auth does not.
            from bridge.httpclient.oauth2 import TokenSource

            def build() -> TokenSource:
                # The token endpoint's requests take the oauth2 block's own TLS and proxy.
                endpoint = ClientSettings(oauth2.endpoint(), environ=environ)
                return TokenSource(oauth2, endpoint.request_options, clock=clock)

            self.oauth2 = build() if tokens is None else tokens.source(oauth2, build)
        self._auth_type: str | None = None
        self._credentials: FileSetting | None = None
        self._username: FileSetting | None = None
        self._password: FileSetting | None = None
        if config.authorization is not None:
            auth = config.authorization
            self._auth_type = auth.type
            self._credentials = FileSetting(
                "authorization.credentials_file",
                auth.credentials.get_secret_value() if auth.credentials else None,
                auth.credentials_file,
            )
        if config.basic_auth is not None:
            basic = config.basic_auth
            self._username = FileSetting(
                "basic_auth.username_file", basic.username, basic.username_file
            )
            self._password = FileSetting(
                "basic_auth.password_file",
                basic.password.get_secret_value() if basic.password else None,
                basic.password_file,
            )
        self._header_source = (
            "authorization.credentials(_file)" if config.authorization else "basic_auth"
        )
        # http_headers: each value inline (values, secrets) or a file read again when it changed.
        self._extra_headers: tuple[tuple[str, tuple[FileSetting, ...]], ...] = tuple(
            (
                name,
                tuple(FileSetting(f"http_headers.{name}", value, None) for value in header.values)
                + tuple(
                    FileSetting(f"http_headers.{name}", secret.get_secret_value(), None)
                    for secret in header.secrets
                )
                + tuple(
                    FileSetting(f"http_headers.{name}.files", None, path) for path in header.files
                ),
            )
            for name, header in config.http_headers.items()
        )
        # Plain ``values`` are not secret (the schema's own split); a header with any secret or
        # file value is, whole, since its values go in one line.
        self._secret_headers = frozenset(
            name for name, header in config.http_headers.items() if header.secrets or header.files
        )
        self._tls = _TLS(config.tls_config) if config.tls_config.configured else None
        self._connect_headers = {
            name: ", ".join(value.get_secret_value() for value in values)
            for name, values in config.proxy_connect_header.items()
        }
        self._proxies = (
            ProxyRule.from_environment(environ)
            if config.proxy_from_environment
            else ProxyRule.configured(config.proxy_url, config.no_proxy)
        )

    def request_options(self, url: str) -> RequestOptions:
        """The options of the next request to ``url``, files read again if they changed;
        ClientSetupError when one cannot be used."""
        headers: dict[str, str] = {}
        if self._credentials is not None:
            headers["Authorization"] = f"{self._auth_type} {self._credentials.get()}"
        if self._username is not None and self._password is not None:
            headers["Authorization"] = basic_auth(self._username.get(), self._password.get())
        for name, value in headers.items():
            if _FORBIDDEN_IN_HEADER.search(value):
                # aiohttp would refuse it with a ValueError at send time; named here, never shown.
                raise ClientSetupError(
                    f"the {name} header made from {self._header_source} holds a control "
                    "character (a line break inside a file?), which no HTTP header may carry"
                )
        for name, sources in self._extra_headers:
            values = [source.get() for source in sources]
            if any(_FORBIDDEN_IN_HEADER.search(value) for value in values):
                raise ClientSetupError(
                    f"the {name} header made from http_headers.{name} holds a control "
                    "character (a line break inside a file?), which no HTTP header may carry"
                )
            # Go adds one field line per value; one line of comma-separated values means the same.
            headers[name] = ", ".join(values)
        proxy, proxy_headers = _split_proxy(self._proxies.proxy_for(url))
        if proxy is not None and url.lower().startswith("https:") and self._connect_headers:
            # Go's order: the proxy URL's own credentials win over a configured header.
            proxy_headers = {**self._connect_headers, **proxy_headers}
        if proxy_headers and not url.lower().startswith("https:"):
            # A plain-HTTP request goes to the proxy itself (aiohttp sends proxy headers only
            # with the CONNECT of an HTTPS one), so its auth header travels with the request.
            headers.update(proxy_headers)
            proxy_headers = {}
        tls = self.config.tls_config
        # A plain-http request through no https:// proxy makes no TLS handshake: its
        # tls_config is not built, so a file of it that cannot be read does not fail it.
        handshake = url.lower().startswith("https:") or str(proxy).lower().startswith("https:")
        return RequestOptions(
            headers=headers,
            credentials=frozenset({"Authorization"} & headers.keys()) | self._secret_headers,
            ssl=self._tls.context() if self._tls is not None and handshake else True,
            proxy=proxy,
            proxy_headers=proxy_headers,
            server_hostname=tls.server_name or None,
        )


def basic_auth(user: str, password: str) -> str:
    """The ``Authorization`` value of HTTP basic auth (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _split_proxy(url: str | None) -> tuple[str | None, dict[str, str]]:
    """The proxy URL without its userinfo, and that userinfo (percent-decoded, as URLs carry
    it) as the proxy's own auth header."""
    if not url:
        return None, {}
    bare, pair = split_userinfo(url)
    if pair is None:
        return url, {}
    return bare, {"Proxy-Authorization": basic_auth(*pair)}
