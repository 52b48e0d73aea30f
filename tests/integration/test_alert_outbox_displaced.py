"""A bridge process whose state directory is removed under it (``rm -rf``, an operator cleaning
up): it says so once, reports not ready, and takes no alert it would lose at the next start."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support import BridgeProcess, critical_alert_body, http_get, signed_post, wait_until

pytestmark = [pytest.mark.integration]


def alert_body() -> bytes:
    """An ingest body of one alert."""
    return critical_alert_body(
        "displaced-1",
        "state directory removed",
        "sent after the bridge's state directory was removed",
    )


def test_a_removed_state_directory_is_logged_once_and_makes_the_bridge_unready(
    tmp_path: Path, bridge_processes: list[BridgeProcess]
) -> None:
    """``rm -rf $EXESDB_STATE_DIR`` under a running bridge: within a housekeeping pass, with no
    /readyz asked, the log says at ERROR (once) that the outbox file was deleted and to restart;
    /readyz answers 503 naming it, and ingest answers an alert 503 not_committed rather than
    202 for an alert written only to the deleted file."""
    state = tmp_path / "state"
    bridge = BridgeProcess(state_dir=state, EXESDB_INGEST="true").start(tmp_path)
    bridge_processes.append(bridge)
    wait_until(lambda: http_get(bridge.url + "/readyz")[0] == 200, 20, "the bridge ready")
    shutil.rmtree(state)
    wait_until(lambda: " ERROR " in bridge.log(), 10, "the removal logged")
    status, body = http_get(bridge.url + "/readyz")
    reason = json.loads(body)["checks"]["alerts"]["reason"]
    assert status == 503, body
    assert f"{state / 'alerts.sqlite3'} was deleted" in reason
    assert "restart the bridge" in reason
    status, answer = signed_post(bridge.url, alert_body())
    assert (status, json.loads(answer)["error"]) == (503, "not_committed"), answer
    assert http_get(bridge.url + "/readyz")[0] == 503
    errors = [line for line in bridge.log().splitlines() if " ERROR " in line]
    assert len(errors) == 1, errors
    assert f"alerts: {reason}" in errors[0]
