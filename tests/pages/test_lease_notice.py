"""The banner the pages carry of the work-queue lease, from what the alert sink says of it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from bridge.pages.sources import lease_state
from bridge.pages.widgets import lease_notice
from bridge.sinks.alerts.admin import AlertQuery
from bridge.sinks.alerts.records import (
    ActiveCounts,
    AlertDetail,
    AlertRecord,
    Delivery,
    Recipients,
)


class Sink:
    """An alert sink that says what the test tells it of the work-queue lease."""

    def __init__(self, *, holding: bool, reachable: bool, holder: str | None) -> None:
        self.holding, self.reachable, self.holder = holding, reachable, holder

    async def list_alerts(
        self, query: AlertQuery, *, by_start: bool = False
    ) -> Sequence[AlertRecord]:
        return []

    async def alert_detail(self, alert_id: str) -> AlertDetail | None:
        return None

    def active_counts(self) -> ActiveCounts:
        raise NotImplementedError  # the banner does not read it

    def recipients(self) -> Recipients:
        raise NotImplementedError  # nor this

    async def failing_receivers(self) -> Sequence[tuple[Delivery, int, int]]:
        raise NotImplementedError  # nor this

    def holds_work_queue(self) -> bool:
        return self.holding

    def work_queue_holder(self) -> str | None:
        return self.holder

    def work_queue_reachable(self) -> bool:
        return self.reachable


def banner(*, holding: bool, reachable: bool, holder: str | None = "bridge-1:aa") -> str:
    """The banner's markup for a sink in that state."""
    return str(lease_notice(lease_state(Sink(holding=holding, reachable=reachable, holder=holder))))


@pytest.mark.parametrize("reachable", [True, False], ids=["redis answers", "cut off"])
def test_the_lease_holders_pages_carry_no_banner(reachable: bool) -> None:
    """The replica that holds the lease (even cut off from Redis, until its lease lapses) and a
    bridge without an alert sink carry no banner."""
    assert banner(holding=True, reachable=reachable) == ""
    assert lease_notice(lease_state(None)) == ""


def test_another_replicas_pages_name_the_one_that_holds_the_lease() -> None:
    """A replica Redis answers, without the lease, says so and names the replica that holds it,
    or says it does not know it at the moment."""
    named = banner(holding=False, reachable=True)
    assert "This replica does not hold the alert work-queue lease" in named
    assert 'see the replica that holds it: <b class="holder"' in named
    assert "bridge-1:aa</b>" in named
    unnamed = banner(holding=False, reachable=True, holder=None)
    assert "see the replica that holds it (not known here at the moment)" in unnamed


def test_a_replica_cut_off_from_redis_says_the_lease_holder_cannot_be_known() -> None:
    """A replica Redis does not answer, without the lease, says which replica holds it cannot be
    known there, neither naming the holder it last saw nor telling to ask the holder; and that
    what is ingested meanwhile waits in its spool."""
    shown = banner(holding=False, reachable=False)
    assert shown.startswith(
        '<section class="panel notice lease" id="lease" role="status"><b>This replica cannot'
        " use Redis, so which replica holds the alert work-queue lease cannot be known"
        " here:</b> its alert list may be incomplete or out of date"
    )
    assert "wait in its spool on disk and are handled once Redis is back" in shown
    assert "bridge-1:aa" not in shown
    assert "does not hold" not in shown
