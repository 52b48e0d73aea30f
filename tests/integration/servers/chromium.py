"""Headless Chromium driven by selenium, for the page tests and ``make screenshots``.

Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them when missing and run
as root). The machine's network is closed: without the flags below Chromium stalls on refused
connections to its update, sync and QUIC endpoints. Each browser gets a fresh profile directory.
Tests use the ``browser`` fixture; with ``CI=true`` a missing browser fails, else it skips. The
page tests share one Chromium (``shared_chromium``), each given it as a new one would be, quit
after the last of their group (``quit_after_its_group``): the page modules, one xdist group, run
on one worker one after another, and so start one Chromium, not one each. A test waiting on the
pages' refresh hastens its tab (``Browser.hasten``): the page's timers fire ``HASTE`` times
sooner, so it refreshes every half second and says and does the rest as written.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bridge.pages.widgets import REFRESH_SECONDS
from tests.scheduling import group_of
from tests.support import unavailable, wait_until

__all__ = [
    "FLAGS",
    "HASTE",
    "HEIGHT",
    "WIDTH",
    "Browser",
    "SharedChromium",
    "bidi_browser",
    "browser",
    "quit_after_its_group",
    "shared_chromium",
    "start_chromium",
]

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WIDTH = 1280
HEIGHT = 900
# How many times sooner than asked a hastened tab's timers fire: the pages' 5 s refresh, 0.5 s.
HASTE = 10
_T = TypeVar("_T")
# The shared Chromium, for quit_after_its_group to find.
_SHARED = pytest.StashKey["SharedChromium"]()
# Run before each page's own script in a hastened tab: setTimeout's delays cut by HASTE.
_HASTENED = f"""
(() => {{
  const setTimeoutAsAsked = window.setTimeout.bind(window);
  window.setTimeout = (handler, delay, ...rest) =>
    setTimeoutAsAsked(handler, Number(delay || 0) / {HASTE}, ...rest);
}})();
"""


def _binaries() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        raise FileNotFoundError(
            "headless Chromium needs Debian's chromium and chromium-driver"
            " (sudo apt-get install chromium chromium-driver)"
        )
    return chromium, driver


def require_chromium() -> None:
    """Skip when Chromium (either of Debian's names) or its driver is missing; fail under CI."""
    try:
        _binaries()
    except FileNotFoundError as exc:
        unavailable(str(exc))


def start_chromium(
    profile: Path, width: int = WIDTH, height: int = HEIGHT, *, bidi: bool = False
) -> Any:
    """A selenium ``WebDriver`` on a fresh headless Chromium using ``profile`` as its profile;
    ``bidi`` for one speaking WebDriver BiDi too (``Browser.cancel_logins`` needs it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = _binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console messages
    options.enable_bidi = bidi
    # Both paths given: selenium never tries to download a driver or a browser.
    web = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    web.set_page_load_timeout(30)
    return web


class Browser:
    """A driven Chromium with the few waits the page tests need."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def open(self, url: str) -> Browser:
        """Load ``url`` and wait until its document is complete."""
        self.driver.get(url)
        wait_until(
            lambda: self.driver.execute_script("return document.readyState") == "complete",
            15,
            f"{url} to load",
        )
        return self

    def hasten(self) -> float:
        """Have every page this tab opens from now on fire its timers ``HASTE`` times sooner
        than asked (the tab is the test's alone: the next test gets a new one); the seconds
        between two of the pages' refreshes then. A test waiting on a refresh waits a tenth as
        long, the page refreshing, and saying it refreshes, as it would."""
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _HASTENED})
        return REFRESH_SECONDS / HASTE

    def cancel_logins(self) -> None:
        """From now on, cancel each basic auth prompt a request raises, as a person pressing
        Cancel in the login dialog: the page then gets the 401 (a headless Chromium would wait
        on a prompt no one sees). Needs a browser started with ``bidi`` (``bidi_browser``); a
        script awaited in the browser (``execute_async_script``) holds the cancel back."""
        self.driver.network.add_authentication_handler(lambda login: login.cancel())

    def css(self, selector: str) -> Any:
        """The first element matching ``selector`` (fails the test when there is none)."""
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def type_ack_form(self, by: str, token: str) -> None:
        """Type the Acknowledge form's name and admin token, as a person does before a click."""
        self.css("#ack-by").send_keys(by)
        self.css("#ack-token").send_keys(token)

    def all(self, selector: str) -> list[Any]:
        """Every element matching ``selector``."""
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def _found_afresh(self, selector: str, use: Callable[[list[Any]], _T]) -> _T:
        """``use`` of the elements matching ``selector``, found again when a refresh swapped
        them out between finding and using them (WebDriver refuses a swapped-out element before
        it reads or does anything, so using it again does nothing twice)."""
        from selenium.common.exceptions import StaleElementReferenceException

        for _ in range(3):
            try:
                return use(self.all(selector))
            except StaleElementReferenceException:
                continue  # the live part was swapped in between: find it in the new one
        return use(self.all(selector))

    def text(self, selector: str) -> str:
        """The visible text of the first element matching ``selector``, or "" when none; found
        again when a refresh swapped it out between finding and reading it."""
        return self._found_afresh(selector, lambda found: str(found[0].text) if found else "")

    def attribute(self, selector: str, name: str) -> str | None:
        """Attribute ``name`` of the first element matching ``selector`` (fails the test when
        there is none), found again when a refresh swapped it out in between."""
        return self._found_afresh(selector, lambda found: found[0].get_attribute(name))

    def click(self, selector: str) -> None:
        """Click the first element matching ``selector`` (fails the test when there is none),
        found again when a refresh swapped it out in between."""
        self._found_afresh(selector, lambda found: found[0].click())

    def send_keys(self, selector: str, *keys: str) -> None:
        """Type ``keys`` into the first element matching ``selector``, focusing it as Tab would
        (fails the test when there is none), found again when a refresh swapped it out."""
        self._found_afresh(selector, lambda found: found[0].send_keys(*keys))

    def wait_for_text(self, selector: str, text: str, timeout: float = 15.0) -> str:
        """Wait until the element matching ``selector`` shows ``text``."""
        return str(
            wait_until(
                lambda: text in self.text(selector) and self.text(selector),
                timeout,
                f"{text!r} in {selector}",
            )
        )

    def run(self, script: str, *args: Any) -> Any:
        """The value of ``script`` (a function body: ``return …``) run in the page."""
        return self.driver.execute_script(script, *args)

    def console(self) -> list[str]:
        """The console messages since the last call (CSP refusals among them)."""
        return [str(entry.get("message", "")) for entry in self.driver.get_log("browser")]

    def screenshot(self, path: Path, width: int = WIDTH) -> None:
        """A PNG of the whole page at ``width`` pixels wide."""
        metrics = {"width": width, "deviceScaleFactor": 1, "mobile": False}
        # Lay the page out at ``width`` first, then make the viewport as tall as the page.
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride", {**metrics, "height": 800}
        )
        height = self.driver.execute_script(
            "return Math.ceil(document.documentElement.scrollHeight)"
        )
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride", {**metrics, "height": int(height)}
        )
        try:
            self.driver.save_screenshot(str(path))
        finally:
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


class SharedChromium:
    """One headless Chromium for a module's tests, started when first asked for."""

    def __init__(self, profiles: Path) -> None:
        self._profiles = profiles
        self._driver: Any = None
        self._started = 0

    def fresh(self) -> Any:
        """The driver in a tab of its own, as a new Chromium starts: the other tabs closed (and
        with them their device metrics and blocked URLs), the window at its first size, no
        cookies, no cache, the console read; a new Chromium when that cannot be done."""
        if self._driver is not None:
            try:
                _reset(self._driver)
            except Exception:  # e.g. a dialog left open by a failed test: start again
                self.quit()
        if self._driver is None:
            self._started += 1
            self._driver = start_chromium(self._profiles / f"chromium-{self._started}")
        return self._driver

    def quit(self) -> None:
        if self._driver is not None:
            driver, self._driver = self._driver, None
            driver.quit()


def _reset(driver: Any) -> None:
    """Leave ``driver`` with one new blank tab, at the window size it started with, with no
    cookies, nothing cached and no console message unread."""
    used = list(driver.window_handles)
    driver.switch_to.new_window("tab")  # a new tab: sessionStorage and emulation of its own
    for handle in used:
        driver.switch_to.window(handle)
        driver.close()
    [tab] = driver.window_handles
    driver.switch_to.window(tab)
    driver.set_window_size(WIDTH, HEIGHT)
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.get_log("browser")


@pytest.fixture(scope="session")
def shared_chromium(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedChromium]:
    """One headless Chromium for the page tests (starting one takes seconds), started again
    when a test asks for it after ``quit_after_its_group`` quit it; quit at the end."""
    shared = SharedChromium(tmp_path_factory.mktemp("chromium"))
    request.config.stash[_SHARED] = shared
    try:
        yield shared
    finally:
        shared.quit()


def quit_after_its_group(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Quit the shared Chromium, if started, after ``item`` when ``nextitem`` (the next test
    this process runs, if any) is of another group (``group_of``): the page modules, one group,
    use it one after another, and no Chromium idles beside the rest of the run."""
    shared = item.config.stash.get(_SHARED, None)
    if shared is not None and (nextitem is None or group_of(nextitem) != group_of(item)):
        shared.quit()


@pytest.fixture
def bidi_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """A headless Chromium of its own that speaks WebDriver BiDi (``Browser.cancel_logins``),
    quit afterwards: the shared one does not, so that the other tests drive it as before."""
    require_chromium()
    driver = start_chromium(tmp_path_factory.mktemp("chromium-bidi"), bidi=True)
    try:
        yield Browser(driver)
    finally:
        driver.quit()


@pytest.fixture
def browser(shared_chromium: SharedChromium) -> Browser:
    """A headless Chromium as fresh as a new one: one blank tab, nothing kept from a test before."""
    require_chromium()
    return Browser(shared_chromium.fresh())
