"""The command line: one subcommand per task, parsed, and the one chosen run."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from collections.abc import Sequence
from typing import Any, Final, NoReturn

from bridge.choices import meant_said, word_meant
from bridge.cli import healthcheck_options
from bridge.cli.alerts import add_alerts_command
from bridge.cli.messages import add_message_commands
from bridge.cli.outbox import add_outbox_command
from bridge.cli.service import add_service_commands
from bridge.cli.shared import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    meant_choice,
    refused_choice,
)
from bridge.messages import INSTANCES
from bridge.redaction import safe_url
from bridge.schema import add_schema_command
from bridge.source_repository import cite_source

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per task."""
    parser = _Parser(
        prog="exesdb-bridge",
        description="ExESDB PubSub integration bridged to Prometheus, Grafana and OpenTelemetry.",
        epilog=(
            "Every setting is an environment variable: check-config prints them, and"
            f" {cite_source('docs/configuration.md')}, describes each; each command's --help"
            " says what it needs, and the schema command a message's fields."
        ),
    )
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_service_commands(commands)
    add_message_commands(commands)
    add_alerts_command(commands)
    add_outbox_command(commands)
    add_schema_command(commands)

    health = commands.add_parser(
        "healthcheck",
        help="exit 0 when /healthz (--ready: /readyz) answers 200, else 1",
        description=(
            "Ask the bridge at EXESDB_HTTP_ADDR (a wildcard host: loopback) for /healthz, or"
            " /readyz with --ready: exit 0 on 200, else 1 with one line saying why. Over https"
            " and with the client certificate and basic auth EXESDB_WEB_CONFIG_FILE asks for:"
            " EXESDB_HEALTHCHECK_CERT_FILE and EXESDB_HEALTHCHECK_KEY_FILE,"
            " EXESDB_HEALTHCHECK_USERNAME and EXESDB_HEALTHCHECK_PASSWORD_FILE."
        ),
    )
    healthcheck_options.add_arguments(health)
    health.set_defaults(handler=_healthcheck)
    # What main tells an option given before the command by (_refuse_options_before_the_command),
    # one given between a command and its own (``alerts --user … list``), and a command of its
    # own misspelt (``outbox lst``).
    parser.set_defaults(
        command_names=tuple(commands.choices),
        subcommand_parsers={
            name: command
            for name, command in commands.choices.items()
            if command.get_default("command_names")
        },
    )
    return parser


def _healthcheck(args: argparse.Namespace) -> int:
    # The probe (with ssl and threading) imported when asked for: no other command pays for it.
    from bridge.cli import healthcheck

    return healthcheck.main(args.timeout, ready=args.ready)


class _Parser(argparse.ArgumentParser):
    """A parser that is its own default ``usage_parser``; ``add_subparsers`` makes every
    subcommand's parser one too (argparse's ``parser_class`` defaults to the parent's type), and
    the innermost one chosen wins, so ``main`` can show that command's usage for an unknown
    argument, and name the option of it meant (``long_options``: its ``--`` options)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)
        self.set_defaults(usage_parser=self)
        # The arguments it was last given (a subcommand's: those after its name), which error
        # looks in for an option misspelt as a required one.
        self._given: list[str] = []

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        """argparse's usage error, a required option said missing naming the argument given
        for it when one is spelt nearly as it (``alerts ack ID --bye me``: ``--bye: did you
        mean --by?``), which argparse tells only as missing."""
        required = "the following arguments are required: "
        if message.startswith(required):
            missing = [name for name in message[len(required) :].split(", ") if name[:2] == "--"]
            unknown = [arg for arg in self._given if arg.partition("=")[0] not in self.long_options]
            meant = [
                f"{name}: {meant_said(option, name=True)}"
                for name, option in _options_meant(unknown, missing)
            ]
            message += f" ({' '.join(meant)})" if meant else ""
        super().error(message)

    @property
    def long_options(self) -> list[str]:
        """Its ``--`` options, those added through a group too (``outbox retry``'s ``--all``,
        which a group's own ``add_argument`` adds): argparse keeps every one in ``_actions``."""
        return [
            name
            for action in self._actions
            for name in action.option_strings
            if name.startswith("--")
        ]


class _Formatter(argparse.HelpFormatter):
    """argparse's help, its lines broken at spaces only: a name such as ``check-config``,
    ``exesdb-bridge`` or ``./.exesdb-bridge`` is never cut in two at its hyphen."""

    # textwrap imported when help is asked for, as argparse itself does: no other command pays it.
    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        return textwrap.fill(
            " ".join(text.split()),
            width,
            initial_indent=indent,
            subsequent_indent=indent,
            break_on_hyphens=False,
        )


class _Version(argparse.Action):
    """``--version``, the version looked up when asked for (importlib.metadata costs every
    command that is not asked for it)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS) -> None:
        super().__init__(
            option_strings,
            dest,
            nargs=0,
            default=argparse.SUPPRESS,
            help="show the version and exit",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        from bridge import __version__

        print(f"exesdb-bridge {__version__}")
        parser.exit()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    # argparse hands an unknown argument of a subcommand back to the top-level parser, which
    # would show its own usage: report it with the usage of the command it was given to.
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        # No command at all: a person finding their way, shown the commands rather than told
        # that one is required.
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _refuse_options_before_the_command(parser, argv)
    _refuse_variables_before_the_command(parser, argv)
    _refuse_an_unknown_command(parser, argv[0])
    if command := parser.get_default("subcommand_parsers").get(argv[0]):
        subcommands = command.get_default("command_names")
        _refuse_options_before_the_command(parser, argv[1:], subcommands, argv[0])
        if len(argv) > 1:
            _refuse_an_unknown_command(command, argv[1])
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        hint = ""
        if args.command == "publish" and args.tag in INSTANCES:
            # `publish ex_esdb_health node_health_updated`, as examples/sign.sh takes them.
            hint = (
                f" ({args.tag!r} is a bus instance: publish takes the message type alone,"
                " and its instance follows from it)"
            )
        own = args.usage_parser.long_options
        if args.command in _SETTINGS_COMMANDS:
            unknown, hint = _options_for_settings(args.command, unknown, own)
        elif args.command == "healthcheck" and (address := _address_given(unknown)) is not None:
            # `healthcheck --url …` as publish, tail and alerts take it, or the URL alone.
            hint = (
                " (healthcheck asks the address the bridge listens on, EXESDB_HTTP_ADDR:"
                f" EXESDB_HTTP_ADDR={address} exesdb-bridge healthcheck)"
            )
            # A URL given alone is shown as its origin: it may hold a password.
            unknown = [safe_url(arg) if "://" in arg else arg for arg in _values_hidden(unknown)]
        else:
            options = _options_meant(unknown, own)
            meant = [f"{name}: {meant_said(option, name=True)}" for name, option in options]
            # An option naming a variable the command reads (outbox list --state-dir DIR).
            meant += _variables_meant(args, unknown, {name for name, _ in options})
            hint = f" ({' '.join(meant)})" if meant and not hint else hint
            unknown = _values_hidden(unknown)
        args.usage_parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    try:
        return int(args.handler(args))
    except BrokenPipeError:
        # The reader stopped early (`... | head`): not a failure. Stop quietly, as the Python
        # docs' recipe does, pointing stdout at /dev/null so the flush at exit does not fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_OK
    except KeyboardInterrupt:
        # Ctrl-C while a command waits (on stdin, on a slow bridge): the person stopped it, so
        # no traceback. tail and run take Ctrl-C as their way to stop and exit 0 themselves.
        return EXIT_INTERRUPTED


# The commands that take every setting from the environment and no option but --demo: one
# guessed for them (`run --port 9571`, node_exporter's `--web.listen-address`) names a setting.
_SETTINGS_COMMANDS: Final = frozenset({"run", "check-config"})
# How alike an option's name and a setting's must be to name the setting (difflib's ratio):
# --loglevel scores 0.94 to EXESDB_LOG_LEVEL, --data-dir 0.82 to EXESDB_STATE_DIR; --bogus, no
# setting at all, 0.75 to EXESDB_BUS (close enough for a variable set in the environment, which
# the bridge reads only when spelt right, not for an option it has no such use for). An option
# misspelt as one of the command's own is held to it too (--cout: --count), the -- and all.
_OPTION_LIKENESS: Final = 0.8


def _options_meant(unknown: list[str], own: Sequence[str]) -> list[tuple[str, str]]:
    """Each option of ``unknown`` (its name, without a value given with ``=``) that resembles
    one of the command's ``own`` options enough to be a misspelling of it (``--cout``:
    ``--count``; in any letter case, ``--COUNT``), with that option."""
    found: list[tuple[str, str]] = []
    for arg in unknown:
        name = arg.partition("=")[0]
        if name.startswith("--"):
            option = word_meant(name, own, likeness=_OPTION_LIKENESS)
            found += [(name, option)] if option else []
    return found


def _options_for_settings(
    command: str, unknown: list[str], own: Sequence[str]
) -> tuple[list[str], str]:
    """The ``unknown`` arguments of ``run`` or ``check-config`` (``command``) as shown, each
    option's value as ``…`` (it may be a key: ``--secret-key-base …``), and the hint after them:
    the option of ``own`` one misspells (``run --dmeo``: ``--demo``), else that every setting
    is an environment variable, with the one each option most likely means (and ``run demo``'s
    ``--demo``)."""
    from bridge.settings import known_variables
    from bridge.unknown_variables import setting_meant

    misspelt = dict(_options_meant(unknown, own))
    known = known_variables()
    shown: list[str] = []
    meant: list[str] = []
    value_next = False  # neither command takes an option with a value: the word after is one
    for arg in unknown:
        if arg.startswith("-") and arg != "-":
            name, equals, _ = arg.partition("=")
            shown.append(f"{name}=…" if equals else name)
            variable = "EXESDB_" + name.lstrip("-").upper().replace("-", "_").replace(".", "_")
            if name in misspelt:
                meant.append(f"{name}: {meant_said(misspelt[name], name=True)}")
            elif name.startswith("--") and (
                setting := setting_meant(variable, known, likeness=_OPTION_LIKENESS)
            ):
                meant.append(f"{name}: {meant_said(setting, name=True)}")
            value_next = not equals and name not in misspelt
        else:
            name, equals, _ = arg.partition("=")
            if value_next:
                shown.append("…")
            elif equals:  # NAME=VALUE, set as the shell sets a variable: the value may be a key
                shown.append(f"{name}=…")
                if setting := setting_meant(name.upper(), known, likeness=_OPTION_LIKENESS):
                    line = f"{setting}=… exesdb-bridge {command}"
                    meant.append(f"{name}=…: {meant_said(line, name=True)}")
            else:
                shown.append(arg)
                if command == "run" and arg == "demo":
                    meant.append(f"demo: {meant_said('--demo', name=True)}")
            value_next = False
    if len(misspelt) == len(meant) == len(unknown):
        # Only the command's own options, misspelt: no setting was guessed at.
        return shown, f" ({' '.join(meant)})"
    return shown, (
        " (every setting is an environment variable, not an option; "
        + "".join(f"{one} " for one in meant)
        + f"exesdb-bridge check-config lists them, {cite_source('docs/configuration.md')},"
        + " describes each)"
    )


# The options of exesdb-bridge itself; every other one belongs to a command, after it.
_OWN_OPTIONS: Final = frozenset({"-h", "--help", "--version"})


def _refuse_options_before_the_command(
    parser: argparse.ArgumentParser,
    argv: list[str],
    commands: Sequence[str] = (),
    within: str = "",
) -> None:
    """A command's option given before the command (``exesdb-bridge --demo run``) is a usage
    error naming it and showing where it goes: argparse would say that ``run`` does not take
    ``--demo``, that a command is missing, or that ``http://…`` (of ``--url http://…``) is no
    command. Only option names are shown, as ``…`` their values, before the command and after
    it: one may be a password (``--user ops:…``) or a URL with one. The words after the command
    up to its first option (``alerts list``, a tag) are shown as given. ``within``: the command
    whose ``commands`` ``argv`` follows (``alerts --user ops:… list``: ``alerts``, ``argv`` the
    rest), argparse quoting the value as no command of it."""
    if not argv or not argv[0].startswith("-") or argv[0] in _OWN_OPTIONS:
        return
    commands = commands or parser.get_default("command_names")
    program = f"exesdb-bridge {within}".rstrip()
    at = next((n for n, arg in enumerate(argv) if arg in commands), len(argv))
    shown = _masked(argv[:at])
    given = " ".join(arg.removesuffix("=…") for arg in shown if arg != "…")
    if at == len(argv):
        parser.error(
            f"unrecognized arguments: {given} (a command's options go after it:"
            f" {program} COMMAND --help lists them)"
        )
    after = argv[at:]
    words = next((n for n, arg in enumerate(after) if arg.startswith("-")), len(after))
    meant = " ".join([shlex.join(after[:words]), *_masked(after[words:]), *shown])
    parser.error(f"{given}: a command's options go after it: {program} {meant}")


def _variables_meant(args: argparse.Namespace, unknown: list[str], misspelt: set[str]) -> list[str]:
    """For each option of ``unknown`` not a misspelling of the command's own (``misspelt``) that
    names an environment variable the command reads (``outbox list --state-dir``:
    ``EXESDB_STATE_DIR``; ``--token``: ``EXESDB_ADMIN_TOKEN``), the line meant, its value as
    ``…``; the variables a command reads are its values class's (``bridge.client_environment``)."""
    from bridge.client_environment import (
        AdminClientValues,
        ClientValues,
        OutboxValues,
        PublishValues,
    )

    reads: dict[str, type[ClientValues]] = {
        "publish": PublishValues,
        "tail": AdminClientValues,
        "alerts": AdminClientValues,
        "outbox": OutboxValues,
    }
    if args.command not in reads:
        return []
    variables = reads[args.command].VARIABLES.values()
    meant = []
    for arg in unknown:
        name = arg.partition("=")[0]
        if not name.startswith("--") or name in misspelt:
            continue
        word = name.removeprefix("--").upper().replace("-", "_").removeprefix("EXESDB_")
        # Compared without the prefix, which would make every name look close (--bus, EXESDB_URL).
        variable = word_meant(word, variables, likeness=_OPTION_LIKENESS, prefix="EXESDB_") or next(
            (one for one in variables if one.endswith(f"_{word}")),  # --token: EXESDB_ADMIN_TOKEN
            None,
        )
        if variable:
            line = f"{variable}=… {args.usage_parser.prog}"
            meant.append(f"{name}: {meant_said(line, name=True)}")
    return meant


def _address_given(unknown: list[str]) -> str | None:
    """The ``host:port`` of a URL or address given to ``healthcheck`` as ``--url URL`` (as the
    client commands take one) or alone, a URL or ``HOST:PORT`` (``HOST:PORT`` itself when it
    names none), never its user or password; None when no such argument was given."""
    from urllib.parse import urlsplit

    given: str | None = None
    for n, arg in enumerate(unknown):
        if arg == "--url":
            given = unknown[n + 1] if n + 1 < len(unknown) else ""
        elif arg.startswith("--url="):
            given = arg.partition("=")[2]
        elif "://" in arg or re.fullmatch(r"[\w.-]*:\d+|\[[\w:.%]+\]:\d+", arg):
            given = arg  # a URL, or HOST:PORT as EXESDB_HTTP_ADDR takes it
        if given is not None:
            break
    if given is None:
        return None
    try:
        parts = urlsplit(given if "://" in given else f"//{given}")
        host, port = parts.hostname, parts.port
    except ValueError:  # a port out of range, an IPv6 address not closed
        host, port = None, None
    if not host or port is None:
        return "HOST:PORT"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _values_hidden(unknown: list[str]) -> list[str]:
    """Arguments no option took, a value in them shown as ``…``: one given with "="
    (``NAME=…``, ``--token=…``), and the word after an option not known (``--usr …``, wholly:
    a base64 token ends in ``=``): either may be a key. Other words are shown (``publish``'s
    message type after its instance)."""
    shown: list[str] = []
    for arg in unknown:
        option_before = shown and shown[-1].startswith("-") and not shown[-1].endswith("…")
        if option_before and not arg.startswith("-"):
            shown.append("…")
        elif "=" in arg:
            shown.append(arg.split("=", 1)[0] + "=…")
        else:
            shown.append(arg)
    return shown


def _masked(args: list[str]) -> list[str]:
    """``args`` with each option's name kept and every value shown as ``…`` (``--url=…``)."""
    return [
        (arg.split("=", 1)[0] + "=…" if "=" in arg else arg) if arg.startswith("-") else "…"
        for arg in args
    ]


def _refuse_variables_before_the_command(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """``NAME=VALUE`` words before the command (``exesdb-bridge SECRET_KEY_BASE=… run``), a
    variable set as the shell sets one but after the program's name, are a usage error saying
    where they go, their values never shown (one may be a key): argparse would quote the first
    as no command."""
    at = next((n for n, arg in enumerate(argv) if arg.startswith("-") or "=" not in arg), len(argv))
    if not at:
        return
    given = " ".join(arg.partition("=")[0] + "=…" for arg in argv[:at])
    command = argv[at] if at < len(argv) and argv[at] in parser.get_default("command_names") else ""
    parser.error(
        f"argument COMMAND: {given} {'is no command' if at == 1 else 'are no commands'}: a"
        " setting is an environment variable, set before the program"
        f" ({given} exesdb-bridge {command or 'COMMAND'})"
    )


# Other words people try for a command (the status page's button says Acknowledge), and the
# program's options typed as commands, as git and pip take them (``exesdb-bridge help``).
_COMMAND_SYNONYMS: Final = {
    "acknowledge": "ack",
    "show": "list",
    "ls": "list",
    "start": "run",
    "serve": "run",
    "resend": "retry",
    "delete": "drop",
    "purge": "drop",
    "remove": "drop",
    "rm": "drop",
    "discard": "drop",
    "status": "healthcheck",
}
_OPTIONS_AS_COMMANDS: Final = {"help": "--help", "version": "--version"}


def _refuse_an_unknown_command(parser: argparse.ArgumentParser, given: str) -> None:
    """A command of ``parser`` that is not one is refused as argparse refuses it, with the
    command it most resembles, when one is alike enough to be the one meant (``runn``: ``run``;
    ``check_config``: ``check-config``; ``RUN``: ``run``; ``outbox lst``: ``list``), or that
    another word for it names (``alerts acknowledge``: ``ack``; ``start``: ``run``), as
    ``schema`` names the tag meant; ``help`` and, before any command, ``version`` with the
    option meant (``--help``)."""
    commands = parser.get_default("command_names")
    if given.startswith("-") or given in commands:
        return
    # As argparse names the argument: the top level's metavar, a command's its choices.
    top = parser.get_default("subcommand_parsers") is not None
    argument = "COMMAND" if top else "{" + ",".join(commands) + "}"
    option = _OPTIONS_AS_COMMANDS.get(given.casefold())
    if option is not None and (top or option == "--help"):
        listed = ", ".join(map(repr, commands))
        parser.error(
            f"argument {argument}: invalid choice: {given!r};"
            f" {meant_said(option, name=True)} (choose from {listed})"
        )
    if meant_choice(given, commands, _COMMAND_SYNONYMS):
        parser.error(f"argument {argument}: {refused_choice(given, commands, _COMMAND_SYNONYMS)}")
