"""rate_limit's token bucket: burst at once, then one request per interval (Go's rate.Limiter)."""

from __future__ import annotations

from bridge.webconfig.rate_limit import RateLimiter
from tests.support import ManualClock


def test_burst_requests_pass_then_one_per_interval() -> None:
    """A full bucket lets ``burst`` requests through; then one token comes back per interval."""
    clock = ManualClock(100.0)
    limiter = RateLimiter(2.0, 2, clock=clock)
    assert [limiter.allow() for _ in range(3)] == [True, True, False]
    clock.now += 1.0
    assert limiter.allow() is False
    clock.now += 1.0
    assert [limiter.allow(), limiter.allow()] == [True, False]
    clock.now += 60.0  # a long quiet time refills no more than the burst
    assert [limiter.allow() for _ in range(3)] == [True, True, False]


def test_a_burst_of_zero_lets_nothing_through() -> None:
    """burst 0 with an interval refuses every request, as Go's limiter does."""
    clock = ManualClock(100.0)
    limiter = RateLimiter(1.0, 0, clock=clock)
    clock.now += 10.0
    assert limiter.allow() is False
