"""A dashboard as Grafana's JSON model: its panels laid out, each with its id, and its variables.

Every dashboard has the ``datasource`` and ``node`` variables. Each file also works through
Grafana's "Import dashboard" in an existing Grafana, as dashboards on grafana.com do: its
``__inputs`` asks for a Prometheus data source (``DS_PROMETHEUS``), whose uid Grafana's importer
writes where ``${DS_PROMETHEUS}`` stands, i.e. only as the ``datasource`` variable's starting
value. Panels never name ``${DS_PROMETHEUS}`` themselves: provisioning (grafana/provisioning)
does not substitute inputs, and there the variable, finding no data source by that name, starts
on the first Prometheus.
"""

from __future__ import annotations

from typing import Any

from .panel_ids import PanelIds, check_ids
from .panels import DS, Dashboard, P, Row, query_variable

INPUT = "DS_PROMETHEUS"
# What an imported dashboard needs, as Grafana's export for sharing externally lists it.
GRAFANA_VERSION = "10.0.0"
PANEL_NAMES = {
    "stat": "Stat",
    "timeseries": "Time series",
    "table": "Table",
    "state-timeline": "State timeline",
    "bargauge": "Bar gauge",
    "gauge": "Gauge",
    "piechart": "Pie chart",
    "text": "Text",
}


def _variables(extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            # Replaced by the data source chosen at import; matches nothing when provisioned.
            "current": {"selected": False, "text": f"${{{INPUT}}}", "value": f"${{{INPUT}}}"},
            "hide": 0,
            "refresh": 1,
            "regex": "",
        },
        query_variable("node", "Node", "label_values(exesdb_node_health_status, node)"),
        *extra,
    ]


def _panel(item: P | Row, panel_id: int, x: int, y: int) -> dict[str, Any]:
    if isinstance(item, Row):
        return {
            "id": panel_id,
            "type": "row",
            "title": item.title,
            "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
            "panels": [],
        }
    defaults: dict[str, Any] = {"unit": item.unit}
    defaults.update(item.defaults)
    targets = []
    overrides = list(item.overrides)
    for index, query in enumerate(item.queries):
        target: dict[str, Any] = {
            "refId": chr(ord("A") + index),
            "datasource": DS,
            "expr": query.expr,
            "legendFormat": query.legend or "__auto",
            "range": not query.instant,
            "instant": query.instant,
            "editorMode": "code",
        }
        if query.instant:
            target["format"] = "table"
        targets.append(target)
        if query.unit:
            matcher = {"id": "byFrameRefID", "options": target["refId"]}
            properties = [
                {"id": "unit", "value": query.unit},
                {"id": "custom.axisPlacement", "value": "right"},
            ]
            overrides.append({"matcher": matcher, "properties": properties})
    panel: dict[str, Any] = {
        "id": panel_id,
        "type": item.kind,
        "title": item.title,
        "datasource": DS,
        "gridPos": {"h": item.height, "w": item.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": overrides},
        "options": item.options,
        "targets": targets,
    }
    if item.description:
        panel["description"] = item.description
    if item.transformations:
        panel["transformations"] = item.transformations
    return panel


def build(dashboard: Dashboard, ids: PanelIds) -> dict[str, Any]:
    """The dashboard's JSON model, panels laid out left to right, top to bottom, each with its
    id from ``ids`` (a ``ValueError`` names the panel without one, or the id naming none)."""
    check_ids(dashboard.uid, [item.title for item in dashboard.panels], ids)
    panels: list[dict[str, Any]] = []
    x = y = row_height = 0
    for item in dashboard.panels:
        panel_id = ids.panels[item.title]
        if isinstance(item, Row):
            if x:
                y, x, row_height = y + row_height, 0, 0
            panels.append(_panel(item, panel_id, 0, y))
            y += 1
            continue
        if x + item.width > 24:
            y, x, row_height = y + row_height, 0, 0
        panels.append(_panel(item, panel_id, x, y))
        x += item.width
        row_height = max(row_height, item.height)
    kinds = sorted({panel["type"] for panel in panels if panel["type"] != "row"})
    return {
        "__inputs": [
            {
                "name": INPUT,
                "label": "Prometheus",
                "description": "The Prometheus that scrapes exesdb-bridge",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            *(
                {"type": "panel", "id": kind, "name": PANEL_NAMES[kind], "version": ""}
                for kind in kinds
            ),
        ],
        "id": None,
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["exesdb", "exesdb-bridge"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "schemaVersion": 39,
        "version": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "title": "ExESDB dashboards",
                "type": "dashboards",
                "tags": ["exesdb"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "templating": {"list": _variables(dashboard.extra_variables)},
        "panels": panels,
    }
