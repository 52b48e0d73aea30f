"""An alert's page in a real headless Chromium, reached as an operator reaches it: by the
status page's links and by the generatorURL of a real webhook.

The bridge runs in a thread of its own (the browser is driven synchronously); webhooks go to a
real HTTP receiver on loopback, and their ``generatorURL`` is followed as an operator would.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.messages import MAX_TEXT
from bridge.pages.widgets import REFRESH_SECONDS
from bridge.sinks.alerts.payload import alert_path
from bridge.sinks.alerts.retention import RESOLVED_KEPT_SECONDS
from tests.doc_text import README
from tests.integration.pages_support import (
    HOOK_SETTINGS,
    LONG_ID,
    OVERFLOW,
    alert_row,
    csp_refusals,
)
from tests.integration.servers.chromium import Browser, require_chromium
from tests.integration.servers.webhook import WebhookReceiver, webhook_receiver
from tests.pages.helpers import page_bridge, raise_alert, sink_of, wait_for_alert
from tests.support import (
    ADMIN_TOKEN,
    ROOT,
    ThreadedBridge,
    free_port,
    http_get,
    require_binary,
    wait_until,
)

# The page modules run on one pytest-xdist worker, one after another: their Chromium (a fixture
# of tests/integration/conftest.py) starts once.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("chromium")]

# The fixtures, imported for the tests below.
__all__ = ["webhook_receiver"]


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


@contextlib.contextmanager
def delivered_from(
    tmp_path: Path, receiver: WebhookReceiver, alert_id: str, title: str, **env: str
) -> Iterator[tuple[ThreadedBridge, dict[str, Any]]]:
    """A page bridge notifying ``receiver`` (``env``: settings of its own) with the alert
    ``alert_id`` raised: the bridge, and the alert entry the receiver accepted for it."""
    with page_bridge(tmp_path, EXESDB_WEBHOOK_URLS=receiver.url, **HOOK_SETTINGS, **env) as server:
        raise_alert(server, alert_id, title)
        yield server, delivered_alert(receiver, alert_id)


# Run before the page's own script: counts the requests for its live part as they are sent (a
# resource timing entry comes only once the answer has).
ASKED = """
window.liveAsked = 0;
const fetchAsAsked = window.fetch.bind(window);
window.fetch = (resource, ...rest) => {
  if (String(resource).includes("part=live")) window.liveAsked += 1;
  return fetchAsAsked(resource, ...rest);
};
"""
# The requests for the live part sent, once a timer of arguments[0] ms set as the page sets its
# own (hastened alike) has fired.
AFTER_A_TIMER = """
const done = arguments[arguments.length - 1];
setTimeout(() => done(window.liveAsked), arguments[0]);
"""


def test_an_alerts_page_whose_alert_was_pruned_says_so_keeps_what_it_showed_and_stops(
    tmp_path: Path, browser: Browser
) -> None:
    """When the alert of an open page is pruned (resolved more than a week ago), the top of the
    page says the bridge no longer keeps it, not that a refresh failed; the page keeps what it
    showed and asks the bridge no more."""
    with page_bridge(tmp_path) as server:
        raise_alert(server, "a1", "the disk filled up", severity="warning")
        browser.hasten()
        browser.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": ASKED})
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
        asked = browser.run("return window.liveAsked")
        raise_alert(server, "a1", "raised again after the prune")
        assert http_get(server.url + "/alerts/a1?part=live")[0] == 200  # a refresh would show it
        # Timers fire in the order they fall due: by the time one set now for two refresh
        # periods has, any refresh the page had set has sent its request.
        wait = 2 * REFRESH_SECONDS * 1000
        assert browser.driver.execute_async_script(AFTER_A_TIMER, wait) == asked
        assert browser.text("#alert-title") == "the disk filled up"


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


def test_a_delivered_webhooks_generator_url_opens_the_alerts_page(
    tmp_path: Path, browser: Browser, webhook_receiver
) -> None:
    """The generatorURL a real receiver was sent (the listen address + /alerts/{id}) opens that
    alert's page in the browser, with its delivery to that receiver shown by origin and the
    annotations the receiver got, summary among them."""
    receiver: WebhookReceiver = webhook_receiver()
    port = free_port()
    with delivered_from(
        tmp_path,
        receiver,
        "node_failure:db-3@cluster",
        "Node db-3 is down",
        EXESDB_HTTP_ADDR=f"127.0.0.1:{port}",
    ) as (_server, alert):
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
    with delivered_from(tmp_path, receiver, alert_id, "An alert with a long id") as (
        server,
        alert,
    ):
        url = alert["generatorURL"]
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
    with delivered_from(
        tmp_path,
        receiver,
        "disk_full:db-4",
        "Disk full on db-4",
        EXESDB_HTTP_ADDR=f"127.0.0.1:{port}",
    ) as (server, alert):
        status, body = http_get(alert["generatorURL"])
        assert server.url == f"http://127.0.0.1:{port}"
    assert status == 200
    assert "Disk full on db-4" in body.decode()


def test_on_port_0_the_generator_url_names_the_port_bound(tmp_path: Path, webhook_receiver) -> None:
    """With EXESDB_HTTP_ADDR at port 0 (the system picks one) the generatorURL names the port the
    bridge listens on, not 0, and answers 200 with the alert's title."""
    receiver: WebhookReceiver = webhook_receiver()
    with delivered_from(
        tmp_path, receiver, "disk_full:db-5", "Disk full on db-5", EXESDB_HTTP_ADDR="127.0.0.1:0"
    ) as (server, alert):
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
    with delivered_from(
        tmp_path,
        receiver,
        "disk_full:db-6",
        "Disk full on db-6",
        EXESDB_HTTP_ADDR=f"127.0.0.1:{port}",
        EXESDB_EXTERNAL_URL=f"http://localhost:{port}/",
    ) as (_server, alert):
        assert alert["generatorURL"] == f"http://localhost:{port}/alerts/disk_full%3Adb-6"
        status, body = http_get(alert["generatorURL"])
    assert status == 200
    assert "Disk full on db-6" in body.decode()


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


def screenshots_command() -> list[str]:
    """The command ``make screenshots`` runs, as its dry run prints it (the last line: the
    virtualenv and the servers it needs come first, and are there already)."""
    completed = subprocess.run(
        [require_binary("make"), "--dry-run", "--no-print-directory", "screenshots"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return shlex.split(completed.stdout.strip().splitlines()[-1])


def test_make_screenshots_writes_a_picture_of_each_page(tmp_path: Path) -> None:
    """`make screenshots` (the --demo bridge in Chromium) writes status.png and alert.png, PNGs
    1280 pixels wide, into the folder the README's picture of the status page is in (here the
    same command writes them into a folder of the test's); the alert photographed shows the
    source and metadata of the SystemAlert that raised it (the command fails otherwise)."""
    require_chromium()
    *command, pictures = screenshots_command()
    assert f"]({pictures}/status.png)" in README.read_text()
    folder = tmp_path / "img"
    completed = subprocess.run(
        [*command, str(folder)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    for name in ("status.png", "alert.png"):
        data = (folder / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
        assert (width, height > 800) == (1280, True), name
