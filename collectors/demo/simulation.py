"""One step of the simulated cluster: which events happen, and the messages they make, in order."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from bridge.messages import Message
from collectors.demo import activity, lifecycle, logs, nodes, operations
from collectors.demo.state import DEFAULT_THRESHOLDS, Build, ClusterState, Pairs
from collectors.health import Thresholds

__all__ = ["DEFAULT_NODES", "DEFAULT_STORES", "DEMO_SEED", "Simulation"]

DEFAULT_NODES: Final = ("exesdb-1@demo", "exesdb-2@demo", "exesdb-3@demo")
DEFAULT_STORES: Final = ("orders_store", "inventory_store")
DEMO_SEED: Final = 2026
"""The ``--demo`` seed: every demo run tells the same story (same failures, same drift)."""
# Steps until the security desk acknowledges an alert that waits for it: four minutes at a step
# a second, before EXESDB_ESCALATION_AFTER_MS (15 min) escalates it. Left alone, the brute
# forces and the violations rated high piled up firing and escalating, some 150 an hour.
_ACK_AFTER_STEPS: Final = 240


class Simulation:
    """A simulated ExESDB cluster, one ``step()`` about every ``interval`` seconds.

    ``step()`` is pure apart from the seeded random generator and the injected ``clock``
    (throughput covers the clock time since the previous step), which is how the tests drive
    it without sleeping.
    """

    def __init__(
        self,
        build: Build,
        *,
        nodes: Sequence[str] = DEFAULT_NODES,
        stores: Sequence[str] = DEFAULT_STORES,
        interval: float = 1.0,
        seed: int | None = None,
        thresholds: Mapping[str, Thresholds] = DEFAULT_THRESHOLDS,
        failure_chance: float = 1 / 120,
        stress_chance: float = 1 / 40,
        showcase: bool = True,
        ack_after: int = _ACK_AFTER_STEPS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval: must be above 0 seconds (got {interval!r})")
        if ack_after < 1:
            raise ValueError(f"ack_after: must be at least 1 step (got {ack_after!r})")
        self.state = ClusterState(
            nodes,
            stores,
            seed=seed,
            thresholds=thresholds,
            failure_chance=failure_chance,
            stress_chance=stress_chance,
            showcase=showcase,
        )
        self.interval = interval
        self.ack_after = ack_after
        self._build = build
        self._clock = clock
        self._last_step: float | None = None

    def step(self) -> Pairs:
        """Advance the simulation by one step; returns the (topic, message) pairs to publish."""
        now = self._clock()
        elapsed = self.interval if self._last_step is None else max(now - self._last_step, 1e-3)
        self._last_step = now
        state, build = self.state, self._build
        out: Pairs = []
        if state.steps == 0:
            out += lifecycle.announce(state, build)
        state.steps += 1
        for node in state.nodes:
            if state.count_down(node):
                out += lifecycle.recovered(state, build, node)
        for node in state.nodes:
            if not node.up and state.steps - node.down_since == lifecycle.ESCALATE_AFTER_STEPS:
                out += lifecycle.escalated(build, node)
        failing = state.maybe_fail()
        if failing is not None:
            out += lifecycle.failed(state, build, failing)
        for node in state.nodes:
            if node.up:
                state.drift(node)
                out += nodes.node_health(state, build, node)
                out += operations.node_metrics(state, build, node, elapsed)
        out += nodes.cluster_health(state, build)
        out += activity.security(state, build)
        out += activity.acknowledgements(state, build)
        out += activity.audit(state, build)
        out += activity.features(state, build)
        out += logs.logs(state, build)
        out += activity.diagnostics(state, build)
        out += activity.snapshots(state, build)
        return out

    def published(self, message: Message, message_id: str) -> None:
        """Note that ``message`` went out as ``message_id``: a security alert that waits for an
        acknowledgement gets one from the security desk ``ack_after`` steps later."""
        alert_id = activity.needs_ack(message, message_id)
        if alert_id is not None:
            self.state.acks_due.append((self.state.steps + self.ack_after, alert_id))
