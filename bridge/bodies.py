"""Request bodies read whole, their Content-Encoding expanded here within the body limit.

aiohttp's own expansion is off (``auto_decompress=False``): it takes a gzip stream cut short as
the part that arrived, and a signed ingest would then answer 401 for what is a broken body. Here
a body that does not decode, stops before its stream ends or carries bytes after it (other than
further gzip members, RFC 1952, up to ``MAX_GZIP_MEMBERS``) raises ``web.RequestPayloadError``
(answered 400 naming ``body``); one that expands past the limit raises
``web.HTTPRequestEntityTooLarge`` (413) before more than the limit is expanded. The expansion runs
in a worker thread, never on the event loop, and so does what a caller asks done with the body
expanded (``read_judged``: ingest checks its signature there), as it does for a body of a MiB or
more sent as it is. A client waiting for
``100 Continue`` is sent it as its body is first read (``bridge.expect_continue``).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from aiohttp import web

from bridge.expect_continue import ask_for_body
from bridge.json_objects import once_each

__all__ = [
    "EXPANDED_CODINGS",
    "JSON_CHARSETS",
    "MAX_GZIP_MEMBERS",
    "apart",
    "content_coding",
    "keep_heap_for_bodies",
    "read_body",
    "read_json",
    "read_judged",
]

# The Content-Encodings read_body expands; any other body is read as sent.
EXPANDED_CODINGS: Final = frozenset({"gzip", "deflate"})
# The charsets a JSON body may be labelled with: UTF-8 and its subset ASCII (RFC 8259).
JSON_CHARSETS: Final = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})

# zlib's window bits per coding: a gzip member, a zlib stream, or raw deflate (what some
# clients send as "deflate"; told apart by the first byte, as aiohttp does).
_GZIP: Final = 16 + zlib.MAX_WBITS
_ZLIB: Final = zlib.MAX_WBITS
_RAW: Final = -zlib.MAX_WBITS
MAX_GZIP_MEMBERS: Final = 16
# glibc's mallopt parameters (malloc.h) and the ceiling of its own sliding mmap threshold on
# 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX).
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
_MMAP_MOST: Final = 32 * 1024 * 1024
_MMAP_LEAST: Final = 1024 * 1024
# The thread compressed bodies are expanded in (and, at ingest, their signatures checked): a few
# bytes sent cost what they expand to, 1 KB of gzip a 1 MiB body, about 4 ms of zlib and 0.7 ms
# of HMAC, which anyone reaching the port, unsigned, could have the loop spend per 1 KB. zlib and
# hashlib let go of the GIL over such buffers, so the loop serves others meanwhile. One thread: a
# flood of such bodies takes one core at most, its requests waiting their turn here (one each,
# so no more than the connection cap lets in).
_THREAD: Final = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exesdb-bodies")
# What one call to zlib expands at most (see _expand).
_STEP: Final = 1024 * 1024
# A body sent as it is of this many bytes or more is judged in the thread too: ingest's HMAC takes
# 1 ms a MiB (4 on a loaded host), a quarter-second of the loop for 256 MiB, the most
# EXESDB_MAX_BODY_BYTES allows. Below, the hand-over would cost more than it saves.
_JUDGED_APART: Final = 1024 * 1024

_T = TypeVar("_T")


def content_coding(request: web.Request) -> str:
    """The request's Content-Encoding, lower-cased: its header lines joined into one list, as
    RFC 9110 5.3 reads a field given on several lines (``gzip`` then ``gzip`` is ``gzip, gzip``,
    not the first line's ``gzip``); empty when none is sent."""
    return ", ".join(
        line.strip() for line in request.headers.getall("Content-Encoding", ())
    ).lower()


def keep_heap_for_bodies(limit: int) -> bool:
    """Have glibc's malloc keep the memory a body of up to ``limit`` bytes takes, from one
    request to the next; False where the C library is not glibc (left as it is).

    A body is held a few times over as it is read (the socket's chunks, the body, its lines),
    each a block of hundreds of KB. glibc put the first such blocks in mmaps and then, its
    thresholds sliding, on the heap, but gave the heap's top back to the system whenever more
    than twice the largest block was free there: the next request took the pages again, page
    fault by page fault (about 200 a 340 KB batch, half its cost when refused at its
    signature). Here blocks up to twice ``limit`` (within 1 to 32 MiB) stay on the heap, and up
    to twice that is kept free at its top, as glibc's own rule would after such a block.
    """
    threshold = min(max(2 * limit, _MMAP_LEAST), _MMAP_MOST)
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):  # not glibc (macOS has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 2 * threshold)
    )


async def read_body(request: web.Request) -> bytes:
    """The body, expanded when its Content-Encoding is gzip or deflate, at most
    ``request.client_max_size`` bytes both as sent and as expanded (a Content-Length over it is
    refused before anything is read).

    Read from ``request.content``, not ``request.read()``, which keeps the body on the request:
    aiohttp keeps a keep-alive connection's last request until its next one, so every idle
    connection would hold the body it last sent (up to the limit each, signed or not).
    """
    body, _ = await read_judged(request, _unjudged)
    return body


async def read_judged(request: web.Request, judge: Callable[[bytes], _T]) -> tuple[bytes, _T]:
    """The body as ``read_body`` reads it, and ``judge(body)``: called in the thread a compressed
    body is expanded in, right after (in one hand-over: two cost some 200 page faults a 1 MiB
    body), so that work over what a few bytes sent expand to keeps off the loop too; for a body
    read as sent, in that thread too from ``_JUDGED_APART`` bytes, else on the loop."""
    declared = request.content_length
    if declared is not None and declared > request.client_max_size:
        # Refused unread, before a client waiting for 100 Continue is asked to send it.
        raise web.HTTPRequestEntityTooLarge(request.client_max_size, declared)
    await ask_for_body(request)
    # The chunks joined once (one copy of the body), not grown in a bytearray and copied out.
    received: list[bytes] = []  # as sent
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > request.client_max_size:
            raise web.HTTPRequestEntityTooLarge(request.client_max_size, size)
        received.append(chunk)
    body = received[0] if len(received) == 1 else b"".join(received)
    del received
    coding = content_coding(request)
    if coding not in EXPANDED_CODINGS or not body:
        if len(body) < _JUDGED_APART or judge is _unjudged:
            return body, judge(body)
        return body, await asyncio.get_running_loop().run_in_executor(_THREAD, judge, body)
    return await asyncio.get_running_loop().run_in_executor(
        _THREAD, _expand_judged, body, coding, request.client_max_size, judge
    )


async def apart(call: Callable[[bytes], _T], body: bytes) -> _T:
    """``call(body)`` in the thread compressed bodies are expanded in, one body at a time: for
    work over a body read whole that cannot be cut into steps (one large JSON envelope decoded),
    which would otherwise hold the event loop throughout. Python code there lets the loop in
    every switch interval (5 ms); a long call into C that holds the GIL does not."""
    return await asyncio.get_running_loop().run_in_executor(_THREAD, call, body)


def _unjudged(body: bytes) -> None:
    """No judgement: ``read_body``'s."""


def _expand_judged(
    body: bytes, coding: str, limit: int, judge: Callable[[bytes], _T]
) -> tuple[bytes, _T]:
    expanded = _expand(body, coding, limit)
    return expanded, judge(expanded)


def _expand(body: bytes, coding: str, limit: int) -> bytes:
    """``body`` expanded as its ``coding`` (gzip or deflate) says, within ``limit`` bytes."""
    wbits = _GZIP if coding == "gzip" else _ZLIB if body[0] & 0x0F == 8 else _RAW
    pieces: list[bytes] = []
    size = 0
    rest = body
    # A gzip body may hold several members, one after another (RFC 1952 2.2); a few, since each
    # costs a copy of what follows it and an empty one expands to nothing.
    for _ in range(MAX_GZIP_MEMBERS):
        stream = zlib.decompressobj(wbits)
        data = rest
        while True:
            # A step at a time: zlib expands without the GIL but copies each call's output into
            # one bytes object holding it, and that copy of a 64 MiB body held the loop 80 ms.
            step = min(_STEP, limit + 1 - size)
            try:
                piece = stream.decompress(data, step)
            except zlib.error as exc:
                if rest is not body:  # what follows a whole member is not another one
                    raise web.RequestPayloadError(
                        f"{len(rest)} byte(s) follow the end of the {coding} stream"
                    ) from exc
                raise web.RequestPayloadError(f"Can not decode content-encoding: {coding}") from exc
            if piece:  # none empty, so that a body expanded in one piece is not copied to join
                pieces.append(piece)
            size += len(piece)
            if size > limit:
                raise web.HTTPRequestEntityTooLarge(limit, size)
            data = stream.unconsumed_tail
            # Short of the step: the input ran out (or the stream ended); a full step may have
            # more to give, even once all of the input is taken in.
            if stream.eof or len(piece) < step:
                break
        if not stream.eof:
            raise web.RequestPayloadError(
                f"the {coding} stream is cut short: it ends before its last block"
            )
        rest = stream.unused_data
        if not rest:
            return b"".join(pieces)
        if wbits != _GZIP:
            raise web.RequestPayloadError(
                f"{len(rest)} byte(s) follow the end of the {coding} stream"
            )
    raise web.RequestPayloadError(f"the gzip body holds more than {MAX_GZIP_MEMBERS} members")


async def read_json(request: web.Request) -> Any:
    """The body (as ``read_body``) parsed as JSON in its charset (UTF-8 by default); raises
    ``DuplicateKey`` for an object with a key given twice, ``ValueError`` for text that is not
    JSON or in a charset Python does not know, ``RecursionError`` for JSON nested too deeply."""
    body = await read_body(request)
    try:
        text = body.decode(request.charset or "utf-8")
    except LookupError as exc:  # charset=bogus: a body the client labelled wrongly, no fault here
        raise ValueError(f"unknown charset {request.charset!r}") from exc
    return json.loads(text, object_pairs_hook=once_each)
