"""The outbox file: how it is opened, what survives a restart, its upgrades, who may read it."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import sqlite3
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import pytest

from bridge.sinks.alerts.outbox import FILE_NAME, LOCK_NAME, Outbox, unopenable_hint
from bridge.sinks.alerts.records import (
    AlertRecord,
    AlertState,
    DeliveryState,
    HistoryEvent,
)
from bridge.sinks.alerts.tables import connect, sqlite_problem, this_sqlite_problem
from tests.sinks.alerts.helpers import T0, URL, event, observe, one_each, stored


def test_database_is_wal_and_fsyncs_every_commit(outbox: Outbox) -> None:
    """The file uses the WAL journal, and its connections synchronous=FULL."""
    plain = sqlite3.connect(outbox.path)
    assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    plain.close()
    db = connect(outbox.path)  # how the outbox (and the CLI) open the file
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    db.close()


@pytest.mark.parametrize(
    ("version", "said"),
    [
        ((3, 34, 1), "this Python's SQLite is 3.34.1; the outbox needs 3.35.0 or newer"),
        ((3, 24, 0), "this Python's SQLite is 3.24.0; the outbox needs 3.35.0 or newer"),
        ((2, 99, 99), "this Python's SQLite is 2.99.99; the outbox needs 3.35.0 or newer"),
        ((3, 35, 0), None),
        ((3, 35, 5), None),
        ((4, 0, 0), None),
        (sqlite3.sqlite_version_info, None),
    ],
)
def test_an_sqlite_older_than_3_35_is_named_with_the_version_needed(
    version: tuple[int, int, int], said: str | None
) -> None:
    """An SQLite library older than 3.35.0 (RETURNING and MATERIALIZED, which the outbox's
    queries use) is a problem naming its version, the one needed and where to find one; 3.35.0,
    anything newer and this Python's own are none."""
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        problem = sqlite_problem(version, db)
    if said is None:
        assert problem is None
    else:
        assert problem is not None
        assert problem.startswith(said)
        assert problem.endswith(
            "(a Python built with a newer SQLite: python.org's, Debian 12's, Ubuntu 22.04's)"
        )


def _without_json(action: int, arg1: str | None, arg2: str | None, *_: str | None) -> int:
    """An authorizer refusing every JSON function, as an SQLite built without them has none."""
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").startswith("json"):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def test_an_sqlite_without_json_functions_is_named_as_such() -> None:
    """An SQLite new enough but whose JSON functions fail (json_each, which the outbox's queries
    use, left out of its build; here refused on the connection) is a problem naming its version,
    SQLite's words and where to find one that has them; this Python's own is none, and an SQLite
    too old is named for its version alone."""
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.set_authorizer(_without_json)
        problem = sqlite_problem((3, 45, 1), db)
        too_old = sqlite_problem((3, 34, 1), db)
    assert problem == (
        "this Python's SQLite (3.45.1) has no JSON functions (not authorized to use function:"
        " json_array_length); the outbox's queries need them (a Python built with an SQLite that"
        " has them: python.org's, Debian 12's, Ubuntu 22.04's)"
    )
    assert too_old is not None
    assert too_old.startswith("this Python's SQLite is 3.34.1; the outbox needs 3.35.0 or newer")
    assert this_sqlite_problem() is None


def test_one_bridge_at_a_time_holds_the_state_directory(tmp_path: Path) -> None:
    """A second bridge's outbox on the same directory is refused (it would send the first's
    deliveries too) naming why and EXESDB_STATE_DIR; a reader as `exesdb-bridge outbox` opens
    it beside the holder; once the holder closes, the directory is free again."""
    holder = Outbox.in_dir(tmp_path, urls=[URL])
    try:
        observe(holder, event("a"), T0)
        with pytest.raises(OSError, match="another bridge process has it open") as refused:
            Outbox.in_dir(tmp_path, urls=[URL])
        assert "EXESDB_STATE_DIR" in str(refused.value)
        reader = Outbox(tmp_path / FILE_NAME)
        assert [a.alert_id for a in reader.alerts.find()] == ["a"]
        reader.close()
    finally:
        holder.close()
    again = Outbox.in_dir(tmp_path, urls=[URL])
    again.close()


def test_a_state_directory_without_locks_is_refused_for_that_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system that cannot lock (flock: ENOLCK, as an NFS mount without lockd) is refused
    with the system's reason, not as a folder another bridge holds, and no descriptor is left."""

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    opened = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError, match=os.strerror(errno.ENOLCK)) as refused:
        Outbox.in_dir(tmp_path, urls=[URL])
    assert refused.value.errno == errno.ENOLCK
    assert "another bridge" not in str(refused.value)
    assert refused.value.filename == str(tmp_path / LOCK_NAME)
    assert len(os.listdir("/proc/self/fd")) == opened


def _refusal(state_dir: Path) -> OSError:
    """What ``Outbox.in_dir`` raises for ``state_dir``."""
    try:
        Outbox.in_dir(state_dir).close()
    except OSError as exc:
        return exc
    raise AssertionError(f"the outbox opened in {state_dir}")


def test_a_state_directory_that_is_a_file_is_told_as_a_file(tmp_path: Path) -> None:
    """EXESDB_STATE_DIR naming a file (the system says only "File exists") is told as a file,
    not a directory; a path through a file ("Not a directory"), as one through a file."""
    (tmp_path / "a-file").write_text("")
    assert unopenable_hint(tmp_path / "a-file", _refusal(tmp_path / "a-file")) == (
        "it is a file, not a directory: give a directory (it is made when missing)"
    )
    inside = tmp_path / "a-file" / "state"
    assert unopenable_hint(inside, _refusal(inside)) == (
        "a part of the path is a file, not a directory: give a path of directories"
    )


def test_a_state_directory_that_cannot_be_made_says_to_give_a_writable_one() -> None:
    """EXESDB_STATE_DIR where no directory can be made (under /proc: the system says only
    "No such file or directory") says so, and to give a writable directory (a volume)."""
    nowhere = Path("/proc/no-such-state-dir")
    assert unopenable_hint(nowhere, _refusal(nowhere)) == (
        "it cannot be created there: give a directory the bridge may write"
        " (in a container, a volume)"
    )


def test_a_state_directory_it_may_not_write_is_told_with_the_user(tmp_path: Path) -> None:
    """Permission denied (a directory of another user's: the tests may run as root, to whom
    none is denied) names the bridge's uid and what to change; a read-only file system says so;
    another bridge holding it says so itself already."""
    denied = PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path))
    assert unopenable_hint(tmp_path, denied) == (
        f"the bridge's user (uid {os.geteuid()}) may not write there: give a directory it may"
        " write, or make this one writable by it (chown, chmod u+w)"
    )
    read_only = OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path))
    assert unopenable_hint(tmp_path, read_only) == (
        "it is on a read-only file system: give a directory on a writable one (a volume)"
    )
    holder = Outbox.in_dir(tmp_path)
    try:
        assert unopenable_hint(tmp_path, _refusal(tmp_path)) is None
    finally:
        holder.close()


@pytest.mark.parametrize(
    "full",
    [
        OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
        OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)),
        sqlite3.OperationalError("database or disk is full"),
    ],
    ids=["ENOSPC", "EDQUOT", "sqlite"],
)
def test_a_state_directory_on_a_full_disk_says_to_free_space(
    tmp_path: Path, full: Exception
) -> None:
    """The system's or SQLite's words for a full disk (or quota) are told with what to do."""
    assert unopenable_hint(tmp_path, full) == (
        "the file system holding it is full: free some space there, or give a directory on another"
    )


RECORD_FIELDS = [field.name for field in fields(AlertRecord)]


def columns(path: Path, table: str = "alerts") -> list[str]:
    """A table's columns, in order."""
    db = sqlite3.connect(path)
    try:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
    finally:
        db.close()


def test_the_alerts_table_holds_the_record_fields_in_order(outbox: Outbox) -> None:
    """Each column of the alerts table is the AlertRecord field of the same position."""
    assert columns(outbox.path) == RECORD_FIELDS


def test_everything_survives_reopening(tmp_path: Path) -> None:
    """A new Outbox on the same directory sees the alerts, queue and deliveries."""
    box = Outbox.in_dir(tmp_path, urls=[URL])
    observe(box, event("a"), T0)
    observe(box, event("b"), T0)
    box.queue.group(URL, T0, 0.0, one_each)
    observe(box, event("c"), T0 + 1)
    box.close()
    box.close()  # idempotent
    again = Outbox.in_dir(tmp_path, urls=[URL])
    assert {a.alert_id for a in again.alerts.find()} == {"a", "b", "c"}
    depth = again.queue.depth()
    assert (depth.queued, depth.pending, depth.dead) == (1, 2, 0)
    again.close()


def test_an_alerts_source_and_details_survive_reopening(tmp_path: Path) -> None:
    """The source and details an alert fired with are stored, and read back after a restart."""
    box = Outbox.in_dir(tmp_path, urls=[URL])
    details = (("metadata_lag", "12"), ("metadata_note", "<b>ü</b>"))
    observe(box, event("a", source="backup-job", details=details), T0)
    box.close()
    again = Outbox.in_dir(tmp_path, urls=[URL])
    try:
        kept = stored(again, "a")
        assert kept is not None
        assert (kept.source, kept.details) == ("backup-job", details)
    finally:
        again.close()


def test_a_version_1_file_gains_the_new_columns(tmp_path: Path) -> None:
    """An outbox written by the first schema opens, keeps its alerts and takes new fields."""
    path = tmp_path / "alerts.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(_v1_schema() + _V1_QUEUES)
    db.execute(
        "INSERT INTO alerts VALUES ('old', 'x', 'warning', 'system', 'n1', 't', 'd', 0,"
        " 'firing', 1, 1.0, 1.0, NULL, 1.0, NULL, NULL, NULL, NULL)"
    )
    db.commit()
    db.close()
    box = Outbox(path)
    try:
        assert columns(path) == RECORD_FIELDS  # the new columns come last, as in a new file
        assert stored(box, "old").auto_resolve is False  # type: ignore[union-attr]
        box.alerts.apply([event("new", auto_resolve=True)], T0)
        assert stored(box, "new").auto_resolve is True  # type: ignore[union-attr]
    finally:
        box.close()


def _v1_schema() -> str:
    """The alerts table as the first released schema wrote it."""
    return """
    CREATE TABLE alerts (
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
        resolution TEXT
    );
    """


# What each earlier version's file held beyond the one before it (version 1: ``_v1_schema``
# and the queues), and the user_version it read.
_V1_QUEUES = """
CREATE TABLE queued (
    url TEXT NOT NULL, alert_id TEXT NOT NULL, queued_at REAL NOT NULL,
    PRIMARY KEY (url, alert_id)
);
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY, url TEXT NOT NULL, body BLOB NOT NULL, alert_ids TEXT NOT NULL,
    created_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL,
    state TEXT NOT NULL, last_status INTEGER, last_error TEXT, finished_at REAL
);
"""
_V2_COLUMNS = """
ALTER TABLE alerts ADD COLUMN auto_resolve INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN last_seen REAL;
"""
_V3_HISTORY = """
CREATE TABLE history (alert_id TEXT NOT NULL, at REAL NOT NULL, event TEXT NOT NULL,
    detail TEXT NOT NULL);
INSERT INTO history VALUES ('old', 1.0, 'fired', 'warning on n1');
"""
_V4_META = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
INSERT INTO meta VALUES ('receiver_secret', x'00112233445566778899aabbccddeeff');
"""
_V5_PLANS = """
CREATE TABLE plans (id TEXT PRIMARY KEY, stored_at REAL NOT NULL);
"""
_V6_TOLD = """
CREATE TABLE told (url TEXT NOT NULL, alert_id TEXT NOT NULL, PRIMARY KEY (url, alert_id));
CREATE INDEX deliveries_in_order ON deliveries (url, state);
"""
_V7_RETRIED = """
ALTER TABLE deliveries ADD COLUMN retried_at REAL;
"""
_V8_SOURCE = """
ALTER TABLE alerts ADD COLUMN source TEXT;
ALTER TABLE alerts ADD COLUMN details TEXT NOT NULL DEFAULT '[]';
"""
_V9_RENOTIFIED = """
ALTER TABLE deliveries ADD COLUMN renotified_at REAL;
"""
_V10_TAKEN = """
CREATE INDEX dead_letters ON deliveries (url, alert_ids) WHERE state = 'dead';
CREATE TABLE taken (
    url TEXT NOT NULL, alert_id TEXT NOT NULL, delivery INTEGER NOT NULL,
    PRIMARY KEY (url, alert_id, delivery)
) WITHOUT ROWID;
CREATE TRIGGER taken_made AFTER INSERT ON deliveries
WHEN NEW.state = 'delivered' BEGIN
    INSERT OR IGNORE INTO taken (url, alert_id, delivery)
    SELECT NEW.url, value, NEW.rowid FROM json_each(NEW.alert_ids);
END;
CREATE TRIGGER taken_changed AFTER UPDATE OF state, url, alert_ids ON deliveries
WHEN OLD.state = 'delivered' OR NEW.state = 'delivered' BEGIN
    DELETE FROM taken WHERE OLD.state = 'delivered' AND url = OLD.url AND delivery = OLD.rowid
    AND alert_id IN (SELECT value FROM json_each(OLD.alert_ids));
    INSERT OR IGNORE INTO taken (url, alert_id, delivery)
    SELECT NEW.url, value, NEW.rowid FROM json_each(NEW.alert_ids) WHERE NEW.state = 'delivered';
END;
CREATE TRIGGER taken_deleted AFTER DELETE ON deliveries
WHEN OLD.state = 'delivered' BEGIN
    DELETE FROM taken WHERE url = OLD.url AND delivery = OLD.rowid
    AND alert_id IN (SELECT value FROM json_each(OLD.alert_ids));
END;
"""
_V11_BY_STATE = """
CREATE INDEX deliveries_by_state ON deliveries (state, finished_at);
"""
_V12_CARRIED = """
CREATE TABLE carried (
    alert_id TEXT NOT NULL, created_at REAL NOT NULL, delivery_id TEXT NOT NULL,
    PRIMARY KEY (alert_id, created_at DESC, delivery_id)
) WITHOUT ROWID;
CREATE TRIGGER carried_made AFTER INSERT ON deliveries BEGIN
    INSERT OR IGNORE INTO carried (alert_id, created_at, delivery_id)
    SELECT value, NEW.created_at, NEW.id FROM json_each(NEW.alert_ids);
END;
CREATE TRIGGER carried_changed
AFTER UPDATE OF id, alert_ids, created_at ON deliveries
WHEN OLD.id IS NOT NEW.id OR OLD.alert_ids IS NOT NEW.alert_ids
OR OLD.created_at IS NOT NEW.created_at BEGIN
    DELETE FROM carried WHERE created_at = OLD.created_at AND delivery_id = OLD.id
    AND alert_id IN (SELECT value FROM json_each(OLD.alert_ids));
    INSERT OR IGNORE INTO carried (alert_id, created_at, delivery_id)
    SELECT value, NEW.created_at, NEW.id FROM json_each(NEW.alert_ids);
END;
CREATE TRIGGER carried_deleted AFTER DELETE ON deliveries BEGIN
    DELETE FROM carried WHERE created_at = OLD.created_at AND delivery_id = OLD.id
    AND alert_id IN (SELECT value FROM json_each(OLD.alert_ids));
END;
"""
_V13_MARK = "PRAGMA application_id=1163415362;"  # "EXOB"
_V14_BY_CHANGE = """
CREATE INDEX alerts_by_change ON alerts (updated_at, alert_id);
CREATE INDEX alerts_by_state_change ON alerts (state, updated_at, alert_id);
CREATE INDEX alerts_by_state_start ON alerts (state, starts_at, alert_id);
"""
_NOT_A_TIME = (
    "deliveries.next_attempt_at must be a time: Unix seconds, up to the end of the year 9999"
)
_V15_NEXT_ATTEMPT = f"""
CREATE TRIGGER next_attempt_made BEFORE INSERT ON deliveries
WHEN NOT (typeof(NEW.next_attempt_at) IN ('real', 'integer')
AND abs(NEW.next_attempt_at) <= 253402300799) BEGIN
    SELECT RAISE(ABORT, '{_NOT_A_TIME}');
END;
CREATE TRIGGER next_attempt_changed BEFORE UPDATE OF next_attempt_at ON deliveries
WHEN NOT (typeof(NEW.next_attempt_at) IN ('real', 'integer')
AND abs(NEW.next_attempt_at) <= 253402300799) BEGIN
    SELECT RAISE(ABORT, '{_NOT_A_TIME}');
END;
"""
_V16_EVENT_AT = """
ALTER TABLE alerts ADD COLUMN event_at REAL;
"""
# Version 1 never set user_version (0, as a new file).
_EARLIER_VERSIONS = [
    (0, _V1_QUEUES),
    (2, _V2_COLUMNS),
    (3, _V3_HISTORY),
    (4, _V4_META),
    (5, _V5_PLANS),
    (6, _V6_TOLD),
    (7, _V7_RETRIED),
    (8, _V8_SOURCE),
    (9, _V9_RENOTIFIED),
    (10, _V10_TAKEN),
    (11, _V11_BY_STATE),
    (12, _V12_CARRIED),
    (13, _V13_MARK),
    (14, _V14_BY_CHANGE),
    (15, _V15_NEXT_ATTEMPT),
    (16, _V16_EVENT_AT),
]
CURRENT_VERSION = 17
# The outbox's mark in the file's header (PRAGMA application_id), from version 13 on: "EXOB".
OUTBOX_MARK = 0x45584F42
ALL_TABLES = frozenset(
    {"alerts", "queued", "deliveries", "history", "meta", "plans", "told", "taken", "carried"}
)


def schema(path: Path) -> tuple[int, frozenset[str]]:
    """The file's user_version and its tables."""
    db = sqlite3.connect(path)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        names = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return int(version), frozenset(row[0] for row in names)
    finally:
        db.close()


def mark(path: Path) -> int:
    """The file's application_id."""
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA application_id").fetchone()[0])
    finally:
        db.close()


def indexes_and_triggers(path: Path) -> frozenset[tuple[str, str, str]]:
    """The file's indexes and triggers (SQLite's own left out): type, name and table each."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT type, name, tbl_name FROM sqlite_master"
            " WHERE type IN ('index', 'trigger') AND sql IS NOT NULL"
        ).fetchall()
        return frozenset((str(kind), str(name), str(table)) for kind, name, table in rows)
    finally:
        db.close()


def _earlier_file(path: Path, upto: int) -> int:
    """An outbox file as the ``upto``-th earlier version (0: version 1) left it, holding an open
    alert, it queued for ``URL`` and a pending delivery of it; returns its user_version."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.executescript(_v1_schema())
        for _, script in _EARLIER_VERSIONS[: upto + 1]:
            db.executescript(script)
        db.execute(
            "INSERT INTO alerts (alert_id, alertname, severity, category, node, title,"
            " description, requires_ack, state, level, starts_at, updated_at, ends_at,"
            " level_since) VALUES ('old', 'x', 'warning', 'system', 'n1', 't', 'd', 0, 'firing',"
            " 1, 1.0, 1.0, NULL, 1.0)"
        )
        db.execute("INSERT INTO queued VALUES (?, 'old', 1.0)", (URL,))
        db.execute(
            "INSERT INTO deliveries (id, url, body, alert_ids, created_at, next_attempt_at, state)"
            " VALUES ('d-old', ?, x'7b7d', '[\"old\"]', 1.0, 1.0, 'pending')",
            (URL,),
        )
        version = _EARLIER_VERSIONS[upto][0]
        db.execute(f"PRAGMA user_version={version}")
        return version
    finally:
        db.close()


@pytest.mark.parametrize(
    "upto",
    range(len(_EARLIER_VERSIONS)),
    ids=[f"version {max(v, 1)}" for v, _ in _EARLIER_VERSIONS],
)
def test_a_file_of_any_earlier_version_is_upgraded_to_the_current_one(
    tmp_path: Path, upto: int
) -> None:
    """A file of each earlier version opens at the current one with every table, keeps what it
    held (alert, queue, delivery, on the alert's page too, history, receiver secret; one made
    once when it had none), and stores plans once and their history."""
    path = tmp_path / "alerts.sqlite3"
    version = _earlier_file(path, upto)
    box = Outbox(path, urls=[URL])
    try:
        assert columns(path) == RECORD_FIELDS  # the new columns come last, as in a new file
        assert columns(path, "deliveries")[-2:] == ["retried_at", "renotified_at"]
        assert columns(path, "queued") == ["url", "alert_id", "queued_at", "peak"]
        [kept] = box.queue.deliveries(ids=["d-old"])
        assert (kept.created_at, kept.retried_at) == (1.0, None)
        assert schema(path) == (CURRENT_VERSION, ALL_TABLES)
        assert mark(path) == OUTBOX_MARK
        new_file = tmp_path / "new" / "alerts.sqlite3"
        new_file.parent.mkdir()
        Outbox(new_file).close()
        assert indexes_and_triggers(path) == indexes_and_triggers(new_file)
        old = box.alerts.get("old")
        assert old is not None
        assert old.state is AlertState.FIRING
        assert old.auto_resolve is False
        assert (old.source, old.details, old.event_at) == (None, (), None)
        assert box.queue.depth() == box.queue.depth().__class__(1, 1, 0)
        old_detail = box.alerts.detail("old")
        assert old_detail is not None
        kept_history = [e.event for e in old_detail.history]
        assert kept_history == ([HistoryEvent.FIRED] if version >= 3 else [])
        assert [d.id for d in old_detail.deliveries] == ["d-old"]  # on its page
        plan = box.alerts.plan(
            [event("new", auto_resolve=True), event("old", status="resolved")], T0
        )
        assert sorted(r.alert_id for r in box.alerts.commit(plan).changed) == ["new", "old"]
        assert box.alerts.commit(plan).changed == []  # stored once
        assert box.alerts.get("new").auto_resolve is True  # type: ignore[union-attr]
        assert [e.event for e in box.alerts.detail("new").history] == [HistoryEvent.FIRED]  # type: ignore[union-attr]
        secret = box.receiver_secret
        if version >= 4:
            assert secret == bytes.fromhex("00112233445566778899aabbccddeeff")
        else:
            assert len(secret) == 32
    finally:
        box.close()
    again = Outbox(path)
    assert again.receiver_secret == secret
    again.close()


def test_a_new_file_starts_at_the_current_version(tmp_path: Path) -> None:
    """A file made afresh has the current version, the outbox's mark and every table of it."""
    box = Outbox.in_dir(tmp_path)
    box.close()
    assert schema(box.path) == (CURRENT_VERSION, ALL_TABLES)
    assert mark(box.path) == OUTBOX_MARK
    assert columns(box.path, "deliveries")[-2:] == ["retried_at", "renotified_at"]


def _sqlite_file(path: Path, script: str) -> bytes:
    """An SQLite file at ``path`` made by ``script``; its bytes."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.executescript(script)
    finally:
        db.close()
    return path.read_bytes()


@pytest.mark.parametrize(
    ("script", "said"),
    [
        (
            "CREATE TABLE x (a); CREATE TABLE alerts (a);",
            "file is an SQLite database of another program's (its tables: 'alerts', 'x'), not an"
            " alert outbox",
        ),
        (
            "PRAGMA application_id=1;",
            "file is another program's SQLite database (application_id 0x1), not an alert outbox",
        ),
    ],
    ids=["another program's tables", "another program's mark"],
)
@pytest.mark.parametrize("opened", ["by a bridge", "by the CLI"])
def test_an_sqlite_file_of_another_program_s_is_refused_and_left_as_it_was(
    tmp_path: Path, script: str, said: str, opened: str
) -> None:
    """An SQLite database that is no outbox (tables that are not an outbox's, or another
    program's application_id) is refused as a bridge or `exesdb-bridge outbox` opens it, saying
    so, and left as it was: its bytes, its journal and its mode."""
    path = tmp_path / FILE_NAME
    before = _sqlite_file(path, script)
    path.chmod(0o644)
    with pytest.raises(sqlite3.DatabaseError) as refused:
        Outbox.in_dir(tmp_path).close() if opened == "by a bridge" else Outbox(path).close()
    assert str(refused.value) == said
    assert path.read_bytes() == before
    assert path.stat().st_mode & 0o777 == 0o644
    assert not Path(f"{path}-wal").exists()
    # The directory's lock is released: the file replaced by an outbox, a bridge opens it.
    path.unlink()
    Outbox.in_dir(tmp_path).close()


def _truncated_outbox(path: Path) -> bytes:
    """A real outbox holding an alert, cut off after its first two pages; its bytes."""
    box = Outbox(path, urls=[URL])
    observe(box, event("a"), T0)
    box.close()  # its log checkpointed into the file: nothing left beside it
    path.write_bytes(path.read_bytes()[:8192])
    return path.read_bytes()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda path: b"x", id="one byte"),
        pytest.param(
            lambda path: b"not an outbox, and no SQLite file at all. " * 2 + b"x" * 16,
            id="100 bytes of text",
        ),
        pytest.param(lambda path: bytes(100), id="100 zeroes"),
        pytest.param(lambda path: bytes(4096), id="a page of zeroes"),
        pytest.param(_truncated_outbox, id="a truncated outbox"),
    ],
)
@pytest.mark.parametrize("opened", ["by a bridge", "by the CLI"])
def test_a_file_that_is_no_sqlite_database_is_refused_and_left_as_it_was(
    tmp_path: Path, content: Callable[[Path], bytes], opened: str
) -> None:
    """A file that is no SQLite database, one byte (which SQLite takes for a new, empty one)
    as well as text, zeroes or an outbox cut short, is refused as a bridge or `exesdb-bridge
    outbox` opens it, never written over by a new outbox: its bytes and its mode are kept."""
    path = tmp_path / FILE_NAME
    path.write_bytes(content(path))
    path.chmod(0o644)
    before = path.read_bytes()
    with pytest.raises(sqlite3.DatabaseError) as refused:
        Outbox.in_dir(tmp_path).close() if opened == "by a bridge" else Outbox(path).close()
    assert str(refused.value) in {"file is not a database", "database disk image is malformed"}
    assert path.read_bytes() == before
    assert path.stat().st_mode & 0o777 == 0o644
    # The directory's lock is released: the file replaced by an outbox, a bridge opens it.
    path.unlink()
    Outbox.in_dir(tmp_path).close()


@pytest.mark.parametrize("short", [1, 100])
@pytest.mark.parametrize("opened", ["by a bridge", "by the CLI"])
def test_an_outbox_cut_short_of_a_whole_page_is_refused_and_left_as_it_was(
    tmp_path: Path, short: int, opened: str
) -> None:
    """An outbox a byte (or more) short of its last page, which SQLite opens and reads the
    missing bytes of as zeroes (an index broken, the alerts in it listed wrong), is refused as
    a bridge or `exesdb-bridge outbox` opens it, saying so, and left as it was."""
    path = tmp_path / FILE_NAME
    box = Outbox(path, urls=[URL])
    observe(box, event("a"), T0)
    box.close()  # its log checkpointed into the file: nothing left beside it
    whole = path.read_bytes()
    path.write_bytes(whole[:-short])
    with pytest.raises(sqlite3.DatabaseError) as refused:
        Outbox.in_dir(tmp_path).close() if opened == "by a bridge" else Outbox(path).close()
    assert str(refused.value) == (
        f"file is an SQLite database cut short ({len(whole) - short} bytes, not a whole number"
        " of its 4096-byte pages): part of the outbox is lost; restore it whole, or move it out"
        " of the way for a new one"
    )
    assert path.read_bytes() == whole[:-short]
    assert not Path(f"{path}-wal").exists()
    path.write_bytes(whole)  # restored whole, it opens with its alert
    restored = Outbox.in_dir(tmp_path)
    try:
        assert restored.alerts.get("a") is not None
    finally:
        restored.close()


def test_an_empty_file_is_made_an_outbox(tmp_path: Path) -> None:
    """A file of no bytes (made, then the bridge stopped before SQLite wrote it) is made an
    outbox, as a missing file is."""
    path = tmp_path / FILE_NAME
    path.touch()
    Outbox.in_dir(tmp_path).close()
    assert schema(path) == (CURRENT_VERSION, ALL_TABLES)
    assert mark(path) == OUTBOX_MARK


def test_an_sqlite_file_without_tables_is_made_an_outbox(tmp_path: Path) -> None:
    """An SQLite database holding no table (made empty, or by a program that did not yet add
    one) is made an outbox, as a missing file is."""
    path = tmp_path / FILE_NAME
    _sqlite_file(path, "PRAGMA user_version=0; CREATE TABLE t (a); DROP TABLE t;")
    box = Outbox(path)
    box.close()
    assert schema(path) == (CURRENT_VERSION, ALL_TABLES)
    assert mark(path) == OUTBOX_MARK


# -- an alert's detail (its page) --


def test_a_receiver_sent_an_alert_before_version_6_hears_of_its_later_changes(
    tmp_path: Path,
) -> None:
    """A version 5 file's open alert that a receiver has a delivery of counts as told to it
    once upgraded, so its resolve reaches a receiver whose filter would now leave it out."""
    path = tmp_path / "alerts.sqlite3"
    assert _earlier_file(path, 4) == 5  # 'old', a warning, in a pending delivery for URL
    box = Outbox(path, urls=[URL])
    try:
        observe(box, event("old", status="resolved"), T0)

        def critical_only(record: AlertRecord, told: bool) -> bool:
            return told or record.severity == "critical"

        assert box.queue.group(URL, T0, 0.0, one_each, critical_only) == 1
        assert (
            box.queue.depth().pending == 2
        )  # the firing waiting since version 5, then its resolve
    finally:
        box.close()


def test_a_dead_letter_superseded_before_version_10_reads_superseded_once_upgraded(
    tmp_path: Path,
) -> None:
    """A version 9 file's dead letter whose receiver took a later delivery of its alert is
    superseded once upgraded (``outbox list``, the gauge, ``retry``), one of an alert it took
    no later delivery of is not, and neither is a delivery taken before a dead letter."""
    path = tmp_path / "alerts.sqlite3"
    assert _earlier_file(path, 8) == 9  # 'old', in a pending delivery for URL
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for delivery_id, alert_id, state in [
            ("d-taken-before", "other", "delivered"),
            ("d-dead", "old", "dead"),
            ("d-dead-other", "other", "dead"),
            ("d-taken", "old", "delivered"),
        ]:
            db.execute(
                "INSERT INTO deliveries (id, url, body, alert_ids, created_at, next_attempt_at,"
                " state) VALUES (?, ?, x'7b7d', ?, 1.0, 1.0, ?)",
                (delivery_id, URL, f'["{alert_id}"]', state),
            )
    finally:
        db.close()
    box = Outbox(path, urls=[URL])
    try:
        assert box.dead_letters.superseded(["d-dead", "d-dead-other"]) == {"d-dead"}
        assert box.dead_letters.superseded_count() == 1
        left = [(u.delivery_id, u.superseded) for u in box.dead_letters.unretryable()]
        assert left == [("d-dead", True)]
    finally:
        box.close()


def test_a_next_attempt_a_version_14_file_holds_that_never_comes_is_planned_again(
    tmp_path: Path,
) -> None:
    """A version 14 file's pending deliveries whose next attempt never comes (infinite, text)
    are kept once upgraded, each planned again the largest backoff on when it is the oldest
    (not never), and the file takes no such time from then on."""
    path = tmp_path / "alerts.sqlite3"
    assert _earlier_file(path, 13) == 14  # 'old', in a pending delivery for URL
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("UPDATE deliveries SET next_attempt_at = 9e999")
        db.execute(
            "INSERT INTO deliveries (id, url, body, alert_ids, created_at, next_attempt_at,"
            " state) VALUES ('d-text', ?, x'7b7d', '[\"old\"]', 1.0, 'soon', 'pending')",
            (URL,),
        )
    finally:
        db.close()
    box = Outbox(path, urls=[URL])
    try:
        assert box.queue.next_due(URL, T0, longest=300.0) is None
        first, text = box.queue.deliveries(ids=["d-old"]) + box.queue.deliveries(ids=["d-text"])
        assert (first.id, first.next_attempt_at) == ("d-old", T0 + 300)
        assert (text.id, text.next_attempt_at) == ("d-text", math.inf)
        due = box.queue.next_due(URL, T0 + 300, longest=300.0)
        assert due is not None
        assert due.id == "d-old"
        box.queue.finish_attempt(
            due.id,
            state=DeliveryState.DELIVERED,
            next_attempt_at=T0,
            status=200,
            error=None,
            now=T0 + 300,
        )
        assert box.queue.next_due(URL, T0 + 300, longest=300.0) is None
        assert box.queue.deliveries(ids=["d-text"])[0].next_attempt_at == T0 + 600
        with pytest.raises(sqlite3.IntegrityError), box.database.transaction() as db:
            db.execute("UPDATE deliveries SET next_attempt_at = 9e999 WHERE id = 'd-text'")
    finally:
        box.close()


def test_the_outbox_and_its_state_dir_are_readable_by_the_bridges_user_only(
    tmp_path: Path,
) -> None:
    """The state dir is made 0700 and the outbox file (alert bodies, the receiver keys' secret)
    and its WAL and shared-memory files 0600, under the usual umask of 022."""
    umask = os.umask(0o022)
    try:
        box = Outbox.in_dir(tmp_path / "state", urls=[URL])
    finally:
        os.umask(umask)
    try:
        assert observe(box, event(), T0) is not None
        made = sorted((tmp_path / "state").iterdir())
        assert {path.name for path in made} >= {"alerts.sqlite3", "alerts.sqlite3-wal"}
        assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
        for path in made:
            assert path.stat().st_mode & 0o777 == 0o600, path.name
    finally:
        box.close()


def test_an_outbox_file_an_earlier_version_left_readable_is_made_private(tmp_path: Path) -> None:
    """A 0644 outbox file (and WAL file) from before is set to 0600 when it is opened."""
    box = Outbox.in_dir(tmp_path, urls=[URL])
    observe(box, event(), T0)
    box.close()
    for name in ("alerts.sqlite3", "alerts.sqlite3-wal"):
        if (tmp_path / name).exists():
            (tmp_path / name).chmod(0o644)
    box = Outbox.in_dir(tmp_path, urls=[URL])
    try:
        assert (tmp_path / "alerts.sqlite3").stat().st_mode & 0o777 == 0o600
    finally:
        box.close()
