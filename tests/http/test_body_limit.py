"""The body limit: 413 over it, sent whole or chunked, a body at it taken, and ``Expect:
100-continue`` answered as the head decides."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.bus import SIGNATURE_HEADER
from tests.http.helpers import JSON, Server, ServerFactory, body_of, envelope, signed
from tests.support import async_wait_until, unread_by_server


@pytest.mark.parametrize("chunked", [False, True])
async def test_ingest_answers_413_over_the_body_limit(serve: ServerFactory, chunked: bool) -> None:
    """A body over EXESDB_MAX_BODY_BYTES answers 413, with or without a Content-Length."""
    server = await serve(EXESDB_MAX_BODY_BYTES="2048")
    body = body_of(envelope(payload={"status": "healthy", "checks": {"pad": "x" * 4096}}))
    data: Any = body
    if chunked:

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 512):
                yield body[start : start + 512]

        data = chunks()
    headers = {"Content-Type": JSON, SIGNATURE_HEADER: signed(body)}
    async with server.session.post(
        server.url + "/v1/messages", data=data, headers=headers
    ) as response:
        assert response.status == 413
        answer = await response.json()
    assert answer["error"] == "too_large"
    assert server.rejected("too_large") == 1


async def _answer_to_expect(server: Server, head: str) -> bytes:
    """The status line ingest answers to ``head`` (a POST /v1/messages with ``Expect:
    100-continue``), sent without its body."""
    assert server.bridge.address is not None
    reader, writer = await asyncio.open_connection(*server.bridge.address)
    try:
        writer.write(
            b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            + head.encode()
            + b"\r\n"
        )
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("env", "head", "status"),
    [
        ({}, f"Content-Type: {JSON}\r\nContent-Length: 99999999\r\n{SIGNATURE_HEADER}: x\r\n", 413),
        ({}, f"Content-Type: {JSON}\r\nContent-Length: 99\r\n", 401),
        ({}, f"Content-Type: text/plain\r\nContent-Length: 99\r\n{SIGNATURE_HEADER}: x\r\n", 415),
        (
            {},
            f"Content-Type: {JSON}\r\nContent-Encoding: br\r\nContent-Length: 99\r\n"
            f"{SIGNATURE_HEADER}: x\r\n",
            415,
        ),
        ({"EXESDB_INGEST": "false"}, f"Content-Type: {JSON}\r\nContent-Length: 99\r\n", 404),
    ],
)
async def test_expect_continue_is_answered_with_a_refusal_the_head_decides(
    serve: ServerFactory, env: dict[str, str], head: str, status: int
) -> None:
    """A POST to ingest with ``Expect: 100-continue`` whose head alone is refused (a
    Content-Length over the limit, no signature, a content type or coding refused, ingest off)
    is answered with that refusal, not ``100 Continue``: the client is not asked for the body."""
    server = await serve(**env)
    assert (await _answer_to_expect(server, head)).startswith(f"HTTP/1.1 {status} ".encode())


async def test_expect_continue_is_answered_100_for_a_head_ingest_takes(
    serve: ServerFactory,
) -> None:
    """A head ingest would read the body of is answered ``100 Continue``; the body sent then is
    taken."""
    server = await serve()
    body = body_of(envelope())
    headers = {"Content-Type": JSON, SIGNATURE_HEADER: signed(body)}
    async with server.session.post(
        server.url + "/v1/messages", data=body, headers=headers, expect100=True
    ) as response:
        assert response.status == 202, await response.text()
    head = f"Content-Type: {JSON}\r\nContent-Length: 99\r\n{SIGNATURE_HEADER}: x\r\n"
    assert await _answer_to_expect(server, head) == b"HTTP/1.1 100 Continue\r\n"


async def test_ingest_accepts_a_body_at_the_limit(serve: ServerFactory) -> None:
    """A body of exactly EXESDB_MAX_BODY_BYTES is accepted."""
    server = await serve(EXESDB_MAX_BODY_BYTES="2048")
    item = envelope(payload={"status": "healthy", "checks": {"pad": ""}})
    pad = 2048 - len(body_of(item))
    item["payload"]["checks"]["pad"] = "x" * pad
    body = body_of(item)
    assert len(body) == 2048
    assert (await server.post(body))[0] == 202


async def test_ingest_accepts_a_body_at_the_limit_sent_in_many_chunks(
    serve: ServerFactory,
) -> None:
    """A body of exactly EXESDB_MAX_BODY_BYTES sent chunked, in pieces of 100 bytes, is read
    whole, in order: its signature over the body matches and it is accepted."""
    server = await serve(EXESDB_MAX_BODY_BYTES="2048")
    item = envelope(payload={"status": "healthy", "checks": {"pad": ""}})
    item["payload"]["checks"]["pad"] = "x" * (2048 - len(body_of(item)))
    body = body_of(item)
    assert len(body) == 2048
    assert server.bridge.address is not None
    port = server.bridge.address[1]

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 100):
            yield body[start : start + 100]
            # Each piece its own read: the next is sent once the bridge read this one (a turn
            # of the loop let two pieces in each read).
            await async_wait_until(lambda: unread_by_server(port) == 0, what="the piece read")

    headers = {"Content-Type": JSON, SIGNATURE_HEADER: signed(body)}
    async with server.session.post(
        server.url + "/v1/messages", data=chunks(), headers=headers
    ) as response:
        assert response.status == 202, await response.text()
