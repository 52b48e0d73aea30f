"""The monitor: this node's heartbeats, every node heard, the silent found down, all announced.

Each transition is announced by one replica (a swap of the node's state key: the monitor's
``Announcer``, ``bridge.cluster.announcer``). What it means for users:
docs/redis.md#cluster-membership; how it all works: the package, ``bridge.cluster``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter

from bridge.bus import Bus, Coordinator, Envelope, LocalCoordinator
from bridge.cluster.announcer import Announcer
from bridge.cluster.cadence import INTERVAL_KEY, MISSED_INTERVALS, Cadence, Pacing
from bridge.cluster.groups import NAMED, DownGroups
from bridge.cluster.nodes import MAX_NODES, Dropped, EvictedDowns, Node, Reason
from bridge.cluster.reports import Change, cluster_health, memberships
from bridge.cluster.shared_clock import SharedClock
from bridge.component import Context
from bridge.errors import TransportError
from bridge.messages import (
    ClusterHealth,
    Message,
    NodeHealth,
    NodeLifecycle,
    format_timestamp,
)

__all__ = ["ClusterMonitor", "cluster_monitor"]

# The package's logger: the monitor's lines (``logger`` in JSON logs) are bridge.cluster's.
_logger = logging.getLogger("bridge.cluster")

# Transitions announced per tick: a flood reaches the bus in slices, not in one burst.
PER_TICK: Final = 1_000
Sleep = Callable[[float], Awaitable[None]]

# Read once: a pydantic model's class attribute goes through its metaclass's hook.
_NODE_HEALTH_TAG: Final = NodeHealth.TAG
_NODE_LIFECYCLE_TAG: Final = NodeLifecycle.TAG


# Lefts under this node's name kept to be judged once its start is dated: one is the rule.
_LEFTS_KEPT: Final = 16
_ANNOUNCING: Final = "cluster announcement"
_REFRESHING: Final = "refreshing the cluster state keys"
_HEALTH: Final = "the periodic ClusterHealth"


def _farewell(envelope: Envelope) -> bool:
    """Whether ``envelope`` is its publisher's own leaving or left."""
    payload = envelope.payload if envelope.tag == _NODE_LIFECYCLE_TAG else None
    return (
        isinstance(payload, NodeLifecycle)
        and payload.node == envelope.node
        and payload.event in ("leaving", "left")
    )


class _Faults:
    """The faults of the bridge's own that a tick's steps failed with, as the log told them:
    each logged with its traceback when it first fails the step, not again at every tick (a
    tick a second) while the same fault repeats, and the step working again said once."""

    __slots__ = ("_told",)

    def __init__(self) -> None:
        self._told: dict[str, str] = {}  # step: the fault it last failed with

    def failed(self, step: str) -> None:
        """``step`` failed with the exception being handled."""
        exc = sys.exc_info()[1]
        fault = f"{type(exc).__name__}: {exc}"
        if self._told.get(step) != fault:
            self._told[step] = fault
            _logger.exception(
                "%s failed (a fault of the bridge's own): tried again each tick", step
            )

    def worked(self, step: str) -> None:
        """``step`` went through."""
        if self._told.pop(step, None) is not None:
            _logger.info("%s works again", step)


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
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock`` times silence and intervals (and, with no ``coordinator``, the ClusterHealth
        periods; a shared one times them by the shared store's clock), ``sleep`` is what the
        loop waits with between ticks, ``nap_clock`` (``clock`` unless given) times those naps,
        to tell when this process did not run; ``wall_clock`` (seconds since the epoch), set to
        the coordinator's clock (``SharedClock``), dates what it publishes and its start, to
        tell an earlier process's ``left`` under this node's name;
        ``max_nodes`` and ``per_tick`` are the bounds (nodes tracked, announcements of each
        kind per tick)."""
        self._bus = bus
        self.node = node
        # To the millisecond, as messages are dated: a left made the millisecond this one
        # began is this run's, not dated before it.
        self._began = math.floor(wall_clock() * 1000) / 1000
        self._began_at = clock()  # the start by ``clock``: dated by the shared clock from it
        self._dated = False  # whether _began is by the shared clock (see _date_start)
        # Lefts under this node's name heard before the start could be dated by the shared
        # clock (Redis out of reach then): judged once it is.
        self._lefts: list[NodeLifecycle] = []
        self._interval_ms = interval_ms
        self._interval = interval_ms / 1000
        # Each node's limit of silence, by its own interval (which this one's floors).
        self._pacing = Pacing(self._interval)
        self._forget_after = forget_ms / 1000
        self._coordinator: Coordinator = coordinator or LocalCoordinator(
            clock, wall_clock=wall_clock
        )
        self._shared_clock = SharedClock(
            self._coordinator, every=self._interval, clock=clock, wall_clock=wall_clock
        )
        self._clock = clock
        self._nap_clock = nap_clock or clock
        self._max_nodes = max_nodes
        self._sleep = sleep
        # Ordered by when each node was last heard: the first is the longest silent.
        self._nodes: OrderedDict[str, Node] = OrderedDict()
        self._dropped: dict[Reason, Dropped] = {"silent": Dropped(), "evicted": Dropped()}
        # Nodes evicted while down: their alerts stay open, and they are remembered (within
        # bounds) so that their return resolves them. Since the last log line: those evicted,
        # and those not (or no longer) remembered.
        self._evicted = EvictedDowns(limit=max_nodes, keep=self._forget_after)
        self._kept_open = Dropped()
        self._unremembered = Dropped()
        self._blind = False
        self._paused = False  # a nap overran: this process did not run (see _nap)
        self._left = False  # its left published (see _leave_cluster)
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
        self._faults = _Faults()
        registry = registry if registry is not None else CollectorRegistry()
        self._forgotten = Counter(
            "exesdb_cluster_nodes_forgotten",
            "Nodes the cluster monitor stopped tracking, by reason: silent (down and silent for "
            "EXESDB_NODE_FORGET_MS) or evicted (the longest silent, at the cap on tracked nodes).",
            ["reason"],
            registry=registry,
        )
        for reason in ("silent", "evicted"):
            self._forgotten.labels(reason)
        # Downs past the per-interval alert budget, alerted as one.
        self._downs = DownGroups(
            bus.publish,
            node=node,
            interval=self._interval,
            storm_intervals=MISSED_INTERVALS,
            registry=registry,
        )
        # What the tracking finds, announced once across the replicas.
        self._announcer = Announcer(
            bus,
            self._nodes,
            node=node,
            interval=self._interval,
            forget_ms=forget_ms,
            coordinator=self._coordinator,
            downs=self._downs,
            clock=clock,
            shared_clock=self._shared_clock,
            max_nodes=max_nodes,
            per_tick=per_tick,
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
        late_after = self._bus.late_after
        late_seconds = late_after.total_seconds()
        shared_clock = self._shared_clock
        for envelope in envelopes:
            try:
                publisher = envelope.node
                tag = envelope.tag
                # Bus.late_after's test, written out (hot: nearly every message is a NodeHealth);
                # compared first, as most are made when sent: no timedelta is made for them.
                if (
                    (made := envelope.fields.timestamp) < (sent := envelope.ts)
                    and sent - made > late_after
                    # Sent: one left out is when the bridge decoded it, whose clock may be
                    # behind the sender's by the whole window.
                    and "timestamp" in envelope.payload.model_fields_set
                    # And made that long ago by the shared clock: a bridge dates its
                    # NodeLifecycle by Redis's clock, its ts by its own, ahead by up to the
                    # window on a replica whose clock is.
                    and shared_clock.unix_time() - envelope.fields.timestamp.timestamp()
                    > late_seconds
                    and not _farewell(envelope)
                ):
                    # Made long before it was sent (held through a Redis outage): no sign of
                    # the node's life or health now. A farewell still lets it go.
                    continue
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

    def _own_left(self, lifecycle: NodeLifecycle) -> None:
        """A leaving or left under this node's name: another process sharing the name now, or
        one made before this process began (by the shared clock, as messages are dated), an
        earlier run's stop come late (its frames written to Redis from the spool by this run,
        Redis having been out of reach as that one stopped), ignored. The payload's time, not
        the envelope's: a frame that waited long in the spool is signed again with a fresh ts
        (Bus._resign)."""
        if lifecycle.timestamp.timestamp() < self._began:
            _logger.info(
                "a left of this node (%s) made at %s, before this process started (an"
                " earlier run's, come late): ignored",
                self.node,
                format_timestamp(lifecycle.timestamp),
            )
            return
        self._leave(self.node)
        self._announcer.heard(self.node, lifecycle.event)

    def _date_start(self) -> None:
        """Date this process's start by the shared clock (to the millisecond, as messages are
        dated: a left made the millisecond this one began is this run's, not dated before
        it), as long before now by it as by ``clock``; the lefts heard meanwhile judged by
        it. Its own clock's date stands while the shared one could not be read (Redis out of
        reach at start): by a host clock behind Redis's, an earlier run's stop dated by Redis
        would be taken for another process's, and this node for one that left."""
        if not self._shared_clock.measured:
            return
        since = max(0.0, self._clock() - self._began_at)
        self._began = math.floor((self._shared_clock.unix_time() - since) * 1000) / 1000
        self._dated = True
        lefts, self._lefts = self._lefts, []
        for lifecycle in lefts:
            self._own_left(lifecycle)

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
            if publisher != self.node:
                self._leave(publisher)
                self._announcer.heard(publisher, lifecycle.event)
            elif self._dated:
                self._own_left(lifecycle)
            elif len(self._lefts) < _LEFTS_KEPT:
                self._lefts.append(lifecycle)  # judged once the start is dated (see _tick)
            return None
        if node is None:
            if len(self._nodes) >= self._max_nodes:
                self._evict()
            node = self._nodes[publisher] = Node(now, self._pacing.new())
            left_open = self._announcer.back(publisher)
            if self._evicted.pop(publisher) or left_open:
                # Evicted while down, or forgotten with its left not yet out, its alert open:
                # its return is announced as any down node's (reconnected), even where its
                # state key is gone.
                node.announced = "down"
                self._downs.back(publisher)
            if publisher != self.node:
                self._announcer.due(publisher, "up")
        elif node.state == "down":
            node.state = "up"
            self._pacing.back(node.cadence, now)
            self._announcer.due(publisher, "up")
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
            self._announcer.heard(lifecycle.node, lifecycle.event)
        return node

    def _timer(self) -> Callable[[Cadence, float], None]:
        """What a node's sign of life does to its pace: timed, unless this replica was found cut
        off and has not ticked since: the Redis bus hands on what came meanwhile as it
        reconnects, before that tick, and a gap across the cut is no sign of any node's pace."""
        return _untimed if self._blind else self._pacing.beat

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
        self._announcer.let_go(name)
        self._forgotten.labels(reason).inc()
        if reason == "evicted" and node.state == "down":
            self._keep_open(name, node)
            return
        self._downs.back(name)
        self._dropped[reason].add(name)
        if node.announced != "down" and node.state != "down":
            return
        # A down node heard said up (its left, by a replica that forgot it first): no wait for
        # that left once this replica finds the key says forgotten (see Announcer._farewell).
        self._announcer.bid_farewell(
            name,
            reason,
            announced="down" in (node.announced, node.said),
            heard=node.said == "up" and node.state == "down",
        )

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
            self._announcer.let_go(name)
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
        if self._bus.hearing() is None:
            await self._shared_clock.look()  # once an interval; not while Redis is out of reach
            if not self._dated:
                self._date_start()
        if self._greet or now - self._last_beat >= self._interval:
            self._beat(now)
        self._log_dropped()
        if self._bus.hearing() is not None:
            # Cut off from the others' messages: silence says nothing about them. Not readiness:
            # a refusal of this monitor's own claims would stop the ticks that try them again.
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
            self._announcer.wait_longer(now)
        self._find_silent(now)
        self._log_dropped()
        changes: dict[Change, list[str]] = {"node_added": [], "node_removed": []}
        # Each step below is tried again at the next tick. Redis unreachable or refusing
        # (TransportError) is said by the bus, so only noted here; anything else is a fault of
        # the bridge's own, logged with its traceback (``_Faults``).
        try:
            await self._announcer.announce(changes, self._up_count())
        except TransportError as exc:
            _logger.debug("cluster announcement deferred: %s", exc)
        except Exception:
            self._faults.failed(_ANNOUNCING)
        else:
            self._faults.worked(_ANNOUNCING)
        finally:
            # What was announced before a failure (or a stop) still gets its membership and
            # health.
            self._publish_changes(changes)
            self._downs.publish(now)
            self._downs.resolve()
        try:
            await self._announcer.refresh_states(now)
        except Exception:
            self._faults.failed(_REFRESHING)
        else:
            self._faults.worked(_REFRESHING)
        try:
            # One replica a period, whatever the others' intervals: the shortest one sets the
            # pace, and one of a longer interval takes over should it stop.
            if self._nodes and await self._coordinator.once_per_period(
                "cluster:health", self._interval_ms
            ):
                self._publish("cluster:health", self.health())
        except TransportError as exc:
            _logger.debug("cluster health deferred: %s", exc)
        except Exception:
            self._faults.failed(_HEALTH)
        else:
            self._faults.worked(_HEALTH)

    def _find_silent(self, now: float) -> None:
        for name in self._evicted.expire(now):
            # Evicted down EXESDB_NODE_FORGET_MS ago: forgotten as a tracked down node is.
            self._downs.back(name)
            self._dropped["silent"].add(name)
            self._announcer.bid_farewell(name, "silent", announced=True)  # remembered only if so
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
                self._announcer.due(name, "down")
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
            shown = dropped.shown()
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
                self._kept_open.shown(),
            )
            self._kept_open = Dropped()
        if self._unremembered.count:
            _logger.warning(
                "cannot remember %d more node(s) evicted down (at most %d): their alerts stay "
                "open, even once they are heard again unless their state key still says down: "
                "%s",
                self._unremembered.count,
                self._max_nodes,
                self._unremembered.shown(),
            )
            self._unremembered = Dropped()
        self._announcer.log_given_up()

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
                timestamp=self._shared_clock.now(),
            ),
        )

    def _up_count(self) -> int:
        return sum(1 for node in self._nodes.values() if node.state == "up")

    def _publish(self, topic: str, message: Message) -> None:
        if self._left:
            return  # a heartbeat or health after its left would say this node is back
        # Straight on the bus, not through the integration switch: turning broadcasts off must
        # not make this node look dead to its peers.
        self._bus.publish(topic, message)

    # -- Component --

    async def start(self) -> None:
        """Join (this node is tracked and heard at once), tick once, then tick on a loop."""
        self._started = True
        # The start dated as this node's messages are, by the coordinator's clock: an earlier
        # run's left is told by it (see _own_left); at a later tick, when it cannot be read now.
        if self._bus.hearing() is None:
            await self._shared_clock.look()
        self._began_at = self._clock()
        self._began = math.floor(self._shared_clock.unix_time() * 1000) / 1000
        self._date_start()
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
        # Ticks are not cancelled (see Announcer.announce): each ends after the announcement
        # under way, and the loop after its tick. Shielded: a caller giving up on this wait
        # (the bridge's stop deadline) must not cancel them either.
        self._closed = True
        self._announcer.stop()
        if self._task is not None and self._sleeping:
            self._task.cancel()  # between two ticks: nothing is under way
        me = asyncio.current_task()
        running = [t for t in (self._task, *self._ticks) if t not in (None, me) and not t.done()]
        self._task = None
        try:
            if running:
                await asyncio.shield(asyncio.gather(*running, return_exceptions=True))
        finally:
            # Also when the stop's deadline cut that wait short (a tick held by an unreachable
            # Redis): the others hear this node leave, not find it silent and call it down.
            self._leave_cluster()

    def _leave_cluster(self) -> None:
        """Publish the grouped downs still waiting for their alert, then this node's ``left``;
        nothing of this node's own after it (a tick outliving the stop's deadline)."""
        if not self._started or self._left:
            return  # never joined (a start-up that failed before it), or left already
        self._downs.publish(float("inf"))
        self._downs.resolve()
        self._publish(
            "lifecycle",
            NodeLifecycle(
                node=self.node,
                event="left",
                cluster_size=max(0, self._up_count() - 1),
                timestamp=self._shared_clock.now(),
            ),
        )
        self._left = True


def _untimed(cadence: Cadence, now: float) -> None:
    """A sign of life heard across a cut: neither its gap nor the next one is timed."""
    cadence.lapse()


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
