"""The test helpers of ``tests/support/`` that start server processes, run commands or run a
bridge in a thread."""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiohttp import web

from tests.support import (
    ADMIN_TOKEN,
    ThreadedBridge,
    async_wait_until,
    free_port,
    make_settings,
    run_command,
    run_in_process,
    start_listening,
    stop_accepting,
    stop_serving,
    wait_until,
)
from tests.support.socket_origins import with_origins


def test_a_server_not_ready_in_time_is_stopped_before_the_test_fails() -> None:
    """``start_listening`` fails the test when the server never gets ready, with the end of the
    server's log (its file may be gone when someone reads the failure), and leaves no process
    of it running: the caller, failed, never gets it to stop."""
    started: list[subprocess.Popen[bytes]] = []

    def spawn(port: int) -> subprocess.Popen[bytes]:
        # A server that never listens: it sleeps past the test, unless stopped.
        started.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        return started[-1]

    with pytest.raises(
        pytest.fail.Exception, match=r"(?s)timed out.*its log:.*on its lock$"
    ) as failed:
        start_listening(
            spawn,
            lambda: False,
            lambda: "starting\n" * 1000 + "waiting on its lock",
            port=free_port(),
            movable=False,
            timeout=0.5,
            what=lambda: "a server that never listens",
        )
    assert len(str(failed.value)) < 5000  # the log's end, not the whole of it
    try:
        wait_until(lambda: started[0].poll() is not None, 10, "the server stopped")
    finally:
        started[0].kill()
        started[0].wait()


def test_a_command_run_in_process_that_hangs_fails_the_test_saying_so() -> None:
    """A command ``run_in_process`` runs that does not end within its timeout (a client waiting
    on a server that takes the connection and never answers) is interrupted and fails the test,
    naming the command and its time, with the SIGALRM handler as it was; the next runs."""
    before = signal.getsignal(signal.SIGALRM)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(
            pytest.fail.Exception, match=r"alerts list --url \S+ did not end within 0.5 s"
        ):
            run_in_process(
                "alerts", "list", "--url", url, env={"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN}, timeout=0.5
            )
        assert time.monotonic() - started < 5.0
    assert signal.getsignal(signal.SIGALRM) is before
    assert run_in_process("--version").returncode == 0


def test_a_threaded_bridge_ends_what_is_left_on_its_loop_before_the_loop_stops() -> None:
    """A ``ThreadedBridge``'s exit ends its loop as ``asyncio.run`` does: a task still pending
    is cancelled and an async generator begun is closed before the loop stops."""
    closed: list[str] = []

    async def counting() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            closed.append("counting")

    with ThreadedBridge() as server:
        pending = server.call(server.loop.create_task, asyncio.Event().wait())
        begun = counting()

        async def first() -> int:
            return await anext(begun)  # begun on the bridge's loop, which then knows of it

        assert server.run(first()) == 1
    assert pending.cancelled()
    assert closed == ["counting"]


def test_each_bridge_of_make_settings_has_a_state_folder_of_its_own() -> None:
    """make_settings gives each bridge a state folder of its own, not the working copy's
    ./.exesdb-bridge, where a developer's own runs leave their outbox and spool; one given in
    its arguments stands."""
    first, second = make_settings().state_dir, make_settings().state_dir
    assert first != second
    default = (Path.cwd() / ".exesdb-bridge").resolve()
    assert default not in {Path(first).resolve(), Path(second).resolve()}
    assert make_settings(EXESDB_STATE_DIR="/srv/state").state_dir == "/srv/state"


def test_the_suite_runs_alike_in_a_shell_set_up_as_the_readmes() -> None:
    """The README has its readers export EXESDB_ADMIN_TOKEN, SECRET_KEY_BASE and
    EXESDB_HTTP_ADDR; a test run in that shell does not read them (here one that needs the
    admin token unset, as every test's environment has it)."""
    exported = {
        "EXESDB_ADMIN_TOKEN": "0123456789abcdef0123456789abcdef",
        "SECRET_KEY_BASE": "a" * 64,
        "EXESDB_HTTP_ADDR": "127.0.0.1:9571",
    }
    test = (
        "tests/pages/test_acknowledge.py"
        "::test_without_an_admin_token_the_page_says_how_to_enable_acks"
    )
    completed = run_command(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", test],
        exported,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout[-3000:]


def test_the_state_folders_of_make_settings_are_removed_quietly_at_exit() -> None:
    """The folder of make_settings' state folders is removed as the process ends without a
    ResourceWarning, which a run with warnings as errors printed as a traceback."""
    completed = run_command(
        [sys.executable, "-W", "error", "-c", "from tests.support import make_settings\n"
         "print(make_settings().state_dir)"],
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    assert not Path(completed.stdout.strip()).parent.exists()


def test_a_socket_left_unclosed_fails_saying_which_test_made_it_and_where(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A socket left unclosed, in a cycle only a later collection frees, fails whichever test
    runs then with a message naming the test that made it and the lines that did."""
    made = _left_in_a_cycle()
    said: list[Any] = []
    others = sys.unraisablehook  # what else the collection finds fails as it would have

    def unraisable(info: Any) -> None:
        (said.append if id(info.object) == made else others)(info)

    monkeypatch.setattr(sys, "unraisablehook", with_origins(unraisable))
    gc.collect()
    [info] = said
    assert isinstance(info.exc_value, ResourceWarning)
    assert info.err_msg.startswith(f"Exception ignored in the socket made in {request.node.nodeid}")
    assert " < tests/test_support.py:" in info.err_msg
    assert " _left_in_a_cycle < " in info.err_msg


def _left_in_a_cycle() -> int:
    """A socket left unclosed in a reference cycle (freed by the collector alone): its id."""
    sock = socket.socket()
    holder: list[object] = [sock]
    holder.append(holder)
    return id(sock)


async def test_a_server_stopped_in_the_turn_after_an_accept_leaves_no_socket_open() -> None:
    """An aiohttp server stopped (``stop_serving``) in the turn of the loop after it accepted
    connections, before asyncio made their transports, closes them all: none is left open for
    the garbage collector (Python 3.11's asyncio.Server, closed first, failed to make them)."""
    runner = web.AppRunner(web.Application())
    await runner.setup()
    listening = socket.create_server(("127.0.0.1", 0))
    await web.SockSite(runner, listening).start()
    port = listening.getsockname()[1]
    # Connected by the kernel while the loop waits: the next turn accepts them.
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        await asyncio.sleep(0)  # a turn: the accept runs after this coroutine resumes
        await asyncio.sleep(0)  # and this one resumes before the transports are made
        await stop_serving(runner, [listening])
        left = [
            c for c in psutil.Process().net_connections("tcp") if c.laddr and c.laddr.port == port
        ]
        assert left == []
    finally:
        for client in clients:
            client.close()


async def test_an_asyncio_server_stopped_in_the_turn_after_an_accept_leaves_no_socket_open() -> (
    None
):
    """An asyncio server stopped (``stop_accepting``) in the turn of the loop after it accepted
    connections, before their transports were made, leaves none of them open: each is made,
    and closed by its handler (Python 3.11's Server.close, first, failed to make them)."""
    writers: list[asyncio.StreamWriter] = []

    async def serve(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # Connected by the kernel while the loop waits: the next turn accepts them.
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        await asyncio.sleep(0)  # a turn: the accept runs after this coroutine resumes
        await asyncio.sleep(0)  # and this one resumes before the transports are made
        await stop_accepting(server)
        await server.wait_closed()
        await async_wait_until(lambda: len(writers) == 3, 5, "each connection served")
        await asyncio.sleep(0)  # a turn: a closed transport lets its socket go at the next
        left = [
            c for c in psutil.Process().net_connections("tcp") if c.laddr and c.laddr.port == port
        ]
        assert left == []
    finally:
        for client in clients:
            client.close()
