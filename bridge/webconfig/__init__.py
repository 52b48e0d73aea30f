"""TLS, basic auth and response headers from a web config file, as Prometheus exporters take them.

``EXESDB_WEB_CONFIG_FILE`` names a YAML file in exporter-toolkit's schema (``--web.config.file``
of node_exporter): ``schema`` reads it strictly, ``tls`` builds the server's SSL context,
``basic_auth`` checks passwords, ``live`` keeps the newest good version in force and
``middleware`` applies it to every request.
"""

from __future__ import annotations

from bridge.webconfig.basic_auth import BasicAuthChecker
from bridge.webconfig.live import LiveWebConfig, describe_web_config, load_web_config
from bridge.webconfig.middleware import install
from bridge.webconfig.schema import (
    CLIENT_AUTH_TYPES,
    HTTPServerConfig,
    ResponseHeaders,
    TLSServerConfig,
    WebConfig,
)
from bridge.webconfig.tls import CIPHER_SUITES

__all__ = [
    "CIPHER_SUITES",
    "CLIENT_AUTH_TYPES",
    "BasicAuthChecker",
    "HTTPServerConfig",
    "LiveWebConfig",
    "ResponseHeaders",
    "TLSServerConfig",
    "WebConfig",
    "describe_web_config",
    "install",
    "load_web_config",
]
