"""The pages over plain HTTP (an aiohttp client): what they answer, send and never show."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from html import escape, unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import aiohttp
import pytest
import yarl

from bridge import __version__
from bridge.messages import NodeLifecycle, SystemAlert
from bridge.pages import CONTENT_SECURITY_POLICY, routes
from bridge.pages.html import Html
from bridge.pages.status import MAX_SHOWN, StatusView, status_live, status_view
from bridge.pages.widgets import utc
from bridge.sinks.alerts import AlertState, alert_url
from bridge.sinks.alerts.sources import MAX_DETAIL_VALUE
from tests.integration.servers.alertmanager import AlertmanagerServer, alertmanager_server
from tests.integration.servers.webhook import WebhookReceiver, webhook_receiver
from tests.pages.helpers import (
    NODE,
    page_bridge,
    publish,
    raise_alert,
    report_node,
    sink_of,
    wait_for_alert,
)
from tests.sinks.alerts.helpers import system_alert
from tests.support import ADMIN_TOKEN, async_wait_until, free_port, wait_until

__all__ = ["alertmanager_server", "webhook_receiver"]  # the fixtures, imported for the tests below

# A signed receiver retried at once and often, so an attempt shows on the page soon.
RETRYING_FAST: Final = {
    "EXESDB_WEBHOOK_SECRET": "page-test-webhook-secret",
    "EXESDB_WEBHOOK_GROUP_WAIT_MS": "0",
    "EXESDB_WEBHOOK_BACKOFF_MS": "50",
    "EXESDB_WEBHOOK_MAX_BACKOFF_MS": "100",
}
# What Chromium sends navigating to a page.
BROWSER_ACCEPT: Final = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
)
EVIL = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
EVIL_NODE = 'db-9"><img src=x onerror="window.pwned = 3">@cluster'


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client, closed afterwards."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


def row_words(row: str) -> list[str]:
    """A table row's words, each age (a ``<time data-since>``) as one word ``since=<moment>``."""
    row = re.sub(r'<time [^>]*data-since="(\d+)"[^>]*>.*?</time>', r" since=\1 ", row)
    return re.sub(r"<[^>]+>", " ", row).split()


def moments_only(markup: str) -> str:
    """``markup`` with each counted time (``<time data-since>``, ``data-until``) read as its
    moment only, whatever text it shows."""
    return re.sub(r'<time [^>]*data-(?:since|until)="(\d+)"[^>]*>.*?</time>', r"\1", markup)


def table_cells(table: str) -> list[list[str]]:
    """The text of each cell of each row of ``table``'s body."""
    body = table.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in body.split("<tr>")[1:]
    ]


async def fetch(client: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, Any, str]:
    """GET ``url``: status, headers and body."""
    async with client.get(url, headers=headers) as response:
        return response.status, response.headers, await response.text()


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


async def test_every_page_sends_a_strict_content_security_policy(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """The status page, an alert's page and the 404 page forbid inline script and framing."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "one alert")
        answers = [
            await fetch(client, server.url + path) for path in ("/", "/alerts/a1", "/alerts/nope")
        ]
    assert [status for status, _, _ in answers] == [200, 200, 404]
    for _, headers, _ in answers:
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store"
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY


async def test_a_web_config_s_headers_never_weaken_a_page(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """A web config's Content-Security-Policy is sent beside a page's own, never in its place (a
    browser enforces both), and its X-Frame-Options leaves a page's DENY; every other answer gets
    the configured headers alone, as exporter-toolkit sends them. The 404 page a browser is
    shown where nothing is served is a page."""
    web = tmp_path / "web.yml"
    web.write_text(
        "http_server_config:\n  headers:\n"
        "    Content-Security-Policy: default-src *\n"
        "    X-Frame-Options: sameorigin\n"
        "    X-Content-Type-Options: nosniff\n"
        "    Strict-Transport-Security: max-age=60\n"
    )
    with page_bridge(tmp_path, EXESDB_WEB_CONFIG_FILE=str(web)) as server:
        raise_alert(server, "a1", "one alert")
        pages = [
            await fetch(client, server.url + path) for path in ("/", "/alerts/a1", "/alerts/nope")
        ]
        pages.append(await fetch(client, server.url + "/index.html", Accept=BROWSER_ACCEPT))
        _, live, _ = await fetch(client, server.url + "/?part=live")
        unchanged = await fetch(
            client, server.url + "/?part=live", **{"If-None-Match": live["ETag"]}
        )
        others = [
            await fetch(client, server.url + path)
            for path in ("/healthz", "/metrics", "/static/pages.js", "/no/such/path")
        ]
    assert [status for status, _, _ in [*pages, unchanged]] == [200, 200, 404, 404, 304]
    for _, headers, _ in [*pages, unchanged]:
        assert headers.getall("Content-Security-Policy") == [
            CONTENT_SECURITY_POLICY,
            "default-src *",
        ]
        assert headers.getall("X-Frame-Options") == ["DENY"]
        assert headers.getall("X-Content-Type-Options") == ["nosniff"]
        assert headers["Strict-Transport-Security"] == "max-age=60"
    for _, headers, _ in others:
        assert headers.getall("Content-Security-Policy") == ["default-src *"]
        assert headers.getall("X-Frame-Options") == ["sameorigin"]
        assert headers.getall("X-Content-Type-Options") == ["nosniff"]


async def test_the_generator_url_answers_without_a_token(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """An alert's generatorURL (its page) answers 200 with no token, showing its title and
    labels; the admin API behind it still wants the token."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "node_failure:db-2", "Node db-2 is down")
        url = alert_url(sink_of(server).external_url, "node_failure:db-2")
        page = url.replace(sink_of(server).external_url, server.url)
        status, headers, body = await fetch(client, page)
        api_status, _, _ = await fetch(client, server.url + "/v1/alerts?alert_id=node_failure:db-2")
    assert url.endswith("/alerts/node_failure%3Adb-2")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<title>Node db-2 is down · exesdb-bridge</title>" in body
    assert "node_failure:db-2" in body
    assert api_status == 401


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


async def test_an_unknown_alert_gets_a_404_page(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """An id the bridge does not know answers a 404 HTML page naming it (escaped)."""
    with page_bridge(tmp_path) as server:
        status, headers, body = await fetch(client, server.url + "/alerts/%3Cb%3Egone")
    assert status == 404
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "No such alert" in body
    assert "&lt;b&gt;gone" in body
    assert "<b>gone" not in body


@pytest.mark.parametrize("path", ["/alerts/gone", "/alert/gone"])
async def test_a_404_page_asks_for_no_name_or_token(
    tmp_path: Path, client: aiohttp.ClientSession, path: str
) -> None:
    """A 404 page (an unknown alert's, or nothing served there), which has nothing to
    acknowledge and never refreshes, hides the acknowledge bar instead of asking for a name and
    the admin token."""
    with page_bridge(tmp_path) as server:
        status, _, body = await fetch(client, server.url + path, Accept=BROWSER_ACCEPT)
    assert status == 404
    assert '<form class="ackbar" id="ack-form" autocomplete="off" hidden>' in body


async def test_html_in_a_message_is_shown_as_text(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """A title holding HTML is escaped on the status page and on the alert's page, and so is
    a node name holding HTML in the status page's nodes list."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "evil", EVIL, node='db"><script>x</script>')
        report_node(server, EVIL_NODE, "healthy", cpu=10.0, memory=20.0)

        async def heard() -> bool:
            return "db-9" in (await fetch(client, server.url + "/?part=live"))[2]

        await async_wait_until(heard, 15, "the node heard")
        pages = [(await fetch(client, server.url + path))[2] for path in ("/", "/alerts/evil")]
    nodes = pages[0].split('id="nodes"', 1)[1].split("</section>", 1)[0]
    assert escape(EVIL_NODE) in nodes
    assert "<img" not in nodes
    for body in pages:
        assert "<script>window.pwned" not in body
        assert "<img src=x" not in body
        assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in body
        assert "<script>x</script>" not in body
        # The only script element is the bridge's own file.
        assert len(re.findall(r"<script[^>]*>", body)) == 1


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


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("pages.js", "text/javascript; charset=utf-8"),
        ("pages.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
async def test_static_files_are_served_with_their_type(
    tmp_path: Path, client: aiohttp.ClientSession, name: str, content_type: str
) -> None:
    """The script, stylesheet and icon come from the bridge itself (no CDN), typed."""
    with page_bridge(tmp_path) as server:
        status, headers, body = await fetch(client, f"{server.url}/static/{name}")
    assert status == 200
    assert headers["Content-Type"] == content_type
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert body


async def test_an_alert_link_cut_short_leads_to_the_status_pages_alerts(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """/alerts and /alerts/ (an alert's URL with its id cut off) redirect, relatively so a proxy's
    path prefix stays, to the status page's alert list."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "disk_full:db-6", "Disk full on db-6")
        redirects = {}
        for path, back in (("/alerts", "./#alerts"), ("/alerts/", "../#alerts")):
            async with client.get(server.url + path, allow_redirects=False) as response:
                redirects[path] = (response.status, response.headers["Location"])
            assert redirects[path] == (302, back)
            async with client.get(server.url + path) as response:
                assert response.url.path == "/"  # the client keeps no fragment
                assert response.status == 200
                assert "Disk full on db-6" in await response.text()


async def test_an_alerts_address_with_a_slash_added_leads_to_its_page(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """/alerts/{id}/ redirects (301) by a relative path, its query kept as it came (still
    percent-encoded), to the alert's page; an id that would read as another host (backslashes)
    stays percent-encoded behind ``../``, so the redirect stays on the bridge."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "disk_full:db-6", "Disk full on db-6")
        async with client.get(
            server.url + "/alerts/disk_full:db-6/", allow_redirects=False
        ) as response:
            assert (response.status, response.headers["Location"]) == (301, "../disk_full:db-6")
        async with client.get(server.url + "/alerts/disk_full:db-6/") as response:
            assert (response.status, response.url.path) == (200, "/alerts/disk_full:db-6")
            assert "Disk full on db-6" in await response.text()
        async with client.get(
            server.url + "/alerts/a1/?part=live", allow_redirects=False
        ) as response:
            assert response.headers["Location"] == "../a1?part=live"
        async with client.get(
            yarl.URL(server.url + "/alerts/a1/?a=%23b&c=%26d", encoded=True),
            allow_redirects=False,
        ) as response:
            # Kept encoded: a %23 decoded would turn the rest of the query into a fragment.
            assert response.headers["Location"] == "../a1?a=%23b&c=%26d"
        async with client.get(
            server.url + "/alerts/%5C%5Cevil.example@x/", allow_redirects=False
        ) as response:
            location = response.headers["Location"]
    assert location == "../%5C%5Cevil.example@x"
    resolved = yarl.URL(server.url + "/alerts/x/").join(yarl.URL(location))
    assert resolved.origin() == yarl.URL(server.url).origin()


@pytest.mark.parametrize(
    ("path", "back"),
    [
        ("/index.html", "./"),
        ("/favicon.ico", "./"),
        ("/alerts/a1/more", "../../"),
        ("/static/nope.js", "../"),
        ("/no/such/path/", "../../../"),
    ],
)
async def test_a_browser_is_shown_a_404_page_where_nothing_is_served(
    tmp_path: Path, client: aiohttp.ClientSession, path: str, back: str
) -> None:
    """A browser's navigation (Accept ranking text/html first) to a path nothing is served at
    gets the 404 page, with the pages' headers and relative links back to the status page, and
    no word of the path it asked for."""
    with page_bridge(tmp_path) as server:
        status, headers, body = await fetch(client, server.url + path, Accept=BROWSER_ACCEPT)
    assert status == 404
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cache-Control"] == "no-store"
    assert "Accept" in headers["Vary"]
    assert "<h1>Nothing here</h1>" in body
    assert f'<a href="{back}">Back to the status page</a>' in body
    assert f'href="{back}static/pages.css"' in body
    assert path.strip("/").rsplit("/", 1)[-1] not in body.replace("static/", "")


async def test_a_path_of_thousands_of_levels_gets_the_json_error_not_a_page(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """A browser's navigation to a path of 16 000 slashes (a request line may be 50 kB) gets the
    JSON error, not a 404 page whose links climb back 16 000 levels each (1.5 MB from 50 kB)."""
    with page_bridge(tmp_path) as server:
        url = yarl.URL(server.url + "/" * 16_000, encoded=True)
        async with client.get(url, headers={"Accept": BROWSER_ACCEPT}) as response:
            status, content_type = response.status, response.content_type
            body = await response.read()
    assert (status, content_type) == (404, "application/json")
    assert len(body) < 1000


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("/index.html", None),
        ("/index.html", "*/*"),
        ("/index.html", "application/json"),
        ("/index.html", "application/json, text/html"),
        ("/index.html", "text/html;q=0.5, application/json"),
        ("/index.html", "text/html;q=0"),
        ("/v1/nope", BROWSER_ACCEPT),
        ("/v1/alerts/a1/nope", "text/html"),
        ("/static/nope.js", "*/*"),
        # Only the first 64 media ranges are read (a head may hold a megabyte of them).
        pytest.param(
            "/index.html",
            ", ".join(["application/json;q=0.1"] * 64) + ", text/html",
            id="html-past-64-ranges",
        ),
    ],
)
async def test_an_api_client_gets_the_json_error_where_nothing_is_served(
    tmp_path: Path, client: aiohttp.ClientSession, path: str, accept: str | None
) -> None:
    """No Accept, curl's */*, JSON ranked as high as HTML (in the first 64 media ranges, the
    rest unread), or any path under /v1/ (whatever the Accept) gets the JSON error not_found, as
    every refusal is shaped."""
    headers = {} if accept is None else {"Accept": accept}
    with page_bridge(tmp_path) as server:
        async with client.get(
            server.url + path, headers=headers, skip_auto_headers=["Accept"]
        ) as response:
            status, content_type = response.status, response.content_type
            answer = await response.json()
    assert (status, content_type) == (404, "application/json")
    assert answer == {"error": "not_found", "detail": "nothing is served at this path"}


async def test_an_unknown_static_file_is_404(tmp_path: Path, client: aiohttp.ClientSession) -> None:
    """Only the pages' own files are served: nothing else of the package, no path walking."""
    with page_bridge(tmp_path) as server:
        statuses = [
            (await fetch(client, f"{server.url}/static/{name}"))[0]
            for name in ("nope.js", "..%2Fhtml.py", "..%2Ftemplates%2Fpage.html")
        ]
    assert statuses == [404, 404, 404]


async def test_without_an_admin_token_the_page_says_how_to_enable_acks(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """With no EXESDB_ADMIN_TOKEN there is no Acknowledge button and the page says what to set."""
    with page_bridge(tmp_path, EXESDB_ADMIN_TOKEN="") as server:
        raise_alert(server, "a1", "one alert")
        _, _, body = await fetch(client, server.url + "/")
        _, _, alert = await fetch(client, server.url + "/alerts/a1")
    for text in (body, alert):
        assert "set <code>EXESDB_ADMIN_TOKEN</code> on the bridge to enable it" in text
        assert "data-ack=" not in text
        assert 'id="ack-token"' not in text


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


async def test_with_an_admin_token_firing_alerts_have_an_acknowledge_button(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """Each firing alert has a button carrying its id; the token field is a password field."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "one alert")
        _, _, body = await fetch(client, server.url + "/")
    assert 'data-ack="a1"' in body
    assert '<input id="ack-token" name="token" type="password"' in body
    assert ADMIN_TOKEN not in body


class _Headers(HTMLParser):
    """The text of each ``<th>`` of a page, what a screen reader names its column by."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "th":
            self._inside = True
            self.names.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "th":
            self._inside = False

    def handle_data(self, data: str) -> None:
        if self._inside:
            self.names[-1] += data


async def test_every_column_of_the_status_page_is_named(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """Each column of the status page's tables has a name a screen reader reads, the column of
    Acknowledge buttons and the components' required or optional one too."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "one alert")
        _, _, body = await fetch(client, server.url + "/")
    headers = _Headers()
    headers.feed(body)
    assert "Acknowledge" in headers.names
    assert "Required or optional" in headers.names
    assert [name for name in headers.names if not name.strip()] == []


async def test_without_an_admin_token_the_alerts_have_no_acknowledge_column(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """With no EXESDB_ADMIN_TOKEN the alerts table has no Acknowledge column, whose every cell
    would be empty: a screen reader names six columns, and each row has six cells."""
    with page_bridge(tmp_path, EXESDB_ADMIN_TOKEN="") as server:
        raise_alert(server, "a1", "one alert")
        _, _, body = await fetch(client, server.url + "/")
    alerts = body.split('<table class="grid alerts">', 1)[1].split("</table>", 1)[0]
    headers = _Headers()
    headers.feed(alerts)
    assert headers.names == ["Severity", "Alert", "Node", "Age", "State", "Level"]
    assert [len(row) for row in table_cells(alerts)] == [6]


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


async def test_the_acknowledge_bar_says_what_acknowledging_does(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """The bar says what an acknowledgement does before anyone presses a button: it records
    who, stops the alert's escalation, sends no webhook, and the alert stays listed until it
    resolves."""
    with page_bridge(tmp_path) as server:
        _, _, body = await fetch(client, server.url + "/")
    bar = body.split('id="ack-form"', 1)[1].split("</form>", 1)[0]
    assert (
        "Acknowledging records your name and stops the alert's escalation (no webhook is sent);"
        " it stays listed until it resolves."
    ) in bar


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


async def test_the_status_page_lists_nodes_with_health_and_use(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """A node heard on the bus appears with its status and CPU, memory and disk percentages."""
    with page_bridge(tmp_path) as server:
        report_node(server, "db-3@cluster", "degraded", cpu=91.0, memory=40.0, disk=63.0)

        async def listed() -> str | None:
            _, _, body = await fetch(client, server.url + "/?part=live")
            nodes = body.split('id="nodes"', 1)[1].split("</section>", 1)[0]
            return nodes if "db-3@cluster" in nodes and "91%" in nodes else None

        nodes = await async_wait_until(listed, 15, "the node on the page")
    row = nodes.split("db-3@cluster", 1)[1].split("</tr>", 1)[0]
    assert ">degraded</span>" in row
    assert 'value="91.0"' in row
    assert ">91%<" in row
    assert ">40%<" in row
    assert ">63%<" in row


async def test_a_node_heard_from_no_more_is_marked_silent_until_it_reports_again(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """A node that missed two health and metrics intervals keeps its last figures but its health
    says for how long it has been silent (its "healthy" is stale); a new reading clears that."""
    # Silent after 3 s: long enough for the page to be asked before the new reading ages.
    intervals = {
        "EXESDB_HEALTH_BROADCAST_INTERVAL": "1500",
        "EXESDB_METRICS_BROADCAST_INTERVAL": "1000",
    }
    with page_bridge(tmp_path, **intervals) as server:

        async def row(silent: bool) -> str | None:
            _, _, body = await fetch(client, server.url + "/?part=live")
            nodes = body.split('id="nodes"', 1)[1].split("</section>", 1)[0]
            if "db-9@cluster" not in nodes:
                return None
            found = nodes.split("db-9@cluster", 1)[1].split("</tr>", 1)[0]
            return found if ('class="muted silent"' in found) == silent else None

        report_node(server, "db-9@cluster", "healthy", cpu=12.0, memory=30.0)
        silent = await async_wait_until(lambda: row(silent=True), 15, "the node marked silent")
        assert ">healthy</span>" in silent
        assert ">12%<" in silent
        assert "EXESDB_SERIES_TTL_MS" in silent
        report_node(server, "db-9@cluster", "healthy", cpu=14.0, memory=30.0)
        heard = await async_wait_until(lambda: row(silent=False), 15, "the mark gone")
        assert ">14%<" in heard


async def test_the_bridges_own_cpu_stops_saying_measuring_once_a_reading_is_late(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """The bridge's own node says "measuring…" for CPU while its first reading may still come,
    and a dash once two health intervals passed without one (a failing probe sends none)."""
    with page_bridge(tmp_path, EXESDB_HEALTH_BROADCAST_INTERVAL="2000") as server:
        report_node(server, NODE, "unknown", cpu=None, memory=20.0)

        async def own_cpu() -> str | None:
            _, _, body = await fetch(client, server.url + "/?part=live")
            nodes = body.split('id="nodes"', 1)[1].split("</section>", 1)[0]
            if NODE not in nodes:
                return None
            return nodes.split(NODE, 1)[1].split("</tr>", 1)[0]

        first = await async_wait_until(own_cpu, 15, "the bridge's node on the page")
        assert "measuring…" in first
        late = await async_wait_until(
            lambda: _without_measuring(own_cpu), 15, "the dash once the reading is late"
        )
    cpu = late.split("</td><td>")[2]
    assert cpu == '<span class="muted">&mdash;</span>'


async def _without_measuring(row_of: Any) -> str | None:
    row: str | None = await row_of()
    return row if row is not None and "measuring" not in row else None


async def test_the_status_page_shows_the_worst_nodes_and_counts_the_rest(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """With more nodes than MAX_SHOWN, the page lists the worst ones first (every unhealthy and
    degraded one here) and says how many healthy ones it leaves out, whose rows it omits."""
    healthy = [f"ok-{n:03d}" for n in range(MAX_SHOWN + 50)]
    with page_bridge(tmp_path) as server:
        report_node(server, "sick-1", "unhealthy", cpu=99.0, memory=99.0)
        report_node(server, "slow-1", "degraded", cpu=90.0, memory=50.0)
        for node in healthy:
            report_node(server, node, "healthy", cpu=10.0, memory=10.0)

        async def complete() -> str | None:
            _, _, body = await fetch(client, server.url + "/?part=live")
            nodes = body.split('id="nodes"', 1)[1].split("</section>", 1)[0]
            return nodes if "52 more not shown" in nodes else None

        nodes = await async_wait_until(complete, 30, "every node reported")
    assert nodes.count("</tr>") == MAX_SHOWN + 1  # the header row and MAX_SHOWN nodes
    assert nodes.index("sick-1") < nodes.index("slow-1") < nodes.index("ok-000")
    assert "ok-199" not in nodes
    assert "(52 healthy)" in nodes


async def test_the_nodes_table_shows_the_start_of_long_node_names(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """Node names at their longest (4 096 characters) are listed by their first 119 characters
    and ``…``, as an alert's node is, their tooltips by their first 254 (no ExESDB node's name
    is longer than 255: an Erlang atom): MAX_SHOWN of them make a page of some 400 kB, not
    the 3.4 MB their names whole made."""
    names = [f"{n:03d}" + "\N{GRINNING FACE}" * 4093 for n in range(MAX_SHOWN)]
    with page_bridge(tmp_path) as server:
        for name in names:
            report_node(server, name, "healthy", cpu=10.0, memory=10.0)

        async def listed() -> str | None:
            _, _, body = await fetch(client, server.url + "/?part=live")
            return body if f"{MAX_SHOWN} healthy" in body else None

        body = await async_wait_until(listed, 30, "every node reported")
    nodes = body.split('id="nodes"', 1)[1].split("</section>", 1)[0]
    for n in range(MAX_SHOWN):
        assert f">{n:03d}" + "\N{GRINNING FACE}" * 116 + "…<" in nodes
        assert f'title="{n:03d}' + "\N{GRINNING FACE}" * 251 + '…"' in nodes
    # Counted, not ``not in``: pytest's diff of a miss over 400 kB runs for many minutes.
    assert body.count("\N{GRINNING FACE}" * 252) == 0
    assert len(body.encode()) < 500_000, f"{len(body.encode()) / 1e6:.1f} MB"


async def test_an_alerts_node_cut_in_its_row_is_whole_in_its_tooltip(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """An alert's node over 120 characters, its row showing the first 119 and ``…``, has its
    tooltip as the nodes table's names do: whole up to 255 characters, else its first 254 and
    ``…``; a short one has none."""
    cut, longest = "n" * 200, "m" * 4096
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "first", node=cut)
        raise_alert(server, "a2", "second", node=longest)
        raise_alert(server, "a3", "third", node="db-3")
        _, _, body = await fetch(client, server.url + "/?part=live")
    alerts = body.split('id="alerts"', 1)[1].split("</section>", 1)[0]
    assert f'<span class="node-name" title="{cut}">{"n" * 119}…</span>' in alerts
    assert f'<span class="node-name" title="{"m" * 254}…">{"m" * 119}…</span>' in alerts
    assert '<span class="node-name">db-3</span>' in alerts


async def test_nodes_announced_down_or_left_show_so_first_with_the_time_since(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """A node whose latest NodeLifecycle is down or left shows that status and for how long,
    above the unhealthy ones, and the summary counts it so."""
    with page_bridge(tmp_path) as server:
        report_node(server, "sick-1", "unhealthy", cpu=99.0, memory=99.0)
        for node, event in (("dead-1", "down"), ("gone-1", "left")):
            report_node(server, node, "healthy", cpu=10.0, memory=10.0)
            publish(server, "lifecycle", NodeLifecycle(node=node, event=event, cluster_size=1))

        async def listed() -> str | None:
            _, _, body = await fetch(client, server.url + "/?part=live")
            return body if "1 down, 1 left, 1 unhealthy" in body else None

        body = await async_wait_until(listed, 15, "the nodes on the page")
    nodes = body.split('id="nodes"', 1)[1].split("</section>", 1)[0]
    assert nodes.index("dead-1") < nodes.index("gone-1") < nodes.index("sick-1")
    dead = nodes.split("dead-1", 1)[1].split("</tr>", 1)[0]
    assert '<span class="badge tone-bad">down</span>' in dead
    assert re.search(
        r'class="muted gone" title="NodeLifecycle down at [-\d: ]+ UTC: [^"]*">for <time [^>]*'
        r'data-since="\d+"',
        dead,
    )
    assert ">10%<" in dead  # its last figures stay
    gone = nodes.split("gone-1", 1)[1].split("</tr>", 1)[0]
    assert '<span class="badge tone-warn">left</span>' in gone


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


async def test_the_alert_list_asked_by_a_long_id_says_its_connection_closes(
    tmp_path: Path,
) -> None:
    """``GET /v1/alerts?alert_id=`` for an id whose escaped target is over HEAD_KEPT bytes (a
    request line may be 50 kB) is answered with Connection: close, as every answer to a large
    head is, and the connection closes: the list is streamed, its headers sent by the handler."""
    alert_id = "\N{GRINNING FACE}" * 2000  # 24 kB escaped
    with page_bridge(tmp_path) as server:
        raise_alert(server, alert_id, "An alert with a long id")
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        target = "/v1/alerts?alert_id=" + quote(alert_id, safe="")
        auth = f"Authorization: Bearer {ADMIN_TOKEN}\r\n"
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode())
        answer = await asyncio.wait_for(reader.read(), 10)  # to the connection's close
        writer.close()
        await writer.wait_closed()
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nConnection: close\r\n" in head + b"\r\n"
    assert b"An alert with a long id" in body


async def test_an_alert_id_with_a_slash_reaches_its_page(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """Ids are escaped whole in links (a / too), and the link opens that alert's page."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "disk/db-1 #2?", "odd id")
        wait_for_alert(server, "disk/db-1 #2?", lambda record: record.state is AlertState.FIRING)
        _, _, body = await fetch(client, server.url + "/")
        href = re.search(r'href="\./(alerts/[^"]+)"', body)
        assert href is not None
        status, _, page = await fetch(client, f"{server.url}/{href.group(1)}")
    assert href.group(1) == "alerts/disk%2Fdb-1%20%232%3F"
    assert status == 200
    assert "odd id" in page


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
