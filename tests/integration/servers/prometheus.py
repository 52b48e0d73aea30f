"""A real Prometheus server for integration tests (Debian's ``prometheus``).

``start_prometheus(targets)`` writes a config scraping ``targets`` every second, starts the
server on a free loopback port with its TSDB in the test's tmp dir, waits until that process
listens and ``/-/ready`` answers (moving to another port when another process took the free one
first) and stops it after the test. ``query()`` and ``wait_for()`` use the HTTP API.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import (
    free_port,
    http_get,
    require_binary,
    spawn_logged,
    start_listening,
    terminate,
    wait_until,
)

__all__ = ["PrometheusServer", "start_prometheus"]


class PrometheusServer:
    """One Prometheus process scraping the given ``host:port`` targets."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        targets: list[str],
        *,
        job: str = "exesdb-bridge",
        scrape_interval: str = "1s",
        metrics_path: str = "/metrics",
        rule_files: Sequence[Path] = (),
        scrape_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.config_path = workdir / "prometheus.yml"
        self.log_path = workdir / "prometheus.log"
        quoted = ", ".join(f'"{target}"' for target in targets)
        self.config_path.write_text(
            "global:\n"
            f"  scrape_interval: {scrape_interval}\n"
            f"  evaluation_interval: {scrape_interval}\n"
            "scrape_configs:\n"
            f"  - job_name: {job}\n"
            f"    metrics_path: {metrics_path}\n"
            f"    static_configs:\n      - targets: [{quoted}]\n"
        )
        if scrape_options:
            # More keys of the scrape config (scheme, tls_config, basic_auth, ...).
            options = yaml.safe_dump(dict(scrape_options), default_flow_style=False)
            with self.config_path.open("a") as config:
                config.write("".join(f"    {line}\n" for line in options.splitlines()))
        if rule_files:
            # Rules are evaluated every scrape_interval (unless a group sets its own interval).
            files = "".join(f'  - "{Path(path).resolve()}"\n' for path in rule_files)
            with self.config_path.open("a") as config:
                config.write(f"rule_files:\n{files}")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        """Start the server and wait until this process listens and reports ready."""
        self.process = start_listening(
            self._spawn,
            lambda: http_get(self.url + "/-/ready", timeout=2)[0] == 200,
            self.log,
            port=self.port,
            movable=True,
            timeout=timeout,
            what=lambda: f"Prometheus on {self.url} (log: {self.log_path})",
        )
        return self

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        self.port = port
        command = [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
        ]
        return spawn_logged(command, self.log_path, cwd=str(self.workdir))

    def log(self) -> str:
        """What the server printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, path: str, **params: str) -> Any:
        """GET an ``/api/v1`` endpoint; returns ``data`` (fails the test on an API error)."""
        query = urllib.parse.urlencode(params)
        status, body = http_get(f"{self.url}/api/v1/{path}?{query}")
        answer = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise AssertionError(f"Prometheus API {path} answered {status}: {answer}")
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        return list(self.api("query", query=expr)["result"])

    def wait_for(
        self,
        expr: str,
        check: Callable[[list[dict[str, Any]]], bool] = bool,
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Poll ``expr`` until ``check(result)`` holds; returns that result."""
        found: list[list[dict[str, Any]]] = []

        def ready() -> bool:
            result = self.query(expr)
            if check(result):
                found.append(result)
                return True
            return False

        wait_until(ready, timeout, f"Prometheus query {expr!r}")
        return found[-1]

    def targets_up(self) -> bool:
        """True once every scrape target has been scraped successfully."""
        active = self.api("targets")["activeTargets"]
        return bool(active) and all(target["health"] == "up" for target in active)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.process is not None:
            terminate(self.process, timeout)


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[Callable[..., PrometheusServer]]:
    """A factory: ``start_prometheus(["127.0.0.1:9570"])`` starts a scraping server."""
    binary = require_binary("prometheus")
    servers: list[PrometheusServer] = []

    def start(targets: list[str], **options: Any) -> PrometheusServer:
        workdir = tmp_path / f"prometheus-{len(servers)}"
        workdir.mkdir()
        server = PrometheusServer(binary, workdir, targets, **options)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
