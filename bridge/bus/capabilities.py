"""What a transport offers beyond carrying frames, declared so that no component guesses.

A transport's ``capabilities`` names them; ``bridge/app.py`` hands them to the parts that use
them (the alert sink, the cluster monitor). The in-process transport offers only a local
coordinator; the Redis transport offers all six:

- ``shared``: frames cross processes, so ingest keeps a replay memory of its own and the
  transport, not the local subscribers, makes a published message durable;
- ``coordinator``: atomic keys, so exactly one replica announces a cluster transition, and
  one publishes each period's ClusterHealth;
- ``lease``: the work-queue lease, held by one replica at a time (it alone escalates alerts);
- ``state``: records kept with the work queue in the shared store (the open alerts), changed
  only by the lease holder, so that whichever replica holds it next, after a graceful stop or a
  crash of the last, finds them;
- ``node_name``: whether another live process uses this replica's node name on the shared store
  (told as an optional readiness check, not a required one: every process under the name is told,
  and each still carries the bus);
- ``unstorable``: why ``send_durably`` refuses every batch now (on Redis: the spool's files
  removed under it), for a publisher that tells its sender why (ingest's 503).

A capability that cannot reach what it shares (Redis down) raises ``TransportError``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

__all__ = [
    "Coordinator",
    "LocalCoordinator",
    "NodeNameCheck",
    "SharedState",
    "StateChange",
    "TransportCapabilities",
    "WorkQueueLease",
]

# Keys a LocalCoordinator keeps before it sweeps the expired ones.
_MAX_LOCAL_KEYS: Final = 10_000


class Coordinator(Protocol):
    """Decides, across every replica, which one acts on a transition."""

    async def swap(self, key: str, value: str, ttl_ms: int) -> str | None:
        """Atomically set ``key`` to ``value``; the previous value (None if there was none)."""

    async def once(self, key: str, ttl_ms: int) -> bool:
        """True for exactly one caller per ``key`` within ``ttl_ms``."""

    @property
    def data_losses(self) -> int:
        """How many times this replica found that the shared store lost its data (its keys
        gone with it); always 0 for a store that cannot lose them apart from the process."""

    async def refresh(self, keys: Mapping[str, str | None], ttl_ms: int) -> None:
        """Make each of ``keys`` expire ``ttl_ms`` from now, in one round trip: one that does
        not exist (expired, or lost with the store's data) is set to its value, or left so if
        that is None."""

    async def once_per_period(self, key: str, period_ms: int) -> bool:
        """True when no caller claimed ``key`` yet within the period that the coordinator's
        clock is in (the shared store's, so callers whose clocks differ agree: Redis's ``TIME``;
        a lone bridge's own): periods counted from that clock's zero (the Unix epoch for
        Redis), each ``period_ms`` long, or as long as the last claimer's if that is shorter.
        So callers of different periods claim once in each period of the shortest among them
        (the others find it claimed, or claim it first), and once that one stops, the next
        shortest takes over. The claim holds for two of the caller's periods. ``period_ms`` is
        at least 1 (the interval settings' floor is 100)."""

    async def unix_time(self) -> float:
        """Seconds since the Unix epoch by the coordinator's clock: the shared store's (Redis's
        ``TIME``), so that what replicas whose clocks differ date goes in the order it happened;
        a lone bridge's own wall clock."""


class WorkQueueLease(Protocol):
    """The lease that makes one replica at a time the reader of the work queue."""

    @property
    def leading(self) -> bool:
        """True while this replica holds the lease."""

    @property
    def holder(self) -> str | None:
        """The replica that holds the lease (its consumer name, ``<EXESDB_NODE>:<tag>``), as this
        one last saw it; None when it saw none."""

    @property
    def reachable(self) -> bool:
        """Whether this replica can use the store that keeps the lease (Redis): it answers and
        takes the lease's commands. While it does not (unreachable, or refusing them), no
        replica can be known here to hold the lease."""

    @property
    def kept(self) -> bool:
        """True while this replica keeps the lease without serving the work queue: it took the
        lease back after the store (Redis) lost its data, and with it the lease it held, and
        keeps it through failed take-ups of the work queue (its open alerts are kept only
        here), so that no replica serves it meanwhile."""

    async def first_answer(self, within: float) -> bool:
        """Wait at most ``within`` seconds for the store's first answer since this replica
        started (at once when it has answered before); whether it has answered."""

    def on_lead(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Await ``callback`` each time this replica takes the lease, before it reads."""

    def require(self, check: Callable[[], str | None]) -> None:
        """Hold the lease only while ``check()`` is None (else it says why this replica cannot
        serve the work queue now: its alert outbox hangs, say): a holder found unfit gives the
        lease up, so that a replica standing by takes over, and takes it again only once fit."""

    async def stop_reading(self) -> None:
        """Take no more work-queue entries (keep the lease until ``release``)."""

    async def release(self, within: float = 2.0) -> None:
        """Stop reading and give the lease up at once, so that another replica takes over,
        after writing the acknowledgements of what was handled for up to ``within`` seconds."""


@dataclass(frozen=True, slots=True)
class StateChange:
    """One change of shared records, made in one step.

    ``put`` and ``remove`` change records by key; ``note`` (an id and bytes) is kept for this
    replica alone until it calls ``SharedState.forget``: what it has yet to do on its own side
    of the change, found again after a crash; ``restore`` puts the records back into a store
    that lost them, and is refused (nothing changed) when the store holds any: a record kept
    there is never dropped unread; ``along``: the records of other names changed in the same
    step (their ``put`` and ``remove`` alone), all or nothing with these.
    """

    put: Mapping[str, bytes] = field(default_factory=dict)
    remove: Collection[str] = ()
    note: tuple[str, bytes] | None = None
    restore: bool = False
    along: Mapping[str, StateChange] = field(default_factory=dict)


class SharedState(Protocol):
    """Records kept with the work queue in the shared store, changed only by the lease holder."""

    async def load(self, name: str) -> dict[str, bytes] | None:
        """Every record under ``name``; None when there never were any, or the store lost them."""

    async def read(self, name: str, keys: Collection[str]) -> dict[str, bytes] | None:
        """The records of ``keys`` under ``name`` that exist (a key without one has none); None
        as for ``load``, when the store lost them (or there never were any)."""

    async def holds(self, name: str) -> bool:
        """Whether ``name`` holds any record now: False once emptied, and when the store lost
        them (or there never were any)."""

    async def commit(self, name: str, change: StateChange) -> bool:
        """Apply ``change`` to ``name`` in one step if this replica holds the lease; False, with
        nothing changed, when it does not (another replica took over), or when a ``restore``
        finds records there."""

    async def notes(self, name: str) -> dict[str, bytes]:
        """This replica's notes under ``name`` (``StateChange.note``), by id."""

    async def forget(self, name: str, note_ids: Collection[str]) -> set[str]:
        """Drop notes this replica has acted on (and what ``taken_over`` says of them: they
        came back to it); those that were gone, taken over by another replica meanwhile."""

    async def taken_over(self, name: str) -> dict[str, bytes]:
        """This replica's notes under ``name`` another replica took over (``adopt``) before this
        one dropped them, by id: this one may have acted on them too. Kept until ``settle``,
        or for as long as notes are."""

    async def settle(self, name: str, note_ids: Collection[str]) -> None:
        """Drop what ``taken_over`` says of ``note_ids`` (acted on)."""

    async def adopt(self, name: str) -> int:
        """Move the notes of every other replica under ``name`` to this one's (while it holds the
        lease, else ``TransportError``), each note to one replica only, a copy of each kept for
        the replica it came from (``taken_over``); how many moved."""


class NodeNameCheck(Protocol):
    """Tells whether another live process uses this replica's node name (``EXESDB_NODE``)."""

    def problem(self) -> str | None:
        """None while no other process is seen using it, else what to do about it."""


class LocalCoordinator:
    """The coordinator of a lone bridge (in-process bus): it always decides for itself.

    It keeps about ``max_keys`` keys (``kept``): past that, the expired go, then the least
    recently set.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_keys: int = _MAX_LOCAL_KEYS,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock`` times the keys' expiries; ``wall_clock`` (Unix seconds) is ``unix_time``."""
        self._values: dict[str, tuple[str, float]] = {}
        self._clock = clock
        self._wall_clock = wall_clock
        self._max_keys = max_keys

    @property
    def kept(self) -> int:
        """How many keys it holds now (expired ones included until a sweep)."""
        return len(self._values)

    async def swap(self, key: str, value: str, ttl_ms: int) -> str | None:
        now = self._clock()
        old = self._values.pop(key, None)  # re-inserted: the dict stays in order of last set
        self._values[key] = (value, now + ttl_ms / 1000)
        self._sweep(now)
        return old[0] if old is not None and old[1] > now else None

    async def once(self, key: str, ttl_ms: int) -> bool:
        now = self._clock()
        old = self._values.get(key)
        if old is not None and old[1] > now:
            return False
        self._values[key] = ("1", now + ttl_ms / 1000)
        self._sweep(now)
        return True

    @property
    def data_losses(self) -> int:
        return 0  # the keys live and die with the process

    async def refresh(self, keys: Mapping[str, str | None], ttl_ms: int) -> None:
        now = self._clock()
        values = self._values
        for key, value in keys.items():
            old = values.get(key)
            kept = old[0] if old is not None and old[1] > now else value
            if kept is not None:
                values[key] = (kept, now + ttl_ms / 1000)
        self._sweep(now)

    async def once_per_period(self, key: str, period_ms: int) -> bool:
        now = self._clock()
        now_ms = int(now * 1000)  # its own clock: the one every caller of it shares
        old = self._values.get(key)
        if old is not None and old[1] > now and _claimed(old[0], now_ms, period_ms):
            return False
        self._values.pop(key, None)  # re-inserted: the dict stays in order of last set
        self._values[key] = (f"{now_ms}:{period_ms}", now + 2 * period_ms / 1000)
        self._sweep(now)
        return True

    async def unix_time(self) -> float:
        return self._wall_clock()

    def _sweep(self, now: float) -> None:
        if len(self._values) <= self._max_keys:
            return
        live = {k: v for k, v in self._values.items() if v[1] > now}
        # Still full of live keys (a flood of node names): the least recently set go, down to
        # 90 %, so memory stays bounded and the sweep runs once per many calls, not on each.
        for key in list(live)[: len(live) - self._max_keys * 9 // 10]:
            del live[key]
        self._values = live


def _claimed(claim: str, now_ms: int, period_ms: int) -> bool:
    """Whether ``claim`` (``<ms>:<period ms>``, as ``once_per_period`` sets it) holds for
    the period of ``now_ms``: made within it, or within a later one (by a clock ahead), the
    period the shorter of the two. A value of another shape is no claim."""
    at, _, by = claim.partition(":")
    if not (at.isdecimal() and by.isdecimal() and int(by) > 0):
        return False
    shortest = min(period_ms, int(by))
    return int(at) // shortest >= now_ms // shortest


@dataclass(frozen=True, slots=True)
class TransportCapabilities:
    """What a transport offers beyond ``send``; see the module docstring."""

    shared: bool
    coordinator: Coordinator
    lease: WorkQueueLease | None = None
    state: SharedState | None = None
    node_name: NodeNameCheck | None = None
    unstorable: Callable[[], str | None] | None = None
