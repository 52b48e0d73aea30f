"""The cluster's nodes as the sink's series tell them: health status and resource use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bridge.sinks.prometheus.store import SeriesStore

__all__ = ["NodeSummary", "node_summaries"]

_STATUS: Final = "exesdb_node_health_status"
_CPU: Final = "exesdb_node_cpu_usage_percent"
_MEMORY: Final = "exesdb_node_memory_usage_percent"
_DISK: Final = "exesdb_node_disk_usage_percent"


@dataclass(frozen=True, slots=True)
class NodeSummary:
    """One node: its health status and CPU, memory and disk use in percent (None: not heard),
    and the seconds since any of them was last reported (``silent_for``)."""

    node: str
    status: str | None
    cpu: float | None
    memory: float | None
    disk: float | None
    silent_for: float


def node_summaries(store: SeriesStore) -> list[NodeSummary]:
    """Every node with a health status or a resource reading in ``store``, by name.

    Series expire (``EXESDB_SERIES_TTL_MS``), so a node silent for that long drops out.
    """
    statuses = {node: status for (node, status), value in store.values(_STATUS).items() if value}
    cpu = {labels[0]: value for labels, value in store.values(_CPU).items()}
    memory = {labels[0]: value for labels, value in store.values(_MEMORY).items()}
    disk = {labels[0]: value for labels, value in store.values(_DISK).items()}
    silent: dict[str, float] = {}
    for name in (_STATUS, _CPU, _MEMORY, _DISK):
        for labels, seconds in store.ages(name).items():
            silent[labels[0]] = min(seconds, silent.get(labels[0], seconds))
    return [
        NodeSummary(
            node, statuses.get(node), cpu.get(node), memory.get(node), disk.get(node), silent[node]
        )
        for node in sorted(silent)
    ]
