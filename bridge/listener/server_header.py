"""No Server header on any answer: aiohttp's names the Python and aiohttp versions to anyone.

aiohttp puts ``Server: Python/3.11 aiohttp/3.14.5`` on every answer it sends, its own 400 to a
head it cannot parse included, which no route, middleware or ``on_response_prepare`` hook sees
(the request has no route). The writer is the last to see an answer's headers, and aiohttp gives
each request the one its request factory is handed: so each request is handed one that takes
the header off. None rather than the bridge's name, as Go's servers (exporter-toolkit's, so
every exporter's) send none; the name is no secret (the auth challenges' realm says it).
"""

from __future__ import annotations

import asyncio

from aiohttp import StreamReader, hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import RawRequestMessage, StreamWriter
from multidict import CIMultiDict

__all__ = ["no_server_header"]


async def _drop_server(headers: CIMultiDict[str]) -> None:
    headers.popall(hdrs.SERVER, None)


def no_server_header(server: web.Server) -> None:
    """Have every answer on ``server``'s connections go without a Server header (before it
    serves: each connection's protocol takes the factory as it is when it is made)."""
    make = server.request_factory

    def request(
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: web.RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        # aiohttp's writer in place of the one it made, with nothing set on it but the hook.
        own = StreamWriter(protocol, asyncio.get_running_loop(), on_headers_sent=_drop_server)
        return make(message, payload, protocol, own, task)

    server.request_factory = request
