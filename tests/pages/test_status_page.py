"""The status page over plain HTTP (GET /): the node, the bridge and its active alerts newest first,
its live fragment, and what it says while the integration is switched off, no one is notified or
Alertmanager takes no posts."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import aiohttp

from bridge import __version__
from bridge.pages import CONTENT_SECURITY_POLICY
from tests.integration.servers.alertmanager import AlertmanagerServer
from tests.integration.servers.webhook import WebhookReceiver
from tests.pages.helpers import NODE, fetch, moments_only, page_bridge, raise_alert, row_words
from tests.support import ADMIN_TOKEN, async_wait_until, wait_until


async def test_status_page_shows_the_node_the_links_and_the_active_alert(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """GET / is 200 text/html naming the node, linking /metrics, and listing an active alert."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "disk_full:db-1", "Disk almost full on db-1")
        status, headers, body = await fetch(client, server.url + "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert NODE in body
    for target in ("metrics", "healthz", "readyz"):
        assert f'href="./{target}"' in body
    assert "Disk almost full on db-1" in body
    assert 'href="./alerts/disk_full%3Adb-1"' in body


async def test_status_page_shows_the_bridge_and_its_active_alerts_newest_first(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """GET / names the bridge's version and bus, its uptime and each component's readiness, and
    lists the active alerts newest first (an acknowledged one in its place) with severity, node,
    age, state and escalation level."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a0", "oldest alert", severity="critical")
        raise_alert(server, "a1", "middle alert", severity="warning", node="db-2@cluster")
        raise_alert(server, "a2", "newest alert", severity="error")
        async with client.post(
            server.url + "/v1/alerts/a1/ack",
            json={"ack_by": "bob"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as answer:
            assert answer.status == 200
        status, _, body = await fetch(client, server.url + "/")
    assert status == 200
    facts = body.split('<span class="facts">', 1)[1].split("<nav ", 1)[0]
    assert f"v{__version__}" in facts
    assert "bus <b>memory</b>" in facts
    # Ages are moments pages.js counts from (the markup stays the same while time passes).
    uptime = re.search(r'>Uptime</div>\s*<div class="value"><time [^>]*data-since="(\d+)"', body)
    assert uptime is not None
    assert int(uptime.group(1)) == int(server.bridge.started_at)
    components = body.split('id="components"', 1)[1].split("</section>", 1)[0]
    for part in ("bus", "prometheus", "alerts"):
        assert re.search(rf"<td>{part}</td><td><span [^>]*>ready</span>", components), part
    listed = body.split('id="alerts"', 1)[1].split("</section>", 1)[0]
    rows = [row_words(row) for row in listed.split("<tr>")[2:]]
    assert [row[1] for row in rows] == ["newest", "middle", "oldest"]
    assert [row[0] for row in rows] == ["error", "warning", "critical"]
    assert [row[4] for row in rows] == ["db-1@cluster", "db-2@cluster", "db-1@cluster"]
    assert all(re.fullmatch(r"since=\d+", row[5]) for row in rows)
    assert [row[6:8] for row in rows] == [
        ["firing", "level1"],
        ["acknowledged", "level1"],
        ["firing", "level1"],
    ]


async def test_the_live_part_is_a_fragment(tmp_path: Path, client: aiohttp.ClientSession) -> None:
    """?part=live answers only what pages.js swaps in: no document, no acknowledge bar."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "one alert")
        _, _, whole = await fetch(client, server.url + "/")
        status, headers, live = await fetch(client, server.url + "/?part=live")
        _, _, alert_live = await fetch(client, server.url + "/alerts/a1?part=live")
    assert status == 200
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "<html" not in live
    assert 'id="ack-form"' not in live
    assert "one alert" in live
    # The same part, but for the ages: the page as first sent shows them, the live part the
    # moments pages.js counts from.
    assert moments_only(live).strip() in moments_only(whole)
    assert "<html" not in alert_live
    assert 'id="alert-title"' in alert_live


async def test_the_status_page_says_while_the_integration_is_switched_off(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """POST /v1/integration {"enabled": false} puts a notice on the status page saying so and
    how to switch it back on; switched on again, the notice goes."""
    notice = 'id="integration"'
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with page_bridge(tmp_path) as server:
        _, _, before = await fetch(client, server.url + "/")
        for enabled, shown in ((False, True), (True, False)):
            async with client.post(
                server.url + "/v1/integration", json={"enabled": enabled}, headers=auth
            ) as answer:
                assert answer.status == 200, await answer.text()
            _, _, live = await fetch(client, server.url + "/?part=live")
            assert (notice in live) is shown, enabled
            if shown:
                assert "The pubsub integration is switched off" in live
                assert "{&quot;enabled&quot;: true}" in live or '{"enabled": true}' in live
    assert notice not in before


async def test_a_bridge_that_notifies_no_one_says_so_above_its_alerts(
    tmp_path: Path, client: aiohttp.ClientSession, webhook_receiver
) -> None:
    """Without a webhook receiver or an Alertmanager (a first start) the status page says that
    nobody is notified, its alerts kept and shown here only, in one sentence that reads (one colon,
    not two in a row), the settings named as code as the other notices name them; with a receiver
    it does not."""
    with page_bridge(tmp_path / "alone") as server:
        _, _, alone = await fetch(client, server.url + "/?part=live")
    receiver: WebhookReceiver = webhook_receiver()
    with page_bridge(tmp_path / "hooked", EXESDB_WEBHOOK_URLS=receiver.url) as server:
        _, _, hooked = await fetch(client, server.url + "/?part=live")
    said = (
        '<p class="empty">No webhook receiver or Alertmanager is configured'
        " (<code>EXESDB_WEBHOOK_URLS</code>, <code>EXESDB_WEBHOOK_CONFIG_FILE</code>,"
        " <code>EXESDB_ALERTMANAGER_URL</code>), so nobody is notified: alerts are kept and shown"
        " here only.</p>"
    )
    assert said in alone.split('id="alerts"', 1)[1]
    assert "nobody is notified" not in hooked


async def test_the_pages_say_when_alertmanager_takes_no_posts(
    tmp_path: Path, client: aiohttp.ClientSession, alertmanager_server
) -> None:
    """While Alertmanager takes the posts the pages say only that it is sent the alerts; once it
    is gone (stopped, or EXESDB_ALERTMANAGER_URL naming the wrong port) the status page says
    above the alerts that Alertmanager is not taking them and why, and the alert's page says
    its posts fail."""
    alertmanager: AlertmanagerServer = alertmanager_server()
    with page_bridge(tmp_path, EXESDB_ALERTMANAGER_URL=alertmanager.url) as server:
        raise_alert(server, "a1", "one alert")
        wait_until(lambda: alertmanager.alerts(), what="the alert in Alertmanager")
        _, _, taking = await fetch(client, server.url + "/")
        alertmanager.stop()
        raise_alert(server, "a2", "another alert")

        async def status_says() -> str | None:
            _, _, body = await fetch(client, server.url + "/")
            return body if 'id="alertmanager"' in body else None

        status = await async_wait_until(status_says, what="the Alertmanager notice")
        _, _, page = await fetch(client, server.url + "/alerts/a2")
    assert 'id="alertmanager"' not in taking
    notice = " ".join(re.sub(r"<[^>]+>", " ", status.split('id="alertmanager"', 1)[1]).split())
    assert f"Alertmanager is not taking the alerts: posts to {alertmanager.url}/" in notice
    assert "Connection refused" in notice
    text = unescape(" ".join(re.sub(r"<[^>]+>", " ", page).split()))
    said = (
        f"Alertmanager at {alertmanager.url}/… is sent this alert's state too, but its posts fail:"
    )
    assert said in text
