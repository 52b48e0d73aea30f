"""What the work-queue lease holder says while it cannot use Redis and its lease still lasts.

It still holds the lease (no other replica may take it until it runs out), but reads nothing:
alerts sent meanwhile wait in Redis or in the replicas' spools. Its pages and ``alerts list``
say so and what follows, rather than "all clear" (a real ``exesdb-bridge run`` process and a
real redis-server, stopped under it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.servers.redis import RedisServer
from tests.integration.test_replicas import metric, redis, replica_env
from tests.support import ADMIN_TOKEN, BridgeProcess, http_get, run_in_process, wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis"]

# Long enough for the pages to be read while the lease lasts, on a loaded host too.
LEASE_MS = 15_000


def test_a_holder_cut_off_from_redis_says_its_alerts_wait_unread_until_its_lease_runs_out(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess]
) -> None:
    """The lease holder, Redis stopped under it, still says it holds the lease
    (``work_queue_lease`` ``here``, ``exesdb_redis_work_queue_leader`` 1) until the lease runs
    out, but not "all clear": its status page carries a banner saying it cannot use Redis, that
    alerts sent meanwhile wait unread and that another replica takes the work queue over once its
    lease runs out; its card says its list may be out of date, and ``alerts list`` says so too,
    as GET /v1/alerts answers ``work_queue_reachable`` false."""
    env = replica_env(redis.url, "bridge-a")
    env.update(EXESDB_STATE_DIR=str(tmp_path / "state"), EXESDB_REDIS_CLAIM_IDLE_MS=str(LEASE_MS))
    process = BridgeProcess(**env)  # type: ignore[arg-type]
    bridge_processes.append(process)
    process.start(tmp_path)
    wait_until(lambda: metric(process.url, "exesdb_redis_work_queue_leader") == 1, 15, "held")
    page = http_get(process.url + "/", process.headers)[1].decode()
    assert "all clear" in page
    redis.stop()
    wait_until(lambda: metric(process.url, "exesdb_redis_connected") == 0, 10, "cut off")
    status, body = http_get(process.url + "/v1/alerts", {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    answer = json.loads(body)
    page = http_get(process.url + "/", process.headers)[1].decode()
    listed = run_in_process(
        "alerts", "list", "--url", process.url, env={"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN}
    )
    # All of it read while the lease lasts: the holder still holds it.
    assert metric(process.url, "exesdb_redis_work_queue_leader") == 1
    assert status == 200
    assert (answer["work_queue_holder"], answer["work_queue_lease"]) == (True, "here")
    assert answer["work_queue_reachable"] is False
    assert "This replica holds the alert work-queue lease but cannot use Redis" in page
    assert "wait in Redis, unread" in page
    assert "all clear" not in page
    assert "none here; may be out of date (cannot use Redis)" in page
    assert (
        f"the replica at {process.url} holds the alert work-queue lease but cannot use Redis"
        in listed.stderr
    ), listed.stderr
