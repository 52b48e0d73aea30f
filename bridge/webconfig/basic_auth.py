"""HTTP basic auth against ``basic_auth_users``: bcrypt checks, run off the loop and cached.

As in exporter-toolkit: a user name is looked up in constant time, an unknown name still costs a
bcrypt check (so timing does not tell which names exist), one check runs at a time (bcrypt is
CPU-bound on purpose), and the outcome of each check is remembered, so that a scrape every few
seconds does not pay ~70 ms each time and neither does a client repeating a wrong password. The
memory is keyed by an HMAC, under a key of this process, of the user, the stored hash and the
password: a changed hash misses it, no password is kept, and the file's reload empties it.
Successes and failures are kept apart, so that a flood of wrong passwords cannot push out the
successes a scraper relies on. A password is checked by its first 72 bytes, as Go's bcrypt checks
it (the memory still keys the whole password: a longer one differing past byte 72 costs its own
check, and passes, as in Go).

Unlike the toolkit, the checks waiting their turn are bounded: at most ``WAITING_PER_CLIENT`` for
one client address (an IPv6 one by its /64) and ``WAITING`` in all; a check beyond either is not
made (``Verdict.BUSY``, answered 429, and told to ``busy`` with the bound it hit), so that a flood
of wrong passwords cannot queue up without end, and a login from a client with nothing waiting
comes after at most ``WAITING - 1`` checks (it takes the last place). A flood from more addresses
than there are places for (``WAITING`` of ``WAITING_PER_CLIENT``) would then refuse every new
login; ``KEPT`` places more are kept for the clients the flood cannot be: loopback (the health
check's address with a wildcard or loopback ``EXESDB_HTTP_ADDR``; with another, it asks that
address and comes from it, known once let in) and the latest
``KNOWN_CLIENTS`` addresses a password was let in from, one each at a time (and one for every
loopback address together). That is a place in the queue, not a way in: checks still run one
at a time, so no address guesses faster for it.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import functools
import hashlib
import hmac
import ipaddress
import secrets
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from typing import Final

import bcrypt

__all__ = [
    "BUSY_LIMITS",
    "CACHE_SIZE",
    "KEPT",
    "KNOWN_CLIENTS",
    "WAITING",
    "WAITING_PER_CLIENT",
    "BasicAuthChecker",
    "Verdict",
]

CACHE_SIZE: Final = 100
# Checks waiting or running, for one client address and in all: at cost 10 (~70 ms each) a login
# from a client with nothing waiting is checked within about a second, inside the health check's 2.
WAITING_PER_CLIENT: Final = 4
WAITING: Final = 12
# Places beyond WAITING for known clients (loopback, or an address a password was let in from),
# and how many such addresses are remembered, the one let in longest ago forgotten first.
KEPT: Final = 4
KNOWN_CLIENTS: Final = 256
# The bound a BUSY verdict hit: the client's WAITING_PER_CLIENT, or WAITING in all.
BUSY_LIMITS: Final = ("client", "all")
# Where the checks waiting from any loopback address are counted too (no address is so named).
_LOOPBACK: Final = "loopback"
# The bytes of a password bcrypt reads; the rest is ignored, as Go's bcrypt ignores it.
_BCRYPT_PASSWORD_BYTES: Final = 72


class Verdict(enum.Enum):
    """What a check of an ``Authorization`` header found."""

    ACCEPTED = "accepted"
    REFUSED = "refused"
    # Too many checks waiting (for that client, or in all): none made; ask again later.
    BUSY = "busy"


class _Outcomes:
    """The outcomes of the latest checks: successes and failures each in a bounded memory of
    their own, least recently used dropped first."""

    __slots__ = ("_failures", "_key", "_size", "_successes")

    def __init__(self, size: int) -> None:
        self._key = secrets.token_bytes(32)
        self._size = size
        self._successes: OrderedDict[bytes, None] = OrderedDict()
        self._failures: OrderedDict[bytes, None] = OrderedDict()

    def key(self, user: str, hashed: bytes, password: str) -> bytes:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in (user.encode(), hashed, password.encode()):
            # Length-prefixed, so that no two different triples give the same input.
            mac.update(len(part).to_bytes(4, "big"))
            mac.update(part)
        return mac.digest()

    def get(self, key: bytes) -> bool | None:
        """The remembered outcome under ``key``, or None when there is none."""
        for entries, outcome in ((self._successes, True), (self._failures, False)):
            if key in entries:
                entries.move_to_end(key)
                return outcome
        return None

    def add(self, key: bytes, outcome: bool) -> None:
        entries = self._successes if outcome else self._failures
        entries[key] = None
        entries.move_to_end(key)
        while len(entries) > self._size:
            entries.popitem(last=False)

    def clear(self) -> None:
        self._successes.clear()
        self._failures.clear()


class BasicAuthChecker:
    """Checks ``Authorization: Basic`` headers against the users of the web config in force."""

    __slots__ = (
        "_busy",
        "_cache",
        "_checked",
        "_decoy",
        "_known",
        "_lock",
        "_matches",
        "_pending",
        "_users",
        "_waiting",
    )

    def __init__(
        self,
        users: Mapping[str, str],
        *,
        cache_size: int = CACHE_SIZE,
        checked: Callable[[bool], None] = lambda accepted: None,
        busy: Callable[[str], None] = lambda limit: None,
        matches: Callable[[str, bytes], bool] | None = None,
    ) -> None:
        """``checked`` is told the outcome of every bcrypt check made (an outcome remembered
        from an earlier one costs none), ``busy`` the bound (of ``BUSY_LIMITS``) each check
        not made for a BUSY verdict hit; ``cache_size`` bounds the successes remembered, and
        the failures apart; ``matches(password, hashed)`` is the check itself (bcrypt's, run
        in a thread)."""
        self._cache = _Outcomes(cache_size)
        self._matches = matches or _bcrypt_matches
        self._checked = checked
        self._busy = busy
        self._lock = asyncio.Lock()
        # The checks waiting or running, by their memory key; and how many for each client (and
        # for loopback as a whole, under _LOOPBACK).
        self._pending: dict[bytes, asyncio.Task[bool]] = {}
        self._waiting: Counter[str] = Counter()
        # Addresses (as counted in _waiting) a password was let in from, the latest last. Kept
        # when the file changes: a place in the queue, never a way in.
        self._known: OrderedDict[str, None] = OrderedDict()
        self._users: tuple[tuple[bytes, bytes], ...] = ()
        self._decoy = b""
        self.replace(users)

    @property
    def waiting(self) -> int:
        """The checks waiting their turn or running (those sharing one counted once)."""
        return len(self._pending)

    @property
    def enabled(self) -> bool:
        """True when any user is configured (no users: no basic auth, as in the toolkit)."""
        return bool(self._users)

    def replace(self, users: Mapping[str, str]) -> None:
        """Check against ``users`` from now on, and forget every remembered outcome."""
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

    async def check(self, authorization: str | None, client: str = "") -> Verdict:
        """Whether ``authorization`` holds a configured user and that user's password; BUSY
        when its check would wait behind too many others (``client``: the peer's address)."""
        if not self._users or not authorization:
            return Verdict.REFUSED
        credentials = _credentials(authorization)
        if credentials is None:
            return Verdict.REFUSED
        user, password = credentials
        hashed = self._lookup(user)
        key = self._cache.key(user, hashed or b"", password)
        group = _client_group(client)
        outcome = self._cache.get(key)
        if outcome is None:
            # Asked while a check of the same credentials waits or runs: its outcome is ours.
            pending = self._pending.get(key)
            if pending is None:
                if self._waiting[group] >= WAITING_PER_CLIENT:
                    self._busy("client")
                    return Verdict.BUSY
                # One kept place at a time for each known address, and for loopback as a whole:
                # a known address turned hostile (or sharing a flood's NAT), or a process on this
                # host sending from several of 127.0.0.0/8, cannot take them all.
                local = _loopback(client)
                holder = _LOOPBACK if local else group
                known = local or group in self._known
                kept = KEPT if known and not self._waiting[holder] else 0
                if len(self._pending) >= WAITING + kept:
                    self._busy("all")
                    return Verdict.BUSY
                counted = (group, _LOOPBACK) if local else (group,)
                self._waiting.update(counted)
                # A task of its own, so that a requester going away leaves it to the others.
                pending = asyncio.create_task(self._bcrypt(key, password, hashed, counted))
                self._pending[key] = pending
            outcome = await asyncio.shield(pending)
        if not outcome or hashed is None:
            return Verdict.REFUSED
        self._known[group] = None
        self._known.move_to_end(group)
        if len(self._known) > KNOWN_CLIENTS:
            self._known.popitem(last=False)
        return Verdict.ACCEPTED

    async def _bcrypt(
        self, key: bytes, password: str, hashed: bytes | None, counted: tuple[str, ...]
    ) -> bool:
        try:
            async with self._lock:
                matches = await asyncio.get_running_loop().run_in_executor(
                    None, self._matches, password, hashed or self._decoy
                )
            outcome = matches and hashed is not None
            self._checked(outcome)
            self._cache.add(key, outcome)
            return outcome
        finally:
            del self._pending[key]
            self._waiting.subtract(counted)
            for name in counted:
                if not self._waiting[name]:
                    del self._waiting[name]


# Asked at each request (the known addresses are kept up to date on every login let in), and
# parsing an IPv6 address takes some 20 µs: the recent ones are remembered.
@functools.lru_cache(maxsize=4 * KNOWN_CLIENTS)
def _client_group(client: str) -> str:
    """The address whose waiting checks are counted together: an IPv6 address by its /64 (one
    host's usual share), any other as given."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _loopback(client: str) -> bool:
    """Whether ``client`` is a loopback address (the health check's, with a wildcard or loopback
    EXESDB_HTTP_ADDR), IPv4-mapped too."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


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
    # bcrypt reads 72 bytes of a password: Go's CompareHashAndPassword (the toolkit's) uses the
    # first 72 and ignores the rest, as htpasswd does when it hashes, where the bcrypt package
    # raises. The same bytes here, so that a password Go lets in is let in.
    try:
        return bcrypt.checkpw(password.encode()[:_BCRYPT_PASSWORD_BYTES], hashed)
    except ValueError:  # a hash the schema let through but bcrypt cannot read
        return False
