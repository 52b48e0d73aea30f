"""The monitor: this node's heartbeats, every node heard, the silent found down, all announced.

Each transition is announced by one replica (a swap of the node's state key). What it means
for users: docs/redis.md#cluster-membership; how it all works: the package, ``bridge.cluster``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Literal

from prometheus_client import CollectorRegistry, Counter

from bridge.bus import Bus, Coordinator, Envelope, LocalCoordinator
from bridge.cluster.cadence import INTERVAL_KEY, MISSED_INTERVALS, Cadence, Pacing
from bridge.cluster.groups import NAMED, DownGroups
from bridge.cluster.nodes import MAX_NODES, Dropped, EvictedDowns, Node, Reason, State
from bridge.cluster.reports import Change, cluster_health, memberships
from bridge.component import Context
from bridge.errors import BridgeError
from bridge.messages import ClusterHealth, Message, NodeHealth, NodeLifecycle

__all__ = ["ClusterMonitor", "cluster_monitor"]

# The package's logger: the monitor's lines (``logger`` in JSON logs) are bridge.cluster's.
_logger = logging.getLogger("bridge.cluster")

# Transitions announced per tick: a flood reaches the bus in slices, not in one burst.
PER_TICK: Final = 1_000
# How long a node's state key outlives what it must cover (see _swap_state): replicas find a
# node down, and forget it, at about the same time, one cut off from Redis later by that while.
_STATE_MARGIN_MS: Final = 3_600_000
_FORGOTTEN: Final = "forgotten"

Sleep = Callable[[float], Awaitable[None]]

# The NodeLifecycle events that announce a node's transition (as the alert stage reads them).
_SAYS: Final[dict[str, State]] = {"down": "down", "reconnected": "up", "joined": "up", "left": "up"}
# Read once: a pydantic model's class attribute goes through its metaclass's hook.
_NODE_HEALTH_TAG: Final = NodeHealth.TAG
_NODE_LIFECYCLE_TAG: Final = NodeLifecycle.TAG


class ClusterMonitor:
    """Heartbeats for this node and the membership of every node heard on the bus."""

    name = "cluster"
    required = False

    def __init__(
        self,
        bus: Bus,
        *,
        node: str,
        interval_ms: int,
        forget_ms: int = 86_400_000,
        coordinator: Coordinator | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_nodes: int = MAX_NODES,
        per_tick: int = PER_TICK,
        sleep: Sleep = asyncio.sleep,
        nap_clock: Callable[[], float] | None = None,
    ) -> None:
        """``clock`` times silence and intervals (and, with no ``coordinator``, the ClusterHealth
        periods; a shared one times them by the shared store's clock), ``sleep`` is what the
        loop waits with between ticks, ``nap_clock`` (``clock`` unless given) times those naps,
        to tell when this process did not run; ``max_nodes`` and ``per_tick`` are the bounds
        (nodes tracked, announcements of each kind per tick)."""
        self._bus = bus
        self.node = node
        self._interval_ms = interval_ms
        self._interval = interval_ms / 1000
        # Each node's limit of silence, by its own interval (which this one's floors).
        self._pacing = Pacing(self._interval)
        self._forget_after = forget_ms / 1000
        self._state_ttl_ms = forget_ms + _STATE_MARGIN_MS
        # The state keys of tracked nodes are refreshed this often (see _refresh_states).
        self._refresh_every = forget_ms / 2000
        self._refreshed = clock()
        self._coordinator: Coordinator = coordinator or LocalCoordinator(clock)
        self._data_losses = self._coordinator.data_losses  # at the last refresh
        self._clock = clock
        self._nap_clock = nap_clock or clock
        self._max_nodes = max_nodes
        self._per_tick = per_tick
        self._sleep = sleep
        # Ordered by when each node was last heard: the first is the longest silent.
        self._nodes: OrderedDict[str, Node] = OrderedDict()
        self._pending: dict[str, State] = {}  # transitions still to announce
        # Forgotten down nodes still to announce as left: why, whether their down was announced
        # (their alert is open: heard again, they are announced back instead), and whether a
        # left of theirs was heard already (another replica forgot them first).
        self._farewells: dict[str, tuple[Reason, bool, bool]] = {}
        # Transitions another replica won the swap for, not yet heard announced: by when.
        self._unheard: dict[str, tuple[State, float]] = {}
        # Farewells another replica won the swap for, not yet heard announced: why, by when.
        self._unheard_farewells: dict[str, tuple[Reason, float]] = {}
        self._dropped: dict[Reason, Dropped] = {"silent": Dropped(), "evicted": Dropped()}
        self._unsaid = Dropped()  # farewells given up since the last log line
        # Nodes evicted while down: their alerts stay open, and they are remembered (within
        # bounds) so that their return resolves them. Since the last log line: those evicted,
        # and those not (or no longer) remembered.
        self._evicted = EvictedDowns(limit=max_nodes, keep=self._forget_after)
        self._kept_open = Dropped()
        self._unremembered = Dropped()
        self._blind = False
        self._paused = False  # a nap overran: this process did not run (see _nap)
        self._last_beat = float("-inf")
        # Another node started (its joined): it has not heard this one's interval, so this one
        # says it at its next tick, NodeHealth or not (see _beat); so too when another replica
        # announced this one down: it may hold an interval this one no longer has.
        self._greet = False
        self._own_health = float("-inf")
        self._task: asyncio.Task[None] | None = None
        # Ticks under way: a stop lets each finish the announcement it has begun (see aclose).
        self._ticks: set[asyncio.Task[Any]] = set()
        self._sleeping = False  # the loop waits between ticks: nothing is under way
        self._started = False
        self._closed = False
        registry = registry if registry is not None else CollectorRegistry()
        self._forgotten = Counter(
            "exesdb_cluster_nodes_forgotten",
            "Nodes the cluster monitor stopped tracking: silent for EXESDB_NODE_FORGET_MS after "
            "going down, or evicted (longest silent first) to track a new node at the cap.",
            ["reason"],
            registry=registry,
        )
        for reason in ("silent", "evicted"):
            self._forgotten.labels(reason)
        self._farewells_dropped = Counter(
            "exesdb_cluster_farewells_dropped",
            "Forgotten down nodes never announced left: their farewells outgrew the backlog, which "
            "holds as many as the monitor tracks nodes.",
            registry=registry,
        )
        # Downs past the per-interval alert budget, alerted as one.
        self._downs = DownGroups(
            bus.publish,
            node=node,
            interval=self._interval,
            storm_intervals=MISSED_INTERVALS,
            registry=registry,
        )
        # A batch subscriber: one handler call and one clock reading a batch, not a message
        # (most of what it hears is every node's NodeHealth); a message that fails is counted
        # and logged as a per-message handler's would be, and the rest of the batch goes on.
        # It does not push back: the monitor is not required, so a full queue drops (counted
        # in exesdb_bus_dropped_total{subscriber="cluster"}) rather than make ingest answer 503.
        self._subscription = bus.subscribe(
            self.name,
            self._heard_batch,
            instances=("ex_esdb_lifecycle", "ex_esdb_health"),
            batch=True,
            pushes_back=self.required,
        )

    # -- what the monitor knows --

    def health(self) -> ClusterHealth:
        """The cluster's health as this replica sees it."""
        return cluster_health(self._nodes)

    def down_nodes(self) -> dict[str, float]:
        """The nodes this replica holds down, each with the seconds since it was found so: kept
        until heard again, left or forgotten (``EXESDB_NODE_FORGET_MS``), whatever became of
        their series (the status page shows them down until then)."""
        now = self._clock()
        return {
            name: now - node.down_since
            for name, node in self._nodes.items()
            if node.state == "down"
        }

    # -- hearing --

    def _heard_batch(self, envelopes: Sequence[Envelope]) -> None:
        now = self._clock()
        nodes = self._nodes
        me = self.node
        beat = self._timer()
        for envelope in envelopes:
            try:
                publisher = envelope.node
                tag = envelope.tag
                node = nodes.get(publisher)
                # Nearly everything heard is a NodeHealth from a tracked node that is up: it
                # takes only the steps below, inline (the payload's fields read from the
                # envelope's ``fields``: no model built); anything else is tracked by _arrived
                # first.
                if tag != _NODE_HEALTH_TAG or node is None or node.state == "down":
                    node = self._arrived(envelope, node, now)
                    if node is None:
                        continue
                nodes.move_to_end(publisher)
                node.heard = now
                if tag == _NODE_HEALTH_TAG:
                    values = envelope.fields  # a NodeHealth's fields
                    reported = nodes.get(values.node)
                    if reported is not None:
                        reported.health = values.status
                        # About itself: a sign of life, which times its pace unless declared.
                        if reported is node and not (cadence := node.cadence).declared:
                            beat(cadence, now)
                        if publisher == me:
                            self._own_health = now
            except Exception:
                self._subscription.failed_on(envelope)

    def _arrived(self, envelope: Envelope, node: Node | None, now: float) -> Node | None:
        """What hearing ``envelope`` takes besides the publisher's node heard (and a NodeHealth's
        reported health): a node that leaves let go (None), one heard for the first time
        tracked, one that was down back up, a NodeLifecycle's announcement noted. ``node`` is
        the publisher's, if tracked."""
        publisher = envelope.node
        payload = envelope.payload
        # The tag first: isinstance of a pydantic model it is not (most of what comes here is a
        # NodeHealth) goes through ABCMeta's check, several times the cost of a string compare.
        lifecycle = (
            payload
            if envelope.tag == _NODE_LIFECYCLE_TAG and isinstance(payload, NodeLifecycle)
            else None
        )
        if (
            lifecycle is not None
            and lifecycle.node == publisher
            and lifecycle.event in ("leaving", "left")
        ):
            self._leave(publisher)
            self._said(publisher, lifecycle.event)
            return None
        if node is None:
            if len(self._nodes) >= self._max_nodes:
                self._evict()
            node = self._nodes[publisher] = Node(now, self._pacing.new())
            farewell = self._farewells.pop(publisher, None)
            unheard = self._unheard_farewells.pop(publisher, None)
            if (
                self._evicted.pop(publisher)
                or (farewell is not None and farewell[1])
                or unheard is not None
            ):
                # Evicted while down, or forgotten with its left not yet out, its alert open:
                # its return is announced as any down node's (reconnected), even where its
                # state key is gone.
                node.announced = "down"
                self._downs.back(publisher)
            if publisher != self.node:
                self._pending[publisher] = "up"
        elif node.state == "down":
            node.state = "up"
            self._pacing.back(node.cadence, now)
            self._pending[publisher] = "up"
            self._downs.back(publisher)
        if lifecycle is not None:
            if lifecycle.node == publisher and lifecycle.event == "joined":
                # Its own word: at its start, or in a heartbeat, with its interval.
                metadata = lifecycle.metadata
                start = metadata.get("heartbeat") is not True
                self._pacing.joined(node.cadence, metadata, start=start)
                self._timer()(node.cadence, now)
                if start and publisher != self.node:
                    self._greet = True  # it heard nobody's interval yet: say this one's
            elif lifecycle.event == "down" and lifecycle.node == self.node:
                # Found down by another replica, which may time it by an interval it no longer
                # has (its start missed there): say this one's, once however many say so.
                self._greet = True
            self._said(lifecycle.node, lifecycle.event)
        return node

    def _timer(self) -> Callable[[Cadence, float], None]:
        """What a node's sign of life does to its pace: timed, unless this replica was found cut
        off and has not ticked since: the Redis bus hands on what came meanwhile as it
        reconnects, before that tick, and a gap across the cut is no sign of any node's pace."""
        return _untimed if self._blind else self._pacing.beat

    def _said(self, name: str, event: str) -> None:
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

    def _evict(self) -> None:
        """Make room for a new node: the longest-silent one goes (never this bridge itself)."""
        oldest = next(iter(self._nodes))
        if oldest == self.node:
            self._nodes.move_to_end(oldest)
            oldest = next(iter(self._nodes))
            if oldest == self.node:
                return
        self._drop(oldest, "evicted")

    def _drop(self, name: str, reason: Reason) -> None:
        node = self._nodes.pop(name)
        self._pending.pop(name, None)
        self._unheard.pop(name, None)
        self._forgotten.labels(reason).inc()
        if reason == "evicted" and node.state == "down":
            self._keep_open(name, node)
            return
        self._downs.back(name)
        self._dropped[reason].add(name)
        if node.announced != "down" and node.state != "down":
            return
        # A down node heard said up (its left, by a replica that forgot it first): no wait for
        # that left once this replica finds the key says forgotten (see _farewell).
        self._bid_farewell(
            name,
            reason,
            announced="down" in (node.announced, node.said),
            heard=node.said == "up" and node.state == "down",
        )

    def _bid_farewell(
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

    def _keep_open(self, name: str, node: Node) -> None:
        """A node evicted while down: memory pressure resolves no outage, so no farewell, and
        its alert (its own or its group's) stays open; remembered, if room is left, so that its
        return resolves it, or its forgetting after ``EXESDB_NODE_FORGET_MS`` as any down node's.
        Past that bound it is let go: its alert stays open, and its return is announced
        (resolving it) only if its state key still says ``down``."""
        self._kept_open.add(name)
        if node.announced != "down" and node.said != "down":
            return  # its down is not announced yet: no alert of it to resolve on its return
        if not self._evicted.add(name, self._clock()):
            self._downs.let_go(name)
            self._unremembered.add(name)

    def _leave(self, name: str) -> None:
        self._evicted.pop(name)
        self._downs.back(name)
        if self._nodes.pop(name, None) is not None:
            self._pending.pop(name, None)
            self._unheard.pop(name, None)
            if name == self.node and self._closed:  # its own stop (Ctrl-C), not an incident
                _logger.info("stopping: this node (%s) leaves the cluster", name)
            elif name == self.node:  # a process sharing its EXESDB_NODE stopped
                _logger.warning(
                    "another process running as this node (%s) left the cluster while this one"
                    " runs: two processes share EXESDB_NODE; give each its own",
                    name,
                )
            else:
                _logger.info("node %s left the cluster", name)

    # -- the periodic work --

    async def tick(self) -> None:
        """Heartbeat when due, find silent nodes, announce transitions, refresh ClusterHealth."""
        task = asyncio.current_task()
        if task is not None:
            self._ticks.add(task)
        try:
            await self._tick()
        finally:
            if task is not None:
                self._ticks.discard(task)

    async def _tick(self) -> None:
        now = self._clock()
        if self._greet or now - self._last_beat >= self._interval:
            self._beat(now)
        self._log_dropped()
        if self._bus.readiness() is not None:
            # Cut off from the bus: silence says nothing about the others.
            self._blind = True
            return
        if self._blind or self._paused:
            # Cut off, or not running (paused, its event loop busy): what the others said
            # meanwhile has not been heard yet, and silence says nothing about them.
            self._blind = self._paused = False
            for node in self._nodes.values():
                node.heard = max(node.heard, now)
                node.cadence.lapse()
            # What was announced while it could not hear is still on its way: another interval.
            for name, (state, due) in self._unheard.items():
                self._unheard[name] = (state, max(due, now + self._interval))
            for name, (reason, due) in self._unheard_farewells.items():
                self._unheard_farewells[name] = (reason, max(due, now + self._interval))
        self._find_silent(now)
        self._log_dropped()
        changes: dict[Change, list[str]] = {"node_added": [], "node_removed": []}
        try:
            await self._announce_pending(changes)
        except Exception as exc:  # e.g. Redis unreachable: retried on the next tick
            _logger.debug("cluster announcement deferred: %s", exc)
        finally:
            # What was announced before a failure (or a stop) still gets its membership and
            # health.
            self._publish_changes(changes)
            self._downs.publish(now)
            self._downs.resolve()
        await self._refresh_states(now)
        try:
            # One replica a period, whatever the others' intervals: the shortest one sets the
            # pace, and one of a longer interval takes over should it stop.
            if self._nodes and await self._coordinator.once_per_period(
                "cluster:health", self._interval_ms
            ):
                self._publish("cluster:health", self.health())
        except Exception as exc:
            _logger.debug("cluster health deferred: %s", exc)

    def _find_silent(self, now: float) -> None:
        for name in self._evicted.expire(now):
            # Evicted down EXESDB_NODE_FORGET_MS ago: forgotten as a tracked down node is.
            self._downs.back(name)
            self._dropped["silent"].add(name)
            self._bid_farewell(name, "silent", announced=True)  # remembered only if so
        # No node's limit is shorter: three of this replica's own intervals.
        floor = MISSED_INTERVALS * self._interval
        forget: list[str] = []
        down = 0
        for name, node in self._nodes.items():
            silent = now - node.heard
            if silent <= floor:
                break  # ordered by last heard: every later node was heard more recently
            if name == self.node:
                continue
            if node.state == "up":
                if silent <= node.cadence.limit:
                    continue  # a slower node, within three of its own intervals
                node.state = "down"
                node.down_since = now
                self._pending[name] = "down"
                down += 1
                if down <= NAMED:
                    _logger.warning(
                        "node %s silent for %.1fs (its limit %.1fs): down",
                        name,
                        silent,
                        node.cadence.limit,
                    )
            elif now - node.down_since >= self._forget_after:
                forget.append(name)
        if down > NAMED:  # a flood: one line for the rest
            _logger.warning("%d more nodes silent past their limits: down", down - NAMED)
        for name in forget:
            self._drop(name, "silent")

    def _log_dropped(self) -> None:
        for reason, dropped in self._dropped.items():
            if not dropped.count:
                continue
            shown = _shown(dropped)
            if reason == "silent":
                _logger.warning(
                    "forgot %d node(s) down and silent for EXESDB_NODE_FORGET_MS (%.0fs): %s",
                    dropped.count,
                    self._forget_after,
                    shown,
                )
            else:
                _logger.warning(
                    "evicted %d longest-silent node(s) to track new ones (at most %d nodes): %s",
                    dropped.count,
                    self._max_nodes,
                    shown,
                )
            self._dropped[reason] = Dropped()
        if self._kept_open.count:
            _logger.warning(
                "evicted %d down node(s) at the cap; their alerts stay open until they are heard "
                "again: %s",
                self._kept_open.count,
                _shown(self._kept_open),
            )
            self._kept_open = Dropped()
        if self._unremembered.count:
            _logger.warning(
                "cannot remember %d more node(s) evicted down (at most %d): their alerts stay "
                "open, even once they are heard again unless their state key still says down: "
                "%s",
                self._unremembered.count,
                self._max_nodes,
                _shown(self._unremembered),
            )
            self._unremembered = Dropped()
        if self._unsaid.count:
            unsaid = self._unsaid
            shown = _shown(unsaid)
            _logger.warning(
                "gave up announcing %d forgotten down node(s) as left, %d already waiting: %s",
                unsaid.count,
                len(self._farewells),
                shown,
            )
            self._unsaid = Dropped()

    async def _announce_pending(self, changes: dict[Change, list[str]]) -> None:
        """Announce pending transitions, then farewells; each swap of a state key and its
        publish are one step, which a stop (``_closed``) lets finish and follows with no other:
        cancelled between the two, the key would say announced with nothing published for any
        replica to announce again."""
        up = self._up_count()
        for name, state in list(self._pending.items())[: self._per_tick]:
            if self._closed:
                return
            event = await self._transition(name, state, up)
            if event is not None:
                changes[event].append(name)
            # Heard (or silent) again during the swap: that newer transition stays pending.
            if self._pending.get(name) == state:
                del self._pending[name]
        for name, farewell in list(self._farewells.items())[: self._per_tick]:
            if self._closed:
                return
            await self._farewell(name, farewell[0], up, heard=farewell[2])
            if self._farewells.get(name) == farewell:
                del self._farewells[name]
        now = self._clock()
        for name, (state, due) in list(self._unheard.items())[: self._per_tick]:
            if self._closed:
                return
            if due <= now:
                event = await self._announce_unheard(name, state, up, now)
                if event is not None:
                    changes[event].append(name)
        for name, (reason, due) in list(self._unheard_farewells.items())[: self._per_tick]:
            if self._closed:
                return
            if due <= now:
                await self._farewell_unheard(name, reason, up, now)

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
                "detected_by": self.node,
                "missed_intervals": MISSED_INTERVALS,
            }
            group = self._downs.grouped(name, node.down_since)
            if group is not None:
                metadata["grouped"] = group
        elif previous == "down" or (previous is None and locally_down):
            event, metadata = "reconnected", {"detected_by": self.node}
        else:
            if locally_down:
                self._expect(name, node, state)  # another replica announces its return
            node.announced = state
            # First heard anywhere (or again after being forgotten): a new member.
            return "node_added" if previous in (None, _FORGOTTEN) else None
        published = self._bus.publish(
            "lifecycle",
            NodeLifecycle(node=name, event=event, cluster_size=up, metadata=metadata),
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
        refreshed while the node is tracked (``_refresh_states``). ``forgotten`` only has to
        keep replicas forgetting the node at about the same time from each announcing it left:
        it lasts the margin.
        """
        ttl_ms = _STATE_MARGIN_MS if value == _FORGOTTEN else self._state_ttl_ms
        return await self._coordinator.swap(f"cluster:node:{name}", value, ttl_ms)

    async def _refresh_states(self, now: float) -> None:
        """Every half ``EXESDB_NODE_FORGET_MS``, and at once when the coordinator found that its
        store lost its data (Redis restarted without it), give the state keys of the nodes this
        replica tracks their whole lifetime again, in one batch, one that is gone set again to
        the transition this replica announced (or found announced) last: a node up for days
        keeps its key, so a replica started later finds it known rather than announcing it
        ``node_added``. Nodes forgotten or evicted are no longer tracked: their keys still
        expire."""
        data_losses = self._coordinator.data_losses
        if now - self._refreshed < self._refresh_every and data_losses == self._data_losses:
            return
        try:
            # A node never announced here (this one, or one whose swap is to come) keeps the key
            # the others set, if any, and sets none.
            keys = {f"cluster:node:{name}": node.announced for name, node in self._nodes.items()}
            await self._coordinator.refresh(keys, self._state_ttl_ms)
        except Exception as exc:  # e.g. Redis unreachable: retried on the next tick
            _logger.debug("cluster state keys not refreshed: %s", exc)
        else:
            self._refreshed = now
            self._data_losses = data_losses

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
        metadata: dict[str, object] = {"detected_by": self.node, "unheard": True}
        if state == "down":
            event: Literal["down", "reconnected"] = "down"
            metadata["missed_intervals"] = MISSED_INTERVALS
            group = self._downs.grouped(name, node.down_since)
            if group is not None:
                metadata["grouped"] = group
        else:
            event = "reconnected"
        message = NodeLifecycle(node=name, event=event, cluster_size=up, metadata=metadata)
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

    async def _farewell(self, name: str, reason: Reason, up: int, *, heard: bool) -> None:
        """Announce a forgotten node as left, once across replicas: its alert resolves.
        ``heard``: its left was heard already (from the replica that forgot it first)."""
        previous = await self._swap_state(name, _FORGOTTEN)
        if previous == _FORGOTTEN:
            # Another replica forgot it first, and announces it; should that one have died
            # before its publish, one of the others does, an interval on (_farewell_unheard).
            if not heard:
                self._expect_farewell(name, reason)
            return
        published = self._bus.publish(
            "lifecycle",
            NodeLifecycle(
                node=name,
                event="left",
                cluster_size=up,
                metadata={"forgotten": reason, "detected_by": self.node},
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
            metadata={"forgotten": reason, "detected_by": self.node, "unheard": True},
        )
        if not self._bus.publish("lifecycle", message):
            return  # refused: tried again an interval on
        _logger.warning(
            "node %s left was not heard announced by the replica that claimed it: announced here",
            name,
        )
        self._unheard_farewells.pop(name, None)

    def _publish_changes(self, changes: dict[Change, list[str]]) -> None:
        """ClusterMembership for the changed nodes only, then one ClusterHealth."""
        if not (changes["node_added"] or changes["node_removed"]):
            return
        health = self.health()
        active = self._up_count()
        for membership in memberships(changes, health=health, active=active, node=self.node):
            self._publish("lifecycle", membership)
        self._publish("cluster:health", health)

    def _beat(self, now: float) -> None:
        first = self._last_beat == float("-inf")
        greet, self._greet = self._greet, False
        self._last_beat = now
        if not (first or greet) and now - self._own_health < self._interval:
            return  # the health collector's NodeHealth already said this node is alive
        self._publish(
            "lifecycle",
            NodeLifecycle(
                node=self.node,
                event="joined",
                cluster_size=self._up_count(),
                # Its interval, for the others to time its silence by (see bridge.cluster.cadence).
                metadata={INTERVAL_KEY: self._interval_ms}
                if first
                else {"heartbeat": True, INTERVAL_KEY: self._interval_ms},
            ),
        )

    def _up_count(self) -> int:
        return sum(1 for node in self._nodes.values() if node.state == "up")

    def _publish(self, topic: str, message: Message) -> None:
        # Straight on the bus, not through the integration switch: turning broadcasts off must
        # not make this node look dead to its peers.
        self._bus.publish(topic, message)

    # -- Component --

    async def start(self) -> None:
        """Join (this node is tracked and heard at once), tick once, then tick on a loop."""
        self._started = True
        self._nodes.setdefault(self.node, Node(self._clock(), self._pacing.new()))
        await self.tick()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="cluster-monitor")

    async def _loop(self) -> None:
        period = max(0.05, min(self._interval / 4, 1.0))
        while await self._nap(period):
            try:
                await self.tick()
            except Exception:
                _logger.exception("cluster monitor tick failed")

    async def _nap(self, period: float) -> bool:
        """Wait between two ticks; False once the monitor is closed."""
        if self._closed:
            return False  # closed during a tick: the stop waits for this loop, so no nap first
        self._sleeping = True
        started = self._nap_clock()
        try:
            await self._sleep(period)
        finally:
            self._sleeping = False
        # A nap half an interval longer than asked: this process was stopped (SIGSTOP, a VM
        # paused) or its event loop busy, and what came meanwhile waits behind this tick.
        if self._nap_clock() - started > period + self._interval / 2:
            self._paused = True
        return not self._closed

    def readiness(self) -> str | None:
        """Always None: what the monitor hears of other nodes never makes this bridge unready."""
        return None

    async def aclose(self) -> None:
        """Stop ticking (an announcement under way finishes), then publish ``left``; idempotent."""
        if self._closed:
            return
        # Ticks are not cancelled (see _announce_pending): each ends after the announcement
        # under way, and the loop after its tick. Shielded: a caller giving up on this wait
        # (the bridge's stop deadline) must not cancel them either.
        self._closed = True
        if self._task is not None and self._sleeping:
            self._task.cancel()  # between two ticks: nothing is under way
        me = asyncio.current_task()
        running = [t for t in (self._task, *self._ticks) if t not in (None, me) and not t.done()]
        self._task = None
        if running:
            await asyncio.shield(asyncio.gather(*running, return_exceptions=True))
        if not self._started:
            return  # never joined (a start-up that failed before it): nothing to leave
        self._downs.publish(float("inf"))  # grouped downs still waiting for their alert
        self._downs.resolve()
        self._publish(
            "lifecycle",
            NodeLifecycle(node=self.node, event="left", cluster_size=max(0, self._up_count() - 1)),
        )


def _untimed(cadence: Cadence, now: float) -> None:
    """A sign of life heard across a cut: neither its gap nor the next one is timed."""
    cadence.lapse()


def _shown(dropped: Dropped) -> str:
    """The names of a log line: the first few, and an ellipsis when there are more."""
    return ", ".join(dropped.named) + (" …" if dropped.count > len(dropped.named) else "")


def _restored(previous: str | None, state: State) -> str:
    """What a state key goes back to when the transition swapped into it is not announced.

    None cannot be put back; the value that makes a later swap announce ``state`` again can.
    """
    return previous or ("up" if state == "down" else "down")


def cluster_monitor(context: Context) -> ClusterMonitor:
    """The factory ``default_components()`` lists: on a shared transport it coordinates
    through the transport's keys."""
    settings = context.settings
    return ClusterMonitor(
        context.bus,
        node=settings.node,
        interval_ms=settings.health_broadcast_interval,
        forget_ms=settings.node_forget_ms,
        coordinator=context.capabilities.coordinator,
        registry=context.registry,
    )
