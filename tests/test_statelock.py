"""The state directory's lock: one process at a time; a file system without locks says so."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

import pytest

from bridge.statelock import hold


def open_descriptors() -> int:
    """How many descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


def test_a_held_lock_is_refused_with_the_reason_given_until_released(tmp_path: Path) -> None:
    """A second hold of the same file (another open file, as another process has) fails with
    the caller's reason; once the first descriptor closes, it is taken; the file is 0600."""
    path = tmp_path / "x.lock"
    first = hold(path, "held elsewhere")
    try:
        with pytest.raises(OSError, match=r"^held elsewhere$"):
            hold(path, "held elsewhere")
    finally:
        os.close(first)
    os.close(hold(path, "held elsewhere"))
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_file_system_without_locks_gives_the_systems_reason_and_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """flock failing with ENOLCK (an NFS mount without a lock daemon) raises that error naming
    the lock file, not the caller's 'held' reason, and leaves no descriptor open."""

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    before = open_descriptors()
    with pytest.raises(OSError, match=os.strerror(errno.ENOLCK)) as refused:
        hold(tmp_path / "x.lock", "held elsewhere")
    assert refused.value.errno == errno.ENOLCK
    assert refused.value.filename == str(tmp_path / "x.lock")
    assert "held elsewhere" not in str(refused.value)
    assert open_descriptors() == before
