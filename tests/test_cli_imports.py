"""Each command imports what it uses: no client command pays for the service's libraries.

Every ``exesdb-bridge`` command is a new interpreter, and importing is most of what a client
command costs (docs/performance.md, "Start-up"). Each test runs a command in a subprocess, as
``python -m bridge`` runs it, and reads ``sys.modules`` once it has answered: an eager import
added back to ``bridge/cli/`` or to a package's ``__init__`` fails here, with nothing timed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from bridge.messages import TAGS
from bridge.sinks.alerts.outbox import FILE_NAME, Outbox
from tests.client_servers import answering, behind, cut_short, not_http
from tests.support import (
    ADMIN_TOKEN,
    TEST_SECRET,
    BridgeProcess,
    free_port,
    ingesting_bridge,
    run_command,
)

# What the running service needs and no client command does: its metrics, exports, Redis bus,
# host probes, HTTP server and the wiring of its components.
SERVICE: Final = (
    "opentelemetry",
    "prometheus_client",
    "redis",
    "psutil",
    "collectors",
    "aiohttp.web_app",
    "bridge.app",
    "bridge.http",
    "bridge.sinks",
    "bridge.bus.bus",
)
# The service less the alert outbox's file, which check-config and outbox list open: the sink,
# its senders and the other sinks.
SERVICE_BUT_THE_OUTBOX: Final = (
    *(name for name in SERVICE if name != "bridge.sinks"),
    *(f"bridge.sinks.alerts.{name}" for name in ("sink", "delivery", "sources")),
    "bridge.sinks.prometheus",
    "bridge.sinks.otlp",
)
# What checking and sending a message needs, and reading the configuration or the parser not.
CLIENT: Final = ("aiohttp", "msgspec", "bridge.bus.envelope")
# One message's fields, for publish.
ALERT_FIELDS: Final = (
    *("-f", "severity=info", "-f", "category=system", "-f", "source=cli"),
    *("-f", "title=t", "-f", "description=d"),
)
# What the client commands asked a bridge with before the standard library's HTTP client
# (bridge.cli.exchange): aiohttp, its URLs and its event loop.
AIOHTTP: Final = ("aiohttp", "yarl", "multidict", "asyncio", "bridge.httpclient.failures")
# What only ``run`` and ``healthcheck`` use of what every command's parser once imported: the
# log's library and the probe, whose options the parser takes apart.
RUN_AND_PROBE: Final = ("logging", "bridge.cli.healthcheck")
# What receiving a message needs, and sending one not: the decoders' modules.
DECODERS: Final = (
    *("bridge.bus.decoding", "bridge.bus.problems", "bridge.bus.structs", "bridge.bus.builders"),
    *("bridge.bus.struct_fields", "bridge.bus.struct_patterns", "bridge.bus.instants"),
    *("bridge.bus.payload_walks", "bridge.bus.batch_scans"),
)
# Every message model, and the configuration's libraries.
MODELS: Final = ("bridge.messages.registry",)
SETTINGS: Final = ("pydantic", "pydantic_settings", "yaml", "asyncio")
# What reading the bridge's own files needs, and no client command unless told of one: the
# ``http_config`` models of the receivers file (``bridge.httpclient.schema``) and the web config's
# reader, with YAML; and the model of every setting (``bridge.settings``), read only to name a
# misspelt variable set beside the command's own.
FILES: Final = ("bridge.httpclient.schema", "bridge.webconfig", "yaml", "bridge.settings")
# The models of the files themselves, which the service imports only when given one.
FILE_MODELS: Final = ("bridge.httpclient.schema", "bridge.webconfig", "bridge.receivers")
# What reads the client commands' settings with pydantic: only a value not plainly good needs it
# (bridge.client_environment), to be judged and its refusal worded.
SETTINGS_MODELS: Final = ("pydantic_settings", "bridge.client_settings")

_RUN: Final = """
import json, sys
from bridge.__main__ import main
try:
    status = main(sys.argv[2:])
except SystemExit as exc:
    status = exc.code
with open(sys.argv[1], "w") as out:
    json.dump({"modules": sorted(sys.modules), "status": status}, out)
"""


def answered(tmp_path: Path, *argv: str, **env: str) -> tuple[set[str], object]:
    """The modules ``python -m bridge ARGV`` has imported once it has answered, and its exit
    status."""
    listing = tmp_path / "modules.json"
    completed = run_command([sys.executable, "-c", _RUN, str(listing), *argv], env)
    assert listing.exists(), completed.stderr
    found = json.loads(listing.read_text())
    return set(found["modules"]), found["status"]


def imported_by(tmp_path: Path, *argv: str, **env: str) -> set[str]:
    """The modules ``python -m bridge ARGV`` has imported once it has answered."""
    return answered(tmp_path, *argv, **env)[0]


def among(imported: set[str], packages: Iterable[str]) -> list[str]:
    """Which of ``packages`` (each with its submodules) are in ``imported``."""
    return sorted(
        package
        for package in packages
        if any(name == package or name.startswith(package + ".") for name in imported)
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["publish", "--help"],
        ["tail", "--help"],
        ["alerts", "list", "--help"],
        ["outbox", "retry", "--help"],
        ["schema", "--help"],
        ["publish"],  # a usage error: the tag is missing
    ],
    ids=" ".join,
)
def test_help_and_usage_errors_import_only_the_parser(tmp_path: Path, argv: list[str]) -> None:
    """``--help`` and a usage error build the parser alone: no pydantic, aiohttp or model."""
    imported = imported_by(tmp_path, *argv)
    assert "bridge.cli" in imported
    assert among(imported, SERVICE + CLIENT + MODELS + SETTINGS) == []
    # Nor the health check's HTTP client (with the email package) or the probe, which its options
    # do not need, nor TLS, which no command uses before it runs.
    assert among(imported, ["http.client", "email", "ssl", *RUN_AND_PROBE]) == []


def test_check_config_imports_the_configuration_alone(tmp_path: Path) -> None:
    """``check-config`` reads the settings (pydantic) and the outbox file's header, and imports
    no HTTP client, no bus, no sink, one message module of nine (the alert severities), and none
    of the models of the files it is not given (the receivers file's, the web config's)."""
    imported = imported_by(tmp_path, "check-config", EXESDB_STATE_DIR=str(tmp_path))
    assert {"bridge.config", "bridge.sinks.alerts.outbox"} <= imported
    assert among(imported, [*SERVICE_BUT_THE_OUTBOX, *CLIENT, *MODELS]) == []
    # Nor, with no receivers file, webhook URL or web config, their models.
    assert among(imported, [*FILE_MODELS, "bridge.yamlconfig"]) == []
    assert among(imported, [f"bridge.messages.{name}" for name in ("health", "logs")]) == []


def test_check_config_of_a_plain_redis_url_imports_no_redis_py(tmp_path: Path) -> None:
    """``check-config`` with a Redis ``EXESDB_BUS`` of a host, a port and a database alone (no
    query option, so nothing for redis-py's parser to refuse and no TLS file to load) imports
    none of redis-py, the OpenTelemetry metrics and psutil it imports, or the Redis bus."""
    imported = imported_by(
        tmp_path,
        "check-config",
        EXESDB_BUS=f"redis://127.0.0.1:{free_port()}/0",
        SECRET_KEY_BASE=TEST_SECRET,
    )
    assert "bridge.bus_url" in imported
    assert among(imported, ["redis", "opentelemetry", "psutil", "bridge.bus.redis"]) == []


def test_check_config_of_a_redis_url_with_options_imports_its_link_but_not_the_transport(
    tmp_path: Path,
) -> None:
    """``check-config`` with a Redis ``EXESDB_BUS`` giving a query option reads the options the
    transport sets itself (``bridge.bus.redis.link``) and redis-py's URL parser, without the
    transport, its metrics (prometheus_client) or the bus."""
    imported = imported_by(
        tmp_path,
        "check-config",
        EXESDB_BUS=f"redis://127.0.0.1:{free_port()}/0?client_name=bridge",
        SECRET_KEY_BASE=TEST_SECRET,
    )
    assert {"bridge.config", "bridge.bus.redis.link", "redis.asyncio.connection"} <= imported
    # redis-py's client imports OpenTelemetry and psutil itself (its observability module).
    service = [
        name for name in SERVICE_BUT_THE_OUTBOX if name not in ("redis", "opentelemetry", "psutil")
    ]
    assert among(imported, [*service, "bridge.bus.redis.transport"]) == []


def test_schema_imports_the_models_but_not_the_configuration(tmp_path: Path) -> None:
    """``schema`` builds the models it describes and reads no settings, sends nothing."""
    imported = imported_by(tmp_path, "schema", "system_alert")
    assert "bridge.messages.registry" in imported
    configuration = ("bridge.config", "bridge.settings", "pydantic_settings")
    assert among(imported, (*SERVICE, *CLIENT, *configuration)) == []


def test_publish_imports_the_client_but_none_of_the_service(tmp_path: Path) -> None:
    """``publish`` checks, signs and sends (pydantic, the envelope, the standard library's HTTP
    client) without aiohttp, the bus's metrics, OpenTelemetry, Redis, the HTTP server or the
    envelope's decoders; it builds its message's module of models, not the other eight (the
    registry), and reads no file it is not told of (``FILES``: the web config's reader, the
    ``http_config`` models, YAML, nor, with no variable set beside its own, the model of every
    setting)."""
    nothing = f"http://127.0.0.1:{free_port()}"
    imported = imported_by(
        tmp_path,
        *("publish", "system_alert", "--url", nothing),
        *("-f", "severity=info", "-f", "category=system", "-f", "source=cli"),
        *("-f", "title=t", "-f", "description=d"),
        SECRET_KEY_BASE=TEST_SECRET,
    )
    others = {model.__module__ for model in TAGS.values()} - {"bridge.messages.alerts"}
    assert len(others) == 8
    left_out = [*SERVICE, *AIOHTTP, *DECODERS, *MODELS, *others, *FILES, *RUN_AND_PROBE]
    assert among(imported, left_out) == []
    assert {"bridge.bus.envelope", "bridge.cli.exchange", "bridge.messages.alerts"} <= imported


@pytest.mark.parametrize("argv", [["tail", "--count", "1"], ["alerts", "list"]], ids=" ".join)
def test_admin_commands_import_none_of_the_service(tmp_path: Path, argv: list[str]) -> None:
    """``tail`` and ``alerts`` ask a bridge (the standard library's HTTP client) and import no
    model, no decoder and none of the service, not even the routes' helpers where the bridge
    checks the token, nor aiohttp, and read no file they are not told of (``FILES``)."""
    nothing = f"http://127.0.0.1:{free_port()}"
    imported = imported_by(tmp_path, *argv, "--url", nothing, EXESDB_ADMIN_TOKEN=ADMIN_TOKEN)
    service = [*SERVICE, *MODELS, *AIOHTTP, "msgspec", "bridge.routes", *FILES, *RUN_AND_PROBE]
    assert among(imported, service) == []
    assert "bridge.cli.exchange" in imported


ON_THE_RUNNING_BRIDGE = pytest.mark.xdist_group("cli-imports-bridge")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    """A bridge taking signed messages (``ingesting_bridge``); the tests using it are one
    pytest-xdist group (``ON_THE_RUNNING_BRIDGE``), so that one worker starts it, not each."""
    with ingesting_bridge(tmp_path_factory.mktemp("answering")) as process:
        yield process


@ON_THE_RUNNING_BRIDGE
@pytest.mark.parametrize(
    ("argv", "status"),
    [
        (["publish", "system_alert", *ALERT_FIELDS], 0),
        (["tail", "--count", "1"], 0),
        (["alerts", "list"], 0),
        (["alerts", "ack", "no-such-alert", "--by", "ops"], 1),  # 404, then asked again
    ],
    ids=["publish", "tail", "alerts list", "alerts ack"],
)
def test_commands_answered_by_a_bridge_import_no_aiohttp(
    running: BridgeProcess, tmp_path: Path, argv: list[str], status: int
) -> None:
    """``publish``, ``tail`` and ``alerts`` get a running bridge's answer (its 202, its stream,
    its alerts, its 404 to an unknown alert and the lease it then reports) with the standard
    library's HTTP client: no aiohttp, yarl or asyncio; nor logging or the probe's module."""
    own = (
        {"SECRET_KEY_BASE": TEST_SECRET}
        if argv[0] == "publish"
        else {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN}
    )
    imported, exited = answered(tmp_path, *argv, "--url", running.url, **own)
    assert exited == status
    assert among(imported, [*AIOHTTP, *RUN_AND_PROBE]) == []
    assert "bridge.cli.exchange" in imported


COMMANDS: Final = {
    "publish": (["publish", "system_alert", *ALERT_FIELDS], {"SECRET_KEY_BASE": TEST_SECRET}),
    "tail": (["tail", "--count", "1"], {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN}),
    "alerts list": (["alerts", "list"], {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN}),
}


@ON_THE_RUNNING_BRIDGE
@pytest.mark.parametrize("answer", ["redirect", "cut short", "not HTTP"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_commands_import_no_aiohttp_whatever_the_server_answers(
    running: BridgeProcess, tmp_path: Path, command: str, answer: str
) -> None:
    """``publish``, ``tail`` and ``alerts`` follow a proxy's redirect to a running bridge behind
    it (exit 0: the message taken, one streamed, the alerts listed), and tell an answer cut
    short or not HTTP (exit 1), asked once, with the standard library's HTTP client alone: no
    aiohttp, yarl or asyncio."""
    argv, own = COMMANDS[command]
    answers = {"redirect": behind(running.url), "cut short": cut_short, "not HTTP": not_http}
    with answering(answers[answer]) as server:
        imported, exited = answered(tmp_path, *argv, "--url", server.url, **own)
    if answer == "redirect":
        assert exited == 0
        assert [asked.path.startswith("/bridge/") for asked in server.asked[:2]] == [False, True]
    else:
        assert (exited, len(server.asked)) == (1, 1)
    assert among(imported, [*AIOHTTP, *RUN_AND_PROBE]) == []


def test_outbox_list_imports_the_outbox_but_none_of_the_service(tmp_path: Path) -> None:
    """``outbox list`` opens the SQLite file (``bridge.sinks.alerts.outbox``) without the alert
    sink, its senders (aiohttp), what makes alerts of messages (the cluster, the bus, the
    models), nor the service's libraries or files; and without pydantic or msgspec: its
    deliveries' ids and times need neither the envelope nor a model's module."""
    Outbox(tmp_path / FILE_NAME).close()
    imported = imported_by(tmp_path, "outbox", "list", EXESDB_STATE_DIR=str(tmp_path))
    assert "bridge.sinks.alerts.outbox" in imported
    left_out = [*SERVICE_BUT_THE_OUTBOX, "aiohttp", "bridge.cluster", *DECODERS, *MODELS, *FILES]
    assert among(imported, left_out) == []
    envelope = ["bridge.bus.envelope", "bridge.messages._base"]
    assert among(imported, ["pydantic", "pydantic_core", "msgspec", *envelope]) == []
    # Nor TLS, the log's library or the probe, which it never uses.
    assert among(imported, ["ssl", *RUN_AND_PROBE]) == []


@pytest.mark.parametrize(
    ("argv", "variable", "value"),
    [
        (["publish", "system_alert", "-f", "severity=info"], "SECRET_KEY_BASE", TEST_SECRET),
        (["tail", "--count", "1"], "EXESDB_ADMIN_TOKEN", ADMIN_TOKEN),
        (["alerts", "list"], "EXESDB_ADMIN_TOKEN", ADMIN_TOKEN),
        (["outbox", "list"], "EXESDB_STATE_DIR", "."),
    ],
    ids=["publish", "tail", "alerts list", "outbox list"],
)
def test_client_commands_read_their_own_settings_not_the_whole_configuration(
    tmp_path: Path, argv: list[str], variable: str, value: str
) -> None:
    """The client commands read the few settings they use (``bridge.client_environment``), not
    the whole configuration nor its checks across settings (``load_settings``), and, their
    values good, without pydantic-settings and the settings' models (``SETTINGS_MODELS``)."""
    url = [] if argv[0] == "outbox" else ["--url", f"http://127.0.0.1:{free_port()}"]
    imported = imported_by(tmp_path, *argv, *url, **{variable: value})
    assert among(imported, ["bridge.config", "bridge.settings_checks", *SETTINGS_MODELS]) == []
    assert "bridge.client_environment" in imported


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["tail", "--count", "1"], {"EXESDB_HTTP_ADDR": "127.0.0.1:9570"}),
        (["alerts", "list"], {"EXESDB_URL": "http://127.0.0.1:9570/"}),
        # Its time judged as the bridge reads RFC 3339 (bridge.messages.timestamps), no model.
        (["alerts", "ack", "a1", "--by", "ops", "--since", "2026-12-05t11:40:00z"], {}),
        (["outbox", "list"], {"EXESDB_STATE_DIR": "."}),
    ],
    ids=["tail", "alerts list", "alerts ack --since", "outbox list"],
)
def test_commands_that_check_no_message_import_no_pydantic(
    tmp_path: Path, argv: list[str], env: dict[str, str]
) -> None:
    """``tail``, ``alerts`` and ``outbox``, which build no message, import no pydantic (nor
    pydantic-core), their own variables set (``EXESDB_HTTP_ADDR``, ``EXESDB_URL``,
    ``EXESDB_STATE_DIR``), ``alerts ack --since`` reading its time without them."""
    url = [] if argv[0] == "outbox" else ["--url", f"http://127.0.0.1:{free_port()}"]
    token = {} if argv[0] == "outbox" else {"EXESDB_ADMIN_TOKEN": ADMIN_TOKEN}
    imported = imported_by(tmp_path, *argv, *url, **env, **token)
    assert among(imported, ["pydantic", "pydantic_core", *SETTINGS_MODELS]) == []
    assert "bridge.client_environment" in imported


# ``run`` in the process, stopped with SIGTERM once /healthz answers 200: what it imported and
# built by then.
_RUN_UNTIL_HEALTHY = """
import gc, json, os, signal, sys, threading, time, urllib.request
from bridge.__main__ import main

def healthy():
    try:
        with urllib.request.urlopen(sys.argv[2] + "/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False

def watch():
    deadline = time.monotonic() + 30
    while not healthy() and time.monotonic() < deadline:
        time.sleep(0.01)  # polled until healthy, under the deadline
    built = "CLEAN" in vars(sys.modules["bridge.bus.structs"])
    modules = sorted(sys.modules)
    from bridge import client_settings, settings
    from bridge.messages import TAGS
    from bridge.sinks.alerts import admin
    models = sorted(tag for tag, model in TAGS.items() if model.__pydantic_complete__)
    others = [
        settings.Settings, client_settings.BridgeLocation, client_settings.AdminClientSettings,
        client_settings.PublishSettings, client_settings.OutboxSettings, admin.AlertQuery,
        admin.AckRequest,
    ]
    models += sorted(model.__name__ for model in others if model.__pydantic_complete__)
    with open(sys.argv[1], "w") as out:
        found = {"modules": modules, "built": built, "models": models, "gc": gc.isenabled()}
        json.dump(found, out)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=watch, daemon=True).start()
main(["run"])
"""


def run_until_healthy(tmp_path: Path, **env: str) -> dict[str, Any]:
    """What ``python -m bridge run`` has imported and built once ``/healthz`` answers 200: its
    modules, whether it built the decoders, the models it built (a message model by its tag, the
    settings' and the admin API's by name) and whether the cycle collector is on."""
    listing = tmp_path / "run.json"
    port = free_port()
    completed = run_command(
        [sys.executable, "-c", _RUN_UNTIL_HEALTHY, str(listing), f"http://127.0.0.1:{port}"],
        {
            "EXESDB_HTTP_ADDR": f"127.0.0.1:{port}",
            "EXESDB_STATE_DIR": str(tmp_path / "state"),
            "SECRET_KEY_BASE": TEST_SECRET,
            **env,
        },
    )
    assert listing.exists(), completed.stderr
    found: dict[str, Any] = json.loads(listing.read_text())
    return found


def test_run_without_files_or_ingest_imports_none_of_their_models(tmp_path: Path) -> None:
    """``run`` with no receivers file, webhook URL, web config or ingest answers /healthz with
    none of their models imported (``FILE_MODELS``, ``bridge.yamlconfig``, YAML, bcrypt) nor, with
    no OTLP endpoint or Redis bus, OpenTelemetry, grpc or redis-py; the decoders not built (it
    decodes no bytes: the in-process bus hands over envelopes), and the cycle collector on
    again."""
    found = run_until_healthy(tmp_path)
    files = [*FILE_MODELS, "bridge.yamlconfig", "yaml", "bcrypt"]
    assert among(set(found["modules"]), [*files, "opentelemetry", "grpc", "redis"]) == []
    assert "bridge.bus.structs" in found["modules"]
    assert found["built"] is False
    assert found["gc"] is True


def test_run_imports_neither_the_parser_nor_another_command(tmp_path: Path) -> None:
    """``run``, as a container or a unit starts the service, is run with its own module alone
    (``bridge.cli.service``): neither the command line's parser nor another command's module is
    imported."""
    found = run_until_healthy(tmp_path)
    others = ["bridge.cli.parser", "bridge.cli.alerts", "bridge.cli.messages", "bridge.cli.outbox"]
    assert among(set(found["modules"]), [*others, "bridge.cli.remote", "bridge.schema"]) == []


def test_run_with_ingest_builds_the_decoders_as_it_starts(tmp_path: Path) -> None:
    """``run`` with ingest on has built the decoders by the time /healthz answers (before its
    heap is frozen), not for the first batch."""
    found = run_until_healthy(tmp_path, EXESDB_INGEST="true")
    assert found["built"] is True
    assert set(TAGS) <= set(found["models"])


def test_run_builds_a_message_model_when_first_used(tmp_path: Path) -> None:
    """``run`` on the in-process bus builds a message model as its first message is made, not
    as the models are imported: by /healthz none of the audit, security or diagnostics models,
    which nothing it runs publishes, is built."""
    found = run_until_healthy(tmp_path)
    unused = ("ex_esdb_audit", "ex_esdb_security", "ex_esdb_diagnostics")
    assert [tag for tag in found["models"] if tag in TAGS and TAGS[tag].INSTANCE in unused] == []
    assert "system_lifecycle_event" in found["models"]  # the start, published as it starts


def test_run_builds_the_settings_it_reads_and_no_request_model(tmp_path: Path) -> None:
    """``run`` builds the model of its settings as it reads them, and neither the client
    commands' settings models nor the admin API's request models, which a request builds."""
    found = run_until_healthy(tmp_path)
    assert [model for model in found["models"] if model not in TAGS] == ["Settings"]
