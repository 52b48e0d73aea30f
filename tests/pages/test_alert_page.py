"""An alert's page over plain HTTP: where it is sent, its history, its labels and annotations, a
runbook link from an allowed origin, and the level it was escalated to."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from bridge.messages import SystemAlert
from bridge.pages.widgets import utc
from bridge.sinks.alerts.sources import MAX_DETAIL_VALUE
from tests.pages.helpers import (
    fetch,
    page_bridge,
    publish,
    raise_alert,
    row_words,
    table_cells,
    wait_for_alert,
)
from tests.support import ADMIN_TOKEN


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({}, "EXESDB_WEBHOOK_CONFIG_FILE): nothing is sent."),
        (
            {"EXESDB_ALERTMANAGER_URL": "http://127.0.0.1:9"},
            "EXESDB_WEBHOOK_CONFIG_FILE): no webhook is sent. Alertmanager at http://127.0.0.1:9/…"
            " is sent this alert&#x27;s state too",
        ),
    ],
)
async def test_an_alerts_page_without_webhook_receivers_says_what_is_sent(
    tmp_path: Path, client: aiohttp.ClientSession, env: dict[str, str], said: str
) -> None:
    """Without webhook receivers an alert's page says nothing is sent, or, with Alertmanager
    configured, that no webhook is sent but Alertmanager is sent the alert (not both "nothing is
    sent" and that)."""
    with page_bridge(tmp_path, **env) as server:
        raise_alert(server, "disk_full:db-1", "Disk full")
        status, _, body = await fetch(client, server.url + "/alerts/disk_full%3Adb-1")
    assert status == 200
    assert said in " ".join(re.sub(r"<[^>]+>", " ", body).split())


async def test_the_alert_page_shows_its_history(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """Fired, escalated, acknowledged by whom with the note, then resolved with why: in the order
    they happened, each at its time (UTC), and the acknowledgement's time among the facts."""
    with page_bridge(tmp_path, EXESDB_ESCALATION_AFTER_MS="200") as server:
        raise_alert(server, "a1", "one alert")
        wait_for_alert(server, "a1", lambda record: record.level >= 2)
        records = []
        for answer, done in (
            ({"ack_note": "on it"}, lambda record: record.ack_at is not None),
            ({"resolution": "disk cleaned"}, lambda record: record.ends_at is not None),
        ):
            async with client.post(
                server.url + "/v1/alerts/a1/ack",
                json={"ack_by": "alice", **answer},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            ) as response:
                assert response.status == 200
            records.append(wait_for_alert(server, "a1", done))
        _, _, body = await fetch(client, server.url + "/alerts/a1")
    history = body.split('id="history"', 1)[1].split("</section>", 1)[0]
    events = [">Fired<", ">Escalated<", ">Acknowledged<", ">Resolved<"]
    assert [history.index(event) for event in events] == sorted(
        history.index(event) for event in events
    )
    assert "by alice: on it" in history
    assert "disk cleaned" in history
    assert ">resolved</span>" in body
    first, resolved = records  # acknowledged, then resolved (the resolution's time its ack_at)
    assert first.ack_at is not None
    assert resolved.ends_at is not None
    assert resolved.ack_at is not None
    when = {cells[1]: cells[0] for cells in table_cells(history)}
    assert when["Fired"] == utc(first.starts_at)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", when["Escalated"])
    assert when["Acknowledged"] == utc(first.ack_at)
    assert when["Resolved"] == utc(resolved.ends_at)
    facts = dict(re.findall(r"<dt>([^<]*)</dt><dd>(.*?)</dd>", body))
    assert re.sub(r"<[^>]+>", "", facts["Acknowledged at"]) == utc(resolved.ack_at)


async def test_the_history_s_firing_is_at_the_start_the_summary_shows(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """The Fired row of the history is at the alert's start, as the Summary's Started says it (the
    message's time), not at the later moment the bridge recorded it, even a second apart (.9
    before the bridge's next second); that moment is added when it is a second or more later (a
    sender's clock behind)."""
    now = time.time()
    sent = {
        "behind": datetime.fromtimestamp(now - 30, UTC),
        "just_before": datetime.fromtimestamp(math.floor(now) - 0.1, UTC),
    }
    with page_bridge(tmp_path) as server:
        for alert_id, at in sent.items():
            publish(
                server,
                "system_alert",
                SystemAlert(
                    alert_id=alert_id,
                    severity="critical",
                    category="system",
                    title="late",
                    description="sent with an earlier time",
                    source="tests",
                    node="db-1@cluster",
                    timestamp=at,
                ),
            )
        pages = {}
        for alert_id in sent:
            record = wait_for_alert(server, alert_id, lambda record: True)
            _, _, body = await fetch(client, f"{server.url}/alerts/{alert_id}")
            pages[alert_id] = (record, body)
    for alert_id, at in sent.items():
        record, body = pages[alert_id]
        assert record.starts_at == pytest.approx(at.timestamp(), abs=0.001)
        facts = dict(re.findall(r"<dt>([^<]*)</dt><dd>(.*?)</dd>", body))
        assert re.sub(r"<[^>]+>", "", facts["Started"]) == utc(record.starts_at)
        history = body.split('id="history"', 1)[1].split("</section>", 1)[0]
        [fired] = [cells for cells in table_cells(history) if cells[1] == "Fired"]
        assert fired[0] == utc(record.starts_at)
    behind = table_cells(pages["behind"][1].split('id="history"', 1)[1])[0]
    assert re.fullmatch(
        r"critical on db-1@cluster; recorded here at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC",
        behind[2],
    )


async def test_an_alerts_page_lists_its_labels_and_annotations(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """The alert's page lists each label and each annotation (summary, title, description)
    with its value, as the webhook carries them and GET /v1/alerts shows them (the data the
    page is rendered from)."""
    with page_bridge(tmp_path) as server:
        record = raise_alert(server, "disk_full:db-1", "Disk almost full on db-1")
        _, _, body = await fetch(client, server.url + "/alerts/disk_full%3Adb-1")
        async with client.get(
            server.url + "/v1/alerts?alert_id=disk_full%3Adb-1",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as response:
            [listed] = (await response.json())["alerts"]

    def pairs(section: str) -> dict[str, str]:
        part = body.split(f'id="{section}"', 1)[1].split("</section>", 1)[0]
        cells = [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td>(.*?)</td>", part)]
        return dict(zip(cells[::2], cells[1::2], strict=True))

    assert pairs("labels") == record.labels
    assert pairs("annotations") == {
        "summary": "Disk almost full on db-1",
        "title": "Disk almost full on db-1",
        "description": "raised by a page test",
    }
    assert (listed["labels"], listed["annotations"]) == (pairs("labels"), pairs("annotations"))


async def test_a_runbook_link_on_an_allowed_origin_opens_from_the_alerts_page(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """A metadata link kept whole (EXESDB_ALERT_LINK_ORIGINS) is a link on the alert's page,
    opened in a new tab without a referrer; one cut to its origin stays text, on another origin
    or on the allowed one (too long to be kept whole: ``https://wiki.example/…`` is no page), as
    does every annotation that is no such link."""
    runbook = "https://wiki.example/runbooks/disk-full#free-space"
    with page_bridge(tmp_path, EXESDB_ALERT_LINK_ORIGINS="https://wiki.example") as server:
        raise_alert(
            server,
            "a1",
            "disk full",
            metadata={
                "runbook": runbook,
                "chat": "https://hooks.example/services/T0/B0/x",
                "long": "https://wiki.example/" + "a" * MAX_DETAIL_VALUE,
            },
        )
        _, _, body = await fetch(client, server.url + "/alerts/a1")
    annotations = body.split('id="annotations"', 1)[1].split("</section>", 1)[0]
    links = re.findall(r'<a href="([^"]*)"([^>]*)>', annotations)
    assert links == [(runbook, ' target="_blank" rel="noopener noreferrer"')]
    assert "https://hooks.example/…" in annotations
    assert "<td>https://wiki.example/…</td>" in annotations


async def test_an_escalated_alert_shows_its_level_on_both_pages(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """An alert escalated to its last level shows level3 in its status page row and among its
    page's facts."""
    with page_bridge(tmp_path, EXESDB_ESCALATION_AFTER_MS="100") as server:
        raise_alert(server, "a1", "escalating alert")
        wait_for_alert(server, "a1", lambda record: record.level == 3)
        _, _, status_page = await fetch(client, server.url + "/")
        _, _, alert_page = await fetch(client, server.url + "/alerts/a1")
    listed = status_page.split('id="alerts"', 1)[1].split("</section>", 1)[0]
    [row] = [row_words(row) for row in listed.split("<tr>")[2:]]
    assert row[6:8] == ["firing", "level3"]
    assert re.search(r">Escalation level<[^>]*>\s*<[^>]*>level3<", alert_page)
