"""A setting holding bytes that are not UTF-8 text is refused, by the service and each client
command alike, naming the variable and never showing the value.

On Linux the environment keeps such a byte as a lone surrogate (PEP 383), which every string check
took: ``EXESDB_REVISION=$'\\xff'`` passed ``check-config`` and ``run`` started, its ``/`` and
``/metrics`` then answering 500 to every request. The processes here are real ones, given the
bytes as the environment holds them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, bridge_env

# Not UTF-8 (0xff starts no character), around a word that must not be shown either.
NOT_TEXT = b"n1-\xff-hunter2"
REFUSED = "holds bytes that are not UTF-8 text"


def run_with_bytes(
    *args: str, variable: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """``exesdb-bridge`` with ``args`` run with ``variable`` set to ``NOT_TEXT`` (and ``env``);
    its exit status, stdout and stderr (any byte not UTF-8 shown as U+FFFD)."""
    environ = {
        os.fsencode(name): os.fsencode(value) for name, value in bridge_env(**(env or {})).items()
    }
    environ[variable.encode()] = NOT_TEXT
    completed = subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    decoded = (completed.stdout.decode(errors="replace"), completed.stderr.decode(errors="replace"))
    return completed.returncode, *decoded


def assert_refused(status: int, out: str, err: str, variable: str, *, exit_status: int = 2) -> None:
    """The command ended with ``exit_status``, saying ``variable`` holds no text, without a
    traceback and without the value."""
    assert status == exit_status, (out, err)
    assert f"{variable}: {REFUSED}" in err, err
    assert "Traceback" not in err, err
    assert "hunter2" not in out + err, (out, err)
    assert "\ufffd" not in out + err, (out, err)


@pytest.mark.parametrize(
    "variable",
    [
        "EXESDB_REVISION",  # text shown on / and in exesdb_build_info
        "EXESDB_NODE",  # a node name
        "EXESDB_EXTERNAL_URL",  # URLs
        "EXESDB_ALERTMANAGER_URL",
        "EXESDB_WEBHOOK_URLS",  # a list
        "EXESDB_STATE_DIR",  # paths
        "EXESDB_WEB_CONFIG_FILE",
        "EXESDB_NODE_FORGET_MS",  # a number
        "EXESDB_INGEST",  # a switch
        "EXESDB_ADMIN_TOKEN",  # secrets
        "SECRET_KEY_BASE",
        "EXESDB_SECRET_KEY_BASE_PREVIOUS",
        "OTEL_SERVICE_NAME",  # OpenTelemetry's
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ],
)
def test_check_config_refuses_a_setting_that_is_not_text(variable: str) -> None:
    """check-config exits 2 naming a setting of any kind that holds bytes that are not UTF-8
    text, without a traceback or the value."""
    assert_refused(*run_with_bytes("check-config", variable=variable), variable)


@pytest.mark.parametrize("variable", ["EXESDB_REVISION", "EXESDB_NODE", "OTEL_SERVICE_NAME"])
def test_run_does_not_start_with_a_setting_that_is_not_text(variable: str, tmp_path: Path) -> None:
    """run exits 2 before serving when a setting holds bytes that are not UTF-8 text: with
    EXESDB_REVISION so, / and /metrics answered 500 to every request."""
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(tmp_path)}
    assert_refused(*run_with_bytes("run", variable=variable, env=env), variable)


@pytest.mark.parametrize(
    ("args", "variable"),
    [
        (("publish", "node_up"), "EXESDB_NODE"),
        (("publish", "node_up"), "SECRET_KEY_BASE"),
        (("tail",), "EXESDB_URL"),
        (("tail",), "EXESDB_WEB_CONFIG_FILE"),
        (("alerts", "list"), "EXESDB_ADMIN_TOKEN"),
        (("outbox", "list"), "EXESDB_STATE_DIR"),
    ],
)
def test_a_client_command_refuses_a_setting_that_is_not_text(
    args: tuple[str, ...], variable: str
) -> None:
    """publish, tail, alerts and outbox exit 2 naming a setting they read that holds bytes that
    are not UTF-8 text, without a traceback or the value."""
    assert_refused(*run_with_bytes(*args, variable=variable), variable)


@pytest.mark.parametrize("variable", ["EXESDB_WEB_CONFIG_FILE", "EXESDB_HEALTHCHECK_USERNAME"])
def test_healthcheck_refuses_a_setting_that_is_not_text(variable: str) -> None:
    """healthcheck reports unhealthy (exit 1, as for any bad configuration of it) naming a
    setting it reads that holds bytes that are not UTF-8 text, without the value."""
    status, out, err = run_with_bytes("healthcheck", variable=variable)
    assert_refused(status, out, out + err, variable, exit_status=1)


# OTEL_* variables no setting reads, which the OpenTelemetry SDK reads itself: headers (a token,
# often), resource attributes, the batch processor's numbers (whose warning showed the value).
SDK_VARIABLES = [
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_BSP_SCHEDULE_DELAY",
]
# An OTLP endpoint set: the exporters, which read the headers, are on.
EXPORTING = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}


@pytest.mark.parametrize("variable", SDK_VARIABLES)
@pytest.mark.parametrize("command", ["check-config", "run"])
def test_an_otel_variable_the_sdk_reads_that_is_not_text_is_refused(
    command: str, variable: str, tmp_path: Path
) -> None:
    """An OTEL_* variable that is no setting, left for the OpenTelemetry SDK, holding bytes that
    are not UTF-8 text stops check-config and start-up (exit 2) naming it once, as a setting's
    are (not also as headers the exporters would drop), never showing the value."""
    env = {**EXPORTING, "EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(tmp_path)}
    status, out, err = run_with_bytes(command, variable=variable, env=env)
    assert_refused(status, out, err, variable)
    assert err.count(f"{variable}:") == 1, err


def test_an_otel_variable_that_is_not_text_is_listed_with_the_other_problems() -> None:
    """check-config lists an OTEL_* variable the SDK reads holding bytes that are not UTF-8 text
    beside a refused setting (exit 2): every problem at once."""
    status, out, err = run_with_bytes(
        "check-config",
        variable="OTEL_RESOURCE_ATTRIBUTES",
        env={**EXPORTING, "EXESDB_INGEST": "maybe"},
    )
    assert_refused(status, out, err, "OTEL_RESOURCE_ATTRIBUTES")
    problems = [line.strip().split(":")[0] for line in err.splitlines() if line.startswith("  ")]
    assert sorted(problems) == ["EXESDB_INGEST", "OTEL_RESOURCE_ATTRIBUTES"], err


def test_an_otel_variable_the_sdk_reads_is_refused_as_no_setting_is() -> None:
    """The refusal of an OTEL_* variable the SDK reads says that the SDK reads it as text, not
    that every setting is: it is no setting."""
    status, out, err = run_with_bytes(
        "check-config", variable="OTEL_EXPORTER_OTLP_HEADERS", env=EXPORTING
    )
    assert_refused(status, out, err, "OTEL_EXPORTER_OTLP_HEADERS")
    assert "OpenTelemetry SDK reads as text" in err, err
    assert "every setting" not in err, err


@pytest.mark.parametrize(
    "env",
    [{}, {**EXPORTING, "OTEL_SDK_DISABLED": "true"}],
    ids=["no endpoint", "OTEL_SDK_DISABLED"],
)
@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_RESOURCE_ATTRIBUTES"])
def test_an_otel_variable_that_is_not_text_passes_with_otlp_export_off(
    variable: str, env: dict[str, str]
) -> None:
    """With OTLP export off (no endpoint, or OTEL_SDK_DISABLED=true) the SDK reads none of its
    variables: one holding bytes that are not UTF-8 text passes check-config (exit 0), unshown."""
    status, out, err = run_with_bytes("check-config", variable=variable, env=env)
    assert status == 0, err
    assert REFUSED not in err, err
    assert "hunter2" not in out + err


@pytest.mark.parametrize(
    ("variable", "warned"),
    [
        ("OTEL_EXPORTER_OTLP_HEADRES", True),  # a typo of the SDK's headers variable
        ("OTEL_NODE_RESOURCE_DETECTORS", False),  # another SDK's (Node.js)
    ],
)
def test_an_otel_variable_nothing_reads_is_never_refused_for_its_bytes(
    variable: str, warned: bool
) -> None:
    """An OTEL_* variable neither the bridge nor its OpenTelemetry SDK reads, holding bytes that
    are not UTF-8 text, passes check-config with OTLP export on (exit 0): it is ignored, and a
    typo of a read one is warned of as ignored, not also refused."""
    status, out, err = run_with_bytes("check-config", variable=variable, env=EXPORTING)
    assert status == 0, err
    assert REFUSED not in err, err
    ignored = f"{variable} is set but neither the bridge nor its OpenTelemetry SDK reads it"
    assert (ignored in err) is warned, err
    assert "hunter2" not in out + err
