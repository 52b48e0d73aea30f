"""The fan-out reader: every replica reads every stream from its tail (XREAD), for every sink."""

from __future__ import annotations

import asyncio
import contextlib

from bridge.bus.redis.layout import Layout, fan_out_frames, read_reply
from bridge.bus.redis.link import Link, linger
from bridge.bus.transport import FrameReceiver

__all__ = ["FanOutReader"]


class FanOutReader:
    """Reads each stream from where it ended at the first connection, and hands every entry on
    as ``Frame(group=False)``; after a reconnection it resumes where it stopped, so what was
    written meanwhile is not missed."""

    def __init__(
        self, link: Link, layout: Layout, *, deliver: FrameReceiver, batch_size: int, block_ms: int
    ) -> None:
        self._link = link
        self._layout = layout
        self._deliver = deliver
        self._batch = batch_size
        self._block_ms = block_ms
        self._last_ids: dict[str, bytes] = {}
        self.positioned = asyncio.Event()
        """Set once the tail of every stream is known (the writer waits for it)."""
        # Set once positioned, or once a try failed (Redis unreachable or refusing).
        self._tried = asyncio.Event()

    async def run(self) -> None:
        """Read until the transport stops."""
        await self._link.keep_trying(self._step, failed=self._tried.set, owner=self)

    @property
    def reading(self) -> bool:
        """True while the reader gets through: positioned, Redis answering, its reads not
        refused."""
        return self.positioned.is_set() and self._link.connected and not self._link.refused(self)

    async def first_try(self, within: float) -> bool:
        """Wait until the reader knows where each stream ends, or its first try failed (Redis
        unreachable or refusing), for at most ``within`` seconds; whether it is positioned."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._tried.wait()
        return self.positioned.is_set()

    async def _step(self) -> float:
        if not self.positioned.is_set():
            await self._find_tails()
            self.positioned.set()
            self._tried.set()
            self._link.up()  # ready now, not after the first blocking read returns
        last_ids = self._last_ids
        reply = await self._link.command(
            "XREAD",
            "COUNT",
            self._batch,
            "BLOCK",
            self._block_ms,
            "STREAMS",
            *last_ids,
            *last_ids.values(),
        )
        read = 0
        for key, entries in read_reply(reply):
            if not entries:
                continue
            read += len(entries)
            instance = self._layout.instance_of(key)
            last_ids[key.decode()] = entries[-1][0]
            # One batch per stream read: the bus verifies and dispatches it in one go.
            self._deliver(fan_out_frames(instance, entries))
        return linger(read, self._batch)

    async def _find_tails(self) -> None:
        streams = self._layout.streams.values()
        pipe = self._link.client.pipeline(transaction=False)
        for key in streams:
            pipe.xrevrange(key, count=1)
        tails = await pipe.execute()
        for key, tail in zip(streams, tails, strict=True):
            self._last_ids[key] = tail[0][0] if tail else b"0-0"
