"""The ``healthcheck`` command: does ``/healthz`` at the configured ``EXESDB_HTTP_ADDR`` answer 200.

Made for a container's ``HEALTHCHECK`` and a Kubernetes exec probe: it reads the same settings
as ``run``, asks the address the bridge listens on (a wildcard host means loopback) and prints
one line saying what it found. Exit 0 when healthy, else 1, even for a bad configuration:
Docker reserves exit 2 in health checks. The scheme, TLS context and credentials are
parameters, so a served TLS or basic auth is one argument away.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import sys
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from bridge.config import Settings, load_settings, local_url
from bridge.errors import ConfigError

__all__ = [
    "DEFAULT_TIMEOUT",
    "EXIT_HEALTHY",
    "EXIT_UNHEALTHY",
    "Verdict",
    "main",
    "probe",
    "probe_url",
    "seconds",
]

DEFAULT_TIMEOUT: Final = 2.0
EXIT_HEALTHY: Final = 0
EXIT_UNHEALTHY: Final = 1
_HEALTH_PATH: Final = "/healthz"


@dataclass(frozen=True)
class Verdict:
    """What one probe found: healthy or not, and the line that says why."""

    healthy: bool
    line: str


def seconds(text: str) -> float:
    """A ``--timeout`` value: a positive number of seconds (ValueError otherwise)."""
    value = float(text)
    if not value > 0:
        raise ValueError(f"{text!r} is not a positive number of seconds")
    return value


def probe_url(settings: Settings, scheme: str = "http") -> str:
    """The ``/healthz`` URL of the address ``settings`` listen on; a wildcard host is loopback."""
    return local_url(*settings.listen, scheme=scheme) + _HEALTH_PATH


def probe(
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    ssl_context: ssl.SSLContext | None = None,
    credentials: tuple[str, str] | None = None,
) -> Verdict:
    """GET ``url`` once, healthy only on 200: no redirect followed, no proxy from the environment.

    ``timeout`` bounds the connect and each read. ``credentials`` (user, password) are sent as
    basic auth and never shown.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port
    connection = (
        http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl_context)
        if parts.scheme == "https"
        else http.client.HTTPConnection(host, port, timeout=timeout)
    )
    headers = {"User-Agent": "exesdb-bridge-healthcheck"}
    if credentials is not None:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    try:
        connection.request("GET", parts.path or "/", headers=headers)
        response = connection.getresponse()
        status, reason = response.status, response.reason
    # TimeoutError and ssl.SSLError are OSErrors too: the most telling reason comes first.
    except TimeoutError:
        return Verdict(False, f"unhealthy: {url} did not answer within {timeout:g}s")
    except ssl.SSLError as exc:
        return Verdict(False, f"unhealthy: TLS with {url} failed: {exc.reason or exc}")
    except OSError as exc:
        return Verdict(False, f"unhealthy: cannot connect to {url}: {exc.strerror or exc}")
    except http.client.HTTPException as exc:
        return Verdict(False, f"unhealthy: {url} did not answer HTTP: {exc!r}")
    finally:
        connection.close()
    if status == 200:
        return Verdict(True, f"healthy: {url} answered 200")
    return Verdict(False, f"unhealthy: {url} answered {status} {reason}".rstrip())


def main(timeout: float = DEFAULT_TIMEOUT) -> int:
    """Probe the configured address; print one line; return the exit status."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        verdict = Verdict(False, f"unhealthy: bad configuration: {'; '.join(exc.problems)}")
    else:
        verdict = probe(probe_url(settings), timeout=timeout)
    print(verdict.line, file=sys.stdout if verdict.healthy else sys.stderr)
    return EXIT_HEALTHY if verdict.healthy else EXIT_UNHEALTHY
