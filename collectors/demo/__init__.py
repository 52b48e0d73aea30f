"""Demo traffic: a simulated three-node ExESDB cluster, for ``exesdb-bridge run --demo``.

Every message goes through the bridge's ``Integration`` onto the signed bus, so it reaches the
same sinks as real traffic and every shipped dashboard shows data within seconds. The simulation
is seeded and steps on an injected clock, which is how the tests drive it without sleeping.

What one step (about a second) publishes, per node that is up: NodeHealth, ResourceUsage (cpu,
memory, disk, network), PerformanceMetric, per store and operation a ThroughputMetric and the six
LatencyMetric percentiles, ComponentHealth of each store's persistence and emitter pool, a
HealthCheck; for the cluster: ClusterHealth, auth events and the odd access violation, audit
changes (now and then a compliance event), log entries and diagnostics (now and then a
performance analysis; each node's system state snapshot a minute), a feature toggle some 15 times
an hour. Resource use drifts and now and then a node is stressed into ``degraded`` or
``unhealthy``; now and then a node fails (NodeLifecycle ``down``, ClusterMembership,
ClusterHealth, a critical ``node_failure`` SystemAlert, which the simulated cluster monitor
escalates five steps later) and later reconnects.
A security alert that waits for an acknowledgement gets one from a simulated security desk some
minutes later (the component tells the simulation each message's envelope id, which the alert's
id is made of).
With ``showcase`` (the default) each rare event also happens once in the first fifteen steps, so
no panel waits minutes for its first sample.

``state`` holds the nodes and how a step changes them; ``lifecycle``, ``nodes``, ``operations``,
``activity`` and ``logs`` build the messages; ``simulation`` runs a step; ``component`` publishes
the steps on a schedule.
"""

from __future__ import annotations

from collectors.demo.component import DemoCluster, Steps, demo_component
from collectors.demo.simulation import DEFAULT_NODES, DEFAULT_STORES, DEMO_SEED, Simulation
from collectors.demo.state import DEFAULT_THRESHOLDS, ClusterState, SimNode

__all__ = [
    "DEFAULT_NODES",
    "DEFAULT_STORES",
    "DEFAULT_THRESHOLDS",
    "DEMO_SEED",
    "ClusterState",
    "DemoCluster",
    "SimNode",
    "Simulation",
    "Steps",
    "demo_component",
]
