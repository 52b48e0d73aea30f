"""Files read while the bridge runs, opened only when regular: a FIFO or a device is refused.

The web config file and its certificates are looked at on requests and handshakes, a receiver's
``secret_file`` or ``url_file`` at each delivery, all on the event loop: opening a FIFO there
waits for a writer (the whole bridge stopped, its probes unanswered, SIGTERM too, until one
came) and reading a device such as ``/dev/zero`` never ends. Such a file is refused at once,
``OSError`` (EINVAL) saying what it is, as a missing or unreadable file is refused; a folder or a
symlink to a regular file (a Kubernetes secret volume's) is opened as ``open`` opens it. A file
read once at start (the receivers file) may be a FIFO, a shell's ``<(…)``, but no device: read
whole, ``/dev/zero`` took 6 GB in 5 s.

Each such file is also read no further than the most it may hold (``read_bounded``): a file
over it (a log, an image or a bundle copied over it by mistake) is refused, ``OSError`` (EFBIG)
saying its limit, as an unreadable file is, after ``limit + 1`` bytes at most. The limits are
here, in one place: ``MAX_FILE_BYTES`` for a configuration file (the receivers file, the web
config) and a certificate, key or CA file; ``MAX_SECRET_BYTES`` for a secret, password, token or
URL given in a file. Read whole on the event loop, 500 MB copied over the Redis bus's CA file
held requests up to 0.9 s at each look, every 1.7 s (bounded: 8 ms at most).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO, Final

__all__ = ["MAX_FILE_BYTES", "MAX_SECRET_BYTES", "open_regular", "read_bounded", "refuse_irregular"]

# The most a configuration file or a certificate, key or CA file may hold: ten thousand web
# config users fit (730 KiB), a system's CA bundle holds some 200 KiB.
MAX_FILE_BYTES: Final = 1024 * 1024
# The most a secret, password, token or URL given in a file may hold: a long JWT is a few KiB.
MAX_SECRET_BYTES: Final = 64 * 1024

# What a path that is no regular file is, as said in a refusal.
_KINDS: Final = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _irregular(mode: int) -> str | None:
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return None


def _is_fifo(path: str | os.PathLike[str]) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def _refusal(kind: str) -> OSError:
    return OSError(errno.EINVAL, f"{kind}, not a regular file")


def refuse_irregular(path: str | os.PathLike[str], *, limit: int | None = None) -> None:
    """Raise ``OSError`` (EINVAL) when ``path`` is a FIFO, a device or a socket, before a reader
    that opens it itself (OpenSSL) would wait on it; with ``limit``, EFBIG (as ``read_bounded``
    says it) for a file of more than ``limit`` bytes, which that reader would read whole;
    nothing when it is missing or anything else (that reader says why it cannot read it, as
    before)."""
    try:
        found = os.stat(path)
    except OSError:
        return
    if (kind := _irregular(found.st_mode)) is not None:
        raise _refusal(kind)
    if limit is not None and stat.S_ISREG(found.st_mode) and found.st_size > limit:
        raise _too_large(limit)


def _too_large(limit: int) -> OSError:
    return OSError(
        errno.EFBIG,
        f"larger than {limit // 1024} KiB, the most this file may hold: is it the right file?",
    )


def open_regular(path: str | os.PathLike[str], *, pipes: bool = False) -> BinaryIO:
    """``path`` opened for reading, in binary; ``OSError`` as ``open`` raises it, or EINVAL for a
    FIFO, a device or a socket (never opened: a device's open may act; a FIFO put in its place
    since is opened without waiting, and refused). ``pipes``: a FIFO is opened too, waiting for
    its writer, for a file read once at start, which a shell's ``<(…)`` gives as one."""
    if pipes and _is_fifo(path):
        return open(path, "rb")
    refuse_irregular(path)
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if (kind := _irregular(os.fstat(descriptor).st_mode)) is not None:
            raise _refusal(kind)
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_bounded(path: str | os.PathLike[str], limit: int, *, pipes: bool = False) -> bytes:
    """The content of ``path``, opened as ``open_regular`` opens it; ``OSError`` as it raises
    it, or EFBIG when the file holds more than ``limit`` bytes (read no further than one byte
    over), saying so."""
    with open_regular(path, pipes=pipes) as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise _too_large(limit)
    return data
