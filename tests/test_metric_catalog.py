"""The README's metric catalog names every series the bridge can emit."""

from __future__ import annotations

import re

from bridge.app import Bridge
from bridge.config import Settings
from bridge.sinks.prometheus import FAMILIES, MetricType, PrometheusSink
from tests.support import ROOT


def _catalog() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("### Metric catalog")
    end = readme.index("\n## ", start) if "\n## " in readme[start:] else len(readme)
    return readme[start:end]


def _emittable() -> set[str]:
    bridge = Bridge(Settings(EXESDB_NODE="n1"))
    names = set()
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
    """Each series name from the registry, the collectors and the sink appears in the README."""
    catalog = _catalog()
    listed = set(re.findall(r"`([a-z_]+)`", catalog))
    missing = sorted(name for name in _emittable() if name not in listed)
    assert not missing, f"add to the README's metric catalog: {missing}"


def test_catalog_covers_every_translated_family():
    """The sink's translation table and the emittable names agree (the test above sees them)."""
    names = _emittable()
    for name, (kind, _, _) in FAMILIES.items():
        assert (name + "_total" if kind is MetricType.COUNTER else name) in names


def test_no_series_uses_the_instance_label():
    """No family declares an ``instance`` label: the bus instance is ``pubsub``."""
    assert all("instance" not in labels for _, _, labels in FAMILIES.values())
