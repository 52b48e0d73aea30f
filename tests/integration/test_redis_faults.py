"""Faults of the Redis under two bridge replicas (real processes, a real redis-server, a real
webhook receiver): Redis paused past the lease, restarted empty, cut off from one replica, or
out of memory, and the lease holder killed while a delivery is in flight. Each counts what the
receiver got: every alert at least once, none twice, and the resolve of an open alert after its
firing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from bridge.messages import NodeLifecycle
from bridge.sinks.alerts.index import TAKEN_OVER_REASON, decode, encode_plan
from bridge.sinks.alerts.outbox import FILE_NAME
from bridge.sinks.alerts.records import HistoryEntry, HistoryEvent
from bridge.sinks.alerts.transitions import Effect, Plan, Transition
from tests.integration.servers.redis import RedisServer
from tests.integration.servers.webhook import HANG, WebhookReceiver, webhook_receiver
from tests.integration.test_replicas import (
    alert,
    delivered_counts,
    health_ran,
    ingest,
    leader,
    metric,
    notifications,
    redis,
    replica_env,
    restart,
    settled,
    start_replica,
    start_replicas,
)
from tests.support import ADMIN_TOKEN, BridgeProcess, http_get, run_in_process, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["redis", "webhook_receiver"]

PENDING = "exesdb:bus:ex_esdb_alerts"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def bus_check(process: BridgeProcess) -> tuple[int, str | None]:
    """``/readyz``'s status and the reason its bus check gives (None: ready)."""
    status, body = http_get(process.url + "/readyz")
    return status, json.loads(body)["checks"]["bus"]["reason"]


def answers(process: BridgeProcess, status: int) -> bool:
    """Whether ``process``'s ``/readyz`` answers ``status``."""
    return bus_check(process)[0] == status


def says_redis_unreachable(process: BridgeProcess) -> bool:
    """Whether ``process`` says Redis is unreachable: ``/readyz`` 503 with its bus check's
    reason, and ``exesdb_redis_connected`` 0."""
    status, reason = bus_check(process)
    return (
        status == 503
        and "is unreachable" in str(reason)
        and metric(process.url, "exesdb_redis_connected") == 0
    )


def holder_named(process: BridgeProcess) -> str | None:
    """The lease holder's consumer name as ``process``'s alert API gives it."""
    answer = json.loads(http_get(process.url + "/v1/alerts", AUTH)[1])
    name: str | None = answer.get("work_queue_holder_name")
    return name


def holder_has_pending(redis: RedisServer) -> None:
    """Wait until the lease holder has taken alerts it has not acknowledged yet."""
    with redis.client() as client:
        wait_until(
            lambda: client.xpending(PENDING, "exesdb-bridge")["pending"],
            15,
            "alerts taken and not yet acknowledged",
            every=0.005,  # the holder works through them in a short window
        )


def webhook_counters(process: BridgeProcess) -> list[str]:
    """The ``exesdb_webhook_*_total`` samples of ``process``'s /metrics, as exposed."""
    lines = http_get(process.url + "/metrics")[1].decode().splitlines()
    return [
        line
        for line in lines
        if line.startswith("exesdb_webhook_") and line.split("{")[0].split()[0].endswith("_total")
    ]


def quiet(
    receiver: WebhookReceiver, replicas: list[BridgeProcess], redis: RedisServer
) -> Callable[[], bool]:
    """A condition: every outbox and spool empty, nothing pending in the work queue, and neither
    the receiver's requests nor any replica's webhook counters changed since the last call."""
    last: list[object] = [None]

    def check() -> bool:
        if not settled(replicas, redis) or any(
            metric(r.url, "exesdb_redis_spool_bytes") for r in replicas
        ):
            last[0] = None
            return False
        now = (len(receiver.requests), [webhook_counters(r) for r in replicas])
        same, last[0] = now == last[0], now
        return same

    return check


def once_each(
    receiver: WebhookReceiver,
    prefix: str,
    ids: list[str],
    replicas: list[BridgeProcess],
    redis: RedisServer,
) -> None:
    """Every alert of ``ids`` reached the receiver, and none twice, counted once the
    ``replicas`` have settled (``quiet``): a duplicate sent after the last alert arrived counts."""
    wait_until(lambda: set(delivered_counts(receiver, prefix)) == set(ids), 30, "every alert")
    wait_until(
        quiet(receiver, replicas, redis),
        30,
        "outboxes and spools empty, nothing pending, no delivery since the last look",
        every=0.25,  # a look's span: a delivery in it changes the counters
    )
    counts = delivered_counts(receiver, prefix)
    assert set(counts) == set(ids)
    assert sorted(k for k, v in counts.items() if v > 1) == []


def test_a_redis_paused_past_the_lease_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """redis-server stopped (SIGSTOP) while the holder works through 500 alerts, longer than
    the lease, with 100 more ingested meanwhile (answered 202): both replicas say Redis is
    unreachable and the holder gives the lease up; resumed (SIGCONT), each alert reaches the
    receiver exactly once."""
    receiver: WebhookReceiver = webhook_receiver()
    replicas = start_replicas(tmp_path, bridge_processes, redis.url, 2, receiver)
    holder = leader(replicas)
    other = next(r for r in replicas if r is not holder)
    ids = [f"paused-{n:04d}" for n in range(600)]
    ingest(other.url, [alert(i) for i in ids[:500]])
    holder_has_pending(redis)
    assert redis.process is not None
    os.kill(redis.process.pid, signal.SIGSTOP)
    try:
        ingest(other.url, [alert(i) for i in ids[500:550]])  # into the spool: 202
        ingest(holder.url, [alert(i) for i in ids[550:]])
        for replica in replicas:
            # A deadline: commands wait for an answer up to the socket timeout (6 s).
            # Another check (the alert stage's lease) may answer 503 first: wait for the bus's.
            wait_until(partial(says_redis_unreachable, replica), 15, "Redis said unreachable")
        wait_until(
            lambda: metric(holder.url, "exesdb_redis_work_queue_leader") == 0, 5, "lease given up"
        )
    finally:
        os.kill(redis.process.pid, signal.SIGCONT)
    once_each(receiver, "paused-", ids, replicas, redis)
    for replica in replicas:
        wait_until(partial(answers, replica, 200), 15, "ready again")
    leader(replicas)


def test_a_redis_restarted_empty_while_the_holder_has_alerts_pending_loses_none(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """redis-server restarted without persistence (every key gone: streams, group, lease) while
    the holder has 1500 alerts taken and not acknowledged: the publisher writes them again and
    each alert, with 100 ingested after the restart, reaches the receiver exactly once."""
    receiver: WebhookReceiver = webhook_receiver()
    replicas = start_replicas(tmp_path, bridge_processes, redis.url, 2, receiver)
    holder = leader(replicas)
    other = next(r for r in replicas if r is not holder)
    ids = [f"emptied-{n:04d}" for n in range(1600)]
    ingest(other.url, [alert(i) for i in ids[:1500]])
    holder_has_pending(redis)
    redis.restart()
    ingest(holder.url, [alert(i) for i in ids[1500:]])
    once_each(receiver, "emptied-", ids, replicas, redis)
    assert (metric(other.url, "exesdb_redis_rewritten_total") or 0) > 0


@pytest.mark.parametrize("lost", ["flushall", "restart"])
def test_alerts_ingested_just_after_redis_lost_its_data_are_delivered_at_once(
    tmp_path: Path,
    redis: RedisServer,
    bridge_processes: list[BridgeProcess],
    webhook_receiver,
    lost: str,
) -> None:
    """Alerts answered 202 just after Redis lost its data (FLUSHALL, or a restart without
    persistence: streams, consumer group and lease gone) reach the receiver within seconds, once
    each, not after EXESDB_REDIS_CLAIM_IDLE_MS (30 s here): the holder's read that finds its
    lease gone leaves them pending, and it takes the lease back at once, then them; the other
    replica, which saw it hold the lease, leaves it to it."""
    receiver: WebhookReceiver = webhook_receiver()
    replicas = start_replicas(
        tmp_path, bridge_processes, redis.url, 2, receiver, EXESDB_REDIS_CLAIM_IDLE_MS="30000"
    )
    holder = leader(replicas)
    other = next(r for r in replicas if r is not holder)
    # The lease is left to its holder only by a replica that saw it held (within a second of
    # the start, while standing by): one that never did takes a free lease at once.
    wait_until(lambda: holder_named(other) == holder_named(holder), 15, "the holder seen held")
    ingest(holder.url, [alert("before")])
    wait_until(lambda: delivered_counts(receiver, "before"), 15, "a first alert delivered")
    if lost == "flushall":
        with redis.client() as client:
            client.flushall()
    else:
        redis.restart()
    ids = [f"after-{n}" for n in range(5)]
    ingest(holder.url, [alert(i) for i in ids])
    wait_until(
        lambda: set(delivered_counts(receiver, "after-")) == set(ids), 8, "every alert, at once"
    )
    assert leader(replicas) is holder
    counts = delivered_counts(receiver, "after-")
    assert sorted(k for k, v in counts.items() if v > 1) == []


def test_after_redis_lost_its_data_the_holder_takes_its_lease_back_and_resolves_its_alert(
    tmp_path: Path, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """A node_failure fires on the holder A; A is stalled (SIGSTOP) while redis-server restarts
    empty: B, which saw A hold the lease, leaves it to A rather than take it with no record of
    the alert; A, resumed, takes it back, gives Redis its open alert, and the node's return
    sends the resolve."""
    receiver: WebhookReceiver = webhook_receiver()
    server = RedisServer().start(tmp_path / "redis")
    try:
        # A lease of 4 s: B leaves it to A that long, time enough for A to be resumed.
        env = {
            **replica_env(server.url, "bridge-0", receiver),
            "EXESDB_REDIS_CLAIM_IDLE_MS": "4000",
        }
        replicas = []
        for node in ("bridge-0", "bridge-1"):
            own = {**env, "EXESDB_NODE": node, "EXESDB_STATE_DIR": str(tmp_path / node)}
            process = BridgeProcess(**own)  # type: ignore[arg-type]
            bridge_processes.append(process)
            replicas.append(process.start(tmp_path))
        holder = leader(replicas)
        other = next(r for r in replicas if r is not holder)
        wait_until(lambda: holder_named(other), 15, "B sees A hold it")
        down = NodeLifecycle(node="app-8", event="down", cluster_size=1)
        ingest(holder.url, [("lifecycle", holder.env["EXESDB_NODE"], down)])
        wait_until(lambda: notifications(receiver, "node_failure:app-8"), 15, "the firing")
        assert holder.process is not None
        os.kill(holder.process.pid, signal.SIGSTOP)
        try:
            server.restart()
            wait_until(
                lambda: (
                    "leaving it to" in other.log()
                    or metric(other.url, "exesdb_redis_work_queue_leader") == 1
                ),
                15,
                "B finds the lease gone",
            )
        finally:
            os.kill(holder.process.pid, signal.SIGCONT)
        assert metric(other.url, "exesdb_redis_work_queue_leader") == 0, "B took A's lease"
        wait_until(
            lambda: metric(holder.url, "exesdb_redis_work_queue_leader") == 1, 15, "A takes it back"
        )
        back = NodeLifecycle(node="app-8", event="reconnected", cluster_size=2)
        ingest(other.url, [("lifecycle", other.env["EXESDB_NODE"], back)])
        wait_until(
            lambda: (
                [n["status"] for n in notifications(receiver, "node_failure:app-8")]
                == ["firing", "resolved"]
            ),
            15,
            "the resolve",
        )
    finally:
        server.stop()


class Partition:
    """A TCP proxy between one replica and Redis, from a thread of its own. ``cut()`` stops
    every byte (what was sent waits, unanswered, as behind a dead link); ``heal()`` drops the
    connections that were cut, as a real partition's are by then, and lets new ones through."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"
        self.flowing = threading.Event()
        self.flowing.set()
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self.flowing.clear()

    def heal(self) -> None:
        with self.lock:
            cut, self.sockets = self.sockets, []
        for sock in cut:
            _close(sock)
        self.flowing.set()

    def close(self) -> None:
        self.listener.close()
        self.heal()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with self.lock:
            self.sockets.append(client)
        self.flowing.wait()
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            _close(client)
            return
        with self.lock:
            self.sockets.append(upstream)
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self.flowing.wait()
                sink.sendall(data)
        except OSError:
            pass  # one end closed
        for sock in (source, sink):
            _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # not connected any more
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture
def partition(redis: RedisServer) -> Iterator[Partition]:
    """A proxy to the test's redis-server that the test can cut off."""
    proxy = Partition(redis.port)
    yield proxy
    proxy.close()


def test_a_holder_cut_off_from_redis_hands_its_work_over_and_comes_back_losing_nothing(
    tmp_path: Path,
    redis: RedisServer,
    partition: Partition,
    bridge_processes: list[BridgeProcess],
    webhook_receiver,
) -> None:
    """The lease holder A reaches Redis through a link that is cut while it works through 500
    alerts: B takes the lease and delivers them, and those ingested at B meanwhile; A, not
    ready, keeps those ingested at it (202) in its spool and, healed, writes them; each alert
    reaches the receiver exactly once."""
    receiver: WebhookReceiver = webhook_receiver()
    a = start_replica(tmp_path, bridge_processes, partition.url, "bridge-a", receiver)
    wait_until(lambda: metric(a.url, "exesdb_redis_work_queue_leader") == 1, 15, "A holds it")
    b = start_replica(tmp_path, bridge_processes, redis.url, "bridge-b", receiver)
    ids = [f"cut-{n:04d}" for n in range(700)]
    ingest(b.url, [alert(i) for i in ids[:500]])
    holder_has_pending(redis)
    partition.cut()
    ingest(a.url, [alert(i) for i in ids[500:600]])  # into A's spool: 202
    ingest(b.url, [alert(i) for i in ids[600:650]])
    wait_until(lambda: metric(b.url, "exesdb_redis_work_queue_leader") == 1, 15, "B takes it")
    # By then A's lease ran out, unrenewed: A says so, not only once its commands time out (6 s
    # on): 4 s leaves a loaded host room and still tells the two apart.
    wait_until(lambda: metric(a.url, "exesdb_redis_work_queue_leader") == 0, 4, "A gives it up")
    wait_until(
        lambda: set(ids[:500] + ids[600:650]) <= set(delivered_counts(receiver, "cut-")),
        30,
        "B delivers what reached Redis",
    )
    wait_until(lambda: bus_check(a)[0] == 503, 15, "A not ready")
    assert "is unreachable" in str(bus_check(a)[1])
    assert bus_check(b)[0] == 200
    partition.heal()
    ingest(a.url, [alert(i) for i in ids[650:]])
    once_each(receiver, "cut-", ids, [a, b], redis)
    wait_until(lambda: bus_check(a)[0] == 200, 15, "A ready again")


def test_ingest_keeps_its_202_while_redis_is_out_of_memory(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """Redis at maxmemory with noeviction refuses every write: ingest at either replica still
    answers 202 (the batches wait in its spool, none dropped), /readyz says Redis refuses the
    bridge's commands with OOM; memory given back, every alert reaches the receiver once."""
    receiver: WebhookReceiver = webhook_receiver()
    replicas = start_replicas(tmp_path, bridge_processes, redis.url, 2, receiver)
    leader(replicas)
    ids = [f"full-{n:04d}" for n in range(300)]
    ingest(replicas[0].url, [alert(i) for i in ids[:100]])
    wait_until(lambda: len(delivered_counts(receiver, "full-")) == 100, 15, "the first 100")
    with redis.client() as client:
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)
    for first in range(100, 300, 50):  # each asserted 202
        ingest(replicas[first // 50 % 2].url, [alert(i) for i in ids[first : first + 50]])
    for replica in replicas:
        wait_until(partial(answers, replica, 503), 20, "Redis said refusing")
        assert "refuses the bridge's commands: OOM" in str(bus_check(replica)[1])
        assert (metric(replica.url, "exesdb_redis_spool_bytes") or 0) > 0
    assert len(delivered_counts(receiver, "full-")) == 100
    with redis.client() as client:
        client.config_set("maxmemory", 0)
    once_each(receiver, "full-", ids, replicas, redis)
    for replica in replicas:
        assert metric(replica.url, "exesdb_bus_dropped_total", subscriber="transport") == 0
        assert metric(replica.url, "exesdb_redis_spool_bytes") == 0


def test_a_redis_out_of_memory_past_three_health_intervals_takes_no_node_for_down(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """Redis at maxmemory with noeviction refuses every publisher's writes, heartbeats too: for
    longer than a node may be silent, no replica takes the other for down (nothing anyone says
    can reach Redis: silence says nothing), nor after, and no node_failure reaches the
    receiver."""
    receiver: WebhookReceiver = webhook_receiver()
    # A node may be silent 3 s: longer than a write refused waits to be tried again (the
    # replicas' backoff cap, 1 s), so that each replica, once Redis takes writes again, is
    # heard within it.
    interval = {"EXESDB_HEALTH_BROADCAST_INTERVAL": "1000"}
    replicas = start_replicas(tmp_path, bridge_processes, redis.url, 2, receiver, **interval)
    leader(replicas)
    health_ran(replicas, 2)
    with redis.client() as client:
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)
    for replica in replicas:
        wait_until(partial(answers, replica, 503), 20, "Redis said refusing")
    health_ran(replicas, 4)  # past the three intervals a node may be silent
    with redis.client() as client:
        client.config_set("maxmemory", 0)
    for replica in replicas:
        wait_until(partial(answers, replica, 200), 20, "ready again")
    health_ran(replicas, 4)
    for replica in replicas:
        assert "silent for" not in replica.log(), replica.log_path
    failures = [
        alert["labels"]
        for request in receiver.requests
        for alert in request.json()["alerts"]
        if alert["labels"]["alertname"] == "node_failure"
    ]
    assert failures == []


def test_a_holder_killed_with_a_delivery_in_flight_loses_no_alert(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """The holder A is SIGKILLed while the receiver holds its first delivery (a node_failure and
    300 alerts in its outbox, stored in Redis): B takes the lease and sends the node's resolve;
    A started again on its state directory delivers its outbox: every alert reaches the
    receiver, and none twice (B sends none of those Redis says A stored)."""
    receiver: WebhookReceiver = webhook_receiver()
    replicas = start_replicas(tmp_path, bridge_processes, redis.url, 2, receiver)
    holder = leader(replicas)
    other = next(r for r in replicas if r is not holder)
    receiver.script(HANG)
    down = NodeLifecycle(node="app-4", event="down", cluster_size=1)
    ids = [f"flight-{n:04d}" for n in range(300)]
    ingest(other.url, [("lifecycle", holder.env["EXESDB_NODE"], down), *map(alert, ids)])
    receiver.wait_for_requests(1)
    holder.kill()
    wait_until(lambda: metric(other.url, "exesdb_redis_work_queue_leader") == 1, 15, "B takes it")
    back = NodeLifecycle(node="app-4", event="reconnected", cluster_size=2)
    ingest(other.url, [("lifecycle", other.env["EXESDB_NODE"], back)])
    wait_until(
        lambda: (
            [n["status"] for n in notifications(receiver, "node_failure:app-4")] == ["resolved"]
        ),
        15,
        "B sends the resolve",
    )
    wait_until(lambda: settled([other], redis), 15, "B's outbox empty, nothing pending")
    again = restart(holder, bridge_processes, tmp_path)
    once_each(receiver, "flight-", ids, [again, other], redis)


@pytest.mark.parametrize("b_stopped", [False, True], ids=["b-holds", "a-takes-the-lease"])
def test_a_killed_holders_firing_resolved_meanwhile_by_the_next_holder_is_never_sent(
    tmp_path: Path,
    redis: RedisServer,
    bridge_processes: list[BridgeProcess],
    webhook_receiver,
    b_stopped: bool,
) -> None:
    """The holder A is SIGKILLed with a node_failure's firing pending in its outbox (the
    receiver down); B takes the lease and, the receiver back, sends the node's resolve; A
    started again on its state directory (while B holds the lease, or once B stopped, so that A
    takes it before its firing is due again) never sends its older firing: the receiver's last
    word is the resolve, and A counts the firing stale and lists it so."""
    receiver: WebhookReceiver = webhook_receiver()
    if b_stopped:
        # Taking the lease, A tells the firing stale before it is due again (30 s after it
        # failed). A alone waits so long: B, taking over while the receiver is still down, may
        # fail its first try too, and would then hold the resolve back as long.
        slow = {"EXESDB_WEBHOOK_BACKOFF_MS": "30000", "EXESDB_WEBHOOK_MAX_BACKOFF_MS": "30000"}
        a = start_replica(tmp_path, bridge_processes, redis.url, "bridge-0", receiver, **slow)
        wait_until(lambda: metric(a.url, "exesdb_redis_work_queue_leader") == 1, 15, "A leads")
        b = start_replica(tmp_path, bridge_processes, redis.url, "bridge-1", receiver)
        replicas = [a, b]
    else:
        replicas = start_replicas(tmp_path, bridge_processes, redis.url, 2, receiver)
    holder = leader(replicas)
    other = next(r for r in replicas if r is not holder)
    receiver.stop()
    down = NodeLifecycle(node="app-4", event="down", cluster_size=1)
    ingest(other.url, [("lifecycle", other.env["EXESDB_NODE"], down)])
    wait_until(
        lambda: metric(holder.url, "exesdb_webhook_deliveries_total", result="retry"),
        15,
        "A tried its firing and failed",
    )
    holder.kill()
    wait_until(lambda: metric(other.url, "exesdb_redis_work_queue_leader") == 1, 15, "B takes it")
    receiver.start()
    back = NodeLifecycle(node="app-4", event="reconnected", cluster_size=2)
    ingest(other.url, [("lifecycle", other.env["EXESDB_NODE"], back)])
    resolved_only = ["resolved"]
    wait_until(
        lambda: (
            [n["status"] for n in notifications(receiver, "node_failure:app-4")] == resolved_only
        ),
        15,
        "B sends the resolve",
    )
    if b_stopped:
        wait_until(lambda: settled([other], redis), 15, "B's outbox empty, nothing pending")
        other.stop()
    again = restart(holder, bridge_processes, tmp_path)
    if b_stopped:
        wait_until(lambda: metric(again.url, "exesdb_redis_work_queue_leader") == 1, 15, "A leads")
    wait_until(
        lambda: metric(again.url, "exesdb_webhook_outbox_depth") == 0,
        45,  # past the 30 s backoff: a firing not told stale is sent by then
        "A's outbox has nothing waiting",
    )
    assert [n["status"] for n in notifications(receiver, "node_failure:app-4")] == resolved_only
    assert metric(again.url, "exesdb_webhook_stale_total") == 1
    listed = run_in_process("outbox", "list", "--state", "stale", "--json", env={**holder.env})
    lines = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(line["state"], line["alerts"]) for line in lines] == [("stale", 1)]
    assert "another replica notified a newer state" in lines[0]["last_error"]


def killed_before_the_drop(holder: BridgeProcess, redis: RedisServer, alert_id: str) -> None:
    """Leave in Redis the note of the change that fired ``alert_id``, which ``holder``'s outbox
    stored, as a SIGKILL between its outbox storing it and Redis dropping the note leaves it;
    then SIGKILL the holder (the note is left unread: a running replica reads its notes only
    after a change failed)."""
    node = holder.env["EXESDB_NODE"]
    with redis.client() as client:
        record = decode(client.hget("exesdb:state:alerts", alert_id))
        outbox = sqlite3.connect(Path(holder.env["EXESDB_STATE_DIR"]) / FILE_NAME)
        try:
            [(plan_id,)] = outbox.execute(
                "SELECT id FROM plans WHERE stored_at = ?", (record.updated_at,)
            ).fetchall()
        finally:
            outbox.close()
        fired = HistoryEntry(record.updated_at, HistoryEvent.FIRED, "critical on app-1")
        plan = Plan(plan_id, record.updated_at, (Transition(record, Effect.NOTIFY, fired),))
        client.hset(f"exesdb:state:alerts:notes:{node}", plan_id, encode_plan(plan))
        client.sadd("exesdb:state:alerts:noted", node)
    holder.kill()


def test_a_holder_killed_before_it_dropped_a_stored_note_sends_its_change_once(
    tmp_path: Path, redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """The holder A stores an alert's firing (the receiver down) and is SIGKILLed before Redis
    dropped its note of the change; B takes the lease, takes the note over and, the receiver
    back, sends the firing; A started again on its state directory leaves its own firing out
    (stale, counted, saying why): the receiver gets the firing once."""
    receiver: WebhookReceiver = webhook_receiver()
    replicas = start_replicas(tmp_path, bridge_processes, redis.url, 2, receiver)
    holder = leader(replicas)
    other = next(r for r in replicas if r is not holder)
    receiver.stop()
    ingest(other.url, [alert("dropped-1")])
    wait_until(
        lambda: metric(holder.url, "exesdb_webhook_deliveries_total", result="retry"),
        15,
        "A tried its firing and failed",
    )
    killed_before_the_drop(holder, redis, "dropped-1")
    wait_until(lambda: metric(other.url, "exesdb_redis_work_queue_leader") == 1, 15, "B takes it")
    receiver.start()
    wait_until(lambda: notifications(receiver, "dropped-1"), 15, "B sends the firing")
    wait_until(lambda: settled([other], redis), 15, "B's outbox empty, nothing pending")
    again = restart(holder, bridge_processes, tmp_path)
    wait_until(
        lambda: metric(again.url, "exesdb_webhook_outbox_depth") == 0,
        15,  # A's firing is due again within its 1 s backoff: sent by then, if not left out
        "A's outbox has nothing waiting",
    )
    assert [n["status"] for n in notifications(receiver, "dropped-1")] == ["firing"]
    assert metric(again.url, "exesdb_webhook_stale_total") == 1
    listed = run_in_process("outbox", "list", "--state", "stale", "--json", env={**holder.env})
    lines = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(line["state"], line["last_error"]) for line in lines] == [("stale", TAKEN_OVER_REASON)]
    with redis.client() as client:
        assert client.keys("exesdb:state:alerts:adopted:*") == []


def refused_readonly(process: BridgeProcess) -> bool:
    """Whether ``process``'s ``/readyz`` answers 503, saying Redis refuses writes READONLY."""
    status, reason = bus_check(process)
    return status == 503 and "refuses the bridge's commands: READONLY" in str(reason)


def replica_online(primary: Any, port: int) -> bool:
    """Whether the primary (a client of it) lists its replica on ``port`` as online."""
    replication = primary.info("replication")
    return any(
        isinstance(value, dict) and value.get("port") == port and value.get("state") == "online"
        for name, value in replication.items()
        if name.startswith("slave")
    )


def test_alerts_held_back_by_a_failover_reach_the_new_primary_behind_the_same_name(
    tmp_path: Path,
    redis: RedisServer,
    partition: Partition,
    bridge_processes: list[BridgeProcess],
    webhook_receiver,
) -> None:
    """Two replicas reach Redis through one forwarder (a DNS name, a load balancer, a
    Kubernetes Service) when a failover (FAILOVER) demotes it: refused READONLY, not ready,
    ingest still answers 202; once the forwarder leads to the new primary, they connect to it
    (redis-py alone would keep the old connections), and every alert reaches the receiver
    once."""
    receiver: WebhookReceiver = webhook_receiver()
    new = RedisServer(options=["--replicaof", "127.0.0.1", str(redis.port)])
    new.start(tmp_path / "new")
    try:
        replicas = start_replicas(tmp_path, bridge_processes, partition.url, 2, receiver)
        leader(replicas)
        ids = [f"moved-{n:04d}" for n in range(300)]
        ingest(replicas[0].url, [alert(i) for i in ids[:100]])
        wait_until(lambda: len(delivered_counts(receiver, "moved-")) == 100, 15, "the first 100")
        with new.client() as client:
            wait_until(
                lambda: client.info("replication")["master_link_status"] == "up", 10, "in sync"
            )
        with redis.client() as client:
            # FAILOVER asks the primary's own view of its replica, which says online a moment
            # after the replica says its link is up.
            wait_until(partial(replica_online, client, new.port), 10, "online to the primary")
            client.execute_command("FAILOVER", "TO", "127.0.0.1", new.port)
            wait_until(lambda: client.info("replication")["role"] == "slave", 10, "demoted")
        for first in range(100, 300, 50):  # each asserted 202
            ingest(replicas[first // 50 % 2].url, [alert(i) for i in ids[first : first + 50]])
        for replica in replicas:
            wait_until(partial(refused_readonly, replica), 20, "Redis said refusing")
        partition.upstream_port = new.port
        once_each(receiver, "moved-", ids, replicas, new)
        for replica in replicas:
            wait_until(partial(answers, replica, 200), 20, "ready again")
            assert metric(replica.url, "exesdb_bus_dropped_total", subscriber="transport") == 0
    finally:
        new.stop()
