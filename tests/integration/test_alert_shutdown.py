"""No alert answered 202 is lost on SIGTERM or SIGKILL (real bridge processes, real receiver)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.integration.servers.webhook import Answer, WebhookReceiver, webhook_receiver
from tests.integration.test_alert_crash import QUIET, ingest_alerts, ingesting_env
from tests.support import BridgeProcess, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["webhook_receiver"]

ALERTS = 2000
BATCHES = 4


def committed(state: Path) -> set[str]:
    """Alert ids in the outbox file, read by a connection of our own."""
    db = sqlite3.connect(state / "alerts.sqlite3")
    try:
        return {row[0] for row in db.execute("SELECT alert_id FROM alerts")}
    finally:
        db.close()


def flood(bridge: BridgeProcess) -> list[str]:
    """Ingest ALERTS SystemAlerts in BATCHES signed NDJSON batches, each answered 202."""
    ids = [f"flood-{n:04d}" for n in range(ALERTS)]
    size = ALERTS // BATCHES
    for start in range(0, ALERTS, size):
        ingest_alerts(bridge.url, ids[start : start + size])
    return ids


def test_sigterm_right_after_the_last_202_loses_no_alert(
    tmp_path: Path, webhook_receiver, bridge_processes: list[BridgeProcess]
) -> None:
    """SIGTERM just after the last 202: exit 0, all committed, all delivered by a successor."""
    receiver: WebhookReceiver = webhook_receiver(start=False)
    state = tmp_path / "state"
    env = ingesting_env(receiver, 200)
    first = BridgeProcess(state_dir=state, **env).start(tmp_path)
    bridge_processes.append(first)
    ids = flood(first)
    assert first.stop(timeout=30) == 0
    assert committed(state) >= set(ids)
    assert "unhandled" not in first.log()

    receiver.start()
    second = BridgeProcess(state_dir=state, **env).start(tmp_path)
    bridge_processes.append(second)
    wait_until(
        lambda: receiver.accepted_alert_ids() >= set(ids),
        timeout=60,
        what="every alert delivered after the restart",
    )


def test_sigkill_right_after_the_last_202_loses_no_alert(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """On the in-process bus a 202 means committed: SIGKILL just after it loses nothing."""
    state = tmp_path / "state"
    bridge = BridgeProcess(state_dir=state, **QUIET, EXESDB_INGEST="true").start(tmp_path)
    bridge_processes.append(bridge)
    ids = flood(bridge)
    bridge.kill()
    assert committed(state) >= set(ids)


def test_sigterm_lets_an_attempt_in_flight_end_so_it_is_not_sent_again(
    tmp_path: Path, webhook_receiver, bridge_processes: list[BridgeProcess]
) -> None:
    """SIGTERM while a receiver takes a second to answer: the attempt ends and is recorded
    before the bridge exits, so the next start does not send that alert again."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(Answer(200, delay=1.0))
    state = tmp_path / "state"
    env = ingesting_env(receiver, 200)
    first = BridgeProcess(state_dir=state, **env).start(tmp_path)
    bridge_processes.append(first)
    ingest_alerts(first.url, ["slow-1"])
    receiver.wait_for_requests(1)
    assert first.stop(timeout=30) == 0

    second = BridgeProcess(state_dir=state, **env).start(tmp_path)
    bridge_processes.append(second)
    ingest_alerts(second.url, ["after-1"])
    wait_until(
        lambda: "after-1" in receiver.accepted_alert_ids(), timeout=20, what="the next alert"
    )
    # Deliveries go out in order: slow-1 sent again would have come before after-1.
    assert [r.alert_ids() for r in receiver.requests] == [["slow-1"], ["after-1"]]
