"""The cluster's nodes as the sink's series tell them: health status, resource use, down or left."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bridge.sinks.prometheus.store import SeriesStore

__all__ = ["NodeSummary", "node_summaries"]

_STATUS: Final = "exesdb_node_health_status"
_CPU: Final = "exesdb_node_cpu_usage_percent"
_MEMORY: Final = "exesdb_node_memory_usage_percent"
_DISK: Final = "exesdb_node_disk_usage_percent"
_LIFECYCLE: Final = "exesdb_node_lifecycle_events"
# The NodeLifecycle events after which a node is gone (bridge/cluster/ announces them).
_GONE: Final = frozenset({"down", "left"})


@dataclass(frozen=True, slots=True)
class NodeSummary:
    """One node: its health status and CPU, memory and disk use in percent (None: not heard),
    and the seconds since any of them was last reported (``silent_for``).

    A node whose latest word on the bus is NodeLifecycle ``down`` or ``left``, said after its
    latest reading (a health status of ``unknown`` aside), has that as its status and
    ``gone_for``: the seconds since it was said. A node heard by another NodeLifecycle
    (``joined``, a bridge's heartbeat among them) with no reading held has no status nor figures:
    a replica just started hears the others' answers within a second, their readings up to a
    health interval later.
    """

    node: str
    status: str | None
    cpu: float | None
    memory: float | None
    disk: float | None
    silent_for: float
    gone_for: float | None = None


def node_summaries(store: SeriesStore) -> list[NodeSummary]:
    """Every node with a health status or a resource reading in ``store``, or heard by its
    NodeLifecycle (gone: down or left; or joined, its readings to come), by name.

    Series expire (``EXESDB_SERIES_TTL_MS``), so a node silent for that long drops out, and a
    gone one once that long passed since it was announced. The lifecycle is read from the
    ``exesdb_node_lifecycle_events`` counters: the series written last is the latest event.
    """
    statuses = {node: status for (node, status), value in store.values(_STATUS).items() if value}
    cpu = {labels[0]: value for labels, value in store.values(_CPU).items()}
    memory = {labels[0]: value for labels, value in store.values(_MEMORY).items()}
    disk = {labels[0]: value for labels, value in store.values(_DISK).items()}
    silent: dict[str, float] = {}
    # What says a node is back after a down or left: a reading, but not a health status of
    # "unknown" (what a monitor reports for a node it cannot reach).
    heard: dict[str, float] = {}
    for name in (_STATUS, _CPU, _MEMORY, _DISK):
        for labels, seconds in store.ages(name).items():
            silent[labels[0]] = min(seconds, silent.get(labels[0], seconds))
            if name != _STATUS or statuses.get(labels[0]) not in (None, "unknown"):
                heard[labels[0]] = min(seconds, heard.get(labels[0], seconds))
    latest: dict[str, tuple[float, bool, str]] = {}
    for (node, event), seconds in store.ages(_LIFECYCLE).items():
        # Written in the same instant, a gone event counts as the later: it is the one to see.
        word = (seconds, event not in _GONE, event)
        latest[node] = min(word, latest.get(node, word))
    gone = {
        node: (event, seconds)
        for node, (seconds, _, event) in latest.items()
        if event in _GONE and seconds <= heard.get(node, seconds)
    }
    summaries: list[NodeSummary] = []
    for node in sorted(silent.keys() | latest.keys()):
        status, gone_for = gone.get(node, (statuses.get(node), None))
        # Heard only by its lifecycle: silent since the latest event (a bridge's heartbeat).
        silent_for = silent[node] if node in silent else latest[node][0]
        summaries.append(
            NodeSummary(
                node, status, cpu.get(node), memory.get(node), disk.get(node), silent_for, gone_for
            )
        )
    return summaries
