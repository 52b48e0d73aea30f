"""Each node's silence timed by its own interval: declared, seen in its gaps, or not known yet."""

from __future__ import annotations

import pytest

from bridge.messages import Message, NodeHealth, NodeLifecycle
from tests.cluster.helpers import Clock, Replica

REPLICA_MS = 500  # the hearing replica's EXESDB_HEALTH_BROADCAST_INTERVAL
TICK = REPLICA_MS / 4000  # its loop's nap: a quarter interval
SLOW = 3.0  # the slow node's interval, in seconds
NODE = "slow@host"


def health() -> NodeHealth:
    """The slow node's NodeHealth about itself: what it publishes every interval."""
    return NodeHealth(node=NODE, status="healthy")


def start() -> NodeLifecycle:
    """The slow node's NodeLifecycle joined at its start, declaring its interval."""
    return NodeLifecycle(
        node=NODE, event="joined", cluster_size=1, metadata={"interval_ms": int(SLOW * 1000)}
    )


def every(interval: float, until: float, start: float = 0.0) -> list[float]:
    """Send times, ``interval`` apart, from ``start`` to before ``until``."""
    times = []
    at = start
    while at < until:
        times.append(at)
        at += interval
    return times


class Follower:
    """Moves the clock on a step at a time, the replica ticking after each step and hearing the
    slow node when it sends; notes how long the node had been silent when found down (the
    first down of a run, until the test clears it)."""

    def __init__(self, replica: Replica, clock: Clock) -> None:
        self.replica = replica
        self.clock = clock
        self.began = clock.now
        self.last_heard = clock.now
        self.silent_when_down: float | None = None

    async def run(self, until: float, sends: list[float], step: float = 1.0) -> None:
        """Up to ``until`` seconds from the start, the node's NodeHealth heard at each of
        ``sends``."""
        pending = sorted(sends)
        downs = len(self.downs())
        while self.clock.now - self.began < until:
            self.clock.forward(step)
            while pending and pending[0] <= self.clock.now - self.began:
                pending.pop(0)
                await self.replica.hear(NODE, health())
                self.last_heard = self.clock.now
            await self.replica.tick()
            if self.silent_when_down is None and len(self.downs()) > downs:
                self.silent_when_down = self.clock.now - self.last_heard

    async def silent_until_down(self, limit: float, step: float = 1.0) -> float | None:
        """The node sending no more: the replica ticks on, ``step`` seconds at a time up to
        half a second before ``limit`` of silence, then a tick at a time; the silence when it
        was found down (None: it was not, by one second after ``limit``)."""
        await self.run(self.last_heard - self.began + limit - 0.5, [], step=step)
        await self.run(self.last_heard - self.began + limit + 1, [], step=TICK)
        return self.silent_when_down

    async def found_down_after(self, limit: float, step: float = 1.0) -> None:
        """Assert that the node, sending no more, is found down once silent for more than
        ``limit`` seconds, within one tick of the replica (``silent_until_down``)."""
        silent = await self.silent_until_down(limit, step)
        assert silent is not None, f"not found down by {limit + 1} s of silence"
        assert limit < silent <= limit + TICK

    def downs(self) -> list[Message]:
        return self.replica.published(NodeLifecycle, event="down", node=NODE)


async def test_a_node_declaring_a_longer_interval_is_never_found_down_between_its_messages(
    make_replica, clock: Clock
) -> None:
    """A node that declared 3 s in its joined, heard by a replica at 500 ms, is not found down
    between its NodeHealth messages over twenty of its intervals."""
    replica = await make_replica("bridge-1", interval_ms=REPLICA_MS)
    await replica.hear(NODE, start())
    follower = Follower(replica, clock)
    await follower.run(20 * SLOW, every(SLOW, 20 * SLOW, start=SLOW), step=REPLICA_MS / 1000)
    assert follower.downs() == []
    assert replica.published(NodeLifecycle, event="reconnected") == []


async def test_a_node_declaring_a_longer_interval_is_found_down_three_of_its_intervals_on(
    make_replica, clock: Clock
) -> None:
    """The 3 s node heard by a 500 ms replica that stops publishing is found down once silent
    for three of its own intervals, within one tick of the replica: not before, not later."""
    replica = await make_replica("bridge-1", interval_ms=REPLICA_MS)
    await replica.hear(NODE, start())
    follower = Follower(replica, clock)
    await follower.run(10 * SLOW, every(SLOW, 10 * SLOW, start=SLOW))
    assert follower.downs() == []
    await follower.found_down_after(3 * SLOW)
    assert len(follower.downs()) == 1


async def test_a_node_heard_once_is_given_three_of_the_default_interval_for_its_second_message(
    make_replica, clock: Clock
) -> None:
    """A node heard once, its interval not declared to this replica (it joined before the
    replica started), is not found down before 90 s (three of the default 30 s interval), and
    is found down once silent for that long."""
    replica = await make_replica("bridge-1", interval_ms=REPLICA_MS)
    await replica.hear(NODE, health())
    follower = Follower(replica, clock)
    await follower.found_down_after(90)


async def test_a_node_whose_interval_is_not_declared_is_timed_by_its_gaps(
    make_replica, clock: Clock
) -> None:
    """A 3 s node that never declared its interval to a 500 ms replica, heard from its first
    NodeHealth on, is never found down between its messages, and once it stops is found down
    three of its intervals on, its pace learnt from the gaps."""
    replica = await make_replica("bridge-1", interval_ms=REPLICA_MS)
    await replica.hear(NODE, health())
    follower = Follower(replica, clock)
    await follower.run(20 * SLOW, every(SLOW, 20 * SLOW, start=SLOW))
    assert follower.downs() == []
    await follower.found_down_after(3 * SLOW)


async def test_a_single_late_message_stretches_a_nodes_limit_for_a_while_only(
    make_replica, clock: Clock
) -> None:
    """A 3 s node timed by its gaps sends one message 4 s late (a 7 s gap): not found down
    for it, and twenty intervals on, once it stops, found down three of its 3 s intervals on
    again, not three of the late gap."""
    replica = await make_replica("bridge-1", interval_ms=REPLICA_MS)
    await replica.hear(NODE, health())
    follower = Follower(replica, clock)
    late = 10 * SLOW + 4
    after = late + 20 * SLOW
    sends = [*every(SLOW, 10 * SLOW, start=SLOW), late, *every(SLOW, after, start=late + SLOW)]
    await follower.run(after, sends)
    assert follower.downs() == []
    await follower.found_down_after(3 * SLOW)


@pytest.mark.parametrize(("interval", "downs"), [(120.0, 1), (600.0, 2), (3_600.0, 2)])
async def test_a_steady_node_slower_than_its_first_limit_is_found_down_twice_at_most(
    make_replica, clock: Clock, interval: float, downs: int
) -> None:
    """A node that declares nothing and publishes every 2 min, 10 min or hour (slower than the
    90 s a node heard once is given) is found down once or twice, and back, while its pace is
    learnt from the gaps across those downs; then never over eight more of its intervals, and
    once it stops, found down three of its intervals on."""
    replica = await make_replica("bridge-1", interval_ms=REPLICA_MS)
    await replica.hear(NODE, health())
    follower = Follower(replica, clock)
    step = interval / 12
    until = 11 * interval
    await follower.run(until, every(interval, until, start=interval), step=step)
    assert len(follower.downs()) == downs
    assert len(replica.published(NodeLifecycle, event="reconnected", node=NODE)) == downs
    follower.silent_when_down = None
    await follower.found_down_after(3 * interval, step=step)


async def test_the_gap_across_an_outage_of_a_node_heard_once_stretches_its_limit_threefold(
    make_replica, clock: Clock
) -> None:
    """A node heard once (not known yet: 90 s) is found down, and heard once more after an
    hour's outage: that gap may have been its pace, so its limit triples, to 270 s, and no
    more: once silent again it is found down 270 s on, not three hours."""
    replica = await make_replica("bridge-1", interval_ms=REPLICA_MS)
    await replica.hear(NODE, health())
    follower = Follower(replica, clock)
    await follower.run(3_600, [3_600], step=30.0)
    assert len(follower.downs()) == 1
    follower.silent_when_down = None
    await follower.found_down_after(270, step=10.0)


async def test_a_node_starting_makes_a_replica_say_its_interval_at_its_next_tick(
    make_replica, clock: Clock
) -> None:
    """Another node's joined at its start (it has heard nobody's interval) makes a replica
    publish a heartbeat with its interval at its next tick, though its NodeHealth said it was
    alive, and once: a heartbeat of another node asks nothing."""
    replica = await make_replica("bridge-1", interval_ms=REPLICA_MS)
    await replica.hear("bridge-1", NodeHealth(node="bridge-1", status="healthy"))
    await replica.hear(NODE, start())
    clock.forward(TICK)
    await replica.tick()
    await replica.hear("bridge-1", NodeHealth(node="bridge-1", status="healthy"))
    await replica.hear("bridge-2")  # a heartbeat
    clock.forward(TICK)
    await replica.tick()
    beats = replica.published(NodeLifecycle, event="joined")
    assert [beat.metadata for beat in beats] == [
        {"interval_ms": REPLICA_MS},
        {"heartbeat": True, "interval_ms": REPLICA_MS},
    ]


async def test_a_node_whose_pace_slows_is_found_down_once_then_timed_by_its_new_gaps(
    make_replica, clock: Clock
) -> None:
    """A node timed by its 3 s gaps that goes on every 20 s without a word is found down once,
    and back; its interval then not known again, its new gaps time it: not found down over five
    of them, and found down three of them after it stops."""
    replica = await make_replica("bridge-1", interval_ms=REPLICA_MS)
    await replica.hear(NODE, health())
    follower = Follower(replica, clock)
    slower = 20.0
    last = 10 * SLOW - SLOW
    sends = [
        *every(SLOW, 10 * SLOW, start=SLOW),
        *every(slower, last + 6.5 * slower, last + slower),
    ]
    await follower.run(last + 6.5 * slower, sends)
    assert len(follower.downs()) == 1
    assert len(replica.published(NodeLifecycle, event="reconnected", node=NODE)) == 1
    follower.silent_when_down = None
    await follower.found_down_after(3 * slower)


async def test_a_gap_across_a_cut_off_heard_before_the_next_tick_counts_for_nothing(
    make_replica, clock: Clock
) -> None:
    """A 3 s node timed by its gaps, heard by a 500 ms replica cut off from the bus for a
    minute: what it sent meanwhile arrives as the connection comes back, before the replica's
    next tick (as the Redis bus's reader hands its backlog on), and the gap across the cut
    stretches nothing: once the node stops, it is found down three of its 3 s intervals on,
    not three of the gap."""
    replica = await make_replica("bridge-1", interval_ms=REPLICA_MS)
    await replica.hear(NODE, health())
    follower = Follower(replica, clock)
    await follower.run(10 * SLOW, every(SLOW, 10 * SLOW, start=SLOW))
    replica.transport.reason = "Redis unreachable"
    clock.forward(TICK)
    await replica.tick()  # finds itself cut off
    clock.forward(60)
    replica.transport.reason = None
    for _ in range(20):  # the minute's backlog, heard before the next tick
        await replica.hear(NODE, health())
    follower.last_heard = clock.now
    resumed = clock.now - follower.began
    await follower.run(resumed + 10 * SLOW, every(SLOW, resumed + 10 * SLOW, resumed + SLOW))
    assert follower.downs() == []
    await follower.found_down_after(3 * SLOW)


async def test_gaps_growing_just_under_each_limit_stretch_it_to_three_hours_at_the_most(
    make_replica, clock: Clock
) -> None:
    """A node that declared nothing whose every gap comes just within the limit the last one
    set (each limit three times the last) is timed as an hour's interval at the most: once it
    stops it is found down three hours on, not three of its last gap."""
    replica = await make_replica("bridge-1", interval_ms=REPLICA_MS)
    await replica.hear(NODE, health())
    follower = Follower(replica, clock)
    at, gap = 0.0, SLOW
    for _ in range(9):  # 3 s, then 90% of each limit: the last gap is well past an hour
        at += gap
        # Steps of a 25th of the gap: each message heard within 4% of when it was sent.
        await follower.run(at, [at], step=gap / 25)
        last_gap, gap = gap, 0.9 * 3 * gap
    assert last_gap > 3_600
    assert follower.downs() == []
    await follower.found_down_after(3 * 3_600, step=60)


async def test_a_declared_interval_past_any_floats_range_counts_as_an_hour(
    make_replica, clock: Clock
) -> None:
    """A joined declaring an interval no float can hold is taken (not failed) as the longest
    interval, an hour: the node is found down three hours after its last message."""
    replica = await make_replica("bridge-1", interval_ms=REPLICA_MS)
    huge = NodeLifecycle(
        node=NODE, event="joined", cluster_size=1, metadata={"interval_ms": 10**400}
    )
    await replica.hear(NODE, huge)
    follower = Follower(replica, clock)
    await follower.found_down_after(3 * 3_600, step=60)


def restart(interval: float) -> NodeLifecycle:
    """The node's NodeLifecycle joined at a start with ``interval`` seconds."""
    return NodeLifecycle(
        node=NODE, event="joined", cluster_size=1, metadata={"interval_ms": int(interval * 1000)}
    )


async def test_a_node_restarted_slower_unheard_by_a_replica_is_found_down_once_not_at_each_message(
    make_replica, clock: Clock
) -> None:
    """A node that declared 1 s restarts at 60 s, its joined missed by a 500 ms replica, and
    answers no down (a publisher that declares only at its start): it is found down once, and
    back, then timed by its gaps: not found down over ten of its messages, and found down
    three of its 60 s on once it stops."""
    replica = await make_replica("bridge-1", interval_ms=REPLICA_MS)
    await replica.hear(NODE, restart(1.0))
    follower = Follower(replica, clock)
    await follower.run(10, every(1.0, 10, start=1.0))
    assert follower.downs() == []
    # Restarted at 60 s, its joined not heard: its NodeHealth only, every 60 s.
    slower = 60.0
    until = 10 + 10 * slower
    await follower.run(until, every(slower, until, start=10 + slower), step=5.0)
    assert len(follower.downs()) == 1
    assert len(replica.published(NodeLifecycle, event="reconnected", node=NODE)) == 1
    follower.silent_when_down = None
    await follower.found_down_after(3 * slower, step=5.0)


async def test_a_slow_declared_node_back_from_an_outage_is_not_found_down_between_its_messages(
    make_replica, clock: Clock
) -> None:
    """A node that declared 120 s (slower than a node heard once is given), found down after a
    real outage and back with NodeHealth only, is not found down between its messages after:
    its limit no shorter than it was until its gaps tell; once it stops, found down three of
    its intervals on."""
    replica = await make_replica("bridge-1", interval_ms=REPLICA_MS)
    slow = 120.0
    await replica.hear(NODE, restart(slow))
    follower = Follower(replica, clock)
    await follower.run(3 * slow, every(slow, 3 * slow, start=slow), step=10.0)
    await follower.found_down_after(3 * slow, step=10.0)
    back = clock.now - follower.began + 10
    await follower.run(back + 8 * slow, every(slow, back + 8 * slow, start=back), step=10.0)
    assert len(follower.downs()) == 1
    assert len(replica.published(NodeLifecycle, event="reconnected", node=NODE)) == 1
    follower.silent_when_down = None
    await follower.found_down_after(3 * slow, step=10.0)


async def test_a_declared_node_back_from_an_outage_is_found_down_in_time_when_it_stops_again(
    make_replica, clock: Clock
) -> None:
    """The 3 s node that declared its interval, found down after an outage and back with its
    NodeHealth, is found down three of its intervals after it stops again, its pace learnt
    again from its gaps."""
    replica = await make_replica("bridge-1", interval_ms=REPLICA_MS)
    await replica.hear(NODE, start())
    follower = Follower(replica, clock)
    await follower.run(5 * SLOW, every(SLOW, 5 * SLOW, start=SLOW))
    await follower.found_down_after(3 * SLOW)
    back = clock.now - follower.began + 10
    await follower.run(back + 5 * SLOW, every(SLOW, back + 5 * SLOW, start=back))
    assert len(replica.published(NodeLifecycle, event="reconnected", node=NODE)) == 1
    follower.silent_when_down = None
    await follower.found_down_after(3 * SLOW)


async def test_a_replica_announced_down_by_another_says_its_interval_at_its_next_tick(
    make_replica, clock: Clock
) -> None:
    """A down of this replica announced by another (which may time it by an interval it no
    longer has) makes it publish a heartbeat with its interval at its next tick, though its
    NodeHealth said it was alive; once for several downs, and none for another node's down."""
    replica = await make_replica("bridge-1", interval_ms=REPLICA_MS)
    await replica.hear("bridge-1", NodeHealth(node="bridge-1", status="healthy"))
    for announcer in ("bridge-2", "bridge-3"):
        await replica.hear(announcer, NodeLifecycle(node="bridge-1", event="down", cluster_size=2))
    clock.forward(TICK)
    await replica.tick()
    await replica.hear("bridge-1", NodeHealth(node="bridge-1", status="healthy"))
    await replica.hear("bridge-2", NodeLifecycle(node=NODE, event="down", cluster_size=2))
    clock.forward(TICK)
    await replica.tick()
    beats = replica.published(NodeLifecycle, event="joined")
    assert [beat.metadata for beat in beats] == [
        {"interval_ms": REPLICA_MS},
        {"heartbeat": True, "interval_ms": REPLICA_MS},
    ]
