"""The nodes the cluster monitor tracks: each one as last heard, and the bounds on tracking.

What it means for users: docs/redis.md#cluster-membership.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from bridge.cluster.cadence import Cadence
from bridge.cluster.groups import NAME_SHOWN, NAMED
from bridge.messages.health import NodeStatus

__all__ = ["MAX_NODES", "Dropped", "EvictedDowns", "Node", "Reason", "State"]

MAX_NODES: Final = 10_000

State = Literal["up", "down"]
Reason = Literal["silent", "evicted"]


@dataclass(slots=True)
class Node:
    """One tracked node: when it was last heard, its pace, its state and health, what was
    announced."""

    heard: float
    cadence: Cadence  # how long it may stay silent
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

    def shown(self) -> str:
        """The names of a log line: the first few, and an ellipsis when there are more."""
        return ", ".join(self.named) + (" …" if self.count > len(self.named) else "")


class EvictedDowns:
    """Nodes evicted at the cap while down with their alert open, remembered so that, heard
    again, each is announced back, which resolves that alert.

    Bounded as the nodes tracked are: at most ``limit`` names at a time, the earliest kept (the
    longest silent are evicted first: real nodes down before a flood, not its names), each for
    ``keep`` seconds after its eviction, then forgotten as a tracked down node is (announced
    ``left``). A name not remembered keeps its alert open: only a person (or its state key still
    saying ``down`` when it returns) ends it.
    """

    __slots__ = ("_keep", "_limit", "_until")

    def __init__(self, *, limit: int, keep: float) -> None:
        self._limit = limit
        self._keep = keep
        self._until: dict[str, float] = {}  # in order of eviction: the first expires first

    def add(self, name: str, now: float) -> bool:
        """Remember ``name`` evicted at ``now``; False when ``limit`` names are remembered."""
        if len(self._until) >= self._limit:
            return False
        self._until[name] = now + self._keep
        return True

    def pop(self, name: str) -> bool:
        """Forget ``name``; True when it was remembered (evicted down, its alert open)."""
        return self._until.pop(name, None) is not None

    def expire(self, now: float) -> list[str]:
        """Let go of the names remembered ``keep`` seconds; those names."""
        gone: list[str] = []
        for name, until in self._until.items():
            if until > now:
                break
            gone.append(name)
        for name in gone:
            del self._until[name]
        return gone
