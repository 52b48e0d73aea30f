"""The lock that gives one bridge process at a time a part of ``EXESDB_STATE_DIR``."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["hold"]


def hold(path: Path, held: str) -> int:
    """Lock ``path`` (made 0600 when missing) for this process; its descriptor, whose close
    releases the lock.

    OSError(``held``) when another process holds it. When the file system cannot lock (ENOLCK:
    an NFS mount without a lock daemon), the system's OSError naming ``path``: no one should be
    sent looking for another bridge that is not there.
    """
    lock = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:  # EWOULDBLOCK: held
        os.close(lock)
        raise OSError(held) from exc
    except OSError as exc:
        os.close(lock)
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    return lock
