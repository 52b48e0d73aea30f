"""The exesdb-bridge command (docs/cli.md): ``run`` as a real process (its usage errors, refused
before it starts, aside); the client commands in the test's own process (``run_in_process``),
with a real process for each where the process is the point (the console script, Ctrl-C, a pipe,
stdin), and an in-process bridge to talk to where the bridge is not what a test is about."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import pytest

from bridge import __version__
from bridge.cli import client
from bridge.cli.shared import refused_choice
from bridge.sinks.alerts import AlertRecord, DeliveryState, Outbox, build_payloads
from bridge.sinks.alerts.outbox import FILE_NAME
from tests.client_servers import (
    aiohttp_answering,
    answering,
    answering_with,
    endless_event,
    endless_page,
    events,
    flood,
)
from tests.integration.servers.redis import RedisServer, redis_server
from tests.integration.test_alert_crash import ingest_alerts, listed_alerts
from tests.pages.helpers import page_bridge, sink_of
from tests.pages.test_lease import CLAIM_IDLE_MS, alert_card
from tests.sinks.alerts.helpers import T0, event, observe, one_each
from tests.support import (
    ADMIN_TOKEN,
    DAMAGED_CA_NAMES,
    PLAIN_RUNS,
    ROOT,
    TEST_SECRET,
    BridgeProcess,
    FifoReleaser,
    ThreadedBridge,
    bridge_env,
    damaged_ca_files,
    free_port,
    http_get,
    run_bridge,
    run_command,
    run_in_process,
    unavailable,
    wait_until,
    withhold,
)

__all__ = ["redis_server"]

Completed = subprocess.CompletedProcess[str]

ALERT_FIELDS = [
    "-f", "severity=critical",
    "-f", "category=system",
    "-f", "title=Node down",
    "-f", "description=node3 stopped answering",
    "-f", "source=cli-test",
]  # fmt: skip


def cli(*args: str, stdin: str | None = None, cwd: Path = ROOT, **env: str) -> Completed:
    """Run ``exesdb-bridge`` with the given arguments and environment in this process (a plain
    ``run`` or ``run --demo`` in a process of its own, since it serves; ``run``'s usage errors
    here, refused before anything starts); capture its output."""
    if list(args) in PLAIN_RUNS:
        return run_bridge(*args, env=env, stdin=stdin, cwd=cwd)
    return run_in_process(*args, env=env, stdin=stdin, cwd=cwd)


def cli_process(*args: str, stdin: str | None = None, cwd: Path = ROOT, **env: str) -> Completed:
    """``cli`` in a real ``python -m bridge`` process, where the process is what is tested."""
    return run_bridge(*args, env=env, stdin=stdin, cwd=cwd)


# Starts an in-process bridge to talk to: ``bridges(folder, **settings)``.
Bridges = Callable[..., ThreadedBridge]


@pytest.fixture
def bridges() -> Iterator[Bridges]:
    """Starts a bridge in this process (``page_bridge``: the Prometheus and alert sinks, admin
    token ``ADMIN_TOKEN``, its state in the folder given's ``state``) with the settings given;
    every one is closed after the test. For a test of a client command that needs a bridge to
    talk to, not one about ``run``: it costs no process start."""

    def start(tmp_path: Path, **env: str) -> ThreadedBridge:
        return started.enter_context(page_bridge(tmp_path / "state", **env))

    with contextlib.ExitStack() as started:
        yield start


def _start(processes: list[BridgeProcess], tmp_path: Path, **env: str) -> BridgeProcess:
    process = BridgeProcess(state_dir=tmp_path / "state")
    process.env.update(env)
    processes.append(process)
    return process.start(tmp_path)


def test_version_prints_the_version() -> None:
    """python -m bridge --version prints the version and exits 0."""
    completed = cli_process("--version")
    assert completed.returncode == 0
    assert completed.stdout.strip() == f"exesdb-bridge {__version__}"


def test_the_console_script_is_installed() -> None:
    """The exesdb-bridge console script runs the same command."""
    script = Path(sys.executable).parent / "exesdb-bridge"
    completed = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0
    assert __version__ in completed.stdout


@pytest.mark.parametrize("args", [[], ["no-such-command"], ["tail", "--count", "many"]])
def test_bad_usage_exits_2(args: list[str]) -> None:
    """A missing or unknown subcommand, or a bad option, exits 2."""
    assert cli_process(*args).returncode == 2


def test_no_command_at_all_shows_every_command_and_exits_2() -> None:
    """`exesdb-bridge` alone prints the help listing the commands (on stderr, exit 2), not just
    that a command is required."""
    completed = cli()
    assert completed.returncode == 2
    assert completed.stdout == ""
    for command in ("run", "check-config", "publish", "tail", "alerts", "outbox", "schema"):
        assert re.search(rf"^    {command}\b", completed.stderr, re.M), command


@pytest.mark.parametrize(
    ("command", "needs"),
    [
        (["run"], ["environment variable", "EXESDB_HTTP_ADDR", "docs/configuration.md"]),
        (["check-config"], ["environment variable", "docs/configuration.md"]),
        (["publish"], ["SECRET_KEY_BASE", "EXESDB_INGEST=true"]),
        (["tail"], ["EXESDB_ADMIN_TOKEN"]),
        (["alerts", "list"], ["EXESDB_ADMIN_TOKEN"]),
        (["alerts", "ack"], ["EXESDB_ADMIN_TOKEN"]),
    ],
    ids=" ".join,
)
def test_help_says_what_a_command_needs_from_the_environment(
    command: list[str], needs: list[str]
) -> None:
    """`--help` says where a command's settings come from: run and check-config that each is an
    environment variable, publish the key it signs with, tail and alerts the admin token; and
    breaks its lines at spaces only, never inside a name such as ./.exesdb-bridge."""
    completed = cli(*command, "--help", COLUMNS="55")
    assert completed.returncode == 0
    text = " ".join(completed.stdout.split())
    assert [need for need in needs if need not in text] == []
    assert not re.search(r"[a-z]-$", completed.stdout.split("options:")[0], re.M)


@pytest.mark.parametrize(
    ("group", "choices"), [("alerts", "{list,ack}"), ("outbox", "{list,retry}")]
)
def test_a_command_group_without_its_subcommand_names_the_choices(group: str, choices: str) -> None:
    """`exesdb-bridge alerts` alone exits 2 saying which subcommands it needs, not the name of
    the parser's internal destination (`alerts_command`)."""
    completed = cli(group)
    assert completed.returncode == 2
    assert completed.stderr.endswith(f"error: the following arguments are required: {choices}\n")


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["alerts", "list", "--bogus"], "alerts list"),
        (["publish", "system_alert", "--bogus"], "publish"),
        (["outbox", "retry", "--bogus"], "outbox retry"),
    ],
)
def test_an_unknown_argument_shows_the_usage_of_the_command_it_was_given_to(
    args: list[str], command: str
) -> None:
    """An argument a subcommand does not take exits 2 with that subcommand's usage (not the
    top-level one) and names the argument."""
    completed = cli(*args)
    assert completed.returncode == 2
    assert completed.stderr.startswith(f"usage: exesdb-bridge {command} [-h]")
    assert completed.stderr.endswith(
        f"exesdb-bridge {command}: error: unrecognized arguments: --bogus\n"
    )


@pytest.mark.parametrize(
    ("args", "command", "named"),
    [
        (["tail", "EXESDB_ADMIN_TOKEN=hunter2"], "tail", "EXESDB_ADMIN_TOKEN=…"),
        (
            ["alerts", "list", "--token=hunter2"],
            "alerts list",
            "--token=… (--token: did you mean EXESDB_ADMIN_TOKEN=… exesdb-bridge alerts list?)",
        ),
        (
            ["alerts", "list", "--usr", "ops:hunter2"],
            "alerts list",
            "--usr … (--usr: did you mean --user?)",
        ),
        (["alerts", "list", "--tokn", "aHVudGVyMg=="], "alerts list", "--tokn …"),
        (
            ["alerts", "list", "--usr", "ops:hunter2=x"],
            "alerts list",
            "--usr … (--usr: did you mean --user?)",
        ),
        (
            ["alerts", "list", "--usr", "--tokn=hunter2"],
            "alerts list",
            "--usr --tokn=… (--usr: did you mean --user?)",
        ),
        (
            ["healthcheck", "EXESDB_HEALTHCHECK_PASSWORD=hunter2"],
            "healthcheck",
            "EXESDB_HEALTHCHECK_PASSWORD=…",
        ),
    ],
    ids=[
        "tail",
        "alerts-list",
        "alerts-list-spaced",
        "alerts-list-base64",
        "alerts-list-spaced-with-equals",
        "alerts-list-two-options",
        "healthcheck",
    ],
)
def test_an_unknown_argument_with_a_value_is_named_without_the_value(
    args: list[str], command: str, named: str
) -> None:
    """An argument a command does not take that holds a value (``NAME=VALUE``, as the shell sets
    a variable, ``--option=VALUE`` or ``--option VALUE``) is named with the value shown as
    ``…``: it may be a key."""
    completed = cli(*args)
    assert (completed.returncode, completed.stdout) == (2, "")
    assert "hunter2" not in completed.stderr
    assert completed.stderr.endswith(
        f"exesdb-bridge {command}: error: unrecognized arguments: {named}\n"
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (
            ["run", "--port", "9571"],
            "--port … (every setting is an environment variable, not an"
            " option; --port: did you mean EXESDB_HTTP_ADDR? exesdb-bridge",
        ),
        (
            ["run", "--web.listen-address=:9571"],
            "--web.listen-address=… (every setting is an"
            " environment variable, not an option; --web.listen-address: did you mean"
            " EXESDB_HTTP_ADDR? exesdb-bridge",
        ),
        (
            ["check-config", "--secret-key-base", "hunter2", "--ingest"],
            "--secret-key-base …"
            " --ingest (every setting is an environment variable, not an option; --secret-key-base:"
            " did you mean SECRET_KEY_BASE? --ingest: did you mean EXESDB_INGEST? exesdb-bridge",
        ),
        (
            ["run", "--bogus"],
            "--bogus (every setting is an environment variable, not an option; exesdb-bridge",
        ),
        (
            ["run", "demo"],
            "demo (every setting is an environment variable, not an option; demo: did you mean"
            " --demo? exesdb-bridge",
        ),
        (
            ["run", "SECRET_KEY_BASE=hunter2", "EXESDB_PORT=9571", "X=hunter2"],
            "SECRET_KEY_BASE=… EXESDB_PORT=… X=… (every setting is an environment variable, not"
            " an option; SECRET_KEY_BASE=…: did you mean SECRET_KEY_BASE=… exesdb-bridge run?"
            " EXESDB_PORT=…: did you mean EXESDB_HTTP_ADDR=… exesdb-bridge run? exesdb-bridge",
        ),
    ],
    ids=[
        "port",
        "node-exporter-flag",
        "check-config-key",
        "like-none",
        "demo-undashed",
        "assignment",
    ],
)
def test_an_option_guessed_for_a_setting_names_the_environment_variable(
    args: list[str], named: str
) -> None:
    """An option ``run`` or ``check-config`` does not take exits 2 with that command's usage,
    saying that every setting is an environment variable and naming the one the option most
    likely means (none for an option like none); an option's value is shown as ``…``, since
    it may be a key."""
    completed = cli(*args)
    assert (completed.returncode, completed.stdout) == (2, "")
    assert "hunter2" not in completed.stderr
    assert completed.stderr.startswith(f"usage: exesdb-bridge {args[0]} [-h]")
    assert completed.stderr.endswith(
        f"exesdb-bridge {args[0]}: error: unrecognized arguments: {named} check-config lists"
        " them, docs/configuration.md describes each)\n"
    )


def test_a_variable_set_before_the_command_as_an_argument_is_named_not_its_value() -> None:
    """``exesdb-bridge SECRET_KEY_BASE=… run``, a variable set as the shell sets one but after
    the program's name, exits 2 saying where it goes, its value never shown: it may be a key."""
    completed = cli("SECRET_KEY_BASE=hunter2", "run")
    assert (completed.returncode, completed.stdout) == (2, "")
    assert "hunter2" not in completed.stderr
    assert completed.stderr.splitlines()[-1] == (
        "exesdb-bridge: error: argument COMMAND: SECRET_KEY_BASE=… is no command: a setting is an"
        " environment variable, set before the program (SECRET_KEY_BASE=… exesdb-bridge run)"
    )


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("runn", "run"),
        ("check_config", "check-config"),
        ("alert", "alerts"),
        ("publsh", "publish"),
        # Another word for one (start, serve) names it too, but not a word merely like that
        # word: status, 0.73 alike start, is the health check asked for, not run.
        ("start", "run"),
        ("serve", "run"),
        ("status", "healthcheck"),
    ],
)
def test_a_misspelt_command_is_named_with_the_command_meant(given: str, meant: str) -> None:
    """A command that is not one, but is like one or is another word for one, exits 2 naming
    the command meant beside the choices, as ``schema`` names the tag meant; one like none
    lists the choices alone."""
    completed = cli(given)
    assert (completed.returncode, completed.stdout) == (2, "")
    choices = "(choose from 'run', 'check-config', 'publish', 'tail', 'alerts', 'outbox', 'schema',"
    assert completed.stderr.splitlines()[-1].startswith(
        f"exesdb-bridge: error: argument COMMAND: invalid choice: {given!r}; did you mean"
        f" {meant!r}? {choices}"
    )
    unlike = cli("nosuch")
    assert unlike.stderr.splitlines()[-1].startswith(
        f"exesdb-bridge: error: argument COMMAND: invalid choice: 'nosuch' {choices}"
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["outbox", "lst"], "exesdb-bridge outbox: error: argument {list,retry}: invalid choice:"
         " 'lst'; did you mean 'list'? (choose from 'list', 'retry')"),
        (["alerts", "ACK", "a1", "--by", "me"], "exesdb-bridge alerts: error: argument {list,ack}:"
         " invalid choice: 'ACK'; did you mean 'ack'? (choose from 'list', 'ack')"),
        (["alerts", "nosuch"], "exesdb-bridge alerts: error: argument {list,ack}: invalid choice:"
         " 'nosuch' (choose from 'list', 'ack')"),
        # The status page's button says Acknowledge: the word, or nearly it, names ack.
        (["alerts", "acknowledge", "a1", "--by", "me"], "exesdb-bridge alerts: error: argument"
         " {list,ack}: invalid choice: 'acknowledge'; did you mean 'ack'? (choose from 'list',"
         " 'ack')"),
        (["alerts", "Acknowlege", "a1"], "exesdb-bridge alerts: error: argument {list,ack}:"
         " invalid choice: 'Acknowlege'; did you mean 'ack'? (choose from 'list', 'ack')"),
        (["outbox", "ls"], "exesdb-bridge outbox: error: argument {list,retry}: invalid choice:"
         " 'ls'; did you mean 'list'? (choose from 'list', 'retry')"),
        (["outbox", "resend", "d1"], "exesdb-bridge outbox: error: argument {list,retry}: invalid"
         " choice: 'resend'; did you mean 'retry'? (choose from 'list', 'retry')"),
        (["alerts", "help"], "exesdb-bridge alerts: error: argument {list,ack}: invalid choice:"
         " 'help'; did you mean --help? (choose from 'list', 'ack')"),
    ],
)  # fmt: skip
def test_a_misspelt_command_of_alerts_or_outbox_is_named_with_the_one_meant(
    args: list[str], line: str
) -> None:
    """A command of ``alerts`` or ``outbox`` that is not one, but is like one, exits 2 naming
    the one meant beside the choices, as a misspelt top-level command does."""
    completed = cli(*args)
    assert (completed.returncode, completed.stdout) == (2, "")
    assert completed.stderr.startswith(f"usage: exesdb-bridge {args[0]} [-h]")
    assert completed.stderr.splitlines()[-1] == line


@pytest.mark.parametrize(("given", "option"), [("help", "--help"), ("Version", "--version")])
def test_help_or_version_given_as_a_command_names_the_option(given: str, option: str) -> None:
    """``exesdb-bridge help`` (or ``version``), as git and pip take it, exits 2 naming the
    option meant, not the choices alone."""
    completed = cli(given)
    assert (completed.returncode, completed.stdout) == (2, "")
    assert completed.stderr.splitlines()[-1].startswith(
        f"exesdb-bridge: error: argument COMMAND: invalid choice: {given!r}; did you mean"
        f" {option}? (choose from 'run', 'check-config',"
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["tail", "--cout", "3"], "--cout … (--cout: did you mean --count?)"),
        # In any letter case, as a word a setting takes is told (bridge.choices).
        (["tail", "--COUNT", "3"], "--COUNT … (--COUNT: did you mean --count?)"),
        (["outbox", "list", "--limt=3"], "--limt=… (--limt: did you mean --limit?)"),
        # One of a group of options that exclude each other (ID ... | --all) is named too.
        (["outbox", "retry", "--alll"], "--alll (--alll: did you mean --all?)"),
        (["alerts", "ack", "a1", "--by", "me", "--notes", "hi"],
         "--notes … (--notes: did you mean --note?)"),
        (["healthcheck", "--tmeout", "3"], "--tmeout … (--tmeout: did you mean --timeout?)"),
        (["run", "--dmeo"], "--dmeo (--dmeo: did you mean --demo?)"),
        (["run", "--dmeo", "--port", "9571"], "--dmeo --port … (every setting is an environment"
         " variable, not an option; --dmeo: did you mean --demo? --port: did you mean"
         " EXESDB_HTTP_ADDR? exesdb-bridge check-config lists them, docs/configuration.md"
         " describes each)"),
    ],
)  # fmt: skip
def test_a_misspelt_option_is_named_with_the_option_meant(args: list[str], named: str) -> None:
    """An option a command does not take, spelt nearly as one it does, exits 2 naming that
    option (``run --dmeo``: ``--demo``, not a setting), its value still shown as ``…``."""
    completed = cli(*args)
    assert (completed.returncode, completed.stdout) == (2, "")
    command = " ".join(args[:2]) if args[0] in ("outbox", "alerts") else args[0]
    assert completed.stderr.splitlines()[-1] == (
        f"exesdb-bridge {command}: error: unrecognized arguments: {named}"
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["outbox", "list", "--state-dir", "/srv/bridge"],
         "--state-dir … (--state-dir: did you mean EXESDB_STATE_DIR=… exesdb-bridge outbox list?)"),
        (["alerts", "list", "--admin-token=s3cr3t"],
         "--admin-token=… (--admin-token: did you mean EXESDB_ADMIN_TOKEN=… exesdb-bridge alerts"
         " list?)"),
        (["tail", "--token", "s3cr3t"],
         "--token … (--token: did you mean EXESDB_ADMIN_TOKEN=… exesdb-bridge tail?)"),
        (["publish", "performance_metric", "--secret-key-base", "s3cr3t"],
         "--secret-key-base … (--secret-key-base: did you mean SECRET_KEY_BASE=… exesdb-bridge"
         " publish?)"),
        # A variable the command does not read is not offered (tail reads no EXESDB_BUS).
        (["tail", "--bus", "redis://cache"], "--bus …"),
    ],
)  # fmt: skip
def test_an_option_naming_a_variable_the_command_reads_is_named_with_the_line_meant(
    args: list[str], named: str
) -> None:
    """An option a client command does not take that names an environment variable it reads
    (``outbox list --state-dir DIR``) exits 2 with the line meant, the value never shown."""
    completed = cli(*args)
    assert (completed.returncode, completed.stdout) == (2, "")
    command = " ".join(args[:2]) if args[0] in ("outbox", "alerts") else args[0]
    assert completed.stderr.splitlines()[-1] == (
        f"exesdb-bridge {command}: error: unrecognized arguments: {named}"
    )
    assert "s3cr3t" not in completed.stderr


@pytest.mark.parametrize(
    "args",
    [["alerts", "ack", "a1", "--bye", "alice"], ["alerts", "ack", "a1", "--bye=alice"]],
)
def test_a_required_option_misspelt_is_named_with_the_option_meant(args: list[str]) -> None:
    """A required option given misspelt (``alerts ack ID --bye NAME``) is said missing naming
    the one given for it, not only as missing, its value not shown."""
    completed = cli(*args)
    assert (completed.returncode, completed.stdout) == (2, "")
    assert completed.stderr.splitlines()[-1] == (
        "exesdb-bridge alerts ack: error: the following arguments are required: --by"
        " (--bye: did you mean --by?)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--demo", "run"], "--demo: a command's options go after it: exesdb-bridge run --demo"),
        (
            ["--user", "ops:hunter2", "--url=http://127.0.0.1:9571", "alerts", "list"],
            "--user --url: a command's options go after it:"
            " exesdb-bridge alerts list --user … --url=…",
        ),
        (
            ["--url", "http://ops:hunter2@h:1", "alerts", "list", "--user", "ops:hunter2"],
            "--url: a command's options go after it: exesdb-bridge alerts list --user … --url …",
        ),
        (
            ["--demo", "publish", "system_alert", "--field=note=hunter2", "--stdin"],
            "--demo: a command's options go after it:"
            " exesdb-bridge publish system_alert --field=… --stdin --demo",
        ),
        (
            ["--demo"],
            "unrecognized arguments: --demo (a command's options go after it:"
            " exesdb-bridge COMMAND --help lists them)",
        ),
        (
            ["alerts", "--user", "ops:hunter2", "list"],
            "--user: a command's options go after it: exesdb-bridge alerts list --user …",
        ),
        (
            ["outbox", "--state=hunter2", "list", "--limit", "5"],
            "--state: a command's options go after it:"
            " exesdb-bridge outbox list --limit … --state=…",
        ),
        (
            ["alerts", "--url", "http://ops:hunter2@h:1"],
            "unrecognized arguments: --url (a command's options go after it:"
            " exesdb-bridge alerts COMMAND --help lists them)",
        ),
    ],
    ids=[
        "before-run",
        "before-alerts-list",
        "around-alerts-list",
        "around-publish",
        "no-command",
        "between-alerts-and-list",
        "between-outbox-and-list",
        "after-alerts-no-command",
    ],
)
def test_an_option_before_the_command_is_named_with_the_line_meant(
    args: list[str], message: str
) -> None:
    """A command's option given before the command exits 2 naming it and showing where it goes,
    not saying that the command does not take it, that no command was given, or that its value
    is no command; no value of an option, before the command or after it, is shown (it may be a
    password)."""
    completed = cli(*args)
    assert "hunter2" not in completed.stderr
    assert (completed.returncode, completed.stdout) == (2, "")
    assert completed.stderr.startswith("usage: exesdb-bridge [-h] [--version] COMMAND")
    assert completed.stderr.endswith(f"exesdb-bridge: error: {message}\n")


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
    process = _start(bridge_processes, tmp_path)
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
    process = _start(bridge_processes, tmp_path, EXESDB_WEB_CONFIG_FILE=str(web_config))
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
    process = _start(bridge_processes, tmp_path, EXESDB_WEBHOOK_CONFIG_FILE=str(config))
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


@pytest.mark.parametrize(
    ("state_dir", "said"),
    [
        ("a-file", "'a-file' is a file, not a directory; allowed: a directory (made when missing)"),
        (
            "a-file/state",
            "'a-file' in 'a-file/state' is a file, not a directory; allowed: a path of"
            " directories (those missing are made)",
        ),
    ],
    ids=["a file", "a path through a file"],
)
@pytest.mark.parametrize("command", ["run", "check-config"])
def test_a_state_directory_that_is_a_file_is_refused_as_one_before_start(
    tmp_path: Path, command: str, state_dir: str, said: str
) -> None:
    """EXESDB_STATE_DIR naming a file, or a path through one, stops start-up and check-config
    (exit 2) as the other bad values do: the variable, that it is a file, not a directory."""
    (tmp_path / "a-file").write_text("")
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": state_dir}
    completed = cli(command, cwd=tmp_path, **env)
    assert completed.returncode == 2
    assert f"exesdb-bridge: bad configuration:\n  EXESDB_STATE_DIR: {said}\n" in completed.stderr
    assert (tmp_path / "a-file").read_text() == ""


@pytest.mark.parametrize("token", ["t\u00f6ken-" * 3, "\u0442\u043e\u043a\u0435\u043d-" * 3])
@pytest.mark.parametrize("command", ["run", "check-config", "alerts list"])
def test_an_admin_token_past_printable_ascii_is_refused_naming_what_is_allowed(
    tmp_path: Path, command: str, token: str
) -> None:
    """EXESDB_ADMIN_TOKEN holding a character past printable ASCII (Latin-1's, Cyrillic) stops
    start-up, check-config and the alerts commands (exit 2) saying what is allowed, never the
    token: a browser's fetch sends it as Latin-1 bytes or refuses it, and http.client as
    Latin-1, so the status page's Acknowledge and the alerts commands were refused with the
    right token."""
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_ADMIN_TOKEN": token}
    completed = cli(*command.split(), cwd=tmp_path, **env)
    assert completed.returncode == 2, completed.stderr
    assert (
        "exesdb-bridge: bad configuration:\n  EXESDB_ADMIN_TOKEN: holds a character other than"
        " printable ASCII, which browsers and HTTP clients send as other bytes than the bridge"
        " compares (or cannot send), so acknowledging from the status page or the alerts"
        " command would be refused; allowed: printable ASCII, e.g. $(openssl rand -hex 16)\n"
    ) in completed.stderr
    assert token not in completed.stdout + completed.stderr


@pytest.mark.parametrize("command", ["run", "check-config", "outbox list"])
def test_a_state_directory_beginning_with_a_tilde_is_refused_not_made_in_the_working_folder(
    tmp_path: Path, command: str
) -> None:
    """EXESDB_STATE_DIR=~/state, as an env file or a quoted value leaves it, stops start-up,
    check-config and outbox (exit 2) saying only a shell expands ~ and giving the full path,
    rather than making a folder named ~ in the working folder."""
    home = tmp_path / "home"
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": "~/state", "HOME": str(home)}
    completed = cli(*command.split(), cwd=tmp_path, **env)
    assert completed.returncode == 2, completed.stderr
    assert (
        "exesdb-bridge: bad configuration:\n  EXESDB_STATE_DIR: begins with ~, which only a shell"
        " expands (not in quotes, an env file, a systemd unit or a container's environment), so"
        " the bridge would make a folder named '~' in its working directory; allowed: the full"
        f" path, e.g. {home}/state (got '~/state')\n"
    ) in completed.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("command", "status", "said"),
    [
        (
            "check-config",
            2,
            "exesdb-bridge: bad configuration:\n  EXESDB_STATE_DIR: '{state}' cannot be used: File"
            " name too long; allowed: a directory (made when missing)\n",
        ),
        (
            "run",
            2,
            "exesdb-bridge: bad configuration:\n  EXESDB_STATE_DIR: '{state}' cannot be used: File"
            " name too long; allowed: a directory (made when missing)\n",
        ),
        (
            "outbox list",
            1,
            "exesdb-bridge: cannot open the alert outbox at {state}/alerts.sqlite3: [Errno 36] File"
            " name too long: ",
        ),
    ],
)
def test_a_state_directory_named_longer_than_the_system_takes_is_told_not_a_traceback(
    tmp_path: Path, command: str, status: int, said: str
) -> None:
    """EXESDB_STATE_DIR with a name longer than the file system takes stops start-up and
    check-config (exit 2) as other bad values do, and `outbox list` (exit 1), each on a line
    with the system's words, not with a traceback."""
    state = tmp_path / ("s" * 300)
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(state)}
    completed = cli(*command.split(), cwd=tmp_path, **env)
    assert "Traceback" not in completed.stderr, completed.stderr
    assert completed.returncode == status
    assert said.format(state=state) in completed.stderr


@pytest.fixture
def unsearchable(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """A folder the commands a test runs may not search, and the command prefix that runs them
    so: root may search any folder, so as root they run without the capabilities that let it."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    locked.chmod(0)
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            unavailable(
                "setpriv (util-linux) is needed to run a command as root without its overrides"
            )
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    yield locked, prefix
    locked.chmod(0o700)


@pytest.mark.parametrize(
    ("command", "status", "said"),
    [
        ("check-config", 0, ""),
        (
            "run",
            2,
            "ERROR bridge: EXESDB_STATE_DIR: cannot open the alert outbox in '{state}': [Errno 13]"
            " Permission denied: '{state}'; the bridge's user (uid {uid}) may not write there: ",
        ),
        (
            "outbox list",
            1,
            "exesdb-bridge: cannot open the alert outbox at {state}/alerts.sqlite3: [Errno 13]"
            " Permission denied: '{state}/alerts.sqlite3'; this user (uid {uid}) may not read and"
            " write it: run the command as the user the bridge runs as (the file's owner), or as"
            " root\n",
        ),
    ],
)
def test_a_state_directory_in_a_folder_it_may_not_search_is_told_not_a_traceback(
    unsearchable: tuple[Path, list[str]], command: str, status: int, said: str
) -> None:
    """EXESDB_STATE_DIR in a folder the user may not search is left to the outbox, as other
    permissions are (check-config may run as another user than the bridge's): `run` stops
    (exit 2) and `outbox list` fails (exit 1) on one line naming the fault and what to do, not
    with a traceback."""
    locked, prefix = unsearchable
    state = locked / "state"
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(state)}
    completed = run_command([*prefix, sys.executable, "-m", "bridge", *command.split()], env)
    assert "Traceback" not in completed.stderr, completed.stderr
    assert completed.returncode == status
    assert said.format(state=state, uid=os.geteuid()) in completed.stderr


def test_outbox_list_of_an_outbox_it_may_not_read_says_to_run_as_the_bridge_s_user(
    unsearchable: tuple[Path, list[str]],
) -> None:
    """`outbox list` run by another user than the bridge's, who may not read and write its
    outbox file (the bridge makes it its user's alone), says so and to run it as the bridge's
    user or root (exit 1), not SQLite's "unable to open database file" with a doubt about
    EXESDB_STATE_DIR."""
    locked, prefix = unsearchable
    if os.geteuid() != 0:
        unavailable(
            "a file of another user's, as the bridge's outbox is to an operator, needs root"
        )
    locked.chmod(0o755)
    Outbox.in_dir(locked).close()
    outbox = locked / FILE_NAME
    os.chown(outbox, 65534, 65534)  # the bridge's user's (nobody), mode 0600
    listed = run_command(
        [*prefix, sys.executable, "-m", "bridge", "outbox", "list"],
        {"EXESDB_STATE_DIR": str(locked)},
    )
    assert listed.returncode == 1
    assert listed.stderr == (
        f"exesdb-bridge: cannot open the alert outbox at {outbox}: [Errno 13] Permission denied:"
        f" '{outbox}'; this user (uid 0) may not read and write it: run the command as the user"
        " the bridge runs as (the file's owner), or as root\n"
    )


def _not_a_file(outbox: Path, kind: str) -> contextlib.AbstractContextManager[object]:
    """Put ``kind`` (a directory, a FIFO, a socket) where the outbox file ``outbox`` goes; the
    context it lasts (a FIFO's reader waiting for a writer is let go after 3 s: a test that
    one must not wait fails rather than hangs; a socket's listener is closed at its end)."""
    outbox.parent.mkdir(parents=True, exist_ok=True)
    if kind == "FIFO":
        return FifoReleaser(outbox)
    if kind == "socket":
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(outbox))
        return listener
    outbox.mkdir()
    return contextlib.nullcontext()


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("directory", "a directory"),
        ("FIFO", "a FIFO (named pipe)"),
        ("socket", "a socket"),
    ],
)
@pytest.mark.parametrize(
    ("command", "status"), [("run", 2), ("check-config", 2), ("outbox list", 1)]
)
def test_an_outbox_path_that_is_no_file_is_named_not_its_directory(
    tmp_path: Path, kind: str, said: str, command: str, status: int
) -> None:
    """A directory, a FIFO or a socket where the outbox file goes stops start-up and
    check-config (exit 2, in the same words) and `outbox list` (exit 1) at once, naming
    EXESDB_STATE_DIR's outbox file and what is there, not the directory with SQLite's "unable
    to open database file" or "disk I/O error"; no wait on the FIFO, no traceback, and nothing
    made in its place."""
    state = tmp_path / "state"
    outbox = state / FILE_NAME
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(state)}
    with _not_a_file(outbox, kind) as made:
        completed = cli(*command.split(), **env)  # type: ignore[arg-type]
    assert "Traceback" not in completed.stderr, completed.stderr
    assert completed.returncode == status, completed.stderr
    refusal = (
        f"it is {said}, not a file; move it out of the way (the bridge keeps its outbox in that"
        " file), or give a directory of the bridge's own\n"
    )
    if command == "run":
        assert completed.stderr.endswith(
            f"ERROR bridge: EXESDB_STATE_DIR: cannot open the alert outbox '{outbox}': {refusal}"
        )
    elif command == "check-config":
        assert completed.stdout == ""
        assert completed.stderr.startswith(
            "exesdb-bridge: bad configuration:\n  EXESDB_STATE_DIR: cannot open the alert outbox"
            f" '{outbox}': {refusal}"
        ), completed.stderr
    else:
        assert completed.stderr == (
            f"exesdb-bridge: cannot open the alert outbox at {outbox}: {refusal}"
        )
    assert not isinstance(made, FifoReleaser) or made.released == 0
    assert sorted(path.name for path in state.iterdir()) == [FILE_NAME]


def _cut_short(outbox: Path) -> str:
    """A stopped bridge's outbox at ``outbox``, cut 100 bytes short; the refusal's words."""
    Outbox.in_dir(outbox.parent).close()
    whole = outbox.read_bytes()
    outbox.write_bytes(whole[:-100])
    return (
        f"file is an SQLite database cut short ({len(whole) - 100} bytes, not a whole number of"
        " its 4096-byte pages): part of the outbox is lost; restore it whole, or move it out of"
        " the way for a new one"
    )


def _no_database(outbox: Path) -> str:
    """Text at ``outbox``; the refusal's words."""
    outbox.parent.mkdir()
    outbox.write_text("not a database\n")
    return "file is not a database"


@pytest.mark.parametrize(
    ("command", "begins"),
    [("run", " ERROR bridge: "), ("check-config", "exesdb-bridge: bad configuration:\n  ")],
)
@pytest.mark.parametrize("fault", [_cut_short, _no_database], ids=["cut short", "no database"])
def test_check_config_refuses_an_outbox_run_refuses_in_the_same_words(
    tmp_path: Path, command: str, begins: str, fault: Callable[[Path], str]
) -> None:
    """An outbox file cut short, or no SQLite database, stops check-config as it stops start-up:
    exit 2 and the same line, the file left as it was and, by check-config, nothing made beside
    it."""
    state = tmp_path / "state"
    said = fault(state / FILE_NAME)
    before = {path.name: path.read_bytes() for path in state.iterdir()}
    completed = cli(command, EXESDB_HTTP_ADDR="127.0.0.1:0", EXESDB_STATE_DIR=str(state))
    assert completed.returncode == 2, completed.stderr
    assert completed.stdout == ""
    line = f"EXESDB_STATE_DIR: cannot open the alert outbox in '{state}': {said}\n"
    assert f"{begins}{line}" in completed.stderr, completed.stderr
    after = {path.name: path.read_bytes() for path in state.iterdir()}
    assert after[FILE_NAME] == before[FILE_NAME]
    if command == "check-config":  # run takes the directory's lock file before it opens
        assert after == before


def listed_problems(said: str) -> list[str]:
    """The problems a refusal of the configuration lists (each on a line of its own, indented
    under ``bad configuration:``), in order."""
    return [line.removeprefix("  ") for line in said.splitlines() if line.startswith("  ")]


@pytest.mark.parametrize(
    ("env", "refusals"),
    [
        (
            {"EXESDB_ALERTMANAGER_URL": "ftp://alerts:hunter2-am@am.example/"},
            ["EXESDB_ALERTMANAGER_URL: 'ftp://alerts:<redacted>@am.example' is not an http://"],
        ),
        (
            {"EXESDB_INGEST": "true", "SECRET_KEY_BASE": "hunter2-short"},
            ["SECRET_KEY_BASE: has 13 characters; with EXESDB_INGEST=true it must be set"],
        ),
        (
            {
                "EXESDB_ALERTMANAGER_URL": "ftp://alerts:hunter2-am@am.example/",
                "EXESDB_INGEST": "maybe",
            },
            [
                "EXESDB_INGEST: must be true or false",
                "EXESDB_ALERTMANAGER_URL: 'ftp://alerts:<redacted>@am.example' is not an http://",
            ],
        ),
    ],
    ids=["a value refused", "values at odds", "two values refused"],
)
@pytest.mark.parametrize("fault", [_cut_short, _no_database], ids=["cut short", "no database"])
@pytest.mark.parametrize("command", ["check-config", "run"])
def test_bad_settings_and_the_outbox_s_fault_are_listed_at_once(
    tmp_path: Path,
    command: str,
    env: dict[str, str],
    refusals: list[str],
    fault: Callable[[Path], str],
) -> None:
    """check-config and run with bad settings and an outbox file start-up would refuse list
    every problem in one go (exit 2): the settings' first, then the outbox's in start-up's words,
    so that a second round finds nothing new; no secret of the settings is shown."""
    state = tmp_path / "state"
    said = fault(state / FILE_NAME)
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(state), **env}
    completed = cli(command, **env)  # type: ignore[arg-type]
    assert completed.returncode == 2, completed.stderr
    assert completed.stdout == ""
    lines = completed.stderr.splitlines()
    assert lines[0] == "exesdb-bridge: bad configuration:"
    problems = listed_problems(completed.stderr)
    assert len(problems) == len(refusals) + 1, completed.stderr
    for problem, refusal in zip(problems, refusals, strict=False):
        assert problem.startswith(refusal), completed.stderr
    assert problems[-1] == f"EXESDB_STATE_DIR: cannot open the alert outbox in '{state}': {said}"
    assert "hunter2" not in completed.stderr


def test_run_demo_with_bad_settings_lists_the_fault_of_the_demo_s_own_outbox(
    tmp_path: Path,
) -> None:
    """`run --demo` with a bad setting and EXESDB_STATE_DIR unset lists the fault of the outbox
    in the demo's own folder (./.exesdb-bridge-demo, which it would open) beside the setting's,
    not of one in the folder a run without --demo uses (exit 2)."""
    demo_outbox = tmp_path / ".exesdb-bridge-demo" / FILE_NAME
    said = _no_database(demo_outbox)
    _no_database(tmp_path / ".exesdb-bridge" / FILE_NAME)  # a real run's: not looked at
    completed = cli("run", "--demo", cwd=tmp_path, EXESDB_INGEST="maybe")
    assert completed.returncode == 2, completed.stderr
    problems = listed_problems(completed.stderr)
    assert [problem.split(":")[0] for problem in problems] == [
        "EXESDB_INGEST",
        "EXESDB_STATE_DIR",
    ], completed.stderr
    assert problems[1] == (
        f"EXESDB_STATE_DIR: cannot open the alert outbox in './.exesdb-bridge-demo': {said}"
    )


@pytest.mark.parametrize(
    ("state_dir", "refusal"),
    [
        ("~/state", "EXESDB_STATE_DIR: begins with ~, which only a shell expands"),
        ("{long}", "EXESDB_STATE_DIR: '{long}' cannot be used: File name too long"),
    ],
    ids=["refused", "unusable"],
)
def test_check_config_looks_for_no_outbox_where_the_state_directory_is_at_fault(
    tmp_path: Path, state_dir: str, refusal: str
) -> None:
    """check-config with EXESDB_STATE_DIR refused (a path beginning with ~) or naming a
    directory the bridge could not use (a name longer than the system takes) beside another bad
    setting lists their problems alone, one for the directory: no outbox is looked for in it
    (exit 2)."""
    long = str(tmp_path / ("s" * 300))
    env = {"EXESDB_STATE_DIR": state_dir.format(long=long), "EXESDB_INGEST": "maybe"}
    completed = cli(
        "check-config", cwd=tmp_path, HOME=str(tmp_path), EXESDB_HTTP_ADDR="127.0.0.1:0", **env
    )
    assert completed.returncode == 2, completed.stderr
    problems = listed_problems(completed.stderr)
    assert [problem.split(":")[0] for problem in problems] == [
        "EXESDB_INGEST",
        "EXESDB_STATE_DIR",
    ], completed.stderr
    assert problems[1].startswith(refusal.format(long=long)), completed.stderr
    assert "alert outbox" not in completed.stderr


def test_outbox_list_of_an_outbox_cut_short_says_what_to_do_and_no_more(tmp_path: Path) -> None:
    """`outbox list` on an outbox cut short says so in the bridge's words, which end with what to
    do (restore it, or move it out of the way), and nothing after them: no doubt about
    EXESDB_STATE_DIR, which is the bridge's (exit 1)."""
    state = tmp_path / "state"
    said = _cut_short(state / FILE_NAME)
    listed = cli("outbox", "list", EXESDB_STATE_DIR=str(state))
    assert listed.returncode == 1
    assert listed.stderr == (
        f"exesdb-bridge: cannot open the alert outbox at {state / FILE_NAME}: {said}\n"
    )


def test_check_config_makes_and_changes_nothing_in_the_state_directory(tmp_path: Path) -> None:
    """check-config reads the outbox a bridge left without writing a byte or making a file
    beside it (no log, no shared memory: a read-only SQLite open makes both), and makes no state
    directory where there is none (exit 0 for each)."""
    state = tmp_path / "state"
    outbox = Outbox.in_dir(state)
    observe(outbox, event("a"), T0)
    outbox.close()
    before = {path.name: path.read_bytes() for path in state.iterdir()}
    assert not (state / f"{FILE_NAME}-wal").exists()
    completed = cli("check-config", EXESDB_STATE_DIR=str(state))
    assert completed.returncode == 0, completed.stderr
    assert {path.name: path.read_bytes() for path in state.iterdir()} == before
    missing = tmp_path / "missing"
    assert cli("check-config", EXESDB_STATE_DIR=str(missing)).returncode == 0
    assert not missing.exists()


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
    start-up (exit 2) naming the file and to make it that user's, not to make the directory
    writable."""
    state = tmp_path / "state"
    Outbox.in_dir(state).close()
    outbox = state / FILE_NAME
    prefix = withhold(outbox)
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(state)}
    completed = run_command([*prefix, sys.executable, "-m", "bridge", "run"], env)
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.endswith(
        f"ERROR bridge: EXESDB_STATE_DIR: cannot open the alert outbox in '{state}': [Errno 13]"
        f" Permission denied: '{outbox}'; the bridge's user (uid {os.geteuid()}) may not read"
        " and write it: make it that user's (chown), or run the bridge as its owner\n"
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


def test_publish_signs_and_a_bridge_with_ingest_accepts_it(
    bridges: Bridges, tmp_path: Path
) -> None:
    """publish signs one message with SECRET_KEY_BASE; the bridge answers 202 and it exits 0."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")
    completed = cli(
        "publish", "system_alert", "--topic", "node_failure", *ALERT_FIELDS,
        "--url", bridge.url, SECRET_KEY_BASE=TEST_SECRET,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == {"accepted": 1}
    _, metrics = http_get(bridge.url + "/metrics")
    assert re.search(
        rb'exesdb_bus_published_total\{pubsub="ex_esdb_alerts",tag="system_alert"\} 1\.0', metrics
    )


def test_publish_gives_a_string_field_the_text_as_written(bridges: Bridges, tmp_path: Path) -> None:
    """-f values are JSON, or text: a string field given what reads as a number keeps the text
    exactly as typed (unit=1.50 stays "1.50"), while a number field still takes a number."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")
    completed = cli(
        "publish", "performance_metric", "-f", "metric_name=007", "-f", "value=12",
        "-f", "unit=1.50", "-f", "component=42", "--url", bridge.url,
        SECRET_KEY_BASE=TEST_SECRET, EXESDB_NODE="cli-node",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    _, metrics = http_get(bridge.url + "/metrics")
    assert (
        b'exesdb_performance_value{node="cli-node",component="42",metric="007",unit="1.50"} 12.0'
        in metrics
    )


def test_publish_reads_the_payload_from_stdin(bridges: Bridges, tmp_path: Path) -> None:
    """publish --stdin takes the payload as JSON."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")
    payload = json.dumps({"status": "degraded", "checks": {"disk": "slow"}})
    completed = cli_process(
        "publish", "node_health_updated", "--stdin", "--url", bridge.url,
        stdin=payload, SECRET_KEY_BASE=TEST_SECRET,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr


def test_publish_with_a_wrong_key_is_refused_and_exits_1(bridges: Bridges, tmp_path: Path) -> None:
    """A bridge refuses a message signed with another key (401): publish exits 1 saying why on
    stderr in words, the code and the field at fault after them, and prints nothing on stdout."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")
    completed = cli(
        "publish", "system_alert", *ALERT_FIELDS, "--url", bridge.url,
        SECRET_KEY_BASE="a-different-secret-key-base-of-enough-length",
    )  # fmt: skip
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert completed.stderr.startswith(
        f"exesdb-bridge: {bridge.url}/v1/messages answered 401: the X-ExESDB-Signature header"
        " does not match the body: signed with a key other than the bridge's SECRET_KEY_BASE"
    )
    assert completed.stderr.endswith(" (invalid_signature, field X-ExESDB-Signature)\n")
    assert "{" not in completed.stderr


def test_publish_to_a_bridge_without_ingest_exits_1(bridges: Bridges, tmp_path: Path) -> None:
    """With ingest off the bridge answers 404 and publish exits 1, saying on stderr how to turn
    ingest on."""
    bridge = bridges(tmp_path)
    completed = cli(
        "publish", "system_alert", *ALERT_FIELDS, "--url", bridge.url,
        SECRET_KEY_BASE=TEST_SECRET,
    )  # fmt: skip
    assert completed.returncode == 1
    assert (completed.stdout, completed.stderr) == (
        "",
        f"exesdb-bridge: {bridge.url}/v1/messages answered 404: ingest is off: set"
        " EXESDB_INGEST=true to enable it (ingest_disabled)\n",
    )


def test_publish_to_nowhere_exits_1() -> None:
    """When no bridge listens, publish says so and exits 1."""
    completed = cli(
        "publish", "system_alert", *ALERT_FIELDS, "--url", f"http://127.0.0.1:{free_port()}",
        SECRET_KEY_BASE=TEST_SECRET,
    )  # fmt: skip
    assert completed.returncode == 1
    assert "cannot reach" in completed.stdout + completed.stderr


@pytest.mark.parametrize("command", [["alerts", "list"], ["tail"]], ids=" ".join)
def test_a_port_that_never_answers_is_told_after_the_timeout_without_a_traceback(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A port that takes the connection and never answers (a bridge stuck, another program)
    ends the command after its timeout (10 s, 1 s here to keep the test short) with one line
    saying so, exit 1: not a traceback, and not a tail following in silence a stream that never
    opens."""
    monkeypatch.setattr(client, "TIMEOUT", 1.0)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes each connection; nothing ever reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        completed = cli(*command, "--url", url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert completed.returncode == 1
    assert completed.stderr == (
        f"exesdb-bridge: the bridge at {url} did not answer within 1 s: it is stuck or"
        " overloaded, or another program holds that port (--url, EXESDB_URL or EXESDB_HTTP_ADDR"
        " says where it is)\n"
    )


@pytest.mark.parametrize(
    ("args", "stdin", "env", "message"),
    [
        (
            ["performance_metrc"],
            None,
            {"SECRET_KEY_BASE": TEST_SECRET},
            "mean 'performance_metric'?",
        ),
        (
            ["system_alert", "-f", "severity=huge"],
            None,
            {"SECRET_KEY_BASE": TEST_SECRET},
            "severity",
        ),
        (
            ["system_alert", "-f", "no-equals-sign"],
            None,
            {"SECRET_KEY_BASE": TEST_SECRET},
            "name=value",
        ),
        (["system_alert", "--stdin"], "not json", {"SECRET_KEY_BASE": TEST_SECRET}, "--stdin"),
        (["system_alert", "--stdin"], "[1, 2]", {"SECRET_KEY_BASE": TEST_SECRET}, "object"),
        (["performance_metrc"], None, {}, "mean 'performance_metric'?"),
        (
            ["system_alert", *ALERT_FIELDS, "-f", "severity=huge"],
            None,
            {},
            "system_alert.severity: must be 'info', 'warning', 'error' or 'critical' (got 'huge')",
        ),
        (
            ["system_alert", *ALERT_FIELDS, "-f", "severity=WARN"],
            None,
            {},
            # The words listed and the one meant named, in any letter case, as ingest does.
            "exesdb-bridge: system_alert.severity: must be 'info', 'warning', 'error' or"
            " 'critical'; did you mean 'warning'? (got 'WARN')\n",
        ),
        # A word misspelt, or in another letter case, is answered with the one meant.
        (
            ["system_alert", *ALERT_FIELDS, "-f", "severity=eror"],
            None,
            {},
            "system_alert.severity: must be 'info', 'warning', 'error' or 'critical';"
            " did you mean 'error'? (got 'eror')",
        ),
        (
            ["system_alert", *ALERT_FIELDS, "-f", "category=Data"],
            None,
            {},
            "did you mean 'data'? (got 'Data')",
        ),
        (
            ["system_alert", *ALERT_FIELDS, "-f", "severity=" + "x" * 100],
            None,
            {},
            "(got '" + "x" * 78 + "…)",
        ),
        (
            ["performance_metric", "-f", "metric_name=q", "-f", "unit=m", "-f", "component=o"],
            None,
            {},
            "performance_metric.value: required: give it with -f value=VALUE\n"
            "exesdb-bridge: `exesdb-bridge schema performance_metric` lists its fields\n",
        ),
        (
            ["performance_metric", "-f", "metric_name=q", "-f", "valu=12", "-f", "value=1"],
            None,
            {},
            "performance_metric.valu: not a field of performance_metric; did you mean 'value'?"
            " (got 12)\n",
        ),
        (
            ["performance_metric", "-f", "metric_name=q", "-f", "valu=12"],
            None,
            {},
            # The misspelt field first, the missing ones it explains after it.
            "exesdb-bridge: performance_metric.valu: not a field of performance_metric; did you"
            " mean 'value'? (got 12)\nexesdb-bridge: performance_metric.value: required",
        ),
        (
            ["performance_metric", "-f", 'tags={"a": "1", "a": "2"}'],
            None,
            {},
            "--field 'tags': the key 'a' is given twice",
        ),
        (
            [
                "health_check_completed",
                "-f",
                "check_name=c",
                "-f",
                "result=pass",
                "-f",
                "duration_ms=1",
                "-f",
                'details={"lag": Infinity}',
            ],
            None,
            {},
            "health_check_completed.details: Input should be a valid dictionary"
            """ (got '{"lag": Infinity}'); it is not JSON: Infinity is not JSON\n""",
        ),
        (
            ["performance_metric", "--stdin"],
            '{"metric_name": "q", "value": 1, "value": 2, "unit": "m", "component": "o"}',
            {},
            "--stdin: the key 'value' is given twice",
        ),
        (
            ["performance_metric", "--stdin"],
            '{"metric_name": "q", "value": 1, "unit": "m", "component": "o", "tags": {"a": NaN}}',
            {},
            "--stdin: not JSON (NaN is not JSON)",
        ),
        # Empty (a pipe that gave nothing), or a line break alone: said so.
        (["performance_metric", "--stdin"], "", {}, "--stdin: nothing was read; it must hold"),
        (["performance_metric", "--stdin"], "\n", {}, "--stdin: nothing was read; it must hold"),
        (["system_alert", *ALERT_FIELDS], None, {}, "SECRET_KEY_BASE"),
        (
            ["system_alert", *ALERT_FIELDS],
            None,
            {"SECRET_KEY_BASE": ""},
            "publish needs SECRET_KEY_BASE to sign with: set it to the key the bridge runs with",
        ),
        (
            ["system_alert", *ALERT_FIELDS],
            None,
            {"SECRET_KEY_BASE": "k" * 31},
            "SECRET_KEY_BASE: has 31 characters; a bridge with EXESDB_INGEST=true runs with at"
            " least 32, so it is not the bridge's key",
        ),
    ],
)
def test_publish_refuses_bad_input_with_exit_2(
    args: list[str], stdin: str | None, env: dict[str, str], message: str
) -> None:
    """An unknown tag, a bad field (with the value given), a key given twice in a JSON value
    (which was meant is a guess), NaN or Infinity (no JSON, which a free-form object would carry
    on as null), bad stdin, no key to sign with or one shorter than any ingesting bridge's exit 2
    and say why, nothing sent; a missing or unknown field says what to give, and where the fields
    are listed, a word a field does not take names the words it takes and the one meant, a
    missing key what to set it to; a bad message is named before a missing key,
    and an unknown field before the missing ones (the one it misspells among them)."""
    completed = cli("publish", *args, "--url", "http://127.0.0.1:9", stdin=stdin, **env)  # type: ignore[arg-type]
    assert completed.returncode == 2
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr


def test_tail_prints_one_verified_message_per_line(bridges: Bridges, tmp_path: Path) -> None:
    """tail --count 1 prints the next verified message as one line and exits 0."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")

    def publish() -> None:
        published = cli(
            "publish", "system_alert", "--topic", "node_failure", *ALERT_FIELDS,
            "--url", bridge.url, SECRET_KEY_BASE=TEST_SECRET,
        )  # fmt: skip
        assert published.returncode == 0, published.stderr

    tail = _tail_until(bridge, publish, "--count", "1", "--instance", "ex_esdb_alerts")
    assert tail.returncode == 0, tail.stderr
    lines = tail.stdout.splitlines()
    assert len(lines) == 1
    ts, instance, topic, tag, node, payload = lines[0].split(" ", 5)
    assert (instance, topic, tag) == ("ex_esdb_alerts", "node_failure", "system_alert")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ts)
    assert node
    assert json.loads(payload)["title"] == "Node down"


def _tail_until(
    process: BridgeProcess | ThreadedBridge, end: Callable[[], object], *args: str
) -> subprocess.CompletedProcess[str]:
    """Run ``tail`` against ``process`` until ``end`` (called once tail is connected) makes it
    exit: its exit status and what it printed."""
    tail = subprocess.Popen(
        [sys.executable, "-m", "bridge", "tail", *args, "--url", process.url],
        env=bridge_env(EXESDB_ADMIN_TOKEN=ADMIN_TOKEN),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Once tail is connected its subscription shows up in the queue-depth gauge.
        wait_until(
            lambda: (
                b'exesdb_bus_queue_depth{subscriber="stream"}'
                in http_get(process.url + "/metrics")[1]
            ),
            30,
            "tail to connect",
        )
        end()
        out, err = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    return subprocess.CompletedProcess(tail.args, tail.returncode, out, err)


def test_tail_says_so_and_exits_1_when_the_bridge_ends_the_stream(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """A bridge stopping under tail ends it with exit 1 and a line saying the stream closed."""
    process = _start(bridge_processes, tmp_path)

    def stop() -> None:
        assert process.stop() == 0

    tail = _tail_until(process, stop, "--count", "5")
    assert tail.returncode == 1
    assert f"the bridge at {process.url} closed the stream" in tail.stderr


def test_tail_says_the_stream_broke_off_when_the_bridge_is_killed(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """A bridge killed under tail: exit 1 saying the stream broke off, not that it is
    unreachable (it was reached), and no traceback."""
    process = _start(bridge_processes, tmp_path)
    assert process.process is not None
    tail = _tail_until(process, process.process.kill)
    assert tail.returncode == 1
    # The bridge's collectors may have published a message or two before the kill.
    pattern = rf"the stream from {re.escape(process.url)} broke off after \d+ message"
    assert re.search(pattern, tail.stderr)
    assert "cannot reach" not in tail.stderr
    assert "Traceback" not in tail.stderr


def test_an_admin_token_ending_in_a_line_break_is_sent_trimmed(
    bridges: Bridges, tmp_path: Path
) -> None:
    """A token read from a file (its line break kept) reaches the bridge trimmed: no header
    with a control character, no traceback."""
    bridge = bridges(tmp_path)
    listed = cli("alerts", "list", "--url", bridge.url, EXESDB_ADMIN_TOKEN=f"{ADMIN_TOKEN}\n")
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr


@pytest.mark.parametrize("command", [["tail"], ["alerts", "list"]])
@pytest.mark.parametrize("token", [None, "", " \n"])
def test_tail_and_alerts_without_the_admin_token_exit_2(
    command: list[str], token: str | None
) -> None:
    """tail and alerts need EXESDB_ADMIN_TOKEN; set but empty (or blank) is unset, as for the
    bridge."""
    env = {} if token is None else {"EXESDB_ADMIN_TOKEN": token}
    completed = cli(*command, "--url", "http://127.0.0.1:9", **env)  # type: ignore[arg-type]
    assert completed.returncode == 2
    assert f"{command[0]} needs EXESDB_ADMIN_TOKEN" in completed.stderr


@pytest.mark.parametrize(
    ("command", "refused"),
    [
        (["alerts", "list", "--state", "Firing", "--url", "http://127.0.0.1:9"], "cannot reach"),
        (["tail", "--instance", "EX_ESDB_Health", "--url", "http://127.0.0.1:9"], "cannot reach"),
        (["outbox", "list", "--state", "DEAD"], "no alert outbox"),
    ],
)
def test_an_options_word_is_taken_in_any_letter_case(
    command: list[str], refused: str, tmp_path: Path
) -> None:
    """A word an option takes from a few (``--state``, ``--instance``) is taken in any letter
    case, as the settings take theirs: the command goes on (to the bridge, the outbox)."""
    completed = cli(*command, EXESDB_ADMIN_TOKEN="t", EXESDB_STATE_DIR=str(tmp_path))
    assert completed.returncode == 1, completed.stderr
    assert refused in completed.stderr


@pytest.mark.parametrize(
    ("command", "line"),
    [
        (
            ["tail", "--instance", "health"],
            "exesdb-bridge tail: error: argument --instance: invalid choice: 'health'; did you"
            " mean 'ex_esdb_health'? (choose from 'ex_esdb_system', 'ex_esdb_health',",
        ),
        (
            ["alerts", "list", "--state", "acknowleged"],
            "exesdb-bridge alerts list: error: argument --state: invalid choice: 'acknowleged';"
            " did you mean 'acknowledged'? (choose from 'firing', 'acknowledged', 'resolved',"
            " 'all')",
        ),
        (
            ["RUN"],
            "exesdb-bridge: error: argument COMMAND: invalid choice: 'RUN'; did you mean 'run'?",
        ),
    ],
)
def test_a_word_no_option_takes_is_refused_naming_the_word_meant(
    command: list[str], line: str
) -> None:
    """A word like one an option (or the command) takes, but none of them, is a usage error
    naming the word meant beside the choices, as a misspelt command is."""
    completed = cli(*command, "--url", "http://127.0.0.1:9", EXESDB_ADMIN_TOKEN="t")
    assert completed.returncode == 2
    assert completed.stderr.splitlines()[-1].startswith(line), completed.stderr


@pytest.mark.parametrize(
    ("command", "line"),
    [
        (
            ["alerts", "list", "--state", "firing,acknowledged"],
            "exesdb-bridge alerts list: error: argument --state: invalid choice:"
            " 'firing,acknowledged': one state or 'all', not a list (choose from 'firing',"
            " 'acknowledged', 'resolved', 'all'); without --state it lists firing and"
            " acknowledged",
        ),
        (
            ["outbox", "list", "--state", "pending,dead"],
            "exesdb-bridge outbox list: error: argument --state: invalid choice: 'pending,dead':"
            " one state, not a list (choose from 'pending', 'delivered', 'dead', 'stale');"
            " without --state it lists every state",
        ),
        (
            ["tail", "--instance", "ex_esdb_health,ex_esdb_alerts"],
            "exesdb-bridge tail: error: argument --instance: invalid choice:"
            " 'ex_esdb_health,ex_esdb_alerts': one instance, not a list (choose from"
            " 'ex_esdb_system', 'ex_esdb_health',",
        ),
    ],
)
def test_a_comma_list_where_an_option_takes_one_word_is_refused_as_a_list(
    command: list[str], line: str
) -> None:
    """A comma list given an option taking one word (``--state firing,acknowledged``) is a
    usage error saying one is taken, not a list, with the choices and what leaving the option
    out gives, not naming the one word of the list it most resembles."""
    completed = cli(*command, EXESDB_ADMIN_TOKEN="t")
    assert completed.returncode == 2
    assert completed.stderr.splitlines()[-1].startswith(line), completed.stderr
    assert "did you mean" not in completed.stderr


def test_the_refusals_the_choice_helper_quotes_are_the_ones_alerts_state_gives() -> None:
    """Each refusal ``refused_choice``'s docstring quotes (a word meant named, a word like
    none with the choices alone) is what ``alerts list --state`` answers that word: no example
    there a reader would try in vain (``fired`` was quoted naming ``firing``)."""
    said = " ".join(str(refused_choice.__doc__).split())
    quoted = re.findall(r"invalid choice: '(\w+)'((?:; did you mean '\w+'\?)?) \(", said)
    assert quoted, said
    for given, meant in quoted:
        completed = cli("alerts", "list", "--state", given, EXESDB_ADMIN_TOKEN="t")
        assert completed.returncode == 2
        assert f"invalid choice: {given!r}{meant} (choose from 'firing'," in completed.stderr


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--instance", "ex_esdb_alert"], "invalid choice: 'ex_esdb_alert'"),
        (["--topic", "node failure"], "topic 'node failure' must be 1-128 characters"),
        (
            ["--topic", "no*de"],
            "topic 'no*de' must be 1-128 characters of letters, digits and '_.:-'; one * may"
            " end it, for every topic starting so (node*)",
        ),
    ],
)
def test_tail_refuses_a_bad_instance_or_topic_as_a_usage_error(
    option: list[str], message: str
) -> None:
    """A bus instance or topic the stream would refuse is a usage error (exit 2) naming it,
    found before any bridge is asked; a topic's error says a * may end it, as --help does."""
    completed = cli("tail", *option, "--url", "http://127.0.0.1:9", EXESDB_ADMIN_TOKEN="t")
    assert completed.returncode == 2
    assert message in completed.stderr


@pytest.mark.parametrize(
    ("command", "typo", "meant"),
    [
        (["alerts", "list"], "EXESDB_ADMIN_TOKN", "EXESDB_ADMIN_TOKEN"),
        (["tail"], "EXESDB_ADMIN_TOKEM", "EXESDB_ADMIN_TOKEN"),
        (["outbox", "list"], "EXESDB_STATE_DIRS", "EXESDB_STATE_DIR"),
    ],
)
def test_a_client_command_names_a_misspelt_variable(
    command: list[str], typo: str, meant: str, tmp_path: Path
) -> None:
    """A command missing what a misspelt variable was meant to give says which one was meant."""
    # In an empty folder: the default state directory (./.exesdb-bridge) is not there either.
    completed = cli(*command, cwd=tmp_path, **{typo: str(tmp_path / "nowhere")})
    assert completed.returncode in (1, 2)
    assert f"{typo} is set but is not a setting of the bridge (ignored); did you mean {meant}?" in (
        completed.stderr
    )


@pytest.mark.parametrize("command", [["run"], ["check-config"]])
def test_a_bad_configuration_names_the_misspelt_variable_behind_it(command: list[str]) -> None:
    """When a misspelt name leaves a required setting unset, the refusal (exit 2) also says which
    setting the misspelt one was meant to be."""
    completed = cli(*command, EXESDB_SECRET_KEY_BASE="k" * 40, EXESDB_INGEST="true")
    assert completed.returncode == 2
    assert "  SECRET_KEY_BASE: is not set" in completed.stderr
    assert (
        "EXESDB_SECRET_KEY_BASE is set but is not a setting of the bridge (ignored);"
        " did you mean SECRET_KEY_BASE?" in completed.stderr
    )


@pytest.mark.parametrize("command", [["run"], ["check-config"]])
def test_a_refusal_for_want_of_the_key_names_the_variable_set_in_its_place(
    command: list[str],
) -> None:
    """When SECRET_KEY_BASE is unset and SECRET_KEY set (as other frameworks name their key),
    the refusal (exit 2) says which was meant."""
    completed = cli(*command, SECRET_KEY="k" * 40, EXESDB_INGEST="true")
    assert completed.returncode == 2
    assert "  SECRET_KEY_BASE: is not set" in completed.stderr
    assert (
        "SECRET_KEY is set but is not a setting of the bridge (ignored) and SECRET_KEY_BASE is"
        " unset; did you mean SECRET_KEY_BASE?" in completed.stderr
    )


def test_tail_with_a_wrong_token_exits_1(bridges: Bridges, tmp_path: Path) -> None:
    """A bridge refusing tail's token makes it exit 1."""
    bridge = bridges(tmp_path)
    completed = cli("tail", "--url", bridge.url, EXESDB_ADMIN_TOKEN="wrong-token")
    assert completed.returncode == 1
    assert f"{bridge.url}/v1/stream answered 401: " in completed.stderr


def test_alerts_against_a_bridge_without_an_admin_token_says_the_bridge_needs_one(
    bridges: Bridges, tmp_path: Path
) -> None:
    """A bridge run without EXESDB_ADMIN_TOKEN refuses alerts list (403): the command, which has
    the token in its own shell, says in words that the bridge needs it too (exit 1)."""
    bridge = bridges(tmp_path, EXESDB_ADMIN_TOKEN="")
    completed = cli("alerts", "list", "--url", bridge.url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert completed.returncode == 1
    assert completed.stderr == (
        f"exesdb-bridge: {bridge.url}/v1/alerts answered 403: admin endpoints are off: set"
        " EXESDB_ADMIN_TOKEN to enable them (admin_disabled); EXESDB_ADMIN_TOKEN set here is"
        " what the commands send: the bridge needs it too\n"
    )


def test_a_plain_http_answer_told_as_openssl_3_2_words_it_is_named_too() -> None:
    """OpenSSL 3.2 and later (Debian 13's) word a plain-http answer to the handshake as a
    "record layer failure": the commands say the bridge may serve plain http then too, not to
    trust a CA (this machine's OpenSSL, 3.0, says 'wrong version number')."""
    from bridge.cli.exchange import Unreachable

    failed = Unreachable("[SSL] record layer failure (_ssl.c:1000)", tls=True)
    said = client.Target("https://127.0.0.1:9570").unreachable(failed)
    assert said.startswith("TLS with https://127.0.0.1:9570 failed: [SSL] record layer failure")
    assert "the bridge may serve plain http" in said


def test_a_certificate_out_of_its_dates_is_told_to_be_renewed() -> None:
    """A certificate OpenSSL finds expired (the web config's own, pinned, or one a CA signed) is
    told to be renewed, not to be another certificate than the web config's, nor to want
    --cacert (OpenSSL 3.0's words, as a pinned context says them of an expired certificate)."""
    from bridge.cli.exchange import Unreachable

    reason = (
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired"
        " (_ssl.c:1006)"
    )
    for pinned in (True, False):
        target = client.Target("https://127.0.0.1:9570", pinned=pinned)
        assert target.unreachable(Unreachable(reason, tls=True)) == (
            f"TLS with https://127.0.0.1:9570 failed: {reason} (its certificate is out of its"
            " dates: renew it, or set this machine's clock right; trusting another CA would not"
            " help)"
        )


def test_a_refusal_names_what_was_asked_and_plain_http_is_named_when_https_was_tried(
    bridges: Bridges, tmp_path: Path
) -> None:
    """A --url with a path the bridge does not serve: exit 1 naming the URL asked and the status
    (not '404 404: Not Found') and the URL without that path; https:// against a plain-http
    bridge says it may serve http."""
    bridge = bridges(tmp_path)
    nested = cli("alerts", "list", "--url", bridge.url + "/v1", EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert nested.returncode == 1
    assert nested.stderr == (
        f"exesdb-bridge: {bridge.url}/…/v1/alerts answered 404: nothing is served at this path"
        " (not_found); the URL given has a path, and the bridge's own paths go after it: a"
        f" bridge served at its root is {bridge.url} (--url, EXESDB_URL)\n"
    )
    https = bridge.url.replace("http://", "https://")
    tls = cli("alerts", "list", "--url", https, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert tls.returncode == 1
    assert tls.stderr.startswith(f"exesdb-bridge: TLS with {https} failed: ")
    assert "the bridge may serve plain http" in tls.stderr


@pytest.fixture(params=[200, 404])
def not_a_bridge(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """The URL of a real HTTP server on loopback that answers every request with a page, and
    the status it answers with (200, or a 404 page as a proxy or another service gives)."""
    status: int = request.param

    class Page(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b"<html>some other service</html>"
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    # shutdown() returns once the loop next looks, every poll_interval (0.5 s by default).
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", status
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("command", "path"),
    [
        (["alerts", "list"], "/v1/alerts"),
        (["alerts", "ack", "a1", "--by", "alice"], "/v1/alerts/a1/ack"),
        (["tail"], "/v1/stream"),
        (["publish", "system_alert", *ALERT_FIELDS], "/v1/messages"),
    ],
)
def test_a_server_that_is_no_bridge_is_named_without_a_traceback(
    not_a_bridge: tuple[str, int], command: list[str], path: str
) -> None:
    """A --url reaching another HTTP server that answers with a page (200 or 404): exit 1 with
    one line on stderr naming the URL and the status and asking whether a bridge is there;
    never the page itself, a traceback, nor "the bridge closed the stream"."""
    url, status = not_a_bridge
    completed = cli(
        *command, "--url", url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN, SECRET_KEY_BASE=TEST_SECRET
    )
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    assert f"exesdb-bridge: {url}/…" not in completed.stderr  # the path is ours, not its
    assert completed.stderr.startswith(f"exesdb-bridge: {url}{path} answered {status} but not")
    assert "is a bridge there?" in completed.stderr
    assert "<html" not in completed.stdout + completed.stderr
    assert completed.stdout == ""
    assert completed.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "data",
    [b"<p>a page</p>", b"{}", b"[1]", b"\xff\xfe", b"[" * 100_000],
    ids=["not-json", "no-envelope", "not-an-object", "not-utf-8", "nested-past-the-parser"],
)
def test_tail_on_another_program_s_event_stream_says_so_without_a_traceback(data: bytes) -> None:
    """An event stream (200, text/event-stream) whose data is no envelope the bridge sends (not
    JSON, not UTF-8, nested past the parser's depth, no object with an envelope's fields): exit
    1 with one line asking whether a bridge is there, not a traceback."""
    with answering(events(b"data: " + data + b"\n\n")) as server:
        completed = cli("tail", "--url", server.url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert (completed.returncode, completed.stdout) == (1, "")
    assert completed.stderr == (
        f"exesdb-bridge: {server.url}/v1/stream answered 200 but not with the bridge's messages:"
        " is a bridge there? (--url, EXESDB_URL or EXESDB_HTTP_ADDR says where it is)\n"
    )


def test_tail_reads_no_more_than_a_mebibyte_of_a_refusal_without_end() -> None:
    """A server answering the stream with a page that goes on without end (a 404 here) is told
    from the first MiB of it, as another server's page, and no more is read: read whole, it
    was held in memory as fast as it came (2.3 GB in 6 s) and tail never ended."""
    sent: list[int] = []
    with answering(endless_page(sent)) as server:
        completed = cli("tail", "--url", server.url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert completed.returncode == 1
    assert completed.stderr.startswith(f"exesdb-bridge: {server.url}/v1/stream answered 404 but")
    [count] = sent
    assert count < 32 << 20, f"{count >> 20} MiB sent"


def test_alerts_list_reads_no_more_of_an_endless_answer_than_the_most_of_one() -> None:
    """A server answering ``alerts list`` with a 200 that goes on (faster than a bridge could)
    ends it in one line naming the most one answer may hold, and no more is read: read until
    the deadline, it took 4.4 GB in 10 s, then said the bridge did not answer."""
    sent: list[int] = []
    with aiohttp_answering(flood(sent, client.MOST_ANSWER + (32 << 20))) as url:
        completed = cli("alerts", "list", "--url", url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert (completed.returncode, completed.stdout) == (1, "")
    assert completed.stderr == (
        f"exesdb-bridge: the answer from {url} held more than 64 MiB, the most a command reads of"
        " one answer: the rest was left unread (is a bridge there? --url, EXESDB_URL or"
        " EXESDB_HTTP_ADDR says where it is)\n"
    )
    [count] = sent
    assert count < client.MOST_ANSWER + (16 << 20), f"{count >> 20} MiB sent"


@pytest.mark.parametrize(
    "body",
    [
        '{"alerts": "x", "alert": "x"}',
        '{"alerts": [1], "alert": 1}',
        '{"alerts": [{"alert_id": 1}], "alert": {"state": "firing"}}',
        '{"alerts": [{"alert_id": "a", "labels": {}}], "alert": []}',
    ],
)
@pytest.mark.parametrize("command", [["list"], ["ack", "a1", "--by", "alice"]], ids=["list", "ack"])
def test_alerts_from_json_not_shaped_as_the_bridge_s_are_told_not_a_traceback(
    body: str, command: list[str]
) -> None:
    """Another server's JSON holding ``alerts`` or ``alert`` but not shaped as the bridge's
    (a text, numbers, alerts without their fields) ends ``alerts list`` and ``alerts ack`` in
    one line asking whether a bridge is there, exit 1: it ended them in a traceback."""
    with aiohttp_answering(answering_with(200, body.encode())) as url:
        completed = cli("alerts", *command, "--url", url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    path = "/v1/alerts" if command == ["list"] else "/v1/alerts/a1/ack"
    assert (completed.returncode, completed.stdout) == (1, "")
    assert completed.stderr == (
        f"exesdb-bridge: {url}{path} answered 200 but not with its alerts as JSON: is a bridge"
        " there? (--url, EXESDB_URL or EXESDB_HTTP_ADDR says where it is)\n"
    )


def test_a_refusal_s_control_characters_are_shown_as_escapes_not_sent_to_the_terminal() -> None:
    """A refusal in the bridge's shape whose words hold a line break or an escape sequence (a
    hostile server's: clearing the screen, colouring what follows) is told on one line, each
    such character as its escape: they went to the terminal as they came."""
    refusal = {"error": "bad\x1b[31m", "detail": "one\ntwo \x1b[2J", "field": "f\x07"}
    with aiohttp_answering(answering_with(400, json.dumps(refusal).encode())) as url:
        completed = cli("alerts", "list", "--url", url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert completed.returncode == 1
    assert completed.stderr == (
        f"exesdb-bridge: {url}/v1/alerts answered 400: one\\u000atwo \\u001b[2J"
        " (bad\\u001b[31m, field f\\u0007)\n"
    )


def test_tail_reads_no_more_of_a_line_without_end_than_the_longest_a_bridge_sends() -> None:
    """A stream whose line goes on without end is told past 512 MiB (twice the largest
    message a bridge takes) as no bridge's, exit 1, and no more of it is read: held whole as
    it came, it took 1.2 GB in 10 s and tail never ended."""
    sent: list[int] = []
    with answering(endless_event(sent)) as server:
        completed = cli("tail", "--url", server.url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert (completed.returncode, completed.stdout) == (1, "")
    assert completed.stderr == (
        f"exesdb-bridge: {server.url}/v1/stream answered 200 but not with lines of 512 MiB at"
        " most: is a bridge there? (--url, EXESDB_URL or EXESDB_HTTP_ADDR says where it is)\n"
    )
    [count] = sent
    assert count < (512 + 32) << 20, f"{count >> 20} MiB sent"


def test_tail_shows_a_server_s_control_characters_as_escapes() -> None:
    """An event whose envelope's fields hold an escape sequence or a line break (another
    server's: a bridge's hold none) is printed on one line, each as its escape: they went to
    the terminal as they came."""
    envelope: dict[str, object] = {field: "x" for field in ("ts", "instance", "topic", "tag")}
    envelope |= {"node": "n\x1b[2J\nforged", "payload": {"text": "\x1b[31m"}}
    data = json.dumps(envelope).encode()
    with answering(events(b"data: " + data + b"\n\n")) as server:
        completed = cli("tail", "--count", "1", "--url", server.url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == 'x x x x n\\u001b[2J\\u000aforged {"text":"\\u001b[31m"}\n'


def test_tail_takes_a_message_of_megabytes_in_time_growing_with_its_size() -> None:
    """A message of 48 MiB is printed within seconds: each read of the stream added to all the
    line had so far took time growing with the square of its size (64 MiB: 54 s)."""
    envelope: dict[str, object] = {
        field: "x" for field in ("ts", "instance", "topic", "tag", "node")
    }
    envelope["payload"] = {"text": "x" * (48 << 20)}
    data = json.dumps(envelope).encode()
    with answering(events(b"event: log_entry\ndata: " + data + b"\n\n")) as server:
        began = time.monotonic()
        completed = cli("tail", "--count", "1", "--url", server.url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
        took = time.monotonic() - began
    assert completed.returncode == 0, completed.stderr
    assert len(completed.stdout) == (48 << 20) + len('x x x x x {"text":""}\n')
    assert took < 10, f"took {took:.1f} s"


def test_outbox_on_a_file_that_is_no_outbox_says_so_without_a_traceback(tmp_path: Path) -> None:
    """An alerts.sqlite3 that is no SQLite database is named with the system's words and the
    variable to check, in one line, exit 1, as `run` names it (not a traceback)."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "alerts.sqlite3").write_text("not a database\n")
    listed = cli("outbox", "list", EXESDB_STATE_DIR=str(state))
    assert listed.returncode == 1
    assert listed.stderr == (
        f"exesdb-bridge: cannot open the alert outbox at {state / 'alerts.sqlite3'}: file is not"
        f" a database; set EXESDB_STATE_DIR to the bridge's state directory (now '{state}'), or,"
        " if it is that, move the file out of the way (the bridge refuses it too)\n"
    )


@pytest.mark.parametrize(
    ("command", "status", "said"),
    [
        (
            "outbox list",
            1,
            "exesdb-bridge: cannot open the alert outbox at {path}: file is an SQLite database of"
            " another program's (its tables: 'x'), not an alert outbox; set EXESDB_STATE_DIR to"
            " the bridge's state directory (now '{state}'), or, if it is that, move the file out"
            " of the way (the bridge refuses it too)\n",
        ),
        (
            "outbox retry --all",
            1,
            "exesdb-bridge: cannot open the alert outbox at {path}: file is an SQLite database of"
            " another program's (its tables: 'x'), not an alert outbox; set EXESDB_STATE_DIR to"
            " the bridge's state directory (now '{state}'), or, if it is that, move the file out"
            " of the way (the bridge refuses it too)\n",
        ),
        (
            "run",
            2,
            " ERROR bridge: EXESDB_STATE_DIR: cannot open the alert outbox in '{state}': file is"
            " an SQLite database of another program's (its tables: 'x'), not an alert outbox\n",
        ),
    ],
)
def test_an_sqlite_file_of_another_program_s_is_refused_not_made_an_outbox(
    tmp_path: Path, command: str, status: int, said: str
) -> None:
    """An alerts.sqlite3 that is an SQLite database of another program's is refused as one
    that is no database at all is, on one line (exit 1; exit 2 at start), and left unwritten:
    no "no deliveries" over the outbox's tables made in it."""
    state = tmp_path / "state"
    state.mkdir()
    path = state / "alerts.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE x (a)")
    db.commit()
    db.close()
    before = path.read_bytes()
    completed = cli(*command.split(), EXESDB_STATE_DIR=str(state), EXESDB_HTTP_ADDR="127.0.0.1:0")
    assert completed.returncode == status, completed.stderr
    assert completed.stdout == ""
    assert completed.stderr.endswith(said.format(path=path, state=state)), completed.stderr
    assert "Traceback" not in completed.stderr
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("command", "status", "said"),
    [
        (
            "outbox list",
            1,
            "exesdb-bridge: cannot open the alert outbox at {path}: file is not a database; set"
            " EXESDB_STATE_DIR to the bridge's state directory (now '{state}'), or, if it is"
            " that, move the file out of the way (the bridge refuses it too)\n",
        ),
        (
            "run",
            2,
            " ERROR bridge: EXESDB_STATE_DIR: cannot open the alert outbox in '{state}': file is"
            " not a database\n",
        ),
    ],
)
def test_a_one_byte_file_is_refused_not_written_over_by_a_new_outbox(
    tmp_path: Path, command: str, status: int, said: str
) -> None:
    """An alerts.sqlite3 of one byte, which SQLite takes for an empty database, is refused as
    any file that is no database is (exit 1; exit 2 at start), and left as it is."""
    state = tmp_path / "state"
    state.mkdir()
    path = state / "alerts.sqlite3"
    path.write_bytes(b"\n")
    completed = cli(*command.split(), EXESDB_STATE_DIR=str(state), EXESDB_HTTP_ADDR="127.0.0.1:0")
    assert completed.returncode == status, completed.stderr
    assert completed.stdout == ""
    assert completed.stderr.endswith(said.format(path=path, state=state)), completed.stderr
    assert path.read_bytes() == b"\n"


def test_outbox_without_an_outbox_points_at_the_demos_when_there_is_one(tmp_path: Path) -> None:
    """Run where `run --demo` left its outbox and no other, `outbox list` says where the demo's
    is and how to read it; with EXESDB_STATE_DIR set, it does not."""
    demo = tmp_path / ".exesdb-bridge-demo"
    demo.mkdir()
    Outbox(demo / "alerts.sqlite3").close()
    listed = cli("outbox", "list", cwd=tmp_path)
    assert listed.returncode == 1
    assert listed.stderr.rstrip().endswith(
        "; `run --demo` keeps its own in ./.exesdb-bridge-demo:"
        " set EXESDB_STATE_DIR=./.exesdb-bridge-demo"
    ), listed.stderr
    assert cli("outbox", "list", cwd=tmp_path, EXESDB_STATE_DIR=str(demo)).returncode == 0
    elsewhere = cli("outbox", "list", cwd=tmp_path, EXESDB_STATE_DIR=str(tmp_path / "other"))
    assert elsewhere.returncode == 1
    assert "--demo" not in elsewhere.stderr


def test_outbox_without_an_outbox_names_the_whole_path_and_the_variable(tmp_path: Path) -> None:
    """Run where the default state directory is not, `outbox list` names the absolute path it
    looked at and EXESDB_STATE_DIR, the folder as the default it is, unset (exit 1); `outbox
    retry` with nothing to retry is a usage error (exit 2) wherever it runs."""
    listed = cli("outbox", "list", cwd=tmp_path)
    assert listed.returncode == 1
    where = tmp_path / ".exesdb-bridge" / "alerts.sqlite3"
    assert listed.stderr == (
        f"exesdb-bridge: no alert outbox at {where}: set EXESDB_STATE_DIR to the bridge's state"
        " directory (unset, so the default './.exesdb-bridge')\n"
    )
    given = cli("outbox", "list", cwd=tmp_path, EXESDB_STATE_DIR="./.exesdb-bridge")
    assert given.stderr.endswith(" state directory (now './.exesdb-bridge')\n"), given.stderr
    retried = cli("outbox", "retry", cwd=tmp_path)
    assert retried.returncode == 2
    assert "outbox retry needs delivery ids or --all" in retried.stderr


def test_run_names_its_outbox_by_the_whole_path(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """The start-up line names the outbox file by its absolute path, since the default state
    directory is relative to the folder the bridge started in."""
    process = _start(bridge_processes, tmp_path, EXESDB_STATE_DIR=".state")
    where = tmp_path / ".state" / "alerts.sqlite3"
    wait_until(lambda: "dead-lettered" in process.log(), 15, "the outbox line")
    assert f"outbox {where}: 0 pending, 0 dead-lettered" in process.log()


def test_run_says_how_to_see_and_resend_the_dead_letters_it_finds(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """Dead letters in the outbox at start are counted on the start-up line with the commands
    that list and resend them, each of which runs as given: nothing else would tell an operator
    they wait."""
    url = "https://hooks.example/x"
    outbox = Outbox.in_dir(tmp_path / "state", urls=[url])
    observe(outbox, event("a"), T0)
    outbox.queue.group(url, T0, 0.0, one_each)
    [dead] = outbox.queue.deliveries()
    outbox.queue.finish_attempt(
        dead.id, state=DeliveryState.DEAD, next_attempt_at=T0, status=400, error="HTTP 400", now=T0
    )
    outbox.close()
    process = _start(bridge_processes, tmp_path, EXESDB_WEBHOOK_URLS=url)
    wait_until(lambda: "dead-lettered" in process.log(), 15, "the outbox line")
    assert (
        ": 0 pending, 1 dead-lettered (`exesdb-bridge outbox list --state dead` lists them,"
        " `exesdb-bridge outbox retry --all` sends them again)"
    ) in process.log()
    [line] = [line for line in process.log().splitlines() if "dead-lettered (" in line]
    for command in re.findall(r"`exesdb-bridge ([^`]+)`", line):
        ran = cli(*command.split(), EXESDB_STATE_DIR=str(tmp_path / "state"))
        assert ran.returncode == 0, (command, ran.stderr)


_OLD_HOOK: Final = "https://hooks.example/old"
_NEW_HOOK: Final = "https://hooks.example/new"


@pytest.mark.parametrize(
    ("dead_for", "urls", "said", "exits"),
    [
        (
            [_OLD_HOOK],
            _NEW_HOOK,
            "1 dead-lettered (`exesdb-bridge outbox list --state dead` lists them; their"
            " receivers are not configured now, so none can be sent again until they are)",
            {"outbox list --state dead": 0},
        ),
        (
            [_OLD_HOOK],
            f"{_NEW_HOOK},{_OLD_HOOK}",
            "1 dead-lettered (`exesdb-bridge outbox list --state dead` lists them,"
            " `exesdb-bridge outbox retry --all` sends them again)",
            {"outbox list --state dead": 0, "outbox retry --all": 0},
        ),
        (
            [_OLD_HOOK, _NEW_HOOK],
            _NEW_HOOK,
            "2 dead-lettered (`exesdb-bridge outbox list --state dead` lists them,"
            " `exesdb-bridge outbox retry --all` sends again the 1 whose receivers are"
            " configured; 1 for receivers not configured now wait until they are)",
            # retry --all names the one it leaves, exit 1, as docs/cli.md says.
            {"outbox list --state dead": 0, "outbox retry --all": 1},
        ),
    ],
)
def test_run_offers_to_resend_only_dead_letters_whose_receiver_is_configured(
    bridge_processes: list[BridgeProcess],
    tmp_path: Path,
    dead_for: list[str],
    urls: str,
    said: str,
    exits: dict[str, int],
) -> None:
    """Dead letters at start for a receiver no longer configured (its URL mistyped, then
    corrected) are not offered to `outbox retry --all`, which leaves them: the start-up line
    says their receivers are not configured, and each command it names does what it says."""
    for number, url in enumerate(dead_for):  # an alert sent to that receiver alone, refused
        outbox = Outbox.in_dir(tmp_path / "state", urls=[url])
        observe(outbox, event(f"a{number}"), T0)
        outbox.queue.group(url, T0, 0.0, one_each)
        [dead] = outbox.queue.deliveries(DeliveryState.PENDING.value)
        outbox.queue.finish_attempt(
            dead.id, state=DeliveryState.DEAD, next_attempt_at=T0, status=400, error="x", now=T0
        )
        outbox.close()
    process = _start(bridge_processes, tmp_path, EXESDB_WEBHOOK_URLS=urls)
    wait_until(lambda: "dead-lettered" in process.log(), 15, "the outbox line")
    [line] = [line for line in process.log().splitlines() if "dead-lettered (" in line]
    assert line.endswith(f": 0 pending, {said}"), line
    ran = {
        command: cli(*command.split(), EXESDB_STATE_DIR=str(tmp_path / "state")).returncode
        for command in re.findall(r"`exesdb-bridge ([^`]+)`", line)
    }
    assert ran == exits


# Set to "" (docker compose's ${X:-}) or to blanks only is unset, for these as for every setting.
_UNSET_BY_BLANKS: Final = (
    "EXESDB_STATE_DIR",
    "EXESDB_NODE",
    "EXESDB_LOG_LEVEL",
    "EXESDB_ALERT_FOR_MS",
    "EXESDB_PUBSUB_INTEGRATION",
    "EXESDB_WEBHOOK_URL",
)


# Where `run --demo` keeps its state without EXESDB_STATE_DIR (docs/configuration.md): the demo
# test below finds its outbox there, and `make clean` must remove it.
_DEMO_STATE_FOLDER: Final = ".exesdb-bridge-demo"


@pytest.mark.parametrize(
    ("empty", "value"),
    [((), ""), (_UNSET_BY_BLANKS, ""), (_UNSET_BY_BLANKS, "  ")],
    ids=["unset", "empty", "blanks"],
)
def test_the_demo_keeps_its_alerts_apart_from_a_real_bridge_run_from_the_same_folder(
    bridge_processes: list[BridgeProcess], tmp_path: Path, empty: tuple[str, ...], value: str
) -> None:
    """`run --demo` without EXESDB_STATE_DIR keeps its state in ./.exesdb-bridge-demo, not the
    ./.exesdb-bridge of a bridge run later from the same folder, whose receivers would otherwise
    be sent the demo's made-up alerts as they escalate."""
    process = BridgeProcess(["--demo"])
    process.env.update(dict.fromkeys(empty, value))
    bridge_processes.append(process)
    process.start(tmp_path)
    wait_until(lambda: "dead-lettered" in process.log(), 15, "the outbox line")
    where = tmp_path / _DEMO_STATE_FOLDER / "alerts.sqlite3"
    assert f"outbox {where}: 0 pending" in process.log()
    assert not (tmp_path / ".exesdb-bridge").exists()
    assert "is not a setting" not in process.log()


def test_the_demo_warns_that_its_alerts_go_to_the_configured_receivers(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """`run --demo` with receivers and Alertmanager configured says at start, as a WARNING,
    that its made-up alerts will be delivered to them, naming the variables, not the URLs."""
    process = BridgeProcess(["--demo"])
    process.env.update(
        {
            "EXESDB_WEBHOOK_URLS": "http://127.0.0.1:9/a?token=s3cret,http://127.0.0.1:9/b",
            "EXESDB_ALERTMANAGER_URL": "http://127.0.0.1:9",
        }
    )
    bridge_processes.append(process)
    process.start(tmp_path)
    wait_until(lambda: "made-up alerts" in process.log(), 15, "the demo's warning")
    [line] = [line for line in process.log().splitlines() if "made-up alerts" in line]
    assert "WARNING" in line
    assert "EXESDB_WEBHOOK_URLS (2 receivers) and EXESDB_ALERTMANAGER_URL" in line
    assert "s3cret" not in process.log()


def test_a_demo_and_a_real_bridge_never_share_a_state_directory(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """A bridge run without --demo on a directory a demo used (as a container's volume is,
    the image setting EXESDB_STATE_DIR) exits 2 naming EXESDB_STATE_DIR before it would deliver
    the demo's made-up alerts; a demo on a real bridge's directory exits 2 too, its outbox
    untouched."""
    demo_dir, real_dir = tmp_path / "demo-volume", tmp_path / "real-volume"
    demo = BridgeProcess(["--demo"], EXESDB_STATE_DIR=str(demo_dir))
    bridge_processes.append(demo)
    demo.start(tmp_path)
    assert demo.stop() == 0
    real = cli("run", EXESDB_STATE_DIR=str(demo_dir), EXESDB_HTTP_ADDR="127.0.0.1:0")
    assert real.returncode == 2
    assert f"EXESDB_STATE_DIR ({demo_dir}) holds the state of a demo" in real.stderr
    checked = cli("check-config", EXESDB_STATE_DIR=str(demo_dir))
    assert checked.returncode == 2
    assert f"EXESDB_STATE_DIR ({demo_dir}) holds the state of a demo" in checked.stderr
    assert "`check-config --demo` checks the configuration `run --demo` starts" in checked.stderr
    assert cli("check-config", "--demo", EXESDB_STATE_DIR=str(demo_dir)).returncode == 0
    first = BridgeProcess(EXESDB_STATE_DIR=str(real_dir))
    bridge_processes.append(first)
    first.start(tmp_path)
    assert first.stop() == 0
    before = (real_dir / "alerts.sqlite3").stat().st_mtime_ns
    again = cli("run", "--demo", EXESDB_STATE_DIR=str(real_dir), EXESDB_HTTP_ADDR="127.0.0.1:0")
    assert again.returncode == 2
    assert f"EXESDB_STATE_DIR ({real_dir}) holds a real bridge's alert outbox" in again.stderr
    checked = cli("check-config", "--demo", EXESDB_STATE_DIR=str(real_dir))
    assert checked.returncode == 2
    assert f"EXESDB_STATE_DIR ({real_dir}) holds a real bridge's alert outbox" in checked.stderr
    assert (real_dir / "alerts.sqlite3").stat().st_mtime_ns == before
    assert not (real_dir / "demo-state").exists()


def test_check_config_demo_checks_the_folder_run_demo_takes_and_makes_nothing(
    tmp_path: Path,
) -> None:
    """`check-config --demo` with EXESDB_STATE_DIR unset shows and checks ./.exesdb-bridge-demo,
    as `run --demo` takes it, without making it; a demo's folder and a refused setting are
    listed together, all mended in one round."""
    checked = cli("check-config", "--demo", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert re.search(r"^EXESDB_STATE_DIR +\./\.exesdb-bridge-demo$", checked.stdout, re.M)
    assert not (tmp_path / _DEMO_STATE_FOLDER).exists()
    demo_dir = tmp_path / "volume"
    demo_dir.mkdir()
    (demo_dir / "demo-state").write_text("marked by a demo\n")
    refused = cli("check-config", EXESDB_STATE_DIR=str(demo_dir), EXESDB_HTTP_ADDR="nowhere")
    assert refused.returncode == 2
    assert "EXESDB_HTTP_ADDR" in refused.stderr
    assert f"EXESDB_STATE_DIR ({demo_dir}) holds the state of a demo" in refused.stderr


def test_a_demo_takes_up_its_own_folder_left_unmarked_by_an_earlier_version(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """`run --demo` without EXESDB_STATE_DIR starts on the ./.exesdb-bridge-demo a demo of a
    version that did not mark it left (an outbox, no demo-state file): it is the demo's own
    folder, not a real bridge's outbox."""
    first = BridgeProcess(["--demo"])
    bridge_processes.append(first)
    first.start(tmp_path)
    assert first.stop() == 0
    (tmp_path / _DEMO_STATE_FOLDER / "demo-state").unlink()
    again = BridgeProcess(["--demo"])
    bridge_processes.append(again)
    again.start(tmp_path)
    assert "holds a real bridge's alert outbox" not in again.log()


def test_a_demo_does_not_wait_on_a_fifo_in_place_of_its_mark(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """`run --demo` on a directory whose demo-state is a FIFO starts without waiting on it for
    a reader (which held start-up and SIGTERM): the FIFO marks the directory as the demo's."""
    state = tmp_path / "state"
    state.mkdir()
    demo = BridgeProcess(["--demo"], EXESDB_STATE_DIR=str(state))
    bridge_processes.append(demo)
    os.mkfifo(state / "demo-state")
    demo.start(tmp_path)  # it waited, without a reader to come, past its start's deadline
    assert demo.stop() == 0


def test_the_demo_on_a_redis_bus_warns_to_run_it_on_one_replica_only(
    bridge_processes: list[BridgeProcess],
    tmp_path: Path,
    redis_server: Callable[[], RedisServer],
) -> None:
    """`run --demo` on a shared Redis bus says at start, as a WARNING, that each replica run
    with --demo publishes the simulated cluster again: its alerts would come once per replica."""
    process = BridgeProcess(["--demo"])
    process.env.update({"EXESDB_BUS": redis_server().url})
    bridge_processes.append(process)
    process.start(tmp_path)
    wait_until(lambda: "on one replica only" in process.log(), 15, "the demo's warning")
    [line] = [line for line in process.log().splitlines() if "on one replica only" in line]
    assert "WARNING" in line


# This Python's SQLite as RHEL 9's (3.34.1), older than the outbox's queries need.
_OLD_SQLITE: Final = """
import sqlite3, sys
sqlite3.sqlite_version_info, sqlite3.sqlite_version = (3, 34, 1), "3.34.1"
from bridge.cli.parser import main
sys.exit(main(sys.argv[1:]))
"""
# This Python's SQLite as one built without the JSON functions: each connection refuses them.
_SQLITE_WITHOUT_JSON: Final = """
import sqlite3, sys
connect = sqlite3.connect
def refused(action, arg1, arg2, *rest):
    json = action == sqlite3.SQLITE_FUNCTION and (arg2 or "").startswith("json")
    return sqlite3.SQLITE_DENY if json else sqlite3.SQLITE_OK
def without_json(*args, **kwargs):
    db = connect(*args, **kwargs)
    db.set_authorizer(refused)
    return db
sqlite3.connect = without_json
from bridge.cli.parser import main
sys.exit(main(sys.argv[1:]))
"""


# The three commands that open the outbox, the status each exits with when it cannot, and the
# words its refusal begins with.
EACH_OUTBOX_OPENER: Final = pytest.mark.parametrize(
    ("command", "status", "begins"),
    [
        ("run", 2, " ERROR bridge: cannot open the alert outbox: "),
        ("check-config", 2, "exesdb-bridge: bad configuration:\n  cannot open the alert outbox: "),
        ("outbox list", 1, "exesdb-bridge: cannot open the alert outbox: "),
    ],
)


@EACH_OUTBOX_OPENER
def test_an_sqlite_too_old_for_the_outbox_is_named_with_the_version_needed(
    tmp_path: Path, command: str, status: int, begins: str
) -> None:
    """On a Python whose SQLite is older than 3.35 (RHEL 9's), the bridge stops at start,
    check-config says so (exit 2) and the outbox command fails, each saying which SQLite it has
    and which it needs, not blaming EXESDB_STATE_DIR, rather than failing at a query later; the
    outbox file is left as it is."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "alerts.sqlite3").write_bytes(b"")  # as a bridge leaves it at its first open
    done = run_command(
        [sys.executable, "-c", _OLD_SQLITE, *command.split()],
        {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(state)},
    )
    output = done.stdout + done.stderr
    assert done.returncode == status, output
    assert f"{begins}this Python's SQLite is 3.34.1; the outbox needs 3.35.0 or newer" in output
    assert "Traceback" not in output
    assert (state / "alerts.sqlite3").read_bytes() == b""


@EACH_OUTBOX_OPENER
def test_an_sqlite_without_json_functions_is_named_at_start(
    tmp_path: Path, command: str, status: int, begins: str
) -> None:
    """On a Python whose SQLite has no JSON functions (built without them), the bridge stops at
    start, check-config says so (exit 2) and the outbox command fails, each naming what SQLite
    lacks, rather than failing at the outbox's first query of them; the outbox file is left as
    it is."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "alerts.sqlite3").write_bytes(b"")  # as a bridge leaves it at its first open
    done = run_command(
        [sys.executable, "-c", _SQLITE_WITHOUT_JSON, *command.split()],
        {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(state)},
        timeout=20,
    )
    output = done.stdout + done.stderr
    assert done.returncode == status, output
    found = f"this Python's SQLite ({sqlite3.sqlite_version}) has no JSON functions"
    assert f"{begins}{found}" in output
    assert "Traceback" not in output
    assert (state / "alerts.sqlite3").read_bytes() == b""


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
    done = run_command(
        [sys.executable, "-c", _BROKEN_START],
        {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(tmp_path / "state")},
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "exesdb-bridge stopped on an unexpected error" in output
    assert "RuntimeError: lost redis://default:<redacted>@cache:6379/… mid-start" in output
    assert "hunter2" not in output


def test_make_clean_removes_the_state_folders_a_bridge_run_from_the_clone_makes() -> None:
    """`make clean` removes ./.exesdb-bridge and the demo's ./.exesdb-bridge-demo alike, so
    no outbox of made-up alerts is left behind."""
    from bridge.settings import Settings

    dry = subprocess.run(
        ["make", "-n", "clean"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    for folder in (Settings.model_fields["state_dir"].default, _DEMO_STATE_FOLDER):
        assert Path(folder).name in dry, folder


def test_outbox_list_redacts_webhook_urls(tmp_path: Path) -> None:
    """`outbox list` shows webhook URLs by origin: credentials, path and query may be tokens."""
    from bridge.sinks.alerts import Outbox

    secret_url = "https://user:hunter2@hooks.example/services/x?token=s3cr3t"
    outbox = Outbox.in_dir(tmp_path, urls=[secret_url])
    observe(outbox, event("a1", requires_ack=False, at=datetime.now(UTC)), now=1.0)
    # One delivery of the queued alert, to the secret URL.
    assert outbox.queue.group(secret_url, 1.0, 0.0, lambda alerts: [(b"{}", ["a1"])]) == 1
    outbox.close()
    for extra in ([], ["--json"]):
        result = cli("outbox", "list", *extra, EXESDB_STATE_DIR=str(tmp_path))
        assert result.returncode == 0, result.stderr
        shown = result.stdout.replace("\\u2026", "…")  # JSON escapes the ellipsis
        assert "https://user:<redacted>@hooks.example/…" in shown
        assert "services" not in result.stdout  # a path may hold a token (Slack-style)
        assert "hunter2" not in result.stdout
        assert "s3cr3t" not in result.stdout


def test_outbox_list_names_its_columns_by_the_keys_of_its_json(tmp_path: Path) -> None:
    """Each column of `outbox list` is named by its `--json` key in upper case and shows that
    key's value, so the id under ID is the one `--json` gives as `id` and `outbox retry` takes."""
    _outbox_of(tmp_path, 2)
    table = cli("outbox", "list", EXESDB_STATE_DIR=str(tmp_path))
    as_json = cli("outbox", "list", "--json", EXESDB_STATE_DIR=str(tmp_path))
    assert (table.returncode, as_json.returncode) == (0, 0), table.stderr + as_json.stderr
    header, *rows = table.stdout.splitlines()
    keys = [column.lower() for column in header.split()]
    deliveries = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert keys[0] == "id"
    assert all(set(keys) <= delivery.keys() for delivery in deliveries), keys
    # Every column but the last (a free-text error) is one word: compare them all.
    shown = [row.split()[: len(keys) - 1] for row in rows]
    expected = [[str(delivery[key]) for key in keys[:-1]] for delivery in deliveries]
    assert shown == expected


def test_outbox_list_json_is_a_line_per_delivery_as_the_cli_page_says(tmp_path: Path) -> None:
    """`outbox list --json` prints one JSON object per delivery, a line each, as docs/cli.md
    says (a script reading it as one document, as `alerts list --json` is, would fail)."""
    _outbox_of(tmp_path, 2)
    as_json = cli("outbox", "list", "--json", EXESDB_STATE_DIR=str(tmp_path))
    assert as_json.returncode == 0, as_json.stderr
    lines = as_json.stdout.splitlines()
    assert len(lines) == 2
    assert all(isinstance(json.loads(line), dict) for line in lines)
    said = " ".join((ROOT / "docs" / "cli.md").read_text().split())
    assert "`--json` prints one JSON object per delivery, a line each (JSON lines" in said


def test_outbox_list_shows_a_time_past_the_year_9999_as_its_last_instant(tmp_path: Path) -> None:
    """`outbox list` of an outbox hand-edited to times past the year 9999 (or before the year 1;
    a next attempt so only around the triggers that refuse it, or from before them) shows them
    as the nearest instant a time can be, in the table and in --json, not a traceback."""
    _outbox_of(tmp_path, 1)
    with contextlib.closing(sqlite3.connect(tmp_path / "alerts.sqlite3")) as db, db:
        db.execute("DROP TRIGGER next_attempt_changed")
        db.execute("UPDATE deliveries SET created_at = 1e12, next_attempt_at = -1e12")
    table = cli("outbox", "list", EXESDB_STATE_DIR=str(tmp_path))
    as_json = cli("outbox", "list", "--json", EXESDB_STATE_DIR=str(tmp_path))
    assert (table.returncode, as_json.returncode) == (0, 0), table.stderr + as_json.stderr
    assert "9999-12-31T23:59:59.999Z" in table.stdout
    [delivery] = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert (delivery["created_at"], delivery["next_attempt_at"]) == (
        "9999-12-31T23:59:59.999Z",
        "0001-01-01T00:00:00.000Z",
    )


def _outbox_of(state_dir: Path, count: int) -> None:
    """An outbox in ``state_dir`` with ``count`` deliveries, one alert each, one after another."""
    from bridge.sinks.alerts import AlertEvent, Outbox

    url = "https://hooks.example/"
    outbox = Outbox.in_dir(state_dir, urls=[url])
    for n in range(count):
        alert = AlertEvent(
            alert_id=f"a{n}",
            alertname="node_failure",
            status="firing",
            severity="critical",
            category="system",
            node=f"n{n}",
            title=f"n{n} is down",
            description="stopped answering",
            requires_ack=False,
            at=datetime.now(UTC),
        )
        observe(outbox, alert, now=1.0 + n)
        assert outbox.queue.group(url, 1.0 + n, 0.0, lambda a: [(b"{}", [a[0].alert_id])]) == 1
    outbox.close()


def test_outbox_list_limit_0_lists_every_delivery_as_alerts_list_does(tmp_path: Path) -> None:
    """`outbox list --limit N` lists the N newest deliveries, and --limit 0 every one, as
    `alerts list --limit 0` lists every alert (with --json too)."""
    _outbox_of(tmp_path, 3)
    for extra, rows in (([], 1), (["--json"], 0)):  # the table has a header line
        listed = {}
        for limit in ("2", "0"):
            result = cli("outbox", "list", "--limit", limit, *extra, EXESDB_STATE_DIR=str(tmp_path))
            assert result.returncode == 0, result.stderr
            listed[limit] = len(result.stdout.splitlines()) - rows
        assert listed == {"2": 2, "0": 3}, extra


def test_outbox_list_of_an_empty_outbox_names_the_file_it_read(tmp_path: Path) -> None:
    """An outbox with no deliveries is said to be empty by its whole path, so a user whose bridge
    runs with another EXESDB_STATE_DIR (its status page showing deliveries waiting) sees that
    the command read another folder's outbox, not that the bridge has none."""
    Outbox.in_dir(tmp_path, urls=["https://hooks.example/"]).close()
    listed = cli("outbox", "list", EXESDB_STATE_DIR=str(tmp_path))
    assert (listed.returncode, listed.stdout) == (0, "")
    assert listed.stderr == (
        f"exesdb-bridge: no deliveries in the alert outbox at {tmp_path / 'alerts.sqlite3'}\n"
    )


def test_outbox_list_says_on_stderr_how_many_its_limit_left_out_as_alerts_list_does(
    tmp_path: Path,
) -> None:
    """`outbox list --limit N` below the outbox's count says on stderr how many deliveries of how
    many it left out, in `alerts list`'s words, with --json too (stdout stays JSON lines); a
    limit that lists every one, --limit 0 and the default say nothing."""
    _outbox_of(tmp_path, 3)
    for extra in ([], ["--json"]):
        two = cli("outbox", "list", "--limit", "2", *extra, EXESDB_STATE_DIR=str(tmp_path))
        assert two.returncode == 0, two.stderr
        assert two.stderr == (
            "exesdb-bridge: 1 of 3 deliveries not shown, the 2 newest listed: --limit 0 lists all\n"
        )
        if extra:
            assert [json.loads(line)["alerts"] for line in two.stdout.splitlines()] == [1, 1]
        for every in (["--limit", "3"], ["--limit", "0"], []):
            listed = cli("outbox", "list", *every, *extra, EXESDB_STATE_DIR=str(tmp_path))
            assert (listed.returncode, listed.stderr) == (0, ""), every
    dead = cli("outbox", "list", "--state", "dead", "--limit", "1", EXESDB_STATE_DIR=str(tmp_path))
    assert (dead.returncode, dead.stderr) == (
        0,
        f"exesdb-bridge: no dead deliveries in the alert outbox at {tmp_path / 'alerts.sqlite3'}\n",
    )


def test_outbox_list_says_on_stderr_how_many_notifications_wait_to_be_grouped(
    tmp_path: Path,
) -> None:
    """A notification in its grouping window (the bridge killed within it) is no delivery yet:
    `outbox list` (and `--state pending`, `--json`) says on stderr that it waits, unlisted,
    where the bridge's start counts it pending; `--state dead` does not."""
    from bridge.sinks.alerts import Outbox

    outbox = Outbox.in_dir(tmp_path, urls=["https://hooks.example/"])
    observe(outbox, event("a1", requires_ack=False, at=datetime.now(UTC)), now=1.0)
    outbox.close()
    said = (
        "exesdb-bridge: 1 alert notification(s) not yet in a delivery, not listed: waiting out"
        " the grouping window (EXESDB_WEBHOOK_GROUP_WAIT_MS), they are sent by the bridge that"
        " runs on this EXESDB_STATE_DIR\n"
    )
    for extra in ([], ["--state", "pending"], ["--json"]):
        listed = cli("outbox", "list", *extra, EXESDB_STATE_DIR=str(tmp_path))
        assert listed.returncode == 0, listed.stderr
        assert listed.stderr.endswith(said), (extra, listed.stderr)
    dead = cli("outbox", "list", "--state", "dead", EXESDB_STATE_DIR=str(tmp_path))
    assert (dead.returncode, dead.stderr) == (
        0,
        f"exesdb-bridge: no dead deliveries in the alert outbox at {tmp_path / 'alerts.sqlite3'}\n",
    )


def test_outbox_list_beside_a_bridge_started_again_sees_what_the_bridge_writes_after_it(
    tmp_path: Path,
) -> None:
    """`outbox list` beside a bridge started again on its outbox leaves the bridge's log in
    place: what the bridge writes after the listing is in the next one, not lost."""
    Outbox.in_dir(tmp_path, urls=["https://hooks.example/"]).close()  # the bridge's first run
    outbox = Outbox.in_dir(tmp_path, urls=["https://hooks.example/"])  # and its next
    try:
        first = cli_process("outbox", "list", EXESDB_STATE_DIR=str(tmp_path))
        assert first.returncode == 0, first.stderr
        observe(outbox, event("a1", requires_ack=False, at=datetime.now(UTC)), now=1.0)
        listed = cli_process("outbox", "list", EXESDB_STATE_DIR=str(tmp_path))
        assert listed.returncode == 0, listed.stderr
        assert "1 alert notification(s) not yet in a delivery" in listed.stderr
        assert (tmp_path / f"{FILE_NAME}-wal").exists()
    finally:
        outbox.close()


# -- finding the bridge, usage errors, output --


def _ingest(process: ThreadedBridge, count: int) -> None:
    ingest_alerts(process.url, [f"alert-{number:04d}" for number in range(count)])


def test_with_only_the_http_addr_set_publish_and_alerts_reach_that_bridge(
    bridges: Bridges, tmp_path: Path
) -> None:
    """On a port that is not the default, with no --url and no EXESDB_URL, publish and alerts
    list find the bridge through EXESDB_HTTP_ADDR (a wildcard host asked on loopback)."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true", EXESDB_HTTP_ADDR="0.0.0.0:0")
    env: dict[str, Any] = {
        "EXESDB_HTTP_ADDR": f"0.0.0.0:{bridge.port}",
        "SECRET_KEY_BASE": TEST_SECRET,
        "EXESDB_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    published = cli(
        "publish", "system_alert", "--topic", "disk_full", *ALERT_FIELDS, "-f", "alert_id=a1",
        **env,
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout) == {"accepted": 1}
    listed = cli("alerts", "list", **env)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == [
        "ALERT_ID",
        "STATE",
        "LEVEL",
        "SEVERITY",
        "ALERTNAME",
        "NODE",
        "SINCE",
        "TITLE",
    ]
    assert row.split()[:5] == ["a1", "firing", "level1", "critical", "disk_full"]
    assert row.endswith("  Node down")


def test_alerts_list_shows_the_alerts_that_want_attention_unless_asked_for_every_one(
    bridges: Bridges, tmp_path: Path
) -> None:
    """`alerts list` lists firing and acknowledged alerts, most recently changed first, with
    their titles cut to 60 characters; resolved ones only with `--state resolved` or `--state
    all`, which lists every alert."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")
    env: dict[str, Any] = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN, "EXESDB_URL": bridge.url}
    long_title = "disk full on /var/lib/exesdb " + "x" * 80
    for alert_id, title in (("gone", "fixed since"), ("old", "first"), ("new", long_title)):
        published = cli(
            "publish", "system_alert", "--topic", "disk_full", *ALERT_FIELDS,
            "-f", f"alert_id={alert_id}", "-f", f"title={title}", "--url", bridge.url,
            SECRET_KEY_BASE=TEST_SECRET,
        )  # fmt: skip
        assert published.returncode == 0, published.stderr
    wait_until(lambda: len(listed_alerts(bridge.url)) == 3, 15, "3 alerts")
    for alert_id, extra in (("old", []), ("gone", ["--resolution", "fixed"])):
        acked = cli("alerts", "ack", alert_id, "--by", "alice", *extra, **env)
        assert acked.returncode == 0, acked.stderr

    listed = cli("alerts", "list", **env)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert [row[:2] for row in rows] == [["old", "acknowledged"], ["new", "firing"]]
    cut = listed.stdout.splitlines()[2].split("  ")[-1]
    assert cut == long_title[:59] + "…"
    every = cli("alerts", "list", "--state", "all", **env)
    assert [line.split()[:2] for line in every.stdout.splitlines()[1:]] == [
        ["gone", "resolved"],
        ["old", "acknowledged"],
        ["new", "firing"],
    ]
    resolved = cli("alerts", "list", "--state", "resolved", "--json", **env)
    assert [alert["alert_id"] for alert in json.loads(resolved.stdout)["alerts"]] == ["gone"]


def test_alerts_ack_since_an_episode_that_ended_acknowledges_nothing(
    bridges: Bridges, tmp_path: Path
) -> None:
    """`alerts ack --since TIME` (the alert's SINCE as `alerts list` showed it) typed after the
    alert resolved and fired again exits 1 saying so, the alert firing since left as it is;
    with that one's SINCE, typed in lower case (RFC 3339 allows it, the bridge reads it), it
    acknowledges it."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")
    env: dict[str, Any] = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN, "EXESDB_URL": bridge.url}
    ingest_alerts(bridge.url, ["a1"])
    [first] = wait_until(lambda: listed_alerts(bridge.url), 15, "a1")
    fixed = cli("alerts", "ack", "a1", "--by", "alice", "--resolution", "fixed", **env)
    assert fixed.returncode == 0, fixed.stderr
    ingest_alerts(bridge.url, ["a1"])
    [second] = wait_until(
        lambda: [a for a in listed_alerts(bridge.url) if a["state"] == "firing"],
        15,
        "a1 firing again",
    )
    late = cli("alerts", "ack", "a1", "--by", "bob", "--since", str(first["starts_at"]), **env)
    assert late.returncode == 1
    assert "409" in late.stderr
    assert f"started at {second['starts_at']}, not at the" in late.stderr
    assert "it fired again since" in late.stderr
    assert [a["state"] for a in listed_alerts(bridge.url)] == ["firing"]
    since = str(second["starts_at"]).lower()
    acked = cli("alerts", "ack", "a1", "--by", "bob", "--since", since, **env)
    assert acked.returncode == 0, acked.stderr
    assert acked.stdout.splitlines()[1].split()[:2] == ["a1", "acknowledged"]


def test_alerts_ack_with_a_resolution_of_an_alert_resolved_already_says_nothing_changed(
    bridges: Bridges, tmp_path: Path
) -> None:
    """`alerts ack --resolution` of an alert that resolved before it (by its resolve timeout,
    unacknowledged, or after someone else's ack) says on stderr it was resolved already, exit 0:
    the table shows it resolved, but not by this ack, whose resolution is not recorded."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true", EXESDB_ALERT_RESOLVE_TIMEOUT_MS="100")
    env: dict[str, Any] = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN, "EXESDB_URL": bridge.url}
    fields = [f if f != "severity=critical" else "severity=warning" for f in ALERT_FIELDS]
    # A warning resolves by itself; one that requires an ack, only once acknowledged.
    for alert_id, requires_ack in (("quiet", "false"), ("acked", "true")):
        published = cli(
            "publish", "system_alert", "--topic", "disk_full", *fields,
            "-f", f"alert_id={alert_id}", "-f", f"requires_ack={requires_ack}",
            "--url", bridge.url, SECRET_KEY_BASE=TEST_SECRET,
        )  # fmt: skip
        assert published.returncode == 0, published.stderr
    wait_until(lambda: len(listed_alerts(bridge.url)) == 2, 15, "2 alerts")
    assert cli("alerts", "ack", "acked", "--by", "alice", **env).returncode == 0
    wait_until(
        lambda: {a["state"] for a in listed_alerts(bridge.url)} == {"resolved"},
        15,
        "both resolved by their timeout",
    )
    for alert_id in ("quiet", "acked"):
        late = cli("alerts", "ack", alert_id, "--by", "bob", "--resolution", "disk replaced", **env)
        assert late.returncode == 0, late.stderr
        assert late.stdout.splitlines()[1].split()[:2] == [alert_id, "resolved"]
        assert late.stderr == (
            f"exesdb-bridge: alert {alert_id} was resolved already; nothing changed\n"
        )


@pytest.mark.parametrize(
    "since",
    [
        "yesterday",
        "2026-12-05 lunchtime",
        "1733400000",
        # ISO 8601 forms Python reads and the bridge, as RFC 3339, does not.
        "2026-12-05T11:40:00+02",
        "20261205T114000Z",
        " 2026-12-05T11:40:00Z",
    ],
)
def test_alerts_ack_since_a_time_that_is_none_is_a_usage_error_naming_the_option(
    since: str,
) -> None:
    """`alerts ack --since` with no RFC 3339 time exits 2 naming --since and the form meant,
    nothing sent (the bridge, not reached here, would have refused its starts_at field)."""
    nobody = f"http://127.0.0.1:{free_port()}"
    refused = cli(
        "alerts", "ack", "a1", "--by", "bob", "--since", since,
        EXESDB_ADMIN_TOKEN=ADMIN_TOKEN, EXESDB_URL=nobody,
    )  # fmt: skip
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.endswith(
        f"exesdb-bridge alerts ack: error: argument --since: {since!r} is no time: give the"
        " alert's SINCE as alerts list shows it (RFC 3339, such as 2026-12-05T11:40:00.123Z)\n"
    )


def test_alerts_list_prints_the_most_recently_changed_up_to_its_limit_and_says_how_many_not(
    bridges: Bridges, tmp_path: Path
) -> None:
    """`alerts list --limit N` prints the N most recently changed alerts (with --json too) and
    says on stderr how many it left out of how many; --limit 0 prints every one, and so does the
    default of 50 here; a negative or non-numeric limit is a usage error."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")
    env: dict[str, Any] = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN, "EXESDB_URL": bridge.url}
    for alert_id in ("a1", "a2", "a3", "a4"):
        ingest_alerts(bridge.url, [alert_id])  # one at a time: each changed after the one before
    wait_until(lambda: len(listed_alerts(bridge.url)) == 4, 15, "4 alerts")
    acked = cli("alerts", "ack", "a1", "--by", "alice", **env)  # a1 now the latest changed
    assert acked.returncode == 0, acked.stderr

    two = cli("alerts", "list", "--limit", "2", **env)
    assert two.returncode == 0, two.stderr
    assert [line.split()[0] for line in two.stdout.splitlines()[1:]] == ["a1", "a4"]
    assert two.stderr == (
        "exesdb-bridge: 2 of 4 alerts not shown, the 2 most recently changed listed: --limit 0"
        " lists all\n"
    )
    one = cli("alerts", "list", "--limit", "1", "--json", **env)
    assert [alert["alert_id"] for alert in json.loads(one.stdout)["alerts"]] == ["a1"]
    assert "3 of 4 alerts not shown" in one.stderr
    for every in (["--limit", "0"], []):
        listed = cli("alerts", "list", *every, **env)
        assert (listed.returncode, listed.stderr) == (0, ""), every
        rows = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
        assert rows == ["a1", "a4", "a3", "a2"], every
    for bad in ("-1", "ten"):
        refused = cli("alerts", "list", "--limit", bad, **env)
        assert refused.returncode == 2
        assert f"{bad!r} is not a whole number of 0 or more" in refused.stderr


def test_alerts_on_a_redis_replica_without_the_lease_name_the_replica_that_holds_it(
    tmp_path: Path, redis_server: Callable[[], RedisServer]
) -> None:
    """Of two replicas on one real Redis, GET /v1/alerts names the lease holder at either (its
    consumer name), and `alerts list` (with --json too) and an `alerts ack` the other replica
    answers 404 say on stderr that it does not hold the lease, naming the one that does, as the
    status page's banner does."""
    redis = redis_server()
    bus = {"EXESDB_BUS": redis.url, "EXESDB_REDIS_CLAIM_IDLE_MS": CLAIM_IDLE_MS}
    with page_bridge(tmp_path / "one", EXESDB_NODE="bridge-1", **bus) as holder:
        wait_until(lambda: sink_of(holder).holds_work_queue(), 15, "bridge-1 holds the lease")
        name = sink_of(holder).work_queue_holder()
        assert name is not None
        assert name.startswith("bridge-1:")
        with page_bridge(tmp_path / "two", EXESDB_NODE="bridge-2", **bus) as other:
            # bridge-2 reads the holder's name when it finds the lease taken, about once a second.
            wait_until(lambda: sink_of(other).work_queue_holder() == name, 15, "bridge-2 sees it")
            answers = {}
            for replica in (holder, other):
                status, body = http_get(
                    replica.url + "/v1/alerts", {"Authorization": f"Bearer {ADMIN_TOKEN}"}
                )
                assert status == 200
                answers[replica.url] = json.loads(body)
            env: dict[str, Any] = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN}
            listed = cli("alerts", "list", "--url", other.url, **env)
            as_json = cli("alerts", "list", "--json", "--url", other.url, **env)
            acked = cli("alerts", "ack", "gone-1", "--by", "ops", "--url", other.url, **env)
            at_holder: list[subprocess.CompletedProcess[str]] = []

            def holder_lists_without_a_warning() -> bool:
                # On a loaded host a 1.5 s lease can lapse for a moment: the holder then warns.
                at_holder[:] = [cli("alerts", "list", "--url", holder.url, **env)]
                return "work-queue lease" not in at_holder[0].stderr

            wait_until(holder_lists_without_a_warning, 15, "the holder lists with no warning")
    assert answers[other.url] == {
        "alerts": [],
        "work_queue_holder": False,
        "work_queue_holder_name": name,
        "work_queue_lease": "elsewhere",
    }
    assert answers[holder.url]["work_queue_holder_name"] == name  # its own
    warning = (
        f"exesdb-bridge: the replica at {other.url} does not hold the work-queue lease: its alerts"
        f" may be missing or out of date; ask the replica that holds it: {name}"
        " (exesdb_redis_work_queue_leader 1 on its /metrics)\n"
    )
    assert listed.returncode == 0
    assert listed.stderr.endswith(warning)
    assert (as_json.returncode, as_json.stderr) == (0, warning)
    assert json.loads(as_json.stdout)["work_queue_holder_name"] == name
    assert acked.returncode == 1
    assert acked.stderr.endswith(warning)
    assert at_holder[0].returncode == 0


@pytest.mark.integration
def test_alerts_on_a_replica_cut_off_from_redis_say_the_lease_holder_cannot_be_known(
    tmp_path: Path, redis_server: Callable[[], RedisServer]
) -> None:
    """With Redis stopped under a running replica that held the work-queue lease, once its lease
    lapsed GET /v1/alerts says work_queue_lease unknown, and `alerts list` and the status page
    say which replica holds the lease cannot be known because Redis is unreachable, not to ask
    the replica that holds it."""
    redis = redis_server()
    bus = {"EXESDB_BUS": redis.url, "EXESDB_REDIS_CLAIM_IDLE_MS": CLAIM_IDLE_MS}
    env: dict[str, Any] = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN}
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with page_bridge(tmp_path / "one", EXESDB_NODE="bridge-1", **bus) as replica:
        wait_until(lambda: sink_of(replica).holds_work_queue(), 15, "bridge-1 holds the lease")
        redis.stop()

        def answer() -> dict[str, Any]:
            status, body = http_get(replica.url + "/v1/alerts", auth)
            assert status == 200
            return dict(json.loads(body))

        # The lease lapses a lease (EXESDB_REDIS_CLAIM_IDLE_MS) after its last renewal, which
        # only a failed command to Redis tells (and Redis stays stopped).
        wait_until(lambda: answer()["work_queue_holder"] is False, 15, "the lease lapsed")
        listed = cli("alerts", "list", "--url", replica.url, **env)
        status, page = http_get(replica.url + "/")
        said = answer()
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.endswith(
        f"exesdb-bridge: the replica at {replica.url} cannot use Redis, so which replica holds "
        "the work-queue lease cannot be known there: its alerts may be missing or out of date "
        "(its /readyz says why: Redis unreachable, or refusing the bridge); batches ingested "
        "there meanwhile wait in its spool on disk and are handled once Redis is back, and "
        "notifications already in its outbox are still sent\n"
    )
    assert "ask the replica that holds it" not in listed.stderr
    assert status == 200
    text = page.decode()
    assert (
        "<b>This replica cannot use Redis, so which replica holds the alert work-queue lease"
        " cannot be known here:</b>" in text
    )
    assert "This replica does not hold the alert work-queue lease" not in text
    assert alert_card(text) == ("warn", "none here; may be incomplete (cannot use Redis)")
    assert (
        "No active alerts on this replica, which cannot use Redis: which replica holds the"
        " alert work-queue lease, and so the cluster&#x27;s alerts, cannot be known here." in text
    )
    assert "the replica that holds it may have some" not in text
    assert said.get("work_queue_lease") == "unknown"


@pytest.fixture
def lease_moving_replica() -> Iterator[str]:
    """The URL of a real HTTP server on loopback answering GET /v1/alerts as a Redis replica
    that takes the work-queue lease between the requests for firing and acknowledged alerts:
    without it (naming bridge-2) for the first, holding it (naming itself, bridge-1) after."""

    class Replica(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state = parse_qs(urlsplit(self.path).query).get("state", [""])[0]
            held = state != "firing"
            holder = "bridge-1:aa" if held else "bridge-2:bb"
            body = json.dumps(
                {"alerts": [], "work_queue_holder": held, "work_queue_holder_name": holder}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Replica)
    # shutdown() returns once the loop next looks, every poll_interval (0.5 s by default).
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_alerts_list_says_the_lease_moved_while_listing_not_that_the_replica_should_ask_itself(
    lease_moving_replica: str,
) -> None:
    """When a replica takes the work-queue lease between the requests for the two states,
    `alerts list` says the lease moved while it listed and to list again, never that it does
    not hold the lease and to ask itself; --json names the replica an answer without the lease
    named."""
    env: dict[str, Any] = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN}
    listed = cli("alerts", "list", "--url", lease_moving_replica, **env)
    as_json = cli("alerts", "list", "--json", "--url", lease_moving_replica, **env)
    moved = (
        f"exesdb-bridge: the work-queue lease moved to or from the replica at"
        f" {lease_moving_replica} while it listed its alerts: they may be missing or out of"
        " date; list them again\n"
    )
    assert (listed.returncode, as_json.returncode) == (0, 0)
    assert listed.stderr.endswith(moved)
    assert as_json.stderr == moved
    assert "bridge-1" not in listed.stderr + as_json.stderr
    answer = json.loads(as_json.stdout)
    assert (answer["work_queue_holder"], answer["work_queue_holder_name"]) == (False, "bridge-2:bb")


def test_exesdb_url_is_asked_before_the_http_addr_and_url_before_both(
    bridges: Bridges, tmp_path: Path
) -> None:
    """EXESDB_URL wins over EXESDB_HTTP_ADDR, and --url over EXESDB_URL."""
    bridge = bridges(tmp_path)
    nowhere = f"http://127.0.0.1:{free_port()}"
    env: dict[str, Any] = {
        "EXESDB_ADMIN_TOKEN": ADMIN_TOKEN,
        "EXESDB_HTTP_ADDR": f"127.0.0.1:{free_port()}",
    }
    empty = cli("alerts", "list", EXESDB_URL=bridge.url, **env)
    assert (empty.returncode, empty.stdout, empty.stderr) == (
        0,
        "",
        "exesdb-bridge: no firing or acknowledged alerts (--state all lists resolved ones too)\n",
    )
    assert cli("alerts", "list", "--url", bridge.url, EXESDB_URL=nowhere, **env).returncode == 0
    missed = cli("alerts", "list", EXESDB_URL=nowhere, **env)
    assert missed.returncode == 1
    assert f"cannot reach the bridge at {nowhere}: Connection refused (" in missed.stderr
    assert "EXESDB_HTTP_ADDR" in missed.stderr  # says where the address comes from


def test_alerts_list_of_one_state_says_none_of_that_state(bridges: Bridges, tmp_path: Path) -> None:
    """`alerts list --state resolved` listing none says no resolved alerts, not "no alerts",
    which read as though the bridge held none at all; `--state all` says no alerts."""
    bridge = bridges(tmp_path)
    env: dict[str, Any] = {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN, "EXESDB_URL": bridge.url}
    resolved = cli("alerts", "list", "--state", "resolved", **env)
    every = cli("alerts", "list", "--state", "all", **env)
    assert (resolved.returncode, resolved.stdout, resolved.stderr) == (
        0,
        "",
        "exesdb-bridge: no resolved alerts (--state all lists every state)\n",
    )
    assert (every.returncode, every.stdout, every.stderr) == (0, "", "exesdb-bridge: no alerts\n")


def test_an_untrusted_certificate_is_told_by_openssl_s_reason(untrusted_tls_port: int) -> None:
    """A bridge whose certificate no trusted CA signed: OpenSSL's reason as it reads and the hint,
    not aiohttp's text around the error's args tuple (``ssl:True [SSLCertVerificationError: (1,
    '[SSL: …')]``)."""
    url = f"https://127.0.0.1:{untrusted_tls_port}"
    refused = cli("alerts", "list", "--url", url, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        f"exesdb-bridge: TLS with {url} failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate "
        "verify failed: "
    )
    assert refused.stderr.endswith(" (--cacert names a CA to trust)\n")
    assert "(1, '" not in refused.stderr


def test_a_certificate_for_another_host_says_to_ask_by_its_name_not_for_a_ca(
    tls_port_for_another_name: tuple[int, Path],
) -> None:
    """A certificate the --cacert CA verifies, for another host than the URL's: the hint says to
    ask by a name it holds, not to trust a CA (trusted already)."""
    port, ca_file = tls_port_for_another_name
    url = f"https://127.0.0.1:{port}"
    refused = cli(
        "alerts", "list", "--url", url, "--cacert", str(ca_file), EXESDB_ADMIN_TOKEN=ADMIN_TOKEN
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"exesdb-bridge: TLS with {url} failed: ")
    assert "IP address mismatch" in refused.stderr
    assert refused.stderr.endswith(
        " (its certificate is not for the host asked: give --url (or EXESDB_URL) a host name or"
        " address its certificate holds)\n"
    )


@pytest.mark.parametrize(
    ("cacert", "problem"),
    [
        ("missing.pem", "No such file or directory"),
        (".", "Is a directory"),
        ("notes.txt", "holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
    ],
)
def test_a_cacert_that_will_not_load_is_one_line_naming_the_file(
    cacert: str, problem: str, tmp_path: Path
) -> None:
    """A --cacert missing, a folder or holding no certificate exits 2 in one line naming the
    file and why, as examples/sign.py and sign.sh say it (not OpenSSL's code and source line)."""
    (tmp_path / "notes.txt").write_text("no certificate here\n")
    refused = cli(
        "alerts", "list", "--cacert", cacert, cwd=tmp_path, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN
    )
    assert refused.returncode == 2
    assert refused.stderr == f"exesdb-bridge: --cacert {cacert}: {problem}\n"


@pytest.mark.parametrize("damaged", DAMAGED_CA_NAMES)
def test_a_cacert_holding_a_damaged_certificate_is_told_as_damaged(
    damaged: str, tmp_path: Path
) -> None:
    """A --cacert whose PEM armour holds a certificate OpenSSL cannot read (its base64 or its
    DER damaged) exits 2 naming the line of that certificate and its damage (or, each reading
    alone, that another block is at fault), not as a file holding no PEM certificate."""
    cacert, said = damaged_ca_files(tmp_path)[damaged]
    refused = cli("alerts", "list", "--cacert", cacert, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert refused.returncode == 2
    assert refused.stderr == f"exesdb-bridge: --cacert {cacert}: {said}\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["publish", "system_alert", "--url", "notaurl"], "--url: not a URL; allowed: an http://"),
        (["publish", "system_alert", "--url", "127.0.0.1:8080"], "e.g. http://127.0.0.1:8080"),
        (["publish", "system_alert", "--url", "ftp://h/x"], "--url: 'ftp://h/…' is not an http://"),
        (
            ["alerts", "list", "--url", "http://127.0.0.1:99999"],
            "--url: its port is not a number from 0 to 65535",
        ),
        (
            ["alerts", "list", "--url", "http://127.0.0.1:9571/?x=1"],
            "--url: has a query or fragment (? or #), after which the paths the commands add"
            " (/v1/alerts, /v1/messages) would land; allowed: the bridge's URL without them,"
            " e.g. http://127.0.0.1:9571",
        ),
        (
            ["publish", "system_alert", "--url", "http://127.0.0.1:9571#top"],
            "--url: has a query or fragment (? or #)",
        ),
        (
            ["publish", "system_alert", "--topic", "node failure"],
            "--topic: topic 'node failure' must be 1-128 characters",
        ),
        (["publish", "performance_metric", "-f", "value"], "--field 'value' must be name=value"),
        (["publish", "performance_metric", "-f", "=12"], "--field '=12' must be name=value"),
        (["tail", "--count", "-1"], "--count: '-1' is not a whole number of at least 1"),
        (["tail", "--count", "0"], "--count: '0' is not a whole number of at least 1"),
        (["outbox", "list", "--limit", "-1"], "--limit: '-1' is not a whole number of 0 or more"),
        (["alerts", "list", "--limit", "x"], "--limit: 'x' is not a whole number of 0 or more"),
        (["alerts", "list", "--user", ":pw"], "--user: must be USER:PASSWORD or USER"),
        # Refused before a request is sent, as a usage error (the bridge would refuse ack_by).
        (["alerts", "ack", "a1", "--by", ""], "--by: '' names no one: give who acknowledges"),
        (["alerts", "ack", "a1", "--by", " \t"], "--by: ' \\t' names no one"),
    ],
)
def test_usage_errors_exit_2_naming_the_option(args: list[str], message: str) -> None:
    """A --url that is no http(s) URL, a --count below 1, an empty --by and the like are usage
    errors (exit 2)."""
    completed = cli(*args, SECRET_KEY_BASE=TEST_SECRET, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert completed.returncode == 2
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr


def test_alerts_list_into_head_ends_quietly(bridges: Bridges, tmp_path: Path) -> None:
    """`alerts list | head -3` prints the header and two alerts, no BrokenPipeError, exit 0
    (with pipefail, so the exit status is the command's own)."""
    bridge = bridges(tmp_path, EXESDB_INGEST="true")
    _ingest(bridge, 1000)  # far more output than a pipe holds
    completed = subprocess.run(
        [
            "bash",
            "-o",
            "pipefail",
            "-c",
            # --limit 0: every alert, far more than a pipe holds (50, the default, fit in it).
            f"{sys.executable} -m bridge alerts list --limit 0 --url {bridge.url} | head -3",
        ],
        env=bridge_env(EXESDB_ADMIN_TOKEN=ADMIN_TOKEN),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert len(completed.stdout.splitlines()) == 3
    assert completed.stdout.startswith("ALERT_ID")
    assert completed.stderr == ""
    assert completed.returncode == 0  # a reader that stops early is no failure


@pytest.mark.parametrize(
    "args",
    [
        ("alerts", "list", "--url", "{url}"),
        ("publish", "performance_metric", "-f", "metric_name=q", "-f", "value=1", "-f", "unit=m",
         "-f", "component=c", "--url", "{url}"),
        ("healthcheck", "--timeout", "60"),  # its light path, not bridge.cli
    ],
    ids=["alerts", "publish", "healthcheck"],
)  # fmt: skip
def test_ctrl_c_while_waiting_on_the_bridge_exits_130_without_a_traceback(
    args: tuple[str, ...],
) -> None:
    """Ctrl-C while a client command waits for a bridge that does not answer stops it quietly:
    exit 130 (as a shell reports Ctrl-C), nothing but what it printed before."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        addr = f"127.0.0.1:{silent.getsockname()[1]}"
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge", *(arg.format(url=f"http://{addr}") for arg in args)],
            env=bridge_env(
                EXESDB_ADMIN_TOKEN=ADMIN_TOKEN, SECRET_KEY_BASE=TEST_SECRET, EXESDB_HTTP_ADDR=addr
            ),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # As in a terminal's foreground: a suite started in the background (``make test &``)
            # passes on SIGINT ignored, and the command would rightly keep ignoring it.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            silent.settimeout(60)
            connection, _ = silent.accept()
            with connection:
                connection.settimeout(60)
                assert connection.recv(65536)  # the request is out: the command waits
                process.send_signal(signal.SIGINT)
                out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:  # failed: leave no process behind for later tests
                process.kill()
                process.communicate()
    assert process.returncode == 130
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err
    assert out == ""


# Ctrl-C pressed while a command's modules are still importing, made certain: the import of
# what the commands share (every command's, ``run``'s too, which needs no parser) raises
# KeyboardInterrupt, as Python does when SIGINT comes then.
INTERRUPTED_IMPORT: Final = """
import sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "bridge.cli.shared":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, CtrlC())
from bridge.__main__ import main

sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("args", [("alerts", "list"), ("run",), ("check-config",)], ids=" ".join)
def test_ctrl_c_while_the_command_is_still_importing_exits_130_without_a_traceback(
    args: tuple[str, ...],
) -> None:
    """Ctrl-C pressed just after the command is typed, while its modules import, stops it as
    quietly as later on: exit 130, no traceback."""
    completed = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_IMPORT, *args],
        env=bridge_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (completed.returncode, completed.stdout, completed.stderr) == (130, "", "")


def test_outbox_retry_names_unknown_and_live_deliveries(tmp_path: Path) -> None:
    """`outbox retry` with an id that is unknown (naming the outbox file it is not in) or not
    dead-lettered names each such id, says nothing retried and exits 1 without changing
    anything, no count of retried deliveries on stdout; given the dead-lettered one alone, it
    goes back to pending and keeps its count of attempts and its creation time (CREATED_AT: the
    alert's real age), its retry time shown beside it."""
    url = "https://hooks.example/x"
    outbox = Outbox.in_dir(tmp_path, urls=[url])
    observe(outbox, event("a"), T0)
    observe(outbox, event("b"), T0)
    outbox.queue.group(url, T0, 0.0, one_each)
    dead, live = outbox.queue.deliveries()
    for attempt in range(3):
        outbox.queue.finish_attempt(
            dead.id,
            state=DeliveryState.DEAD if attempt == 2 else DeliveryState.PENDING,
            next_attempt_at=T0,
            status=503,
            error="HTTP 503",
            now=T0,
        )
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    refused = cli("outbox", "retry", "nosuchid", live.id, dead.id, "nosuchid", "other", **env)
    assert (refused.returncode, refused.stdout) == (1, "")
    looked_in = f"in the alert outbox at {tmp_path / FILE_NAME} (see `outbox list`)"
    assert refused.stderr.splitlines() == [
        f"exesdb-bridge: no delivery 'nosuchid' {looked_in}",
        f"exesdb-bridge: delivery '{live.id}' is pending, not dead-lettered",
        f"exesdb-bridge: no delivery 'other' {looked_in}",
        "exesdb-bridge: nothing retried, not even the 1 dead-lettered delivery named: retry"
        " without the ids above",
    ]
    unknown = cli("outbox", "retry", "nosuchid", **env)
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert unknown.stderr == f"exesdb-bridge: no delivery 'nosuchid' {looked_in}\n"
    states = {
        json.loads(line)["id"]: json.loads(line)["state"]
        for line in cli("outbox", "list", "--json", **env).stdout.splitlines()
    }
    assert states == {dead.id: "dead", live.id: "pending"}
    completed = cli("outbox", "retry", dead.id, **env)
    assert (completed.returncode, completed.stderr) == (0, "")
    assert completed.stdout == "1 dead-lettered delivery back to pending\n"
    listed = cli("outbox", "list", **env)
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:4] == ["ID", "STATE", "ALERTS", "ATTEMPTS"]
    attempts = {row.split()[0]: row.split()[3] for row in rows}
    assert attempts == {dead.id: "3", live.id: "0"}
    created = {row.split()[0]: row.split()[5] for row in rows}
    assert created == {dead.id: "2027-01-15T08:00:00.000Z", live.id: "2027-01-15T08:00:00.000Z"}
    listed = cli("outbox", "list", "--json", **env)
    retried = {d["id"]: d["retried_at"] for d in map(json.loads, listed.stdout.splitlines())}
    assert retried[live.id] is None
    assert retried[dead.id] is not None
    assert retried[dead.id] != "2027-01-15T08:00:00.000Z"  # when retried, not made


@pytest.mark.parametrize("args", [["--all", "nosuch"], ["nosuch", "--all"]])
def test_outbox_retry_refuses_ids_beside_all(tmp_path: Path, args: list[str]) -> None:
    """`outbox retry` with ids and --all is a usage error (exit 2) saying the two do not go
    together, before the outbox is opened: the ids would be ignored, every dead letter sent."""
    completed = cli("outbox", "retry", *args, EXESDB_STATE_DIR=str(tmp_path))
    assert (completed.returncode, completed.stdout) == (2, "")
    assert completed.stderr.startswith(
        "usage: exesdb-bridge outbox retry [-h] (ID ... | --all) [--force]\n"
    )
    assert re.search(
        r"exesdb-bridge outbox retry: error: argument (--all|ID): not allowed with argument"
        r" (ID|--all)\n\Z",
        completed.stderr,
    )
    assert "back to pending" not in completed.stdout


def test_outbox_retry_finds_every_delivery_named_however_many(tmp_path: Path) -> None:
    """`outbox retry` with more ids than a page of `outbox list` (1000) finds each of them: a
    dead-lettered delivery is never reported as unknown for being the 1001st named."""
    url = "https://hooks.example/x"
    outbox = Outbox.in_dir(tmp_path, urls=[url])
    for number in range(1001):
        observe(outbox, event(f"a{number}"), T0)
    outbox.queue.group(url, T0, 0.0, one_each)
    dead = outbox.queue.deliveries(limit=None)
    for delivery in dead:
        outbox.queue.finish_attempt(
            delivery.id,
            state=DeliveryState.DEAD,
            next_attempt_at=T0,
            status=503,
            error="HTTP 503",
            now=T0,
        )
    outbox.close()
    assert len(dead) == 1001
    retried = cli(
        "outbox", "retry", *(delivery.id for delivery in dead), EXESDB_STATE_DIR=str(tmp_path)
    )
    assert "no delivery" not in retried.stderr
    assert retried.returncode == 0, retried.stderr
    assert "1001 dead-lettered deliveries back to pending" in retried.stdout


def test_outbox_retry_leaves_a_dead_letter_whose_receiver_is_not_configured(
    tmp_path: Path,
) -> None:
    """`outbox retry` of a dead letter for a receiver the bridge no longer starts with names
    the receiver (never its path) and why, exits 1 and leaves it dead-lettered, with --all too;
    the other dead letters go back to pending."""
    gone, kept = "https://hooks.example/token-gone", "https://other.example/token-kept"
    outbox = Outbox.in_dir(tmp_path)
    outbox.queue.queue_for([gone, kept])  # the bridge started with both
    observe(outbox, event("a"), T0)
    for url in (gone, kept):
        outbox.queue.group(url, T0, 0.0, one_each)
    dead = {d.url: d for d in outbox.queue.deliveries()}
    for delivery in dead.values():
        outbox.queue.finish_attempt(
            delivery.id,
            state=DeliveryState.DEAD,
            next_attempt_at=T0,
            status=404,
            error="HTTP 404",
            now=T0,
        )
    outbox.queue.queue_for([kept])  # then restarted without the first
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    refused = cli("outbox", "retry", dead[gone].id, **env)
    assert refused.returncode == 1
    assert (
        f"delivery '{dead[gone].id}' left dead-lettered: its receiver https://hooks.example/… is"
        in refused.stderr
    )
    assert "not among those the bridge last started with" in refused.stderr
    assert "token-gone" not in refused.stderr + refused.stdout
    assert "0 dead-lettered deliveries back to pending" in refused.stdout
    every = cli("outbox", "retry", "--all", **env)
    assert every.returncode == 1
    assert f"delivery '{dead[gone].id}' left dead-lettered" in every.stderr
    assert "1 dead-lettered delivery back to pending" in every.stdout
    states = {
        json.loads(line)["id"]: json.loads(line)["state"]
        for line in cli("outbox", "list", "--json", **env).stdout.splitlines()
    }
    assert states == {dead[gone].id: "dead", dead[kept].id: "pending"}


def _webhook_bodies(records: Sequence[AlertRecord]) -> list[tuple[bytes, list[str]]]:
    """The bridge's own payloads (Alertmanager's webhook format)."""
    return build_payloads(records, max_alerts=10, external_url="http://bridge.example")


def _finish(outbox: Outbox, delivery_id: str, state: DeliveryState, status: int) -> None:
    outbox.queue.finish_attempt(
        delivery_id, state=state, next_attempt_at=T0, status=status, error=None, now=T0
    )


_HOOK = "https://hooks.example/x"


def _dead_firing_and_its_resolve(outbox: Outbox) -> tuple[str, str]:
    """Alert ``a`` fired at T0, its delivery to _HOOK dead-lettered (404), and resolved at
    T0 + 60, its delivery waiting: the two deliveries' ids."""
    outbox.queue.queue_for([_HOOK])
    observe(outbox, event("a"), T0)
    outbox.queue.group(_HOOK, T0, 0.0, _webhook_bodies)
    [firing] = outbox.queue.deliveries()
    _finish(outbox, firing.id, DeliveryState.DEAD, 404)
    observe(outbox, event("a", status="resolved"), T0 + 60)
    outbox.queue.group(_HOOK, T0 + 60, 0.0, _webhook_bodies)
    [resolve] = [d for d in outbox.queue.deliveries() if d.id != firing.id]
    return firing.id, resolve.id


def test_outbox_retry_leaves_a_firing_whose_resolve_was_delivered_unless_forced(
    tmp_path: Path,
) -> None:
    """`outbox retry` of a dead-lettered firing whose alert's resolve the receiver was sent
    since names the alert and when it resolved, exits 1 and leaves it (`--all` too, exiting 0:
    superseded, as the gauge counts it); --force retries it."""
    outbox = Outbox.in_dir(tmp_path)
    firing, resolve = _dead_firing_and_its_resolve(outbox)
    _finish(outbox, resolve, DeliveryState.DELIVERED, 200)
    record = outbox.alerts.get("a")
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    assert record is not None
    assert record.ends_at is not None
    resolved_at = datetime.fromtimestamp(record.ends_at, UTC).isoformat(timespec="milliseconds")
    refused = cli("outbox", "retry", firing, **env)
    assert refused.returncode == 1
    assert f"delivery '{firing}' left dead-lettered: it fires alerts whose resolve" in (
        refused.stderr
    )
    assert f"'a' resolved at {resolved_at.replace('+00:00', 'Z')}" in refused.stderr
    assert "--force" in refused.stderr
    left = cli("outbox", "retry", "--all", **env)
    assert (left.returncode, left.stdout) == (0, "0 dead-lettered deliveries back to pending\n")
    assert f"delivery '{firing}' left dead-lettered: it fires alerts whose resolve" in left.stderr
    assert cli("outbox", "list", "--state", "dead", "--json", **env).stdout.count(firing) == 1
    forced = cli("outbox", "retry", "--force", firing, **env)
    assert (forced.returncode, forced.stderr) == (0, "")
    assert "1 dead-lettered delivery back to pending" in forced.stdout


def test_outbox_retry_leaves_a_resolve_of_an_alert_that_fired_again_unless_forced(
    tmp_path: Path,
) -> None:
    """`outbox retry` of a dead-lettered resolve whose alert the receiver was sent firing again
    since names the alert and leaves it (sent, it would show the alert resolved while it
    fires), exiting 0 with --all (superseded, as the gauge counts it) and 1 named by id;
    --force retries it. A resolve whose alert's firing still waits is retried."""
    url = "https://hooks.example/x"
    outbox = Outbox.in_dir(tmp_path)
    outbox.queue.queue_for([url])
    sent = []
    for at, status, state in [
        (T0, "firing", DeliveryState.DELIVERED),
        (T0 + 60, "resolved", DeliveryState.DEAD),
        (T0 + 120, "firing", DeliveryState.PENDING),
    ]:
        observe(outbox, event("a", status=status), at)
        outbox.queue.group(url, at, 0.0, _webhook_bodies)
        [made] = [d for d in outbox.queue.deliveries() if d.id not in sent]
        sent.append(made.id)
        if state is not DeliveryState.PENDING:
            _finish(outbox, made.id, state, 200 if state is DeliveryState.DELIVERED else 404)
    resolve, again = sent[1], sent[2]
    assert outbox.dead_letters.unretryable() == []  # the new firing still waits: it goes out after
    _finish(outbox, again, DeliveryState.DELIVERED, 200)
    assert [(d.delivery_id, d.refired) for d in outbox.dead_letters.unretryable()] == [
        (resolve, ("a",))
    ]
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    assert cli("outbox", "retry", resolve, **env).returncode == 1
    refused = cli("outbox", "retry", "--all", **env)
    assert refused.returncode == 0
    assert f"delivery '{resolve}' left dead-lettered: it resolves alerts" in refused.stderr
    assert "('a'), so sent again it would show them resolved there while they fire" in (
        refused.stderr
    )
    assert "0 dead-lettered deliveries back to pending" in refused.stdout
    forced = cli("outbox", "retry", "--force", resolve, **env)
    assert (forced.returncode, forced.stderr) == (0, "")


def test_outbox_retry_of_a_firing_leaves_it_without_its_dead_lettered_resolve(
    tmp_path: Path,
) -> None:
    """A dead-lettered firing whose resolve is dead-lettered too, named alone, is left (exit 1)
    naming the resolve's delivery: sent alone, it would leave the alert firing at the receiver
    with its resolve still dead (--force sends it all the same). Named with it, both go back,
    the firing to go out first."""
    outbox = Outbox.in_dir(tmp_path)
    firing, resolve = _dead_firing_and_its_resolve(outbox)
    _finish(outbox, resolve, DeliveryState.DEAD, 404)
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    refused = cli("outbox", "retry", firing, **env)
    assert refused.returncode == 1
    assert f"delivery '{firing}' left dead-lettered: the resolves of alerts it fires" in (
        refused.stderr
    )
    assert f"('a' in delivery '{resolve}')" in refused.stderr
    assert f"`exesdb-bridge outbox retry {firing} {resolve}`" in refused.stderr
    assert "--force sends it all the same" in refused.stderr
    assert "0 dead-lettered deliveries back to pending" in refused.stdout
    both = cli("outbox", "retry", firing, resolve, **env)
    assert (both.returncode, both.stderr) == (0, "")
    assert "2 dead-lettered deliveries back to pending" in both.stdout
    outbox = Outbox.in_dir(tmp_path)
    try:
        assert {d.id for d in outbox.queue.deliveries("pending")} == {firing, resolve}
        first = outbox.queue.next_due(_HOOK, T0 + 3600)
        assert first is not None
        assert first.id == firing  # the firing goes out first, the resolve after it
    finally:
        outbox.close()


def test_a_dead_firing_whose_resolve_still_waits_may_be_retried(tmp_path: Path) -> None:
    """A dead-lettered firing whose resolve is still pending is retried (it goes out first,
    the resolve after it), as is one whose alert fired again after the resolve was sent."""
    outbox = Outbox.in_dir(tmp_path)
    firing, resolve = _dead_firing_and_its_resolve(outbox)
    assert outbox.dead_letters.unretryable() == []  # the resolve is pending
    _finish(outbox, resolve, DeliveryState.DELIVERED, 200)
    assert [d.delivery_id for d in outbox.dead_letters.unretryable()] == [firing]
    observe(outbox, event("a"), T0 + 120)
    outbox.queue.group(_HOOK, T0 + 120, 0.0, _webhook_bodies)
    [again] = [d for d in outbox.queue.deliveries() if d.id not in (firing, resolve)]
    _finish(outbox, again.id, DeliveryState.DELIVERED, 200)
    # Firing there now anyway: superseded, left unless forced.
    assert [(d.delivery_id, d.superseded) for d in outbox.dead_letters.unretryable()] == [
        (firing, True)
    ]
    assert outbox.dead_letters.unretryable(force=True) == []
    outbox.close()


def test_outbox_retry_leaves_a_dead_letter_superseded_by_a_later_delivery_unless_forced(
    tmp_path: Path,
) -> None:
    """A dead letter each of whose alerts its receiver took since in a later delivery (its
    re-notification) is superseded: `outbox retry --all` leaves it, naming it, exit 0 (it is as
    good as delivered); named by id it is left too, exit 1; --force sends it. One of whose
    alerts the receiver took only some is retried."""
    outbox = Outbox.in_dir(tmp_path)
    outbox.queue.queue_for([_HOOK])
    for alert_id in ("a", "b"):
        observe(outbox, event(alert_id), T0)
    outbox.queue.group(_HOOK, T0, 0.0, _webhook_bodies)  # one delivery of a and b
    observe(outbox, event("c"), T0)
    outbox.queue.group(_HOOK, T0, 0.0, _webhook_bodies)
    made = {d.alert_ids: d for d in outbox.queue.deliveries()}
    both, alone = made[("a", "b")], made[("c",)]
    for dead in (both, alone):
        _finish(outbox, dead.id, DeliveryState.DEAD, 404)
    for alert_id in ("a", "c"):  # re-notified, and taken
        observe(outbox, event(alert_id, severity="warning"), T0 + 60)
    outbox.queue.group(_HOOK, T0 + 60, 0.0, _webhook_bodies)
    [later] = [d for d in outbox.queue.deliveries() if d.id not in (both.id, alone.id)]
    _finish(outbox, later.id, DeliveryState.DELIVERED, 200)
    assert outbox.dead_letters.resend_hint() == (
        " (`exesdb-bridge outbox list --state dead` lists them, `exesdb-bridge outbox retry"
        " --all` sends again the 1 not superseded; 1 superseded (their receivers took a later"
        " delivery of each of their alerts, or another replica told them newer, or nothing is"
        " to follow those resolved since) are not to be sent again)"
    )
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    named = cli("outbox", "retry", alone.id, **env)
    assert named.returncode == 1
    assert named.stderr == (
        f"exesdb-bridge: delivery '{alone.id}' left dead-lettered: superseded:"
        " https://hooks.example/… took a later delivery of each of its alerts, so sent again"
        " it would tell it an older state of them after the newer one; --force sends it all"
        " the same\n"
    )
    every = cli("outbox", "retry", "--all", **env)
    assert every.returncode == 0
    assert f"delivery '{alone.id}' left dead-lettered: superseded" in every.stderr
    assert both.id not in every.stderr
    assert every.stdout.splitlines()[0] == "1 dead-lettered delivery back to pending"
    forced = cli("outbox", "retry", "--force", alone.id, **env)
    assert (forced.returncode, forced.stderr) == (0, "")
    # Sent as its alert stands now, newer than it told it: under a new id, said.
    assert forced.stdout.startswith("1 dead-lettered delivery back to pending\n")
    assert f"\n{alone.id} is now " in forced.stdout


def test_outbox_retry_names_the_new_id_of_a_dead_letter_its_alerts_changed(
    tmp_path: Path,
) -> None:
    """A dead letter whose alert another replica changed since is sent by `outbox retry` as the
    alert stands now, under a new delivery id: the command says which id it is now, and `outbox
    list` shows it pending under that id."""
    outbox = Outbox.in_dir(tmp_path)
    outbox.queue.queue_for([_HOOK])
    observe(outbox, event("a", severity="warning"), T0)
    outbox.queue.group(_HOOK, T0, 0.0, _webhook_bodies)
    [dead] = outbox.queue.deliveries()
    _finish(outbox, dead.id, DeliveryState.DEAD, 503)
    record = outbox.alerts.get("a")
    assert record is not None
    raised = dataclasses.replace(record, severity="critical", updated_at=T0 + 2)
    assert outbox.alerts.adopt_open_alerts({"a": raised}, T0 + 2) == 1  # another replica's
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    retried = cli("outbox", "retry", dead.id, **env)
    assert retried.returncode == 0, retried.stderr
    first, renamed = retried.stdout.splitlines()
    assert first == "1 dead-lettered delivery back to pending"
    was, _, now = renamed.partition(" is now ")
    assert was == dead.id
    assert now.endswith(": its alerts told as they stand now")
    listed = cli("outbox", "list", "--json", **env)
    [shown] = map(json.loads, listed.stdout.splitlines())
    assert (shown["id"], shown["state"]) == (now.partition(":")[0], "pending")


def test_outbox_retry_leaves_dead_letters_another_replica_told_newer_of_unless_forced(
    tmp_path: Path,
) -> None:
    """`outbox retry --all` leaves, naming why, a dead firing of an alert resolved elsewhere
    since (nothing of it to follow) and one whose alert's later notification was left out as
    stale (another replica took it over), exit 0: superseded, as `outbox list` and the start-up
    line say, they need nobody; named, exit 1; --force sends both."""
    outbox = Outbox.in_dir(tmp_path)
    outbox.queue.queue_for([_HOOK])
    observe(outbox, event("b"), T0)
    outbox.queue.group(_HOOK, T0, 0.0, _webhook_bodies)
    [resolved] = outbox.queue.deliveries()
    _finish(outbox, resolved.id, DeliveryState.DEAD, 404)
    outbox.alerts.adopt_open_alerts({}, T0 + 10)  # another replica resolved b
    observe(outbox, event("a"), T0 + 20)
    outbox.queue.group(_HOOK, T0 + 20, 0.0, _webhook_bodies)
    [taken_over] = outbox.queue.deliveries("pending")
    _finish(outbox, taken_over.id, DeliveryState.DEAD, 404)
    observe(outbox, event("a", severity="warning"), T0 + 30)
    outbox.queue.group(_HOOK, T0 + 30, 0.0, _webhook_bodies)
    assert outbox.queue.withhold_everywhere({"a"}, T0 + 40, "stale: taken over") == 1
    assert outbox.dead_letters.resend_hint() == (
        " (`exesdb-bridge outbox list --state dead` lists them; 2 superseded (their receivers"
        " took a later delivery of each of their alerts, or another replica told them newer, or"
        " nothing is to follow those resolved since) are not to be sent again)"
    )
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    listed = cli("outbox", "list", "--state", "dead", "--json", **env)
    assert {(d["id"], d["superseded"]) for d in map(json.loads, listed.stdout.splitlines())} == {
        (resolved.id, True),
        (taken_over.id, True),
    }
    named = cli("outbox", "retry", resolved.id, **env)
    assert named.returncode == 1
    every = cli("outbox", "retry", "--all", **env)
    assert every.returncode == 0
    assert (
        f"delivery '{resolved.id}' left dead-lettered: it fires alerts resolved since ('b') of"
        " which nothing is to follow it to https://hooks.example/…"
    ) in every.stderr
    assert (
        f"delivery '{taken_over.id}' left dead-lettered: the latest notification to"
        " https://hooks.example/… of alerts it tells of ('a') was left out as stale since"
    ) in every.stderr
    assert every.stdout == "0 dead-lettered deliveries back to pending\n"
    forced = cli("outbox", "retry", "--all", "--force", **env)
    assert (forced.returncode, forced.stderr) == (0, "")
    # a's told as it stands now (warning), under a new id; b's resolved since: sent as it was.
    assert forced.stdout.splitlines()[0] == "2 dead-lettered deliveries back to pending"
    assert [line.partition(" ")[0] for line in forced.stdout.splitlines()[1:]] == [taken_over.id]


def test_outbox_list_shows_which_dead_letters_are_superseded_or_renotified(
    tmp_path: Path,
) -> None:
    """`outbox list` marks a dead letter whose receiver took a later delivery of each of its
    alerts `superseded` and one whose open alerts were queued again `renotified`, after a comma
    in STATE; --json keeps `state` as it is and gives `superseded` and `renotified_at`."""
    outbox = Outbox.in_dir(tmp_path)
    outbox.queue.queue_for([_HOOK])
    first: list[str] = []
    for n, alert_id in enumerate(("a", "b")):
        observe(outbox, event(alert_id), T0 + n)
        outbox.queue.group(_HOOK, T0 + n, 0.0, _webhook_bodies)
        [made] = outbox.queue.deliveries("pending")
        _finish(outbox, made.id, DeliveryState.DEAD, 404)
        first.append(made.id)
    # An hour on, both are re-notified: each alert in a delivery of its own.
    assert outbox.dead_letters.renotify(T0 + 3601, 3600.0) == {_HOOK: 2}
    outbox.queue.group(
        _HOOK, T0 + 3601, 0.0, partial(build_payloads, max_alerts=1, external_url="")
    )
    again = {d.alert_ids: d.id for d in outbox.queue.deliveries("pending")}
    _finish(outbox, again[("a",)], DeliveryState.DELIVERED, 200)  # a taken: its first superseded
    _finish(outbox, again[("b",)], DeliveryState.DEAD, 404)  # b refused again
    outbox.close()
    env: dict[str, Any] = {"EXESDB_STATE_DIR": str(tmp_path)}
    table = cli("outbox", "list", **env)
    assert table.returncode == 0, table.stderr
    states = dict(row.split()[:2] for row in table.stdout.splitlines()[1:])
    assert states == {
        first[0]: "dead,superseded,renotified",
        first[1]: "dead,renotified",
        again[("a",)]: "delivered",
        again[("b",)]: "dead",
    }
    listed = cli("outbox", "list", "--json", "--state", "dead", **env)
    assert listed.returncode == 0, listed.stderr
    shown = {
        d["id"]: (d["state"], d["superseded"], d["renotified_at"] is not None)
        for d in map(json.loads, listed.stdout.splitlines())
    }
    assert shown == {
        first[0]: ("dead", True, True),
        first[1]: ("dead", False, True),
        again[("b",)]: ("dead", False, False),
    }
    delivered = cli("outbox", "list", "--json", "--state", "delivered", **env)
    [taken] = map(json.loads, delivered.stdout.splitlines())
    assert (taken["superseded"], taken["renotified_at"]) == (None, None)


def test_run_logs_ts_with_milliseconds_and_z_and_ends_start_up_with_the_urls(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """JSON log lines carry ts like 2030-01-01T00:00:00.123Z; the start-up ends with one line
    naming / and /metrics on the bound address."""
    process = _start(bridge_processes, tmp_path, EXESDB_LOG_FORMAT="json")
    wait_until(lambda: "/metrics" in process.log(), 10, "the start-up line with the URLs")
    entries = [json.loads(line) for line in process.log().splitlines()]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["ts"]) for e in entries)
    messages = [entry["message"] for entry in entries]
    opened = messages.index(f"open {process.url} (the status page; /metrics for Prometheus)")
    assert " running as node " in messages[opened - 1]  # the start-up's last two lines
    assert any(message.startswith("listening on") for message in messages[:opened])
