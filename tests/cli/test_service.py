"""``run`` (``bridge.cli.service``) as a real process: its configuration refused before start, its
warnings, its stop on a signal and its failed starts."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Final

import pytest

from bridge.sinks.alerts import Outbox
from bridge.sinks.alerts.outbox import FILE_NAME
from tests.cli.helpers import Bridges, cli, start_bridge_process
from tests.integration.servers.redis import RedisServer
from tests.support import (
    ROOT,
    TEST_SECRET,
    BridgeProcess,
    bridge_env,
    free_port,
    http_get,
    run_bridge,
    run_command,
    wait_until,
    withhold,
)


@pytest.mark.parametrize(
    ("command", "env", "variable"),
    [
        (["run"], {"EXESDB_INGEST": "true"}, "SECRET_KEY_BASE"),
        (["run"], {"EXESDB_HTTP_ADDR": "nowhere"}, "EXESDB_HTTP_ADDR"),
        (["check-config"], {"EXESDB_LOG_LEVEL": "loud"}, "EXESDB_LOG_LEVEL"),
        (
            ["run"],
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "notaurl",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (["publish", "system_alert"], {"EXESDB_NODE": "n" * 256}, "EXESDB_NODE"),
        (["tail"], {"EXESDB_URL": "nats://x"}, "EXESDB_URL"),
    ],
)
def test_bad_configuration_exits_2_naming_the_variable(
    command: list[str], env: dict[str, str], variable: str
) -> None:
    """Every subcommand refuses a bad value of a variable it reads with exit 2 and a line naming
    the variable."""
    completed = cli(*command, **env)  # type: ignore[arg-type]
    assert completed.returncode == 2
    assert f"  {variable}: " in completed.stderr


# A bad start-up: a bad address, a Redis URL with a password and a bad port, a misspelt name.
BAD_START: Final = {
    "EXESDB_HTTP_ADDR": "nonsense",
    "EXESDB_BUS": "redis://exesdb:hunter2-secret@redis.example:notaport/0",
    "EXESDB_WEBHOOK_URL": "http://hooks.example/x",
}


@pytest.mark.parametrize("log_format", ["json", "JSON", "json "])
def test_run_with_json_logs_writes_each_configuration_problem_as_a_json_record(
    log_format: str,
) -> None:
    """`run` with EXESDB_LOG_FORMAT=json (in any letter case, blanks around it, as the settings
    take it) and a bad configuration exits 2 with every stderr line a JSON log record in the
    log's shape: an error naming each variable at fault, a warning for the misspelt name,
    nothing secret."""
    completed = run_bridge("run", env={"EXESDB_LOG_FORMAT": log_format, **BAD_START})
    assert completed.returncode == 2
    records = [json.loads(line) for line in completed.stderr.splitlines()]
    for record in records:
        assert set(record) == {"ts", "level", "logger", "message"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["ts"])
    errors = [r["message"] for r in records if r["level"] == "error"]
    assert [message.split(":")[:2] for message in errors] == [
        ["bad configuration", " EXESDB_BUS"],
        ["bad configuration", " EXESDB_HTTP_ADDR"],
    ]
    [warning] = [r["message"] for r in records if r["level"] == "warning"]
    assert warning.startswith("EXESDB_WEBHOOK_URL is set but is not a setting")
    assert {r["logger"] for r in records} == {"bridge"}
    assert "hunter2" not in completed.stderr


@pytest.mark.parametrize(
    ("command", "log_format"),
    [(["run"], "text"), (["run"], "xml"), (["check-config"], "json")],
)
def test_a_bad_configuration_is_plain_text_unless_run_logs_json(
    command: list[str], log_format: str
) -> None:
    """Text logs, an EXESDB_LOG_FORMAT the settings refuse (xml), and
    `check-config` (for people, not a log) list the problems as plain lines, exit 2."""
    completed = cli(*command, EXESDB_LOG_FORMAT=log_format, **BAD_START)  # type: ignore[arg-type]
    assert completed.returncode == 2
    lines = completed.stderr.splitlines()
    assert lines[0] == "exesdb-bridge: bad configuration:"
    assert "  EXESDB_HTTP_ADDR: must be host:port" in "\n".join(lines)
    assert not any(line.startswith("{") for line in lines)
    assert "hunter2" not in completed.stderr


@pytest.mark.parametrize(
    ("command", "env"),
    [
        (["check-config"], {"EXESDB_ADMIN_TOKEN": "short-token"}),
        (["check-config"], {"EXESDB_HTTP_ADDR": "nowhere"}),
        (["outbox", "list"], {}),
        (["healthcheck"], {}),
    ],
    ids=["check-config", "refused", "client-command", "healthcheck"],
)
def test_every_command_warns_on_its_own_line_after_one_prefix(
    tmp_path: Path, command: list[str], env: dict[str, str]
) -> None:
    """check-config's warnings (a short admin token, a variable that is no setting), those after
    a refused configuration, a client command's and an unhealthy probe's each begin
    ``exesdb-bridge: warning:``, as docs/cli.md says: one prefix to grep for, whichever said it."""
    env = {
        "EXESDB_HTTP_ADDR": f"127.0.0.1:{free_port()}",
        "EXESDB_STATE_DIR": str(tmp_path),
        "EXESDB_PORT": "9570",
        **env,
    }
    completed = cli(*command, **env)  # type: ignore[arg-type]
    warned = [line for line in completed.stderr.splitlines() if "warning:" in line]
    assert any("EXESDB_PORT is set but is not a setting" in line for line in warned), warned
    assert all(line.startswith("exesdb-bridge: warning: ") for line in warned), warned
    if command == ["check-config"] and "EXESDB_ADMIN_TOKEN" in env:
        assert any("EXESDB_ADMIN_TOKEN is shorter than 16" in line for line in warned), warned


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("key_file: server.key", "TLS needs cert_file (or cert)"),
        ("cert_file: server.pem", "TLS needs key_file (or key)"),
        ("client_allowed_sans: [a.example]", "client_allowed_sans does nothing while TLS is off"),
    ],
)
def test_run_exits_2_on_a_tls_key_without_its_certificate_or_the_reverse(
    tmp_path: Path, given: str, problem: str
) -> None:
    """A web config giving key_file without cert_file (or the reverse) stops start-up with exit
    2, naming the key missing, as the toolkit stops ("missing one of cert or cert_file"); so does
    an allow-list of client names without any certificate, which would protect nothing."""
    web_config = tmp_path / "web.yml"
    web_config.write_text(f"tls_server_config:\n  {given}\n")
    completed = cli(
        "run",
        EXESDB_WEB_CONFIG_FILE=str(web_config),
        EXESDB_HTTP_ADDR="127.0.0.1:0",
        EXESDB_STATE_DIR=str(tmp_path / "state"),
    )
    assert completed.returncode == 2
    assert (
        f"  EXESDB_WEB_CONFIG_FILE: {web_config}: tls_server_config: {problem}" in completed.stderr
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_exits_0_on_sigterm_and_sigint(
    bridge_processes: list[BridgeProcess], tmp_path: Path, signum: signal.Signals
) -> None:
    """exesdb-bridge run stops accepting, drains and exits 0 on SIGTERM or SIGINT, its last
    log line saying it stopped and in how long, beside what EXESDB_SHUTDOWN_TIMEOUT_MS allows."""
    process = start_bridge_process(bridge_processes, tmp_path)
    assert process.process is not None
    process.process.send_signal(signum)
    assert process.process.wait(30) == 0
    log = process.log()
    assert "stopping" in log
    assert re.search(
        r" INFO bridge: stopped in \d+\.\ds \(EXESDB_SHUTDOWN_TIMEOUT_MS allows 8s\)$",
        log.rstrip().splitlines()[-1],
    ), log
    assert "Traceback" not in log
    with pytest.raises(urllib.error.URLError):  # no longer listening
        http_get(process.url + "/healthz", timeout=2)


# SIGTERM coming while run is still starting, made certain: the import of ``module`` sends it
# to the process, whose handler then runs within that import.
TERMINATED_IMPORT: Final = """
import os, signal, sys

class Stop:
    def find_spec(self, name, path=None, target=None):
        if name == sys.argv[1]:
            os.kill(os.getpid(), signal.SIGTERM)
        return None

sys.meta_path.insert(0, Stop())
from bridge.__main__ import main

sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize(
    ("module", "last_line"),
    [
        # Importing the command, before any logging: a plain line.
        ("bridge.cli.service", "exesdb-bridge: stopped while starting"),
        # Importing the app, the log set up: a line of the log.
        ("bridge.app", " INFO bridge: stopped while starting"),
    ],
)
def test_run_stopped_while_starting_exits_0_saying_so(
    tmp_path: Path, module: str, last_line: str
) -> None:
    """A SIGTERM while run still imports its modules (a stop or a rollout just after a start)
    ends it at once with exit 0 and a last line saying so, no traceback; Python's default
    ended it silently, killed by the signal."""
    completed = subprocess.run(
        [sys.executable, "-c", TERMINATED_IMPORT, module, "run"],
        env=bridge_env(
            EXESDB_HTTP_ADDR=f"127.0.0.1:{free_port()}", EXESDB_STATE_DIR=str(tmp_path / "state")
        ),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert (
        completed.stderr.rstrip()
        .splitlines()[-1]
        .endswith(f"{last_line} (SIGTERM): nothing was running yet")
    ), completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "state").exists()  # nothing started


def test_run_keeps_running_on_sighup_and_reads_the_web_config_again(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """SIGHUP (systemctl reload) does not stop exesdb-bridge run: it reads the web config again
    at once, says that other settings are read at start, and a SIGTERM still exits 0."""
    web_config = tmp_path / "web.yml"
    web_config.write_text("http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    process = start_bridge_process(
        bridge_processes, tmp_path, EXESDB_WEB_CONFIG_FILE=str(web_config)
    )
    assert process.process is not None
    web_config.write_text("http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n")
    process.process.send_signal(signal.SIGHUP)
    # No request in between: only the signal can have read the file.
    wait_until(lambda: "SIGHUP: web config read again" in process.log(), 10, "the reload")
    assert "restart to change them" in process.log()
    assert process.process.poll() is None
    with urllib.request.urlopen(process.url + "/healthz", timeout=5) as response:
        assert response.headers["X-Frame-Options"] == "sameorigin"
    process.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "SIGHUP: web config: nothing new taken" in process.log(), 10, "2nd")
    assert "nothing new taken (unchanged)" in process.log()
    web_config.write_text("http_server_config:\n  headers:\n    X-Frame-Options: 5\n")
    process.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "nothing new taken (the file is refused" in process.log(), 10, "refused")
    process.process.send_signal(signal.SIGTERM)
    assert process.process.wait(30) == 0


def test_run_warns_at_start_of_a_receiver_file_it_cannot_read_and_runs(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """A receivers-file receiver whose credentials_file cannot be read yet is named in the
    start-up log with the key and file (never a content); the bridge runs anyway, since the
    file is read at each attempt and may appear later."""
    config = tmp_path / "receivers.yml"
    config.write_text(
        "webhook_configs:\n"
        f"  - url: http://127.0.0.1:{free_port()}/hooks/path-tok3n\n"
        "    http_config:\n"
        "      authorization:\n"
        "        credentials_file: not-yet-there\n"
    )
    process = start_bridge_process(
        bridge_processes, tmp_path, EXESDB_WEBHOOK_CONFIG_FILE=str(config)
    )
    log = process.log()
    [line] = [line for line in log.splitlines() if "cannot be read now" in line]
    assert " WARNING " in line
    assert f"authorization.credentials_file {tmp_path / 'not-yet-there'} cannot be read" in line
    assert "http://127.0.0.1:" in line
    assert "tok3n" not in log


def test_run_exits_1_when_the_address_is_taken(bridges: Bridges, tmp_path: Path) -> None:
    """A second bridge on a port already in use says so, naming EXESDB_HTTP_ADDR and what to
    do, and exits 1."""
    first = bridges(tmp_path)  # in this process: it only holds the port
    completed = cli(
        "run",
        EXESDB_HTTP_ADDR=f"127.0.0.1:{first.port}",
        EXESDB_STATE_DIR=str(tmp_path / "second"),  # not the working directory
    )
    assert completed.returncode == 1
    assert f"cannot listen on 127.0.0.1:{first.port} (EXESDB_HTTP_ADDR)" in completed.stderr
    assert completed.stderr.rstrip().endswith(
        "address already in use; another process listens there: stop it, or set "
        "EXESDB_HTTP_ADDR to a free port"
    ), completed.stderr


def test_run_says_what_to_do_where_the_system_gives_only_an_errno(tmp_path: Path) -> None:
    """A host name that does not resolve stops start-up with the system's words and what to
    give instead, on one line."""
    env = {"EXESDB_HTTP_ADDR": "nosuchhost.invalid:9570", "EXESDB_STATE_DIR": str(tmp_path)}
    completed = run_bridge("run", env=env, cwd=tmp_path)
    assert completed.returncode == 1
    [line] = [line for line in completed.stderr.splitlines() if " ERROR " in line]
    assert "cannot listen on nosuchhost.invalid:9570 (EXESDB_HTTP_ADDR): [Errno -" in line
    assert line.endswith(
        "; the host name does not resolve: give an IP address (0.0.0.0 for every one) or a name"
        " this host resolves"
    ), line


def test_run_names_the_state_directory_it_may_not_write_not_a_file_tried_in_it(
    tmp_path: Path,
) -> None:
    """A state directory the bridge's user may not write stops start-up (exit 2) naming that
    directory, not the temporary file the write was tried with, and what to do."""
    state = tmp_path / "state"
    state.mkdir()
    prefix = withhold(state)
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(state)}
    completed = run_command([*prefix, sys.executable, "-m", "bridge", "run"], env)
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.endswith(
        f"ERROR bridge: EXESDB_STATE_DIR: cannot open the alert outbox in '{state}': [Errno 13]"
        f" Permission denied: '{state}'; the bridge's user (uid {os.geteuid()}) may not write"
        " there: give a directory it may write, or make this one writable by it (chown, chmod"
        " u+w)\n"
    )


def test_run_says_to_give_the_outbox_file_it_may_not_write_to_its_user(tmp_path: Path) -> None:
    """An outbox file the bridge's user may not read and write, in a directory it may, stops
    start-up (exit 2) naming the file and to make it that user's (another user's file: chown;
    its own: chmod), not to make the directory writable."""
    state = tmp_path / "state"
    Outbox.in_dir(state).close()
    outbox = state / FILE_NAME
    prefix = withhold(outbox)  # as root, nobody's; else this user's own, mode 0
    uid = os.geteuid()
    hint = (
        f"may not read and write it, uid 65534's: make it that user's (chown {uid} {outbox}), or"
        " run the bridge as its owner"
        if uid == 0
        else f"owns it but may not read and write it: chmod u+rw {outbox}"
    )
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(state)}
    completed = run_command([*prefix, sys.executable, "-m", "bridge", "run"], env)
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.endswith(
        f"ERROR bridge: EXESDB_STATE_DIR: cannot open the alert outbox in '{state}': [Errno 13]"
        f" Permission denied: '{outbox}'; the bridge's user (uid {uid}) {hint}\n"
    )


def _failed_start(tmp_path: Path, failure: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run a bridge whose start-up fails as ``failure`` says; its status, log and reason."""
    if failure == "address taken":
        taken = socket.create_server(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with taken:
            completed = cli("run", **{**env, "EXESDB_HTTP_ADDR": f"127.0.0.1:{port}"})  # type: ignore[arg-type]
        return completed.returncode, completed.stderr, f"cannot listen on 127.0.0.1:{port}"
    # A directory where the outbox's file goes: EXESDB_STATE_DIR is one, the outbox fails.
    (tmp_path / "state" / FILE_NAME).mkdir(parents=True)
    completed = cli("run", **{**env, "EXESDB_STATE_DIR": str(tmp_path / "state")})  # type: ignore[arg-type]
    return completed.returncode, completed.stderr, "cannot open the alert outbox"


@pytest.mark.integration
@pytest.mark.parametrize("bus", ["memory", "redis"])
@pytest.mark.parametrize(("failure", "status"), [("address taken", 1), ("outbox unopenable", 2)])
def test_a_failed_start_logs_its_one_reason_and_runs_nothing(
    tmp_path: Path,
    redis_server: Callable[[], RedisServer],
    bus: str,
    failure: str,
    status: int,
) -> None:
    """A start-up that fails (address taken, outbox unopenable) logs its reason as the one
    warning or error, and nothing after it (no node leaving, no message left unhandled): it
    failed before the bus started, so on Redis it wrote nothing there."""
    redis = redis_server() if bus == "redis" else None
    env = {
        "SECRET_KEY_BASE": TEST_SECRET,
        "EXESDB_BUS": redis.url if redis else "memory",
        "EXESDB_STATE_DIR": str(tmp_path / "state"),
        "EXESDB_HTTP_ADDR": "127.0.0.1:0",
    }
    code, log, reason = _failed_start(tmp_path, failure, env)
    assert code == status
    lines = log.splitlines()
    [error] = [n for n, line in enumerate(lines) if " ERROR " in line or " WARNING " in line]
    assert reason in lines[error]
    assert lines[error + 1 :] == []
    if redis is not None:
        with redis.client() as client:
            assert client.keys("*") == []


def test_run_exits_2_when_another_bridge_holds_the_state_directory(
    bridges: Bridges, tmp_path: Path
) -> None:
    """A second bridge on another port but the same EXESDB_STATE_DIR (two shells in one folder)
    stops at start naming EXESDB_STATE_DIR and the first one's process id, instead of sending
    the first one's alerts too."""
    bridges(tmp_path)  # in this process, which holds the folder as a bridge process does
    completed = cli(
        "run", EXESDB_HTTP_ADDR=f"127.0.0.1:{free_port()}", EXESDB_STATE_DIR=str(tmp_path / "state")
    )
    assert completed.returncode == 2
    assert "EXESDB_STATE_DIR: cannot open the alert outbox in " in completed.stderr
    assert "another bridge process has it open" in completed.stderr
    assert f"(the process holding it: pid {os.getpid()})" in completed.stderr
    assert "Traceback" not in completed.stderr


def _program(program: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``program``, Python that runs the bridge as a library, run to its end: the bridge on a
    free port, its state in ``tmp_path``, ``env`` added."""
    settings = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(tmp_path / "state")}
    return run_command([sys.executable, "-c", program], {**settings, **env})


# A fault no handler foresaw, raised where start-up runs, its text holding a password.
_BROKEN_START: Final = """
import sys
from bridge.app import Bridge
async def broken(self):
    raise RuntimeError("lost redis://default:hunter2@cache:6379/0 mid-start")
Bridge.start = broken
from bridge.cli.parser import main
sys.exit(main(["run"]))
"""


def test_an_unexpected_error_at_start_is_logged_redacted_and_exits_1(tmp_path: Path) -> None:
    """An error of no kind start-up expects is logged with its traceback through the bridge's
    own (redacting) log and the run exits 1: no password of its text reaches the terminal, as it
    would from Python's own traceback printer."""
    done = _program(_BROKEN_START, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "exesdb-bridge stopped on an unexpected error" in output
    assert "RuntimeError: lost redis://default:<redacted>@cache:6379/… mid-start" in output
    assert "hunter2" not in output


# A start that fails in a program with an exit hook of its own, registered before the run.
_FAILED_START_IN_A_PROGRAM: Final = """
import atexit, sys
from bridge.app import Bridge
async def broken(self):
    raise RuntimeError("no start")
Bridge.start = broken
atexit.register(lambda: print("the program's own exit hook ran", flush=True))
from bridge.cli.parser import main
sys.exit(main(["run"]))
"""


def test_a_run_that_never_served_leaves_the_exit_to_python(tmp_path: Path) -> None:
    """The exit without the interpreter's teardown is only for a bridge that served and
    stopped: a run whose start failed leaves Python to exit as usual, running every exit hook
    of the program (one registered before the bridge's would be skipped by it)."""
    done = _program(_FAILED_START_IN_A_PROGRAM, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the program's own exit hook ran" in done.stdout


# A program that runs the bridge as a library does, with a component of its own that stops it
# by a SIGTERM to itself once running: ``before`` and ``after`` are what the program does before
# the run and after it, ``on_close`` what the component does as it is closed (first).
_RUN_STOPPED_AT_ONCE: Final = """
import asyncio, atexit, os, signal, sys, threading, time
import bridge.app, bridge.bus, bridge.stop_watch

{before}

class StopsAtOnce:
    name = "stops-at-once"
    required = False

    async def start(self):
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)

    def readiness(self):
        return None

    async def aclose(self):
        {on_close}

components = bridge.app.default_components
bridge.app.default_components = lambda: [*components(), lambda context: StopsAtOnce()]
from bridge.cli import main
status = main(["run"])
{after}
"""

# A write to a disk that hangs, long past the exit's time limit, on a thread of its own (not a
# daemon), as the alert outbox's can: started by ``on_close`` below.
_HUNG_DISK_WRITE: Final = """
def hung_disk_write():
    threading.Event().wait(10)  # a write to a disk that hangs, long past the exit's time limit
    print("the hung write ended", flush=True)
"""
_LEAVES_A_THREAD: Final = (
    """threading.Thread(target=hung_disk_write, name="hung-disk-writer").start()"""
)


# A program with an exit hook of its own, registered before the run, that runs the bridge
# (stopped at once), then exits with a status of its own.
_EXITS_ITS_OWN_WAY_AFTER_RUN: Final = _RUN_STOPPED_AT_ONCE.format(
    on_close="pass",
    before="""atexit.register(lambda: print("the program's own exit hook ran", flush=True))""",
    after="""print(f"run returned {status}", flush=True)
sys.exit(3)""",
)


def test_a_program_that_ran_the_bridge_exits_with_its_own_status_and_exit_hooks(
    tmp_path: Path,
) -> None:
    """A program that ran the bridge (served, then stopped) and exits with a status of its own:
    the process exits with that status, every exit hook of the program run; the exit without
    the interpreter's teardown, which ends the process with run's status, is the command's."""
    done = _program(_EXITS_ITS_OWN_WAY_AFTER_RUN, tmp_path)
    assert done.returncode == 3, done.stderr
    assert done.stdout == "run returned 0\nthe program's own exit hook ran\n", done.stderr
    assert re.search(r" INFO bridge: stopped in \d+\.\ds ", done.stderr), done.stderr


def test_run_logs_ts_with_milliseconds_and_z_and_ends_start_up_with_the_urls(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """JSON log lines carry ts like 2030-01-01T00:00:00.123Z; the start-up ends with one line
    naming / and /metrics on the bound address."""
    process = start_bridge_process(bridge_processes, tmp_path, EXESDB_LOG_FORMAT="json")
    wait_until(lambda: "/metrics" in process.log(), 10, "the start-up line with the URLs")
    entries = [json.loads(line) for line in process.log().splitlines()]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["ts"]) for e in entries)
    messages = [entry["message"] for entry in entries]
    opened = messages.index(f"open {process.url} (the status page; /metrics for Prometheus)")
    assert " running as node " in messages[opened - 1]  # the start-up's last two lines
    assert any(message.startswith("listening on") for message in messages[:opened])


# A bridge whose last component (closed first) holds its stop past EXESDB_SHUTDOWN_TIMEOUT_MS:
# its close awaits a write to a disk that hangs (a thread of its own, not a daemon) and goes on
# awaiting it when cancelled. Stopped by a SIGTERM to itself once running.
_SLOW_TO_STOP: Final = """
import asyncio, os, signal, sys, threading
import bridge.app

def hung_disk_write(finished, loop):
    threading.Event().wait(2.5)  # a write to a disk that hangs this long, past the report
    loop.call_soon_threadsafe(finished.set_result, None)

async def wait_for_the_disk(finished):
    while not finished.done():
        try:
            await asyncio.shield(finished)
        except asyncio.CancelledError:
            pass  # what it holds is closed whatever the deadline

class SlowToStop:
    name = "slow-disk"
    required = False

    async def start(self):
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)

    def readiness(self):
        return None

    async def aclose(self):
        loop = asyncio.get_running_loop()
        finished = loop.create_future()
        writer = threading.Thread(
            target=hung_disk_write, args=(finished, loop), name="hung-disk-writer"
        )
        writer.start()
        await wait_for_the_disk(finished)

components = bridge.app.default_components
bridge.app.default_components = lambda: [*components(), lambda context: SlowToStop()]
from bridge.cli.parser import main
sys.exit(main(["run"]))
"""


def test_a_stop_running_long_says_once_which_step_task_and_thread_it_waits_on(
    tmp_path: Path,
) -> None:
    """A stop still running at one and a half times EXESDB_SHUTDOWN_TIMEOUT_MS logs one warning
    naming the step under way (the component closing), each asyncio task pending with where it
    awaits (the component's close awaiting the disk), and the threads the exit waits for (the
    disk's writer); the bridge then stops as usual, exit 0."""
    done = _program(_SLOW_TO_STOP, tmp_path, EXESDB_SHUTDOWN_TIMEOUT_MS="400")
    assert done.returncode == 0, done.stderr
    [report] = re.findall(
        r" WARNING bridge\.stop_watch: (the stop is still running.*?)\n(?=\S+ [A-Z]+ )",
        done.stderr,
        re.S,
    )
    assert re.match(
        r"the stop is still running \d+\.\ds after it began"
        r" \(EXESDB_SHUTDOWN_TIMEOUT_MS allows 0\.4s\), at: the close of component slow-disk\n",
        report,
    ), report
    [close] = [line for line in report.splitlines() if "SlowToStop.aclose:" in line]
    assert close.endswith(" in aclose > <string>:12 in wait_for_the_disk"), report
    [writer] = [line for line in report.splitlines() if "hung-disk-writer:" in line]
    assert re.search(r" in hung_disk_write > \S*threading\.py:\d+ in wait", writer), report
    # The stop waited out the hung write (2.5 s), not cut at the timeout; how much longer it
    # took is the host's load.
    stopped = re.search(r"stopped in (\d+\.\d)s", done.stderr.rstrip().splitlines()[-1])
    assert stopped is not None, done.stderr
    assert float(stopped.group(1)) >= 2.4, done.stderr


# A program that runs the bridge (stopped at once), then goes on.
_GOES_ON_AFTER_RUN: Final = _RUN_STOPPED_AT_ONCE.format(
    on_close="pass",
    before="",
    after="""time.sleep(1.5)  # the program's own work after the run, past the exit's half second
print(f"went on after the run ({status})", flush=True)""",
)


def test_a_program_going_on_after_run_is_not_cut_short_by_the_exits_time_limit(
    tmp_path: Path,
) -> None:
    """The exit's time limit after the stop cuts short Python's joins of the threads left, not
    a program that goes on after ``run`` returned: it runs to its end, exit 0."""
    done = _program(_GOES_ON_AFTER_RUN, tmp_path, EXESDB_SHUTDOWN_TIMEOUT_MS="400")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "went on after the run (0)\n", done.stderr
    assert " WARNING " not in done.stderr, done.stderr
    assert " ERROR " not in done.stderr, done.stderr


# A component closed at once, that leaves a thread of its own running (a write to a disk that
# hangs, as the alert outbox's can be), in a program that goes on after run() for a while.
_LEAVES_A_THREAD_AND_GOES_ON: Final = _RUN_STOPPED_AT_ONCE.format(
    before=_HUNG_DISK_WRITE,
    on_close=_LEAVES_A_THREAD,
    after="time.sleep(1.2)  # the program's own work after the run, past the exit's half second",
)


def test_the_exits_error_says_how_long_after_the_last_line_it_ended(tmp_path: Path) -> None:
    """A program that goes on after ``run`` for 1.2 s, a thread the bridge left still running
    at its exit: the process ends without that thread, and the error says it ended 1.2 s or more
    after the stop's last line (not the half second the exit's time limit allowed)."""
    done = _program(_LEAVES_A_THREAD_AND_GOES_ON, tmp_path, EXESDB_SHUTDOWN_TIMEOUT_MS="400")
    assert done.returncode == 0, done.stderr
    assert "the hung write ended" not in done.stdout, done.stderr
    [after] = re.findall(
        r" ERROR bridge: exit: threads still running (\d+\.\d)s after", done.stderr
    )
    assert float(after) >= 1.2, done.stderr
    assert "\n  hung-disk-writer: " in done.stderr, done.stderr


# A program that runs the bridge (stopped at once), then starts a thread of its own, not a
# daemon, which Python joins as the program exits.
_OWN_THREAD_AFTER_RUN: Final = _RUN_STOPPED_AT_ONCE.format(
    on_close="pass",
    before="""def own_work():
    threading.Event().wait(1.5)  # the program's own work, past the exit's half second
    print("the program's own thread finished", flush=True)""",
    after="""threading.Thread(target=own_work, name="own-work").start()""",
)


def test_a_thread_the_program_starts_after_run_is_joined_at_its_exit(tmp_path: Path) -> None:
    """The exit's time limit cuts short the threads the bridge left alone: a thread the program
    starts after ``run`` returned is joined as Python joins it, however long past the limit,
    and no error blames a disk."""
    done = _program(_OWN_THREAD_AFTER_RUN, tmp_path, EXESDB_SHUTDOWN_TIMEOUT_MS="400")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "the program's own thread finished\n", done.stderr
    assert " ERROR " not in done.stderr, done.stderr


# A bridge whose last component (closed first) leaves a thread of its own running (a write to a
# disk that hangs, as the alert outbox's can), and whose bus's close then fails. Stopped by a
# SIGTERM to itself once running.
_FAILED_STOP_LEAVING_A_THREAD: Final = _RUN_STOPPED_AT_ONCE.format(
    before=_HUNG_DISK_WRITE
    + """
close = bridge.bus.Bus.aclose
async def failing_close(self, *args):
    await close(self, *args)
    raise ConnectionResetError("the bus's transport lost its connection as it closed")
bridge.bus.Bus.aclose = failing_close
""",
    on_close=_LEAVES_A_THREAD,
    after="sys.exit(status)",
)


def test_a_failed_stop_is_logged_and_still_ends_the_process_within_its_bound(
    tmp_path: Path,
) -> None:
    """A stop that raises (the bus's close failing) with a thread the bridge left hanging: the
    failure is logged with its error and the step it failed at, the last line says the stop
    failed, no report says the stop is still running, and the process ends exit 1 without
    waiting for that thread, as after a stop that succeeded."""
    done = _program(_FAILED_STOP_LEAVING_A_THREAD, tmp_path, EXESDB_SHUTDOWN_TIMEOUT_MS="400")
    assert done.returncode == 1, done.stderr
    assert "the hung write ended" not in done.stdout, done.stderr
    assert re.search(
        r" ERROR bridge: the stop failed at the bus's close \(.*\)\nTraceback .*\n"
        r"ConnectionResetError: the bus's transport lost its connection as it closed\n",
        done.stderr,
        re.S,
    ), done.stderr
    assert re.search(
        r" INFO bridge: stopped in \d+\.\ds \(EXESDB_SHUTDOWN_TIMEOUT_MS allows 0\.4s\), exit 1:"
        r" the stop failed, as logged above\n",
        done.stderr,
    ), done.stderr
    assert " ERROR bridge: exit: threads still running " in done.stderr, done.stderr
    assert "the stop is still running" not in done.stderr, done.stderr


# A component closed at once that leaves a thread of its own running (a write to a disk that
# hangs), and the report of what the exit waits on failing once the stop is over.
_EXIT_REPORT_FAILS: Final = _RUN_STOPPED_AT_ONCE.format(
    before=_HUNG_DISK_WRITE
    + """
def failing_report(self):
    raise RuntimeError("Set changed size during iteration")
""",
    on_close=_LEAVES_A_THREAD + "\n        bridge.stop_watch.StopWatch.report = failing_report",
    after="sys.exit(status)",
)


def test_the_exit_ends_the_process_when_its_report_fails(tmp_path: Path) -> None:
    """A thread the bridge left hanging and the report of what the exit waits on raising: the
    exit's error says the report could not be made, and the process still ends at the exit's
    time limit, with the stop's status."""
    done = _program(_EXIT_REPORT_FAILS, tmp_path, EXESDB_SHUTDOWN_TIMEOUT_MS="400")
    assert done.returncode == 0, done.stderr
    assert "the hung write ended" not in done.stdout, done.stderr
    assert " (a disk that hangs?): the process ends without them. " in done.stderr, done.stderr
    assert (
        "\nwhat it waits on could not be told (RuntimeError: Set changed size during iteration)"
        in done.stderr
    ), done.stderr
