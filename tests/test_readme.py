"""The README stays true to the code: quick start, configuration table and ingest recipe."""

from __future__ import annotations

import argparse
import io
import re
from contextlib import redirect_stdout

import pytest

from bridge.config import Settings
from tests.support import ROOT, TEST_SECRET, ThreadedBridge

README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def _config_rows() -> dict[str, str]:
    rows: dict[str, str] = {}
    for line in _section("Configuration").splitlines():
        match = re.match(r"\| `([A-Z0-9_]+)` \| ([^|]+) \|", line)
        if match:
            rows[match.group(1)] = match.group(2).strip().strip("`")
    return rows


def _defaults() -> dict[str, object]:
    return {
        str(info.validation_alias): None if info.default_factory else info.default
        for info in Settings.model_fields.values()
    }


def test_quick_start_is_exactly_make_run_and_make_test() -> None:
    """The quick start shows exactly the two commands."""
    block = re.search(r"```sh\n(.*?)```", _section("Quick start"), re.S)
    assert block
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert commands == ["make run", "make test"]


def test_every_setting_is_in_the_configuration_table() -> None:
    """Every variable Settings reads has a row in the README's table."""
    missing = set(_defaults()) - set(_config_rows())
    assert not missing, f"add to README's Configuration table: {sorted(missing)}"


def test_every_table_row_is_a_setting() -> None:
    """Every row of the README's table is a variable Settings reads."""
    unknown = set(_config_rows()) - set(_defaults())
    assert not unknown, f"README documents variables the code does not read: {sorted(unknown)}"


@pytest.mark.parametrize("variable", sorted(_defaults()))
def test_table_defaults_match_the_code(variable: str) -> None:
    """The default column says what Settings really defaults to."""
    shown = _config_rows().get(variable)
    default = _defaults()[variable]
    if shown is None:
        pytest.fail(f"{variable} is not in the README table")
    if variable == "EXESDB_NODE":
        assert shown == "host name"
    elif default is None:
        assert shown == "none"
    elif default == ():
        assert shown == "empty"
    elif isinstance(default, bool):
        assert shown == str(default).lower()
    elif isinstance(default, int | float):
        assert float(shown) == default
    else:
        assert shown == default


def test_the_ingest_recipe_works(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's Python signing recipe gets a 202 from a real bridge."""
    block = re.search(r"```python\n(.*?)```", _section("Ingest API"), re.S)
    assert block
    monkeypatch.setenv("SECRET_KEY_BASE", TEST_SECRET)
    with ThreadedBridge(EXESDB_INGEST="true") as server:
        code = block.group(1).replace(
            'BRIDGE = "http://127.0.0.1:9570"', f'BRIDGE = "http://{server.host}:{server.port}"'
        )
        printed = io.StringIO()
        with redirect_stdout(printed):
            exec(compile(code, "README.md", "exec"), {})  # our own README
        assert printed.getvalue().strip() == "202"
        assert (
            server.bridge.registry.get_sample_value(
                "exesdb_bus_published_total",
                {"pubsub": "ex_esdb_health", "tag": "node_health_updated"},
            )
            == 1
        )


def test_readme_names_every_status_code_of_ingest() -> None:
    """The Ingest API section lists every status ingest can answer."""
    section = _section("Ingest API")
    for status in (202, 400, 401, 404, 409, 413, 415):
        assert f"| {status} |" in section


def test_readme_lists_every_cli_subcommand() -> None:
    """The CLI section covers every subcommand the parser knows."""
    from bridge.cli import build_parser

    parser = build_parser()
    subparsers = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    section = _section("CLI")
    for name in subparsers.choices:
        assert f"`exesdb-bridge {name}" in section, name
