"""The OTLP endpoints and batching numbers: refused where the exporter can never use them, warned
of where it would dial them otherwise than meant."""

from __future__ import annotations

import pytest

from bridge.config import load_settings
from tests.config.helpers import OTLP_ENDPOINTS_ACCEPTED, OTLP_ENDPOINTS_REFUSED
from tests.support import check_config

pytestmark = pytest.mark.usefixtures("clean_env")


def test_a_bad_per_signal_otlp_protocol_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """OTEL_EXPORTER_OTLP_TRACES_PROTOCOL is checked like every other variable: exit 2."""
    status, _, err = check_config(
        monkeypatch, capsys, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/json"
    )
    assert status == 2
    assert "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" in err


# Each bad number of the SDK's batch processors and metric reader, and the warning it gets.
_BAD_OTLP_NUMBERS = [
    (
        {"OTEL_BSP_SCHEDULE_DELAY": "1s"},
        "OTEL_BSP_SCHEDULE_DELAY='1s' is not a positive number of milliseconds (write 1000"
        " for 1s); using 5000, the default",
    ),
    (
        {"OTEL_BSP_SCHEDULE_DELAY": "soon"},
        "OTEL_BSP_SCHEDULE_DELAY='soon' is not a positive number of milliseconds; using 5000,"
        " the default",
    ),
    (
        {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "-1"},
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE='-1' is not a positive number of records; using 512,"
        " the default",
    ),
    (
        {"OTEL_BLRP_SCHEDULE_DELAY": "0"},
        "OTEL_BLRP_SCHEDULE_DELAY='0' is not a positive number of milliseconds; using 1000,"
        " the default",
    ),
    (
        {"OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "many"},
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE='many' is not a positive number of records; using 512,"
        " the default",
    ),
    (
        {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "inf"},
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE='inf' is not a positive number of records; using 512,"
        " the default",
    ),
    (
        {"OTEL_METRIC_EXPORT_INTERVAL": "inf", "EXESDB_OTLP_METRICS": "true"},
        "OTEL_METRIC_EXPORT_INTERVAL='inf' is not a positive number of milliseconds; using"
        " 60000, the default",
    ),
    (
        {"OTEL_METRIC_EXPORT_INTERVAL": "1e13", "EXESDB_OTLP_METRICS": "true"},
        "OTEL_METRIC_EXPORT_INTERVAL='1e13' is not a positive number of milliseconds of at most"
        " 9223372036000 (a thread's longest wait); using 60000, the default",
    ),
    (
        {"OTEL_METRIC_EXPORT_INTERVAL": "1m30s", "EXESDB_OTLP_METRICS": "true"},
        "OTEL_METRIC_EXPORT_INTERVAL='1m30s' is not a positive number of milliseconds (write"
        " 90000 for 1m30s); using 60000, the default",
    ),
]


@pytest.mark.parametrize(("env", "said"), _BAD_OTLP_NUMBERS)
def test_check_config_warns_of_a_bad_otlp_batching_number(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    said: str,
) -> None:
    """A bad OTEL_BSP_*, OTEL_BLRP_* or OTEL_METRIC_EXPORT_INTERVAL is warned of by check-config
    in its unit, with the number meant for a duration, and the default it falls back on."""
    status, _, err = check_config(
        monkeypatch, capsys, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4317", **env
    )
    assert status == 0
    assert f"exesdb-bridge: warning: {said}\n" in err


def test_a_bad_batching_number_of_a_signal_not_exported_is_no_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """OTEL_BSP_* with traces off and OTEL_METRIC_EXPORT_INTERVAL without EXESDB_OTLP_METRICS
    are read by no exporter: check-config says nothing of them."""
    status, _, err = check_config(
        monkeypatch,
        capsys,
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4317",
        OTEL_TRACES_EXPORTER="none",
        OTEL_BSP_SCHEDULE_DELAY="soon",
        OTEL_METRIC_EXPORT_INTERVAL="soon",
        OTEL_BLRP_SCHEDULE_DELAY="soon",
    )
    assert status == 0
    assert "OTEL_BSP" not in err
    assert "OTEL_METRIC" not in err
    assert "OTEL_BLRP_SCHEDULE_DELAY='soon'" in err


@pytest.mark.parametrize(("protocol", "value"), OTLP_ENDPOINTS_REFUSED)
def test_an_otlp_endpoint_the_exporter_can_never_use_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], protocol: str, value: str
) -> None:
    """An OTLP endpoint the protocol's exporter could never send to is exit 2 naming the
    variable, not a failure at the first export."""
    status, _, err = check_config(
        monkeypatch,
        capsys,
        OTEL_EXPORTER_OTLP_ENDPOINT=value,
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
    )
    assert status == 2
    assert "  OTEL_EXPORTER_OTLP_ENDPOINT: " in err
    assert protocol in err


@pytest.mark.parametrize(("protocol", "value"), OTLP_ENDPOINTS_ACCEPTED)
def test_an_otlp_endpoint_the_exporter_can_use_is_accepted(
    monkeypatch: pytest.MonkeyPatch, protocol: str, value: str
) -> None:
    """Every form the protocol's exporter dials loads, gRPC's host:port forms included."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", value)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    assert load_settings().otlp_endpoint == value


@pytest.mark.parametrize(
    "value", ["http://user:s3cr3t-pw@collector:4317", "user:s3cr3t-pw@collector:4317"]
)
def test_credentials_in_a_grpc_otlp_endpoint_are_refused_saying_where_they_go(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """A grpc endpoint holding user:password@ stops start-up saying the gRPC exporter does not
    send them and that OTEL_EXPORTER_OTLP_HEADERS does, without showing the password."""
    status, out, err = check_config(
        monkeypatch,
        capsys,
        OTEL_EXPORTER_OTLP_ENDPOINT=value,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
    )
    assert status == 2
    [line] = [line for line in err.splitlines() if "OTEL_EXPORTER_OTLP_ENDPOINT:" in line]
    assert "grpc exporter does not send" in line
    assert "OTEL_EXPORTER_OTLP_HEADERS" in line
    assert "s3cr3t" not in out + err


@pytest.mark.parametrize(
    ("variable", "value", "meant"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318", "http://localhost:4318"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317", "http://collector:4317"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "collector:4318/", "http://collector:4318"),
    ],
)
def test_an_http_otlp_endpoint_without_its_scheme_is_refused_with_the_url_meant(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    meant: str,
) -> None:
    """With http/protobuf an endpoint written host:port, as a gRPC one may be, stops start-up
    (exit 2) naming the variable, saying it has no scheme and giving the URL meant: the
    specification's OTLP/HTTP endpoint is a URL, which the SDK would fail to post to at every
    export."""
    status, _, err = check_config(
        monkeypatch, capsys, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", **{variable: value}
    )
    assert status == 2
    [problem] = [line for line in err.splitlines() if line.startswith("  ")]
    assert problem == (
        f"  {variable}: not usable with http/protobuf: it has no scheme; allowed: an http:// or"
        f" https:// URL with a host, e.g. {meant}"
    )


def warned_lines(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    saying: str,
) -> list[str]:
    """The lines of check-config's output, passing with ``env`` set, that say ``saying``."""
    status, _, err = check_config(monkeypatch, capsys, **env)
    assert status == 0, err
    return [line for line in err.splitlines() if saying in line]


def _tls_warning(variable: str, value: str, insecure: str, port: str = "") -> str:
    """The warning of a gRPC endpoint written without a scheme, dialled with TLS."""
    return (
        f"exesdb-bridge: warning: {variable} {value} has no scheme{port}, so the grpc exporter"
        f" dials it with TLS (the OpenTelemetry specification's default while {insecure} is"
        f" unset), and every export to a collector without TLS fails: write http://{value} for"
        f" one without TLS, or https://{value} to say TLS"
    )


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"},
            [
                _tls_warning(
                    "OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317", "OTEL_EXPORTER_OTLP_INSECURE"
                )
            ],
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318", "EXESDB_OTLP_METRICS": "true"},
            [
                _tls_warning(
                    "OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318", "OTEL_EXPORTER_OTLP_INSECURE"
                )
            ],
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector"},
            [
                _tls_warning(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "collector",
                    "OTEL_EXPORTER_OTLP_INSECURE",
                    " (nor port: 443 is dialled)",
                )
            ],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "collector:4317",
                "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "grpc",
            },
            [
                _tls_warning(
                    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                    "collector:4317",
                    "OTEL_EXPORTER_OTLP_LOGS_INSECURE",
                )
            ],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317",
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
            },
            [],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317",
                "OTEL_EXPORTER_OTLP_INSECURE": "false",
            },
            [],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317",
                "OTEL_EXPORTER_OTLP_TRACES_INSECURE": "true",
                "OTEL_EXPORTER_OTLP_LOGS_INSECURE": "false",
            },
            [],
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4317"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "unix:/run/otel.sock"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "dns:///collector:4317"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317", "OTEL_SDK_DISABLED": "true"}, []),
    ],
    ids=[
        "host:port",
        "the HTTP port",
        "a bare host",
        "a signal's own",
        "insecure true",
        "insecure false",
        "each signal's insecure",
        "http URL",
        "https URL",
        "gRPC unix target",
        "gRPC dns target",
        "export off",
    ],
)
def test_a_grpc_endpoint_without_a_scheme_is_taken_warning_that_it_is_dialled_with_tls(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    warned: list[str],
) -> None:
    """A gRPC endpoint written host:port (the specification lets gRPC take any target) is
    accepted, and while no OTEL_EXPORTER_OTLP_[<SIGNAL>_]INSECURE is set check-config warns that
    the exporter dials it with TLS (the specification's Insecure default), what to write
    instead; a scheme, a gRPC target URI or an insecure setting says it, and nothing is warned."""
    assert warned_lines(monkeypatch, capsys, env, "TLS") == warned


@pytest.mark.parametrize(
    ("value", "scheme", "dialled", "port"),
    [
        ("grpc://collector:4317", "grpc", "collector:4317", ""),
        ("htp://collector:4317", "htp", "collector:4317", ""),
        ("grpc://collector", "grpc", "collector", " (nor port: 443 is dialled)"),
    ],
)
def test_a_grpc_endpoint_of_another_scheme_is_warned_that_it_is_dialled_with_tls(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    value: str,
    scheme: str,
    dialled: str,
    port: str,
) -> None:
    """A gRPC endpoint URL whose scheme is neither http nor https (grpc://, a mistyped htp://),
    whose host:port the exporter dials with TLS as it dials one without a scheme, is warned of
    as that one is, saying what to write instead."""
    status, _, err = check_config(monkeypatch, capsys, OTEL_EXPORTER_OTLP_ENDPOINT=value)
    assert status == 0, err
    assert [line for line in err.splitlines() if "TLS" in line] == [
        f"exesdb-bridge: warning: OTEL_EXPORTER_OTLP_ENDPOINT {value} has the scheme {scheme!r},"
        f" neither http nor https{port}, so the grpc exporter dials it with TLS (the OpenTelemetry"
        " specification's default while OTEL_EXPORTER_OTLP_INSECURE is unset), and every export"
        f" to a collector without TLS fails: write http://{dialled} for one without TLS, or"
        f" https://{dialled} to say TLS"
    ]


def _port_warning(variable: str, value: str, signals: str, protocol: str, said: str) -> str:
    """The warning of an endpoint naming the other protocol's standard port."""
    port, kind, other, right, its = (
        ("4318", "OTLP/HTTP", "http/protobuf", "4317", "OTLP/gRPC")
        if protocol == "grpc"
        else ("4317", "OTLP/gRPC", "grpc", "4318", "OTLP/HTTP")
    )
    return (
        f"exesdb-bridge: warning: {variable} {value} names port {port}, a collector's {kind}"
        f" port, while {signals} go over {protocol}: every export fails there; set {said} to"
        f" {other}, or give the collector's {its} port, {right}"
    )


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
            [
                _port_warning(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "http://collector:4318",
                    "traces, logs",
                    "grpc",
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                )
            ],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            [
                _port_warning(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "http://collector:4317",
                    "traces, logs",
                    "http/protobuf",
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                )
            ],
        ),
        (  # only the signal sent over the other protocol; its own protocol variable decides
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "grpc",
            },
            [
                _port_warning(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "http://collector:4318",
                    "logs",
                    "grpc",
                    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
                )
            ],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4318",
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
            },
            [
                _port_warning(
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "collector:4318",
                    "traces",
                    "grpc",
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                )
            ],
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, []),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            [],
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:14318"}, []),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"},
            [],
        ),
    ],
    ids=[
        "grpc to 4318",
        "http to 4317",
        "one signal's protocol",
        "grpc target",
        "grpc to 4317",
        "http to 4318",
        "another port",
        "export off",
    ],
)
def test_an_endpoint_naming_the_other_protocols_port_is_warned_of(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    warned: list[str],
) -> None:
    """An endpoint naming a collector's OTLP/HTTP port (4318) for signals sent over grpc, or its
    gRPC port (4317) for http/protobuf, is warned of, naming the signals, the protocol variable
    that decides theirs and the port meant; the right port, another one or export off: nothing."""
    assert warned_lines(monkeypatch, capsys, env, "names port") == warned


def _no_path_warning(signal: str, value: str) -> str:
    """The warning of a signal's own http/protobuf endpoint without a path."""
    return (
        f"exesdb-bridge: warning: OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT {value} has no"
        " path, and the http/protobuf exporter posts to a signal's own endpoint as it is, adding"
        f" nothing: a collector takes {signal} at /v1/{signal} and answers 404 elsewhere; end"
        f" the URL in /v1/{signal}, or give the collector's base URL in"
        " OTEL_EXPORTER_OTLP_ENDPOINT instead, to which the exporter adds /v1/<signal>"
    )


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            [_no_path_warning("traces", "http://collector:4318")],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "https://collector:4318/",
                "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317",
            },
            [_no_path_warning("logs", "https://collector:4318")],  # shown as every URL is
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "EXESDB_OTLP_METRICS": "true",
            },
            [_no_path_warning("metrics", "http://collector:4318")],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            [],
        ),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"}, []),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            [],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_TRACES_EXPORTER": "none",
            },
            [],
        ),
    ],
    ids=[
        "traces",
        "logs, trailing slash",
        "metrics",
        "with its path",
        "grpc",
        "general endpoint",
        "export off",
    ],
)
def test_a_signals_own_http_endpoint_without_a_path_is_warned_of(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    warned: list[str],
) -> None:
    """A signal's own http/protobuf endpoint given as the collector's base URL (which the
    exporter posts to as it is, so a collector answers 404) is warned of, saying to end it in
    /v1/<signal> or use the general endpoint; with the path, over gRPC, as the general endpoint
    or not exported, nothing is warned."""
    assert warned_lines(monkeypatch, capsys, env, "has no path") == warned


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4318/v1/traces"},
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "notaurl",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
            },
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        ),
        # grpc for traces (the default), but the logs exporter posts to it over HTTP.
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
            },
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
    ],
)
def test_an_otlp_endpoint_is_checked_for_each_protocol_that_uses_it(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    variable: str,
) -> None:
    """A per-signal endpoint is checked against its signal's protocol; the general endpoint
    against the protocol of every signal that falls back on it."""
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", **env}
    status, _, err = check_config(monkeypatch, capsys, **env)
    assert status == 2
    [problem] = [line for line in err.splitlines() if line.startswith("  ")]
    assert problem.startswith(f"  {variable}: ")


@pytest.mark.parametrize("path", ["/v1/traces", "/v1/logs/", "/otlp/v1/metrics"])
def test_a_general_http_endpoint_ending_in_a_signal_s_path_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], path: str
) -> None:
    """With http/protobuf the exporter adds /v1/<signal> to OTEL_EXPORTER_OTLP_ENDPOINT, so one
    ending in such a path already (every export a 404 at /v1/traces/v1/traces) stops start-up
    naming it; the same URL as a signal's own endpoint is used as it is, and taken."""
    url = f"http://otel.internal:4318{path}"
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    status, _, err = check_config(monkeypatch, capsys, OTEL_EXPORTER_OTLP_ENDPOINT=url, **env)
    assert status == 2
    [problem] = [line for line in err.splitlines() if line.startswith("  ")]
    signal_path = "/v1/" + path.rstrip("/").rpartition("/")[2]
    assert problem.startswith(f"  OTEL_EXPORTER_OTLP_ENDPOINT: ends in {signal_path}, ")
    assert "(http://collector:4318)" in problem  # the base URL to give instead, as an example
    assert "otel.internal" not in problem  # never the value (its path may hold a token)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    for signal in ("TRACES", "LOGS"):
        monkeypatch.setenv(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", url)
    assert load_settings().otlp_traces_endpoint == url
