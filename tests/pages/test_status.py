"""The status page's Active alerts card, from what an alert sink lists and counts."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from bridge.app import Bridge
from bridge.pages.status import MAX_SHOWN, status_live, status_view
from bridge.settings import Settings
from bridge.sinks.alerts.admin import AlertQuery
from bridge.sinks.alerts.records import (
    ActiveCounts,
    AlertDetail,
    AlertRecord,
    Delivery,
    Recipients,
)
from tests.sinks.alerts.helpers import T0
from tests.sinks.alerts.test_payload import record


class Sink:
    """An alert sink holding ``listed`` open alerts (the newest first), its last count
    ``counted`` of them by severity, and whether any fired since (``fired_since``)."""

    def __init__(
        self, listed: Sequence[AlertRecord], counted: Mapping[str, int], *, fired_since: bool
    ) -> None:
        self.listed, self.counted, self.fired_since = listed, counted, fired_since

    async def list_alerts(
        self, query: AlertQuery, *, by_start: bool = False
    ) -> Sequence[AlertRecord]:
        return [r for r in self.listed if query.state in (None, r.state)][: query.limit]

    async def alert_detail(self, alert_id: str) -> AlertDetail | None:
        return None

    def active_counts(self) -> ActiveCounts:
        return ActiveCounts(self.counted, self.fired_since)

    def recipients(self) -> Recipients:
        return Recipients((("hook", "https://hooks.example"),))

    async def failing_receivers(self) -> Sequence[tuple[Delivery, int, int]]:
        return []

    def holds_work_queue(self) -> bool:
        return True

    def work_queue_holder(self) -> str | None:
        return None

    def work_queue_reachable(self) -> bool:
        return True

    def work_queue_lease_kept(self) -> bool:
        return False


def shown(tmp_path: Path) -> Bridge:
    """A bridge, not started, for the pages to show (its settings, start and parts)."""
    settings = Settings(EXESDB_STATE_DIR=str(tmp_path))
    return Bridge(settings, registry=CollectorRegistry(), components=[])


async def alert_card(tmp_path: Path, sink: Sink) -> tuple[str, str]:
    """The Active alerts card's value and the line under it, as the status page shows ``sink``."""
    bridge = shown(tmp_path)
    view = await status_view(bridge, alerts_from=sink, nodes_from=None, down_from=None, now=T0)
    body = str(status_live(view, bridge, root="/", now=None))
    card = body.split('<div class="label">Active alerts</div>', 1)[1]
    value, sub = re.findall(r'<div class="(?:value|sub)">(.*?)</div>', card)[:2]
    return value, sub


def warnings(count: int) -> list[AlertRecord]:
    """``count`` firing warnings, the newest first."""
    return [
        record(f"w{n:03d}", severity="warning", starts_at=T0 - n, updated_at=T0 - n)
        for n in range(count)
    ]


@pytest.mark.parametrize(
    ("fired_since", "card"),
    [
        (False, ("250", "250 warning")),
        (True, ("250+", "at least 250 warning: more fired since the last count")),
    ],
    ids=["counted since", "fired since the count"],
)
async def test_the_alerts_card_says_at_least_when_alerts_fired_since_the_sinks_count(
    tmp_path: Path, fired_since: bool, card: tuple[str, str]
) -> None:
    """Past MAX_SHOWN listed, the card counts as the sink last counted; when an alert fired
    since that count, there may be more than it says, and it says "+" and "at least"."""
    sink = Sink(warnings(MAX_SHOWN + 1), {"warning": 250}, fired_since=fired_since)
    assert await alert_card(tmp_path, sink) == card


async def test_the_alerts_card_counts_what_it_lists_when_it_lists_them_all(
    tmp_path: Path,
) -> None:
    """With every open alert listed the card counts the list, exact whatever the sink's count
    says (it is not read)."""
    sink = Sink(warnings(MAX_SHOWN), {"warning": 3}, fired_since=True)
    assert await alert_card(tmp_path, sink) == (str(MAX_SHOWN), f"{MAX_SHOWN} warning")


class DeadLettering(Sink):
    """A sink with one dead-lettered delivery that needs someone."""

    def recipients(self) -> Recipients:
        return Recipients((("hook", "https://hooks.example"),), dead_letters=1)


async def test_the_dead_letter_notice_says_which_cannot_be_resent_and_when_it_goes_away(
    tmp_path: Path,
) -> None:
    """The dead-letter notice names the commands, says that a delivery for a receiver the
    bridge no longer runs with is not resent until it does again, and that each is forgotten
    after EXESDB_WEBHOOK_DEAD_LETTER_TTL_MS: a first try of a made-up receiver leaves one."""
    bridge = shown(tmp_path)
    sink = DeadLettering([], {}, fired_since=False)
    view = await status_view(bridge, alerts_from=sink, nodes_from=None, down_from=None, now=T0)
    body = str(status_live(view, bridge, root="/", now=None))
    notice = re.sub(r"<[^>]+>", "", body.split('id="dead-letters"', 1)[1].split("</section>")[0])
    assert notice.endswith(
        "exesdb-bridge outbox retry --all sends again what can be (run with the bridge's"
        " EXESDB_STATE_DIR): not one for a receiver the bridge does not run with now, until it"
        " does again; exesdb-bridge outbox drop --receiver ORIGIN deletes those of a receiver"
        " not to be used again (--all: every one). Each is forgotten"
        " EXESDB_WEBHOOK_DEAD_LETTER_TTL_MS after it died (7 days by default)."
    )
