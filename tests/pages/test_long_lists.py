"""The status page under load over plain HTTP: more firing alerts than it shows, the newest listed
and every one counted, and its renders shared by pages asked for at once and kept a second."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.messages import SystemAlert
from bridge.pages import routes
from bridge.pages.html import Html
from bridge.pages.status import MAX_SHOWN, StatusView, status_live, status_view
from tests.pages.helpers import fetch, page_bridge, publish, raise_alert, wait_for_alert
from tests.sinks.alerts.helpers import system_alert
from tests.support import async_wait_until


def fired_a_millisecond_apart(count: int) -> list[datetime]:
    """``count`` moments a millisecond apart, the last a second ago: alerts published in a loop
    would otherwise share milliseconds, and which of a tie fired first is not defined."""
    last = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    return [last - timedelta(milliseconds=count - 1 - n) for n in range(count)]


async def test_with_more_firing_alerts_than_it_shows_the_page_lists_the_newest_fired(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """With more firing alerts than MAX_SHOWN, the page lists the newest by when they fired, as
    it says: an alert raised after the others shows though every older one changed since (its
    severity raised, as an escalation or a worsening condition changes it)."""
    older = [f"old-{n:03d}" for n in range(MAX_SHOWN)]
    with page_bridge(tmp_path) as server:
        for alert_id, fired in zip(older, fired_a_millisecond_apart(MAX_SHOWN), strict=True):
            publish(server, "system_alert", system_alert(alert_id, "warning", at=fired))
        raise_alert(server, "newest", "raised after the others", severity="warning")
        for alert_id in older:
            publish(server, "system_alert", system_alert(alert_id, "critical"))
        wait_for_alert(server, older[-1], lambda record: record.severity == "critical")
        _, _, body = await fetch(client, server.url + "/?part=live")
    listed = body.split('id="alerts"', 1)[1].split("</section>", 1)[0]
    assert f"Showing the newest {MAX_SHOWN} firing" in listed
    assert "raised after the others" in listed
    assert listed.index("raised after the others") < listed.index("old-199")
    assert "old-000" not in listed  # the oldest fired is the one left out


async def test_with_exactly_as_many_firing_alerts_as_it_shows_the_page_says_none_is_left_out(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """MAX_SHOWN firing alerts are all listed, with no note that some are not shown; one more,
    and the note says the page shows the newest MAX_SHOWN."""
    note = f"Showing the newest {MAX_SHOWN} firing"
    with page_bridge(tmp_path) as server:
        for number, fired in enumerate(fired_a_millisecond_apart(MAX_SHOWN)):
            publish(server, "system_alert", system_alert(f"a-{number:03d}", "warning", at=fired))
        wait_for_alert(server, f"a-{MAX_SHOWN - 1:03d}", lambda record: True)
        _, _, every = await fetch(client, server.url + "/?part=live")
        raise_alert(server, "one-more", "one more", severity="warning")
        _, _, more = await fetch(client, server.url + "/?part=live")
    listed = every.split('id="alerts"', 1)[1].split("</section>", 1)[0]
    assert listed.count('class="title"') == MAX_SHOWN
    assert note not in listed
    listed = more.split('id="alerts"', 1)[1].split("</section>", 1)[0]
    assert listed.count('class="title"') == MAX_SHOWN
    assert note in listed
    assert "a-000" not in listed


def _alert_card(body: str) -> tuple[str, str]:
    """The Active alerts card's value and the line under it."""
    card = body.split('<div class="label">Active alerts</div>', 1)[1]
    value, sub = re.findall(r'<div class="(?:value|sub)">(.*?)</div>', card)[:2]
    return value, sub


async def test_with_more_alerts_than_it_lists_the_alerts_card_counts_them_all(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """With more firing alerts than MAX_SHOWN, the Active alerts card counts every open alert,
    by severity, not only the rows listed (the older critical ones here are left out of the
    list, not of the count)."""
    critical = [f"crit-{n:02d}" for n in range(30)]
    warning = [f"warn-{n:03d}" for n in range(MAX_SHOWN + 50)]
    moments = fired_a_millisecond_apart(len(critical) + len(warning))
    with page_bridge(tmp_path) as server:
        for alert_id, fired in zip(critical + warning, moments, strict=True):
            severity = "critical" if alert_id in critical else "warning"
            publish(server, "system_alert", system_alert(alert_id, severity, at=fired))
        wait_for_alert(server, warning[-1], lambda record: True)

        async def counted() -> tuple[str, str] | None:
            _, _, body = await fetch(client, server.url + "/?part=live")
            card = _alert_card(body)
            return card if card[0] == "280" else None

        _, sub = await async_wait_until(counted, 15, "the card counting every alert")
        _, _, body = await fetch(client, server.url + "/?part=live")
    assert sub == "30 critical, 250 warning"
    listed = body.split('id="alerts"', 1)[1].split("</section>", 1)[0]
    assert listed.count('class="title"') == MAX_SHOWN
    assert "crit-29" not in listed


async def test_status_pages_asked_for_at_once_share_their_renders(
    tmp_path: Path, client: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many status pages asked for at once are made a few times for all of them, not once
    each: taken together as many times as they were asked for, the renders held the event loop
    (and the probes behind it) for seconds. Each still shows what held when it was asked; an
    unchanged page is not rendered again."""
    asked = 32
    views: list[float] = []
    renders: list[StatusView] = []

    async def viewed(*args: Any, **kwargs: Any) -> StatusView:
        views.append(kwargs["now"])
        return await status_view(*args, **kwargs)

    def rendered(view: StatusView, *args: Any, **kwargs: Any) -> Html:
        renders.append(view)
        return status_live(view, *args, **kwargs)

    monkeypatch.setattr(routes, "status_view", viewed)
    monkeypatch.setattr(routes, "status_live", rendered)
    with page_bridge(tmp_path) as server:
        for number in range(2 * MAX_SHOWN):
            publish(server, "system_alert", _long_alert(f"big-{number:03d}"))
        wait_for_alert(server, f"big-{2 * MAX_SHOWN - 1:03d}", lambda record: True)
        url = server.url + "/?part=live"

        async def counted() -> bool:
            _, _, body = await fetch(client, url)
            return _alert_card(body)[0] == str(2 * MAX_SHOWN)

        # Every alert in the card's count (the sink's, once a second), so that nothing changes
        # from here to the burst.
        await async_wait_until(counted, 15, "the card counting every alert")
        assert views  # the counts see each turn
        assert renders  # and render
        views.clear()
        renders.clear()
        answers = await asyncio.gather(*(fetch(client, url) for _ in range(asked)))
        at_once = len(views)
        unchanged = len(renders)
        raise_alert(server, "after-the-burst", "raised after the burst")
        _, _, fresh = await fetch(client, url)
    for status, _, body in answers:
        assert status == 200
        assert body.count("long title") > MAX_SHOWN
    assert "raised after the burst" in fresh
    # Made once each, the pages asked for at once would be made 32 times; shared, each turn
    # serves every request that arrived while the one before it was under way.
    assert at_once <= asked // 4, f"{asked} pages asked for at once: {at_once} turns"
    assert unchanged == 0, f"nothing changed, yet rendered {unchanged} times"
    assert len(renders) == 1  # the new alert's


def _long_alert(alert_id: str) -> SystemAlert:
    return SystemAlert(
        alert_id=alert_id,
        severity="critical",
        category="system",
        title=f"{alert_id} " + "long title " * 20,
        description="a status page with long titles",
        source="tests",
        node="db-1",
    )


async def test_the_status_page_asked_for_in_a_loop_is_rendered_with_its_ages_once_a_second(
    tmp_path: Path, client: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page as first sent shows the ages, so it is rendered anew once its ages are a second
    old (here a minute, so that a slow machine does not matter), not for each request of a
    client asking for / in a loop; the live part (the moments) is rendered once for the
    unchanged view."""
    renders: list[float | None] = []

    def rendered(view: StatusView, *args: Any, **kwargs: Any) -> Html:
        renders.append(kwargs["now"])
        return status_live(view, *args, **kwargs)

    monkeypatch.setattr(routes, "status_live", rendered)
    monkeypatch.setattr(routes, "_AGES_KEPT_SECONDS", 60.0)
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "one alert")
        pages = [await fetch(client, server.url + "/") for _ in range(5)]
    assert [status for status, _, _ in pages] == [200] * 5
    assert renders.count(None) == 1
    assert len(renders) == 2, renders
