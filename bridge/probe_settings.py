"""The settings ``healthcheck`` reads, checked as ``bridge.config`` checks them, but cheaply.

An exec probe runs every few seconds, so it reads only what it uses (``EXESDB_HTTP_ADDR``, the
web config file's name and the probe's own credentials) with the validators ``Settings`` uses for
them, from this module, instead of importing pydantic and every component to load the whole
configuration; the web config file itself is read by the probe's ``target``. A bad value
elsewhere stops the bridge from starting, which the probe then reports as nothing answering;
``check-config`` reports every setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from bridge.errors import ConfigError
from bridge.redaction import redact_urls

__all__ = [
    "DEFAULT_HTTP_ADDR",
    "ProbeSettings",
    "client_certificate_problem",
    "split_addr",
    "value_problem",
    "variable_value",
]

DEFAULT_HTTP_ADDR: Final = "0.0.0.0:9570"


def split_addr(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) into its parts, or ValueError."""
    if "/" in value:  # a URL passed as an address, failing only at listen (no host "http://…")
        raise ValueError(
            "must be host:port, not a URL, e.g. 0.0.0.0:9570 (the URL people reach the bridge "
            "at goes in EXESDB_EXTERNAL_URL)"
        )
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be host:port with a port from 0 to 65535, e.g. 0.0.0.0:9570")
    host = host.removeprefix("[").removesuffix("]")
    return host or "0.0.0.0", int(port)  # noqa: S104


def variable_value(environ: Mapping[str, str], name: str) -> str | None:
    """``name``'s value in ``environ``, or None when it is unset, empty or blanks only (``"  "``):
    what every setting, and the probe, reads as unset."""
    value = environ.get(name)
    return value if value is not None and value.strip() else None


def value_problem(variable: str, message: str, given: object) -> str:
    """The line naming ``variable``, its fault and the text it was given (redacted)."""
    shown = f" (got {redact_urls(given)!r})" if isinstance(given, str) else ""
    return f"{variable}: {message}{shown}"


def client_certificate_problem(cert_file: str | None, key_file: str | None) -> str | None:
    """The problem of a probe client certificate given without its key, or the key without it."""
    if bool(cert_file) != bool(key_file):
        return (
            "EXESDB_HEALTHCHECK_CERT_FILE: a client certificate needs both it and "
            "EXESDB_HEALTHCHECK_KEY_FILE"
        )
    return None


@dataclass(frozen=True)
class ProbeSettings:
    """What ``healthcheck`` reads from the environment, under the names ``Settings`` gives them."""

    http_addr: str = DEFAULT_HTTP_ADDR
    web_config_file: str | None = None
    healthcheck_username: str | None = None
    healthcheck_password_file: str | None = None
    healthcheck_cert_file: str | None = None
    healthcheck_key_file: str | None = None

    @property
    def listen(self) -> tuple[str, int]:
        """``EXESDB_HTTP_ADDR`` as (host, port)."""
        return split_addr(self.http_addr)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ProbeSettings:
        """Read ``environ`` (the process environment); ConfigError listing every problem of these
        variables as ``load_settings`` words it. The web config file is not read here: the probe
        reads and judges it once, in ``bridge.cli.healthcheck.target``."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            return variable_value(env, name)

        settings = cls(
            http_addr=get("EXESDB_HTTP_ADDR") or DEFAULT_HTTP_ADDR,
            web_config_file=get("EXESDB_WEB_CONFIG_FILE"),
            healthcheck_username=get("EXESDB_HEALTHCHECK_USERNAME"),
            healthcheck_password_file=get("EXESDB_HEALTHCHECK_PASSWORD_FILE"),
            healthcheck_cert_file=get("EXESDB_HEALTHCHECK_CERT_FILE"),
            healthcheck_key_file=get("EXESDB_HEALTHCHECK_KEY_FILE"),
        )
        # In load_settings' order: the values, then the checks across them (Settings.cross_checks).
        problems: list[str] = []
        try:
            split_addr(settings.http_addr)
        except ValueError as exc:
            problems.append(value_problem("EXESDB_HTTP_ADDR", str(exc), settings.http_addr))
        certificate = client_certificate_problem(
            settings.healthcheck_cert_file, settings.healthcheck_key_file
        )
        if certificate is not None:
            problems.append(certificate)
        if problems:
            raise ConfigError(problems)
        return settings
