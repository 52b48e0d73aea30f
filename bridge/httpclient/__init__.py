"""The bridge's HTTP clients configured as Prometheus' ``http_config``: auth, TLS and a proxy.

``schema`` reads the block strictly (the keys of prometheus/common), ``client`` turns it into
what each request needs, reading secret and certificate files again when they change (``files``),
``oauth2`` gets the token of an ``oauth2`` block (``ClientSettings.oauth2``, one for the clients
whose blocks are equal: ``TokenSources``); ``failures`` tells a
failed request without a secret.
Webhook receivers and the Alertmanager poster use it (``EXESDB_WEBHOOK_CONFIG_FILE``).
Each name is imported from its module when first asked for (``bridge.exports``): the client
commands tell a refused connection with ``failures`` (aiohttp) without building the
``http_config`` models (pydantic, and the web config's YAML reader), and the health check encodes
its basic auth with ``client.basic_auth`` without aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.exports import lazy_exports

if TYPE_CHECKING:
    from bridge.httpclient.client import ClientSettings, RequestOptions
    from bridge.httpclient.failures import REQUEST_ERRORS, RequestFailure, request_failure
    from bridge.httpclient.files import ClientSetupError, FileSetting, WatchedFile
    from bridge.httpclient.oauth2 import TokenSource, TokenSources
    from bridge.httpclient.schema import (
        Authorization,
        BasicAuth,
        HTTPClientConfig,
        OAuth2,
        TLSConfig,
    )

__all__ = [
    "REQUEST_ERRORS",
    "Authorization",
    "BasicAuth",
    "ClientSettings",
    "ClientSetupError",
    "FileSetting",
    "HTTPClientConfig",
    "OAuth2",
    "RequestFailure",
    "RequestOptions",
    "TLSConfig",
    "TokenSource",
    "TokenSources",
    "WatchedFile",
    "request_failure",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "client": ("ClientSettings", "RequestOptions"),
        "failures": ("REQUEST_ERRORS", "RequestFailure", "request_failure"),
        "files": ("ClientSetupError", "FileSetting", "WatchedFile"),
        "oauth2": ("TokenSource", "TokenSources"),
        "schema": ("Authorization", "BasicAuth", "HTTPClientConfig", "OAuth2", "TLSConfig"),
    },
)
