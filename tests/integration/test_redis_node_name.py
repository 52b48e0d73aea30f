"""Two bridge processes under one EXESDB_NODE on one real Redis are told; a restart is not."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.integration.servers.redis import RedisServer, redis_server
from tests.integration.test_replicas import replica_env, start_together
from tests.support import BridgeProcess, http_get, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["redis_server"]  # the fixture, imported for the tests below

# A lease of 1.5 s: the name is marked every 0.5 s, and an episode ends 1.5 s after the last
# mark of another process.
CLAIM_IDLE_MS = "1500"
NODE = "bridge-twin"
MARK = f"exesdb:state:replica:{NODE}"
TOLD = f"another bridge process on this Redis runs with EXESDB_NODE={NODE}"


def twin(
    tmp_path: Path,
    processes: list[BridgeProcess],
    url: str,
    state: str,
    claim_idle_ms: str = CLAIM_IDLE_MS,
    **extra: str,
) -> BridgeProcess:
    """A bridge named ``NODE`` on ``url`` with the state directory ``state`` (one per process),
    and the settings ``extra``; not started yet."""
    env = {**replica_env(url, NODE), "EXESDB_REDIS_CLAIM_IDLE_MS": claim_idle_ms, **extra}
    env["EXESDB_STATE_DIR"] = str(tmp_path / state)
    process = BridgeProcess(**env)  # type: ignore[arg-type]
    processes.append(process)
    return process


def start(
    tmp_path: Path,
    processes: list[BridgeProcess],
    url: str,
    state: str,
    claim_idle_ms: str = CLAIM_IDLE_MS,
    **extra: str,
) -> BridgeProcess:
    """``twin``, started."""
    return twin(tmp_path, processes, url, state, claim_idle_ms, **extra).start(tmp_path)


def shared(process: BridgeProcess) -> float | None:
    """``exesdb_redis_node_name_shared`` on ``process``'s /metrics (None when absent)."""
    for line in http_get(f"{process.url}/metrics")[1].decode().splitlines():
        if line.startswith("exesdb_redis_node_name_shared "):
            return float(line.rsplit(" ", 1)[1])
    return None


def marked(client: redis.Redis, times: int) -> None:
    """Wait until the mark was set ``times`` times more (each set renews its expiry)."""
    last = [client.pttl(MARK), 0]  # the expiry polled last, the renewals seen

    def renewed() -> bool:
        ttl = client.pttl(MARK)
        if ttl > last[0]:
            last[1] += 1
        last[0] = ttl
        return last[1] >= times

    wait_until(renewed, 10, f"the mark set {times} more times")


def node_name_check(process: BridgeProcess) -> tuple[int, dict[str, object] | None]:
    """``/readyz``'s status and its ``node_name`` check."""
    status, body = http_get(f"{process.url}/readyz")
    return status, json.loads(body)["checks"].get("node_name")


def test_two_processes_under_one_node_name_are_both_told_until_one_stops(
    tmp_path: Path,
    redis_server: Callable[[], RedisServer],
    bridge_processes: list[BridgeProcess],
) -> None:
    """Two live processes with one EXESDB_NODE each log it once, show the gauge at 1 and an
    optional readiness reason (still ready); once one stops, the other clears."""
    url = redis_server().url
    first, second = start_together(
        tmp_path,
        [twin(tmp_path, bridge_processes, url, state) for state in ("state-a", "state-b")],
    )
    for process in (first, second):
        wait_until(lambda p=process: shared(p) == 1.0, 10, "the shared name told")  # type: ignore[misc]
        status, check = node_name_check(process)
        assert status == 200  # an optional check: still ready
        assert check is not None
        assert check["ready"] is False
        assert check["required"] is False
        assert "give each replica its own EXESDB_NODE" in str(check["reason"])
        assert TOLD in process.log()
    second.stop()
    wait_until(lambda: shared(first) == 0.0, 10, "the shared name cleared")
    assert node_name_check(first) == (200, {"ready": True, "required": False, "reason": None})
    assert first.log().count(TOLD) == 1  # once for the episode, not every mark
    assert f"no other bridge process on this Redis runs with EXESDB_NODE={NODE}" in first.log()


def test_a_replica_killed_and_started_again_under_its_name_is_not_told(
    tmp_path: Path,
    redis_server: Callable[[], RedisServer],
    bridge_processes: list[BridgeProcess],
) -> None:
    """A replica SIGKILLed and started again with the same name and state directory reads its
    predecessor's lingering mark without taking it for another live process, nor its own mark
    gone (Redis lost it) later."""
    server = redis_server()
    crashed = start(tmp_path, bridge_processes, server.url, "state")
    with server.client() as client:
        wait_until(lambda: client.get(MARK), 10, "the first process's mark")
        crashed.kill()
        old = client.get(MARK)
        client.pexpire(MARK, 60_000)  # the killed one's mark still there when the next starts
        again = start(tmp_path, bridge_processes, server.url, "state")
        wait_until(lambda: client.get(MARK) not in (None, old), 10, "the new process's mark")
        marked(client, 2)  # two more marks of its own after its first
        client.delete(MARK)  # as when Redis loses its data: no mark is no other process
        wait_until(lambda: client.get(MARK), 10, "the mark set again")
        marked(client, 1)
    assert shared(again) == 0.0
    assert node_name_check(again) == (200, {"ready": True, "required": False, "reason": None})
    assert TOLD not in again.log()


def test_a_graceful_stop_deletes_the_mark_and_a_replacement_is_not_told(
    tmp_path: Path,
    redis_server: Callable[[], RedisServer],
    bridge_processes: list[BridgeProcess],
) -> None:
    """A replica stopped gracefully (SIGTERM) deletes its mark (it lingered for up to a lease),
    so the process started next under its name reads none, and is not told through its marks."""
    server = redis_server()
    # A lease of 6 s: the mark, set every 2 s, would outlast the stop by seconds.
    first = start(tmp_path, bridge_processes, server.url, "state", claim_idle_ms="6000")
    with server.client() as client:
        wait_until(lambda: client.get(MARK), 10, "the first process's mark")
        assert first.stop() == 0
        assert client.get(MARK) is None
        second = start(tmp_path, bridge_processes, server.url, "state", claim_idle_ms="6000")
        wait_until(lambda: client.get(MARK), 10, "the replacement's mark")
        marked(client, 2)
    assert shared(second) == 0.0
    assert TOLD not in second.log()
    assert TOLD not in first.log()


def test_a_graceful_stop_leaves_a_mark_another_process_wrote(
    tmp_path: Path,
    redis_server: Callable[[], RedisServer],
    bridge_processes: list[BridgeProcess],
) -> None:
    """A replica stopping gracefully after another process has marked the name (a newer one
    under it) leaves that process's mark in place: only its own id is deleted."""
    server = redis_server()
    # A lease of 30 s: the next mark, 10 s away, does not overwrite the other's before the stop.
    first = start(tmp_path, bridge_processes, server.url, "state", claim_idle_ms="30000")
    with server.client() as client:
        wait_until(lambda: client.get(MARK), 10, "the first process's mark")
        client.set(MARK, "a-newer-process", px=60_000)
        assert first.stop() == 0
        assert client.get(MARK) == b"a-newer-process"


def stopped_while_redis_is_paused(server: RedisServer, first: BridgeProcess) -> float:
    """Stop ``first`` (ready) while ``server`` is paused, so that its `left` stays in its
    spool; Redis resumed after. When the stop ended (Unix seconds)."""
    wait_until(lambda: node_name_check(first)[0] == 200, 15, "the first process ready")
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        assert first.stop() == 0
        stopped = time.time()
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    assert "unwritten: kept in the spool, which holds" in first.log()
    return stopped


def refused_or_dropped(process: BridgeProcess) -> list[str]:
    """The non-zero ``exesdb_bus_rejected_total`` and ``exesdb_bus_dropped_total`` series on
    ``process``'s /metrics."""
    return [
        line
        for line in http_get(f"{process.url}/metrics")[1].decode().splitlines()
        if line.startswith(("exesdb_bus_rejected_total{", "exesdb_bus_dropped_total{"))
        and not line.endswith(" 0.0")
    ]


def heard_as_an_earlier_runs(second: BridgeProcess) -> None:
    """``second`` hears the first process's late `left` and takes it for an earlier run's,
    not a second process sharing the name; if it never does, the failure names what its bus
    refused or dropped (a `left` refused as expired or replayed, or dropped from a full queue)."""
    try:
        wait_until(
            lambda: (
                "before this process started (an earlier run's" in second.log()
                or "share EXESDB_NODE" in second.log()
            ),
            20,
            "the first process's left heard",
        )
    except pytest.fail.Exception as exc:
        pytest.fail(
            f"{exc}; the replacement's bus refused or dropped: {refused_or_dropped(second)}"
        )
    assert "share EXESDB_NODE" not in second.log()
    assert f"a left of this node ({NODE}) made at" in second.log()


def test_a_replacement_hearing_its_predecessors_late_farewell_is_not_told(
    tmp_path: Path,
    redis_server: Callable[[], RedisServer],
    bridge_processes: list[BridgeProcess],
) -> None:
    """A replica stopped while Redis is paused keeps its `left` in its spool; the process
    started next under its name and state directory, once Redis is back, sends it on and hears
    it: an earlier process's farewell, dated before this one started, not a second process
    sharing the name, and this one stays in the cluster."""
    server = redis_server()
    # A stop of 2 s: its write to the paused Redis given up sooner.
    first = start(
        tmp_path, bridge_processes, server.url, "state", EXESDB_SHUTDOWN_TIMEOUT_MS="2000"
    )
    stopped_while_redis_is_paused(server, first)
    heard_as_an_earlier_runs(start(tmp_path, bridge_processes, server.url, "state"))


def test_a_replacement_started_past_half_the_replay_window_is_not_told_either(
    tmp_path: Path,
    redis_server: Callable[[], RedisServer],
    bridge_processes: list[BridgeProcess],
) -> None:
    """The predecessor's late farewell, kept in the spool past half the replay window, is sent
    on signed again with a fresh ``ts`` (not refused as expired): it is still told from a
    second process sharing the name by when it was said, and this one stays."""
    server = redis_server()
    window = {"EXESDB_REPLAY_WINDOW_MS": "4000"}  # re-signed when sent 2 s after it was said
    first = start(
        tmp_path,
        bridge_processes,
        server.url,
        "state",
        EXESDB_SHUTDOWN_TIMEOUT_MS="2000",
        **window,
    )
    stopped = stopped_while_redis_is_paused(server, first)
    time.sleep(max(0.0, stopped + 2.5 - time.time()))  # the farewell older than half the window
    heard_as_an_earlier_runs(start(tmp_path, bridge_processes, server.url, "state", **window))
