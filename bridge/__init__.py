"""exesdb-bridge: the ExESDB PubSub integration, bridged to Prometheus, Grafana and OTLP."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # Looked up when first asked for: importlib.metadata would cost every `healthcheck` probe.
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("exesdb-bridge")
    except PackageNotFoundError:  # running from a source tree that was never installed
        found = "0.0.0"
    globals()["__version__"] = found
    return found
