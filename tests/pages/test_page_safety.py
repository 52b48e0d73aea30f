"""What the pages never give away or weaken over plain HTTP: a strict Content-Security-Policy
whatever a web config adds, HTML in a message shown as text, no name or token asked for on a 404
page."""

from __future__ import annotations

import re
from html import escape
from pathlib import Path

import aiohttp
import pytest

from bridge.pages import CONTENT_SECURITY_POLICY
from tests.pages.helpers import BROWSER_ACCEPT, fetch, page_bridge, raise_alert, report_node
from tests.support import async_wait_until

EVIL = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
EVIL_NODE = 'db-9"><img src=x onerror="window.pwned = 3">@cluster'


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


async def test_a_title_s_hidden_characters_are_shown_and_its_emoji_kept(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """A title holding a Hangul filler and tags spelling hidden text shows each as its escape on
    the status page and the alert's page, while a joined emoji in it (a technologist: U+1F469
    U+200D U+1F4BB) is shown whole."""
    emoji = "\U0001f469\u200d\U0001f4bb"
    title = f"disk\u3164full {emoji} \U000e0069\U000e0067"
    with page_bridge(tmp_path) as server:
        raise_alert(server, "hidden", title)
        pages = [(await fetch(client, server.url + path))[2] for path in ("/", "/alerts/hidden")]
    for body in pages:
        assert f"disk\\u3164full {emoji} \\U000e0069\\U000e0067" in body
        assert not {"\u3164", "\U000e0069", "\U000e0067"} & set(body)
