"""Sinks: what verified bus messages become (Prometheus series, OTLP spans and logs, alerts)."""
