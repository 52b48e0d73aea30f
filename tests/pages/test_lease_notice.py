"""The banner the pages carry of the work-queue lease, from what the alert sink says of it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from bridge.app import Bridge
from bridge.pages.sources import lease_state
from bridge.pages.status import status_live, status_view
from bridge.pages.widgets import lease_notice
from bridge.sinks.alerts.admin import AlertQuery
from bridge.sinks.alerts.records import (
    ActiveCounts,
    AlertDetail,
    AlertRecord,
    Delivery,
    Recipients,
)
from bridge.sinks.alerts.sink import AlertSink
from tests.sinks.alerts.helpers import LeaseTransport, alert_bridge


class Sink:
    """An alert sink that says what the test tells it of the work-queue lease."""

    def __init__(
        self, *, holding: bool, reachable: bool, holder: str | None, kept: bool = False
    ) -> None:
        self.holding, self.reachable, self.holder, self.kept = holding, reachable, holder, kept

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

    def work_queue_lease_kept(self) -> bool:
        return self.kept


def banner(
    *, holding: bool, reachable: bool, holder: str | None = "bridge-1:aa", kept: bool = False
) -> str:
    """The banner's markup for a sink in that state."""
    sink = Sink(holding=holding, reachable=reachable, holder=holder, kept=kept)
    return str(lease_notice(lease_state(sink)))


def test_the_lease_holders_pages_carry_no_banner() -> None:
    """The replica that holds the lease, Redis answering it, and a bridge without an alert sink
    carry no banner."""
    assert banner(holding=True, reachable=True) == ""
    assert lease_notice(lease_state(None)) == ""


def test_the_lease_holder_cut_off_from_redis_says_what_waits_and_what_follows() -> None:
    """The replica that holds the lease but cannot use Redis (until its lease lapses) says so:
    what is sent meanwhile waits in Redis unread, and a replica that can use Redis takes the work
    queue over once its lease runs out; neither that another holds it nor that none is known."""
    shown = banner(holding=True, reachable=False)
    assert shown.startswith(
        '<section class="panel notice lease" id="lease" role="status"><b>This replica holds the'
        " alert work-queue lease but cannot use Redis:</b> alerts sent since wait in Redis,"
        " unread, and its alert list may be out of date"
    )
    assert "a replica that can use Redis takes the work queue over" in shown
    assert "cannot be known" not in shown
    assert "does not hold" not in shown


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


def test_a_replica_keeping_the_lease_after_redis_lost_its_data_says_it_keeps_it() -> None:
    """A replica that keeps the lease it took back after Redis lost its data, its take-up of the
    work queue failing, says it keeps the lease and why (its open alerts are kept only in its
    outbox), that no replica serves the work queue meanwhile, and when it gives the lease back;
    not that the holder is not known, nor that another replica holds it."""
    shown = banner(holding=False, reachable=True, holder=None, kept=True)
    assert shown.startswith(
        '<section class="panel notice lease" id="lease" role="status"><b>This replica keeps the'
        " alert work-queue lease, and does not serve the work queue:</b> Redis lost its data"
        " while this replica held the lease, and taking the work queue up fails"
    )
    assert "its open alerts are kept only in its outbox" in shown
    assert "no replica serves the work queue" in shown
    assert "<code>exesdb_redis_work_queue_lease_kept 1</code>" in shown
    assert "not known here" not in shown
    assert "does not hold" not in shown
    assert banner(holding=True, reachable=True, kept=True) == ""
    assert "cannot use Redis" in banner(holding=False, reachable=False, kept=True)


async def status_page(bridge: Bridge, sink: AlertSink) -> str:
    """The status page's live part as ``bridge``, whose alert sink is ``sink``, shows it now."""
    now = time.time()
    view = await status_view(bridge, alerts_from=sink, nodes_from=None, down_from=None, now=now)
    return str(status_live(view, bridge, root="/", now=now))


async def test_the_status_page_of_a_replica_whose_sink_keeps_the_lease_says_it_keeps_it(
    tmp_path: Path,
) -> None:
    """The status page of a replica whose alert sink's transport keeps the work-queue lease
    (``exesdb_redis_work_queue_lease_kept`` 1: not leading, no holder seen) carries the banner
    saying so, its Active alerts card and empty list say its alerts may be out of date; once it
    takes the work queue up, no banner."""
    transport = LeaseTransport()
    transport.lease.kept = True
    async with alert_bridge(tmp_path, transport=transport) as (bridge, sink, _):
        kept = await status_page(bridge, sink)
        transport.lease.kept, transport.lease.leading = False, True
        taken_up = await status_page(bridge, sink)
    assert "This replica keeps the alert work-queue lease" in kept
    assert "not known here" not in kept
    assert "none here; may be out of date (the work queue not taken up)" in kept
    assert "which keeps the alert work-queue lease but has not taken the work queue up" in kept
    assert 'id="lease"' not in taken_up
