"""The node name check: whether another live process uses this replica's EXESDB_NODE on Redis.

Two processes under one node name share its alert notes key and merge their heartbeats, so each
process marks ``exesdb:state:replica:<node>`` with a random id of its own, every third of the
lease (the lease's renewal period), expiring after the lease, and reads the mark it replaces in
the same command (``SET … PX … GET``). Once it has written its id, reading another's on a later
refresh means another process wrote under the same name meanwhile: one that is running, since a
crashed predecessor's mark is read only by the first write (a replica started again after a
crash is not told). Told once per episode, it ends when no other id has been read for a lease.
A graceful stop deletes the mark if it is still this process's (compared and deleted in one
script, so a newer process's mark stays), so that a replacement reads none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, Final

from bridge.bus.redis.layout import Layout, text
from bridge.bus.redis.link import RETRYABLE, Link
from bridge.source_repository import cite_source

__all__ = ["RedisNodeNameCheck"]

_logger = logging.getLogger(__name__)

# What a replica sharing its node name with another process is told to read.
_ONE_NAME_EACH: Final = cite_source("docs/redis.md#one-node-name-per-process")

# Delete the mark only while it holds this process's id: a process started under the name since
# has written its own, which stays.
_FORGET: Final = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
    "else return 0 end"
)


class RedisNodeNameCheck:
    """Marks this process's node name in Redis and tells another live process marking it too."""

    def __init__(
        self,
        link: Link,
        layout: Layout,
        *,
        node: str,
        lease_ms: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``lease_ms``: the work-queue lease, whose renewal period (a third) this check keeps;
        the mark expires after it, and an episode ends once no other mark was read for it."""
        self._link = link
        self._key = layout.replica(node)
        self._node = node
        self._id = secrets.token_hex(8)
        self._lease_ms = lease_ms
        self._period = lease_ms / 3000
        self._clock = clock
        self._written = False  # whether this process's id is known to be in Redis
        # Whether it may be: a write sent, its answer perhaps cut off by the stop.
        self._sent = False
        self._seen = float("-inf")  # when another's id was last read
        self._shared = False

    @property
    def shared(self) -> bool:
        """True while another live process is seen marking this replica's node name."""
        return self._shared

    def problem(self) -> str | None:
        """None while no other process is seen using this replica's node name, else what to
        do about it."""
        if not self._shared:
            return None
        return (
            f"another bridge process on this Redis runs with EXESDB_NODE={self._node}: give"
            f" each replica its own EXESDB_NODE ({_ONE_NAME_EACH})"
        )

    async def run(self) -> None:
        """Mark the node name every period until the transport stops."""
        await self._link.keep_trying(self._step, owner=self)

    async def forget(self, seconds: float) -> None:
        """Delete the mark if it still holds this process's id (at a graceful stop, once ``run``
        has stopped), waiting ``seconds`` at most: a process started under the name next
        reads none. Redis unreachable, slow or refusing, the mark expires after the lease as
        after a crash."""
        if not self._sent:
            return
        with contextlib.suppress(*RETRYABLE, TimeoutError):
            await asyncio.wait_for(self._link.client.eval(_FORGET, 1, self._key, self._id), seconds)

    async def _step(self) -> float:
        self._sent = True
        old: Any = await self._link.client.set(self._key, self._id, px=self._lease_ms, get=True)
        now = self._clock()
        # Only once this process's id was in Redis does another id mean a live writer: the
        # first write may read a crashed predecessor's mark.
        if self._written and old is not None and text(old) != self._id:
            self._seen = now
            if not self._shared:
                self._shared = True
                _logger.error(
                    "another bridge process on this Redis runs with EXESDB_NODE=%s (it wrote"
                    " %s): the two share this replica's alert notes and heartbeats, so crash"
                    " recovery and node-down detection go wrong; give each replica its own"
                    " EXESDB_NODE",
                    self._node,
                    self._key,
                )
        elif self._shared and now - self._seen > self._lease_ms / 1000:
            self._shared = False
            _logger.info(
                "no other bridge process on this Redis runs with EXESDB_NODE=%s any more",
                self._node,
            )
        self._written = True
        return self._period
