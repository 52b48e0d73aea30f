"""A TCP proxy in front of a real redis-server, to stall what clients send or cut their
connections (a subclass sees each command and answer, and may cut one)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, Self

from tests.support import stop_accepting


class Proxy:
    """A TCP proxy in front of Redis. ``stall()`` holds back what clients send from then on
    (their commands wait for an answer); ``aclose()`` cuts every connection and refuses new
    ones (Redis gone)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.url = ""
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections: set[asyncio.Task[Any]] = set()

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"
        return self

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        """Let what was held back go on to Redis (a stall that ends)."""
        self._flowing.set()

    @property
    def connections(self) -> int:
        """The client connections open through the proxy now."""
        return len(self._connections)

    async def aclose(self) -> None:
        if self._server is not None:
            await stop_accepting(self._server)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def sent(self, data: bytes, marked: asyncio.Event) -> None:
        """What a client sent, seen before it goes on to Redis; ``marked`` is its connection's
        mark, for ``answered`` to see (a subclass's: this one lets everything through)."""

    async def answered(self, data: bytes, marked: asyncio.Event) -> bool:
        """An answer of Redis, seen before it goes back to the client of the connection
        ``marked`` is the mark of: False cuts that connection instead."""
        return True

    def _pipes(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        server_r: asyncio.StreamReader,
        server_w: asyncio.StreamWriter,
    ) -> tuple[Coroutine[Any, Any, None], Coroutine[Any, Any, None]]:
        """The two directions of one connection: what the client sends, what Redis answers."""
        marked = asyncio.Event()

        async def upstream() -> None:
            while data := await client_r.read(65536):
                await self._flowing.wait()
                await self.sent(data, marked)
                server_w.write(data)
                await server_w.drain()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                if not await self.answered(data, marked):
                    return
                client_w.write(data)
                await client_w.drain()

        return upstream(), downstream()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        connection = asyncio.current_task()
        assert connection is not None
        self._connections.add(connection)
        try:
            await self._relay(client_r, client_w)
        finally:
            self._connections.discard(connection)  # a proxy clients come and go through

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        """One client's connection to Redis, both ways, until either side ends it."""
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except BaseException:
            # Redis gone (or the proxy closing): the client is cut, as Redis would cut it,
            # rather than its socket left open for the garbage collector to warn about.
            client_w.close()
            raise
        pipes = self._pipes(client_r, client_w, server_r, server_w)
        tasks = [asyncio.create_task(pipe) for pipe in pipes]
        self._tasks.update(tasks)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
                self._tasks.discard(task)
            for writer in (client_w, server_w):
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()


async def copy_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """What ``reader`` reads written to ``writer``, until it ends (one direction of a proxy)."""
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
