"""The grouped alerts' book-keeping: which downs are grouped, and when a group's alert resolves."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from bridge.cluster import ALERTS_PER_INTERVAL
from bridge.cluster.groups import DownGroups
from bridge.messages import Message, SystemAlert


def raised_group(published: list[tuple[str, Message]], names: list[str]) -> DownGroups:
    """A DownGroups whose downs of ``names`` (all in one interval) raised their grouped alert."""

    def publish(topic: str, message: Message) -> bool:
        published.append((topic, message))
        return True

    groups = DownGroups(
        publish,
        node="bridge-1",
        interval=1.0,
        storm_intervals=3,
        registry=CollectorRegistry(),
    )
    for name in names:
        groups.grouped(name, 0.0)
    groups.publish(0.0)
    return groups


@pytest.mark.parametrize(("let_go", "said"), [(1, "1 node(s)"), (2, "2 node(s)")])
def test_a_grouped_alert_with_nodes_let_go_down_stays_open_and_says_how_many(
    caplog: pytest.LogCaptureFixture, let_go: int, said: str
) -> None:
    """A grouped alert some of whose nodes were let go still down is not resolved, and the
    warning says how many in words that read right for any count."""
    published: list[tuple[str, Message]] = []
    names = [f"app-{n:02d}" for n in range(ALERTS_PER_INTERVAL + 3)]
    groups = raised_group(published, names)
    [(_, alert)] = published
    assert isinstance(alert, SystemAlert)
    members = names[ALERTS_PER_INTERVAL:]
    for name in members[:let_go]:
        groups.let_go(name)
    for name in members[let_go:]:
        groups.back(name)
    caplog.set_level(logging.WARNING, "bridge.cluster")
    groups.resolve()
    assert len(published) == 1  # no AlertAck
    assert (
        f"grouped alert {alert.alert_id} stays open: {said} of it evicted down past what the "
        "monitor remembers (it needs an acknowledgement)" in caplog.text
    )
