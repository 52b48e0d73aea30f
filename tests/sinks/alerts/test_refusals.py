"""What the log says of new alerts the open-alert cap refused: at once, then once a minute."""

from __future__ import annotations

import logging

import pytest

from bridge.log_throttle import LOG_EVERY
from bridge.sinks.alerts.refusals import RefusalLog
from tests.support import ManualClock


def test_refusals_are_logged_at_once_then_once_a_minute_with_how_many_came_between(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first refusal is a line; those within the minute after it are not, and the next line
    says how many they were, so a flood one alert a request writes no line a request."""
    clock = ManualClock()
    refusals = RefusalLog(10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="bridge.sinks.alerts.refusals"):
        refusals.refused(1)
        for _ in range(500):
            clock.advance(0.1)
            refusals.refused(2)
        clock.advance(LOG_EVERY)
        refusals.refused(3)
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "alerts: refused 1 new alert(s): 10 alerts are open (firing or acknowledged),"
        " 9 for an event alert",
        "alerts: refused 3 new alert(s): 10 alerts are open (firing or acknowledged),"
        " 9 for an event alert; 1000 more refused since the last line",
    ]
