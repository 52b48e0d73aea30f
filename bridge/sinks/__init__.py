"""Sinks: what verified bus messages become (Prometheus series, OTLP spans and logs, alerts).

The OTLP sink also sends the bridge's series as OTLP metrics when asked (``otlp.series``).
"""

from __future__ import annotations

__all__: list[str] = []  # each sink is its own package: bridge.sinks.prometheus, .otlp, .alerts
