// The bridge's pages: refresh the live part in place, and acknowledge alerts with the admin token.
// Served by the bridge itself (the pages' Content-Security-Policy allows no inline script).
// The token is kept for this tab only (sessionStorage), never in a URL or a cookie.
"use strict";

(() => {
  const body = document.body;
  const root = body.dataset.root || "/";
  const every = Number(body.dataset.refreshSeconds || 0) * 1000;
  const TOKEN_KEY = "exesdb-bridge.admin-token";
  const NAME_KEY = "exesdb-bridge.ack-by";
  const byId = (id) => document.getElementById(id);

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
  let lastGood = new Date();

  // UTC, as every time the bridge renders: a person and the bridge may be zones apart.
  function utc(date) {
    return date.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  function stamp(text, failed) {
    const where = byId("refreshed");
    if (!where) return;
    where.textContent = text;
    where.classList.toggle("stale", failed);
  }

  async function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    clearTimeout(timer);
    try {
      const url = new URL(location.href);
      url.hash = "";
      url.searchParams.set("part", "live");
      const response = await fetch(url, { cache: "no-store", credentials: "same-origin" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const html = await response.text();
      // Only the live part changes: the scroll position and the fields above it stay.
      byId("live").innerHTML = html;
      lastGood = new Date();
      stamp("Updated " + utc(lastGood) + " · refreshes every " + every / 1000 + " s", false);
    } catch (error) {
      stamp("Not updated since " + utc(lastGood) + " (" + error.message + "); retrying", true);
    } finally {
      busy = false;
      if (again) {
        again = false;
        refresh();
      } else if (every > 0) {
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

  function refusal(status, answer) {
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
    button.disabled = true;
    try {
      const response = await fetch(root + "v1/alerts/" + encodeURIComponent(alertId) + "/ack", {
        method: "POST",
        cache: "no-store",
        credentials: "same-origin",
        // This header, not Authorization: that may carry the web config's basic auth.
        headers: { "Content-Type": "application/json", "X-ExESDB-Admin-Token": token },
        body: JSON.stringify({ ack_by: by }),
      });
      if (response.ok) {
        say("Acknowledged: " + button.dataset.title, false);
      } else {
        const answer = await response.json().catch(() => null);
        say(refusal(response.status, answer), true);
        button.disabled = false;
      }
    } catch (error) {
      say("Could not reach the bridge: " + error.message, true);
      button.disabled = false;
    }
    refresh();
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-ack]");
    if (button && form) acknowledge(button);
  });
})();
