"""How the tests of ``tests/cli`` run the exesdb-bridge command (docs/cli.md).

``run`` as a real process (its usage errors, refused before it starts, aside); the client
commands in the test's own process (``run_in_process``), with a real process for each where the
process is the point (the console script, Ctrl-C, a pipe, stdin), and an in-process bridge to
talk to where the bridge is not what a test is about."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from subprocess import Popen

from tests.support import (
    PLAIN_RUNS,
    ROOT,
    BridgeProcess,
    ThreadedBridge,
    bridge_env,
    run_bridge,
    run_in_process,
)

Completed = subprocess.CompletedProcess[str]


ALERT_FIELDS = [
    "-f", "severity=critical",
    "-f", "category=system",
    "-f", "title=Node down",
    "-f", "description=node3 stopped answering",
    "-f", "source=cli-test",
]  # fmt: skip


def cli(*args: str, stdin: str | None = None, cwd: Path = ROOT, **env: str) -> Completed:
    """Run ``exesdb-bridge`` with the given arguments and environment in this process (a plain
    ``run`` or ``run --demo`` in a process of its own, since it serves; ``run``'s usage errors
    here, refused before anything starts); capture its output."""
    if list(args) in PLAIN_RUNS:
        return run_bridge(*args, env=env, stdin=stdin, cwd=cwd)
    return run_in_process(*args, env=env, stdin=stdin, cwd=cwd)


def cli_process(*args: str, stdin: str | None = None, cwd: Path = ROOT, **env: str) -> Completed:
    """``cli`` in a real ``python -m bridge`` process, where the process is what is tested."""
    return run_bridge(*args, env=env, stdin=stdin, cwd=cwd)


# Starts an in-process bridge to talk to: ``bridges(folder, **settings)``.
Bridges = Callable[..., ThreadedBridge]


def start_bridge_process(
    processes: list[BridgeProcess], tmp_path: Path, **env: str
) -> BridgeProcess:
    """Start a ``BridgeProcess`` with its state in ``tmp_path``'s ``state`` and ``env`` added to its
    environment; it joins ``processes`` (the ``bridge_processes`` fixture's list) to be stopped."""
    process = BridgeProcess(state_dir=tmp_path / "state")
    process.env.update(env)
    processes.append(process)
    return process.start(tmp_path)


def terminal_output(master: int, until: bytes, within: float = 30.0) -> bytes:
    """What the program on the pseudo-terminal ``master`` wrote, read until ``until`` is in it
    or the program closed the terminal (EOF), within ``within`` seconds."""
    output, deadline = b"", time.monotonic() + within
    while until not in output and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], deadline - time.monotonic())
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: every end of the terminal's other side is closed
            break
        if not chunk:
            break
        output += chunk
    return output


@contextmanager
def command_at_a_terminal(*args: str, **env: str) -> Iterator[tuple[Popen[bytes], int]]:
    """``exesdb-bridge *args`` (``env`` added to the tests' environment) started with a new
    pseudo-terminal as its stdin, stdout, stderr and controlling terminal: the process and the
    terminal's master end, to read with ``terminal_output`` and type into; on leaving, the
    process is killed if still running and the terminal closed."""
    master, slave = os.openpty()
    try:
        process = Popen(
            [sys.executable, "-m", "bridge", *args],
            env=bridge_env(**env),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=_at_a_terminal,
        )
    finally:
        os.close(slave)
    try:
        yield process, master
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


def _at_a_terminal() -> None:
    """In the child: the pseudo-terminal becomes the new session's controlling one (/dev/tty,
    where getpass asks, and where Ctrl-C comes from), and Ctrl-C interrupts, as at a shell's
    prompt, even when the suite runs in the background (``&`` ignores SIGINT, and a child
    keeps an ignored signal ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
