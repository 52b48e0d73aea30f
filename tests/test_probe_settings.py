"""The settings the health check reads: checked and worded as the whole configuration's are."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cli.healthcheck import target
from bridge.config import load_settings
from bridge.errors import ConfigError
from bridge.probe_settings import ProbeSettings

pytestmark = pytest.mark.usefixtures("clean_env")


def problems_of_both(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> tuple[list[str], list[str]]:
    """The problems the probe and load_settings find in ``env`` (none: empty lists): the probe's
    as its settings, then its target (which reads the web config file), find them."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    found: list[list[str]] = []
    for load in (lambda: target(ProbeSettings.from_environ()), load_settings):
        try:
            load()
        except ConfigError as exc:
            found.append(list(exc.problems))
        else:
            found.append([])
    return found[0], found[1]


@pytest.mark.parametrize(
    "env",
    [
        {"EXESDB_HTTP_ADDR": "nowhere"},
        {"EXESDB_HTTP_ADDR": ""},
        {"EXESDB_HTTP_ADDR": "127.0.0.1:65536"},
        {"EXESDB_HTTP_ADDR": "http://user:pw@host:x"},
        {"EXESDB_HEALTHCHECK_CERT_FILE": "probe.pem"},
        {"EXESDB_HEALTHCHECK_KEY_FILE": "probe.key", "EXESDB_HTTP_ADDR": ":x"},
        {"EXESDB_WEB_CONFIG_FILE": "/nonexistent/web.yml"},
        {"EXESDB_WEB_CONFIG_FILE": "{folder}/web.yml"},
        {"EXESDB_HTTP_ADDR": "[::]:9571", "EXESDB_HEALTHCHECK_USERNAME": "probe"},
    ],
)
def test_the_probe_s_settings_are_refused_as_load_settings_refuses_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str]
) -> None:
    """Each problem of the variables the probe reads, and of the web config file it cannot probe
    with, is found, in the same words and order."""
    (tmp_path / "web.yml").write_text("tls_server_config:\n  cert_file: missing.pem\nbogus: 1\n")
    env = {name: value.format(folder=tmp_path) for name, value in env.items()}
    light, full = problems_of_both(monkeypatch, env)
    assert light == full


def test_the_probe_s_settings_leave_the_web_config_file_to_its_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bad address is the probe's one problem while the web config file is bad too: its
    settings do not read the file, which the target reads (once) when the address is good."""
    light, full = problems_of_both(
        monkeypatch, {"EXESDB_WEB_CONFIG_FILE": "/nonexistent/web.yml", "EXESDB_HTTP_ADDR": "a"}
    )
    assert [problem.split(":")[0] for problem in full] == [
        "EXESDB_HTTP_ADDR",
        "EXESDB_WEB_CONFIG_FILE",
    ]
    assert light == full[:1]


def test_the_probe_reads_the_address_and_its_credentials_as_settings_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every field the probe uses holds what Settings holds for the same environment."""
    env = {
        "EXESDB_HTTP_ADDR": "[::]:9443",
        "EXESDB_HEALTHCHECK_USERNAME": "probe",
        "EXESDB_HEALTHCHECK_PASSWORD_FILE": "/run/secrets/probe",
        "EXESDB_HEALTHCHECK_CERT_FILE": "probe.pem",
        "EXESDB_HEALTHCHECK_KEY_FILE": "probe.key",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    light, full = ProbeSettings.from_environ(), load_settings()
    for field in (
        "listen",
        "web_config_file",
        "healthcheck_username",
        "healthcheck_password_file",
        "healthcheck_cert_file",
        "healthcheck_key_file",
    ):
        assert getattr(light, field) == getattr(full, field), field
    assert light.listen == ("::", 9443)


@pytest.mark.parametrize("blank", ["", "  ", "\t"])
def test_the_probe_takes_a_variable_set_to_blanks_as_unset(
    monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    """Each variable the probe reads, set to "" or to blanks only, is unset, as load_settings
    takes it: the default address, no web config file, no credentials."""
    for name in (
        "EXESDB_HTTP_ADDR",
        "EXESDB_WEB_CONFIG_FILE",
        "EXESDB_HEALTHCHECK_USERNAME",
        "EXESDB_HEALTHCHECK_PASSWORD_FILE",
        "EXESDB_HEALTHCHECK_CERT_FILE",
        "EXESDB_HEALTHCHECK_KEY_FILE",
    ):
        monkeypatch.setenv(name, blank)
    assert ProbeSettings.from_environ() == ProbeSettings()
    assert load_settings().http_addr == ProbeSettings().http_addr
