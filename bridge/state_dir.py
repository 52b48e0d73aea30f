"""Whether ``EXESDB_STATE_DIR`` is a directory the bridge could keep its state in, judged unchanged.

``run`` and ``check-config`` refuse alike what ``unusable_state_dir`` finds, whoever runs them;
``check-config`` also asks ``denied_state_dir`` what the outbox's opening would be refused as the
user it runs as (``run`` tries it itself), and warns of it: that user may not be the bridge's.
Neither makes nor changes anything.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["DeniedPath", "denied_state_dir", "unusable_state_dir"]

# The kernel's file systems, whose folders hold no files a program makes: a folder there cannot
# be made (/proc: "No such file or directory", /sys: "Operation not permitted"), or is a cgroup
# that refuses the outbox's file.
_FILELESS: Final = frozenset(
    {
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "efivarfs",
        "fusectl",
        "mqueue",
        "nsfs",
        "proc",
        "pstore",
        "securityfs",
        "selinuxfs",
        "sysfs",
        "tracefs",
    }
)
_MOUNTS: Final = Path("/proc/self/mountinfo")
# The bridge's rights are its effective user's, as the kernel judges its writes.
_EFFECTIVE: Final = os.access in os.supports_effective_ids


@dataclass(frozen=True, slots=True)
class DeniedPath:
    """A path the outbox's opening would be refused at as this process's user: a folder it would
    make, search or write in, or a file there it would read and write; ``reason`` in the system's
    words (``Permission denied``)."""

    path: str
    reason: str


def unusable_state_dir(state_dir: str) -> str | None:
    """Why the bridge could keep no state in ``state_dir`` (made when missing, with its
    parents): it, or the nearest part of it that exists, is not a directory, is on a read-only
    file system or on one of the kernel's holding no files (/proc, /sys); None when it could.
    Said before the outbox tries it, whose error gives the system's words (``File exists``)
    rather than what is wrong, or a path the system cannot use at all (a name too long).
    Permissions are the user's: ``denied_state_dir``."""
    path = Path(state_dir)
    try:
        there = _nearest_existing(path)
    except PermissionError:  # a folder on the way this user may not search: denied_state_dir's
        return None
    except OSError as exc:  # a name longer than the file system takes
        return (
            f"{state_dir!r} cannot be used: {exc.strerror}; allowed: a directory (made when"
            " missing)"
        )
    what = "a file, not a directory" if there.is_file() else "not a directory"
    if there == path and not there.is_dir():
        return f"{state_dir!r} is {what}; allowed: a directory (made when missing)"
    if not there.is_dir():
        return (
            f"{str(there)!r} in {state_dir!r} is {what}; allowed: a path of directories (those"
            " missing are made)"
        )
    where = repr(state_dir) if there == path else f"{str(there)!r}, where {state_dir!r} is made,"
    # Looked for first: a container mounts /sys read-only, where "read-only" would be no remedy.
    if (kind := _fileless_file_system(there)) is not None:
        return (
            f"{where} is on the kernel's {kind} file system, which holds no files; allowed: a"
            " directory on a disk (in a container, a volume)"
        )
    try:
        read_only = bool(os.statvfs(there).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        return f"{where} is on a read-only file system; allowed: a directory on a writable one"
    return None


def denied_state_dir(
    state_dir: str, *, files: Sequence[str] = (), mended: Sequence[str] = ()
) -> DeniedPath | None:
    """Where the outbox's opening (``Outbox.in_dir``) would be refused at ``state_dir`` run as
    this process's user, who may not make the folder there, search a folder on the way, write in
    the folder, or read and write one of ``files`` there (in the order it opens them; of those,
    the ``mended`` ones it only needs to read when it owns them: the opening makes them
    writable); None when it may, or when ``unusable_state_dir`` has the fault. Named as that
    opening names it: the first folder it would make, else ``state_dir``, or the file."""
    path = Path(state_dir)
    try:
        there = _nearest_existing(path)
    except PermissionError:  # the system refuses making the path itself, searching on the way
        return _denied(path)
    except OSError:
        return None
    if not there.is_dir():
        return None
    if not _may(there, os.W_OK | os.X_OK):
        parts = (path, *path.parents)
        return _denied(next((part for part in parts if there in (part, part.parent)), path))
    if there != path:
        return None  # made by the bridge: nothing in it yet
    for name in files:
        file = path / name
        if file.is_file() and not _may(file, os.R_OK | os.W_OK):
            if name in mended and file.stat().st_uid == os.geteuid() and _may(file, os.R_OK):
                continue
            return _denied(file)
    return None


def _denied(path: Path) -> DeniedPath:
    return DeniedPath(str(path), os.strerror(errno.EACCES))


def _may(path: Path, mode: int) -> bool:
    """Whether this process's effective user may use ``path`` as ``mode`` asks. Its real ids
    are asked when they are the effective ones: asking for the effective ones makes glibc call
    faccessat2, which older container seccomp profiles refuse (EPERM), for a false "denied"."""
    same = os.getuid() == os.geteuid() and os.getgid() == os.getegid()
    return os.access(path, mode, effective_ids=_EFFECTIVE and not same)


def _nearest_existing(path: Path) -> Path:
    """``path``, or the nearest of its parents that exists (``.`` for a relative path none of
    whose parts do); PermissionError for a folder on the way this user may not search."""
    return next((part for part in (path, *path.parents) if part.exists()), Path("."))


def _fileless_file_system(path: Path) -> str | None:
    """The type of the kernel's file system holding ``path`` when it is one holding no files
    (``_FILELESS``), as this process's mount table says; None for any other, or when unknown
    (no Linux mount table, a device no mount names: a btrfs subvolume's)."""
    try:
        device = os.stat(path).st_dev
        mounts = _MOUNTS.read_text()
    except OSError:
        return None
    wanted = f"{os.major(device)}:{os.minor(device)}"
    for line in mounts.splitlines():
        # ID PARENT MAJOR:MINOR ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - TYPE SOURCE OPTIONS
        fields, _, after = line.partition(" - ")
        if fields.split()[2:3] == [wanted] and after:
            kind = after.split()[0]
            return kind if kind in _FILELESS else None
    return None
