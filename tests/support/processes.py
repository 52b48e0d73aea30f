"""Server processes started with their output logged, waited for until they listen, and stopped."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.support.network import free_port, listens
from tests.support.waiting import wait_until


def _settled(process: subprocess.Popen[Any], port: int, ready: Callable[[], bool]) -> bool:
    """The process ended, or it is ready and listens on ``port`` itself. Asked in that order:
    ``ready()`` is refused at once while nothing listens, whereas ``listens`` reads every TCP
    socket of the host (some 10 ms of CPU on a busy one), which each poll of a start paid."""
    return process.poll() is not None or (ready() and listens(process.pid, port))


def start_listening(
    spawn: Callable[[int], subprocess.Popen[Any]],
    ready: Callable[[], bool],
    log: Callable[[], str],
    *,
    port: int,
    movable: bool,
    timeout: float,
    what: Callable[[], str],
    taken: str = "address already in use",
    tries: int = 3,
) -> subprocess.Popen[Any]:
    """Start a server process with ``spawn(port)`` and wait until that very process listens on
    the port and ``ready()`` holds; returns the process.

    A ``movable`` port is one ``free_port`` gave, which another process (a parallel worker's
    server, a client's ephemeral port) may take before the server binds it: when the server
    exits and its ``log()`` holds ``taken`` (compared case-insensitively), it is started
    again on another port from ``free_port``, ``tries`` times in all. A port that is not
    movable (a restart on the same port) is never moved: losing it fails the test, as any other
    exit does.
    """
    chosen = port
    for _ in range(tries if movable else 1):
        process = spawn(chosen)
        try:
            wait_until(partial(_settled, process, chosen, ready), timeout, what())
        except pytest.fail.Exception as late:
            # Not ready in time (a loaded machine): the caller never gets the process to stop,
            # and its log, in a temporary directory, is often gone before anyone reads it.
            terminate(process, 5.0)
            pytest.fail(f"{late}\nits log:\n{log()[-4000:]}")
        except BaseException:
            terminate(process, 5.0)
            raise
        if process.poll() is None:
            return process
        if not movable or taken.lower() not in log().lower():
            pytest.fail(f"{what()} exited with {process.returncode}: {log()}")
        chosen = free_port()
    pytest.fail(f"no free port for {what()} after {tries} tries: {log()}")


def spawn_logged(
    command: Sequence[str], log_path: Path, *, append: bool = False, **options: Any
) -> subprocess.Popen[bytes]:
    """Start ``command`` (``options`` as ``subprocess.Popen`` takes them) with its output, and
    its errors, written to ``log_path`` (added to it when ``append``)."""
    with log_path.open("ab" if append else "wb") as log:  # the child keeps its own copy
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **options)


def terminate(process: subprocess.Popen[Any], timeout: float) -> int:
    """SIGTERM ``process`` and wait for it, SIGKILL after ``timeout``: its exit status (-9 when
    killed; the status it already had when it had ended)."""
    if process.poll() is not None:
        return process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return -9
