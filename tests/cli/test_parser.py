"""The command line (``bridge.cli.parser``): usage errors, help, and misspelt commands, options,
words and variables named with the ones meant."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bridge import __version__
from bridge.cli.shared import refused_choice
from tests.cli.helpers import cli, cli_process
from tests.support import ADMIN_TOKEN, TEST_SECRET


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


def test_every_help_fits_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each command's --help, in a terminal 80 columns wide, holds no longer line: an option's
    many words (tail --instance's nine instances) are listed in its help, not in the usage."""
    from bridge.cli import build_parser

    monkeypatch.setenv("COLUMNS", "80")
    parsers = [build_parser()]
    wide = []
    while parsers:
        parser = parsers.pop()
        wide += [line for line in parser.format_help().splitlines() if len(line) > 80]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers += action.choices.values()
    assert wide == []


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
    ("group", "choices"), [("alerts", "{list,ack}"), ("outbox", "{list,retry,drop}")]
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
        " them, docs/configuration.md of the source repository,"
        " https://github.com/exesdb/exesdb-bridge, describes each)\n"
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


def test_a_word_as_near_other_words_of_two_commands_names_neither() -> None:
    """``stat``, as near ``start`` (run) as ``status`` (healthcheck), lists the choices alone:
    a guess either way could be the wrong one, and run starts a service where a status was
    asked for."""
    completed = cli("stat")
    assert (completed.returncode, completed.stdout) == (2, "")
    assert completed.stderr.splitlines()[-1] == (
        "exesdb-bridge: error: argument COMMAND: invalid choice: 'stat' (choose from 'run',"
        " 'check-config', 'publish', 'tail', 'alerts', 'outbox', 'schema', 'healthcheck')"
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["outbox", "lst"], "exesdb-bridge outbox: error: argument {list,retry,drop}: invalid"
         " choice: 'lst'; did you mean 'list'? (choose from 'list', 'retry', 'drop')"),
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
        (["outbox", "ls"], "exesdb-bridge outbox: error: argument {list,retry,drop}: invalid"
         " choice: 'ls'; did you mean 'list'? (choose from 'list', 'retry', 'drop')"),
        (["outbox", "resend", "d1"], "exesdb-bridge outbox: error: argument {list,retry,drop}:"
         " invalid choice: 'resend'; did you mean 'retry'? (choose from 'list', 'retry', 'drop')"),
        # A queue tool's word for it names drop.
        (["outbox", "purge", "--all"], "exesdb-bridge outbox: error: argument {list,retry,drop}:"
         " invalid choice: 'purge'; did you mean 'drop'? (choose from 'list', 'retry', 'drop')"),
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
         " EXESDB_HTTP_ADDR? exesdb-bridge check-config lists them, docs/configuration.md of"
         " the source repository, https://github.com/exesdb/exesdb-bridge, describes each)"),
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


@pytest.mark.parametrize(
    ("command", "line"),
    [
        (
            ["alerts", "list", "--state", "dead"],
            "exesdb-bridge alerts list: error: argument --state: invalid choice: 'dead': a"
            " webhook delivery's state, not an alert's: exesdb-bridge outbox list --state dead"
            " lists those deliveries (choose from 'firing', 'acknowledged', 'resolved', 'all')",
        ),
        (
            ["outbox", "list", "--state", "Firing"],
            "exesdb-bridge outbox list: error: argument --state: invalid choice: 'Firing': an"
            " alert's state, not a delivery's: exesdb-bridge alerts list --state firing lists"
            " those alerts (choose from 'pending', 'delivered', 'dead', 'stale')",
        ),
        (
            ["outbox", "list", "--state", "all"],
            "exesdb-bridge outbox list: error: argument --state: invalid choice: 'all': without"
            " --state it lists every state (choose from 'pending', 'delivered', 'dead', 'stale')",
        ),
    ],
)
def test_a_state_of_the_other_list_command_is_refused_naming_the_command_that_takes_it(
    command: list[str], line: str
) -> None:
    """`alerts list --state dead` (the Common tasks' `outbox list --state dead`, typed with
    the other command) and `outbox list --state firing` are usage errors naming the command
    that lists those; `outbox list --state all`, as `alerts list` takes it, says that without
    --state it lists every state."""
    completed = cli(*command, EXESDB_ADMIN_TOKEN="t", EXESDB_URL="http://127.0.0.1:9")
    assert completed.returncode == 2
    assert completed.stderr.splitlines()[-1] == line, completed.stderr


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
        (
            ["alerts", "ack", "", "--by", "alice"],
            "argument ALERT_ID: '' names no alert: give the alert's id, as exesdb-bridge alerts"
            " list shows it",
        ),
    ],
)
def test_usage_errors_exit_2_naming_the_option(args: list[str], message: str) -> None:
    """A --url that is no http(s) URL, a --count below 1, an empty --by or ALERT_ID and the like
    are usage errors (exit 2)."""
    completed = cli(*args, SECRET_KEY_BASE=TEST_SECRET, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    assert completed.returncode == 2
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr
