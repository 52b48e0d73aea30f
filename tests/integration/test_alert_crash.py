"""Crash safety of the alert outbox, and the alerts/outbox commands, with real processes."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bridge.bus import Envelope, new_message_id
from bridge.messages import SystemAlert, utc_now
from tests.integration.servers.webhook import WebhookReceiver, webhook_receiver
from tests.support import (
    ADMIN_TOKEN,
    BridgeProcess,
    http_get,
    post_signed,
    run_bridge,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["webhook_receiver"]

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# The bridge's own health collector would raise node_health alerts on a busy test machine.
QUIET: dict[str, Any] = {
    f"EXESDB_{resource}_{status}": "100"
    for resource in ("CPU", "MEMORY", "DISK")
    for status in ("DEGRADED", "UNHEALTHY")
}


def ingesting_env(receiver: WebhookReceiver, max_alerts: int) -> dict[str, Any]:
    """A quiet bridge that ingests and delivers to ``receiver``, retrying fast, at most
    ``max_alerts`` alerts a notification."""
    return {
        **QUIET,
        "EXESDB_INGEST": "true",
        "EXESDB_WEBHOOK_URLS": receiver.url,
        "EXESDB_WEBHOOK_BACKOFF_MS": "100",
        "EXESDB_WEBHOOK_MAX_BACKOFF_MS": "300",
        "EXESDB_WEBHOOK_GROUP_WAIT_MS": "50",
        "EXESDB_WEBHOOK_MAX_ALERTS": str(max_alerts),
    }


def ingest_alerts(bridge_url: str, alert_ids: list[str]) -> None:
    """POST SystemAlerts to the bridge's signed ingest, as one NDJSON batch."""
    lines = []
    for alert_id in alert_ids:
        now = utc_now()
        payload = SystemAlert(
            alert_id=alert_id,
            severity="critical",
            category="system",
            title=f"alert {alert_id}",
            description="crash test",
            source="test",
            node="n1",
        )
        envelope = Envelope(
            new_message_id(), payload.INSTANCE, "disk_full", payload.TAG, "app@host", now, payload
        )
        lines.append(envelope.to_bytes())
    post_signed(bridge_url, b"\n".join(lines))


def listed_alerts(bridge_url: str) -> list[dict[str, object]]:
    """The alerts GET /v1/alerts lists."""
    status, body = http_get(f"{bridge_url}/v1/alerts", AUTH)
    assert status == 200, body
    return list(json.loads(body)["alerts"])


def metric(bridge_url: str, name: str) -> float:
    """One sample's value from /metrics (0 when absent)."""
    for line in http_get(f"{bridge_url}/metrics")[1].decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``exesdb-bridge`` with the test environment."""
    return run_bridge(*args, env={"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN, **env}, timeout=30)


def test_sigkill_with_receiver_down_loses_nothing(
    tmp_path: Path, webhook_receiver, bridge_processes: list[BridgeProcess]
) -> None:
    """SIGKILLed while its receiver is down, a bridge's alerts all arrive from its successor."""
    receiver: WebhookReceiver = webhook_receiver(start=False)
    state = tmp_path / "state"
    env = ingesting_env(receiver, 7)
    first = BridgeProcess(state_dir=state, **env).start(tmp_path)
    bridge_processes.append(first)
    alert_ids = [f"crash-{n:02d}" for n in range(30)]
    ingest_alerts(first.url, alert_ids)
    wait_until(lambda: len(listed_alerts(first.url)) == 30, what="30 alerts in the outbox")
    wait_until(
        lambda: metric(first.url, 'exesdb_webhook_deliveries_total{result="retry"}') >= 3,
        what="failed attempts against the dead receiver",
    )
    first.kill()
    assert first.process is not None
    assert first.process.returncode == -9

    receiver.start()
    second = BridgeProcess(state_dir=state, **env).start(tmp_path)
    bridge_processes.append(second)
    wait_until(
        lambda: receiver.accepted_alert_ids() == set(alert_ids),
        timeout=30,
        what="every alert delivered after the restart",
    )
    delivered = [a for r in receiver.accepted() for a in r.alert_ids()]
    assert sorted(delivered) == alert_ids  # each exactly once
    wait_until(lambda: metric(second.url, "exesdb_webhook_outbox_depth") == 0, what="empty outbox")


def _refusing_receiver_s_bridge(
    tmp_path: Path, webhook_receiver, bridge_processes: list[BridgeProcess]
) -> tuple[WebhookReceiver, Path, BridgeProcess]:
    """A bridge process taking ingest whose one receiver refuses every delivery (400: each
    dead-lettered at once), sent without a grouping wait; its state folder."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(400)
    state = tmp_path / "state"
    bridge = BridgeProcess(
        state_dir=state,
        **QUIET,
        EXESDB_INGEST="true",
        EXESDB_WEBHOOK_URLS=receiver.url,
        EXESDB_WEBHOOK_GROUP_WAIT_MS="0",
    ).start(tmp_path)
    bridge_processes.append(bridge)
    return receiver, state, bridge


def test_alerts_and_outbox_commands(
    tmp_path: Path, webhook_receiver, bridge_processes: list[BridgeProcess]
) -> None:
    """`alerts list|ack` talk to a running bridge (a later ack by someone else is told the first
    one stands); `outbox list|retry` revive a dead letter."""
    receiver, state, bridge = _refusing_receiver_s_bridge(
        tmp_path, webhook_receiver, bridge_processes
    )
    ingest_alerts(bridge.url, ["cli-1"])
    wait_until(lambda: len(receiver.requests) == 1, what="the rejected delivery")

    listing = cli("alerts", "list", "--url", bridge.url)
    assert listing.returncode == 0, listing.stderr
    _, row = listing.stdout.splitlines()
    assert row.split()[:6] == ["cli-1", "firing", "level1", "critical", "disk_full", "n1"]
    acked = cli("alerts", "ack", "cli-1", "--by", "alice", "--note", "mine", "--url", bridge.url)
    assert acked.returncode == 0, acked.stderr
    assert acked.stdout.splitlines()[1].split()[:2] == ["cli-1", "acknowledged"]
    assert acked.stderr == ""
    again = cli("alerts", "ack", "cli-1", "--by", "bob", "--url", bridge.url)
    assert again.returncode == 0, again.stderr
    assert again.stderr.startswith(
        "exesdb-bridge: alert cli-1 was acknowledged already by alice at "
    )
    assert again.stderr.endswith("; left as it is\n")
    unknown = cli("alerts", "ack", "nope", "--by", "alice", "--url", bridge.url)
    assert unknown.returncode == 1
    assert "404" in unknown.stderr

    dead = wait_until(
        lambda: cli("outbox", "list", "--state", "dead", EXESDB_STATE_DIR=str(state)).stdout,
        what="the dead letter listed",
    )
    delivery_id = dead.splitlines()[1].split()[0]  # under the header
    assert "HTTP 400" in dead
    retried = cli("outbox", "retry", delivery_id, EXESDB_STATE_DIR=str(state))
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.startswith("1 dead-lettered delivery back to pending")
    # The running bridge picks the revived delivery up from the shared file.
    wait_until(lambda: receiver.accepted(), timeout=15, what="the retried delivery accepted")
    assert receiver.accepted()[0].delivery_id == receiver.requests[0].delivery_id
    assert cli("outbox", "retry", EXESDB_STATE_DIR=str(state)).returncode == 2
    missing = cli("outbox", "list", EXESDB_STATE_DIR=str(tmp_path / "nothing"))
    assert missing.returncode == 1
    assert "alerts.sqlite3" in missing.stderr
    resolving = ["--by", "alice", "--resolution", "fixed", "--url", bridge.url]
    resolved = cli("alerts", "ack", "cli-1", *resolving)
    assert (resolved.returncode, resolved.stderr) == (0, "")
    late = cli("alerts", "ack", "cli-1", "--by", "bob", "--url", bridge.url)
    assert late.returncode == 0, late.stderr
    assert late.stderr == "exesdb-bridge: alert cli-1 was resolved already; nothing changed\n"


def test_outbox_drop_beside_a_running_bridge_clears_its_gauge_and_notice(
    tmp_path: Path, webhook_receiver, bridge_processes: list[BridgeProcess]
) -> None:
    """`outbox drop --receiver` run beside a running bridge deletes the dead letter of the
    receiver that refused it: within seconds (as `outbox retry` is picked up) the bridge's
    exesdb_webhook_dead_letters{state="needs_action"} is 0 and its status page shows no
    dead-letter notice; the dead letter is not sent again."""
    receiver, state, bridge = _refusing_receiver_s_bridge(
        tmp_path, webhook_receiver, bridge_processes
    )
    needs_action = 'exesdb_webhook_dead_letters{state="needs_action"}'

    def notice_shown() -> bool:
        return 'id="dead-letters"' in http_get(f"{bridge.url}/?part=live")[1].decode()

    ingest_alerts(bridge.url, ["drop-1"])
    wait_until(lambda: metric(bridge.url, needs_action) == 1, what="the dead letter counted")
    wait_until(notice_shown, what="the dead-letter notice")
    dropped = cli("outbox", "drop", "--receiver", receiver.url, EXESDB_STATE_DIR=str(state))
    assert dropped.returncode == 0, dropped.stderr
    # Still configured: told its open alert is not sent to it again.
    assert "is configured and is not sent again the open alerts of what was dropped" in (
        dropped.stderr
    )
    assert re.fullmatch(
        r"1 dead-lettered delivery dropped: 1 of http://127\.0\.0\.1:\d+/…#[0-9a-f]{16}\n",
        dropped.stdout,
    )
    wait_until(
        lambda: metric(bridge.url, needs_action) == 0 and not notice_shown(),
        timeout=5,
        what="the gauge at 0 and the notice gone",
    )
    listed = cli("outbox", "list", "--state", "dead", EXESDB_STATE_DIR=str(state))
    assert (listed.stdout, listed.returncode) == ("", 0)
    assert listed.stderr.startswith("exesdb-bridge: no dead deliveries"), listed.stderr
    assert len(receiver.requests) == 1  # refused once, never sent again
