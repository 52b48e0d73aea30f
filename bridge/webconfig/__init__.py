"""TLS, basic auth and response headers from a web config file, as Prometheus exporters take them.

``EXESDB_WEB_CONFIG_FILE`` names a YAML file in exporter-toolkit's schema (``--web.config.file``
of node_exporter): ``schema`` reads it strictly, ``loading`` reads it whole, ``tls`` builds the
server's SSL context, ``basic_auth`` checks passwords, ``live`` keeps the newest good version in
force and ``middleware`` applies it to every request. The serving side (``basic_auth``, ``live``,
``middleware``: bcrypt, prometheus_client, aiohttp) is imported when first asked for, so that the
health check reads a web config without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.webconfig.loading import describe_web_config
from bridge.webconfig.schema import (
    CLIENT_AUTH_TYPES,
    HTTPServerConfig,
    ResponseHeaders,
    TLSServerConfig,
    WebConfig,
)
from bridge.webconfig.tls import CIPHER_SUITES

if TYPE_CHECKING:
    from bridge.webconfig.basic_auth import BasicAuthChecker
    from bridge.webconfig.live import LiveWebConfig
    from bridge.webconfig.middleware import install

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
]


def __getattr__(name: str) -> object:
    if name == "BasicAuthChecker":
        from bridge.webconfig.basic_auth import BasicAuthChecker

        return BasicAuthChecker
    if name == "LiveWebConfig":
        from bridge.webconfig.live import LiveWebConfig

        return LiveWebConfig
    if name == "install":
        from bridge.webconfig.middleware import install

        return install
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
