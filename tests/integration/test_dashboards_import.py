"""The shipped Grafana dashboards imported into an existing Grafana (its importer's
``__inputs`` substitution replayed) and provisioned: each asks for a Prometheus, starts on the
one chosen and can switch, every reference resolves."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dashboards_support import DASHBOARDS, load, panels

INPUT_REFERENCE = re.compile(r"\$\{(.+?)\}")


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string of a JSON value with its path (``templating.list.0.current.value``)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings(item, f"{path}.{index}")


def grafana_import(board: Any, inputs: list[dict[str, str]]) -> Any:
    """What Grafana's importer (pkg/services/dashboardimport) makes of a file and the inputs the
    import form sends: each ``__inputs`` entry needs an input of the same ``type`` and ``name``
    (else the import fails); its ``${NAME}`` is replaced in every string; ``__inputs`` is dropped
    wherever it stands, and ``__elements`` and ``__requires`` from the saved dashboard."""
    values: dict[str, str] = {}
    for entry in board.get("__inputs", []):
        given = [
            sent["value"]
            for sent in inputs
            if sent["type"] == entry["type"] and sent["name"] in (entry["name"], "*")
        ]
        assert given, f"the import would fail: input {entry['name']} missing"
        values["${" + entry["name"] + "}"] = given[0]

    def evaluate(value: Any) -> Any:
        if isinstance(value, str):
            return INPUT_REFERENCE.sub(
                lambda match: values.get(match.group(0), match.group(0)), value
            )
        if isinstance(value, dict):
            return {k: evaluate(v) for k, v in value.items() if k != "__inputs"}
        if isinstance(value, list):
            return [evaluate(item) for item in value]
        return value

    imported = evaluate(board)
    for key in ("__elements", "__requires"):
        imported.pop(key, None)
    return imported


# The import form's inputs for a file's __inputs: a Prometheus chosen for DS_PROMETHEUS.
CHOSEN = [
    {"name": "DS_PROMETHEUS", "type": "datasource", "pluginId": "prometheus", "value": "chosen-uid"}
]
# Grafana's global variables (and the value $__all), which a dashboard names without declaring.
GRAFANA_GLOBALS = frozenset(
    {
        "__all",
        "__dashboard",
        "__from",
        "__to",
        "__interval",
        "__interval_ms",
        "__name",
        "__org",
        "__user",
        "__range",
        "__range_s",
        "__range_ms",
        "__rate_interval",
        "__rate_interval_ms",
        "__timeFilter",
        "__timezone",
        "timeFilter",
    }
)
# $name, ${name} and ${name:format}, [[name]]: every way a string names a variable.
VARIABLE_REFERENCE = re.compile(r"\$\{(\w+)(?:[:.][^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")


def references(board: Any) -> set[str]:
    """The names of every variable and input the dashboard's strings refer to."""
    return {
        next(name for name in match.groups() if name)
        for _, text in strings(board)
        for match in VARIABLE_REFERENCE.finditer(text)
    }


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_asks_for_a_prometheus_data_source_when_imported(path: Path) -> None:
    """Like dashboards on grafana.com, each file declares one data source input DS_PROMETHEUS
    (a Prometheus) and lists what it requires: Grafana, Prometheus and its panel types."""
    board = load(path)
    assert board["__inputs"] == [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": "The Prometheus that scrapes exesdb-bridge",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    required = {(item["type"], item["id"]) for item in board["__requires"]}
    kinds = {panel["type"] for panel in panels(board) if panel["type"] != "row"}
    assert required == {("grafana", "grafana"), ("datasource", "prometheus")} | {
        ("panel", kind) for kind in kinds
    }
    assert board["id"] is None


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_an_imported_dashboard_starts_on_the_chosen_data_source_and_can_switch(path: Path) -> None:
    """After Grafana's import with a data source chosen, the datasource variable starts on it and
    every panel and query still follows the variable (so it can be switched)."""
    imported = grafana_import(load(path), CHOSEN)
    templating = {v["name"]: v for v in imported["templating"]["list"]}
    assert templating["datasource"]["current"]["value"] == "chosen-uid"
    assert "__inputs" not in imported
    leftovers = [(where, text) for where, text in strings(imported) if "DS_PROMETHEUS" in text]
    assert leftovers == []
    for panel in panels(imported):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_reference_resolves_once_imported(path: Path) -> None:
    """Each ${…} or $name in a file names a declared input, a variable of the dashboard or one of
    Grafana's globals, and after the import no input is left unreplaced and no
    __inputs, __requires nor __elements is stored: a misspelt name fails here, not as an empty
    panel in the operator's Grafana."""
    board = load(path)
    variables = {variable["name"] for variable in board["templating"]["list"]}
    declared = {entry["name"] for entry in board["__inputs"]}
    unknown = references(board) - variables - declared - GRAFANA_GLOBALS
    assert unknown == set(), f"{path.name} names {sorted(unknown)}"
    imported = grafana_import(board, CHOSEN)
    assert references(imported) - variables - GRAFANA_GLOBALS == set()
    assert {"__inputs", "__requires", "__elements"}.isdisjoint(imported)


def test_an_import_without_the_data_source_input_fails() -> None:
    """Grafana's importer refuses a file whose DS_PROMETHEUS input the form did not send (an
    input of another type does not stand in), as the test's model of it must."""
    board = load(DASHBOARDS[0])
    wrong_type = [{**CHOSEN[0], "type": "constant"}]
    for inputs in ([], wrong_type):
        with pytest.raises(AssertionError, match="input DS_PROMETHEUS missing"):
            grafana_import(board, inputs)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_a_provisioned_dashboard_needs_no_input_substituted(path: Path) -> None:
    """Provisioning does not substitute __inputs: ${DS_PROMETHEUS} stands only as the datasource
    variable's starting value (matching no data source, Grafana starts it on the first
    Prometheus); every data source reference is the variable or Grafana's built-in one."""
    board = load(path)
    references = [(where, text) for where, text in strings(board) if "${DS_PROMETHEUS}" in text]
    index = next(n for n, v in enumerate(board["templating"]["list"]) if v["name"] == "datasource")
    assert references == [
        (f"templating.list.{index}.current.text", "${DS_PROMETHEUS}"),
        (f"templating.list.{index}.current.value", "${DS_PROMETHEUS}"),
    ]
    uids = {text for where, text in strings(board) if where.endswith("datasource.uid")}
    assert uids == {"${datasource}", "-- Grafana --"}
