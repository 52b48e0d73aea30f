"""Basic auth against bcrypt hashes: right and wrong passwords, and the memory of outcomes."""

from __future__ import annotations

import asyncio
import threading

import bcrypt
import pytest

from bridge.webconfig import BasicAuthChecker
from bridge.webconfig.basic_auth import KEPT, KNOWN_CLIENTS, WAITING, WAITING_PER_CLIENT, Verdict
from tests.support import async_wait_until
from tests.webconfig.files import basic, bcrypt_hash

ALICE = bcrypt_hash("alice-pw")
BOB = bcrypt_hash("bob-pw")


async def accepted(checker: BasicAuthChecker, header: str | None, client: str = "") -> bool:
    """True when ``checker`` lets ``header`` in (neither refused nor busy)."""
    return await checker.check(header, client) is Verdict.ACCEPTED


async def places_taken(checker: BasicAuthChecker, count: int) -> None:
    """Until ``count`` checks wait their turn (or run) at ``checker``: those asked have taken
    their places."""
    await async_wait_until(lambda: checker.waiting == count, what=f"{count} checks waiting")


async def test_the_right_password_passes():
    """A configured user with that user's password is let in."""
    assert await accepted(BasicAuthChecker({"alice": ALICE}), basic("alice", "alice-pw"))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        basic("alice", "wrong"),
        basic("alice", "bob-pw"),  # another user's password
        basic("mallory", "alice-pw"),  # an unknown user with a known password
        basic("alice", "x" * 100),  # over bcrypt's 72 bytes
        "Bearer alice-pw",
        "Basic not-base64!",
        "Basic " + "YWxpY2U=",  # "alice", no colon
    ],
)
async def test_anything_else_is_refused(header: str | None):
    """Missing, malformed, wrong or unknown credentials are refused, never raised on, and cost
    at most one bcrypt check however often they are asked."""
    checks: list[bool] = []
    checker = BasicAuthChecker({"alice": ALICE, "bob": BOB}, checked=checks.append)
    for _ in range(3):
        assert not await accepted(checker, header)
    assert checks in ([], [False])


async def test_an_unknown_user_costs_one_bcrypt_check_as_a_known_one_does():
    """As in exporter-toolkit, a name that is not configured is still checked with bcrypt, once,
    against a hash of a configured user's cost, so the answer's timing does not tell which names
    exist; its password is refused even when it is that hash's."""
    compared: list[bytes] = []

    def matches(password: str, hashed: bytes) -> bool:
        compared.append(hashed)
        return bcrypt.checkpw(password.encode(), hashed)

    checker = BasicAuthChecker({"alice": ALICE}, matches=matches)
    assert not await accepted(checker, basic("mallory", "alice-pw"))
    assert not await accepted(checker, basic("alice", "wrong"))
    assert compared == [ALICE.encode(), ALICE.encode()]


async def test_no_users_means_no_basic_auth():
    """Without users the checker is off and lets nobody in by itself."""
    checker = BasicAuthChecker({})
    assert not checker.enabled
    assert not await accepted(checker, basic("alice", "alice-pw"))


async def test_each_outcome_is_remembered_and_a_right_password_after_wrong_ones_passes():
    """A success and a failure are each remembered (no bcrypt check again), once per distinct
    credential; the right password after wrong ones is checked and passes."""
    checks: list[bool] = []
    checker = BasicAuthChecker({"alice": ALICE, "bob": BOB}, checked=checks.append)
    for _ in range(3):
        assert await accepted(checker, basic("alice", "alice-pw"))
    assert checks == [True]
    for _ in range(3):
        assert not await accepted(checker, basic("bob", "wrong"))
    assert checks == [True, False]
    assert await accepted(checker, basic("bob", "bob-pw"))
    assert await accepted(checker, basic("alice", "alice-pw"))
    assert not await accepted(checker, basic("bob", "wrong"))
    assert checks == [True, False, True]


async def test_wrong_passwords_asked_at_once_cost_one_bcrypt_check():
    """A flood of the same wrong password arriving together costs one bcrypt check: the
    others wait for it (one check runs at a time) and take its outcome."""
    checks: list[bool] = []
    checker = BasicAuthChecker({"alice": ALICE}, checked=checks.append)
    outcomes = await asyncio.gather(
        *(accepted(checker, basic("alice", "guess")) for _ in range(20))
    )
    assert outcomes == [False] * 20
    assert checks == [False]


async def test_one_bcrypt_check_runs_at_a_time():
    """Distinct wrong passwords asked at once are checked one after another, never two at
    the same time (a flood uses at most one core)."""
    running: list[int] = [0]
    most: list[int] = [0]
    lock = threading.Lock()

    def counted(password: str, hashed: bytes) -> bool:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return bcrypt.checkpw(password.encode(), hashed)
        finally:
            with lock:
                running[0] -= 1

    checks: list[bool] = []
    checker = BasicAuthChecker({"alice": ALICE}, checked=checks.append, matches=counted)
    guesses = (accepted(checker, basic("alice", f"guess{i}"), f"192.0.2.{i}") for i in range(8))
    assert await asyncio.gather(*guesses) == [False] * 8
    assert checks == [False] * 8
    assert most == [1]


async def test_wrong_passwords_do_not_push_out_the_remembered_successes():
    """Failures are remembered apart from successes: more wrong passwords than the memory
    holds leave a remembered success where it is."""
    checks: list[bool] = []
    checker = BasicAuthChecker({"alice": ALICE}, cache_size=2, checked=checks.append)
    assert await accepted(checker, basic("alice", "alice-pw"))
    for i in range(5):
        assert not await accepted(checker, basic("alice", f"guess{i}"))
    assert await accepted(checker, basic("alice", "alice-pw"))
    assert checks == [True] + [False] * 5


async def test_the_memory_is_bounded_and_keeps_the_latest():
    """Past its size the least recently used success is forgotten: checked again, it costs a
    bcrypt check; the latest do not."""
    users = {f"user{i}": bcrypt_hash(f"pw{i}") for i in range(3)}
    checks: list[bool] = []
    checker = BasicAuthChecker(users, cache_size=2, checked=checks.append)
    for i in range(3):
        assert await accepted(checker, basic(f"user{i}", f"pw{i}"))
    for i in (2, 1):
        assert await accepted(checker, basic(f"user{i}", f"pw{i}"))
    assert len(checks) == 3
    assert await accepted(checker, basic("user0", "pw0"))
    assert len(checks) == 4


async def test_a_changed_password_is_not_served_from_memory():
    """After the users change, the old password of a remembered user no longer passes, and
    the new one, refused before, now does."""
    checks: list[bool] = []
    checker = BasicAuthChecker({"alice": ALICE}, checked=checks.append)
    assert await accepted(checker, basic("alice", "alice-pw"))
    assert not await accepted(checker, basic("alice", "new-pw"))
    checker.replace({"alice": bcrypt_hash("new-pw")})
    assert not await accepted(checker, basic("alice", "alice-pw"))
    assert await accepted(checker, basic("alice", "new-pw"))
    assert checks == [True, False, False, True]


async def test_utf8_credentials_pass():
    """Names and passwords outside ASCII are read as UTF-8, as Prometheus sends them."""
    checker = BasicAuthChecker({"zoë": bcrypt_hash("pässwörd")})
    assert await accepted(checker, basic("zoë", "pässwörd"))


async def test_a_password_is_checked_by_its_first_72_bytes_as_go_checks_it():
    """Go's bcrypt (the toolkit's) compares the first 72 bytes of a password and ignores the
    rest, as htpasswd ignores it when hashing: a long password passes, and so does another one
    differing only past byte 72 (its own bcrypt check, since the memory keys the whole
    password); one differing within the 72 bytes is refused."""
    head = "é" * 30 + "p" * 12  # 72 bytes in UTF-8
    hashed = bcrypt.hashpw(head.encode(), bcrypt.gensalt(4)).decode()
    checks: list[bool] = []
    checker = BasicAuthChecker({"alice": hashed}, checked=checks.append)
    assert await accepted(checker, basic("alice", head + "-the-rest-one"))
    assert await accepted(checker, basic("alice", head + "-the-rest-two"))
    assert checks == [True, True]
    assert not await accepted(checker, basic("alice", "q" + head[1:] + "-the-rest-one"))


async def test_checks_waiting_are_bounded_per_client_and_in_all():
    """While checks wait, one more from a client with WAITING_PER_CLIENT waiting, or from any
    client once WAITING wait in all, is BUSY at once, costs no bcrypt check and is told with
    the bound it hit; the same credentials as a waiting check share it, and an IPv6 client
    counts with its /64."""
    release = threading.Event()
    checks: list[bool] = []
    limits: list[str] = []

    def held(password: str, hashed: bytes) -> bool:
        release.wait(10)  # the test lets the checks go once the queue is full
        return bcrypt.checkpw(password.encode(), hashed)

    # Nothing remembered: a check of the same credentials made after the one it should have
    # shared would be a check more, not an outcome remembered.
    checker = BasicAuthChecker(
        {"alice": ALICE}, cache_size=0, checked=checks.append, busy=limits.append, matches=held
    )

    def guess(i: int, client: str) -> asyncio.Task[Verdict]:
        return asyncio.create_task(checker.check(basic("alice", f"guess{i}"), client))

    first = [guess(i, f"2001:db8::{i}") for i in range(WAITING_PER_CLIENT)]
    await places_taken(checker, WAITING_PER_CLIENT)
    assert await checker.check(basic("alice", "one-more"), "2001:db8::ff") is Verdict.BUSY
    others = [guess(100 + i, f"192.0.2.{i}") for i in range(WAITING - WAITING_PER_CLIENT)]
    shared = guess(0, "198.51.100.1")  # the same credentials as a waiting check: no place
    await places_taken(checker, WAITING)
    assert await checker.check(basic("alice", "alice-pw"), "198.51.100.2") is Verdict.BUSY
    release.set()
    assert await asyncio.gather(*first, *others, shared) == [Verdict.REFUSED] * (WAITING + 1)
    assert checks == [False] * WAITING
    assert limits == ["client", "all"]
    # Nothing waits any more: the right password is checked and passes.
    assert await checker.check(basic("alice", "alice-pw"), "2001:db8::ff") is Verdict.ACCEPTED


async def busy_now(checker: BasicAuthChecker, header: str, client: str) -> bool:
    """True when ``checker`` answers ``header`` from ``client`` BUSY at once; False when it
    waits (within 5 s: the test's held checks are let go once it fails)."""
    try:
        return await asyncio.wait_for(checker.check(header, client), 5) is Verdict.BUSY
    except TimeoutError:
        return False


class HeldChecks:
    """The bcrypt check of a checker, held until the test lets the checks go (``release``),
    so that the places fill; let go (set) to begin with."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.release.set()

    def __call__(self, password: str, hashed: bytes) -> bool:
        self.release.wait(10)  # the test lets the checks go once the places are taken
        return bcrypt.checkpw(password.encode(), hashed)


def flood(checker: BasicAuthChecker, user: str) -> list[asyncio.Task[Verdict]]:
    """WAITING wrong passwords for ``user``, four from each of a flood's addresses."""
    return [
        asyncio.create_task(checker.check(basic(user, f"flood{i}"), f"192.0.2.{i // 4}"))
        for i in range(WAITING)
    ]


async def test_places_are_kept_for_loopback_and_addresses_let_in_before():
    """With WAITING checks waiting from a flood's addresses, a first check from any other
    address is BUSY, but one from loopback or from an address a password was let in from before
    (IPv4, or IPv6 by its /64; remembered across a change of the users) takes one of KEPT
    places more, and is checked; a second from such an address while its first waits, and any
    beyond those places, is BUSY."""
    held = HeldChecks()
    limits: list[str] = []
    # A user each for the logins below, so that no two share one check.
    users = {f"user{n}": bcrypt_hash(f"pw{n}") for n in range(KEPT + 1)}
    checker = BasicAuthChecker(users, busy=limits.append, matches=held)
    clients = ("198.51.100.7", "127.0.0.1", "2001:db8:1::7", "198.51.100.8")
    for client in clients[2:] + clients[:1]:
        assert await accepted(checker, basic("user0", "pw0"), client)
    checker.replace(users)  # the file read again: no outcome remembered
    held.release.clear()
    flooding = flood(checker, "user0")
    try:
        await places_taken(checker, WAITING)
        assert await busy_now(checker, basic("user0", "pw0"), "203.0.113.9")
        kept = [asyncio.create_task(checker.check(basic("user0", "pw0"), clients[0]))]
        await places_taken(checker, WAITING + 1)
        assert await busy_now(checker, basic("user1", "guess"), clients[0])
        kept += [
            asyncio.create_task(checker.check(basic(f"user{n}", f"pw{n}"), client))
            for n, client in enumerate(clients[1:], 1)
        ]
        assert len(kept) == KEPT
        await places_taken(checker, WAITING + KEPT)
        last = basic(f"user{KEPT}", f"pw{KEPT}")
        assert await busy_now(checker, last, "2001:db8:1::8")
    finally:
        held.release.set()  # a failure must not leave the checks held
    assert await asyncio.gather(*kept) == [Verdict.ACCEPTED] * KEPT
    assert await asyncio.gather(*flooding) == [Verdict.REFUSED] * WAITING
    assert limits == ["all", "all", "all"]


async def test_only_the_latest_addresses_let_in_are_known():
    """The addresses a password was let in from are remembered up to KNOWN_CLIENTS, the one let
    in longest ago forgotten first: it no longer takes a kept place."""
    held = HeldChecks()
    checker = BasicAuthChecker({"alice": ALICE}, matches=held)
    for n in range(KNOWN_CLIENTS + 1):  # the right password is checked once, then remembered
        assert await accepted(checker, basic("alice", "alice-pw"), f"10.0.{n // 256}.{n % 256}")
    checker.replace({"alice": ALICE})
    held.release.clear()
    flooding = flood(checker, "alice")
    try:
        await places_taken(checker, WAITING)
        assert await busy_now(checker, basic("alice", "alice-pw"), "10.0.0.0")
        latest = asyncio.create_task(checker.check(basic("alice", "alice-pw"), "10.0.1.0"))
        await places_taken(checker, WAITING + 1)
    finally:
        held.release.set()  # a failure must not leave the checks held
    assert await latest is Verdict.ACCEPTED
    assert await asyncio.gather(*flooding) == [Verdict.REFUSED] * WAITING


async def test_loopback_takes_one_kept_place_at_a_time_from_any_of_its_addresses():
    """With WAITING checks waiting from a flood's addresses, loopback takes one of the KEPT
    places at a time, whichever of its addresses (127.0.0.0/8, ::1, IPv4-mapped) a check comes
    from: a process on this host cannot take them all from the addresses let in before."""
    held = HeldChecks()
    limits: list[str] = []
    checker = BasicAuthChecker({"alice": ALICE}, busy=limits.append, matches=held)
    assert await accepted(checker, basic("alice", "alice-pw"), "198.51.100.7")
    checker.replace({"alice": ALICE})
    held.release.clear()
    flooding = flood(checker, "alice")
    try:
        await places_taken(checker, WAITING)
        local = asyncio.create_task(checker.check(basic("alice", "local"), "127.0.0.5"))
        await places_taken(checker, WAITING + 1)
        for i, client in enumerate(("127.0.0.6", "::1", "::ffff:127.0.0.7")):
            assert await busy_now(checker, basic("alice", f"local{i}"), client), client
        known = asyncio.create_task(checker.check(basic("alice", "alice-pw"), "198.51.100.7"))
        await places_taken(checker, WAITING + 2)
    finally:
        held.release.set()  # a failure must not leave the checks held
    assert await local is Verdict.REFUSED
    assert await known is Verdict.ACCEPTED
    assert await asyncio.gather(*flooding) == [Verdict.REFUSED] * WAITING
    assert limits == ["all"] * 3
