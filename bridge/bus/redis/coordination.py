"""Coordination keys for the cluster monitor: atomic swaps and once-only claims across replicas."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from bridge.bus.redis.layout import Layout, text
from bridge.bus.redis.link import Link

__all__ = ["RedisCoordinator"]


class RedisCoordinator:
    """The ``Coordinator`` of replicas sharing a Redis: one key per decision, with a TTL."""

    def __init__(self, link: Link, layout: Layout, *, owner: str) -> None:
        """``owner`` is the value a ``once`` key is set to (this replica's consumer name)."""
        self._link = link
        self._layout = layout
        self._owner = owner

    async def swap(self, key: str, value: str, ttl_ms: int) -> str | None:
        """Set ``key`` to ``value`` (expiring after ``ttl_ms``); the previous value, if any.

        Raises ``TransportError`` when Redis cannot be reached.
        """
        with self._link.boundary(f"swap {key}"):
            old: Any = await self._link.client.set(
                self._layout.coordination(key), value, px=ttl_ms, get=True
            )
        return None if old is None else text(old)

    async def once(self, key: str, ttl_ms: int) -> bool:
        """True for exactly one caller per ``key`` within ``ttl_ms`` across all replicas.

        Raises ``TransportError`` when Redis cannot be reached.
        """
        with self._link.boundary(f"claim {key}"):
            return bool(
                await self._link.client.set(
                    self._layout.coordination(key), self._owner, nx=True, px=ttl_ms
                )
            )

    async def refresh(self, keys: Collection[str], ttl_ms: int) -> None:
        """Make each of ``keys`` that exists expire ``ttl_ms`` from now: one pipeline of
        ``PEXPIRE`` (which leaves a missing key missing).

        Raises ``TransportError`` when Redis cannot be reached.
        """
        if not keys:
            return
        with self._link.boundary(f"refresh the expiry of {len(keys)} keys"):
            pipe = self._link.client.pipeline(transaction=False)
            for key in keys:
                pipe.pexpire(self._layout.coordination(key), ttl_ms)
            await pipe.execute()
