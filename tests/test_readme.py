"""The README is a front page that works: quick start, commands that parse, links to each page."""

from __future__ import annotations

import argparse
import re

import pytest

from bridge.cli import build_parser
from tests.doc_text import DOCS, README, fenced, links, pages, section, shell_commands

TEXT = README.read_text()


def test_every_readme_block_is_a_shell_block_the_tests_run() -> None:
    """Each fenced block of the README is ``sh``, the blocks the README command test runs line by
    line: a bash, python or unlabelled block would go untried."""
    opened = re.findall(r"^```(.*)\n(?:.*\n)*?^```$", TEXT, re.M)
    assert opened
    assert set(opened) == {"sh"}


def test_quick_start_is_exactly_make_run_and_make_test() -> None:
    """The quick start shows exactly the two commands."""
    [block] = fenced(section(TEXT, "Quick start"), "sh")
    commands = [line.split("#")[0].strip() for line in block.splitlines()]
    assert commands == ["make run", "make test"]


def test_quick_start_says_how_to_run_on_another_port() -> None:
    """Beside ``make run`` on 9570, the quick start shows the line for another port, for a
    machine where 9570 is taken, before a reader reaches the settings."""
    text = section(TEXT, "Quick start")
    assert re.search(r"`EXESDB_HTTP_ADDR=127\.0\.0\.1:\d+ make run`", text)


def test_the_redis_task_says_what_each_replica_needs_of_its_own() -> None:
    """The Redis task names what replicas tried on one host must not share: a second one run from
    the same folder with only a node name of its own stopped on the first's state folder."""
    [paragraph] = [p for p in TEXT.split("\n\n") if p.startswith("**Run on Redis.**")]
    for need in ("`SECRET_KEY_BASE`", "node name", "`EXESDB_HTTP_ADDR`", "`EXESDB_STATE_DIR`"):
        assert need in paragraph


@pytest.mark.parametrize("args", shell_commands(TEXT), ids=" ".join)
def test_every_readme_command_is_valid_usage(args: list[str]) -> None:
    """Each exesdb-bridge command the README shows parses as the command line would parse it."""
    parsed = build_parser().parse_args(args)
    assert callable(parsed.handler)


def test_the_command_finder_finds_commands_and_bad_usage_fails() -> None:
    """The check above can fail: it finds prefixed and continued commands, and argparse refuses."""
    sample = "```sh\nA=1 B=2 exesdb-bridge run --demo &\nexesdb-bridge publish x \\\n -f a=1\n```\n"
    assert shell_commands(sample) == [["run", "--demo"], ["publish", "x", "-f", "a=1"]]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--no-such-option"])


def test_the_readme_links_every_page_of_the_docs() -> None:
    """Each page under docs/ is linked from the README's Documentation table."""
    linked = {target.partition("#")[0] for target in links(section(TEXT, "Documentation"))}
    assert {f"docs/{path.name}" for path in DOCS.glob("*.md")} <= linked


def test_the_readme_lists_the_everyday_tasks() -> None:
    """The front page covers the tasks a new user comes for, each with a command."""
    tasks = section(TEXT, "Everyday tasks")
    for task in (
        "Scrape with Prometheus",
        "Receive alert webhooks",
        "Send signed messages",
        "Run on Redis",
        "Export to OpenTelemetry",
        "Run the demo",
        "Check the configuration",
    ):
        assert f"**{task}.**" in tasks, task
    assert len(fenced(tasks, "sh")) >= 7


def test_every_subcommand_appears_among_the_everyday_tasks_or_the_cli_page() -> None:
    """No subcommand is hidden: the README or docs/cli.md names each one."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = TEXT + (DOCS / "cli.md").read_text()
    for name in subparsers.choices:
        assert f"exesdb-bridge {name}" in text, name


def test_the_readme_lists_the_semantic_conventions_the_spans_carry() -> None:
    """The OpenTelemetry task names every messaging attribute the OpenTelemetry page documents and
    the HTTP client ones of a webhook span, so a reader knows what to query without the page."""
    task = section(TEXT, "Everyday tasks").split("**Export to OpenTelemetry.**")[1].split("**")[0]
    page = (DOCS / "opentelemetry.md").read_text()
    messaging = set(re.findall(r"`(messaging\.[a-z_.]+)`", page))
    assert len(messaging) == 5
    http_client = {
        "http.request.method",
        "server.address",
        "http.response.status_code",
        "error.type",
    }
    for name in sorted(messaging | http_client):
        assert f"`{name}`" in task, name


def test_the_readme_runs_alertmanager_by_debians_name_where_the_bridge_posts() -> None:
    """The README shows how to run an Alertmanager for the bridge to post to, by the name
    Debian's package gives it (``prometheus-alertmanager``: Debian has no ``alertmanager``
    command), with a storage path a user can write, listening where the bridge's
    ``EXESDB_ALERTMANAGER_URL`` points."""
    lines = [line.strip() for block in fenced(TEXT, "sh") for line in block.splitlines()]
    runs = [line for line in lines if re.match(r"(prometheus-)?alertmanager\b", line)]
    assert runs, "the README never shows how to run Alertmanager"
    assert all(line.startswith("prometheus-alertmanager ") for line in runs), runs
    assert "`prometheus-alertmanager`, not `alertmanager`" in TEXT
    for line in runs:
        assert "--storage.path=" in line, line  # Debian's default is root's
        [listen] = re.findall(r"--web\.listen-address=(\S+)", line)
        assert any(f"EXESDB_ALERTMANAGER_URL=http://{listen} " in other for other in lines)


def test_every_silent_curl_of_the_docs_still_says_why_it_failed() -> None:
    """A ``curl -s`` in the README's or a page's shell blocks is ``-sS``: the progress meter
    hidden, but not the error, so a request to a port the bridge does not listen on (the shell's
    EXESDB_HTTP_ADDR not the bridge's) says so rather than printing nothing into its grep."""
    quiet = []
    for path in pages():
        for block in fenced(path.read_text(), "sh"):
            for line in block.replace("\\\n", " ").splitlines():
                # Each curl's options, up to the end of its command (a pipe, ;, && or ||).
                for command in re.findall(r"(?:^|[\s|;&(])curl\s([^|;&]*)", line):
                    flags = "".join(re.findall(r"(?:^|\s)-([A-Za-z]+)\b", command))
                    if "s" in flags and "S" not in flags:
                        quiet.append(f"{path.name}: {line.strip()}")
    assert not quiet, quiet
