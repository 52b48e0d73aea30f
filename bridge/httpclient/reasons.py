"""Why a connection could not be made, in the system's words, from aiohttp's errors or the stdlib's.

A refused connection is "Connection refused" whether aiohttp tried it (``failures``: the
deliveries, the Alertmanager poster) or the standard library did (``bridge.cli.exchange``: the
client commands), with no secret in the text. ``NO_TLS_ANSWER`` finds OpenSSL's words for a TLS
handshake that a server without TLS answered, as an https:// URL to a plain http port gets;
``NOT_ITS_NAME`` Python's words for a certificate that verified but is not for the host asked;
``OUT_OF_DATE`` OpenSSL's for one that would verify but for its dates.
"""

from __future__ import annotations

import os
import re
import ssl
from typing import Final

from bridge.redaction import redact_urls

__all__ = ["NOT_ITS_NAME", "NO_TLS_ANSWER", "OUT_OF_DATE", "connection_reason"]

# A TLS handshake answered by a server without TLS: its first bytes read as a wrong version
# number, which OpenSSL 3.2 and later (Debian 13's among them) tell as a record layer failure,
# the reason under it not shown.
NO_TLS_ANSWER: Final = re.compile(r"WRONG_VERSION_NUMBER|record layer failure")
# A certificate whose chain verified, for another host name or address than the one asked: OpenSSL
# checks the name only once the chain is trusted, so no CA would help.
NOT_ITS_NAME: Final = re.compile(r"Hostname mismatch|IP address mismatch")
# A certificate of the chain out of its dates (expired, or not yet valid: a clock set wrong), the
# chain otherwise trusted: another CA would not help, nor is it another certificate.
OUT_OF_DATE: Final = re.compile(r"certificate has expired|certificate is not yet valid")


def connection_reason(error: BaseException) -> str:
    """Why a connection failed with ``error`` (refused, no such host, the TLS handshake's
    reason): the system's name for its errno, else its own words."""
    if isinstance(error, OSError) and not isinstance(error, ssl.SSLError) and error.errno:
        # asyncio's own words ("Connect call failed ('127.0.0.1', 9570)") repeat the address
        # and leave out why; the system's name for the errno says it ("Connection refused").
        # Not an SSLError's errno, which is OpenSSL's, nor a resolver's negative EAI code.
        text = os.strerror(error.errno) if error.errno > 0 else error.strerror
    else:
        text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return redact_urls(text or type(error).__name__)
