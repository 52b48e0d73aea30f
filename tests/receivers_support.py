"""Helpers for the receivers file's tests: Alertmanager's receiver block pasted unchanged, the
file written, check-config run on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import check_config

# A receiver block as Alertmanager's documentation writes one, pasted unchanged.
ALERTMANAGER_BLOCK = """
webhook_configs:
  - send_resolved: false
    url: https://hooks.example.com:8443/services/T0/hook-tok3n?token=q-tok3n
    max_alerts: 10
    timeout: 1m30s
    http_config:
      follow_redirects: false
      enable_http2: true
      authorization:
        type: Bearer
        credentials: bearer-tok3n
      tls_config:
        ca_file: ca.pem
        cert_file: client.pem
        key_file: client.key
        server_name: hooks.example.com
        insecure_skip_verify: false
        min_version: TLS12
      proxy_url: http://proxy-user:proxy-tok3n@proxy.example.com:3128
  - url_file: /run/secrets/hook-url
    http_config:
      basic_auth:
        username: alerts
        password: basic-tok3n
alertmanager:
  timeout: 5s
  http_config:
    bearer_token_file: am-token
"""


def write(tmp_path: Path, text: str) -> Path:
    """The receivers file holding ``text``."""
    path = tmp_path / "receivers.yml"
    path.write_text(text)
    return path


def check_file(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    text: str,
    **env: str,
) -> tuple[int, str, str]:
    """check-config of the receivers file holding ``text`` beside ``env``, with
    EXESDB_WEBHOOK_SECRET set (no receiver warned of as unsigned): its status, stdout, stderr."""
    path = write(tmp_path, text)
    return check_config(
        monkeypatch,
        capsys,
        EXESDB_WEBHOOK_CONFIG_FILE=str(path),
        EXESDB_WEBHOOK_SECRET="k" * 32,
        **env,
    )
