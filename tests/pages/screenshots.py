"""``make screenshots``: PNGs of the status page and an alert's page, for the README and docs.

Runs ``exesdb-bridge run --demo`` (delivering its webhooks to a real receiver on loopback, so
the alert page has deliveries to show), posts it one SystemAlert with a ``source`` and
``metadata`` (the demo's own alerts are derived ones, which have neither), and photographs the
status page and that alert's page with the headless Chromium the page tests drive, 1280 pixels
wide::

    python -m tests.pages.screenshots docs/img
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Final

from bridge.bus import Envelope, new_message_id
from bridge.messages import SystemAlert, utc_now
from bridge.sinks.alerts.payload import alert_path
from tests.integration.servers.chromium import Browser, start_chromium
from tests.integration.servers.webhook import WebhookReceiver
from tests.support import ADMIN_TOKEN, BridgeProcess, http_get, post_signed, wait_until

# The showcase steps of the demo raise every kind of event within its first fifteen seconds.
_SETTLE_SECONDS = 60.0


def _alerts(bridge: BridgeProcess) -> list[dict[str, Any]]:
    status, body = http_get(bridge.url + "/v1/alerts", {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    return list(json.loads(body)["alerts"]) if status == 200 else []


def _ready(bridge: BridgeProcess) -> bool:
    alerts = _alerts(bridge)
    node_failure = any(a["labels"]["alertname"] == "node_failure" for a in alerts)
    open_alerts = [a for a in alerts if a["state"] != "resolved"]
    live = http_get(bridge.url + "/?part=live")[1].decode()
    return node_failure and len(open_alerts) >= 4 and live.count("@demo") >= 3


# The alert photographed: raised by a component, with metadata (one key naming a secret, one
# value holding a URL's credentials: both shown redacted), as docs/alerts.md's example.
_TITLE: Final = "Nightly backup of orders failed"
_TOPIC: Final = "backup_failed"


def _raise_subject(bridge: BridgeProcess) -> str:
    """Post the SystemAlert to photograph through the signed ingest, as an application would."""
    alert = SystemAlert(
        alert_id="backup_failed:orders",
        severity="error",
        category="data",
        title=_TITLE,
        description="backup-job could not write the orders snapshot: the backup volume is full",
        source="backup-job",
        node="exesdb-2@demo",
        metadata={
            "stream": "orders",
            "lag_ms": 1500,
            "attempt": 3,
            "api_token": "t0k",
            "target": "https://backup:hunter2@store.example/orders",
        },
    )
    envelope = Envelope(
        new_message_id(), alert.INSTANCE, _TOPIC, alert.TAG, "backup-host", utc_now(), alert
    )
    post_signed(bridge.url, envelope.to_bytes())
    return alert.alert_id


def _shows_source_and_metadata(web: Browser) -> bool:
    labels, annotations = web.text("#labels"), web.text("#annotations")
    return "backup-job" in labels and "metadata_api_token" in annotations


def _acknowledge(bridge: BridgeProcess, alert_id: str) -> None:
    """Acknowledge as a person on call would, so the page shows an acknowledgement."""
    request = urllib.request.Request(
        bridge.url + alert_path(alert_id).replace("/alerts/", "/v1/alerts/", 1) + "/ack",
        data=json.dumps({"ack_by": "alice", "ack_note": "looking into it"}).encode(),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def main(argv: list[str] | None = None) -> int:
    """Write status.png and alert.png into the folder given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    folder: Path = parser.parse_args(argv).folder
    folder.mkdir(parents=True, exist_ok=True)
    receiver = WebhookReceiver().start()
    with tempfile.TemporaryDirectory(prefix="exesdb-screenshots-") as scratch:
        work = Path(scratch)
        bridge = BridgeProcess(
            ["--demo"],
            work / "state",
            EXESDB_NODE="bridge-1",
            EXESDB_WEBHOOK_URLS=receiver.url,
            EXESDB_WEBHOOK_SECRET="screenshot-webhook-secret",
            EXESDB_WEBHOOK_GROUP_WAIT_MS="1000",
            EXESDB_INGEST="true",
        )
        driver = None
        try:
            bridge.start(work)
            # Chromium starts (seconds) while the demo raises its events.
            driver = start_chromium(work / "chromium")
            wait_until(lambda: _ready(bridge), _SETTLE_SECONDS, "the demo's alerts and nodes")
            web = Browser(driver)
            subject = _raise_subject(bridge)
            wait_until(lambda: subject in receiver.accepted_alert_ids(), 20, "its webhook")
            web.open(bridge.url + "/")
            web.wait_for_text("#live", _TITLE)
            web.screenshot(folder / "status.png")
            _acknowledge(bridge, subject)
            web.open(bridge.url + alert_path(subject))
            if not _shows_source_and_metadata(web):
                raise SystemExit(f"the page of {subject} shows no source or no metadata")
            web.screenshot(folder / "alert.png")
        finally:
            if driver is not None:
                driver.quit()
            bridge.stop()
            receiver.stop()
    for name in ("status.png", "alert.png"):
        print(folder / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
