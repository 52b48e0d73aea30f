"""A bridge as the tests run it: its settings, an ``exesdb-bridge run`` process, or one serving
in a thread of this process.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import http.client
import resource
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from itertools import count
from pathlib import Path
from typing import Any, Final

from bridge.settings import Settings
from tests.support.commands import bridge_env
from tests.support.http_requests import http_get
from tests.support.network import free_port
from tests.support.processes import spawn_logged, start_listening, terminate
from tests.support.values import ADMIN_TOKEN, TEST_SECRET


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


_STATE_DIRS: Final = count()


@functools.cache
def _state_root() -> str:
    """The folder of the state folders make_settings sets up, made at its first call, not on
    import (a process importing this without setting one up makes none to leave behind), and
    removed as the test process ends."""
    root = tempfile.TemporaryDirectory(prefix="exesdb-tests-state-")
    # Removed explicitly: left to its finalizer, it warns (a traceback where warnings are errors).
    atexit.register(root.cleanup)
    return root.name


def make_settings(**env: str) -> Settings:
    """Settings as if the environment held ``env`` (variable names as keys) over the defaults,
    but a state folder of its own (made when the bridge starts) unless ``env`` names one: the
    default, ./.exesdb-bridge, is the working copy's own, where a developer's ``make run`` on
    Redis may have left a spool every bridge started here would then warn of."""
    state_dir = Path(_state_root()) / str(next(_STATE_DIRS))
    values: dict[str, Any] = {
        "EXESDB_NODE": "node1@host",
        "SECRET_KEY_BASE": TEST_SECRET,
        "EXESDB_STATE_DIR": str(state_dir),
    }
    values.update(env)
    return Settings(**values)


class ThreadedBridge:
    """An in-process bridge (no components unless given) serving on its own event loop in a
    thread, on 127.0.0.1:0 unless ``EXESDB_HTTP_ADDR`` says otherwise, with the wall ``clock``
    given.

    For tests that talk to it synchronously (hypothesis properties, blocking clients, a browser).
    """

    def __init__(
        self,
        components: list[Any] | None = None,
        clock: Callable[[], float] = time.time,
        /,  # so that no setting in ``env`` is taken for them
        **env: str,
    ) -> None:
        from bridge.app import Bridge

        settings = make_settings(**{"EXESDB_HTTP_ADDR": "127.0.0.1:0", **env})
        self.bridge = Bridge(settings, components=components or [], clock=clock)
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
