"""The bridge's HTTP clients configured as Prometheus' ``http_config``: auth, TLS and a proxy.

``schema`` reads the block strictly (the keys of prometheus/common), ``client`` turns it into
what each request needs, reading secret and certificate files again when they change (``files``);
``failures`` tells a failed request without a secret.
Webhook receivers and the Alertmanager poster use it (``EXESDB_WEBHOOK_CONFIG_FILE``).
``failures``, which imports aiohttp, is imported when first asked for: the health check encodes
its basic auth with ``client.basic_auth`` and imports no aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.httpclient.client import ClientSettings, RequestOptions
from bridge.httpclient.files import ClientSetupError, FileSetting, WatchedFile
from bridge.httpclient.schema import Authorization, BasicAuth, HTTPClientConfig, TLSConfig

if TYPE_CHECKING:
    from bridge.httpclient.failures import REQUEST_ERRORS, RequestFailure, request_failure

__all__ = [
    "REQUEST_ERRORS",
    "Authorization",
    "BasicAuth",
    "ClientSettings",
    "ClientSetupError",
    "FileSetting",
    "HTTPClientConfig",
    "RequestFailure",
    "RequestOptions",
    "TLSConfig",
    "WatchedFile",
    "request_failure",
]


def __getattr__(name: str) -> object:
    if name in ("REQUEST_ERRORS", "RequestFailure", "request_failure"):
        from bridge.httpclient import failures

        return getattr(failures, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
