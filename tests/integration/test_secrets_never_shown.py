"""No configured secret is ever shown: a bridge process given a distinctive value for every secret
(environment and files), with receivers that fail, driven through its pages, API and commands,
never prints one in its logs (at debug), answers, command output or OTLP export."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.servers.oauth2 import TokenServer, token_server
from tests.integration.servers.otlp import HttpOtlpReceiver
from tests.integration.servers.redis import redis_server
from tests.integration.servers.webhook import WebhookReceiver, webhook_receiver
from tests.support import ROOT, BridgeProcess, bridge_env, free_port, http_get, wait_until
from tests.webconfig.files import basic, bcrypt_hash

pytestmark = pytest.mark.integration

# The fixtures, imported for the tests below.
__all__ = ["redis_server", "token_server", "webhook_receiver"]

# Every value below is a secret of some kind; each is distinctive, so a leak cannot hide.
KEY_BASE = "key-base-Secret01-padded-to-more-than-32-characters"
PREVIOUS_KEY = "previous-key-Secret02-also-long-enough-to-be-a-key"
ADMIN_TOKEN = "admin-token-Secret03"
WEBHOOK_SECRET = "webhook-signing-Secret04"
URL_PASSWORD = "url-password-Secret05"
URL_PATH_TOKEN = "path-token-Secret06"
URL_QUERY_TOKEN = "query-token-Secret07"
BEARER = "file-bearer-Secret08"
FILE_SIGNING = "file-signing-Secret09"
BASIC_PASSWORD = "basic-password-Secret10"
PROXY_PASSWORD = "proxy-password-Secret11"
AM_URL_PASSWORD = "am-url-password-Secret12"
AM_PATH_TOKEN = "am-path-Secret13"
OTLP_PASSWORD = "otlp-password-Secret15"
OTLP_HEADER = "otlp-header-Secret16"
PROBE_PASSWORD = "probe-password-Secret17"
TYPO_VALUE = "typo-value-Secret18"
FILE_PATH_TOKEN = "file-path-Secret19"
OTLP_QUERY_TOKEN = "otlp-query-Secret20"
OAUTH2_SECRET = "oauth2-client-Secret21"
SECRETS = [
    KEY_BASE,
    PREVIOUS_KEY,
    ADMIN_TOKEN,
    WEBHOOK_SECRET,
    URL_PASSWORD,
    URL_PATH_TOKEN,
    URL_QUERY_TOKEN,
    BEARER,
    FILE_SIGNING,
    BASIC_PASSWORD,
    PROXY_PASSWORD,
    AM_URL_PASSWORD,
    AM_PATH_TOKEN,
    OTLP_PASSWORD,
    OTLP_HEADER,
    PROBE_PASSWORD,
    TYPO_VALUE,
    FILE_PATH_TOKEN,
    OTLP_QUERY_TOKEN,
    OAUTH2_SECRET,
    "access-tok3n",  # each token the token endpoint issues
]


@pytest.fixture
def otlp() -> Iterator[HttpOtlpReceiver]:
    """A real OTLP/HTTP receiver."""
    receiver = HttpOtlpReceiver().start()
    yield receiver
    receiver.stop()


def _files(
    folder: Path, refusing: WebhookReceiver, revoking: WebhookReceiver, tokens: TokenServer
) -> dict[str, str]:
    """The web config, receivers file and secret files; the environment naming them."""
    probe_hash = bcrypt_hash(PROBE_PASSWORD)
    (folder / "web.yml").write_text(f"basic_auth_users:\n  probe: {probe_hash}\n")
    (folder / "probe-password").write_text(PROBE_PASSWORD + "\n")
    (folder / "bearer").write_text(BEARER + "\n")
    (folder / "signing").write_text(FILE_SIGNING + "\n")
    (folder / "basic").write_text(BASIC_PASSWORD + "\n")
    (folder / "oauth2-secret").write_text(OAUTH2_SECRET + "\n")
    closed = free_port()
    (folder / "receivers.yml").write_text(
        f"""
webhook_configs:
  - url: {refusing.url}
    secret_file: signing
    http_config:
      authorization:
        credentials_file: bearer
  - url: http://127.0.0.1:{closed}/{FILE_PATH_TOKEN}/proxied
    http_config:
      basic_auth:
        username: alerts
        password_file: basic
      proxy_url: http://proxy:{PROXY_PASSWORD}@127.0.0.1:{free_port()}
  - url: {revoking.url}
    http_config:
      oauth2:
        client_id: bridge
        client_secret_file: oauth2-secret
        token_url: {tokens.url}
alertmanager:
  url: http://am:{AM_URL_PASSWORD}@127.0.0.1:{closed}/{AM_PATH_TOKEN}
  timeout: 2s
"""
    )
    return {
        "EXESDB_WEB_CONFIG_FILE": str(folder / "web.yml"),
        "EXESDB_WEBHOOK_CONFIG_FILE": str(folder / "receivers.yml"),
        "EXESDB_HEALTHCHECK_USERNAME": "probe",
        "EXESDB_HEALTHCHECK_PASSWORD_FILE": str(folder / "probe-password"),
        "_PROBE_HASH": probe_hash,
    }


def _run(env: dict[str, str], *args: str) -> str:
    """An ``exesdb-bridge`` command's name, exit status, stdout and stderr, as one text."""
    completed = subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(ROOT),
    )
    return f"$ {args[0]}: {completed.returncode}\n{completed.stdout}\n{completed.stderr}"


def test_no_secret_appears_in_logs_pages_api_commands_or_otlp(
    tmp_path: Path, webhook_receiver, token_server, otlp: HttpOtlpReceiver
) -> None:
    """With every secret set (environment and files) and every receiver failing (401, refused
    connection, unreachable proxy, an oauth2 token refused at every attempt, unreachable
    Alertmanager), nothing the bridge prints at debug,
    serves (pages, /v1/alerts, probes, /metrics, refusals) or exports over OTLP, nor what
    check-config, healthcheck, publish, alerts and outbox print, holds any of the secrets."""
    refusing: WebhookReceiver = webhook_receiver(
        path=f"/{FILE_PATH_TOKEN}", authorization="Bearer something-else"
    )
    tokens: TokenServer = token_server("bridge", OAUTH2_SECRET)
    revoking: WebhookReceiver = webhook_receiver(authorization="Bearer something-else")
    files = _files(tmp_path, refusing, revoking, tokens)
    probe_hash = files.pop("_PROBE_HASH")
    login = {"Authorization": basic("probe", PROBE_PASSWORD)}
    env: dict[str, Any] = {
        **files,
        "SECRET_KEY_BASE": KEY_BASE,
        "EXESDB_SECRET_KEY_BASE_PREVIOUS": PREVIOUS_KEY,
        "EXESDB_ADMIN_TOKEN": ADMIN_TOKEN,
        "EXESDB_ADMIN_TOKN": TYPO_VALUE,  # a misspelt secret variable: warned of, never echoed
        "EXESDB_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "EXESDB_WEBHOOK_URLS": (
            f"http://hooks:{URL_PASSWORD}@127.0.0.1:{free_port()}/{URL_PATH_TOKEN}"
            f"?token={URL_QUERY_TOKEN}"
        ),
        "EXESDB_WEBHOOK_BACKOFF_MS": "100",
        "EXESDB_WEBHOOK_MAX_BACKOFF_MS": "200",
        "EXESDB_WEBHOOK_GROUP_WAIT_MS": "0",
        "EXESDB_WEBHOOK_TIMEOUT_MS": "2000",
        "EXESDB_INGEST": "true",
        "EXESDB_LOG_LEVEL": "debug",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint.replace("//", f"//otel:{OTLP_PASSWORD}@"),
        # Some vendors take the key in the query; urllib3 logs the request line at debug.
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"{otlp.endpoint}/v1/logs?api-key={OTLP_QUERY_TOKEN}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={OTLP_HEADER}",
        # Spans exported every 100 ms (the SDK's 5 s was most of the test's wait for them).
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    process = BridgeProcess(state_dir=tmp_path / "state", headers=login, **env)
    seen: list[str] = []
    try:
        process.start(tmp_path)
        cli = {**process.env}
        user = ["--user", f"probe:{PROBE_PASSWORD}"]
        seen.append(
            _run(
                cli,
                "publish",
                "system_alert",
                "--topic",
                "node_failure",
                *("-f", "severity=critical", "-f", "category=system", "-f", "title=Node down"),
                *("-f", "description=silent", "-f", "source=ops", *user),
            )
        )
        admin = {**login, "X-ExESDB-Admin-Token": ADMIN_TOKEN}

        def alerts() -> list[dict[str, object]]:
            status, body = http_get(process.url + "/v1/alerts", admin)
            return json.loads(body)["alerts"] if status == 200 else []

        [alert] = wait_until(alerts, 20, "the alert")
        alert_id = str(alert["alert_id"])

        def attempted() -> bool:
            out = _run(cli, "outbox", "list", "--json")
            rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            return len(rows) >= 4 and all(row.get("attempts", 0) >= 1 for row in rows)

        wait_until(attempted, 30, "an attempt at every receiver", every=0.5)
        wait_until(lambda: refusing.requests, 10, "the refusing receiver's first request")
        wait_until(lambda: len(tokens.issued) >= 2, 10, "a second token, the first refused")
        wait_until(lambda: otlp.spans and otlp.logs, 20, "spans and logs over OTLP")
        for path in ("/", "/?part=live", f"/alerts/{quote(alert_id, safe='')}", "/readyz"):
            seen.append(http_get(process.url + path, login)[1].decode())
        seen.append(http_get(process.url + "/metrics", login)[1].decode())
        seen.append(http_get(process.url + "/v1/alerts", admin)[1].decode())
        wrong = {**login, "X-ExESDB-Admin-Token": ADMIN_TOKEN[:-1]}
        seen.append(http_get(process.url + "/v1/alerts", wrong)[1].decode())
        seen.append(http_get(process.url + "/v1/integration", admin)[1].decode())
        for command in (
            ["check-config"],
            ["healthcheck"],
            ["alerts", "list", *user],
            ["alerts", "list", "--json", *user],
            ["outbox", "list"],
            ["outbox", "list", "--json"],
        ):
            seen.append(_run(cli, *command))
    finally:
        process.stop()
    seen.append(process.log())
    seen.append(repr(otlp.spans) + repr(otlp.logs))
    shown = "\n".join(seen)
    assert "EXESDB_ADMIN_TOKN is set but is not a setting" in shown  # the warning was given
    assert alert_id in shown
    for secret in [*SECRETS, probe_hash]:
        assert secret not in shown, f"{secret!r} shown in: {_around(shown, secret)}"


def _around(text: str, secret: str) -> str:
    index = text.index(secret)
    return text[max(0, index - 300) : index + 100]


# Secrets a sender put where no key names one: in values, under look-alike keys.
IN_URL = "db-password-Secret22"
IN_BEARER = "bearer-Secret23"
IN_QUERY = "query-Secret24"
IN_PAIR = "conn-password-Secret25"
LOOKALIKE_KEY = "cyrillic-key-Secret26"
NESTED_LOOKALIKE = "greek-key-Secret27"
FULL_WIDTH_KEY = "full-width-Secret28"
IN_HEADER = "basic-Secret29"
IN_BACKSLASHED_PATH = "backslashed-path-Secret30"
METADATA = {
    "stream": "orders",
    "conn": f"postgres://app:{IN_URL}@db.internal/app",
    "header": f"Bearer {IN_BEARER}",
    "callback": f"/hooks/deploy?token={IN_QUERY}&attempt=2",
    "settings": f"Server=db;Password={IN_PAIR};",
    "p\u0430ssword": LOOKALIKE_KEY,  # password with a Cyrillic a
    "nested": {"t\u03bfken": NESTED_LOOKALIKE, "request": f"Authorization: Basic {IN_HEADER}"},
    "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44": FULL_WIDTH_KEY,  # password, full width
}
METADATA_SECRETS = [
    IN_URL,
    IN_BEARER,
    IN_QUERY,
    IN_PAIR,
    LOOKALIKE_KEY,
    NESTED_LOOKALIKE,
    FULL_WIDTH_KEY,
    IN_HEADER,
]


def test_no_secret_a_sender_put_in_alert_metadata_is_shown_under_a_harmless_key(
    tmp_path: Path, webhook_receiver
) -> None:
    """Secrets in the values of harmless metadata keys (a URL's password, a Bearer token, a
    query's token, a connection string's password, an Authorization header) and under keys
    spelt with look-alike or full-width letters are redacted on the alert page, in /v1/alerts
    and in the webhook a receiver gets; the harmless value stays."""
    receiver: WebhookReceiver = webhook_receiver()
    process = BridgeProcess(
        state_dir=tmp_path / "state",
        EXESDB_INGEST="true",
        EXESDB_WEBHOOK_URLS=receiver.url,
        EXESDB_WEBHOOK_GROUP_WAIT_MS="0",
    )
    seen: list[str] = []
    try:
        process.start(tmp_path)
        seen.append(
            _run(
                {**process.env},
                "publish",
                "system_alert",
                *("-f", "severity=critical", "-f", "category=system", "-f", "title=Deploy failed"),
                *("-f", "description=see metadata", "-f", "source=deploy"),
                *("-f", f"metadata={json.dumps(METADATA)}"),
            )
        )
        admin = {"X-ExESDB-Admin-Token": process.env["EXESDB_ADMIN_TOKEN"]}

        def alerts() -> list[dict[str, object]]:
            status, body = http_get(process.url + "/v1/alerts", admin)
            return json.loads(body)["alerts"] if status == 200 else []

        [alert] = wait_until(alerts, 20, "the alert")
        [request] = receiver.wait_for_requests(1, timeout=20)
        page = http_get(process.url + f"/alerts/{quote(str(alert['alert_id']), safe='')}")[1]
        seen += [page.decode(), json.dumps(alerts()), request.body.decode()]
    finally:
        process.stop()
    seen.append(process.log())
    shown = "\n".join(seen)
    [annotations] = [sent["annotations"] for sent in request.json()["alerts"]]
    assert annotations["metadata_stream"] == "orders"
    assert annotations["metadata_conn"] == "postgres://app:<redacted>@db.internal/…"
    assert annotations["metadata_header"] == "Bearer <redacted>"
    assert annotations["metadata_callback"] == "/hooks/deploy?token=<redacted>&attempt=2"
    assert annotations["metadata_settings"] == "Server=db;Password=<redacted>;"
    assert annotations["metadata_p_ssword"] == "<redacted>"
    for secret in METADATA_SECRETS:
        assert secret not in shown, f"{secret!r} shown in: {_around(shown, secret)}"


def test_check_config_shows_no_secret_inside_a_setting_that_names_none(tmp_path: Path) -> None:
    """check-config, run as a command, shows a Bearer token or a password=… pair inside a
    setting that is no secret as <redacted>, the rest as given, and a URL's host only up to a
    character no host name has (a ``;token=…`` after it); a webhook path typed with
    backslashes, which urlsplit reads as the host's, is refused without being shown."""
    env = {
        **bridge_env(),
        "SECRET_KEY_BASE": KEY_BASE,
        "EXESDB_STATE_DIR": str(tmp_path / "state"),
        "EXESDB_REVISION": f"v1.4 Bearer {IN_BEARER}",
        "OTEL_SERVICE_NAME": f"bridge password={IN_PAIR}",
        # A host "name" holding a pair (allowed in a URL's host, shown lower-cased before).
        "EXESDB_ALERTMANAGER_URL": f"http://am.internal;token={IN_QUERY}/",
    }
    shown = _run(env, "check-config")
    assert shown.startswith("$ check-config: 0\n"), shown
    # Each line is the variable, padded to the longest name's width, then its value.
    assert re.search(r"^EXESDB_REVISION +v1\.4 Bearer <redacted>$", shown, re.M), shown
    assert re.search(r"^OTEL_SERVICE_NAME +bridge password=<redacted>$", shown, re.M), shown
    assert re.search(r"^EXESDB_ALERTMANAGER_URL +http://am\.internal/…$", shown, re.M), shown
    # A path written with backslashes, which urlsplit reads as the host's: refused, as the HTTP
    # client would refuse it at every attempt.
    env["EXESDB_WEBHOOK_URLS"] = f"https://hooks.example\\services\\{IN_BACKSLASHED_PATH}"
    refused = _run(env, "check-config")
    assert refused.startswith("$ check-config: 2\n"), refused
    assert "EXESDB_WEBHOOK_URLS item 1: its host holds a backslash" in refused, refused
    shown += refused
    for secret in (IN_BEARER, IN_PAIR, IN_QUERY, IN_BACKSLASHED_PATH):
        assert secret.lower() not in shown.lower(), _around(shown.lower(), secret.lower())


REDIS_PASSWORD = "redis-password-Secret21"


@pytest.mark.parametrize("redis_answers", [True, False], ids=["auth-refused", "unreachable"])
def test_no_redis_password_appears_while_redis_refuses_it_or_is_unreachable(
    tmp_path: Path, redis_server, redis_answers: bool
) -> None:
    """A Redis bus URL's password is never shown while Redis refuses it (WRONGPASS) or cannot
    be reached: not in the logs at debug, /readyz, the status page, check-config, healthcheck or
    publish."""
    port = free_port()
    if redis_answers:
        server = redis_server()
        with server.client() as client:
            client.config_set("requirepass", "another-password")
        port = server.port
    env: dict[str, Any] = {
        "EXESDB_BUS": f"redis://default:{REDIS_PASSWORD}@127.0.0.1:{port}/0",
        "SECRET_KEY_BASE": KEY_BASE,
        "EXESDB_ADMIN_TOKEN": ADMIN_TOKEN,
        "EXESDB_INGEST": "true",
        "EXESDB_LOG_LEVEL": "debug",
    }
    process = BridgeProcess(state_dir=tmp_path / "state", **env)
    seen: list[str] = []
    try:
        process.start(tmp_path)
        wait_until(lambda: "WARNING bridge.bus.redis" in process.log(), 20, "Redis's refusal")
        wait_until(lambda: http_get(process.url + "/readyz")[0] == 503, 20, "not ready")
        for path in ("/readyz", "/", "/?part=live"):
            seen.append(http_get(process.url + path)[1].decode())
        cli = {**process.env}
        seen.append(_run(cli, "publish", "node_health_updated", "-f", "status=healthy"))
        seen.append(_run(cli, "check-config"))
        seen.append(_run(cli, "healthcheck"))
    finally:
        process.stop()
    seen.append(process.log())
    shown = "\n".join(seen)
    assert "127.0.0.1" in shown
    assert REDIS_PASSWORD not in shown, _around(shown, REDIS_PASSWORD)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_no_otlp_credential_appears_while_the_collector_is_unreachable(
    tmp_path: Path, protocol: str
) -> None:
    """An OTLP endpoint's password, query key and headers are never shown while the collector
    cannot be reached: not in the logs at debug, /readyz, the status page or check-config."""
    closed = free_port()
    # gRPC dials host:port and can take no user:password@ (start-up refuses it: see below).
    userinfo = f"otel:{OTLP_PASSWORD}@" if protocol == "http/protobuf" else ""
    endpoint = f"http://{userinfo}127.0.0.1:{closed}"
    env: dict[str, Any] = {
        "SECRET_KEY_BASE": KEY_BASE,
        "EXESDB_ADMIN_TOKEN": ADMIN_TOKEN,
        "EXESDB_LOG_LEVEL": "debug",
        "EXESDB_HEALTH_BROADCAST_INTERVAL": "100",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={OTLP_HEADER}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_BLRP_SCHEDULE_DELAY": "100",
        # Each export gives up after 3 s (SDK default 10 s), retrying meanwhile.
        "OTEL_EXPORTER_OTLP_TIMEOUT": "3",
    }
    if protocol == "http/protobuf":
        env["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"] = f"{endpoint}/v1/logs?api-key={OTLP_QUERY_TOKEN}"
    process = BridgeProcess(state_dir=tmp_path / "state", **env)
    seen: list[str] = []
    try:
        process.start(tmp_path)
        wait_until(
            lambda: "OTLP" in process.log() and "failing" in process.log(), 30, "export failing"
        )
        for path in ("/readyz", "/", "/?part=live"):
            seen.append(http_get(process.url + path)[1].decode())
        seen.append(_run({**process.env}, "check-config"))
    finally:
        process.stop()
    seen.append(process.log())
    shown = "\n".join(seen)
    assert f"127.0.0.1:{closed}" in shown
    for secret in (OTLP_PASSWORD, OTLP_QUERY_TOKEN, OTLP_HEADER):
        assert secret not in shown, _around(shown, secret)


def test_a_grpc_endpoint_holding_a_password_stops_start_up_without_showing_it(
    tmp_path: Path,
) -> None:
    """An OTLP endpoint gRPC can never dial (user:password@ in it) stops run and check-config
    with exit 2 naming the variable, never its password."""
    env = {
        **bridge_env(),
        "SECRET_KEY_BASE": KEY_BASE,
        "EXESDB_STATE_DIR": str(tmp_path / "state"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://otel:{OTLP_PASSWORD}@127.0.0.1:{free_port()}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }
    for command in ("check-config", "run"):
        shown = _run(env, command)
        assert shown.startswith(f"$ {command}: 2\n"), shown
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" in shown
        assert OTLP_PASSWORD not in shown, _around(shown, OTLP_PASSWORD)


@pytest.mark.parametrize("level", ["info", "debug"])
def test_a_malformed_request_is_logged_without_its_content_or_a_traceback(
    tmp_path: Path, level: str
) -> None:
    """A request head aiohttp refuses (a header over 8 KiB, a bad header line) is answered 400
    and never logged with its bytes (a token in it) or a traceback: anyone reaching the port
    could otherwise flood the log; at debug it is one line naming the refusal."""
    process = BridgeProcess(state_dir=tmp_path / "state", EXESDB_LOG_LEVEL=level)
    process.start(tmp_path)
    heads = [
        f"X-Padding: Bearer {ADMIN_TOKEN}{'a' * 9000}\r\n",
        f"Bad Header {ADMIN_TOKEN}\r\n",
    ]
    try:
        for head in heads:
            with socket.create_connection(("127.0.0.1", process.port), timeout=10) as sock:
                sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode())
                assert sock.recv(64).split()[1] == b"400"
        wait_until(lambda: http_get(process.url + "/healthz")[0] == 200, 10, "/healthz")
    finally:
        process.stop()
    log = process.log()
    assert ADMIN_TOKEN not in log, _around(log, ADMIN_TOKEN)
    assert "Traceback" not in log
    if level == "debug":
        assert log.count("malformed request") == len(heads)
