"""Where a request body ends in the bytes that arrive: its Content-Length, or its last chunk.

aiohttp's parser frames a body as it reads it, and reads on into what follows it (the next
request's head, sent in the same write) without saying where the body ended: that head reached
the parser uncounted by ``heads.py``, past ``HEAD_MAX`` and the heads' budget. ``BodyFrame``
follows the body's framing (RFC 9112 sections 6.3 and 7.1) as its bytes arrive, so that the
connection hands the parser the body alone and counts what follows it as a head. What it cannot
read as chunked framing it takes for body to the end (the parser refuses it: 400, and the
connection closes), never for a head.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

__all__ = ["BodyFrame"]

# The longest chunk-size line (its extensions included) followed; past it the framing is not
# followed, and what arrives is all body.
_LINE_MAX: Final = 8192
# The most hex digits of a chunk size: 16 make a 64-bit size, the most llhttp takes.
_SIZE_DIGITS: Final = 16
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
# What ends the trailer section (its empty line, after the last chunk's line end).
_END: Final = b"\r\n\r\n"


class _Part(Enum):
    DATA = "data"  # bytes of the body as sent: its length, or a chunk and its CRLF
    SIZE = "size"  # a chunk-size line
    TRAILER = "trailer"  # the trailer section, after the last chunk
    ENDED = "ended"
    UNFRAMED = "unframed"  # framing not followed: body to the end


class BodyFrame:
    """The bytes of one request body still to come, as framed by its head."""

    __slots__ = ("_chunked", "_left", "_line", "_part", "_tail")

    def __init__(self, length: int | None, *, chunked: bool) -> None:
        """A body of ``length`` bytes (its Content-Length), or ``chunked``; neither, a body to
        the end of the stream."""
        self._chunked = chunked
        self._left = length or 0  # bytes of DATA still to come
        if chunked:
            self._part = _Part.SIZE
        elif length is None:
            self._part = _Part.UNFRAMED
        else:
            self._part = _Part.DATA if length else _Part.ENDED
        self._line = b""  # a chunk-size line begun in an earlier read
        self._tail = b""  # the trailer section's last bytes, up to 3: its end may straddle reads

    @property
    def ended(self) -> bool:
        """Whether the whole body has arrived."""
        return self._part is _Part.ENDED

    def read(self, data: bytes) -> int:
        """How many bytes of ``data``, from its start, are the body's: its length while the body
        goes on, where it ended within ``data`` otherwise (0 once it has ended)."""
        at, size = 0, len(data)
        while at < size:
            part = self._part
            if part is _Part.DATA:
                taken = min(self._left, size - at)
                at += taken
                self._left -= taken
                if self._left == 0:
                    self._part = _Part.SIZE if self._chunked else _Part.ENDED
            elif part is _Part.SIZE:
                at = self._size_line(data, at)
            elif part is _Part.TRAILER:
                at = self._trailer(data, at)
            elif part is _Part.UNFRAMED:
                return size
            else:
                return at
        return at

    def _size_line(self, data: bytes, at: int) -> int:
        """Read a chunk-size line from ``data[at:]``; where in ``data`` what follows it begins."""
        end = data.find(b"\n", at)
        if end == -1:
            self._line += data[at:]
            if len(self._line) > _LINE_MAX:
                self._part = _Part.UNFRAMED
            return len(data)
        line, self._line = self._line + data[at : end + 1], b""
        size = _chunk_size(line)
        if size is None:
            self._part = _Part.UNFRAMED
        elif size == 0:
            # The trailer section ends with an empty line: the last chunk's line end begins it.
            self._part, self._tail = _Part.TRAILER, b"\r\n"
        else:
            self._part, self._left = _Part.DATA, size + 2  # its data and their CRLF
        return end + 1

    def _trailer(self, data: bytes, at: int) -> int:
        """Read the trailer section from ``data[at:]``; where in ``data`` it ends."""
        joined = (self._tail + data[at : at + 3]).find(_END)
        if joined != -1:
            self._part = _Part.ENDED
            return at + joined + len(_END) - len(self._tail)
        end = data.find(_END, at)
        if end != -1:
            self._part = _Part.ENDED
            return end + len(_END)
        self._tail = (self._tail + data[max(at, len(data) - 3) :])[-3:]
        return len(data)


def _chunk_size(line: bytes) -> int | None:
    """The size a chunk-size line (``1a;name=value`` and CRLF) gives; None when malformed."""
    if not line.endswith(b"\r\n") or len(line) > _LINE_MAX:
        return None
    digits = line[:-2].split(b";", 1)[0].rstrip(b" \t")
    if not digits or len(digits) > _SIZE_DIGITS or not _HEX.issuperset(digits):
        return None
    return int(digits, 16)
