"""Commands of the bridge run as a new process or in this one, in an environment without the
bridge's variables, their output captured.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, NoReturn

import pytest

from tests.support.values import ROOT

# The arguments of a ``run`` that serves: any other ``run ...`` is refused by its parser (or
# answered, for --help) before anything starts.
PLAIN_RUNS: Final = (["run"], ["run", "--demo"])


def is_bridge_variable(name: str) -> bool:
    """Whether the environment variable ``name`` configures the bridge (or its OTLP export)."""
    return name.startswith(("EXESDB_", "OTEL_")) or name == "SECRET_KEY_BASE"


def bridge_env(**overrides: str) -> dict[str, str]:
    """An environment for a bridge process: the current one without the bridge's variables."""
    env = {key: value for key, value in os.environ.items() if not is_bridge_variable(key)}
    env.update(overrides)
    return env


def run_command(
    command: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = 60,
    stdin: str | None = None,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a bridge environment (``bridge_env``) with ``env`` added, its output
    captured; a failed exit status is returned, not raised."""
    return subprocess.run(
        command,
        env=bridge_env(**(env or {})),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_without_terminal(
    command: Sequence[str], env: Mapping[str, str], *, closed_stdin: bool
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as a script or cron job would (``run_command``'s environment): no
    controlling terminal, and stdin empty or, with ``closed_stdin``, closed."""
    # sh closes stdin (<&-) before the command starts: Python then has sys.stdin None.
    closing = ["sh", "-c", 'exec "$@" <&-', "sh"] if closed_stdin else []
    return subprocess.run(
        [*closing, *command],
        env=bridge_env(**env),
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        start_new_session=True,  # no controlling terminal: getpass cannot open /dev/tty
    )


def run_bridge(
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
    stdin: str | None = None,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bridge`` with ``args``, as ``run_command`` runs a command."""
    return run_command(
        [sys.executable, "-m", "bridge", *args], env, timeout=timeout, stdin=stdin, cwd=cwd
    )


class _Hung(BaseException):
    """Raised into a command ``run_in_process`` runs once its time is out: a BaseException, so
    that no ``except Exception`` of the command takes it for a failure of its own."""


def run_in_process(
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path = ROOT,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``exesdb-bridge`` with ``args`` in this process, as ``run_bridge`` runs it in a new
    one, at a fraction of the cost (a new process spends most of its time importing): the same
    entry point (``bridge.__main__.main``), environment (``bridge_env`` with ``env`` added),
    working folder and stdin, for this call only; its output captured, a ``SystemExit`` taken as
    the exit status the process would have had. A command still running after ``timeout``
    seconds (``run_command``'s) is interrupted (SIGALRM: call this from the main thread) and the
    test fails saying so, with what it wrote, rather than hang the suite.

    For the client commands and usage errors (``run``'s too: its parser refuses, or answers
    ``--help``, before anything starts; the SIGTERM handler it sets meanwhile is put back);
    not a plain ``run`` or ``run --demo``, whose server, signal handlers and logging would
    outlive the call (``run_bridge`` runs it in a process of its own).
    """
    from bridge.__main__ import main

    assert list(args) not in PLAIN_RUNS, "run serves until stopped: run it with run_bridge"
    assert threading.current_thread() is threading.main_thread(), "SIGALRM times the command"
    out, err = io.StringIO(), io.StringIO()
    hung = False

    def time_out(signum: int, frame: object) -> NoReturn:
        raise _Hung

    with (
        pytest.MonkeyPatch.context() as patch,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        for name in [name for name in os.environ if is_bridge_variable(name)]:
            patch.delenv(name)
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        patch.chdir(cwd)
        if stdin is not None:
            patch.setattr(sys, "stdin", io.StringIO(stdin))
        terminated = signal.getsignal(signal.SIGTERM)  # `run ...` sets its own
        before = signal.signal(signal.SIGALRM, time_out)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            status = main(list(args))
        except SystemExit as exc:  # as the interpreter ends a process on it
            if exc.code is None or isinstance(exc.code, int):
                status = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
                status = 1
        except _Hung:
            hung = True
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, before)
            signal.signal(signal.SIGTERM, terminated)
    if hung:
        pytest.fail(
            f"exesdb-bridge {' '.join(args)} did not end within {timeout:g} s (hung?);"
            f" stdout so far: {out.getvalue()!r}; stderr so far: {err.getvalue()!r}",
            pytrace=False,
        )
    return subprocess.CompletedProcess(
        ["exesdb-bridge", *args], status, out.getvalue(), err.getvalue()
    )


def check_config(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], **env: str
) -> tuple[int, str, str]:
    """Run ``exesdb-bridge check-config`` in this process with ``env`` set (for the test only);
    its exit status, stdout and stderr."""
    from bridge.cli import main

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        status = main(["check-config"])
    except SystemExit as exc:
        status = int(exc.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err
