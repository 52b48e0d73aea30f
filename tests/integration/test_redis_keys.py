"""The keys two bridge replicas make in a real redis-server, against docs/redis.md's Keys table.

Redis's MONITOR feed (the commands of scripts too) is read while two replicas run with their
collectors, take signed ingest, deliver and acknowledge an alert, and announce a silent node's
down in the place of a replica that claimed it and said nothing; then every key left is scanned.
Each key the bridge names must match one row of the table and each row must be used; each key's
type, its expiry as set and as left, each stream's bound and the consumer group must be the ones
the table gives. So a key added, renamed or given another lifetime fails here until the page
says so.
"""

from __future__ import annotations

import re
import socket
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis as redis_py

from bridge.messages import INSTANCES, NodeLifecycle
from tests.doc_text import page, section
from tests.integration.servers.redis import RedisServer, redis_server
from tests.integration.servers.webhook import WebhookReceiver, webhook_receiver
from tests.integration.test_redis_acl import acknowledge
from tests.integration.test_replicas import (
    CLAIM_IDLE_MS,
    HEALTH_INTERVAL_MS,
    alert,
    gauge,
    ingest,
    leader,
    metric,
    notifications,
    settled,
    start_replicas,
)
from tests.support import BridgeProcess, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["redis_server", "webhook_receiver"]  # the fixtures, imported for the test below

STREAM_MAXLEN = 5_000  # not the default, so that the bound seen is the setting's
HOUR_MS = 3_600_000
FORGET_MS = 86_400_000  # EXESDB_NODE_FORGET_MS's default, which the replicas keep
SILENT_NODE = "app-9"
SILENT_INTERVAL_MS = 2_000  # long enough to mark its key before the replicas find it silent

# The lifetimes the table's type column names, with the test's settings.
DURATIONS: dict[str, int] = {
    r"\b7 days\b": 7 * 24 * HOUR_MS,
    r"`EXESDB_REDIS_CLAIM_IDLE_MS`": CLAIM_IDLE_MS,
    r"`EXESDB_NODE_FORGET_MS` and an hour": FORGET_MS + HOUR_MS,
    r"\ban hour\b": HOUR_MS,
    r"\btwo health intervals\b": 2 * HEALTH_INTERVAL_MS,
    r"\ba health interval\b": HEALTH_INTERVAL_MS,
}

# The Redis type a command that makes a key makes it of.
MAKES = {"SET": "string", "HSET": "hash", "SADD": "set", "XADD": "stream"}


@dataclass(frozen=True)
class Row:
    """One row of the Keys table: the key's name as a pattern, its type, and its lifetimes in
    ms (empty when it does not expire)."""

    name: str
    pattern: re.Pattern[str]
    type: str
    lifetimes: frozenset[int]
    text: str


def keys_table() -> tuple[list[Row], str]:
    """The key rows of docs/redis.md's Keys table, and the text of its consumer group row."""
    rows, group = [], ""
    for line in section(page("redis"), "Keys").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not line.startswith("| "):
            continue
        key, kind, what = cells
        if key.startswith("consumer group "):
            group = f"{key} {kind}"
            continue
        named = re.fullmatch(r"`(exesdb:[^`]+)`", key)
        if named is None:
            continue  # the header
        name = named.group(1)
        pattern = re.escape(name).replace(
            re.escape("<instance>"), "(?:" + "|".join(INSTANCES) + ")"
        )
        pattern = re.sub(re.escape("<") + r"\w+" + re.escape(">"), "[^:]+", pattern)
        lifetimes = frozenset(ms for said, ms in DURATIONS.items() if re.search(said, kind))
        if "expires" in kind:
            assert lifetimes, f"the row of {name} says it expires, not after how long: {kind}"
        rows.append(
            Row(name, re.compile(pattern), kind.split(",")[0], lifetimes, f"{kind} | {what}")
        )
    assert rows, "docs/redis.md's Keys table"
    assert group, "the Keys table's consumer group row"
    return rows, group


def work_queue_streams() -> set[str]:
    """The streams docs/redis.md says the consumer group reads: the alert stage's instances."""
    said = re.search(r"the alert stage's instances \(([^)]*)\)", page("redis"))
    assert said, "docs/redis.md names the work queue's instances"
    return {f"exesdb:bus:{name}" for name in re.findall(r"`(\w+)`", said.group(1))}


@dataclass
class Said:
    """What the bridge's commands did to keys: the keys they named, the type each was made,
    each lifetime each was given (-1: set with none), the stream entries not written as
    envelopes bounded to ``STREAM_MAXLEN``, and the consumer groups made."""

    named: set[str] = field(default_factory=set)
    made: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    lifetimes: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    unbounded: list[list[str]] = field(default_factory=list)
    groups_made: set[str] = field(default_factory=set)


def what_the_bridge_did(commands: list[list[str]]) -> Said:
    """``Said`` of MONITOR's ``commands``: an argument starting ``exesdb:`` is a key (one with
    ``*`` a SCAN pattern)."""
    said = Said()
    for args in commands:
        said.named |= {a for a in args[1:] if a.startswith("exesdb:") and "*" not in a}
        command = args[0].upper()
        if command in MAKES and len(args) > 1:
            said.made[args[1]].add(MAKES[command])
        if command == "SET":
            options = [a.upper() for a in args[3:]]
            given = int(args[4 + options.index("PX")]) if "PX" in options else -1
            said.lifetimes[args[1]].add(given)
        elif command == "PEXPIRE":
            said.lifetimes[args[1]].add(int(args[2]))
        elif command == "XADD" and not an_envelope_within_the_bound(args):
            said.unbounded.append(args[:6])
        elif command == "XGROUP" and args[1].upper() == "CREATE":
            said.groups_made.add(args[3])
    return said


def an_envelope_within_the_bound(xadd: list[str]) -> bool:
    """Whether an XADD trims to about ``STREAM_MAXLEN`` and writes an envelope (``e``) and its
    hex HMAC-SHA256 (``s``)."""
    return (
        xadd[2:6] == ["MAXLEN", "~", str(STREAM_MAXLEN), "*"]
        and xadd[6::2] == ["e", "s"]
        and re.fullmatch(r"[0-9a-f]{64}", xadd[-1]) is not None
    )


def disagreements(
    rows: list[Row], said: Said, left: dict[str, tuple[str, int]], named: set[str]
) -> list[str]:
    """Each key whose type, or lifetime as given or as left in Redis, is not its row's."""
    wrong: list[str] = []
    for key in sorted(named):
        [row] = [r for r in rows if r.pattern.fullmatch(key)]
        kinds = said.made[key] | ({left[key][0]} if key in left else set())
        if kinds - {row.type}:
            wrong.append(f"{key} is a {kinds}, not a {row.type}")
        given = said.lifetimes[key]
        if given - (row.lifetimes or {-1}):
            wrong.append(f"{key} given lifetimes {given}; the table: {row.text[:100]}")
        if key in left:
            ttl = left[key][1]
            # A key with a lifetime may run out between the scan and its PTTL: 0 (expiring
            # now) or -2 (gone), both within its lifetime.
            if not (-2 <= ttl <= max(row.lifetimes) and ttl != -1 if row.lifetimes else ttl == -1):
                wrong.append(f"{key} left with {ttl} ms to live; the table: {row.text[:100]}")
    return wrong


class Monitor:
    """Redis's MONITOR feed, on a connection of its own read by a thread: each command Redis
    runs (a script's one by one), as its arguments, from every client but ``ignored``."""

    def __init__(self, server: RedisServer) -> None:
        self._socket = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        self._socket.sendall(b"MONITOR\r\n")
        self._pending = b""
        while b"\r\n" not in self._pending:  # +OK: the feed has begun
            self._pending += self._socket.recv(65536)
        self._pending = self._pending.split(b"\r\n", 1)[1]
        self.ignored: set[str] = set()
        self.commands: list[list[str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="redis-monitor", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        self._socket.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = self._socket.recv(1 << 20)
            except TimeoutError:
                continue
            if not data:
                return
            *lines, self._pending = (self._pending + data).split(b"\r\n")
            for line in lines:
                said = re.match(r"\+\S+ \[\d+ ([^\]]*)\] (.*)", line.decode("latin-1"))
                if said and said.group(1) not in self.ignored:
                    self.commands.append(re.findall(r'"((?:[^"\\]|\\.)*)"', said.group(2)))

    def stop(self) -> list[list[str]]:
        """Stop reading; every command read."""
        self._stop.set()
        self._thread.join(10)
        self._socket.close()
        return self.commands


@pytest.fixture
def watched(redis_server: Callable[[], RedisServer]) -> Iterator[tuple[RedisServer, Monitor]]:
    """A redis-server and the MONITOR feed of it, from before any bridge connects."""
    server = redis_server()
    monitor = Monitor(server)
    yield server, monitor
    monitor.stop()


def a_silent_node_announced_in_the_place_of_its_winner(
    server: RedisServer, monitor: Monitor, replicas: list[BridgeProcess], receiver: WebhookReceiver
) -> None:
    """A node declares its interval and goes silent; its key is set ``down`` as the replica that
    won the swap would, killed before its announcement: another announces it (the unheard
    claim), and its node_failure is delivered."""
    joined = NodeLifecycle(
        node=SILENT_NODE,
        event="joined",
        cluster_size=1,
        metadata={"interval_ms": SILENT_INTERVAL_MS},
    )
    ingest(replicas[0].url, [("lifecycle", SILENT_NODE, joined)])
    key = f"exesdb:cluster:node:{SILENT_NODE}"
    with redis_py.Redis.from_url(server.url, single_connection_client=True) as client:
        monitor.ignored.add(str(client.client_info()["addr"]))  # the test's, not the bridge's
        wait_until(
            lambda: [c[:3] for c in monitor.commands].count(["SET", key, "up"]) == len(replicas),
            10,
            "every replica's swap of the silent node's key to up done",
        )
        assert client.set(key, "down", keepttl=True, xx=True)
    wait_until(
        lambda: notifications(receiver, f"node_failure:{SILENT_NODE}"),
        30,
        "the unheard down announced in its winner's place, and its alert delivered",
    )


def test_the_keys_two_replicas_make_are_those_of_the_keys_table(
    tmp_path: Path,
    watched: tuple[RedisServer, Monitor],
    bridge_processes: list[BridgeProcess],
    webhook_receiver,
) -> None:
    """Two replicas with their collectors, signed ingest, an alert delivered and acknowledged,
    and a down announced in the place of a silent winner name only keys of docs/redis.md's Keys
    table, each row's at least once, each of the row's type and lifetime (as set, and as left in
    Redis), every stream entry an envelope and its signature trimmed to the stream bound, the
    consumer group only on the work queue's streams, an entry of the size the page gives; the
    spool's progress keys are gone once what was ingested is written, as the table says."""
    server, monitor = watched
    rows, group_row = keys_table()
    receiver: WebhookReceiver = webhook_receiver()
    replicas = start_replicas(
        tmp_path,
        bridge_processes,
        server.url,
        2,
        receiver,
        EXESDB_REDIS_STREAM_MAXLEN=str(STREAM_MAXLEN),
    )
    for replica in replicas:
        wait_until(gauge(replica, "exesdb_redis_connected", 1), 15, "connected to Redis")
    holder = leader(replicas)
    other = next(r for r in replicas if r is not holder)
    ingest(other.url, [alert("keys-1")])
    wait_until(lambda: notifications(receiver, "keys-1"), 15, "the alert delivered")
    assert acknowledge(holder, "keys-1") == 200
    wait_until(lambda: len(notifications(receiver, "keys-1")) == 2, 15, "its resolve delivered")
    a_silent_node_announced_in_the_place_of_its_winner(server, monitor, replicas, receiver)
    wait_until(lambda: settled(replicas, server), 15, "every outbox empty, nothing pending")
    for replica in replicas:
        wait_until(gauge(replica, "exesdb_redis_spool_bytes", 0), 15, "the spool written")
    assert sum(metric(r.url, "exesdb_redis_spooled_total") or 0 for r in replicas) >= 2

    def spool_keys() -> list[bytes]:
        with server.client() as client:
            return list(client.scan_iter("exesdb:spool:*"))

    wait_until(lambda: not spool_keys(), 10, "the spool's progress keys deleted once written")
    [spool_row] = [row for row in rows if row.name.startswith("exesdb:spool:")]
    assert "deleted once the segment is written to its end" in spool_row.text

    commands = monitor.stop()
    with server.client() as client:
        left = {}
        for key in client.scan_iter("exesdb:*", count=1_000):
            kind = client.type(key).decode()
            # A key with a lifetime may run out between the scan and its TYPE ("none"): it is
            # judged by what the bridge did with it, as one gone before the scan is.
            if kind != "none":
                left[key.decode()] = (kind, client.pttl(key))
        groups = {
            key: [g["name"].decode() for g in client.xinfo_groups(key)]
            for key, (kind, _) in left.items()
            if kind == "stream"
        }
        per_entry = {
            key: client.memory_usage(key, samples=0) / client.xlen(key)
            for key, (kind, _) in left.items()
            if kind == "stream" and client.xlen(key) >= 100
        }

    said = what_the_bridge_did(commands)
    named = said.named | set(left)
    undocumented = sorted(k for k in named if not [r for r in rows if r.pattern.fullmatch(k)])
    assert not undocumented, f"keys the Keys table of docs/redis.md does not give: {undocumented}"
    unused = [r.name for r in rows if not any(r.pattern.fullmatch(k) for k in named)]
    assert not unused, f"rows of the Keys table no key of this run is: {unused}"
    assert not disagreements(rows, said, left, named)
    assert not said.unbounded, f"XADDs not bounded as the setting, or not e and s: {said.unbounded}"
    assert said.groups_made <= {"exesdb-bridge"}, said.groups_made
    assert "`exesdb-bridge`" in group_row, group_row
    grouped = {key for key, names in groups.items() if names}
    assert grouped == work_queue_streams(), groups
    assert {name for names in groups.values() for name in names} == {"exesdb-bridge"}
    [stream_row] = [row for row in rows if row.type == "stream"]
    assert "`EXESDB_REDIS_STREAM_MAXLEN`" in stream_row.text
    # What an entry of the bridge's own messages takes, as the page says (a tenth either way).
    sized = re.search(r"own messages takes (\d+) to (\d+) bytes of Redis's memory", page("redis"))
    assert sized, "docs/redis.md says what an entry takes"
    least, most = int(sized.group(1)), int(sized.group(2))
    assert per_entry, "a stream of a hundred entries or more"
    assert all(0.9 * least <= size <= 1.1 * most for size in per_entry.values()), per_entry
