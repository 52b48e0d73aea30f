"""The nodes the cluster monitor tracks: each one as last heard, and the bounds on tracking.

What it means for users: docs/redis.md#cluster-membership.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from bridge.cluster.groups import NAME_SHOWN, NAMED
from bridge.messages.health import NodeStatus

__all__ = ["MAX_NODES", "MISSED_INTERVALS", "Dropped", "Node", "Reason", "State"]

# Health intervals a node may stay silent before it is down.
MISSED_INTERVALS: Final = 3
MAX_NODES: Final = 10_000

State = Literal["up", "down"]
Reason = Literal["silent", "evicted"]


@dataclass(slots=True)
class Node:
    """One tracked node: when it was last heard, its state and health, what was announced."""

    heard: float
    state: State = "up"
    health: NodeStatus = "healthy"
    announced: State | None = None  # the last transition announced (or found announced)
    down_since: float = 0.0
    said: State | None = None  # the last transition heard announced on the bus, by anyone


@dataclass(slots=True)
class Dropped:
    """Nodes stopped tracking since the last log line: how many, and the first few names."""

    count: int = 0
    named: list[str] = field(default_factory=list)

    def add(self, name: str) -> None:
        self.count += 1
        if len(self.named) < NAMED:
            self.named.append(name[:NAME_SHOWN])
