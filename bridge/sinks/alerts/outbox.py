"""The durable outbox: one SQLite file holding the alert states and each receiver's deliveries.

A delivery is committed here (WAL journal, on btrfs the rollback journal: ``tables``;
``synchronous=FULL``: fsync'd on commit) before its first attempt, so a crash or SIGKILL loses
nothing: a new process on the same directory resumes.
``Outbox`` opens the file and hands out its parts, which share one connection (``database``):

- ``alerts`` (``alert_store.AlertStore``): each alert's state and history, changed by plans;
- ``queue`` (``queue.DeliveryQueue``): each receiver's grouping window, deliveries and attempts;
- ``dead_letters`` (``dead_letters.DeadLetters``): what no configured receiver would send, and
  ``exesdb-bridge outbox retry``;
- ``retention`` (``retention.Retention``): what the file forgets, and when.

The tables and their upgrades from earlier versions are in ``tables``; how a row reads as a
record, in ``rows``.
"""

from __future__ import annotations

import errno
import os
import shlex
import sqlite3
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from bridge.displaced import first_displaced, identity
from bridge.sinks.alerts.alert_store import AlertStore
from bridge.sinks.alerts.database import Database
from bridge.sinks.alerts.dead_letters import DeadLetters
from bridge.sinks.alerts.queue import DeliveryQueue
from bridge.sinks.alerts.retention import Retention
from bridge.sinks.alerts.tables import CutShort, refuse_unfit, this_sqlite_problem
from bridge.statelock import hold

if TYPE_CHECKING:
    from bridge.state_dir import DeniedPath

__all__ = [
    "FILE_NAME",
    "LOCK_NAME",
    "NotAFile",
    "Outbox",
    "denied_outbox",
    "outbox_problems",
    "refuse_unusable",
    "unopenable_hint",
    "unopenable_problem",
]

FILE_NAME: Final = "alerts.sqlite3"
LOCK_NAME: Final = "alerts.lock"  # held (flock) by the bridge that has the outbox open

# What a path that is there but no file is, as a refusal says it.
_KINDS: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotAFile(OSError):
    """The outbox file's path holds something else than a file (``filename``: that path); its
    message says what, without an errno."""

    def __str__(self) -> str:
        return str(self.strerror)


def refuse_unusable(path: Path) -> None:
    """Refuse the outbox file ``path``, before SQLite opens it, when it is there but cannot be
    the outbox: NotAFile for a directory, a FIFO, a device or a socket (SQLite would say only
    "unable to open database file" or "disk I/O error"), PermissionError for a file this user
    may not read and write (SQLite would open it read-only without a word)."""
    if not path.exists():  # PermissionError for a folder on the way this user may not search
        return
    mode = path.stat().st_mode
    for test, kind in _KINDS:
        if test(mode):
            raise NotAFile(errno.EINVAL, f"it is {kind}, not a file", str(path))
    if not os.access(path, os.R_OK | os.W_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))


class Outbox:
    """The outbox file open, and its parts; see the module docstring. ``urls`` are the keys of
    the receivers every notified alert is queued for (``DeliveryQueue.queue_for``)."""

    def __init__(
        self, path: Path | str, *, urls: Sequence[str] = (), lock: int | None = None
    ) -> None:
        self.path = Path(path)
        # in_dir's lock on the state directory, released by close(), and the lock file's
        # identity, which its descriptor keeps: read once, not at each ``displaced``.
        self._lock = lock
        self._locked = None if lock is None else identity(os.fstat(lock))
        self.database = database = Database(self.path)
        # The file the path named as it was opened (SQLite keeps its descriptor to itself):
        # held open, its inode number stays its own, so the path naming another is another.
        # An in-memory database (tests) has none.
        memory = str(path) == ":memory:"
        self._opened = None if memory else identity(os.stat(self.path))
        # The key of the receiver keys' digests: made once with the file, never shown.
        secret = database.meta("receiver_secret")
        if not isinstance(secret, bytes):
            database.close()  # the lock is its opener's to release
            raise sqlite3.DatabaseError(f"{self.path}: the outbox file lost its receiver_secret")
        self.receiver_secret = secret
        self.queue = DeliveryQueue(database, urls=urls)
        # A batch's changes committed to a file gone are not reported stored (AlertStore).
        self.alerts = AlertStore(database, self.queue, displaced=self.displaced)
        self.dead_letters = DeadLetters(database, self.queue)
        self.retention = Retention(database)

    @classmethod
    def in_dir(cls, state_dir: Path | str, *, urls: Sequence[str] = ()) -> Outbox:
        """Open (creating as needed) the outbox of ``EXESDB_STATE_DIR`` for a bridge, locked
        to it until ``close()``; OSError when the directory or the file cannot be written (a
        read-only volume, another user's) or another bridge process has it open."""
        directory = Path(state_dir)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # SQLite opens a file it cannot write read-only, without a word, and fails at the
        # first write, after start-up: a write is tried here instead, for the system's reason.
        try:
            with tempfile.TemporaryFile(dir=directory):
                pass
        except PermissionError as exc:  # named as the folder, not as the file tried in it
            raise PermissionError(exc.errno, exc.strerror, str(directory)) from None
        path = directory / FILE_NAME
        refuse_unusable(path)
        # Two bridges on one outbox would each send its deliveries and keep alert states of
        # their own: the second is refused. `exesdb-bridge outbox` opens the file unlocked.
        lock = hold(
            directory / LOCK_NAME,
            "another bridge process has it open: a bridge runs on this folder already; stop it, "
            "or give this one an EXESDB_STATE_DIR of its own",
        )
        try:
            return cls(path, urls=urls, lock=lock)
        except BaseException:
            os.close(lock)
            raise

    def displaced(self) -> str | None:
        """Why the outbox file, or the directory's lock held since ``in_dir``, is no longer the
        file at its path (deleted, or replaced: the folder removed, a volume mounted over it);
        None while both are. Written on, the open file would be lost at the next start, and a
        new lock file would let a second bridge in. Two stats: microseconds."""
        held = [] if self._opened is None else [(self.path, self._opened)]
        if self._locked is not None:
            held.append((self.path.parent / LOCK_NAME, self._locked))
        return first_displaced(held, "the alert outbox's")

    def close(self) -> None:
        """Close the file and release the directory's lock; idempotent."""
        self.database.close()
        if self._lock is not None:
            os.close(self._lock)  # and with it the flock
            self._lock = self._locked = None


# The files the outbox's opening reads and writes in EXESDB_STATE_DIR, in the order it opens them:
# the lock, the outbox file, then SQLite's own beside it (a killed bridge leaves its -wal, -shm).
_OPENED: Final = (
    LOCK_NAME,
    FILE_NAME,
    f"{FILE_NAME}-wal",
    f"{FILE_NAME}-shm",
    f"{FILE_NAME}-journal",
)
# Of those, the ones SQLite opens read-only when it may not write them, and the opening then
# makes its user's mode (0600, tables.py): refused only when unreadable, when that user's.
_MENDED: Final = (f"{FILE_NAME}-wal", f"{FILE_NAME}-shm")


def unopenable_hint(state_dir: Path | str, exc: BaseException) -> str | None:
    """What to do when ``Outbox.in_dir(state_dir)`` raised ``exc`` (the system's words say only
    what failed); None when its message says it already (another bridge holds the directory).
    SQLite's "unable to open database file" names no file: the one this user may not read and
    write is looked for (``denied_outbox``) and named."""
    directory = Path(state_dir)
    if isinstance(exc, NotAFile):
        return (
            "move it out of the way (the bridge keeps its outbox in that file), or give a"
            " directory of the bridge's own"
        )
    if isinstance(exc, PermissionError) and exc.filename in {
        str(directory / name) for name in _OPENED
    }:
        return _denied_file_hint(Path(exc.filename), named=False)
    if isinstance(exc, sqlite3.OperationalError) and (
        (denied := denied_outbox(str(directory))) is not None
        and Path(denied.path).parent == directory
    ):
        return _denied_file_hint(Path(denied.path), named=True)
    if isinstance(exc, FileExistsError) and not directory.is_dir():  # mkdir on what is there
        what = "a file" if directory.is_file() else "something else"
        return f"it is {what}, not a directory: give a directory (it is made when missing)"
    if isinstance(exc, NotADirectoryError):
        return "a part of the path is a file, not a directory: give a path of directories"
    if isinstance(exc, PermissionError):
        return (
            f"the bridge's user (uid {os.geteuid()}) may not write there: give a directory it "
            "may write, or make this one writable by it (chown, chmod u+w)"
        )
    if isinstance(exc, OSError) and exc.errno == errno.EROFS:
        return "it is on a read-only file system: give a directory on a writable one (a volume)"
    if (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) or (
        isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc)
    ):
        return (
            "the file system holding it is full: free some space there, or give a directory on"
            " another"
        )
    if isinstance(exc, FileNotFoundError):  # mkdir where no directory can be (/proc, a gone mount)
        return (
            "it cannot be created there: give a directory the bridge may write"
            " (in a container, a volume)"
        )
    return None


def denied_outbox(state_dir: str) -> DeniedPath | None:
    """Where ``Outbox.in_dir(state_dir)`` would be refused as this process's user: a folder it
    would make, search or write in, or one of the files it opens there (``denied_state_dir``)."""
    from bridge.state_dir import denied_state_dir

    return denied_state_dir(state_dir, files=_OPENED, mended=_MENDED)


def _denied_file_hint(file: Path, *, named: bool) -> str:
    """What to do about ``file``, in the state directory, that the bridge's user may not read
    and write (``named``: by its path, which the system's words left out): its owner is told to
    give itself the rights (chmod), another user's file to be made its (chown)."""
    uid, it = os.geteuid(), (repr(str(file)) if named else "it")
    try:
        owner: int | None = file.stat().st_uid
    except OSError:  # gone since, or a folder on the way it may not search
        owner = None
    if owner == uid:
        return (
            f"the bridge's user (uid {uid}) owns {it} but may not read and write it:"
            f" chmod u+rw {shlex.quote(str(file))}"
        )
    whose = "" if owner is None else f", uid {owner}'s"
    return (
        f"the bridge's user (uid {uid}) may not read and write {it}{whose}: make it that"
        f" user's (chown {uid} {shlex.quote(str(file))}), or run the bridge as its owner"
    )


def _no_outbox_hint(exc: BaseException) -> str | None:
    """What to do, at a bridge's start, about an outbox file that is no outbox (``exc``: not
    SQLite's, another program's), whose words name no remedy; None for any other fault. An
    outbox cut short (CutShort) says its own, and OperationalError is the disk's. The client
    commands say their own: there a wrong EXESDB_STATE_DIR comes first."""
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.OperationalError | CutShort
    ):
        return (
            f"move {FILE_NAME} out of the way (the bridge then makes a new outbox there), or"
            " give a directory of the bridge's own"
        )
    return None


def unopenable_problem(doing: str, state_dir: str, exc: BaseException) -> str:
    """The problem a bridge's start stops on when the outbox could not be opened or written
    (``doing``), raising ``exc``: ``EXESDB_STATE_DIR``, the outbox file when the fault is in it
    rather than in the directory, the system's words and, when one is known, what to do; this
    Python's SQLite, when unfit (``NotSupportedError``), without the variable: it is not at
    fault."""
    if isinstance(exc, sqlite3.NotSupportedError):  # this Python's SQLite (tables.sqlite_problem)
        return f"cannot {doing} the alert outbox: {exc}"  # no fault of EXESDB_STATE_DIR's
    hint = unopenable_hint(state_dir, exc) or _no_outbox_hint(exc)
    where = f"in {state_dir!r}"
    if isinstance(exc, NotAFile):
        where = repr(exc.filename)
    return f"EXESDB_STATE_DIR: cannot {doing} the alert outbox {where}: {exc}" + (
        f"; {hint}" if hint else ""
    )


def outbox_problems(state_dir: str | None) -> list[str]:
    """The problems a bridge's start would stop on at the outbox, in its words
    (``unopenable_problem``), found without making or changing anything (``check-config``):
    this Python's SQLite, too old or without JSON functions (``tables.sqlite_problem``), and at
    the outbox file in ``state_dir`` (None: no directory to look in), something there that is
    no file, no outbox, or an outbox cut short. Nothing is found there when the bridge would
    open it, when there is none yet (the bridge makes it), and when only this user's
    permissions refuse it: they depend on who runs check-config, which warns of them
    (``denied_outbox``) without refusing, as it may run as another user than the bridge's."""
    problems = []
    if (unfit := this_sqlite_problem()) is not None:
        unopenable = sqlite3.NotSupportedError(unfit)
        problems.append(unopenable_problem("open", state_dir or "", unopenable))
    if state_dir is None:
        return problems
    path = Path(state_dir) / FILE_NAME
    try:
        refuse_unusable(path)
        if path.exists():
            refuse_unfit(path)
    except PermissionError:
        pass  # this user's permissions, perhaps not the bridge's: warned of, not refused
    except (OSError, sqlite3.Error) as exc:
        problems.append(unopenable_problem("open", state_dir, exc))
    return problems
