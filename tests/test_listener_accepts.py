"""The HTTP listener's refused accepts: the descriptor limit or the system out of what an accept
needs is told in a warning naming what ran out, at most once a minute with a count of those
left out, and accepting resumes."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import pytest

from bridge.listener import (
    ConnectionGuard,
    Limits,
    Listener,
)
from bridge.listener.sockets import bind
from tests.listener_support import Serve, listener_log, no_descriptor_left, serve
from tests.support import async_wait_until

__all__ = ["serve"]  # the fixture, imported for the tests below


async def test_an_accept_the_descriptor_limit_refuses_is_one_warning_then_accepting_resumes(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """With no descriptor left (the soft limit lowered to the lowest free one), the connections
    waiting are not accepted: one warning naming the fix, no traceback; the listener tries again
    a second later and, the limit back, serves them."""
    bridge = await serve()
    assert bridge.address is not None
    loop = asyncio.get_running_loop()
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(socket.socket()) for _ in range(3)]  # made before
        with caplog.at_level(logging.WARNING), no_descriptor_left():
            for client in clients:
                client.setblocking(False)
                await loop.sock_connect(client, bridge.address[:2])  # taken by the kernel
            await async_wait_until(
                lambda: "out of file descriptors" in caplog.text, 10, "the warning"
            )
        [warning] = [r for r in caplog.records if "out of file descriptors" in r.getMessage()]
        assert (warning.levelname, warning.exc_info) == ("WARNING", None)
        assert "LimitNOFILE" in warning.getMessage()
        assert "Traceback" not in caplog.text
        for client in clients:
            await loop.sock_sendall(client, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await asyncio.wait_for(loop.sock_recv(client, 1024), 10)
            assert answer.startswith(b"HTTP/1.1 200 OK")


async def test_refused_accepts_are_told_once_a_minute_with_the_count_of_those_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Accepts the descriptor limit refuses (one a second while clients wait) are told in one
    warning; within a minute of it they are left out and counted, and the next warning, a
    minute on, says how many."""
    times = [100.0, 159.0, 159.0, 159.0, 160.0]  # what the listener's clock says at each refusal
    asked: list[float] = []

    def clock() -> float:
        asked.append(times.pop(0) if len(times) > 1 else times[0])
        return asked[-1]

    guard = ConnectionGuard(Limits(1.0, 1.0, 1.0, 10, 1.0, 1_048_576))
    listener = Listener(guard, await bind("127.0.0.1", 0), asyncio.Protocol, clock=clock)
    loop = asyncio.get_running_loop()
    with contextlib.ExitStack() as stack:
        stack.callback(listener.close)
        await listener.start_serving()
        client = stack.enter_context(socket.socket())  # made before the limit is lowered
        with caplog.at_level(logging.WARNING, logger="bridge.listener"), no_descriptor_left():
            client.setblocking(False)
            await loop.sock_connect(client, listener.sockets[0].getsockname())
            # The listener tries again a second after each refusal.
            await async_wait_until(lambda: len(asked) >= 5, 15, "five refused accepts")
    first, second = (r.getMessage() for r in listener_log(caplog))
    assert first.startswith("the HTTP listener is out of file descriptors (")
    assert first.endswith("or lower EXESDB_HTTP_MAX_CONNECTIONS")
    assert second.endswith(
        "or lower EXESDB_HTTP_MAX_CONNECTIONS (3 more accepts refused since the last warning)"
    )
    assert all(r.exc_info is None for r in caplog.records)


@pytest.mark.parametrize(
    ("code", "told"),
    [
        (
            errno.EMFILE,
            "out of file descriptors (Too many open files): it stops accepting for a "
            "second; raise the descriptor limit (LimitNOFILE",
        ),
        (errno.ENFILE, "finds the system out of file descriptors"),
        (errno.ENOBUFS, "finds the system out of memory for sockets"),
        (errno.ENOMEM, "finds the system out of memory for sockets"),
    ],
)
async def test_an_accept_the_system_refuses_is_told_by_what_ran_out(
    caplog: pytest.LogCaptureFixture, code: int, told: str
) -> None:
    """The warning for a refused accept names what ran out: the process's descriptors (raise
    LimitNOFILE), the system's, or its memory for sockets."""
    refusing = _Refusing(code)
    refusing.bind(("127.0.0.1", 0))
    listener = Listener(
        ConnectionGuard(Limits(1.0, 1.0, 1.0, 10, 1.0, 1_048_576)), [refusing], asyncio.Protocol
    )
    with contextlib.ExitStack() as stack:
        stack.callback(listener.close)
        await listener.start_serving()
        client = stack.enter_context(socket.socket())
        client.setblocking(False)
        with caplog.at_level(logging.WARNING, logger="bridge.listener"):
            await asyncio.get_running_loop().sock_connect(client, refusing.getsockname())
            await async_wait_until(lambda: listener_log(caplog), 10, "the warning")
    [warning] = listener_log(caplog)
    assert told in warning.getMessage()
    assert ("LimitNOFILE" in warning.getMessage()) is (code == errno.EMFILE)


class _Refusing(socket.socket):
    """A listening socket each of whose accepts the system refuses with ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code

    def accept(self) -> tuple[socket.socket, Any]:
        raise OSError(self.code, os.strerror(self.code))


async def test_a_connection_accepted_in_the_turn_the_listener_closes_is_closed_with_it() -> None:
    """A connection accepted just before the listener closes, in the same turn of the loop (the
    stop's task queued ahead of the connection's own first step), is closed with the listener,
    not left open for the garbage collector to warn about in a later test."""
    loop = asyncio.get_running_loop()
    listening = _ClosingAtAccept()
    listening.bind(("127.0.0.1", 0))
    listener = Listener(
        ConnectionGuard(Limits(1.0, 1.0, 1.0, 10, 1.0, 1_048_576)), [listening], asyncio.Protocol
    )
    listening.at_accept = lambda: loop.call_soon(listener.close)
    with contextlib.ExitStack() as stack:
        stack.callback(listener.close)
        await listener.start_serving()
        client = stack.enter_context(socket.socket())
        client.setblocking(False)
        await loop.sock_connect(client, listening.getsockname())
        await async_wait_until(lambda: listening.accepted, 10, "the accept")
        [accepted] = listening.accepted
        await async_wait_until(lambda: accepted.fileno() == -1, 5, "the accepted socket closed")


class _ClosingAtAccept(socket.socket):
    """A listening socket that calls ``at_accept`` as it accepts (what it queues runs before
    the connection's own first step), and keeps what it accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.setblocking(False)  # as bind() makes them: the listener accepts until none waits
        self.at_accept: Callable[[], object] = lambda: None
        self.accepted: list[socket.socket] = []

    def accept(self) -> tuple[socket.socket, Any]:
        sock, address = super().accept()
        self.at_accept()
        self.accepted.append(sock)
        return sock, address
