"""The README's shell blocks, run as a new user would run them, on a port that is not 9570.

Each line of each ``sh`` block runs in bash, in order, with the environment the earlier lines
left (``source`` and ``export`` carry over, as in one terminal). A line that starts a bridge
(``exesdb-bridge run``, ``make run``) runs in the background, as the README's "then, in another
shell" says, until it answers ``/healthz`` at ``EXESDB_HTTP_ADDR``; at the end of its block it
gets SIGTERM and must stop cleanly. So does a line that starts Alertmanager (Debian's
``prometheus-alertmanager``, as the README names it), until it answers ``/-/ready``. Every other
line must exit 0. Only what the user would
choose differently is changed (``REWRITES``), and only what cannot run here is left out
(``SKIPPED``, each with its reason).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.doc_text import README, fenced
from tests.integration.servers.redis import RedisServer, redis_server
from tests.support import ROOT, bridge_env, free_port, http_get, require_binary, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["redis_server"]

# Lines left out, by design: why each cannot run inside this test.
SKIPPED = {
    "make test": "it is the run this test is part of",
    "docker compose -f deploy/docker-compose.yml up --build": (
        "no Docker here; the compose file is checked by tests/deploy and the image is built and "
        "run with podman by tests/integration/test_container.py"
    ),
}
# What a user picks for themselves: another free port, the Redis they have.
REWRITES: dict[str, Callable[[str, Session], str]] = {
    "export EXESDB_HTTP_ADDR=": lambda line, s: re.sub(r":9570\b", f":{s.port}", line),
    "EXESDB_BUS=redis://": lambda line, s: line.replace("redis://127.0.0.1:6379/0", s.redis_url),
    # The test keeps the other bridges' state out of the checkout; a user has no
    # EXESDB_STATE_DIR, so the demo keeps to ./.exesdb-bridge-demo (here in the test's folder),
    # apart from a real bridge's, as it must.
    "exesdb-bridge run --demo": lambda line, s: f"env -u EXESDB_STATE_DIR {line}",
    # Alertmanager on another free port, and the bridge posting to it there.
    "prometheus-alertmanager ": lambda line, s: re.sub(r":9093\b", f":{s.alertmanager_port}", line),
    "EXESDB_ALERTMANAGER_URL=": lambda line, s: re.sub(r":9093\b", f":{s.alertmanager_port}", line),
}
SERVES = re.compile(r"(^|\s)(exesdb-bridge run|make run)\b")
ALERTMANAGER = "prometheus-alertmanager "


def _lines(block: str) -> Iterator[str]:
    """The commands of a block: continuations joined, comments and blank lines dropped."""
    for line in block.replace("\\\n", " ").splitlines():
        command = re.sub(r"\s+#.*$", "", line).strip()
        if command and not command.startswith("#"):
            yield command


@dataclass
class Session:
    """One user's terminal: its environment and working folder, and the bridges it started."""

    cwd: Path
    port: int
    redis_url: str
    env: dict[str, str]
    alertmanager_port: int = field(default_factory=free_port)
    ran: list[str] = field(default_factory=list)
    servers: list[tuple[str, subprocess.Popen[str]]] = field(default_factory=list)
    alertmanagers: list[subprocess.Popen[str]] = field(default_factory=list)

    def run(self, line: str) -> None:
        """Run one line; keep the environment it leaves behind."""
        for prefix, rewrite in REWRITES.items():
            if line.startswith(prefix):
                line = rewrite(line, self)
        if line.startswith(ALERTMANAGER):
            self._serve_alertmanager(line)
            return
        if SERVES.search(line):
            self._serve(line)
            return
        dump = self.cwd / "env.after"
        completed = subprocess.run(
            ["bash", "-c", f'{line}\nstatus=$?\nenv -0 > "{dump}"\nexit $status'],
            env=self.env,
            cwd=self._folder(line),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert completed.returncode == 0, f"{line!r} failed:\n{completed.stdout}{completed.stderr}"
        self.env = dict(item.split("=", 1) for item in dump.read_text().split("\0") if "=" in item)
        self.ran.append(line)

    def _folder(self, line: str) -> Path:
        return ROOT if line.startswith(("make ", "source ", ALERTMANAGER)) else self.cwd

    def _serve_alertmanager(self, line: str) -> None:
        """Start Alertmanager as the line says, in the background, until it is ready."""
        require_binary(ALERTMANAGER.strip())
        log = self.cwd / f"alertmanager-{len(self.alertmanagers)}.log"
        with log.open("w") as output:  # the child keeps its own descriptor
            process = subprocess.Popen(
                ["bash", "-c", f"exec {line}"],
                env={**self.env, "TMPDIR": str(self.cwd)},  # its mktemp -d storage goes here
                cwd=self._folder(line),
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.alertmanagers.append(process)
        url = f"http://127.0.0.1:{self.alertmanager_port}/-/ready"

        def ready() -> bool:
            if process.poll() is not None:
                pytest.fail(f"{line!r} exited {process.returncode}:\n{log.read_text()}")
            return http_get(url, timeout=2)[0] == 200

        wait_until(ready, 30, f"{line!r} ready at {url}")
        self.ran.append(line)

    def _serve(self, line: str) -> None:
        log = self.cwd / f"server-{len(self.servers)}.log"
        with log.open("w") as output:  # the child keeps its own descriptor
            process = subprocess.Popen(
                ["bash", "-c", line],
                env=self.env,
                cwd=self._folder(line),
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,  # make and its bridge get SIGTERM together
            )
        self.servers.append((line, process))
        url = "http://" + self.env["EXESDB_HTTP_ADDR"].replace("0.0.0.0", "127.0.0.1")

        def healthy() -> bool:
            if process.poll() is not None:
                pytest.fail(f"{line!r} exited {process.returncode}:\n{log.read_text()}")
            return http_get(url + "/healthz", timeout=2)[0] == 200

        wait_until(healthy, 60, f"{line!r} answering at {url}")
        self.ran.append(line)

    def stop_servers(self) -> None:
        """SIGTERM every bridge the block started; each stops cleanly."""
        for line, process in self.servers:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
            log = (self.cwd / f"server-{self.servers.index((line, process))}.log").read_text()
            assert "Traceback" not in log, f"{line!r}:\n{log}"
            assert "stopping" in log, f"{line!r} did not stop as asked:\n{log}"
        self.servers.clear()
        for process in self.alertmanagers:
            process.terminate()
            assert process.wait(30) == 0, "Alertmanager did not stop cleanly on SIGTERM"
        self.alertmanagers.clear()


def test_every_readme_shell_block_runs_as_written(
    tmp_path: Path, redis_server: Callable[..., RedisServer]
) -> None:
    """Each line of the README's shell blocks runs (on a free port, with a real Redis), except
    the few SKIPPED by design; bridges it starts answer and stop cleanly."""
    redis = redis_server()
    port = free_port()
    # A user's terminal, with the bridge's state kept out of the checkout and another port.
    env = bridge_env(EXESDB_STATE_DIR=str(tmp_path / "state"), EXESDB_HTTP_ADDR=f"127.0.0.1:{port}")
    session = Session(tmp_path, port, redis.url, env)
    skipped = []
    try:
        for block in fenced(README.read_text(), "sh"):
            for line in _lines(block):
                if line in SKIPPED:
                    skipped.append(line)
                    continue
                session.run(line)
            session.stop_servers()
    finally:
        for _, process in session.servers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        for alertmanager in session.alertmanagers:
            if alertmanager.poll() is None:
                alertmanager.kill()
                alertmanager.wait()
    assert sorted(skipped) == sorted(SKIPPED), "a skipped line is no longer in the README"
    assert any("exesdb-bridge publish" in line for line in session.ran)
    assert any(line.startswith("curl") for line in session.ran)
    assert any(line.startswith(ALERTMANAGER) for line in session.ran)


def test_the_line_reader_joins_continuations_and_drops_comments() -> None:
    """The reader above can be trusted: continued lines join, comments go, commands stay."""
    block = "# a comment\nexport A=1   # why\nexesdb-bridge publish x \\\n  -f a=1\n\n"
    assert list(_lines(block)) == ["export A=1", "exesdb-bridge publish x    -f a=1"]
