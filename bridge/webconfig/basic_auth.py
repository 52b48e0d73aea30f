"""HTTP basic auth against ``basic_auth_users``: bcrypt checks, run off the loop and cached.

As in exporter-toolkit: a user name is looked up in constant time, an unknown name still costs a
bcrypt check (so timing does not tell which names exist), one check runs at a time (bcrypt is
CPU-bound on purpose), and a successful check is remembered so that a scrape every few seconds
does not pay ~70 ms each time. The memory is keyed by an HMAC, under a key of this process, of
the user, the stored hash and the password: a changed hash misses it, no password is kept, and
the file's reload empties it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Final

import bcrypt

__all__ = ["CACHE_SIZE", "BasicAuthChecker"]

CACHE_SIZE: Final = 100


class _SuccessCache:
    """The most recent successful checks, least recently used dropped first."""

    __slots__ = ("_entries", "_key", "_size")

    def __init__(self, size: int) -> None:
        self._key = secrets.token_bytes(32)
        self._size = size
        self._entries: OrderedDict[bytes, None] = OrderedDict()

    def key(self, user: str, hashed: bytes, password: str) -> bytes:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in (user.encode(), hashed, password.encode()):
            # Length-prefixed, so that no two different triples give the same input.
            mac.update(len(part).to_bytes(4, "big"))
            mac.update(part)
        return mac.digest()

    def __contains__(self, key: bytes) -> bool:
        if key in self._entries:
            self._entries.move_to_end(key)
            return True
        return False

    def add(self, key: bytes) -> None:
        self._entries[key] = None
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


class BasicAuthChecker:
    """Checks ``Authorization: Basic`` headers against the users of the web config in force."""

    __slots__ = ("_cache", "_checked", "_decoy", "_lock", "_users")

    def __init__(
        self,
        users: Mapping[str, str],
        *,
        cache_size: int = CACHE_SIZE,
        checked: Callable[[bool], None] = lambda accepted: None,
    ) -> None:
        """``checked`` is told the outcome of every bcrypt check made (a success remembered
        from an earlier one costs none)."""
        self._cache = _SuccessCache(cache_size)
        self._checked = checked
        self._lock = asyncio.Lock()
        self._users: tuple[tuple[bytes, bytes], ...] = ()
        self._decoy = b""
        self.replace(users)

    @property
    def enabled(self) -> bool:
        """True when any user is configured (no users: no basic auth, as in the toolkit)."""
        return bool(self._users)

    def replace(self, users: Mapping[str, str]) -> None:
        """Check against ``users`` from now on, and forget every remembered success."""
        # Names are compared as digests, so that a comparison's time says nothing of the length.
        self._users = tuple(
            (hashlib.sha256(name.encode()).digest(), hashed.encode())
            for name, hashed in users.items()
        )
        # An unknown name is checked against a real hash of the same cost, and then refused.
        self._decoy = self._users[0][1] if self._users else b""
        self._cache.clear()

    def _lookup(self, user: str) -> bytes | None:
        wanted = hashlib.sha256(user.encode()).digest()
        found: bytes | None = None
        for name, hashed in self._users:  # every entry, whichever matches
            if hmac.compare_digest(name, wanted):
                found = hashed
        return found

    async def check(self, authorization: str | None) -> bool:
        """True when ``authorization`` holds a configured user and that user's password."""
        if not self._users or not authorization:
            return False
        credentials = _credentials(authorization)
        if credentials is None:
            return False
        user, password = credentials
        hashed = self._lookup(user)
        key = self._cache.key(user, hashed or b"", password)
        if hashed is not None and key in self._cache:
            return True
        async with self._lock:
            matches = await asyncio.get_running_loop().run_in_executor(
                None, _bcrypt_matches, password, hashed or self._decoy
            )
        accepted = matches and hashed is not None
        self._checked(accepted)
        if accepted:
            self._cache.add(key)
        return accepted


def _credentials(authorization: str) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic`` value (RFC 7617, UTF-8), or None."""
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:  # not base64, or not UTF-8
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def _bcrypt_matches(password: str, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), hashed)
    except ValueError:  # bcrypt refuses passwords over 72 bytes: none can match
        return False
