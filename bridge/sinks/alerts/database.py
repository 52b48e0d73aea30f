"""The outbox file held open: one connection and lock, transactions that nest, its meta values.

The outbox's stores (``alert_store``, ``queue``, ``dead_letters``, ``retention``) share one
``Database``: every read and every transaction holds its lock, so they are safe to call from any
one thread at a time (the ``exesdb-bridge outbox`` commands open the same file beside a running
bridge: SQLite's own locking serialises the two processes). The lock is reentrant and a
transaction begun inside another joins it, so one store's method may call another's and both
changes commit together or not at all: an inner transaction that raises dooms the outermost one,
which rolls back even when the error was caught in between (its writes may be half done).
A change committed to a file that is no longer at its path (its folder removed) is answered
``OutboxDisplaced`` by the store that asks (``AlertStore``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from bridge.sinks.alerts.tables import connect, migrate

__all__ = ["Database", "OutboxDisplaced"]


class OutboxDisplaced(OSError):
    """A change committed to an outbox file that is no longer the file at its path (deleted or
    replaced), so lost at the next start: not to be reported stored. Its message is
    ``Outbox.displaced``'s words (which file, and how)."""


class Database:
    """The outbox file open (made, or upgraded, as needed); see the module docstring."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._holds = 0  # how many times the lock's owner holds it (nested blocks)
        self._close_asked = False  # close() found the lock held: its last release closes
        self._conn = connect(self.path)
        migrate(self._conn)
        self._depth = 0  # transactions open, the outermost included
        self._doomed = False  # a nested one raised: the outermost must not commit
        self._ended: list[Callable[[bool], None]] = []
        self._closed = False
        # Plain context managers rather than @contextmanager generators: every alert change
        # enters a few of them, nested.
        self._read = _Read(self)
        self._transaction = _Transaction(self)

    def on_end(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(committed)`` when each outermost transaction has ended."""
        self._ended.append(callback)

    def read(self) -> AbstractContextManager[sqlite3.Connection]:
        """The connection, under the lock: reads in one block see one state of the file."""
        return self._read

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """The connection in a transaction (``BEGIN IMMEDIATE``), committed when the block ends
        and rolled back when it raises; inside another transaction, part of that one."""
        return self._transaction

    def _acquire(self) -> None:
        self._lock.acquire()
        self._holds += 1

    def _release(self) -> None:
        self._holds -= 1
        last = not self._holds
        self._lock.release()
        if last and self._close_asked:
            self._close_if_free()

    def _begin(self) -> sqlite3.Connection:
        self._acquire()
        if not self._depth:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self._release()
                raise
        self._depth += 1
        return self._conn

    def _end(self, *, ok: bool) -> None:
        try:
            self._depth -= 1
            if self._depth:
                self._doomed = self._doomed or not ok
                return
            doomed, self._doomed = self._doomed, False
            committed = False
            try:
                if ok and doomed:
                    raise sqlite3.OperationalError(
                        f"{self.path}: a transaction inside it failed: rolled back"
                    )
                if ok:
                    self._conn.execute("COMMIT")
                    committed = True
            finally:
                if not committed:
                    with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may have ended it
                        self._conn.execute("ROLLBACK")
                for callback in self._ended:
                    callback(committed)
        finally:
            self._release()

    def meta(self, name: str) -> bytes | str | None:
        """The value the meta table keeps under ``name``, if any."""
        with self.read() as db:
            row = db.execute("SELECT value FROM meta WHERE name = :name", {"name": name}).fetchone()
        return None if row is None else row[0]

    def set_meta(self, name: str, value: bytes | str) -> None:
        """Keep ``value`` under ``name`` in the meta table (in the open transaction, if any)."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (:name, :value)",
                {"name": name, "value": value},
            )

    def close(self) -> None:
        """Close the file; idempotent. Without waiting: a read or transaction under way on
        another thread (a slow fsync, SQLite's busy wait) closes it as it ends, so a stop on
        the event loop keeps its deadline, and that transaction commits."""
        self._close_asked = True
        # Tried again after the flag is up: a holder releasing meanwhile may not have seen it.
        self._close_if_free()

    def _close_if_free(self) -> None:
        if not self._lock.acquire(blocking=False):
            return  # its holder closes the file as it lets go (_release)
        try:
            if not self._closed:
                self._closed = True
                self._conn.close()
        finally:
            self._lock.release()


class _Read:
    """``Database.read()``: the lock held for the block."""

    __slots__ = ("_database",)

    def __init__(self, database: Database) -> None:
        self._database = database

    def __enter__(self) -> sqlite3.Connection:
        self._database._acquire()
        return self._database._conn

    def __exit__(self, *exc: object) -> None:
        self._database._release()


class _Transaction:
    """``Database.transaction()``: begun (or joined) on entry, ended on exit."""

    __slots__ = ("_database",)

    def __init__(self, database: Database) -> None:
        self._database = database

    def __enter__(self) -> sqlite3.Connection:
        return self._database._begin()

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self._database._end(ok=exc_type is None)
