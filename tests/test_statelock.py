"""The state directory's lock: one process at a time; a file system without locks says so."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
from pathlib import Path

import pytest

from bridge.statelock import hold


def open_descriptors() -> int:
    """How many descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


def test_a_held_lock_is_refused_with_the_reason_given_until_released(tmp_path: Path) -> None:
    """A second hold of the same file (another open file, as another process has) fails with
    the caller's reason and the holder's process id, so that a bridge left running in another
    shell can be found; once the first descriptor closes, it is taken; the file is 0600."""
    path = tmp_path / "x.lock"
    first = hold(path, "held elsewhere")
    try:
        said = f"held elsewhere (the process holding it: pid {os.getpid()})"
        with pytest.raises(OSError, match=f"^{re.escape(said)}$"):
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


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("", "held elsewhere"),  # an earlier version's lock: nothing written
        ("4194305 HOST\n", "held elsewhere"),  # past any pid the kernel gives: not running
        (
            "1 some-other-host\n",
            "held elsewhere (the process holding it: pid 1 on host some-other-host)",
        ),
        ("not a pid\n", "held elsewhere"),
    ],
)
def test_the_refusal_names_the_holder_only_as_it_wrote_itself_there(
    tmp_path: Path, written: str, said: str
) -> None:
    """The holder is named by what it wrote in the file: nothing (an earlier version's lock) or
    the id of a process no longer running names none; another host's (a container sharing the
    volume) is named with that host, its process not looked for here."""
    path = tmp_path / "x.lock"
    first = hold(path, "held elsewhere")
    try:
        os.ftruncate(first, 0)
        os.pwrite(first, written.replace("HOST", socket.gethostname()).encode(), 0)
        with pytest.raises(OSError, match=f"^{re.escape(said)}$"):
            hold(path, "held elsewhere")
    finally:
        os.close(first)
