"""exesdb-bridge: the ExESDB PubSub integration, bridged to Prometheus, Grafana and OTLP."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("exesdb-bridge")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
