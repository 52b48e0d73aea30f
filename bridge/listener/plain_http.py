"""Plain HTTP on the TLS port: told from a TLS handshake by its first bytes, and answered 400.

Go's ``net/http``, and so every exporter built on exporter-toolkit, answers a plain HTTP request
sent to its TLS port ``400 Bad Request`` with ``Client sent an HTTP request to an HTTPS
server.``, where asyncio's TLS would fail the handshake and close the connection with no word:
``curl http://`` then says "Empty reply from server", and the user has no hint that the port
speaks TLS. A TLS connection opens with a handshake record (its first byte 0x16, never a
letter); a plain HTTP one with its method, uppercase letters and a space. What is neither goes
to TLS, whose handshake fails as before.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Final

from bridge.headers import PLAIN_HTTP_REFUSAL

__all__ = ["PLAIN_HTTP_ANSWER", "Opening", "opening"]

_BODY: Final = PLAIN_HTTP_REFUSAL.encode() + b"\n"
# Go's answer, with the fields a client needs to read it whole and know the connection closes.
PLAIN_HTTP_ANSWER: Final = (
    b"HTTP/1.0 400 Bad Request\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\n"
    b"Connection: close\r\n"
    b"\r\n%s" % (len(_BODY), _BODY)
)
# A request line's method (RFC 9110 allows any token; every method in use is uppercase letters).
_METHOD: Final = re.compile(rb"[A-Z]{3,16} ")
# The start of one: more bytes are needed to tell.
_METHOD_BEGUN: Final = re.compile(rb"[A-Z]{0,16}")


class Opening(Enum):
    """What a connection to the TLS port opens with."""

    TLS = "tls"  # a TLS handshake, or anything but plain HTTP: TLS fails it, as before
    HTTP = "http"  # a plain HTTP request
    UNDECIDED = "undecided"  # too few bytes yet to tell


def opening(first: bytes | bytearray) -> Opening:
    """What the connection whose first bytes are ``first`` opens with."""
    if _METHOD.match(first):
        return Opening.HTTP
    if _METHOD_BEGUN.fullmatch(first):
        return Opening.UNDECIDED
    return Opening.TLS
