"""Coordination keys for the cluster monitor: atomic swaps and once-only claims across replicas."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bridge.bus.redis.layout import Layout, text
from bridge.bus.redis.link import Link

__all__ = ["RedisCoordinator"]

# KEYS[1] the claim; ARGV: now and the caller's period, in milliseconds. The key holds the last
# claim, "<now>:<period>": made within the period of now (or a later one, by a clock ahead), the
# shorter of the two periods, it holds; else the claim is this caller's, for two of its periods.
# A value of another shape (not set by this) is no claim.
_ONCE_PER_PERIOD = """
local now = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local at, by = string.match(redis.call('GET', KEYS[1]) or '', '^(%d+):(%d+)$')
at, by = tonumber(at), tonumber(by)
if at and by and by > 0 then
    local shortest = math.min(period, by)
    if math.floor(at / shortest) >= math.floor(now / shortest) then
        return 0
    end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2], 'PX', 2 * period)
return 1
"""


class RedisCoordinator:
    """The ``Coordinator`` of replicas sharing a Redis: one key per decision, with a TTL."""

    def __init__(
        self, link: Link, layout: Layout, *, owner: str, data_losses: Callable[[], int]
    ) -> None:
        """``owner`` is the value a ``once`` key is set to (this replica's consumer name);
        ``data_losses`` counts the data losses the transport found (a new ``exesdb:bus:epoch``)."""
        self._link = link
        self._layout = layout
        self._owner = owner
        self._data_losses = data_losses

    @property
    def data_losses(self) -> int:
        """How many times this replica found that Redis lost its data (``Coordinator``)."""
        return self._data_losses()

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

    async def refresh(self, keys: Mapping[str, str | None], ttl_ms: int) -> None:
        """Make each of ``keys`` expire ``ttl_ms`` from now, one that is missing set to its
        value unless None (``Coordinator``): one pipeline, ``SET … NX PX`` (for a missing key)
        and ``PEXPIRE`` (for one that was there) for each.

        Raises ``TransportError`` when Redis cannot be reached.
        """
        if not keys:
            return
        with self._link.boundary(f"refresh the expiry of {len(keys)} keys"):
            pipe = self._link.client.pipeline(transaction=False)
            for key, value in keys.items():
                name = self._layout.coordination(key)
                if value is not None:
                    pipe.set(name, value, nx=True, px=ttl_ms)
                pipe.pexpire(name, ttl_ms)
            await pipe.execute()

    async def once_per_period(self, key: str, period_ms: int, now_ms: int) -> bool:
        """True when no replica claimed ``key`` yet within the wall-clock period ``now_ms``
        falls in, of ``period_ms`` or the last claimer's if shorter (``Coordinator``): one Lua
        script, a ``GET`` and a ``SET``.

        Raises ``TransportError`` when Redis cannot be reached.
        """
        with self._link.boundary(f"claim {key}"):
            claimed = await self._link.client.eval(
                _ONCE_PER_PERIOD, 1, self._layout.coordination(key), now_ms, period_ms
            )
        return bool(claimed)
