"""Two bridge replicas on a real redis-server posting to a real Alertmanager: only the
work-queue lease holder posts, so a replica that held the lease once never keeps an alert
active in Alertmanager that the holder has resolved since."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.messages import NodeLifecycle
from tests.integration.servers.alertmanager import AlertmanagerServer, alertmanager_server
from tests.integration.servers.redis import RedisServer
from tests.integration.test_alertmanager import held
from tests.integration.test_replicas import ingest, leader, metric, redis, restart, start_replicas
from tests.support import BridgeProcess, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["alertmanager_server", "redis"]

ALERT = "node_failure:app-5"
STANDING_BY = "posts left to the replica holding the work-queue lease"


def firing(server: AlertmanagerServer) -> bool:
    """Whether Alertmanager holds the node_failure not resolved (unprocessed yet, or active):
    its API lists no resolved alert."""
    return held(server, ALERT) is not None


def posted(process: BridgeProcess) -> float:
    """How many of ``process``'s posts Alertmanager took."""
    return metric(process.url, "exesdb_alertmanager_posts_total", result="ok") or 0


@pytest.mark.parametrize("killed", [False, True], ids=["graceful", "sigkill"])
def test_a_former_holder_started_again_keeps_no_resolved_alert_active_in_alertmanager(
    tmp_path: Path,
    redis: RedisServer,
    bridge_processes: list[BridgeProcess],
    alertmanager_server,
    killed: bool,
) -> None:
    """The holder A posts a node_failure firing; A stops (SIGTERM, or SIGKILL), B takes the
    lease and the node's return, ingested on B, resolves it in Alertmanager. A started again on
    its state directory, its outbox still holding the alert firing, posts nothing while B holds
    the lease: the alert stays resolved. Once B stops, A takes the lease up and posts in full
    at once: still resolved."""
    server: AlertmanagerServer = alertmanager_server()
    replicas = start_replicas(
        tmp_path, bridge_processes, redis.url, 2, EXESDB_ALERTMANAGER_URL=server.url
    )
    holder = leader(replicas)
    other = next(r for r in replicas if r is not holder)
    down = NodeLifecycle(node="app-5", event="down", cluster_size=1)
    ingest(holder.url, [("lifecycle", holder.env["EXESDB_NODE"], down)])
    wait_until(lambda: firing(server), 15, "A's firing in Alertmanager")
    if killed:
        holder.kill()
    else:
        assert holder.stop() == 0
    wait_until(lambda: metric(other.url, "exesdb_redis_work_queue_leader") == 1, 15, "B takes it")
    back = NodeLifecycle(node="app-5", event="reconnected", cluster_size=2)
    ingest(other.url, [("lifecycle", other.env["EXESDB_NODE"], back)])
    wait_until(lambda: not firing(server), 15, "B resolves it")
    again = restart(holder, bridge_processes, tmp_path)
    # A's poster has looked once: it posted its outbox (firing), or left posting to B.
    wait_until(lambda: posted(again) or STANDING_BY in again.log(), 15, "A posted, or left it to B")
    assert posted(again) == 0
    assert not firing(server)
    assert other.stop() == 0
    wait_until(lambda: metric(again.url, "exesdb_redis_work_queue_leader") == 1, 15, "A leads")
    wait_until(lambda: posted(again), 15, "A's full post as the holder")
    assert not firing(server)
