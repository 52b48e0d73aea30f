"""The bus on Redis (SPEC section 10): streams shared by every application node and bridge replica.

Layout, with ``exesdb`` as the key prefix::

    exesdb:bus:<instance>      one stream per bus instance; entry = {e: envelope bytes, s: hex HMAC}
      ├─ XREAD from the tail by every replica            -> Frame(group=False)  (fan-out sinks)
      └─ consumer group "exesdb-bridge", XREADGROUP      -> Frame(group=True, ack=...)
         (only the instances with group subscribers here, and only by the replica holding
         the work-queue lease ``exesdb:bus:leader``; each entry is acknowledged once its
         subscribers returned; when the holder dies its lease lapses after ``claim_idle_ms``
         and the next holder claims its pending entries with XAUTOCLAIM)

One reader at a time, rather than entries spread over every replica, because the alert stage
keeps state per replica: the message that resolves an alert, and the repeats of an ongoing
condition, must reach the replica that holds the firing alert.

Frames read from Redis are never trusted: they carry bytes and a signature, which the bus
verifies like any other input. ``send`` never blocks: frames wait in a bounded local buffer that a
background task writes with reconnection and backoff, so a Redis outage loses nothing a local
publisher handed over unless the buffer overflows (``send`` then returns False and the bus counts
the drop). A Redis unreachable at start leaves the bridge running and not ready until it connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import OutOfMemoryError, ReadOnlyError, RedisError, ResponseError

from bridge.bus.capabilities import TransportCapabilities
from bridge.bus.envelope import Envelope
from bridge.bus.transport import WORK_QUEUE_INSTANCES, Frame, FrameReceiver
from bridge.messages import INSTANCES
from bridge.redaction import safe_url

if TYPE_CHECKING:
    from bridge.config import Settings

__all__ = ["RedisTransport"]

_logger = logging.getLogger(__name__)

GROUP: Final = "exesdb-bridge"
_BODY: Final = b"e"
_SIGNATURE: Final = b"s"
_Failure: Final = (RedisError, OSError, asyncio.TimeoutError)
_PRUNE_SECONDS: Final = 0.05
_CONSUMER_SWEEP_CYCLES: Final = 20
# Refusals a Redis gives while it cannot take writes for now (memory full, a read-only replica
# after a failover, a failing RDB save, loading its data set): retried with backoff.
_TEMPORARY_REPLIES: Final = (
    "OOM",
    "READONLY",
    "MISCONF",
    "LOADING",
    "BUSY",
    "TRYAGAIN",
    "MASTERDOWN",
    "NOREPLICAS",
    "CLUSTERDOWN",
)
_RENEW: Final = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
)
_RELEASE: Final = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
    "else return 0 end"
)


class RedisTransport:
    """Carries signed frames over Redis streams; see the module docstring for the layout."""

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
        batch_size: int = 500,
        max_inflight: int = 1_000,
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
        self._maxlen = stream_maxlen
        self._buffer_size = buffer_size
        self._claim_idle_ms = claim_idle_ms
        self._replay_window_ms = replay_window_ms
        self._prefix = prefix
        self._block_ms = block_ms
        self._batch = batch_size
        self._max_inflight = max_inflight
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._jitter = jitter
        self._rng = rng
        self._clock = clock
        self._client: Redis = client or Redis.from_url(
            url,
            socket_connect_timeout=2.0,
            # Above the XREAD block time, so a blocked read is not mistaken for a dead server.
            socket_timeout=block_ms / 1000 + 5.0,
            retry=Retry(NoBackoff(), 0),  # reconnection is ours, with backoff and readiness
            health_check_interval=10,
        )
        self._keys = {instance: f"{prefix}:bus:{instance}" for instance in INSTANCES}
        self._instances = {key.encode(): instance for instance, key in self._keys.items()}
        self._buffer: deque[Frame] = deque()
        # Work-queue frames written but maybe not yet taken by a consumer group: (written at,
        # stream, entry id, frame); written again if Redis turns out to have lost its data.
        self._retained: deque[tuple[float, str, bytes, Frame]] = deque(maxlen=buffer_size)
        self._retain_seconds = max(10.0, 2 * claim_idle_ms / 1000)
        self._epoch: str | None = None
        self._epoch_unchecked = True
        self._last_prune = 0.0
        self._acks: dict[str, list[bytes]] = {}
        self._inflight: dict[tuple[str, bytes], float] = {}
        self._last_ids: dict[str, bytes] = {}
        self._group_keys: list[str] = []
        self._receive: FrameReceiver | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wake_writer = asyncio.Event()
        self._room = asyncio.Event()
        self._positioned = asyncio.Event()
        self._leading = asyncio.Event()
        self._lease_ms = claim_idle_ms
        self._stopping = asyncio.Event()
        self._groups_ready = False
        self._connected = False
        self._error: str | None = "not connected yet"
        self._closed = False
        self._work_released = False
        self._work_tasks: list[asyncio.Task[None]] = []
        self._reader_tasks: list[asyncio.Task[None]] = []
        self._reading_stopped = False
        # Set by the bus (``attach``): re-signs a frame grown old in the buffer; counts drops.
        self._resign: Callable[[Envelope], Frame] | None = None
        self._count_dropped: Callable[[int], None] = lambda count: None
        self._on_lead: list[Callable[[], Awaitable[None]]] = []
        # Self-metrics, read at scrape time by RedisCollector.
        self.connection_errors = 0
        self.claimed = 0
        self.trimmed = 0
        self.written = 0
        self.rewritten = 0
        self.stage_errors = 0
        self.dropped = 0
        self.resigned = 0
        self._capabilities = TransportCapabilities(
            shared=True, coordinator=self, lease=self, hand_over=self
        )
        if registry is not None:
            registry.register(RedisCollector(self))

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
            registry=registry,
        )

    @property
    def capabilities(self) -> TransportCapabilities:
        """Shared across processes: coordination keys, the work-queue lease, hand-over."""
        return self._capabilities

    def stream(self, instance: str) -> str:
        """The stream key of a bus instance."""
        return self._keys[instance]

    @property
    def client(self) -> Redis:
        """The Redis client (shared with the cluster monitor's coordination)."""
        return self._client

    @property
    def buffered(self) -> int:
        """Frames waiting to be written to Redis."""
        return len(self._buffer)

    @property
    def connected(self) -> bool:
        """True while the last Redis command succeeded."""
        return self._connected

    def attach(
        self, *, resign: Callable[[Envelope], Frame], dropped: Callable[[int], None]
    ) -> None:
        """Called by the bus: how to re-sign a frame that waited in the buffer for half the
        replay window (fresh ``ts``, same id), and where to count frames dropped for good."""
        self._resign = resign
        self._count_dropped = dropped

    def on_lead(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Await ``callback`` each time this replica takes the work-queue lease, before it
        reads the consumer group (e.g. to import what the previous holder handed over)."""
        self._on_lead.append(callback)

    async def hand_over(self, name: str, values: dict[str, bytes]) -> None:
        """Leave ``values`` for the next lease holder (``take_over(name)``), then release the
        lease; for a graceful stop, after ``stop_reading`` and the alert stage's drain."""
        if values and self._leading.is_set():
            key = f"{self._prefix}:handover:{name}"
            pipe = self._client.pipeline(transaction=True)
            pipe.hset(key, mapping=values)  # type: ignore[arg-type]
            pipe.pexpire(key, max(self._replay_window_ms, 7 * 24 * 3600 * 1000))
            await pipe.execute()
            _logger.info("handed %d %s record(s) over to the next replica", len(values), name)
        await self.release_work_queue()

    async def take_over(self, name: str) -> dict[str, bytes]:
        """What the previous lease holder left under ``name`` (taken: gone from Redis)."""
        key = f"{self._prefix}:handover:{name}"
        pipe = self._client.pipeline(transaction=True)
        pipe.hgetall(key)
        pipe.delete(key)
        values: Any = (await pipe.execute())[0]
        return {_text(field): value for field, value in (values or {}).items()}

    # -- the Transport protocol --

    async def start(
        self, receive: FrameReceiver, group_instances: frozenset[str] = frozenset()
    ) -> None:
        self._receive = receive
        self._group_keys = [self._keys[name] for name in INSTANCES if name in group_instances]
        loop = asyncio.get_running_loop()
        stages: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("writer", self._write_loop),
            ("fanout", self._fanout_loop),
        ]
        if self._group_keys:
            self._room.set()
            stages += [
                ("lease", self._lease_loop),
                ("group", self._group_loop),
                ("claim", self._claim_loop),
            ]
        self._tasks = [
            loop.create_task(self._keep_running(name, stage), name=f"redis-{name}")
            for name, stage in stages
        ]
        self._work_tasks = self._tasks[2:]  # lease, group and claim
        self._reader_tasks = self._tasks[3:]  # group and claim
        if self._buffer:
            self._wake_writer.set()
        _logger.info(
            "bus on Redis %s as consumer %s (work queue: %s)",
            safe_url(self.url),
            self.consumer,
            ", ".join(sorted(group_instances)) or "none",
        )

    def capacity_left(self) -> int | None:
        return 0 if self._closed else self._buffer_size - len(self._buffer)

    def send(self, frame: Frame) -> bool:
        if self._closed or len(self._buffer) >= self._buffer_size:
            return False
        # Never the in-process shortcut: what crosses Redis is verified from its bytes (the
        # envelope is kept only to re-sign a frame that waits too long, see _refresh_old).
        self._buffer.append(Frame(frame.instance, frame.body, frame.signature, frame.decoded))
        self._wake_writer.set()
        return True

    def readiness(self) -> str | None:
        if self._receive is None or self._closed:
            return "the Redis bus is not running"
        if not self._connected:
            return f"Redis at {safe_url(self.url)} is unreachable: {self._error}"
        if not self._positioned.is_set():
            return f"connecting to Redis at {safe_url(self.url)}"
        return None

    async def aclose(self, flush_seconds: float = 2.0) -> None:
        """Write what is buffered (for up to ``flush_seconds`` while connected), then stop."""
        if self._closed:
            return
        self._closed = True
        if self._tasks and (self._buffer or self._acks) and self._connected:
            deadline = time.monotonic() + flush_seconds
            while (self._buffer or self._acks) and self._connected:
                if time.monotonic() >= deadline:
                    break
                self._wake_writer.set()
                await asyncio.sleep(0.01)
        if self._buffer:
            _logger.warning("Redis bus stopped with %d frame(s) unwritten", len(self._buffer))
            self._count_drops(len(self._buffer))
            self._buffer.clear()
        await self.release_work_queue()
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._receive = None
        with contextlib.suppress(*_Failure):
            await self._client.aclose()

    async def stop_reading(self) -> None:
        """Stop reading the consumer group, and taking the lease; the first step of a graceful
        stop, before the alert stage drains what it took. A lease held is still renewed until
        ``hand_over``/``release_work_queue``; frames already taken are still acknowledged (the
        writer keeps running)."""
        self._reading_stopped = True
        await _cancel(self._reader_tasks)
        self._reader_tasks = []

    async def release_work_queue(self) -> None:
        """Stop reading the consumer group and release the lease at once (rather than after it
        runs out), so that another replica takes the work queue over."""
        if self._work_released:
            return
        self._work_released = True
        await self.stop_reading()
        await _cancel(self._work_tasks)
        self._work_tasks = []
        if self._leading.is_set():
            self._leading.clear()
            with contextlib.suppress(*_Failure):
                await self._client.eval(_RELEASE, 1, f"{self._prefix}:bus:leader", self.consumer)
            _logger.info("this replica handed the work queue over (%s)", self.consumer)

    def _count_drops(self, count: int) -> None:
        self.dropped += count
        self._count_dropped(count)

    async def _keep_running(self, name: str, stage: Callable[[], Awaitable[None]]) -> None:
        """Run one background stage; a bug in it is logged and counted, and the stage restarts."""
        while not self._stopping.is_set():
            try:
                await stage()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.stage_errors += 1
                _logger.exception("Redis bus stage %s failed; restarting it", name)
                await self._pause(1.0)

    # -- connection state --

    def _up(self) -> None:
        if not self._connected:
            _logger.info("connected to Redis at %s", safe_url(self.url))
        self._connected = True
        self._error = None

    def _down(self, exc: BaseException, attempt: int) -> float:
        """Record a failed command; returns how long to wait before the next attempt."""
        self.connection_errors += 1
        self._epoch_unchecked = True  # did Redis lose its data meanwhile? the writer will ask
        self._wake_writer.set()
        reason = str(exc) or type(exc).__name__
        if self._connected or attempt == 0:
            _logger.warning("Redis at %s: %s; retrying with backoff", safe_url(self.url), reason)
        self._connected = False
        self._error = reason
        delay = min(self._max_backoff, self._backoff * 2 ** min(attempt, 30))
        return float(delay * (1 + self._jitter * (2 * self._rng() - 1)))

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # -- writing: buffered frames and acknowledgements --

    async def _write_loop(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            if not self._has_work():
                if not self._retained:
                    await self._wake_writer.wait()
                else:
                    # Wake now and then to forget retained frames a consumer group has taken.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake_writer.wait(), _PRUNE_SECONDS)
                self._wake_writer.clear()
                if not self._has_work():
                    with contextlib.suppress(*_Failure):
                        await self._prune_retained()
                    continue
            try:
                # Our own frames must come after the tail we read from, or we would miss them.
                await self._positioned.wait()
                if self._epoch_unchecked:
                    await self._check_epoch()
                await self._write_once()
                if self._clock() - self._last_prune >= _PRUNE_SECONDS:
                    await self._prune_retained()
            except ResponseError as exc:
                # Refused as a whole (frames Redis refuses one by one are sorted out in
                # _write_once): nothing is dropped; retried with backoff.
                if not _temporary(exc):
                    _logger.error("Redis refused a command of the writer: %s", exc)
                await self._pause(self._down(exc, attempt))
                attempt += 1
            except _Failure as exc:
                self._epoch_unchecked = True
                await self._pause(self._down(exc, attempt))
                attempt += 1
            else:
                attempt = 0
                self._up()

    def _has_work(self) -> bool:
        return bool(self._buffer or self._acks or (self._retained and self._epoch_unchecked))

    async def _check_epoch(self) -> None:
        """Find out whether Redis lost its data (a restart without persistence) since we wrote.

        If it did, the work-queue frames written lately that no consumer group had taken yet
        went with it: they are written again.
        """
        key = f"{self._prefix}:bus:epoch"
        await self._client.set(key, secrets.token_hex(8), nx=True)
        raw = await self._client.get(key)
        epoch = raw.decode() if isinstance(raw, bytes) else str(raw)
        if self._epoch is not None and epoch != self._epoch and self._retained:
            frames = [frame for _, _, _, frame in self._retained]
            self._retained.clear()
            self._buffer.extendleft(reversed(frames))
            self.rewritten += len(frames)
            _logger.warning(
                "Redis lost its data; writing %d recent work-queue frame(s) again", len(frames)
            )
        self._epoch = epoch
        self._epoch_unchecked = False

    async def _prune_retained(self) -> None:
        self._last_prune = self._clock()
        horizon = self._last_prune - self._retain_seconds
        while self._retained and self._retained[0][0] < horizon:
            self._retained.popleft()
        if not self._retained or not self._connected or self._epoch_unchecked:
            return
        keys = sorted({key for _, key, _, _ in self._retained})
        pipe = self._client.pipeline(transaction=False)
        pipe.get(f"{self._prefix}:bus:epoch")
        for key in keys:
            pipe.xinfo_groups(key)
        replies: list[Any] = await pipe.execute()
        if replies[0] is None or _text(replies[0]) != self._epoch:
            # A Redis that lost its data: its groups say nothing about our frames.
            self._epoch_unchecked = True
            self._wake_writer.set()
            return
        taken: dict[str, tuple[int, int]] = {}
        for key, groups in zip(keys, replies[1:], strict=True):
            for group in groups:
                if _text(group.get("name")) == GROUP:
                    taken[key] = _stream_id(group.get("last-delivered-id"))
        self._retained = deque(
            item
            for item in self._retained
            if item[1] not in taken or _stream_id(item[2]) > taken[item[1]]
        )

    async def _write_once(self) -> None:
        acks, self._acks = self._acks, {}
        try:
            if acks:
                pipe = self._client.pipeline(transaction=False)
                for key, ids in acks.items():
                    pipe.xack(key, GROUP, *ids)
                await pipe.execute()
        except ResponseError as exc:
            # E.g. the group is gone with a Redis that lost its data: nothing left to ack.
            _logger.debug("acknowledgements refused: %s", exc)
        except BaseException:
            for key, ids in acks.items():
                self._acks.setdefault(key, []).extend(ids)
            raise
        count = min(self._batch, len(self._buffer))
        if not count:
            return
        self._refresh_old(count)
        batch = [self._buffer[index] for index in range(count)]
        pipe = self._client.pipeline(transaction=False)
        for frame in batch:
            pipe.xadd(
                self._keys[frame.instance],
                {_BODY: frame.body, _SIGNATURE: frame.signature or ""},
                maxlen=self._maxlen,
                approximate=True,
            )
        replies = await pipe.execute(raise_on_error=False)
        now = self._clock()
        again: list[Frame] = []
        temporary: ResponseError | None = None
        dropped = 0
        for frame, reply in zip(batch, replies, strict=True):
            self._buffer.popleft()
            if isinstance(reply, ResponseError):
                if _temporary(reply):
                    again.append(frame)
                    temporary = temporary or reply
                else:
                    # Refused for good (e.g. the key holds another type): retrying won't help.
                    dropped += 1
                    _logger.error("Redis refused a frame of %s; dropped: %s", frame.instance, reply)
                continue
            if frame.instance in WORK_QUEUE_INSTANCES:
                self._retained.append((now, self._keys[frame.instance], reply, frame))
            self.written += 1
        if again:
            self._buffer.extendleft(reversed(again))
        if dropped:
            self._count_drops(dropped)
        if temporary is not None:
            raise temporary  # back off, then write them again (in order)

    def _refresh_old(self, count: int) -> None:
        """Re-sign our frames among the first ``count`` that waited for half the replay window
        (a Redis outage): with a fresh ``ts`` and the same id they are not refused as expired,
        and the replay memories still refuse a second copy."""
        resign = self._resign
        if resign is None:
            return
        horizon = self._clock() - self._replay_window_ms / 2000
        buffer = self._buffer
        for index in range(count):
            envelope = buffer[index].decoded
            if envelope is not None and envelope.unix_ts < horizon:
                buffer[index] = resign(envelope)
                self.resigned += 1

    # -- fan-out: every replica reads every stream from the tail --

    async def _fanout_loop(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                if not self._positioned.is_set():
                    await self._find_tails()
                    self._positioned.set()
                    self._up()
                reply: Any = await self._client.xread(
                    self._last_ids,  # type: ignore[arg-type]
                    count=self._batch,
                    block=self._block_ms,
                )
            except _Failure as exc:
                await self._pause(self._down(exc, attempt))
                attempt += 1
                continue
            attempt = 0
            self._up()
            for key, entries in reply or ():
                instance = self._instances[key]
                for entry_id, fields in entries:
                    self._last_ids[key.decode()] = entry_id
                    self._deliver(Frame(instance, *_unpack(fields), group=False))

    async def _find_tails(self) -> None:
        # Only on the first connection: after a reconnection reading resumes where it stopped,
        # so what was written meanwhile is not missed.
        pipe = self._client.pipeline(transaction=False)
        for key in self._keys.values():
            pipe.xrevrange(key, count=1)
        tails = await pipe.execute()
        for key, tail in zip(self._keys.values(), tails, strict=True):
            self._last_ids[key] = tail[0][0] if tail else b"0-0"

    def _deliver(self, frame: Frame) -> None:
        if self._receive is None:
            return
        try:
            self._receive(frame)
        except Exception:
            _logger.exception("the bus failed to take a frame from Redis")

    # -- the work queue: one replica takes each entry --

    async def _lease_loop(self) -> None:
        """Hold (or wait for) the work-queue lease: only its holder reads the consumer group.

        One reader at a time keeps every alert condition's messages on the replica that holds
        its state (a firing alert and its resolve, an ongoing condition notified once); the
        consumer group still gives acknowledgement, and a new holder claims what a dead one
        left pending.
        """
        key = f"{self._prefix}:bus:leader"
        period = self._lease_ms / 3000
        renewed = float("-inf")
        attempt = 0
        while not self._stopping.is_set():
            try:
                if self._leading.is_set():
                    held = await self._client.eval(_RENEW, 1, key, self.consumer, self._lease_ms)
                    if held:
                        renewed = time.monotonic()
                    else:
                        self._step_down("the lease went to another replica")
                elif self._reading_stopped:
                    pass  # stopping: leave the lease to the others
                elif await self._client.set(key, self.consumer, nx=True, px=self._lease_ms):
                    renewed = time.monotonic()
                    if await self._took_lease():
                        self._leading.set()
                        _logger.info("this replica now takes the work queue (%s)", self.consumer)
                    else:
                        # Not ready to take over (e.g. the alert stage still opening its
                        # outbox): give the lease back, try again in a moment.
                        await self._client.eval(_RELEASE, 1, key, self.consumer)
            except _Failure as exc:
                if self._leading.is_set() and time.monotonic() - renewed > self._lease_ms / 1000:
                    self._step_down("the lease expired while Redis was unreachable")
                await self._pause(self._down(exc, attempt))
                attempt += 1
                continue
            attempt = 0
            # Standing by, ask often: a released lease is taken over within a second.
            await self._pause(period if self._leading.is_set() else min(period, 1.0))

    async def _took_lease(self) -> bool:
        """Run the ``on_lead`` callbacks; False (logged) when one failed or took too long."""
        for callback in self._on_lead:
            try:
                await asyncio.wait_for(callback(), self._lease_ms / 2000)
            except asyncio.CancelledError:
                raise
            except Exception:
                _logger.warning(
                    "taking the work queue over: a hand-over step failed", exc_info=True
                )
                return False
        return True

    def _step_down(self, why: str) -> None:
        self._leading.clear()
        _logger.warning("this replica no longer takes the work queue: %s", why)

    @property
    def leading(self) -> bool:
        """True while this replica holds the work-queue lease."""
        return self._leading.is_set()

    async def _group_loop(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            await self._leading.wait()
            room = self._max_inflight - len(self._inflight)
            if room <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                if not self._groups_ready:
                    await self._create_groups()
                reply: Any = await self._client.xreadgroup(
                    GROUP,
                    self.consumer,
                    dict.fromkeys(self._group_keys, ">"),
                    count=min(room, self._batch),
                    block=self._block_ms,
                )
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    # Redis restarted without persistence, or the stream was deleted.
                    self._groups_ready = False
                    continue
                await self._pause(self._down(exc, attempt))
                attempt += 1
                continue
            except _Failure as exc:
                await self._pause(self._down(exc, attempt))
                attempt += 1
                continue
            attempt = 0
            self._up()
            for key, entries in reply or ():
                self._take(key.decode(), entries)

    async def _create_groups(self) -> None:
        # Start no further back than the replay window: older entries would only be refused.
        start = max(0, int(self._clock() * 1000) - self._replay_window_ms)
        for key in self._group_keys:
            try:
                await self._client.xgroup_create(key, GROUP, id=f"{start}-0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._groups_ready = True

    def _take(self, key: str, entries: list[tuple[bytes, dict[bytes, bytes] | None]]) -> None:
        instance = self._instances[key.encode()]
        now = self._clock()
        for entry_id, fields in entries:
            if (key, entry_id) in self._inflight:
                continue  # still being handled here (reclaimed because it took long)
            self._inflight[(key, entry_id)] = now
            self._deliver(
                Frame(
                    instance,
                    *_unpack(fields or {}),
                    group=True,
                    ack=partial(self._settle, key, entry_id),
                    nack=partial(self._unsettled, key, entry_id),
                )
            )

    async def _settle(self, key: str, entry_id: bytes) -> None:
        """The ack of a work-queue frame: queued for the writer, which batches XACKs."""
        self._inflight.pop((key, entry_id), None)
        self._acks.setdefault(key, []).append(entry_id)
        self._wake_writer.set()
        self._room.set()

    def _unsettled(self, key: str, entry_id: bytes) -> None:
        """A work-queue frame the bus could not handle (its handler failed, a full queue dropped
        it): left pending, and claimed again once idle for ``claim_idle_ms``."""
        if self._inflight.pop((key, entry_id), None) is not None:
            self._room.set()

    async def _claim_loop(self) -> None:
        interval = min(self._claim_idle_ms / 2000, 5.0)
        attempt = 0
        cycles = 0
        while not self._stopping.is_set():
            await self._pause(interval)
            if not self._groups_ready or not self._leading.is_set():
                continue
            try:
                for key in self._group_keys:
                    await self._claim(key)
                cycles += 1
                if cycles % _CONSUMER_SWEEP_CYCLES == 0:
                    await self._forget_departed_consumers()
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    self._groups_ready = False
                    continue
                await self._pause(self._down(exc, attempt))
                attempt += 1
                continue
            except _Failure as exc:
                await self._pause(self._down(exc, attempt))
                attempt += 1
                continue
            attempt = 0
            self._forget_stale_inflight()

    async def _forget_departed_consumers(self) -> None:
        """Delete consumers (one per replica start) that hold nothing and are long silent."""
        horizon = 10 * self._claim_idle_ms
        for key in self._group_keys:
            consumers: Any = await self._client.xinfo_consumers(key, GROUP)
            for consumer in consumers:
                name = _text(consumer.get("name"))
                if (
                    name != self.consumer
                    and int(consumer.get("pending", 0)) == 0
                    and int(consumer.get("idle", 0)) > horizon
                ):
                    await self._client.xgroup_delconsumer(key, GROUP, name)

    async def _claim(self, key: str) -> None:
        start: bytes | str = "0-0"
        while len(self._inflight) < self._max_inflight:
            reply = await self._client.xautoclaim(
                key,
                GROUP,
                self.consumer,
                self._claim_idle_ms,
                start_id=start,
                count=min(self._batch, self._max_inflight - len(self._inflight)),
            )
            start, entries = reply[0], reply[1]
            deleted = reply[2] if len(reply) > 2 else []
            if deleted:
                # Pending entries trimmed away before anyone acknowledged them.
                self.trimmed += len(deleted)
                _logger.warning("%d pending entr(y/ies) of %s were trimmed", len(deleted), key)
            fresh = [
                (entry_id, fields)
                for entry_id, fields in entries
                if (key, entry_id) not in self._inflight
            ]
            if fresh:
                self.claimed += len(fresh)
                _logger.info("claimed %d pending entr(y/ies) of %s", len(fresh), key)
                self._take(key, fresh)
            if start in (b"0-0", "0-0"):
                return

    def _forget_stale_inflight(self) -> None:
        # A frame a subscriber dropped (full queue) or failed on is never acknowledged; after a
        # generous while it may be claimed again, and then redelivered (or refused as a replay).
        horizon = self._clock() - 4 * self._claim_idle_ms / 1000
        stale = [entry for entry, since in self._inflight.items() if since < horizon]
        for entry in stale:
            del self._inflight[entry]
        if stale:
            self._room.set()

    # -- coordination for the cluster monitor --

    async def swap(self, key: str, value: str, ttl_ms: int) -> str | None:
        """Set ``key`` to ``value`` (expiring after ``ttl_ms``); the previous value, if any."""
        old: Any = await self._client.set(f"{self._prefix}:{key}", value, px=ttl_ms, get=True)
        return old.decode() if isinstance(old, bytes) else old

    async def once(self, key: str, ttl_ms: int) -> bool:
        """True for exactly one caller per ``key`` within ``ttl_ms`` across all replicas."""
        return bool(
            await self._client.set(f"{self._prefix}:{key}", self.consumer, nx=True, px=ttl_ms)
        )


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _temporary(exc: ResponseError) -> bool:
    """True for a refusal that may clear by itself (retry), False for one that will not."""
    if isinstance(exc, (OutOfMemoryError, ReadOnlyError)):
        return True
    text = str(exc)
    # A pipeline's error may be prefixed with the command it failed on.
    head = text.rsplit("caused error: ", 1)[-1]
    return head.split(" ", 1)[0] in _TEMPORARY_REPLIES


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _stream_id(value: object) -> tuple[int, int]:
    """A stream entry id (``b"1700000000000-3"``) as a comparable pair."""
    ms, _, seq = _text(value).partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return (0, 0)


def _unpack(fields: dict[bytes, bytes]) -> tuple[bytes, str | None]:
    body = fields.get(_BODY, b"")
    raw = fields.get(_SIGNATURE)
    try:
        signature = raw.decode("ascii") if raw else None
    except UnicodeDecodeError:
        signature = "?"  # not hex: fails verification as an invalid signature
    return body, signature


class RedisCollector(Collector):
    """The Redis transport's self-metrics, read at scrape time."""

    def __init__(self, transport: RedisTransport) -> None:
        self._transport = transport

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        transport = self._transport
        yield GaugeMetricFamily(
            "exesdb_redis_connected",
            "1 while the bridge is connected to the Redis bus, else 0.",
            value=1.0 if transport.connected else 0.0,
        )
        yield GaugeMetricFamily(
            "exesdb_redis_buffer_depth",
            "Frames waiting in the local buffer to be written to Redis.",
            value=transport.buffered,
        )
        yield GaugeMetricFamily(
            "exesdb_redis_work_queue_leader",
            "1 while this replica holds the work-queue lease (reads the alert consumer group).",
            value=1.0 if transport.leading else 0.0,
        )
        yield CounterMetricFamily(
            "exesdb_redis_connection_errors",
            "Redis commands that failed for want of a connection.",
            value=transport.connection_errors,
        )
        yield CounterMetricFamily(
            "exesdb_redis_written",
            "Frames written to Redis streams.",
            value=transport.written,
        )
        yield CounterMetricFamily(
            "exesdb_redis_stage_errors",
            "Unexpected failures of a Redis bus background stage (logged; the stage restarts).",
            value=transport.stage_errors,
        )
        yield CounterMetricFamily(
            "exesdb_redis_resigned",
            "Frames signed again with a fresh timestamp (same id) after waiting half the replay "
            "window in the local buffer.",
            value=transport.resigned,
        )
        yield CounterMetricFamily(
            "exesdb_redis_rewritten",
            "Work-queue frames written again because Redis had lost its data.",
            value=transport.rewritten,
        )
        yield CounterMetricFamily(
            "exesdb_redis_claimed",
            "Work-queue entries claimed from a silent replica.",
            value=transport.claimed,
        )
        yield CounterMetricFamily(
            "exesdb_redis_trimmed",
            "Unacknowledged work-queue entries lost to stream trimming.",
            value=transport.trimmed,
        )
