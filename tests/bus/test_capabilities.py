"""The lone bridge's coordinator: decisions for itself, in bounded memory."""

from __future__ import annotations

from bridge.bus import LocalCoordinator

MAX_KEYS = 100


async def test_swap_returns_the_previous_value_until_it_expires() -> None:
    """A swap gives back what was set before, unless its time to live has passed."""
    now = [0.0]
    coordinator = LocalCoordinator(lambda: now[0])
    assert await coordinator.swap("k", "up", 1_000) is None
    assert await coordinator.swap("k", "down", 1_000) == "up"
    now[0] = 2.0
    assert await coordinator.swap("k", "up", 1_000) is None


async def test_refresh_extends_live_keys_and_sets_missing_or_expired_ones_to_their_value() -> None:
    """A refresh gives each live key a new time to live, its value kept; a key never set, or
    expired, is set to the value given, for that time to live."""
    now = [0.0]
    coordinator = LocalCoordinator(lambda: now[0])
    await coordinator.swap("live", "down", 1_000)
    await coordinator.swap("expired", "down", 500)
    now[0] = 0.9
    await coordinator.refresh({"live": "up", "expired": "up", "never": "up"}, 1_000)
    now[0] = 1.5
    assert await coordinator.swap("live", "up", 1_000) == "down"
    assert await coordinator.swap("expired", "down", 1_000) == "up"
    assert await coordinator.swap("never", "down", 1_000) == "up"
    now[0] = 3.0
    assert await coordinator.swap("never", "down", 1_000) is None  # expired since


async def test_a_flood_of_live_keys_keeps_the_recent_ones_in_bounded_memory() -> None:
    """Past its key limit, with every key still live, the least recently set keys go and the
    recent ones keep their values."""
    coordinator = LocalCoordinator(lambda: 0.0, max_keys=MAX_KEYS)
    week = 7 * 24 * 3600 * 1000
    for n in range(3 * MAX_KEYS):
        await coordinator.swap(f"node:{n}", "up", week)
    assert coordinator.kept <= MAX_KEYS + 1
    assert await coordinator.swap(f"node:{3 * MAX_KEYS - 1}", "down", week) == "up"
    assert await coordinator.swap("node:0", "down", week) is None


async def test_a_claim_per_period_is_one_in_each_period_of_the_shortest_claimer() -> None:
    """A claim holds for the rest of the period of its clock it falls in, of the caller's period
    or the last claimer's if shorter: a caller of 3 s beside one of 1 s claims only a second
    nobody claimed yet, and one of 1.5 s finds a second claimed though its own period is new."""
    now = [0.0]
    coordinator = LocalCoordinator(lambda: now[0])

    async def claims(at_ms: int, period_ms: int) -> bool:
        now[0] = at_ms / 1000
        return await coordinator.once_per_period("health", period_ms)

    assert await claims(5_100, 1_000)
    assert not await claims(5_900, 1_000)
    assert not await claims(5_950, 3_000)
    assert await claims(6_000, 1_000)
    assert not await claims(6_500, 3_000)
    assert await claims(7_000, 3_000)  # first in 7-8 s
    assert not await claims(7_500, 1_000)
    assert await claims(8_200, 1_000)
    assert not await claims(8_600, 1_500)  # 1.5 s: a new period
    # Alone now, the 3 s caller claims once in each of its own periods.
    assert await claims(9_100, 3_000)
    assert not await claims(10_100, 3_000)
    assert await claims(12_000, 3_000)


async def test_a_claim_per_period_lasts_two_periods_and_a_value_of_another_shape_is_none() -> None:
    """A claim is kept two periods after it was made, and a key holding something other than a
    claim is none."""
    now = [5.5]
    coordinator = LocalCoordinator(lambda: now[0])
    assert await coordinator.once_per_period("health", 1_000)
    now[0] = 7.4
    assert await coordinator.swap("health", "x", 10) == "5500:1000"  # kept
    now[0] = 9.0
    assert await coordinator.once_per_period("health", 1_000)
    now[0] = 11.1
    assert await coordinator.swap("health", "x", 10) is None  # gone at 11 s
    for value in ("up", "99000700", "99000700:0", "99000700:x", "²:1000"):
        await coordinator.swap("other", value, 10_000)
        assert await coordinator.once_per_period("other", 1_000)
