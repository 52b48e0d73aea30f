"""Page answers that cost next to nothing when unchanged: an ETag, ``If-None-Match`` → 304, gzip.

An open status page asks for its live part every few seconds; with many alerts that part is
hundreds of kilobytes. Its refresh script sends the ETag of what it shows (RFC 9110 8.8.3) in
``If-None-Match``: while the markup is the same the answer is ``304 Not Modified`` without a
body. The ETag is a digest of the markup's bytes, so a strong one (byte for byte the same
representation) for the answer as rendered; the gzip-coded answer (sent when the client accepts
gzip, RFC 9110 12.5.3) is another representation of the same content, so it carries the same
tag made weak (``W/``), as nginx does. ``If-None-Match`` compares weakly (RFC 9110 13.1.2), so
either tag answers 304 for the other; ``*`` matches any current page.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Mapping
from hashlib import blake2b
from typing import Final

from aiohttp import hdrs, web

from bridge.pages.html import Html

__all__ = ["LIST_ITEMS_READ", "Rendered", "answer", "none_match"]

# The items of a list header (If-None-Match, Accept, Accept-Encoding) read; those after are
# left out. A browser sends one tag and some ten media ranges, and a request's head may hold a
# megabyte of fields: read whole, 130 000 tags held the loop 0.3 s.
LIST_ITEMS_READ: Final = 64
# Below this a body gains little from gzip and costs a header and a little CPU.
_COMPRESS_FROM: Final = 1024
# zlib's default level: 274 kB of the status page's markup in 0.7 ms to 6.2 kB; level 9 took
# three times that for 5% less, level 1 a third of it for 5% more (docs/performance.md).
_LEVEL: Final = 6
# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE (RFC 9110 8.8.3), one element of a list (RFC 9110
# 5.6.1: empty elements allowed); etagc holds the comma, so a list is not split at commas.
_ELEMENT: Final = re.compile(r'[ \t]*(?:((?:W/)?"[\x21\x23-\x7e\x80-\xff]*")[ \t]*)?(?:,|$)')


class Rendered:
    """Markup rendered once: its bytes, its ETag and, asked for once, its gzip coding, shared by
    every request that takes it."""

    __slots__ = ("_gzipped", "body", "etag", "html")

    def __init__(self, html: Html) -> None:
        self.html = html
        self.body = html.encode("utf-8")
        self.etag = '"' + blake2b(self.body, digest_size=16).hexdigest() + '"'
        self._gzipped: bytes | None = None

    def gzipped(self) -> bytes:
        """The body gzip-coded (made on the first call; no timestamp in it, so always the same)."""
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=_LEVEL, mtime=0)
        return self._gzipped


def _opaque(tag: str) -> str:
    return tag.removeprefix("W/")


def none_match(fields: Iterable[str], etag: str) -> bool:
    """Whether ``If-None-Match`` (its fields, a list of entity tags or ``*``) names ``etag``,
    compared weakly (RFC 9110 13.1.2: ``W/"x"`` matches ``"x"``); a field that is no such list
    is ignored, as if not sent, and so are the tags past the first ``LIST_ITEMS_READ`` (a 200
    in place of a 304 is always a right answer)."""
    read = 0
    for field in fields:
        if field.strip() == "*":
            return True
        listed, position = [], 0
        while position < len(field) and read < LIST_ITEMS_READ:
            found = _ELEMENT.match(field, position)
            if found is None or found.end() == position:
                break
            read += 1
            if found.group(1):
                listed.append(found.group(1))
            position = found.end()
        else:
            if _opaque(etag) in {_opaque(tag) for tag in listed}:
                return True
        if read >= LIST_ITEMS_READ:
            break
    return False


def _accepts_gzip(request: web.Request) -> bool:
    """Whether ``Accept-Encoding`` accepts gzip: named at a q above 0, or, when not named,
    ``*`` at a q above 0 (RFC 9110 12.5.3: ``*`` stands for the codings not named, so
    ``gzip;q=0, *`` refuses gzip); its first ``LIST_ITEMS_READ`` items only."""
    weights: dict[str, float] = {}
    fields = ",".join(request.headers.getall(hdrs.ACCEPT_ENCODING, []))
    for item in fields.split(",", LIST_ITEMS_READ)[:LIST_ITEMS_READ]:
        name, _, parameters = item.partition(";")
        name = name.strip().lower()
        if name not in ("gzip", "x-gzip", "*"):
            continue
        weight = parameters.strip().lower()
        try:
            q = float(weight[2:]) if weight.startswith("q=") else 1.0
        except ValueError:
            continue
        # x-gzip is gzip (RFC 9110 8.4.1.3); a coding named twice is taken at its best.
        key = "*" if name == "*" else "gzip"
        weights[key] = max(q, weights.get(key, q))
    return weights.get("gzip", weights.get("*", 0.0)) > 0


def answer(
    request: web.Request,
    rendered: Rendered,
    headers: Mapping[str, str],
    *,
    status: int = 200,
    tagged: bool = True,
) -> web.Response:
    """``rendered`` with ``headers``: gzip-coded when the client accepts it, and when ``tagged``
    (and 200) with its ETag, answered ``304`` without a body when ``If-None-Match`` names it.

    Only a 200 is conditional (RFC 9110 13.2.1: a server ignores the conditions for any other
    status)."""
    coded = len(rendered.body) >= _COMPRESS_FROM and _accepts_gzip(request)
    sent = {**headers, hdrs.VARY: hdrs.ACCEPT_ENCODING}
    if tagged and status == 200:
        sent[hdrs.ETAG] = "W/" + rendered.etag if coded else rendered.etag
        if none_match(request.headers.getall(hdrs.IF_NONE_MATCH, []), rendered.etag):
            sent.pop(hdrs.CONTENT_TYPE, None)
            return web.Response(status=304, headers=sent)
    if not coded:
        return web.Response(body=rendered.body, status=status, headers=sent)
    sent[hdrs.CONTENT_ENCODING] = "gzip"
    return web.Response(body=rendered.gzipped(), status=status, headers=sent)
