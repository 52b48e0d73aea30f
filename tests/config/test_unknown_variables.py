"""Warnings of variables the bridge does not read: misspelt, from the OpenTelemetry SDK, or meant
for a command's option or a file, each answered with the one meant."""

from __future__ import annotations

import pytest

from bridge.settings import known_variables, unknown_variables
from bridge.unknown_variables import SETTINGS_WITHOUT_PREFIX
from tests.support import check_config

pytestmark = pytest.mark.usefixtures("clean_env")


def no_setting_warned(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> str:
    """What check-config, passing, says of ``variable`` set to ``value`` in its one warning that
    the variable is no setting, after "(ignored)"."""
    status, _, err = check_config(monkeypatch, capsys, **{variable: value})
    assert status == 0
    [warning] = [line for line in err.splitlines() if variable + " " in line]
    ignored = (
        f"exesdb-bridge: warning: {variable} is set but is not a setting of the bridge (ignored)"
    )
    assert warning.startswith(ignored), warning
    return warning.removeprefix(ignored)


@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        ("EXESDB_WEBHOOK_URL", "EXESDB_WEBHOOK_URLS"),
        ("EXESDB_HTTP_ADRESS", "EXESDB_HTTP_ADDR"),
        ("EXESDB_SECRET_KEY_BASE", "SECRET_KEY_BASE"),
        ("EXESDB_ALERT_FOR", "EXESDB_ALERT_FOR_MS"),
        ("exesdb_ingest", "EXESDB_INGEST"),  # names are case-sensitive: this one is ignored
        ("Exesdb_Webhook_Url", "EXESDB_WEBHOOK_URLS"),
        # Names of the setting elsewhere, not its spelling: the Redis URL is EXESDB_BUS.
        ("EXESDB_REDIS_URL", "EXESDB_BUS"),
        ("EXESDB_BUS_URL", "EXESDB_BUS"),
        ("EXESDB_PORT", "EXESDB_HTTP_ADDR"),
        ("EXESDB_LISTEN_ADDRESS", "EXESDB_HTTP_ADDR"),  # node_exporter's --web.listen-address
        ("EXESDB_DEBUG", "EXESDB_LOG_LEVEL"),
        ("EXESDB_LOG", "EXESDB_LOG_LEVEL"),  # EXESDB_LOG=debug
        ("exesdb_redis_url", "EXESDB_BUS"),
        # The health check asks EXESDB_HTTP_ADDR (nearest by spelling: ..._USERNAME).
        ("EXESDB_HEALTHCHECK_URL", "EXESDB_HTTP_ADDR"),
        ("EXESDB_HEALTHCHECK_ADDR", "EXESDB_HTTP_ADDR"),
    ],
)
def test_an_unknown_variable_is_warned_about_with_the_closest_setting(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    meant: str,
) -> None:
    """A set EXESDB_* variable that is no setting is named in a warning with the one meant: the
    closest name, or the setting it is another name for."""
    assert no_setting_warned(monkeypatch, capsys, variable, "x") == f"; did you mean {meant}?"


def test_an_unknown_variable_far_from_every_setting_points_at_the_list(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With nothing close, the warning points at docs/configuration.md, with the repository
    where any install's user reads it; known names say nothing."""
    status, _, err = check_config(monkeypatch, capsys, EXESDB_ZZZ="1", EXESDB_NODE="n1")
    assert status == 0
    assert (
        "exesdb-bridge: warning: "
        "EXESDB_ZZZ is set but is not a setting of the bridge (ignored); the "
        "settings: docs/configuration.md of the source repository,"
        " https://github.com/exesdb/exesdb-bridge\n" in err
    )
    assert "EXESDB_NODE" not in err


@pytest.mark.parametrize(
    ("variable", "value", "answer"),
    [
        (
            "EXESDB_HEALTHCHECK_TIMEOUT",
            "5",
            "the health check's timeout is its option: exesdb-bridge healthcheck --timeout S",
        ),
        ("EXESDB_DEMO", "true", "demo traffic is an option of run: exesdb-bridge run --demo"),
    ],
)
def test_a_variable_for_a_commands_option_is_answered_with_the_option(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    answer: str,
) -> None:
    """EXESDB_HEALTHCHECK_TIMEOUT and EXESDB_DEMO are no settings, nor misspellings of one: the
    warning names the command's option (healthcheck --timeout, run --demo), not
    EXESDB_HEALTHCHECK_USERNAME or the list of settings."""
    assert no_setting_warned(monkeypatch, capsys, variable, value) == f"; {answer}"


@pytest.mark.parametrize(
    ("variable", "setting", "unset"),
    [
        ("EXESDB_ADMIN_TOKEN_FILE", "EXESDB_ADMIN_TOKEN", ""),
        ("EXESDB_WEBHOOK_SECRET_FILE", "EXESDB_WEBHOOK_SECRET", ""),
        ("SECRET_KEY_BASE_FILE", "SECRET_KEY_BASE", " and SECRET_KEY_BASE is unset"),
        ("EXESDB_SECRET_KEY_BASE_FILE", "SECRET_KEY_BASE", ""),
    ],
)
def test_a_setting_named_with_a_file_suffix_is_answered_that_it_takes_the_value_itself(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    setting: str,
    unset: str,
) -> None:
    """A setting's name with the _FILE suffix of Docker's and Kubernetes' secrets is warned of as
    no setting, saying the setting takes the value itself: not "did you mean" it, which would
    have its value set to the file's path (a token /run/secrets/token)."""
    monkeypatch.delenv(setting, raising=False)
    assert no_setting_warned(monkeypatch, capsys, variable, "/run/secrets/x") == (
        f"{unset}; {setting} takes the value itself, not a file's path:"
        f' {setting}="$(cat FILE)" reads it from the file'
    )


def test_a_healthcheck_password_variable_is_answered_with_the_file_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """EXESDB_HEALTHCHECK_PASSWORD is no setting: the warning says the health check reads its
    password from a file named in EXESDB_HEALTHCHECK_PASSWORD_FILE, rather than "did you mean"
    that setting, which would then be given the password for a path."""
    assert no_setting_warned(monkeypatch, capsys, "EXESDB_HEALTHCHECK_PASSWORD", "s3cret") == (
        "; the health check reads its password from a file: put it in one and give that file's"
        " path in EXESDB_HEALTHCHECK_PASSWORD_FILE"
    )


@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPIONT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ("OTEL_EXPORTER_OTLP_TRACE_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        ("OTEL_SERVIC_NAME", "OTEL_SERVICE_NAME"),
        ("OTEL_SKD_DISABLED", "OTEL_SDK_DISABLED"),
        # Read by the SDK, not the bridge's settings: named all the same.
        ("OTEL_EXPORTER_OTLP_HEADER", "OTEL_EXPORTER_OTLP_HEADERS"),
        ("OTEL_RESOURCE_ATTRIBUTE", "OTEL_RESOURCE_ATTRIBUTES"),
        ("otel_service_name", "OTEL_SERVICE_NAME"),  # names are case-sensitive
    ],
)
def test_a_misspelt_otel_variable_is_warned_about_with_the_one_meant(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    meant: str,
) -> None:
    """A set OTEL_* variable that neither the bridge nor the OpenTelemetry SDK reads, spelt
    nearly as one they do, is named in a warning with that one; check-config still passes."""
    status, _, err = check_config(monkeypatch, capsys, **{variable: "http://c:4317"})
    assert status == 0
    [warning] = [line for line in err.splitlines() if variable + " " in line]
    assert warning == (
        "exesdb-bridge: warning: "
        f"{variable} is set but neither the bridge nor its OpenTelemetry SDK reads it"
        f" (ignored); did you mean {meant}?"
    )


def _sdk_variables() -> list[str]:
    """Every OTEL_* name the installed API's and SDK's environment_variables modules hold."""
    import opentelemetry.environment_variables as api
    import opentelemetry.sdk.environment_variables as sdk

    return sorted(
        value
        for module in (api, sdk)
        for value in vars(module).values()
        if isinstance(value, str) and value.startswith("OTEL_")
    )


def test_no_variable_the_opentelemetry_sdk_reads_is_warned_about() -> None:
    """Every OTEL_* variable the installed OpenTelemetry API and SDK list, each set, is no
    warning, though the bridge's settings read few of them (OTEL_BSP_*, OTEL_PYTHON_*, ...)."""
    names = _sdk_variables()
    assert {"OTEL_PROPAGATORS", "OTEL_BSP_SCHEDULE_DELAY", "OTEL_TRACES_SAMPLER_ARG"} <= set(names)
    assert len(names) > 80
    assert unknown_variables(dict.fromkeys(names, "1")) == []


@pytest.mark.parametrize(
    "variable",
    [
        # The OpenTelemetry Operator's, named in OTEL_RESOURCE_ATTRIBUTES as $(...).
        "OTEL_RESOURCE_ATTRIBUTES_POD_NAME",
        "OTEL_RESOURCE_ATTRIBUTES_NODE_NAME",
        # Instrumentations' and other SDKs', which an environment shared with them may hold.
        "OTEL_PYTHON_CONFIGURATOR",
        "OTEL_PYTHON_LOG_CORRELATION",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
        "OTEL_SEMCONV_STABILITY_OPT_IN",
        "OTEL_EXPORTER_JAEGER_ENDPOINT",
        "OTEL_JAVAAGENT_ENABLED",
        "OTEL_NODE_RESOURCE_DETECTORS",
    ],
)
def test_an_otel_variable_unlike_any_read_is_not_warned_about(variable: str) -> None:
    """An OTEL_* name not spelt nearly as one the bridge or the SDK reads is taken for another
    tool's, not a typo: no warning."""
    assert unknown_variables({variable: "x"}) == []


def test_the_settings_without_a_prefix_are_those_of_the_model() -> None:
    """The near-miss check knows the settings named without EXESDB_ (or OTEL_) as the model does:
    a new one added to the model alone would go unchecked."""
    assert {
        name for name in known_variables() if not name.startswith(("EXESDB_", "OTEL_"))
    } == SETTINGS_WITHOUT_PREFIX


@pytest.mark.parametrize("variable", ["SECRET_KEY", "secret_key_base", "SECRET_KEYBASE"])
def test_a_variable_spelt_nearly_as_an_unset_key_is_warned_about_with_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str
) -> None:
    """With SECRET_KEY_BASE unset, a set variable spelt nearly as it (SECRET_KEY, as other
    frameworks call theirs) is named in a warning with SECRET_KEY_BASE."""
    monkeypatch.delenv("SECRET_KEY_BASE", raising=False)
    status, _, err = check_config(monkeypatch, capsys, **{variable: "k" * 40})
    assert status == 0
    assert err.splitlines() == [
        f"exesdb-bridge: warning: {variable} is set but is not a setting of the bridge (ignored)"
        " and SECRET_KEY_BASE is unset; did you mean SECRET_KEY_BASE?"
    ]


def test_a_variable_spelt_nearly_as_a_key_that_is_set_is_no_warning() -> None:
    """With SECRET_KEY_BASE set, another program's SECRET_KEY sharing the environment is its own:
    no warning; nor is a name unlike the key's with it unset."""
    assert unknown_variables({"SECRET_KEY": "x", "SECRET_KEY_BASE": "k" * 40}) == []
    assert unknown_variables({"DJANGO_SECRET": "x", "API_KEY": "y"}) == []


def test_run_warns_about_an_unknown_variable_at_start(tmp_path) -> None:
    """`exesdb-bridge run` logs the same warning at start-up, once (it then runs as
    configured)."""
    from tests.support import BridgeProcess, http_get

    process = BridgeProcess(state_dir=tmp_path / "state", EXESDB_WEBHOOK_URL="https://h.example/x")
    try:
        process.start(tmp_path)
        assert http_get(process.url + "/healthz")[0] == 200
    finally:
        assert process.stop() == 0
    warning = (
        "EXESDB_WEBHOOK_URL is set but is not a setting of the bridge (ignored); "
        "did you mean EXESDB_WEBHOOK_URLS?"
    )
    assert process.log().count(warning) == 1, process.log()
