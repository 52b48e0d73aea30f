"""The pages under docs/ stay true to the code: links, cited sections, titles, examples, no phantom
spec, the figures and counts they repeat, docs/integration.md's calls."""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import json
import re
import sqlite3
import tomllib
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from bridge.cli import build_parser
from bridge.messages import MESSAGE_TYPES
from bridge.receivers import read_receivers_file
from bridge.redaction import _ABOUT_A_SECRET, _HARMLESS_KEY_KINDS, _SECRET_PARTS, _SECRET_WORDS
from bridge.sinks.alerts.tables import sqlite_problem
from tests.doc_text import (
    DOCS,
    README,
    anchors,
    broken_links,
    fenced,
    page,
    pages,
    prose,
    section,
    shell_commands,
)
from tests.support import ROOT


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


@pytest.mark.parametrize("path", pages(), ids=lambda path: path.name)
def test_every_relative_link_reaches_a_file_and_heading(path: Path) -> None:
    """Each relative link of the README and docs/ points at a file that exists (and its heading)."""
    assert broken_links(path) == []


@pytest.mark.parametrize("path", sorted(DOCS.glob("*.md")), ids=lambda path: path.name)
def test_every_command_a_page_s_shell_blocks_show_is_valid_usage(path: Path) -> None:
    """Each ``exesdb-bridge`` command of a page's ``sh`` blocks parses as the command line parses
    it, as the README's do: a synopsis there (``[--state all]``, ``(ID ... | --all)``) is no
    command a reader can paste into a shell."""
    wrong = []
    for args in shell_commands(path.read_text()):
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                parsed = build_parser().parse_args(args)
        except SystemExit:
            wrong.append(" ".join(args))
            continue
        assert callable(parsed.handler), args
    assert wrong == []


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


# A path under tests/ ending .py, a glob (``test_pages_*.py``) too; not one of another folder's
# tests/ (``bench/tests/x.py``).
TEST_PATH = re.compile(r"(?<![\w/.-])tests/[\w/.*-]*\.py\b")


def missing_test_paths(root: Path, path: Path) -> list[str]:
    """Each ``tests/….py`` path (or glob) the page names that no file under ``root`` is."""
    named = dict.fromkeys(TEST_PATH.findall(path.read_text()))
    return [name for name in named if not any(root.glob(name))]


@pytest.mark.parametrize("path", pages(), ids=lambda path: path.name)
def test_every_test_module_a_page_names_exists(path: Path) -> None:
    """Each ``tests/….py`` the README and docs/ name is a module of the suite (the dated
    performance log too: a path a reader cannot find is a dead end), so a module renamed or
    split takes the pages naming it along."""
    assert missing_test_paths(ROOT, path) == []


def test_the_test_path_check_finds_a_missing_module(tmp_path: Path) -> None:
    """The check above can fail: a module gone and a glob matching nothing are reported, once
    each, while a module and a glob that match are not."""
    (tmp_path / "tests" / "http").mkdir(parents=True)
    (tmp_path / "tests" / "http" / "test_ingest.py").write_text("")
    sample = tmp_path / "page.md"
    sample.write_text(
        "`tests/http/test_ingest.py::test_x` and `tests/http/test_*.py` hold it;"
        " `tests/test_http.py`, `tests/test_http.py` and `tests/pages_*.py` held it,"
        " as `bench/tests/other.py` does\n"
    )
    assert missing_test_paths(tmp_path, sample) == ["tests/test_http.py", "tests/pages_*.py"]


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


# A path into a folder of the source repository that a pip install does not ship.
UNSHIPPED_PATH = re.compile(r"\b(?:docs|examples|deploy|grafana)/[\w/.#-]*\w")


def bare_citations(source: str, where: str) -> list[str]:
    """Each path into docs/, examples/, deploy/ or grafana/ that a string of ``source`` (its
    docstrings left out, and the argument of each ``cite_source``) names bare: words a user
    reads (a log line, an error, a help) pointing at a file only a checkout has."""
    tree = ast.parse(source, where)
    unread = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    } | {
        id(node.args[0])
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "cite_source"
        and node.args
    }
    return [
        f"{where}:{node.lineno}: {path}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in unread
        for path in UNSHIPPED_PATH.findall(node.value)
    ]


def test_no_message_a_user_reads_cites_a_file_a_pip_install_lacks() -> None:
    """A pip install ships no docs/ or examples/: each log line, error and help of the
    package names such a file with ``cite_source`` (the source repository's address beside
    it), not as a path the user may not have."""
    files = sorted(
        path for folder in ("bridge", "collectors") for path in (ROOT / folder).rglob("*.py")
    )
    bare = [
        found
        for path in files
        for found in bare_citations(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert bare == [], f"cite these with bridge.source_repository.cite_source: {bare}"


def test_the_bare_citation_check_finds_a_path_in_a_message_not_in_a_docstring() -> None:
    """The check above can fail: a path in a log line, an f-string and a constant is found;
    one in a module, function or attribute docstring, a comment or ``cite_source`` is not."""
    source = (
        '"""A module (docs/redis.md)."""\n'
        "# docs/redis.md#keys\n"
        "HINT = 'read docs/redis.md#keys'\n"
        '"""The hint (docs/redis.md)."""\n'
        "def f(x):\n"
        '    """Log it (docs/cli.md)."""\n'
        "    log.warning('%s: see examples/sign.sh', x)\n"
        "    return f'{x} (docs/cli.md)', cite_source('docs/cli.md')\n"
    )
    assert bare_citations(source, "x.py") == [
        "x.py:3: docs/redis.md#keys",
        "x.py:7: examples/sign.sh",
        "x.py:8: docs/cli.md",
    ]


PHANTOMS = re.compile(r"\bSPEC\b|MESSAGES\.md")


def _phantom_files() -> list[Path]:
    # Byte code left out: Python writes it beside grafana/generator/ when the generator runs.
    text_files = [
        path
        for folder in ("deploy", "grafana")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.is_file() and path.suffix != ".pyc"
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
    """The YAML and JSON blocks of the pages are valid, so they can be copied as they are (a
    YAML block may hold several documents, as a Kubernetes patch file does)."""
    text = path.read_text()
    for block in fenced(text, "yaml"):
        list(yaml.safe_load_all(block))
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


def test_the_readme_performance_figures_are_the_latest_figures() -> None:
    """Each figure of the README's Performance table is one of docs/performance.md's "Latest
    figures", the section that links each to the run it comes from."""
    rows = [line for line in section(README.read_text(), "Performance").splitlines() if "|" in line]
    shown = set().union(*(_figures(row) for row in rows)) - {"1", "10", "000"}
    missing = shown - _figures(section(page("performance"), "Latest figures"))
    assert missing == set(), f"README figures not among the Latest figures: {missing}"


def test_no_dated_section_of_the_performance_page_calls_itself_latest() -> None:
    """Of docs/performance.md's headings only "Latest figures" says latest: a dated section
    stays true once later runs follow it."""
    headings = re.findall(r"^#{2,6} (.+?)\s*$", prose(page("performance")), re.M)
    assert [heading for heading in headings if "latest" in heading.lower()] == ["Latest figures"]


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


# "SQLite 3.35 or newer", wrapped or not: the oldest SQLite a page says the bridge runs on.
_SQLITE_NEEDED: Final = re.compile(r"SQLite\s+(\d+)\.(\d+)\s+or\s+newer")


def test_the_sqlite_the_docs_require_is_the_oldest_the_outbox_takes() -> None:
    """Each "SQLite X.Y or newer" of the README and the deployment page is the oldest SQLite the
    outbox's check takes: X.Y.0 passes it, the release before X.Y is refused."""
    found = [
        (int(major), int(minor))
        for text in (README.read_text(), page("deployment"))
        for major, minor in _SQLITE_NEEDED.findall(text)
    ]
    assert len(found) >= 2, found
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        for major, minor in found:
            assert sqlite_problem((major, minor, 0), db) is None
            assert sqlite_problem((major, minor - 1, 99), db) is not None


# Each distribution's own python3, as its package has it: Debian 11's 3.9.2, Debian 12's 3.11.2,
# Ubuntu 22.04's 3.10.12, Ubuntu 24.04's 3.12.3, RHEL 9's 3.9.
_DISTRIBUTION_PYTHON3: Final = {
    "Debian 11": (3, 9),
    "Debian 12": (3, 11),
    "Ubuntu 22.04": (3, 10),
    "Ubuntu 24.04": (3, 12),
    "RHEL 9": (3, 9),
}
# "Debian 12's and Ubuntu 24.04's `python3` are", wrapped or not, `python3` said or left to the
# reader: the distributions whose own Python a page says the bridge runs on.
_FIT_DISTRIBUTIONS: Final = re.compile(
    r"((?:[A-Z]\w+ [\d.]+'s,?\s+(?:and\s+)?)+)(?:`python3`\s+)?are\b(?!\s+not)"
)


def test_the_distributions_the_docs_name_run_the_bridge_on_their_own_python3() -> None:
    """Each distribution the README and the deployment page say the bridge runs on has a
    ``python3`` as new as pyproject.toml's requires-python: a user of Ubuntu 22.04, whose
    python3 is 3.10, is sent to its python3.11 package, not to a make that refuses python3."""
    required = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    oldest = tuple(int(part) for part in required.removeprefix(">=").split("."))
    named = [
        name
        for text in (README.read_text(), page("deployment"))
        for claim in _FIT_DISTRIBUTIONS.finditer(text)
        for name in re.findall(r"([A-Z]\w+ [\d.]+)'s", claim.group(1))
    ]
    assert len(named) >= 2, named
    assert [name for name in named if _DISTRIBUTION_PYTHON3[name] < oldest] == []
