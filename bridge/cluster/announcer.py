"""The cluster monitor's announcements: each node's transitions said once across the replicas.

What it means for users: docs/redis.md#cluster-membership. The monitor tells the ``Announcer``
what it finds (a node down, back, new, forgotten) and what it hears announced; each tick the
announcer announces what is due, a slice at a time. One replica announces each transition: the
one whose atomic swap of the node's state key (``_swap_state``) changes it. The others wait one
health interval to hear it on the bus; should the winner have died between its swap and its
publish, one of them (an atomic once-only claim) announces it in its place. So too a forgotten
node's ``left``, whose key is swapped to ``forgotten``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Final, Literal

from prometheus_client import CollectorRegistry, Counter

from bridge.bus import Bus, Coordinator
from bridge.cluster.cadence import MISSED_INTERVALS
from bridge.cluster.groups import DownGroups
from bridge.cluster.nodes import Dropped, Node, Reason, State
from bridge.cluster.reports import Change
from bridge.cluster.shared_clock import SharedClock
from bridge.errors import BridgeError, TransportError
from bridge.messages import NodeLifecycle

__all__ = ["Announcer"]

# The package's logger: the monitor's lines (``logger`` in JSON logs) are bridge.cluster's.
_logger = logging.getLogger("bridge.cluster")

# How long a node's state key outlives what it must cover (see _swap_state): replicas find a
# node down, and forget it, at about the same time, one cut off from Redis later by that while.
_STATE_MARGIN_MS: Final = 3_600_000
_FORGOTTEN: Final = "forgotten"

# The NodeLifecycle events that announce a node's transition (as the alert stage reads them).
_SAYS: Final[dict[str, State]] = {"down": "down", "reconnected": "up", "joined": "up", "left": "up"}


class Announcer:
    """The transitions of the tracked ``nodes`` still to announce, announced once across the
    replicas, and those another replica won, awaited on the bus."""

    __slots__ = (
        "_bus",
        "_clock",
        "_coordinator",
        "_data_losses",
        "_downs",
        "_farewells",
        "_farewells_dropped",
        "_interval",
        "_max_nodes",
        "_me",
        "_nodes",
        "_pending",
        "_per_tick",
        "_refresh_every",
        "_refreshed",
        "_shared_clock",
        "_state_ttl_ms",
        "_stopped",
        "_unheard",
        "_unheard_farewells",
        "_unsaid",
    )

    def __init__(
        self,
        bus: Bus,
        nodes: Mapping[str, Node],
        *,
        node: str,
        interval: float,
        forget_ms: int,
        coordinator: Coordinator,
        downs: DownGroups,
        clock: Callable[[], float],
        shared_clock: SharedClock,
        max_nodes: int,
        per_tick: int,
        registry: CollectorRegistry,
    ) -> None:
        """``nodes`` are the monitor's (read, never added to or removed from); ``node`` is this
        replica's, which it names as the detector; ``shared_clock`` dates the announcements, so
        that a return announced here is not taken as older than a down another replica
        announced; ``per_tick`` bounds the announcements of each kind a tick, ``max_nodes`` the
        farewells waiting."""
        self._bus = bus
        self._nodes = nodes
        self._me = node
        self._interval = interval
        self._state_ttl_ms = forget_ms + _STATE_MARGIN_MS
        # The state keys of tracked nodes are refreshed this often (see refresh_states).
        self._refresh_every = forget_ms / 2000
        self._refreshed = clock()
        self._coordinator = coordinator
        self._data_losses = coordinator.data_losses  # at the last refresh
        self._downs = downs
        self._clock = clock
        self._shared_clock = shared_clock
        self._max_nodes = max_nodes
        self._per_tick = per_tick
        self._pending: dict[str, State] = {}  # transitions still to announce
        # Forgotten down nodes still to announce as left: why, whether their down was announced
        # (their alert is open: heard again, they are announced back instead), and whether a
        # left of theirs was heard already (another replica forgot them first).
        self._farewells: dict[str, tuple[Reason, bool, bool]] = {}
        # Transitions another replica won the swap for, not yet heard announced: by when.
        self._unheard: dict[str, tuple[State, float]] = {}
        # Farewells another replica won the swap for, not yet heard announced: why, by when.
        self._unheard_farewells: dict[str, tuple[Reason, float]] = {}
        self._unsaid = Dropped()  # farewells given up since the last log line
        self._stopped = False
        self._farewells_dropped = Counter(
            "exesdb_cluster_farewells_dropped",
            "Forgotten down nodes never announced left because the backlog of announcements was "
            "full.",
            registry=registry,
        )

    # -- what the monitor finds and hears --

    def due(self, name: str, state: State) -> None:
        """A transition of ``name`` to announce (found down, or back, or first heard)."""
        self._pending[name] = state

    def let_go(self, name: str) -> None:
        """``name`` is no longer tracked: no transition of it is announced, nor awaited."""
        self._pending.pop(name, None)
        self._unheard.pop(name, None)

    def back(self, name: str) -> bool:
        """``name``, no longer tracked, is heard again: its left is not announced (nor awaited);
        True when its alert is open (its down was announced, its left is not out)."""
        farewell = self._farewells.pop(name, None)
        unheard = self._unheard_farewells.pop(name, None)
        # A left heard already (another replica forgot it first) resolved its alert.
        return (farewell is not None and farewell[1] and not farewell[2]) or unheard is not None

    def heard(self, name: str, event: str) -> None:
        """A transition of ``name`` announced on the bus (by any replica, or by the node)."""
        said = _SAYS.get(event)
        if said is None:
            return
        node = self._nodes.get(name)
        if node is not None:
            node.said = said
        unheard = self._unheard.get(name)
        if unheard is not None and unheard[0] == said:
            del self._unheard[name]
        if event == "left":
            self._unheard_farewells.pop(name, None)
            farewell = self._farewells.get(name)
            if farewell is not None and not farewell[2]:
                # Forgotten here, its left still to come (or its swap in flight): that replica
                # forgot it first, so no wait for this left once the key says forgotten.
                self._farewells[name] = (farewell[0], farewell[1], True)

    def bid_farewell(
        self, name: str, reason: Reason, *, announced: bool, heard: bool = False
    ) -> None:
        """Queue ``name``, forgotten down (``announced``: its down was; ``heard``: its left
        was, from another replica), to be announced ``left``, within the backlog's bound."""
        if name in self._farewells or len(self._farewells) < self._max_nodes:
            # Its node_failure resolves on "left".
            self._farewells[name] = (reason, announced, heard)
        else:  # a flood evicts faster than farewells go out: the earliest queued are kept
            self._farewells_dropped.inc()
            self._unsaid.add(name)

    def wait_longer(self, now: float) -> None:
        """This replica could not hear (cut off, or not running): what was announced meanwhile
        is still on its way, so each announcement awaited is awaited another interval."""
        for name, (state, due) in self._unheard.items():
            self._unheard[name] = (state, max(due, now + self._interval))
        for name, (reason, due) in self._unheard_farewells.items():
            self._unheard_farewells[name] = (reason, max(due, now + self._interval))

    def log_given_up(self) -> None:
        """Log the farewells given up since the last line, if any."""
        if self._unsaid.count:
            unsaid = self._unsaid
            _logger.warning(
                "gave up announcing %d forgotten down node(s) as left, %d already waiting: %s",
                unsaid.count,
                len(self._farewells),
                unsaid.shown(),
            )
            self._unsaid = Dropped()

    def stop(self) -> None:
        """Begin no announcement after the one under way (see ``announce``); the monitor stops."""
        self._stopped = True

    # -- announcing, each tick --

    async def announce(self, changes: dict[Change, list[str]], up: int) -> None:
        """Announce pending transitions, then farewells, then what was not heard from the
        replicas that won them (``up``: the nodes up, the ``cluster_size`` said); the membership
        changes made go in ``changes``. Each swap of a state key and its publish are one step,
        which a stop lets finish and follows with no other: cancelled between the two, the key
        would say announced with nothing published for any replica to announce again."""
        for name, state in list(self._pending.items())[: self._per_tick]:
            if self._stopped:
                return
            event = await self._transition(name, state, up)
            if event is not None:
                changes[event].append(name)
            # Heard (or silent) again during the swap: that newer transition stays pending.
            if self._pending.get(name) == state:
                del self._pending[name]
        for name, farewell in list(self._farewells.items())[: self._per_tick]:
            if self._stopped:
                return
            await self._farewell(name, farewell[0], up)
            # Its left heard meanwhile (see heard) changes only that flag: it is done with.
            if (queued := self._farewells.get(name)) is not None and queued[:2] == farewell[:2]:
                del self._farewells[name]
        now = self._clock()
        for name, (state, due) in list(self._unheard.items())[: self._per_tick]:
            if self._stopped:
                return
            if due <= now:
                event = await self._announce_unheard(name, state, up, now)
                if event is not None:
                    changes[event].append(name)
        for name, (reason, due) in list(self._unheard_farewells.items())[: self._per_tick]:
            if self._stopped:
                return
            if due <= now:
                await self._farewell_unheard(name, reason, up, now)

    async def refresh_states(self, now: float) -> None:
        """Every half ``EXESDB_NODE_FORGET_MS``, and at once when the coordinator found that its
        store lost its data (Redis restarted without it), give the state keys of the nodes this
        replica tracks their whole lifetime again, in one batch, one that is gone set again to
        the transition this replica announced (or found announced) last: a node up for days
        keeps its key, so a replica started later finds it known rather than announcing it
        ``node_added``. Nodes forgotten or evicted are no longer tracked: their keys still
        expire. Raises what else fails (a fault of the bridge's own)."""
        data_losses = self._coordinator.data_losses
        if now - self._refreshed < self._refresh_every and data_losses == self._data_losses:
            return
        try:
            # A node never announced here (this one, or one whose swap is to come) keeps the key
            # the others set, if any, and sets none.
            keys = {f"cluster:node:{name}": node.announced for name, node in self._nodes.items()}
            await self._coordinator.refresh(keys, self._state_ttl_ms)
        except TransportError as exc:  # Redis unreachable (the bus says so): the next tick
            _logger.debug("cluster state keys not refreshed: %s", exc)
        else:
            self._refreshed = now
            self._data_losses = data_losses

    async def _transition(self, name: str, state: State, up: int) -> Change | None:
        """Announce one node's transition when it is this replica's to announce; the
        membership event it makes."""
        node = self._nodes.get(name)
        if node is None or node.state != state:
            return None  # changed again since; the newer transition is pending or moot
        previous = await self._swap_state(name, state)
        if self._nodes.get(name) is not node or node.state != state:
            # It changed during the swap (heard again, or forgotten): this transition is moot
            # and the newer one pending, so the key goes back to what announced it last.
            await self._swap_state(name, _restored(previous, state))
            return None
        locally_down = node.announced == "down"
        if state == "down":
            if previous == "down":
                node.announced = state
                self._expect(name, node, state)  # another replica announces it
                return None
            event: Literal["down", "reconnected"] = "down"
            metadata: dict[str, object] = {
                "detected_by": self._me,
                "missed_intervals": MISSED_INTERVALS,
            }
            group = self._downs.grouped(name, node.down_since)
            if group is not None:
                metadata["grouped"] = group
        elif previous == "down" or (previous is None and locally_down):
            event, metadata = "reconnected", {"detected_by": self._me}
        else:
            if locally_down:
                self._expect(name, node, state)  # another replica announces its return
            node.announced = state
            # First heard anywhere (or again after being forgotten): a new member.
            return "node_added" if previous in (None, _FORGOTTEN) else None
        published = self._bus.publish(
            "lifecycle",
            NodeLifecycle(
                node=name,
                event=event,
                cluster_size=up,
                metadata=metadata,
                timestamp=self._shared_clock.now(),
            ),
        )
        if not published:
            # The transition is ours to announce; refused (e.g. the Redis buffer is full), it
            # would be lost for every replica: put the state key back and keep it pending.
            # (None cannot be put back; the value that makes the retry announce it again can.)
            await self._swap_state(name, _restored(previous, state))
            self._downs.uncount(name, grouped="grouped" in metadata, down=state == "down")
            raise BridgeError(f"announcing {name} {event} was refused: {published.reason}")
        node.announced = state
        return "node_removed" if state == "down" else "node_added"

    async def _swap_state(self, name: str, value: str) -> str | None:
        """Set the node's state key, shared by the replicas, to ``value``; what it said before.

        The key says which transition of the node was announced last, so that one replica
        announces each; it expires, so that a flood of names leaves no key for long. ``down``
        (and ``up``) last ``EXESDB_NODE_FORGET_MS`` and a margin: as long as a replica may hold
        the node down before forgetting it, so that the node's return is announced
        ``reconnected`` (resolving its alert) even by replicas started since, which never heard
        it go down; past that it is forgotten anyway, and heard again a new member. Both are
        refreshed while the node is tracked (``refresh_states``). ``forgotten`` only has to
        keep replicas forgetting the node at about the same time from each announcing it left:
        it lasts the margin.
        """
        ttl_ms = _STATE_MARGIN_MS if value == _FORGOTTEN else self._state_ttl_ms
        return await self._coordinator.swap(f"cluster:node:{name}", value, ttl_ms)

    def _expect(self, name: str, node: Node, state: State) -> None:
        """Wait one health interval to hear the announcement another replica won the swap for."""
        if node.said != state:
            self._unheard[name] = (state, self._clock() + self._interval)

    async def _announce_unheard(
        self, name: str, state: State, up: int, now: float
    ) -> Change | None:
        """Announce a transition whose winner was not heard announcing it within an interval
        (it died between its swap and its publish); one replica, by a once-only claim, while
        the others wait another interval to hear it."""
        node = self._nodes.get(name)
        if node is None or node.state != state or node.said == state:
            self._unheard.pop(name, None)
            return None
        self._unheard.pop(name, None)  # to the end: the next in line are looked at next tick
        self._unheard[name] = (state, now + self._interval)
        window = int(self._interval * 1000)
        if not await self._coordinator.once(f"cluster:unheard:{name}:{state}", window):
            return None  # another replica announces it; heard (or not) within the interval
        if self._unheard.get(name, (None,))[0] != state or node.state != state:
            return None  # heard, or changed, meanwhile
        metadata: dict[str, object] = {"detected_by": self._me, "unheard": True}
        if state == "down":
            event: Literal["down", "reconnected"] = "down"
            metadata["missed_intervals"] = MISSED_INTERVALS
            group = self._downs.grouped(name, node.down_since)
            if group is not None:
                metadata["grouped"] = group
        else:
            event = "reconnected"
        message = NodeLifecycle(
            node=name,
            event=event,
            cluster_size=up,
            metadata=metadata,
            timestamp=self._shared_clock.now(),
        )
        if not self._bus.publish("lifecycle", message):
            self._downs.uncount(name, grouped="grouped" in metadata, down=state == "down")
            return None  # refused: tried again an interval on
        _logger.warning(
            "node %s %s was not heard announced by the replica that claimed it: announced here",
            name,
            event,
        )
        self._unheard.pop(name, None)
        return "node_removed" if state == "down" else "node_added"

    async def _farewell(self, name: str, reason: Reason, up: int) -> None:
        """Announce a forgotten node as left, once across replicas: its alert resolves."""
        if name in self._nodes:
            return  # heard again since it was queued: its return is announced instead
        previous = await self._swap_state(name, _FORGOTTEN)
        node = self._nodes.get(name)
        if node is not None:
            # Heard again during the swap: its return is announced instead (reconnected if its
            # alert is open), so the key goes back to what it said, or (None cannot be put
            # back) to what has that return judged as it would have been.
            if previous != _FORGOTTEN:
                await self._swap_state(name, previous or node.announced or "up")
            return
        if previous == _FORGOTTEN:
            # Another replica forgot it first, and announces it; should that one have died
            # before its publish, one of the others does, an interval on (_farewell_unheard).
            # Unless its left was heard already: before the node was forgotten here, or since,
            # the swap's time included (the queued farewell's flag, read after it).
            if not self._farewells.get(name, (reason, False, False))[2]:
                self._expect_farewell(name, reason)
            return
        published = self._bus.publish(
            "lifecycle",
            NodeLifecycle(
                node=name,
                event="left",
                cluster_size=up,
                metadata={"forgotten": reason, "detected_by": self._me},
                timestamp=self._shared_clock.now(),
            ),
        )
        if not published:
            # Refused (the Redis buffer full): the key back, and the farewell kept for the next
            # tick, as a refused transition is; lost, the node's alert would stay open.
            await self._swap_state(name, previous or "down")
            raise BridgeError(f"announcing {name} left was refused: {published.reason}")

    def _expect_farewell(self, name: str, reason: Reason) -> None:
        """Wait one health interval to hear the left another replica won the swap for; as many
        wait as farewells may (the nodes tracked), the rest given up as farewells are."""
        if name in self._unheard_farewells or len(self._unheard_farewells) < self._max_nodes:
            self._unheard_farewells[name] = (reason, self._clock() + self._interval)
        else:
            self._farewells_dropped.inc()
            self._unsaid.add(name)

    async def _farewell_unheard(self, name: str, reason: Reason, up: int, now: float) -> None:
        """Announce a forgotten node's left whose winner was not heard announcing it within an
        interval (it died between its swap and its publish); one replica, by a once-only claim,
        while the others wait another interval to hear it."""
        if self._unheard_farewells.pop(name, None) is None:
            return  # heard, or the node back, while an earlier one was claimed
        # To the end: the next in line are looked at next tick.
        self._unheard_farewells[name] = (reason, now + self._interval)
        window = int(self._interval * 1000)
        if not await self._coordinator.once(f"cluster:unheard:{name}:left", window):
            return  # another replica announces it; heard (or not) within the interval
        if name not in self._unheard_farewells:
            return  # heard, or the node back, meanwhile
        message = NodeLifecycle(
            node=name,
            event="left",
            cluster_size=up,
            metadata={"forgotten": reason, "detected_by": self._me, "unheard": True},
            timestamp=self._shared_clock.now(),
        )
        if not self._bus.publish("lifecycle", message):
            return  # refused: tried again an interval on
        _logger.warning(
            "node %s left was not heard announced by the replica that claimed it: announced here",
            name,
        )
        self._unheard_farewells.pop(name, None)


def _restored(previous: str | None, state: State) -> str:
    """What a state key goes back to when the transition swapped into it is not announced.

    None cannot be put back; the value that makes a later swap announce ``state`` again can.
    """
    return previous or ("up" if state == "down" else "down")
