"""How a failed request of the bridge's own clients is told: its kind and a text with no secret.

Webhook deliveries and Alertmanager posts fail the same ways (a timeout, a refused connection, a
file that cannot be used, a request aiohttp refuses to send) and say so the same way: some of
aiohttp's errors name the URL (``InvalidURL``), whose userinfo or path may hold a token, so every
text goes through ``bridge.redaction.redact_urls``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Final

import aiohttp

from bridge.httpclient.files import ClientSetupError
from bridge.httpclient.reasons import NO_TLS_ANSWER, connection_reason
from bridge.redaction import redact_urls

__all__ = ["REQUEST_ERRORS", "RequestFailure", "request_failure"]

# What one request may raise that is a failed attempt, not a bug: caught around every request.
REQUEST_ERRORS: Final = (TimeoutError, aiohttp.ClientError, OSError, ValueError, ClientSetupError)


_NO_CA_TRUSTED: Final = "no CA trusted here signed its certificate"
_RECEIVERS_CA: Final = (
    "a receiver's or Alertmanager's own CA goes in the tls_config ca_file of its http_config"
)
_RECEIVERS_FILE: Final = "EXESDB_WEBHOOK_CONFIG_FILE"


@dataclass(frozen=True, slots=True)
class RequestFailure:
    """``kind``: the error's class name (OpenTelemetry's ``error.type``); ``text``: what to show."""

    kind: str
    text: str


def request_failure(
    exc: BaseException, timeout: float, *, whose_ca: str = _RECEIVERS_CA
) -> RequestFailure:
    """How ``exc``, raised by a request with a ``timeout`` of that many seconds, is told;
    ``whose_ca``: where the CA of a server whose certificate chains to none trusted goes (the
    oauth2 token endpoint's is not the receiver's)."""
    kind = type(exc).__name__
    if isinstance(exc, TimeoutError):
        return RequestFailure(kind, f"timed out after {timeout:g}s")
    if isinstance(exc, ClientSetupError):
        return RequestFailure(kind, str(exc))  # names the key and why, never the content
    if isinstance(exc, aiohttp.ClientConnectorError):
        where = f"{exc.host}:{exc.port}"
        if isinstance(exc, aiohttp.ClientProxyConnectionError):  # its host is the proxy's
            where = f"the proxy {where}"
        reason = _connection_error(exc)
        if _plain_http(exc):
            reason += " (the server answered without TLS, as plain http does: is the URL http://?)"
        elif _no_ca_trusted(exc):
            reason += f" ({_NO_CA_TRUSTED}: {whose_ca}, in the receivers file {_RECEIVERS_FILE})"
        return RequestFailure(kind, f"{kind}: cannot connect to {where}: {reason}")
    shown = redact_urls(str(exc))
    if isinstance(exc, aiohttp.ClientError):
        return RequestFailure(kind, f"{kind}: {shown}" if shown else kind)
    if isinstance(exc, OSError):
        return RequestFailure(kind, f"{kind}: {redact_urls(exc.strerror or str(exc))}")
    # aiohttp refusing the request it was given (a control character in a header, say).
    return RequestFailure(kind, f"{kind}: the HTTP client refused the request: {shown}")


def _connection_error(exc: aiohttp.ClientConnectorError) -> str:
    """Why a connection could not be made (refused, no such host, the TLS handshake's reason),
    without aiohttp's text around it, which shows the SSL context's repr (``ssl:<ssl.SSLContext
    object at 0x…>``) and a certificate error as a tuple."""
    error: BaseException = exc.os_error
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        error = exc.certificate_error
    return connection_reason(error)


# OpenSSL's codes for a chain that leads to no CA the client trusts: a self-signed certificate
# (18, 19) or one whose issuer is not among the CAs (2, 20, 21). Not a name or a date, which
# another CA would not mend.
_UNTRUSTED_CHAIN: Final = frozenset({2, 18, 19, 20, 21})


def _no_ca_trusted(exc: aiohttp.ClientConnectorError) -> bool:
    """The certificate of ``exc``'s server chains to no CA the client trusts (self-signed, or a
    private CA's): what a receiver's own CA, given to the client, mends."""
    if not isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return False
    error = exc.certificate_error
    return isinstance(error, ssl.SSLCertVerificationError) and error.verify_code in _UNTRUSTED_CHAIN


def _plain_http(exc: aiohttp.ClientConnectorError) -> bool:
    """The TLS handshake of ``exc`` failed on an answer that is no TLS record (``NO_TLS_ANSWER``),
    what an https:// URL to a plain http server (Alertmanager's 9093 without a web config) gets."""
    error = exc.os_error
    return isinstance(error, ssl.SSLError) and NO_TLS_ANSWER.search(str(error)) is not None
