"""A real full disk for tests: a 3 MB tmpfs of a test's own, filled up and freed again.

Tests use the ``small_disk`` fixture as ``EXESDB_STATE_DIR``; mounting needs root, so elsewhere
the test cannot run (``unavailable``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import unavailable

__all__ = ["SmallDisk", "mounted", "small_disk"]


class SmallDisk:
    """A 3 MB tmpfs mounted for one test: ``fill()`` writes a file until the kernel answers
    ENOSPC, ``free()`` deletes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._filler = path / "filler"

    def fill(self) -> None:
        """Take every free block (the outbox's next write that needs one fails)."""
        chunk = b"\0" * 4096
        with open(self._filler, "ab", buffering=0) as filler:
            with contextlib.suppress(OSError):
                while True:
                    filler.write(chunk)
            with contextlib.suppress(OSError):
                while True:  # the last partial block too
                    filler.write(b"\0")
        with pytest.raises(OSError, match="No space left") as full:
            (self.path / "probe").write_bytes(b"x" * 4096)
        assert full.value.errno == errno.ENOSPC

    def free(self) -> None:
        """Give the space back."""
        self._filler.unlink()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A 3 MB tmpfs of the test's own (mounting needs root: elsewhere the test cannot run)."""
    if os.geteuid() != 0:
        unavailable("mounting a small tmpfs needs root")
    with mounted(tmp_path / "state", ["-t", "tmpfs", "-o", "size=3m", "tmpfs"], "a tmpfs") as disk:
        yield disk


@contextlib.contextmanager
def mounted(mount: Path, how: list[str], what: str) -> Iterator[SmallDisk]:
    """``what`` mounted at ``mount`` (made here) by ``mount`` with ``how``, unmounted on leaving;
    one that cannot be mounted makes the test unavailable, saying why."""
    mount.mkdir()
    done = subprocess.run(["mount", *how, str(mount)], capture_output=True, text=True, check=False)
    if done.returncode:
        unavailable(f"cannot mount {what}: {done.stderr.strip()}")
    try:
        yield SmallDisk(mount)
    finally:
        # Lazily: a file the test left open does not hold the mount (a loop device mount -o
        # loop set up is detached with the file system: autoclear).
        subprocess.run(["umount", "-l", str(mount)], check=True)
