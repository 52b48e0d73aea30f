"""A real Prometheus server for integration tests: scrapes given targets, answers PromQL.

``PrometheusServer(targets=[...]).start(workdir)`` writes a configuration (scrape interval 1 s
by default), starts ``prometheus`` on a free loopback port with its TSDB in ``workdir`` and waits
for ``/-/ready``. ``query(expr)`` runs an instant query through ``/api/v1/query``;
``wait_for_series(expr)`` polls it until it returns data. Tests import the ``prometheus_server``
fixture, a factory whose servers are stopped after the test.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support import free_port, http_get, require_binary, wait_until

__all__ = ["PrometheusError", "PrometheusServer", "prometheus_server"]


class PrometheusError(Exception):
    """Prometheus answered a query with an error."""


class PrometheusServer:
    """One ``prometheus`` process scraping ``targets`` (``host:port``) every ``scrape_interval``."""

    def __init__(
        self,
        targets: Sequence[str],
        *,
        job: str = "exesdb-bridge",
        scrape_interval: str = "1s",
        rule_files: Sequence[Path] = (),
        metrics_path: str = "/metrics",
    ) -> None:
        self.binary = require_binary("prometheus")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.targets = list(targets)
        self.job = job
        self.scrape_interval = scrape_interval
        self.rule_files = [Path(path).resolve() for path in rule_files]
        self.metrics_path = metrics_path
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    def config(self) -> str:
        """The configuration file's text (JSON is valid YAML)."""
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
            },
            "scrape_configs": [
                {
                    "job_name": self.job,
                    "metrics_path": self.metrics_path,
                    "static_configs": [{"targets": self.targets}],
                }
            ],
        }
        if self.rule_files:
            config["rule_files"] = [str(path) for path in self.rule_files]
        return json.dumps(config, indent=2)

    def start(self, workdir: Path, ready_timeout: float = 30.0) -> PrometheusServer:
        """Write the configuration, start the server and wait until it is ready."""
        workdir.mkdir(parents=True, exist_ok=True)
        config_path = workdir / "prometheus.yml"
        config_path.write_text(self.config())
        self.log_path = workdir / "prometheus.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(
            lambda: self._alive() and http_get(self.url + "/-/ready")[0] == 200,
            ready_timeout,
            f"prometheus on {self.url} (log: {self.log_path})",
        )
        return self

    def _alive(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            pytest.fail(f"prometheus exited with {self.process.returncode}: {self.log()}")
        return True

    def log(self) -> str:
        """What the server printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>``; the ``data`` of a success, else PrometheusError."""
        query = urllib.parse.urlencode(params)
        status, body = http_get(f"{self.url}/api/v1/{path}?{query}", timeout=10.0)
        try:
            answer = json.loads(body)
        except ValueError:
            raise PrometheusError(f"HTTP {status}: {body[:200]!r}") from None
        if answer.get("status") != "success":
            raise PrometheusError(f"{answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Run an instant query; the result list (a scalar becomes one sample)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def wait_for_series(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll ``expr`` until it returns at least one series."""
        return list(wait_until(lambda: self.query(expr), timeout, f"data for {expr!r}"))

    def targets_up(self) -> bool:
        """True when every scrape target has been scraped successfully."""
        active = self.api("targets")["activeTargets"]
        return bool(active) and all(target["health"] == "up" for target in active)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server (killed after ``timeout``)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def prometheus_server(tmp_path: Path) -> Iterator[Callable[..., PrometheusServer]]:
    """``prometheus_server(targets, **options)`` starts a server; all are stopped afterwards."""
    started: list[PrometheusServer] = []

    def start(targets: Sequence[str], **options: Any) -> PrometheusServer:
        server = PrometheusServer(targets, **options)
        started.append(server)
        return server.start(tmp_path / f"prometheus-{server.port}")

    yield start
    for server in started:
        server.stop()
