"""The shipped dashboards, one table each: edit a table, then run ``python grafana/generate.py``."""

from __future__ import annotations

from .bridge_internals import BRIDGE_INTERNALS
from .cluster_overview import CLUSTER_OVERVIEW
from .node_health import NODE_HEALTH
from .throughput_latency import THROUGHPUT_LATENCY

# In the order the generator writes them.
DASHBOARDS = [CLUSTER_OVERVIEW, NODE_HEALTH, THROUGHPUT_LATENCY, BRIDGE_INTERNALS]

__all__ = ["DASHBOARDS"]
