"""A secret or certificate file read again only when it changed, so it can rotate under load.

Each use asks ``os.stat`` (microseconds) and reads the file only when its inode, size, change or
modification time moved since the last read, so a rotated token, password or certificate is
taken at the next request without a restart and without reading the file at every request. A
Kubernetes secret volume swaps a symlink, which changes the inode seen through it. Read on
the event loop at each attempt after a change, a file is read no further than the most it may
hold (``bridge.regular_files.MAX_SECRET_BYTES``: 64 KiB), and one over it refused as an
unreadable one is, its delivery failed and retried.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

from bridge.errors import BridgeError
from bridge.regular_files import MAX_SECRET_BYTES, read_bounded

__all__ = ["ClientSetupError", "FileSetting", "WatchedFile", "read_problem", "stamp"]

Stamp = tuple[int, int, int, int]


class ClientSetupError(BridgeError):
    """A file an ``http_config`` or a receiver names cannot be used for this request (the message
    says which key and why, never what the file holds)."""


def stamp(path: str | Path) -> Stamp:
    """What changes when the file is replaced or rewritten; OSError when it cannot be seen."""
    info = os.stat(path)
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class WatchedFile:
    """The text of one file, trimmed as prometheus/common trims secret files."""

    __slots__ = ("_limit", "_lock", "_stamp", "_text", "path")

    def __init__(self, path: str | Path, *, limit: int = MAX_SECRET_BYTES) -> None:
        """``limit``: the most the file may hold (a secret's, by default; a certificate's
        ``MAX_FILE_BYTES``): a file over it is refused, read no further."""
        self.path = Path(path)
        self._limit = limit
        self._stamp: Stamp | None = None
        self._text = ""
        self._lock = threading.Lock()

    def read(self) -> str:
        """The current content; OSError (or UnicodeDecodeError) when it cannot be read, EFBIG
        when it holds more than its limit."""
        now = stamp(self.path)
        with self._lock:
            if now != self._stamp:
                data = read_bounded(self.path, self._limit)
                # Decoded as Path.read_text decodes, newlines included.
                self._text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8").read().strip()
                self._stamp = now
            return self._text


class FileSetting:
    """A setting given inline or as ``<key>`` naming a file, read again when it changed."""

    __slots__ = ("_file", "_key", "_value")

    def __init__(self, key: str, value: str | None, path: str | None) -> None:
        self._key = key
        self._value = value or ""
        self._file = WatchedFile(path) if path else None

    def get(self) -> str:
        """The value ("" when unset); ClientSetupError when its file cannot be read."""
        if self._file is None:
            return self._value
        try:
            return self._file.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ClientSetupError(
                f"cannot read {self._key} {self._file.path}: {_reason(exc)}"
            ) from None


def read_problem(
    path: str | Path, *, limit: int = MAX_SECRET_BYTES, text: bool = True
) -> str | None:
    """Why the file cannot be read now as a request reads it ("No such file or directory"), or
    None when it can; what it holds is never shown. ``text``: read as a secret's UTF-8 text;
    else as bytes, as OpenSSL reads a certificate, key or CA file (among which a bundle's
    labels may be in any encoding)."""
    try:
        if text:
            WatchedFile(path, limit=limit).read()
        else:
            read_bounded(path, limit)
    except (OSError, UnicodeDecodeError) as exc:
        return _reason(exc)
    return None


def _reason(exc: OSError | UnicodeDecodeError) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"  # which byte is not shown: it is a secret's
    return exc.strerror or type(exc).__name__
