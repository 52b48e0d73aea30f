"""Connections at the HTTP edge: a request not served let go with its connection, a transfer coding
other than chunked or an oversized head refused."""

from __future__ import annotations

import asyncio
import json
import secrets

import pytest
from aiohttp import web

from tests.http.helpers import ServerFactory
from tests.support import ADMIN_TOKEN, alive, async_wait_until, collector_off


async def _answers(address: tuple[str, int], sent: bytes) -> bytes:
    """All the bridge at ``address`` answers to ``sent`` on one connection, read until it
    closes it (10 s at most)."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(sent)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


@pytest.mark.parametrize("request_line", ["GET /nope", "GET /alerts/a/b/c", "POST /healthz"])
async def test_a_request_for_a_path_or_method_not_served_is_let_go_with_its_connection(
    serve: ServerFactory, request_line: str
) -> None:
    """A request for a path not served (404) or a method a path does not take (405) is let go
    with its connection, not kept in a cycle for the collector, which the bridge's thresholds
    run some 500 requests later: a megabyte head each, they held 450 MB."""
    server = await serve()
    assert server.bridge.address is not None
    mark = secrets.token_hex(8)
    with collector_off():
        for _ in range(3):
            answer = await _answers(
                server.bridge.address,
                f"{request_line} HTTP/1.1\r\nHost: x\r\nX-Mark: {mark}\r\n"
                "Connection: close\r\n\r\n".encode(),
            )
            assert answer.split(b" ")[1] in (b"404", b"405")
        await async_wait_until(
            lambda: not alive(web.BaseRequest, lambda r: r.headers.get("X-Mark") == mark),
            what="the requests let go",
        )


@pytest.mark.parametrize("coding", ["gzip, chunked", "identity, chunked", "deflate, chunked"])
async def test_a_transfer_coding_other_than_chunked_is_501_and_the_connection_closes(
    serve: ServerFactory, coding: str
) -> None:
    """A body framed ``Transfer-Encoding: gzip, chunked`` (or identity, deflate) is not read as
    if the codings before chunked were not there: 501 naming the header, and the connection
    closes, so nothing sent after it on that connection is read as a request; the switch it
    would have turned off stays on."""
    server = await serve()
    assert server.bridge.address is not None
    body = b'{"enabled": false}'
    answers = await _answers(
        server.bridge.address,
        b"POST /v1/integration HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {ADMIN_TOKEN}\r\nTransfer-Encoding: {coding}\r\n\r\n".encode()
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    head, _, rest = answers.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 501"), head
    assert b"connection: close" in head.lower()
    assert json.loads(rest) == {
        "error": "not_implemented",
        "detail": f"Transfer-Encoding {coding!r} is not one the bridge applies: send the body"
        " chunked or with a Content-Length",
        "field": "Transfer-Encoding",
    }
    assert server.bridge.integration.enabled()


async def test_an_http_1_0_request_with_a_transfer_encoding_is_400_and_the_connection_closes(
    serve: ServerFactory,
) -> None:
    """An HTTP/1.0 request with ``Transfer-Encoding: chunked`` and keep-alive is not read as
    chunked (RFC 9112 6.1: its framing is faulty; Go's server frames it by Content-Length): 400
    naming the header, the connection closes, and what follows is not read as a request."""
    server = await serve()
    assert server.bridge.address is not None
    body = b'{"enabled": false}'
    answers = await _answers(
        server.bridge.address,
        b"POST /v1/integration HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n"
        + f"Content-Type: application/json\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n".encode()
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        + b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    )
    head, _, rest = answers.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 400"), head
    assert b"keep-alive" not in head.lower()
    assert json.loads(rest) == {
        "error": "bad_request",
        "detail": "Transfer-Encoding is not part of HTTP/1.0: send the body with a"
        " Content-Length, or the request as HTTP/1.1",
        "field": "Transfer-Encoding",
    }
    assert server.bridge.integration.enabled()


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Padding", "a" * 9000)],  # one field over 8 KiB
        [(f"X-H{number}", "a") for number in range(200)],  # more fields than 128
    ],
    ids=["long-field", "many-fields"],
)
async def test_an_oversized_request_head_is_refused_before_any_route(
    serve: ServerFactory, headers: list[tuple[str, str]]
) -> None:
    """A request head with a field over 8 KiB or more than 128 fields is answered 400 (the
    aiohttp parser's limits) before any handler reads it, and the bridge keeps serving."""
    server = await serve()
    host, port = server.bridge.address or ("", 0)
    reader, writer = await asyncio.open_connection(host, port)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    writer.write(f"GET /healthz HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode())
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    assert status_line.split()[1] == b"400"
    assert (await server.get("/healthz"))[0] == 200
