"""Each OTLP signal's export: whether it goes out, and the protocol, timeout and compression.

Every signal has its own ``OTEL_EXPORTER_OTLP_<SIGNAL>_*`` variables beside the general ones,
as the OpenTelemetry specification has them; what one of its exporters uses is its own when set,
else the general one. The OTLP sink builds its exporters from these, and the checks at start
(``bridge.settings_checks``) judge the endpoints and files of the signals exported.
"""

from __future__ import annotations

from typing import cast

from bridge.settings import OtlpCompression, OtlpProtocol, OtlpSignal, Settings

__all__ = [
    "otlp_compression_of",
    "otlp_enabled",
    "otlp_endpoint_of",
    "otlp_exports",
    "otlp_protocol_of",
    "otlp_timeout_of",
]


def otlp_enabled(settings: Settings) -> bool:
    """OTLP export is on when any signal is exported (``otlp_exports``)."""
    return any(otlp_exports(settings, signal) for signal in ("traces", "logs", "metrics"))


def otlp_exports(settings: Settings, signal: OtlpSignal) -> bool:
    """True when ``signal`` goes out over OTLP: it has an endpoint, its own or the general
    one (metrics only with ``EXESDB_OTLP_METRICS``), and neither ``OTEL_SDK_DISABLED=true``
    nor ``OTEL_<SIGNAL>_EXPORTER=none`` turns it off."""
    own, switched_on, exporter = {
        "traces": (settings.otlp_traces_endpoint, True, settings.otel_traces_exporter),
        "logs": (settings.otlp_logs_endpoint, True, settings.otel_logs_exporter),
        "metrics": (
            settings.otlp_metrics_endpoint,
            settings.otlp_metrics,
            settings.otel_metrics_exporter,
        ),
    }[signal]
    if settings.otel_sdk_disabled or exporter == "none" or not switched_on:
        return False
    return bool(own or settings.otlp_endpoint)


def otlp_endpoint_of(settings: Settings, signal: OtlpSignal) -> str:
    """The endpoint ``signal`` is exported to, as configured: its own
    ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` when set, else the general one (to which the HTTP
    exporters add ``/v1/<signal>``)."""
    return cast(str | None, _own_else_general(settings, signal, "endpoint")) or ""


def otlp_protocol_of(settings: Settings, signal: OtlpSignal) -> OtlpProtocol:
    """The protocol ``signal``'s exporter speaks: its own
    ``OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`` when set, else the general one."""
    return cast(OtlpProtocol, _own_else_general(settings, signal, "protocol"))


def otlp_timeout_of(settings: Settings, signal: OtlpSignal) -> float:
    """Seconds ``signal``'s exporter waits for one export: its own
    ``OTEL_EXPORTER_OTLP_<SIGNAL>_TIMEOUT`` when set, else the general one."""
    return cast(float, _own_else_general(settings, signal, "timeout"))


def otlp_compression_of(settings: Settings, signal: OtlpSignal) -> OtlpCompression:
    """``signal``'s compression: its own ``OTEL_EXPORTER_OTLP_<SIGNAL>_COMPRESSION`` when
    set, else the general one."""
    return cast(OtlpCompression, _own_else_general(settings, signal, "compression"))


def _own_else_general(settings: Settings, signal: OtlpSignal, setting: str) -> object:
    """``otlp_<signal>_<setting>`` when set, else the general ``otlp_<setting>``."""
    return getattr(settings, f"otlp_{signal}_{setting}") or getattr(settings, f"otlp_{setting}")
