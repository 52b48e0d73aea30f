"""What the Redis spool and writer tests share: alerts signed with the test's keyring and
their ids read back, a writer run alone on a ``Link`` (with a spool, if given), and where a
task is suspended."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from bridge.backoff import Backoff
from bridge.bus import Envelope, Keyring, new_message_id
from bridge.bus.redis.layout import Layout
from bridge.bus.redis.link import Link
from bridge.bus.redis.spool import Spool
from bridge.bus.redis.writer import Writer
from bridge.messages import SystemAlert
from tests.support import TEST_SECRET

KEYRING = Keyring.from_secrets(TEST_SECRET)


def alert(number: int) -> Envelope:
    """A SystemAlert envelope whose alert_id carries ``number``."""
    now = datetime.now(UTC)
    payload = SystemAlert(
        alert_id=f"spooled-{number:04d}",
        severity="critical",
        category="system",
        title=f"alert {number}",
        description="spool test",
        source="test",
        node="app-1",
    )
    return Envelope(
        new_message_id(), payload.INSTANCE, "t", payload.TAG, "app-1", now, payload, now.timestamp()
    )


def awaiting(task: asyncio.Task[Any]) -> list[str]:
    """The names of the coroutines ``task`` is suspended in, the outermost first."""
    names = []
    awaited: Any = task.get_coro()
    while awaited is not None and hasattr(awaited, "cr_code"):
        names.append(awaited.cr_code.co_name)
        awaited = awaited.cr_await
    return names


def alert_ids(envelopes: list[Envelope]) -> list[str]:
    """The alert_id of each SystemAlert of ``envelopes``, in their order."""
    return [e.payload.alert_id for e in envelopes if isinstance(e.payload, SystemAlert)]


@asynccontextmanager
async def running_writer(
    url: str,
    spool: Spool | None = None,
    *,
    clock: Callable[[], float] = time.time,
    client: Redis | None = None,
    consumer: str = "",
) -> AsyncIterator[tuple[Writer, Link]]:
    """A writer (and its link) on Redis at ``url``, with ``spool`` if given, reading ``clock``,
    through ``client`` if given (closed afterwards), its loop running (and stopped
    afterwards); ``consumer`` names its batches' mark (none by default)."""
    client = Redis.from_url(url) if client is None else client
    link = Link(url, client, Backoff(0.01, 0.1, 0.0))
    positioned = asyncio.Event()
    positioned.set()  # no fan-out reader here to find the tails
    writer = Writer(
        link,
        Layout("exesdb"),
        positioned=positioned,
        buffer_size=100,
        stream_maxlen=1000,
        batch_size=10,
        claim_idle_ms=30_000,
        replay_window_ms=300_000,
        clock=clock,
        spool=spool,
        consumer=consumer,
    )
    running = asyncio.create_task(link.keep_running("writer", writer.run))
    try:
        yield writer, link
    finally:
        link.stopping.set()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await client.aclose()
