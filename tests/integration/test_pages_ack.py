"""Acknowledging from the pages in a real headless Chromium: the admin token kept for its tab
alone, each refusal said, the focus kept, and text shown as text, never run as markup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.pages.widgets import REFRESH_SECONDS
from bridge.sinks.alerts import AlertState
from bridge.sinks.alerts.payload import alert_path
from bridge.sinks.alerts.records import Acknowledgement
from tests.integration.pages_support import alert_row, csp_refusals
from tests.integration.servers.chromium import Browser
from tests.integration.servers.tmpfs import SmallDisk, small_disk
from tests.pages.helpers import page_bridge, raise_alert, sink_of, wait_for_alert
from tests.support import ADMIN_TOKEN, ThreadedBridge, http_get, wait_until
from tests.webconfig.files import basic, bcrypt_hash

# The page modules run on one pytest-xdist worker, one after another: their Chromium (a fixture
# of tests/integration/conftest.py) starts once.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("chromium")]

# The fixtures, imported for the tests below.
__all__ = ["small_disk"]


def api_state(server: ThreadedBridge, alert_id: str) -> str:
    """The alert's state as GET /v1/alerts (with the admin token) reports it."""
    status, body = http_get(
        f"{server.url}/v1/alerts?alert_id={alert_id}",
        {"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert status == 200
    return str(json.loads(body)["alerts"][0]["state"])


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


def test_a_page_opened_with_a_user_and_password_in_its_address_refreshes_and_acknowledges(
    tmp_path: Path, browser: Browser
) -> None:
    """Behind the web config's basic auth, a page opened as http://user:password@host/ (a
    bookmark so written, as curl takes it) refreshes and acknowledges: fetch refuses a URL with
    user info, so the page asks its own address without it, and the browser sends the password
    it was given for the page."""
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  alice: {bcrypt_hash('alice-pw')}\n")
    with page_bridge(tmp_path / "state", EXESDB_WEB_CONFIG_FILE=str(web)) as server:
        raise_alert(server, "a1", "Queue backed up")
        browser.hasten()
        browser.open(server.url.replace("http://", "http://alice:alice-pw@", 1) + "/")
        raise_alert(server, "a2", "Disk full on db-2")
        wait_until(lambda: alert_row(browser, "Disk full on db-2"), 15, "a refresh")
        browser.type_ack_form("alice", ADMIN_TOKEN)
        browser.css("button[data-ack='a1']").click()
        browser.wait_for_text("#ack-message", "Acknowledged: Queue backed up")
        assert wait_for_alert(server, "a1", lambda record: record.ack_by == "alice")


def test_a_page_whose_login_is_refused_says_so_and_keeps_the_admin_token(
    tmp_path: Path, bidi_browser: Browser
) -> None:
    """Behind basic auth, an acknowledgement the web config refuses (alice's password changed
    since the page was opened, the browser's login prompt cancelled) says the page's login was
    refused and to reload it, not that the admin token is wrong, and keeps the token."""
    browser = bidi_browser
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  alice: {bcrypt_hash('alice-pw')}\n")
    with page_bridge(tmp_path / "state", EXESDB_WEB_CONFIG_FILE=str(web)) as server:
        raise_alert(server, "a1", "Queue backed up")
        browser.open(server.url.replace("http://", "http://alice:alice-pw@", 1) + "/")
        browser.type_ack_form("alice", ADMIN_TOKEN)
        browser.cancel_logins()
        web.write_text(f"basic_auth_users:\n  alice: {bcrypt_hash('new-pw')}\n")
        old_login = {"Authorization": basic("alice", "alice-pw")}
        wait_until(lambda: http_get(server.url + "/", old_login)[0] == 401, 15, "the reload")
        browser.css("button[data-ack='a1']").click()
        message = browser.wait_for_text("#ack-message", "refused (401)")
        assert message.startswith("The page's login was refused (401)")
        assert "Reload the page" in message
        assert "EXESDB_ADMIN_TOKEN" not in message
        stored = browser.run("return sessionStorage.getItem('exesdb-bridge.admin-token')")
        assert stored == ADMIN_TOKEN
        assert browser.css("#ack-token").get_attribute("value") == ADMIN_TOKEN
        assert wait_for_alert(server, "a1", lambda record: record.ack_by is None)


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


def test_zero_width_and_bidirectional_characters_in_a_title_show_as_their_escapes(
    tmp_path: Path, browser: Browser
) -> None:
    """A title holding a zero-width space and a right-to-left override shows them as their
    escapes on the status page and on the alert's page (drawn as nothing, the title would look
    like another, and the override would turn the text after it around); the alert is
    acknowledged from its button all the same. (An alert id may hold neither: it is refused.)"""
    title = "Disk full\u200b on db-1 \u202eok"
    shown = "Disk full\\u200b on db-1 \\u202eok"
    alert_id = "disk full"
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
