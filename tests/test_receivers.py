"""The receivers file (EXESDB_WEBHOOK_CONFIG_FILE): Alertmanager's webhook_config read strictly,
receiver keys without secrets, exit 2 naming the key, check-config redacted."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from pydantic import BaseModel

from bridge.cli import main
from bridge.config import load_settings
from bridge.errors import ConfigError
from bridge.receivers import (
    ReceiversFile,
    describe_receivers,
    go_duration,
    load_receivers,
    read_receivers_file,
    resolve_receivers,
)
from bridge.yamlconfig import Strict
from tests.doc_text import page
from tests.support import (
    ALERTMANAGER_GLOBAL,
    ROOT,
    BridgeProcess,
    FileOpens,
    check_config,
    free_port,
    run_bridge,
)

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


pytestmark = pytest.mark.usefixtures("clean_env")


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


def test_an_alertmanager_receiver_block_reads_unchanged(tmp_path: Path) -> None:
    """Every key of Alertmanager's webhook_config and http_config above is taken, paths made
    absolute from the file's folder, bearer_token_file taken as authorization."""
    loaded = load_receivers(write(tmp_path, ALERTMANAGER_BLOCK))
    first, second = loaded.webhook_configs
    assert (first.send_resolved, first.max_alerts, first.timeout) == (False, 10, 90.0)
    # follow_redirects as prometheus/common reads it: false as given, else true.
    assert (first.http_config.follow_redirects, second.http_config.follow_redirects) == (
        False,
        True,
    )
    assert "follows no redirect" in first.http_config.summary()
    assert "redirect" not in second.http_config.summary()
    assert first.http_config.tls_config.ca_file == str(tmp_path / "ca.pem")
    assert first.http_config.authorization is not None
    assert first.http_config.authorization.credentials is not None
    assert second.url_file == "/run/secrets/hook-url"
    assert second.send_resolved is True
    assert loaded.alertmanager is not None
    authorization = loaded.alertmanager.http_config.authorization
    assert authorization is not None
    assert (authorization.type, authorization.credentials_file) == (
        "Bearer",
        str(tmp_path / "am-token"),
    )


def test_go_zero_values_of_unsupported_keys_and_null_sections_read_as_absent(
    tmp_path: Path,
) -> None:
    """Keys the bridge refuses load at Go's zero value (proxy_from_environment: false, an empty
    no_proxy, url_file, proxy_url or url beside url_file), and a null http_config or tls_config
    is the default one, as Alertmanager reads them."""
    loaded = load_receivers(
        write(
            tmp_path,
            "webhook_configs:\n"
            "  - url: https://hooks.example.com/a\n"
            "    url_file: ''\n"
            "    payload: {}\n"
            "    http_config:\n"
            "      tls_config:\n"
            "      proxy_from_environment: false\n"
            "      proxy_url: ''\n"
            "      no_proxy: ''\n"
            "      proxy_connect_header: {}\n"
            "  - url: https://hooks.example.com/b\n"
            "    http_config:\n"
            "  - url: ''\n"
            "    url_file: hook-url\n"
            "alertmanager:\n"
            "  url: ''\n",
        )
    )
    first, second, third = loaded.webhook_configs
    assert first.http_config.tls_config.configured is False
    assert first.http_config.proxy_url is None
    assert second.http_config.summary() == "no http_config"
    assert (third.url, third.url_file) == (None, str(tmp_path / "hook-url"))
    assert loaded.alertmanager is not None
    assert loaded.alertmanager.url is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "webhook_configs:\n  - url: http://h/x\n    colour: red\n",
            "webhook_configs.0.colour: unknown key; allowed here: url, url_file, send_resolved,",
        ),
        (
            "webhook_configs:\n  - url: http://h/x\n    send_resolve: true\n",
            "webhook_configs.0.send_resolve: unknown key; did you mean send_resolved? allowed"
            " here: url, url_file, send_resolved,",
        ),
        ("webhook_configs:\n  - send_resolved: true\n", "exactly one of url and url_file"),
        (
            "webhook_configs:\n  - {url: http://h/x, url_file: f}\n",
            "exactly one of url and url_file",
        ),
        (
            "webhook_configs:\n  - {url: 'ftp://h/hook-tok3n'}\n",
            "webhook_configs.0.url: 'ftp://h/…' is not an http:// or https:// URL",
        ),
        (
            "webhook_configs:\n  - {url: 'http://h/{{ .GroupLabels.tok3n }}'}\n",
            "webhook_configs.0.url: holds a template ({{ … }}), which the bridge does not expand",
        ),
        (
            "webhook_configs:\n  - {url: 'http://h', timeout: ten}\n",
            "webhook_configs.0.timeout: 'ten' is not a duration",
        ),
        (
            "webhook_configs:\n  - {url: 'http://h', max_alerts: -1}\n",
            "webhook_configs.0.max_alerts: must be greater than or equal to 0",
        ),
        (
            "webhook_configs:\n  - {url: 'http://h', min_severity: loud}\n",
            "webhook_configs.0.min_severity: must be 'info', 'warning', 'error' or",
        ),
        (
            "webhook_configs:\n  - url: http://h\n    http_config:\n"
            "      authorization: {type: Basic, credentials: hook-tok3n}\n",
            'http_config.authorization.type: cannot be "basic": use basic_auth instead',
        ),
        (
            "webhook_configs:\n  - url: http://h\n    http_config:\n"
            "      authorization: {credentials: hook-tok3n, credentials_file: f}\n",
            "at most one of credentials and credentials_file",
        ),
        (
            "webhook_configs:\n  - url: http://h\n    http_config:\n"
            "      authorization: {credentials: a}\n      basic_auth: {username: u}\n",
            "at most one of basic_auth and authorization",
        ),
        (
            "webhook_configs:\n  - url: http://h\n    http_config:\n"
            "      tls_config: {cert_file: c.pem}\n",
            "a client certificate needs both cert_file (or cert) and key_file (or key)",
        ),
        (
            "webhook_configs:\n  - url: http://h\n    http_config:\n      oauth2: {client_id: x}\n",
            "webhook_configs.0.http_config.oauth2: token_url is required",
        ),
        (
            "webhook_configs:\n  - url: http://h\n    http_config:\n"
            "      oauth2: {client_id: x, token_url: 'http://idp/t'}\n",
            "webhook_configs.0.http_config.oauth2: exactly one of client_secret and"
            " client_secret_file",
        ),
        (
            "webhook_configs:\n  - url: http://h\n    http_config:\n      oauth2:\n"
            "        {client_id: x, client_secret: tok3n, client_secret_file: f, token_url: 'http://i'}\n",
            "webhook_configs.0.http_config.oauth2: exactly one of client_secret and"
            " client_secret_file",
        ),
        (
            "webhook_configs:\n  - url: http://h\n    http_config:\n"
            "      oauth2: {client_id: x, client_secret: tok3n, token_url: 'http://idp/t'}\n"
            "      basic_auth: {username: u, password: tok3n}\n",
            "webhook_configs.0.http_config: oauth2 cannot be given with basic_auth",
        ),
        (
            "webhook_configs:\n  - url: http://h\n    http_config:\n"
            "      oauth2: {client_id: x, client_secret: tok3n, token_url: 'http://idp/t'}\n"
            "      bearer_token: tok3n\n",
            "webhook_configs.0.http_config: oauth2 cannot be given with bearer_token",
        ),
        (
            "webhook_configs:\n  - url: http://h\n    http_config:\n"
            "      oauth2: {client_id: x, client_secret: tok3n, token_url: 'http://idp/t',"
            " colour: red}\n",
            "http_config.oauth2.colour: unknown key; allowed here: client_id, client_secret,"
            " client_secret_file, scopes, token_url, endpoint_params, grant_type, tls_config,"
            " proxy_url, no_proxy, proxy_from_environment, proxy_connect_header",
        ),
        (
            "webhook_configs:\n  - url: http://h\n    http_config:\n"
            "      oauth2: {client_id: x, client_secret_ref: vault-tok3n, token_url: 'http://i'}\n",
            "http_config.oauth2.client_secret_ref: not supported by exesdb-bridge: there is no"
            " secret manager",
        ),
        (
            "webhook_configs:\n  - url: http://h\n    http_config:\n      oauth2: {client_id: x,"
            " client_secret: tok3n, token_url: 'http://i', grant_type: 'urn:ietf:params:oauth:"
            "grant-type:jwt-bearer'}\n",
            "http_config.oauth2.grant_type: must be client_credentials; the bridge makes the"
            " client_credentials grant only, not the JWT bearer grant (RFC 7523)",
        ),
        (
            "webhook_configs:\n  - url: http://h\n    http_config:\n      oauth2: {client_id: x,"
            " client_secret: tok3n, token_url: 'ftp://u:tok3n@i/t'}\n",
            "http_config.oauth2.token_url: 'ftp://u:<redacted>@i/…' is not an http:// or https://"
            " token URL",
        ),
        (
            "webhook_configs:\n  - url: http://h\n    http_config:\n      oauth2: {client_id: x,"
            " client_secret: tok3n, token_url: 'http://i', scopes: [a], endpoint_params:"
            " {scope: b}}\n",
            "http_config.oauth2: endpoint_params cannot hold scope beside scopes",
        ),
        (
            "webhook_configs:\n  - url: http://h\n    http_config:\n      oauth2: {client_id: x,"
            " client_secret: tok3n, token_url: 'http://i', no_proxy: internal}\n",
            "http_config.oauth2: no_proxy needs proxy_url",
        ),
        (
            "webhook_configs:\n  - url: http://u:hook-tok3n@h\n    http_config:\n"
            "      oauth2: {client_id: x, client_secret: tok3n, token_url: 'http://i'}\n",
            "url holds credentials (user:password@) and http_config sets authorization,"
            " basic_auth or oauth2",
        ),
        (
            "webhook_configs:\n  - url: http://h\n"
            "    http_config: {proxy_from_environment: true, proxy_url: 'http://u:tok3n@p'}\n",
            "proxy_from_environment takes the proxy and its exceptions from HTTP_PROXY",
        ),
        (  # a boolean in quotes is text, which Go's reader refuses for a boolean
            "webhook_configs:\n  - url: http://h\n"
            "    http_config: {proxy_from_environment: 'yes', proxy_url: 'http://p'}\n",
            "http_config.proxy_from_environment: must be true or false without quotes, as Go's "
            "YAML reader asks (it also takes yes/no, on/off and y/n) (got 'yes')",
        ),
        (
            "webhook_configs:\n  - url: http://h\n    http_config:\n"
            "      tls_config: {min_version: TLS99}\n",
            "http_config.tls_config.min_version: must be 'TLS10'",
        ),
        (  # Go's client speaks TLS 1.2 at least unless told otherwise: no version would be left
            "webhook_configs:\n  - url: http://h\n    http_config:\n"
            "      tls_config: {max_version: TLS11}\n",
            "max_version TLS11 is below the default min_version TLS12, so no version is left: "
            "give min_version TLS11 too",
        ),
        (
            "webhook_configs:\n  - url: http://h\n    http_config:\n"
            "      tls_config: {min_version: TLS13, max_version: TLS12}\n",
            "min_version TLS13 is above max_version TLS12",
        ),
        (
            "webhook_configs:\n  - url: http://h\n    http_config:\n"
            "      proxy_url: 'socks5://u:hook-tok3n@p'\n",
            "http_config.proxy_url: 'socks5://u:<redacted>@p' is not an http:// or https:// proxy",
        ),
        (
            "webhook_configs:\n  - url: http://h\n    http_config:\n      http_headers:\n"
            '        X-Api-Key: {secrets: ["tok3n\\nX-Evil: 1"]}\n',
            "http_config.http_headers: a header value must be one line of printable characters",
        ),
        (
            "webhook_configs:\n  - url: http://u:hook-tok3n@h\n    http_config:\n"
            "      basic_auth: {username: u, password: p}\n",
            "url holds credentials (user:password@) and http_config sets authorization,",
        ),
        (
            "alertmanager:\n  url: http://u:tok3n@am\n  http_config:\n"
            "    authorization: {credentials: c}\n",
            "url holds credentials (user:password@) and http_config sets authorization,",
        ),
        (
            "webhook_configs:\n  - url: http://u:hook-tok3n@h\n    http_config:\n"
            "      bearer_token_file: token\n",
            "url holds credentials (user:password@) and http_config sets authorization,",
        ),
        ("alertmanager: {url: http://am, colour: red}\n", "alertmanager.colour: unknown key"),
        (
            "alertmanager: {url: 'http://u:tok3n@am:9093/api/v2/alerts'}\n",
            "alertmanager.url: ends in /api/v2/alerts: the bridge posts to Alertmanager's own URL",
        ),
        (
            "receivers:\n  - name: ops\n    webhook_configs:\n      - url: http://h/tok3n\n",
            "receivers: unknown key; allowed here: webhook_configs, alertmanager, global (this"
            " file takes the webhook_configs list of an Alertmanager receiver, not Alertmanager's"
            " receivers section",
        ),
        (  # a key Alertmanager's global section does not have either
            "global:\n  smtp_frm: ops@example.com\nwebhook_configs:\n  - url: http://h\n",
            "global.smtp_frm: unknown key; did you mean smtp_from? allowed here: http_config,"
            " resolve_timeout,",
        ),
        (
            "global:\n  http_config: {basic_auth: {username: u, password: tok3n}, colour: red}\n",
            "global.http_config.colour: unknown key",
        ),
        (  # a dump's mask where global.http_config would send it
            "global:\n  http_config:\n    authorization: {credentials: <secret>}\n",
            "global.http_config.authorization.credentials: `<secret>` is how Alertmanager's dump"
            " hides a secret",
        ),
        ("webhook_configs: [\n", "not valid YAML at line"),
        (
            "webhook_configs:\n- url: http://h/x\n\tsend_resolved: true\n",
            "receivers.yml: not valid YAML at line 3: a tab indents it, and YAML indents with"
            " spaces only",
        ),
        (
            "webhook_configs:\n  url: http://h/x\n",
            "webhook_configs: must be a list: each entry on a line starting with '- '",
        ),
        ("- a list\n", "the top level must be a mapping of keys"),
        (  # Go would read it as false: neither that nor the default is guessed
            "webhook_configs:\n  - url: http://h/x\n    http_config:\n      follow_redirects:\n",
            "webhook_configs.0.http_config.follow_redirects: empty (null); give a value",
        ),
        (  # another kind of file named by mistake: its lines are no keys to show
            "root:$6$tok3n:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
            "(top level): a key that is no name (not shown: is this the file meant?); allowed",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_the_key_and_never_a_secret(
    tmp_path: Path, text: str, expected: str
) -> None:
    """Each bad key or value is one problem naming it, what is allowed, no secret shown."""
    with pytest.raises(ConfigError) as caught:
        load_receivers(write(tmp_path, text))
    problems = "\n".join(caught.value.problems)
    assert expected in problems
    assert "tok3n" not in problems


def test_a_secret_hidden_by_alertmanagers_dump_is_said_to_be_one(tmp_path: Path) -> None:
    """A block copied from Alertmanager's dump (`amtool config show`), every secret in it printed
    as `<secret>`, is refused once per secret saying so and what to give, not as a bad URL."""
    dumped = (
        "webhook_configs:\n  - url: <secret>\n    http_config:\n      basic_auth:\n"
        "        username: ops\n        password: <secret>\n      http_headers:\n"
        "        X-Token:\n          secrets: [<secret>]\n      proxy_url: <secret>\n"
        "      follow_redirects: true\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_receivers(write(tmp_path, dumped))
    said = ": `<secret>` is how Alertmanager's dump hides a secret: give the real value"
    where = [problem.split(": ", 1)[1].replace(said, " ->") for problem in caught.value.problems]
    assert where == [
        "webhook_configs.0.url -> (or use url_file)",
        "webhook_configs.0.http_config.basic_auth.password -> (or use password_file)",
        "webhook_configs.0.http_config.http_headers.X-Token.secrets (line 9, its entry not shown)"
        " -> (or use files)",
        "webhook_configs.0.http_config.proxy_url ->",
    ]


@pytest.mark.parametrize(
    ("block", "where", "file_key"),
    [
        (
            "webhook_configs:\n  - url: https://h.example/x\n    http_config:\n      oauth2:"
            " {client_id: x, client_secret: <secret>, token_url: 'https://i.example/t'}\n",
            "webhook_configs.0.http_config.oauth2.client_secret",
            "client_secret_file",
        ),
        (
            "webhook_configs:\n  - url: https://h.example/x\n    secret: <secret>\n",
            "webhook_configs.0.secret",
            "secret_file",
        ),
        (
            "global:\n  http_config:\n    authorization: {credentials: <secret>}\n",
            "global.http_config.authorization.credentials",
            "credentials_file",
        ),
        (
            "alertmanager:\n  http_config:\n    bearer_token: <secret>\n",
            "alertmanager.http_config.bearer_token",
            "bearer_token_file",
        ),
        (
            "alertmanager:\n  http_config:\n    tls_config: {cert: c, key: <secret>}\n",
            "alertmanager.http_config.tls_config.key",
            "key_file",
        ),
        ("alertmanager:\n  url: <secret>\n", "alertmanager.url", None),
        (
            "webhook_configs:\n  - url: https://h.example/x\n    http_config:\n"
            "      proxy_url: http://p.example:3128\n"
            "      proxy_connect_header: {password: [<secret>]}\n",
            "webhook_configs.0.http_config.proxy_connect_header (line 5, its key not shown)",
            None,
        ),
    ],
)
def test_a_dumped_secret_is_refused_naming_the_file_key_beside_it(
    tmp_path: Path, block: str, where: str, file_key: str | None
) -> None:
    """A dump's `<secret>` is refused suggesting the *_file key the mapping holding it takes
    for that secret (client_secret_file beside oauth2's client_secret), and none where there
    is none (the alertmanager section's url, a proxy CONNECT header's value)."""
    with pytest.raises(ConfigError) as caught:
        load_receivers(write(tmp_path, block))
    said = "`<secret>` is how Alertmanager's dump hides a secret: give the real value"
    [problem] = caught.value.problems
    assert problem.split(": ", 1)[1] == (
        f"{where}: {said}" + (f" (or use {file_key})" if file_key else "")
    )


def test_global_http_config_is_the_whole_http_config_of_each_receiver_giving_none(
    tmp_path: Path,
) -> None:
    """As Alertmanager applies it: a receiver without http_config (or with a null one) takes
    global.http_config whole, paths from the file's folder; one giving its own (even {}) keeps
    it alone, nothing of global's merged in; the alertmanager section takes none of it."""
    path = write(
        tmp_path,
        ALERTMANAGER_GLOBAL + "webhook_configs:\n"
        "  - url: https://inherits.example.com/hook\n"
        "  - url: https://own.example.com/hook\n"
        "    http_config:\n      proxy_url: http://proxy.example.com:3128\n"
        "  - url: https://null.example.com/hook\n    http_config:\n"
        "  - url: https://empty.example.com/hook\n    http_config: {}\n"
        "alertmanager:\n  url: http://am.example.com:9093\n",
    )
    read = read_receivers_file(path)
    assert read.problems == ()
    assert read.inheriting == (0, 2)
    receivers, alertmanager = resolve_receivers(
        [], read, secret=None, timeout=5.0, max_alerts=50, min_severity="warning"
    )
    inherits, own, null, empty = (receiver.http_config for receiver in receivers)
    for config in (inherits, null):
        assert config.authorization is not None
        assert config.authorization.credentials_file == str(tmp_path / "token")
        assert config.tls_config.ca_file == str(tmp_path / "ca.pem")
        assert config.follow_redirects is True
    assert own.summary() == "proxy http://proxy.example.com:3128"
    assert empty.summary() == "no http_config"
    assert alertmanager is not None
    assert alertmanager.http_config.summary() == "no http_config"


def test_a_whole_alertmanager_global_section_loads_and_its_other_keys_are_warned_of_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Alertmanager's global section pasted whole, as its dump prints it (<secret> in the keys
    of other integrations, which nothing sends), loads: check-config exits 0 and warns once,
    naming each key given that the bridge does not read, never a value."""
    (tmp_path / "token").write_text("t0ken\n")
    (tmp_path / "ca.pem").write_text("")
    text = ALERTMANAGER_GLOBAL + "webhook_configs:\n  - url: https://h/hook\n"
    status, _, err = check_file(monkeypatch, capsys, tmp_path, text)
    assert status == 0, err
    [warning] = [line for line in err.splitlines() if "ignored" in line]
    assert warning == (
        "warning: EXESDB_WEBHOOK_CONFIG_FILE global: resolve_timeout, smtp_from, smtp_hello,"
        " smtp_smarthost, smtp_auth_password, smtp_require_tls, smtp_tls_config, slack_api_url,"
        " pagerduty_url, opsgenie_api_url, telegram_api_url ignored: the bridge reads only"
        " global.http_config (the other keys set up Alertmanager's e-mail, Slack, PagerDuty and"
        " other integrations, which the bridge does not have; its resolve_timeout is"
        " EXESDB_ALERT_RESOLVE_TIMEOUT_MS)"
    )
    assert "example.com" not in warning


def test_check_config_says_which_receivers_take_global_http_config_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config shows global.http_config on each receiver taking it, said to come from
    there, its credentials redacted; a tls_config taken from global by an http:// receiver is
    not warned of as having no effect (it is there for the https:// ones), its own is."""
    text = (
        "global:\n  http_config:\n    authorization: {credentials: gl0bal-tok3n}\n"
        "    tls_config: {insecure_skip_verify: true}\n"
        "webhook_configs:\n  - url: http://plain.example.com/hook\n"
        "  - url: http://own.example.com/hook\n    http_config:\n"
        "      tls_config: {insecure_skip_verify: true}\n"
    )
    status, out, err = check_file(monkeypatch, capsys, tmp_path, text)
    assert status == 0, err
    assert "tok3n" not in out + err
    inherits, own = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert inherits.endswith(
        "; from global.http_config: authorization Bearer (credentials <set, redacted>);"
        " tls_config insecure_skip_verify true"
    )
    assert own.endswith("; tls_config insecure_skip_verify true")
    [warned] = [line for line in err.splitlines() if "tls_config is set" in line]
    assert "webhook_configs.1 http://own.example.com/…: tls_config is set" in warned


def test_credentials_in_a_url_beside_those_it_takes_from_global_are_a_problem(
    tmp_path: Path,
) -> None:
    """A receiver with user:password@ in its URL and no http_config would send global's
    credentials too, which no request can carry: a problem naming it, said beside the file's
    other problems, no secret shown; its own http_config (even {}) takes none from global."""
    path = write(
        tmp_path,
        "global:\n  http_config: {authorization: {credentials: gl0bal-tok3n}}\n"
        "webhook_configs:\n  - url: http://u:hook-tok3n@h/a\n"
        "  - url: http://u:hook-tok3n@h/b\n    http_config: {}\n"
        "  - {url: http://h/c, colour: red}\n",
    )
    problems = [problem.removeprefix(f"{path}: ") for problem in read_receivers_file(path).problems]
    assert problems == [
        "webhook_configs.2.colour: unknown key; allowed here: url, url_file, send_resolved,"
        " max_alerts, timeout, http_config, secret, secret_file, min_severity",
        "webhook_configs.0: url holds credentials (user:password@) and global.http_config,"
        " taken as it gives no http_config, sets authorization, basic_auth or oauth2: give them"
        " in one place",
    ]


# A global.http_config sending a token: the receivers giving no http_config take it.
GLOBAL_TOKEN = "global:\n  http_config: {authorization: {credentials: gl0bal-tok3n}}\n"


def test_receivers_of_exesdb_webhook_urls_never_take_global_http_config(tmp_path: Path) -> None:
    """An EXESDB_WEBHOOK_URLS receiver has only the environment's defaults, no http_config,
    beside the file's receiver giving none, which takes global.http_config."""
    read = read_receivers_file(write(tmp_path, GLOBAL_TOKEN + "webhook_configs: [{url: http://f}]"))
    receivers, _ = resolve_receivers(
        ["http://env/h"], read, secret=None, timeout=5.0, max_alerts=50, min_severity="warning"
    )
    from_env, from_file = receivers
    assert from_env.source == "EXESDB_WEBHOOK_URLS item 1"
    assert from_env.http_config.summary() == "no http_config"
    assert from_file.http_config.summary() == "authorization Bearer (credentials <set, redacted>)"


@pytest.mark.parametrize(
    ("rest", "status", "warned"),
    [
        pytest.param("alertmanager: {url: http://am.example.com:9093}\n", 0, True, id="no-hooks"),
        pytest.param(
            "webhook_configs:\n  - {url: https://own.example.com/h, http_config: {}}\n",
            0,
            True,
            id="each-its-own",
        ),
        pytest.param(
            "webhook_configs:\n  - {url: https://own.example.com/h, http_config: {}}\n"
            "  - url: https://takes.example.com/h\n",
            0,
            False,
            id="one-takes-it",
        ),
        pytest.param(
            "webhook_configs:\n  - {url: https://bad.example.com/h, colour: red}\n",
            2,
            False,
            id="a-bad-one-takes-it",
        ),
        pytest.param(
            "webhook_configs:\n  - {url: https://bad.example.com/h, colour: red,"
            " http_config: {}}\n",
            2,
            True,
            id="a-bad-one-gives-its-own",
        ),
    ],
)
def test_a_global_http_config_no_receiver_takes_is_warned_of(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    rest: str,
    status: int,
    warned: bool,
) -> None:
    """A global.http_config no receiver takes (each of the file's gives its own, or there are
    none, the EXESDB_WEBHOOK_URLS receivers and the alertmanager section never taking it) is
    warned of once, saying why, no secret shown; not when a receiver of the file, even one with
    a problem, gives none."""
    status_got, _, err = check_file(
        monkeypatch, capsys, tmp_path, GLOBAL_TOKEN + rest, EXESDB_WEBHOOK_URLS="https://env.x/h"
    )
    assert status_got == status, err
    assert "tok3n" not in err
    said = [line.split("warning: ", 1)[1] for line in err.splitlines() if "by no receiver" in line]
    assert said == (
        [
            "EXESDB_WEBHOOK_CONFIG_FILE global: http_config is taken by no receiver: only a"
            " receiver in webhook_configs without an http_config of its own takes it, and there"
            " is none; EXESDB_WEBHOOK_URLS receivers and the alertmanager section never take it"
            " (list a receiver needing it in webhook_configs without http_config, or give it"
            " those keys in its own)"
        ]
        if warned
        else []
    ), err


# Three receivers taking global.http_config, whose files are missing, one of them http://; and
# one naming the same CA file in an http_config of its own.
GLOBAL_FILES_UNREADABLE = """
global:
  http_config:
    authorization: {credentials_file: missing-token}
    tls_config: {ca_file: missing-ca.pem}
webhook_configs:
  - url: https://one.example.com/hook
  - url: http://plain.example.com/hook
    secret_file: missing-secret
  - url: https://three.example.com/hook
  - url: https://own.example.com/hook
    http_config: {tls_config: {ca_file: missing-ca.pem}}
"""


def test_a_file_global_http_config_names_is_warned_of_once_under_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file of global.http_config that cannot be read now is warned of once, by its key in
    global, naming the receivers taking it that read it (not an http:// one for its tls_config),
    not once per receiver by each one's name; a receiver's own files are still warned of by it."""
    status, _, err = check_file(monkeypatch, capsys, tmp_path, GLOBAL_FILES_UNREADABLE)
    assert status == 0, err
    warned = [
        line.removeprefix("warning: EXESDB_WEBHOOK_CONFIG_FILE ")
        for line in err.splitlines()
        if "cannot be read now" in line
    ]
    missing = "cannot be read now (No such file or directory);"
    retried = "fail and are retried until it can be"
    ca, token, secret = (
        tmp_path / name for name in ("missing-ca.pem", "missing-token", "missing-secret")
    )
    assert warned == [
        f"webhook_configs.1 http://plain.example.com/…: secret_file {secret} {missing} its"
        f" deliveries {retried}",
        f"webhook_configs.3 https://own.example.com/…: tls_config.ca_file {ca} {missing} its"
        f" deliveries {retried}",
        f"global.http_config.tls_config.ca_file {ca} {missing} the deliveries of the receivers"
        f" taking it (webhook_configs.0, webhook_configs.2) {retried}",
        f"global.http_config.authorization.credentials_file {token} {missing} the deliveries of"
        f" the receivers taking it (webhook_configs.0, webhook_configs.1, webhook_configs.2)"
        f" {retried}",
    ], err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "webhook_configs:\n  - url: http://u:hook-tok3n@h\n    colour: red\n    http_config:\n"
            "      basic_auth: {username: u, password: p}\n",
            [
                "webhook_configs.0.colour: unknown key",
                "webhook_configs.0: url holds credentials (user:password@) and http_config sets",
            ],
        ),
        (
            "alertmanager:\n  url: http://u:tok3n@am\n  colour: red\n  http_config:\n"
            "    authorization: {credentials: c}\n",
            [
                "alertmanager.colour: unknown key",
                "alertmanager: url holds credentials (user:password@) and http_config sets",
            ],
        ),
        (
            "webhook_configs:\n  - send_resolved: maybe\n",
            [
                "webhook_configs.0.send_resolved: ",
                "webhook_configs.0: exactly one of url and url_file",
            ],
        ),
    ],
)
def test_a_receiver_with_a_bad_key_still_has_its_keys_checked_together(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    """A receiver with an unknown or bad key is also told what its keys together get wrong
    (credentials in the URL and in http_config, neither url nor url_file), in one go."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_receivers(path)
    problems = [problem.removeprefix(f"{path}: ") for problem in caught.value.problems]
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), problems
    assert "tok3n" not in "\n".join(problems)


@pytest.mark.parametrize(
    ("http_config", "expected"),
    [
        pytest.param(
            "      authorization: {credentials: tok3n, credentials_file: f, colour: red}\n",
            [
                "http_config.authorization.colour: unknown key",
                "http_config.authorization: at most one of credentials and credentials_file",
            ],
            id="authorization",
        ),
        pytest.param(
            "      basic_auth:\n        username: 'a:b'\n        password: tok3n\n"
            "        password_file: f\n        username_file: g\n",
            [
                "http_config.basic_auth.username: basic auth cannot carry a colon",
                "http_config.basic_auth: at most one of username and username_file",
                "http_config.basic_auth: at most one of password and password_file",
            ],
            id="basic-auth",
        ),
        pytest.param(
            "      tls_config: {cert_file: c.pem, min_version: TLS99}\n",
            [
                "http_config.tls_config.min_version: must be 'TLS10'",
                "http_config.tls_config: a client certificate needs both cert_file (or cert)",
            ],
            id="tls-config",
        ),
        pytest.param(
            "      authorization: {credentials: tok3n}\n      basic_auth: {username: u}\n"
            "      proxy_url: 'socks5://p'\n      proxy_from_environment: true\n",
            [
                "http_config.proxy_url: 'socks5://p' is not an http:// or https:// proxy",
                "http_config: at most one of basic_auth and authorization",
                "http_config: proxy_from_environment takes the proxy and its exceptions",
            ],
            id="http-config",
        ),
        pytest.param(
            "      bearer_token: tok3n\n      bearer_token_file: f\n      basic_auth: {}\n"
            "      colour: red\n",
            [
                "http_config.colour: unknown key",
                "http_config: at most one of bearer_token and bearer_token_file",
                "http_config: at most one of basic_auth and bearer_token",
            ],
            id="bearer-token",
        ),
        pytest.param(
            "      bearer_token: tok3n\n      authorization: {type: Token}\n"
            "      no_proxy: example.com\n      enable_http2: maybe\n",
            [
                "http_config.enable_http2: must be true or false without quotes",
                "http_config: authorization cannot be given with bearer_token or",
                "http_config: no_proxy needs proxy_url",
            ],
            id="bearer-token-and-authorization",
        ),
    ],
)
def test_every_problem_of_an_http_config_is_reported_at_once(
    tmp_path: Path, http_config: str, expected: list[str]
) -> None:
    """Keys of an http_config block that conflict (a value and its file, authorization beside
    basic_auth) are reported even when another key of the same block is bad, each problem
    naming the block's path: check-config lists every error in one go."""
    path = write(tmp_path, "webhook_configs:\n  - url: http://h\n    http_config:\n" + http_config)
    with pytest.raises(ConfigError) as caught:
        load_receivers(path)
    prefix = f"{path}: webhook_configs.0."
    problems = [problem.removeprefix(prefix) for problem in caught.value.problems]
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), problems
    assert "tok3n" not in "\n".join(problems)


def test_a_bearer_token_alone_is_authorization_of_type_bearer(tmp_path: Path) -> None:
    """bearer_token (deprecated in prometheus/common) reads as authorization with type Bearer;
    bearer_token_file as its credentials_file."""
    loaded = load_receivers(
        write(
            tmp_path,
            "webhook_configs:\n  - url: http://h/a\n    http_config: {bearer_token: tok3n}\n"
            "  - url: http://h/b\n    http_config: {bearer_token_file: token}\n",
        )
    )
    first, second = (hook.http_config.authorization for hook in loaded.webhook_configs)
    assert first is not None
    assert second is not None
    assert first.credentials is not None
    assert (first.type, first.credentials.get_secret_value()) == ("Bearer", "tok3n")
    assert (second.type, second.credentials_file) == ("Bearer", str(tmp_path / "token"))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("1m30s", 90.0), ("500ms", 0.5), ("1.5h", 5400.0), ("0", 0.0), (0, 0.0)],
)
def test_timeouts_are_go_durations(text: str | int, seconds: float) -> None:
    """timeout takes Go's duration syntax, as Alertmanager reads it."""
    assert go_duration(text) == seconds


@pytest.mark.parametrize("text", ["10", "1d", "ten seconds", "-1s", "", 5])
def test_other_durations_are_refused(text: str | int) -> None:
    """Numbers without a unit, days and words are not Go durations."""
    with pytest.raises(ValueError, match="duration"):
        go_duration(text)


def test_a_timeout_given_as_a_number_without_a_unit_is_named_with_the_unit_meant(
    tmp_path: Path,
) -> None:
    """``timeout: 10`` (YAML reads a number) is refused naming the 10 given and what it is as
    seconds, not only with what a duration looks like."""
    path = tmp_path / "receivers.yml"
    path.write_text("webhook_configs:\n  - url: https://hooks.example/a\n    timeout: 10\n")
    with pytest.raises(ConfigError) as caught:
        load_receivers(str(path))
    assert list(caught.value.problems) == [
        f"{path}: webhook_configs.0.timeout: 10 has no unit: must be a duration such as 10s,"
        " 1m30s or 500ms (10s for seconds)"
    ]


def test_defaults_come_from_the_environment_and_min_severity_may_not_go_below_it(
    tmp_path: Path,
) -> None:
    """Unset per-receiver values take EXESDB_WEBHOOK_*; a min_severity under the bridge's own
    is refused (such alerts are never raised); a URL in both places is refused."""
    path = write(
        tmp_path,
        "webhook_configs:\n  - url: http://a/hook\n  - url: http://b/hook\n    max_alerts: 3\n",
    )
    receivers, _ = resolve_receivers(
        ["http://env/hook"],
        read_receivers_file(path),
        secret=None,
        timeout=7.0,
        max_alerts=50,
        min_severity="error",
    )
    assert [(r.max_alerts, r.timeout, r.min_severity) for r in receivers] == [
        (50, 7.0, "error"),
        (50, 7.0, "error"),
        (3, 7.0, "error"),
    ]
    path.write_text(
        "webhook_configs:\n  - {url: 'http://env/hook'}\n"
        "  - {url: 'http://b', min_severity: info}\n"
    )
    with pytest.raises(ConfigError) as caught:
        resolve_receivers(
            ["http://env/hook"],
            read_receivers_file(path),
            secret=None,
            timeout=7.0,
            max_alerts=50,
            min_severity="error",
        )
    assert [problem.split(": ", 1)[1] for problem in caught.value.problems] == [
        "webhook_configs.0: the same receiver as in EXESDB_WEBHOOK_URLS item 1",
        "webhook_configs.1.min_severity: info is below EXESDB_WEBHOOK_MIN_SEVERITY (error), "
        "under which no alert is raised",
    ]


def test_every_problem_of_the_receivers_file_is_reported_in_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad value in one receiver does not hide a receiver given twice, a min_severity below
    the bridge's or an Alertmanager URL given twice: every problem at once, by key."""
    path = write(
        tmp_path,
        "webhook_configs:\n"
        "  - {url: 'http://a/hook', timeout: soon}\n"
        "  - {url: 'http://env/hook'}\n"
        "  - {url: 'http://b/hook', min_severity: info}\n"
        "alertmanager: {url: 'http://am:9093'}\n",
    )
    monkeypatch.setenv("EXESDB_WEBHOOK_CONFIG_FILE", str(path))
    monkeypatch.setenv("EXESDB_WEBHOOK_URLS", "http://env/hook")
    monkeypatch.setenv("EXESDB_WEBHOOK_MIN_SEVERITY", "error")
    monkeypatch.setenv("EXESDB_ALERTMANAGER_URL", "http://other:9093")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    prefix = f"EXESDB_WEBHOOK_CONFIG_FILE: {path}: "
    assert all(problem.startswith(prefix) for problem in caught.value.problems)
    assert [problem.removeprefix(prefix).split(":")[0] for problem in caught.value.problems] == [
        "webhook_configs.0.timeout",
        "webhook_configs.1",
        "webhook_configs.2.min_severity",
        "alertmanager.url is set and so is EXESDB_ALERTMANAGER_URL; give one of them",
    ]


@pytest.mark.parametrize(
    "bad", ["send_resolve: false", "timeout: soon", "max_alerts: -1", "http_config: {colour: red}"]
)
def test_a_receiver_with_a_bad_key_is_still_held_to_the_minimum_severity(
    tmp_path: Path, bad: str
) -> None:
    """A receiver whose other key is bad has its min_severity below EXESDB_WEBHOOK_MIN_SEVERITY
    reported too, in the same pass: the one problem does not hide the other."""
    path = write(
        tmp_path,
        f"webhook_configs:\n  - url: http://a/hook\n    {bad}\n    min_severity: info\n",
    )
    with pytest.raises(ConfigError) as caught:
        resolve_receivers(
            [],
            read_receivers_file(path),
            secret=None,
            timeout=7.0,
            max_alerts=50,
            min_severity="error",
        )
    problems = [problem.split(": ", 1)[1] for problem in caught.value.problems]
    assert problems[0].startswith(f"webhook_configs.0.{bad.split(':')[0]}")
    assert problems[-1] == (
        "webhook_configs.0.min_severity: info is below EXESDB_WEBHOOK_MIN_SEVERITY (error), "
        "under which no alert is raised"
    )


def test_a_url_given_twice_to_resolve_receivers_is_a_problem_not_merged() -> None:
    """A URL twice in the list (which the settings refuse already) is a problem naming both
    items, never one receiver made of two."""
    with pytest.raises(ConfigError) as caught:
        resolve_receivers(
            ["http://a/hook", "http://b/hook", "http://a/hook"],
            None,
            secret=None,
            timeout=7.0,
            max_alerts=50,
            min_severity="error",
        )
    assert caught.value.problems == (
        "EXESDB_WEBHOOK_URLS item 3: the same receiver as EXESDB_WEBHOOK_URLS item 1",
    )


def test_a_url_given_twice_in_the_webhook_urls_stops_start_up_with_exit_2(tmp_path: Path) -> None:
    """`exesdb-bridge run` with a URL twice in EXESDB_WEBHOOK_URLS exits 2 naming the variable
    and the items, before listening, the URL's credentials unshown."""
    completed = run_bridge(
        "run",
        env={
            "EXESDB_WEBHOOK_URLS": "http://u:pw@h/hook,http://u:pw@h/hook",
            "EXESDB_HTTP_ADDR": "127.0.0.1:0",
        },
    )
    assert completed.returncode == 2
    assert "EXESDB_WEBHOOK_URLS: items 1 and 2 are the same URL" in completed.stderr
    assert "pw" not in completed.stderr


def test_a_bad_alertmanager_section_does_not_hide_a_receiver_given_twice(tmp_path: Path) -> None:
    """Receivers that are good on their own are still compared when another part is bad."""
    path = write(
        tmp_path,
        "webhook_configs:\n  - {url: 'http://a/hook'}\n  - {url: 'http://a/hook'}\n"
        "alertmanager: {url: 'ftp://am'}\n",
    )
    with pytest.raises(ConfigError) as caught:
        resolve_receivers(
            [],
            read_receivers_file(path),
            secret=None,
            timeout=7.0,
            max_alerts=50,
            min_severity="warning",
        )
    assert [problem.split(": ")[1] for problem in caught.value.problems] == [
        "alertmanager.url",
        "webhook_configs.1",
    ]


def test_a_bad_receivers_file_stops_start_up_with_exit_2_naming_the_key(tmp_path: Path) -> None:
    """`exesdb-bridge run` with a bad file exits 2 and names EXESDB_WEBHOOK_CONFIG_FILE and the
    key, before listening."""
    path = write(tmp_path, "webhook_configs:\n  - url: http://h\n    sent_resolved: false\n")
    completed = run_bridge(
        "run", env={"EXESDB_WEBHOOK_CONFIG_FILE": str(path), "EXESDB_HTTP_ADDR": "127.0.0.1:0"}
    )
    assert completed.returncode == 2
    assert "EXESDB_WEBHOOK_CONFIG_FILE" in completed.stderr
    assert "webhook_configs.0.sent_resolved: unknown key" in completed.stderr


def test_an_alertmanager_url_in_both_places_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alertmanager.url and EXESDB_ALERTMANAGER_URL together: one must go."""
    monkeypatch.setenv(
        "EXESDB_WEBHOOK_CONFIG_FILE", str(write(tmp_path, "alertmanager: {url: http://a}\n"))
    )
    monkeypatch.setenv("EXESDB_ALERTMANAGER_URL", "http://b")
    with pytest.raises(ConfigError, match="give one of them"):
        load_settings()


def test_check_config_lists_each_receiver_without_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config shows one line per receiver and one for Alertmanager: origins, options,
    file paths; never a token, password or the URL's path."""
    monkeypatch.setenv("EXESDB_WEBHOOK_CONFIG_FILE", str(write(tmp_path, ALERTMANAGER_BLOCK)))
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert "tok3n" not in out
    lines = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert lines[0].startswith("webhook_configs.0 https://hooks.example.com:8443/…: ")
    assert "send_resolved=false, max_alerts=10, timeout=90s" in lines[0]
    assert "authorization Bearer (credentials <set, redacted>)" in lines[0]
    assert f"ca_file {tmp_path / 'ca.pem'}" in lines[0]
    assert "proxy http://proxy-user:<redacted>@proxy.example.com:3128" in lines[0]
    assert lines[1].startswith("webhook_configs.1 url_file:/run/secrets/hook-url:")
    assert "basic_auth alerts (password <set, redacted>)" in lines[1]
    assert lines[2].startswith("alertmanager (EXESDB_ALERTMANAGER_URL): timeout=5s")
    assert f"credentials_file {tmp_path / 'am-token'}" in lines[2]


# An oauth2 block as Alertmanager's documentation writes one (a token endpoint behind its own CA
# and proxy), pasted unchanged.
OAUTH2_BLOCK = """
webhook_configs:
  - url: https://hooks.example.com/alerts
    http_config:
      oauth2:
        client_id: exesdb
        client_secret: client-tok3n
        scopes: [alerts.write, alerts.read]
        token_url: https://idp.example.com/oauth2/token
        endpoint_params: {audience: hooks-tok3n}
        tls_config: {ca_file: idp-ca.pem}
        proxy_url: http://proxy-user:proxy-tok3n@proxy.example.com:3128
  - url: https://hooks.example.com/ops
    http_config:
      oauth2:
        client_id: exesdb
        client_secret_file: client-secret
        token_url: https://idp.example.com/oauth2/token
"""


def test_check_config_shows_an_oauth2_block_redacted_and_warns_of_its_unreadable_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An Alertmanager oauth2 block loads (paths from the file's folder) and check-config shows
    its client, token URL, secret source, scopes and parameter names, never the client secret,
    a parameter's value or the proxy's password; a client_secret_file that cannot be read is
    warned of, naming its key."""
    (tmp_path / "idp-ca.pem").write_text("not read: check-config loads no certificate\n")
    status, out, err = check_file(monkeypatch, capsys, tmp_path, OAUTH2_BLOCK)
    assert status == 0, err
    assert "tok3n" not in out + err
    lines = [line.strip() for line in out.splitlines() if line.startswith("  webhook_configs")]
    assert lines[0].endswith(
        "oauth2 client_id exesdb at https://idp.example.com/… (client_secret <set, redacted>),"
        " scopes alerts.write alerts.read, endpoint_params audience <values not shown>, for the"
        f" token: tls_config ca_file {tmp_path / 'idp-ca.pem'}; proxy"
        " http://proxy-user:<redacted>@proxy.example.com:3128"
    )
    assert lines[1].endswith(
        "oauth2 client_id exesdb at https://idp.example.com/…"
        f" (client_secret_file {tmp_path / 'client-secret'})"
    )
    assert (
        f"webhook_configs.1 https://hooks.example.com/…: oauth2.client_secret_file"
        f" {tmp_path / 'client-secret'} cannot be read now (No such file or directory)"
    ) in err


@pytest.mark.parametrize(
    ("block", "said"),
    [
        (
            "oauth2: {client_id: x, client_secret: tok3n, token_url: 'http://i/t'}\n"
            "      authorization: {credentials: tok3n}\n",
            "webhook_configs.0.http_config: oauth2 cannot be given with authorization",
        ),
        (
            "oauth2: {client_id: x, client_secret: <secret>, token_url: 'http://i/t'}\n",
            "webhook_configs.0.http_config.oauth2.client_secret: `<secret>` is how Alertmanager's"
            " dump hides a secret",
        ),
        (
            "oauth2: {client_id: x, client_secret: tok3n, token_url: 'http://i', claims: {a: b}}\n",
            "webhook_configs.0.http_config.oauth2.claims: not supported by exesdb-bridge: the"
            " bridge makes the client_credentials grant only",
        ),
    ],
)
def test_a_bad_oauth2_block_stops_check_config_with_exit_2_naming_the_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    block: str,
    said: str,
) -> None:
    """check-config exits 2 on an oauth2 block the bridge cannot use, naming the key and why,
    never the client secret."""
    text = f"webhook_configs:\n  - url: http://h/hook\n    http_config:\n      {block}"
    status, _, err = check_file(monkeypatch, capsys, tmp_path, text)
    assert status == 2
    assert said in err
    assert "tok3n" not in err


@pytest.mark.parametrize(
    ("text", "exit_status", "warned"),
    [
        ("webhook_configs:\n  - url: http://h/hook\n", 0, "deliveries go unsigned"),
        # Problems, then the warnings of the receivers good on their own, from the same read.
        (
            "webhook_configs:\n  - {url: http://h/hook, secret_file: missing-key}\n"
            "  - {url: http://i/hook, colour: red}\n",
            2,
            "secret_file",
        ),
    ],
    ids=["good", "bad"],
)
def test_check_config_reads_the_receivers_file_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
    exit_status: int,
    warned: str,
) -> None:
    """check-config opens EXESDB_WEBHOOK_CONFIG_FILE once for its checks, its lines and its
    warnings, good file or bad: they all see one version of it."""
    receivers = write(tmp_path, text)
    monkeypatch.delenv("EXESDB_WEBHOOK_SECRET", raising=False)
    with FileOpens(receivers) as opens:
        status, _, err = check_config(
            monkeypatch, capsys, EXESDB_WEBHOOK_CONFIG_FILE=str(receivers)
        )
        assert status == exit_status
        assert opens.count() == 1
    [warning] = [line for line in err.splitlines() if "warning" in line]
    assert warned in warning


def test_run_reads_the_receivers_file_once_at_start(tmp_path: Path) -> None:
    """``run`` opens EXESDB_WEBHOOK_CONFIG_FILE once: its checks, its warnings and the alert
    sink's receivers all come from that one read, never from a version changed in between."""
    receivers = write(tmp_path, f"webhook_configs:\n  - url: http://127.0.0.1:{free_port()}/h\n")
    bridge = BridgeProcess(state_dir=tmp_path / "state", EXESDB_WEBHOOK_CONFIG_FILE=str(receivers))
    with FileOpens(receivers) as opens:
        try:
            bridge.start(tmp_path)
            # The alert sink starts before the port answers: start-up is over.
            assert "alerts: 1 webhook receiver(s)" in bridge.log()
            assert opens.count() == 1
        finally:
            assert bridge.stop() == 0


def test_run_logs_the_global_keys_it_does_not_read_once_at_start(tmp_path: Path) -> None:
    """``run`` with Alertmanager's global section pasted starts, and its log names the keys it
    does not read in one warning, said once."""
    receivers = write(
        tmp_path,
        "global:\n  resolve_timeout: 5m\n  smtp_auth_password: <secret>\n"
        f"webhook_configs:\n  - url: http://127.0.0.1:{free_port()}/h\n",
    )
    bridge = BridgeProcess(state_dir=tmp_path / "state", EXESDB_WEBHOOK_CONFIG_FILE=str(receivers))
    try:
        bridge.start(tmp_path)
        # The alert sink starts before the port answers: start-up is over.
        assert "alerts: 1 webhook receiver(s)" in bridge.log()
        warned = [line for line in bridge.log().splitlines() if " ignored: " in line]
        assert len(warned) == 1, bridge.log()
        assert "global: resolve_timeout, smtp_auth_password ignored: " in warned[0]
    finally:
        assert bridge.stop() == 0


def test_check_config_names_the_variable_a_zero_stands_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """max_alerts: 0 and timeout: 0s (as an Alertmanager dump prints them) are shown as the
    variables they stand for, not as Alertmanager's "no limit"."""
    text = (
        "webhook_configs:\n  - {url: http://h, max_alerts: 0, timeout: 0s}\n"
        "alertmanager: {url: http://am, timeout: 0s}\n"
    )
    monkeypatch.setenv("EXESDB_WEBHOOK_CONFIG_FILE", str(write(tmp_path, text)))
    assert main(["check-config"]) == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert "max_alerts=(EXESDB_WEBHOOK_MAX_ALERTS), timeout=(EXESDB_WEBHOOK_TIMEOUT_MS)" in lines[0]
    assert lines[1].startswith("alertmanager http://am: timeout=(EXESDB_WEBHOOK_TIMEOUT_MS);")


@pytest.mark.parametrize(
    ("hook", "webhook_secret", "shown"),
    [
        ("{url: http://h, secret: s3cr3t}", None, "secret <set, redacted>"),
        ("{url: http://h, secret_file: /run/key}", None, "secret_file /run/key"),
        ("{url: http://h}", "env-s3cr3t", "secret from EXESDB_WEBHOOK_SECRET"),
        ("{url: http://h}", None, "unsigned (no secret, secret_file nor EXESDB_WEBHOOK_SECRET)"),
        ("{url: http://h}", "", "unsigned (no secret, secret_file nor EXESDB_WEBHOOK_SECRET)"),
    ],
)
def test_check_config_says_how_each_receiver_signs_or_that_it_does_not(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    hook: str,
    webhook_secret: str | None,
    shown: str,
) -> None:
    """A receiver without a secret of its own signs with EXESDB_WEBHOOK_SECRET, and check-config
    says it goes unsigned when that is unset too, rather than naming an unset variable."""
    monkeypatch.setenv(
        "EXESDB_WEBHOOK_CONFIG_FILE", str(write(tmp_path, f"webhook_configs: [{hook}]\n"))
    )
    if webhook_secret is None:
        monkeypatch.delenv("EXESDB_WEBHOOK_SECRET", raising=False)
    else:
        monkeypatch.setenv("EXESDB_WEBHOOK_SECRET", webhook_secret)
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    [line] = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert f", {shown}; " in line
    assert "s3cr3t" not in out


def test_docs_name_the_variable_each_zero_is_shown_as(tmp_path: Path) -> None:
    """docs/alerts.md's account of check-config names each variable a 0 is shown as, beside the
    option it stands in for."""
    path = write(tmp_path, "webhook_configs:\n  - {url: http://h, max_alerts: 0, timeout: 0s}\n")
    [line] = describe_receivers(read_receivers_file(path), webhook_secret=True)
    shown = dict(re.findall(r"(max_alerts|timeout)=(\(EXESDB_\w+\))", line))
    assert set(shown) == {"max_alerts", "timeout"}
    docs = (ROOT / "docs" / "alerts.md").read_text(encoding="utf-8")
    paragraph = docs[docs.index("`exesdb-bridge check-config` prints one line per receiver") :]
    paragraph = " ".join(paragraph[: paragraph.index("\n\n")].split())
    for option, variable in shown.items():
        assert f"`{option}` (a 0 shown as `{variable}`" in paragraph


# Files a receiver names that cannot be read at start: missing ones, and a folder.
UNREADABLE_AT_START = """
webhook_configs:
  - url_file: missing-url
  - url: https://hooks.example.com/services/url-tok3n
    secret_file: a-folder
    http_config:
      authorization:
        credentials_file: missing-token
      tls_config:
        ca_file: missing-ca.pem
  - url: https://fine.example.com/hook
    secret_file: readable-secret
    http_config:
      basic_auth:
        username: alerts
        password_file: readable-password
alertmanager:
  url: http://am.example.com:9093
  http_config:
    basic_auth:
      username: am
      password_file: missing-am-password
"""


def test_check_config_warns_of_each_receiver_file_it_cannot_read_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file a receiver names that cannot be read now is a warning, not an error: check-config
    exits 0 and names the receiver (origin or url_file), the key and the file, never a content;
    readable files are not named."""
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "readable-secret").write_text("secret-tok3n\n")
    (tmp_path / "readable-password").write_text("password-tok3n\n")
    monkeypatch.setenv("EXESDB_WEBHOOK_CONFIG_FILE", str(write(tmp_path, UNREADABLE_AT_START)))
    assert main(["check-config"]) == 0
    captured = capsys.readouterr()
    assert "tok3n" not in captured.out + captured.err
    warned = [line for line in captured.err.splitlines() if "cannot be read now" in line]
    hooks = "webhook_configs.1 https://hooks.example.com/…"
    expected = [
        (f"webhook_configs.0 url_file:{tmp_path / 'missing-url'}", "url_file", "missing-url"),
        (hooks, "secret_file", "a-folder"),
        (hooks, "tls_config.ca_file", "missing-ca.pem"),
        (hooks, "authorization.credentials_file", "missing-token"),
        ("alertmanager", "basic_auth.password_file", "missing-am-password"),
    ]
    assert len(warned) == len(expected), captured.err
    for line, (receiver, key, name) in zip(warned, expected, strict=True):
        assert line.startswith("warning: ")
        assert f"{receiver}: {key} {tmp_path / name} cannot be read now" in line
    assert "readable-" not in captured.err


def test_a_file_of_the_alertmanager_section_that_cannot_be_read_fails_its_posts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unreadable file of the alertmanager section is said to fail the poster's posts, not
    deliveries, which are the webhook receivers' (their warning keeps the word)."""
    monkeypatch.setenv("EXESDB_WEBHOOK_CONFIG_FILE", str(write(tmp_path, UNREADABLE_AT_START)))
    assert main(["check-config"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "cannot be read now" in line]
    [poster] = [line for line in warned if "alertmanager: " in line]
    assert poster.endswith("; its posts fail and are retried until it can be"), poster
    hooks = [line for line in warned if "webhook_configs." in line]
    assert hooks
    assert all("; its deliveries fail and are retried" in line for line in hooks)


def test_a_tls_config_file_a_plain_http_url_never_reads_is_not_warned_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing CA file in the tls_config of an http:// receiver is no delivery failure to
    come: check-config says only that the tls_config has no effect; on an https:// receiver
    the same missing file is warned of."""
    missing = tmp_path / "missing-ca.pem"
    path = tmp_path / "receivers.yml"
    path.write_text(
        "webhook_configs:\n"
        f"  - url: http://plain.example.com/hook\n    http_config:\n"
        f"      tls_config: {{ca_file: {missing}}}\n"
        f"  - url: https://secure.example.com/hook\n    http_config:\n"
        f"      tls_config: {{ca_file: {missing}}}\n"
    )
    monkeypatch.setenv("EXESDB_WEBHOOK_CONFIG_FILE", str(path))
    monkeypatch.setenv("EXESDB_WEBHOOK_SECRET", "k" * 32)  # no unsigned receiver to warn of
    assert main(["check-config"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "webhook_configs" in line]
    assert [line.split(": ", 2)[1:] for line in warnings] == [
        [
            "EXESDB_WEBHOOK_CONFIG_FILE webhook_configs.0 http://plain.example.com/…",
            "tls_config is set, but its URL is http://, which no TLS protects: it has no effect"
            " (use the https:// URL, or leave tls_config out)",
        ],
        [
            "EXESDB_WEBHOOK_CONFIG_FILE webhook_configs.1 https://secure.example.com/…",
            f"tls_config.ca_file {missing} cannot be read now (No such file or directory); its"
            " deliveries fail and are retried until it can be",
        ],
    ], warnings


def test_an_item_below_a_secret_key_is_named_an_entry_by_its_line(tmp_path: Path) -> None:
    """A bad item in a list below a secret key (a header's secrets) is not shown, and the
    problem says an entry (not a key) is hidden, with its line."""
    path = tmp_path / "receivers.yml"
    path.write_text(
        "webhook_configs:\n  - url: https://example.com/hook\n    http_config:\n"
        "      http_headers:\n        X-Token:\n          secrets: [1, 2]\n"
    )
    with pytest.raises(ConfigError) as refused:
        load_receivers(path)
    assert "http_headers.X-Token.secrets (line 6, its entry not shown): must be text" in str(
        refused.value
    )


# One receiver with a mistyped key, one that names a file missing now.
BAD_AND_UNREADABLE = """
webhook_configs:
  - url: https://bad.example.com/hook
    sent_resolved: false
  - url: https://fine.example.com/hook
    secret_file: missing-secret
"""


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_a_file_with_problems_is_also_warned_of_for_what_it_cannot_read(
    tmp_path: Path, command: str
) -> None:
    """A receivers file with problems stops `check-config` and `run` (exit 2) naming each, and
    the files its good receivers name that cannot be read now are warned of beside them, so that
    the file is mended in one go."""
    path = write(tmp_path, BAD_AND_UNREADABLE)
    env = {"EXESDB_WEBHOOK_CONFIG_FILE": str(path), "EXESDB_HTTP_ADDR": "127.0.0.1:0"}
    completed = run_bridge(command, env=env)
    assert completed.returncode == 2
    lines = completed.stderr.splitlines()
    assert lines[0] == "exesdb-bridge: bad configuration:"
    assert "webhook_configs.0.sent_resolved: unknown key" in lines[1]
    assert lines[2] == (
        "exesdb-bridge: warning: EXESDB_WEBHOOK_CONFIG_FILE webhook_configs.1"
        f" https://fine.example.com/…: secret_file {tmp_path / 'missing-secret'} cannot be read"
        " now (No such file or directory); its deliveries fail and are retried until it can be"
    )
    assert len(lines) == 3, completed.stderr


def test_a_bad_variable_beside_the_file_keeps_its_warnings(tmp_path: Path) -> None:
    """A bad value of another variable does not hide the receivers file's warnings."""
    path = write(tmp_path, BAD_AND_UNREADABLE)
    completed = run_bridge(
        "check-config", env={"EXESDB_WEBHOOK_CONFIG_FILE": str(path), "EXESDB_INGEST": "maybe"}
    )
    assert completed.returncode == 2
    assert "  EXESDB_INGEST: must be true or false" in completed.stderr
    assert "  EXESDB_WEBHOOK_CONFIG_FILE: " in completed.stderr
    last = completed.stderr.splitlines()[-1]
    assert last.startswith("exesdb-bridge: warning: EXESDB_WEBHOOK_CONFIG_FILE webhook_configs.1 ")
    assert "secret_file" in last
    assert "cannot be read now" in last


TLS_ON_PLAIN_HTTP = """
webhook_configs:
  - url: http://plain.example.com/hook
    http_config:
      tls_config: {insecure_skip_verify: true}
  - url: https://secure.example.com/hook
    http_config:
      tls_config: {insecure_skip_verify: true}
  - url: http://proxied.example.com/hook
    http_config:
      proxy_url: https://proxy.example.com:3128
      tls_config: {insecure_skip_verify: true}
  - url: http://bare.example.com/hook
alertmanager:
  http_config:
    tls_config: {server_name: am.example.com}
"""


@pytest.mark.parametrize(
    ("alertmanager_url", "warned"),
    [
        (
            "http://am.example.com:9093",
            ["webhook_configs.0 http://plain.example.com/…", "alertmanager"],
        ),
        ("https://am.example.com:9093", ["webhook_configs.0 http://plain.example.com/…"]),
    ],
)
def test_a_tls_config_an_http_url_never_uses_is_warned_of(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    alertmanager_url: str,
    warned: list[str],
) -> None:
    """A tls_config on a receiver (or Alertmanager, by EXESDB_ALERTMANAGER_URL) reached over
    http:// has no effect, which Alertmanager leaves unsaid: check-config warns, naming it; not
    on an https:// one, nor through an https:// proxy, which may use it."""
    monkeypatch.setenv("EXESDB_WEBHOOK_CONFIG_FILE", str(write(tmp_path, TLS_ON_PLAIN_HTTP)))
    monkeypatch.setenv("EXESDB_ALERTMANAGER_URL", alertmanager_url)
    assert main(["check-config"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "tls_config is set" in line]
    assert [line.split(": tls_config")[0] for line in lines] == [
        f"warning: EXESDB_WEBHOOK_CONFIG_FILE {who}" for who in warned
    ]
    assert lines[0].endswith(
        ": tls_config is set, but its URL is http://, which no TLS protects: it has no effect"
        " (use the https:// URL, or leave tls_config out)"
    )


def _oauth2(token_url: str, extra: str = "") -> str:
    """An oauth2 block, on one line, whose token endpoint has a tls_config of its own."""
    return (
        f"{{oauth2: {{client_id: x, client_secret: tok3n, token_url: '{token_url}',"
        f" tls_config: {{server_name: idp.example.com}}{extra}}}}}"
    )


def test_an_oauth2_tls_config_its_http_token_url_never_uses_is_warned_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An oauth2 tls_config whose token_url is http:// has no effect: check-config warns once
    for each block holding one (a receiver's, the alertmanager section's, global's), as for a
    receiver's own tls_config; not for an https:// token_url nor one reached through an
    https:// proxy, which may use it."""
    plain, secure = "http://idp.example.com/token", "https://idp.example.com/token"
    proxied = _oauth2(plain, ", proxy_url: 'https://proxy.example.com:3128'")
    path = write(
        tmp_path,
        "global:\n"
        f"  http_config: {_oauth2(plain)}\n"
        "webhook_configs:\n"
        f"  - url: https://a.example.com/hook\n    http_config: {_oauth2(plain)}\n"
        f"  - url: https://b.example.com/hook\n    http_config: {_oauth2(secure)}\n"
        f"  - url: https://c.example.com/hook\n    http_config: {proxied}\n"
        "  - url: http://d.example.com/hook\n"  # takes global's: warned of once, as global's
        "alertmanager:\n"
        f"  url: http://am.example.com:9093\n  http_config: {_oauth2(plain)}\n",
    )
    monkeypatch.setenv("EXESDB_WEBHOOK_CONFIG_FILE", str(path))
    monkeypatch.setenv("EXESDB_WEBHOOK_SECRET", "k" * 32)  # no unsigned receiver to warn of
    assert main(["check-config"]) == 0
    said = (
        "oauth2.tls_config is set, but its token_url is http://, which no TLS protects: it has"
        " no effect (use the https:// token_url, or leave oauth2.tls_config out)"
    )
    lines = [line for line in capsys.readouterr().err.splitlines() if "tls_config" in line]
    assert lines == [
        f"warning: EXESDB_WEBHOOK_CONFIG_FILE {where}{said}"
        for where in (
            "webhook_configs.0 https://a.example.com/…: ",
            "alertmanager: ",
            "global.http_config.",
        )
    ], lines


def test_check_config_redacts_what_reads_as_a_secret_in_a_file_path(tmp_path: Path) -> None:
    """A receiver's file paths are shown as written, save what reads as a secret in them (a
    folder named ``password=…``), as every other check-config line is redacted."""
    folder = tmp_path / "password=hunter2"
    path = write(
        tmp_path,
        "webhook_configs:\n"
        f"  - url: https://hooks.example/x\n    secret_file: {folder}/hook-secret\n"
        "    http_config:\n"
        f"      authorization: {{credentials_file: {folder}/token}}\n",
    )
    [line] = describe_receivers(read_receivers_file(path), webhook_secret=True)
    assert "hunter2" not in line
    assert "secret_file " in line
    assert "credentials_file " in line


def _schema_keys(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Each key the receivers file's schema takes, as (its dotted path, its own name): the
    models' fields (a list's or a mapping's items under their field) and the keys a model
    takes beside them (``Strict.also_taken``: ``bearer_token``)."""
    given = [(info.alias or name, info.annotation) for name, info in model.model_fields.items()]
    if issubclass(model, Strict):
        given += [(key, None) for key in sorted(model.also_taken)]
    for key, annotation in given:
        yield prefix + key, key
        held = [
            part
            for outer in (annotation, *typing.get_args(annotation))
            for part in (outer, *typing.get_args(outer))
            if isinstance(part, type) and issubclass(part, BaseModel)
        ]
        if held:
            yield from _schema_keys(held[0], f"{prefix}{key}.")


# Keys docs/alerts.md names as a group, not one by one; each must still be a key of the schema
# and named nowhere on its own (else it leaves this list).
_NAMED_AS_A_GROUP: Final = frozenset(
    {
        # "the `*_ref` keys (no secret manager, …)": refused, each by name, saying so.
        "username_ref",
        "password_ref",
        "ca_ref",
        "cert_ref",
        "key_ref",
        # oauth2's JWT bearer grant keys, named `client_certificate_key*` (which names
        # client_certificate_key itself): refused.
        "client_certificate_key_id",
        "client_certificate_key_file",
        "client_certificate_key_ref",
        # Alertmanager's other global keys, named "`smtp_*`, `slack_api_url`, … up to
        # Alertmanager 0.34's GlobalConfig": accepted, unread, warned of.
        "smtp_hello",
        "smtp_auth_username",
        "smtp_auth_password",
        "smtp_auth_password_file",
        "smtp_auth_secret",
        "smtp_auth_secret_file",
        "smtp_auth_identity",
        "smtp_require_tls",
        "smtp_tls_config",
        "smtp_force_implicit_tls",
        "slack_api_url_file",
        "slack_app_token",
        "slack_app_token_file",
        "slack_app_url",
        "opsgenie_api_url",
        "opsgenie_api_key_file",
        "wechat_api_url",
        "wechat_api_secret",
        "wechat_api_secret_file",
        "wechat_api_corp_id",
        "victorops_api_url",
        "victorops_api_key",
        "victorops_api_key_file",
        "telegram_api_url",
        "telegram_bot_token_file",
        "webex_api_url",
        "rocketchat_api_url",
        "rocketchat_token",
        "rocketchat_token_file",
        "rocketchat_token_id",
        "rocketchat_token_id_file",
        "mattermost_webhook_url",
        "mattermost_webhook_url_file",
    }
)


def _named_keys(text: str) -> set[str]:
    """The words of the page's code spans (one may run over a line break), and the keys its
    YAML examples give, written or in a comment (``# or ca: its PEM``)."""
    fences = "\n".join(re.findall(r"^```yaml\n(.*?)^```", text, flags=re.M | re.S))
    outside = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    words = {word for span in re.findall(r"`([^`]+)`", outside) for word in re.split(r"\W+", span)}
    return words | set(re.findall(r"(?<![\w.])(\w+):", fences))


def test_the_alerts_page_names_every_key_of_the_receivers_file() -> None:
    """docs/alerts.md names each key the receivers file takes (webhook_configs entries,
    http_config and its blocks, oauth2's among them, alertmanager, global), save those it names
    as a group (_NAMED_AS_A_GROUP), so a key added to the schema is documented."""
    # Each name by its first path.
    keys = {key: path for path, key in reversed(list(_schema_keys(ReceiversFile)))}
    assert keys["client_secret_file"] == "webhook_configs.http_config.oauth2.client_secret_file"
    assert "bearer_token_file" in keys
    named = _named_keys(page("alerts"))
    assert set(keys) >= _NAMED_AS_A_GROUP, "not a key of the schema: leave it out of the list"
    assert _NAMED_AS_A_GROUP.isdisjoint(named), "named on its own: leave it out of the list"
    unnamed = [path for key, path in keys.items() if key not in named | _NAMED_AS_A_GROUP]
    assert unnamed == [], f"name these keys on docs/alerts.md: {unnamed}"
