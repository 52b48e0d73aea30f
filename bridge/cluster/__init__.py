"""The cluster monitor: membership, heartbeats, silent nodes, quorum, in bounded memory.

What it means for users: docs/redis.md#cluster-membership.

Every bridge is a node: at start it publishes NodeLifecycle ``joined`` under ``EXESDB_NODE``, and
then a heartbeat on every health interval, unless the node was already heard during that
interval (its health collector's NodeHealth counts). The heartbeat is a NodeLifecycle ``joined``
with ``metadata.heartbeat = true``: the message vocabulary has no heartbeat event, and ``joined``
is what a live node says. Both say its interval (``metadata.interval_ms``), and a ``joined`` of
another node's start, or a ``down`` of this node announced by another replica (which may hold an
interval it no longer has), is answered with a heartbeat at the next tick. On a graceful stop
it publishes ``left``.

Every replica's monitor hears ``ex_esdb_lifecycle`` and ``ex_esdb_health`` and tracks each
publishing node (the envelope's node). A node silent for three of its own health intervals
(declared, or seen in its gaps; never fewer than three of the replica's; not known again once
back from down, until its gaps or a new declaration tell) is down; one
replica (whichever wins an atomic Redis ``SET … GET`` on the node's state key) then publishes
NodeLifecycle ``down``; when the node is heard again the winner publishes ``reconnected``. Each
tick's changes then go out as ClusterMembership ``node_removed`` / ``node_added`` naming only the
changed nodes (at most ``LISTED_NODES`` a message) with the count of active nodes, and one
ClusterHealth. The alert stage derives the ``node_failure`` alert from ``down`` and resolves it on
``reconnected``/``joined``/``left``. Past ``ALERTS_PER_INTERVAL`` downs within one health
interval, the further downs (until three pass without one) are marked ``grouped`` and raise one
SystemAlert ``node_failure`` for the lot, at most one per interval, so a receiver gets a bounded
number of alerts; the replica that raised it resolves it (``groups``).
ClusterHealth (naming at most ``LISTED_NODES`` degraded and as many unhealthy nodes, counting
them all) is also published once per health interval across all replicas: by one whose period
(of its own interval or the last publisher's if shorter, by the coordinator's clock: Redis's
``TIME``, so replicas whose clocks differ agree) has none yet
(``Coordinator.once_per_period``), so the shortest interval sets the pace when replicas differ.

A transition another replica won the swap for is taken as announced once this replica hears it
on the bus (NodeLifecycle ``down``, or ``reconnected``/``joined``/``left`` for a return). If it
has not within one health interval (the winner died between its swap and its publish), one of
the others (an atomic once-only claim) announces it in its place, so a down is never left
unannounced, nor a return that resolves its alert; so too a forgotten node's ``left`` (its key
swapped to ``forgotten`` by a replica that died before its publish).

Bounds that fail safe: a node down and silent for ``EXESDB_NODE_FORGET_MS`` is forgotten; at
``MAX_NODES`` the longest-silent node is evicted to make room, so a node heard for the first time
is always tracked. Either is logged and counted (``exesdb_cluster_nodes_forgotten_total``). A
node forgotten after it was announced down is announced ``left`` (once across replicas), which
resolves its alert: a bound in time, the one documented. Memory pressure resolves no outage: a
node evicted while down is announced nothing, and its ``node_failure`` (its own, or the grouped
one it is in) stays open as if the node were still tracked: until it is heard again, when its
return is announced ``reconnected`` as any down node's, or until it is forgotten
``EXESDB_NODE_FORGET_MS`` after its eviction. So that it is even where its state key is gone (a
lone bridge keeps 10 000 keys), the monitor remembers the nodes it evicted down
(``EvictedDowns``: at most ``MAX_NODES``, the earliest kept); one past that is logged and its
alert stays open even when it returns, unless its state key still says ``down`` then: a person
ends it (a grouped alert it is in is never resolved by the monitor any more).
Farewells wait at most ``MAX_NODES`` at a time: past that (a flood forgetting faster than a tick
announces) the later ones are given up, logged and counted. The node state keys shared by the
replicas expire too (``bridge.cluster.announcer`` says when). A replica that cannot hear the
bus (Redis unreachable) declares nobody down: it is the one cut off; nor does one that did not
run (paused, its event loop busy) before it hears what came meanwhile.

The parts: ``monitor.py`` is the component (hearing, tracking, ticking); ``announcer.py`` how it
announces each transition once across the replicas; ``nodes.py`` the nodes it tracks and the bounds;
``cadence.py`` how long each may stay silent; ``reports.py`` the ClusterHealth and ClusterMembership
it publishes of them; ``groups.py`` the downs past the per-interval budget, alerted as one;
``shared_clock.py`` the clock its messages are dated by (Redis's, so that a return announced by a
replica whose clock is behind is not older than the down). Each name is imported from its module
when first asked for (``bridge.exports``): the alert sink reads ``MAX_NODES`` without the monitor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.exports import lazy_exports

if TYPE_CHECKING:
    from bridge.cluster.cadence import MISSED_INTERVALS
    from bridge.cluster.groups import ALERTS_PER_INTERVAL
    from bridge.cluster.monitor import ClusterMonitor, cluster_monitor
    from bridge.cluster.nodes import MAX_NODES
    from bridge.cluster.reports import LISTED_NODES

__all__ = [
    "ALERTS_PER_INTERVAL",
    "LISTED_NODES",
    "MAX_NODES",
    "MISSED_INTERVALS",
    "ClusterMonitor",
    "cluster_monitor",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "cadence": ("MISSED_INTERVALS",),
        "groups": ("ALERTS_PER_INTERVAL",),
        "monitor": ("ClusterMonitor", "cluster_monitor"),
        "nodes": ("MAX_NODES",),
        "reports": ("LISTED_NODES",),
    },
)
