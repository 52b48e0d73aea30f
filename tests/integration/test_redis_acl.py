"""Bridges on a real redis-server as the least-privilege ACL user docs/redis.md gives.

The ACL lines are read from docs/redis.md, so the page and what is tested cannot drift apart.
Two replicas run on exactly those rules; one replica on that user without one of its rules
(``+xread``, ``+xadd``, ``+smembers`` which taking up the lease needs, ``+pexpire`` which
renewing it needs, ``+xpending``, ``+xack``), or with a wrong password, is told refused (not
unreachable) and is ready once Redis is put right; one whose lease's commands are refused at
run time cannot tell where the lease is until they are granted back. One that may only read the
buffered batches' numbers (``exesdb:bus:written:*``) writes without them, told once, ready.
"""

from __future__ import annotations

import json
import re
import shlex
import time
import urllib.request
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
import redis as redis_py

from bridge.headers import ADMIN_TOKEN_HEADER
from bridge.messages import NodeHealth
from bridge.redaction import safe_url
from tests.doc_text import page, section
from tests.integration.servers.redis import RedisServer
from tests.integration.servers.webhook import WebhookReceiver, webhook_receiver
from tests.integration.test_replicas import (
    alert,
    gauge,
    ingest,
    leader,
    metric,
    new_replica,
    notifications,
    start_together,
)
from tests.support import (
    ADMIN_TOKEN,
    TEST_SECRET,
    BridgeProcess,
    http_get,
    run_in_process,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["webhook_receiver"]

PASSWORD = "acl-test-password"
ADMIN = ("admin", "acl-admin-password")
CLAIM_IDLE_MS = 600
SIGNED = {"SECRET_KEY_BASE": TEST_SECRET}


def documented_rules() -> tuple[list[str], list[str]]:
    """The ``ACL SETUSER exesdb`` rules of docs/redis.md: the line for every Redis 7, and the
    one to add on Redis 7.2 and later."""
    text = section(page("redis"), "A Redis user for the bridge")
    lines = [line for line in text.splitlines() if line.startswith("ACL SETUSER exesdb ")]
    [full, newer] = lines
    [filed] = [line for line in text.splitlines() if line.startswith("user exesdb ")]
    # The ACL file's line gives the very same rules as the command.
    assert shlex.split(filed)[2:] == shlex.split(full)[3:]
    return shlex.split(full)[3:], shlex.split(newer)[3:]


def documented_default_user() -> list[str]:
    """The ACL file's line for the default user in docs/redis.md, as its rules."""
    text = section(page("redis"), "A Redis user for the bridge")
    [line] = [line for line in text.splitlines() if line.startswith("user default ")]
    return shlex.split(line)[2:]


def documented_admin() -> list[str]:
    """The rules docs/redis.md gives the administrator made before the default user is off,
    its password the test's: the same as a command and in the ACL file."""
    text = section(page("redis"), "A Redis user for the bridge")
    [command] = [line for line in text.splitlines() if line.startswith("ACL SETUSER admin ")]
    [filed] = [line for line in text.splitlines() if line.startswith("user admin ")]
    rules = shlex.split(command)[3:]
    assert shlex.split(filed)[2:] == rules
    assert ">ADMIN_PASSWORD" in rules
    return [f">{ADMIN[1]}" if rule == ">ADMIN_PASSWORD" else rule for rule in rules]


def admin(server: RedisServer) -> redis_py.Redis:
    """A client of the test's own administrator (the default user is off)."""
    return redis_py.Redis(
        host="127.0.0.1", port=server.port, username=ADMIN[0], password=ADMIN[1], socket_timeout=5
    )


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server with the documented ``exesdb`` user, the documented administrator (the
    test's password), and the default user off."""
    server = RedisServer().start(tmp_path / "redis")
    rules, newer = documented_rules()
    with server.client() as client:
        version = tuple(int(n) for n in client.info("server")["redis_version"].split(".")[:2])
        password = [f">{PASSWORD}" if rule == ">PASSWORD" else rule for rule in rules]
        assert password != rules, "the documented line sets the password with >PASSWORD"
        client.execute_command("ACL", "SETUSER", "exesdb", *password)
        if version >= (7, 2):
            client.execute_command("ACL", "SETUSER", "exesdb", *newer)
        client.execute_command("ACL", "SETUSER", ADMIN[0], *documented_admin())
        client.execute_command("ACL", "SETUSER", "default", "off")
    with admin(server) as client:
        client.execute_command("ACL", "LOG", "RESET")
    yield server
    server.stop()


def bus_url(server: RedisServer) -> str:
    """The documented form: the user and its password in ``EXESDB_BUS``."""
    return f"redis://exesdb:{PASSWORD}@127.0.0.1:{server.port}/0"


def set_rules(server: RedisServer, *rules: str) -> None:
    """``ACL SETUSER exesdb`` with ``rules``, as the test's administrator (on a running bridge's
    user too: Redis applies a change to its open connections at once)."""
    with admin(server) as client:
        client.execute_command("ACL", "SETUSER", "exesdb", *rules)


def setting(server: RedisServer, *rules: str) -> Callable[[], None]:
    """How to put Redis right later: ``set_rules`` with ``rules``."""
    return lambda: set_rules(server, *rules)


def start_replica(
    tmp_path: Path,
    started: list[BridgeProcess],
    url: str,
    node: str = "bridge-0",
    receiver: WebhookReceiver | None = None,
    **env: str,
) -> BridgeProcess:
    """One replica ``node`` on the bus at ``url`` (``env`` added), its state its own."""
    return new_replica(tmp_path, started, url, node, receiver, **env).start(tmp_path)


def start_replicas(
    tmp_path: Path, started: list[BridgeProcess], server: RedisServer, receiver: WebhookReceiver
) -> list[BridgeProcess]:
    """Two replicas as ``exesdb``, started together, with a lease short enough that a gone
    replica's consumer is deleted (after ten lease lengths) within the test."""
    short = {"EXESDB_REDIS_CLAIM_IDLE_MS": str(CLAIM_IDLE_MS)}
    return start_together(
        tmp_path,
        [
            new_replica(tmp_path, started, bus_url(server), node, receiver, **short)
            for node in ("bridge-0", "bridge-1")
        ],
    )


# How /readyz and the log tell each refusal: "Redis at <url> " and these.
REFUSES_COMMANDS = "refuses the bridge's commands: "
REFUSES_CREDENTIALS = "refuses the bridge's credentials: "
PERMISSIONS_HINT = (
    " (give the bridge's Redis user the rules of docs/redis.md#a-redis-user-for-the-bridge of"
    " the source repository, https://github.com/exesdb/exesdb-bridge; ACL LOG names what was"
    " refused)"
)


def told(url: str, said: str) -> str:
    """A refusal as the bridge on ``url`` tells it: Redis (its URL redacted), then ``said``."""
    return f"Redis at {safe_url(url)} {said}"


def consumers(server: RedisServer) -> set[str]:
    """The consumers of the work queue's group on the alerts stream."""
    with admin(server) as client:
        found = client.xinfo_consumers("exesdb:bus:ex_esdb_alerts", "exesdb-bridge")
    return {consumer["name"].decode() for consumer in found}


def acknowledge(process: BridgeProcess, alert_id: str) -> int:
    """``POST /v1/alerts/{alert_id}/ack`` with a resolution, at ``process``: the status."""
    request = urllib.request.Request(
        f"{process.url}/v1/alerts/{alert_id}/ack",
        data=json.dumps({"ack_by": "ops", "resolution": "fixed"}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", ADMIN_TOKEN_HEADER: ADMIN_TOKEN},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def nothing_pending(server: RedisServer) -> bool:
    """No entry of the work queue taken and not acknowledged (XACK reached Redis)."""
    with admin(server) as client:
        for key in client.scan_iter("exesdb:bus:ex_esdb_*"):
            for group in client.xinfo_groups(key):
                if int(group["pending"]):
                    return False
    return True


def denied(server: RedisServer) -> list[str]:
    """What Redis refused anyone since the test began (``ACL LOG``): command or key, and user."""
    with admin(server) as client:
        entries = client.acl_log()
    return [f"{entry['username']}: {entry['reason']} {entry['object']}" for entry in entries]


def test_two_replicas_run_on_the_documented_acl_user_with_nothing_refused(
    tmp_path: Path, acl_redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """With only the ACL rules of docs/redis.md and the default user off, two replicas fan a
    message out to both, deliver an alert once, acknowledge it (entry and alert), and hand the
    lease over when its holder stops; Redis refuses nothing, and no log says NOPERM.
    ``check-config`` shows the URL with the password redacted."""
    with pytest.raises(redis_py.AuthenticationError):  # the default user is really off
        acl_redis.ping()
    shown = run_in_process("check-config", env={"EXESDB_BUS": bus_url(acl_redis), **SIGNED}).stdout
    assert f"redis://exesdb:<redacted>@127.0.0.1:{acl_redis.port}/" in shown
    assert PASSWORD not in shown
    receiver: WebhookReceiver = webhook_receiver()
    replicas = start_replicas(tmp_path, bridge_processes, acl_redis, receiver)
    for replica in replicas:
        wait_until(gauge(replica, "exesdb_redis_connected", 1), 15, "connected to Redis")
    # Fan-out: a message ingested at one replica reaches both.
    health = NodeHealth(node="app-7", status="healthy", memory_usage=17.0)
    ingest(replicas[1].url, [("node:health", "bridge-1", health)])
    for replica in replicas:
        wait_until(
            gauge(replica, "exesdb_node_memory_usage_percent", 17.0, node="app-7"), 15, "fan-out"
        )
    # The work queue: an alert ingested at the other replica is delivered once by the holder.
    holder = leader(replicas)
    other = next(r for r in replicas if r is not holder)
    ingest(other.url, [alert("acl-1")])
    wait_until(lambda: notifications(receiver, "acl-1"), 15, "the alert delivered")
    wait_until(lambda: nothing_pending(acl_redis), 15, "the entry acknowledged (XACK)")
    assert acknowledge(holder, "acl-1") == 200
    wait_until(
        lambda: [n["status"] for n in notifications(receiver, "acl-1")] == ["firing", "resolved"],
        15,
        "the acknowledgement's resolution delivered, once",
    )
    # The lease handed over: the holder stops, the other takes the lease and delivers, and in
    # time deletes the consumer of the replica that is gone.
    gone = {name for name in consumers(acl_redis) if name.startswith(holder.env["EXESDB_NODE"])}
    assert gone
    assert holder.stop() == 0
    wait_until(gauge(other, "exesdb_redis_work_queue_leader", 1), 15, "the lease taken over")
    ingest(other.url, [alert("acl-2")])
    wait_until(lambda: notifications(receiver, "acl-2"), 15, "an alert after the hand-over")
    wait_until(lambda: nothing_pending(acl_redis), 15, "its entry acknowledged")
    wait_until(lambda: not gone & consumers(acl_redis), 20, "the gone replica's consumer deleted")
    assert [n["status"] for n in notifications(receiver, "acl-1")] == ["firing", "resolved"]
    assert len(notifications(receiver, "acl-2")) == 1
    assert denied(acl_redis) == []
    for replica in replicas:
        assert not re.search("NOPERM|no permissions", replica.log()), replica.log_path


def bus_readiness(process: BridgeProcess) -> tuple[int, str]:
    """``/readyz``'s status and its bus check's reason ("" when ready)."""
    status, body = http_get(process.url + "/readyz")
    return status, json.loads(body)["checks"]["bus"]["reason"] or ""


def retried(process: BridgeProcess) -> bool:
    """Whether ``process`` has tried a refused command a few times (each counted)."""
    return (metric(process.url, "exesdb_redis_connection_errors_total") or 0) >= 4


def refused_until_put_right(
    process: BridgeProcess,
    refusal: str,
    put_right: Callable[[], None],
    counted: Callable[[BridgeProcess], bool] = retried,
) -> list[str]:
    """Wait until ``process`` has ``counted`` its refused commands, each ``/readyz`` from the
    first refusal on 503 saying ``refusal`` (not ready in between, as other commands get
    through; never "unreachable"); then ``put_right`` Redis and wait until ``process`` is
    ready, with no restart. Returns the log lines that told the refusal."""
    seen: list[tuple[int, str]] = []

    def refused_enough() -> bool:
        enough = counted(process)  # before the readiness: the last one seen follows the count
        seen.append(bus_readiness(process))
        return enough

    wait_until(refused_enough, 30, "the refused commands counted")
    told = [line for line in process.log().splitlines() if refusal in line]
    assert not [reason for _, reason in seen if "unreachable" in reason], seen
    # Before the first refusal (at start, the fan-out found the streams' tails) it may be ready.
    since = [i for i, (_, reason) in enumerate(seen) if reason.startswith(refusal)][:1]
    assert since, seen
    assert {(status, reason.startswith(refusal)) for status, reason in seen[since[0] :]} == {
        (503, True)
    }, seen
    put_right()
    # Ready at once when the refused command is tried again; after refusal_seconds without a
    # frame refused when it was a write, which is not tried again (8 s: twice the replicas'
    # backoff cap, 1 s, and the 6 s socket timeout).
    wait_until(lambda: bus_readiness(process) == (200, ""), 40, "ready once Redis is put right")
    assert process.process is not None
    assert process.process.poll() is None  # the same process: not restarted
    return told


def told_once_until_granted(server: RedisServer, process: BridgeProcess, command: str) -> None:
    """``process``, on ``server``'s documented user without ``+command``, says Redis refuses
    the bridge's commands (NOPERM, naming ``command`` and where the rules are) in /readyz and
    in one warning while it lasts, its tries counted; once ``+command`` is granted, it is ready
    without a restart (``refused_until_put_right``)."""
    noperm = f"NOPERM this user has no permissions to run the '{command}' command"
    refusal = told(bus_url(server), REFUSES_COMMANDS + noperm + PERMISSIONS_HINT)
    logged = refused_until_put_right(process, refusal, setting(server, f"+{command}"))
    assert len(logged) == 1, logged
    assert " WARNING " in logged[0]


def test_the_documented_default_user_keeps_the_bridge_s_writes_across_an_aof_reload(
    tmp_path: Path,
) -> None:
    """With the ACL file's line for the default user docs/redis.md gives (the user off, no one
    logging in as it), Redis reloading its append-only file keeps what the bridge's user wrote
    in a Lua script (two writes) and in a transaction: Redis loads the file as the default
    user, and before redis/redis#14541's fix drops each transaction that user may not run (a
    bare ``user default off`` gives it no command), the open alerts lost at each restart."""
    options = ("--appendonly", "yes", "--enable-debug-command", "local")
    server = RedisServer(options=options).start(tmp_path / "redis-aof")
    try:
        rules, _ = documented_rules()
        with server.client() as client:
            password = [f">{PASSWORD}" if rule == ">PASSWORD" else rule for rule in rules]
            client.execute_command("ACL", "SETUSER", "exesdb", *password)
            client.execute_command("ACL", "SETUSER", ADMIN[0], *documented_admin())
            # A line of the ACL file makes its user from nothing: reset, then its rules.
            client.execute_command("ACL", "SETUSER", "default", "reset", *documented_default_user())
        with redis_py.Redis(
            host="127.0.0.1", port=server.port, username="exesdb", password=PASSWORD
        ) as bridge_user:
            # Two writes, as the bridge's scripts make: Redis logs them in a transaction.
            script = (
                "redis.call('HSET', KEYS[1], 'alert-1', 'firing') redis.call('SET', KEYS[2], 1)"
            )
            bridge_user.eval(script, 2, "exesdb:state:alerts", "exesdb:state:alerts:kept")
            with bridge_user.pipeline(transaction=True) as both:
                both.set("exesdb:spool:0", "42").hset("exesdb:state:alerts", "alert-2", "firing")
                both.execute()
        with admin(server) as client:
            client.execute_command("DEBUG", "LOADAOF")
            assert client.hgetall("exesdb:state:alerts") == {
                b"alert-1": b"firing",
                b"alert-2": b"firing",
            }
            assert client.get("exesdb:spool:0") == b"42"
            assert client.get("exesdb:state:alerts:kept") == b"1"
        assert "CRITICAL" not in server.log(), server.log()
    finally:
        server.stop()


def test_a_rule_the_acl_user_lacks_is_told_as_refused_until_granted(
    tmp_path: Path, acl_redis: RedisServer, bridge_processes: list[BridgeProcess]
) -> None:
    """On the documented user without ``+xread``, /readyz and the log say Redis refuses the
    bridge's commands (NOPERM, naming the command and where the rules are), one warning while
    it lasts and the refusals counted; ``ACL LOG`` names the command; granted at run time,
    the bridge is ready without a restart."""
    set_rules(acl_redis, "-xread")
    process = start_replica(tmp_path, bridge_processes, bus_url(acl_redis))
    told_once_until_granted(acl_redis, process, "xread")
    assert "exesdb: command xread" in denied(acl_redis)
    assert "takes the bridge's commands again" in process.log()
    assert PASSWORD not in process.log()


def test_a_wrong_password_is_told_as_refused_credentials_until_redis_takes_it(
    tmp_path: Path, acl_redis: RedisServer, bridge_processes: list[BridgeProcess]
) -> None:
    """With a password the ``exesdb`` user does not have, ``check-config`` shows the URL
    (redacted) and exits 0, for it asks Redis nothing; the bridge starts, and /readyz and one
    start-up warning say Redis refuses its credentials (WRONGPASS), never the password; once
    Redis takes that password the bridge is ready without a restart."""
    wrong = bus_url(acl_redis).replace(PASSWORD, "not-the-password")
    checked = run_in_process("check-config", env={"EXESDB_BUS": wrong, **SIGNED})
    assert checked.returncode == 0, checked.stderr
    assert f"redis://exesdb:<redacted>@127.0.0.1:{acl_redis.port}/" in checked.stdout
    process = start_replica(tmp_path, bridge_processes, wrong)
    refusal = told(
        wrong,
        REFUSES_CREDENTIALS + "WRONGPASS invalid username-password pair or user is disabled (the"
        " user name and password in EXESDB_BUS must be those of a Redis user that is on)",
    )
    logged = refused_until_put_right(process, refusal, setting(acl_redis, ">not-the-password"))
    assert len(logged) == 1, logged
    assert " WARNING " in logged[0]
    assert "not-the-password" not in process.log()


def test_no_password_where_redis_asks_for_one_is_told_where_it_goes(
    tmp_path: Path, acl_redis: RedisServer, bridge_processes: list[BridgeProcess]
) -> None:
    """A URL without a password at a Redis that asks for one (its default user off): /readyz
    and one start-up warning say NOAUTH and where the password goes, in words that the log's
    redaction leaves whole; once Redis lets the bridge in, it is ready without a restart."""
    bare = f"redis://127.0.0.1:{acl_redis.port}/0"
    process = start_replica(tmp_path, bridge_processes, bare)
    refusal = told(
        bare,
        REFUSES_CREDENTIALS + "NOAUTH Authentication required (Redis asks for a password and"
        " EXESDB_BUS gives none: write it in the URL before the host, after a colon and followed"
        " by @ (a Redis user's name before that colon), docs/redis.md#settings of the source"
        " repository, https://github.com/exesdb/exesdb-bridge)",
    )

    def let_in() -> None:
        with admin(acl_redis) as client:
            client.execute_command("ACL", "SETUSER", "default", "on", "nopass", "~*", "&*", "+@all")

    logged = refused_until_put_right(process, refusal, let_in)
    assert len(logged) == 1, logged


def test_frames_the_acl_user_may_not_write_are_told_as_refused_until_granted(
    tmp_path: Path, acl_redis: RedisServer, bridge_processes: list[BridgeProcess]
) -> None:
    """On the documented user without ``+xadd``, the writing script's XADDs are refused and
    their frames dropped (logged, counted), and /readyz says Redis refuses the bridge's
    commands though the script itself gets through; granted, the bridge is ready again
    without a restart."""
    set_rules(acl_redis, "-xadd")
    process = start_replica(tmp_path, bridge_processes, bus_url(acl_redis))
    denial = "ERR The user executing the script can't run this command or subcommand"
    refusal = told(bus_url(acl_redis), REFUSES_COMMANDS + denial + PERMISSIONS_HINT)

    def dropped(process: BridgeProcess) -> bool:
        sample = metric(process.url, "exesdb_bus_dropped_total", subscriber="transport")
        return (sample or 0) >= 3

    refused_until_put_right(process, refusal, setting(acl_redis, "+xadd"), counted=dropped)
    assert "Redis refused a frame of" in process.log()
    assert "exesdb: command xadd" in denied(acl_redis)


def test_a_lease_never_taken_up_for_a_rule_the_acl_user_lacks_is_told_as_refused(
    tmp_path: Path, acl_redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """On the documented user without ``+smembers``, taking up the lease fails each time (the
    other replicas' notes cannot be listed) and no alert is delivered: /readyz and one warning
    say Redis refuses the bridge's commands (NOPERM, naming the command), not ready; granted,
    the replica takes the lease up and delivers the alert, without a restart."""
    set_rules(acl_redis, "-smembers")
    receiver: WebhookReceiver = webhook_receiver()
    url = bus_url(acl_redis)
    process = start_replica(tmp_path, bridge_processes, url, receiver=receiver)
    ingest(process.url, [alert("acl-take-up")])
    told_once_until_granted(acl_redis, process, "smembers")
    wait_until(lambda: notifications(receiver, "acl-take-up"), 15, "the alert delivered")
    assert metric(process.url, "exesdb_redis_work_queue_leader") == 1


def test_a_lease_the_acl_user_may_not_renew_is_told_as_refused_until_granted(
    tmp_path: Path, acl_redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """On the documented user without ``+pexpire``, the lease can be set but not renewed (its
    renewal is a script calling PEXPIRE): for leases on end /readyz and one warning say Redis
    refuses the bridge's commands, naming the renewal and PEXPIRE, its tries counted, and the
    lease is never taken up (not taken up and lost each lease, readiness flipping); granted,
    the replica holds the lease, delivers the alert and is ready, without a restart."""
    set_rules(acl_redis, "-pexpire")
    receiver: WebhookReceiver = webhook_receiver()
    url = bus_url(acl_redis)
    process = start_replica(
        tmp_path,
        bridge_processes,
        url,
        receiver=receiver,
        EXESDB_REDIS_CLAIM_IDLE_MS=str(CLAIM_IDLE_MS),
    )
    ingest(process.url, [alert("acl-renew")])
    denial = "ERR The user executing the script can't run this command or subcommand"
    refusal = told(url, REFUSES_COMMANDS + denial)
    began = time.monotonic()
    leading: list[float | None] = []

    def refused_for_leases(process: BridgeProcess) -> bool:
        # Watched for three leases: one set and lost each time would be seen taken up.
        leading.append(metric(process.url, "exesdb_redis_work_queue_leader"))
        return retried(process) and time.monotonic() - began > 3 * CLAIM_IDLE_MS / 1000

    logged = refused_until_put_right(
        process, refusal, setting(acl_redis, "+pexpire"), counted=refused_for_leases
    )
    assert len(logged) == 1, logged
    assert " WARNING " in logged[0]
    assert "(the work-queue lease's renewal, a script running GET and PEXPIRE)" in logged[0]
    assert PERMISSIONS_HINT in logged[0]
    assert set(leading) == {0}, leading
    wait_until(lambda: notifications(receiver, "acl-renew"), 15, "the alert delivered")
    assert metric(process.url, "exesdb_redis_work_queue_leader") == 1


def test_alert_changes_the_acl_user_may_not_note_are_told_naming_the_script_until_granted(
    tmp_path: Path, acl_redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """On the documented user allowed ``PEXPIRE`` on every key but the open alerts' (an ACL
    selector: the lease is renewed), the holder's change of the open alerts, a script that
    keeps its note with PEXPIRE, is refused: /readyz and one warning say Redis refuses the
    bridge's commands, naming that script and PEXPIRE (Redis's words name neither), its tries
    counted, and the alert waits; granted, it is delivered and the bridge is ready, without a
    restart."""
    set_rules(acl_redis, "-pexpire", "(+pexpire ~exesdb:bus:* ~exesdb:cluster:*)")
    receiver: WebhookReceiver = webhook_receiver()
    url = bus_url(acl_redis)
    process = start_replica(tmp_path, bridge_processes, url, receiver=receiver)
    wait_until(gauge(process, "exesdb_redis_work_queue_leader", 1), 15, "the lease taken")
    ingest(process.url, [alert("acl-note")])
    denial = "ERR The user executing the script can't access at least one of the keys"
    refusal = told(url, REFUSES_COMMANDS + denial)
    logged = refused_until_put_right(process, refusal, setting(acl_redis, "+pexpire"))
    assert len(logged) == 1, logged
    assert " WARNING " in logged[0]
    script = (
        "(a change of the work queue's alerts records, a script running GET, EXISTS, SET, HSET,"
        " HDEL, PEXPIRE and SADD)"
    )
    assert script in logged[0]
    assert PERMISSIONS_HINT in logged[0]
    assert "exesdb: key exesdb:state:alerts:notes:bridge-0" in denied(acl_redis)
    wait_until(lambda: notifications(receiver, "acl-note"), 15, "the alert delivered")
    assert len(notifications(receiver, "acl-note")) == 1


def test_a_user_without_time_keeps_the_bridge_ready_and_is_told_once_until_granted(
    tmp_path: Path, acl_redis: RedisServer, bridge_processes: list[BridgeProcess]
) -> None:
    """On the documented user without ``+time`` (the rules of a version before it), the periodic
    ClusterHealth's claim goes by the replica's own clock: one warning says so, naming the rule,
    the bridge stays ready and claims ClusterHealth's periods, and Redis refuses nothing; once
    ``+time`` is granted, the claim goes by Redis's clock again, without a restart."""
    set_rules(acl_redis, "-time")
    process = start_replica(tmp_path, bridge_processes, bus_url(acl_redis))
    warning = "refuses the bridge's user TIME: the periodic ClusterHealth goes by each replica's"
    wait_until(lambda: warning in process.log(), 15, "the warning")
    with admin(acl_redis) as client:
        wait_until(lambda: client.get("exesdb:cluster:health"), 15, "a ClusterHealth claimed")
    assert bus_readiness(process) == (200, "")
    set_rules(acl_redis, "+time")
    wait_until(lambda: "goes by Redis's clock again" in process.log(), 15, "Redis's clock again")
    assert bus_readiness(process) == (200, "")
    assert process.log().count(warning) == 1
    assert denied(acl_redis) == []


def told_refused(process: BridgeProcess, refusal: str) -> bool:
    """Whether ``process``'s /readyz says ``refusal``."""
    return bus_readiness(process)[1].startswith(refusal)


def test_replicas_whose_acl_user_may_not_renew_the_lease_each_say_so_for_leases_on_end(
    tmp_path: Path, acl_redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """Two replicas on the documented user without ``+pexpire``: no replica can take the work
    queue up, and for leases on end each says so, 503 on /readyz (Redis refuses the bridge's
    commands) in one warning naming the renewal; neither says it is ready, nor that the lease
    is held elsewhere, as it would of the lease set by the other and left to run out."""
    set_rules(acl_redis, "-pexpire")
    url = bus_url(acl_redis)
    replicas = start_replicas(tmp_path, bridge_processes, acl_redis, webhook_receiver())
    refusal = told(url, REFUSES_COMMANDS)
    for replica in replicas:
        wait_until(partial(told_refused, replica, refusal), 15, "the refusal told")
    began = time.monotonic()
    seen: list[tuple[str, int, bool, str]] = []

    def refused_for_leases() -> bool:
        # Watched for ten leases: a lease set by one replica and left to run out is seen by
        # the other as held, and each takes it in turn.
        for replica in replicas:
            status, reason = bus_readiness(replica)
            node = replica.env["EXESDB_NODE"]
            seen.append((node, status, reason.startswith(refusal), lease_where(replica)))
        return time.monotonic() - began > 10 * CLAIM_IDLE_MS / 1000

    wait_until(refused_for_leases, 30, "ten leases watched")
    assert {(status, refused) for _, status, refused, _ in seen} == {(503, True)}, seen
    assert "elsewhere" not in {where for *_, where in seen}, seen
    renewal = "(the work-queue lease's renewal, a script running GET and PEXPIRE)"
    for replica in replicas:
        warnings = [line for line in replica.log().splitlines() if renewal in line]
        assert len(warnings) == 1, warnings


def test_a_replica_refused_the_renewal_that_finds_the_lease_held_still_says_so(
    tmp_path: Path, acl_redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """A replica on the documented user without ``+pexpire``, told refused, that then finds the
    lease held by another (as it may for the moment another replica refused alike holds it
    before giving it back): not having tried the renewal, it does not know Redis takes it, and
    goes on saying Redis refuses its commands, neither ready nor the lease ``elsewhere``."""
    set_rules(acl_redis, "-pexpire")
    url = bus_url(acl_redis)
    process = start_replica(tmp_path, bridge_processes, url, receiver=webhook_receiver())
    refusal = told(url, REFUSES_COMMANDS)
    wait_until(partial(told_refused, process, refusal), 15, "the refusal told")
    with admin(acl_redis) as client:
        client.set("exesdb:bus:leader", "bridge-9:other", px=20_000)
    began = time.monotonic()
    seen: list[tuple[int, bool, str]] = []

    def watched() -> bool:
        status, reason = bus_readiness(process)
        seen.append((status, reason.startswith(refusal), lease_where(process)))
        # Past the backoff's cap (the replicas' 1 s) and a step: it has looked at the lease
        # since; within refusal_seconds (8 s) of its last refusal, which does not age out
        # meanwhile.
        return time.monotonic() - began > 3

    wait_until(watched, 20, "the held lease looked at")
    assert {(status, refused) for status, refused, _ in seen} == {(503, True)}, seen
    assert {where for *_, where in seen} == {"unknown"}, seen


def test_a_held_lease_whose_renewal_is_refused_at_run_time_is_let_go_and_told_until_granted(
    tmp_path: Path, acl_redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """A replica holding the lease whose user loses ``+pexpire``: the lease runs out and is
    not taken up again while the renewal is refused (for leases on end, not ready: Redis
    refuses the bridge's commands, one warning naming the renewal); granted back, it holds the
    lease and is ready, without a restart."""
    url = bus_url(acl_redis)
    process = start_replica(
        tmp_path,
        bridge_processes,
        url,
        receiver=webhook_receiver(),
        EXESDB_REDIS_CLAIM_IDLE_MS=str(CLAIM_IDLE_MS),
    )
    wait_until(gauge(process, "exesdb_redis_work_queue_leader", 1), 15, "the lease taken")
    wait_until(lambda: bus_readiness(process) == (200, ""), 15, "ready")
    set_rules(acl_redis, "-pexpire")
    renewal = "(the work-queue lease's renewal, a script running GET and PEXPIRE)"
    # The refusal first: a lease this short may also lapse now and then on a busy machine.
    wait_until(lambda: renewal in process.log(), 15, "the renewal refused")
    wait_until(gauge(process, "exesdb_redis_work_queue_leader", 0), 15, "the lease let go")
    let_go = time.monotonic()
    seen: list[tuple[float | None, int, bool]] = []

    def refused_for_leases() -> bool:
        # Watched for three leases: one set and lost each time would be seen taken up. (What the
        # alert stage was refused as the lease went, a note it keeps, may be the refusal shown.)
        status, reason = bus_readiness(process)
        refused = reason.startswith(told(url, REFUSES_COMMANDS))
        seen.append((metric(process.url, "exesdb_redis_work_queue_leader"), status, refused))
        return time.monotonic() - let_go > 3 * CLAIM_IDLE_MS / 1000

    wait_until(refused_for_leases, 15, "three leases refused")
    assert set(seen) == {(0, 503, True)}, seen
    assert len([line for line in process.log().splitlines() if renewal in line]) == 1
    set_rules(acl_redis, "+pexpire")
    wait_until(gauge(process, "exesdb_redis_work_queue_leader", 1), 15, "the lease held again")
    wait_until(lambda: bus_readiness(process) == (200, ""), 15, "ready again")
    assert process.process is not None
    assert process.process.poll() is None  # the same process: not restarted


def test_a_publisher_that_may_not_look_at_what_was_taken_is_told_as_refused(
    tmp_path: Path, acl_redis: RedisServer, bridge_processes: list[BridgeProcess]
) -> None:
    """On the documented user without ``+xpending``, the replica cannot tell which of the
    work-queue frames it wrote were taken (to write again only those after Redis lost its
    data): /readyz and one warning say Redis refuses the bridge's commands (NOPERM, naming
    the command), its tries counted; granted, the bridge is ready without a restart."""
    set_rules(acl_redis, "-xpending")
    url = bus_url(acl_redis)
    process = start_replica(tmp_path, bridge_processes, url)
    ingest(process.url, [alert("acl-pending")])
    told_once_until_granted(acl_redis, process, "xpending")
    assert "exesdb: command xpending" in denied(acl_redis)


def test_entries_the_acl_user_may_not_acknowledge_are_told_as_refused_and_sent_once(
    tmp_path: Path, acl_redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """On the documented user without ``+xack``, the holder's acknowledgements are refused and
    its entries stay pending: /readyz and one warning say Redis refuses the bridge's commands
    (NOPERM, naming the command), its tries counted, and the alert claimed again is not sent
    again; granted, the bridge is ready and nothing stays pending, without a restart."""
    set_rules(acl_redis, "-xack")
    receiver: WebhookReceiver = webhook_receiver()
    url = bus_url(acl_redis)
    process = start_replica(
        tmp_path, bridge_processes, url, receiver=receiver, EXESDB_REDIS_CLAIM_IDLE_MS="600"
    )
    ingest(process.url, [alert("acl-ack")])
    told_once_until_granted(acl_redis, process, "xack")
    wait_until(lambda: nothing_pending(acl_redis), 15, "the entries acknowledged (XACK)")
    assert len(notifications(receiver, "acl-ack")) == 1


def lease_where(process: BridgeProcess) -> str:
    """``work_queue_lease`` of ``process``'s ``GET /v1/alerts``: here, elsewhere or unknown."""
    status, body = http_get(process.url + "/v1/alerts", {ADMIN_TOKEN_HEADER: ADMIN_TOKEN})
    assert status == 200, body
    return str(json.loads(body)["work_queue_lease"])


def test_a_replica_whose_lease_commands_are_refused_cannot_tell_where_the_lease_is(
    tmp_path: Path, acl_redis: RedisServer, bridge_processes: list[BridgeProcess], webhook_receiver
) -> None:
    """A running replica that holds the lease, whose user loses ``get`` and ``set`` (the lease's
    commands) while its reads still get through: once the lease lapses, GET /v1/alerts says
    ``work_queue_lease`` ``unknown`` (not ``elsewhere``), ``alerts list`` and the status page that
    it cannot use Redis, ``exesdb_redis_connected`` is 0 and /readyz says Redis refuses its
    commands; granted back, it holds the lease again, connected and ready, without a restart."""
    url = bus_url(acl_redis)
    process = start_replica(tmp_path, bridge_processes, url, receiver=webhook_receiver())
    wait_until(lambda: lease_where(process) == "here", 15, "the lease taken")
    wait_until(gauge(process, "exesdb_redis_connected", 1), 15, "connected to Redis")
    set_rules(acl_redis, "-get", "-set")
    wait_until(lambda: lease_where(process) == "unknown", 20, "the lease not known here")
    assert metric(process.url, "exesdb_redis_connected") == 0
    # A renewal unanswered in its lease on a loaded host is told first as no answer; the next
    # command refused says why.
    wait_until(
        lambda: bus_readiness(process)[1].startswith(told(url, REFUSES_COMMANDS)),
        15,
        "/readyz saying Redis refuses the bridge's commands",
    )
    assert bus_readiness(process)[0] == 503
    listed = run_in_process(
        "alerts", "list", "--url", process.url, env={"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN}
    )
    assert f"the replica at {process.url} cannot use Redis" in listed.stderr, listed.stderr
    page = http_get(process.url + "/", process.headers)[1].decode()
    assert "This replica cannot use Redis" in page
    assert lease_where(process) == "unknown"  # still: the refused lease is not taken meanwhile
    set_rules(acl_redis, "+get", "+set")
    wait_until(lambda: lease_where(process) == "here", 20, "the lease held again")
    wait_until(gauge(process, "exesdb_redis_connected", 1), 20, "connected again")
    wait_until(lambda: bus_readiness(process) == (200, ""), 20, "ready again")
    assert process.process is not None
    assert process.process.poll() is None  # the same process: not restarted


# Every key of docs/redis.md#keys but the buffered batches' numbers, which the user may only read.
WITHOUT_THE_MARK = (
    "resetkeys",
    "~exesdb:bus:ex_*",
    "~exesdb:bus:leader",
    "~exesdb:bus:epoch",
    "~exesdb:state:*",
    "~exesdb:spool:*",
    "~exesdb:cluster:*",
    "%R~exesdb:bus:written:*",
)


def mark_refusals(server: RedisServer) -> int:
    """How many times Redis refused the bridge's user an ``exesdb:bus:written:*`` key (ACL LOG
    counts a repeated refusal in one entry)."""
    with admin(server) as client:
        entries = client.acl_log()
    return sum(
        int(entry["count"])
        for entry in entries
        if entry["object"].startswith("exesdb:bus:written:")
    )


def test_a_user_that_may_not_write_the_batches_number_is_told_once_and_loses_nothing(
    tmp_path: Path, acl_redis: RedisServer, bridge_processes: list[BridgeProcess]
) -> None:
    """On the documented user allowed only to read ``exesdb:bus:written:*``, the bridge's own
    messages are still written, and read back: one warning names the key and the rule to
    grant, /readyz stays 200, and the refused script is tried again with backoff (once per
    backoff cap, ``EXESDB_REDIS_MAX_BACKOFF_MS``, not once per batch); granted, the batches
    carry their number again, told, without a restart."""
    set_rules(acl_redis, *WITHOUT_THE_MARK)
    # A NodeHealth every 100 ms: some 60 batches while six backoff caps (1 s) are watched.
    process = start_replica(
        tmp_path, bridge_processes, bus_url(acl_redis), EXESDB_HEALTH_BROADCAST_INTERVAL="100"
    )
    warning = "refuses the bridge's user the key exesdb:bus:written:bridge-0:"
    wait_until(lambda: warning in process.log(), 15, "the refusal told")
    began, refused = time.monotonic(), mark_refusals(acl_redis)
    written = metric(process.url, "exesdb_redis_written_total") or 0
    seen: list[tuple[int, str]] = []

    def watched() -> bool:
        seen.append(bus_readiness(process))
        return time.monotonic() - began > 6  # six backoff caps: some six tries

    wait_until(watched, 20, "six seconds watched")
    assert set(seen) == {(200, "")}, seen
    assert (metric(process.url, "exesdb_redis_written_total") or 0) >= written + 20
    # Tried again each cap (1 s), not each batch, nor each 5 s (the default cap: two at most).
    assert 3 <= mark_refusals(acl_redis) - refused <= 8
    wait_until(
        lambda: (
            metric(process.url, "exesdb_node_memory_usage_percent", node="bridge-0") is not None
        ),
        15,
        "the replica's own NodeHealth read back",
    )
    [told] = [line for line in process.log().splitlines() if warning in line]
    assert " WARNING " in told
    assert "give the user GET and SET on exesdb:bus:written:*" in told
    assert "docs/redis.md#a-redis-user-for-the-bridge" in told
    set_rules(acl_redis, "~exesdb:*")
    again = "takes the key exesdb:bus:written:bridge-0:"
    wait_until(lambda: again in process.log(), 15, "the grant taken")
    with admin(acl_redis) as client:
        assert list(client.scan_iter("exesdb:bus:written:bridge-0:*"))
    assert process.log().count(warning) == 1
    assert process.process is not None
    assert process.process.poll() is None  # the same process: not restarted
