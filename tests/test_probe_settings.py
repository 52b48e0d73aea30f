"""The settings the health check reads: checked and worded as the whole configuration's are,
and warned of when the web config would refuse the probe's credentials."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from bridge.cli.healthcheck import target
from bridge.config import load_settings
from bridge.errors import ConfigError
from bridge.probe_settings import ProbeSettings, credential_warnings
from bridge.settings_checks import start_warnings
from bridge.webconfig.loading import load as load_web_config
from tests.support import BridgeProcess, FifoReleaser, check_config, make_settings, run_bridge
from tests.webconfig.files import WebFiles, basic, bcrypt_hash

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


# -- check-config and start-up warn of probe credentials the web config would refuse --

PROBE_PASSWORD = "probe-Password-7"


def probe_files(folder: Path, users: str = "probe") -> dict[str, str]:
    """A web config whose basic auth knows ``users`` (comma-separated; none: no basic auth), a
    readable password file, one in Latin-1 and a folder ``secrets``: the environment naming the
    web config."""
    names = [name for name in users.split(",") if name]
    listed = "".join(f"  {name}: '{bcrypt_hash(PROBE_PASSWORD)}'\n" for name in names)
    (folder / "web.yml").write_text(f"basic_auth_users:\n{listed}" if listed else "{}\n")
    (folder / "password").write_text(PROBE_PASSWORD + "\n")
    (folder / "secrets").mkdir()
    (folder / "latin-1").write_bytes("pass\u00e9\n".encode("latin-1"))  # no UTF-8
    return {"EXESDB_WEB_CONFIG_FILE": str(folder / "web.yml")}


FAILS = "so exesdb-bridge healthcheck fails against the web config's basic auth"


@pytest.mark.parametrize(
    ("username", "password_file", "warned"),
    [
        pytest.param(
            "prbe",
            "password",
            f"EXESDB_HEALTHCHECK_USERNAME 'prbe' is not among the web config's basic_auth_users, "
            f"{FAILS} (401)",
            id="unknown-user",
        ),
        pytest.param(
            "probe ",
            "password",
            f"EXESDB_HEALTHCHECK_USERNAME 'probe ' is not among the web config's "
            f"basic_auth_users, {FAILS} (401)",
            id="user-with-a-trailing-blank",
        ),
        pytest.param(
            "probe",
            "missing",
            "cannot read EXESDB_HEALTHCHECK_PASSWORD_FILE {folder}/missing: No such file or "
            f"directory, {FAILS}",
            id="missing-password-file",
        ),
        pytest.param(
            "probe",
            "secrets",
            "cannot read EXESDB_HEALTHCHECK_PASSWORD_FILE {folder}/secrets: Is a directory, "
            f"{FAILS}",
            id="password-file-a-directory",
        ),
        pytest.param(
            "probe",
            "latin-1",
            "cannot read EXESDB_HEALTHCHECK_PASSWORD_FILE {folder}/latin-1: not UTF-8 text, "
            f"{FAILS}",
            id="password-file-not-utf-8",
        ),
        pytest.param(
            "probe",
            None,
            f"EXESDB_HEALTHCHECK_PASSWORD_FILE is not set, {FAILS}",
            id="user-without-password-file",
        ),
        pytest.param(
            None,
            "password",
            f"EXESDB_HEALTHCHECK_USERNAME is not set, {FAILS}",
            id="password-file-without-user",
        ),
    ],
)
def test_check_config_warns_of_probe_credentials_basic_auth_would_refuse(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    username: str | None,
    password_file: str | None,
    warned: str,
) -> None:
    """A probe user the web config's basic_auth_users does not list, a password file that cannot
    be read, or one set without the other: check-config warns (exit 0), naming the variable,
    and never shows the password, since every probe would fail and the pod restart in a loop."""
    env = probe_files(tmp_path)
    if username is not None:
        env["EXESDB_HEALTHCHECK_USERNAME"] = username
    if password_file is not None:
        env["EXESDB_HEALTHCHECK_PASSWORD_FILE"] = str(tmp_path / password_file)
    status, out, err = check_config(monkeypatch, capsys, **env)
    assert status == 0, err
    notes = [line for line in err.splitlines() if "EXESDB_HEALTHCHECK" in line]
    assert notes == [f"exesdb-bridge: warning: {warned.format(folder=tmp_path)}"]
    assert PROBE_PASSWORD not in out + err


def test_check_config_warns_of_a_probe_password_file_that_is_a_fifo_without_waiting_on_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A probe password file that is a FIFO is warned of as one, unopened: check-config (and
    start-up, which warns alike) waited on it for a writer without end."""
    env = probe_files(tmp_path) | {"EXESDB_HEALTHCHECK_USERNAME": "probe"}
    # A reader still waiting is let go after 5 s, so the test fails, not hangs.
    with FifoReleaser(tmp_path / "fifo", after=5.0) as fifo:
        env["EXESDB_HEALTHCHECK_PASSWORD_FILE"] = str(fifo.path)
        status, _, err = check_config(monkeypatch, capsys, **env)
    assert (status, fifo.released) == (0, 0), err
    assert [line for line in err.splitlines() if "EXESDB_HEALTHCHECK" in line] == [
        f"exesdb-bridge: warning: cannot read EXESDB_HEALTHCHECK_PASSWORD_FILE {fifo.path}: a FIFO"
        f" (named pipe), not a regular file, {FAILS}"
    ]


@pytest.mark.parametrize(
    ("users", "credentials"),
    [
        pytest.param("other,probe", True, id="listed-user-readable-password"),
        pytest.param("", True, id="no-basic-auth"),
        pytest.param("", False, id="no-basic-auth-no-probe-credentials"),
    ],
)
def test_check_config_is_quiet_about_probe_credentials_that_would_log_in(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    users: str,
    credentials: bool,
) -> None:
    """A listed user with a readable password file, or a web config without basic auth (with
    probe credentials or without): no warning about them."""
    env = probe_files(tmp_path, users)
    if credentials:
        env["EXESDB_HEALTHCHECK_USERNAME"] = "probe"
        env["EXESDB_HEALTHCHECK_PASSWORD_FILE"] = str(tmp_path / "password")
    status, _, err = check_config(monkeypatch, capsys, **env)
    assert status == 0, err
    assert "EXESDB_HEALTHCHECK" not in err


UNSET_FAILS = "so exesdb-bridge healthcheck (the image's HEALTHCHECK, an exec probe) fails"


def test_check_config_and_run_warn_of_basic_auth_with_no_probe_credentials_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Basic auth in the web config and no EXESDB_HEALTHCHECK_* set: the image's HEALTHCHECK
    (an exec probe) fails at every probe, so check-config and start-up warn, naming the
    variables to set."""
    env = probe_files(tmp_path)
    status, _, err = check_config(monkeypatch, capsys, **env)
    assert status == 0, err
    warned = (
        "the web config asks for basic auth (basic_auth_users) and neither "
        f"EXESDB_HEALTHCHECK_USERNAME nor EXESDB_HEALTHCHECK_PASSWORD_FILE is set, {UNSET_FAILS}"
        " against it: set both, for a user of basic_auth_users"
    )
    assert [line for line in err.splitlines() if "EXESDB_HEALTHCHECK" in line] == [
        f"exesdb-bridge: warning: {warned}"
    ]
    settings = make_settings(EXESDB_WEB_CONFIG_FILE=env["EXESDB_WEB_CONFIG_FILE"])
    assert warned in start_warnings(settings, {})  # the list run logs at start


def test_credential_warnings_alone_judge_a_probe_with_no_credentials_set(tmp_path: Path) -> None:
    """credential_warnings decides for a probe with no EXESDB_HEALTHCHECK_* set too: it names
    the variables basic auth asks for (check-config has no second list of its own)."""
    env = probe_files(tmp_path)
    web = load_web_config(Path(env["EXESDB_WEB_CONFIG_FILE"])).config
    [warned] = credential_warnings(ProbeSettings(), web)
    assert warned.startswith("the web config asks for basic auth (basic_auth_users) and neither")
    assert UNSET_FAILS in warned


def test_check_config_warns_of_a_required_client_certificate_with_no_probe_credentials_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """client_auth_type RequireAndVerifyClientCert and no EXESDB_HEALTHCHECK_* set: check-config
    warns that the probe fails, naming the certificate variables."""
    files = WebFiles(tmp_path)
    files.write(
        files.tls_config(
            "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: client-ca.pem"
        )
    )
    env = {"EXESDB_WEB_CONFIG_FILE": str(tmp_path / "web.yml")}
    status, _, err = check_config(monkeypatch, capsys, **env)
    assert status == 0, err
    assert [line for line in err.splitlines() if "EXESDB_HEALTHCHECK" in line] == [
        "exesdb-bridge: warning: "
        "the web config's client_auth_type RequireAndVerifyClientCert requires a client "
        "certificate and neither EXESDB_HEALTHCHECK_CERT_FILE nor EXESDB_HEALTHCHECK_KEY_FILE is "
        f"set, {UNSET_FAILS} against it: set both"
    ]


TLS_FAILS = "so exesdb-bridge healthcheck fails against the web config's TLS"


@pytest.mark.parametrize(
    ("certificate", "warned"),
    [
        pytest.param(
            None,
            "EXESDB_HEALTHCHECK_CERT_FILE is not set and client_auth_type "
            f"RequireAndVerifyClientCert requires a client certificate, {TLS_FAILS}",
            id="no-client-certificate",
        ),
        pytest.param(
            ("missing.pem", "probe.key"),
            "cannot load EXESDB_HEALTHCHECK_CERT_FILE: [Errno 2] No such file or directory, "
            f"{TLS_FAILS}",
            id="missing-certificate",
        ),
        pytest.param(
            ("probe.pem", "server.key"),
            "cannot load EXESDB_HEALTHCHECK_CERT_FILE: the key is not the certificate's"
            " (KEY_VALUES_MISMATCH)",
            id="key-of-another-certificate",
        ),
        pytest.param(
            ("probe.key", "probe.key"),
            "cannot load EXESDB_HEALTHCHECK_CERT_FILE: {folder}/probe.key holds no PEM certificate"
            " (-----BEGIN CERTIFICATE-----) OpenSSL loads",
            id="no-certificate-in-the-file",
        ),
        pytest.param(("probe.pem", "probe.key"), None, id="loads"),
    ],
)
def test_check_config_warns_of_a_probe_client_certificate_tls_would_refuse(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    certificate: tuple[str, str] | None,
    warned: str | None,
) -> None:
    """Under client_auth_type RequireAndVerifyClientCert, with the probe's basic auth set: no
    client certificate, or one that cannot be loaded, is warned of (exit 0); one that loads is
    not."""
    files = WebFiles(tmp_path)
    tls = files.tls_config(
        "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: client-ca.pem"
    )
    files.write(tls + f"basic_auth_users:\n  probe: '{bcrypt_hash(PROBE_PASSWORD)}'\n")
    client = files.client_cert(name="probe")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "probe.pem"))
    client.private_key_pem.write_to_path(str(tmp_path / "probe.key"))
    (tmp_path / "password").write_text(PROBE_PASSWORD)
    env = {
        "EXESDB_WEB_CONFIG_FILE": str(tmp_path / "web.yml"),
        "EXESDB_HEALTHCHECK_USERNAME": "probe",
        "EXESDB_HEALTHCHECK_PASSWORD_FILE": str(tmp_path / "password"),
    }
    if certificate is not None:
        env["EXESDB_HEALTHCHECK_CERT_FILE"] = str(tmp_path / certificate[0])
        env["EXESDB_HEALTHCHECK_KEY_FILE"] = str(tmp_path / certificate[1])
    status, _, err = check_config(monkeypatch, capsys, **env)
    assert status == 0, err
    notes = [line for line in err.splitlines() if "EXESDB_HEALTHCHECK" in line]
    if warned is None:
        assert notes == []
    else:
        [note] = notes
        said = warned.format(folder=tmp_path)
        assert note.startswith(f"exesdb-bridge: warning: {said}"), note
        assert note.endswith(TLS_FAILS)


def test_run_warns_of_a_probe_user_basic_auth_does_not_list_at_start(tmp_path: Path) -> None:
    """`exesdb-bridge run` logs the same warning at start-up, then serves as configured."""
    bridge = BridgeProcess(
        state_dir=tmp_path / "state",
        headers={"Authorization": basic("probe", PROBE_PASSWORD)},
        EXESDB_WEB_CONFIG_FILE=probe_files(tmp_path)["EXESDB_WEB_CONFIG_FILE"],
        EXESDB_HEALTHCHECK_USERNAME="prober",
        EXESDB_HEALTHCHECK_PASSWORD_FILE=str(tmp_path / "password"),
    )
    try:
        bridge.start(tmp_path)
    finally:
        assert bridge.stop() == 0
    assert (
        "EXESDB_HEALTHCHECK_USERNAME 'prober' is not among the web config's basic_auth_users, "
        f"{FAILS} (401)" in bridge.log()
    )
    assert PROBE_PASSWORD not in bridge.log()


def test_an_encrypted_probe_key_is_warned_of_without_asking_for_its_pass_phrase(
    tmp_path: Path,
) -> None:
    """A probe key encrypted with a pass phrase cannot be used by the probe: check-config warns
    of it, as it warns of any key that will not load, and never asks for the pass phrase (OpenSSL
    would prompt on the terminal, or read it from standard input, at every start-up)."""
    files = WebFiles(tmp_path)
    files.write(
        files.tls_config(
            "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: client-ca.pem"
        )
    )
    client = files.client_cert(name="probe")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "probe.pem"))
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
    (tmp_path / "probe.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pass-phrase"),
        )
    )
    completed = run_bridge(
        "check-config",
        env={
            "EXESDB_WEB_CONFIG_FILE": str(tmp_path / "web.yml"),
            "EXESDB_HEALTHCHECK_CERT_FILE": str(tmp_path / "probe.pem"),
            "EXESDB_HEALTHCHECK_KEY_FILE": str(tmp_path / "probe.key"),
        },
        # What OpenSSL's prompt would read when no terminal is at hand.
        stdin="pass-phrase\n",
        timeout=30,
    )
    assert completed.returncode == 0, completed.stderr
    assert "pass phrase" not in completed.stderr.lower()
    notes = [line for line in completed.stderr.splitlines() if "EXESDB_HEALTHCHECK" in line]
    assert len(notes) == 1, completed.stderr
    assert notes[0].startswith(
        "exesdb-bridge: warning: cannot load EXESDB_HEALTHCHECK_CERT_FILE: "
    ), notes
    assert notes[0].endswith(TLS_FAILS)
