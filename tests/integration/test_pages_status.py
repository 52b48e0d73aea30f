"""The status page in a real headless Chromium: what it lists, how it refreshes in place,
and how it fits a screen."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.cluster import cluster_monitor
from bridge.messages import MAX_TEXT
from bridge.pages.widgets import REFRESH_SECONDS
from bridge.sinks.alerts.payload import alert_path
from collectors import health_collector
from tests.integration.pages_support import (
    HOOK_SETTINGS,
    LONG_ID,
    LONG_NODE,
    OVERFLOW,
    alert_row,
    csp_refusals,
)
from tests.integration.servers.chromium import HEIGHT, WIDTH, Browser, SharedChromium
from tests.integration.servers.webhook import Answer, WebhookReceiver, webhook_receiver
from tests.pages.helpers import NODE, page_bridge, raise_alert, report_from, report_node
from tests.support import http_get, refusing_port, wait_until

# The page modules run on one pytest-xdist worker, one after another: their Chromium (a fixture
# of tests/integration/conftest.py) starts once.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("chromium")]

# The fixtures, imported for the tests below.
__all__ = ["webhook_receiver"]


NODE_ROW = """
const row = [...document.querySelectorAll("table.nodes tbody tr")]
  .find((row) => row.cells[0].textContent === arguments[0]);
return row ? [...row.cells].map((cell) => cell.innerText.trim()) : [];
"""


def node_cells(web: Browser, node: str) -> list[str]:
    """The visible text of each cell of the status page's row for ``node`` ([] when none)."""
    return list(web.run(NODE_ROW, node))


def test_a_page_test_is_given_the_shared_chromium_as_a_new_one_would_be(
    tmp_path: Path, browser: Browser, shared_chromium: SharedChromium
) -> None:
    """The page tests share one Chromium: what a test leaves (another tab, a phone's
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
        # Counted by the script at each refresh, in whole seconds: two hastened refreshes may
        # come within the second the age was read in.
        wait_until(
            lambda: browser.run(AGE, "the first alert") != first_age,
            3 * REFRESH_SECONDS,
            "the age counted on",
        )
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
    """On a phone 375 pixels wide the dead-letter notice shows each command it gives (to list,
    to resend and to drop the dead letters) on one line, whole, nothing past the screen's edge
    nor its panel's; a parenthesis beside a code sits against it, closer than a space."""
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
        ["exesdb-bridge outbox drop --receiver ORIGIN", 1],
        ["--all", 1],
        ["EXESDB_WEBHOOK_DEAD_LETTER_TTL_MS", 1],
    ]
    assert [shown for shown, _, _ in gaps] == ["EXESDB_STATE_DIR)", "(--all"]
    assert all(0 <= gap < space for _, gap, space in gaps), gaps


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
