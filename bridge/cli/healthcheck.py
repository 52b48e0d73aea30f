"""The ``healthcheck`` command: does ``/healthz`` or ``/readyz`` at ``EXESDB_HTTP_ADDR`` answer 200.

Made for a container's ``HEALTHCHECK`` and Kubernetes exec probes: it reads the settings
``run`` listens and serves by (``bridge.probe_settings``, cheaply, without the rest of the
configuration), asks the address the bridge listens on (a wildcard host means loopback) and
prints one line saying what it found; when unhealthy, a warning line follows for each set
``EXESDB_*`` variable that is no setting (``EXESDB_PORT``: did you mean ``EXESDB_HTTP_ADDR``?),
as the other commands give it. Exit 0 when healthy, else 1, even for a bad configuration:
Docker reserves exit 2 in health checks. Only the bridge's own 200 (its ``/healthz`` or
``/readyz`` body) is healthy: another server's 200 at that address is not. A bad option
(``--timeout 0``) is a usage error, exit 2, as in every command: a mistake in the probe's
command, not a state of the bridge. With
``--ready`` it asks ``/readyz`` the same way (the readiness probe, which an ``httpGet`` probe
could not make through client certificates or without the password in the pod spec), and a
503 line names the required parts the bridge says are not ready, with their reasons.

With ``EXESDB_WEB_CONFIG_FILE`` it speaks as the web config asks (``target``): HTTPS when it has
``tls_server_config``, trusting exactly the server's own certificate (its ``cert_file``, pinned:
the only trust anchor, so the name ``127.0.0.1`` need not be in it); the client certificate of
``EXESDB_HEALTHCHECK_CERT_FILE`` / ``_KEY_FILE`` when ``client_auth_type`` requires one; basic
auth as ``EXESDB_HEALTHCHECK_USERNAME`` with the password in ``EXESDB_HEALTHCHECK_PASSWORD_FILE``
when the file has ``basic_auth_users``. A bad file is probed as its own TLS section says (the
running bridge refuses it and serves the version before it), the refusal told in the line; when
that section's certificate does not verify the one served (a bad rotation, an expired
certificate) or cannot be read, the probe asks again verifying no certificate and sending no
credentials, and only an answer shaped as the bridge's (its /healthz body, or 401 in its realm)
is healthy, the line saying so and why the certificate did not verify. Readiness is not asked
of a server whose certificate is not verified: with no credentials sent, only the bridge's own
``/readyz`` answer of 200 is ready, and its 401 is not.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol
from urllib.parse import urlsplit

from bridge.cli.healthcheck_options import DEFAULT_TIMEOUT
from bridge.errors import BridgeError, ConfigError
from bridge.headers import HEALTHZ_BODY, PLAIN_HTTP_REFUSAL, REALM
from bridge.hidden import on_one_line
from bridge.probe_settings import (
    REQUIRES_CERTIFICATE,
    ProbeCredentials,
    ProbeSettings,
    load_client_certificate,
    read_password,
)
from bridge.urls import PICKED_PORT, own_url

if TYPE_CHECKING:  # the schema imports pydantic, which a probe without a web config skips
    from pathlib import Path

    from bridge.webconfig.loading import Judged
    from bridge.webconfig.schema import TLSServerConfig

__all__ = [
    "DEFAULT_TIMEOUT",
    "EXIT_HEALTHY",
    "EXIT_UNHEALTHY",
    "LIVENESS",
    "READINESS",
    "Endpoint",
    "ProbeSource",
    "Target",
    "Verdict",
    "main",
    "own_certificate_context",
    "pinned_context",
    "probe",
    "probe_url",
    "target",
]

EXIT_HEALTHY: Final = 0
EXIT_UNHEALTHY: Final = 1
# The least time a second request of one probe is given, when the first took all but this.
_LEAST_TIMEOUT: Final = 0.1
# The bridge's answers (bridge.headers), told apart from most other servers on its port when the
# certificate is not verified (any server could imitate them; the probe's credentials are not
# sent to it): the body of its /healthz and the realm of its basic auth challenge.
# The scheme is read in any case, as HTTP's are; the realm as written.
_REALM: Final = re.compile(rf'^\s*(?i:basic)\s+(?:.*[\s,])?realm="{re.escape(REALM)}"(?:$|[\s,])')
# The most of a /healthz body read: the bridge's is 16 bytes.
_MOST_BODY: Final = 256
# The most of a /readyz body read: a check per component with its reason, a few kB at most.
_MOST_READYZ_BODY: Final = 65536
# The most of one part's reason a /readyz line shows.
_MOST_REASON: Final = 300
_CERTIFICATE: Final = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
# The variables the probe reads (ProbeSettings's fields): another EXESDB_* one set may be a
# misspelling of one of them (EXESDB_PORT for EXESDB_HTTP_ADDR), or of any other setting.
_PROBE_VARIABLES: Final = frozenset(f"EXESDB_{name.upper()}" for name in ProbeSettings._fields)


# Statuses the bridge never answers a GET of its probes with (it serves both, to GET, on every
# address it listens on): another server's, which has no such path or method.
_NEVER_THE_BRIDGE_S: Final = frozenset({404, 405, 501})


# The probe's values are named tuples: importing dataclasses (with inspect) was a sixth of what
# a probe's imports cost.
class Endpoint(NamedTuple):
    """What a probe asks (``path``), the words its line says the answer with, and whether the
    answer is judged as ``/readyz``'s: a 503 body naming the parts not ready, and the bridge's
    401 no answer (it says the bridge runs, not whether it is ready)."""

    path: str
    good: str
    bad: str
    readiness: bool = False


LIVENESS: Final = Endpoint("/healthz", "healthy", "unhealthy")
READINESS: Final = Endpoint("/readyz", "ready", "not ready", readiness=True)


class Verdict(NamedTuple):
    """What one probe found: healthy or not, and the line that says why."""

    healthy: bool
    line: str
    status: int | None = None  # the HTTP status, when it answered
    # Why the server's certificate failed verification (OpenSSL's reason), when it did.
    certificate_refused: str = ""
    # The answer is shaped as the bridge's: its /healthz (or /readyz) body, or 401 with its realm.
    from_bridge: bool = False


class ProbeSource(ProbeCredentials, Protocol):
    """The settings a probe is made from: ``ProbeSettings`` (the command's) or ``Settings``."""

    @property
    def listen(self) -> tuple[str, int]: ...
    @property
    def web_config_file(self) -> str | None: ...


def probe_url(settings: ProbeSource, *, tls: bool = False, endpoint: Endpoint = LIVENESS) -> str:
    """The URL of ``endpoint`` (``/healthz`` unless told) at the address ``settings`` listen on;
    a wildcard host is loopback."""
    return own_url(*settings.listen, tls=tls) + endpoint.path


def probe(
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    ssl_context: ssl.SSLContext | None = None,
    credentials: tuple[str, str] | None = None,
    endpoint: Endpoint = LIVENESS,
) -> Verdict:
    """GET ``url`` once, healthy only on 200: no redirect followed, no proxy from the environment.

    ``timeout`` bounds the whole probe: connect, TLS handshake, request and answer (a server
    trickling its answer a byte at a time is not waited for past it). ``credentials`` (user,
    password) are sent as basic auth and never shown. ``endpoint`` gives the line its words and
    says how the bridge's body looks; for ``READINESS`` a 503 line names the parts the body says
    are not ready.
    """
    found: list[Verdict | BaseException] = []

    def ask() -> None:
        try:
            found.append(_probe(url, timeout, ssl_context, credentials, endpoint))
        except BaseException as exc:  # raised again below, in the caller's thread
            found.append(exc)

    # http.client's timeout bounds each socket operation, not their sum: the probe runs in a
    # thread waited for until the deadline, and one still asking then is left to end alone (a
    # daemon thread, which holds up no exit of the command).
    asking = threading.Thread(target=ask, name="healthcheck-probe", daemon=True)
    asking.start()
    asking.join(timeout)
    if not found:
        return Verdict(False, f"{endpoint.bad}: {url} did not answer within {timeout:g}s")
    if isinstance(found[0], BaseException):
        raise found[0]
    return found[0]


def _probe(
    url: str,
    timeout: float,
    ssl_context: ssl.SSLContext | None,
    credentials: tuple[str, str] | None,
    endpoint: Endpoint,
) -> Verdict:
    """``probe`` itself, ``timeout`` bounding the connect and each read."""
    # Imported here: every command's parser takes this module's options, and http.client (with
    # the email package it parses headers with) would cost those sending nothing over HTTP.
    import http.client

    good, bad = endpoint.good, endpoint.bad
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port
    connection = (
        http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl_context)
        if parts.scheme == "https"
        else http.client.HTTPConnection(host, port, timeout=timeout)
    )
    headers = {"User-Agent": "exesdb-bridge-healthcheck"}
    if credentials is not None:
        # Imported only here: credentials come with a web config, whose reader is not light.
        from bridge.httpclient.client import basic_auth

        headers["Authorization"] = basic_auth(*credentials)
    try:
        connection.request("GET", parts.path or "/", headers=headers)
        response = connection.getresponse()
        # Shown in the probe's one line: a server's control characters shown as their escapes.
        status, reason = response.status, on_one_line(response.reason)
        challenge = response.getheader("WWW-Authenticate") or ""
        if endpoint.readiness and status in (200, 503):
            body = response.read(_MOST_READYZ_BODY + 1)
        else:
            body = response.read(_MOST_BODY + 1) if status in (200, 400) else b""
    # TimeoutError and ssl.SSLError are OSErrors too: the most telling reason comes first.
    except TimeoutError:
        return Verdict(False, f"{bad}: {url} did not answer within {timeout:g}s")
    except ssl.SSLCertVerificationError as exc:
        line = f"{bad}: TLS with {url} failed: {exc.reason or exc}"
        why = exc.verify_message or str(exc.reason or exc)
        return Verdict(False, line, certificate_refused=why)
    except ssl.SSLError as exc:
        return Verdict(False, f"{bad}: TLS with {url} failed: {exc.reason or exc}")
    except OSError as exc:
        return Verdict(False, f"{bad}: cannot connect to {url}: {exc.strerror or exc}")
    except http.client.HTTPException as exc:
        return Verdict(False, f"{bad}: {url} did not answer HTTP: {exc!r}")
    finally:
        connection.close()
    if endpoint.readiness and status in (200, 503):
        return _readiness_verdict(url, status, reason, body)
    if status in _NEVER_THE_BRIDGE_S:
        shown = f"{status} {reason}"
        return Verdict(False, _not_the_bridge(bad, url, endpoint.path, shown), status)
    if status == 200 and _is_healthz(body):
        return Verdict(True, f"{good}: {url} answered 200", status, from_bridge=True)
    if status == 200:
        return Verdict(False, _not_the_bridge(bad, url, "/healthz"), status)
    line = f"{bad}: {url} answered {status} {reason}".rstrip()
    if status == 400 and body.strip() == PLAIN_HTTP_REFUSAL.encode():  # Go's words, the bridge's
        # A probe without the bridge's web config asks its TLS port in plain HTTP.
        line += (
            ": this port speaks TLS: set EXESDB_WEB_CONFIG_FILE to the web config the bridge"
            " runs with, and the probe asks over https"
        )
    refused = status == 401 and bool(_REALM.search(challenge))
    if refused:
        # The bridge's basic auth, said in publish's words, not only as the status.
        line += (
            ": the user and password given (EXESDB_HEALTHCHECK_USERNAME,"
            " EXESDB_HEALTHCHECK_PASSWORD_FILE) are not one of the bridge's basic_auth_users"
            if credentials is not None
            else ": the bridge asks for one of its basic_auth_users: set"
            " EXESDB_HEALTHCHECK_USERNAME and EXESDB_HEALTHCHECK_PASSWORD_FILE"
        )
    return Verdict(False, line, status, from_bridge=refused)


def _readiness_verdict(url: str, status: int, reason: str, body: bytes) -> Verdict:
    """The verdict on a 200 or 503 from ``/readyz``: ready only on 200; a 503 line names the
    required parts ``body`` says are not ready, with their reasons, when it is the bridge's."""
    said = _readyz(body)
    from_bridge = said is not None and said[0] == (status == 200)
    if status == 200 and from_bridge:
        return Verdict(True, f"ready: {url} answered 200", status, from_bridge=True)
    if status == 200:
        return Verdict(False, _not_the_bridge("not ready", url, "/readyz"), status)
    line = f"not ready: {url} answered {status} {reason}".rstrip()
    if said is not None and said[1]:
        line += f": waiting for {', '.join(said[1])}"
    return Verdict(False, line, status, from_bridge=from_bridge)


def _not_the_bridge(bad: str, url: str, path: str, status: str = "") -> str:
    """The line for a 200 whose body is not the bridge's ``path`` answer, or for a ``status``
    (``404 Not Found``) the bridge never answers there: another server holds the address (the
    bridge could not listen there, or listens elsewhere)."""
    answered = (
        f"{status.rstrip()}, which the bridge's {path} never answers"
        if status
        else f"200, but not as the bridge's {path} answers"
    )
    return (
        f"{bad}: {url} answered {answered}: another server listens there; EXESDB_HTTP_ADDR must"
        " be the address the bridge listens on"
    )


def _readyz(body: bytes) -> tuple[bool, tuple[str, ...]] | None:
    """What a ``/readyz`` body of the bridge's says: ready or not, and each required part not
    ready (``name (reason)``, on one line); None when ``body`` is not shaped as the bridge's."""
    try:
        answer = json.loads(body) if len(body) <= _MOST_READYZ_BODY else None
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser
        return None
    if not isinstance(answer, dict) or not isinstance(answer.get("ready"), bool):
        return None
    checks = answer.get("checks")
    if not isinstance(checks, dict) or not all(isinstance(c, dict) for c in checks.values()):
        return None
    waiting = tuple(
        f"{_one_line(name)} ({_one_line(check['reason'])})"
        if check.get("reason")
        else _one_line(name)
        for name, check in checks.items()
        if check.get("required") and not check.get("ready")
    )
    return answer["ready"], waiting


def _one_line(text: object) -> str:
    """``text`` as one printable line, at most ``_MOST_REASON`` characters: the probe's output
    is one line, whatever a reason holds."""
    line = "".join(c if c.isprintable() else " " for c in " ".join(str(text).split()))
    return line if len(line) <= _MOST_REASON else line[: _MOST_REASON - 1] + "…"


def _is_healthz(body: bytes) -> bool:
    """Whether ``body`` is the one the bridge's /healthz answers."""
    try:
        return len(body) <= _MOST_BODY and json.loads(body) == HEALTHZ_BODY
    except ValueError:  # not JSON, or not UTF-8
        return False


class Target(NamedTuple):
    """What to ask and how: the URL, the TLS context (for https) and basic auth credentials, and
    the problems of a web config file the bridge refuses (told in the verdict's line).

    For a refused file that turns TLS on, ``unverified`` is a context that verifies no
    certificate (presenting the probe's client certificate when it has one): asked with it, and
    without credentials, when the file's certificate does not verify the one the bridge serves
    (it serves the certificate of the version before, or that certificate expired);
    ``untrusted`` says why the file's certificate cannot even be read, so that only that context
    is asked.
    """

    url: str
    ssl_context: ssl.SSLContext | None = None
    credentials: tuple[str, str] | None = None
    refusal: tuple[str, ...] = ()
    unverified: ssl.SSLContext | None = None
    untrusted: str = ""


class _Unusable(BridgeError):
    """The probe cannot be made as the configuration asks; the message says what to set."""


class _Untrusted(_Unusable):
    """The server's certificate named by the web config cannot be read or has none."""


def pinned_context(cert_file: str | Path) -> ssl.SSLContext:
    """A client context trusting only the first certificate of ``cert_file`` (the server's own).

    That certificate is the only trust anchor (OpenSSL's partial-chain flag lets a leaf be one),
    so no other certificate passes, whoever signed it; the host name is not checked since the
    probe asks the listening address (loopback for a wildcard), which the certificate need not
    name.
    """
    from bridge.regular_files import MAX_FILE_BYTES, read_bounded  # with a web config alone

    # PEM is ASCII; the text around it (a bundle's labels) may be in any encoding, which
    # OpenSSL passes over as the bridge's server loads the file: read byte for byte, no more
    # than such a file may hold, and never a FIFO (waited on for a writer past --timeout).
    return _pinned(read_bounded(cert_file, MAX_FILE_BYTES).decode("latin-1"), str(cert_file))


def own_certificate_context(tls: TLSServerConfig) -> ssl.SSLContext:
    """A client context trusting only the server's own certificate that ``tls`` names (its
    ``cert_file``'s first, else its inline ``cert``'s), pinned as ``pinned_context`` pins it:
    ssl.SSLError for no certificate there, OSError for a file that cannot be read."""
    if tls.cert_file:
        return pinned_context(tls.cert_file)
    return _pinned(tls.cert or "", "the web config's cert")


def _pinned(text: str, where: str) -> ssl.SSLContext:
    first = _CERTIFICATE.search(text)
    if first is None:
        raise ssl.SSLError(0, f"no PEM certificate in {where}")  # said as its text alone
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # safe: the one trusted certificate is pinned
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.load_verify_locations(cadata=first.group(0))
    return context


def target(settings: ProbeSource, endpoint: Endpoint = LIVENESS) -> Target:
    """The probe's target as ``settings`` and the web config file describe it; ConfigError for a
    bad web config that leaves nothing to probe with, _Unusable when a setting the web config
    calls for is missing or unreadable, or the address has port 0 (the port the bridge picked is
    known to it alone).

    A bad web config file whose own ``tls_server_config`` is good (or turns no TLS on) is probed
    as that section says, with the probe's credentials when it has them, the refusal told in the
    verdict's line: the running bridge refuses that file too and serves the version before it,
    which a probe failing on the file would get restarted into a start-up that fails (exit 2).
    Its certificate may not be the one served: the target then has ``unverified`` to ask with.
    The URL is ``endpoint``'s (``/healthz``, or ``/readyz`` for ``READINESS``).
    """
    if settings.listen[1] == 0:
        raise _Unusable(f"EXESDB_HTTP_ADDR: {PICKED_PORT}; give the probe a fixed port")
    if not settings.web_config_file:
        return Target(probe_url(settings, endpoint=endpoint))
    from pathlib import Path  # here too: a probe without a web config needs no pathlib

    from bridge.webconfig.loading import judge  # only with a web config: not light

    # The key and client CA files are read only when this user may read them: a probe run as
    # the bridge's user tells a bad rotation of them; one run as another user finds the bridge.
    judged = judge(Path(settings.web_config_file), server_files="readable")
    if judged.loaded is not None:
        config = judged.loaded.config
        users = bool(config.basic_auth_users)
        return _secured(settings, config.tls, users=users, endpoint=endpoint)
    return _despite_refusal(settings, judged, endpoint)


def _despite_refusal(settings: ProbeSource, judged: Judged, endpoint: Endpoint) -> Target:
    """The target of a bridge whose web config file is bad; ConfigError (the refusal) when the
    file's TLS section cannot say how to reach it."""
    tls = judged.tls
    if tls is None and judged.tls_meant is not False:
        # TLS meant, or no YAML: nothing to trust.
        raise ConfigError([f"EXESDB_WEB_CONFIG_FILE: {problem}" for problem in judged.problems])
    if tls is None:
        found = _secured(settings, None, users=None, endpoint=endpoint)
        return found._replace(refusal=judged.problems)
    # The bridge serves the certificate of the version before, which may not be the file's.
    unverified = _with_client_certificate(settings, tls, _open_context())
    try:
        found = _secured(settings, tls, users=None, endpoint=endpoint)
    except _Untrusted as exc:
        found = Target(probe_url(settings, tls=True, endpoint=endpoint), untrusted=str(exc))
    return found._replace(refusal=judged.problems, unverified=unverified)


def _open_context() -> ssl.SSLContext:
    """A client context that verifies no certificate: only for a refused file's TLS, asked
    without credentials."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _with_client_certificate(
    settings: ProbeSource, tls: TLSServerConfig, context: ssl.SSLContext
) -> ssl.SSLContext:
    """``context`` presenting the probe's client certificate when it has one; _Unusable when it
    cannot be loaded, or is missing and ``tls`` requires one."""
    if settings.healthcheck_cert_file and settings.healthcheck_key_file:
        cert_file, key_file = settings.healthcheck_cert_file, settings.healthcheck_key_file
        try:
            load_client_certificate(context, cert_file, key_file)
        except ConfigError as exc:
            raise _Unusable("; ".join(exc.problems)) from None
    elif tls.client_auth_type in REQUIRES_CERTIFICATE:
        raise _Unusable(
            f"client_auth_type {tls.client_auth_type} needs a client certificate: set "
            "EXESDB_HEALTHCHECK_CERT_FILE and EXESDB_HEALTHCHECK_KEY_FILE"
        )
    return context


def _secured(
    settings: ProbeSource, tls: TLSServerConfig | None, *, users: bool | None, endpoint: Endpoint
) -> Target:
    """The target over ``tls`` (None: plain HTTP) with basic auth when ``users`` (None: not
    known, so the probe's credentials are sent when it has them, and not asked for)."""
    url = probe_url(settings, tls=tls is not None, endpoint=endpoint)
    context: ssl.SSLContext | None = None
    if tls is not None:
        # The schema requires cert_file or cert (inline) with TLS on.
        source = f"cert_file {tls.cert_file}" if tls.cert_file else "cert (inline)"
        try:
            context = own_certificate_context(tls)
        except ssl.SSLError as exc:
            raise _Untrusted(f"cannot trust the server's {source}: {exc}") from None
        except OSError as exc:  # the system's words, as every other file's: no "[Errno 22]"
            raise _Untrusted(f"cannot trust the server's {source}: {exc.strerror or exc}") from None
        context = _with_client_certificate(settings, tls, context)
    user, password_file = settings.healthcheck_username, settings.healthcheck_password_file
    if users is None and not (user and password_file):
        return Target(url, context)
    credentials = None
    if users is not False:
        if not user or not password_file:
            user_name, file_name = "EXESDB_HEALTHCHECK_USERNAME", "EXESDB_HEALTHCHECK_PASSWORD_FILE"
            # The one set is said set: asked to set both, a person looks at the one set.
            if not user and not password_file:
                said = f"{user_name} and {file_name}"
            elif not user:
                said = f"{user_name} too, beside {file_name}"
            else:
                said = f"{file_name} too, beside {user_name}"
            raise _Unusable(f"the web config asks for basic auth: set {said}")
        try:
            password = read_password(password_file)
        except ConfigError as exc:
            raise _Unusable("; ".join(exc.problems)) from None
        credentials = (user, password)
    return Target(url, context, credentials)


def _ask(
    where: Target,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    endpoint: Endpoint = LIVENESS,
) -> Verdict:
    """Probe ``where`` within ``timeout`` seconds in all.

    For a refused web config file whose certificate does not verify the one served or cannot be
    read, the bridge is asked again with ``where.unverified``, sending no credentials: healthy
    only on an answer shaped as the bridge's, its /healthz body with 200 or a 401 asking
    for basic auth in the bridge's realm, the line saying plainly that the certificate was not
    verified and why. For ``READINESS`` only the bridge's /readyz body with 200 is ready: its 401
    says it runs, not whether it is ready.
    """
    deadline = clock() + timeout
    unverified, why = where.unverified, where.untrusted
    if not why:
        verdict = probe(
            where.url,
            timeout=timeout,
            ssl_context=where.ssl_context,
            credentials=where.credentials,
            endpoint=endpoint,
        )
        if verdict.healthy or unverified is None or not verdict.certificate_refused:
            return _told(verdict, where.refusal)
        refused = verdict.certificate_refused
        why = f"the served certificate did not verify against the refused file's: {refused}"
    left = max(deadline - clock(), _LEAST_TIMEOUT)
    answer = probe(where.url, timeout=left, ssl_context=unverified, endpoint=endpoint)
    if answer.from_bridge and (answer.status == 200 or not endpoint.readiness):
        line = f"{endpoint.good}: {where.url} answered {answer.status}"
        answer = Verdict(True, line, answer.status)
    elif answer.from_bridge and answer.status == 401:
        line = f"{endpoint.bad}: {where.url} answered 401, the bridge asking for credentials"
        answer = Verdict(False, line, answer.status)
    elif answer.status in (200, 401):
        line = f"{endpoint.bad}: {where.url} answered {answer.status}"
        answer = Verdict(False, f"{line}, but not as the bridge answers", answer.status)
    caveat = f"its certificate not verified and no credentials sent ({why})"
    return _told(answer._replace(line=f"{answer.line}, {caveat}"), where.refusal)


def _told(verdict: Verdict, refusal: tuple[str, ...]) -> Verdict:
    """``verdict`` with the refusal of the web config file told in its line: a healthy bridge
    serves the version before the file; an unhealthy one may be stopping on it (exit 2)."""
    if not refusal:
        return verdict
    told = (
        "the web config file is refused (the bridge serves the version before it)"
        if verdict.healthy
        else "the web config file is bad"
    )
    return verdict._replace(line=f"{verdict.line}; {told}: {'; '.join(refusal)}")


def main(timeout: float = DEFAULT_TIMEOUT, *, ready: bool = False) -> int:
    """Probe the configured address (``ready``: its ``/readyz``); print one line; return the
    exit status."""
    endpoint = READINESS if ready else LIVENESS
    try:
        # target() reads the web config file: a bad one may still leave it a target.
        where = target(ProbeSettings.from_environ(), endpoint)
    except ConfigError as exc:
        verdict = Verdict(False, f"{endpoint.bad}: bad configuration: {'; '.join(exc.problems)}")
    except _Unusable as exc:
        verdict = Verdict(False, f"{endpoint.bad}: cannot probe: {exc}")
    else:
        verdict = _ask(where, timeout, endpoint=endpoint)
    print(verdict.line, file=sys.stdout if verdict.healthy else sys.stderr)
    if not verdict.healthy and (notes := _unknown_variables(os.environ)):
        from bridge.cli.shared import warn  # not on the light path of a probe with none

        for note in notes:
            warn(note)
    return EXIT_HEALTHY if verdict.healthy else EXIT_UNHEALTHY


def _unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """The warnings the other commands give of each set ``EXESDB_*`` variable that is no setting
    (``bridge.unknown_variables``): a misspelt address leaves the probe asking the default one.
    Only an unhealthy probe with some ``EXESDB_*`` variable set beside its own pays for the whole
    configuration (pydantic), which alone knows every setting's name."""
    from bridge.unknown_variables import set_beside

    # The EXESDB_* ones alone: the probe reads no OTEL_* variable, so a misspelt one is no
    # reason for its answer.
    others = set_beside(environ, _PROBE_VARIABLES, ("EXESDB_",), near_misses=False)
    if not others:
        return []
    from bridge.settings import unknown_variables

    return unknown_variables(others)
