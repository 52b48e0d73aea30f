"""In-process bridge replicas on a real redis-server, shared by the Redis bus tests: ``Replica``,
the ``replicas`` fixture that closes them, and ways to look at Redis (entries pending,
commands run), a lease holder with a handler of the test's, and entries written straight
into it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from bridge.app import Bridge
from bridge.bus import Envelope, Keyring, new_message_id
from bridge.bus.redis import GROUP, RedisTransport
from bridge.messages import SystemAlert, utc_now
from bridge.settings import Settings
from tests.integration.servers.redis import RedisServer
from tests.support import (
    TEST_SECRET,
    async_wait_until,
)

__all__ = [
    "ALERTS",
    "Replica",
    "calls",
    "has_seen",
    "holder_and_publisher",
    "pending",
    "refused_writes",
    "replicas",
    "signed_entry",
]

ALERTS = "ex_esdb_alerts"


class Replica:
    """An in-process bridge on the Redis bus, recording what its subscribers got."""

    def __init__(
        self,
        url: str,
        node: str,
        *,
        group: bool = True,
        claim_idle_ms: int = 300,
        buffer_size: int = 10_000,
        secret: str = TEST_SECRET,
        replay_window_ms: int = 300_000,
        spool_dir: Path | None = None,
        block_ms: int = 200,
        http: bool = False,
        max_inflight: int = 4_000,
    ) -> None:
        self.registry = CollectorRegistry()
        self.http = http  # served on a loopback port (``scrape``)
        settings = Settings(
            **{  # type: ignore[arg-type]
                "EXESDB_BUS": url,
                "SECRET_KEY_BASE": secret,
                "EXESDB_NODE": node,
                "EXESDB_REPLAY_WINDOW_MS": str(replay_window_ms),
                "EXESDB_HTTP_ADDR": "127.0.0.1:0",
            }
        )
        self.transport = RedisTransport(
            url,
            node=node,
            claim_idle_ms=claim_idle_ms,
            buffer_size=buffer_size,
            replay_window_ms=replay_window_ms,
            spool_dir=spool_dir,
            block_ms=block_ms,
            max_inflight=max_inflight,
            backoff_seconds=0.05,
            max_backoff_seconds=0.5,
            registry=self.registry,
        )
        self.bridge = Bridge(
            settings, registry=self.registry, transport=self.transport, components=[]
        )
        self.seen: list[Envelope] = []
        self.taken: list[Envelope] = []
        self.bridge.bus.subscribe("fanout", self.seen.append)
        if group:
            self.bridge.bus.subscribe("work", self.taken.append, instances=[ALERTS], group=True)

    async def start(self) -> Replica:
        await self.bridge.start(serve_http=self.http)
        return self

    async def scrape(self) -> dict[str, float]:
        """The samples without labels of the replica's /metrics (served with ``http``)."""
        assert self.bridge.address is not None
        host, port = self.bridge.address
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{host}:{port}/metrics") as response,
        ):
            assert response.status == 200
            text = await response.text()
        samples = (line.split(" ") for line in text.splitlines() if not line.startswith("#"))
        return {fields[0]: float(fields[1]) for fields in samples if len(fields) == 2}

    def publish_alert(self, number: int) -> str:
        """Publish SystemAlert number ``number``; returns its alert_id."""
        alert = SystemAlert(
            alert_id=f"alert-{number:04d}",
            severity="critical",
            category="system",
            title=f"alert {number}",
            description="test",
            source="test",
            node=self.bridge.settings.node,
        )
        result = self.bridge.bus.publish("node_failure", alert)
        assert result, result
        return alert.alert_id

    def ready(self) -> bool:
        return bool(self.bridge.readiness()["bus"]["ready"])

    def reason(self) -> str:
        """Why the bus is not ready, as readiness tells it."""
        return str(self.bridge.readiness()["bus"]["reason"])

    def seen_alerts(self) -> list[str]:
        return [e.payload.alert_id for e in self.seen if isinstance(e.payload, SystemAlert)]

    def taken_alerts(self) -> list[str]:
        return [e.payload.alert_id for e in self.taken if isinstance(e.payload, SystemAlert)]

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    async def aclose(self) -> None:
        await self.bridge.aclose()


@pytest.fixture
async def replicas():
    """A list to put started replicas in; every one is closed afterwards."""
    started: list[Replica] = []
    yield started
    for replica in started:
        await replica.aclose()


def has_seen(replica: Replica, alerts: list[str]) -> bool:
    return sorted(replica.seen_alerts()) == alerts


def pending(server: RedisServer, instance: str = ALERTS) -> int:
    with server.client() as client:
        try:
            return int(client.xpending(f"exesdb:bus:{instance}", GROUP)["pending"])
        except Exception:
            return -1


def signed_entry(
    *, secret: str = TEST_SECRET, tamper: bool = False, message_id: str | None = None
) -> dict[bytes, bytes]:
    """Stream fields for a SystemAlert envelope signed with ``secret`` (body changed if told)."""
    now = utc_now()
    alert = SystemAlert(
        alert_id="forged",
        severity="critical",
        category="security",
        title="forged",
        description="x",
        source="intruder",
        node="intruder",
    )
    envelope = Envelope(
        message_id or new_message_id(),
        ALERTS,
        "node_failure",
        alert.TAG,
        "intruder",
        now,
        alert,
        now.timestamp(),
    )
    body = envelope.to_bytes()
    signature = Keyring.from_secrets(secret).sign(body)
    if tamper:
        body = body.replace(b'"critical"', b'"info"')
    return {b"e": body, b"s": signature.encode()}


def calls(server: RedisServer, command: str) -> int:
    """How many times ``command`` (``xinfo|groups``: a subcommand) ran on ``server``."""
    with server.client() as client:
        stats = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def holder_and_publisher(
    server: RedisServer,
    replicas: list[Replica],
    handler: Callable[[Envelope], Awaitable[None] | None],
) -> Replica:
    """A lease holder whose alert stage is ``handler`` alone, and a publisher beside it."""
    holder = Replica(server.url, "holder", group=False)
    holder.bridge.bus.subscribe("flaky", handler, instances=[ALERTS], group=True)
    await holder.start()
    replicas.append(holder)
    await async_wait_until(lambda: holder.transport.leading, 10, "the holder holds the lease")
    publisher = await Replica(server.url, "publisher", group=False).start()
    replicas.append(publisher)
    await async_wait_until(publisher.ready, 10)
    return publisher


def refused_writes(replica: Replica) -> bool:
    """Whether the replica's bus tells its cluster monitor that Redis refuses writes (READONLY)."""
    return "refuses writes for now: READONLY" in (replica.bridge.bus.hearing() or "")
