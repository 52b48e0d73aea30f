"""The shipped Grafana dashboards: well formed, and every query works on a real Prometheus.

The live tests start ``exesdb-bridge run --demo`` and a real Prometheus scraping it every second,
then run every query of every panel (template variables replaced) through ``/api/v1/query``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from bridge.app import Bridge
from bridge.settings import Settings
from bridge.sinks.prometheus import MetricType
from bridge.sinks.prometheus.store import SeriesStore
from bridge.sinks.prometheus.translate import Translator
from bridge.webconfig.live import LiveWebConfig
from bridge.webconfig.loading import judge
from tests.deploy.files import RECORDED, RULE_FILES, SELECTOR, metrics_named, rules
from tests.doc_text import catalog_rows, page
from tests.integration.servers.alertmanager import AlertmanagerServer
from tests.integration.servers.otlp import GrpcOtlpReceiver
from tests.integration.servers.prometheus import PrometheusServer
from tests.integration.servers.redis import RedisServer
from tests.integration.servers.webhook import WebhookReceiver
from tests.support import (
    ROOT,
    TEST_SECRET,
    BridgeProcess,
    http_get,
    pem_files,
    require_binary,
    wait_until,
)

# One pytest-xdist worker runs the module: the demo stack (a module fixture) starts once.
pytestmark = pytest.mark.xdist_group("demo-stack")

DASHBOARDS = sorted((ROOT / "grafana/dashboards").glob("*.json"))
# What Grafana puts in place of its built-in variables, for an instant query over a short run.
BUILTINS = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
    "${__rate_interval}": "1m",
    "${__interval}": "15s",
    "${__range}": "5m",
}
# The series no demo run can honestly feed, each with why: a query naming one may return nothing.
# Every other query must return data, so a panel the demo stops feeding fails the check.
EMPTY_IN_THE_DEMO = {
    # Refused only at a cap (EXESDB_MAX_SERIES, EXESDB_MAX_SERIES_BYTES): the demo's series stay
    # far below both, and flooding made-up label sets to reach it would be no demo of use.
    "exesdb_prometheus_series_refused_total",
}


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, expr) for every target of every panel."""
    return [
        (board["uid"], panel["title"], target["expr"])
        for board in map(load, DASHBOARDS)
        for panel in panels(board)
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def substitute(expr: str, variables: set[str]) -> str:
    """Grafana's variables replaced: built-ins by durations, dashboard variables by ``.*``."""
    for name, value in BUILTINS.items():
        expr = expr.replace(name, value)
    for name in variables:
        expr = re.sub(rf"\$\{{{name}(:\w+)?\}}|\${name}\b", ".*", expr)
    assert "$" not in expr, f"unreplaced variable in {expr!r}"
    return expr


def variables() -> set[str]:
    return {v["name"] for board in map(load, DASHBOARDS) for v in board["templating"]["list"]}


# -- the files --


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


# -- importing into an existing Grafana, and provisioning --

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


# -- two replicas: the series of messages counted once --

# The target labels of one bridge alone, and of two replicas as a ServiceMonitor scrapes two pods.
ALONE = {"job": "alone", "instance": "127.0.0.1:9570"}
REPLICAS = [
    {
        "job": "replicas",
        "instance": f"10.0.0.{n + 1}:9570",
        "pod": f"exesdb-bridge-{n}",
        "namespace": "exesdb",
        "service": "exesdb-bridge",
        "endpoint": "http",
        "container": "exesdb-bridge",
    }
    for n in range(2)
]
# Values of the labels the queries select on; every other label takes "a" and "b".
LABEL_VALUES = {
    "status": ("healthy", "degraded", "unhealthy", "unknown"),
    "state": ("total", "healthy", "degraded", "unhealthy", "down"),
    "result": ("success", "error"),
    "quantile": ("0", "0.5", "0.95", "0.99", "1"),
    "resource": ("cpu", "memory", "disk"),
}
# The open alerts of a replica's outbox: on Redis shown by the work-queue lease holder alone (the
# others show 0), so the holder's are the cluster's.
OUTBOX = ("exesdb_alerts_active", ("severity",), MetricType.GAUGE)
# Which replica holds the work-queue lease: 1 at the holder, 0 at the others.
LEASE = "exesdb_redis_work_queue_leader"


def message_families() -> list[tuple[str, tuple[str, ...], MetricType]]:
    """The sample name, own labels and type of each series the Prometheus sink writes from
    messages (those that expire; the sink's own series do not)."""
    catalog = SeriesStore()
    Translator(catalog)
    return [
        (f.name + ("_total" if f.kind is MetricType.COUNTER else ""), f.labelnames, f.kind)
        for f in catalog.families
        if f.expires
    ]


def label_sets(labelnames: tuple[str, ...]) -> list[dict[str, str]]:
    sets: list[dict[str, str]] = [{}]
    for name in labelnames:
        values = LABEL_VALUES.get(name, ("a", "b"))
        sets = [{**labels, name: value} for labels in sets for value in values]
    return sets


def selector(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def replica_input() -> list[dict[str, str]]:
    """promtool input series: each series of messages exposed alike by the bridge alone and by
    both replicas (one step every 15 s, counters rising, no two series alike); the outbox gauge
    of the bridge alone on the first replica, which holds the lease, and 0 on the second."""
    found: list[dict[str, str]] = []
    for index, (name, labelnames, kind) in enumerate([*message_families(), OUTBOX]):
        for offset, labels in enumerate(label_sets(labelnames)):
            step = (index + offset) % 7 + 1
            values = f"0+{step}x80" if kind is MetricType.COUNTER else f"{step}x80"
            for target in (ALONE, *REPLICAS):
                # Without the lease a replica shows no open alert of its own outbox.
                no_lease = name == OUTBOX[0] and target is REPLICAS[1]
                shown = "0x80" if no_lease else values
                found.append({"series": selector(name, {**target, **labels}), "values": shown})
    for target, leader in zip(REPLICAS, ("1", "0"), strict=True):
        found.append({"series": selector(LEASE, target), "values": f"{leader}x80"})
    return found


def restricted(expr: str, names: set[str], matcher: str) -> str:
    """``expr`` with ``matcher`` (``job="alone"``) added to every selector of a series in
    ``names``: the query limited to some targets."""

    def limit(match: re.Match[str]) -> str:
        name, matchers = match.group(1), match.group(2)
        if name not in names:
            return match.group(0)
        inner = matcher + (f", {matchers}" if matchers else "")
        return name + "{" + inner + "}"

    return SELECTOR.sub(limit, expr)


def cluster_names() -> set[str]:
    """The series the two-replica check gives: those of messages, the outbox, the lease."""
    messages = {name for name, _, _ in message_families()}
    return messages | {OUTBOX[0], LEASE}


def cluster_queries() -> list[tuple[str, str]]:
    """(where, expr) of each dashboard query and rule that reads only ``cluster_names()``, and
    not the lease alone, with Grafana's variables replaced; ``where`` is a panel's dashboard and
    title, or a rule's name. The lease is a deployment's, not the cluster's: one bridge on the
    in-process bus shows none, its replicas one, and what counts its holders groups by job."""
    found = [(f"{uid} / {title}", substitute(expr, variables())) for uid, title, expr in queries()]
    found += [(rule.get("record") or rule["alert"], rule["expr"]) for rule in rules()]
    names = cluster_names()
    return [
        (where, expr)
        for where, expr in found
        if (named := metrics_named(expr)) <= names and named - {LEASE}
    ]


def replica_test_file(directory: Path) -> Path:
    """A promtool test file: at 15 minutes each query gives the same series and values over the
    two replicas as over the bridge alone (none missing, none added, none different), and,
    unless it is an alert's condition, some."""
    names = cluster_names()
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    checks: list[dict[str, Any]] = []
    for _, expr in cluster_queries():
        alone = restricted(expr, names, f'job="{ALONE["job"]}"')
        replicas = restricted(expr, names, f'job="{REPLICAS[0]["job"]}"')
        for check in (
            f"({replicas}) unless ({alone})",
            f"({alone}) unless ({replicas})",
            # Sums may add the same values in another order: equal to a billionth.
            f"abs(({replicas}) - ({alone})) > 1e-9 * abs({alone})",
        ):
            checks.append({"expr": check, "eval_time": "15m", "exp_samples": []})
    for where, expr in cluster_queries():
        if where not in alerts:  # an alert's condition holds for some inputs only
            alone = restricted(expr, names, f'job="{ALONE["job"]}"')
            checks.append({"expr": f"absent({alone})", "eval_time": "15m", "exp_samples": []})
    tests = [{"interval": "15s", "input_series": replica_input(), "promql_expr_test": checks}]
    path = directory / "replicas_test.yml"
    path.write_text(yaml.safe_dump({"rule_files": [], "tests": tests}, sort_keys=False))
    return path


def test_most_queries_read_the_series_of_messages() -> None:
    """The two-replica check below covers the dashboards' cluster, node and operation panels and
    the rules about them, not a handful."""
    found = dict(cluster_queries())
    assert len(found) >= 40
    assert "exesdb:node_health:count" in found
    assert "ExesdbNodeUnhealthy" in found
    assert "exesdb-cluster-overview / Node health" in found


def test_two_scraped_replicas_give_the_answers_of_one_bridge(tmp_path: Path) -> None:
    """With the bus on Redis every replica exposes every node's series: each dashboard query and
    rule over them gives, with two replicas scraped, the series and values one bridge gives, so
    no node, operation or alert counts twice (Prometheus' own engine, through promtool)."""
    result = subprocess.run(
        [require_binary("promtool"), "test", "rules", str(replica_test_file(tmp_path))],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    failed = re.findall(r'expr: "(.*?)", time', result.stdout)
    assert result.returncode == 0, "\n".join(failed) or result.stdout + result.stderr


# -- what a rule fires on, on a panel --


# A PromQL string (a label value, a regex): double- or single-quoted with escapes, or in backticks.
PROMQL_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
# A series of the catalog by its name: a label name, a function or a keyword is none of these.
SERIES_NAME = re.compile(r"\b((?:exesdb|process|python)_\w+)")


def shown_series(exprs: list[str], records: list[dict[str, Any]]) -> set[str]:
    """The series the dashboard queries ``exprs`` show: the metric names they select
    (``exesdb_``, ``process_`` or ``python_``; a name inside a quoted label value selects
    nothing), and the ``exesdb_`` series the recording rules of ``records`` read to record an
    ``exesdb:`` series they name."""
    recorded_from = {rule["record"]: metrics_named(rule["expr"]) for rule in records}
    shown: set[str] = set()
    for expr in exprs:
        selecting = PROMQL_STRING.sub('""', expr)
        shown |= set(SERIES_NAME.findall(selecting))
        for name in RECORDED.findall(selecting):
            shown |= recorded_from.get(name, set())
    return shown


def unshown_series(shipped: list[dict[str, Any]], exprs: list[str]) -> list[str]:
    """``rule: series`` for each ``exesdb_`` series a rule of ``shipped`` reads that no dashboard
    query of ``exprs`` shows."""
    shown = shown_series(exprs, [rule for rule in shipped if "record" in rule])
    return [
        f"{rule.get('alert') or rule['record']}: {name}"
        for rule in shipped
        for name in sorted(metrics_named(rule["expr"]) - shown)
    ]


def test_every_series_a_rule_reads_is_on_a_dashboard() -> None:
    """Each ``exesdb_`` series a shipped rule reads is shown by some dashboard query, itself or
    through a recorded series: an operator paged by an alert finds a panel of what fired."""
    missing = unshown_series(rules(), [expr for _, _, expr in queries()])
    assert missing == [], "on no dashboard:\n" + "\n".join(missing)


# The catalog's series on no dashboard, each with why: every other one is on some panel, so a new
# series is placed on a panel or left off here on purpose.
NOT_ON_A_DASHBOARD = {
    "exesdb_node_cluster_size": "each node's view of what Nodes shows, the monitor's count",
    "exesdb_log_period_entries": "a LogSummary's restatement of Log entries by level",
    "exesdb_log_period_error_rate_per_minute": "a LogSummary's restatement of error entries",
    "exesdb_log_filter_updates_total": "a change to what is logged, no sign of health or load",
    "exesdb_log_rotations_total": "log housekeeping; the node's disk use is on Disk",
    "exesdb_log_rotated_bytes_total": "log housekeeping; the node's disk use is on Disk",
    "exesdb_system_state_snapshots_total": "a count of snapshots; their content is on System state",
    "process_virtual_memory_bytes": "address space reserved, not used; resident memory is shown",
    "process_start_time_seconds": "the instant exesdb_start_time_seconds gives, shown as Up for",
    "python_info": "the Python version is exesdb_build_info's python_version label",
}


def series_off_dashboards(
    catalog: dict[str, tuple[str, set[str], str]], shown: set[str], left_off: set[str]
) -> tuple[list[str], list[str]]:
    """The catalog's series on no panel and not in ``left_off``, and those of ``left_off`` that
    are on a panel after all or in no catalog row. A histogram's ``_count`` and ``_sum`` are on
    a panel with its ``_bucket``."""

    def on_a_panel(name: str) -> bool:
        if catalog[name][0] == "histogram":
            family = re.sub(r"_(bucket|count|sum)$", "", name)
            return any(family + suffix in shown for suffix in ("_bucket", "_count", "_sum"))
        return name in shown

    missing = sorted(name for name in catalog if not on_a_panel(name) and name not in left_off)
    wrongly_left_off = sorted(name for name in left_off if name not in catalog or on_a_panel(name))
    return missing, wrongly_left_off


def test_every_catalog_series_is_on_a_dashboard_or_left_off_by_name() -> None:
    """Each series of the metrics catalog is shown by some dashboard query, itself or through a
    recorded series, or is in NOT_ON_A_DASHBOARD with its reason, and nothing in that set is on a
    panel or out of the catalog: a new series is placed on a panel or left off on purpose."""
    catalog = catalog_rows()
    records = [rule for rule in rules() if "record" in rule]
    shown = shown_series([expr for _, _, expr in queries()], records)
    missing, wrongly_left_off = series_off_dashboards(catalog, shown, set(NOT_ON_A_DASHBOARD))
    assert len(catalog) >= 120
    assert missing == [], "on no dashboard, nor in NOT_ON_A_DASHBOARD"
    assert wrongly_left_off == [], "in NOT_ON_A_DASHBOARD, yet on a panel or in no catalog row"


def test_the_off_dashboard_finder_reports_a_new_series_and_a_stale_exception() -> None:
    """The check above has teeth: a catalog series no query shows and the set leaves out is
    reported, as is a set entry a query shows or the catalog lacks; a histogram counts as shown
    by its _bucket, a series by a process_ name as any other."""
    catalog = {
        "exesdb_new_total": ("counter", set(), "New."),
        "exesdb_old": ("gauge", set(), "Old."),
        "process_open_fds": ("gauge", set(), "Fds."),
        "exesdb_took_seconds_bucket": ("histogram", {"le"}, "Took."),
        "exesdb_took_seconds_count": ("histogram", {"le"}, "Took."),
    }
    exprs = ["max(process_open_fds)", "histogram_quantile(0.9, exesdb_took_seconds_bucket)"]
    shown = shown_series(exprs, [])
    assert series_off_dashboards(catalog, shown, {"exesdb_old"}) == (["exesdb_new_total"], [])
    assert series_off_dashboards(catalog, shown, {"exesdb_old", "exesdb_new_total"}) == ([], [])
    stale = {"exesdb_old", "exesdb_new_total", "process_open_fds", "exesdb_gone"}
    assert series_off_dashboards(catalog, shown, stale) == (
        [],
        ["exesdb_gone", "process_open_fds"],
    )


@pytest.mark.parametrize(
    "expr",
    [
        'max(up{job="exesdb_old"})',
        "max(up{job='it\\'s exesdb_old'})",
        'max(up{job=~"a\\"|exesdb_old"})',
        "max(up{job=~`exesdb_old|exesdb_new_total`})",
        'label_replace(up, "exesdb_old", "$1", "exesdb_new_total", "(.*)")',
    ],
    ids=["double-quoted", "single-quoted-escape", "double-quoted-escape", "backticks", "arguments"],
)
def test_a_series_named_only_in_a_quoted_string_is_not_shown(expr: str) -> None:
    """A series named only inside a quoted label value or string argument is on no panel, so the
    catalog check still reports it and does not call its NOT_ON_A_DASHBOARD entry stale."""
    catalog: dict[str, tuple[str, set[str], str]] = {
        "exesdb_new_total": ("counter", set(), "New."),
        "exesdb_old": ("gauge", set(), "Old."),
    }
    shown = shown_series([expr], [])
    assert shown == set()
    assert series_off_dashboards(catalog, shown, {"exesdb_old"}) == (["exesdb_new_total"], [])


def test_the_unshown_series_finder_finds_a_series_on_no_panel() -> None:
    """The check above has teeth: a series an alert reads that no query selects (naming it in a
    quoted label value is not selecting it) is reported, with its rule; one a query selects, or
    reads through a recorded series, is not."""
    shipped = [
        {
            "record": "exesdb:bus_rejected:rate5m",
            "expr": "sum(rate(exesdb_bus_rejected_total[5m]))",
        },
        {"alert": "Rejecting", "expr": "sum(rate(exesdb_bus_rejected_total[4m])) > 0"},
        {"alert": "Unusable", "expr": "max(exesdb_redis_connected) == 0 or exesdb_build_info"},
    ]
    exprs = ["exesdb:bus_rejected:rate5m", 'exesdb_build_info{instance=~".*"}']
    assert unshown_series(shipped, exprs) == ["Unusable: exesdb_redis_connected"]
    quoted = 'exesdb_build_info{job="exesdb_redis_connected"}'  # a label value selects nothing
    assert unshown_series(shipped, [*exprs, quoted]) == ["Unusable: exesdb_redis_connected"]
    assert unshown_series(shipped, [*exprs, "max(exesdb_redis_connected)"]) == []


# -- the queries on a real Prometheus --


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BridgeProcess, Any]]:
    """A --demo bridge, its webhook receiver and Alertmanager, and a Prometheus scraping the
    bridge every second with the shipped rules. The bridge runs on a Redis bus over TLS and with
    a web config file (serving plain HTTP, as an empty one does), so that the Redis bus and HTTP
    edge panels have data too."""
    workdir = tmp_path_factory.mktemp("demo-stack")
    redis = RedisServer(tls=True).start(workdir / "redis")
    (workdir / "web.yml").write_text("{}\n")
    receiver = WebhookReceiver().start()
    collector = GrpcOtlpReceiver().start()
    alertmanager = AlertmanagerServer()
    bridge = BridgeProcess(
        args=["--demo"],
        state_dir=workdir / "state",
        EXESDB_BUS=redis.url,
        EXESDB_WEB_CONFIG_FILE=str(workdir / "web.yml"),
        EXESDB_HEALTH_BROADCAST_INTERVAL="500",
        EXESDB_METRICS_BROADCAST_INTERVAL="500",
        EXESDB_NODE="bridge-under-test",
        EXESDB_WEBHOOK_URLS=receiver.url,
        EXESDB_WEBHOOK_SECRET="test-webhook-secret",
        EXESDB_WEBHOOK_GROUP_WAIT_MS="100",
        EXESDB_ALERTMANAGER_URL=alertmanager.url,
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
    )
    (workdir / "prometheus").mkdir()
    prometheus = PrometheusServer(
        require_binary("prometheus"),
        workdir / "prometheus",
        [f"127.0.0.1:{bridge.port}"],
        rule_files=RULE_FILES,
    )
    try:
        alertmanager.start(workdir / "alertmanager")
        bridge.start(workdir)
        prometheus.start()
        wait_until(prometheus.targets_up, 30, "Prometheus to scrape the bridge")
        # rate() over 1m needs two scrapes of the demo's counters.
        prometheus.wait_for("rate(exesdb_operations_total[1m]) > 0", timeout=60)
        yield bridge, prometheus
    finally:
        prometheus.stop()
        bridge.stop()
        alertmanager.stop()
        receiver.stop()
        collector.stop()
        redis.stop()


def run_all(prometheus: PrometheusServer) -> tuple[dict[str, str], list[str], list[str]]:
    """Every dashboard query: errors by expr, those with data, those without."""
    names = variables()
    errors: dict[str, str] = {}
    with_data: list[str] = []
    empty: list[str] = []
    for _, _, expr in queries():
        try:
            result = prometheus.query(substitute(expr, names))
        except AssertionError as exc:  # the fixture's way of reporting an API error
            errors[expr] = str(exc)
            continue
        (with_data if result else empty).append(expr)
    return errors, with_data, empty


# The sample names a family of each type is exposed as (prometheus_client's text format, with
# the _created series it adds): a counter is queried as name_total, a histogram as name_bucket.
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def declared_families(bridge: BridgeProcess, tmp_path: Path) -> dict[str, str]:
    """Families the bridge declares, each with its type: ``# TYPE`` lines on /metrics, the
    Prometheus sink's catalog (the sink renders a family only once it has series), the web
    config's (declared only with EXESDB_WEB_CONFIG_FILE, which the demo runs without) and the
    Redis transport's (only with the bus on Redis; its TLS files' only when EXESDB_BUS names
    some)."""
    status, body = http_get(bridge.url + "/metrics")
    assert status == 200
    # A counter's TYPE line names it with _total, as its sample; the others by the family name.
    declared = {
        name.removesuffix("_total") if kind == "counter" else name: kind
        for name, kind in re.findall(r"^# TYPE (\w+) (\w+)$", body.decode(), re.M)
    }
    catalog = SeriesStore()
    Translator(catalog)
    declared |= {f.name: f.kind.value for f in catalog.families}
    web_config = tmp_path / "web.yml"
    web_config.write_text("{}\n")
    registry = CollectorRegistry()
    LiveWebConfig(judge(web_config), registry=registry)
    declared |= {metric.name: metric.type for metric in registry.collect()}
    on_redis = Bridge(  # built, never started
        Settings(
            EXESDB_NODE="n1",
            EXESDB_BUS=f"rediss://127.0.0.1:9/0?ssl_ca_certs={pem_files(tmp_path)['ca.pem']}",
            SECRET_KEY_BASE=TEST_SECRET,
            EXESDB_STATE_DIR=str(tmp_path / "state"),
        )
    )
    declared |= {
        metric.name: metric.type
        for metric in on_redis.registry.collect()
        if metric.name.startswith("exesdb_redis_")
    }
    return declared


def exposed_samples(declared: dict[str, str]) -> set[str]:
    """The sample names the families ``declared`` (name: type) are exposed as."""
    return {name + suffix for name, kind in declared.items() for suffix in SAMPLE_SUFFIXES[kind]}


def recorded() -> set[str]:
    """The series the shipped recording rules record (``exesdb:…``)."""
    return {rule["record"] for rule in rules() if "record" in rule}


def unknown_series(text: str, samples: set[str], records: set[str]) -> list[str]:
    """The ``exesdb_`` samples ``text`` names that are not in ``samples`` and the ``exesdb:``
    series it names that no rule of ``records`` records: what would leave a panel empty."""
    named = metrics_named(text) | set(RECORDED.findall(text))
    return sorted(name for name in named if name not in samples | records)


def test_the_unknown_series_finder_finds_a_wrong_suffix_and_an_unrecorded_rule() -> None:
    """The check below has teeth: a counter named without _total, a gauge with it, a misspelt
    metric and a recorded series no rule records are each reported; the right names are not."""
    samples = exposed_samples(
        {
            "exesdb_operations": "counter",
            "exesdb_alerts_active": "gauge",
            "exesdb_webhook_delivery_seconds": "histogram",
        }
    )
    records = {"exesdb:node_health:count"}
    right = (
        "rate(exesdb_operations_total[1m]) + exesdb_alerts_active"
        " + rate(exesdb_webhook_delivery_seconds_bucket[1m]) + exesdb:node_health:count"
    )
    assert unknown_series(right, samples, records) == []
    wrong = (
        "rate(exesdb_operations[1m]) + exesdb_alerts_active_total + exesdb_alert_active"
        " + exesdb:node_health:counts"
    )
    assert unknown_series(wrong, samples, records) == [
        "exesdb:node_health:counts",
        "exesdb_alert_active",
        "exesdb_alerts_active_total",
        "exesdb_operations",
    ]


def test_the_deployment_page_counts_every_dashboard_query() -> None:
    """docs/deployment.md gives the number of panel queries the check below evaluates, and of a
    run's that returned data, out of all of them: a panel added leaves no stale count."""
    text = " ".join(page("deployment").split())
    said = re.search(
        r"all (\d+) evaluate without error.*?\((\d+) of (\d+) in every passing run", text
    )
    assert said is not None
    assert (int(said[1]), int(said[3])) == (len(queries()), len(queries()))
    assert int(said[2]) >= len(queries()) - len(may_be_empty())


def may_be_empty() -> list[str]:
    """The dashboard queries that name a series of ``EMPTY_IN_THE_DEMO``."""
    return [expr for _, _, expr in queries() if metrics_named(expr) & EMPTY_IN_THE_DEMO]


@pytest.mark.integration
def test_every_dashboard_query_evaluates_and_all_but_the_named_few_have_data(demo_stack) -> None:
    """Every panel query evaluates without error, and every one but those naming a series of
    EMPTY_IN_THE_DEMO returns demo data."""
    _, prometheus = demo_stack
    excused = may_be_empty()
    assert 0 < len(excused) <= 2, excused  # a named few, each still on a panel

    def evaluated() -> tuple[dict[str, str], list[str], list[str]]:
        errors, with_data, empty = found = run_all(prometheus)
        unfed = [expr for expr in empty if expr not in excused]
        # Raised, not returned: the last shortfall is what a timeout reports.
        assert errors or not unfed, f"{len(with_data)} with data; empty: {unfed}"
        return found

    # The demo's rarer messages may need a few more seconds.
    errors, with_data, empty = wait_until(evaluated, 45, "the dashboard queries", every=1.0)
    assert not errors, errors
    assert len(with_data) + len(empty) == len(queries())
    print(
        f"{len(queries())} queries evaluated without error; {len(with_data)} "
        f"({len(with_data) / len(queries()):.0%}) returned data; empty: {empty}"
    )


@pytest.mark.integration
def test_a_wrong_query_is_reported(demo_stack) -> None:
    """The check has teeth: a bad expression errors, an unknown metric returns nothing."""
    _, prometheus = demo_stack
    with pytest.raises(AssertionError, match="bad_data"):
        prometheus.query("sum by (node) (rate(exesdb_operations_total[1m])")
    assert prometheus.query('exesdb_no_such_metric{node=~".*"}') == []


@pytest.mark.integration
def test_demo_shows_three_nodes(demo_stack) -> None:
    """The demo cluster appears as three nodes with health, resources and latency."""
    _, prometheus = demo_stack
    for expr in (
        "count(max by (node) (exesdb_node_health_status))",
        "count(exesdb_node_cpu_usage_percent)",
        'count(count by (node) (exesdb_operation_latency_seconds{quantile="0.99"}))',
    ):
        result = prometheus.query(expr)
        assert result, expr
        assert float(result[0]["value"][1]) >= 3, expr


@pytest.mark.integration
def test_the_rules_load_and_evaluate_on_live_data(demo_stack) -> None:
    """Prometheus loads the shipped rules without error and every rule evaluates."""
    _, prometheus = demo_stack
    groups = prometheus.api("rules")["groups"]
    assert {g["file"] for g in groups} == {str(path.resolve()) for path in RULE_FILES}
    for group in groups:
        for rule in group["rules"]:
            assert rule["health"] != "err", (rule["name"], rule.get("lastError"))
            prometheus.query(rule["query"])


@pytest.mark.integration
def test_dashboards_name_only_series_the_bridge_exposes(demo_stack, tmp_path: Path) -> None:
    """Every exesdb_ sample a dashboard or rule names is one the bridge exposes, suffix and all
    (a counter's _total, a histogram's _bucket), and every exesdb: series one names is recorded
    by a shipped rule: a misspelt name fails here rather than showing an empty panel."""
    bridge, _ = demo_stack
    samples = exposed_samples(declared_families(bridge, tmp_path))
    records = recorded()
    unknown = {
        path.name: found
        for path in (*DASHBOARDS, *RULE_FILES)
        if (found := unknown_series(path.read_text(), samples, records))
    }
    assert unknown == {}


@pytest.mark.integration
def test_demo_exposition_passes_promtool_check_metrics(demo_stack) -> None:
    """With the demo's label sets on it, /metrics still draws no complaint from promtool."""
    bridge, _ = demo_stack
    status, body = http_get(bridge.url + "/metrics")
    assert status == 200
    assert b'node="exesdb-1@demo"' in body
    result = subprocess.run(
        [require_binary("promtool"), "check", "metrics"],
        input=body,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == b""
