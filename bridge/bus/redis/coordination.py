"""Coordination keys for the cluster monitor: atomic swaps and once-only claims across replicas."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from redis.exceptions import ResponseError

from bridge.bus.redis.layout import Layout, text
from bridge.bus.redis.link import Link, script_named

__all__ = ["RedisCoordinator"]

# KEYS[1] the claim; ARGV[1] the caller's period, in milliseconds. Now is Redis's clock (TIME,
# allowed before a write since scripts replicate their effects, the default from Redis 5 and the
# only way from 7), so replicas whose clocks differ agree on the period. The key holds the last
# claim, "<now>:<period>": made within the period of now (or a later one, by a clock ahead:
# another Redis's after a failover, or a replica of the version before, which gave its own), the
# shorter of the two periods, it holds; else the claim is this caller's, for two of its periods.
# A value of another shape (not set by this) is no claim.
_ONCE_PER_PERIOD = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local period = tonumber(ARGV[1])
local at, by = string.match(redis.call('GET', KEYS[1]) or '', '^(%d+):(%d+)$')
at, by = tonumber(at), tonumber(by)
if at and by and by > 0 then
    local shortest = math.min(period, by)
    if math.floor(at / shortest) >= math.floor(now / shortest) then
        return 0
    end
end
redis.call('SET', KEYS[1], string.format('%d:%d', now, period), 'PX', 2 * period)
return 1
"""
# What a refusal of the claim says it refused: Redis's words for a script's do not say.
_CLAIMING: Final = "the periodic ClusterHealth's claim, a script running TIME, GET and SET"


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

    async def once_per_period(self, key: str, period_ms: int) -> bool:
        """True when no replica claimed ``key`` yet within the period Redis's clock is in, of
        ``period_ms`` or the last claimer's if shorter (``Coordinator``): one Lua script, a
        ``TIME``, a ``GET`` and a ``SET``.

        Raises ``TransportError`` when Redis cannot be reached.
        """
        with self._link.boundary(f"claim {key}"):
            try:
                claimed = await self._link.client.eval(
                    _ONCE_PER_PERIOD, 1, self._layout.coordination(key), period_ms
                )
            except ResponseError as exc:
                named = script_named(exc, _CLAIMING)
                if named is exc:
                    raise
                raise named from exc
        return bool(claimed)
