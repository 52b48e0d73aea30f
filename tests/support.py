"""Helpers shared by the tests: free ports, waiting on conditions, real binaries, bridge processes,
a command run in the test's own process, a clock the test moves, the opens of a file counted,
certificate and key files good and bad, Alertmanager's global section as its dump prints it.

Waits poll a condition until a deadline (never a bare sleep); a test needing a server binary that
is missing skips locally but fails under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import gc
import http.client
import io
import json
import os
import resource
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import termios
import threading
import time
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from functools import cache, partial
from pathlib import Path
from typing import Any, Final, NoReturn

import psutil
import pytest

from bridge.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TEST_SECRET = "test-secret-key-base-with-at-least-32-characters"
ADMIN_TOKEN = "test-admin-token"
# The arguments of a ``run`` that serves: any other ``run ...`` is refused by its parser (or
# answered, for --help) before anything starts.
PLAIN_RUNS: Final = (["run"], ["run", "--demo"])
# Default_Ignorable_Code_Point in the BMP, from Unicode's DerivedCoreProperties.txt (which
# unicodedata does not carry): characters drawn as nothing, so a name of them shows as no one.
DEFAULT_IGNORABLE_BMP = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
)


# Default_Ignorable_Code_Point past the BMP, from the same file.
DEFAULT_IGNORABLE_ASTRAL = ((0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF))


# The code points of those ranges, each looked up at once: the tests over every code point ask
# for each of the 1.1 million (a scan of the ranges per character took most of their time).
_IGNORABLE_BMP: Final = frozenset(
    code for low, high in DEFAULT_IGNORABLE_BMP for code in range(low, high + 1)
)
_IGNORABLE_ASTRAL: Final = frozenset(
    code for low, high in DEFAULT_IGNORABLE_ASTRAL for code in range(low, high + 1)
)


def blank_in_the_pattern(character: str) -> bool:
    """Whether ``character`` is whitespace, a default ignorable character of the BMP or the
    braille blank U+2800: a name of these alone shows as no one, as NAME_PATTERN knows it."""
    return character.isspace() or character == "\u2800" or ord(character) in _IGNORABLE_BMP


def drawn_as_nothing(character: str) -> bool:
    """Whether ``character`` shows nothing of a name made of such: ``blank_in_the_pattern``, a
    default ignorable character past the BMP, or a combining mark (with no letter to sit on)."""
    return (
        blank_in_the_pattern(character)
        or unicodedata.category(character).startswith("M")
        or ord(character) in _IGNORABLE_ASTRAL
    )


# Alertmanager's global section as `amtool config show` prints it: its defaults, and each
# secret hidden as <secret>; with an http_config of a token file and a CA (paths from the
# receivers file's folder) and redirects followed.
ALERTMANAGER_GLOBAL = """
global:
  resolve_timeout: 5m
  http_config:
    authorization:
      credentials_file: token
    tls_config:
      ca_file: ca.pem
    follow_redirects: true
    enable_http2: true
  smtp_from: alerts@example.com
  smtp_hello: localhost
  smtp_smarthost: smtp.example.com:587
  smtp_auth_password: <secret>
  smtp_require_tls: true
  smtp_tls_config:
    insecure_skip_verify: false
  slack_api_url: <secret>
  pagerduty_url: https://events.pagerduty.com/v2/enqueue
  opsgenie_api_url: https://api.opsgenie.com/
  telegram_api_url: https://api.telegram.org
"""


class ManualClock:
    """A clock in seconds that moves only when the test moves it: pass it as ``clock=``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.now += seconds


def nested_map(levels: int) -> dict[str, Any]:
    """A map ``levels`` maps deep: {"a": {"a": ... {}}}."""
    nested: dict[str, Any] = {}
    for _ in range(levels - 1):
        nested = {"a": nested}
    return nested


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


def wait_until(
    condition: Callable[[], Any], timeout: float = 10.0, what: str = "", *, every: float = 0.05
) -> Any:
    """Poll ``condition`` (each ``every`` seconds) until it returns something truthy; fail the
    test after ``timeout``, with the condition's last exception if it raised one."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except Exception as exc:  # e.g. connection refused while a server starts
            last_error = exc
        else:
            if result:
                return result
        time.sleep(every)
    pytest.fail(f"timed out after {timeout}s waiting for {what or condition}: {last_error!r}")


async def async_wait_until(
    condition: Callable[[], Any | Awaitable[Any]], within: float = 10.0, what: str = ""
) -> Any:
    """``wait_until`` for coroutines: awaits the condition when it returns an awaitable."""
    deadline = time.monotonic() + within
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
        except Exception as exc:
            last_error = exc
        else:
            if result:
                return result
        await asyncio.sleep(0.02)
    pytest.fail(f"timed out after {within}s waiting for {what or condition}: {last_error!r}")


async def each_turn_until(
    condition: Callable[[], Any], within: float = 5.0, what: str = ""
) -> None:
    """``async_wait_until`` checked at each turn of the loop, not each 20 ms: for a state a task
    passes through within a few turns (the step it is suspended in), which a poll would miss."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {within}s waiting for {what or condition}")
        await asyncio.sleep(0)  # not a wait: one turn of the loop, then the condition again


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


def require_binary(name: str) -> str:
    """The path of a server binary; skip when missing, except under CI where it fails."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (make test installs it when run as root)")
    return path


def unavailable(message: str) -> NoReturn:
    """Skip a test whose real part this machine cannot provide, except under CI: it fails."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def withhold(path: Path) -> list[str]:
    """Make ``path`` a file the commands a test runs with the prefix returned may not read, as
    a key of the bridge's user's alone (mode 0600) is to an operator: as root, ``path`` becomes
    nobody's and the commands run without the capabilities that let root read any file
    (setpriv); as another user, ``path`` loses its read permission."""
    if os.geteuid() != 0:
        path.chmod(0)
        return []
    if shutil.which("setpriv") is None:
        unavailable("setpriv (util-linux) is needed to run a command as root without its overrides")
    os.chown(path, 65534, 65534)  # nobody's: the bridge's user, say
    path.chmod(0o600)
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


# inotify(7) events: a file opened, and closed after reading only.
_IN_OPEN: Final = 0x20
_IN_CLOSE_NOWRITE: Final = 0x10


class FileOpens:
    """Counts the opens of one file by any process from now on, as the kernel reports them
    (inotify): a test that a file is read once observes the reads themselves, patching nothing.
    A context manager; ``count()`` is the opens so far."""

    def __init__(self, path: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            unavailable(f"inotify cannot be used here: {os.strerror(ctypes.get_errno())}")
        # Closes too: two opens in a row, not read yet, would be merged into one event.
        watch = libc.inotify_add_watch(self._fd, os.fsencode(path), _IN_OPEN | _IN_CLOSE_NOWRITE)
        if watch < 0:
            os.close(self._fd)
            unavailable(f"inotify cannot watch {path}: {os.strerror(ctypes.get_errno())}")
        self._opens = 0

    def count(self) -> int:
        """How often the file was opened since the watch began."""
        while True:
            try:
                events = os.read(self._fd, 65536)
            except BlockingIOError:  # none queued: every open so far is counted
                return self._opens
            offset = 0
            while offset < len(events):
                _watch, mask, _cookie, length = struct.unpack_from("iIII", events, offset)
                offset += struct.calcsize("iIII") + length
                self._opens += bool(mask & _IN_OPEN)

    def __enter__(self) -> FileOpens:
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.close(self._fd)


class FifoReleaser:
    """A FIFO at ``path``, made in place of the file there; a reader still waiting for a writer
    after ``after`` seconds is let go (a writer opens it and closes at once: the reader sees
    its end), so a test of a reader that must not wait fails rather than hanging. A context
    manager; ``released`` counts the readers that had waited."""

    def __init__(self, path: Path, after: float = 3.0) -> None:
        path.unlink(missing_ok=True)
        os.mkfifo(path)
        self.path = path
        self.released = 0
        self._after = after
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._release, daemon=True)

    def _release(self) -> None:
        if self._done.wait(self._after):
            return
        while not self._done.wait(0.05):  # a waiting reader is let go within 50 ms
            try:
                # Succeeds only with a reader waiting (ENXIO otherwise): it sees the end.
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                continue
            self.released += 1

    def __enter__(self) -> FifoReleaser:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()


def http_get(
    url: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """GET ``url`` (``context`` for https); returns (status, body) for any status."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def signed_post(
    bridge_url: str,
    body: bytes,
    *,
    content_type: str = "application/x-ndjson",
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """POST ``body`` to the bridge's signed ingest, signed with ``TEST_SECRET`` now: the
    answer's status and body, whatever the status."""
    from bridge.bus import SIGNATURE_HEADER, Keyring

    request = urllib.request.Request(
        f"{bridge_url}/v1/messages",
        data=body,
        method="POST",
        headers={
            "Content-Type": content_type,
            SIGNATURE_HEADER: Keyring.from_secrets(TEST_SECRET).sign_header(body, int(time.time())),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def post_signed(
    bridge_url: str, body: bytes, timeout: float = 10.0, *, expect: int = 202
) -> tuple[int, str]:
    """POST an NDJSON ``body`` to the bridge's signed ingest, signed with ``TEST_SECRET`` now;
    fails unless the answer's status is ``expect`` (202: accepted). Returns the status and the
    refusal's error code ("" when accepted)."""
    status, said = signed_post(bridge_url, body, timeout=timeout)
    if status < 400:
        answer = status, ""
    else:
        try:
            answer = status, str(json.loads(said)["error"])
        except (ValueError, KeyError, TypeError):  # not the bridge's error_response: show it
            answer = status, said.decode(errors="replace")
    assert answer[0] == expect, f"POST {bridge_url}/v1/messages answered {answer}, not {expect}"
    return answer


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


class BridgeProcess:
    """An ``exesdb-bridge run`` subprocess on a free loopback port."""

    def __init__(
        self,
        args: list[str] | None = None,
        state_dir: Path | None = None,
        *,
        context: ssl.SSLContext | None = None,
        headers: Mapping[str, str] | None = None,
        descriptors: int | None = None,
        **env: str,
    ) -> None:
        self.port = free_port()
        # A descriptor limit (soft and hard) for the process, as ``prlimit --nofile`` sets one.
        self.descriptors = descriptors
        # With a web config file: https (``context`` trusts its CA) and basic auth (``headers``).
        self.context = context
        self.headers = dict(headers or {})
        self.url = f"{'https' if context else 'http'}://127.0.0.1:{self.port}"
        environment = {
            "EXESDB_HTTP_ADDR": f"127.0.0.1:{self.port}",
            "SECRET_KEY_BASE": TEST_SECRET,
            "EXESDB_ADMIN_TOKEN": ADMIN_TOKEN,
            "EXESDB_LOG_LEVEL": "info",
        }
        if state_dir is not None:
            environment["EXESDB_STATE_DIR"] = str(state_dir)
        environment.update(env)
        self.env = bridge_env(**environment)
        self.args = args or []
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    def start(self, log_dir: Path, ready_timeout: float = 20.0) -> BridgeProcess:
        """Start the process and wait until it listens and ``/healthz`` answers; on a port of
        its own choosing taken by another process meanwhile, start again on another."""
        self.process = start_listening(
            lambda port: self._spawn(log_dir, port),
            lambda: http_get(self.url + "/healthz", self.headers, context=self.context)[0] == 200,
            self.log,
            port=self.port,
            # Only a port of its own choosing: one a test gave in EXESDB_HTTP_ADDR stays.
            movable=self.env.get("EXESDB_HTTP_ADDR") == f"127.0.0.1:{self.port}",
            timeout=ready_timeout,
            what=lambda: f"bridge on {self.url} (log: {self.log_path})",
        )
        return self

    def _spawn(self, log_dir: Path, port: int) -> subprocess.Popen[bytes]:
        if self.env.get("EXESDB_HTTP_ADDR") == f"127.0.0.1:{self.port}":
            self.env["EXESDB_HTTP_ADDR"] = f"127.0.0.1:{port}"
        self.port = port
        self.url = f"{'https' if self.context else 'http'}://127.0.0.1:{port}"
        self.log_path = log_dir / f"bridge-{port}.log"
        return spawn_logged(
            [sys.executable, "-m", "bridge", "run", *self.args],
            self.log_path,
            env=self.env,
            cwd=str(log_dir),
            preexec_fn=self._limit_descriptors if self.descriptors else None,
        )

    def _limit_descriptors(self) -> None:
        assert self.descriptors is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.descriptors, self.descriptors))

    def log(self) -> str:
        """What the process printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit status (SIGKILL after ``timeout``)."""
        return 0 if self.process is None else terminate(self.process, timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def ingesting_bridge(folder: Path) -> Iterator[BridgeProcess]:
    """A bridge taking signed messages and broadcasting its health every 100 ms (so ``tail``
    has a message to print at once), its alert outbox in ``folder``'s state directory."""
    process = BridgeProcess(
        state_dir=folder / "state", EXESDB_INGEST="true", EXESDB_HEALTH_BROADCAST_INTERVAL="100"
    )
    process.start(folder)
    try:
        yield process
    finally:
        process.stop()


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


@cache
def rsa_key_pem() -> bytes:
    """An RSA private key as PEM (PKCS#8), another type than trustme's EC keys; one per
    process (a new one takes 60 ms)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pem_files(directory: Path) -> dict[str, str]:
    """Certificate and key files of every kind, good and bad, in ``directory``, by name:
    ``client.key`` is ``client.pem``'s key (EC), ``other.key`` another certificate's,
    ``rsa.key`` an RSA key (another type), ``encrypted.key`` is ``client.key`` under the pass
    phrase ``pass phrase``, and ``labelled-ca.pem`` is ``ca.pem`` after a label in UTF-8, as
    p11-kit writes a system bundle; ``trusted-ca.pem`` and ``trusted-client.pem`` are ``ca.pem``
    and ``client.pem`` as ``openssl x509 -trustout`` writes them (``-----BEGIN TRUSTED
    CERTIFICATE-----``), ``openssh.key`` is ``client.key`` in OpenSSH's own format."""
    import trustme
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509 import load_pem_x509_certificate

    ca = trustme.CA()
    leaf = ca.issue_cert("exesdb-bridge")
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    der = load_pem_x509_certificate(ca.cert_pem.bytes()).public_bytes(serialization.Encoding.DER)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pass phrase"),
    )
    contents = {
        "ca.pem": ca.cert_pem.bytes(),
        "client.pem": leaf.cert_chain_pems[0].bytes(),
        "client.key": leaf.private_key_pem.bytes(),
        "other.key": ca.issue_cert("another").private_key_pem.bytes(),
        "combined.pem": leaf.private_key_pem.bytes() + leaf.cert_chain_pems[0].bytes(),
        "rsa.key": rsa_key_pem(),
        "labelled-ca.pem": "# Főtanúsítvány\n".encode() + ca.cert_pem.bytes(),
        "ca.der": der,
        "encrypted.key": encrypted,
        "notes.txt": b"not a certificate\n",
        "trusted-ca.pem": _trusted(ca.cert_pem.bytes()),
        "trusted-client.pem": _trusted(leaf.cert_chain_pems[0].bytes()),
        "openssh.key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
    }
    files = {name: str(directory / name) for name in contents}
    for name, data in contents.items():
        (directory / name).write_bytes(data)
    files["missing.pem"] = str(directory / "missing.pem")
    files["directory"] = str(directory)
    return files


# The names damaged_ca_files writes, for tests parametrized over them.
DAMAGED_CA_NAMES: Final = (
    "bad-base64.pem",
    "bad-der.pem",
    "cut-short.pem",
    "no-end.pem",
    "no-end-then-key.pem",
    "bad-crl.pem",
)


def damaged_ca_files(directory: Path) -> dict[str, tuple[str, str]]:
    """CA files in ``directory`` that OpenSSL refuses though each holds a PEM certificate, by
    name, each with what a refusal says of it: a good CA then one whose base64 is broken (line
    2 of the second), a labelled one whose base64 reads but is no certificate (DER), a TRUSTED
    CERTIFICATE cut short (a line of its base64 lost), a good CA then one whose END line was
    lost (a file or a paste cut off), one so cut off before a key and a good CA, and a good CA
    beside a damaged CRL."""
    import base64

    files = pem_files(directory)
    ca = Path(files["ca.pem"]).read_text()
    lines = ca.splitlines(keepends=True)
    broken = "".join([lines[0], "!" + lines[1][1:], *lines[2:]])
    not_der = f"{lines[0]}{base64.b64encode(b'no DER here!').decode()}\n{lines[-1]}"
    trusted = _trusted(ca.encode()).decode().splitlines(keepends=True)
    damaged = "holds a PEM certificate that cannot be read"
    contents = {
        "bad-base64.pem": (
            ca + broken,
            f"{damaged} (line {len(lines) + 1}: its base64 is damaged)",
        ),
        "bad-der.pem": (
            "# our CA\n" + not_der,
            f"{damaged} (line 2: its DER is no X.509 certificate)",
        ),
        "cut-short.pem": (
            "".join(trusted[:2] + trusted[3:]),
            f"{damaged} (line 1: its DER is no X.509 certificate)",
        ),
        "no-end.pem": (
            ca + "".join(lines[:-1]),
            f"{damaged} (line {len(lines) + 1}: no -----END CERTIFICATE----- line after it)",
        ),
        "no-end-then-key.pem": (
            "".join(lines[:-1]) + Path(files["client.key"]).read_text() + ca,
            f"{damaged} (line 1: no -----END CERTIFICATE----- line after it)",
        ),
        "bad-crl.pem": (
            ca + "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
            "cannot be read by OpenSSL (PEM lib), though each PEM certificate in it reads alone",
        ),
    }
    for name, (text, _) in contents.items():
        (directory / name).write_text(text)
    return {name: (str(directory / name), said) for name, (_, said) in contents.items()}


def _trusted(certificate: bytes) -> bytes:
    """``certificate`` (PEM) as ``openssl x509 -trustout`` writes one with no trust settings:
    the same body under OpenSSL's own label."""
    return certificate.replace(b" CERTIFICATE-----", b" TRUSTED CERTIFICATE-----")


def make_settings(**env: str) -> Settings:
    """Settings as if the environment held ``env`` (variable names as keys) over the defaults."""
    values: dict[str, Any] = {"EXESDB_NODE": "node1@host", "SECRET_KEY_BASE": TEST_SECRET}
    values.update(env)
    return Settings(**values)


class ThreadedBridge:
    """An in-process bridge (no components unless given) serving on its own event loop in a
    thread, on 127.0.0.1:0 unless ``EXESDB_HTTP_ADDR`` says otherwise.

    For tests that talk to it synchronously (hypothesis properties, blocking clients, a browser).
    """

    def __init__(self, components: list[Any] | None = None, **env: str) -> None:
        from bridge.app import Bridge

        settings = make_settings(**{"EXESDB_HTTP_ADDR": "127.0.0.1:0", **env})
        self.bridge = Bridge(settings, components=components or [])
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bridge", daemon=True)

    def __enter__(self) -> ThreadedBridge:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.bridge.start(), self.loop).result(30)
        assert self.bridge.address is not None
        self.host, self.port = self.bridge.address
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._wind_down(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()

    async def _wind_down(self) -> None:
        """The bridge closed, then, as ``asyncio.run`` ends its loop, the tasks left cancelled
        and awaited, the async generators begun closed and the executor's threads joined: what
        a stopped loop leaves is found unfinished when collected, in some later test."""
        await self.bridge.aclose()
        current = asyncio.current_task()
        left = [task for task in asyncio.all_tasks() if task is not current]
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        await self.loop.shutdown_asyncgens()
        await self.loop.shutdown_default_executor()

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{self.host}:{self.port}"

    def run(self, awaitable: Awaitable[Any], timeout: float = 30.0) -> Any:
        """Await ``awaitable`` on the bridge's loop and return its result."""

        async def wrapped() -> Any:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn(*args)`` on the bridge's loop (where the bus lives) and return its result."""

        async def wrapped() -> Any:
            return fn(*args)

        return self.run(wrapped())

    def post(self, body: bytes, headers: dict[str, str | bytes], path: str = "/v1/messages") -> int:
        """POST ``body`` to ``path`` with exactly ``headers``; returns the status."""
        return self.post_answer(body, headers, path)[0]

    def post_answer(
        self, body: bytes, headers: dict[str, str | bytes], path: str = "/v1/messages"
    ) -> tuple[int, bytes]:
        """POST ``body`` to ``path`` with exactly ``headers``; returns the status and body."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.putrequest("POST", path, skip_accept_encoding=True)
            connection.putheader("Content-Length", str(len(body)))
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def alive(self) -> bool:
        """The server thread runs and /healthz answers 200."""
        status, _ = http_get(f"http://{self.host}:{self.port}/healthz")
        return self.thread.is_alive() and status == 200


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


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    """The cycle collector off (after a collection), as the bridge's raised thresholds leave it
    for hundreds of requests: what a cycle holds stays held, what nothing holds is let go."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def alive(kind: type, which: Callable[[Any], bool] = lambda _: True) -> int:
    """How many objects of ``kind`` (those ``which`` picks) are alive."""
    return sum(1 for found in gc.get_objects() if isinstance(found, kind) and which(found))
