"""The cluster monitor's keys on a real redis-server: how long a flood of names stays in Redis,
what the keys carry across a restart of every replica, and back after Redis lost its data, a down
node evicted by every replica announced back once on the Redis bus, a left whose winner died
announced by another, and one ClusterHealth a period of Redis's clock from replicas of different
intervals, or whose clocks differ (by their own where the ACL refuses them TIME), and a claim the
ACL refused told until the next claim, of any key, gets through."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from bridge.backoff import Backoff
from bridge.bus import Envelope
from bridge.bus.redis import RedisTransport
from bridge.bus.redis.coordination import RedisCoordinator
from bridge.bus.redis.layout import Layout
from bridge.bus.redis.link import Link
from bridge.errors import TransportError
from bridge.messages import ClusterHealth, ClusterMembership, NodeHealth, NodeLifecycle
from bridge.sinks.alerts.sources import alert_events
from tests.cluster.helpers import Clock, Replica, envelope
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["redis_server"]  # the fixture, imported for the tests below

FORGET_MS = 10_000  # ten intervals
HOUR_MS = 3_600_000


@pytest.fixture
async def shared(
    redis_server: Callable[[], RedisServer],
) -> AsyncIterator[tuple[RedisServer, Callable[[str], RedisCoordinator]]]:
    """A server, and the coordinator a replica (by its consumer name) has on it."""
    server = redis_server()
    client = Redis.from_url(server.url)
    link = Link(server.url, client, Backoff(0.01, 0.1, 0.0))
    yield (
        server,
        lambda owner: RedisCoordinator(link, Layout("exesdb"), owner=owner, data_losses=lambda: 0),
    )
    await client.aclose()


def node_keys(server: RedisServer) -> dict[str, tuple[str, int]]:
    """Each node state key's node, value and milliseconds left to live."""
    with server.client() as client:
        found = {}
        for key in client.scan_iter("exesdb:cluster:node:*", count=1_000):
            found[key.decode().removeprefix("exesdb:cluster:node:")] = (
                client.get(key).decode(),
                client.pttl(key),
            )
        return found


async def test_a_flood_of_names_leaves_keys_for_no_longer_than_the_forget_time_and_an_hour(
    shared,
) -> None:
    """Every name of a flood gets a state key; up and down ones expire within
    EXESDB_NODE_FORGET_MS and an hour of their last transition, and once the names are
    forgotten within the hour."""
    server, coordinator = shared
    clock = Clock()
    replica = await Replica(
        "bridge-1", clock, coordinator("bridge-1:a"), forget_ms=FORGET_MS
    ).start()
    try:
        names = [f"flood-{n:03d}" for n in range(300)]
        await replica.hear_all(names)
        await replica.tick()
        keys = node_keys(server)
        assert sorted(keys) == names
        assert {value for value, _ in keys.values()} == {"up"}
        assert all(
            FORGET_MS + HOUR_MS - 60_000 < ttl <= FORGET_MS + HOUR_MS for _, ttl in keys.values()
        )
        clock.advance(3.5)
        await replica.tick()
        keys = node_keys(server)
        assert {value for value, _ in keys.values()} == {"down"}
        assert all(ttl <= FORGET_MS + HOUR_MS for _, ttl in keys.values())
        clock.advance(FORGET_MS / 1000)
        await replica.tick()
        keys = node_keys(server)
        assert sorted(keys) == names
        assert {value for value, _ in keys.values()} == {"forgotten"}
        assert all(HOUR_MS - 60_000 < ttl <= HOUR_MS for _, ttl in keys.values())
    finally:
        await replica.monitor.aclose()
        await replica.bridge.aclose()


async def test_a_node_down_before_every_replica_restarted_is_announced_back_by_a_new_one(
    shared,
) -> None:
    """The down key outlives the replica that announced the down: a replica started after it,
    which never heard the node go down, announces its return ``reconnected`` (which resolves
    its node_failure alert), not as a new member."""
    _, coordinator = shared
    clock = Clock()
    first = await Replica("bridge-1", clock, coordinator("bridge-1:a"), forget_ms=FORGET_MS).start()
    await first.hear("app-1")
    await first.tick()
    clock.advance(3.5)
    await first.tick()
    await first.monitor.aclose()
    await first.bridge.aclose()
    assert [
        e.payload.event
        for e in first.heard
        if isinstance(e.payload, NodeLifecycle) and e.payload.node == "app-1"
    ] == ["joined", "down"]
    second = await Replica(
        "bridge-2", clock, coordinator("bridge-2:b"), forget_ms=FORGET_MS
    ).start()
    try:
        await second.hear("app-1", NodeHealth(node="app-1", status="healthy"))  # no "joined"
        await second.tick()
        said = [
            e.payload.event
            for e in second.heard
            if isinstance(e.payload, NodeLifecycle) and e.payload.node == "app-1"
        ]
        assert said == ["reconnected"]
    finally:
        await second.monitor.aclose()
        await second.bridge.aclose()


async def test_a_live_nodes_key_is_refreshed_past_its_lifetime_and_a_forgotten_names_is_not(
    shared,
) -> None:
    """Every half EXESDB_NODE_FORGET_MS the monitor gives the keys of the nodes it tracks their
    whole lifetime again: a node up for longer than that keeps its ``up`` key, so a replica
    started later does not announce it ``node_added``, while the key of a name forgotten since
    still expires."""
    server, coordinator = shared
    clock = Clock()
    first = await Replica("bridge-1", clock, coordinator("bridge-1:a"), forget_ms=FORGET_MS).start()
    second: Replica | None = None
    flood = [f"flood-{n:02d}" for n in range(20)]
    try:
        await first.hear_all(["app-1", *flood])
        await first.tick()
        clock.advance(3.5)
        await first.hear("app-1")
        await first.tick()  # the flood's names down
        clock.advance(FORGET_MS / 1000)
        await first.hear("app-1")
        await first.tick()  # ... and forgotten
        keys = node_keys(server)
        assert keys["app-1"][0] == "up"
        assert {keys[name][0] for name in flood} == {"forgotten"}
        # Every key near the end of its life, as after a day of a node up and never heard
        # changing; then half the forget time passes.
        with server.client() as client:
            for name in keys:
                client.pexpire(f"exesdb:cluster:node:{name}", 500)
        clock.advance(FORGET_MS / 2000)
        await first.hear("app-1")
        await first.tick()
        await async_wait_until(
            lambda: not set(flood) & set(node_keys(server)), 5, "the forgotten names' keys gone"
        )
        live = node_keys(server).get("app-1")
        assert live is not None, "app-1's key expired with the others"
        value, ttl = live
        assert value == "up"
        assert FORGET_MS + HOUR_MS - 60_000 < ttl <= FORGET_MS + HOUR_MS
        second = await Replica(
            "bridge-2", clock, coordinator("bridge-2:b"), forget_ms=FORGET_MS
        ).start()
        await second.hear("app-1")
        await second.tick()
        assert not second.published(ClusterMembership)
    finally:
        for replica in (first, second):
            if replica is not None:
                await replica.monitor.aclose()
                await replica.bridge.aclose()


async def test_a_refresh_keeps_an_existing_keys_value_and_sets_a_missing_one(shared) -> None:
    """The coordinator's refresh gives existing keys a new time to live in one pipeline, their
    values kept, and sets a missing one (expired, or lost with Redis's data) to the value
    given, for that time to live."""
    server, coordinator = shared
    replica = coordinator("bridge-1:a")
    await replica.swap("cluster:node:app-1", "down", 1_000)
    await replica.refresh({"cluster:node:app-1": "up", "cluster:node:gone": "up"}, HOUR_MS)
    keys = node_keys(server)
    assert sorted(keys) == ["app-1", "gone"]
    assert keys["app-1"][0] == "down"
    assert keys["gone"][0] == "up"
    assert all(HOUR_MS - 60_000 < ttl <= HOUR_MS for _, ttl in keys.values())


def announced(replica: Replica, node: str, event: str) -> list[Envelope]:
    """The NodeLifecycle ``event`` of ``node`` that ``replica`` heard."""
    return [
        e
        for e in replica.heard
        if isinstance(e.payload, NodeLifecycle)
        and e.payload.node == node
        and e.payload.event == event
    ]


async def on_redis(
    server: RedisServer, clock: Clock, node: str, *, url: str | None = None, **options: Any
) -> Replica:
    """A started replica on the Redis bus of ``server`` (reached at ``url`` if given: a proxy),
    coordinating through its keys."""
    transport = RedisTransport(
        url or server.url,
        node=node,
        block_ms=100,
        backoff_seconds=0.05,
        max_backoff_seconds=0.5,
        registry=CollectorRegistry(),
    )
    coordinator = transport.capabilities.coordinator
    return await Replica(node, clock, coordinator, transport=transport, **options).start()


async def all_until(replicas: list[Replica], check: Callable[[Replica], bool], what: str) -> None:
    """Wait until ``check`` holds for each of ``replicas``, then until each has settled."""
    await async_wait_until(lambda: all(check(r) for r in replicas), 10, what)
    for replica in replicas:
        await replica.settle()


def beats(listener: Replica, beater: Replica) -> int:
    """The joined messages (starts and heartbeats) of ``beater`` that ``listener`` heard."""
    return len(announced(listener, beater.monitor.node, "joined"))


async def step(clock: Clock, replicas: list[Replica]) -> None:
    """One interval: every replica ticks (and beats), and each hears the others' beats."""
    clock.advance(1.0)
    pairs = [(r, other) for r in replicas for other in replicas if other is not r]
    seen = [beats(listener, beater) for listener, beater in pairs]
    for replica in replicas:
        await replica.naps.tick()
    await all_until(
        replicas,
        lambda _: all(beats(*pair) > then for pair, then in zip(pairs, seen, strict=True)),
        "each replica hearing the others' heartbeats",
    )


async def introduced(first: Replica, then: Replica) -> None:
    """Wait until two replicas started one after the other each track the other. ``then``
    hears ``first``'s start only if it was written after ``then`` found the streams' tails;
    ``first``, having heard ``then`` start, greets it at its next tick."""
    await async_wait_until(
        lambda: first.monitor.health().total_nodes == 2, 10, "the later replica's start heard"
    )
    await first.naps.tick()
    await async_wait_until(
        lambda: then.monitor.health().total_nodes == 2, 10, "the earlier replica heard"
    )
    for replica in (first, then):
        await replica.settle()


async def app_1_down(clock: Clock, replicas: list[Replica]) -> None:
    """Two replicas that know each other hear app-1, which goes silent: announced down once."""
    a, b = replicas
    await introduced(a, b)
    # A replica that ticked before its Redis link was up gives every node fresh intervals on its
    # next tick: that tick first.
    await step(clock, replicas)
    a.bridge.bus.publish_verified([envelope("app-1")])
    await all_until(replicas, lambda r: r.monitor.health().total_nodes == 3, "app-1 heard")
    for _ in range(4):
        await step(clock, replicas)
    await all_until(
        replicas, lambda r: len(announced(r, "app-1", "down")) == 1, "app-1 announced down"
    )


async def test_a_down_node_evicted_by_every_replica_is_announced_back_once_on_the_redis_bus(
    redis_server: Callable[[], RedisServer],
) -> None:
    """Two replicas on a real Redis bus each evict a down node at their cap and announce nothing
    (its node_failure stays open); heard again, it is tracked as new and announced reconnected
    by one of them, which both hear and which resolves that alert."""
    server = redis_server()
    clock = Clock()
    replicas: list[Replica] = []
    try:
        for node in ("bridge-a", "bridge-b"):
            replicas.append(await on_redis(server, clock, node, max_nodes=4))
        a, b = replicas

        async def until(check: Callable[[Replica], bool], what: str) -> None:
            await all_until(replicas, check, what)

        await app_1_down(clock, replicas)
        a.bridge.bus.publish_verified([envelope("flood-1"), envelope("flood-2")])
        await until(lambda r: r.forgotten("evicted") == 1, "app-1 evicted")
        for _ in range(2):
            await step(clock, replicas)
        assert announced(a, "app-1", "left") == []
        b.bridge.bus.publish_verified(
            [envelope("app-1", NodeHealth(node="app-1", status="healthy"))]
        )
        await until(lambda r: r.forgotten("evicted") == 2, "app-1 tracked again")
        await step(clock, replicas)
        await until(lambda r: len(announced(r, "app-1", "reconnected")) == 1, "app-1 back")
        await step(clock, replicas)  # an interval on, the other replica has not announced it too
        [back] = announced(a, "app-1", "reconnected")
        assert len(announced(b, "app-1", "reconnected")) == 1
        [resolved] = alert_events(back)
        assert (resolved.alert_id, resolved.status) == ("node_failure:app-1", "resolved")
        assert announced(a, "app-1", "left") == []
    finally:
        for replica in replicas:
            await replica.monitor.aclose()
            await replica.bridge.aclose()


async def test_a_left_whose_winner_died_before_publishing_is_announced_by_another_replica(
    redis_server: Callable[[], RedisServer],
) -> None:
    """Two replicas on a real Redis bus find a node down; its state key is set forgotten as the
    replica that forgot it first would, killed before its announcement: once both forget the
    node, one of them announces it left an interval on (the unheard claim), which both hear and
    which resolves its node_failure alert."""
    server = redis_server()
    clock = Clock()
    replicas: list[Replica] = []
    try:
        for node in ("bridge-a", "bridge-b"):
            replicas.append(await on_redis(server, clock, node, forget_ms=FORGET_MS))
        a, b = replicas
        await app_1_down(clock, replicas)
        with server.client() as client:
            assert client.set("exesdb:cluster:node:app-1", "forgotten", px=HOUR_MS, xx=True)
        for _ in range(FORGET_MS // 1000):
            await step(clock, replicas)
        await all_until(replicas, lambda r: r.forgotten("silent") == 1, "app-1 forgotten")
        assert announced(a, "app-1", "left") == []
        for _ in range(2):
            await step(clock, replicas)
        await all_until(
            replicas, lambda r: len(announced(r, "app-1", "left")) == 1, "app-1 announced left"
        )
        await step(clock, replicas)  # an interval on, the other replica has not announced it too
        [left] = announced(a, "app-1", "left")
        assert len(announced(b, "app-1", "left")) == 1
        assert isinstance(left.payload, NodeLifecycle)
        assert left.payload.metadata["unheard"] is True
        [resolved] = alert_events(left)
        assert (resolved.alert_id, resolved.status) == ("node_failure:app-1", "resolved")
    finally:
        for replica in replicas:
            await replica.monitor.aclose()
            await replica.bridge.aclose()


async def test_the_keys_of_up_nodes_come_back_after_redis_lost_its_data(
    redis_server: Callable[[], RedisServer],
) -> None:
    """Redis restarted without its data while two replicas run: each finds it lost its data (a
    new epoch) at its next write and sets again the keys of the nodes it tracks, so that a
    replica restarted after it announces no up node ``node_added``, nor does the other one
    announce the restarted replica so."""
    server = redis_server()
    clock = Clock()
    replicas: list[Replica] = []
    try:
        for node in ("bridge-a", "bridge-b"):
            replicas.append(await on_redis(server, clock, node))
        a, b = replicas

        async def until(check: Callable[[Replica], bool], what: str) -> None:
            await all_until(replicas, check, what)

        def heard() -> tuple[int, ...]:
            """The heartbeats each replica heard from the other, and from app-1."""
            return (
                beats(a, b),
                beats(b, a),
                len(announced(a, "app-1", "joined")),
                len(announced(b, "app-1", "joined")),
            )

        async def step() -> None:
            """One interval: app-1 and both replicas beat, and each replica hears the others."""
            clock.advance(1.0)
            seen = heard()
            b.bridge.bus.publish_verified([envelope("app-1")])
            for replica in replicas:
                await replica.naps.tick()
            await until(
                lambda _: all(now > then for now, then in zip(heard(), seen, strict=True)),
                "each replica hearing the others' heartbeats",
            )

        await step()
        await until(lambda r: r.monitor.health().total_nodes == 3, "each node heard")
        await step()  # each replica announced (or found announced) each node up
        up = {"app-1": "up", "bridge-a": "up", "bridge-b": "up"}

        def keys() -> dict[str, str]:
            """Each node key's value, by node."""
            return {name: value for name, (value, _) in node_keys(server).items()}

        assert keys() == up
        server.restart()
        assert keys() == {}
        deadline = time.monotonic() + 10
        while keys() != up:  # each replica's next write after the restart finds the new epoch
            assert time.monotonic() < deadline, f"the node keys not back: {keys()}"
            await step()
        assert [r.transport.capabilities.coordinator.data_losses for r in replicas] == [1, 1]
        members = len(b.published(ClusterMembership))
        await a.monitor.aclose()
        await a.bridge.aclose()
        replicas.remove(a)
        restarted = a = await on_redis(server, clock, "bridge-a")
        replicas.append(restarted)
        await step()
        await until(lambda r: r.monitor.health().total_nodes == 3, "app-1 and each replica heard")
        await step()
        assert not restarted.published(ClusterMembership)
        assert len(b.published(ClusterMembership)) == members
        assert keys() == up
    finally:
        for replica in replicas:
            await replica.monitor.aclose()
            await replica.bridge.aclose()


def redis_ms(server: RedisServer) -> int:
    """Redis's clock (``TIME``), in Unix milliseconds."""
    with server.client() as client:
        seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


class Claims:
    """Ticks of replicas sharing ``exesdb:cluster:health``, each bracketed by Redis's clock, and
    which of them claimed the periodic ClusterHealth (the key changed across the tick)."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        # Each tick: Redis ms before and after it (for a claim, the time the key gives it when
        # that falls between the two: when Redis made it), the claimer if it claimed, and the
        # replica that ticked.
        self.calls: list[tuple[int, int, str | None, str]] = []

    def key(self) -> bytes | None:
        with self.server.client() as client:
            value: bytes | None = client.get("exesdb:cluster:health")
            return value

    async def tick(self, replica: Replica) -> None:
        """One tick of ``replica``'s loop, recorded."""
        before, value = redis_ms(self.server), self.key()
        await replica.naps.tick()
        after, now = redis_ms(self.server), self.key()
        if now == value or now is None:
            self.calls.append((before, after, None, replica.monitor.node))
            return
        at = int(now.split(b":")[0])
        when = (at, at) if before <= at <= after else (before, after)
        self.calls.append((*when, replica.monitor.node, replica.monitor.node))

    async def run(self, period_ms: int, periods: int, *order: Callable[[], list[Replica]]) -> None:
        """Tick the replicas ``order`` gives (asked again at each step) for ``periods`` whole
        periods of Redis's clock, a step an eighth of a period apart."""
        end = (redis_ms(self.server) // period_ms + periods + 1) * period_ms
        while redis_ms(self.server) < end:
            for pick in order:
                for replica in pick():
                    await self.tick(replica)
            await asyncio.sleep(period_ms / 8000)  # ticks a few to a period, as a loop's are

    def check(
        self, period_ms: int, since: int = 0, pace: set[str] | None = None
    ) -> dict[int, list[str]]:
        """The claims in each period of ``period_ms`` (by Redis's clock) from the first whole
        one on (and from Redis ms ``since``) in which a tick was made whole; asserts that none
        has two claims sure to be in it, and that each in which a tick of ``pace`` (by default
        any replica) was made whole has a claim that may be in it (one whose time is not known
        but to be within a tick that spans two periods may be in either). A replica of a
        longer interval than ``period_ms`` is not asked while its own claim holds, for a period
        of its own: a period in which only it ticked (the faster held up) may go unclaimed."""
        calls = [c for c in self.calls if c[0] >= since]
        first = calls[0][0] // period_ms + 1
        sure: dict[int, list[str]] = {}
        maybe: set[int] = set()
        for before, after, claimer, _ in calls:
            if claimer is None:
                continue
            maybe.update(range(before // period_ms, after // period_ms + 1))
            if before // period_ms == after // period_ms >= first:
                sure.setdefault(before // period_ms, []).append(claimer)
        ticked = {
            before // period_ms
            for before, after, _, ticker in calls
            if before // period_ms == after // period_ms >= first
            and (pace is None or ticker in pace)
        }
        assert not {k: v for k, v in sure.items() if len(v) > 1}, "claimed twice in a period"
        assert sorted(ticked - maybe) == [], "periods nobody claimed"
        return sure


async def test_replicas_whose_clocks_differ_claim_one_cluster_health_a_period_of_redis_clock(
    shared,
) -> None:
    """Two replicas whose clocks differ by 40 % of their interval publish the periodic
    ClusterHealth once in each period of Redis's clock between them, as the one behind ticks
    alone, then both, then the one behind alone again: never twice in a period (the one ahead
    joining), and no period skipped (the one ahead gone, its claim dated in a period to come)."""
    server, coordinator = shared
    period_ms = 250
    behind, ahead = Clock(), Clock()

    def set_clocks() -> None:
        now = time.time()
        behind.now, ahead.now = now, now + 0.4 * period_ms / 1000

    set_clocks()
    a = await Replica("bridge-1", behind, coordinator("bridge-1:a"), interval_ms=period_ms).start()
    b = await Replica("bridge-2", ahead, coordinator("bridge-2:b"), interval_ms=period_ms).start()
    claims = Claims(server)
    try:

        def alone() -> list[Replica]:
            set_clocks()
            return [a]

        def both() -> list[Replica]:
            set_clocks()
            return [a, b]

        await claims.run(period_ms, 3, alone)
        await claims.run(period_ms, 3, both)
        await claims.run(period_ms, 3, alone)
        claimed = claims.check(period_ms)
        assert len(claimed) >= 8, claimed
    finally:
        for replica in (a, b):
            await replica.monitor.aclose()
            await replica.bridge.aclose()


async def test_replicas_of_different_intervals_publish_one_cluster_health_a_period(
    shared,
) -> None:
    """On one Redis, a replica at 200 ms and one at 600 ms publish the periodic ClusterHealth
    once in each 200 ms of Redis's clock between them, whichever ticks first (the slower finds
    its periods claimed, or claims one of them); once the faster stops, the slower publishes
    once a 600 ms period."""
    server, coordinator = shared
    clock = Clock()
    fast = await Replica("bridge-1", clock, coordinator("bridge-1:a"), interval_ms=200).start()
    slow = await Replica("bridge-2", clock, coordinator("bridge-2:b"), interval_ms=600).start()
    claims = Claims(server)
    try:

        def either_first() -> list[Replica]:
            # The slower first in every other period of the faster, so it takes its turn.
            return [slow, fast] if (redis_ms(server) // 200) % 2 else [fast, slow]

        await claims.run(200, 8, either_first)
        claimed = claims.check(200, pace={"bridge-1"})
        assert len(claimed) >= 7, claimed
        assert "bridge-2" in {name for names in claimed.values() for name in names}
        # The faster one stops ticking: after one more claim of a 200 ms period (the key still
        # says the faster's), the slower one claims once in each of its own periods.
        alone = redis_ms(server)
        await claims.run(600, 4, lambda: [slow])
        taken_over = next(b for b, _, who, _ in claims.calls if b >= alone and who is not None)
        per_period = claims.check(600, since=(taken_over // 600 + 1) * 600)
        assert len(per_period) >= 2, per_period
    finally:
        for replica in (fast, slow):
            await replica.monitor.aclose()
            await replica.bridge.aclose()


async def test_a_claim_per_period_in_redis_is_dated_by_redis_and_lasts_two_periods(shared) -> None:
    """The claim's key holds when it was made, by Redis's clock, and the claimer's period, and
    expires two of its periods on; a claim of a later period (a clock ahead) holds for an
    earlier one, of the shorter of the two periods; a key holding something else is no claim.
    (Each set by hand is asked about by a replica that has not asked before: one that has knows
    when the period it found claimed ends, and does not ask Redis again before.)"""
    server, coordinator = shared
    before = redis_ms(server)
    assert await coordinator("bridge-1:a").once_per_period("cluster:health", 30_000)
    after = redis_ms(server)
    with server.client() as client:
        at, period = client.get("exesdb:cluster:health").decode().split(":")
        assert before <= int(at) <= after
        assert period == "30000"
        assert 59_000 < client.pttl("exesdb:cluster:health") <= 60_000
        for value in ("not a claim", "1800000010000", "1800000010000:0"):
            client.set("exesdb:cluster:health", value)
            assert await coordinator("bridge-2:b").once_per_period("cluster:health", 1_000)
        # A 1.5 s claimer beside a 1 s one goes by seconds: a claim two seconds ahead holds,
        # one two seconds behind does not.
        client.set("exesdb:cluster:mixed", f"{redis_ms(server) + 2_000}:1000")
        assert not await coordinator("bridge-3:c").once_per_period("cluster:mixed", 1_500)
        client.set("exesdb:cluster:mixed", f"{redis_ms(server) - 2_000}:1000")
        assert await coordinator("bridge-4:d").once_per_period("cluster:mixed", 1_500)


def scripts_run(server: RedisServer) -> int:
    """How many scripts (EVAL, EVALSHA) redis-server ran so far (``INFO commandstats``)."""
    with server.client() as client:
        stats = client.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("eval", "evalsha")
    )


async def test_a_claim_per_period_asked_at_every_tick_runs_its_script_once_a_period(
    shared,
) -> None:
    """Asked for the periodic claim eight times a period (a monitor's ticks), a replica runs the
    claim's script on Redis once a period, not at every tick, and still claims each period once
    and as it begins: Redis said when the period it found claimed ends."""
    server, coordinator = shared
    replica = coordinator("bridge-1:a")
    period_ms, periods = 400, 6
    before = scripts_run(server)
    end = (redis_ms(server) // period_ms + periods + 1) * period_ms
    claimed: list[int] = []  # when Redis made each claim (the key holds it), not a tick's start
    with server.client() as client:
        while redis_ms(server) < end:
            if await replica.once_per_period("cluster:health", period_ms):
                claimed.append(int(client.get("exesdb:cluster:health").split(b":")[0]))
            await asyncio.sleep(period_ms / 8000)  # ticks eight to a period, as a loop's are
    ran = scripts_run(server) - before
    assert ran <= 2 * (periods + 1), f"{ran} scripts for {periods + 1} periods"
    by_period = [at // period_ms for at in claimed]
    assert len(set(by_period)) == len(by_period) >= periods, claimed
    # Each claimed early in its period, not a period late (which would leave every other period
    # unclaimed, too): within half of it, a loaded host's late ticks and answers allowed for.
    assert all(at % period_ms < period_ms / 2 for at in claimed[1:]), claimed


@asynccontextmanager
async def time_refused(
    server: RedisServer,
    wall_clock: Callable[[], float] = lambda: 1_800_000_010.25,
    monotonic: Callable[[], float] = time.monotonic,
) -> AsyncIterator[RedisCoordinator]:
    """A coordinator on ``server`` as the user ``limited`` (password ``pw``), whom the ACL
    refuses TIME (granted with ``ACL SETUSER limited +time``), its own clock ``wall_clock``
    (fixed at 1 800 000 010.25 s unless given); its client closed afterwards."""
    with server.client() as admin:
        admin.execute_command("ACL", "SETUSER", "limited", "on", ">pw", "~*", "+@all", "-time")
    url = f"redis://limited:pw@127.0.0.1:{server.port}/0"
    client = Redis.from_url(url)
    link = Link(url, client, Backoff(0.01, 0.1, 0.0))
    try:
        yield RedisCoordinator(
            link,
            Layout("exesdb"),
            owner="bridge-1:a",
            data_losses=lambda: 0,
            wall_clock=wall_clock,
            monotonic=monotonic,
        )
    finally:
        await client.aclose()


async def test_a_user_refused_time_claims_by_the_replicas_clock_and_is_told_once(
    redis_server: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """Where the ACL refuses the bridge's user TIME, a claim per period is dated by the
    replica's own clock rather than refused (every period would go unclaimed), one warning
    saying so; granted TIME, claims go by Redis's clock again, and that is said once too."""
    server = redis_server()
    caplog.set_level(logging.INFO, "bridge.bus.redis.coordination")
    async with time_refused(server) as coordinator:
        assert await coordinator.once_per_period("cluster:health", 1_000)
        assert not await coordinator.once_per_period("cluster:health", 1_000)
        with server.client() as admin:
            assert admin.get("exesdb:cluster:health") == b"1800000010250:1000"
            admin.execute_command("ACL", "SETUSER", "limited", "+time")
        assert await coordinator.once_per_period("cluster:other", 1_000)
        with server.client() as admin:
            at = int(admin.get("exesdb:cluster:other").split(b":")[0])
        assert abs(at - redis_ms(server)) < 60_000
        told = [r.getMessage() for r in caplog.records]
        assert len(told) == 2, told
        assert "refuses the bridge's user TIME" in told[0]
        assert "pw" not in told[0]
        assert "goes by Redis's clock again" in told[1]


async def test_a_claim_is_asked_again_as_soon_as_the_period_it_found_held_ends(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A claim made 0.1 ms before its period ends, dated 1 ms before (the clock cut to whole
    milliseconds), does not keep the replica from asking 0.5 ms later, in the next period: it
    claims that one, not a tick later (which, ticks a period apart, would leave it unclaimed)."""
    server = redis_server()
    wall, steady = [1_800_000_010.1999], [0.0]
    async with time_refused(server, lambda: wall[0], lambda: steady[0]) as coordinator:
        assert await coordinator.once_per_period("cluster:health", 200)
        wall[0] += 0.0005
        steady[0] += 0.0005
        assert await coordinator.once_per_period("cluster:health", 200)


# Each coordination call, given the nodes it names: the second call names others than the first
# (another key, or another count of keys).
_VARIED: list[tuple[str, Callable[[RedisCoordinator, list[str]], Awaitable[object]]]] = [
    ("once", lambda c, nodes: c.once(f"cluster:unheard:{nodes[-1]}:down", 1_000)),
    ("swap", lambda c, nodes: c.swap(f"cluster:node:{nodes[-1]}", "up", 1_000)),
    ("refresh", lambda c, nodes: c.refresh({f"cluster:node:{n}": "up" for n in nodes}, 1_000)),
]


@pytest.mark.parametrize(("name", "call"), _VARIED, ids=[name for name, _ in _VARIED])
async def test_a_refused_claim_ends_when_the_next_of_another_key_gets_through(
    redis_server: Callable[[], RedisServer],
    name: str,
    call: Callable[[RedisCoordinator, list[str]], Awaitable[object]],
) -> None:
    """A coordination call the ACL refused is told as refused until that work next gets
    through, whatever key it names: the next is often of another node's key, and one of the
    same key may never come, the refusal told for nothing until it aged out."""
    server = redis_server()
    with server.client() as admin:
        admin.execute_command("ACL", "SETUSER", "limited", "on", ">pw", "~*", "+@all", "-set")
    url = f"redis://limited:pw@127.0.0.1:{server.port}/0"
    client = Redis.from_url(url)
    link = Link(url, client, Backoff(0.01, 0.1, 0.0))
    coordinator = RedisCoordinator(link, Layout("exesdb"), owner="bridge-1:a", data_losses=int)
    try:
        link.up()  # the loops get through: only the coordination call is refused
        with pytest.raises(TransportError):
            await call(coordinator, ["n1"])
        assert "NOPERM" in (link.trouble() or ""), name
        with server.client() as admin:
            admin.execute_command("ACL", "SETUSER", "limited", "+set")
        await call(coordinator, ["n1", "n2"])
        assert (link.trouble(), link.usable) == (None, True)
    finally:
        await client.aclose()


async def test_a_refused_cluster_health_claim_is_tried_again_until_granted_and_then_ready(
    redis_server: Callable[[], RedisServer],
) -> None:
    """A replica whose Redis user may not run the periodic ClusterHealth's claim (a script) is
    unready, saying so, but its monitor goes on ticking (it still hears the bus) and tries the
    claim again: granted, the next tick claims and publishes, and the replica is ready at once,
    not once the refusal ages out."""
    server = redis_server()
    with server.client() as admin:
        admin.execute_command(
            "ACL", "SETUSER", "limited", "on", ">pw", "~*", "+@all", "-eval", "-evalsha"
        )
    url = f"redis://limited:pw@127.0.0.1:{server.port}/0"
    replica = await on_redis(server, Clock(), "bridge-1", url=url)
    try:
        for _ in range(2):
            await replica.tick()
        said = replica.bridge.bus.readiness() or ""
        assert "no permissions to run the 'eval' command" in said, said
        assert replica.published(ClusterHealth) == []
        with server.client() as admin:
            admin.execute_command("ACL", "SETUSER", "limited", "+eval", "+evalsha")
        await replica.tick()
        assert replica.bridge.bus.readiness() is None
        # What it published comes back through Redis, as the others hear it.
        await async_wait_until(lambda: replica.published(ClusterHealth), 5, "its ClusterHealth")
    finally:
        await replica.monitor.aclose()
        await replica.bridge.aclose()
