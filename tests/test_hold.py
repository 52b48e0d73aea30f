"""Prometheus's ``for:`` (bridge.hold): a condition counts once it has held, unbroken, that long."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from bridge.hold import Hold


def _levels(hold: Hold, readings: Sequence[tuple[float, int]], key: str = "cpu") -> list[int]:
    return [hold.observe(key, level, at) for at, level in readings]


def test_a_sustained_condition_counts_once_it_has_held_for_the_hold_time() -> None:
    """Readings at 0, 30 and 60 s with a 60 s hold: only the third counts."""
    assert _levels(Hold(60), [(0, 1), (30, 1), (60, 1), (90, 1)]) == [0, 0, 1, 1]


def test_a_single_spike_never_counts() -> None:
    """One bad reading between good ones counts for nothing, and the next bad one starts afresh."""
    readings = [(0, 0), (30, 2), (60, 0), (90, 2), (120, 2)]
    assert _levels(Hold(60), readings) == [0, 0, 0, 0, 0]


def test_a_spike_above_a_held_level_counts_only_as_the_held_level() -> None:
    """Degraded for a minute, then unhealthy once: it counts as degraded, not unhealthy."""
    readings = [(0, 1), (30, 1), (60, 1), (90, 2), (120, 1), (150, 2), (180, 2), (210, 2)]
    assert _levels(Hold(60), readings) == [0, 0, 1, 1, 1, 1, 1, 2]


def test_a_higher_level_held_also_holds_the_lower_ones() -> None:
    """Unhealthy for a minute, then degraded: degraded has held since the first reading."""
    assert _levels(Hold(60), [(0, 2), (30, 2), (60, 2), (90, 1)]) == [0, 0, 2, 1]


def test_a_hold_of_zero_counts_every_reading_at_once() -> None:
    """for = 0 is no hold: each reading counts as read, and nothing is kept."""
    hold = Hold(0)
    assert _levels(hold, [(0, 2), (1, 0), (2, 1)]) == [2, 0, 1]
    assert len(hold) == 0


def test_readings_further_apart_than_forget_after_start_afresh() -> None:
    """A silence longer than forget_after is no hold: the condition starts again."""
    hold = Hold(60, forget_after=100)
    assert _levels(hold, [(0, 1), (50, 1), (200, 1), (250, 1), (260, 1)]) == [0, 0, 0, 0, 1]


def test_keys_are_held_apart_and_cleared_on_their_own() -> None:
    """Each key has its own hold; clear() ends one without touching the other."""
    hold = Hold(10)
    hold.observe("a", 1, 0)
    hold.observe("b", 1, 0)
    hold.clear("a")
    assert hold.observe("a", 1, 10) == 0
    assert hold.observe("b", 1, 10) == 1


def test_waiting_counts_the_conditions_not_held_yet() -> None:
    """waiting() counts what has not lasted yet; a held condition is no longer waiting."""
    hold = Hold(10)
    hold.observe("a", 1, 0)
    hold.observe("b", 1, 5)
    assert hold.waiting() == 2
    hold.observe("a", 1, 10)
    assert (len(hold), hold.waiting()) == (2, 1)


def test_forget_older_than_and_the_key_bound_keep_memory_bounded() -> None:
    """Stale conditions are forgotten, and beyond max_keys the least recently read one goes."""
    hold = Hold(10, forget_after=100, max_keys=2)
    hold.observe("a", 1, 0)
    hold.observe("b", 1, 50)
    hold.observe("a", 1, 60)  # a is now the most recently read
    hold.observe("c", 1, 70)  # b goes
    assert len(hold) == 2
    assert hold.observe("b", 1, 80) == 0  # started afresh, and a (read at 60) goes
    assert hold.forget_older_than(175) == 1  # c, last read at 70
    assert len(hold) == 1


def test_a_negative_hold_is_refused() -> None:
    """The hold time is 0 or more."""
    with pytest.raises(ValueError, match="for_seconds"):
        Hold(-1)
