"""The simulated cluster: its nodes and stores, and how a step changes them.

Resource use drifts as mean-reverting random walks; now and then a node is stressed (and its
status follows the health collector's thresholds), or fails and comes back some steps later.
Everything draws on one seeded random generator, so one seed always tells one story.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, TypeAlias

from bridge.messages import Message
from bridge.settings import Settings
from collectors.health import (
    Status,
    Thresholds,
    resource_statuses,
    thresholds_from,
    worst_status,
)

__all__ = ["DEFAULT_THRESHOLDS", "NODE_MEMORY_BYTES", "Build", "ClusterState", "Pairs", "SimNode"]

DEFAULT_THRESHOLDS: Final = thresholds_from(Settings.model_construct())
"""The thresholds of the settings' defaults (unvalidated, no environment read: only defaults);
the factory takes the configured ones."""
NODE_MEMORY_BYTES: Final = 16 * 1024**3
"""Each simulated node's memory: what its resource reports give as the total and its state
snapshots' memory_usage is the used part of."""

# The step at which each rare event happens once anyway, so every panel has data within
# seconds of start: a node fails at step 8 and is back at step 14.
_SHOWCASE: Final = {
    "debug_trace": 2,
    "access_violation": 2,
    "error_analysis": 3,
    "brute_force": 4,
    "process_restart": 5,
    "admin_action": 6,
    "compliance_event": 7,
    "node_failure": 8,
    "performance_analysis": 9,
    "feature_toggle": 10,
}
_SHOWCASE_DOWN_STEPS: Final = 6
# A node fails only once the cluster has been whole this many steps: two outages back to back
# kept a node down past the minute of the shipped rule ExesdbNodeDown (docs/deployment.md).
_WHOLE_STEPS: Final = 30

Event = Literal[
    "debug_trace",
    "access_violation",
    "error_analysis",
    "brute_force",
    "process_restart",
    "admin_action",
    "compliance_event",
    "node_failure",
    "performance_analysis",
    "feature_toggle",
]

Pairs: TypeAlias = list[tuple[str, Message]]
"""(topic, message) pairs in publishing order: what the message builders return."""


class Build(Protocol):
    """Builds a validated message, the publishing node filled in (``Integration.build``)."""

    def __call__(self, model: type[Message], **fields: Any) -> Message:
        """The message ``model`` with ``fields``."""


@dataclass(slots=True)
class SimNode:
    """One simulated ExESDB node: resource use in percent and what it is going through."""

    name: str
    cpu: float
    memory: float
    disk: float
    network: float
    stress_left: int = 0
    down_left: int = 0
    down_since: int = 0  # the step it last failed at
    status: Status | Literal["unknown"] = "healthy"
    events_stored: dict[str, int] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        """False while the node is down."""
        return self.down_left == 0


class ClusterState:
    """The simulated nodes and stores on one seeded random generator; ``steps`` counts steps.

    With ``showcase`` each rare event also happens once at a fixed early step.
    """

    def __init__(
        self,
        nodes: Sequence[str],
        stores: Sequence[str],
        *,
        seed: int | None,
        thresholds: Mapping[str, Thresholds],
        failure_chance: float,
        stress_chance: float,
        showcase: bool,
    ) -> None:
        if not nodes:
            raise ValueError("nodes: the demo needs at least one node")
        self.rng = random.Random(seed)
        self.stores = tuple(stores)
        self.thresholds = dict(thresholds)
        self.failure_chance = failure_chance
        self.stress_chance = stress_chance
        self.showcase = showcase
        self.steps = 0
        # (step, alert id): the security desk's acknowledgements to come, due in that order.
        self.acks_due: deque[tuple[int, str]] = deque()
        # (node, feature) -> on: the feature toggles switched so far (all start off).
        self.features: dict[tuple[str, str], bool] = {}
        self.nodes = [self._new_node(name) for name in nodes]
        self._whole_since = -_WHOLE_STEPS  # the step the last node down came back at

    def _new_node(self, name: str) -> SimNode:
        rng = self.rng
        return SimNode(
            name,
            cpu=rng.uniform(20, 45),
            memory=rng.uniform(35, 60),
            disk=rng.uniform(30, 55),
            network=rng.uniform(5, 20),
            events_stored={store: rng.randint(10_000, 500_000) for store in self.stores},
        )

    # -- what the builders read --

    def up(self) -> list[SimNode]:
        """The nodes that are up."""
        return [node for node in self.nodes if node.up]

    def pick_up(self) -> SimNode:
        """A random node that is up (the first node when none is)."""
        up = self.up()
        return self.rng.choice(up) if up else self.nodes[0]

    def quorum(self) -> Literal["available", "lost"]:
        """Whether more than half of the nodes are up."""
        return "available" if len(self.up()) * 2 > len(self.nodes) else "lost"

    def chance(self, probability: float, event: Event) -> bool:
        """True with ``probability``, and at the event's showcase step."""
        hit = self.rng.random() < probability  # always drawn: the sequence stays seeded
        return hit or (self.showcase and self.steps == _SHOWCASE[event])

    # -- how a step changes the nodes --

    def drift(self, node: SimNode) -> None:
        """Move an up node's resource use one step on, and its status with it."""
        rng = self.rng
        if node.stress_left == 0 and rng.random() < self.stress_chance:
            node.stress_left = rng.randint(8, 25)
        if node.stress_left:
            node.stress_left -= 1
            cpu_target, memory_target = 93.0, 80.0
        else:
            cpu_target, memory_target = 35.0, 50.0
        # Mean-reverting random walks: values wander but stay plausible.
        node.cpu = _clamp(node.cpu + 0.25 * (cpu_target - node.cpu) + rng.gauss(0, 3), 1, 100)
        node.memory = _clamp(
            node.memory + 0.1 * (memory_target - node.memory) + rng.gauss(0, 1.5), 5, 99.5
        )
        # Slower than the others, but it comes back too: a disk that only filled made every node
        # unhealthy for good some 40 minutes into a demo.
        node.disk = _clamp(node.disk + 0.005 * (45.0 - node.disk) + rng.gauss(0, 0.1), 5, 99.5)
        node.network = _clamp(node.network + 0.2 * (15 - node.network) + rng.gauss(0, 2), 0, 100)
        # The health collector's rules: each resource against its thresholds, the worst wins.
        readings = {"cpu": node.cpu, "memory": node.memory, "disk": node.disk}
        node.status = worst_status(resource_statuses(readings, self.thresholds).values())

    def count_down(self, node: SimNode) -> bool:
        """One step less for a down node; True when that brings it back (healthy, unstressed)."""
        if node.down_left == 0:
            return False
        node.down_left -= 1
        if node.down_left:
            return False
        node.cpu, node.stress_left, node.status = 30.0, 0, "healthy"
        self._whole_since = self.steps
        return True

    def maybe_fail(self) -> SimNode | None:
        """Now and then, once every node has been up for a while, one fails: the node, else None.

        At most one node is down at a time, so the simulated cluster keeps its quorum.
        """
        whole = all(node.up for node in self.nodes) and (
            self.steps - self._whole_since >= _WHOLE_STEPS
        )
        if not whole or not self.chance(self.failure_chance, "node_failure"):
            return None
        node = self.rng.choice(self.nodes)
        node.down_left = self.rng.randint(15, 30)
        node.down_since = self.steps
        if self.showcase and self.steps == _SHOWCASE["node_failure"]:
            node.down_left = _SHOWCASE_DOWN_STEPS
        node.status = "unknown"
        return node


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)
