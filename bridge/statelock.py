"""The lock that gives one bridge process at a time a part of ``EXESDB_STATE_DIR``."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path

__all__ = ["hold"]


def hold(path: Path, held: str) -> int:
    """Lock ``path`` (made 0600 when missing) for this process, its process id and host name
    written in it; its descriptor, whose close releases the lock.

    OSError(``held``) when another process holds it, naming that process when it wrote itself
    there (``held (the process holding it: pid 4242)``; ``pid 1 on host 3f2a…``, another
    container's, sharing the volume), so that a bridge left running in another shell can be
    found and stopped. When the file system cannot lock (ENOLCK: an NFS mount without a lock
    daemon), the system's OSError naming ``path``: no one should be sent looking for another
    bridge that is not there.
    """
    lock = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:  # EWOULDBLOCK: held
        holder = _holder(lock)
        os.close(lock)
        raise OSError(
            held if holder is None else f"{held} (the process holding it: {holder})"
        ) from exc
    except OSError as exc:
        os.close(lock)
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    # Only a word for whoever is refused: a file system refusing the write takes nothing away.
    with contextlib.suppress(OSError):
        os.ftruncate(lock, 0)
        os.pwrite(lock, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    return lock


def _holder(lock: int) -> str | None:
    """The process the holder of ``lock`` wrote there, ``pid N`` (``pid N on host H`` for another
    host's); None when none was written (an earlier version's lock) or, on this host, that
    process no longer runs."""
    try:
        pid, _, host = os.pread(lock, 300, 0).decode("ascii").strip().partition(" ")
    except (OSError, UnicodeDecodeError):
        return None
    if not (pid.isascii() and pid.isdigit()):
        return None
    if host and host != socket.gethostname():
        return f"pid {pid} on host {host}"  # another container's, or another machine's
    try:
        os.kill(int(pid), 0)  # no signal sent: only whether it runs
    except PermissionError:
        pass  # it runs, as another user
    except OSError:
        return None
    return f"pid {pid}"
