"""The outbox file's tables, their upgrades from every earlier version, and how it is opened.

Nine tables:

- ``alerts``: one row per condition (``alert_id``), its state (firing → acknowledged →
  resolved) and escalation level, as ``transitions`` decides them;
- ``queued``: alerts waiting for their receiver's grouping window, one row per (receiver, alert),
  with the most severe severity the alert had while waiting (``peak``: see ``queue``);
- ``deliveries``: the payloads (body and delivery id change across retries only as ``queue``
  says: alerts withheld, a dead letter retried by hand told as its alerts stand), their
  attempts, next attempt time and state (pending, delivered, dead, stale), when each was made
  and when ``outbox retry`` last put it back (its deadline runs from then), and, for a dead letter,
  when its alerts were queued again (``dead_letters.DeadLetters.renotify``); delivered ones
  are kept a day (but those that supersede a dead letter: see ``retention``), dead letters
  ``EXESDB_WEBHOOK_DEAD_LETTER_TTL_MS``;
- ``history``: what happened to each alert and when (fired, escalated, acknowledged, …), for its
  page; pruned with the alert, and to the newest ``HISTORY_KEPT`` entries per alert;
- ``meta``: values the file keeps for itself (``receiver_secret``, and ``receivers``: the
  keys of the receivers the bridge last started with; see ``queue``);
- ``plans``: the ids of the plans ``AlertStore.commit`` stored (a week), so none is stored twice;
- ``told``: which receiver was sent which open alert, one row per (receiver, alert) until a
  resolve of it is grouped for that receiver: a receiver told of an alert hears of its later
  changes even once below its ``min_severity`` (``queue.Keep``), so it is never left with it
  firing;
- ``taken``: what each receiver took of each alert, one row per (receiver, alert, delivered
  delivery: its rowid), kept by triggers on ``deliveries`` (made, moved between states or
  receivers, deleted), so that whether a receiver took a later delivery of an alert than a dead
  letter's (``dead_letters``) is one lookup in its key, not a read of each delivery since;
- ``carried``: which deliveries carry each alert, one row per (alert, delivery: when it was
  made and its id), kept by triggers on ``deliveries`` (made, its alerts or time changed,
  deleted), so that an alert's page (refreshed every few seconds) reads its newest deliveries in
  order from the key of the alert, not every delivery of the day, and so does ``renotify``
  (``dead_letters``) whether a later delivery to a dead letter's receiver carried its alert.

The schema is at version 17 (2 added two alert columns, 3 the history, 4 the ``meta`` table, 5 the
plans' ids, 6 ``told`` and an index of deliveries in order, 7 the deliveries' ``retried_at``, 8
the alerts' ``source`` and ``details``, a SystemAlert's component and metadata annotations, 9 the
deliveries' ``renotified_at``, 10 ``taken`` and an index of the dead letters, 11 an index of the
deliveries by state and when they finished, 12 ``carried``, 13 the file's mark: ``PRAGMA
application_id``, 14 indexes of the alerts in the orders they are listed in, 15 triggers that
refuse a delivery's next attempt time that is no time: infinite or text, 16 the alerts'
``event_at``, 17 the queued alerts' ``peak``); ``migrate``
upgrades a file of any earlier version in place, one version at a
time. ``connect`` refuses a file that is no SQLite database (one byte too, which SQLite would take
for a new one and write over; an empty file is a new outbox), an outbox cut short (which SQLite
would open, the bytes missing read as zeroes) and an SQLite file that is no outbox
(another program's, with tables of its own) before it changes anything in it: a file marked as
ours opens, and so does one without a mark that is empty (new) or holds version 1's tables (an
outbox from before the mark).

Its journal is WAL, but on btrfs the rollback journal (``_journal``): there the WAL's
shared-memory file, which SQLite maps and writes in memory, takes disk space at each write, and a
write finding the disk full kills the process (SIGBUS) instead of failing (SQLITE_FULL).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from bridge.regular_files import open_regular
from bridge.sinks.alerts.records import refused

__all__ = [
    "CutShort",
    "connect",
    "migrate",
    "refuse_unfit",
    "sqlite_problem",
    "this_sqlite_problem",
]

_SCHEMA_VERSION: Final = 17
# The outbox's mark in the file's header (PRAGMA application_id): "EXOB".
_APPLICATION_ID: Final = 0x45584F42
# A new delivery's next attempt time, or a changed one, that the triggers take (version 15),
# and what they say of another.
_A_TIME: Final = (
    "(typeof(NEW.next_attempt_at) IN ('real', 'integer')"
    " AND abs(NEW.next_attempt_at) <= 253402300799)"
)
_NOT_A_TIME: Final = (
    "deliveries.next_attempt_at must be a time: Unix seconds, up to the end of the year 9999"
)
# statfs(2)'s f_type of btrfs (linux/magic.h).
_BTRFS_MAGIC: Final = 0x9123683E
# The first 16 bytes of every SQLite database file (sqlite.org/fileformat.html, 1.3.1).
_SQLITE_HEADER: Final = b"SQLite format 3\x00"
# The database header's length: its page size, change counter and page count are in it (1.3).
_HEADER_BYTES: Final = 100
# The oldest SQLite the outbox's queries run on: RETURNING (dead_letters) and MATERIALIZED
# (retention) came in 3.35.0 (2021), the newest of what they use (window functions: 3.25,
# json_each: 3.9). Python's sqlite3 uses the system's library: RHEL 9's is 3.34.
_OLDEST_SQLITE: Final = (3, 35, 0)
# The JSON functions the outbox's queries use, in one query: json_each, json_group_array and
# json_array_length. An SQLite may be built without them, past the version check (before 3.38
# they came with SQLITE_ENABLE_JSON1 only; since, SQLITE_OMIT_JSON leaves them out), and the
# outbox would fail at its first query of them instead of at start.
_JSON_PROBE: Final = "SELECT json_array_length(json_group_array(value)) FROM json_each('[1]')"
# Where to find a Python whose SQLite the outbox runs on.
_FIT_PYTHONS: Final = "python.org's, Debian 12's, Ubuntu 22.04's"
# Version 1's tables: a file without the mark that holds them is an outbox from before it.
_FIRST_TABLES: Final = frozenset({"alerts", "queued", "deliveries"})
# Columns added after version 1 (by version: table, column, definition).
_ADDED_COLUMNS: Final[Mapping[int, tuple[tuple[str, str, str], ...]]] = {
    2: (("alerts", "auto_resolve", "INTEGER NOT NULL DEFAULT 0"), ("alerts", "last_seen", "REAL")),
    7: (("deliveries", "retried_at", "REAL"),),
    8: (("alerts", "source", "TEXT"), ("alerts", "details", "TEXT NOT NULL DEFAULT '[]'")),
    9: (("deliveries", "renotified_at", "REAL"),),
    16: (("alerts", "event_at", "REAL"),),
    17: (("queued", "peak", "TEXT"),),
}
# Version 1's tables (already with the columns later versions added: a new file's columns then
# stand in the order an upgraded file's do); later versions' tables come from _step.
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT PRIMARY KEY,
    alertname TEXT NOT NULL,
    severity TEXT NOT NULL,
    category TEXT NOT NULL,
    node TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    requires_ack INTEGER NOT NULL,
    state TEXT NOT NULL,
    level INTEGER NOT NULL,
    starts_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    ends_at REAL,
    level_since REAL NOT NULL,
    ack_by TEXT,
    ack_note TEXT,
    ack_at REAL,
    resolution TEXT,
    auto_resolve INTEGER NOT NULL DEFAULT 0,
    last_seen REAL,
    source TEXT,
    details TEXT NOT NULL DEFAULT '[]',
    event_at REAL
);
CREATE INDEX IF NOT EXISTS alerts_by_state ON alerts (state, level_since);
CREATE TABLE IF NOT EXISTS queued (
    url TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    queued_at REAL NOT NULL,
    peak TEXT,
    PRIMARY KEY (url, alert_id)
);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    body BLOB NOT NULL,
    alert_ids TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    state TEXT NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    finished_at REAL,
    retried_at REAL,
    renotified_at REAL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (url, state, next_attempt_at);
"""
# Version 3: each alert's history.
_HISTORY: Final = """
CREATE TABLE IF NOT EXISTS history (
    alert_id TEXT NOT NULL,
    at REAL NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_alert ON history (alert_id, at);
"""
# Version 4: the random key of the receiver keys' digests (``receiver_secret``).
_META: Final = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
INSERT OR IGNORE INTO meta (name, value) VALUES ('receiver_secret', randomblob(32));
"""
# Version 5: the ids of the plans stored (``AlertStore.commit`` stores each once).
_PLANS: Final = """
CREATE TABLE IF NOT EXISTS plans (
    id TEXT PRIMARY KEY,
    stored_at REAL NOT NULL
);
"""
# Version 6: which receiver was told of which open alert (see queue.Keep), and an index that
# finds a receiver's oldest pending delivery (its entries run in rowid order within a url and
# state). An open alert a receiver has a delivery of counts as told, so that it hears how the
# alert ends; one resolved and fired again since may then tell it one change too many, never
# one too few.
_TOLD: Final = """
CREATE TABLE IF NOT EXISTS told (
    url TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    PRIMARY KEY (url, alert_id)
);
CREATE INDEX IF NOT EXISTS deliveries_in_order ON deliveries (url, state);
INSERT OR IGNORE INTO told (url, alert_id)
SELECT deliveries.url, sent.value FROM deliveries, json_each(deliveries.alert_ids) AS sent
JOIN alerts ON alerts.alert_id = sent.value WHERE alerts.state != 'resolved';
"""
# Version 10: what each receiver took of each alert (see the module docstring), and an index of
# the dead letters alone (serving only a query that names their state: ``state = 'dead'``,
# not bound), so that finding them reads neither the other deliveries nor their bodies. The
# triggers come before the rows of the deliveries already taken: one taken meanwhile is in them
# either way.
_TAKEN: Final = """
CREATE INDEX IF NOT EXISTS dead_letters ON deliveries (url, alert_ids) WHERE state = 'dead';
CREATE TABLE IF NOT EXISTS taken (
    url TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    delivery INTEGER NOT NULL,
    PRIMARY KEY (url, alert_id, delivery)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS taken_made AFTER INSERT ON deliveries
WHEN NEW.state = 'delivered' BEGIN
    INSERT OR IGNORE INTO taken (url, alert_id, delivery)
    SELECT NEW.url, value, NEW.rowid FROM json_each(NEW.alert_ids);
END;
CREATE TRIGGER IF NOT EXISTS taken_changed AFTER UPDATE OF state, url, alert_ids ON deliveries
WHEN OLD.state = 'delivered' OR NEW.state = 'delivered' BEGIN
    DELETE FROM taken WHERE OLD.state = 'delivered' AND url = OLD.url AND delivery = OLD.rowid
    AND alert_id IN (SELECT value FROM json_each(OLD.alert_ids));
    INSERT OR IGNORE INTO taken (url, alert_id, delivery)
    SELECT NEW.url, value, NEW.rowid FROM json_each(NEW.alert_ids) WHERE NEW.state = 'delivered';
END;
CREATE TRIGGER IF NOT EXISTS taken_deleted AFTER DELETE ON deliveries
WHEN OLD.state = 'delivered' BEGIN
    DELETE FROM taken WHERE url = OLD.url AND delivery = OLD.rowid
    AND alert_id IN (SELECT value FROM json_each(OLD.alert_ids));
END;
INSERT OR IGNORE INTO taken (url, alert_id, delivery)
SELECT deliveries.url, sent.value, deliveries.rowid
FROM deliveries, json_each(deliveries.alert_ids) AS sent WHERE deliveries.state = 'delivered';
"""
# Version 11: an index of the deliveries by state and when they finished, so that the hourly
# prune finds the old delivered and stale ones, and the depth (read every second) counts the
# pending and dead ones, without reading the day of delivered ones (86 000) and their bodies.
# It leads with the state, so the planner takes it for any ``state = 'dead'`` too: the queries
# that read the dead letters' alert ids name the index of them alone (``INDEXED BY``).
_BY_STATE: Final = """
CREATE INDEX IF NOT EXISTS deliveries_by_state ON deliveries (state, finished_at);
"""
# Version 14: the alerts in the orders they are listed in (``AlertStore.find``), newest first:
# by change (GET /v1/alerts, with or without ?state=) and, per state, by start (the status page,
# refreshed every few seconds). A listing of its first page then reads that page, not every
# alert of the state (50 000 open ones) to sort them; a next page starts where the last ended.
_BY_CHANGE: Final = """
CREATE INDEX IF NOT EXISTS alerts_by_change ON alerts (updated_at, alert_id);
CREATE INDEX IF NOT EXISTS alerts_by_state_change ON alerts (state, updated_at, alert_id);
CREATE INDEX IF NOT EXISTS alerts_by_state_start ON alerts (state, starts_at, alert_id);
"""
# Version 12: which deliveries carry each alert (see the module docstring), keyed in the order an
# alert's page lists them (newest first, then by id), so that it reads the newest 50 and no more.
# A delivery's time changes when an attempt finds the wall clock set back (``finish_attempt``),
# its alerts when some are withheld (``withhold``). As for ``taken``, the triggers come before
# the rows of the deliveries already made.
_CARRIED: Final = """
CREATE TABLE IF NOT EXISTS carried (
    alert_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    delivery_id TEXT NOT NULL,
    PRIMARY KEY (alert_id, created_at DESC, delivery_id)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS carried_made AFTER INSERT ON deliveries BEGIN
    INSERT OR IGNORE INTO carried (alert_id, created_at, delivery_id)
    SELECT value, NEW.created_at, NEW.id FROM json_each(NEW.alert_ids);
END;
CREATE TRIGGER IF NOT EXISTS carried_changed
AFTER UPDATE OF id, alert_ids, created_at ON deliveries
WHEN OLD.id IS NOT NEW.id OR OLD.alert_ids IS NOT NEW.alert_ids
OR OLD.created_at IS NOT NEW.created_at BEGIN
    DELETE FROM carried WHERE created_at = OLD.created_at AND delivery_id = OLD.id
    AND alert_id IN (SELECT value FROM json_each(OLD.alert_ids));
    INSERT OR IGNORE INTO carried (alert_id, created_at, delivery_id)
    SELECT value, NEW.created_at, NEW.id FROM json_each(NEW.alert_ids);
END;
CREATE TRIGGER IF NOT EXISTS carried_deleted AFTER DELETE ON deliveries BEGIN
    DELETE FROM carried WHERE created_at = OLD.created_at AND delivery_id = OLD.id
    AND alert_id IN (SELECT value FROM json_each(OLD.alert_ids));
END;
INSERT OR IGNORE INTO carried (alert_id, created_at, delivery_id)
SELECT sent.value, deliveries.created_at, deliveries.id
FROM deliveries, json_each(deliveries.alert_ids) AS sent;
"""
# Version 15: a delivery's next attempt is a time, up to the last a timestamp can show (the end
# of the year 9999): an infinite one (a backoff that overflowed, a hand edit) or text would never
# be due and would hold back every later delivery to its receiver, so the triggers refuse to
# store one. Text already stored is made infinite, so that the worker plans it again as it
# plans one too far ahead (``DeliveryQueue.next_due``): not lost, nor sent at once.
_NEXT_ATTEMPT: Final = f"""
UPDATE deliveries SET next_attempt_at = 9e999
WHERE typeof(next_attempt_at) NOT IN ('real', 'integer');
CREATE TRIGGER IF NOT EXISTS next_attempt_made BEFORE INSERT ON deliveries
WHEN NOT {_A_TIME} BEGIN
    SELECT RAISE(ABORT, '{_NOT_A_TIME}');
END;
CREATE TRIGGER IF NOT EXISTS next_attempt_changed BEFORE UPDATE OF next_attempt_at ON deliveries
WHEN NOT {_A_TIME} BEGIN
    SELECT RAISE(ABORT, '{_NOT_A_TIME}');
END;
"""  # noqa: S608 (constant fragments)
# What each version after 2 added to the one before.
_STEPS: Final[Mapping[int, str]] = {
    3: _HISTORY,
    4: _META,
    5: _PLANS,
    6: _TOLD,
    10: _TAKEN,
    11: _BY_STATE,
    12: _CARRIED,
    # Version 13: the mark, which migrate sets first of all (see there); again, to no effect.
    13: f"PRAGMA application_id={_APPLICATION_ID};",
    14: _BY_CHANGE,
    15: _NEXT_ATTEMPT,
}


class CutShort(sqlite3.DatabaseError):
    """The outbox file was cut short (``_refuse_cut_short``); its message says what to do."""


def connect(path: Path | str) -> sqlite3.Connection:
    """Open the outbox file as every user of it must: transactions explicit (``BEGIN
    IMMEDIATE`` … ``COMMIT``), the WAL journal (on btrfs the rollback journal: ``_journal``),
    and ``synchronous=FULL`` (the journal is fsync'd at every commit, so a committed delivery
    survives power loss); its queries may call ``refused(last_status, last_error)``
    (``records.refused``); NotSupportedError on an SQLite the outbox cannot run on
    (``this_sqlite_problem``)."""
    if (problem := this_sqlite_problem()) is not None:
        raise sqlite3.NotSupportedError(problem)
    if str(path) != ":memory:":
        # Made private before SQLite opens it: it holds alert bodies and the receiver keys'
        # secret, and SQLite gives the WAL and shared-memory files the same mode.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        _refuse_no_database(path)
        # Before anything is changed in it: not its mode, nor its journal (WAL is in its header).
        # On a connection of its own, closed before the one returned is opened: the check reads
        # the file through a descriptor of its own, and closing that drops every POSIX lock this
        # process holds on the file, SQLite's too. Without its shared lock, the next process to
        # close the file (`exesdb-bridge outbox list` beside a bridge) takes itself for the last
        # one and deletes the log (-wal) the bridge goes on writing: what it wrote then is lost.
        probe = sqlite3.connect(path, isolation_level=None, timeout=10.0)
        with contextlib.closing(probe):
            _refuse_another_programs(probe, path)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    if str(path) != ":memory:":
        # A file an earlier version made (0644), and its WAL and shared-memory files, too.
        for name in (str(path), f"{path}-wal", f"{path}-shm"):
            with contextlib.suppress(OSError):  # absent, or another user's (a CLI as root)
                os.chmod(name, 0o600)
    db.row_factory = sqlite3.Row
    # refused(last_status, last_error): whether a delivery's last answer was final, for queries
    # that pick dead letters by it (the one rule, records.refused, not a copy of it in SQL).
    db.create_function("refused", 2, refused, deterministic=True)
    _journal(db, path)
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=10000")
    return db


def this_sqlite_problem() -> str | None:
    """``sqlite_problem`` of this Python's SQLite library: its version, and its JSON functions
    tried on an in-memory database (some 0.1 ms)."""
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        return sqlite_problem(sqlite3.sqlite_version_info, db)


def sqlite_problem(version: tuple[int, ...], db: sqlite3.Connection) -> str | None:
    """Why the outbox cannot run on the SQLite library of ``version`` that ``db`` (an in-memory
    database) is opened with: older than ``_OLDEST_SQLITE``, or without the JSON functions the
    outbox's queries use (``_JSON_PROBE`` fails on ``db``), in words that name what it has,
    what it needs and where to find that; None when it can."""
    found = ".".join(map(str, version))
    if version < _OLDEST_SQLITE:
        oldest = ".".join(map(str, _OLDEST_SQLITE))
        return (
            f"this Python's SQLite is {found}; the outbox needs {oldest} or newer"
            f" (a Python built with a newer SQLite: {_FIT_PYTHONS})"
        )
    try:
        db.execute(_JSON_PROBE).fetchall()
    except sqlite3.Error as exc:
        return (
            f"this Python's SQLite ({found}) has no JSON functions ({exc}); the outbox's queries"
            f" need them (a Python built with an SQLite that has them: {_FIT_PYTHONS})"
        )
    return None


def migrate(db: sqlite3.Connection) -> None:
    """Bring the file (new, or of any earlier version) up to ``_SCHEMA_VERSION``: version 1's
    tables, then each version's step in turn (``_step``: version N - 1 to N).

    Every step is idempotent (IF NOT EXISTS, a column added only when missing), so a bridge
    and a CLI opening the file at once race safely, and the chain runs whole over any file
    below the current version: whatever it holds already, it ends with every table.
    """
    # Version 1 never set user_version: a file of it reads 0, as a new file does.
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version >= _SCHEMA_VERSION:
        return
    # Marked before its first table is made: another process opening it meanwhile (a CLI beside
    # a bridge starting) sees an outbox, not a file of someone else's tables.
    db.execute(f"PRAGMA application_id={_APPLICATION_ID}")
    db.executescript(_SCHEMA)
    for step in range(2, _SCHEMA_VERSION + 1):
        _step(db, step)
    db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")


def _journal(db: sqlite3.Connection, path: Path | str) -> None:
    """Put the file in WAL mode, or on btrfs in the rollback journal, kept between transactions
    (TRUNCATE), so that a full disk fails a write (SQLITE_FULL) as it does elsewhere.

    WAL's index of the log is a file beside it (``-shm``) that every process on the file maps
    and writes in memory, readers too; btrfs copies a block on each write, so a mapped page
    written again needs a new block, and when the disk (or its quota group) has none the kernel
    answers the write with SIGBUS: the process dies mid-transaction, where a write(2) gets
    ENOSPC. The rollback journal writes with write(2) alone, at about a third of WAL's commits
    per second there (docs/performance.md). Leaving WAL needs the file to itself: while another
    process has it open (a bridge of an earlier version beside this ``outbox`` command) it
    stays in WAL until it is opened alone."""
    if str(path) == ":memory:" or not _on_btrfs(path):
        db.execute("PRAGMA journal_mode=WAL")
        return
    if db.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        db.execute("PRAGMA busy_timeout=0")  # not waiting for a process that keeps it open
        try:
            db.execute("PRAGMA journal_mode=TRUNCATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
        return
    # Kept, not deleted, between transactions: made again it would fail on a full disk as a
    # file that cannot be opened (SQLITE_CANTOPEN), not as the full disk it is.
    db.execute("PRAGMA journal_mode=TRUNCATE")


def _on_btrfs(path: Path | str) -> bool:
    """Whether the file ``path`` is on btrfs (statfs(2)); False when that cannot be told."""
    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(256)  # struct statfs: 120 bytes on 64-bit Linux
    if libc.statfs(os.fsencode(path), buffer):
        return False
    # f_type comes first: a long on most platforms, 32 bits on some (s390x). Read as 32 bits it
    # is right but on a big-endian long, read as 64 right but on a 32-bit field (then with
    # f_bsize in its low half): either is the magic only on btrfs.
    return _BTRFS_MAGIC in (
        ctypes.c_uint32.from_buffer(buffer).value,
        ctypes.c_uint64.from_buffer(buffer).value,
    )


def refuse_unfit(path: Path | str) -> None:
    """DatabaseError, in ``connect``'s words, when the file ``path`` is no outbox (no SQLite
    database, another program's) or an outbox cut short, judged without writing anything, not
    even a journal beside it (``check-config``). A file with a log or a journal beside it holding
    anything is left unjudged: a bridge may be writing it, or SQLite makes it whole from them."""
    _refuse_no_database(path)
    for beside in (f"{path}-wal", f"{path}-journal"):
        with contextlib.suppress(OSError):  # none there
            if os.path.getsize(beside):
                return
    # immutable: no lock taken and no shared-memory file or log made beside it, as a read-only
    # open of a WAL file makes them.
    uri = f"{Path(path).absolute().as_uri()}?mode=ro&immutable=1"
    db = sqlite3.connect(uri, uri=True, isolation_level=None)
    try:
        _refuse_another_programs(db, path)
    finally:
        db.close()


def _refuse_no_database(path: Path | str) -> None:
    """DatabaseError, in SQLite's words, when the file ``path`` holds bytes but does not begin as
    an SQLite database does: SQLite refuses most such files at its first read, but takes one of a
    single byte for a new, empty database and writes an outbox over it."""
    try:
        with open_regular(path) as file:
            head = file.read(len(_SQLITE_HEADER))
    except OSError:
        return  # a folder, a file this user may not read: SQLite's open says why
    if head and head != _SQLITE_HEADER:  # empty: a new outbox, as SQLite takes it
        raise sqlite3.DatabaseError("file is not a database")


def _refuse_cut_short(path: Path | str) -> None:
    """DatabaseError when the database file ``path`` was cut short: a part of a page, or whole
    pages its header counts (sqlite.org/fileformat.html, 1.3.2 and 1.3.8). SQLite reads the
    missing bytes as zeroes: an outbox one byte short opened with an index broken, and the
    bridge wrote on over it. Called in a read transaction, where no other process is part way
    through writing the file; with a journal or a log beside it holding anything (a crash
    leaves one, from which SQLite makes the file whole), it is not judged."""
    for beside in (f"{path}-wal", f"{path}-journal"):
        with contextlib.suppress(OSError):  # none there
            if os.path.getsize(beside):
                return
    try:
        with open_regular(path) as file:
            head = file.read(_HEADER_BYTES)
            size = os.fstat(file.fileno()).st_size
    except OSError:
        return  # SQLite has it open: it says why it cannot read it, if it cannot
    if not head:
        return  # a new outbox, not written yet
    problem = None
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page  # 1 stands for 65 536
    # The page count in the header holds when the change counter beside it matches (1.3.8).
    pages = int.from_bytes(head[28:32], "big")
    if len(head) < _HEADER_BYTES:
        problem = f"{size} bytes, less than its {_HEADER_BYTES}-byte header"
    elif size % page:
        problem = f"{size} bytes, not a whole number of its {page}-byte pages"
    elif head[24:28] == head[92:96] and size < pages * page:
        problem = f"{size // page} of the {pages} pages its header counts"
    if problem is not None:
        raise CutShort(
            f"file is an SQLite database cut short ({problem}): part of the outbox is lost;"
            " restore it whole, or move it out of the way for a new one"
        )


def _refuse_another_programs(db: sqlite3.Connection, path: Path | str) -> None:
    """DatabaseError when the file ``path`` is an SQLite database but no outbox: marked by
    another program, or unmarked with tables and not version 1's (see the module docstring);
    or an outbox cut short (``_refuse_cut_short``)."""
    # One read transaction: the mark and the tables as one state of the file, so a file being
    # made meanwhile (marked first, by migrate) is never seen with some tables and no mark.
    db.execute("BEGIN")
    try:
        mark = int(db.execute("PRAGMA application_id").fetchone()[0])
        if str(path) != ":memory:" and mark in (_APPLICATION_ID, 0):
            _refuse_cut_short(path)  # once read from: SQLite holds its lock on the file
        if mark == _APPLICATION_ID:
            return
        rows = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite!_%'"
            " ESCAPE '!' ORDER BY name"
        ).fetchall()
    finally:
        db.execute("COMMIT")
    tables = [str(row[0]) for row in rows]
    if mark == 0 and (not tables or set(tables) >= _FIRST_TABLES):
        return
    if mark:
        raise sqlite3.DatabaseError(
            f"file is another program's SQLite database (application_id {mark:#x}), not an"
            " alert outbox"
        )
    named = ", ".join(repr(name) for name in tables[:3]) + (", …" if len(tables) > 3 else "")
    raise sqlite3.DatabaseError(
        f"file is an SQLite database of another program's (its tables: {named}), not an alert"
        " outbox"
    )


def _step(db: sqlite3.Connection, version: int) -> None:
    """Upgrade a file of ``version - 1`` to ``version``."""
    if version in _ADDED_COLUMNS:
        _add_columns(db, _ADDED_COLUMNS[version])
    else:
        db.executescript(_STEPS[version])


def _add_columns(db: sqlite3.Connection, added: tuple[tuple[str, str, str], ...]) -> None:
    for table, column, definition in added:
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            try:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
            except sqlite3.OperationalError as exc:  # a CLI beside us added it first
                if "duplicate column" not in str(exc):
                    raise
