"""The outbox's database thread: how long a call has hung, and when the disk was last full."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bridge.sinks.alerts.thread import DbThread
from tests.support import ManualClock


def fill(path: Path) -> None:
    """Insert rows into a database capped at a few pages until SQLite answers it is full."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA max_page_count = 4")
        db.execute("CREATE TABLE IF NOT EXISTS t (x BLOB)")
        with db:
            for _ in range(100):
                db.execute("INSERT INTO t VALUES (zeroblob(4096))")
    finally:
        db.close()


def read_missing() -> None:
    """Read a table that is not there."""
    db = sqlite3.connect(":memory:")
    try:
        db.execute("SELECT * FROM missing")
    finally:
        db.close()


async def test_a_call_refused_for_a_full_disk_makes_the_outbox_full_for_30_seconds(
    tmp_path: Path,
) -> None:
    """A call SQLite refuses with SQLITE_FULL makes ``full`` say so, with the error, for 30 s;
    one refused for another reason (a missing table) does not."""
    clock = ManualClock()
    db = DbThread(clock=clock)
    try:
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await db.call(read_missing)
        assert db.full() is None
        with pytest.raises(sqlite3.OperationalError, match="full"):
            await db.call(fill, tmp_path / "small.sqlite3")
        clock.advance(29.0)
        assert db.full() == (
            "the alert outbox's disk is full (OperationalError: database or disk is full, 29 s"
            " ago): it cannot store the alerts it would take"
        )
        clock.advance(1.0)
        assert db.full() is None
    finally:
        db.close()
