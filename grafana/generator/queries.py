"""The PromQL the dashboards share: the variables' matchers, and each node counted once.

Series written from bus messages are the cluster's: with the bus on Redis every replica exposes
them, differing only by target labels (``instance``, ``pod``, ...). Every query takes ``max by``
such a series' own labels (of the rate, for a counter) before it sums, so each node counts once
whatever the number of replicas scraped (docs/metrics.md#replicas); the bridge's own series are
per replica (the ``instance`` variable). Metric names are those of docs/metrics.md (the catalog).
"""

from __future__ import annotations

NODE = 'node=~"$node"'
INSTANCE = 'instance=~"$instance"'
RATE = "$__rate_interval"
# healthy 0, degraded 1, unhealthy 2, unknown (down or silent) 3: each replica's code of a node,
# then the worst of them (added up, two replicas would make a degraded node unhealthy).
NODE_HEALTH_CODE = (
    "max by (node) ("
    f'exesdb_node_health_status{{{NODE}, status="degraded"}}'
    f' + ignoring (status) 2 * exesdb_node_health_status{{{NODE}, status="unhealthy"}}'
    f' + ignoring (status) 3 * exesdb_node_health_status{{{NODE}, status="unknown"}}'
    ")"
)
# Open alerts: the lease holder's outbox on Redis (the others show 0), on the in-process bus the
# one replica's. The others are left out too: one of an earlier version showed the counts it had
# when it last held the lease.
ACTIVE_ALERTS = (
    "exesdb_alerts_active unless ignoring (severity) exesdb_redis_work_queue_leader == 0"
)
