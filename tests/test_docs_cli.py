"""docs/cli.md stays true to the commands: every subcommand, option, default and usage line,
and each command's help naming what it reads from the environment."""

from __future__ import annotations

import argparse
import dataclasses
import re
import tomllib
from collections.abc import Iterator

from bridge.client_settings import FromEnvironment
from bridge.settings import Settings
from tests.doc_text import page, section, spans
from tests.support import ROOT


def _described(row: str) -> str:
    """A command's row of docs/cli.md's Commands in detail with the sections the row links to
    (`[more](#outbox-list-and-outbox-retry)`), where the row's details are, lines joined."""
    text = page("cli")
    said = [row]
    for heading in re.findall(r"^### (.+?)\s*$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        if f"](#{slug})" in row:
            said.append(section(text, heading, level=3))
    return " ".join(" ".join(said).split())


def test_each_long_command_row_links_to_its_details() -> None:
    """The rows of docs/cli.md whose details are in a section below the table link to it, so
    the checks of a row read its section too (`outbox`'s dead letters left unless --force)."""
    rows = [line for line in page("cli").splitlines() if line.startswith("| `exesdb-bridge ")]
    [outbox] = [row for row in rows if row.startswith("| `exesdb-bridge outbox")]
    assert "unless `--force`, one superseded" in _described(outbox)
    assert "unless `--force`, one superseded" not in outbox


def test_the_cli_page_lists_every_subcommand() -> None:
    """docs/cli.md covers every subcommand the parser knows."""
    from bridge.cli import build_parser

    parser = build_parser()
    subparsers = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    text = page("cli")
    for name in subparsers.choices:
        assert f"`exesdb-bridge {name}" in text, name


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def _reads() -> dict[str, frozenset[str]]:
    """The variables each command reads, by its name after ``exesdb-bridge``, from the model
    it reads them with (docs/cli.md: the client commands read only the variables they use)."""
    from bridge.client_settings import AdminClientSettings, OutboxSettings, PublishSettings
    from bridge.probe_settings import ProbeSettings

    def variables(model: type[FromEnvironment]) -> frozenset[str]:
        return frozenset(str(info.validation_alias) for info in model.model_fields.values())

    admin = variables(AdminClientSettings)
    probe = frozenset(f"EXESDB_{name.upper()}" for name in ProbeSettings._fields)
    return {
        "run": variables(Settings),
        "check-config": variables(Settings),
        "publish": variables(PublishSettings),
        "tail": admin,
        "alerts list": admin,
        "alerts ack": admin,
        "outbox list": variables(OutboxSettings),
        "outbox retry": variables(OutboxSettings),
        "outbox drop": variables(OutboxSettings),
        "schema": frozenset(),
        "healthcheck": probe,
    }


def test_each_command_s_help_names_what_it_needs_from_the_environment() -> None:
    """`exesdb-bridge --help` says each command's --help says what it needs: every command
    that reads a variable names one in its --help (healthcheck EXESDB_HTTP_ADDR, outbox
    EXESDB_STATE_DIR, ...; run and check-config, which read them all, may cite
    docs/configuration.md), and the commands known here are the parser's."""
    from bridge.cli import build_parser

    parser = build_parser()
    assert "each command's --help says what it needs" in " ".join(parser.format_help().split())
    leaves = {
        sub.prog.removeprefix("exesdb-bridge "): sub
        for sub in _parsers(parser)
        if not any(isinstance(action, argparse._SubParsersAction) for action in sub._actions)
    }
    reads = _reads()
    assert set(leaves) == set(reads)
    assert reads["healthcheck"] >= {"EXESDB_HTTP_ADDR", "EXESDB_HEALTHCHECK_KEY_FILE"}
    everything = reads["run"]

    def says(name: str, text: str) -> bool:
        # run and check-config read every setting: the page of them all says what they are.
        if reads[name] == everything and "docs/configuration.md" in " ".join(text.split()):
            return True
        return any(variable in text for variable in reads[name])

    silent = sorted(
        name for name, sub in leaves.items() if reads[name] and not says(name, sub.format_help())
    )
    assert silent == [], f"say in --help what these read from the environment: {silent}"


def test_a_command_with_subcommands_names_in_its_help_what_they_all_need() -> None:
    """`alerts --help` and `outbox --help`, what a user types before choosing a subcommand, name
    the variable every one of their subcommands reads (EXESDB_ADMIN_TOKEN, EXESDB_STATE_DIR)."""
    from bridge.cli import build_parser

    reads = _reads()
    groups = {
        sub.prog.removeprefix("exesdb-bridge "): sub
        for sub in _parsers(build_parser())
        if sub.prog != "exesdb-bridge"
        and any(isinstance(action, argparse._SubParsersAction) for action in sub._actions)
    }
    assert set(groups) == {"alerts", "outbox"}
    silent = []
    for name, group in groups.items():
        shared = frozenset.intersection(
            *(needs for leaf, needs in reads.items() if leaf.startswith(f"{name} "))
        )
        if not any(variable in group.format_help() for variable in shared):
            silent.append(name)
    assert silent == [], f"say in --help what the subcommands of these read: {silent}"


def test_every_option_and_argument_says_what_it_is_in_help() -> None:
    """`--help` of every subcommand explains each of its options and arguments."""
    from bridge.cli import build_parser

    bare = [
        f"{sub.prog} {action.dest}"
        for sub in _parsers(build_parser())
        for action in sub._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert not bare, f"give these a help text: {bare}"


def test_the_cli_page_names_every_option() -> None:
    """docs/cli.md names every option of every subcommand (its long form, at least once)."""
    from bridge.cli import build_parser

    text = page("cli")
    unnamed = sorted(
        {
            f"{sub.prog} {option}"
            for sub in _parsers(build_parser())
            for action in sub._actions
            for option in action.option_strings
            if option.startswith("--") and option != "--help"
            and not re.search(rf"{re.escape(option)}(?![\w-])", text)
        }
    )  # fmt: skip
    assert not unnamed, f"name these in docs/cli.md: {unnamed}"


def test_usage_lines_name_arguments_as_the_cli_page_does() -> None:
    """Each subcommand's usage names its positional arguments in capitals, as its row of
    docs/cli.md does (`publish TAG`, `alerts ack ALERT_ID`), and `alerts ack --by` as the page,
    the README and its own usage error do (`--by NAME`)."""
    from bridge.cli import build_parser

    rows = [line for line in page("cli").splitlines() if line.startswith("| `exesdb-bridge ")]
    unlike = []
    for sub in _parsers(build_parser()):
        name = sub.prog.removeprefix("exesdb-bridge ").split()[0] if " " in sub.prog else ""
        row = next((row for row in rows if row.startswith(f"| `exesdb-bridge {name} ")), "")
        for action in sub._actions:
            if action.option_strings or isinstance(action, argparse._SubParsersAction):
                continue
            shown = str(action.metavar or action.dest)
            if not shown.isupper() or not re.search(rf"\b{re.escape(shown)}\b", row):
                unlike.append(f"{sub.prog} {shown}")
    assert not unlike, f"name as docs/cli.md does: {unlike}"
    ack = build_parser().parse_args(["alerts", "ack", "x", "--by", "me"])
    assert ack.alert_id == "x"
    usage = _ack_usage()
    assert "--by NAME" in usage
    assert "--by NAME" in page("cli")
    assert "--by NAME" in (ROOT / "README.md").read_text()


def _ack_usage() -> str:
    from bridge.cli import build_parser

    for sub in _parsers(build_parser()):
        if sub.prog == "exesdb-bridge alerts ack":
            return sub.format_usage()
    raise AssertionError("no alerts ack")


def test_the_cli_page_gives_each_option_default_the_parser_has() -> None:
    """An option with a default (`alerts list --limit`, `outbox list --limit`, `healthcheck
    --timeout`) has it on its command's row of docs/cli.md as "N by default", the figure the
    parser holds."""
    from bridge.cli import build_parser

    rows = [line for line in page("cli").splitlines() if line.startswith("| `exesdb-bridge ")]
    checked = []
    for sub in _parsers(build_parser()):
        for action in sub._actions:
            if not action.option_strings or not isinstance(action.default, int | float):
                continue
            if isinstance(action.default, bool) or action.default == 0:
                continue  # a flag, or 0 standing for "none" (tail --count: follow until stopped)
            name = sub.prog.removeprefix("exesdb-bridge ").split()[0]
            [row] = [row for row in rows if row.startswith(f"| `exesdb-bridge {name} ")]
            option = action.option_strings[-1]
            said = re.search(rf"`{re.escape(option)}`[^|]*?(\d+(?:\.\d+)?) by default", row)
            assert said is not None, f"docs/cli.md: give {sub.prog} {option}'s default"
            assert float(said.group(1)) == action.default, f"{sub.prog} {option}"
            checked.append(option)
    assert sorted(checked) == ["--limit", "--limit", "--timeout"]


# Options whose words are named elsewhere than on their command's row, with where.
_CHOICES_NAMED_ELSEWHERE = {
    "--instance": "the bus instances: `exesdb-bridge schema` and docs/messages.md list them",
}


def test_the_cli_page_names_every_word_an_option_takes() -> None:
    """Each word an option of a few takes (`outbox list --state delivered`, `alerts list
    --state resolved`) is on its command's row of docs/cli.md, in a code span of its own or
    after the option, so a reader learns them before a usage error lists them."""
    from bridge.cli import build_parser

    rows = [line for line in page("cli").splitlines() if line.startswith("| `exesdb-bridge ")]
    unnamed, checked = [], []
    for sub in _parsers(build_parser()):
        for action in sub._actions:
            if not action.option_strings or not action.choices:
                continue
            option = action.option_strings[-1]
            if option in _CHOICES_NAMED_ELSEWHERE:
                continue
            name = sub.prog.removeprefix("exesdb-bridge ").split()[0]
            [row] = [row for row in rows if row.startswith(f"| `exesdb-bridge {name} ")]
            for choice in action.choices:
                checked.append(f"{sub.prog} {option} {choice}")
                if f"`{choice}`" not in row and f"{option} {choice}" not in row:
                    unnamed.append(f"{sub.prog} {option} {choice}")
    assert "exesdb-bridge outbox list --state delivered" in checked  # the check sees them
    assert unnamed == [], f"name these on their rows of docs/cli.md: {unnamed}"


def _help_of(prog: str) -> str:
    """The --help of ``exesdb-bridge <prog>``, its lines joined."""
    from bridge.cli import build_parser

    [sub] = [sub for sub in _parsers(build_parser()) if sub.prog == f"exesdb-bridge {prog}"]
    return " ".join(sub.format_help().split())


def test_each_state_directory_a_command_s_row_names_is_in_its_help() -> None:
    """A state directory docs/cli.md gives on a command's row or in its details (`run --demo`'s
    ./.exesdb-bridge-demo) is one that command's --help gives too."""
    rows = [line for line in page("cli").splitlines() if line.startswith("| `exesdb-bridge ")]
    unsaid = []
    for row in rows:
        command = row.removeprefix("| `exesdb-bridge ").split()[0]
        for directory in set(re.findall(r"\./\.exesdb-bridge[\w-]*", _described(row))):
            if directory not in _help_of(command):
                unsaid.append(f"{command}: {directory}")
    assert unsaid == [], f"say in --help what docs/cli.md says: {unsaid}"


# The dead letters `outbox retry` leaves unless --force, by the field of Unretryable that says
# why, with the words naming them in --force's help and on the outbox row of docs/cli.md.
_FORCED = {
    "resolved": "whose resolve",
    "refired": "firing again",
    "superseded": "superseded",
    "resolves_dead": "without the dead-lettered resolve",
    "left_out": "left out as `stale`",
    "resolved_untold": "resolved since of which nothing",
}


def test_outbox_retry_force_help_names_every_dead_letter_it_sends_all_the_same() -> None:
    """`outbox retry --force`'s help names each kind of dead letter retry leaves unless forced,
    as docs/cli.md's outbox row and its details do (one for a receiver the bridge did not start
    with stays left)."""
    from bridge.cli import build_parser
    from bridge.sinks.alerts.records import Unretryable

    why = {field.name for field in dataclasses.fields(Unretryable)}
    assert set(_FORCED) == why - {"delivery_id", "receiver", "configured"}
    [row] = [
        _described(line)
        for line in page("cli").splitlines()
        if line.startswith("| `exesdb-bridge outbox")
    ]
    [force] = [
        str(action.help)
        for sub in _parsers(build_parser())
        if sub.prog == "exesdb-bridge outbox retry"
        for action in sub._actions
        if "--force" in action.option_strings
    ]
    unnamed = [
        f"{where}: {words!r}"
        for words in _FORCED.values()
        for where, text in (("--help", force), ("docs/cli.md", row))
        if words not in text
    ]
    assert unnamed == [], f"name in --force's help and docs/cli.md: {unnamed}"


# Each default an option's --help gives in words (`(default: the tag)`), with the words docs/cli.md
# says it in (the test above checks the figures).
_WORD_DEFAULTS = {
    "the tag": "the topic is the tag unless `--topic` gives one",
    "firing and acknowledged": "firing and acknowledged ones (`--state` keeps one state",
    "every state": "lists deliveries of every state",
    "EXESDB_URL, else the address in EXESDB_HTTP_ADDR": (
        "else at `EXESDB_URL`, else at the address the bridge itself listens on"
    ),
    "the system's CAs; at EXESDB_HTTP_ADDR, the certificate EXESDB_WEB_CONFIG_FILE names": (
        "is asked trusting that file's own certificate alone"
    ),
}


def test_the_cli_page_says_each_default_an_option_s_help_gives_in_words() -> None:
    """A default an option's --help gives in words (`publish --topic`: the tag) is said in
    docs/cli.md too: one added to a help text fails here until the page says it."""
    from bridge.cli import build_parser

    given = {
        found.group(1)
        for sub in _parsers(build_parser())
        for action in sub._actions
        if (found := re.search(r"\(default: (\D[^)]*)\)", action.help or ""))
    }
    assert given == set(_WORD_DEFAULTS)
    text = " ".join(page("cli").split())
    unsaid = sorted(default for default, words in _WORD_DEFAULTS.items() if words not in text)
    assert unsaid == [], f"say these defaults in docs/cli.md: {unsaid}"


def _leaves() -> set[str]:
    """Every command the parser runs, by its name after ``exesdb-bridge`` (`alerts ack`)."""
    from bridge.cli import build_parser

    return {
        sub.prog.removeprefix("exesdb-bridge ")
        for sub in _parsers(build_parser())
        if not any(isinstance(action, argparse._SubParsersAction) for action in sub._actions)
    }


# A row of docs/cli.md's At a glance table: | [`command`](#anchor) | for | needs | `example` |
_GLANCE_ROW = re.compile(r"^\| \[`([a-z -]+)`\]\(#([\w-]+)\) \|[^|]+\|[^|]+\| `([^`]+)` \|$", re.M)


def _glance(text: str) -> dict[str, tuple[str, str]]:
    """The commands the At a glance table of ``text`` lists, with the anchor each links to and
    its example."""
    rows = _GLANCE_ROW.findall(section(text, "At a glance"))
    assert len(rows) == section(text, "At a glance").count("\n| [`"), "a row not read"
    return {command: (anchor, example) for command, anchor, example in rows}


def test_the_cli_page_at_a_glance_lists_every_command_and_no_other() -> None:
    """docs/cli.md's At a glance table has a row for each command the parser runs (`alerts ack`,
    `outbox retry` too) and none it does not: a command added or removed fails here until the
    table says so."""
    listed = set(_glance(page("cli")))
    assert "alerts ack" in listed  # the check reads the table
    assert sorted(_leaves() - listed) == [], "add these to At a glance in docs/cli.md"
    assert sorted(listed - _leaves()) == [], "no such commands: take them out of At a glance"


def test_each_at_a_glance_row_links_to_its_command_s_row_and_shows_that_command() -> None:
    """Each command of docs/cli.md's At a glance links to the detailed row of that command
    (where its `<a id>` is) and its example runs that command."""
    rows = [line for line in page("cli").splitlines() if line.startswith("| `exesdb-bridge ")]
    wrong = []
    for command, (anchor, example) in _glance(page("cli")).items():
        [row] = [row for row in rows if f'<a id="{anchor}"></a>' in row]
        if not row.startswith(f"| `exesdb-bridge {command.split()[0]}"):
            wrong.append(f"{command}: #{anchor} is another command's row")
        if not example.startswith(f"exesdb-bridge {command}"):
            wrong.append(f"{command}: its example is {example!r}")
    assert wrong == []


def test_every_command_the_cli_page_s_summaries_show_is_valid_usage() -> None:
    """Each `exesdb-bridge ...` of docs/cli.md's At a glance and Common tasks parses as the
    command line would parse it: an option renamed or removed fails here."""
    from bridge.cli import build_parser

    shown = [
        span
        for title in ("At a glance", "Common tasks")
        for span in spans(section(page("cli"), title))
        if span.startswith("exesdb-bridge ")
    ]
    assert len(shown) >= len(_leaves())  # the check finds them
    refused = []
    for line in shown:
        try:
            build_parser().parse_args(line.split()[1:])
        except SystemExit:
            refused.append(line)
    assert refused == [], f"docs/cli.md shows usage the parser refuses: {refused}"


def test_the_glance_reader_reads_the_rows_and_fails_on_a_command_left_out() -> None:
    """The checks above can fail: a table without `outbox retry` is one command short."""
    text = page("cli")
    row = next(line for line in text.splitlines() if line.startswith("| [`outbox retry`]"))
    assert "outbox retry" not in _glance(text.replace(row + "\n", ""))
    assert _leaves() - set(_glance(text.replace(row + "\n", ""))) == {"outbox retry"}


def test_each_docs_page_a_help_cites_is_named_where_a_pip_install_s_user_reads_it() -> None:
    """A pip install ships no docs/: each docs/ page a --help cites is a page of docs/, named
    with the source repository pyproject's [project.urls] gives (deploy/Dockerfile's
    image.source label names the same), and the top-level help cites one."""
    from bridge.cli import build_parser

    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("urls", {})
    source = urls.get("Source")
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert f'org.opencontainers.image.source="{source}"' in dockerfile
    cited, unreadable = [], []
    for sub in _parsers(build_parser()):
        text = " ".join(sub.format_help().split())
        for cite in re.findall(r"docs/[\w/.#-]*\w", text):
            cited.append(sub.prog)
            assert (ROOT / cite.partition("#")[0]).is_file(), cite
            if f"{cite} of the source repository, {source}" not in text:
                unreadable.append(f"{sub.prog}: {cite}")
    assert "exesdb-bridge" in cited
    assert unreadable == [], f"name the source repository with these: {unreadable}"


def test_usage_lines_name_a_count_n_as_the_cli_page_does() -> None:
    """Each usage line writes a count as docs/cli.md's rows do (`--limit N`, `--count N`), not
    argparse's capitalised option name (`--limit LIMIT`)."""
    from bridge.cli import build_parser

    text = page("cli")
    unlike = []
    for sub in _parsers(build_parser()):
        usage = " ".join(sub.format_usage().split())
        for option in ("--limit", "--count"):
            if f"[{option} " in usage and f"[{option} N]" not in usage:
                unlike.append(f"{sub.prog} {option}")
            assert f"[{option} N]" in text
    assert unlike == [], f"name as docs/cli.md does, N: {unlike}"


def _synopses(text: str) -> dict[str, str]:
    """Each command's synopsis in the Commands in detail table of ``text`` (docs/cli.md), by its
    name after ``exesdb-bridge`` (`alerts ack`; "" for ``exesdb-bridge --version``): the code
    span opening its row, a row of several (`alerts list ... \\| ack ...`) cut before each of its
    subcommands."""
    found = {}
    for span in re.findall(r"^\| `exesdb-bridge ([^`]+)`", text, re.M):
        if span.startswith("--"):  # the options of exesdb-bridge alone
            found[""] = span
            continue
        command, _, rest = span.replace("\\|", "|").partition(" ")
        subcommands = [leaf.split()[1] for leaf in _leaves() if leaf.startswith(f"{command} ")]
        if not subcommands:
            found[command] = span.replace("\\|", "|")
            continue
        for part in re.split(rf" \| (?=(?:{'|'.join(subcommands)}) )", rest):
            found[f"{command} {part.split()[0]}"] = part
    return found


def _synopsis_gaps(text: str) -> list[str]:
    """Where a command's synopsis in ``text`` leaves out an option its parser takes (long form;
    `--help` aside), or names one it does not take."""
    from bridge.cli import build_parser

    synopses = _synopses(text)
    gaps = []
    for sub in _parsers(build_parser()):
        command = sub.prog.removeprefix("exesdb-bridge").strip()
        if command not in _leaves() | {""}:
            continue
        synopsis = synopses.get(command, "")
        taken = {
            option
            for action in sub._actions
            for option in action.option_strings
            if option.startswith("--") and option != "--help"
        }
        named = set(re.findall(r"(?<![\w-])--[\w-]+", synopsis))
        gaps += [f"{command}: leaves out {option}" for option in sorted(taken - named)]
        gaps += [f"{command}: names {option}, not taken" for option in sorted(named - taken)]
    return gaps


def test_each_command_s_synopsis_names_every_option_its_parser_takes() -> None:
    """Each command's synopsis in docs/cli.md (the code span opening its row) names every option
    its --help usage has, the client commands' `--cacert` and `--user` too, and none other."""
    assert _synopsis_gaps(page("cli")) == [], "mend these synopses in docs/cli.md"


def test_the_synopsis_check_reads_every_command_and_fails_on_an_option_left_out() -> None:
    """The check above can fail: it reads a synopsis for each command (`alerts ack` after `alerts
    list`'s), `alerts ack` without `--since` is one option short, and `outbox list` with
    `--cacert` names one it does not take."""
    text = page("cli")
    assert set(_synopses(text)) == _leaves() | {""}
    assert _synopses(text)["alerts ack"].startswith("ack ALERT_ID --by NAME")
    short = text.replace("[--since TIME] ", "", 1)
    assert _synopsis_gaps(short) == ["alerts ack: leaves out --since"]
    extra = text.replace("outbox list [--state S]", "outbox list [--cacert FILE] [--state S]", 1)
    assert _synopsis_gaps(extra) == ["outbox list: names --cacert, not taken"]
