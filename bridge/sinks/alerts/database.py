"""The outbox file held open: one connection and lock, transactions that nest, its meta values.

The outbox's stores (``alert_store``, ``queue``, ``dead_letters``, ``retention``) share one
``Database``: every read and every transaction holds its lock, so they are safe to call from any
one thread at a time (the ``exesdb-bridge outbox`` commands open the same file beside a running
bridge: SQLite's own locking serialises the two processes). The lock is reentrant and a
transaction begun inside another joins it, so one store's method may call another's and both
changes commit together or not at all.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from bridge.sinks.alerts.tables import connect, migrate

__all__ = ["Database"]


class Database:
    """The outbox file open (made, or upgraded, as needed); see the module docstring."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn = connect(self.path)
        migrate(self._conn)
        self._depth = 0  # transactions open, the outermost included
        self._ended: list[Callable[[bool], None]] = []
        self._closed = False

    def on_end(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(committed)`` when each outermost transaction has ended."""
        self._ended.append(callback)

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock: reads in one block see one state of the file."""
        with self._lock:
            yield self._conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection in a transaction (``BEGIN IMMEDIATE``), committed when the block ends
        and rolled back when it raises; inside another transaction, part of that one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may have ended it
                    self._conn.execute("ROLLBACK")
                self._end(committed=False)
                raise
            self._end(committed=True)

    def _end(self, *, committed: bool) -> None:
        self._depth = 0
        for callback in self._ended:
            callback(committed)

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
        """Close the file; idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
