"""The checks across settings (alert link origins, thresholds, switches), reported together with
the values refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.config import load_settings
from bridge.errors import ConfigError
from tests.support import ROOT, TEST_SECRET, bridge_env, check_config, run_bridge

pytestmark = pytest.mark.usefixtures("clean_env")


def test_alert_link_origins_other_than_origins_stop_start_up_naming_each(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An EXESDB_ALERT_LINK_ORIGINS item with a path (said so), a query, a user name and
    password (never shown), or that is no http(s) URL stops check-config with exit 2, a line
    naming each bad item."""
    status, out, err = check_config(
        monkeypatch,
        capsys,
        EXESDB_ALERT_LINK_ORIGINS="https://wiki.example,https://wiki.example/runbooks,"
        "https://ops:hunter2@wiki.example,https://wiki.example?space=ops,ftp://files.example,"
        "wiki.example:8443",
    )
    assert (status, out) == (2, "")
    allowed = (
        "allowed: an origin alone (scheme, host and port), e.g. https://wiki.example or"
        " https://wiki.example:8443 (every path on it is allowed)"
    )
    assert err.splitlines()[1:] == [
        f"  EXESDB_ALERT_LINK_ORIGINS item 2: 'https://wiki.example/…' has a path; {allowed}",
        "  EXESDB_ALERT_LINK_ORIGINS item 3: must not hold a user name or password (before an"
        " @): a link with user info is always redacted; give the origin alone, e.g."
        " https://wiki.example",
        "  EXESDB_ALERT_LINK_ORIGINS item 4: 'https://wiki.example/…' has a query or fragment;"
        f" {allowed}",
        "  EXESDB_ALERT_LINK_ORIGINS item 5: 'ftp://files.example' is not an http:// or https://"
        " URL with a host",
        "  EXESDB_ALERT_LINK_ORIGINS item 6: not a URL; allowed: an http:// or https:// URL with"
        " a host, e.g. http://wiki.example:8443",
    ]
    for hidden in ("hunter2", "runbooks", "space=ops"):
        assert hidden not in err


@pytest.mark.parametrize(
    "origins", ["*", "https://*", "https://*.example.com", "https://[*", "https://wiki.example,*"]
)
def test_a_wildcard_alert_link_origin_stops_start_up_saying_to_list_origins(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], origins: str
) -> None:
    """A `*` in EXESDB_ALERT_LINK_ORIGINS (meant as any origin, or any subdomain) is refused, not
    compared as written: check-config exits 2, the line naming the variable and saying to list
    the origins explicitly."""
    status, out, err = check_config(monkeypatch, capsys, EXESDB_ALERT_LINK_ORIGINS=origins)
    assert (status, out) == (2, "")
    item = len(origins.split(","))
    assert err.splitlines()[1:] == [
        f"  EXESDB_ALERT_LINK_ORIGINS item {item}: a wildcard (*) is not allowed: only links on"
        " the origins listed are shown whole; list each origin explicitly, e.g."
        " https://wiki.example,https://runbooks.example:8443 (every path on an origin is"
        " allowed)"
    ]


def test_a_password_with_a_star_in_an_alert_link_origin_is_told_as_a_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An EXESDB_ALERT_LINK_ORIGINS item whose password holds a `*` is refused for its user name
    and password, as any other, not as a wildcard its author did not write; the password is not
    shown."""
    status, out, err = check_config(
        monkeypatch, capsys, EXESDB_ALERT_LINK_ORIGINS="https://ops:hun*ter2@wiki.example"
    )
    assert (status, out) == (2, "")
    assert err.splitlines()[1:] == [
        "  EXESDB_ALERT_LINK_ORIGINS item 1: must not hold a user name or password (before an"
        " @): a link with user info is always redacted; give the origin alone, e.g."
        " https://wiki.example"
    ]
    assert "hun*ter2" not in err


def test_run_stops_at_start_on_a_wildcard_alert_link_origin() -> None:
    """`exesdb-bridge run` with EXESDB_ALERT_LINK_ORIGINS=* exits 2 before it listens, saying to
    list the origins explicitly."""
    completed = run_bridge(
        "run",
        env={"EXESDB_ALERT_LINK_ORIGINS": "*", "EXESDB_HTTP_ADDR": "127.0.0.1:0"},
        timeout=30,
    )
    assert completed.returncode == 2, completed.stderr
    assert "  EXESDB_ALERT_LINK_ORIGINS item 1: a wildcard (*) is not allowed:" in completed.stderr
    assert "list each origin explicitly" in completed.stderr


def test_run_stops_at_start_on_an_alert_link_origin_with_a_path() -> None:
    """`exesdb-bridge run` with an origin that has a path exits 2 before it listens, the line
    naming EXESDB_ALERT_LINK_ORIGINS and saying the item has a path."""
    completed = run_bridge(
        "run",
        env={
            "EXESDB_ALERT_LINK_ORIGINS": "https://wiki.example/runbooks",
            "EXESDB_HTTP_ADDR": "127.0.0.1:0",
        },
        timeout=30,
    )
    assert completed.returncode == 2, completed.stderr
    assert "  EXESDB_ALERT_LINK_ORIGINS item 1: 'https://wiki.example/…' has a path;" in (
        completed.stderr
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"EXESDB_CPU_DEGRADED": "96"}, "EXESDB_CPU_DEGRADED"),
        ({"EXESDB_MEMORY_DEGRADED": "97"}, "EXESDB_MEMORY_DEGRADED"),
        ({"EXESDB_DISK_DEGRADED": "90", "EXESDB_DISK_UNHEALTHY": "80"}, "EXESDB_DISK_DEGRADED"),
        (
            {"EXESDB_WEBHOOK_BACKOFF_MS": "5000", "EXESDB_WEBHOOK_MAX_BACKOFF_MS": "1000"},
            "EXESDB_WEBHOOK_BACKOFF_MS",
        ),
        (
            {
                "EXESDB_BUS": "redis://127.0.0.1:6379/0",
                "SECRET_KEY_BASE": TEST_SECRET,
                "EXESDB_MAX_BODY_BYTES": "1048576",
                "EXESDB_REDIS_SPOOL_BYTES": "2000000",
            },
            "EXESDB_REDIS_SPOOL_BYTES",
        ),
        (
            {"EXESDB_MAX_BODY_BYTES": "4194304", "EXESDB_BUS_QUEUE_BYTES": "2097152"},
            "EXESDB_BUS_QUEUE_BYTES",
        ),
        (
            {"EXESDB_MAX_BODY_BYTES": "4194304", "EXESDB_MAX_BODIES_BYTES": "2097152"},
            "EXESDB_MAX_BODIES_BYTES",
        ),
        # Only one of the two set: the line names it, not the other one left at its default.
        ({"EXESDB_CPU_UNHEALTHY": "50"}, "EXESDB_CPU_UNHEALTHY"),
        ({"EXESDB_MAX_BODY_BYTES": "200000000"}, "EXESDB_MAX_BODY_BYTES"),
        ({"EXESDB_WEBHOOK_MAX_BACKOFF_MS": "500"}, "EXESDB_WEBHOOK_MAX_BACKOFF_MS"),
        (
            {
                "EXESDB_BUS": "redis://127.0.0.1:6379/0",
                "SECRET_KEY_BASE": TEST_SECRET,
                "EXESDB_MAX_BODY_BYTES": "200000000",
            },
            "EXESDB_MAX_BODY_BYTES",
        ),
    ],
)
def test_inconsistent_values_stop_start_up(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    variable: str,
) -> None:
    """Values that contradict each other stop start-up with a line naming the variable."""
    status, _, err = check_config(monkeypatch, capsys, **env)
    assert status == 2
    assert f"  {variable}: " in err


def test_a_degraded_threshold_above_the_unhealthy_one_says_what_is_allowed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """EXESDB_CPU_DEGRADED=97 above EXESDB_CPU_UNHEALTHY=95 exits 2 with a line saying both
    values and the two ways out: at most the unhealthy one, or 100 (that status off)."""
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_CPU_DEGRADED="97", EXESDB_CPU_UNHEALTHY="95"
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_CPU_DEGRADED: 97 is above EXESDB_CPU_UNHEALTHY (95); allowed: at most that, or"
        " 100 to turn that status off"
    ]


def test_thresholds_given_as_fractions_are_each_refused_without_an_order_complaint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """EXESDB_CPU_DEGRADED=0.85 and EXESDB_CPU_UNHEALTHY=0.95 exit 2 with one line each saying
    the percent meant, and no line comparing the two (each is refused on its own)."""
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_CPU_DEGRADED="0.85", EXESDB_CPU_UNHEALTHY="0.95"
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_CPU_DEGRADED: 0.85 looks like a fraction; thresholds are percent (above 1, at"
        " most 100), e.g. 85",
        "  EXESDB_CPU_UNHEALTHY: 0.95 looks like a fraction; thresholds are percent (above 1, at"
        " most 100), e.g. 95",
    ]


def test_a_contradiction_with_a_default_names_the_variable_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """EXESDB_CPU_UNHEALTHY=50 alone is refused as itself below the default EXESDB_CPU_DEGRADED,
    saying so, rather than as a fault of EXESDB_CPU_DEGRADED, which the user never set."""
    status, _, err = check_config(monkeypatch, capsys, EXESDB_CPU_UNHEALTHY="50")
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_CPU_UNHEALTHY: 50 is below EXESDB_CPU_DEGRADED (85, its default); allowed: at"
        " least that, or set EXESDB_CPU_DEGRADED lower too"
    ]


def test_every_bad_variable_is_reported_at_once() -> None:
    """python -m bridge check-config exits 2 with one line per bad variable."""
    env = bridge_env(
        EXESDB_REPLAY_WINDOW_MS="abc",
        EXESDB_INGEST="maybe",
        EXESDB_LOG_LEVEL="loud",
        EXESDB_HTTP_ADDR="nowhere",
    )
    completed = subprocess.run(
        [sys.executable, "-m", "bridge", "check-config"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    lines = completed.stderr.splitlines()
    assert lines[0] == "exesdb-bridge: bad configuration:"
    named = sorted(line.strip().split(":")[0] for line in lines[1:] if line.startswith("  "))
    assert named == sorted(
        ["EXESDB_REPLAY_WINDOW_MS", "EXESDB_INGEST", "EXESDB_LOG_LEVEL", "EXESDB_HTTP_ADDR"]
    )


def test_field_errors_and_cross_checks_are_reported_together(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad value does not hide a missing secret or a contradiction elsewhere."""
    status, _, err = check_config(
        monkeypatch,
        capsys,
        EXESDB_INGEST="true",
        EXESDB_LOG_LEVEL="loud",
        EXESDB_CPU_DEGRADED="x",
        EXESDB_CPU_UNHEALTHY="50",
        EXESDB_DISK_DEGRADED="99",
    )
    assert status == 2
    problems = [line for line in err.splitlines()[1:] if line.startswith("  ")]
    named = sorted(line.strip().split(":")[0] for line in problems)
    # CPU_DEGRADED is reported for its own fault only, not compared through its default.
    assert named == [
        "EXESDB_CPU_DEGRADED",
        "EXESDB_DISK_DEGRADED",
        "EXESDB_LOG_LEVEL",
        "SECRET_KEY_BASE",
    ]
    assert (
        "exesdb-bridge: warning: "
        "with EXESDB_CPU_DEGRADED at its default (85): EXESDB_CPU_DEGRADED: 85 is above"
        " EXESDB_CPU_UNHEALTHY (50)"
    ) in err


@pytest.mark.parametrize(
    ("urls", "problems"),
    [
        ("http://a/x,notaurl", ["EXESDB_WEBHOOK_URLS item 2: not a URL"]),
        ("notaurl,http://a/x", ["EXESDB_WEBHOOK_URLS item 1: not a URL"]),
        (
            "notaurl,http://a/x,http://a/x",
            [
                "EXESDB_WEBHOOK_URLS item 1: not a URL",
                "EXESDB_WEBHOOK_URLS: items 2 and 3 are the same URL, http://a/…",
            ],
        ),
    ],
)
def test_a_receiver_beside_a_refused_item_is_compared_with_the_receivers_file_at_once(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    urls: str,
    problems: list[str],
) -> None:
    """The items of EXESDB_WEBHOOK_URLS taken beside a refused one are compared with the
    receivers file in the same round, each named by its own item number: a receiver listed in
    both is said at once, not after the bad item is mended."""
    receivers = tmp_path / "receivers.yml"
    receivers.write_text("webhook_configs:\n  - url: http://a/x\n")
    status, out, err = check_config(
        monkeypatch, capsys, EXESDB_WEBHOOK_URLS=urls, EXESDB_WEBHOOK_CONFIG_FILE=str(receivers)
    )
    assert (status, out) == (2, "")
    number = urls.split(",").index("http://a/x") + 1
    lines = [line.strip() for line in err.splitlines()[1:]]
    assert [line.split(";")[0] for line in lines] == [
        *problems,
        f"EXESDB_WEBHOOK_CONFIG_FILE: {receivers}: webhook_configs.0: the same receiver as in"
        f" EXESDB_WEBHOOK_URLS item {number}",
    ]


def test_a_threshold_is_ordered_against_a_refused_one_once_that_is_taken(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """EXESDB_CPU_UNHEALTHY refused as a fraction is named alone: EXESDB_CPU_DEGRADED=97 is not
    ordered against a value nobody gave (its default) as a problem, and a warning says what
    that check finds at the default; once it is taken (95), the order is the one problem."""
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_CPU_DEGRADED="97", EXESDB_CPU_UNHEALTHY="0.95"
    )
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_CPU_UNHEALTHY: 0.95 looks like a fraction; thresholds are percent (above 1, at"
        " most 100), e.g. 95",
        "exesdb-bridge: warning: with EXESDB_CPU_UNHEALTHY at its default (95):"
        " EXESDB_CPU_DEGRADED: 97 is above EXESDB_CPU_UNHEALTHY (95); allowed: at most that, or"
        " 100 to turn that status off",
    ]
    status, _, err = check_config(monkeypatch, capsys, EXESDB_CPU_UNHEALTHY="95")
    assert status == 2
    assert err.splitlines()[1:] == [
        "  EXESDB_CPU_DEGRADED: 97 is above EXESDB_CPU_UNHEALTHY (95); allowed: at most that, or"
        " 100 to turn that status off"
    ]


def test_a_refused_switch_names_what_its_other_reading_would_find(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """EXESDB_INGEST=maybe with SECRET_KEY_BASE unset: the warning says what the next round
    brings if true was meant (the secret must be set), not only that a check waits, naming
    that reading once: the problem's own words name it."""
    monkeypatch.delenv("SECRET_KEY_BASE", raising=False)
    status, _, err = check_config(monkeypatch, capsys, EXESDB_INGEST="maybe")
    assert status == 2
    assert [line for line in err.splitlines() if "warning" in line] == [
        "exesdb-bridge: warning: SECRET_KEY_BASE: is not set; with EXESDB_INGEST=true it must"
        " be set to at least 32 characters"
    ]


@pytest.mark.parametrize(
    ("env", "problems", "held"),
    [
        (
            # Refused, the protocol is no default: with http/protobuf credentials in the URL
            # are sent, with grpc they are not.
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://user:pw@collector:4318",
            },
            ["OTEL_EXPORTER_OTLP_PROTOCOL"],
            "with OTEL_EXPORTER_OTLP_PROTOCOL=grpc: OTEL_EXPORTER_OTLP_ENDPOINT: holds credentials"
            " (user:<redacted>@), which the grpc exporter does not send",
        ),
        (
            # Meant as true, no certificate would be read.
            {
                "OTEL_SDK_DISABLED": "yes",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
                "OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem",
            },
            ["OTEL_SDK_DISABLED"],
            "with OTEL_SDK_DISABLED=false: OTEL_EXPORTER_OTLP_CERTIFICATE: cannot read"
            " /nonexistent/ca.pem",
        ),
        (
            # Whatever the traces exporter was meant to be, logs read the certificate.
            {
                "OTEL_TRACES_EXPORTER": "no",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
                "OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem",
            },
            ["OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_CERTIFICATE"],
            None,
        ),
    ],
)
def test_no_cross_check_problem_is_reported_as_a_consequence_of_a_refused_value(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    problems: list[str],
    held: str | None,
) -> None:
    """Beside a refused switch or choice, a check across settings is reported only when it
    fails whatever value was meant: not one that only one reading makes fail, which a warning
    says with that reading."""
    status, _, err = check_config(monkeypatch, capsys, **env)
    assert status == 2
    lines = [line for line in err.splitlines()[1:] if not line.startswith("exesdb-bridge:")]
    assert [line.strip().split(":")[0] for line in lines] == problems
    assert "pw" not in err
    warned = [line for line in err.splitlines() if line.startswith("exesdb-bridge: warning:")]
    if held is not None:  # a check held back is said, with the reading that finds it
        [warning] = warned
        assert warning.startswith(f"exesdb-bridge: warning: {held}")
    else:
        assert warned == []


def test_too_many_refused_switches_to_read_each_way_say_the_checks_across_settings_wait(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Seven refused switches (128 ways to read them) are each named, and a warning says the
    checks across settings wait until they are taken."""
    switches = [
        "EXESDB_INGEST",
        "EXESDB_PUBSUB_INTEGRATION",
        "EXESDB_OTLP_METRICS",
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_EXPORTER",
        "OTEL_LOGS_EXPORTER",
        "OTEL_METRICS_EXPORTER",
    ]
    status, _, err = check_config(monkeypatch, capsys, **dict.fromkeys(switches, "perhaps"))
    assert status == 2
    problems = [line.strip() for line in err.splitlines()[1:] if line.startswith("  ")]
    assert sorted(line.split(":")[0] for line in problems) == sorted(switches)
    assert err.splitlines()[len(problems) + 1] == (
        "exesdb-bridge: warning: checks across settings wait until the values above are taken:"
        " check again then"
    )


def test_web_config_file_problems_are_reported_with_the_others(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    """A bad web config file is one more problem line, beside a bad variable."""
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  alice: hunter2\nbogus: 1\n")
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_WEB_CONFIG_FILE=str(web), EXESDB_LOG_LEVEL="loud"
    )
    assert status == 2
    lines = [line.strip() for line in err.splitlines()[1:]]
    assert [line.split(":")[0] for line in lines].count("EXESDB_WEB_CONFIG_FILE") == 2
    assert any(line.startswith("EXESDB_LOG_LEVEL") for line in lines)
    assert "hunter2" not in err


@pytest.mark.parametrize("resource", ["CPU", "MEMORY", "DISK"])
def test_a_threshold_of_100_disables_the_status_without_tripping_the_order_check(
    monkeypatch: pytest.MonkeyPatch, resource: str
) -> None:
    """DEGRADED=100 turns that status off though it is above UNHEALTHY (docs/configuration.md)."""
    monkeypatch.setenv(f"EXESDB_{resource}_DEGRADED", "100")
    assert getattr(load_settings(), f"{resource.lower()}_degraded") == 100
    monkeypatch.setenv(f"EXESDB_{resource}_DEGRADED", "97")
    with pytest.raises(ConfigError, match=f"EXESDB_{resource}_DEGRADED"):
        load_settings()
