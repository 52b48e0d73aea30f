"""The OTLP headers: those the exporters would drop stop start-up unshown, those no exporter reads
are not judged."""

from __future__ import annotations

import pytest

from bridge.config import load_settings
from tests.config.helpers import OTLP_COLLECTOR
from tests.support import check_config

pytestmark = pytest.mark.usefixtures("clean_env")


# OTLP headers values the SDK's exporters drop an item of, and the item numbers said.
_HEADERS_DROPPED = [
    ("Authorization: Bearer s3cr3t-token", "item 1 of 1 is"),
    ("tenant=a;b", "item 1 of 1 is"),
    ('x-note="quoted"', "item 1 of 1 is"),
    ("x-team=équipe", "item 1 of 1 is"),
    ("x-team=ops,Authorization: Bearer s3cr3t-token, x-b=1\\2", "items 2, 3 of 3 are"),
]


# Values every item of which they send: URL-encoded, with blanks as written, blanks around.
_HEADERS_SENT = [
    "Authorization=Bearer%20s3cr3t-token",
    "Authorization=Bearer s3cr3t-token",
    " x-team = ops , api-key=a%3Bb ,",
]


@pytest.mark.parametrize(("value", "which"), _HEADERS_DROPPED)
def test_otlp_headers_the_exporters_would_drop_stop_start_up_without_showing_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str, which: str
) -> None:
    """An OTEL_EXPORTER_OTLP_HEADERS item that is no name=value pair the exporters read is exit
    2 naming the variable and the item by number, never its text: the SDK would only warn and
    send without it, so a collector asking for a token would refuse every export."""
    status, _, err = check_config(
        monkeypatch, capsys, **OTLP_COLLECTOR, OTEL_EXPORTER_OTLP_HEADERS=value
    )
    assert status == 2
    assert f"  OTEL_EXPORTER_OTLP_HEADERS: {which} no name=value pair" in err
    assert "s3cr3t" not in err
    assert "équipe" not in err


@pytest.mark.parametrize("value", _HEADERS_SENT)
def test_otlp_headers_the_exporters_send_whole_are_taken(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """Headers every item of which the exporters send load, blanks in a value included (the
    SDK takes them as written, as other languages' SDKs do)."""
    for name, given in {**OTLP_COLLECTOR, "OTEL_EXPORTER_OTLP_HEADERS": value}.items():
        monkeypatch.setenv(name, given)
    load_settings()


def test_the_headers_rule_is_the_sdk_s() -> None:
    """What the check refuses, the OpenTelemetry SDK's parser (as its exporters call it) drops
    an item of, and what it takes the parser keeps whole: a newer SDK reading otherwise fails
    here."""
    from opentelemetry.util.re import parse_env_headers

    for value, _ in _HEADERS_DROPPED:
        items = [item for item in value.split(",") if item.strip()]
        assert len(parse_env_headers(value, liberal=True)) < len(items), value
    for value in _HEADERS_SENT:
        items = [item for item in value.split(",") if item.strip()]
        assert len(parse_env_headers(value, liberal=True)) == len(items), value


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_EXPORTER_OTLP_HEADERS": "Authorization: Bearer x"},
        {**OTLP_COLLECTOR, "OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_HEADERS": "a:b"},
        {**OTLP_COLLECTOR, "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "a:b"},
        {
            **OTLP_COLLECTOR,
            "OTEL_EXPORTER_OTLP_HEADERS": "a:b",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "a=1",
            "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "a=1",
        },
    ],
)
def test_otlp_headers_no_exporter_reads_are_not_judged(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    """Headers are judged only where an exporter reads them: none with OTLP export off, a
    signal's own not while that signal is not exported (metrics without EXESDB_OTLP_METRICS),
    the general one not when every exported signal has its own."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    load_settings()


def test_a_signal_s_own_headers_are_judged_under_their_own_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A signal's own headers variable the exporter would drop an item of is named as itself."""
    status, _, err = check_config(
        monkeypatch, capsys, **OTLP_COLLECTOR, OTEL_EXPORTER_OTLP_LOGS_HEADERS="a=1,b"
    )
    assert status == 2
    assert "  OTEL_EXPORTER_OTLP_LOGS_HEADERS: item 2 of 2 is no name=value pair" in err
