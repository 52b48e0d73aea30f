"""A bridge on a real redis-server whose state directory is removed under it while Redis is down
(``rm -rf``, a tmp cleaner): the spool says so once, the bridge reports not ready, and ingest
answers 503 rather than 202 for messages it would lose at the next start; a spool folder moved
back is sent as ever."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.bus import Durability, Envelope, new_message_id
from bridge.messages import utc_now
from bridge.messages.audit import AccessLog
from tests.integration.redis_replicas import Replica, replicas
from tests.integration.redis_spool_support import alert, alert_ids
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import (
    BridgeProcess,
    async_wait_until,
    free_port,
    http_get,
    signed_post,
    wait_until,
)

pytestmark = pytest.mark.integration

__all__ = ["redis_server", "replicas"]  # the fixtures, for the tests below

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
    # The outbox in the same directory says its own (alerts: …) from its own logger; the test's
    # folder name holds "spool", so lines are told apart by logger, not by that word.
    errors = [line for line in bridge.log().splitlines() if _SPOOL_ERROR in line]
    assert len(errors) == 1, errors
    assert f"spool: {reason} (the spool held 1 frame(s) not yet written to Redis" in errors[0]


async def test_a_spool_folder_moved_away_and_back_loses_nothing_and_is_sent_once_redis_is_up(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    """With Redis down, a publisher's spool folder moved away (found within a second): a durable
    publish is refused (FAILED, nothing taken) and the bus reports not ready naming the spool;
    moved back, a publish is taken again, and once Redis comes what was spooled before, during
    and after arrives at a reader in order, each once."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    folder = tmp_path / "spool"
    publisher = await Replica(url, "publisher", group=False, spool_dir=folder).start()
    replicas.append(publisher)
    publish = publisher.bridge.bus.publish_verified_durably
    assert await publish([alert(n) for n in range(5)], 10) == (5, Durability.COMMITTED)
    folder.rename(tmp_path / "away")
    await async_wait_until(lambda: "spool" in publisher.reason(), 10, "the spool found moved")
    assert f"the Redis bus spool's {folder}/lock was deleted" in publisher.reason()
    assert (await publish([alert(5)], 10))[1] is Durability.FAILED
    (tmp_path / "away").rename(folder)
    await async_wait_until(lambda: "spool" not in publisher.reason(), 10, "the spool back")
    assert await publish([alert(n) for n in range(6, 9)], 10) == (3, Durability.COMMITTED)
    server = RedisServer(port=port).start(tmp_path / "redis")
    try:
        reader = await Replica(url, "reader").start()
        replicas.append(reader)
        expected = [f"spooled-{n:04d}" for n in (0, 1, 2, 3, 4, 6, 7, 8)]
        await async_wait_until(lambda: alert_ids(reader.taken) == expected, 15, "taken once")
    finally:
        for replica in replicas:
            await replica.aclose()
        server.stop()
