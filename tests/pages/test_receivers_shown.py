"""The webhook receivers as the pages show them over plain HTTP: by origin only and without user
info, each once with its deliveries, their attempts and last results, what holds an alert back, and
a failing receiver named with why and when it is tried next."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest

from tests.integration.servers.webhook import WebhookReceiver
from tests.pages.helpers import fetch, moments_only, page_bridge, raise_alert, sink_of
from tests.support import async_wait_until, free_port, wait_until

# A signed receiver retried at once and often, so an attempt shows on the page soon.
RETRYING_FAST: Final = {
    "EXESDB_WEBHOOK_SECRET": "page-test-webhook-secret",
    "EXESDB_WEBHOOK_GROUP_WAIT_MS": "0",
    "EXESDB_WEBHOOK_BACKOFF_MS": "50",
    "EXESDB_WEBHOOK_MAX_BACKOFF_MS": "100",
}


async def test_receivers_are_shown_by_origin_only(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """A webhook URL's path (often a token) never reaches the page; attempts and the last
    result do."""
    port = free_port()  # nobody listens: every attempt is refused
    hook = f"http://127.0.0.1:{port}/hooks/s3cr3t-path-token?key=s3cr3t-query"
    with page_bridge(
        tmp_path,
        EXESDB_WEBHOOK_URLS=hook,
        **RETRYING_FAST,
    ) as server:
        raise_alert(server, "a1", "one alert")

        async def attempted() -> str | None:
            _, _, body = await fetch(client, server.url + "/alerts/a1")
            return body if "ClientConnectorError" in body else None

        body = await async_wait_until(attempted, 15, "a refused attempt on the page")
    deliveries = body.split('id="deliveries"', 1)[1]
    assert f"http://127.0.0.1:{port}/…" in deliveries
    assert "s3cr3t" not in body
    assert ">pending</span>" in deliveries


@pytest.mark.parametrize(
    "userinfo", ["hookuser:s3cretpw", "T0KENUSER"], ids=["user-and-password", "user-only"]
)
async def test_receivers_are_shown_without_user_info(
    tmp_path: Path, client: aiohttp.ClientSession, userinfo: str
) -> None:
    """A receiver's user name (which may be a token) never reaches the open page, nor its
    marker: a URL of EXESDB_WEBHOOK_URLS, a url_file receiver's and the Alertmanager's are each
    shown as scheme://host:port, the receivers with their digest."""
    ports = [free_port(), free_port(), free_port()]  # nobody listens
    url_file = tmp_path / "hook-url"
    url_file.write_text(f"http://{userinfo}@127.0.0.1:{ports[1]}/hooks/from-file\n")
    config = tmp_path / "receivers.yml"
    config.write_text(f"webhook_configs:\n  - url_file: {url_file}\n")
    with page_bridge(
        tmp_path / "state",
        EXESDB_WEBHOOK_URLS=f"http://{userinfo}@127.0.0.1:{ports[0]}/hooks/TOKENPATH?key=k",
        EXESDB_WEBHOOK_CONFIG_FILE=str(config),
        EXESDB_ALERTMANAGER_URL=f"http://{userinfo}@127.0.0.1:{ports[2]}",
        **RETRYING_FAST,
    ) as server:
        raise_alert(server, "a1", "one alert")
        _, _, body = await fetch(client, server.url + "/alerts/a1")
    deliveries = body.split('id="deliveries"', 1)[1]
    origins = re.findall(r'<span class="origin">([^<]*)</span>', deliveries)
    assert len(origins) == 2
    assert re.fullmatch(re.escape(f"http://127.0.0.1:{ports[0]}/…") + "#[0-9a-f]{16}", origins[0])
    assert origins[1] == f"url_file:{url_file}"
    assert f"Alertmanager at http://127.0.0.1:{ports[2]}/… is sent" in deliveries
    for secret in ("hookuser", "s3cretpw", "T0KENUSER", "TOKENPATH", "redacted"):
        assert secret not in body


async def test_an_alerts_page_counts_the_attempts_of_a_delivery_and_shows_its_last_result(
    tmp_path: Path, client: aiohttp.ClientSession, webhook_receiver
) -> None:
    """A delivery a real receiver answered 503, then 200, shows as delivered after 2 attempts
    with HTTP 200 as its last result."""
    receiver: WebhookReceiver = webhook_receiver().script(503)
    with page_bridge(
        tmp_path,
        EXESDB_WEBHOOK_URLS=receiver.url,
        **RETRYING_FAST,
    ) as server:
        raise_alert(server, "a1", "one alert")

        async def delivered() -> str | None:
            _, _, body = await fetch(client, server.url + "/alerts/a1")
            deliveries = body.split('id="deliveries"', 1)[1]
            return deliveries if ">delivered</span>" in deliveries else None

        deliveries = await async_wait_until(delivered, 15, "the delivery shown delivered")
    [row] = [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in deliveries.split("<tbody>", 1)[1].split("</tbody>", 1)[0].split("<tr>")[1:]
    ]
    assert row[1:4] == ["delivered", "2", "HTTP 200"]
    assert [r.answer.status for r in receiver.requests] == [503, 200]


async def test_an_alert_held_back_by_a_failing_delivery_says_what_holds_it_and_until_when(
    tmp_path: Path, client: aiohttp.ClientSession, webhook_receiver
) -> None:
    """An alert raised while an older delivery to its receiver fails waits in the grouping
    window, held: its page says so, with that delivery's attempts, last result and next
    attempt, when the receiver is tried next, not "not tried yet, next attempt due"."""
    receiver: WebhookReceiver = webhook_receiver().script(*[503] * 5)
    with page_bridge(
        tmp_path,
        EXESDB_WEBHOOK_URLS=receiver.url,
        EXESDB_WEBHOOK_SECRET="page-test-webhook-secret",
        EXESDB_WEBHOOK_GROUP_WAIT_MS="0",
        EXESDB_WEBHOOK_BACKOFF_MS="120000",  # the first delivery's retry lies far ahead
    ) as server:
        raise_alert(server, "a1", "the first alert")

        def attempted() -> Any:
            detail = server.run(sink_of(server).alert_detail("a1"))
            return detail.deliveries if detail and detail.deliveries[0].attempts else None

        [head] = wait_until(attempted, 15, "the first alert's delivery attempted")
        raise_alert(server, "a2", "the second alert")

        async def queued() -> str | None:
            _, _, body = await fetch(client, server.url + "/alerts/a2?part=live")
            deliveries = body.split('id="deliveries"', 1)[1]
            return deliveries if "<tbody>" in deliveries else None

        deliveries = moments_only(await async_wait_until(queued, 15, "the second alert waiting"))
    [row] = [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in deliveries.split("<tbody>", 1)[1].split("</tbody>", 1)[0].split("<tr>")[1:]
    ]
    assert row[1:5] == [
        "waiting",
        "0",
        "held in the grouping window while an older delivery to this receiver fails"
        " (1 attempt, last HTTP 503)",
        f"next attempt {int(head.next_attempt_at)}",
    ]
    assert head.next_attempt_at > head.created_at + 60  # its retry, not its first attempt
    assert "not tried yet" not in deliveries


@pytest.mark.parametrize(
    ("value", "moment"),
    [("9e999", 253_402_300_799), ("'nan'", -62_135_596_800)],
    ids=["infinite", "nan"],
)
async def test_an_outbox_hand_edited_to_an_infinite_or_nan_time_is_shown_not_a_500(
    tmp_path: Path, client: aiohttp.ClientSession, webhook_receiver, value: str, moment: int
) -> None:
    """An outbox edited by hand to an infinite time (SQLite reads `9e999` as one) or a NaN for
    an alert's start and a failing delivery's next attempt (around the triggers that refuse
    such a next attempt, or from before them): the status page and the alert's page, whole and
    live, count the start from the nearest time there is (the year 9999's last second; the year
    1's for NaN, Go's zero time), as `outbox list` shows them; the next attempt, planned again
    at the largest backoff (5 min), from then, not from the year 9999."""
    receiver: WebhookReceiver = webhook_receiver().script(*[503] * 5)
    settings = {
        "EXESDB_WEBHOOK_URLS": receiver.url,
        "EXESDB_WEBHOOK_SECRET": "page-test-webhook-secret",
        "EXESDB_WEBHOOK_GROUP_WAIT_MS": "0",
        "EXESDB_WEBHOOK_BACKOFF_MS": "120000",  # no retry before the bridge stops
    }
    with page_bridge(tmp_path, **settings) as server:
        raise_alert(server, "a1", "one alert")
        wait_until(lambda: receiver.requests, 15, "the alert's delivery attempted")
    with contextlib.closing(sqlite3.connect(tmp_path / "alerts.sqlite3")) as db, db:
        db.execute(f"UPDATE alerts SET starts_at = {value}")
        db.execute("DROP TRIGGER next_attempt_changed")
        db.execute(f"UPDATE deliveries SET next_attempt_at = {value}")
    with page_bridge(tmp_path, **settings) as server:
        started = time.time()
        if value == "9e999":  # planned again by the receiver's worker as it looks

            async def planned_again() -> bool:
                body = (await fetch(client, server.url + "/"))[2]
                return "data-until=" in body and f'data-until="{moment}"' not in body

            await async_wait_until(planned_again, 15, "the next attempt planned again")
        pages = {
            path: await fetch(client, server.url + path)
            for path in ("/", "/?part=live", "/alerts/a1", "/alerts/a1?part=live")
        }
    assert {path: status for path, (status, _, _) in pages.items()} == dict.fromkeys(pages, 200)
    for path, (_, _, body) in pages.items():
        assert f'data-since="{moment}"' in body, path  # the alert's start
        if value == "9e999":  # a NaN is due: the bridge tries it again at once
            [until] = {int(at) for at in re.findall(r'data-until="(-?[0-9]+)"', body)}
            assert started <= until <= time.time() + 300, path  # the delivery's next attempt


async def test_the_status_page_names_a_failing_receiver_with_why_and_when_it_is_tried_next(
    tmp_path: Path, client: aiohttp.ClientSession, webhook_receiver
) -> None:
    """A receiver whose oldest delivery failed is named above the alerts, origin only, with
    its last result, attempts, how many deliveries wait for it (and alerts in the grouping
    window it holds) and when it is tried next; a receiver that takes its deliveries is not
    named; nothing of their paths is shown."""
    failing: WebhookReceiver = webhook_receiver(path="/TOKENPATH").script(*[503] * 5)
    working: WebhookReceiver = webhook_receiver(path="/OTHERPATH")
    with page_bridge(
        tmp_path,
        EXESDB_WEBHOOK_URLS=f"{failing.url},{working.url}",
        EXESDB_WEBHOOK_SECRET="page-test-webhook-secret",
        EXESDB_WEBHOOK_GROUP_WAIT_MS="0",
        EXESDB_WEBHOOK_BACKOFF_MS="120000",  # the first delivery's retry lies far ahead
    ) as server:
        labels = [receiver.label for receiver in sink_of(server).receivers]
        raise_alert(server, "a1", "the first alert")
        await async_wait_until(lambda: failing.requests and working.requests, 15, "attempts")
        raise_alert(server, "a2", "the second alert")

        async def named() -> str | None:
            _, _, body = await fetch(client, server.url + "/?part=live")
            return body if "1 alert held" in body else None

        body = moments_only(await async_wait_until(named, 15, "the failing receiver named"))
    notice = body.split('id="receivers"', 1)[1].split("</section>", 1)[0]
    text = " ".join(re.sub(r"<[^>]+>", " ", notice).split())
    assert labels[0] in text
    assert labels[1] not in body
    assert re.search(
        r"failing: HTTP 503 \(1 attempt\); 1 delivery waits \(and 1 alert held in its"
        r" grouping window\), the oldest for \d+; next attempt \d+",
        text,
    ), text
    assert "TOKENPATH" not in body
    assert "OTHERPATH" not in body
    assert body.index('id="receivers"') < body.index('id="alerts"')


async def test_an_alerts_page_shows_each_receiver_once_with_its_own_deliveries(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """The receivers of EXESDB_WEBHOOK_URLS and of the receivers file each appear once, by
    label, holding their own attempts; none is called removed."""
    refused = [free_port(), free_port()]  # nobody listens: every attempt is refused
    config = tmp_path / "receivers.yml"
    config.write_text(f"webhook_configs:\n  - url: http://127.0.0.1:{refused[1]}/from-file\n")
    with page_bridge(
        tmp_path / "state",
        EXESDB_WEBHOOK_URLS=f"http://127.0.0.1:{refused[0]}/from-env",
        EXESDB_WEBHOOK_CONFIG_FILE=str(config),
        EXESDB_WEBHOOK_GROUP_WAIT_MS="0",
        EXESDB_WEBHOOK_BACKOFF_MS="50",
        EXESDB_WEBHOOK_MAX_BACKOFF_MS="100",
    ) as server:
        raise_alert(server, "a1", "one alert")
        labels = [receiver.label for receiver in sink_of(server).receivers]

        async def attempted() -> str | None:
            _, _, body = await fetch(client, server.url + "/alerts/a1")
            deliveries = body.split('id="deliveries"', 1)[1]
            return deliveries if deliveries.count("ClientConnectorError") >= 2 else None

        deliveries = await async_wait_until(attempted, 15, "an attempt to each receiver")
    assert len(labels) == 2
    receivers = deliveries.split('<div class="receiver">')[1:]
    assert [part.count(label) for part, label in zip(receivers, labels, strict=True)] == [1, 1]
    assert all("ClientConnectorError" in part for part in receivers)
    assert "Nothing sent" not in deliveries
    assert "no longer" not in deliveries
