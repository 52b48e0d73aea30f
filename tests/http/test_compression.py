"""Compressed request bodies (gzip, deflate): signed as they expand, refused when they do not
expand, are cut short, hold too many members or expand past the limit."""

from __future__ import annotations

import functools
import gzip
import logging
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.app import default_components
from bridge.bodies import MAX_GZIP_MEMBERS
from bridge.bus import SIGNATURE_HEADER
from tests.http.helpers import JSON, NDJSON, ServerFactory, body_of, envelope, signed
from tests.support import ADMIN_TOKEN, async_wait_until


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compressed_body_is_signed_as_it_expands(
    serve: ServerFactory, encoding: str
) -> None:
    """With Content-Encoding the signature covers the body expanded (202); one over the
    compressed bytes is refused with a detail saying to sign before compressing."""
    server = await serve()
    body = body_of(envelope())
    packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    headers = {"Content-Encoding": encoding}
    status, _ = await server.post(packed, signature=signed(body), headers=headers)
    assert status == 202
    again = body_of(envelope())
    packed = gzip.compress(again) if encoding == "gzip" else zlib.compress(again)
    status, answer = await server.post(packed, signature=signed(packed), headers=headers)
    assert (status, answer["error"]) == (401, "invalid_signature")
    assert answer["detail"].endswith("sign the body before compressing)")
    status, answer = await server.post(again, signature=signed(packed))
    assert "compressing" not in answer["detail"]  # no hint where nothing was compressed


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_a_body_expanding_to_several_mebibytes_is_checked_as_sent(
    serve: ServerFactory, coding: str
) -> None:
    """A compressed body that expands to several MiB (in gzip, two members) is expanded byte for
    byte: its signature matches, and its JSON is then judged (400: not JSON)."""
    server = await serve(EXESDB_MAX_BODY_BYTES=str(4 * 1024 * 1024))
    body = b"{" + bytes(range(32, 127)) * 36_000 + b"}"  # 3.4 MB, not JSON
    half = len(body) // 2 + 7
    packed = (
        gzip.compress(body[:half]) + gzip.compress(body[half:])
        if coding == "gzip"
        else zlib.compress(body)
    )
    status, answer = await server.post(
        packed, signature=signed(body), headers={"Content-Encoding": coding}
    )
    assert (status, answer["error"], answer["field"]) == (400, "malformed", "body")
    assert answer["detail"].startswith("not JSON"), answer["detail"]


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/integration"])
@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", b"not gzip at all"),
        ("deflate", b"not deflate either"),
    ],
    ids=["not-gzip", "not-deflate"],
)
async def test_a_compressed_body_that_does_not_expand_answers_400_naming_the_body(
    serve: ServerFactory,
    path: str,
    encoding: str,
    body: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A body whose Content-Encoding does not decode answers 400 naming the body, on ingest
    (counted as malformed) and on an admin route, and closes the connection: no 500, no
    traceback in the log."""
    server = await serve()
    headers = {"Content-Encoding": encoding, "Authorization": f"Bearer {ADMIN_TOKEN}"}
    status, answer = await server.post(body, headers=headers, path=path)
    assert (status, answer.get("error"), answer.get("field")) == (400, "malformed", "body")
    assert encoding in answer["detail"]
    # aiohttp reads the rest of a body once the answer is sent: then the connection closes.
    registry = server.bridge.registry
    await async_wait_until(
        lambda: registry.get_sample_value("exesdb_http_connections") == 0,
        what="the connection closed",
    )
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    if path == "/v1/messages":
        assert server.rejected("malformed") == 1
    assert server.delivered == []
    assert server.bridge.integration.enabled()


def _packed(coding: str, body: bytes) -> bytes:
    return gzip.compress(body) if coding == "gzip" else zlib.compress(body)


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
@pytest.mark.parametrize(
    ("damage", "detail"),
    [
        (lambda packed: packed[: len(packed) // 2], "cut short"),
        (lambda packed: packed[:-4], "cut short"),  # only the trailer's last bytes missing
        (lambda packed: packed + b"junk", "follow the end"),
    ],
    ids=["half", "trailer", "trailing-bytes"],
)
async def test_a_compressed_ingest_body_cut_short_or_with_bytes_after_answers_400_naming_the_body(
    serve: ServerFactory, coding: str, damage: Callable[[bytes], bytes], detail: str
) -> None:
    """A gzip or deflate ingest body cut short (or followed by other bytes) answers 400
    malformed naming the body, counted, rather than 401 for the part that arrived."""
    server = await serve()
    body = body_of(envelope())
    status, answer = await server.post(
        damage(_packed(coding, body)),
        signature=signed(body),
        headers={"Content-Encoding": coding},
    )
    assert (status, answer.get("error"), answer.get("field")) == (400, "malformed", "body")
    assert detail in answer["detail"]
    assert coding in answer["detail"]
    assert server.rejected("malformed") == 1
    assert server.delivered == []


async def test_a_gzip_body_of_several_members_is_taken_whole(serve: ServerFactory) -> None:
    """A gzip ingest body of two members one after another (RFC 1952) expands to both, as
    ``gzip.decompress`` reads it, and is verified and taken as the whole NDJSON batch."""
    server = await serve()
    first, second = body_of(envelope()) + b"\n", body_of(envelope())
    status, answer = await server.post(
        gzip.compress(first) + gzip.compress(second),
        NDJSON,
        signature=signed(first + second),
        headers={"Content-Encoding": "gzip"},
    )
    assert (status, answer) == (202, {"accepted": 2})


async def test_a_gzip_body_of_too_many_members_answers_400_naming_the_body(
    serve: ServerFactory,
) -> None:
    """A gzip body of more members than MAX_GZIP_MEMBERS (here 1 MiB of empty ones, which
    expand to nothing and cost a copy each) answers 400 malformed naming the body."""
    server = await serve()
    status, answer = await server.post(
        gzip.compress(b"") * ((1 << 20) // 20),
        signature=signed(b""),
        headers={"Content-Encoding": "gzip"},
    )
    assert (status, answer.get("error"), answer.get("field")) == (400, "malformed", "body")
    assert f"more than {MAX_GZIP_MEMBERS} members" in answer["detail"]


@functools.cache
def _bomb(coding: str) -> bytes:
    """128 MiB of newlines, compressed to about 128 KiB."""
    expanded = b"\n" * (128 << 20)
    return gzip.compress(expanded, 9) if coding == "gzip" else zlib.compress(expanded, 9)


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/v1/messages", NDJSON),
        ("/v1/integration", JSON),
        ("/v1/alerts/a1/ack", JSON),
    ],
)
async def test_a_compressed_body_expanding_past_the_limit_is_refused_unexpanded(
    serve: ServerFactory, tmp_path: Path, coding: str, path: str, content_type: str
) -> None:
    """A body whose Content-Encoding expands it past EXESDB_MAX_BODY_BYTES (a 128 KiB gzip or
    deflate bomb of 128 MiB) is answered 413 too_large on every route that reads a body, and is
    never expanded whole in memory."""
    server = await serve(default_components(), EXESDB_STATE_DIR=str(tmp_path))
    bomb = _bomb(coding)
    headers = {
        "Content-Type": content_type,
        "Content-Encoding": coding,
        "Authorization": f"Bearer {ADMIN_TOKEN}",
        SIGNATURE_HEADER: signed(b""),
    }
    tracemalloc.start()
    try:
        async with server.session.post(server.url + path, data=bomb, headers=headers) as response:
            assert response.status == 413
            answer = await response.json()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20
    # In the one error shape every refusal has, on the admin routes too.
    assert answer["error"] == "too_large"
    assert "EXESDB_MAX_BODY_BYTES" in answer["detail"]
