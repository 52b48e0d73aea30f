"""Syncing a directory, so that a name made or replaced in it survives a power loss."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Final

__all__ = ["sync_directory"]

# What a filesystem answers when it does not sync directories at all (some network and FUSE
# filesystems): nothing more can be done there, as PostgreSQL and SQLite also conclude.
_NOT_SUPPORTED: Final = frozenset({errno.EINVAL, errno.EBADF, errno.EISDIR, errno.EOPNOTSUPP})


def sync_directory(directory: Path) -> None:
    """fsync ``directory``; a filesystem that cannot sync one is passed over, other failures
    (``EIO``) raise ``OSError``."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError as exc:
        if exc.errno not in _NOT_SUPPORTED:
            raise
    finally:
        os.close(descriptor)
