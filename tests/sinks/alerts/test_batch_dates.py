"""The dates an alert batch is judged by: when every message the sink's queue holds was taken in
after, though the queue never empties."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta

import pytest

from bridge.sinks.alerts.alert_store import RESOLVES_REMEMBERED
from bridge.sinks.alerts.batch_dates import BatchDates
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.records import Applied
from bridge.sinks.alerts.sources import AlertEvent
from tests.sinks.alerts.helpers import AT, T0, event, returns
from tests.support import ManualClock


async def handled() -> None:
    """A batch's handling that does nothing."""


async def arrived_after(dates: BatchDates) -> float | None:
    """When every message not yet handled was taken in after, by ``dates`` now."""
    return (await dates.dates()).arrived_after


async def test_a_queue_that_never_empties_still_moves_the_date_on() -> None:
    """Once every message taken in before a batch was handed over is handled, the date every
    message left was taken in after is that hand-over's, though messages were left queued at
    each: it does not stay where the queue last emptied (or before the first batch)."""
    clock = ManualClock(T0)
    dates = BatchDates(None, clock=clock)
    await dates.handle(10, 6, handled)  # 10 taken in, messages 1-4 handed over, 6 left
    assert await arrived_after(dates) == -math.inf  # 5-10 came before this hand-over too
    clock.advance(60.0)
    await dates.handle(15, 5, handled)  # 5-10 handed over, 11-15 left
    assert await arrived_after(dates) == T0
    clock.advance(60.0)
    await dates.handle(15, 3, handled)  # 11-12 handed over, none taken in since
    assert await arrived_after(dates) == T0
    clock.advance(60.0)
    await dates.handle(21, 6, handled)  # 13-15 handed over, 16-21 left
    assert await arrived_after(dates) == T0 + 120.0
    clock.advance(60.0)
    await dates.handle(21, 0, handled)  # 16-21 handed over: all it held
    assert await arrived_after(dates) == T0 + 240.0


async def test_a_batch_that_failed_moves_the_date_on_no_further() -> None:
    """A batch whose handling raised (to be handed over again) leaves the date where it was:
    its messages, taken in before, are still to be handled."""
    clock = ManualClock(T0)
    dates = BatchDates(None, clock=clock)

    async def failing() -> None:
        raise RuntimeError("the outbox failed")

    with pytest.raises(RuntimeError):
        await dates.handle(4, 0, failing)
    assert await arrived_after(dates) == -math.inf
    clock.advance(1.0)
    await dates.handle(4, 0, handled)
    assert await arrived_after(dates) == T0 + 1.0


async def test_resolves_past_their_window_in_a_queue_never_empty_are_not_counted_forgotten(
    outbox: Outbox,
) -> None:
    """In process, a queue that never empties: the resolves of unknown alerts whose window ran
    out for every message left (all taken in after it) are dropped when more come, not counted
    as forgotten at the cap, as they were while the date stayed where the queue last emptied."""
    clock = ManualClock(T0)
    dates = BatchDates(None, clock=clock)
    flood = returns(range(RESOLVES_REMEMBERED), T0 - 1, step=0)
    applied: list[Applied] = []

    async def apply(changes: Sequence[AlertEvent]) -> None:
        applied.append(
            outbox.alerts.apply(
                changes, clock(), remember_for=300.0, arrived_after=await arrived_after(dates)
            )
        )

    taken = len(flood) + 1
    await dates.handle(taken, 1, lambda: apply(flood))
    for _ in range(3):  # each batch one message, one more taken in meanwhile
        clock.advance(200.0)
        taken += 1
        await dates.handle(taken, 1, lambda: apply([]))
    newer = [event("node_failure:newer", status="resolved", at=AT + timedelta(seconds=600))]
    clock.advance(1.0)
    taken += 1
    await dates.handle(taken, 1, lambda: apply(newer))
    assert [result.forgotten for result in applied] == [0, 0, 0, 0, 0]
