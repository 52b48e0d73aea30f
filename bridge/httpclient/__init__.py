"""The bridge's HTTP clients configured as Prometheus' ``http_config``: auth, TLS and a proxy.

``schema`` reads the block strictly (the keys of prometheus/common), ``client`` turns it into
what each request needs, reading secret and certificate files again when they change (``files``);
``failures`` tells a failed request without a secret.
Webhook receivers and the Alertmanager poster use it (``EXESDB_WEBHOOK_CONFIG_FILE``).
"""

from __future__ import annotations

from bridge.httpclient.client import ClientSettings, RequestOptions
from bridge.httpclient.failures import REQUEST_ERRORS, RequestFailure, request_failure
from bridge.httpclient.files import ClientSetupError, FileSetting, WatchedFile
from bridge.httpclient.schema import Authorization, BasicAuth, HTTPClientConfig, TLSConfig

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
