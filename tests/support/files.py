"""Files as a test watches them: their opens counted, a FIFO whose waiting reader is let go, a
file withheld from the commands a test runs.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import struct
import threading
from pathlib import Path
from typing import Final

from tests.support.binaries import unavailable


def withhold(path: Path) -> list[str]:
    """Make ``path`` a file the commands a test runs with the prefix returned may not read, as
    a key of the bridge's user's alone (mode 0600) is to an operator: as root, ``path`` becomes
    nobody's and the commands run without the capabilities that let root read any file
    (setpriv); as another user, ``path`` loses its read permission."""
    if os.geteuid() != 0:
        path.chmod(0)
        return []
    if shutil.which("setpriv") is None:
        unavailable("setpriv (util-linux) is needed to run a command as root without its overrides")
    os.chown(path, 65534, 65534)  # nobody's: the bridge's user, say
    path.chmod(0o600)
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


# inotify(7) events: a file opened, and closed after reading only.
_IN_OPEN: Final = 0x20
_IN_CLOSE_NOWRITE: Final = 0x10


class FileOpens:
    """Counts the opens of one file by any process from now on, as the kernel reports them
    (inotify): a test that a file is read once observes the reads themselves, patching nothing.
    A context manager; ``count()`` is the opens so far."""

    def __init__(self, path: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            unavailable(f"inotify cannot be used here: {os.strerror(ctypes.get_errno())}")
        # Closes too: two opens in a row, not read yet, would be merged into one event.
        watch = libc.inotify_add_watch(self._fd, os.fsencode(path), _IN_OPEN | _IN_CLOSE_NOWRITE)
        if watch < 0:
            os.close(self._fd)
            unavailable(f"inotify cannot watch {path}: {os.strerror(ctypes.get_errno())}")
        self._opens = 0

    def count(self) -> int:
        """How often the file was opened since the watch began."""
        while True:
            try:
                events = os.read(self._fd, 65536)
            except BlockingIOError:  # none queued: every open so far is counted
                return self._opens
            offset = 0
            while offset < len(events):
                _watch, mask, _cookie, length = struct.unpack_from("iIII", events, offset)
                offset += struct.calcsize("iIII") + length
                self._opens += bool(mask & _IN_OPEN)

    def __enter__(self) -> FileOpens:
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.close(self._fd)


class FifoReleaser:
    """A FIFO at ``path``, made in place of the file there; a reader still waiting for a writer
    after ``after`` seconds is let go (a writer opens it and closes at once: the reader sees
    its end), so a test of a reader that must not wait fails rather than hanging. A context
    manager; ``released`` counts the readers that had waited."""

    def __init__(self, path: Path, after: float = 3.0) -> None:
        path.unlink(missing_ok=True)
        os.mkfifo(path)
        self.path = path
        self.released = 0
        self._after = after
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._release, daemon=True)

    def _release(self) -> None:
        if self._done.wait(self._after):
            return
        while not self._done.wait(0.05):  # a waiting reader is let go within 50 ms
            try:
                # Succeeds only with a reader waiting (ENXIO otherwise): it sees the end.
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                continue
            self.released += 1

    def __enter__(self) -> FifoReleaser:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()
