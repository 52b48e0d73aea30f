"""Rotated TLS files a rediss:// URL names, taken by the bus's next connections without a restart.

The client's connection pool loads ``ssl_ca_certs``, ``ssl_certfile`` and ``ssl_keyfile`` once
and every connection it opens keeps what it loaded (``redis_pool``): a rotated certificate or CA
would reach the bus only at a restart. So the files are looked at every second, as the web
config's are (``bridge.webconfig.live``): read and hashed; a change read the same twice
``_SETTLE_SECONDS`` apart (a file being written is not taken half-way) is judged as at start
(``tls_file_problems``), and, when it loads, the client gets a new connection pool that loaded
it then. The old pool's idle connections are closed at once, the rest once the commands they
carry have ended (``command_seconds``): no command fails for it, and the loops go on as they
would. A change that does not load (a certificate written before its key, a file half-written
when judged, one over ``MAX_FILE_BYTES``, of which no more is read) is logged once and left: the
old pool's connections, those it opens meanwhile too, keep what it loaded, and readiness is not
touched. Whether the last change was taken, and when the files in force were loaded, are the
bus's self-metrics (``bridge.bus.redis.metrics``), as the web config's are. An ``ssl_ca_path``
folder is not looked at (OpenSSL reads it as it verifies). A client the caller gives the
transport is not looked after: its pool is the caller's.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from typing import Final

from redis.asyncio import ConnectionPool

from bridge.bus.redis.link import RETRYABLE, Link, command_seconds, redis_pool
from bridge.bus.redis.tls_files import pem_files_named, tls_file_problems
from bridge.redaction import redact_urls, safe_url
from bridge.regular_files import MAX_FILE_BYTES
from bridge.tlsutil import Stamp, load_error, stamp_files

__all__ = ["TLSRotation"]

_logger = logging.getLogger(__name__)

_CHECK_SECONDS: Final = 1.0
# How long a changed file must read the same before it is judged: a writer still at it has
# written more by then (a rotation's rename is one step, and waits no longer).
_SETTLE_SECONDS: Final = 0.1


class TLSRotation:
    """Looks at the TLS files ``link``'s URL names, and gives its client a new connection pool
    when they changed and load."""

    def __init__(
        self,
        link: Link,
        *,
        block_ms: int,
        timeout_ms: int | None = None,
        check_seconds: float = _CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """``link``'s client is to be ``redis_client(link.url, block_ms=block_ms,
        timeout_ms=timeout_ms)``'s (its new pools are made alike); the files are read now, as
        they were judged at start."""
        self._link = link
        self._block_ms = block_ms
        self._timeout_ms = timeout_ms
        self._check_seconds = check_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._files = pem_files_named(link.url)
        self._stamp = self._read()  # the files as the connections load them
        self._loaded_at = wall_clock()  # when the files in force were read (Unix seconds)
        self._refused: Stamp | None = None  # a change logged as not loading
        # A changed stamp, and when it was first read: judged once a later read agrees with it.
        self._changed: tuple[Stamp, float] | None = None
        self._retired: list[tuple[ConnectionPool, float]] = []  # (old pool, when to close it)

    @property
    def watching(self) -> bool:
        """Whether the URL names a file to look at."""
        return bool(self._files)

    @property
    def last_reload_successful(self) -> bool:
        """False while the files as they are now were refused (the ones loaded before stay in
        force); True once a change is taken, or the files are put back as they were."""
        return self._refused is None

    @property
    def loaded_at(self) -> float:
        """When the files in force were read, at start or as a change was taken (Unix seconds)."""
        return self._loaded_at

    async def run(self) -> None:
        """Look at the files until the transport stops."""
        while not self._link.stopping.is_set():
            await self._link.pause(await self._look())

    async def aclose(self) -> None:
        """Close the old pools not closed yet (after ``run`` ended)."""
        retired, self._retired = self._retired, []
        for pool, _ in retired:
            with contextlib.suppress(*RETRYABLE):
                await pool.aclose()

    def _read(self) -> Stamp:
        # No further than a file tls_file_problems refuses by its size: read and hashed whole
        # each second on the event loop, 500 MB copied over a CA file stalled every request.
        return stamp_files(self._files.values(), limit=MAX_FILE_BYTES)

    async def _look(self) -> float:
        """Look at the files now, and take a change that settled and loads; returns how long
        to wait before the next look."""
        await self._close_retired()
        now = self._clock()
        stamp = self._read()
        if stamp == self._stamp:
            self._changed = self._refused = None  # put back as they were
            return self._check_seconds
        if stamp == self._refused:  # already logged
            self._changed = None
            return self._check_seconds
        if self._changed is None or self._changed[0] != stamp:
            self._changed = (stamp, now)  # new: read again once a writer would have written more
            return _SETTLE_SECONDS
        if now < self._changed[1] + _SETTLE_SECONDS:
            return self._changed[1] + _SETTLE_SECONDS - now
        self._changed = None
        pool, problems = self._judge()
        if (again := self._read()) != stamp:
            self._changed = (again, now)  # rewritten while judged: that version must settle too
            return _SETTLE_SECONDS
        if pool is None:
            self._refused = stamp
            _logger.warning(
                "Redis at %s: the TLS files EXESDB_BUS names changed but do not load; the"
                " connections keep what they loaded: %s",
                safe_url(self._link.url),
                redact_urls("; ".join(problems)),
            )
            return self._check_seconds
        files = zip(self._files.items(), self._stamp, stamp, strict=True)
        changed = [f"{option} {path}" for (option, path), old, new in files if old != new]
        self._stamp = stamp
        self._refused = None
        self._loaded_at = self._wall_clock()
        await self._renew_pool(pool)
        _logger.info(
            "Redis at %s: TLS files changed (%s): the bus takes them on new connections",
            safe_url(self._link.url),
            ", ".join(changed),
        )
        return self._check_seconds

    def _judge(self) -> tuple[ConnectionPool | None, list[str]]:
        """A new pool with the files loaded now, as they are judged (its connections keep
        them), or None and what keeps them from loading."""
        if problems := tls_file_problems(self._link.url):
            return None, problems
        try:
            return redis_pool(
                self._link.url, block_ms=self._block_ms, timeout_ms=self._timeout_ms, load_tls=True
            ), []
        except (OSError, ssl.SSLError) as exc:  # judged fine, yet OpenSSL refuses them
            return None, [f"the TLS files do not load: {load_error(exc)}"]

    async def _renew_pool(self, pool: ConnectionPool) -> None:
        """Give the client ``pool``; the old one's idle connections are closed now, the rest
        once their commands have ended."""
        client = self._link.client
        old = client.connection_pool
        # Each command takes the pool in force as it starts, and gives its connection back to
        # that pool: the commands under way end on the old one.
        client.connection_pool = pool
        ends = self._clock() + command_seconds(self._block_ms, self._timeout_ms)
        self._retired.append((old, ends))
        with contextlib.suppress(*RETRYABLE):
            await old.disconnect(inuse_connections=False)

    async def _close_retired(self) -> None:
        """Close the old pools whose commands have all ended."""
        now = self._clock()
        for retired in [entry for entry in self._retired if entry[1] <= now]:
            with contextlib.suppress(*RETRYABLE):
                await retired[0].aclose()
            # Only once closed: a stop cancelling this await leaves it to aclose.
            self._retired.remove(retired)
