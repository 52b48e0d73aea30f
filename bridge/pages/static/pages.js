// The bridge's pages: refresh the live part in place, and acknowledge alerts with the admin token.
// A refresh sends the ETag of what is shown: the bridge answers 304, no body, while it is the same.
// Ages ("3m 12s") are counted here, on the bridge's clock, so only time passing changes nothing.
// Served by the bridge itself (the pages' Content-Security-Policy allows no inline script).
// The token is kept for this tab only (sessionStorage), never in a URL or a cookie. A browser
// copies sessionStorage into a tab opened with its opener kept (window.open, rel="opener"): the
// pages open none so (a link to a new tab is rel="noopener noreferrer"), or the copy would
// outlive Forget.
// An alert's page whose alert the bridge no longer keeps (404) says so and stops refreshing.
"use strict";

(() => {
  const body = document.body;
  const root = body.dataset.root || "/";
  const every = Number(body.dataset.refreshSeconds || 0) * 1000;
  // What an alert's page says when its alert is gone (its live part answered 404); "" elsewhere.
  const goneNotice = body.dataset.gone || "";
  const TOKEN_KEY = "exesdb-bridge.admin-token";
  const NAME_KEY = "exesdb-bridge.ack-by";
  const byId = (id) => document.getElementById(id);
  // A path on this page's server, without user info: a page opened as
  // http://user:password@host/ keeps them in its address, and fetch refuses a URL that carries
  // them (the browser sends the password it was given for the page by itself).
  const here = (path) => {
    const url = new URL(path, location.href);
    url.username = "";
    url.password = "";
    return url;
  };

  function remember(key, value) {
    try {
      if (value) sessionStorage.setItem(key, value);
      else sessionStorage.removeItem(key);
    } catch (_) {
      // Storage refused (a privacy setting): the value lives in the field only.
    }
  }

  function recall(key) {
    try {
      return sessionStorage.getItem(key) || "";
    } catch (_) {
      return "";
    }
  }

  // -- refreshing --

  let timer = null;
  let busy = false;
  let again = false; // asked for while a refresh was under way (after an acknowledgement)
  let stopped = false; // the alert of this page is gone: nothing more to refresh
  let lastGood = new Date();
  let refocusing = []; // where the focus was when an Acknowledge button was pressed
  // The bridge's clock less this one's, in seconds: from the page's rendering, then each answer.
  let skew = Number(body.dataset.now || Date.now() / 1000) - Date.now() / 1000;

  // As bridge/pages/widgets.py's age(): 45s, 3m 12s, 2h 05m, 3d 4h.
  function age(seconds) {
    const whole = Math.max(0, Math.floor(seconds));
    const days = Math.floor(whole / 86400);
    const hours = Math.floor((whole % 86400) / 3600);
    const minutes = Math.floor((whole % 3600) / 60);
    const secs = whole % 60;
    const two = (n) => String(n).padStart(2, "0");
    if (days) return days + "d " + hours + "h";
    if (hours) return hours + "h " + two(minutes) + "m";
    if (minutes) return minutes + "m " + two(secs) + "s";
    return secs + "s";
  }

  function count() {
    const now = Date.now() / 1000 + skew;
    for (const time of document.querySelectorAll("time[data-since]")) {
      time.textContent = age(now - Number(time.dataset.since));
    }
    for (const time of document.querySelectorAll("time[data-until]")) {
      const left = Number(time.dataset.until) - now;
      time.textContent = left > 0 ? "in " + age(left) : "due";
    }
  }

  function heard(response) {
    // Date has whole seconds: only a clock that moved by more than that is followed.
    const date = Date.parse(response.headers.get("Date") || "");
    if (Number.isNaN(date)) return;
    const seen = (date + 500) / 1000 - Date.now() / 1000;
    if (Math.abs(seen - skew) > 2) skew = seen;
  }

  // UTC, as every time the bridge renders: a person and the bridge may be zones apart.
  function utc(date) {
    return date.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  function stamp(text, failed, warning) {
    const where = byId("refreshed");
    if (!where) return;
    where.textContent = text;
    where.classList.toggle("stale", failed);
    // At the top too (the footer may lie below hundreds of alerts), and the figures dimmed:
    // a page the bridge no longer answers must not look current.
    const banner = byId("stale");
    byId("live").classList.toggle("stale", failed);
    if (!banner) return;
    banner.hidden = !failed;
    const said = failed ? warning : "";
    if (banner.textContent !== said) banner.textContent = said; // announced once, not each retry
  }

  // An element of the live part as attributes a swapped-in copy has too: an alert's
  // Acknowledge button, else (gone once acknowledged) the link of its row.
  function keysOf(element) {
    const live = byId("live");
    if (!element || element === live || !live.contains(element)) return [];
    const keys = [];
    if (element.dataset.ack !== undefined) keys.push(["data-ack", element.dataset.ack]);
    if (element.hasAttribute("href")) keys.push(["href", element.getAttribute("href")]);
    const row = element.closest("tr");
    const link = row && row.querySelector("a[href]");
    if (link) keys.push(["href", link.getAttribute("href")]);
    return keys;
  }

  // A keyboard user's focus stays where it was, not back at the top of the page.
  function refocus(keys) {
    for (const [name, value] of keys) {
      const same = [...byId("live").querySelectorAll("[" + name + "]")].find(
        (element) => element.getAttribute(name) === value,
      );
      if (same) {
        same.focus({ preventScroll: true });
        return;
      }
    }
  }

  async function refresh() {
    if (stopped) return;
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    clearTimeout(timer);
    try {
      const url = here(location.href);
      url.hash = "";
      url.searchParams.set("part", "live");
      const live = byId("live");
      const headers = live.dataset.etag ? { "If-None-Match": live.dataset.etag } : {};
      const response = await fetch(url, { cache: "no-store", credentials: "same-origin", headers });
      heard(response);
      if (response.status === 404 && goneNotice) {
        // Gone for good, not a failed refresh: what the page showed stays, dimmed, so labelled.
        stopped = true;
        const since = "Not updated since " + utc(lastGood);
        const notice =
          goneNotice + " What this page shows is the alert as it stood at " + utc(lastGood) +
          "; it no longer refreshes.";
        stamp(since + ": the alert is no longer kept; not refreshing", true, notice);
        return;
      }
      if (response.status !== 304) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        const html = await response.text();
        // Only the live part changes: the scroll position and the fields above it stay.
        // The focus, or the button it was on until acknowledging disabled it (which blurs).
        const active = document.activeElement;
        const focused = active === body || !active ? refocusing : keysOf(active);
        live.innerHTML = html;
        // The acknowledge bar, hidden while the page's alert could not be acknowledged, shown
        // once it can (it fired again): kept shown after, with what acknowledging said.
        const bar = byId("ack-form");
        if (bar && bar.hidden && live.querySelector("button[data-ack]")) bar.hidden = false;
        refocus(focused);
        refocusing = [];
        live.dataset.etag = response.headers.get("ETag") || "";
      }
      count();
      lastGood = new Date();
      stamp("Updated " + utc(lastGood) + " · refreshes every " + every / 1000 + " s", false);
    } catch (error) {
      const since = "Not updated since " + utc(lastGood);
      const warning =
        since + ": the last refresh failed (" + error.message + "). What this page shows may" +
        " be out of date; retrying every " + every / 1000 + " s.";
      stamp(since + " (" + error.message + "); retrying", true, warning);
    } finally {
      busy = false;
      if (again) {
        again = false;
        refresh();
      } else if (every > 0 && !stopped) {
        timer = setTimeout(tick, every);
      }
    }
  }

  function tick() {
    if (document.hidden) {
      timer = setTimeout(tick, every);
      return;
    }
    refresh();
  }

  count();
  if (every > 0) {
    timer = setTimeout(tick, every);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refresh();
    });
  }

  // -- acknowledging --

  const form = byId("ack-form");
  const nameField = byId("ack-by");
  const tokenField = byId("ack-token");
  const message = byId("ack-message");

  function say(text, failed) {
    if (!message) return;
    message.textContent = text;
    message.className = failed ? "error" : "ok";
  }

  if (form) {
    nameField.value = recall(NAME_KEY);
    tokenField.value = recall(TOKEN_KEY);
    form.addEventListener("submit", (event) => event.preventDefault());
    nameField.addEventListener("change", () => remember(NAME_KEY, nameField.value.trim()));
    tokenField.addEventListener("change", () => remember(TOKEN_KEY, tokenField.value.trim()));
    byId("ack-forget").addEventListener("click", () => {
      tokenField.value = "";
      remember(TOKEN_KEY, "");
      say("The admin token is forgotten.", false);
    });
  }

  // A 401 of the web config's basic auth (its challenge is Basic; the admin token's is Bearer):
  // the password the page was opened with no longer works, and the token may well be right.
  const loginRefused = (response) =>
    response.status === 401 && /^basic\b/i.test(response.headers.get("WWW-Authenticate") || "");

  function refusal(status, answer, login) {
    if (login) {
      return "The page's login was refused (401): the web config's basic auth no longer takes"
        + " the user and password the page was opened with. Reload the page to log in again;"
        + " the admin token is kept.";
    }
    if (status === 401) return "The admin token was refused (401): it must be the bridge's EXESDB_ADMIN_TOKEN.";
    if (status === 404) return "The bridge no longer knows this alert (404).";
    return (answer && answer.detail) || "The bridge answered HTTP " + status + ".";
  }

  async function acknowledge(button) {
    const alertId = button.dataset.ack;
    const by = nameField.value.trim();
    const token = tokenField.value.trim();
    if (!by) {
      say("Type your name first: it is recorded as who acknowledged.", true);
      nameField.focus();
      return;
    }
    if (!token) {
      say("Type the admin token (EXESDB_ADMIN_TOKEN) first.", true);
      tokenField.focus();
      return;
    }
    remember(NAME_KEY, by);
    remember(TOKEN_KEY, token);
    const focused = document.activeElement === button;
    if (focused) refocusing = keysOf(button);
    button.disabled = true;
    try {
      const ack = here(root + "v1/alerts/" + encodeURIComponent(alertId) + "/ack");
      const response = await fetch(ack, {
        method: "POST",
        cache: "no-store",
        credentials: "same-origin",
        // This header, not Authorization: that may carry the web config's basic auth.
        headers: { "Content-Type": "application/json", "X-ExESDB-Admin-Token": token },
        // For the episode this page shows: one since (the alert resolved and fired again) is
        // left as it is (409), as the page, refreshed, then shows.
        body: JSON.stringify({ ack_by: by, starts_at: button.dataset.startsAt }),
      });
      if (response.ok) {
        say("Acknowledged: " + button.dataset.title, false);
      } else {
        const answer = await response.json().catch(() => null);
        const login = loginRefused(response);
        say(refusal(response.status, answer, login), true);
        button.disabled = false;
        refocusing = [];
        if (response.status === 401 && !login) {
          // Not kept for the tab (a reload would fill it in again): typed over, here.
          remember(TOKEN_KEY, "");
          tokenField.focus();
          tokenField.select();
        } else if (focused) {
          button.focus();
        }
      }
    } catch (error) {
      say("Could not reach the bridge: " + error.message, true);
      button.disabled = false;
      if (focused) button.focus();
      refocusing = [];
    }
    refresh();
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-ack]");
    if (button && form) acknowledge(button);
  });
})();
