"""The receivers file (EXESDB_WEBHOOK_CONFIG_FILE) read strictly: Alertmanager's webhook_config
taken unchanged, each bad key or value a problem naming it, every problem at once, never a
secret shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.errors import ConfigError
from bridge.receivers import go_duration, load_receivers
from tests.receivers_support import ALERTMANAGER_BLOCK, write

pytestmark = pytest.mark.usefixtures("clean_env")


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
            "webhook_configs.0.send_resolve: unknown key; did you mean 'send_resolved'? allowed"
            " here: url, url_file, send_resolved,",
        ),
        (  # the file takes its keys in their case only, as Go does: the one meant is named
            "webhook_configs:\n  - url: http://h/x\n    SEND_RESOLVED: true\n",
            "webhook_configs.0.SEND_RESOLVED: unknown key; did you mean 'send_resolved'? allowed",
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
            "webhook_configs.0.max_alerts: must be a whole number from 0"
            " (EXESDB_WEBHOOK_MAX_ALERTS) to 100000, e.g. 50 (got -1)",
        ),
        # Go's YAML reader takes no text in quotes nor a boolean into Alertmanager's uint64.
        (
            "webhook_configs:\n  - {url: 'http://h', max_alerts: '5'}\n",
            "webhook_configs.0.max_alerts: must be a whole number without quotes, as Go's YAML"
            " reader asks (got '5')",
        ),
        (
            "webhook_configs:\n  - {url: 'http://h', max_alerts: true}\n",
            "webhook_configs.0.max_alerts: must be a whole number, not a boolean (got true)",
        ),
        # Text that is no number was written without quotes: not told to leave them out.
        (
            "webhook_configs:\n  - {url: 'http://h', max_alerts: ten}\n",
            "webhook_configs.0.max_alerts: must be a whole number (got 'ten')",
        ),
        # Bounded as the environment's settings are: past them a value is a slip.
        (
            "webhook_configs:\n  - {url: 'http://h', max_alerts: 10000000000}\n",
            "webhook_configs.0.max_alerts: must be a whole number from 0"
            " (EXESDB_WEBHOOK_MAX_ALERTS) to 100000, e.g. 50 (got 10000000000)",
        ),
        (
            "webhook_configs:\n  - {url: 'http://h', timeout: 10m1s}\n",
            "webhook_configs.0.timeout: must be a duration from 0 (EXESDB_WEBHOOK_TIMEOUT_MS)"
            " to 10m, e.g. 10s (got '10m1s')",
        ),
        (
            "webhook_configs:\n  - {url: 'http://h', timeout: 99999999999999999999999h}\n",
            "webhook_configs.0.timeout: must be a duration from 0",
        ),
        (
            "alertmanager:\n  timeout: 1h\n",
            "alertmanager.timeout: must be a duration from 0 (EXESDB_WEBHOOK_TIMEOUT_MS)"
            " to 10m, e.g. 10s (got '1h')",
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
            "alertmanager: {url: 'http://am:9093/#/alerts'}\n",
            "alertmanager.url: has a query or fragment (? or #), as the address of Alertmanager's",
        ),
        (
            "receivers:\n  - name: ops\n    webhook_configs:\n      - url: http://h/tok3n\n",
            "receivers: unknown key; allowed here: webhook_configs, alertmanager, global (this"
            " file takes the webhook_configs list of an Alertmanager receiver, not Alertmanager's"
            " receivers section",
        ),
        (  # a key Alertmanager's global section does not have either
            "global:\n  smtp_frm: ops@example.com\nwebhook_configs:\n  - url: http://h\n",
            "global.smtp_frm: unknown key; did you mean 'smtp_from'? allowed here: http_config,"
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
        # A [ or { never closed, or a quote: told at the line that opened it, not where the
        # parser gave up (the end of the file), and what is wrong, never the text.
        (
            "webhook_configs: [{url: http://h/tok3n}\nalertmanager: {url: http://am:9093}\n",
            "receivers.yml: not valid YAML at line 1: a [ opened on this line is not closed by"
            " its ]",
        ),
        (
            "webhook_configs:\n  - url: http://h/x\n    http_config: {authorization: {credentials:"
            " tok3n}\n",
            "receivers.yml: not valid YAML at line 3: a { opened on this line is not closed by"
            " its }",
        ),
        (
            'webhook_configs:\n  - url: "http://h/tok3n\n    send_resolved: true\n',
            "receivers.yml: not valid YAML at line 2: a quote opened on this line is not closed",
        ),
        (  # the parser stops on the line after it: the line without ': ' is named
            "webhook_configs:\n  - url: http://h/tok3n\n    send_resolved true\n"
            "    max_alerts: 3\n",
            "receivers.yml: not valid YAML at line 3: a line among key: value lines has no ': '"
            " (a colon and a space after the key)",
        ),
        (
            "webhook_configs:\n  - url: http://h/tok3n: x\n",
            "receivers.yml: not valid YAML at line 2: a ': ' where YAML reads a value: a value"
            " holding ': ' needs quotes, and a line above without its own ': ' runs on into this"
            " one",
        ),
        # A line indented as none beside it: a key at its list's '- ' indent, one between
        # the '- ' and its entry's keys, a '- ' less indented than the entries above it.
        (
            "webhook_configs:\n  - url: http://h/tok3n\n  max_alerts: 3\n",
            "receivers.yml: not valid YAML at line 3: a key at the indent of the '- ' above it,"
            " where only another '- ' entry may begin: indent it as its entry's keys are (the"
            " first one after its '- ')",
        ),
        (
            "webhook_configs:\n  - url: http://h/tok3n\n   secret: s\n",
            "receivers.yml: not valid YAML at line 3: it is indented as none of the lines beside"
            " it: a key lines up with the keys beside it (an entry's with the first one after"
            " its '- '), a '- ' with the entries beside it",
        ),
        (
            "webhook_configs:\n    - url: http://h/a\n  - url: http://h/b\n",
            "receivers.yml: not valid YAML at line 3: it is indented as none of the lines beside",
        ),
        (
            "webhook_configs:\n- url: http://h/x\n\tsend_resolved: true\n",
            "receivers.yml: not valid YAML at line 3: a tab indents it, and YAML indents with"
            " spaces only",
        ),
        (
            "webhook_configs:\n  url: http://h/x\n",
            "webhook_configs: must be a list: each entry on a line starting with '- '",
        ),
        # Receivers listed bare, without webhook_configs: the keys meant are named.
        (
            "- url: http://h/x\n",
            "the top level must be a mapping of keys ('key:' lines at the start), not a list;"
            " allowed here: webhook_configs, alertmanager, global (a list of receivers, '- url: …'"
            " entries, goes under a top-level webhook_configs: write 'webhook_configs:' on a line"
            " of its own above it)",
        ),
        ("just-a-url\n", "not a single value; allowed here: webhook_configs"),
        # A receiver, or the alertmanager section, written as its URL alone: the keys meant.
        # Not shown: a webhook's URL may be its key (Slack's path is).
        (
            "webhook_configs:\n  - http://h:1/tok3n\n",
            "webhook_configs.0: must be a mapping of keys; allowed keys"
            " here: url, url_file, send_resolved,",
        ),
        (
            "alertmanager: http://u:tok3n@am:9093\n",
            "alertmanager: must be a mapping of keys; allowed keys here: url, timeout, http_config",
        ),
        (  # Go would read it as false: neither that nor the default is guessed
            "webhook_configs:\n  - url: http://h/x\n    http_config:\n      follow_redirects:\n",
            "webhook_configs.0.http_config.follow_redirects: empty (null); give a value",
        ),
        (  # one entry per receiver: taken as one URL, the second would never be sent to
            "webhook_configs:\n  - url: https://a.example/tok3n https://b.example/tok3n\n",
            "webhook_configs.0.url: holds a second URL after a blank",
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


@pytest.mark.parametrize(
    "text",
    ["webhook_configs: [{url: http://h/x: y}]\n", "webhook_configs: [{url: http://h/x} y: z]\n"],
)
def test_a_bracket_closed_on_its_line_is_not_said_to_be_left_open(
    tmp_path: Path, text: str
) -> None:
    """A [ or { closed on its own line, holding what YAML refuses, names that line without saying
    the bracket is not closed, which would send the reader looking for a ] that is there."""
    with pytest.raises(ConfigError) as caught:
        load_receivers(write(tmp_path, text))
    [problem] = caught.value.problems
    assert problem.endswith("receivers.yml: not valid YAML at line 1"), problem
    assert "not closed" not in problem


def test_numbers_at_their_bounds_are_taken(tmp_path: Path) -> None:
    """max_alerts 100000 and a timeout of 10m, the most the environment's settings take, load."""
    loaded = load_receivers(
        write(
            tmp_path,
            "webhook_configs:\n  - {url: 'http://h', max_alerts: 100000, timeout: 10m}\n"
            "alertmanager: {timeout: 600s}\n",
        )
    )
    [hook] = loaded.webhook_configs
    assert (hook.max_alerts, hook.timeout) == (100_000, 600.0)
    assert loaded.alertmanager is not None
    assert loaded.alertmanager.timeout == 600.0


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
                "http_config.enable_http2: must be true or false (it also takes yes/no",
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
