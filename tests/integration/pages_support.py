"""What the page tests in a real headless Chromium share: the rows and refusals they read,
what lies past a screen's edge, names as long as people make them."""

from __future__ import annotations

from tests.integration.servers.chromium import Browser

HOOK_SETTINGS = {
    "EXESDB_WEBHOOK_SECRET": "page-test-webhook-secret",
    "EXESDB_WEBHOOK_GROUP_WAIT_MS": "0",
}


ROW = """
return [...document.querySelectorAll("table.alerts tbody tr")]
  .filter((row) => row.textContent.includes(arguments[0]))
  .map((row) => row.innerText)[0] || "";
"""


def alert_row(web: Browser, text: str) -> str:
    """The visible text of the status page's alert row containing ``text`` ("" when none)."""
    return str(web.run(ROW, text))


def csp_refusals(web: Browser) -> list[str]:
    """Console messages saying the Content-Security-Policy refused something."""
    return [line for line in web.console() if "Content Security Policy" in line]


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


# A node name as long as EXESDB_NODE allows people to make them: a host's full name.
LONG_NODE = "exesdb-orders-primary-replica-7@db-host-7.eu-west-1.compute.internal.example"
