"""The simulated cluster's log entries (``ex_esdb_logging``)."""

from __future__ import annotations

from typing import Final

from bridge.messages import LogEntry, Message
from collectors.demo.state import Build, ClusterState, Pairs, SimNode

__all__ = ["log", "logs"]

_LOG_LEVELS: Final = (("debug", 20), ("info", 60), ("warn", 14), ("error", 5), ("critical", 1))
_LOG_TEXT: Final = {
    "debug": "flushed persistence batch",
    "info": "appended events to stream",
    "warn": "emitter queue above watermark",
    "error": "subscription handler crashed; restarting",
    "critical": "persistence write failed",
}
_MODULES: Final = (
    "ExESDB.StreamsWriter",
    "ExESDB.StreamsReader",
    "ExESDB.PersistenceWorker",
    "ExESDB.EmitterWorker",
    "ExESDB.SubscriptionsStore",
)


def log(
    state: ClusterState, build: Build, node: SimNode, level: str, message: str
) -> tuple[str, Message]:
    """One log entry of ``node``, from a random ExESDB module."""
    return (
        "logs",
        build(
            LogEntry,
            level=level,
            message=message,
            module=state.rng.choice(_MODULES),
            node=node.name,
            metadata={},
        ),
    )


def logs(state: ClusterState, build: Build) -> Pairs:
    """A step's routine log lines: one to four per node that is up, mostly info."""
    rng = state.rng
    levels = [level for level, _ in _LOG_LEVELS]
    weights = [weight for _, weight in _LOG_LEVELS]
    return [
        log(state, build, node, level, _LOG_TEXT[level])
        for node in state.up()
        for level in rng.choices(levels, weights, k=rng.randint(1, 4))
    ]
