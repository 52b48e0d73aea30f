"""Coordination keys for the cluster monitor: atomic swaps and once-only claims across replicas."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from redis.exceptions import ResponseError

from bridge.bus.redis.layout import Layout, text
from bridge.bus.redis.link import USER_RULES, Link, script_named
from bridge.redaction import safe_url

__all__ = ["RedisCoordinator"]

_logger = logging.getLogger(__name__)

# KEYS[1] the claim; ARGV: the caller's period, and its clock, in milliseconds. Now is Redis's
# clock (TIME, allowed before a write since scripts replicate their effects, the default from
# Redis 5 and the only way from 7), so replicas whose clocks differ agree on the period; the
# caller's only when the ACL refuses this user TIME (Redis 7 can be asked first), rather than
# leave every period unclaimed. The key holds the last claim, "<now>:<period>": made within the
# period of now (or a later one, by a clock ahead: another Redis's after a failover, or a
# replica's), the shorter of the two periods, it holds; else the claim is this caller's, for two
# of its periods. A value of another shape (not set by this) is no claim. Returns whether it
# claimed, whether by Redis's clock, and the milliseconds until the period that holds ends (the
# caller's own, claimed): no claim of the caller's can be made before then.
_ONCE_PER_PERIOD = """
local now, by_redis = tonumber(ARGV[2]), 0
if not redis.acl_check_cmd or redis.acl_check_cmd('TIME') then
    local time = redis.call('TIME')
    now, by_redis = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000), 1
end
local period = tonumber(ARGV[1])
local at, by = string.match(redis.call('GET', KEYS[1]) or '', '^(%d+):(%d+)$')
at, by = tonumber(at), tonumber(by)
if at and by and by > 0 then
    local shortest = math.min(period, by)
    local held = math.floor(at / shortest)
    if held >= math.floor(now / shortest) then
        return {0, by_redis, (held + 1) * shortest - now}
    end
end
redis.call('SET', KEYS[1], string.format('%d:%d', now, period), 'PX', 2 * period)
return {1, by_redis, (math.floor(now / period) + 1) * period - now}
"""
# Redis's clock, or false where the ACL refuses this user TIME (asked first, as the claim does:
# a refusal would be logged in the ACL LOG each time; Redis before 7 cannot be asked).
_TIME = """
if redis.acl_check_cmd and not redis.acl_check_cmd('TIME') then return false end
return redis.call('TIME')
"""
# What a refusal of the claim says it refused: Redis's words for a script's do not say.
_CLAIMING: Final = "the periodic ClusterHealth's claim, a script running TIME, GET and SET"


class RedisCoordinator:
    """The ``Coordinator`` of replicas sharing a Redis: one key per decision, with a TTL."""

    def __init__(
        self,
        link: Link,
        layout: Layout,
        *,
        owner: str,
        data_losses: Callable[[], int],
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``owner`` is the value a ``once`` key is set to (this replica's consumer name);
        ``data_losses`` counts the data losses the transport found (a new ``exesdb:bus:epoch``);
        ``wall_clock`` (Unix seconds) dates a ``once_per_period`` claim, and is ``unix_time``,
        only when Redis's ACL refuses this user ``TIME``; ``monotonic`` times how long a
        ``once_per_period`` key is known claimed."""
        self._link = link
        self._layout = layout
        self._owner = owner
        self._data_losses = data_losses
        self._wall_clock = wall_clock
        self._by_redis = True  # whether the last claim went by Redis's clock
        self._time_refused = False  # the ACL refuses TIME (told once while it lasts)
        self._monotonic = monotonic
        # Per once_per_period key: until when (``monotonic``) a claim is known to hold, so that
        # Redis is not asked at every tick (a second) for a claim that cannot be made before.
        self._held_until: dict[str, float] = {}

    @property
    def data_losses(self) -> int:
        """How many times this replica found that Redis lost its data (``Coordinator``)."""
        return self._data_losses()

    async def swap(self, key: str, value: str, ttl_ms: int) -> str | None:
        """Set ``key`` to ``value`` (expiring after ``ttl_ms``); the previous value, if any.

        Raises ``TransportError`` when Redis cannot be reached.
        """
        with self._link.boundary(f"swap {key}", work="swap"):
            old: Any = await self._link.client.set(
                self._layout.coordination(key), value, px=ttl_ms, get=True
            )
        return None if old is None else text(old)

    async def once(self, key: str, ttl_ms: int) -> bool:
        """True for exactly one caller per ``key`` within ``ttl_ms`` across all replicas.

        Raises ``TransportError`` when Redis cannot be reached.
        """
        with self._link.boundary(f"claim {key}", work="claim once"):
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
        with self._link.boundary(f"refresh the expiry of {len(keys)} keys", work="refresh"):
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
        ``TIME``, a ``GET`` and a ``SET``. Where the ACL refuses this user ``TIME`` (Redis 7
        is asked first), the period is this replica's clock's, and a warning says so once.
        Redis says when the period that holds ends; until then (a period of ``period_ms`` at
        most, should a clock ahead have dated the claim far on) this answers False without
        asking it, as it would answer: a caller ticking each second asks once a period.

        Raises ``TransportError`` when Redis cannot be reached.
        """
        asked = self._monotonic()
        if asked < self._held_until.get(key, asked):
            return False
        now_ms = int(self._wall_clock() * 1000)
        with self._link.boundary(f"claim {key}", work="claim once a period"):
            try:
                claimed, by_redis, held_ms = await self._link.client.eval(
                    _ONCE_PER_PERIOD, 1, self._layout.coordination(key), period_ms, now_ms
                )
            except ResponseError as exc:
                named = script_named(exc, _CLAIMING)
                if named is exc:
                    raise
                raise named from exc
        # From before the question: Redis's answer came later, never sooner, than it was made.
        # A millisecond less: the clock it was reckoned by is cut to whole milliseconds, so up
        # to one of them had passed already (a tick just after the period ended would not ask).
        self._held_until[key] = asked + (min(int(held_ms), period_ms) - 1) / 1000
        if bool(by_redis) != self._by_redis:
            self._by_redis = bool(by_redis)
            if by_redis:
                _logger.info("the periodic ClusterHealth goes by Redis's clock again")
            else:
                _logger.warning(
                    "Redis at %s refuses the bridge's user TIME: the periodic ClusterHealth goes "
                    "by each replica's own clock, so replicas whose clocks differ may publish it "
                    "twice in a period, or in none (give the user +time: %s)",
                    safe_url(self._link.url),
                    USER_RULES,
                )
        return bool(claimed)

    async def unix_time(self) -> float:
        """Redis's clock (``TIME``), in Unix seconds (``Coordinator``); this replica's own where
        the ACL refuses this user ``TIME`` (Redis 7 is asked first), said once while it does.

        Raises ``TransportError`` when Redis cannot be reached.
        """
        with self._link.boundary("read its clock (TIME)", work="time"):
            now: Any = await self._link.client.eval(_TIME, 0)
        if now is not None:
            self._time_refused = False
            return int(now[0]) + int(now[1]) / 1_000_000
        if not self._time_refused:
            self._time_refused = True
            _logger.warning(
                "Redis at %s refuses the bridge's user TIME: the cluster monitor dates its"
                " announcements, and the alert stage caps the dates of events, by each replica's"
                " own clock, so a node's return announced by, or handled on, a replica whose"
                " clock is behind may be taken as older than its down, and its node_failure"
                " left open (give the user +time: %s)",
                safe_url(self._link.url),
                USER_RULES,
            )
        return self._wall_clock()
