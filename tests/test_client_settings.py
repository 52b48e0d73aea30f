"""The client commands read only the settings they use (bridge.client_settings), run as real
processes against a real bridge: a bad value elsewhere stops the service, not them; and the
values they read without pydantic (bridge.client_environment) are the models'."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from bridge.client_environment import (
    AdminClientValues,
    BridgeAddress,
    ClientValues,
    OutboxValues,
    PublishValues,
    read_plainly,
)
from bridge.client_settings import (
    AdminClientSettings,
    BridgeLocation,
    FromEnvironment,
    OutboxSettings,
    PublishSettings,
    read_client_settings,
)
from bridge.errors import ConfigError
from tests.support import (
    ADMIN_TOKEN,
    TEST_SECRET,
    BridgeProcess,
    ingesting_bridge,
    refusing_port,
    run_bridge,
    run_command,
    run_in_process,
    withhold,
)
from tests.webconfig.files import WebFiles

# Settings no client command reads, each refused by the service: a bad value, a bad item of a
# list, a check across two values and a file that cannot be read.
UNRELATED: Final = {
    "EXESDB_WEBHOOK_URLS": "notaurl",
    "EXESDB_REPLAY_WINDOW_MS": "soon",
    "EXESDB_BUS": "nats://bus.example",
    "EXESDB_CPU_DEGRADED": "97",
    "EXESDB_CPU_UNHEALTHY": "90",
    "EXESDB_WEBHOOK_CONFIG_FILE": "/nonexistent/receivers.yml",
}
ALERT: Final = (
    "system_alert",
    *("-f", "severity=info", "-f", "category=system", "-f", "source=cli-test"),
    *("-f", "title=t", "-f", "description=d"),
)


ON_THE_BRIDGE = pytest.mark.xdist_group("client-settings-bridge")


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    """A bridge taking signed messages (``ingesting_bridge``); the tests using it are one
    pytest-xdist group (``ON_THE_BRIDGE``), so that one worker starts it, not each worker that
    takes one of them (each worker's module fixture ends when its next test is another module's)."""
    with ingesting_bridge(tmp_path_factory.mktemp("client-settings")) as process:
        yield process


def client_env(bridge: BridgeProcess, **env: str) -> dict[str, str]:
    """What the client commands read to reach ``bridge`` (its address, the admin token, the
    signing key and its state directory), no ``--url``, with ``env`` over it."""
    return {
        "EXESDB_HTTP_ADDR": bridge.env["EXESDB_HTTP_ADDR"],
        "EXESDB_ADMIN_TOKEN": ADMIN_TOKEN,
        "SECRET_KEY_BASE": TEST_SECRET,
        "EXESDB_STATE_DIR": bridge.env["EXESDB_STATE_DIR"],
        **env,
    }


def named_unrelated(completed: subprocess.CompletedProcess[str]) -> list[str]:
    """The variables of ``UNRELATED`` the command's stderr names."""
    return [name for name in UNRELATED if name in completed.stderr]


@ON_THE_BRIDGE
@pytest.mark.parametrize(
    "command",
    [["alerts", "list"], ["outbox", "list"], ["publish", *ALERT], ["tail", "--count", "1"]],
    ids=" ".join,
)
def test_a_bad_value_in_a_setting_the_command_does_not_read_does_not_stop_it(
    bridge: BridgeProcess, command: list[str]
) -> None:
    """Settings the service refuses, and a client command reads not, leave it working: it
    finds the bridge by EXESDB_HTTP_ADDR and does its work (exit 0), naming none of them."""
    completed = run_bridge(*command, env=client_env(bridge, **UNRELATED), timeout=30)
    assert completed.returncode == 0, completed.stderr
    assert named_unrelated(completed) == []
    assert "bad configuration" not in completed.stderr
    if command[0] == "publish":
        assert json.loads(completed.stdout) == {"accepted": 1}
    if command[0] == "tail":
        assert len(completed.stdout.splitlines()) == 1


@ON_THE_BRIDGE
@pytest.mark.parametrize(
    ("command", "variable", "value"),
    [
        (["alerts", "list"], "EXESDB_URL", "notaurl"),
        (["tail", "--count", "1"], "EXESDB_HTTP_ADDR", "http://127.0.0.1:9570"),
        (["publish", *ALERT], "EXESDB_NODE", "n" * 256),
        (["publish", *ALERT], "EXESDB_URL", "127.0.0.1:9570"),
        (["alerts", "list"], "EXESDB_URL", "http://127.0.0.1:9570/?x=1"),
    ],
)
def test_a_bad_value_in_a_setting_the_command_reads_exits_2_naming_it_alone(
    bridge: BridgeProcess, command: list[str], variable: str, value: str
) -> None:
    """A bad value in a variable the command reads is refused (exit 2) with a line naming it,
    as the service words it, and none of the settings the command does not read."""
    env = client_env(bridge, **UNRELATED, **{variable: value})
    completed = run_bridge(*command, env=env, timeout=30)
    assert completed.returncode == 2
    assert completed.stderr.startswith(f"exesdb-bridge: bad configuration:\n  {variable}: ")
    assert named_unrelated(completed) == []


@ON_THE_BRIDGE
@pytest.mark.parametrize(
    ("command", "variable", "value", "code"),
    [
        (["publish", *ALERT], "SECRET_KEY_BASE", f"{TEST_SECRET} # the cluster's key", 1),
        (["alerts", "list"], "EXESDB_ADMIN_TOKEN", f"{ADMIN_TOKEN} # ops", 1),
        (["publish", *ALERT], "EXESDB_NODE", "app-1 # this host", 0),
    ],
)
def test_a_value_the_command_reads_with_an_env_file_s_comment_in_it_is_warned_of(
    bridge: BridgeProcess, command: list[str], variable: str, value: str, code: int
) -> None:
    """A value the command reads holding an env file's comment (a key the bridge then refuses
    as another) is warned of first, naming the variable, not the value."""
    completed = run_bridge(*command, env=client_env(bridge, **{variable: value}), timeout=30)
    assert completed.returncode == code, completed.stderr
    assert completed.stderr.startswith(
        f"exesdb-bridge: warning: {variable} holds what reads as a comment written after its"
        " value in an env file (a '#' beside a blank; the value not shown): docker --env-file"
        " and systemd EnvironmentFile= keep it as part of the value; put the comment on a line"
        " of its own\n"
    )
    assert value.partition("#")[2] not in completed.stderr


@ON_THE_BRIDGE
def test_the_web_config_file_is_read_only_when_the_address_is_asked(
    bridge: BridgeProcess, tmp_path: Path
) -> None:
    """A web config file the bridge would refuse leaves ``--url`` (or EXESDB_URL) usable; asked
    at EXESDB_HTTP_ADDR, which it says http or https for, it is refused (exit 2) naming it."""
    bad = tmp_path / "web.yml"
    bad.write_text("tls_server_config: [not, a, mapping]\n")
    env = client_env(bridge, **UNRELATED, EXESDB_WEB_CONFIG_FILE=str(bad))
    given = run_bridge("alerts", "list", "--url", bridge.url, env=env, timeout=30)
    assert given.returncode == 0, given.stderr
    assert "EXESDB_WEB_CONFIG_FILE" not in given.stderr
    asked = run_bridge("alerts", "list", env=env, timeout=30)
    assert asked.returncode == 2
    assert asked.stderr.startswith(
        f"exesdb-bridge: bad configuration:\n  EXESDB_WEB_CONFIG_FILE: {bad}: "
    )
    assert named_unrelated(asked) == []


def test_a_refused_web_config_file_is_told_as_a_bad_configuration(tmp_path: Path) -> None:
    """A web config file the bridge would refuse, read to find it, is told as every refused
    setting is: a first line saying so, then each problem on a line of its own (exit 2)."""
    bad = tmp_path / "web.yml"
    bad.write_text("tls_server_config:\n  cert_file: server.pem\n  key_fil: server.key\n")
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:9", "EXESDB_WEB_CONFIG_FILE": str(bad)}
    told = run_in_process("alerts", "list", env=env | {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN})
    assert told.returncode == 2
    lines = told.stderr.splitlines()
    assert lines[0] == "exesdb-bridge: bad configuration:"
    assert lines[1].startswith(f"  EXESDB_WEB_CONFIG_FILE: {bad}: tls_server_config.key_fil: ")
    assert (
        lines[2]
        == f"  EXESDB_WEB_CONFIG_FILE: {bad}: tls_server_config: TLS needs key_file (or key)"
    )
    assert len(lines) == 3


def test_a_web_config_whose_key_this_user_may_not_read_finds_the_bridge(tmp_path: Path) -> None:
    """A web config and certificate an operator may read, beside a key and client CA that are
    the bridge's user's alone (0600), find the bridge at EXESDB_HTTP_ADDR over https: the key
    and client CA are not read, a client needs neither (nothing answers here: exit 1)."""
    files = WebFiles(tmp_path / "web")
    client_auth = "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: client-ca.pem"
    path = files.write(files.tls_config(client_auth))
    prefix = withhold(files.folder / "server.key")
    withhold(files.client_ca_file)
    with refusing_port() as port:
        env = {"EXESDB_HTTP_ADDR": f"127.0.0.1:{port}", "EXESDB_WEB_CONFIG_FILE": str(path)}
        told = run_command(
            [*prefix, sys.executable, "-m", "bridge", "alerts", "list"],
            env | {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN},
        )
    assert told.returncode == 1, told.stderr
    assert told.stderr.startswith(
        f"exesdb-bridge: cannot reach the bridge at https://127.0.0.1:{port}: Connection refused"
    ), told.stderr


@pytest.mark.parametrize(
    ("files", "said"),
    [
        (
            "cert_file: server.pem\nkey_file: server.key\ncipher_suites: [TLS_NO_SUCH_SUITE]",
            "tls_server_config.cipher_suites: unknown TLS_NO_SUCH_SUITE; allowed: ",
        ),
        (
            "cert_file: gone.pem\nkey_file: server.key",
            "tls_server_config.cert_file: cannot read {folder}/gone.pem: No such file or directory",
        ),
        (
            "cert_file: notes.pem\nkey_file: server.key",
            "tls_server_config.cert_file: {folder}/notes.pem holds no PEM certificate",
        ),
        (
            "cert_file: server.pem\nkey_file: gone.key",
            "tls_server_config.key_file: cannot load {folder}/gone.key: No such file or directory",
        ),
        (
            "cert_file: server.pem\nkey_file: server.key\n"
            "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: gone-ca.pem",
            "tls_server_config.client_ca_file: cannot load {folder}/gone-ca.pem: No such file or",
        ),
    ],
    ids=[
        "unknown cipher suite",
        "missing certificate",
        "no certificate",
        "missing key",
        "missing client CA",
    ],
)
def test_a_web_config_the_bridge_would_refuse_is_told_so_with_its_key_unread(
    tmp_path: Path, files: str, said: str
) -> None:
    """With a key this user may not read, a web config the bridge would refuse for another
    reason (a cipher suite, its certificate, a key or client CA file that is not there) is
    still told as a bad configuration (exit 2)."""
    web = WebFiles(tmp_path / "web")
    (web.folder / "notes.pem").write_text("no certificate\n")
    path = web.write("tls_server_config:\n" + "".join(f"  {line}\n" for line in files.split("\n")))
    prefix = withhold(web.folder / "server.key")
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:9", "EXESDB_WEB_CONFIG_FILE": str(path)}
    told = run_command(
        [*prefix, sys.executable, "-m", "bridge", "alerts", "list"],
        env | {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN},
    )
    assert told.returncode == 2, told.stderr
    lines = told.stderr.splitlines()
    assert lines[0] == "exesdb-bridge: bad configuration:"
    expected = f"  EXESDB_WEB_CONFIG_FILE: {path}: {said.format(folder=web.folder)}"
    assert lines[1].startswith(expected), lines
    assert "server.key" not in told.stderr


# Values of each variable the client commands read: plainly good ones, ones trimmed or
# defaulted, and ones the models refuse (a URL without its scheme, a port alone, a node name
# too long or holding a hidden character, an undecodable byte).
VALUES: Final = {
    "EXESDB_URL": [
        "http://127.0.0.1:9570/",
        " https://b.example/base// ",
        "b:9570",
        "http://\udcff",
        "http://127.0.0.1:9570/?x=1",
        "http://127.0.0.1:9570#top",
    ],
    "EXESDB_HTTP_ADDR": ["[::1]:9571", "  ", "9570", "http://127.0.0.1:9570", "h\udcff:1"],
    "EXESDB_WEB_CONFIG_FILE": [" /etc/web.yml\n", ""],
    "EXESDB_ADMIN_TOKEN": [" token-from-a-file\n", "\t", "t\u00f6ken", "a token with blanks"],
    "SECRET_KEY_BASE": [" a key with blanks ", "k\udcff"],
    "EXESDB_NODE": [
        " node-1 ",
        "n" * 255,
        "n" * 256,
        "node-1\u200b",
        "node\x07",
        "n\udcff",
        "node-1\u3164",
        "node-1\U000e0041",
        "\u2800",
        "ex_esdb@\u0443\u0437\u0435\u043b",
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # a joiner where RFC 5892 takes one
        "ab\u200dcd",  # and where it takes none
    ],
    "EXESDB_STATE_DIR": [" /srv/state ", "state\udcff", " ~/state", "~"],
}
KINDS: Final = (AdminClientValues, PublishValues, OutboxValues)


def shown(values: object) -> dict[str, object]:
    """``values``' fields, each secret as its value: what a command uses of them."""
    fields = {name: getattr(values, name) for name in type(values).VARIABLES}  # type: ignore[attr-defined]
    return {
        name: value.get_secret_value() if hasattr(value, "get_secret_value") else value
        for name, value in fields.items()
    }


@pytest.mark.parametrize(
    ("variable", "value"),
    [(variable, value) for variable, values in VALUES.items() for value in values],
)
def test_values_read_without_pydantic_are_the_models(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each command's values read without pydantic (``read_plainly``) are what its model reads
    from the same environment; a value that model refuses is left to it (None), so that it
    words the refusal (``read_client_settings`` raising ConfigError), as is an undecodable byte,
    which the model takes in some variables only."""
    monkeypatch.setenv(variable, value)
    for kind in KINDS:
        if variable not in kind.VARIABLES.values():
            continue
        plain = read_plainly(kind, os.environ)
        try:
            judged = read_client_settings(kind)
        except ConfigError:
            assert plain is None
        else:
            assert plain is not None or "\udcff" in value
            assert plain is None or shown(plain) == shown(judged)


def test_each_command_reads_the_variables_of_its_model() -> None:
    """The values each command reads without pydantic are its model's fields, each read from
    the model's variable (``docs/cli.md`` names them from the models)."""
    pairs: list[tuple[type[ClientValues], type[FromEnvironment]]] = [
        (BridgeAddress, BridgeLocation),
        (AdminClientValues, AdminClientSettings),
        (PublishValues, PublishSettings),
        (OutboxValues, OutboxSettings),
    ]
    for kind, model in pairs:
        declared = {name: str(info.validation_alias) for name, info in model.model_fields.items()}
        assert dict(kind.VARIABLES) == declared
