"""The one retry policy: exponential, capped, jittered, Retry-After honoured."""

from __future__ import annotations

import pytest

from bridge.backoff import Backoff


def test_doubles_from_base_up_to_the_cap() -> None:
    """Without jitter the delays double from the base and stop at the cap."""
    backoff = Backoff(base=0.5, cap=3.0, jitter=0.0)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_a_huge_failure_count_stays_at_the_cap() -> None:
    """Thousands of failures in a row neither overflow nor pass the cap."""
    assert Backoff(base=1.0, cap=60.0, jitter=0.0).delay(10_000) == 60.0


@pytest.mark.parametrize(("draw", "expected"), [(0.0, 0.8), (0.5, 1.0), (1.0, 1.2)])
def test_jitter_spreads_each_delay_around_its_nominal_value(draw: float, expected: float) -> None:
    """A draw of 0 shortens by the jitter share, 1 lengthens by it, 0.5 keeps the nominal."""
    backoff = Backoff(base=1.0, cap=10.0, jitter=0.2, rng=lambda: draw)
    assert backoff.delay(1) == pytest.approx(expected)


def test_jitter_never_passes_the_cap() -> None:
    """A lengthening draw at the cap still waits at most the cap."""
    assert Backoff(base=1.0, cap=2.0, jitter=0.5, rng=lambda: 1.0).delay(5) == 2.0


def test_a_longer_retry_after_wins_up_to_the_cap() -> None:
    """Retry-After longer than the backoff is honoured up to the cap; a shorter one is not."""
    backoff = Backoff(base=1.0, cap=5.0, jitter=0.0)
    assert backoff.delay(1, retry_after=3.0) == 3.0
    assert backoff.delay(1, retry_after=30.0) == 5.0
    assert backoff.delay(3, retry_after=0.1) == 4.0


@pytest.mark.parametrize(
    ("base", "cap", "jitter"), [(-1.0, 1.0, 0.1), (2.0, 1.0, 0.1), (1.0, 2.0, 1.5)]
)
def test_refuses_a_policy_that_makes_no_sense(base: float, cap: float, jitter: float) -> None:
    """A negative base, a cap below the base or a jitter outside [0, 1] is refused."""
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(base=base, cap=cap, jitter=jitter)
