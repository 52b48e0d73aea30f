"""The metric catalog of docs/metrics.md names every series the bridge can emit."""

from __future__ import annotations

import re
from typing import Any

from bridge.app import Bridge
from bridge.settings import Settings
from bridge.sinks.prometheus import FAMILIES, MetricType, PrometheusSink
from tests.doc_text import page, section
from tests.support import TEST_SECRET


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


def test_no_series_uses_the_instance_label():
    """No family declares an ``instance`` label: the bus instance is ``pubsub``."""
    assert all("instance" not in labels for _, _, labels in FAMILIES.values())
