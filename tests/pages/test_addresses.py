"""What each address answers over plain HTTP: an alert's page by its generator URL or an id holding
a slash, redirects of addresses cut short or with a slash added, a 404 page to a browser and the
JSON error to an API client, the static files and nothing else."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
import yarl

from bridge.pages import CONTENT_SECURITY_POLICY
from bridge.sinks.alerts import AlertState, alert_url
from tests.pages.helpers import (
    BROWSER_ACCEPT,
    fetch,
    page_bridge,
    raise_alert,
    sink_of,
    wait_for_alert,
)
from tests.support import ADMIN_TOKEN, ThreadedBridge


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


async def test_the_pages_say_they_were_rendered_at_the_bridges_clock(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    """The status page and the 404 page are dated by the bridge's wall clock (the one it judges
    messages by), not read from the host's apart from it."""
    with ThreadedBridge([], lambda: 1_700_000_000.0, EXESDB_STATE_DIR=str(tmp_path)) as server:
        answers = [
            await fetch(client, server.url + path, Accept=BROWSER_ACCEPT)
            for path in ("/", "/no/such/page")
        ]
    dated = [(status, 'data-now="1700000000.000"' in body) for status, _, body in answers]
    assert dated == [(200, True), (404, True)]


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


@pytest.mark.parametrize(
    ("path", "meant"),
    [
        ("/metrics/", "/metrics"),
        ("/Metrics", "/metrics"),
        ("/health", "/healthz"),
        ("/ready", "/readyz"),
        ("/v1/alert", "/v1/alerts"),
        ("/api/v1/alerts", "/v1/alerts"),
        ("/livez", "/healthz"),  # Kubernetes' components' name for it
        ("/-/healthy", "/healthz"),  # Prometheus's and Alertmanager's
        ("/-/ready", "/readyz"),
        ("/v1/messages/v1/messages", "/v1/messages"),  # EXESDB_URL given with the route
        ("/bridge/metrics", "/metrics"),  # a proxy's prefix left on
        ("/x/v1/alerts", "/v1/alerts"),  # the longest it ends in, not /alerts
        ("/v1/alerts/a1/nope", None),  # no fixed path: the ack's is a pattern
        ("/index.html", None),
        ("/x", None),  # not the status page, which every short path is alike
    ],
)
async def test_the_json_404_names_the_path_served_that_the_one_asked_is_spelt_nearly_as(
    tmp_path: Path, client: aiohttp.ClientSession, path: str, meant: str | None
) -> None:
    """A path spelt nearly as one the bridge serves (a slash after it, another letter case, the
    probe's name without its z, a list's name without its s), named as another tool names it
    (/livez, /-/healthy), or ending in one after a prefix (a URL with a path given as the
    bridge's), is answered with the one meant, so that a scrape or probe set up so says how to
    mend it; others with no guess."""
    with page_bridge(tmp_path) as server:
        async with client.get(server.url + path) as response:
            status, answer = response.status, await response.json()
    said = "nothing is served at this path"
    assert (status, answer["detail"]) == (
        404,
        said if meant is None else f"{said}; did you mean {meant}?",
    )


async def test_an_unknown_static_file_is_404(tmp_path: Path, client: aiohttp.ClientSession) -> None:
    """Only the pages' own files are served: nothing else of the package, no path walking."""
    with page_bridge(tmp_path) as server:
        statuses = [
            (await fetch(client, f"{server.url}/static/{name}"))[0]
            for name in ("nope.js", "..%2Fhtml.py", "..%2Ftemplates%2Fpage.html")
        ]
    assert statuses == [404, 404, 404]


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
