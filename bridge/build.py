"""What this build is: version, source revision and Python version, for ``exesdb_build_info``.

The revision is, in order: ``EXESDB_REVISION`` (the image build sets it from its
``--build-arg REVISION``), the commit pip recorded when installing from git (PEP 610's
``direct_url.json``, e.g. ``pip install git+https://…@<commit>``), else ``unknown``. Nothing is
run at start-up to find it (no ``git``): an installed package has no repository to ask.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from typing import Final

from prometheus_client import CollectorRegistry, Gauge

from bridge import __version__

__all__ = ["BuildInfo", "build_info", "register_build_metrics"]

_UNKNOWN: Final = "unknown"


@dataclass(frozen=True, slots=True)
class BuildInfo:
    """The labels of ``exesdb_build_info``."""

    version: str
    revision: str
    python_version: str


def build_info(revision: str | None = None) -> BuildInfo:
    """This build's version, revision (``EXESDB_REVISION`` as given, see above), Python version."""
    revision = (revision or "").strip() or _recorded_commit() or _UNKNOWN
    return BuildInfo(__version__, revision, platform.python_version())


def _recorded_commit() -> str | None:
    try:
        text = distribution("exesdb-bridge").read_text("direct_url.json")
    except PackageNotFoundError:
        return None
    if not text:
        return None
    try:
        commit = json.loads(text).get("vcs_info", {}).get("commit_id")
    except (ValueError, AttributeError):
        return None
    return commit if isinstance(commit, str) and commit else None


def register_build_metrics(registry: CollectorRegistry, info: BuildInfo, started_at: float) -> None:
    """``exesdb_build_info`` (prometheus/common's shape) and ``exesdb_start_time_seconds``."""
    Gauge(
        "exesdb_build_info",
        "A metric with a constant '1' value labeled by version, revision and python_version "
        "from which exesdb-bridge was built.",
        ["version", "revision", "python_version"],
        registry=registry,
    ).labels(info.version, info.revision, info.python_version).set(1)
    Gauge(
        "exesdb_start_time_seconds",
        "When the bridge started, in Unix seconds.",
        registry=registry,
    ).set(started_at)
