"""The pages under docs/ stay true to the code: settings, ingest, CLI, links, no phantom spec."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import inspect
import io
import itertools
import json
import re
import string
import types
import typing
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any, Final

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from bridge.app import Bridge
from bridge.client_settings import FromEnvironment
from bridge.config import load_settings
from bridge.errors import ConfigError
from bridge.http import build_app
from bridge.messages import MESSAGE_TYPES
from bridge.receivers import read_receivers_file
from bridge.redaction import (
    _ABOUT_A_SECRET,
    _HARMLESS_KEY_KINDS,
    _SECRET_PARTS,
    _SECRET_WORDS,
)
from bridge.settings import Settings, known_variables, unknown_variables
from tests.doc_text import README, anchors, broken_links, fenced, page, pages, section
from tests.support import ROOT, TEST_SECRET, ThreadedBridge, free_port, make_settings


def _table_rows(text: str) -> dict[str, str]:
    """The variable and default columns of the settings tables in ``text``."""
    rows: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"\| `([A-Z0-9_]+)` \| ([^|]+) \|", line)
        if match:
            rows[match.group(1)] = match.group(2).strip().strip("`")
    return rows


def _config_rows() -> dict[str, str]:
    return _table_rows(page("configuration"))


def _defaults() -> dict[str, object]:
    return {
        str(info.validation_alias): None if info.default_factory else info.default
        for info in Settings.model_fields.values()
    }


# -- configuration --


def test_every_setting_is_in_the_configuration_table() -> None:
    """Every variable Settings reads has a row in docs/configuration.md."""
    missing = set(_defaults()) - set(_config_rows())
    assert not missing, f"add to docs/configuration.md: {sorted(missing)}"


def test_every_table_row_is_a_setting() -> None:
    """Every row of docs/configuration.md is a variable Settings reads."""
    unknown = set(_config_rows()) - set(_defaults())
    assert not unknown, f"docs/configuration.md documents unread variables: {sorted(unknown)}"


@pytest.mark.parametrize("variable", sorted(_defaults()))
def test_table_defaults_match_the_code(variable: str) -> None:
    """The default column says what Settings really defaults to."""
    shown = _config_rows().get(variable)
    if shown is None:
        pytest.fail(f"{variable} is not in docs/configuration.md")
    _assert_shows_the_default(variable, shown)


@pytest.mark.parametrize("path", pages(), ids=lambda path: path.name)
def test_every_pages_settings_tables_show_the_code_defaults(path: Path) -> None:
    """A settings table on any page (Redis, OpenTelemetry, ...) shows each default as the code
    has it, as docs/configuration.md's does."""
    defaults = _defaults()
    for variable, shown in _table_rows(path.read_text()).items():
        if variable in defaults:
            _assert_shows_the_default(variable, shown)


# A default given in prose: `EXESDB_X_MS` (15 min), `EXESDB_Y`, 1 024, `EXESDB_Z` (default 50).
_PROSE_DEFAULT = re.compile(
    r"`((?:EXESDB_)[A-Z0-9_]+)`(?:,| \()\s*(?:default )?(\d{1,3}(?:[ ,]\d{3})+|\d+(?:\.\d+)?)"
    r"(?:\s?(ms|s|min|h|days)\b)?"
)
_MS_PER: Final = {"ms": 1, "s": 1_000, "min": 60_000, "h": 3_600_000, "days": 86_400_000}


def _prose_defaults(text: str) -> list[tuple[str, float]]:
    """Each numeric default ``text`` gives a setting in prose, in the setting's own unit
    (milliseconds for an ``_MS`` one, whose figure must name its unit)."""
    found = []
    outside_blocks = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    for variable, figure, unit in _PROSE_DEFAULT.findall(outside_blocks):
        value = float(figure.replace(" ", "").replace(",", ""))
        if variable.endswith("_MS"):
            if not unit:
                continue  # a count of something else, not this duration
            value *= _MS_PER[unit]
        elif unit:
            continue
        found.append((variable, value))
    return found


@pytest.mark.parametrize("path", pages(), ids=lambda path: path.name)
def test_defaults_given_in_prose_are_the_code_defaults(path: Path) -> None:
    """Where a page gives a setting's default beside its name ("`EXESDB_WEBHOOK_GROUP_WAIT_MS`
    (500 ms)"), that is what Settings defaults to."""
    defaults = _defaults()
    wrong = [
        f"{variable}: the page says {value:g}, the code {defaults[variable]}"
        for variable, value in _prose_defaults(path.read_text())
        if variable in defaults and value != defaults[variable]
    ]
    assert wrong == []


def test_the_bad_number_the_configuration_page_shows_is_what_the_bridge_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The example line of a bad number setting on docs/configuration.md is the line
    check-config and start-up print for that value."""
    shown = re.search(
        r"`([A-Z0-9_]+): (must be a whole number[^`]*) \(got '([^']*)'\)`", page("configuration")
    )
    assert shown is not None, "docs/configuration.md shows no bad number setting"
    variable, _, value = shown.groups()
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert list(caught.value.problems) == [shown.group(0).strip("`")]


@pytest.mark.usefixtures("clean_env")
def test_the_missing_certificate_the_opentelemetry_page_shows_is_what_the_bridge_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/opentelemetry.md's example of a missing OTLP certificate file is the line start-up
    and check-config print for it."""
    [block] = [text for text in fenced(page("opentelemetry"), "text") if "CERTIFICATE" in text]
    line = block.splitlines()[1].strip()
    variable, path = re.fullmatch(r"([A-Z_]+): cannot read (\S+): .*", line).groups()  # type: ignore[union-attr]
    assert not Path(path).exists()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector.example:4317")
    monkeypatch.setenv(variable, path)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert list(caught.value.problems) == [line]


def test_the_integration_page_gives_the_intervals_the_getters_give_without_a_bridge() -> None:
    """docs/integration.md's "Without a bridge" names the intervals the module's getters give
    when no bridge is installed."""
    import bridge.integration as api

    text = " ".join(section(page("integration"), "Without a bridge").split())
    shown = re.search(r"give the defaults \((\d+) and (\d+)\)", text)
    assert shown is not None
    assert api.current() is None
    given = (api.health_broadcast_interval(), api.metrics_broadcast_interval())
    assert given == (int(shown.group(1)), int(shown.group(2)))


def _signature_shown(function: Any) -> str:
    """``function``'s parameters as the Calls table of docs/integration.md writes them: names
    and defaults, no annotations; ``**misspelt`` (a keyword no call takes, refused) left out."""
    shown = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is parameter.VAR_KEYWORD:
            if parameter.name != "misspelt":
                shown.append(f"**{parameter.name}")
        elif parameter.default is parameter.empty:
            shown.append(parameter.name)
        else:
            default = json.dumps(parameter.default) if parameter.default is not None else "None"
            shown.append(f"{parameter.name}={default}")
    return ", ".join(shown)


def test_the_integration_page_gives_each_call_s_signature() -> None:
    """Each row of docs/integration.md's Calls table gives its call's parameters and defaults
    as bridge.integration has them, and every public broadcast call has a row."""
    import bridge.integration as api

    rows = dict(re.findall(r"^\| `(broadcast\w*)\((.*?)\)` \|", page("integration"), re.M))
    calls = {name for name in api.__all__ if name.startswith("broadcast")}
    assert set(rows) == calls
    wrong = [
        f"{name}({shown}), the code {name}({_signature_shown(getattr(api, name))})"
        for name, shown in rows.items()
        if shown != _signature_shown(getattr(api, name))
    ]
    assert wrong == []


def test_the_prose_default_reader_finds_each_form() -> None:
    """The check above can fail: it reads the forms the pages use, in the setting's unit."""
    sample = (
        "`EXESDB_ESCALATION_AFTER_MS` (15 min), (`EXESDB_WEBHOOK_TIMEOUT_MS`, 10 s per attempt),"
        " `EXESDB_HTTP_MAX_CONNECTIONS` (1 024), `EXESDB_MAX_SERIES` (default 10 000),"
        " `EXESDB_WEBHOOK_GROUP_WAIT_MS` (500 ms), `EXESDB_NODE_FORGET_MS` (3 of them),"
        " `EXESDB_REPLAY_WINDOW_MS` (a long outage)"
    )
    assert _prose_defaults(sample) == [
        ("EXESDB_ESCALATION_AFTER_MS", 900_000),
        ("EXESDB_WEBHOOK_TIMEOUT_MS", 10_000),
        ("EXESDB_HTTP_MAX_CONNECTIONS", 1024),
        ("EXESDB_MAX_SERIES", 10_000),
        ("EXESDB_WEBHOOK_GROUP_WAIT_MS", 500),
    ]


# The floor every count and duration has (at least 1, above 0): the error says it, no row need.
_PLAIN_FLOORS: Final = {("ge", 1), ("gt", 0)}
# Rows that give their bounds once for the rows after them ("Each of the six thresholds").
_BOUNDS_GIVEN_ON: Final = {
    variable: "EXESDB_CPU_DEGRADED"
    for variable in (
        "EXESDB_CPU_UNHEALTHY",
        "EXESDB_MEMORY_DEGRADED",
        "EXESDB_MEMORY_UNHEALTHY",
        "EXESDB_DISK_DEGRADED",
        "EXESDB_DISK_UNHEALTHY",
    )
}


def _bounds() -> dict[str, list[tuple[str, float]]]:
    """Each setting's bounds other than the plain floor, as (``ge``/``gt``/``le``/``lt``, N)."""
    bounds: dict[str, list[tuple[str, float]]] = {}
    for info in Settings.model_fields.values():
        found = [
            (kind, getattr(constraint, kind))
            for constraint in info.metadata
            for kind in ("ge", "gt", "le", "lt")
            if getattr(constraint, kind, None) is not None
        ]
        kept = [bound for bound in found if bound not in _PLAIN_FLOORS]
        if kept:
            bounds[str(info.validation_alias)] = kept
    return bounds


def _row_figures(text: str) -> set[float]:
    """The numbers ``text`` writes: 10 000 000 and 10,000 as one figure each, 256 MiB in bytes."""
    joined = re.sub(r"(?<=\d)[, ](?=\d{3}\b)", "", text)
    figures = {float(figure) for figure in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", joined)}
    figures |= {float(mib) * 1_048_576 for mib in re.findall(r"\b(\d+) MiB\b", joined)}
    return figures


def test_the_configuration_page_gives_every_bound_the_code_puts_on_a_setting() -> None:
    """Each limit Settings puts on a number beyond "at least 1" (`EXESDB_REPLAY_MEMORY` ≥ 1000,
    `EXESDB_MAX_BODY_BYTES` up to 256 MiB, a threshold above 1) is a figure on the setting's row
    of docs/configuration.md, so a user learns the range before the error tells it."""
    rows = {
        match.group(1): line
        for line in page("configuration").splitlines()
        if (match := re.match(r"\| `([A-Z0-9_]+)` \|", line))
    }
    bounds = _bounds()
    assert "EXESDB_MAX_BODY_BYTES" in bounds  # the check sees the constraints
    missing = [
        f"{variable}: {kind} {limit:.12g}"
        for variable, kept in bounds.items()
        for kind, limit in kept
        if limit not in _row_figures(rows[_BOUNDS_GIVEN_ON.get(variable, variable)])
    ]
    assert missing == [], f"give these bounds on their rows of docs/configuration.md: {missing}"


def test_the_bound_reader_reads_figures_as_the_rows_write_them() -> None:
    """The check above can fail: it reads grouped figures and MiB, not parts of other words."""
    row = "| (1 024 to 268 435 456, 256 MiB; ≥ 100, 10,000) level1 2.5 |"
    assert _row_figures(row) == {1024, 268_435_456, 256, 100, 10_000, 2.5}


@pytest.mark.parametrize("path", pages(), ids=lambda path: path.name)
def test_every_variable_a_page_names_is_a_setting_or_a_mistake_shown_with_its_fix(
    path: Path,
) -> None:
    """An `EXESDB_*` name on the README or a page of docs/ is a setting, or one of the mistakes
    the pages show the bridge catching (`EXESDB_PORT`), followed closely by what the bridge's
    warning says to use instead (`EXESDB_HTTP_ADDR`): never a setting renamed or imagined."""
    known = known_variables()
    text = path.read_text()
    wrong = []
    for found in re.finditer(r"\b(EXESDB_[A-Z0-9_]*[A-Z0-9])\b(?!\*)", text):
        if found.group(1) in known:
            continue
        [warning] = unknown_variables({found.group(1): "x"})
        meant = re.findall(r"\b[A-Z][A-Z0-9_]{3,}\b|--[a-z-]+", warning.partition("(ignored)")[2])
        if not any(name in text[found.end() : found.end() + 200] for name in meant):
            wrong.append(f"{found.group(1)}: no setting; the bridge would say {warning!r}")
    assert wrong == []


def _choices(annotation: Any) -> list[str]:
    """The values a setting's type allows, when it is a choice (a ``Literal`` or an enum)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return [str(value) for value in typing.get_args(annotation)]
    if origin in (typing.Annotated, typing.Union, types.UnionType):
        return [choice for part in typing.get_args(annotation) for choice in _choices(part)]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(member.value) for member in annotation]
    return []


def _rows_meant() -> dict[str, str]:
    """Each row of docs/configuration.md's table, by variable, with the row it refers to: a
    row that is "the same" as the one above it, or the "override of `X`", is read with X's."""
    rows: dict[str, str] = {}
    above = ""
    for line in page("configuration").splitlines():
        match = re.match(r"\| `([A-Z0-9_]+)` \| [^|]+ \| (.*) \|$", line)
        if match is None:
            continue
        variable, meaning = match.groups()
        override = re.match(r"per-signal override of `([A-Z0-9_]+)`", meaning)
        if meaning.startswith("the same "):
            rows[variable] = f"{line} {above}"
        elif override:
            rows[variable] = f"{line} {rows[override.group(1)]}"
        else:
            rows[variable] = above = line
    return rows


def test_the_configuration_page_names_every_value_a_choice_setting_takes() -> None:
    """Each value a setting of a few words takes (`EXESDB_LOG_LEVEL`'s levels, the OTLP
    protocols, `EXESDB_WEBHOOK_MIN_SEVERITY`'s severities) is named on its row, or on the row
    it says it is the same as."""
    rows = _rows_meant()
    checked = {}
    for info in Settings.model_fields.values():
        if choices := _choices(info.annotation):
            checked[str(info.validation_alias)] = choices
    assert checked["EXESDB_WEBHOOK_MIN_SEVERITY"] == ["info", "warning", "error", "critical"]
    unnamed = [
        f"{variable}: {choice}"
        for variable, choices in checked.items()
        for choice in choices
        if f"`{choice}`" not in rows[variable]
    ]
    assert unnamed == [], f"name these values on their rows of docs/configuration.md: {unnamed}"


def _assert_shows_the_default(variable: str, shown: str) -> None:
    default = _defaults()[variable]
    if variable == "EXESDB_NODE":
        assert shown == "host name"
    elif default is None:
        assert shown in ("none", "unset")
    elif default == ():
        assert shown == "empty"
    elif isinstance(default, bool):
        assert shown == str(default).lower()
    elif isinstance(default, int | float):
        assert float(shown) == default
    else:
        assert shown == default


def _boolean_spellings() -> list[str]:
    """The spellings docs/configuration.md's one "Booleans take" line gives, in its order."""
    [sentence] = re.findall(r"Booleans take ([^;\n]*);", page("configuration"))
    return re.findall(r"`([^`]+)`", sentence)


def test_the_boolean_spellings_on_the_page_are_taken_and_named_in_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each spelling docs/configuration.md gives booleans is read as such, in any letter case,
    and the error for a bad one names them all, so a user can tell from it what to type."""
    spellings = _boolean_spellings()
    assert "in any letter case" in page("configuration")
    for word in spellings:
        expected = word in ("true", "1", "yes", "on", "t", "y")
        for typed in (word, word.upper(), word.capitalize()):
            assert make_settings(EXESDB_INGEST=typed).ingest is expected, typed
    monkeypatch.setenv("EXESDB_INGEST", "maybe")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    [problem] = refused.value.problems
    assert problem.startswith("EXESDB_INGEST: ")
    said = problem.partition(" (got")[0]
    assert re.findall(rf"\b(?:{'|'.join(spellings)})\b", said) == spellings
    assert "in any letter case" in said


def test_the_page_names_every_spelling_a_boolean_setting_takes() -> None:
    """No word a boolean setting takes goes unlisted on the page: every string of up to three
    letters or digits, and longer words a user might try, is taken exactly when listed."""
    assert Settings.model_fields["ingest"].annotation is bool  # checked as a plain bool
    takes = TypeAdapter(bool)

    def taken(word: str) -> bool:
        try:
            takes.validate_python(word)
        except ValidationError:
            return False
        return True

    alphabet = string.ascii_lowercase + string.digits
    short = ("".join(chars) for n in (1, 2, 3) for chars in itertools.product(alphabet, repeat=n))
    longer = ["true", "false", "none", "null", "enable", "enabled", "disable", "disabled", "yes "]
    assert sorted(w for w in (*short, *longer) if taken(w)) == sorted(_boolean_spellings())


# -- HTTP API --


@pytest.mark.parametrize("finder", ["EXESDB_URL", "EXESDB_HTTP_ADDR"])
def test_the_ingest_recipe_works(monkeypatch: pytest.MonkeyPatch, finder: str) -> None:
    """The Python signing recipe of docs/http-api.md, run as written, gets a 202 from a real
    bridge on another port, found as the CLI finds it: by EXESDB_URL, or in a shell set up as
    the README's (only EXESDB_HTTP_ADDR exported)."""
    [block] = fenced(section(page("http-api"), "Ingest"), "python")
    monkeypatch.setenv("SECRET_KEY_BASE", TEST_SECRET)
    monkeypatch.delenv("EXESDB_URL", raising=False)
    with ThreadedBridge(EXESDB_INGEST="true") as server:
        # A port that is not the default one.
        if finder == "EXESDB_URL":
            monkeypatch.setenv("EXESDB_URL", f"http://{server.host}:{server.port}")
            monkeypatch.setenv("EXESDB_HTTP_ADDR", f"127.0.0.1:{free_port()}")  # URL wins
        else:
            monkeypatch.setenv("EXESDB_HTTP_ADDR", f"0.0.0.0:{server.port}")  # asked on loopback
        printed = io.StringIO()
        with redirect_stdout(printed):
            exec(compile(block, "docs/http-api.md", "exec"), {})  # our own docs
        assert printed.getvalue().strip() == "202"
        assert (
            server.bridge.registry.get_sample_value(
                "exesdb_bus_published_total",
                {"pubsub": "ex_esdb_metrics", "tag": "performance_metric"},
            )
            == 1
        )


def test_the_http_page_names_every_status_code_of_ingest() -> None:
    """The Ingest section lists every status ingest can answer."""
    ingest = section(page("http-api"), "Ingest")
    for status in (202, 400, 401, 404, 409, 413, 415, 503):
        assert f"| {status} |" in ingest


# Answers no client reads: the connection closed before the request was read.
_UNREAD_CODES: Final = {"connection_lost"}


def _refusals() -> set[tuple[int, str]]:
    """Each (status, error code) a refusal of bridge/ answers with, written out in the call."""
    found = set()
    for path in sorted((ROOT / "bridge").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            status, code = node.args[:2]
            if name != "error_response" or not isinstance(status, ast.Constant):
                continue
            if isinstance(code, ast.Constant):
                found.add((int(str(status.value)), str(code.value)))
    return found


def test_every_refusal_the_bridge_answers_is_on_the_pages_with_its_status() -> None:
    """Each error code a route, the listener or the web config answers with is named on
    docs/http-api.md or docs/security.md beside its status (`403 `admin_disabled``)."""
    text = " ".join((page("http-api") + page("security")).split())
    refusals = _refusals()
    assert (403, "admin_disabled") in refusals
    assert (429, "rate_limited") in refusals
    unnamed = sorted(
        f"{status} {code}"
        for status, code in refusals
        if code not in _UNREAD_CODES
        and not re.search(rf"\b{status}\b[^|]{{0,60}}`{code}`", text)
        and not re.search(rf"\| {status} \|[^\n]*?`{code}`", page("http-api"))
    )
    assert unnamed == [], f"name these refusals on docs/http-api.md: {unnamed}"


def test_the_http_page_names_every_route() -> None:
    """Each route the bridge serves (its own, its components') is in docs/http-api.md's table."""
    app = build_app(Bridge(Settings(EXESDB_NODE="n1")))
    routes = {
        f"{route.method} {route.resource.canonical}"
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    assert "POST /v1/alerts/{alert_id}/ack" in routes  # components' routes are counted too
    table = page("http-api").split("\n## ", 1)[0]
    missing = sorted(route for route in routes if f"`{route}`" not in table)
    assert not missing, f"add to the table of docs/http-api.md: {missing}"


# -- CLI --


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
    probe = frozenset(f"EXESDB_{field.name.upper()}" for field in dataclasses.fields(ProbeSettings))
    return {
        "run": variables(Settings),
        "check-config": variables(Settings),
        "publish": variables(PublishSettings),
        "tail": admin,
        "alerts list": admin,
        "alerts ack": admin,
        "outbox list": variables(OutboxSettings),
        "outbox retry": variables(OutboxSettings),
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


# -- every page --


@pytest.mark.parametrize("path", pages(), ids=lambda path: path.name)
def test_every_relative_link_reaches_a_file_and_heading(path: Path) -> None:
    """Each relative link of the README and docs/ points at a file that exists (and its heading)."""
    assert broken_links(path) == []


def test_the_link_check_finds_broken_links(tmp_path: Path) -> None:
    """The check above can fail: a missing file and a missing heading are both reported."""
    (tmp_path / "other.md").write_text("# Other\n\n## A heading, with `code`\n")
    sample = tmp_path / "page.md"
    sample.write_text(
        "# Page\n\n[ok](other.md#a-heading-with-code) [self](#page) [web](https://x.example)\n"
        "[gone](missing.md) [lost](other.md#nowhere) `[code](ignored.md)`\n"
        "<!-- [comment](ignored.md) -->\n"
    )
    assert broken_links(sample) == [
        "missing.md: no file missing.md",
        "other.md#nowhere: no heading #nowhere in other.md",
    ]


CITED_SECTION = re.compile(r"\bdocs/([a-z-]+\.md)#([a-z0-9-]+)")


def cited_sections(root: Path) -> list[tuple[str, str, str]]:
    """(file, page, anchor) of each ``docs/<page>.md#<anchor>`` the code, the deploy files and
    the examples under ``root`` cite (what a user reads in a log line, an error or a help)."""
    files = [
        path
        for folder in ("bridge", "collectors", "bench", "deploy", "examples", "grafana")
        for path in sorted((root / folder).rglob("*"))
        if path.is_file() and path.suffix not in {".pyc", ".png"}
    ]
    return [
        (str(path.relative_to(root)), name, anchor)
        for path in files
        for name, anchor in CITED_SECTION.findall(path.read_text(errors="replace"))
    ]


def unreached_sections(root: Path) -> list[str]:
    """Each cited ``docs/<page>.md#<anchor>`` under ``root`` whose page or heading is missing."""
    unreached = []
    for where, name, anchor in cited_sections(root):
        target = root / "docs" / name
        if not target.exists() or anchor not in anchors(target.read_text()):
            unreached.append(f"{where}: docs/{name}#{anchor}")
    return unreached


def test_every_section_the_code_cites_is_a_heading_of_its_page() -> None:
    """A ``docs/<page>.md#<anchor>`` in a log line, an error, a help or a deploy file reaches
    a heading of that page (the one a reader is told to read)."""
    assert len(cited_sections(ROOT)) >= 10
    assert unreached_sections(ROOT) == []


def test_the_cited_section_check_finds_a_missing_heading(tmp_path: Path) -> None:
    """The check above can fail: a heading renamed away and a page missing are both reported."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "redis.md").write_text("# Redis\n\n## Keys\n")
    (tmp_path / "bridge").mkdir()
    (tmp_path / "bridge" / "x.py").write_text(
        '"see docs/redis.md#keys, docs/redis.md#gone and docs/nope.md#keys"\n'
    )
    assert unreached_sections(tmp_path) == [
        "bridge/x.py: docs/redis.md#gone",
        "bridge/x.py: docs/nope.md#keys",
    ]


PHANTOMS = re.compile(r"\bSPEC\b|MESSAGES\.md")


def _phantom_files() -> list[Path]:
    text_files = [
        path
        for folder in ("deploy", "grafana")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.is_file()
    ]
    return [*pages(), *text_files]


@pytest.mark.parametrize("path", _phantom_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_no_page_cites_a_spec_the_repository_lacks(path: Path) -> None:
    """README, docs/, deploy/ and grafana/ cite the docs pages, never "SPEC section N"."""
    found = [line for line in path.read_text().splitlines() if PHANTOMS.search(line)]
    assert found == [], f"{path.relative_to(ROOT)} cites a document users do not have"


def _phantom_code() -> list[Path]:
    return [
        path
        for folder in ("bridge", "collectors", "bench", "examples")
        for path in sorted((ROOT / folder).rglob("*.py"))
    ]


@pytest.mark.parametrize("path", _phantom_code(), ids=lambda path: str(path.relative_to(ROOT)))
def test_no_docstring_or_comment_cites_a_spec_the_repository_lacks(path: Path) -> None:
    """Code points its reader at the docs pages too, never at "SPEC section N"."""
    found = [line for line in path.read_text().splitlines() if PHANTOMS.search(line)]
    assert found == [], f"{path.relative_to(ROOT)} cites a document readers do not have"


@pytest.mark.parametrize("path", pages(), ids=lambda path: path.name)
def test_every_page_has_one_title(path: Path) -> None:
    """Each page opens with its one '# ' title, so the structure stays one topic per file."""
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
    titles = re.findall(r"^# .+$", text, re.M)
    assert len(titles) == 1
    assert path.read_text().startswith(titles[0])


@pytest.mark.parametrize("path", pages(), ids=lambda path: path.name)
def test_yaml_and_json_examples_parse(path: Path) -> None:
    """The YAML and JSON blocks of the pages are valid, so they can be copied as they are."""
    text = path.read_text()
    for block in fenced(text, "yaml"):
        yaml.safe_load(block)
    for block in fenced(text, "json"):
        json.loads(block)


def test_the_receivers_file_the_alerts_page_shows_is_one_the_bridge_takes(tmp_path: Path) -> None:
    """docs/alerts.md's receivers file, pasted as it is, loads without a problem: its two
    receivers (the second taking global's http_config) and the Alertmanager poster."""
    [example] = [block for block in fenced(page("alerts"), "yaml") if "webhook_configs:" in block]
    path = tmp_path / "receivers.yml"
    path.write_text(example)
    read = read_receivers_file(path)
    assert read.problems == ()
    assert [index for index, _ in read.hooks] == [0, 1]
    assert read.inheriting == (1,)
    assert read.alertmanager is not None


def _figures(text: str) -> set[str]:
    # 22,000 and 22 000 are one figure; ranges split at their dash.
    joined = re.sub(r"(?<=\d)[, ](?=\d{3}\b)", "", text)
    return set(re.findall(r"\d+(?:\.\d+)?", joined))


def test_the_readme_performance_figures_are_the_performance_pages() -> None:
    """Each figure of the README's Performance table is one docs/performance.md reports."""
    rows = [line for line in section(README.read_text(), "Performance").splitlines() if "|" in line]
    shown = set().union(*(_figures(row) for row in rows)) - {"1", "10", "000"}
    assert len(shown) > 15, "the README's Performance table has lost its figures"
    missing = shown - _figures(page("performance"))
    assert missing == set(), f"README figures docs/performance.md does not report: {missing}"


def test_the_alerts_page_names_every_word_the_metadata_redaction_rule_uses() -> None:
    """docs/alerts.md lists every secret fragment, harmless kind of key and word about a secret
    that names_secret judges a metadata key by, so the rule described is the rule coded."""
    text = page("alerts")
    rule = (*_SECRET_PARTS, *_SECRET_WORDS, *_HARMLESS_KEY_KINDS, *_ABOUT_A_SECRET)
    assert [word for word in rule if f"`{word}`" not in text] == []


# A count of the message types as prose writes it: "36 message types", "the 36 models".
_TYPE_COUNT: Final = re.compile(r"\b(\d+) (?:message )?(?:types|models)\b")


def test_every_count_of_the_message_types_is_the_registry_s() -> None:
    """Each "N message types" (or models) in the README, docs/ (the dated records of
    performance.md aside) and the package's docstrings is the number the registry holds."""
    texts = [
        ROOT / "README.md",
        *(path for path in sorted((ROOT / "docs").glob("*.md")) if path.name != "performance.md"),
        *sorted((ROOT / "bridge").rglob("*.py")),
        *sorted((ROOT / "collectors").rglob("*.py")),
    ]
    wrong = [
        f"{path.relative_to(ROOT)}: {found.group(0)}"
        for path in texts
        for found in _TYPE_COUNT.finditer(path.read_text())
        if int(found.group(1)) != len(MESSAGE_TYPES)
    ]
    assert wrong == []
