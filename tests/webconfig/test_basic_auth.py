"""Basic auth against bcrypt hashes: right and wrong passwords, and the memory of successes."""

from __future__ import annotations

import pytest

from bridge.webconfig import BasicAuthChecker
from tests.webconfig.files import basic, bcrypt_hash

ALICE = bcrypt_hash("alice-pw")
BOB = bcrypt_hash("bob-pw")


async def test_the_right_password_passes():
    """A configured user with that user's password is let in."""
    assert await BasicAuthChecker({"alice": ALICE}).check(basic("alice", "alice-pw"))


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
    """Missing, malformed, wrong or unknown credentials are refused, never raised on, and never
    remembered: asked again, a bcrypt check (if any) is made again."""
    checks: list[bool] = []
    checker = BasicAuthChecker({"alice": ALICE, "bob": BOB}, checked=checks.append)
    assert not await checker.check(header)
    first = len(checks)
    assert not await checker.check(header)
    assert checks == [False] * 2 * first


async def test_no_users_means_no_basic_auth():
    """Without users the checker is off and lets nobody in by itself."""
    checker = BasicAuthChecker({})
    assert not checker.enabled
    assert not await checker.check(basic("alice", "alice-pw"))


async def test_a_success_is_remembered_and_a_failure_is_not():
    """Only successful checks are remembered (no bcrypt check again), once per distinct
    credential; a failure costs a bcrypt check every time."""
    checks: list[bool] = []
    checker = BasicAuthChecker({"alice": ALICE, "bob": BOB}, checked=checks.append)
    for _ in range(3):
        assert await checker.check(basic("alice", "alice-pw"))
    assert checks == [True]
    for _ in range(2):
        assert not await checker.check(basic("bob", "wrong"))
    assert checks == [True, False, False]
    assert await checker.check(basic("bob", "bob-pw"))
    assert await checker.check(basic("alice", "alice-pw"))
    assert checks == [True, False, False, True]


async def test_the_memory_is_bounded_and_keeps_the_latest():
    """Past its size the least recently used success is forgotten: checked again, it costs a
    bcrypt check; the latest do not."""
    users = {f"user{i}": bcrypt_hash(f"pw{i}") for i in range(3)}
    checks: list[bool] = []
    checker = BasicAuthChecker(users, cache_size=2, checked=checks.append)
    for i in range(3):
        assert await checker.check(basic(f"user{i}", f"pw{i}"))
    for i in (2, 1):
        assert await checker.check(basic(f"user{i}", f"pw{i}"))
    assert len(checks) == 3
    assert await checker.check(basic("user0", "pw0"))
    assert len(checks) == 4


async def test_a_changed_password_is_not_served_from_memory():
    """After the users change, the old password of a remembered user no longer passes."""
    checks: list[bool] = []
    checker = BasicAuthChecker({"alice": ALICE}, checked=checks.append)
    assert await checker.check(basic("alice", "alice-pw"))
    checker.replace({"alice": bcrypt_hash("new-pw")})
    assert not await checker.check(basic("alice", "alice-pw"))
    assert await checker.check(basic("alice", "new-pw"))
    assert checks == [True, False, True]


async def test_utf8_credentials_pass():
    """Names and passwords outside ASCII are read as UTF-8, as Prometheus sends them."""
    checker = BasicAuthChecker({"zoë": bcrypt_hash("pässwörd")})
    assert await checker.check(basic("zoë", "pässwörd"))
