"""Resolves on a real redis-server, past stale notifications and notes taken over: a receiver
told an alert firing hears it resolve."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis

from bridge.backoff import Backoff
from bridge.bus.redis.layout import Layout
from bridge.bus.redis.link import Link
from bridge.bus.redis.shared_state import RedisSharedState
from bridge.errors import TransportError
from bridge.receivers import Receiver, resolve_receivers
from bridge.sinks.alerts.alert_store import RESOLVES_REMEMBERED
from bridge.sinks.alerts.delivery import DeliveryWorker, WebhookSender, keep_for
from bridge.sinks.alerts.index import AlertIndex
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.records import Acknowledgement
from bridge.sinks.alerts.states import AlertStates
from bridge.sinks.alerts.thread import DbThread
from bridge.sinks.alerts.vetting import DeliveryVetting
from tests.integration.servers.redis import RedisServer, redis_server
from tests.integration.servers.webhook import Answer, WebhookReceiver, webhook_receiver
from tests.integration.test_redis_state import KilledBeforeTheDrop, hold, states
from tests.sinks.alerts.helpers import T0, db, event, returns, webhook_worker
from tests.support import ManualClock

pytestmark = pytest.mark.integration

__all__ = ["db", "redis_server", "states", "webhook_receiver"]  # the fixtures used below

LEADER = "exesdb:bus:leader"
DATES = "exesdb:state:alerts:dates"


class Lease:
    """The work-queue lease as one replica sees it: held while Redis names its consumer."""

    def __init__(self, server: RedisServer, consumer: str) -> None:
        self._server = server
        self._consumer = consumer
        self.reachable = True

    @property
    def leading(self) -> bool:
        """Whether Redis names this replica's consumer as the holder."""
        with self._server.client() as client:
            return client.get(LEADER) == self._consumer.encode()

    async def first_answer(self, within: float) -> bool:
        """Redis has answered (it runs)."""
        return True


@dataclass
class Replica:
    """One replica's alert stage, down to its webhook worker (no bus, no housekeeping)."""

    outbox: Outbox
    states: AlertStates
    worker: DeliveryWorker
    sender: WebhookSender


def replica(
    server: RedisServer,
    state: RedisSharedState,
    consumer: str,
    outbox: Outbox,
    db: DbThread,
    clock: ManualClock,
    hook: Receiver,
) -> Replica:
    """The alert stage of the replica whose consumer is ``consumer``, on ``outbox``, as it
    stands when (re)started: its shared state ``state``, its worker sending to ``hook``."""
    lease = Lease(server, consumer)

    def holding() -> bool:
        return lease.leading

    index = AlertIndex(
        state,
        alerts=outbox.alerts,
        queue=outbox.queue,
        db=db,
        clock=clock,
        limit=100,
        holding=holding,
    )
    alert_states = AlertStates(
        outbox.alerts,
        db=db,
        index=index,
        max_open=100,
        resolve_after=3600.0,
        stale_after=3600.0,
        hold_seconds=0.0,
        remember_for=300.0,
        holding=holding,
        monotonic=clock,
    )
    vetting = DeliveryVetting(
        states=alert_states,
        alerts=outbox.alerts,
        queue=outbox.queue,
        db=db,
        lease=lease,  # type: ignore[arg-type]  # the members vetting reads
        withheld=lambda count: None,
        changed=lambda: None,
        clock=clock,
    )
    sender = WebhookSender(hook, clock=clock)
    worker = webhook_worker(
        outbox, db, sender, clock, deadline=3600.0, keep=keep_for(hook), vet=vetting.vet
    )
    return Replica(outbox, alert_states, worker, sender)


@dataclass
class Cluster:
    """Replicas a and b on one redis-server sending to one receiver, and what (re)starts them."""

    server: RedisServer
    receiver: WebhookReceiver
    clock: ManualClock
    a: Replica
    b: Replica
    start: Callable[[RedisSharedState, str, Outbox], Replica]

    @property
    def parts(self) -> tuple[RedisServer, WebhookReceiver, ManualClock, Replica, Replica]:
        """The server, the receiver, the clock and replicas a and b, to be named at once."""
        return self.server, self.receiver, self.clock, self.a, self.b


@pytest.fixture
async def cluster(
    tmp_path: Path,
    states: tuple[RedisServer, RedisSharedState, RedisSharedState],
    db: DbThread,
    webhook_receiver: Callable[..., WebhookReceiver],
) -> AsyncIterator[Cluster]:
    """Replicas a and b on one redis-server, each with its outbox, sending to one receiver."""
    server, a_state, b_state = states
    receiver = webhook_receiver()
    [hook], _ = resolve_receivers(
        [receiver.url], None, secret=None, timeout=5.0, max_alerts=50, min_severity="info"
    )
    clock = ManualClock(T0)
    made: list[Replica] = []

    def start(state: RedisSharedState, consumer: str, outbox: Outbox) -> Replica:
        made.append(replica(server, state, consumer, outbox, db, clock, hook))
        return made[-1]

    a = start(a_state, "a:1", Outbox.in_dir(tmp_path / "a", urls=[hook.key]))
    b = start(b_state, "b:1", Outbox.in_dir(tmp_path / "b", urls=[hook.key]))
    try:
        yield Cluster(server, receiver, clock, a, b, start)
    finally:
        for started in made:
            await started.sender.aclose()
        a.outbox.close()
        b.outbox.close()


def told(receiver: WebhookReceiver) -> list[str]:
    """What the receiver took of alert ``x``, in order: ``firing`` or ``resolved``."""
    return [r.json()["alerts"][0]["status"] for r in receiver.accepted()]


async def change(replica: Replica, clock: ManualClock, status: str) -> None:
    """Alert ``x`` fires (a new episode, when it was resolved) or resolves at ``replica``, the
    holder, a second on."""
    clock.advance(1.0)
    at = datetime.fromtimestamp(clock.now, UTC)
    await replica.states.apply([event("x", status, at=at)], clock.now)


async def take(server: RedisServer, replica: Replica, consumer: str) -> None:
    """``replica`` takes the work-queue lease and takes the open alerts up."""
    hold(server, consumer)
    await replica.states.take_up()


async def stale_down_then_told_a_new_one(cluster: Cluster, holder: Replica, down: datetime) -> None:
    """Alert ``x``'s firing event dated ``down``, applied at ``holder``, is counted stale and
    tells the receiver nothing; one a second on (the node going down again) is told."""
    applied = await holder.states.apply([event("x", at=down)], cluster.clock.now)
    assert (applied.changed, applied.stale) == ([], 1)
    await holder.worker.step()
    assert told(cluster.receiver) == []
    await change(holder, cluster.clock, "firing")
    await holder.worker.step()
    assert told(cluster.receiver) == ["firing"]


async def test_a_resolve_made_after_one_left_out_as_stale_reaches_the_receiver(
    cluster: Cluster,
) -> None:
    """A receiver told an alert firing, whose resolve at replica b is left out as stale (a,
    holding the lease meanwhile, fired it anew and resolved it, and that resolve is left out in
    turn as b fires it anew): the resolve b makes next still reaches it, so it does not keep the
    alert firing while every replica has it resolved."""
    server, receiver, clock, a, b = cluster.parts
    await take(server, a, "a:1")
    await change(a, clock, "firing")
    await a.worker.step()
    assert told(receiver) == ["firing"]
    await take(server, b, "b:1")
    receiver.default = Answer(503)
    await change(b, clock, "resolved")
    await b.worker.step()  # the resolve fails: retried, and b's next notifications wait
    await change(b, clock, "firing")
    await take(server, a, "a:1")
    await change(a, clock, "resolved")
    await take(server, b, "b:1")  # b's resolve is left out: a notifies a newer state
    await change(b, clock, "firing")
    await a.worker.step()  # a's resolve is left out: b fired it anew since
    await change(b, clock, "resolved")
    receiver.default = Answer(200)
    clock.advance(60.0)
    for _ in range(3):
        await b.worker.step()
        await a.worker.step()
    assert told(receiver)[-1] == "resolved"


async def test_a_resolve_whose_note_the_next_holder_took_over_reaches_the_receiver(
    cluster: Cluster, states: tuple[RedisServer, RedisSharedState, RedisSharedState]
) -> None:
    """A holder killed after its outbox stored a resolve, before its note went: the next holder,
    which never told the receiver of that alert, takes the note over and sends the resolve (the
    killed one, back, leaves its own out), so the receiver told the alert firing by the killed
    holder does not keep it firing."""
    server, receiver, clock, a, b = cluster.parts
    await take(server, b, "b:1")
    await change(b, clock, "firing")
    await b.worker.step()
    assert told(receiver) == ["firing"]
    client = Redis.from_url(server.url)
    try:
        killed = KilledBeforeTheDrop(
            Link(server.url, client, Backoff(0.01, 0.1, 0.0)),
            Layout("exesdb"),
            consumer="b:1",
            node="b",
        )
        await change(cluster.start(killed, "b:1", b.outbox), clock, "resolved")
    finally:
        await client.aclose()
    await take(server, a, "a:1")  # a takes the note over, and notifies the resolve
    back = cluster.start(states[2], "b:1", b.outbox)
    await back.states.catch_up()  # b, back, leaves its resolve out: a sends it
    for _ in range(2):
        await a.worker.step()
        await back.worker.step()
    assert told(receiver) == ["firing", "resolved"]


async def nothing_more_told_and_a_later_down_fires(
    b: Replica, clock: ManualClock, receiver: WebhookReceiver
) -> None:
    """A minute on, the receiver told the alert's firing and resolve alone; then the node down
    again, since: not lost, its firing told."""
    clock.advance(60.0)
    for _ in range(2):
        await b.worker.step()
    assert told(receiver) == ["firing", "resolved"]
    await change(b, clock, "firing")
    await b.worker.step()
    assert told(receiver) == ["firing", "resolved", "firing"]


async def redeliver(replica: Replica, clock: ManualClock, *dates: float, batches: int) -> None:
    """Alert ``x``'s down (fired at ``dates[0]``) and return (resolved at ``dates[1]``)
    delivered again to ``replica``, the holder, in one batch or two (its worker sending
    between them), a second on."""
    clock.advance(1.0)
    down, back = (datetime.fromtimestamp(at, UTC) for at in dates)
    events = [event("x", at=down), event("x", "resolved", at=back)]
    if batches == 1:
        await replica.states.apply(events, clock.now)
        return
    for one in events:
        await replica.states.apply([one], clock.now)
        clock.advance(60.0)
        await replica.worker.step()


@pytest.mark.parametrize("batches", [1, 2], ids=["one-batch", "two-batches"])
@pytest.mark.parametrize("standing_by", [False, True], ids=["taking-the-lease", "standing-by"])
async def test_a_down_and_return_delivered_again_to_the_next_holder_are_told_nothing(
    cluster: Cluster, standing_by: bool, batches: int
) -> None:
    """A node's down and its return, both handled by a holder and delivered again to the next
    (the first killed before its acknowledgements were written), tell the receiver nothing,
    whether in one batch or two, and whether the next holder, standing by, had taken the alert
    up open: it heard the alert fire and resolve once, not a second firing and resolve for an
    alert resolved already; the node going down again after is told."""
    server, receiver, clock, a, b = cluster.parts
    await take(server, a, "a:1")
    await change(a, clock, "firing")
    down = clock.now
    await a.worker.step()
    if standing_by:
        hold(server, "b:1")  # b takes the open alert up, and gives the lease back
        assert await b.states.take_up()
        await take(server, a, "a:1")
    await change(a, clock, "resolved")
    back = clock.now
    await a.worker.step()
    assert told(receiver) == ["firing", "resolved"]
    await take(server, b, "b:1")  # standing by, b finds its open alert resolved by another
    await redeliver(b, clock, down, back, batches=batches)
    await nothing_more_told_and_a_later_down_fires(b, clock, receiver)


async def test_a_return_delivered_again_after_the_node_went_down_anew_is_told_nothing(
    cluster: Cluster,
) -> None:
    """A node's down, its return and its next down, all handled by a holder and delivered
    again, one claim at a time, to the next (the first killed before its acknowledgements
    were written): the receiver, told the alert fire, resolve and fire again, hears nothing
    more, not a resolve of the alert still firing and a firing after it."""
    server, receiver, clock, a, b = cluster.parts
    await take(server, a, "a:1")
    dates = []
    for status in ("firing", "resolved", "firing"):
        await change(a, clock, status)
        dates.append(clock.now)
        await a.worker.step()
    assert told(receiver) == ["firing", "resolved", "firing"]
    await take(server, b, "b:1")  # b takes the alert up, open
    for status, at in zip(("firing", "resolved", "firing"), dates, strict=True):
        clock.advance(1.0)
        await b.states.apply([event("x", status, at=datetime.fromtimestamp(at, UTC))], clock.now)
        clock.advance(60.0)
        await b.worker.step()
    assert told(receiver) == ["firing", "resolved", "firing"]


@pytest.mark.parametrize("by", ["api", "message"], ids=["ack-api", "alert-ack"])
@pytest.mark.parametrize("knew", [False, True], ids=["unknown-to-it", "taken-up-open"])
async def test_a_down_delivered_again_after_an_ack_resolved_its_alert_is_told_nothing(
    cluster: Cluster, by: str, knew: bool
) -> None:
    """A node's down handled by a holder, its alert then resolved there by an acknowledgement
    with a resolution (through the ack API, or an AlertAck message): the down (and the
    AlertAck) delivered again to the next holder (the first killed before its acknowledgements
    were written) change nothing and tell the receiver nothing, whether or not the next holder
    had taken the alert up open before: no second firing (nor resolve) of an alert resolved
    already; the node going down again after is told."""
    server, receiver, clock, a, b = cluster.parts
    await take(server, a, "a:1")
    await change(a, clock, "firing")
    down = datetime.fromtimestamp(clock.now, UTC)
    await a.worker.step()
    if knew:
        await take(server, b, "b:1")  # b takes the alert up open, and gives the lease back
        await take(server, a, "a:1")
    clock.advance(1.0)
    ack = Acknowledgement("x", "ops", resolution="the node was replaced")
    if by == "api":
        assert (await a.states.acknowledge(ack, clock.now)).stored
    else:
        await a.states.apply([ack], clock.now)
    await a.worker.step()
    assert told(receiver) == ["firing", "resolved"]
    await take(server, b, "b:1")
    clock.advance(1.0)
    again = [event("x", at=down)] + ([ack] if by == "message" else [])
    assert (await b.states.apply(again, clock.now)).changed == []  # not fired anew, nor resolved
    await nothing_more_told_and_a_later_down_fires(b, clock, receiver)


async def test_a_down_sent_before_a_return_the_holder_took_first_is_told_nothing(
    cluster: Cluster,
) -> None:
    """On Redis: a node's return taken by the holder while its alert is unknown there, then its
    down sent before it (frames Redis lost written again in the other order) open nothing and
    tell the receiver nothing, the down counted stale; the node going down again after is
    told."""
    server, _, clock, a, _ = cluster.parts
    await take(server, a, "a:1")
    clock.advance(1.0)
    down, back = (datetime.fromtimestamp(clock.now - ago, UTC) for ago in (1.0, 0.5))
    assert (await a.states.apply([event("x", "resolved", at=back)], clock.now)).changed == []
    await stale_down_then_told_a_new_one(cluster, cluster.a, down)


async def test_a_down_sent_between_two_returns_is_told_nothing_by_the_next_holder(
    cluster: Cluster,
) -> None:
    """On Redis: an alert fired and resolved at a holder, resolved again there by a later
    return (its date alone moved, kept in Redis), then a down sent between the two returns
    delivered to the next holder: nothing more is told, the down counted stale there."""
    server, receiver, clock, a, b = cluster.parts
    await take(server, a, "a:1")
    for status in ("firing", "resolved"):
        await change(a, clock, status)
        await a.worker.step()
    assert told(receiver) == ["firing", "resolved"]
    between = datetime.fromtimestamp(clock.now + 0.5, UTC)
    await change(a, clock, "resolved")  # a second on
    await take(server, b, "b:1")
    clock.advance(1.0)
    applied = await b.states.apply([event("x", at=between)], clock.now)
    assert (applied.changed, applied.stale) == ([], 1)
    clock.advance(60.0)
    await a.worker.step()
    await b.worker.step()
    assert told(receiver) == ["firing", "resolved"]


async def test_a_down_that_waited_in_a_spool_past_the_replay_window_is_told_nothing(
    cluster: Cluster,
) -> None:
    """On Redis: a node's down spooled by a replica cut off from Redis, its return taken by the
    holder 30 s later while the alert is unknown there, then the down written (signed again,
    so not refused as expired) ten minutes on, past the replay window a resolve is remembered
    for in memory: it opens nothing and tells the receiver nothing, counted stale; the node
    going down again after is told."""
    server, _, clock, a, _ = cluster.parts
    await take(server, a, "a:1")
    down = datetime.fromtimestamp(clock.now, UTC)
    clock.advance(30.0)
    back = datetime.fromtimestamp(clock.now, UTC)
    assert (await a.states.apply([event("x", "resolved", at=back)], clock.now)).changed == []
    clock.advance(600.0)  # the replica that spooled the down reaches Redis again
    await stale_down_then_told_a_new_one(cluster, cluster.a, down)


async def test_a_down_sent_before_a_return_the_last_holder_took_is_told_nothing(
    cluster: Cluster,
) -> None:
    """On Redis: a node's return taken by a holder while its alert is unknown there, then its
    down sent before it delivered to the next holder: it opens nothing and tells the receiver
    nothing, counted stale there; the node going down again after is told."""
    server, _, clock, a, b = cluster.parts
    await take(server, a, "a:1")
    clock.advance(1.0)
    down, back = (datetime.fromtimestamp(clock.now - ago, UTC) for ago in (1.0, 0.5))
    assert (await a.states.apply([event("x", "resolved", at=back)], clock.now)).changed == []
    await take(server, b, "b:1")
    clock.advance(1.0)
    await stale_down_then_told_a_new_one(cluster, cluster.b, down)


async def test_a_return_of_an_unknown_alert_at_a_replica_that_lost_the_lease_is_left_to_it(
    cluster: Cluster,
) -> None:
    """On Redis: a node's return of an alert unknown at a replica that lost the work-queue lease
    is refused there (its entries left to the holder, which keeps its date), and the down sent
    before it, delivered to that holder, then opens nothing and tells the receiver nothing."""
    server, receiver, clock, a, b = cluster.parts
    await take(server, a, "a:1")
    hold(server, "b:1")
    clock.advance(1.0)
    down, back = (datetime.fromtimestamp(clock.now - ago, UTC) for ago in (1.0, 0.5))
    with pytest.raises(TransportError):
        await a.states.apply([event("x", "resolved", at=back)], clock.now)
    await b.states.take_up()
    assert (await b.states.apply([event("x", "resolved", at=back)], clock.now)).changed == []
    applied = await b.states.apply([event("x", at=down)], clock.now)
    assert (applied.changed, applied.stale) == ([], 1)
    await b.worker.step()
    assert told(receiver) == []


async def test_the_resolves_of_unknown_alerts_kept_in_redis_are_capped_oldest_first(
    cluster: Cluster,
) -> None:
    """On Redis: at most ``RESOLVES_REMEMBERED`` resolves of unknown alerts are kept in its
    dates, across a change of holder: beyond, the oldest are forgotten first and counted, so a
    flood of returns of distinct nodes does not grow Redis, a down sent before a resolve
    forgotten opens its alert, and one sent before a resolve kept is counted stale."""
    server, _, clock, a, b = cluster.parts
    await take(server, a, "a:1")
    clock.advance(60.0)
    first = clock.now - 30.0
    filled = await a.states.apply(returns(range(RESOLVES_REMEMBERED), first), clock.now)
    clock.advance(1.0)
    newer = range(RESOLVES_REMEMBERED, RESOLVES_REMEMBERED + 2)
    applied = await a.states.apply(returns(newer, first), clock.now)
    with server.client() as client:
        assert client.hlen(DATES) == RESOLVES_REMEMBERED
    assert (filled.changed, filled.forgotten, applied.forgotten) == ([], 0, 2)  # n0 and n1
    await take(server, b, "b:1")
    clock.advance(1.0)
    newest = range(RESOLVES_REMEMBERED + 2, RESOLVES_REMEMBERED + 3)
    assert (await b.states.apply(returns(newest, first), clock.now)).forgotten == 1  # n2
    with server.client() as client:
        assert client.hlen(DATES) == RESOLVES_REMEMBERED
        assert client.hget(DATES, "node_failure:n2") is None
    down = datetime.fromtimestamp(first - 1.0, UTC)
    applied = await b.states.apply(
        [event("node_failure:n2", at=down), event("node_failure:n3", at=down)], clock.now
    )
    assert ([record.alert_id for record in applied.changed], applied.stale) == (
        ["node_failure:n2"],
        1,
    )
