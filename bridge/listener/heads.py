"""The size of a request head as it arrives, and the answer to one refused before it is whole.

aiohttp's parser bounds a head line by line (a request line of ``LINE_MAX`` bytes, 128 fields of
8 190 each), never in all, and holds what it has read of a head until it is whole, each field
twice (its bytes and its text): 1 000 connections each sending 1 MiB of fields and never the
blank line that ends them grew the bridge by 1.2 GB, for the header timeout (bridge process,
7 Dec 2026). ``HeadSize`` counts the bytes of a head as they arrive, before the parser sees
them, up to its blank line, so that each head is bounded (``HEAD_MAX``, answered 431) and all
of them at once (``HEADS_HELD``: ``budgets.py``); ``TOO_LARGE_ANSWER`` and ``over_budget_answer``
are the answers the guard writes itself, aiohttp having no request to answer yet.
"""

from __future__ import annotations

import json
from typing import Final

from bridge.routes import error_body

__all__ = [
    "HEADS_HELD",
    "HEAD_MAX",
    "TOO_LARGE_ANSWER",
    "HeadSize",
    "over_budget_answer",
]

# The most bytes a request head may total, its request line, fields and line ends: Go's
# DefaultMaxHeaderBytes (what exporter-toolkit's exporters take). Far above a head the bridge
# is sent (the longest alert link's request line is 49 KiB); over it the request is answered
# 431 and its connection closes.
HEAD_MAX: Final = 1024 * 1024
# The most bytes of heads the requests in progress hold at once, from their first byte to their
# answer: past it the head (or body) arriving slowest is closed, else the request whose bytes
# went past is answered 503. Caps on each head (aiohttp's, or HEAD_MAX) alone scale with the
# connections: 1 000 heads never ended grew the bridge by 128 MiB at 64 KiB each, 512 MiB at
# 256 KiB, 1.3 GB at 1 MiB; a cap keeping 1 000 of them near the bodies' budget would refuse the
# longest request line the bridge must take (LINE_MAX, 49 KiB).
HEADS_HELD: Final = 16 * 1024 * 1024
# What ends a head: its empty line (the parser takes no bare LF for a line end).
_END: Final = b"\r\n\r\n"
# What precedes a request line and is no part of it (RFC 9112 section 2.2).
_BLANK: Final = b"\r\n"
_REASON_PHRASES: Final = {431: "Request Header Fields Too Large", 503: "Service Unavailable"}


class HeadSize:
    """The bytes of one connection's request head counted so far, and whether it has ended."""

    __slots__ = ("_tail", "ended", "since", "size")

    def __init__(self) -> None:
        self.size = 0
        self.ended = True  # no head begun
        self.since = 0.0  # when it began, in the loop's time
        self._tail = b""  # the head's last bytes, up to 3: its end may straddle two reads

    def begin(self, now: float) -> None:
        """A new head begins with the next bytes read, at ``now``."""
        self.size, self.ended, self.since, self._tail = 0, False, now, b""

    def read(self, data: bytes) -> int:
        """Count the bytes of ``data`` that belong to the head, up to its end; where in ``data``
        they stop (its length when the head goes on, 0 when it had ended)."""
        if self.ended:
            return 0
        start = 0
        if self.size == 0:
            start = len(data) - len(data.lstrip(_BLANK))
            if start == len(data):
                return start
        joined = (self._tail + data[start : start + 3]).find(_END)
        end = data.find(_END, start) if joined == -1 else -1
        if joined != -1:
            stop = start + joined + len(_END) - len(self._tail)
        elif end != -1:
            stop = end + len(_END)
        else:
            stop = len(data)
            self._tail = (self._tail + data[max(start, len(data) - 3) :])[-3:]
        self.ended = joined != -1 or end != -1
        self.size += stop - start
        return stop


def _early_answer(status: int, code: str, detail: str, *, retry_after: int | None = None) -> bytes:
    """The whole answer, in the one error shape, to a request refused before its head is in:
    written on the connection as it is, which then closes."""
    body = json.dumps(error_body(code, detail, "head")).encode()
    fields = [
        f"HTTP/1.1 {status} {_REASON_PHRASES[status]}",
        "Content-Type: application/json; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if retry_after is not None:
        fields.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(fields) + "\r\n\r\n").encode() + body


TOO_LARGE_ANSWER: Final = _early_answer(
    431,
    "request_header_fields_too_large",
    f"the request head (its request line and header fields) is over {HEAD_MAX} bytes",
)


def over_budget_answer(heads_held: int) -> bytes:
    """503 ``overloaded``, for a head that took the heads held past ``heads_held`` bytes."""
    detail = (
        f"the request heads being read hold {heads_held} bytes, the most the bridge holds at "
        "once; retry later"
    )
    return _early_answer(503, "overloaded", detail, retry_after=1)
