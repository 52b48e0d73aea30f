"""A bridge process on a real redis-server whose state directory is removed under it while Redis
is down (``rm -rf``, a tmp cleaner): the spool says so once, the bridge reports not ready, and
ingest answers 503 rather than 202 for messages it would lose at the next start."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.bus import Envelope, new_message_id
from bridge.messages import utc_now
from bridge.messages.audit import AccessLog
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import BridgeProcess, http_get, signed_post, wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server"]  # the fixture, for the test below

_SPOOL_ERROR = " ERROR bridge.bus.redis.spool: spool: "


def access_body(resource: str) -> bytes:
    """An ingest body of one AccessLog: a message the alert sink does not take, so only the
    spool stands between it and a 202."""
    access = AccessLog(
        user_id="u1",
        resource_type="stream",
        resource_id=resource,
        action="read",
        success=True,
        duration_ms=1.0,
        node="n1",
    )
    envelope = Envelope(
        new_message_id(), access.INSTANCE, "access", access.TAG, "app@host", utc_now(), access
    )
    return envelope.to_bytes()


def test_a_spool_removed_while_redis_is_down_is_told_once_and_takes_no_message(
    tmp_path: Path, redis_server: Callable[[], RedisServer], bridge_processes: list[BridgeProcess]
) -> None:
    """With Redis stopped and one message spooled (202), ``rm -rf $EXESDB_STATE_DIR``: within a
    second, with no /readyz asked, the log says at ERROR (once) that the spool's files were
    deleted, how many frames not yet written to Redis they held, and to restart; /readyz's bus
    check names the spool and the restart; ingest answers 503 not_committed with that reason,
    also once the directory is made again (a volume mounted anew), where nothing is written."""
    server = redis_server()
    state = tmp_path / "state"
    bridge = BridgeProcess(state_dir=state, EXESDB_INGEST="true", EXESDB_BUS=server.url)
    bridge_processes.append(bridge.start(tmp_path))
    wait_until(lambda: http_get(bridge.url + "/readyz")[0] == 200, 20, "the bridge ready")
    server.stop()
    assert signed_post(bridge.url, access_body("before"))[0] == 202
    shutil.rmtree(state)
    wait_until(lambda: _SPOOL_ERROR in bridge.log(), 10, "the spool's removal logged")
    status, body = http_get(bridge.url + "/readyz")
    reason = json.loads(body)["checks"]["bus"]["reason"]
    assert status == 503, body
    assert f"the Redis bus spool's {state / 'spool'}/" in reason
    assert "was deleted (EXESDB_STATE_DIR removed?)" in reason
    assert "restart the bridge" in reason
    (state / "spool").mkdir(parents=True)
    for resource in ("after", "after-mkdir"):
        status, answer = signed_post(bridge.url, access_body(resource))
        assert status == 503, answer
        assert json.loads(answer) == {"error": "not_committed", "detail": f"{reason}; retry later"}
    assert list((state / "spool").iterdir()) == []
    # The outbox in the same directory says its own (alerts: …), once too.
    errors = [line for line in bridge.log().splitlines() if " ERROR " in line and "spool" in line]
    assert len(errors) == 1, errors
    assert f"spool: {reason} (1 frame(s) answered 202 and not yet written" in errors[0]
