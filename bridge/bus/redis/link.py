"""The connection to Redis: one client, whether it answers, and the one way every loop retries."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from types import MappingProxyType
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import OutOfMemoryError, ReadOnlyError, RedisError, ResponseError

from bridge.backoff import Backoff
from bridge.bus.redis.layout import RAW_REPLIES
from bridge.errors import TransportError
from bridge.redaction import safe_url

__all__ = ["OWN_OPTIONS", "RETRYABLE", "Link", "linger", "redis_client", "temporary"]

_logger = logging.getLogger(__name__)

RETRYABLE: Final = (RedisError, OSError, asyncio.TimeoutError)
"""What a Redis command raises when Redis is unreachable, slow, or refuses it."""
_RETRIES_ARE_OURS: Final = (
    "the Redis transport's own retrying: reconnection with backoff, counted and told in readiness"
)
OWN_OPTIONS: Final = MappingProxyType(
    {
        "socket_timeout": (
            "the Redis transport's own, above the XREAD block time so that a blocked read is not"
            " taken for a dead server"
        ),
        "socket_connect_timeout": (
            "the Redis transport's own, short so that an unreachable Redis is told in readiness"
            " within seconds"
        ),
        "health_check_interval": (
            "the Redis transport's own, so that a connection dropped while idle (by Redis or a"
            " proxy) is replaced before it fails a command"
        ),
        "decode_responses": (
            "the Redis transport's own, off: entries are read as bytes, the bytes that were"
            " signed (redis-py reads the query's 'false' as true)"
        ),
        "retry": _RETRIES_ARE_OURS,
        "retry_on_timeout": _RETRIES_ARE_OURS,
        "retry_on_error": _RETRIES_ARE_OURS,
    }
)
"""The connection options ``redis_client`` sets (or whose work it does) itself, each with what a
URL's query would override: redis-py lets the query win without a word, so ``EXESDB_BUS``
refuses them."""

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

Step = Callable[[], Awaitable[float | None]]

# A reader whose last read was small waits this long before the next: what arrives meanwhile
# comes in one read rather than many (each round trip costs more CPU than several messages).
_LINGER_SECONDS: Final = 0.005


class Link:
    """The Redis client the transport's background loops share, its state and retry policy.

    Every loop runs through ``keep_trying``: a failed step is recorded (``connected`` turns
    False, the reason is kept for readiness, ``connection_errors`` counts it) and waited out
    with ``backoff``, longer while failures follow each other; a successful one marks Redis
    reachable again. What leaves the transport for a caller (coordination, shared state) goes
    through ``boundary``, which turns a Redis failure into ``TransportError``.
    """

    def __init__(
        self, url: str, client: Redis, backoff: Backoff, *, restart_seconds: float = 1.0
    ) -> None:
        """``restart_seconds``: how long a stage that failed unexpectedly waits to restart."""
        self.url = url
        self.client = client
        for command in RAW_REPLIES:
            client.set_response_callback(command, _as_sent)
        self.backoff = backoff
        self.stopping = asyncio.Event()
        self.connected = False
        self.error: str | None = "not connected yet"
        self.connection_errors = 0
        self.stage_errors = 0
        self._restart_seconds = restart_seconds
        self._when_down: list[Callable[[], None]] = []

    async def command(self, *args: str | bytes | int) -> Any:
        """Send one command as it is written; the reply of a ``RAW_REPLIES`` command comes as
        Redis sent it."""
        return await self.client.execute_command(*args)  # type: ignore[no-untyped-call]

    def when_down(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on every failed command (e.g. to ask whether Redis lost its data)."""
        self._when_down.append(callback)

    def up(self) -> None:
        """Record a command that succeeded."""
        if not self.connected:
            _logger.info("connected to Redis at %s", safe_url(self.url))
        self.connected = True
        self.error = None

    def down(self, exc: BaseException, failures: int) -> float:
        """Record a failed command, the ``failures``-th in a row of its loop; returns how long
        to wait before the next try."""
        self.connection_errors += 1
        for callback in self._when_down:
            callback()
        reason = (str(exc) or type(exc).__name__).rstrip(".")  # redis-py ends its own with one
        # Once per outage and reason: the loops sharing the link fail together, alike.
        if self.connected or (failures == 1 and reason != self.error):
            _logger.warning("Redis at %s: %s; retrying with backoff", safe_url(self.url), reason)
        self.connected = False
        self.error = reason
        return self.backoff.delay(failures)

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less when the transport stops meanwhile."""
        # asyncio.timeout rather than wait_for: on Python 3.11 wait_for can swallow a
        # cancellation that arrives as the wait ends, and the loop would not stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stopping.wait()

    async def keep_trying(
        self,
        step: Step,
        *,
        refused: Callable[[ResponseError], bool] | None = None,
        failed: Callable[[], None] | None = None,
    ) -> None:
        """Run ``step`` again and again until the transport stops, through Redis failures.

        ``step`` returns None when it did not get to Redis (nothing to do), else how long to
        wait before the next step. ``refused`` may deal with a refusal itself (True: step
        again at once, nothing recorded); ``failed`` hears of each failure before the wait.
        """
        failures = 0
        while not self.stopping.is_set():
            if _cancel_requested():
                raise asyncio.CancelledError
            failure: BaseException
            try:
                wait = await step()
            except ResponseError as exc:
                if refused is not None and refused(exc):
                    continue
                failure = exc
            except RETRYABLE as exc:
                failure = exc
            else:
                if wait is not None:
                    failures = 0
                    self.up()
                    if wait > 0:
                        await self.pause(wait)
                continue
            if _cancel_requested():
                raise asyncio.CancelledError from failure
            failures += 1
            if failed is not None:
                failed()
            await self.pause(self.down(failure, failures))

    async def keep_running(self, name: str, stage: Callable[[], Awaitable[None]]) -> None:
        """Run one background stage; a bug in it is logged and counted, and the stage restarts."""
        while not self.stopping.is_set():
            try:
                await stage()
            except asyncio.CancelledError:
                raise
            except Exception:
                if _cancel_requested():
                    raise asyncio.CancelledError from None
                self.stage_errors += 1
                _logger.exception("Redis bus stage %s failed; restarting it", name)
                await self.pause(self._restart_seconds)

    @contextlib.contextmanager
    def boundary(self, doing: str) -> Iterator[None]:
        """Turn a Redis failure inside the block into ``TransportError`` (saying what was
        being done, and where), for a caller outside the transport."""
        try:
            yield
        except RETRYABLE as exc:
            reason = (str(exc) or type(exc).__name__).rstrip(".")  # redis-py ends its own with one
            raise TransportError(
                f"Redis at {safe_url(self.url)} could not {doing}: {reason}"
            ) from exc


def redis_client(url: str, *, block_ms: int) -> Redis:
    """The transport's client for ``url``, whose blocking reads wait up to ``block_ms``; it sets
    the options of ``OWN_OPTIONS`` (``EXESDB_BUS`` may not)."""
    return Redis.from_url(
        url,
        socket_connect_timeout=2.0,
        # Above the XREAD block time, so a blocked read is not mistaken for a dead server.
        socket_timeout=block_ms / 1000 + 5.0,
        retry=Retry(NoBackoff(), 0),  # reconnection is ours, with backoff and readiness
        health_check_interval=10,
        decode_responses=False,  # the default, said here: entries are verified as the bytes signed
    )


def linger(read: int, batch: int) -> float:
    """How long a reader waits before its next read, having read ``read`` entries of at most
    ``batch``: a moment after a small read, none after a large one (it may be behind)."""
    return _LINGER_SECONDS if read < batch // 4 else 0.0


def _as_sent(response: Any, **kwargs: Any) -> Any:
    return response


def _cancel_requested() -> bool:
    """True when this task was asked to stop but the request got lost on the way: redis-py
    may replace a cancellation with its own error (e.g. a timeout while it closes a TLS
    connection), and a loop that took that for a Redis failure would never stop."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def temporary(exc: ResponseError) -> bool:
    """True for a refusal that may clear by itself (retry), False for one that will not."""
    if isinstance(exc, (OutOfMemoryError, ReadOnlyError)):
        return True
    text = str(exc)
    # A pipeline's error may be prefixed with the command it failed on.
    head = text.rsplit("caused error: ", 1)[-1]
    return head.split(" ", 1)[0] in _TEMPORARY_REPLIES
