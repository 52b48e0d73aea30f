"""The shipped Grafana dashboards are well formed: generated from the table, panel ids that
last, the datasource and node variables, a query, a unit and the datasource on every panel.

Importing them is in ``test_dashboards_import.py``, what they show in
``test_dashboards_catalog.py`` and ``test_dashboards_replicas.py``, their queries on a real
Prometheus in ``test_dashboards_live.py``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dashboards_support import DASHBOARDS, load, panels
from tests.support import ROOT


def test_at_least_four_dashboards() -> None:
    """Cluster overview, node health, throughput and latency, alerts and internals are shipped."""
    uids = {load(path)["uid"] for path in DASHBOARDS}
    assert uids >= {
        "exesdb-cluster-overview",
        "exesdb-node-health",
        "exesdb-throughput-latency",
        "exesdb-bridge-internals",
    }
    assert len(uids) == len(DASHBOARDS)


def test_dashboards_are_generated_from_the_table() -> None:
    """The committed JSON is what grafana/generate.py produces (edit the table, not the JSON)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "grafana/generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def generator() -> Any:
    """The grafana/generator package, loaded from its folder (grafana/ is no package)."""
    folder = ROOT / "grafana/generator"
    spec = importlib.util.spec_from_file_location(
        "grafana_generator", folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    # Its relative imports, and dataclasses as a class is made, look it up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def ids_by_title(board: dict[str, Any]) -> dict[str, int]:
    return {panel["title"]: panel["id"] for panel in panels(board)}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_panel_ids_are_unique_positive_whole_numbers(path: Path) -> None:
    """Each panel and row of a dashboard has an id of its own, a whole number from 1 up."""
    ids = [panel["id"] for panel in panels(load(path))]
    assert len(ids) == len(set(ids))
    assert all(type(panel_id) is int and 1 <= panel_id < 2**31 for panel_id in ids), ids


def test_panels_keep_their_ids_when_panels_are_added_moved_or_removed() -> None:
    """A panel added first, the last two swapped and one removed leave every other id as it was."""
    gen = generator()
    table = gen.load_ids()
    for dashboard in gen.DASHBOARDS:
        ids = table[dashboard.uid]
        before = ids_by_title(gen.build(dashboard, ids))
        added = gen.stat("Added", "vector(1)", "short")
        removed = dashboard.panels[1]
        *rest, last_but_one, last = [item for item in dashboard.panels if item is not removed]
        changed = dataclasses.replace(dashboard, panels=[added, *rest, last, last_but_one])
        grown = {title: i for title, i in ids.panels.items() if title != removed.title}
        new_ids = gen.PanelIds(
            {**grown, "Added": ids.next_free()}, (*ids.retired, ids.panels[removed.title])
        )
        after = ids_by_title(gen.build(changed, new_ids))
        del before[removed.title]
        assert {title: after[title] for title in before} == before, dashboard.uid
        assert after["Added"] not in before.values()


def test_a_panel_without_an_id_is_refused_with_the_next_free_one() -> None:
    """The generator refuses a panel whose title has no id (naming the id to give it), an id
    whose title names no panel (a panel renamed without carrying its id) and a title used twice."""
    gen = generator()
    dashboard = gen.DASHBOARDS[0]
    ids = gen.load_ids()[dashboard.uid]
    added = dataclasses.replace(dashboard, panels=[*dashboard.panels, gen.Row("Added")])
    with pytest.raises(ValueError, match=f"'Added' has no id; give it {ids.next_free()}"):
        gen.build(added, ids)
    old = dashboard.panels[1]
    renamed = [
        dataclasses.replace(old, title="Renamed") if item is old else item
        for item in dashboard.panels
    ]
    grown = dataclasses.replace(ids, panels={**ids.panels, "Renamed": ids.next_free()})
    with pytest.raises(ValueError, match=f"{old.title!r} names no panel"):
        gen.build(dataclasses.replace(dashboard, panels=renamed), grown)
    twice = dataclasses.replace(dashboard, panels=[*dashboard.panels, old])
    with pytest.raises(ValueError, match=f"two panels have the title {old.title!r}"):
        gen.build(twice, ids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_has_datasource_and_node_variables(path: Path) -> None:
    """Each dashboard has a Prometheus datasource variable and a node variable using it."""
    templating = {v["name"]: v for v in load(path)["templating"]["list"]}
    assert templating["datasource"]["type"] == "datasource"
    assert templating["datasource"]["query"] == "prometheus"
    node = templating["node"]
    assert node["type"] == "query"
    assert node["datasource"]["uid"] == "${datasource}"
    assert "node" in node["definition"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_has_a_query_a_unit_and_the_datasource(path: Path) -> None:
    """No panel without a query, every panel with a unit, every query on ${datasource}."""
    board = load(path)
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        title = panel["title"]
        assert panel["targets"], f"{title} has no query"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{title} has no unit"
        assert panel["datasource"]["uid"] == "${datasource}", title
        for target in panel["targets"]:
            assert target["expr"].strip(), f"{title} has an empty query"
            assert target["datasource"]["uid"] == "${datasource}", title
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, title


# A series in seconds as a query shows it: a gauge or summary named ``*_seconds``, or a histogram
# quantile of ``*_seconds_bucket`` (not a rate of ``*_seconds_total``, a count per second).
IN_SECONDS = re.compile(r"\w_seconds\b(?!_)|histogram_quantile\(.*_seconds_bucket")
# How many times a series changed (a node's restarts, of its start time) is a count, not seconds.
COUNTED = re.compile(r"\b(?:changes|resets)\([^()]*\)")


def query_unit(panel: dict[str, Any], target: dict[str, Any]) -> str:
    """The unit Grafana shows ``target``'s series in: an override of its query's, else the
    panel's."""
    unit = panel["fieldConfig"]["defaults"]["unit"]
    for override in panel["fieldConfig"]["overrides"]:
        if override["matcher"] == {"id": "byFrameRefID", "options": target["refId"]}:
            for item in override["properties"]:
                if item["id"] == "unit":
                    unit = item["value"]
    return unit


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_query_of_a_series_in_seconds_shows_seconds(path: Path) -> None:
    """A query of a series in seconds (a ``*_seconds`` gauge, a quantile of a ``*_seconds``
    histogram) shows in the unit ``s``, its panel's or its own, never as a bare number beside
    a panel's other series; how many times one changed is no such query."""
    for panel in panels(load(path)):
        for target in panel.get("targets", []):
            if IN_SECONDS.search(COUNTED.sub("", target["expr"])):
                unit = query_unit(panel, target)
                assert unit == "s", f"{panel['title']}: {target['expr']} shows as {unit}"
