"""The Redis transport: the writer, the fan-out reader and the work queue on one shared client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from bridge.backoff import Backoff
from bridge.bus.capabilities import TransportCapabilities
from bridge.bus.envelope import Envelope
from bridge.bus.redis.consumer_group import ConsumerGroup
from bridge.bus.redis.coordination import RedisCoordinator
from bridge.bus.redis.fanout import FanOutReader
from bridge.bus.redis.layout import Layout
from bridge.bus.redis.lease import Lease
from bridge.bus.redis.link import RETRYABLE, Link, redis_client
from bridge.bus.redis.metrics import RedisCollector
from bridge.bus.redis.node_name import RedisNodeNameCheck
from bridge.bus.redis.shared_state import RedisSharedState
from bridge.bus.redis.spool import FOLDER as SPOOL_FOLDER
from bridge.bus.redis.spool import Spool
from bridge.bus.redis.tls_rotation import TLSRotation
from bridge.bus.redis.work_queue import WorkQueue
from bridge.bus.redis.writer import Writer
from bridge.bus.transport import Durability, Frame, FrameReceiver
from bridge.errors import ConfigError
from bridge.redaction import safe_url
from bridge.tasks import cancel_and_wait

if TYPE_CHECKING:
    from bridge.settings import Settings

__all__ = ["RedisTransport"]

_logger = logging.getLogger(__name__)

# Spool segment files: a sixteenth of the spool's size, within these bounds.
_MIN_SEGMENT_BYTES: Final = 1024 * 1024
_MAX_SEGMENT_BYTES: Final = 16 * 1024 * 1024
# How long a graceful stop waits to delete its node-name mark (docs/redis.md).
_FORGET_SECONDS: Final = 0.5
# What the spool's disk gets at a stop to finish a write under way, at least (a healthy disk's
# fsync), however little of the stop's time is left.
_SPOOL_CLOSE_SECONDS: Final = 0.5
# How long a stop given no deadline waits to give the work-queue lease up (acknowledgements
# first: ``WorkQueue.release``).
_RELEASE_SECONDS: Final = 2.0
# What the transport's own tasks get to end once cancelled at a stop, however little of its time
# is left (one ends at its next await: a moment, unless the loop is loaded).
_TASKS_SECONDS: Final = 0.1
# How long start waits for the fan-out reader to find where each stream ends (docs/redis.md):
# longer than a connection's timeout (2 s), so an unreachable Redis ends it by failing first.
_POSITION_SECONDS: Final = 5.0
# How often the spool's files are compared with what their paths name (``Spool.displaced``),
# besides before each write: readiness tells it within a second with no message written.
_SPOOL_CHECK_SECONDS: Final = 1.0


class RedisTransport:
    """Carries signed frames over Redis streams; see ``bridge.bus.redis`` for the layout.

    ``client``, when given, is used instead of the one ``url`` makes, and is the caller's: its
    pool, options and TLS files are taken as they are, never looked at for a rotation nor
    replaced (``TLSRotation`` watches only the transport's own client, whose pools it makes
    alike), and the TLS files gauges are not shown. ``aclose`` closes it. ``timeout_ms``: how
    long a command of its own client waits for Redis's answer (``EXESDB_REDIS_TIMEOUT_MS``, above
    ``block_ms``; None: 5 s above it).
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        node: str,
        stream_maxlen: int = 100_000,
        buffer_size: int = 10_000,
        claim_idle_ms: int = 30_000,
        replay_window_ms: int = 300_000,
        prefix: str = "exesdb",
        block_ms: int = 1_000,
        timeout_ms: int | None = None,
        batch_size: int = 1_000,
        max_inflight: int = 4_000,
        spool_dir: Path | str | None = None,
        spool_bytes: int = 256 * 1024 * 1024,
        backoff_seconds: float = 0.1,
        max_backoff_seconds: float = 5.0,
        jitter: float = 0.2,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
        client: Redis | None = None,
    ) -> None:
        self.url = url
        self.node = node
        self.consumer = f"{node}:{secrets.token_hex(4)}"
        link = self._link = Link(
            url,
            client or redis_client(url, block_ms=block_ms, timeout_ms=timeout_ms),
            Backoff(backoff_seconds, max_backoff_seconds, jitter, rng),
            block_ms=block_ms,
            timeout_ms=timeout_ms,
        )
        # Stops every background loop (set by aclose, or by whoever simulates a crash).
        self._stopping = link.stopping
        # Only for a client of its own: new pools are made as redis_client made its first.
        self._tls = (
            TLSRotation(link, block_ms=block_ms, timeout_ms=timeout_ms) if client is None else None
        )
        layout = Layout(prefix)
        self._fanout = FanOutReader(
            link, layout, deliver=self._deliver, batch_size=batch_size, block_ms=block_ms
        )
        self._spool = (
            None
            if spool_dir is None
            else Spool(
                spool_dir,
                max_bytes=spool_bytes,
                segment_bytes=min(_MAX_SEGMENT_BYTES, max(_MIN_SEGMENT_BYTES, spool_bytes // 16)),
                # Back where they were, its files are sent again.
                changed=lambda: self._writer.wake(),
            )
        )
        self._writer = Writer(
            link,
            layout,
            positioned=self._fanout.positioned,
            buffer_size=buffer_size,
            stream_maxlen=stream_maxlen,
            batch_size=batch_size,
            claim_idle_ms=claim_idle_ms,
            replay_window_ms=replay_window_ms,
            clock=clock,
            spool=self._spool,
            consumer=self.consumer,
        )
        lease = Lease(
            link,
            layout,
            consumer=self.consumer,
            lease_ms=claim_idle_ms,
            write_acks=self._writer.write_acks,
        )
        group = ConsumerGroup(
            link,
            layout,
            lease,
            consumer=self.consumer,
            deliver=self._deliver,
            acknowledge=self._writer.acknowledge,
            unacknowledged=lambda: self._writer.unacknowledged,
            claim_idle_ms=claim_idle_ms,
            replay_window_ms=replay_window_ms,
            batch_size=batch_size,
            block_ms=block_ms,
            max_inflight=max_inflight,
            clock=clock,
        )
        self._writer.when_acknowledged(group.acks_written)
        self._work_queue = WorkQueue(link, lease, group, write_acks=self._writer.write_acks)
        self._node_name = RedisNodeNameCheck(link, layout, node=node, lease_ms=claim_idle_ms)
        self._capabilities = TransportCapabilities(
            shared=True,
            coordinator=RedisCoordinator(
                link, layout, owner=self.consumer, data_losses=lambda: self._writer.data_losses
            ),
            lease=self._work_queue,
            state=RedisSharedState(link, layout, consumer=self.consumer, node=node),
            node_name=self._node_name,
            unstorable=None if self._spool is None else self._spool_unstorable,
        )
        self._receive: FrameReceiver | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._marking: asyncio.Task[None] | None = None  # the node name check's task
        self._closed = False
        if registry is not None:
            registry.register(
                RedisCollector(link, self._writer, lease, group, self._node_name, self._tls)
            )

    @classmethod
    def from_settings(
        cls, settings: Settings, registry: CollectorRegistry | None = None
    ) -> RedisTransport:
        """The transport ``EXESDB_BUS=redis://…`` (or ``rediss://…``) asks for."""
        return cls(
            settings.bus,
            node=settings.node,
            stream_maxlen=settings.redis_stream_maxlen,
            buffer_size=settings.redis_buffer_size,
            claim_idle_ms=settings.redis_claim_idle_ms,
            replay_window_ms=settings.replay_window_ms,
            spool_dir=Path(settings.state_dir) / SPOOL_FOLDER,
            spool_bytes=settings.redis_spool_bytes,
            max_backoff_seconds=settings.redis_max_backoff_ms / 1000,
            timeout_ms=settings.redis_timeout_ms,
            registry=registry,
        )

    @property
    def capabilities(self) -> TransportCapabilities:
        """Shared across processes: coordination keys, the work-queue lease, shared state, the
        node name check."""
        return self._capabilities

    @property
    def buffered(self) -> int:
        """Frames waiting to be written to Redis."""
        return self._writer.buffered

    @property
    def connected(self) -> bool:
        """True while Redis answers: from its first answer until a command finds it
        unreachable, and again from its next answer. A Redis that answers and refuses (an ACL,
        memory full) counts as connected: ``readiness`` tells that."""
        return self._link.connected

    @property
    def leading(self) -> bool:
        """True while this replica holds the work-queue lease."""
        return self._work_queue.leading

    def attach(
        self, *, resign: Callable[[Envelope], Frame], dropped: Callable[[int], None]
    ) -> None:
        """Called by the bus: how to re-sign a frame that waited in the buffer for half the
        replay window (fresh ``ts``, same id), and where to count frames dropped for good."""
        self._writer.attach(resign=resign, dropped=dropped)

    # -- the Transport protocol --

    async def start(
        self, receive: FrameReceiver, group_instances: frozenset[str] = frozenset()
    ) -> None:
        """Start every loop, and return once the fan-out reader knows where each stream ends,
        so that whatever any replica writes to Redis from then on reaches ``receive``. Redis
        unreachable or refusing at start ends the wait at the first failed try, a Redis that
        does not answer ends it after 5 s: the transport then runs not ready, and reads each
        stream from where it ends once Redis answers."""
        if self._spool is not None:
            try:
                waiting = await self._spool.open()
            except OSError as exc:
                where = self._spool.directory
                raise ConfigError(
                    [f"EXESDB_STATE_DIR: cannot open the Redis bus spool {where}: {exc}"]
                ) from exc
            if waiting:
                _logger.info(
                    "spool %s: %d frame(s) taken in before a stop still to write to Redis",
                    self._spool.directory,
                    waiting,
                )
        self._receive = receive
        loop = asyncio.get_running_loop()
        keep_running = self._link.keep_running
        self._marking = loop.create_task(
            keep_running("node name", self._node_name.run), name="redis-node-name"
        )
        self._tasks = [
            loop.create_task(keep_running("writer", self._writer.run), name="redis-writer"),
            loop.create_task(keep_running("fanout", self._fanout.run), name="redis-fanout"),
            self._marking,
            *self._work_queue.start(group_instances),
        ]
        if self._spool is not None:
            self._tasks.append(
                loop.create_task(
                    keep_running("spool files", self._watch_spool), name="redis-spool-files"
                )
            )
        if self._tls is not None and self._tls.watching:
            self._tasks.append(
                loop.create_task(keep_running("TLS files", self._tls.run), name="redis-tls-files")
            )
        self._writer.wake()
        _logger.info(
            "bus on Redis %s as consumer %s (work queue: %s)",
            safe_url(self.url),
            self.consumer,
            ", ".join(sorted(group_instances)) or "none",
        )
        # Returning sooner, what another replica wrote before the reader's first look (its
        # start, its answer to ours) would be behind the tail found, and never read here.
        if not await self._fanout.first_try(_POSITION_SECONDS):
            _logger.info(
                "the bus starts without Redis at %s: it reads each stream from where it ends"
                " once Redis answers",
                safe_url(self.url),
            )

    async def send_durably(self, frames: Sequence[Frame]) -> Durability:
        return await self._writer.send_durably(frames)

    def send(self, frame: Frame) -> bool:
        return self._writer.send(frame)

    def readiness(self) -> str | None:
        if self._receive is None or self._closed:
            return "the Redis bus is not running"
        # First: a restart mends it, where Redis's trouble waits on Redis.
        if (displaced := self._spool_displaced()) is not None:
            return displaced
        # The spool's disk refusing it: the replica's own, whatever Redis does.
        if self._spool is not None and (fault := self._spool.fault) is not None:
            return fault
        trouble = self._link.trouble()
        if trouble is not None:
            return f"Redis at {safe_url(self.url)} {trouble}"
        if not self._fanout.positioned.is_set():
            return f"connecting to Redis at {safe_url(self.url)}"
        return None

    def hearing(self) -> str | None:
        if self._receive is None or self._closed:
            return "the Redis bus is not running"
        if not self._fanout.reading:
            return f"Redis at {safe_url(self.url)} does not give this replica the bus's messages"
        held = self._writer.held_back
        if held is not None:
            # Memory full, read-only: every publisher is refused alike, heartbeats too.
            return f"Redis at {safe_url(self.url)} refuses writes for now: {held}"
        return None

    async def aclose(self, seconds: float | None = None, *, flush_seconds: float = 2.0) -> None:
        """Write what is buffered (for up to ``flush_seconds`` while connected), then stop,
        within ``seconds`` (None: no limit): what the flush leaves goes to the spool; the node
        name's mark and the lease are let go within what is left then (none left: they expire
        as after a crash); the spool's disk is given half a second at least to finish a write
        under way: spool writes not finished by then fail, logged (``Spool.aclose``)."""
        if self._closed:
            return
        self._closed = True
        deadline = None if seconds is None else time.monotonic() + seconds
        if self._marking is not None:
            # Marked no more, then the mark deleted (if still this process's): a replacement
            # started from now on reads none, and is not told it shares the name.
            await cancel_and_wait(self._marking)
        if deadline is not None:
            flush_seconds = min(flush_seconds, max(0.0, deadline - time.monotonic()))
        await self._writer.flush(flush_seconds if self._tasks else 0.0, until=deadline)
        # After the flush, which the buffered frames need more. Each a command or two to Redis,
        # not worth overrunning the stop for: a Redis that hangs, or a loaded replica left no
        # time, lets the mark expire after the lease and the lease run out, as after a crash
        # (what was handled here is acknowledged by then, or claimed again).
        if self._marking is not None and (forget := _within(deadline, _FORGET_SECONDS)) > 0:
            await self._node_name.forget(forget)
        if (release := _within(deadline, _RELEASE_SECONDS)) > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(release):
                    await self._work_queue.release(release)
        self._stopping.set()
        if running := await cancel_and_wait(
            *self._tasks,
            within=None if deadline is None else max(_TASKS_SECONDS, deadline - time.monotonic()),
        ):
            _logger.warning(
                "Redis bus: %d task(s) still ending after the stop's time: left to end on"
                " their own (%s)",
                len(running),
                ", ".join(sorted(task.get_name() for task in running)),
            )
        self._tasks = []
        self._receive = None
        if self._tls is not None:
            await self._tls.aclose()
        with contextlib.suppress(*RETRYABLE):
            await self._link.client.aclose()
        if self._spool is not None:
            await self._spool.aclose(
                None if deadline is None else max(_SPOOL_CLOSE_SECONDS, deadline - time.monotonic())
            )

    def _spool_displaced(self) -> str | None:
        """Why the spool takes nothing (its files removed under it), as last found."""
        return None if self._spool is None else self._spool.displaced

    def _spool_unstorable(self) -> str | None:
        """Why the spool takes nothing (its files removed), or why its last write failed (its
        disk refused it), while none has been written since."""
        if self._spool is None:
            return None
        return self._spool.displaced or self._spool.unwritable

    async def _watch_spool(self) -> None:
        """Look at the spool's files once, then wait a second (run again by ``keep_running``)."""
        assert self._spool is not None
        await self._spool.check_displaced()
        await self._link.pause(_SPOOL_CHECK_SECONDS)

    def _deliver(self, frames: Sequence[Frame]) -> None:
        if self._receive is None:
            return
        try:
            self._receive(frames)
        except Exception:
            _logger.exception("the bus failed to take %d frame(s) from Redis", len(frames))


def _within(deadline: float | None, most: float) -> float:
    """Seconds for a step of a stop: ``most``, or less when the monotonic ``deadline`` comes
    first (0 or below: none left)."""
    return most if deadline is None else min(most, deadline - time.monotonic())
