"""What a dashboard is described in: queries, panels, rows and variables, a helper for each kind.

The tables (``tables/``) describe each dashboard with these; ``model`` turns them into Grafana's
JSON. Every panel has a query, a unit and the ``$datasource`` variable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Every panel and query reads the ``datasource`` variable, never a data source of its own.
DS = {"type": "prometheus", "uid": "${datasource}"}


@dataclass
class Q:
    """One query of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False
    # A unit of its own, other than its panel's, on an axis of its own (right).
    unit: str = ""


@dataclass
class P:
    """One panel; ``kind`` is the Grafana panel type."""

    title: str
    kind: str
    queries: list[Q]
    unit: str
    width: int = 12
    height: int = 8
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    transformations: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Row:
    """A collapsible row title."""

    title: str


@dataclass
class Dashboard:
    """One dashboard file."""

    uid: str
    title: str
    description: str
    panels: list[P | Row]
    extra_variables: list[dict[str, Any]] = field(default_factory=list)


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    """Absolute thresholds: each step's colour from its value (the first step's is ``None``)."""
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


HEALTH_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "0": {"text": "healthy", "color": "green", "index": 0},
            "1": {"text": "degraded", "color": "yellow", "index": 1},
            "2": {"text": "unhealthy", "color": "red", "index": 2},
            "3": {"text": "unknown", "color": "text", "index": 3},
        },
    }
]


def zero_one(zero: tuple[str, str], one: tuple[str, str]) -> dict[str, Any]:
    """A stat's field defaults naming a 0/1 gauge's two values: each (text, colour)."""
    options = {
        "0": {"text": zero[0], "color": zero[1]},
        "1": {"text": one[0], "color": one[1]},
    }
    return {"mappings": [{"type": "value", "options": options}]}


def stat(title: str, expr: str, unit: str, legend: str = "", width: int = 4, **kw: Any) -> P:
    """A single-value panel showing the latest value."""
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "background",
        "graphMode": "none",
        "textMode": "auto",
        "orientation": "auto",
        "justifyMode": "auto",
    }
    options.update(kw.pop("options", {}))
    return P(title, "stat", [Q(expr, legend)], unit, width=width, height=4, options=options, **kw)


def series(title: str, queries: list[Q], unit: str, width: int = 12, **kw: Any) -> P:
    """A time series panel."""
    options = {
        "legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    defaults = {"custom": {"lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}}
    defaults.update(kw.pop("defaults", {}))
    return P(
        title, "timeseries", queries, unit, width=width, options=options, defaults=defaults, **kw
    )


def table(title: str, queries: list[Q], unit: str, width: int = 12, **kw: Any) -> P:
    """An instant table, one row per series."""
    for query in queries:
        query.instant = True
    transformations = [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {"Time": True}}},
    ]
    return P(
        title,
        "table",
        queries,
        unit,
        width=width,
        options={"showHeader": True, "cellHeight": "sm"},
        transformations=transformations,
        **kw,
    )


def timeline(title: str, expr: str, legend: str, width: int = 24) -> P:
    """A state timeline of the node health code."""
    return P(
        title,
        "state-timeline",
        [Q(expr, legend)],
        "none",
        width=width,
        height=6,
        options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8},
        defaults={"mappings": HEALTH_MAPPINGS, "color": {"mode": "thresholds"}},
    )


def query_variable(name: str, label: str, query: str) -> dict[str, Any]:
    """A variable whose values a query lists, all of them chosen to begin with."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "hide": 0,
    }
