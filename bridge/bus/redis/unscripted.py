"""Writes a batch without a script (an ACL user without EVALSHA): one XADD each, epoch compared.

The batch script (``writer.py``) compares the data set's epoch before it writes; a pipeline of
XADDs cannot, and one that follows a GET of the epoch may run after a FLUSHALL that came
between (it breaks no connection). So the XADDs go in a transaction that WATCHes the epoch's
key: GET it, compare, then MULTI … EXEC, which Redis aborts should the key change meanwhile
(FLUSHALL touches it). Nothing is written to a Redis that lost its data since the writer last
looked, and what it lost is written again before any newer frame, as with the script.

Whether the ACL lets the user run that transaction is found by a probe without XADDs (WATCH,
UNWATCH, WATCH, GET, MULTI, EXEC of nothing, on one connection), never by a batch: a refusal
there (told once, naming the commands) has batches written by a plain pipeline, each entry's
reply kept, until a probe after the backoff's cap passes; a spooled batch too, its progress set
after its XADDs, when MULTI or EXEC is refused (else in a transaction of its own). A right
revoked between the probe and a batch sends that batch unwatched too, but for MULTI: the XADDs
queued after it ran at once, each reply read all the same. Each exchange is sent and read by
hand on one connection of the pool, every reply kept (redis-py's pipeline drops those of a
transaction whose EXEC failed); one that may be left watching is closed before it goes back.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, Final

from redis.asyncio.connection import Connection, ConnectionPool
from redis.exceptions import ExecAbortError, NoPermissionError, ResponseError

from bridge.bus.redis.layout import Layout, entry_fields, text
from bridge.bus.redis.link import USER_RULES, Link, reason, temporary
from bridge.bus.transport import Frame
from bridge.redaction import safe_url

__all__ = ["Unscripted", "Unwritten"]

_logger = logging.getLogger(__name__)

Replies = list[bytes | ResponseError]
Command = tuple[Any, ...]

# Redis's words naming a command the ACL refuses (``… no permissions to run the 'exec' command``),
# as NOPERM or, EXEC refused, EXECABORT.
_RUN_REFUSED: Final = re.compile(r"no permissions to run the '([\w|]+)' command")
# The commands without which a spooled batch cannot go with its progress in one transaction.
_TRANSACTION: Final = frozenset({"MULTI", "EXEC"})


class Unwritten(enum.Enum):
    """What a write answered instead of each entry's reply."""

    EPOCH_CHANGED = "nothing written: Redis holds another epoch (it lost its data)"


@dataclass(frozen=True)
class _Refused:
    """A command of the transaction the ACL refused since the probe (WATCH, GET of the epoch,
    UNWATCH, MULTI, EXEC): the batch goes unwatched, unless it ``ran`` (MULTI refused: the
    replies of the commands queued after it, which ran at once)."""

    command: str
    refusal: ResponseError
    ran: list[Any] | None = None


@dataclass(frozen=True)
class _Aborted:
    """A transaction Redis aborted whole (EXECABORT), for ``refusal`` of the ``number``th of
    the commands queued, ``command``."""

    number: int
    command: str
    refusal: ResponseError

    def told(self) -> ResponseError:
        """``refusal`` naming its command as redis-py's pipeline does (``link.reason`` reads
        it), without its arguments (a signed entry), its error code kept (``NOPERM``: what
        ``link.temporary`` and the words told read)."""
        said = f"Command # {self.number} ({self.command}) of pipeline caused error: {self.refusal}"
        return type(self.refusal)(said, status_code=self.refusal.status_code)


class Unscripted:
    """One XADD per frame in a transaction watching the epoch's key; the ACL refusing a command
    of it (the rules of a version before it), a plain pipeline, told once, probed again now and
    then."""

    def __init__(
        self,
        link: Link,
        layout: Layout,
        *,
        maxlen: int,
        progress_ms: int,
        clock: Callable[[], float],
    ) -> None:
        """``progress_ms``: how long the spool's progress stays in Redis; ``clock``: monotonic."""
        self._link = link
        self._layout = layout
        self._maxlen = maxlen
        self._progress_ms = progress_ms
        self._clock = clock
        # Batches go watched only after a probe found the transaction's commands granted; one
        # refused (told once), unwatched until ``_probe_after``, the backoff's cap after it, so
        # that a grant is taken within seconds.
        self._watching = False
        self._told = False
        self._probe_after = 0.0
        # Whether MULTI and EXEC are granted, as far as known: a spooled batch goes with its
        # progress in a transaction, else in a plain pipeline (the progress refused: told once).
        self._atomic = True
        self._progress_told = False

    async def write(
        self, frames: Sequence[Frame], progress: tuple[str, int] | None, epoch: str | None
    ) -> Replies | Unwritten:
        """XADD each of ``frames`` (with the spool's ``progress``, in one transaction if the ACL
        allows): each entry's id, or why Redis refused it; else ``Unwritten.EPOCH_CHANGED``,
        nothing written, when Redis holds another epoch than ``epoch`` (the one the writer last
        found; None: not compared)."""
        if epoch is not None and not self._watching and self._clock() >= self._probe_after:
            await self._probe()
        watched = epoch if self._watching else None
        commands = self._commands(frames, progress)
        while True:
            atomic = watched is not None or (progress is not None and self._atomic)
            done = await self._exchange(commands, watched, atomic=atomic)
            if not isinstance(done, _Refused):
                break
            # Unwatched next; MULTI or EXEC refused, in a plain pipeline (``_refused``).
            self._refused([done.command], done.refusal)
            watched = None
            if done.ran is not None:
                done, atomic = done.ran, False
                break
        if isinstance(done, _Aborted):
            # A stream refused aborts the whole transaction: one per stream, so that only the
            # entries refused are dropped (with the progress, the batch waits whole).
            refused = done.told()
            if progress is not None or done.command != "XADD":
                raise refused
            if not isinstance(refused, NoPermissionError):
                raise refused
            streams = self._layout.streams
            if epoch is None or len({streams[frame.instance] for frame in frames}) == 1:
                return [refused] * len(frames)
            return await self._by_stream(frames, epoch)
        if isinstance(done, Unwritten):
            return done
        replies: Replies = done[: len(frames)]
        if progress is not None and not atomic:
            self._unrecorded(replies, done[len(frames)])
        return replies

    async def _exchange(
        self, commands: list[Command], watched: str | None, *, atomic: bool
    ) -> list[Any] | Unwritten | _Refused | _Aborted:
        """``commands`` on one connection of the pool, each reply read: in a transaction run
        only while Redis holds the epoch ``watched`` (None: not compared), or in one unwatched
        (``atomic``), or else in a plain pipeline. A connection that may be left watching, or
        with a reply unread, is closed before it goes back to the pool."""
        pool = self._link.client.connection_pool
        connection: Connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        clean = False
        try:
            if watched is not None:
                key = self._layout.epoch
                watch, found = await _replies(connection, [("WATCH", key), ("GET", key)])
                for command, reply in (("WATCH", watch), ("GET", found)):
                    if isinstance(reply, NoPermissionError):
                        return _Refused(command, reply)
                    if isinstance(reply, ResponseError):
                        raise reply
                if found is None or text(found) != watched:
                    (unwatch,) = await _replies(connection, [("UNWATCH",)])
                    if isinstance(unwatch, NoPermissionError):
                        self._refused(["UNWATCH"], unwatch)
                    clean = not isinstance(unwatch, ResponseError)
                    return Unwritten.EPOCH_CHANGED
            if not atomic:
                replies = await _replies(connection, commands)
                clean = True
                return replies
            multi, *queued, executed = await _replies(
                connection, [("MULTI",), *commands, ("EXEC",)]
            )
            # EXEC answered ends MULTI and any WATCH, but "EXEC without MULTI" (MULTI refused).
            clean = watched is None or not isinstance(multi, ResponseError)
            return _transaction(commands, multi, queued, executed)
        finally:
            await _give_back(pool, connection, clean=clean)

    async def _probe(self) -> bool:
        """Whether the ACL lets the user run the watched transaction, found by running one that
        queues nothing: then batches go watched; else told (once), with the commands refused."""
        key = self._layout.epoch
        commands = [
            ("WATCH", key),
            ("UNWATCH",),
            ("WATCH", key),
            ("GET", key),
            ("MULTI",),
            ("EXEC",),
        ]
        refused: dict[str, ResponseError] = {}
        pool = self._link.client.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        clean = False
        try:
            for command in commands:
                await connection.send_command(*command)
                try:
                    await connection.read_response()
                except (NoPermissionError, ExecAbortError) as exc:  # EXECABORT: EXEC refused
                    refused.setdefault(command[0], exc)
                except ResponseError:
                    if "MULTI" not in refused:  # else "EXEC without MULTI", as expected
                        raise
            clean = not refused
        finally:
            # Maybe still watching (UNWATCH refused, MULTI, or a reply not read) unless clean:
            # closed, which ends it, rather than given back so.
            await _give_back(pool, connection, clean=clean)
        if refused:
            self._refused(list(refused), next(iter(refused.values())))
            return False
        self._watching = self._atomic = True
        if self._told:
            self._told = False
            _logger.info(
                "Redis at %s lets the bridge's user run its watched transaction again (WATCH,"
                " UNWATCH, GET, MULTI, EXEC): batches written without a script compare the data"
                " set's epoch first",
                safe_url(self._link.url),
            )
        return True

    async def _by_stream(self, frames: Sequence[Frame], epoch: str) -> Replies | Unwritten:
        """``write`` of each stream's frames on their own (in order within each stream, which is
        read on its own): each entry's reply in its place, whether written watched or not."""
        streams = self._layout.streams
        keys = [streams[frame.instance] for frame in frames]
        placed: dict[int, bytes | ResponseError] = {}
        for key in dict.fromkeys(keys):
            places = [index for index, each in enumerate(keys) if each == key]
            written = await self.write([frames[index] for index in places], None, epoch)
            if written is Unwritten.EPOCH_CHANGED:
                # Found by a watched write, so those before went watched too, with the data
                # Redis lost since: written again, after it.
                return written
            for index, reply in zip(places, written, strict=True):
                placed[index] = reply
        return [placed[index] for index in range(len(frames))]

    def _commands(self, frames: Sequence[Frame], progress: tuple[str, int] | None) -> list[Command]:
        """An XADD per frame, then the SET of the spool's ``progress``: without a transaction,
        the progress set never names a frame not sent before it."""
        streams = self._layout.streams
        commands: list[Command] = [
            (
                "XADD",
                streams[frame.instance],
                "MAXLEN",
                "~",
                self._maxlen,
                "*",
                *chain.from_iterable(entry_fields(frame.body, frame.signature).items()),
            )
            for frame in frames
        ]
        if progress is not None:
            commands.append(("SET", progress[0], progress[1], "PX", self._progress_ms))
        return commands

    def _unrecorded(self, replies: Replies, kept: Any) -> None:
        """The spool's progress, set after ``replies`` (not in one transaction), answered
        ``kept``. Refused, with an entry refused for now: that refusal is raised (the spool
        looks at its progress again and writes the batch again, those taken twice: at least
        once); with none: the frames go on as written, the progress refused told once (a crash
        before the spool's head moves past them writes them again at the next start). Taken,
        an entry refused for now goes as refused for good (the spool cannot send it alone)."""
        if not isinstance(kept, ResponseError):
            self._progress_told = False
            return
        again = next((r for r in replies if isinstance(r, ResponseError) and temporary(r)), None)
        if again is not None:
            raise again
        if self._progress_told:
            return
        self._progress_told = True
        _logger.warning(
            "Redis at %s refuses the bridge's user the spool's progress (%s), and a transaction:"
            " spooled frames are written without it, so those a crash of the bridge catches"
            " before its spool moves past them are written again at its next start",
            safe_url(self._link.url),
            reason(kept),
        )

    def _refused(self, commands: list[str], refusal: ResponseError) -> None:
        self._watching = False
        self._atomic = self._atomic and not _TRANSACTION.intersection(commands)
        self._probe_after = self._clock() + self._link.backoff.cap
        if self._told:
            return
        self._told = True
        _logger.warning(
            "Redis at %s refuses the bridge's user %s (%s), and EVALSHA: batches are written"
            " without comparing the data set's epoch first, so a message published just after"
            " Redis lost its data without a restart (FLUSHALL) may be written before those it"
            " lost are written again; give the user +watch +unwatch +multi +exec and GET on"
            " exesdb:bus:epoch (%s)",
            safe_url(self._link.url),
            " and ".join(commands),
            reason(refusal),
            USER_RULES,
        )


async def _give_back(pool: ConnectionPool, connection: Connection, *, clean: bool) -> None:
    """Release ``connection`` to ``pool``, closed first unless ``clean`` (it may be watching,
    or hold a reply unread); released even when closing fails (a timeout, a second cancel),
    not left taken."""
    try:
        if not clean:
            await connection.disconnect()
    finally:
        await pool.release(connection)


async def _replies(connection: Connection, commands: Sequence[Command]) -> list[Any]:
    """Send ``commands`` in one write, then read each one's reply (a refusal in its place)."""
    await connection.send_packed_command(connection.pack_commands(commands))
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(await connection.read_response())
        except ResponseError as exc:
            replies.append(exc)
    return replies


def _transaction(
    commands: list[Command], multi: Any, queued: list[Any], executed: Any
) -> list[Any] | Unwritten | _Refused | _Aborted:
    """What MULTI, ``commands`` and EXEC answered (``multi``, ``queued``, ``executed``) say."""
    if isinstance(multi, NoPermissionError):
        return _Refused("MULTI", multi, ran=queued)  # the commands after it ran at once
    if isinstance(multi, ResponseError):
        raise multi
    if executed is None:
        return Unwritten.EPOCH_CHANGED  # the key watched changed (FLUSHALL): nothing ran
    if not isinstance(executed, ResponseError):
        return list(executed)
    named = _RUN_REFUSED.search(str(executed))
    if isinstance(executed, ExecAbortError) and named is not None:
        return _Refused(named.group(1).upper(), executed)  # EXEC refused: nothing ran
    for number, (command, reply) in enumerate(zip(commands, queued, strict=True), 1):
        if isinstance(reply, ResponseError):
            return _Aborted(number, command[0], reply)  # refused as queued: nothing ran
    raise executed
