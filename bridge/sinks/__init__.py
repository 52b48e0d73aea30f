"""Sinks: what verified bus messages become (Prometheus series, OTLP spans and logs, alerts)."""

from __future__ import annotations

__all__: list[str] = []  # each sink is its own package: bridge.sinks.prometheus, .otlp, .alerts
