"""The server's ``ssl.SSLContext`` from ``tls_server_config``; handshakes handed to a newer one.

What Python's ``ssl`` cannot do as Go's ``crypto/tls`` does, and what is done instead:

- ``RequestClientCert`` asks for no certificate: Python cannot ask without verifying what comes,
  and the bridge never reads an unverified certificate, so who gets in is the same.
- ``RequireAnyClientCert`` verifies the certificate against the client CA (stricter).
- Without a client CA, ``VerifyClientCertIfGiven`` and ``RequireAndVerifyClientCert`` verify
  against the system's CAs, as Go does.
- TLS 1.3 cipher suites cannot be chosen (as in Go, where listing them has no effect either);
  ``cipher_suites`` restricts TLS 1.2 and below.
- ``curve_preferences`` takes one curve (``set_ecdh_curve``); Python cannot set a list.
- ``client_allowed_sans`` cannot fail the handshake (Python has no callback after verification):
  ``client_names`` reads the verified certificate's SANs, the way Go lists them, and the
  middleware refuses each request from a certificate with none of the names allowed.

Certificates rotate without a restart: the listening socket keeps its first context, whose
``sni_callback`` hands each new handshake to the context of the newest good file. OpenSSL takes
the certificate, key and client CA store from the context handed to, but fixes the client-auth
mode, TLS versions and cipher list when the connection is created, so those are also set on the
listening context (``apply_handshake_settings``). So are the curves, which a context cannot be
given back as OpenSSL's default list: changing ``curve_preferences`` needs a restart. The file is
looked at just before each connection is created (the listener's ``before_handshake``), never
in its handshake: a file taken there, too late for the connection's own client-auth mode and
versions, would let that connection in under the old ones.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Mapping
from typing import Any, Final

from bridge.errors import ConfigError
from bridge.regular_files import refuse_irregular
from bridge.tlsutil import (
    ca_file_refusal,
    cert_chain_error,
    certificate_problem,
    load_cert_chain,
    load_error,
    set_versions,
)
from bridge.webconfig.schema import TLSServerConfig

__all__ = [
    "CIPHER_SUITES",
    "apply_handshake_settings",
    "client_names",
    "served_problems",
    "server_context",
]

_VERIFY_MODES: Final = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Go's names (the IANA ones) of the suites its tls.CipherSuites() offers, with their IANA codes:
# OpenSSL names the same suites differently, and Python tells each suite's code.
CIPHER_SUITES: Final = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": 0x002F,
    "TLS_RSA_WITH_AES_256_CBC_SHA": 0x0035,
    "TLS_RSA_WITH_AES_128_GCM_SHA256": 0x009C,
    "TLS_RSA_WITH_AES_256_GCM_SHA384": 0x009D,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": 0xC009,
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": 0xC00A,
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": 0xC013,
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": 0xC014,
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": 0xC02B,
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": 0xC02C,
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": 0xC02F,
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": 0xC030,
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": 0xCCA8,
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": 0xCCA9,
    # TLS 1.3: accepted, without effect (Go's rule; Python cannot choose them either).
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
}
_TLS13_CODES: Final = frozenset({0x1301, 0x1302, 0x1303})
# OpenSSL's names of the curves of curve_preferences (Go's names).
_CURVES: Final = {
    "CurveP256": "prime256v1",
    "CurveP384": "secp384r1",
    "CurveP521": "secp521r1",
    "X25519": "X25519",
}


def server_context(tls: TLSServerConfig) -> ssl.SSLContext:
    """A server context loaded from ``tls``'s files; ConfigError naming each key at fault."""
    context, problems = _loaded(tls, key=True, client_ca=True)
    if problems:
        raise ConfigError(problems)
    return context


def served_problems(tls: TLSServerConfig, *, key: bool, client_ca: bool) -> list[str]:
    """What ``server_context`` would refuse in ``tls``, its key file read only with ``key`` (the
    certificate then checked alone) and its client CA file only with ``client_ca``: a client of
    the bridge needs neither, and may not read the key (the bridge's user's alone). A file left
    unread is still looked at: one missing, a FIFO or a device is refused."""
    return _loaded(tls, key=key, client_ca=client_ca)[1]


def _loaded(
    tls: TLSServerConfig, *, key: bool, client_ca: bool
) -> tuple[ssl.SSLContext, list[str]]:
    """A server context loaded from ``tls``'s files (the key file only with ``key``, the client
    CA file only with ``client_ca``) and every problem found: none when it can serve."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Every problem at once: the cipher suites, the certificate and key, the client CA.
    problems: list[str] = []
    try:
        apply_handshake_settings(tls, context)
    except ConfigError as exc:
        problems += exc.problems
    # aiohttp speaks HTTP/1.1 only: say so, so that no client expects h2.
    context.set_alpn_protocols(["http/1.1"])
    # No session tickets: a ticket issued under an earlier file (looser client auth, another CA)
    # must not resume a session past a reload. Scrapers keep their connection open anyway.
    context.options |= ssl.OP_NO_TICKET
    context.num_tickets = 0
    # No TLS 1.2 renegotiation a client asks for: each costs the server a handshake, a CPU
    # denial of service. OpenSSL 3 refuses it already; a build against 1.1.1 would allow it.
    context.options |= ssl.OP_NO_RENEGOTIATION
    if key or not tls.key_file:  # a key given inline was read with the web config file
        problems += _chain_problems(tls, context)
    else:
        if (problem := certificate_problem(tls.cert_file, tls.cert)) is not None:
            where = "cert_file" if tls.cert_file else "cert"
            problems.append(f"tls_server_config.{where}: {problem}")
        problems += _unread_file_problems("key_file", tls.key_file)
    if tls.client_ca_file:
        if client_ca:
            problems += _client_ca_problems(tls.client_ca_file, context)
        else:  # only the server verifies client certificates
            problems += _unread_file_problems("client_ca_file", tls.client_ca_file)
    elif tls.client_ca:
        context.load_verify_locations(cadata=tls.client_ca)  # checked by the schema
    elif tls.system_client_cas:
        # Go's crypto/tls verifies against the system's roots when ClientCAs is nil; OpenSSL
        # reads them (SSL_CERT_FILE, SSL_CERT_DIR or its defaults) for the client's purpose.
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    return context, problems


def _chain_problems(tls: TLSServerConfig, context: ssl.SSLContext) -> list[str]:
    """What keeps ``tls``'s certificate and key from loading into ``context``: none, or one."""
    try:
        # The schema requires a certificate and a key when TLS is on. An encrypted key fails here
        # rather than prompting on the terminal (nor does the toolkit take a passphrase).
        load_cert_chain(
            context,
            cert_file=tls.cert_file,
            cert=tls.cert,
            key_file=tls.key_file,
            key=tls.key.get_secret_value() if tls.key else None,
        )
    except (OSError, ssl.SSLError) as exc:
        if not isinstance(exc, ssl.SSLError) and (unread := _unread_file(tls)) is not None:
            return [unread]
        cert = (
            f"cert_file: cannot load {tls.cert_file}" if tls.cert_file else "cert: cannot load it"
        )
        key = f"key_file {tls.key_file}" if tls.key_file else "the key given inline"
        reason = cert_chain_error(exc, cert_file=tls.cert_file, key_file=tls.key_file)
        return [f"tls_server_config.{cert} with {key}: {reason}"]
    return []


def _unread_file(tls: TLSServerConfig) -> str | None:
    """The problem of ``tls``'s certificate or key file that cannot be opened (missing, not this
    user's to read), naming its option and the file: OpenSSL's refusal names neither."""
    for option, name in (("cert_file", tls.cert_file), ("key_file", tls.key_file)):
        if not name:
            continue
        try:
            # Not a FIFO, nor a device: load_cert_chain refused those unopened.
            os.close(os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
        except OSError as exc:
            return f"tls_server_config.{option}: cannot read {name}: {load_error(exc)}"
    return None


def _unread_file_problems(option: str, name: str) -> list[str]:
    """What the server would find wrong with the file ``name`` (its ``option``) that a look at
    it, without reading it, tells: that it is missing, a FIFO or a device."""
    try:
        os.stat(name)
        refuse_irregular(name)
    except PermissionError:  # a folder on its way this user may not search: the bridge's may
        return []
    except OSError as exc:
        return [f"tls_server_config.{option}: cannot load {name}: {load_error(exc)}"]
    return []


def _client_ca_problems(client_ca_file: str, context: ssl.SSLContext) -> list[str]:
    """What keeps the client CA file from loading into ``context``: none, or one."""
    try:
        refuse_irregular(client_ca_file)  # OpenSSL's open of a FIFO would wait
        context.load_verify_locations(cafile=client_ca_file)
    except ssl.SSLError:  # none, or one damaged: "PEM lib" or "no certificate" from OpenSSL
        return [
            f"tls_server_config.client_ca_file: {client_ca_file} {ca_file_refusal(client_ca_file)}"
        ]
    except OSError as exc:
        return [
            f"tls_server_config.client_ca_file: cannot load {client_ca_file}: {load_error(exc)}"
        ]
    return []


# The SAN kinds Go's toolkit compares (DNS names, emails, IP addresses, URIs), as Python's
# getpeercert() names them.
_SAN_KINDS: Final = frozenset({"DNS", "email", "IP Address", "URI"})


def client_names(peercert: Mapping[str, Any] | None) -> frozenset[str]:
    """The subject alternative names of a verified client certificate (``getpeercert()``), as
    Go writes them: an IP address in its short form (``2001:db8::1``), the others as they are."""
    names: set[str] = set()
    for kind, value in (peercert or {}).get("subjectAltName", ()):
        if kind not in _SAN_KINDS:
            continue
        value = value.strip()
        if kind == "IP Address":
            try:
                value = ipaddress.ip_address(value).compressed
            except ValueError:
                continue
        names.add(value)
    return frozenset(names)


def apply_handshake_settings(tls: TLSServerConfig, context: ssl.SSLContext) -> None:
    """Set what OpenSSL fixes when a connection is created: versions, ciphers, client auth."""
    set_versions(context, tls.min_version, tls.max_version, _openssl_ciphers(tls.cipher_suites))
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    context.verify_mode = _VERIFY_MODES[tls.client_auth_type]
    for curve in tls.curve_preferences:  # one at most (the schema's rule)
        # OpenSSL's set1_groups: the one group offered for key exchange, TLS 1.3 and 1.2 alike.
        context.set_ecdh_curve(_CURVES[curve])


def _openssl_ciphers(names: tuple[str, ...]) -> str | None:
    """OpenSSL's names of the TLS 1.2 suites asked for, as its cipher list; None (the defaults,
    ``set_versions``) when none are."""
    unknown = [name for name in names if name not in CIPHER_SUITES]
    if unknown:
        raise ConfigError(
            [
                f"tls_server_config.cipher_suites: unknown {', '.join(unknown)}; "
                f"allowed: {', '.join(CIPHER_SUITES)}"
            ]
        )
    wanted = [CIPHER_SUITES[name] for name in names if CIPHER_SUITES[name] not in _TLS13_CODES]
    if not wanted:
        return None  # none asked for (or only TLS 1.3 ones, which restrict nothing, as in Go)
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    probe.set_ciphers("ALL:COMPLEMENTOFALL")
    available = {cipher["id"] & 0xFFFF: cipher["name"] for cipher in probe.get_ciphers()}
    missing = [
        name
        for name in names
        if CIPHER_SUITES[name] in wanted and CIPHER_SUITES[name] not in available
    ]
    if missing:
        raise ConfigError(
            [
                f"tls_server_config.cipher_suites: {', '.join(missing)} not available in this "
                f"Python's OpenSSL ({ssl.OPENSSL_VERSION})"
            ]
        )
    return ":".join(available[code] for code in wanted)
