"""The acknowledge controls over plain HTTP: a button for each firing alert with an admin token, the
page saying how to enable them without one, the bar saying what acknowledging does, and every column
of the status page named."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import aiohttp

from tests.pages.helpers import fetch, page_bridge, raise_alert, table_cells
from tests.support import ADMIN_TOKEN


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
