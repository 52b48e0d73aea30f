"""The settings ``healthcheck`` reads, checked as ``bridge.settings`` checks them, but cheaply.

An exec probe runs every few seconds, so it reads only what it uses (``EXESDB_HTTP_ADDR``, the
web config file's name and the probe's own credentials) with the validators ``Settings`` uses for
them, from this module, instead of importing pydantic and every component to load the whole
configuration; the web config file itself is read by the probe's ``target``. A bad value
elsewhere stops the bridge from starting, which the probe then reports as nothing answering;
``check-config`` reports every setting, and warns (``credential_warnings``) of probe credentials
the web config would refuse, or of none set where it asks for some.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol

from bridge.choices import meant_said
from bridge.errors import ConfigError
from bridge.redaction import redact_urls

if TYPE_CHECKING:  # the schema imports pydantic, which the probe's settings do without
    import ssl

    from bridge.webconfig.schema import WebConfig

__all__ = [
    "DEFAULT_HTTP_ADDR",
    "NOT_TEXT",
    "REQUIRES_CERTIFICATE",
    "ProbeCredentials",
    "ProbeSettings",
    "client_certificate_problem",
    "credential_warnings",
    "holds_no_text",
    "load_client_certificate",
    "read_password",
    "split_addr",
    "value_problem",
    "variable_value",
]

DEFAULT_HTTP_ADDR: Final = "0.0.0.0:9570"
# The client-auth types under which the server refuses a client without a certificate.
REQUIRES_CERTIFICATE: Final = frozenset({"RequireAnyClientCert", "RequireAndVerifyClientCert"})
# A host name or an IPv4 address; an IPv6 address is checked as one.
_HOST_NAME: Final = re.compile(r"[\w.-]+")
# A host of numbers and dots only, which is meant as an IPv4 address (no top-level domain is
# numeric): one that is none ('999.1.1.1', '10.0.0') is refused, not looked up as a name.
_DOTTED_NUMBERS: Final = re.compile(r"[0-9]+(?:\.[0-9]*)+")
# Why a setting holding bytes that are no UTF-8 text is refused, its value never shown.
NOT_TEXT: Final = (
    "holds bytes that are not UTF-8 text (the value not shown), and every setting is read as"
    " text; allowed: UTF-8 text (random bytes, as from /dev/urandom, are not: for a key, e.g."
    " $(openssl rand -hex 32))"
)


def split_addr(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) into its parts, or ValueError."""
    if "/" in value:  # a URL passed as an address, failing only at listen (no host "http://…")
        # The authority, as typed: after the scheme's //, before the path, after a user@.
        authority = value.partition("://")[2] or value
        meant = _address_or_default(authority.partition("/")[0].rpartition("@")[2])
        raise ValueError(
            f"must be host:port, not a URL, e.g. {meant} (the URL people reach the bridge "
            "at goes in EXESDB_EXTERNAL_URL)"
        )
    if any(character.isspace() for character in value):  # " 127.0.0.1:9570" from an env file
        meant = _address_or_default("".join(value.split()))
        raise ValueError(f"must be host:port without spaces or other blanks, e.g. {meant}")
    if value.isascii() and value.isdigit():  # a port alone, as other tools' --port takes it
        raise ValueError(
            f"must be host:port, not a port alone: 0.0.0.0:{value} on every interface,"
            f" 127.0.0.1:{value} on loopback only"
        )
    host, sep, port = value.rpartition(":")
    bracketed = value.startswith("[") and value.endswith("]")  # [::1]: an IPv6 address alone
    if not sep or not port or bracketed:  # 'localhost', 'localhost:'
        host = value if bracketed or not sep else host
        meant = f"{host}:9570" if host and _listen_host(host) is not None else DEFAULT_HTTP_ADDR
        raise ValueError(f"must be host:port, and the port is missing, e.g. {meant}")
    # ASCII digits only: str.isdigit() takes a superscript, which int() refuses, and int() a
    # fullwidth or Arabic-Indic port, which Go's tools in front refuse.
    if not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ValueError("must be host:port with a port from 0 to 65535, e.g. 0.0.0.0:9570")
    if _DOTTED_NUMBERS.fullmatch(host) and not _is_ipv4(host):
        # '999.1.1.1' reads as a host name (the resolver finds none): run would fail at listen.
        raise ValueError(
            f"must be host:port, and the host {host} is no IPv4 address (four numbers from 0"
            " to 255, joined by dots), e.g. 0.0.0.0:9570 (every interface) or 127.0.0.1:9570"
            " (loopback)"
        )
    listened = _listen_host(host)
    if listened is None:  # '::9570', 'a?b:9570', a control character: no name, no address
        raise ValueError(
            "must be host:port, the host an IP address ([::1] for IPv6) or a host name, e.g."
            " 0.0.0.0:9570"
        )
    if ":" in host and not host.startswith("["):
        # '::1:9570' is an IPv6 address whole too: Go's net.SplitHostPort, as Prometheus and
        # the exporters read --web.listen-address, refuses it (too many colons).
        raise ValueError(
            "must be host:port, an IPv6 host in brackets; " + meant_said(f"[{host}]:{port}")
        )
    return listened or "0.0.0.0", int(port)  # noqa: S104


def _address_or_default(meant: str) -> str:
    """``meant`` when it is an address ``split_addr`` takes, else the default: the example an
    error gives, the user's own port where it can be."""
    try:
        split_addr(meant)
    except ValueError:
        return DEFAULT_HTTP_ADDR
    return meant


def _is_ipv4(host: str) -> bool:
    """Whether ``host`` is an IPv4 address as written in dotted-decimal (``1.2.3`` is not: the
    resolver's legacy reading of it as 1.2.0.3 is no address anyone means)."""
    try:
        socket.inet_pton(socket.AF_INET, host)
    except OSError:
        return False
    return True


def _listen_host(host: str) -> str | None:
    """``host`` as the bridge listens on it (an IPv6 address without its brackets), or None
    when it is no host name, IPv4 or IPv6 address, nor empty."""
    bracketed = host.startswith("[") and host.endswith("]")
    if not bracketed and (not host or _HOST_NAME.fullmatch(host)):
        return host
    address = host[1:-1] if bracketed else host
    try:
        socket.inet_pton(socket.AF_INET6, address.partition("%")[0])  # %eth0: a scope
    except OSError:
        return None
    return address


def holds_no_text(value: object) -> bool:
    """Whether ``value`` is text holding a byte that is no UTF-8, which the environment keeps
    as a lone surrogate (PEP 383's surrogateescape) and nothing can encode, show or send."""
    if not isinstance(value, str) or value.isascii():
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return True
    return False


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


def read_password(password_file: str) -> str:
    """The probe's password: ``password_file``'s text, surrounding whitespace trimmed (it is read
    at each probe); ConfigError naming the file and why when it cannot be read, is a FIFO or a
    device (``bridge.regular_files``: read, a FIFO held the probe past its timeout until a writer
    came, and ``/dev/zero`` took 8 GB in 15 s) or holds more than ``MAX_SECRET_BYTES``."""
    from bridge.regular_files import MAX_SECRET_BYTES, read_bounded

    try:
        return read_bounded(password_file, MAX_SECRET_BYTES).decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else "not UTF-8 text"
        problem = f"cannot read EXESDB_HEALTHCHECK_PASSWORD_FILE {password_file}: {reason}"
        raise ConfigError([problem]) from None


def load_client_certificate(context: ssl.SSLContext, cert_file: str, key_file: str) -> None:
    """Have ``context`` present the probe's client certificate; ConfigError saying why when it
    cannot be loaded (a file missing, a key that is not the certificate's, one encrypted: the
    empty password given makes OpenSSL refuse it rather than ask for a pass phrase on the
    terminal, or read one from standard input, at each probe and each start-up), or a file is a
    FIFO or a device, or holds more than ``MAX_FILE_BYTES`` (``bridge.regular_files``, refused
    unread: OpenSSL's open of a FIFO waits for a writer, and it reads a device without end)."""
    import ssl  # here: the client commands read this module's settings and use no TLS

    from bridge.regular_files import MAX_FILE_BYTES, refuse_irregular

    for name, path in (("CERT", cert_file), ("KEY", key_file)):
        try:
            refuse_irregular(path, limit=MAX_FILE_BYTES)
        except OSError as exc:
            problem = f"cannot load EXESDB_HEALTHCHECK_{name}_FILE {path}: {exc.strerror}"
            raise ConfigError([redact_urls(problem)]) from None
    try:
        context.load_cert_chain(cert_file, key_file, password=b"")
    except ssl.SSLError as exc:
        # Only on this path: OpenSSL's "PEM lib" names no file, and the probe imports no more.
        from bridge.tlsutil import cert_chain_error

        reason = cert_chain_error(exc, cert_file=cert_file, key_file=key_file)
        raise ConfigError([f"cannot load EXESDB_HEALTHCHECK_CERT_FILE: {reason}"]) from None
    except OSError as exc:
        raise ConfigError([f"cannot load EXESDB_HEALTHCHECK_CERT_FILE: {exc}"]) from None


class ProbeCredentials(Protocol):
    """The probe's own settings, as ``ProbeSettings`` and ``Settings`` hold them."""

    @property
    def healthcheck_username(self) -> str | None: ...
    @property
    def healthcheck_password_file(self) -> str | None: ...
    @property
    def healthcheck_cert_file(self) -> str | None: ...
    @property
    def healthcheck_key_file(self) -> str | None: ...


def credential_warnings(probe: ProbeCredentials, web: WebConfig) -> list[str]:
    """Why ``healthcheck`` would fail against the web config ``web`` with the probe's
    credentials; one line each, no password in any. None set: basic auth or a client
    certificate the web config asks for (the image's HEALTHCHECK and an exec probe run it
    whether or not anyone meant to probe). Basic auth: a user ``basic_auth_users`` does not
    list, a password file that cannot be read, one set without the other. TLS: a client
    certificate that cannot be loaded, or none where ``client_auth_type`` requires one."""
    username, password_file = probe.healthcheck_username, probe.healthcheck_password_file
    cert_file, key_file = probe.healthcheck_cert_file, probe.healthcheck_key_file
    if not (username or password_file or cert_file or key_file):
        return _none_set_warnings(web)
    notes: list[str] = []
    users = web.basic_auth_users
    fails = "so exesdb-bridge healthcheck fails against the web config's basic auth"
    if users and (not username or not password_file):
        missing = "EXESDB_HEALTHCHECK_PASSWORD_FILE" if username else "EXESDB_HEALTHCHECK_USERNAME"
        notes.append(f"{missing} is not set, {fails}")
    if users and username and username not in users:
        notes.append(
            f"EXESDB_HEALTHCHECK_USERNAME {username!r} is not among the web config's "
            f"basic_auth_users, {fails} (401)"
        )
    if users and password_file:
        try:
            read_password(password_file)
        except ConfigError as exc:
            notes.append(f"{exc.problems[0]}, {fails}")
    tls = web.tls
    fails = "so exesdb-bridge healthcheck fails against the web config's TLS"
    if tls is not None and cert_file and key_file:
        import ssl

        try:
            load_client_certificate(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), cert_file, key_file)
        except ConfigError as exc:
            notes.append(f"{exc.problems[0]}, {fails}")
    elif tls is not None and tls.client_auth_type in REQUIRES_CERTIFICATE:
        notes.append(
            f"EXESDB_HEALTHCHECK_CERT_FILE is not set and client_auth_type "
            f"{tls.client_auth_type} requires a client certificate, {fails}"
        )
    return notes


def _none_set_warnings(web: WebConfig) -> list[str]:
    """``credential_warnings`` with no ``EXESDB_HEALTHCHECK_*`` set."""
    fails = "so exesdb-bridge healthcheck (the image's HEALTHCHECK, an exec probe) fails"
    notes = []
    if web.basic_auth_users:
        notes.append(
            "the web config asks for basic auth (basic_auth_users) and neither "
            f"EXESDB_HEALTHCHECK_USERNAME nor EXESDB_HEALTHCHECK_PASSWORD_FILE is set, {fails}"
            " against it: set both, for a user of basic_auth_users"
        )
    if web.tls is not None and web.tls.client_auth_type in REQUIRES_CERTIFICATE:
        notes.append(
            f"the web config's client_auth_type {web.tls.client_auth_type} requires a client "
            "certificate and neither EXESDB_HEALTHCHECK_CERT_FILE nor "
            f"EXESDB_HEALTHCHECK_KEY_FILE is set, {fails} against it: set both"
        )
    return notes


class ProbeSettings(NamedTuple):  # not a dataclass: the probe imports no dataclasses
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
        # Bytes that are no text first (no check below can judge them); then, in load_settings'
        # order, the values and the checks across them (cross_checks).
        problems = [
            f"{name}: {NOT_TEXT}"
            for name in (f"EXESDB_{field.upper()}" for field in cls._fields)
            if holds_no_text(variable_value(env, name))
        ]
        if problems:
            raise ConfigError(problems)
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
