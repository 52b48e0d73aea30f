"""Values the tests share: the repository's root, the test secret and admin token, Alertmanager's
global section as its dump prints it, a map nested deep, a reading sent undated from ahead.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bridge.bus import Envelope, decode_envelope, new_message_id
from bridge.messages import SystemAlert, format_timestamp, utc_now

ROOT = Path(__file__).resolve().parent.parent.parent
TEST_SECRET = "test-secret-key-base-with-at-least-32-characters"
ADMIN_TOKEN = "test-admin-token"


# Alertmanager's global section as `amtool config show` prints it: its defaults, and each
# secret hidden as <secret>; with an http_config of a token file and a CA (paths from the
# receivers file's folder) and redirects followed.
ALERTMANAGER_GLOBAL = """
global:
  resolve_timeout: 5m
  http_config:
    authorization:
      credentials_file: token
    tls_config:
      ca_file: ca.pem
    follow_redirects: true
    enable_http2: true
  smtp_from: alerts@example.com
  smtp_hello: localhost
  smtp_smarthost: smtp.example.com:587
  smtp_auth_password: <secret>
  smtp_require_tls: true
  smtp_tls_config:
    insecure_skip_verify: false
  slack_api_url: <secret>
  pagerduty_url: https://events.pagerduty.com/v2/enqueue
  opsgenie_api_url: https://api.opsgenie.com/
  telegram_api_url: https://api.telegram.org
"""


def nested_map(levels: int) -> dict[str, Any]:
    """A map ``levels`` maps deep: {"a": {"a": ... {}}}."""
    nested: dict[str, Any] = {}
    for _ in range(levels - 1):
        nested = {"a": nested}
    return nested


def critical_alert_body(alert_id: str, title: str, description: str) -> bytes:
    """An ingest body of one critical SystemAlert of node n1, ``alert_id`` and ``title``."""
    alert = SystemAlert(
        alert_id=alert_id,
        severity="critical",
        category="system",
        title=title,
        description=description,
        source="test",
        node="n1",
    )
    envelope = Envelope(
        new_message_id(), alert.INSTANCE, "disk_full", alert.TAG, "app@host", utc_now(), alert
    )
    return envelope.to_bytes()


def undated_health_from_ahead(node: str, status: str, seconds: float = 200.0) -> Envelope:
    """``node``'s NodeHealth of ``status`` without a ``timestamp``, its envelope's ``ts``
    ``seconds`` ahead of this host's clock (a sender whose clock is), as the bridge decodes it:
    the payload's time filled in with the decode time."""
    body = {
        "v": 1,
        "id": new_message_id(),
        "instance": "ex_esdb_health",
        "topic": "node_health",
        "tag": "node_health_updated",
        "node": node,
        "ts": format_timestamp(datetime.now(UTC) + timedelta(seconds=seconds)),
        "payload": {"node": node, "status": status},
    }
    decoded = decode_envelope(json.dumps(body).encode())
    assert isinstance(decoded, Envelope)
    return decoded
