"""HMAC-SHA256 signing of envelopes (docs/http-api.md#ingest).

The key is ``SECRET_KEY_BASE`` as UTF-8 bytes, as in ExESDBGater. Retired keys
(``EXESDB_SECRET_KEY_BASE_PREVIOUS``) verify but never sign. Every comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

__all__ = ["SIGNATURE_HEADER", "HeaderCheck", "Keyring"]

SIGNATURE_HEADER: Final = "X-ExESDB-Signature"
# Entries of a signature header read, t among them: a key rotation sends a v1 or two more.
_MAX_HEADER_ENTRIES: Final = 16


class HeaderCheck(Enum):
    """Outcome of checking an ``X-ExESDB-Signature`` header."""

    OK = "ok"
    MISSING = "unsigned"
    BAD = "invalid_signature"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True, repr=False)
class Keyring:
    """The signing key and the retired keys still accepted for verification."""

    current: bytes
    previous: tuple[bytes, ...] = ()
    # Each key's HMAC, current first, keyed once and copied for each message: hmac.digest
    # hashes the padded key again for every message, a third of a frame's signing.
    _keyed: tuple[hmac.HMAC, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        keys = (self.current, *self.previous)
        keyed = tuple(hmac.new(key, digestmod=hashlib.sha256) for key in keys)
        object.__setattr__(self, "_keyed", keyed)

    @classmethod
    def from_secrets(cls, current: str, previous: Iterable[str] = ()) -> Keyring:
        """Build from secret strings (UTF-8 encoded); empty retired entries are ignored."""
        return cls(current.encode(), tuple(p.encode() for p in previous if p))

    def __reduce__(self) -> tuple[type[Keyring], tuple[bytes, tuple[bytes, ...]]]:
        # Copied and pickled by its keys (HMAC objects are neither): made again from them.
        return (Keyring, (self.current, self.previous))

    def __repr__(self) -> str:  # never show a key
        return f"Keyring(current=<redacted>, previous={len(self.previous)} key(s))"

    def sign(self, body: bytes) -> str:
        """Lowercase hex HMAC-SHA256 of ``body`` with the current key."""
        return _mac(self._keyed[0], body).hex()

    def verify(self, body: bytes, signature: str) -> bool:
        """True when ``signature`` is the hex HMAC of ``body`` under any accepted key."""
        try:
            given = bytes.fromhex(signature)
        except ValueError:
            return False
        ok = False
        for keyed in self._keyed:
            # No early exit: the time taken does not depend on which key matched.
            ok |= hmac.compare_digest(_mac(keyed, body), given)
        return ok

    def verify_each(self, bodies: Sequence[bytes], signatures: Sequence[str]) -> list[bool]:
        """``verify`` of each body with its signature, in order: the frames of one read in one
        loop, without a call per frame and per step of the HMAC."""
        compare, unhex = hmac.compare_digest, bytes.fromhex
        keyed = self._keyed
        verdicts: list[bool] = []
        for body, signature in zip(bodies, signatures, strict=True):
            try:
                given = unhex(signature)
            except ValueError:
                verdicts.append(False)
                continue
            ok = False
            for key in keyed:
                mac = key.copy()
                mac.update(body)
                # No early exit: the time taken does not depend on which key matched.
                ok |= compare(mac.digest(), given)
            verdicts.append(ok)
        return verdicts

    # -- HTTP, Stripe style: t=<unix seconds>,v1=<hex HMAC(key, "<t>." + body)> --

    def sign_header(self, body: bytes, unix_seconds: int) -> str:
        """The ``X-ExESDB-Signature`` value for ``body`` sent at ``unix_seconds``."""
        mac = hmac.digest(self.current, f"{unix_seconds}.".encode() + body, hashlib.sha256)
        return f"t={unix_seconds},v1={mac.hex()}"

    @staticmethod
    def header_fault(header: str) -> str | None:
        """What keeps ``header`` from the form ``t=<unix seconds>,v1=<64 hex digits>`` (None:
        it has that form): tells the two kinds of ``HeaderCheck.BAD`` apart, for the sender's
        sake. A header of more entries than are read is told so: its match, or its ``t``, may
        be among those left unread, and a mismatch would wrongly blame the key or body. Empty
        entries (a trailing comma, an empty line) are not counted, nor read."""
        entries = len(_entries(header))
        if entries > _MAX_HEADER_ENTRIES:
            return (
                f"it has {entries} entries, and only the first {_MAX_HEADER_ENTRIES} are read:"
                " send t and one v1 for each key signed with"
            )
        return _parse_header(header)[2]

    @staticmethod
    def header_missing(header: str) -> bool:
        """True when ``header`` has no entry: empty, or commas and blanks alone (as empty lines
        of it read as one list give): the sender did not sign, rather than signed wrong."""
        return not _entries(header)

    @staticmethod
    def header_time(header: str) -> int | None:
        """The ``t`` of ``header`` in unix seconds, None when it has none readable: what an
        ``EXPIRED`` answer measures the sender's clock by."""
        return _parse_header(header)[0]

    def check_header(
        self, header: str | None, body: bytes, now: float, window_seconds: float
    ) -> HeaderCheck:
        """Check a signature header: well formed, fresh, and one ``v1`` matching a key."""
        if not header or Keyring.header_missing(header):
            return HeaderCheck.MISSING
        timestamp, candidates, fault = _parse_header(header)
        if fault is not None or timestamp is None:
            return HeaderCheck.BAD
        prefix = f"{timestamp}.".encode()
        expected = [_prefixed_mac(key, prefix, body) for key in (self.current, *self.previous)]
        ok = False
        for candidate in candidates:
            for mac in expected:
                ok |= hmac.compare_digest(mac, candidate)
        if not ok:
            return HeaderCheck.BAD
        if abs(now - timestamp) > window_seconds:
            return HeaderCheck.EXPIRED
        return HeaderCheck.OK


def _mac(keyed: hmac.HMAC, body: bytes) -> bytes:
    """HMAC of ``body`` from a keyed HMAC, which stays as it is."""
    mac = keyed.copy()
    mac.update(body)
    return mac.digest()


def _prefixed_mac(key: bytes, prefix: bytes, body: bytes) -> bytes:
    """HMAC-SHA256 of ``prefix + body`` without making that copy of the body (a batch's worth,
    some hundreds of kilobytes)."""
    mac = hmac.new(key, prefix, hashlib.sha256)
    mac.update(body)
    return mac.digest()


def _entries(header: str) -> list[str]:
    """The header's entries, blanks around them removed and empty ones left out, as RFC 9110
    (section 5.6.1) has a recipient ignore a list's empty elements."""
    return [entry for part in header.split(",") if (entry := part.strip())]


def _parse_header(header: str) -> tuple[int | None, Sequence[bytes], str | None]:
    """The header's ``t``, its ``v1`` digests and what makes it malformed (None: nothing)."""
    timestamp: int | None = None
    no_timestamp = "it has no t=<unix seconds>"
    candidates: list[bytes] = []
    for entry in _entries(header)[:_MAX_HEADER_ENTRIES]:
        key, sep, value = entry.partition("=")
        if not sep:
            continue
        if key == "t":
            timestamp = None
            # ASCII digits only: str.isdigit() also takes e.g. superscripts, which int() refuses.
            if not (value.isascii() and value.isdigit() and len(value) <= 12):
                no_timestamp = "t is not a number of seconds (at most 12 digits)"
            elif len(value) > 1 and value.startswith("0"):
                # The signature covers t as sent: read as a number, the bridge's "<t>." would
                # differ from the sender's, and the answer would wrongly blame the key or body.
                no_timestamp = "t has a leading zero"
            else:
                timestamp = int(value)
        elif key == "v1" and len(value) == 64:
            try:
                candidates.append(bytes.fromhex(value))
            except ValueError:
                continue
    if timestamp is None:
        return None, candidates, no_timestamp
    if not candidates:
        return timestamp, candidates, "it has no v1=<64 hex digits>"
    return timestamp, candidates, None
