"""The pages for people in a real headless Chromium, and the alert links of real webhooks.

The bridge runs in a thread of its own (the browser is driven synchronously); webhooks go to a
real HTTP receiver on loopback, and their ``generatorURL`` is followed as an operator would.
"""

from __future__ import annotations

import json
import re
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.cluster import cluster_monitor
from bridge.messages import MAX_TEXT
from bridge.pages.widgets import REFRESH_SECONDS
from bridge.sinks.alerts import AlertState
from bridge.sinks.alerts.payload import alert_path
from bridge.sinks.alerts.records import Acknowledgement
from bridge.sinks.alerts.retention import RESOLVED_KEPT_SECONDS
from collectors import health_collector
from tests.integration.servers.chromium import (
    HEIGHT,
    WIDTH,
    Browser,
    SharedChromium,
    browser,
    require_chromium,
    shared_chromium,
)
from tests.integration.servers.tmpfs import SmallDisk, small_disk
from tests.integration.servers.webhook import Answer, WebhookReceiver, webhook_receiver
from tests.pages import screenshots
from tests.pages.helpers import (
    NODE,
    page_bridge,
    raise_alert,
    report_from,
    report_node,
    sink_of,
    wait_for_alert,
)
from tests.support import (
    ADMIN_TOKEN,
    ThreadedBridge,
    free_port,
    http_get,
    refusing_port,
    wait_until,
)

# One pytest-xdist worker runs the module: its Chromium (a module fixture) starts once.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("chromium")]

# The fixtures, imported for the tests below.
__all__ = ["browser", "shared_chromium", "small_disk", "webhook_receiver"]

ROW = """
return [...document.querySelectorAll("table.alerts tbody tr")]
  .filter((row) => row.textContent.includes(arguments[0]))
  .map((row) => row.innerText)[0] || "";
"""
NODE_ROW = """
const row = [...document.querySelectorAll("table.nodes tbody tr")]
  .find((row) => row.cells[0].textContent === arguments[0]);
return row ? [...row.cells].map((cell) => cell.innerText.trim()) : [];
"""
HOOK_SETTINGS = {
    "EXESDB_WEBHOOK_SECRET": "page-test-webhook-secret",
    "EXESDB_WEBHOOK_GROUP_WAIT_MS": "0",
}


def node_cells(web: Browser, node: str) -> list[str]:
    """The visible text of each cell of the status page's row for ``node`` ([] when none)."""
    return list(web.run(NODE_ROW, node))


def alert_row(web: Browser, text: str) -> str:
    """The visible text of the status page's alert row containing ``text`` ("" when none)."""
    return str(web.run(ROW, text))


def api_state(server: ThreadedBridge, alert_id: str) -> str:
    """The alert's state as GET /v1/alerts (with the admin token) reports it."""
    status, body = http_get(
        f"{server.url}/v1/alerts?alert_id={alert_id}",
        {"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert status == 200
    return str(json.loads(body)["alerts"][0]["state"])


def csp_refusals(web: Browser) -> list[str]:
    """Console messages saying the Content-Security-Policy refused something."""
    return [line for line in web.console() if "Content Security Policy" in line]


ANNOTATIONS = """
return [...document.querySelectorAll("#annotations tbody tr")]
  .map((row) => [row.cells[0].textContent, row.cells[1].textContent]);
"""


def delivered_alert(receiver: WebhookReceiver, alert_id: str) -> dict[str, Any]:
    """The alert entry of the first payload the receiver accepted for ``alert_id``."""
    wait_until(lambda: alert_id in receiver.accepted_alert_ids(), 20, f"{alert_id} delivered")
    for request in receiver.accepted():
        for alert in request.json()["alerts"]:
            if alert["labels"]["alert_id"] == alert_id:
                return dict(alert)
    raise AssertionError(f"no delivered alert {alert_id}")


def test_a_page_test_is_given_the_shared_chromium_as_a_new_one_would_be(
    tmp_path: Path, browser: Browser, shared_chromium: SharedChromium
) -> None:
    """The module's tests share one Chromium: what a test leaves (another tab, a phone's
    screen, a narrower window, a token stored for the tab, an unread console message) is gone
    for the next, which is given one blank tab as a new Chromium would give it."""
    with page_bridge(tmp_path) as server:
        browser.open(server.url + "/")
        browser.run("sessionStorage.setItem('exesdb-bridge.admin-token', 'left'); console.log('x')")
        phone = {"width": 375, "height": 844, "deviceScaleFactor": 1, "mobile": True}
        browser.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone)
        browser.driver.set_window_size(800, 500)
        browser.driver.switch_to.new_window("tab")
        next_one = Browser(shared_chromium.fresh())
        assert len(next_one.driver.window_handles) == 1
        assert next_one.driver.current_url == "about:blank"
        assert next_one.driver.get_window_size() == {"width": WIDTH, "height": HEIGHT}
        assert next_one.console() == []
        next_one.open(server.url + "/")
        assert next_one.run("return document.documentElement.clientWidth") == WIDTH
        assert next_one.run("return sessionStorage.length") == 0


def test_the_status_page_lists_a_node_and_an_alert_just_published(
    tmp_path: Path, browser: Browser
) -> None:
    """A node and an alert published a moment before are on the page, with its own files only."""
    with page_bridge(tmp_path) as server:
        report_node(server, "db-1@cluster", "healthy", cpu=12.0, memory=30.0)
        raise_alert(server, "disk_full:db-1", "Disk almost full on db-1", severity="warning")
        wait_until(
            lambda: "db-1@cluster" in http_get(server.url + "/?part=live")[1].decode(),
            15,
            "the node heard",
        )
        browser.open(server.url + "/")
        assert browser.driver.title == "Status · exesdb-bridge"
        assert NODE in browser.text("header.bar")
        nodes = browser.text("#nodes")
        assert "db-1@cluster" in nodes
        assert "healthy" in nodes
        row = alert_row(browser, "Disk almost full on db-1")
        assert "warning" in row
        assert "firing" in row
        assert "db-1@cluster" in row
        assert browser.css("header.bar nav a[href='./metrics']").text == "/metrics"
        assert csp_refusals(browser) == []


def test_a_node_the_cluster_monitor_declares_down_shows_down_at_the_top(
    tmp_path: Path, browser: Browser
) -> None:
    """A node heard once (its joined declaring the bridge's interval) and then silent for three
    health intervals, declared down by the bridge's cluster monitor, shows "down" and for how
    long, above the healthy nodes."""
    settings = {"EXESDB_INGEST": "true", "EXESDB_HEALTH_BROADCAST_INTERVAL": "500"}
    with page_bridge(tmp_path, cluster_monitor, **settings) as server:
        browser.hasten()
        report_node(server, "db-1@cluster", "healthy", cpu=12.0, memory=30.0)
        report_from(server, "db-7@cluster", "healthy", interval_ms=500)
        browser.open(server.url + "/")

        def gone() -> list[str] | None:
            cells = node_cells(browser, "db-7@cluster")
            return cells if cells and cells[1].startswith("down") else None

        _, health, _, memory, _ = wait_until(gone, 15, "db-7 shown down")
        assert re.fullmatch(r"down for \d+s", health)
        assert memory == "35%"  # the last figure it sent
        first = browser.run(
            'return document.querySelector("table.nodes tbody tr").cells[0].textContent'
        )
        assert first == "db-7@cluster"
        assert "healthy" in node_cells(browser, "db-1@cluster")[1]


def test_a_node_held_down_stays_shown_down_after_its_series_expire(
    tmp_path: Path, browser: Browser
) -> None:
    """A node declared down whose series expired (EXESDB_SERIES_TTL_MS shorter than
    EXESDB_NODE_FORGET_MS) is still shown down, without figures, while the cluster monitor
    holds it down; its tooltip says its series expired (not that its last figures are shown)
    and until when it is shown."""
    settings = {
        "EXESDB_INGEST": "true",
        "EXESDB_HEALTH_BROADCAST_INTERVAL": "500",
        "EXESDB_SERIES_TTL_MS": "2000",
    }
    with page_bridge(tmp_path, cluster_monitor, **settings) as server:
        report_from(server, "db-7@cluster", "healthy", interval_ms=500)
        wait_until(
            lambda: (
                'node="db-7@cluster",event="down"' in http_get(server.url + "/metrics")[1].decode()
            ),
            15,
            "db-7 announced down",
        )
        wait_until(
            lambda: "db-7@cluster" not in http_get(server.url + "/metrics")[1].decode(),
            15,
            "db-7's series expired",
        )
        browser.open(server.url + "/")
        _, health, cpu, memory, disk = node_cells(browser, "db-7@cluster")
        assert re.fullmatch(r"down for \d+s", health)
        assert (cpu, memory, disk) == ("—", "—", "—")
        title = browser.run(
            'return [...document.querySelectorAll("table.nodes tbody tr")]'
            ".find((row) => row.cells[0].textContent === arguments[0])"
            '.querySelector(".gone").title',
            "db-7@cluster",
        )
        assert "or forgotten (EXESDB_NODE_FORGET_MS, 1d 0h after it went down)" in title
        assert "its series expired (EXESDB_SERIES_TTL_MS, 2s), so it has no figures" in title
        assert "the last it sent" not in title


def test_the_status_page_refreshes_in_place(tmp_path: Path, browser: Browser) -> None:
    """New figures arrive without a reload: the scroll position and page state stay, and the
    footer says when, in UTC."""
    with page_bridge(tmp_path) as server:
        for n in range(12):
            raise_alert(server, f"a{n}", f"alert number {n}")
        report_node(server, "db-9@cluster", "healthy", cpu=10.0, memory=20.0)
        browser.hasten()
        browser.driver.set_window_size(1280, 500)
        browser.open(server.url + "/")
        browser.wait_for_text("#nodes", "db-9@cluster")
        browser.run("window.scrollTo(0, 400); window.notReloaded = true;")
        before = browser.run("return window.scrollY")
        assert before == 400
        report_node(server, "db-9@cluster", "healthy", cpu=77.0, memory=20.0)
        browser.wait_for_text("#nodes", "77%")
        assert browser.run("return window.notReloaded") is True
        assert browser.run("return window.scrollY") == before
        # In UTC, as the times the bridge renders, whatever the browser's zone.
        assert re.fullmatch(
            r"Updated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC · refreshes every 5 s",
            browser.text("#refreshed"),
        )


FOCUSED = """
const element = document.activeElement;
return element.dataset.ack || element.getAttribute("href") || element.id || element.tagName;
"""


def test_keyboard_focus_stays_on_its_alert_across_a_refresh(
    tmp_path: Path, browser: Browser
) -> None:
    """A keyboard user's focus on an alert's Acknowledge button stays on it when a refresh
    brings new content; acknowledged with the Enter key, the button goes and the focus moves to
    that alert's link, not back to the top of the page."""
    from selenium.webdriver.common.keys import Keys

    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "the first alert")
        raise_alert(server, "a2", "the second alert")
        browser.hasten()
        browser.open(server.url + "/")
        browser.type_ack_form("alice", ADMIN_TOKEN)
        browser.send_keys("button[data-ack='a1']", "")  # focus, as Tab would
        assert browser.run(FOCUSED) == "a1"
        raise_alert(server, "a3", "published while a button has the focus")
        wait_until(lambda: alert_row(browser, "published while"), 15, "the new alert")
        assert browser.run(FOCUSED) == "a1"
        browser.send_keys("button[data-ack='a1']", Keys.ENTER)
        wait_until(lambda: "acknowledged" in alert_row(browser, "the first alert"), 15, "acked")
        assert browser.run(FOCUSED) == "./alerts/a1"


def test_a_tab_whose_bridge_stopped_answering_says_so_at_the_top(
    tmp_path: Path, browser: Browser
) -> None:
    """When the bridge stops answering, the top of the page (not only its footer, below a long
    list of alerts) says the figures are no longer current and since when, and the figures
    are dimmed; the "Ready" card is not left looking current."""
    with page_bridge(tmp_path) as server:
        for n in range(30):
            raise_alert(server, f"a{n}", f"alert number {n}")
        browser.hasten()
        browser.open(server.url + "/")
        assert browser.all("#stale") == [] or not browser.css("#stale").is_displayed()
    # The bridge has stopped: the next refresh fails.
    notice = browser.wait_for_text("#stale", "Not updated since", 3 * REFRESH_SECONDS)
    assert "UTC" in notice
    top = browser.run("return arguments[0].getBoundingClientRect().top", browser.css("#stale"))
    assert 0 <= top < browser.run("return window.innerHeight")
    assert browser.run("return getComputedStyle(document.getElementById('live')).opacity") != "1"


# Each refresh of the live part the tab made: [HTTP status, body bytes received].
LIVE_REFRESHES = """
return performance.getEntriesByType("resource")
  .filter((entry) => entry.name.includes("part=live"))
  .map((entry) => [entry.responseStatus, entry.encodedBodySize]);
"""
AGE = """
const row = [...document.querySelectorAll("table.alerts tbody tr")]
  .find((row) => row.textContent.includes(arguments[0]));
return row ? row.cells[3].textContent : "";
"""


def test_an_open_tab_gets_304s_while_nothing_changes_and_a_new_alert_within_a_refresh(
    tmp_path: Path, browser: Browser
) -> None:
    """While nothing changes the tab's refreshes are answered 304, without a body, and its ages
    go on counting; an alert published shows within one refresh period (the refresh that
    brought it a 200), and the refreshes after it are 304s again."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "the first alert")
        refresh = browser.hasten()
        browser.open(server.url + "/")
        first_age = browser.run(AGE, "the first alert")
        assert re.fullmatch(r"\d+s", first_age)

        def refreshes(at_least: int) -> list[list[int]] | None:
            made = browser.run(LIVE_REFRESHES)
            return made if len(made) >= at_least else None

        unchanged = wait_until(lambda: refreshes(2), 3 * REFRESH_SECONDS, "two refreshes")
        assert unchanged == [[304, 0]] * len(unchanged)
        assert browser.run(AGE, "the first alert") != first_age  # counted by the script
        raise_alert(server, "a2", "published while the tab is open")
        # One refresh period, and two seconds for the timer and the fetch on a busy machine.
        wait_until(
            lambda: alert_row(browser, "published while the tab is open"),
            refresh + 2,
            "the new alert in the tab",
        )
        changed = browser.run(LIVE_REFRESHES)
        assert changed[-1][0] == 200
        assert changed[-1][1] > 0
        after = wait_until(lambda: refreshes(len(changed) + 1), 3 * REFRESH_SECONDS, "a refresh")
        assert after[len(changed) :] == [[304, 0]] * (len(after) - len(changed))
        assert re.fullmatch(r"\d+s", browser.run(AGE, "published while the tab is open"))
        assert csp_refusals(browser) == []


def test_an_alerts_page_whose_alert_was_pruned_says_so_keeps_what_it_showed_and_stops(
    tmp_path: Path, browser: Browser
) -> None:
    """When the alert of an open page is pruned (resolved more than a week ago), the top of the
    page says the bridge no longer keeps it, not that a refresh failed; the page keeps what it
    showed and asks the bridge no more."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "the disk filled up", severity="warning")
        refresh = browser.hasten()
        browser.open(server.url + "/alerts/a1")
        status, _ = server.post_answer(
            json.dumps({"ack_by": "alice", "resolution": "disk cleaned"}).encode(),
            {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
            "/v1/alerts/a1/ack",
        )
        assert status == 200
        browser.wait_for_text("#summary", "disk cleaned", 3 * REFRESH_SECONDS)
        sink_of(server).outbox.retention.prune(time.time() + RESOLVED_KEPT_SECONDS + 1)
        assert http_get(server.url + "/alerts/a1?part=live")[0] == 404
        notice = browser.wait_for_text("#stale", "no longer keeps this alert", 3 * REFRESH_SECONDS)
        assert notice.startswith(
            "The bridge no longer keeps this alert: it was resolved more than a week ago and"
            " pruned, or the bridge's outbox (EXESDB_STATE_DIR) was reset."
        )
        assert "failed" not in notice
        assert re.search(r"as it stood at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", notice)
        assert browser.text("#alert-title") == "the disk filled up"
        assert "disk cleaned" in browser.text("#summary")
        asked = len(browser.run(LIVE_REFRESHES))
        raise_alert(server, "a1", "raised again after the prune")
        time.sleep(refresh + 2)  # five refresh periods: no refresh may come
        assert len(browser.run(LIVE_REFRESHES)) == asked
        assert browser.text("#alert-title") == "the disk filled up"


def test_the_bridges_own_cpu_says_measuring_until_its_first_reading(
    tmp_path: Path, browser: Browser
) -> None:
    """Within the first health interval the bridge's own node shows "measuring…" for CPU (its
    memory already shown), then the percentage once a reading arrives; another node without a
    CPU reading keeps the dash."""
    with page_bridge(
        tmp_path, health_collector, EXESDB_HEALTH_BROADCAST_INTERVAL="600000"
    ) as server:
        report_node(server, "db-5@cluster", "healthy", cpu=None, memory=20.0)
        browser.hasten()
        browser.open(server.url + "/")
        browser.wait_for_text("#nodes", "db-5@cluster")
        cells = node_cells(browser, NODE)
        assert cells[2] == "measuring…"
        hint = browser.attribute("#nodes .measuring", "title")
        assert hint is not None
        assert "EXESDB_HEALTH_BROADCAST_INTERVAL" in hint
        assert cells[3].endswith("%")
        assert node_cells(browser, "db-5@cluster")[2] == "—"
        report_node(server, NODE, "healthy", cpu=41.0, memory=20.0)
        wait_until(lambda: node_cells(browser, NODE)[2] == "41%", 15, "the CPU reading shown")


# What lies beyond the viewport's right edge: the page's own width past it, and each element
# (matched by a selector) whose box ends past it or past the panel holding it.
OVERFLOW = """
const width = document.documentElement.clientWidth;
const out = [];
if (document.documentElement.scrollWidth > width) {
  out.push("the page scrolls sideways: " + document.documentElement.scrollWidth + "px");
}
for (const selector of arguments[0]) {
  const found = document.querySelectorAll(selector);
  if (found.length === 0) out.push(selector + ": none on the page");
  for (const element of found) {
    const right = element.getBoundingClientRect().right;
    const panel = element.closest(".panel, .alert-head, .ackbar, .bar");
    const edge = Math.min(width, panel ? panel.getBoundingClientRect().right : width);
    if (right > edge + 0.5) out.push(selector + " ends at " + right + "px, past " + edge + "px");
  }
}
return out;
"""
# An alert id as long as the demo's threshold alerts make them, one word throughout.
LONG_ID = "metric_threshold:db-7@cluster:inventory_store.persistence_flush.latency_p99_ms"
STATUS_PARTS = (
    "button[data-ack]",
    "table.alerts .badge",
    "header.bar nav a",
    "table.nodes td:last-child",
    "table.components td",
    ".cards .card",
)
ALERT_PARTS = (
    "#alert-title",
    ".alert-head code",
    "button[data-ack]",
    "header.bar nav a",
    "#labels td",
)


@pytest.mark.parametrize("width", [390, 760, 1000], ids=["phone", "tablet", "small laptop"])
def test_on_a_phone_the_pages_fit_the_screen_with_every_acknowledge_button_in_reach(
    tmp_path: Path, browser: Browser, width: int
) -> None:
    """On a phone 390 pixels wide (where a page at night is read), a tablet, and a small
    laptop (where the panels stand side by side), neither page scrolls sideways, long alert
    ids included; the bridge's node is named, and every alert's
    Acknowledge button, its state, the endpoints' links and each node's disk use lie on the
    screen, inside their panels."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, LONG_ID, "inventory_store.persistence_flush.latency_p99_ms is high")
        raise_alert(
            server, "replica_lag:db-8@cluster", "Replica lag above 30 s on db-8@cluster", "error"
        )
        report_node(server, "db-7@cluster", "unhealthy", cpu=97.0, memory=40.0, disk=90.0)
        screen = {"width": width, "height": 844, "deviceScaleFactor": 1, "mobile": True}
        browser.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", screen)
        browser.open(server.url + "/")
        browser.wait_for_text("#nodes", "db-7@cluster")
        assert browser.run("return document.documentElement.clientWidth") == width
        assert browser.run(OVERFLOW, STATUS_PARTS) == []
        assert len(browser.all("button[data-ack]")) == 2
        assert NODE in browser.text("header.bar")  # which bridge this is, on the phone too
        browser.open(server.url + alert_path(LONG_ID))
        assert browser.run(OVERFLOW, ALERT_PARTS) == []


def test_on_a_phone_an_alerts_deliveries_read_without_scrolling_sideways(
    tmp_path: Path, browser: Browser
) -> None:
    """On a phone 375 pixels wide each delivery of an alert's page (to a receiver nobody
    answers: a long error) lies inside its panel, every value named as its column is (the
    attempts, the last result, the next attempt), nothing to scroll sideways to."""
    with page_bridge(
        tmp_path,
        EXESDB_WEBHOOK_URLS=f"http://127.0.0.1:{free_port()}/hook",  # nobody listens
        **HOOK_SETTINGS,
    ) as server:
        raise_alert(server, LONG_ID, "inventory_store.persistence_flush.latency_p99_ms is high")
        screen = {"width": 375, "height": 844, "deviceScaleFactor": 1, "mobile": True}
        browser.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", screen)
        browser.open(server.url + alert_path(LONG_ID))
        deliveries = browser.wait_for_text("#deliveries", "ClientConnectorError")
        assert browser.run(OVERFLOW, ["#deliveries td", "#deliveries .badge"]) == []
        panel = browser.css("#deliveries")
        assert browser.run("return arguments[0].scrollWidth <= arguments[0].clientWidth", panel)
        assert "ClientConnectorError" in deliveries
        named = browser.run(
            "return [...document.querySelectorAll('#deliveries td')]"
            ".map((cell) => getComputedStyle(cell, '::before').content)"
        )
        assert named == ['"Created "', '"State "', '"Attempts "', '"Last result "', '"Finished "']


# Each "(" just before and ")" just after a code element matched by a selector: the gap from
# the glyph's edge to the code's text, beside the width of a space in the text around it.
PARENTHESES = """
const space = (text) => {
  const context = document.createElement("canvas").getContext("2d");
  context.font = getComputedStyle(text.parentElement).font;
  return context.measureText(" ").width;
};
const glyph = (text, at) => {
  const range = document.createRange();
  range.setStart(text, at);
  range.setEnd(text, at + 1);
  return range.getBoundingClientRect();
};
const out = [];
for (const code of document.querySelectorAll(arguments[0])) {
  const inside = document.createRange();
  inside.selectNodeContents(code);
  const lines = inside.getClientRects();
  const before = code.previousSibling;
  const after = code.nextSibling;
  if (before && before.nodeType === Node.TEXT_NODE && before.data.endsWith("(")) {
    const gap = lines[0].left - glyph(before, before.data.length - 1).right;
    out.push(["(" + code.textContent, gap, space(before)]);
  }
  if (after && after.nodeType === Node.TEXT_NODE && after.data.startsWith(")")) {
    const gap = glyph(after, 0).left - lines[lines.length - 1].right;
    out.push([code.textContent + ")", gap, space(after)]);
  }
}
return out;
"""


def test_parentheses_hug_the_code_they_hold_in_the_lease_banner(
    tmp_path: Path, browser: Browser
) -> None:
    """In the banner of a replica that cannot use Redis, "(" sits against the code it opens on
    as against a word, closer than a space, so "(/readyz says why" never reads "( /readyz"."""
    with (
        refusing_port() as port,
        page_bridge(tmp_path, EXESDB_BUS=f"redis://127.0.0.1:{port}") as server,
    ):
        browser.open(server.url + "/")
        browser.wait_for_text("#lease", "cannot use Redis")
        gaps = browser.run(PARENTHESES, "#lease code")
    assert [shown for shown, _, _ in gaps] == ["(/readyz"]
    assert all(0 <= gap < space for _, gap, space in gaps), gaps


def test_on_a_phone_the_dead_letter_notices_commands_read_whole(
    tmp_path: Path, browser: Browser, webhook_receiver
) -> None:
    """On a phone 375 pixels wide the dead-letter notice shows each command it gives (to list
    and to resend the dead letters) on one line, whole, nothing past the screen's edge nor its
    panel's; the ")" after its last code sits against it, closer than a space."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(Answer(404, text="404 page not found\n"))  # refused: dead-lettered at once
    with page_bridge(tmp_path, EXESDB_WEBHOOK_URLS=receiver.url, **HOOK_SETTINGS) as server:
        raise_alert(server, "disk_full:db-1", "Disk almost full on db-1")
        screen = {"width": 375, "height": 844, "deviceScaleFactor": 1, "mobile": True}
        browser.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", screen)
        browser.hasten()
        browser.open(server.url + "/")
        browser.wait_for_text("#dead-letters", "dead-lettered")
        assert browser.run("return document.documentElement.clientWidth") == 375
        assert browser.run(OVERFLOW, ["#dead-letters code"]) == []
        lines = browser.run(
            "return [...document.querySelectorAll('#dead-letters code')]"
            ".map((code) => [code.textContent, code.getClientRects().length])"
        )
        gaps = browser.run(PARENTHESES, "#dead-letters code")
    assert lines == [
        ["exesdb-bridge outbox list --state dead", 1],
        ["exesdb-bridge outbox retry --all", 1],
        ["EXESDB_STATE_DIR", 1],
    ]
    assert [shown for shown, _, _ in gaps] == ["EXESDB_STATE_DIR)"]
    assert all(0 <= gap < space for _, gap, space in gaps), gaps


# A node name as long as EXESDB_NODE allows people to make them: a host's full name.
LONG_NODE = "exesdb-orders-primary-replica-7@db-host-7.eu-west-1.compute.internal.example"


def test_a_long_node_name_wraps_inside_the_nodes_panel_on_a_desktop(
    tmp_path: Path, browser: Browser
) -> None:
    """On a desktop screen a node with a long name keeps every figure of its row (health, CPU,
    memory and disk bars) inside the Cluster nodes panel, its name wrapped: nothing spills over
    the Components panel beside it."""
    with page_bridge(tmp_path) as server:
        report_node(server, LONG_NODE, "healthy", cpu=40.0, memory=50.0, disk=60.0)
        browser.open(server.url + "/")
        browser.wait_for_text("#nodes", "40%")
        assert browser.run(OVERFLOW, ["table.nodes td", "table.nodes meter"]) == []
        assert node_cells(browser, LONG_NODE)[1:] == ["healthy", "40%", "50%", "60%"]


NODE_NAME_TITLE = """
const name = [...document.querySelectorAll("table.nodes .node-name")]
  .find((name) => name.textContent.startsWith(arguments[0]));
return name ? [name.textContent, name.title, name.querySelectorAll("*").length] : [];
"""


def test_a_node_name_cut_in_its_row_is_whole_in_its_tooltip(
    tmp_path: Path, browser: Browser
) -> None:
    """A node name over 120 characters, its row showing the first 119 and "…", is whole in the
    name's tooltip, markup in it shown as text; one over 255 (no ExESDB node's: an Erlang atom)
    has its first 254 there; neither draws a CSP refusal."""
    long = '<b class="x">ops & "night"</b>@' + "db-host-7.eu-west-1.compute.internal." * 5
    longest = "y" * MAX_TEXT
    with page_bridge(tmp_path) as server:
        report_node(server, long, "healthy", cpu=40.0, memory=50.0)
        report_node(server, longest, "healthy", cpu=40.0, memory=50.0)
        browser.open(server.url + "/")
        browser.wait_for_text("#nodes", "y" * 119 + "…")
        browser.wait_for_text("#nodes", '"night"')
        shown, title, elements = browser.run(NODE_NAME_TITLE, long[:20])
        assert shown == long[:119] + "…"
        assert title == long
        assert elements == 0  # the markup in the name is text
        assert browser.run(NODE_NAME_TITLE, "yyy")[:2] == ["y" * 119 + "…", "y" * 254 + "…"]
        assert [line for line in browser.console() if "Content Security Policy" in line] == []


def test_the_bars_facts_are_whole_on_a_desktop_whatever_the_nodes_name(
    tmp_path: Path, browser: Browser
) -> None:
    """A bridge whose EXESDB_NODE is a long host name still shows its whole name, version and
    bus in the bar at the top of a desktop screen: nothing cut off behind an ellipsis."""
    node = LONG_NODE + ".with-a-datacentre-suffix-to-make-it-longer.example"
    with page_bridge(tmp_path, EXESDB_NODE=node) as server:
        browser.open(server.url + "/")
        facts = browser.css("header.bar .facts")
        assert browser.run("return arguments[0].scrollWidth <= arguments[0].clientWidth", facts)
        assert node in facts.text
        assert "bus memory" in facts.text
        assert browser.run(OVERFLOW, ["header.bar nav a"]) == []


# A part's reason as the Redis bus gives it: long, with a URL no line can break at a space.
STUCK_REASON = (
    "Redis at redis://redis-primary.orders-cluster.internal.example:6379/… is unreachable:"
    " Error 111 connecting to redis-primary.orders-cluster.internal.example:6379."
)


class Stuck:
    """A part that never gets ready, saying why at length."""

    name = "stuck_part"
    required = False

    async def start(self) -> None:
        pass

    def readiness(self) -> str | None:
        return STUCK_REASON

    async def aclose(self) -> None:
        pass


def test_a_parts_long_reason_for_not_being_ready_stays_inside_its_panel(
    tmp_path: Path, browser: Browser
) -> None:
    """A part not ready shows its whole reason (a long URL in it) inside the Components panel,
    wrapped, not cut off at the page's edge: an operator reads it when the bridge is in
    trouble."""
    with page_bridge(tmp_path, lambda context: Stuck()) as server:
        browser.open(server.url + "/")
        browser.wait_for_text("#components", "stuck_part")
        assert browser.run(OVERFLOW, ["table.components td"]) == []
        assert "redis-primary.orders-cluster.internal.example:6379." in browser.text(
            "#components"
        ).replace("\n", "")


def test_acknowledging_with_the_right_token_changes_the_state(
    tmp_path: Path, browser: Browser
) -> None:
    """Acknowledge with the admin token: the page and GET /v1/alerts say acknowledged; the
    token stays in the tab (sessionStorage), never in a cookie or the URL."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "node_failure:db-2", "Node db-2 is down")
        browser.open(server.url + "/")
        browser.type_ack_form("alice", ADMIN_TOKEN)
        browser.css("button[data-ack='node_failure:db-2']").click()
        browser.wait_for_text("#ack-message", "Acknowledged: Node db-2 is down")
        wait_until(
            lambda: "acknowledged" in alert_row(browser, "Node db-2 is down"),
            15,
            "the row acknowledged",
        )
        assert browser.all("button[data-ack='node_failure:db-2']") == []
        assert api_state(server, "node_failure:db-2") == "acknowledged"
        record = wait_for_alert(server, "node_failure:db-2", lambda r: r.ack_by == "alice")
        assert record.state is AlertState.ACKNOWLEDGED
        assert browser.run("return document.cookie") == ""
        assert ADMIN_TOKEN not in browser.driver.current_url
        assert browser.run("return sessionStorage.getItem('exesdb-bridge.admin-token')") == (
            ADMIN_TOKEN
        )
        assert browser.run("return localStorage.length") == 0


LOADED = "return document.readyState === 'complete' && !!document.getElementById('ack-token')"
TOKEN_KEPT = """
return [sessionStorage.getItem('exesdb-bridge.admin-token'), localStorage.length,
        document.cookie, document.getElementById('ack-token').value];
"""


def test_the_token_is_kept_for_its_tab_and_a_tab_opened_from_it_has_none(
    tmp_path: Path, browser: Browser
) -> None:
    """The admin token used in a tab is not in a tab opened from it: an alert's link
    ctrl-clicked, as a person opens one beside the list, opens its page with an empty token
    field and nothing stored (Chromium copies sessionStorage only into tabs that keep their
    opener); the same tab's next page has it, as the bar says."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "Queue backed up")
        raise_alert(server, "a2", "Disk full on db-2")
        browser.open(server.url + "/")
        browser.type_ack_form("alice", ADMIN_TOKEN)
        browser.css("button[data-ack='a1']").click()
        browser.wait_for_text("#ack-message", "Acknowledged: Queue backed up")
        driver = browser.driver
        first = driver.current_window_handle
        link = browser.css("table.alerts a[href='./alerts/a2']")
        ActionChains(driver).key_down(Keys.CONTROL).click(link).key_up(Keys.CONTROL).perform()
        [opened] = wait_until(
            lambda: [h for h in driver.window_handles if h != first], 15, "a new tab"
        )
        driver.switch_to.window(opened)
        wait_until(lambda: driver.current_url.endswith("/alerts/a2"), 15, "the alert's page")
        wait_until(lambda: browser.run(LOADED), 15, "its page loaded, its script run")
        assert browser.run(TOKEN_KEPT) == [None, 0, "", ""]
        driver.close()
        driver.switch_to.window(first)
        browser.css("table.alerts a[href='./alerts/a2']").click()
        wait_until(lambda: driver.current_url.endswith("/alerts/a2"), 15, "the alert's page")
        wait_until(lambda: browser.run(LOADED), 15, "its page loaded, its script run")
        assert browser.run(TOKEN_KEPT) == [ADMIN_TOKEN, 0, "", ADMIN_TOKEN]


def test_a_screen_reader_hears_which_alert_each_acknowledge_button_is_for(
    tmp_path: Path, browser: Browser
) -> None:
    """Each Acknowledge button's accessible name says which alert it acknowledges (a list of
    buttons all named "Acknowledge" tells a screen reader user nothing), on both pages, and
    the status page has a level-one heading as the alert's page has."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "Queue backed up")
        raise_alert(server, "a2", "Disk full on db-2")
        browser.open(server.url + "/")
        assert [h.get_attribute("textContent") for h in browser.all("h1")] == ["Status"]
        names = {button.accessible_name for button in browser.all("button[data-ack]")}
        assert names == {"Acknowledge Queue backed up", "Acknowledge Disk full on db-2"}
        browser.open(server.url + alert_path("a2"))
        assert browser.css("button[data-ack]").accessible_name == "Acknowledge Disk full on db-2"


def test_a_blank_name_is_refused_on_the_page_before_anything_is_posted(
    tmp_path: Path, browser: Browser
) -> None:
    """A name of spaces or other Unicode whitespace only (U+3000, U+00A0), which the bridge
    refuses as ack_by, is refused on the page as an empty one is: it asks for a name, and the
    alert stays firing."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "Queue backed up")
        browser.open(server.url + "/")
        browser.type_ack_form(" \u3000\u00a0 ", ADMIN_TOKEN)
        browser.css("button[data-ack='a1']").click()
        browser.wait_for_text("#ack-message", "Type your name first")
        assert browser.css("#ack-message").get_attribute("class") == "error"
        assert browser.css("button[data-ack='a1']").is_enabled()
        assert api_state(server, "a1") == "firing"


def test_acknowledge_on_a_page_shown_before_the_alert_fired_again_leaves_the_new_one(
    tmp_path: Path, browser: Browser
) -> None:
    """Acknowledge pressed on a page still showing an episode of the alert that has ended (it
    resolved and fired again while the page's refreshes failed) is refused: the page says the
    alert fired again since, and the alert firing now stays firing; once the page shows the
    new episode, its Acknowledge acknowledges that one."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "Queue backed up")
        browser.hasten()
        browser.open(server.url + "/")
        browser.type_ack_form("alice", ADMIN_TOKEN)
        shown = browser.attribute("button[data-ack='a1']", "data-starts-at")
        assert shown
        # The tab's refreshes fail from now on (a network blip): the page shows what it did. One
        # failed, no refresh sent before the blip is still to be answered (they run in turn).
        browser.driver.execute_cdp_cmd("Network.enable", {})
        browser.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*part=live*"]})
        browser.wait_for_text("#refreshed", "Not updated since", 3 * REFRESH_SECONDS)
        fixed = Acknowledgement("a1", "bob", resolution="fixed")
        server.run(sink_of(server).acknowledge(fixed))
        raise_alert(server, "a1", "Queue backed up")
        wait_for_alert(server, "a1", lambda record: record.state is AlertState.FIRING)
        browser.click("button[data-ack='a1']")
        message = browser.wait_for_text("#ack-message", "fired again since")
        assert shown in message
        assert browser.css("#ack-message").get_attribute("class") == "error"
        assert api_state(server, "a1") == "firing"
        browser.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
        wait_until(
            lambda: browser.all(f"button[data-ack='a1']:not([data-starts-at='{shown}'])"),
            15,
            "the page showing the new episode",
        )
        browser.click("button[data-ack='a1']")
        browser.wait_for_text("#ack-message", "Acknowledged: Queue backed up")
        assert api_state(server, "a1") == "acknowledged"


def test_a_resolved_alerts_page_says_why_it_has_no_acknowledge_bar_until_it_fires_again(
    tmp_path: Path, browser: Browser
) -> None:
    """A resolved alert's page hides the acknowledge bar and says, where the button would be,
    that there is nothing to acknowledge; once the alert fires again the open page shows its
    Acknowledge button and the bar, and acknowledging there acknowledges it."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "Queue backed up")
        server.run(sink_of(server).acknowledge(Acknowledgement("a1", "bob", resolution="fixed")))
        wait_for_alert(server, "a1", lambda record: record.state is AlertState.RESOLVED)
        browser.hasten()
        browser.open(server.url + alert_path("a1"))
        assert not browser.css("#ack-form").is_displayed()
        assert browser.text("#cannot-ack") == "Resolved: there is nothing to acknowledge."
        assert browser.all("button[data-ack]") == []
        raise_alert(server, "a1", "Queue backed up")
        wait_until(lambda: browser.all("button[data-ack='a1']"), 15, "the alert firing again")
        assert browser.css("#ack-form").is_displayed()
        assert browser.all("#cannot-ack") == []
        browser.type_ack_form("alice", ADMIN_TOKEN)
        browser.click("button[data-ack='a1']")
        browser.wait_for_text("#ack-message", "Acknowledged: Queue backed up")
        assert api_state(server, "a1") == "acknowledged"
        browser.wait_for_text(
            "#cannot-ack", "Acknowledged by alice: there is nothing more to acknowledge."
        )
        assert browser.css("#ack-form").is_displayed()  # with what acknowledging said
        assert csp_refusals(browser) == []


def test_a_wrong_token_shows_an_error(tmp_path: Path, browser: Browser) -> None:
    """A wrong admin token is refused: the page says so and the alert stays firing."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "Queue backed up")
        browser.open(server.url + "/")
        browser.type_ack_form("mallory", "not-the-token")
        browser.css("button[data-ack='a1']").click()
        message = browser.wait_for_text("#ack-message", "refused (401)")
        assert "EXESDB_ADMIN_TOKEN" in message
        assert browser.css("#ack-message").get_attribute("class") == "error"
        assert "firing" in alert_row(browser, "Queue backed up")
        assert api_state(server, "a1") == "firing"


def test_an_acknowledgement_the_full_disk_refuses_says_why_and_may_be_tried_again(
    small_disk: SmallDisk, browser: Browser
) -> None:
    """Acknowledging while the outbox's disk is full: the page shows the bridge's reason (the
    disk full, nothing changed, retry later) as an error, the alert stays firing and its button
    can be pressed again, which acknowledges it once there is space."""
    with page_bridge(small_disk.path) as server:
        raise_alert(server, "a1", "Queue backed up")
        browser.open(server.url + "/")
        browser.type_ack_form("alice", ADMIN_TOKEN)
        small_disk.fill()
        browser.css("button[data-ack='a1']").click()
        message = browser.wait_for_text("#ack-message", "could not be stored")
        assert "database or disk is full" in message
        assert "retry later" in message
        assert browser.css("#ack-message").get_attribute("class") == "error"
        assert api_state(server, "a1") == "firing"
        small_disk.free()
        wait_until(
            lambda: browser.css("button[data-ack='a1']").is_enabled(), 15, "the button again"
        )
        browser.css("button[data-ack='a1']").click()
        browser.wait_for_text("#ack-message", "Acknowledged: Queue backed up")
        assert api_state(server, "a1") == "acknowledged"


def test_a_refused_token_is_forgotten_and_the_field_ready_for_the_right_one(
    tmp_path: Path, browser: Browser
) -> None:
    """A token the bridge refuses is not kept for the tab (a reload would fill it in again),
    and the focus goes to the token field, its text selected, to type the right one over it;
    the right one then acknowledges."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "Queue backed up")
        browser.open(server.url + "/")
        browser.type_ack_form("alice", "not-the-token")
        browser.css("button[data-ack='a1']").click()
        browser.wait_for_text("#ack-message", "refused (401)")
        assert browser.run("return sessionStorage.getItem('exesdb-bridge.admin-token')") is None
        assert browser.run("return document.activeElement.id") == "ack-token"
        selected = browser.run(
            "const f = document.activeElement;"
            " return f.value.slice(f.selectionStart, f.selectionEnd)"
        )
        assert selected == "not-the-token"
        browser.driver.switch_to.active_element.send_keys(ADMIN_TOKEN)
        browser.css("button[data-ack='a1']").click()
        browser.wait_for_text("#ack-message", "Acknowledged: Queue backed up")


def test_a_delivered_webhooks_generator_url_opens_the_alerts_page(
    tmp_path: Path, browser: Browser, webhook_receiver
) -> None:
    """The generatorURL a real receiver was sent (the listen address + /alerts/{id}) opens that
    alert's page in the browser, with its delivery to that receiver shown by origin and the
    annotations the receiver got, summary among them."""
    receiver: WebhookReceiver = webhook_receiver()
    port = free_port()
    with page_bridge(
        tmp_path,
        EXESDB_HTTP_ADDR=f"127.0.0.1:{port}",
        EXESDB_WEBHOOK_URLS=receiver.url,
        **HOOK_SETTINGS,
    ) as server:
        raise_alert(server, "node_failure:db-3@cluster", "Node db-3 is down")
        alert = delivered_alert(receiver, "node_failure:db-3@cluster")
        url = alert["generatorURL"]
        assert url == f"http://127.0.0.1:{port}/alerts/node_failure%3Adb-3%40cluster"
        browser.open(url)
        assert browser.text("#alert-title") == "Node db-3 is down"
        assert "node_failure:db-3@cluster" in browser.text("#labels")
        assert "Fired" in browser.text("#history")
        deliveries = browser.wait_for_text("#deliveries", "delivered")
        assert f"http://127.0.0.1:{receiver.port}/…" in deliveries
        assert "/hook" not in deliveries
        assert dict(browser.run(ANNOTATIONS)) == alert["annotations"]
        assert alert["annotations"]["summary"] == "Node db-3 is down"
        assert csp_refusals(browser) == []


def test_a_browser_reaches_an_alerts_page_with_a_slash_added_and_a_404_page_elsewhere(
    tmp_path: Path, browser: Browser
) -> None:
    """In Chromium, an alert's address with a slash added lands on the alert's page, and a path
    nothing is served at shows the styled 404 page (no CSP refusal) whose link leads back to
    the status page."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "disk_full:db-7", "Disk full on db-7")
        browser.open(server.url + "/alerts/disk_full:db-7/")
        assert browser.driver.current_url == server.url + "/alerts/disk_full:db-7"
        assert browser.text("#alert-title") == "Disk full on db-7"
        browser.open(server.url + "/alerts/disk_full:db-7/history/index.html")
        assert browser.text("h1") == "Nothing here"
        # The stylesheet applied (a panel's padding is pages.css's, not the browser's none).
        assert (
            browser.run("return getComputedStyle(arguments[0]).paddingTop", browser.css(".panel"))
            != "0px"
        )
        assert csp_refusals(browser) == []
        browser.css("a[href='../../../']").click()
        wait_until(lambda: browser.driver.current_url == server.url + "/", 15, "the status page")
        browser.open(browser.driver.current_url)
        assert "Disk full on db-7" in alert_row(browser, "Disk full on db-7")


CLICK_TITLE = """
[...document.querySelectorAll("table.alerts a.title")]
  .find((link) => link.textContent === arguments[0]).click();
"""


def test_alert_ids_a_path_would_read_otherwise_reach_their_pages_and_are_acknowledged(
    tmp_path: Path, browser: Browser
) -> None:
    """In Chromium, alerts whose ids hold dots, slashes, percent signs, ? or # (escaped in their
    links: ``.`` and ``..`` alone are refused at ingest) are each reached from the status page's
    link, and one is acknowledged from the status page."""
    ids = ["...", "a/../b", "%2e%2e", "%2F", "x?y#z"]
    with page_bridge(tmp_path) as server:
        for n, alert_id in enumerate(ids):
            raise_alert(server, alert_id, f"Alert {n}")
        for n, alert_id in enumerate(ids):
            browser.open(server.url + "/")
            browser.run(CLICK_TITLE, f"Alert {n}")
            browser.wait_for_text("#alert-title", f"Alert {n}")
            assert browser.driver.current_url == server.url + alert_path(alert_id)
            assert alert_id in browser.text("#labels")
        browser.open(server.url + "/")
        browser.type_ack_form("alice", ADMIN_TOKEN)
        browser.css("button[data-ack='a/../b']").click()
        browser.wait_for_text("#ack-message", "Acknowledged: Alert 1")
        assert wait_for_alert(server, "a/../b", lambda r: r.ack_by == "alice")
        assert csp_refusals(browser) == []


def test_an_alert_with_the_longest_id_is_reached_by_its_links_and_acknowledged(
    tmp_path: Path, browser: Browser, webhook_receiver
) -> None:
    """An alert id of MAX_TEXT characters of four UTF-8 bytes each (a ~49 kB escaped path):
    its generatorURL opens its page, the status page's link reaches it, and its page's
    Acknowledge acknowledges it, though the request line is far over aiohttp's default 8 190
    bytes."""
    receiver: WebhookReceiver = webhook_receiver()
    alert_id = "\N{GRINNING FACE}" * MAX_TEXT
    with page_bridge(tmp_path, EXESDB_WEBHOOK_URLS=receiver.url, **HOOK_SETTINGS) as server:
        raise_alert(server, alert_id, "An alert with a long id")
        url = delivered_alert(receiver, alert_id)["generatorURL"]
        assert len(url) > 49_000
        status, body = http_get(url)
        assert status == 200
        assert "An alert with a long id" in body.decode()
        browser.open(server.url + "/")
        browser.run(CLICK_TITLE, "An alert with a long id")
        browser.wait_for_text("#alert-title", "An alert with a long id")
        assert browser.driver.current_url == server.url + alert_path(alert_id)
        browser.type_ack_form("alice", ADMIN_TOKEN)
        browser.css("button[data-ack]").click()
        browser.wait_for_text("#ack-message", "Acknowledged: An alert with a long id")
        assert wait_for_alert(server, alert_id, lambda r: r.ack_by == "alice")


def test_the_generator_url_answers_a_plain_get_without_a_token(
    tmp_path: Path, webhook_receiver
) -> None:
    """The generatorURL of a delivered webhook, fetched with no token, is 200 with the title."""
    receiver: WebhookReceiver = webhook_receiver()
    port = free_port()
    with page_bridge(
        tmp_path,
        EXESDB_HTTP_ADDR=f"127.0.0.1:{port}",
        EXESDB_WEBHOOK_URLS=receiver.url,
        **HOOK_SETTINGS,
    ) as server:
        raise_alert(server, "disk_full:db-4", "Disk full on db-4")
        alert = delivered_alert(receiver, "disk_full:db-4")
        status, body = http_get(alert["generatorURL"])
        assert server.url == f"http://127.0.0.1:{port}"
    assert status == 200
    assert "Disk full on db-4" in body.decode()


def test_on_port_0_the_generator_url_names_the_port_bound(tmp_path: Path, webhook_receiver) -> None:
    """With EXESDB_HTTP_ADDR at port 0 (the system picks one) the generatorURL names the port the
    bridge listens on, not 0, and answers 200 with the alert's title."""
    receiver: WebhookReceiver = webhook_receiver()
    with page_bridge(
        tmp_path, EXESDB_HTTP_ADDR="127.0.0.1:0", EXESDB_WEBHOOK_URLS=receiver.url, **HOOK_SETTINGS
    ) as server:
        raise_alert(server, "disk_full:db-5", "Disk full on db-5")
        alert = delivered_alert(receiver, "disk_full:db-5")
        assert alert["generatorURL"] == f"{server.url}/alerts/disk_full%3Adb-5"
        status, body = http_get(alert["generatorURL"])
    assert status == 200
    assert "Disk full on db-5" in body.decode()


def test_with_an_external_url_a_webhooks_generator_url_starts_with_it(
    tmp_path: Path, webhook_receiver
) -> None:
    """With EXESDB_EXTERNAL_URL set (here the bridge's port under another name, localhost, a
    trailing slash typed), a delivered webhook's generatorURL is that URL + /alerts/{id}, not
    the listen address, and it opens the alert's page."""
    receiver: WebhookReceiver = webhook_receiver()
    port = free_port()
    with page_bridge(
        tmp_path,
        EXESDB_HTTP_ADDR=f"127.0.0.1:{port}",
        EXESDB_EXTERNAL_URL=f"http://localhost:{port}/",
        EXESDB_WEBHOOK_URLS=receiver.url,
        **HOOK_SETTINGS,
    ) as server:
        raise_alert(server, "disk_full:db-6", "Disk full on db-6")
        alert = delivered_alert(receiver, "disk_full:db-6")
        assert alert["generatorURL"] == f"http://localhost:{port}/alerts/disk_full%3Adb-6"
        status, body = http_get(alert["generatorURL"])
    assert status == 200
    assert "Disk full on db-6" in body.decode()


def test_an_alert_title_holding_html_shows_as_text(tmp_path: Path, browser: Browser) -> None:
    """A title of markup and script renders as those characters: nothing runs, no element."""
    title = '<img src=x onerror="window.pwned = 1"><b>bold</b><script>window.pwned = 2</script>'
    with page_bridge(tmp_path) as server:
        raise_alert(server, "evil", title)
        browser.open(server.url + "/")
        link = browser.css("table.alerts a.title")
        assert link.text == title
        assert link.find_elements("css selector", "*") == []
        link.click()
        wait_until(lambda: "/alerts/evil" in browser.driver.current_url, 15, "the alert's page")
        browser.open(browser.driver.current_url)
        assert browser.text("#alert-title") == title
        assert browser.run("return window.pwned === undefined") is True
        assert browser.all("#live img, #live script") == []


def test_an_alerts_source_and_metadata_show_on_its_page_as_text(
    tmp_path: Path, browser: Browser
) -> None:
    """The alert page shows the component that raised the alert (a fact and the ``source``
    label) and its metadata annotations, markup in them as text, a secret never."""
    source = "<i>backup</i>-job"
    note = '<img src=x onerror="window.pwned = 3">nightly'
    with page_bridge(tmp_path) as server:
        raise_alert(
            server,
            "meta",
            "Backup failed",
            source=source,
            metadata={"note": note, "session_key": "s3cr3t-value", "tries": 3},
        )
        browser.open(server.url + alert_path("meta"))
        assert browser.text("#alert-title") == "Backup failed"
        assert source in browser.text("#labels")
        fact = browser.run(
            "return [...document.querySelectorAll('dl.facts dt')]"
            ".find((dt) => dt.textContent === 'Source').nextElementSibling.textContent"
        )
        assert fact == source
        annotations = browser.text("#annotations")
        assert "metadata_note" in annotations
        assert note in annotations
        assert "metadata_tries" in annotations
        assert "s3cr3t-value" not in browser.driver.page_source
        assert browser.run("return window.pwned === undefined") is True
        assert browser.all("#live img, #live i") == []


def test_make_screenshots_writes_a_picture_of_each_page(tmp_path: Path) -> None:
    """`make screenshots` (the --demo bridge in Chromium) writes status.png and alert.png, PNGs
    1280 pixels wide, into the folder it is given; the alert photographed shows the source and
    metadata of the SystemAlert that raised it (main fails otherwise)."""
    require_chromium()
    folder = tmp_path / "img"
    assert screenshots.main([str(folder)]) == 0
    for name in ("status.png", "alert.png"):
        data = (folder / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
        assert (width, height > 800) == (1280, True), name


def test_zero_width_and_bidirectional_characters_in_a_title_show_as_their_escapes(
    tmp_path: Path, browser: Browser
) -> None:
    """A title holding a zero-width space and a right-to-left override shows them as their
    escapes on the status page and on the alert's page (drawn as nothing, the title would look
    like another, and the override would turn the text after it around); the alert, whose id
    holds a zero-width space too, is acknowledged from its button all the same."""
    title = "Disk full\u200b on db-1 \u202eok"
    shown = "Disk full\\u200b on db-1 \\u202eok"
    alert_id = "disk\u200bfull"
    with page_bridge(tmp_path) as server:
        raise_alert(server, alert_id, title)
        browser.open(server.url + "/")
        assert browser.css("table.alerts a.title").text == shown
        browser.type_ack_form("alice", ADMIN_TOKEN)
        browser.css("button.ack").click()
        browser.wait_for_text("#ack-message", f"Acknowledged: {shown}")
        record = wait_for_alert(server, alert_id, lambda r: r.ack_by == "alice")
        assert record.state is AlertState.ACKNOWLEDGED
        browser.open(server.url + alert_path(alert_id))
        assert browser.text("#alert-title") == shown
        assert "\u200b" not in browser.text("#live")
        assert "\u202e" not in browser.text("#live")
