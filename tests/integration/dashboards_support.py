"""What the dashboard tests share: the shipped dashboards, their panels and queries with
Grafana's variables replaced, and the series of messages a query may be limited to some targets
by (the two-replica check's, which ``test_replicas.py`` runs on real replicas too)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bridge.sinks.prometheus import MetricType
from bridge.sinks.prometheus.store import SeriesStore
from bridge.sinks.prometheus.translate import Translator
from tests.deploy.files import SELECTOR
from tests.support import ROOT

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


def load(path: Path) -> dict[str, Any]:
    """The dashboard in the JSON file ``path``."""
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Each panel and row of ``dashboard``, a row's own panels after it."""
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
    """The names of every shipped dashboard's template variables."""
    return {v["name"] for board in map(load, DASHBOARDS) for v in board["templating"]["list"]}


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
