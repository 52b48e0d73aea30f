"""A real redis-server for integration tests, restartable on the same port.

``RedisServer().start(workdir)`` runs ``redis-server --port <free> --bind 127.0.0.1 --save ''
--appendonly no`` (nothing persists: a restart is a Redis that lost everything, the hardest
case), waits until that process listens and answers PING (moving to another port when another
process took the free one first), and ``url`` is its ``redis://`` address. ``stop()`` then
``start()`` again, on the same port, simulates an outage; ``kill()`` a crash.
``RedisServer(tls=True)`` serves TLS only, with a self-signed certificate made by openssl, at a
``rediss://`` URL that trusts it; ``rotate_certificate()`` serves a new one (a new CA) from then on.
``client()`` is a plain synchronous client for writing entries straight into Redis. Tests use
the ``redis_server`` fixture, a factory whose servers are stopped afterwards.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import redis

from tests.support import free_port, require_binary, spawn_logged, start_listening, terminate

__all__ = ["RedisServer", "redis_server"]

BINARY = "redis-server"


class RedisServer:
    """One redis-server process on a free loopback port."""

    def __init__(
        self, port: int | None = None, *, tls: bool = False, options: Sequence[str] = ()
    ) -> None:
        """``options``: more of redis-server's arguments, after (over) the helper's own."""
        self.binary = require_binary(BINARY)
        self.options = tuple(options)
        self.port = port or free_port()
        # Only a port of its own choosing, before its first start: a restart keeps its port.
        self.movable = port is None
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None
        self.workdir: Path | None = None
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        """The server's address (``rediss://`` trusting its certificate when TLS)."""
        if self.tls and self.workdir is not None:
            return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.workdir / 'cert.pem'}"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, workdir: Path | None = None, ready_timeout: float = 10.0) -> RedisServer:
        """Start (or start again, on the same port) and wait until this process listens and
        PING answers."""
        if workdir is not None:
            self.workdir = workdir
        assert self.workdir is not None, "the first start needs a workdir"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "redis.log"
        self.process = start_listening(
            self._spawn,
            self.ping,
            self.log,
            port=self.port,
            movable=self.movable,
            timeout=ready_timeout,
            what=lambda: f"redis-server on port {self.port} (log: {self.log_path})",
        )
        self.movable = False
        return self

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        assert self.workdir is not None
        assert self.log_path is not None
        self.port = port
        listen = ["--port", str(port)]
        if self.tls:
            cert = self._certificate()
            listen = ["--port", "0", "--tls-port", str(port), "--tls-auth-clients", "no"]
            listen += [
                "--tls-cert-file",
                str(cert),
                "--tls-key-file",
                str(cert.with_name("key.pem")),
            ]
            listen += ["--tls-ca-cert-file", str(cert)]
        command = [self.binary, *listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += self.options
        return spawn_logged([*command, "--dir", str(self.workdir)], self.log_path, append=True)

    def rotate_certificate(self) -> bytes:
        """Serve a new self-signed certificate (a new CA), as a rotation does, and drop every
        client's connection, as a restart would, keeping the data; returns the new certificate,
        which ``url`` and ``client()`` trust from then on."""
        assert self.workdir is not None
        cert, key = self.workdir / "cert-next.pem", self.workdir / "key-next.pem"
        _self_signed(cert, key)
        with self.client() as client:  # together: a certificate and key that match
            client.config_set(
                "tls-cert-file", str(cert), "tls-key-file", str(key), "tls-ca-cert-file", str(cert)
            )
        (self.workdir / "cert.pem").write_bytes(cert.read_bytes())  # what a restart serves
        (self.workdir / "key.pem").write_bytes(key.read_bytes())
        with self.client() as client:  # trusting the new one; not dropped itself (SKIPME)
            client.client_kill_filter(_type="normal")
        return cert.read_bytes()

    def _certificate(self) -> Path:
        """A self-signed certificate for 127.0.0.1 (made once, with openssl)."""
        assert self.workdir is not None
        cert = self.workdir / "cert.pem"
        if not cert.exists():
            _self_signed(cert, cert.with_name("key.pem"))
        return cert

    def log(self) -> str:
        """What the server printed so far (every start's, in turn)."""
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def ping(self) -> bool:
        """True when the server answers."""
        with self.client() as client:
            return bool(client.ping())

    def client(self) -> redis.Redis:
        """A synchronous client (close it, or use it as a context manager)."""
        return redis.Redis.from_url(self.url, socket_timeout=5.0)

    @property
    def running(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server (killed after ``timeout``); data is lost (nothing persists)."""
        if self.process is not None:
            terminate(self.process, timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait()

    def restart(self) -> RedisServer:
        """Stop and start again on the same port, empty."""
        self.stop()
        return self.start()


def _self_signed(cert: Path, key: Path) -> None:
    """Make a self-signed certificate for 127.0.0.1 at ``cert``, its key at ``key``, with
    openssl."""
    subprocess.run(
        [
            require_binary("openssl"),
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    """``redis_server()`` starts one redis-server; every one started is stopped afterwards."""
    started: list[RedisServer] = []

    def start() -> RedisServer:
        server = RedisServer()
        started.append(server)
        return server.start(tmp_path / f"redis-{server.port}")

    yield start
    for server in started:
        server.stop()
