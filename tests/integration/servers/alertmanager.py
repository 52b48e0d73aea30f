"""A real Alertmanager for integration tests (Debian's ``prometheus-alertmanager``).

``AlertmanagerServer(webhook_url=...).start(workdir)`` writes a configuration routing every alert
to one webhook receiver (short ``group_wait`` so tests stay fast; or, given ``webhook_configs``,
to those, and with ``global_section`` as its ``global`` and ``inhibit_rules`` as its own),
starts Alertmanager on a free loopback port with clustering off and its storage in ``workdir``,
and waits until that process listens and ``/-/ready`` answers (moving to another port when
another process took the free one first).
``alerts()`` reads ``/api/v2/alerts``. With ``web_config`` (the text of an exporter-toolkit web
config, absolute paths) it serves as that file says, asked with ``context`` and ``headers``.
Tests use the ``alertmanager_server`` fixture, a factory whose servers are stopped afterwards.
"""

from __future__ import annotations

import json
import ssl
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    free_port,
    http_get,
    require_binary,
    spawn_logged,
    start_listening,
    terminate,
)

__all__ = ["AlertmanagerServer", "alertmanager_server"]

BINARY = "prometheus-alertmanager"


class AlertmanagerServer:
    """One Alertmanager process; ``webhook_url``, when given, receives every notification."""

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        group_wait: str = "200ms",
        group_interval: str = "1s",
        repeat_interval: str = "1h",
        web_config: str | None = None,
        context: ssl.SSLContext | None = None,
        headers: Mapping[str, str] | None = None,
        webhook_configs: Sequence[Mapping[str, Any]] | None = None,
        global_section: Mapping[str, Any] | None = None,
        inhibit_rules: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        self.binary = require_binary(BINARY)
        self.port = free_port()
        self.web_config = web_config
        self.context = context
        self.headers = dict(headers or {})
        self.webhook_url = webhook_url
        self.webhook_configs = webhook_configs
        self.global_section = global_section
        self.inhibit_rules = inhibit_rules
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.repeat_interval = repeat_interval
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"{'https' if self.context else 'http'}://127.0.0.1:{self.port}"

    def config(self) -> str:
        """The configuration file's text (JSON is valid YAML)."""
        receiver: dict[str, Any] = {"name": "test"}
        if self.webhook_configs is not None:
            receiver["webhook_configs"] = list(self.webhook_configs)
        elif self.webhook_url:
            receiver["webhook_configs"] = [{"url": self.webhook_url, "send_resolved": True}]
        config: dict[str, Any] = {
            "route": {
                "receiver": "test",
                "group_by": ["alertname"],
                "group_wait": self.group_wait,
                "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval,
            },
            "receivers": [receiver],
        }
        if self.global_section is not None:
            config["global"] = dict(self.global_section)
        if self.inhibit_rules is not None:
            config["inhibit_rules"] = [dict(rule) for rule in self.inhibit_rules]
        return json.dumps(config, indent=2)

    def start(self, workdir: Path, ready_timeout: float = 30.0) -> AlertmanagerServer:
        """Write the configuration, start the server and wait until it is ready."""
        workdir.mkdir(parents=True, exist_ok=True)
        config_path = workdir / "alertmanager.yml"
        config_path.write_text(self.config())
        self.log_path = workdir / "alertmanager.log"
        web: list[str] = []
        if self.web_config is not None:
            (workdir / "web.yml").write_text(self.web_config)
            web.append(f"--web.config.file={workdir / 'web.yml'}")
        arguments = [
            self.binary,
            f"--config.file={config_path}",
            f"--storage.path={workdir / 'data'}",
            "--cluster.listen-address=",
            "--log.level=warn",
            *web,
        ]
        self.process = start_listening(
            lambda port: self._spawn(arguments, port),
            lambda: self.get("/-/ready")[0] == 200,
            self.log,
            port=self.port,
            movable=True,
            timeout=ready_timeout,
            what=lambda: f"alertmanager on {self.url} (log: {self.log_path})",
        )
        return self

    def _spawn(self, arguments: list[str], port: int) -> subprocess.Popen[bytes]:
        assert self.log_path is not None
        self.port = port
        return spawn_logged([*arguments, f"--web.listen-address=127.0.0.1:{port}"], self.log_path)

    def log(self) -> str:
        """What the server printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def alerts(self, active_only: bool = False) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: the alerts Alertmanager holds."""
        query = "?active=true&silenced=false&inhibited=false" if active_only else ""
        status, body = self.get(f"/api/v2/alerts{query}")
        assert status == 200, body
        return list(json.loads(body))

    def get(self, path: str) -> tuple[int, bytes]:
        """GET ``path`` as this test's client (its CA and credentials when a web config)."""
        return http_get(self.url + path, self.headers, timeout=10.0, context=self.context)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server (killed after ``timeout``)."""
        if self.process is not None:
            terminate(self.process, timeout)


@pytest.fixture
def alertmanager_server(tmp_path: Path) -> Iterator[Callable[..., AlertmanagerServer]]:
    """``alertmanager_server(webhook_url=..., **options)`` starts one; all stop afterwards."""
    started: list[AlertmanagerServer] = []

    def start(**options: Any) -> AlertmanagerServer:
        server = AlertmanagerServer(**options)
        started.append(server)
        return server.start(tmp_path / f"alertmanager-{server.port}")

    yield start
    for server in started:
        server.stop()
