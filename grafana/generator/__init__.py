"""The dashboards' generator: tables of panels, laid out as Grafana's JSON with lasting ids.

``panels`` holds what a table is written in and ``queries`` the PromQL the tables share;
``tables/`` holds one table per dashboard; ``panel_ids`` gives each panel its lasting id and
``model`` lays a table out as the JSON Grafana reads. ``grafana/generate.py`` writes the files.
tests/integration/test_dashboards_live.py runs every query against a real Prometheus scraping a
``--demo`` bridge.
"""

from __future__ import annotations

from .model import build
from .panel_ids import IDS, PanelIds, load_ids
from .panels import Dashboard, Row, stat
from .tables import DASHBOARDS

__all__ = ["DASHBOARDS", "IDS", "Dashboard", "PanelIds", "Row", "build", "load_ids", "stat"]
