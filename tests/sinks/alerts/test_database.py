"""The outbox file's shared connection: nested transactions, their end, its meta values."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.sinks.alerts.database import Database
from bridge.sinks.alerts.outbox import Outbox


class Boom(Exception):
    """Raised by a test to end a transaction with a failure."""


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    """A new outbox file, open."""
    db = Database(tmp_path / "outbox.sqlite3")
    yield db
    db.close()


def test_a_transaction_begun_inside_another_is_rolled_back_with_it(database: Database) -> None:
    """What an inner transaction wrote is gone when the outer one fails after it ended."""
    seen: list[bytes | str | None] = []

    def write_then_fail() -> None:
        with database.transaction():
            with database.transaction():
                database.set_meta("inner", "written")
            seen.append(database.meta("inner"))  # visible inside, not yet committed
            raise Boom

    with pytest.raises(Boom):
        write_then_fail()
    assert seen == ["written"]
    assert database.meta("inner") is None


def test_a_transaction_begun_inside_another_commits_with_it(database: Database) -> None:
    """Both writes are kept once the outer transaction ends well."""
    with database.transaction():
        database.set_meta("outer", "one")
        with database.transaction():
            database.set_meta("inner", "two")
    assert (database.meta("outer"), database.meta("inner")) == ("one", "two")


def test_each_outermost_transaction_reports_its_end_once(database: Database) -> None:
    """``on_end`` hears once per outermost transaction whether it committed, never per nested
    one."""
    ends: list[bool] = []
    database.on_end(ends.append)
    with database.transaction(), database.transaction():
        pass
    with pytest.raises(Boom), database.transaction(), database.transaction():
        raise Boom
    assert ends == [True, False]


def test_a_transaction_after_a_failed_one_begins_afresh(database: Database) -> None:
    """A failure leaves no transaction open: the next one commits on its own."""
    with pytest.raises(Boom), database.transaction():
        raise Boom
    database.set_meta("after", "kept")
    database.close()
    again = Database(database.path)
    try:
        assert again.meta("after") == "kept"
    finally:
        again.close()


def test_closing_twice_is_harmless(database: Database) -> None:
    """close() is idempotent; the file is closed after the first."""
    database.close()
    database.close()
    with pytest.raises(sqlite3.ProgrammingError):
        database.meta("receiver_secret")


def test_a_close_while_another_thread_is_in_a_transaction_leaves_the_close_to_it(
    tmp_path: Path,
) -> None:
    """``close`` returns at once while another thread holds a transaction; a read nested in
    that transaction still finds the file open, and the transaction commits and then closes
    it."""
    database = Database(tmp_path / "outbox.sqlite3")
    inside, closing_asked = threading.Event(), threading.Event()
    seen: list[object] = []

    def transaction() -> None:
        with database.transaction():
            database.set_meta("kept", "yes")
            inside.set()
            closing_asked.wait(5)
            seen.append(database.meta("kept"))  # a nested read, after the close was asked

    thread = threading.Thread(target=transaction)
    thread.start()
    assert inside.wait(5)
    began = time.monotonic()
    database.close()
    assert time.monotonic() - began < 1.0  # not waiting for the transaction (5 s)
    closing_asked.set()
    thread.join(5)
    assert seen == ["yes"]
    with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
        database.meta("kept")
    reopened = Database(tmp_path / "outbox.sqlite3")
    try:
        assert reopened.meta("kept") == "yes"
    finally:
        reopened.close()


def test_an_outbox_file_without_its_receiver_secret_is_refused(tmp_path: Path) -> None:
    """A file whose meta table lost the receiver keys' secret is an error naming the file, not
    a crash further on."""
    path = tmp_path / "outbox.sqlite3"
    Outbox(path).close()
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM meta WHERE name = 'receiver_secret'")
    db.close()
    with pytest.raises(sqlite3.DatabaseError, match=r"outbox\.sqlite3: the outbox file lost"):
        Outbox(path)


def test_a_failed_commit_is_reported_and_frees_the_file(database: Database) -> None:
    """When COMMIT itself fails, ``on_end`` hears it did not commit, the error reaches the
    caller, and the next transaction begins afresh (no lock or transaction left behind)."""
    ends: list[bool] = []
    database.on_end(ends.append)
    with pytest.raises(sqlite3.OperationalError), database.transaction() as db:
        db.execute("COMMIT")  # ends the transaction early: the closing COMMIT finds none
    assert ends == [False]
    other = threading.Thread(target=database.set_meta, args=("after", "kept"), daemon=True)
    other.start()
    other.join(timeout=10)  # another thread gets the lock: it was released
    assert not other.is_alive()
    assert ends == [False, True]
    assert database.meta("after") == "kept"


def test_an_outer_transaction_that_caught_an_inner_failure_is_rolled_back(
    database: Database,
) -> None:
    """An inner transaction that raised leaves its writes half done: the outer one, though it
    caught the error, rolls back, says so, and is heard as not committed."""
    ends: list[bool] = []
    database.on_end(ends.append)

    def catch_an_inner_failure() -> None:
        with database.transaction():
            database.set_meta("outer", "one")
            with contextlib.suppress(Boom), database.transaction():
                database.set_meta("inner", "half")
                raise Boom

    with pytest.raises(sqlite3.OperationalError, match="a transaction inside it failed"):
        catch_an_inner_failure()
    assert (database.meta("outer"), database.meta("inner")) == (None, None)
    assert ends == [False]
    database.set_meta("after", "kept")  # the next transaction begins afresh
    assert database.meta("after") == "kept"
    assert ends == [False, True]
