"""The work-queue frames written lately, kept until a consumer group has taken and handled them.

The writer writes them again should Redis lose its data meanwhile (``writer.py``); a look at the
consumer group (XINFO GROUPS, XPENDING) forgets those handled, and each is forgotten anyway after
twice the claim idle time (10 s at least).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Final

from redis.exceptions import NoPermissionError

from bridge.bus.redis.layout import GROUP, Layout, stream_id, text
from bridge.bus.redis.link import Link
from bridge.bus.transport import Frame

__all__ = ["Lane", "Retained"]

# How often the frames kept are checked against the consumer groups: soon after a frame is kept
# or a look (or an acknowledgement of this replica's) finds some handled, a holder reading at
# once, then half as often after each look that forgot none, down to once a second: what no
# group has read (no holder, or one behind) may wait a minute, waking the writer 20 times a
# second at a steady 50 ms. Forgotten a second late, a frame is at worst written again should
# Redis lose its data in that second, and refused then as a replay.
_LOOK_SOON_SECONDS: Final = 0.05
_LOOK_SLOWEST_SECONDS: Final = 1.0
# XPENDING's page beyond the frames kept: room for other publishers' entries pending among them.
_PENDING_ROOM: Final = 1_000

# A work-queue frame written: (when, entry id, frame), per stream.
Lane = deque[tuple[float, bytes, Frame]]


class Retained:
    """The frames kept per stream, in the order written, and the look that forgets them."""

    def __init__(
        self,
        link: Link,
        layout: Layout,
        *,
        size: int,
        claim_idle_ms: int,
        clock: Callable[[], float],
    ) -> None:
        """Up to ``size`` frames are kept per stream (the oldest go first)."""
        self._link = link
        self._layout = layout
        self._size = size
        self._clock = clock
        self._seconds = max(10.0, 2 * claim_idle_ms / 1000)
        self.lanes: dict[str, Lane] = {}
        """The frames kept, per stream (a stream's lane stays once emptied)."""
        self._last_look = 0.0
        self._interval = _LOOK_SOON_SECONDS
        # A look at what was taken that the ACL refuses is told, and tried again with backoff.
        self._refusals = 0
        self._look_after = 0.0

    @property
    def count(self) -> int:
        """Frames kept, in all streams."""
        return sum(map(len, self.lanes.values()))

    def keep(self, key: str, entry_id: bytes, frame: Frame, now: float) -> None:
        """Keep ``frame``, written now as ``entry_id`` to the stream ``key``."""
        items = self.lanes.get(key)
        if items is None:
            items = self.lanes[key] = deque(maxlen=self._size)
        items.append((now, entry_id, frame))
        self._interval = _LOOK_SOON_SECONDS

    def look_soon(self) -> None:
        """Look at the consumer groups again soon: they may have handled frames kept (this
        replica, reading, acknowledged entries)."""
        self._interval = _LOOK_SOON_SECONDS

    def take_all(self) -> list[Lane]:
        """Every stream's frames kept, forgotten here (to be written again)."""
        lanes = list(self.lanes.values())
        self.lanes.clear()
        return lanes

    @property
    def interval(self) -> float:
        """Seconds from one look at the consumer groups to the next, as it stands."""
        return self._interval

    def due(self) -> bool:
        """Whether a look at the consumer groups is due."""
        return self._clock() - self._last_look >= self.interval

    async def prune(self, epoch: str | None) -> bool:
        """Forget the frames kept too long, and those a consumer group has handled, as Redis
        with the data set ``epoch`` says (not asked without one, nor while unreachable);
        False when Redis holds another epoch: it lost its data, and its groups say nothing
        about our frames."""
        self._last_look = self._clock()
        self._interval = min(2 * self._interval, _LOOK_SLOWEST_SECONDS)
        horizon = self._last_look - self._seconds
        for items in self.lanes.values():
            while items and items[0][0] < horizon:
                items.popleft()
        keys = sorted(key for key, items in self.lanes.items() if items)
        if not keys or not self._link.connected or epoch is None:
            return True
        if self._last_look < self._look_after:
            return True
        pipe = self._link.client.pipeline(transaction=False)
        pipe.get(self._layout.epoch)
        # The entries still pending from the oldest kept one on; other publishers' entries may
        # be among them, hence the room above what is kept (fixed now: frames kept meanwhile).
        rooms = {key: len(self.lanes[key]) + _PENDING_ROOM for key in keys}
        for key in keys:
            pipe.xinfo_groups(key)
            pipe.xpending_range(key, GROUP, self.lanes[key][0][1], "+", rooms[key])
        # A stream without the group yet answers XPENDING with NOGROUP: nothing taken there.
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        if isinstance(replies[0], Exception):
            raise replies[0]
        if replies[0] is None or text(replies[0]) != epoch:
            return False
        refusal = next((r for r in replies if isinstance(r, NoPermissionError)), None)
        if refusal is not None:
            # Without +xpending or +xinfo|groups nothing is forgotten: after Redis lost its data,
            # frames handled already would be written again.
            self._link.refused_aside(refusal, (self, "taken"))
            self._refusals += 1
            self._look_after = self._last_look + self._link.backoff.delay(self._refusals)
            return True
        self._refusals = 0
        self._link.taken_aside((self, "taken"))
        for index, key in enumerate(keys):
            groups, pending = replies[1 + 2 * index], replies[2 + 2 * index]
            if isinstance(groups, Exception) or isinstance(pending, Exception):
                continue
            for group in groups:
                if text(group.get("name")) == GROUP and _forget_handled(
                    self.lanes[key],
                    delivered=stream_id(group.get("last-delivered-id")),
                    pending=pending,
                    room=rooms[key],
                ):
                    self._interval = _LOOK_SOON_SECONDS  # a group at work: more soon
        return True


def _forget_handled(
    items: Lane, *, delivered: tuple[int, int], pending: list[dict[str, Any]], room: int
) -> bool:
    """Forget the kept frames a replica has handled (whether any): delivered and no longer
    pending. Handled ones go one by one, not only up to the oldest pending entry: one entry
    stuck pending must not keep every later frame to be written twice.

    ``items`` are in the order written, so in id order: only their delivered front is looked
    at, and a group far behind (every frame kept) costs nothing here."""
    pending_ids = {stream_id(entry["message_id"]) for entry in pending}
    # A full answer may have left later pending entries out: past its last, keep everything.
    horizon = min(delivered, max(pending_ids)) if len(pending) >= room else delivered
    still: list[tuple[float, bytes, Frame]] = []
    kept = len(items)
    while items:
        entry = stream_id(items[0][1])
        if entry > horizon:
            break
        item = items.popleft()
        if entry in pending_ids:
            still.append(item)
    items.extendleft(reversed(still))
    return len(items) < kept
