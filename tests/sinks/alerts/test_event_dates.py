"""The alert sink dates events never later than now by the clock the replicas share.

The clock that caps an event's date is the coordinator's (Redis's ``TIME`` on Redis), as the
cluster monitor dates a node's ``down`` and ``reconnected``: a holder whose own clock is behind
the last holder's by more than an outage would cap a return at its own now, older than the
down the last holder stored, and drop it as stale, leaving the node's ``node_failure`` open.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bridge.bus import LocalCoordinator
from bridge.messages import NodeLifecycle
from bridge.settings import Settings
from bridge.sinks.alerts.records import AlertState
from tests.sinks.alerts.helpers import T0, sink_bridge, stored
from tests.support import ADMIN_TOKEN, ManualClock, async_wait_until

ALERT_ID = "node_failure:n1"
# How far behind the shared clock the holder's own clock is once the lease moved to it: more
# than the outage (10 s) between the down and the return.
BEHIND = 120.0


def lifecycle(event: str, at: float) -> NodeLifecycle:
    """Node n1's ``event``, dated ``at`` (Unix seconds) as the cluster monitor dates it."""
    message = NodeLifecycle(node="n1", event=event, cluster_size=1)
    return message.model_copy(update={"timestamp": datetime.fromtimestamp(at, UTC)})


async def test_a_return_dated_by_the_shared_clock_resolves_on_a_holder_whose_clock_is_behind(
    tmp_path: Path,
) -> None:
    """A node's return dated by the shared clock 10 s after its down resolves its node_failure
    on a sink whose own clock has fallen 120 s behind since it stored the down, not dropped as
    older than the down."""
    settings = Settings(
        EXESDB_STATE_DIR=str(tmp_path),
        EXESDB_HTTP_ADDR="127.0.0.1:0",
        EXESDB_ADMIN_TOKEN=ADMIN_TOKEN,
        EXESDB_NODE="bridge-test",
    )
    shared = ManualClock(T0 + 1)
    own = ManualClock(T0 + 1)
    monotonic = ManualClock()
    bridge, sink = sink_bridge(
        settings, clock=own, monotonic=monotonic, coordinator=LocalCoordinator(wall_clock=shared)
    )
    await bridge.start(serve_http=False)
    try:
        bridge.bus.publish("lifecycle", lifecycle("down", T0))
        await async_wait_until(lambda: stored(sink.outbox, ALERT_ID), 10, "the down stored")
        # The lease moved to a replica whose clock is behind, which measures the difference to
        # the shared clock at its first batch: played here by this one's, a minute later.
        own.now, shared.now = T0 - BEHIND, T0 + 11
        monotonic.advance(60)
        bridge.bus.publish("lifecycle", lifecycle("reconnected", T0 + 10))

        def resolved() -> bool:
            record = stored(sink.outbox, ALERT_ID)
            return record is not None and record.state is AlertState.RESOLVED

        await async_wait_until(resolved, 10, "the node_failure resolved")
    finally:
        await bridge.aclose()
