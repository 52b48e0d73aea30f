"""The status page on a phone's screen (and a desktop's) in a real headless Chromium: its
sentences and tables read as a person expects, nothing to scroll sideways to."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.headers import ADMIN_TOKEN_HEADER
from bridge.sinks.alerts.payload import alert_path
from tests.integration.pages_support import LONG_NODE, OVERFLOW
from tests.integration.servers.chromium import Browser
from tests.pages.helpers import NODE, page_bridge, raise_alert, report_node

# The page modules run on one pytest-xdist worker, one after another: their Chromium (a fixture
# of tests/integration/conftest.py) starts once.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("chromium")]

# Where each piece of an element's content (a text node, an element) lies, relative to the
# element's content box, beside where it lies when the same content is a plain paragraph of the
# same width and font: [piece, [left, top] of each of its boxes, the same in the paragraph].
AS_A_PARAGRAPH = """
const shown = document.querySelector(arguments[0]);
const style = getComputedStyle(shown);
const plain = document.createElement("p");
plain.innerHTML = shown.innerHTML;
const width = shown.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
Object.assign(plain.style, {
  position: "absolute", left: "0", top: "0", margin: "0", padding: "0", border: "0",
  font: style.font, width: width + "px",
});
document.body.append(plain);
const boxes = (element) => {
  const origin = element.getBoundingClientRect();
  const left = origin.left + element.clientLeft + parseFloat(getComputedStyle(element).paddingLeft);
  const top = origin.top + element.clientTop + parseFloat(getComputedStyle(element).paddingTop);
  return [...element.childNodes].map((piece) => {
    const range = document.createRange();
    range.selectNode(piece);
    return [...range.getClientRects()]
      .filter((box) => box.width > 0)
      .map((box) => [Math.round(box.left - left), Math.round(box.top - top)]);
  });
};
const ours = boxes(shown);
const theirs = boxes(plain);
plain.remove();
return [...shown.childNodes].map((piece, at) => [piece.textContent, ours[at], theirs[at]]);
"""


@pytest.mark.parametrize("width", [375, 1280], ids=["phone", "desktop"])
def test_without_an_admin_token_the_acknowledging_is_off_sentence_reads_as_one_paragraph(
    tmp_path: Path, browser: Browser, width: int
) -> None:
    """On a phone 375 pixels wide and on a desktop, the sentence saying acknowledging is off
    (no admin token) wraps as a paragraph does, its words and its code where a plain paragraph
    of its width would put them, not three blocks side by side or one under another; the page
    never scrolls sideways."""
    with page_bridge(tmp_path, EXESDB_ADMIN_TOKEN="") as server:
        screen = {"width": width, "height": 844, "deviceScaleFactor": 1, "mobile": width < 600}
        browser.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", screen)
        browser.open(server.url + "/")
        assert "EXESDB_ADMIN_TOKEN" in browser.text("#ack-off")
        assert browser.run("return document.documentElement.clientWidth") == width
        assert browser.run(OVERFLOW, ["#ack-off code"]) == []
        pieces = browser.run(AS_A_PARAGRAPH, "#ack-off")
    assert [text for text, _, _ in pieces] == [
        "Acknowledging from this page is off: set ",
        "EXESDB_ADMIN_TOKEN",
        " on the bridge to enable it.",
    ]
    assert all(ours == theirs for _, ours, theirs in pieces), pieces


# Each node row's name (its text and the lines it lies on), the right edge of its health, and
# the left edge of each figure beside the left edge of the column head above it.
NODE_ROWS = """
const heads = [...document.querySelectorAll("table.nodes th")];
return [...document.querySelectorAll("table.nodes tbody tr")].map((row) => {
  const name = row.querySelector(".node-name");
  return [
    name.textContent,
    name.getClientRects().length,
    [...row.cells].slice(2).map((cell, at) => [
      Math.round(cell.getBoundingClientRect().left),
      Math.round(heads[at + 2].getBoundingClientRect().left),
    ]),
  ];
});
"""


def test_on_a_phone_each_nodes_name_reads_whole_above_its_figures(
    tmp_path: Path, browser: Browser
) -> None:
    """On a phone 375 pixels wide each node's name reads on one line (not "exes", "db-1@d",
    "emo" a column a fifth of the screen wide), a host's long name wrapped inside its panel,
    and its CPU, memory and disk figures lie under their columns' heads."""
    with page_bridge(tmp_path) as server:
        report_node(server, "exesdb-1@demo", "unhealthy", cpu=97.0, memory=40.0, disk=90.0)
        report_node(server, LONG_NODE, "healthy", cpu=40.0, memory=50.0, disk=60.0)
        screen = {"width": 375, "height": 844, "deviceScaleFactor": 1, "mobile": True}
        browser.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", screen)
        browser.open(server.url + "/")
        browser.wait_for_text("#nodes", "exesdb-1@demo")
        browser.wait_for_text("#nodes", LONG_NODE)
        assert browser.run("return document.documentElement.clientWidth") == 375
        assert browser.run(OVERFLOW, ["table.nodes td", "table.nodes .badge"]) == []
        rows = browser.run(NODE_ROWS)
    lines = {name: count for name, count, _ in rows}
    assert lines["exesdb-1@demo"] == 1
    assert lines[LONG_NODE] > 1  # wrapped, not past the panel (OVERFLOW above)
    assert all(cell == head for _, _, figures in rows for cell, head in figures), rows


# Each label of the bar's facts ("node", "bus", the version) with the value after it, and
# whether the value starts on the line the label ends on.
FACT_LINES = """
const walker = document.createTreeWalker(document.querySelector("header.bar .facts"), 4);
const out = [];
while (walker.nextNode()) {
  const label = walker.currentNode;
  const value = label.nextSibling;
  if (!/^(node|bus|v[0-9].*)$/.test(label.data.trim()) || !value || !value.getClientRects) continue;
  const range = document.createRange();
  range.setStart(label, 0);
  range.setEnd(label, label.data.trimEnd().length);
  const ends = [...range.getClientRects()].pop();
  const starts = value.getClientRects()[0];
  out.push([label.data.trim(), value.textContent, Math.abs(ends.top - starts.top) < 4]);
}
return out;
"""
# The "·" between the bar's facts that begin a line (each line's first box is at its left).
SEPARATORS_FIRST = """
const facts = document.querySelector("header.bar .facts");
const left = facts.getBoundingClientRect().left;
const starts = (sep) =>
  sep.getBoundingClientRect().left - parseFloat(getComputedStyle(sep).marginLeft);
return [...facts.querySelectorAll(".sep")].filter((sep) => starts(sep) < left + 1).length;
"""


def test_on_a_phone_each_of_the_bars_facts_keeps_its_label_and_value_on_one_line(
    tmp_path: Path, browser: Browser
) -> None:
    """On a phone from 320 to 430 pixels wide the bar's facts wrap between facts, never
    between a label and its value: "node" and the node's name (whole), the version and its
    revision, "bus" and "memory" each start on one line, and no line begins with a "·"."""
    with page_bridge(tmp_path) as server:
        browser.open(server.url + "/")
        split = []
        for width in range(320, 431, 5):
            screen = {"width": width, "height": 844, "deviceScaleFactor": 1, "mobile": True}
            browser.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", screen)
            facts = browser.run(FACT_LINES)
            assert {"node", "bus"} <= {label for label, _, _ in facts}, facts
            split += [(width, label, value) for label, value, whole in facts if not whole]
            if browser.run(LINES_OF, "header.bar .facts", "node", NODE) != 1:
                split.append((width, "node", NODE))
            if browser.run(SEPARATORS_FIRST):
                split.append((width, "a line begins with", "·"))
    assert split == [], facts


# How many lines the text from ``arguments[1]`` to the end of ``arguments[2]`` (the first of
# each in the text of the element ``arguments[0]`` matches, in one text node or not) lies on.
LINES_OF = """
const walker = document.createTreeWalker(document.querySelector(arguments[0]), 4);
const range = document.createRange();
let started = false;
while (walker.nextNode()) {
  const text = walker.currentNode;
  if (!started && text.data.includes(arguments[1])) {
    range.setStart(text, text.data.indexOf(arguments[1]));
    started = true;
  }
  if (started && text.data.includes(arguments[2])) {
    range.setEnd(text, text.data.indexOf(arguments[2]) + arguments[2].length);
    const boxes = [...range.getClientRects()].filter((box) => box.width > 0);
    return new Set(boxes.map((box) => Math.round(box.top))).size;
  }
}
return 0;
"""


def test_on_a_phone_the_acknowledge_bar_names_the_tokens_header_whole(
    tmp_path: Path, browser: Browser
) -> None:
    """On a phone from 320 to 430 pixels wide the acknowledge bar's hint gives the header the
    token is sent in on one line, whole as typed (not "X-ExESDB-Admin-" and "Token"), nothing
    past the screen's edge."""
    with page_bridge(tmp_path) as server:
        browser.open(server.url + "/")
        lines = {}
        for width in range(320, 431, 5):
            screen = {"width": width, "height": 844, "deviceScaleFactor": 1, "mobile": True}
            browser.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", screen)
            lines[width] = browser.run(LINES_OF, "#ack-form .hint", *[ADMIN_TOKEN_HEADER] * 2)
            assert browser.run(OVERFLOW, ["#ack-form .hint"]) == []
    assert set(lines.values()) == {1}, lines


def test_on_a_phone_an_alerts_page_gives_its_node_and_its_age_whole(
    tmp_path: Path, browser: Browser
) -> None:
    """On a phone from 320 to 430 pixels wide an alert's page gives its node's name on one line
    under its title and in its summary (not "exesdb-" above "1@demo"), and "started 20s ago"
    on one line, nothing past the screen's edge (a host's long name wrapped inside)."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "Disk almost full on exesdb-1@demo", node="exesdb-1@demo")
        browser.open(server.url + alert_path("a1"))
        lines = {}
        for width in range(320, 431, 5):
            screen = {"width": width, "height": 844, "deviceScaleFactor": 1, "mobile": True}
            browser.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", screen)
            lines[width] = [
                browser.run(LINES_OF, ".alert-head .meta", "node", "exesdb-1@demo"),
                browser.run(LINES_OF, ".alert-head .meta", "started", "ago"),
                browser.run(LINES_OF, "dl.facts", *["exesdb-1@demo"] * 2),
            ]
            assert browser.run(OVERFLOW, [".alert-head .meta", "dl.facts dd"]) == []
        raise_alert(server, "a2", "Disk almost full on a host", node=LONG_NODE)
        browser.open(server.url + alert_path("a2"))
        assert browser.run(OVERFLOW, [".alert-head .meta b", "dl.facts dd"]) == []
    assert all(counts == [1, 1, 1] for counts in lines.values()), lines


# Each line (by its top) the text of the bar's links to the endpoints lies on.
NAV_LINES = """
const tops = [...document.querySelectorAll("header.bar nav a")].flatMap((link) => {
  const range = document.createRange();
  range.selectNodeContents(link);
  return [...range.getClientRects()].map((box) => Math.round(box.top));
});
return [...new Set(tops)];
"""


def test_on_a_phone_the_bars_links_to_the_endpoints_read_as_one_row(
    tmp_path: Path, browser: Browser
) -> None:
    """On a phone from 320 to 430 pixels wide the bar's links to /metrics, /healthz and /readyz
    lie side by side on one line, not one under another, nothing past the screen's edge."""
    with page_bridge(tmp_path) as server:
        browser.open(server.url + "/")
        lines = {}
        for width in range(320, 431, 5):
            screen = {"width": width, "height": 844, "deviceScaleFactor": 1, "mobile": True}
            browser.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", screen)
            lines[width] = len(browser.run(NAV_LINES))
            assert browser.run(OVERFLOW, ["header.bar nav a"]) == []
    assert set(lines.values()) == {1}, lines
