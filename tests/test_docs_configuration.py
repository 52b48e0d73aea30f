"""docs/configuration.md and the other pages stay true to the settings: every variable, its default,
bounds and choices, and the errors the pages show."""

from __future__ import annotations

import ast
import enum
import itertools
import re
import string
import types
import typing
from pathlib import Path
from typing import Any, Final

import pytest
from pydantic import TypeAdapter, ValidationError

from bridge.config import load_settings
from bridge.errors import ConfigError
from bridge.settings import Settings, known_variables, unknown_variables
from tests.doc_text import fenced, page, pages, section
from tests.support import ROOT, make_settings


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


def _contradictions() -> list[tuple[str, str]]:
    """Each pair of settings the start-up checks hold against each other (a degraded threshold
    above its unhealthy one, the spool below twice a body: ``_blaming_the_one_set``'s calls in
    bridge/settings_checks.py), by variable; the thresholds' pair, one rule for the three
    resources, as the cpu one."""
    tree = ast.parse((ROOT / "bridge" / "settings_checks.py").read_text())
    pairs = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "_blaming_the_one_set"
            and isinstance(node.args[1], ast.Tuple)
        ):
            continue
        fields = [
            "".join(
                str(part.value) if isinstance(part, ast.Constant) else "cpu"
                for part in (element.values if isinstance(element, ast.JoinedStr) else [element])
            )
            for element in node.args[1].elts
        ]
        first, second = (str(Settings.model_fields[field].validation_alias) for field in fields)
        pairs.append((first, second))
    return pairs


def test_the_configuration_page_says_which_settings_must_agree() -> None:
    """Two settings start-up refuses in contradiction (`EXESDB_WEBHOOK_BACKOFF_MS` above
    `EXESDB_WEBHOOK_MAX_BACKOFF_MS`) are named on each other's rows, one on the other's at least,
    so a user learns the rule before the error tells it."""
    rows = {
        match.group(1): line
        for line in page("configuration").splitlines()
        if (match := re.match(r"\| `([A-Z0-9_]+)` \|", line))
    }
    pairs = _contradictions()
    assert ("EXESDB_CPU_DEGRADED", "EXESDB_CPU_UNHEALTHY") in pairs  # the check reads them all
    assert ("EXESDB_WEBHOOK_BACKOFF_MS", "EXESDB_WEBHOOK_MAX_BACKOFF_MS") in pairs
    unsaid = [
        f"{first} and {second}"
        for first, second in pairs
        if f"`{second}`" not in rows[first] and f"`{first}`" not in rows[second]
    ]
    assert unsaid == [], f"say on docs/configuration.md which settings must agree: {unsaid}"


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


# A row of docs/configuration.md's summary: | [`VARIABLE`](#anchor) | default | what to set |
_SUMMARY_ROW = re.compile(r"^\| \[`([A-Z0-9_]+)`\]\(#([\w-]+)\) \| ([^|]+) \|", re.M)


def _summary() -> dict[str, tuple[str, str]]:
    """The settings docs/configuration.md's "The settings most people set" lists, with the
    anchor each links to and the default it gives."""
    text = section(page("configuration"), "The settings most people set")
    rows = _SUMMARY_ROW.findall(text)
    assert len(rows) == text.count("\n| [`"), "a row not read"
    return {variable: (anchor, shown.strip().strip("`")) for variable, anchor, shown in rows}


def test_the_settings_most_people_set_are_settings_with_their_defaults() -> None:
    """Each variable of docs/configuration.md's short list is a setting, shown with the default
    Settings has, so the summary cannot drift from the code or the full table."""
    summary = _summary()
    assert {"EXESDB_HTTP_ADDR", "SECRET_KEY_BASE", "EXESDB_STATE_DIR"} <= set(summary)
    assert sorted(set(summary) - set(_defaults())) == [], "no such settings"
    for variable, (_, shown) in summary.items():
        _assert_shows_the_default(variable, shown)


def test_each_setting_most_people_set_links_to_its_row() -> None:
    """Each variable of docs/configuration.md's short list links to its own row of the full
    table, where its `<a id>` is."""
    rows = page("configuration").splitlines()
    wrong = []
    for variable, (anchor, _) in _summary().items():
        found = [row for row in rows if f'<a id="{anchor}"></a>' in row]
        if [row.startswith(f"| `{variable}` |") for row in found] != [True]:
            wrong.append(f"{variable}: #{anchor}")
    assert wrong == [], f"link these to their rows of the table: {wrong}"
