"""exesdb_build_info and exesdb_start_time_seconds: what this build is, and when it started."""

from __future__ import annotations

import platform

from bridge import __version__
from bridge.app import Bridge
from bridge.build import build_info
from tests.support import make_settings


def test_the_revision_comes_from_exesdb_revision():
    """EXESDB_REVISION (set by the image build) is the revision label, trimmed."""
    info = build_info(" 0123abc \n")
    assert (info.version, info.revision, info.python_version) == (
        __version__,
        "0123abc",
        platform.python_version(),
    )


def test_without_a_recorded_commit_the_revision_is_unknown():
    """An editable install from a folder records no commit: the revision is "unknown"."""
    assert build_info(None).revision == "unknown"
    assert build_info("  ").revision == "unknown"


def test_build_info_is_one_gauge_family_at_1():
    """exesdb_build_info{version, revision, python_version} is 1, in one gauge family."""
    bridge = Bridge(make_settings(EXESDB_REVISION="f00d"), components=[])
    labels = {
        "version": __version__,
        "revision": "f00d",
        "python_version": platform.python_version(),
    }
    assert bridge.registry.get_sample_value("exesdb_build_info", labels) == 1
    families = [f for f in bridge.registry.collect() if f.name.startswith("exesdb_build")]
    assert [(f.name, f.type) for f in families] == [("exesdb_build_info", "gauge")]


def test_start_time_is_the_bridges_clock_at_construction():
    """exesdb_start_time_seconds is the (injected) wall clock when the bridge was built."""
    bridge = Bridge(make_settings(), components=[], clock=lambda: 1_700_000_000.5)
    assert bridge.registry.get_sample_value("exesdb_start_time_seconds") == 1_700_000_000.5
