"""TLS handshakes that failed, counted by why and logged at most once a minute for each why.

asyncio reports a failed server-side handshake nowhere (outside its debug mode), so a
Prometheus scraping over plain HTTP, one that does not trust the bridge's certificate or a client
without the certificate ``client_auth_type`` asks for saw only a closed connection, and the
bridge said nothing. OpenSSL names the cause (``ssl.SSLError.reason``); the few an operator acts
on differently are told apart, as Go's servers log each handshake error. Plain HTTP, answered
400 before any handshake (``bridge.listener.plain_http``), is counted and logged here too.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry, Counter

from bridge.log_throttle import LogThrottle

__all__ = ["HandshakeFailures"]

_logger = logging.getLogger(__name__)

# Each kind: the OpenSSL reasons it covers, and what to do about it.
_KINDS: Final = {
    "plain_http": (
        {"HTTP_REQUEST", "WRONG_VERSION_NUMBER"},
        "the client speaks plain HTTP (or no TLS) to this TLS port: give it an https:// URL",
    ),
    "client_certificate": (
        {
            "PEER_DID_NOT_RETURN_A_CERTIFICATE",
            "CERTIFICATE_VERIFY_FAILED",
            "NO_CERTIFICATE_RETURNED",
        },
        "the client sent no certificate, or one client_ca_file does not sign, where the web"
        " config's client_auth_type asks for one",
    ),
    "server_certificate": (
        {
            "TLSV1_ALERT_UNKNOWN_CA",
            "SSLV3_ALERT_BAD_CERTIFICATE",
            "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
            "SSLV3_ALERT_CERTIFICATE_EXPIRED",
            "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
            "TLSV1_ALERT_DECRYPT_ERROR",
        },
        "the client refused the bridge's certificate: give it the CA that signs cert_file"
        " (Prometheus: tls_config.ca_file), a name the certificate holds, one not expired",
    ),
    "version_or_cipher": (
        {
            "UNSUPPORTED_PROTOCOL",
            "TLSV1_ALERT_PROTOCOL_VERSION",
            "NO_PROTOCOLS_AVAILABLE",
            "VERSION_TOO_LOW",
            "VERSION_TOO_HIGH",
            "NO_SHARED_CIPHER",
            "TLSV1_ALERT_INSUFFICIENT_SECURITY",
            "NO_SUITABLE_SIGNATURE_ALGORITHM",
        },
        "the client and the bridge share no TLS version or cipher (the web config's"
        " min_version, max_version, cipher_suites)",
    ),
}
_BY_REASON: Final = {reason: kind for kind, (reasons, _) in _KINDS.items() for reason in reasons}
# A client that closed mid-handshake (a TCP port check, a load balancer's probe) is counted but
# never logged: it is no fault, and such checks come every few seconds.
_CLOSED: Final = "closed"
_OTHER: Final = "other"


def _kind(exc: OSError) -> str:
    """The kind of ``exc``, a failed handshake's error: one of ``_KINDS``, closed or other."""
    if isinstance(exc, (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError)):
        return _CLOSED
    if isinstance(exc, ssl.SSLError):
        return _BY_REASON.get(exc.reason or "", _OTHER)
    return _OTHER


class HandshakeFailures:
    """``exesdb_http_tls_handshake_failures_total{kind}``, and the log line for each kind at
    most once a minute (``clock``: monotonic seconds)."""

    __slots__ = ("_counter", "_throttle")

    def __init__(
        self, registry: CollectorRegistry, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._throttle = LogThrottle(clock=clock)
        self._counter = Counter(
            "exesdb_http_tls_handshake_failures",
            "TLS handshakes that failed, by kind (plain_http, client_certificate,"
            " server_certificate, version_or_cipher, closed, other).",
            ["kind"],
            registry=registry,
        )
        for kind in (*_KINDS, _CLOSED, _OTHER):
            self._counter.labels(kind)

    def failed(self, exc: OSError, peer: object) -> None:
        """Count the handshake with ``peer`` (its address) that failed with ``exc``; log it
        unless its kind was logged in the last minute."""
        kind = _kind(exc)
        if kind == _CLOSED:
            self.closed()
            return
        reason = exc.reason if isinstance(exc, ssl.SSLError) and exc.reason else exc
        self._count(kind, reason, peer)

    def plain_http(self, peer: object) -> None:
        """Count the connection from ``peer`` that opened with a plain HTTP request (answered
        400, with no handshake tried) as a plain_http failure, logged as ``failed`` logs."""
        self._count("plain_http", "an HTTP request, answered 400", peer)

    def closed(self) -> None:
        """Count a connection its client closed before the handshake was done (never logged)."""
        self._counter.labels(_CLOSED).inc()

    def _count(self, kind: str, reason: object, peer: object) -> None:
        self._counter.labels(kind).inc()
        more = self._throttle.due(kind)
        if more is None:
            return
        hint = _KINDS[kind][1] if kind in _KINDS else "see the error"
        _logger.warning(
            "TLS handshake from %s failed (%s, %s): %s%s",
            _address(peer),
            kind,
            reason,
            hint,
            f"; {more} more of this kind since the last line" if more else "",
        )


def _address(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer)
