"""What the log says of what the alert stage's caps left out: at once, then once a minute."""

from __future__ import annotations

import logging

import pytest

from bridge.log_throttle import LOG_EVERY
from bridge.sinks.alerts.alert_store import RESOLVES_REMEMBERED
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


def test_forgotten_resolves_are_logged_at_once_then_once_a_minute_apart_from_refusals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Resolves of unknown alerts forgotten at their cap are a line at once, then at most one a
    minute with how many came between, whatever refusals were told meanwhile."""
    clock = ManualClock()
    refusals = RefusalLog(10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="bridge.sinks.alerts.refusals"):
        refusals.refused(1)
        refusals.forgotten(2)
        clock.advance(1)
        refusals.forgotten(5)
        clock.advance(LOG_EVERY)
        refusals.forgotten(1)
    forgot = [record.getMessage() for record in caplog.records if "forgot" in record.getMessage()]
    why = (
        " remembered at most: a flood of returns of distinct nodes?): a firing event sent before"
        " one of them and delivered after it (a node's down after its return) now opens its"
        " alert though it was resolved"
    )
    assert forgot == [
        f"alerts: forgot 2 resolve(s) of alerts unknown here before their time"
        f" ({RESOLVES_REMEMBERED} are{why}",
        f"alerts: forgot 1 resolve(s) of alerts unknown here before their time"
        f" ({RESOLVES_REMEMBERED} are{why}; 5 more forgotten since the last line",
    ]
    assert len(caplog.records) == 3  # the refusal's line, told apart
