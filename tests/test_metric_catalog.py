"""docs/metrics.md's catalog lists the series the bridge can emit, their types and labels, each
meaning opening with the series' help text."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bridge.app import Bridge
from bridge.settings import Settings
from bridge.sinks.alerts import AlertSink
from bridge.sinks.prometheus import FAMILIES, MetricType, PrometheusSink
from bridge.webconfig.live import LiveWebConfig
from bridge.webconfig.loading import judge
from tests.doc_text import TARGET_LABELS, catalog_rows, page, pages, section, spans
from tests.support import TEST_SECRET, pem_files


def _catalog() -> str:
    return section(page("metrics"), "Metric catalog")


# Settings under which the bridge registers more series: OTLP export, the Redis transport.
_CONFIGURATIONS: tuple[dict[str, Any], ...] = (
    {},
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "EXESDB_OTLP_METRICS": "true"},
    {"EXESDB_BUS": "redis://127.0.0.1:9/0", "SECRET_KEY_BASE": TEST_SECRET},
)


def _emittable() -> set[str]:
    names = set()
    for extra in _CONFIGURATIONS:
        bridge = Bridge(Settings(EXESDB_NODE="n1", **extra))  # built, never started
        for family in bridge.registry.collect():
            for sample in family.samples:
                if not sample.name.endswith("_created"):
                    names.add(sample.name)
        sink = next(c for c in bridge.components if isinstance(c, PrometheusSink))
        for store_family in sink.store.families:
            counter = store_family.kind is MetricType.COUNTER
            names.add(store_family.name + "_total" if counter else store_family.name)
    return names


def test_every_series_is_in_the_catalog():
    """Each series name from the registry, the collectors, the sink, OTLP and Redis is listed."""
    catalog = _catalog()
    listed = set(re.findall(r"`([a-z_]+)`", catalog))
    missing = sorted(name for name in _emittable() if name not in listed)
    assert not missing, f"add to the metric catalog of docs/metrics.md: {missing}"


def test_catalog_covers_every_translated_family():
    """The sink's translation table and the emittable names agree (the test above sees them)."""
    names = _emittable()
    for name, (kind, _, _) in FAMILIES.items():
        assert (name + "_total" if kind is MetricType.COUNTER else name) in names


_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
}


def _families(web_config: Path) -> dict[str, tuple[str, set[str], str]]:
    """Each series name the bridge can emit, under every configuration: its family's type,
    the label names its series carry (the Prometheus sink's as it declares them) and its help
    text, as `# HELP` gives it on /metrics."""
    found: dict[str, tuple[str, set[str], str]] = {}
    # With a CA file in EXESDB_BUS's query the Redis transport adds the gauges of its reloads.
    ca = pem_files(web_config.parent)["ca.pem"]
    tls = {
        "EXESDB_BUS": f"rediss://127.0.0.1:9/0?ssl_ca_certs={ca}",
        "SECRET_KEY_BASE": TEST_SECRET,
    }
    for extra in (*_CONFIGURATIONS, {"EXESDB_ALERTMANAGER_URL": "http://127.0.0.1:9"}, tls):
        bridge = Bridge(Settings(EXESDB_NODE="n1", **extra))  # built, never started
        # Registered as the server starts and as the alert sink makes its Alertmanager poster
        # there: made here as they would be.
        LiveWebConfig(judge(web_config), registry=bridge.registry)
        alerts = next(c for c in bridge.components if isinstance(c, AlertSink))
        alerts.metrics.posting()
        for family in bridge.registry.collect():
            for sample in family.samples:
                if not sample.name.endswith("_created"):
                    shown = (family.type, set[str](), family.documentation)
                    _, labels, _ = found.setdefault(sample.name, shown)
                    labels.update(sample.labels)
        sink = next(c for c in bridge.components if isinstance(c, PrometheusSink))
        for store_family in sink.store.families:
            kind = store_family.kind.name.lower()
            for suffix in _SUFFIXES.get(kind, ("",)):
                labels = set(store_family.labelnames)
                if kind == "summary" and suffix == "":
                    labels.add("quantile")
                found.setdefault(store_family.name + suffix, (kind, labels, store_family.help))
    return found


@pytest.fixture
def web_config(tmp_path: Path) -> Path:
    """A web config file the bridge takes (every key at its default)."""
    path = tmp_path / "web.yml"
    path.write_text("{}\n")
    return path


def test_every_series_the_catalog_lists_is_one_the_bridge_can_emit(web_config: Path) -> None:
    """No row of the catalog names a series that no configuration of the bridge emits."""
    emitted = _families(web_config)
    assert "exesdb_web_config_password_checks_total" in emitted  # every configuration is seen
    phantom = sorted(name for name in catalog_rows() if name not in emitted)
    assert phantom == [], f"docs/metrics.md lists series the bridge never emits: {phantom}"


def test_every_catalog_row_gives_its_series_type_and_labels(web_config: Path) -> None:
    """Each row's type is its family's and its labels are the ones its series carry (a
    histogram's row: `le`, its buckets')."""
    emitted = _families(web_config)
    wrong = []
    for name, (kind, labels, _) in catalog_rows().items():
        if name not in emitted:
            continue  # the test above reports it
        family_kind, family_labels, _ = emitted[name]
        row_labels = labels - {"le"} if not name.endswith("_bucket") else labels
        if family_kind not in kind or row_labels != family_labels:
            wrong.append(
                f"{name}: {kind} {sorted(labels)}, the code {family_kind} {sorted(family_labels)}"
            )
    assert wrong == []


def _as_help(meaning: str) -> str:
    """A catalog row's meaning as plain text: no code spans' backticks, no link in parentheses
    (`([Alerts](alerts.md))`)."""
    return re.sub(r" \(\[[^]]*\]\([^)]*\)\)", "", meaning).replace("`", "")


def test_every_catalog_row_opens_with_its_series_help_text(web_config: Path) -> None:
    """A row's meaning opens with the `# HELP` text /metrics gives its series, word for word:
    the catalog says no less and nothing else first (prometheus_client's own series aside)."""
    emitted = _families(web_config)
    wrong = [
        f"{name}:\n  # HELP {emitted[name][2]}\n  catalog {meaning}"
        for name, (_, _, meaning) in catalog_rows().items()
        if name.startswith("exesdb_") and name in emitted
        if not f"{_as_help(meaning)} ".startswith(f"{emitted[name][2]} ")
    ]
    assert wrong == [], "\n".join(wrong)


def test_every_help_text_is_one_plain_sentence(web_config: Path) -> None:
    """Each `# HELP` text of the bridge's own series is one sentence of plain text: a capital
    or a figure first, a full stop last and nowhere before, no Markdown."""
    wrong = sorted(
        f"{name}: {help_text}"
        for name, (_, _, help_text) in _families(web_config).items()
        if name.startswith("exesdb_")
        if not re.fullmatch(r"[A-Z0-9][^`;]*[^.]\.", help_text) or re.search(r"\. [A-Z]", help_text)
    )
    assert wrong == []


def test_no_series_uses_the_instance_label():
    """No family declares an ``instance`` label: the bus instance is ``pubsub``."""
    assert all("instance" not in labels for _, _, labels in FAMILIES.values())


# Code spans that look like series but are not: a variable in lower case, a component's name.
_NOT_SERIES = {
    "exesdb_ingest": "EXESDB_INGEST written in lower case (docs/configuration.md)",
    "exesdb_bridge": "the component name of the bridge's own PerformanceMetrics",
}


def _named_series(text: str) -> list[tuple[str, list[str]]]:
    """Each series a page names in a code span, with the labels it gives it there
    (``exesdb_bus_dropped_total{subscriber="stream"}``: subscriber)."""
    named = []
    for span in spans(text):
        for found in re.finditer(r"\b(exesdb_[a-z0-9_]*[a-z0-9])(?![\w*])(\{[^}]*\})?", span):
            labels = re.findall(r"([a-z_]+)\s*(?:=~|!=|=|,|\}|$)", found.group(2) or "")
            named.append((found.group(1), labels))
    return named


@pytest.mark.parametrize("path", pages(), ids=lambda path: path.name)
def test_every_series_a_page_names_is_in_the_catalog_with_its_labels(path: Path) -> None:
    """A series the README or a page of docs/ names (`exesdb_sink_errors_total{subscriber}`)
    is one the catalog lists, and the labels given it are among its row's."""
    if path.name == "performance.md":
        return  # dated records of measurements, of series as they were named then
    rows = catalog_rows()
    wrong = []
    for name, labels in _named_series(path.read_text()):
        if name in _NOT_SERIES:
            continue
        row = next((rows[n] for n in (name, f"{name}_total", f"{name}_bucket") if n in rows), None)
        if row is None:
            wrong.append(f"{name}: no such series in the catalog")
        elif unknown := set(labels) - row[1] - TARGET_LABELS - {"le"}:
            wrong.append(f"{name}: labels {sorted(unknown)} not on its row")
    assert wrong == []


def test_the_series_reader_finds_names_and_labels() -> None:
    """The check above can fail: it reads names, label names and matchers, not prefixes."""
    text = (
        '`exesdb_bus_dropped_total{subscriber="stream"}`, `exesdb_redis_*`, '
        '`rate(exesdb_x_total{a=~"b|c", d}[5m])`, `exesdb_sink_errors_total{subscriber}`'
    )
    assert _named_series(text) == [
        ("exesdb_bus_dropped_total", ["subscriber"]),
        ("exesdb_x_total", ["a", "d"]),
        ("exesdb_sink_errors_total", ["subscriber"]),
    ]
