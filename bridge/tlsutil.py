"""What the bridge's TLS server and its clients share: Go's version names and how errors read.

The web config file's ``tls_server_config`` and the receivers file's client ``tls_config`` name
versions as Go's ``crypto/tls`` does (``TLS12``) and may give a CA inline, as PEM; a certificate
or key that will not load is told by OpenSSL's reason (or the system's, for a file), never by the
file's content.
"""

from __future__ import annotations

import ssl
from typing import Final

__all__ = ["TLS_VERSIONS", "load_error", "pem_certificates"]

TLS_VERSIONS: Final = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


def load_error(exc: OSError | ssl.SSLError) -> str:
    """Why a certificate, key or CA file did not load, in a few words."""
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return exc.strerror or str(exc)


def pem_certificates(value: str | None) -> str | None:
    """``value`` when OpenSSL loads it as PEM CA certificates (a CA given inline), None when
    blank; ValueError otherwise (what a pydantic validator raises)."""
    if not value:
        return None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=value)
    except (ssl.SSLError, ValueError):
        raise ValueError(
            "must be PEM CA certificates (-----BEGIN CERTIFICATE----- …) that OpenSSL loads"
        ) from None
    return value
