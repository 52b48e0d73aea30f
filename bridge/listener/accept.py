"""Accepting connections only while the descriptors they hold stay within the guard's budget.

asyncio's own accept loop takes up to a backlog of connections each time the listening socket is
ready, several bursts before the idle connections evicted for them have let their descriptors
go, and clients connecting at once ran the process out of descriptors: ``Listener`` accepts one
burst at most beyond what the guard counts, waits for a connection to let its descriptor go, and
when the system refuses an accept, stops for a second and says so once a minute.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import socket
import time
from collections.abc import Callable
from typing import Final, Protocol, cast

__all__ = ["BACKLOG", "DescriptorBudget", "Listener"]

_logger = logging.getLogger(__name__)

# Connections the system queues for each listening socket, and the most taken in one burst.
BACKLOG: Final = 128
# How long the listener stops accepting after the system refused an accept, as asyncio does.
_ACCEPT_RETRY: Final = 1.0
# How often a listener whose accepts the system refuses is told in the log.
_OUT_OF_RESOURCES_EVERY: Final = 60.0
# An accept the system refused: what ran out, and what to do about it.
_OUT_OF_MEMORY: Final = (
    "the HTTP listener finds the system out of memory for sockets",
    "free memory or lower EXESDB_HTTP_MAX_CONNECTIONS",
)
_OUT_OF_RESOURCES: Final = {
    errno.EMFILE: (
        "the HTTP listener is out of file descriptors",
        "raise the descriptor limit (LimitNOFILE, ulimit -n) or lower EXESDB_HTTP_MAX_CONNECTIONS",
    ),
    errno.ENFILE: (
        "the HTTP listener finds the system out of file descriptors",
        "raise its limit (sysctl fs.file-max) or lower EXESDB_HTTP_MAX_CONNECTIONS",
    ),
    errno.ENOBUFS: _OUT_OF_MEMORY,
    errno.ENOMEM: _OUT_OF_MEMORY,
}
# While accepting waits for descriptors: how often it looks again, should no close tell it.
_RECHECK: Final = 0.1


class DescriptorBudget(Protocol):
    """What the listener keeps to (``bridge.listener.guard.ConnectionGuard``)."""

    @property
    def descriptor_budget(self) -> int:
        """Most descriptors the HTTP connections may hold at once."""
        ...


class Listener:
    """Accepts the HTTP connections on the listening sockets, within the guard's descriptor
    budget (see the module docstring); what ``bridge.app`` starts and closes."""

    def __init__(
        self,
        guard: DescriptorBudget,
        sockets: list[socket.socket],
        factory: Callable[[], asyncio.Protocol],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sockets = tuple(sockets)
        self._guard = guard
        self._factory = factory
        self._loop = asyncio.get_running_loop()
        self._clock = clock
        # Accepted sockets, until seen closed (their fileno is then -1): what the budget counts.
        self._held: set[socket.socket] = set()
        self._serving = False
        self._watching = False
        self._retry: asyncio.TimerHandle | None = None
        self._resuming = False  # a _resume is scheduled to run soon
        self._refused_until = 0.0  # the loop's time until which an accept refused keeps it off
        self._connecting: set[asyncio.Task[None]] = set()
        self._told: float | None = None
        self._untold = 0

    async def start_serving(self) -> None:
        """Listen and accept connections from now on (until now a connection is refused, as
        with no server at all)."""
        for sock in self.sockets:
            sock.listen(BACKLOG)
        self._serving = True
        self._watch()

    def close(self) -> None:
        """Stop accepting and close the listening sockets; idempotent. Open connections are
        aiohttp's to close."""
        self._serving = False
        self._unwatch()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        for sock in self.sockets:
            sock.close()
        for task in list(self._connecting):
            task.cancel()

    def freed(self) -> None:
        """A connection is letting its descriptor go (once this callback returns): accept
        again, should the budget have stopped it."""
        if self._serving and not self._watching and not self._resuming:
            self._resuming = True
            self._loop.call_soon(self._resume)

    def _watch(self) -> None:
        if self._serving and not self._watching:
            for sock in self.sockets:
                self._loop.add_reader(sock.fileno(), self._accept, sock)
            self._watching = True

    def _unwatch(self) -> None:
        if self._watching:
            for sock in self.sockets:
                if sock.fileno() != -1:
                    self._loop.remove_reader(sock.fileno())
            self._watching = False

    def _room(self) -> int:
        room = self._guard.descriptor_budget - len(self._held)
        if room <= 0:  # forget the sockets closed since (O(n) only at the budget)
            self._held = {sock for sock in self._held if sock.fileno() != -1}
            room = self._guard.descriptor_budget - len(self._held)
        return room

    def _resume(self) -> None:
        self._resuming = False
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if not self._serving or self._watching:
            return
        if self._loop.time() < self._refused_until:
            self._retry = self._loop.call_at(self._refused_until, self._resume)
        elif self._room() > 0:
            self._watch()
        else:
            self._retry = self._loop.call_later(_RECHECK, self._resume)

    def _accept(self, listening: socket.socket) -> None:
        for _ in range(min(self._room(), BACKLOG)):
            try:
                sock, _address = listening.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return  # none waiting (or one that left before it was taken)
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    raise
                self._out_of_resources(exc)
                return
            sock.setblocking(False)
            self._held.add(sock)
            task = self._loop.create_task(self._connect(sock))
            self._connecting.add(task)
            task.add_done_callback(functools.partial(self._connected, sock))
        if self._room() <= 0:
            # At the budget: the next accept waits until a connection lets its descriptor go.
            self._unwatch()
            if self._retry is None:
                self._retry = self._loop.call_later(_RECHECK, self._resume)

    async def _connect(self, sock: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, sock)
        except OSError:
            sock.close()  # reset before its transport was made: nobody to answer

    def _connected(self, sock: socket.socket, task: asyncio.Task[None]) -> None:
        self._connecting.discard(task)
        if task.cancelled():
            # By close(): a task cancelled before its first step never ran _connect's body, so
            # its socket, held by no transport, is closed here (else left to the collector).
            sock.close()

    def _out_of_resources(self, exc: OSError) -> None:
        """The system refused an accept (descriptors, or memory, used elsewhere in the process or
        the system): stop accepting for a second, and say so once a minute."""
        self._unwatch()
        if self._retry is not None:
            self._retry.cancel()
        self._refused_until = self._loop.time() + _ACCEPT_RETRY
        self._retry = self._loop.call_at(self._refused_until, self._resume)
        now = self._clock()
        if self._told is not None and now - self._told < _OUT_OF_RESOURCES_EVERY:
            self._untold += 1
            return
        what, remedy = _OUT_OF_RESOURCES[cast(int, exc.errno)]
        untold = f" ({self._untold} more accepts refused since the last warning)"
        _logger.warning(
            "%s (%s): it stops accepting for a second; %s%s",
            what,
            exc.strerror,
            remedy,
            untold if self._untold else "",
        )
        self._told, self._untold = now, 0
