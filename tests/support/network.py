"""Loopback ports and sockets: a free port, a refusing one, who listens, what a client that
reads nothing is sent, and a server's stop that leaves no accepted socket open.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
import termios
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol

import psutil
from aiohttp import web

from tests.support.waiting import async_wait_until


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port held bound but not listening while in use: a connection to it is
    refused, and no other process can take it meanwhile (as one free a moment ago could be)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


def unread_by_server(port: int) -> int:
    """The bytes sent to the server listening on ``port`` in this process that it has not read
    yet, over all its connections (Linux's FIONREAD on each): 0 once it read all sent so far."""
    unread = 0
    for found in psutil.Process().net_connections("tcp"):
        if found.raddr and found.laddr.port == port:
            answer = fcntl.ioctl(found.fd, termios.FIONREAD, bytes(4))
            unread += int(struct.unpack("i", answer)[0])
    return unread


def listens(pid: int, port: int) -> bool:
    """True when process ``pid`` itself listens on TCP ``port`` of 127.0.0.1 (not another
    process that took the port first and answers a readiness probe in its place)."""
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr.port == port
        for c in psutil.Process(pid).net_connections("tcp")
    )


async def answered_unread(
    address: tuple[str, int], request: bytes, count: int, answered: Callable[[], int]
) -> int:
    """How many of ``count`` copies of ``request``, pipelined on one connection to ``address``
    by a client that reads nothing (a 4 KiB receive buffer), the server has answered
    (``answered``) once that number has stood still for a second."""
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel keeps little
    client.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(client, address)
    seen = [-1, time.monotonic()]  # the number answered, and since when

    def still() -> bool:
        if answered() != seen[0]:
            seen[:] = [answered(), time.monotonic()]
        return time.monotonic() - seen[1] >= 1.0

    try:
        await loop.sock_sendall(client, request * count)
        await async_wait_until(still, within=60, what="the answers to stop")
    finally:
        client.close()
    return int(seen[0])


def unread_bound(size: int) -> int:
    """How many answers of ``size`` bytes the kernel and aiohttp take at most for a client that
    reads none (``answered_unread``): the server's send buffer at its largest (Linux's
    ``tcp_wmem``), the client's receive buffer and what aiohttp keeps before it waits for the
    socket, each of those two some 64 KiB at most, and the answers in the making."""
    largest = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    return (largest + 3 * 65_536) // size + 2


class _Listening(Protocol):
    """A listening socket, or asyncio's view of one (``Server.sockets``)."""

    def fileno(self) -> int: ...


async def stop_accepting(server: asyncio.Server) -> None:
    """``server`` closed once the connections it accepted have their transports, so that none
    is left open when it stops while clients connect (a bridge reconnecting, or retrying a
    delivery).

    Python 3.11's ``asyncio.Server`` makes an accepted connection's transport a turn of the loop
    after the accept, and, closed meanwhile, fails that on an assertion, leaving the socket open
    for the garbage collector to warn about in a later test: accepting stops first, and the loop
    turns until those transports are made.
    """
    await _accepts_ended(server.sockets)
    server.close()


async def stop_serving(runner: web.AppRunner, listening: Iterable[socket.socket]) -> None:
    """``runner`` cleaned up once the connections accepted on ``listening`` (its sites' sockets,
    which aiohttp does not show) have their transports: ``stop_accepting`` for aiohttp, whose
    cleanup closes its ``asyncio.Server`` first."""
    await _accepts_ended(listening)
    await runner.cleanup()


async def _accepts_ended(listening: Iterable[_Listening]) -> None:
    loop = asyncio.get_running_loop()
    for sock in listening:
        loop.remove_reader(sock.fileno())  # no accept from now on
    for _ in range(2):
        await asyncio.sleep(0)  # turns, not time: the accepts taken make their transports
