"""Resolves left out as stale on a real redis-server: what a receiver was told firing stands."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.backoff import Backoff
from bridge.bus.redis.shared_state import RedisSharedState
from bridge.receivers import resolve_receivers
from bridge.sinks.alerts.delivery import DeliveryWorker, RetryPolicy, WebhookSender, keep_for
from bridge.sinks.alerts.index import AlertIndex
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.payload import build_payloads
from bridge.sinks.alerts.states import AlertStates
from bridge.sinks.alerts.thread import DbThread
from bridge.sinks.alerts.vetting import DeliveryVetting
from tests.integration.servers.redis import RedisServer, redis_server
from tests.integration.servers.webhook import Answer, WebhookReceiver, webhook_receiver
from tests.integration.test_redis_state import hold, states
from tests.sinks.alerts.helpers import T0, db, event
from tests.support import ManualClock

pytestmark = pytest.mark.integration

__all__ = ["db", "redis_server", "states", "webhook_receiver"]  # the fixtures used below

LEADER = "exesdb:bus:leader"


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


@pytest.fixture
async def replicas(
    tmp_path: Path,
    states: tuple[RedisServer, RedisSharedState, RedisSharedState],
    db: DbThread,
    webhook_receiver: Callable[..., WebhookReceiver],
) -> AsyncIterator[tuple[RedisServer, WebhookReceiver, ManualClock, Replica, Replica]]:
    """Replicas a and b on one redis-server, each with its outbox, sending to one receiver."""
    server, a_state, b_state = states
    receiver = webhook_receiver()
    [hook], _ = resolve_receivers(
        [receiver.url], None, secret=None, timeout=5.0, max_alerts=50, min_severity="info"
    )
    clock = ManualClock(T0)
    made: list[Replica] = []
    for state, consumer in ((a_state, "a:1"), (b_state, "b:1")):
        outbox = Outbox.in_dir(tmp_path / consumer[0], urls=[hook.key])
        lease = Lease(server, consumer)

        def holding(lease: Lease = lease) -> bool:
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
            holding=holding,
            monotonic=clock,
        )
        vetting = DeliveryVetting(
            states=alert_states,
            alerts=outbox.alerts,
            queue=outbox.queue,
            db=db,
            lease=lease,  # type: ignore[arg-type]  # the two members vetting reads, and leading
            withheld=lambda count: None,
            changed=lambda: None,
            clock=clock,
        )
        sender = WebhookSender(hook, clock=clock)
        worker = DeliveryWorker(
            hook.key,
            queue=outbox.queue,
            db=db,
            sender=sender,
            policy=RetryPolicy(Backoff(base=1.0, cap=4.0, rng=lambda: 0.5), deadline=3600.0),
            group_wait=0.0,
            build=lambda records: build_payloads(records, max_alerts=50, external_url="http://b"),
            keep=keep_for(hook),
            vet=vetting.vet,
            report=lambda delivery, result, state, number: None,
            clock=clock,
        )
        made.append(Replica(outbox, alert_states, worker, sender))
    a, b = made
    try:
        yield server, receiver, clock, a, b
    finally:
        for replica in made:
            await replica.sender.aclose()
            replica.outbox.close()


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


async def test_a_resolve_made_after_one_left_out_as_stale_reaches_the_receiver(replicas) -> None:
    """A receiver told an alert firing, whose resolve at replica b is left out as stale (a,
    holding the lease meanwhile, fired it anew and resolved it, and that resolve is left out in
    turn as b fires it anew): the resolve b makes next still reaches it, so it does not keep the
    alert firing while every replica has it resolved."""
    server, receiver, clock, a, b = replicas
    await take(server, a, "a:1")
    await change(a, clock, "firing")
    await a.worker.step()
    assert [r.json()["alerts"][0]["status"] for r in receiver.accepted()] == ["firing"]
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
    statuses = [r.json()["alerts"][0]["status"] for r in receiver.accepted()]
    assert statuses[-1] == "resolved"
