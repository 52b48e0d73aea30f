"""Each OTLP signal's export: whether it goes out, its protocol, timeout, compression and batching.

Every signal has its own ``OTEL_EXPORTER_OTLP_<SIGNAL>_*`` variables beside the general ones,
as the OpenTelemetry specification has them; what one of its exporters uses is its own when set,
else the general one. The OTLP sink builds its exporters from these, and the checks at start
(``bridge.settings_checks``) judge the endpoints and files of the signals exported, and the
numbers of the SDK's batch processors and metric reader (``otlp_number``), which are no
settings: a bad one falls back on its default, as in the SDK, with a warning.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Final, cast

from bridge.go_values import go_duration
from bridge.settings import OtlpCompression, OtlpProtocol, OtlpSignal, Settings

__all__ = [
    "otlp_compression_of",
    "otlp_enabled",
    "otlp_endpoint_of",
    "otlp_endpoint_variable",
    "otlp_exports",
    "otlp_number",
    "otlp_number_warnings",
    "otlp_protocol_of",
    "otlp_timeout_of",
]

# What each signal's batch processor (specification, "Batching processor") or metric reader
# ("Periodic exporting MetricReader") reads as a number: the variable, its default and unit.
_NUMBERS: Final[Mapping[OtlpSignal, tuple[tuple[str, float, str], ...]]] = {
    "traces": (
        ("OTEL_BSP_SCHEDULE_DELAY", 5000, "milliseconds"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, "records"),
    ),
    "logs": (
        ("OTEL_BLRP_SCHEDULE_DELAY", 1000, "milliseconds"),
        ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", 512, "records"),
    ),
    "metrics": (("OTEL_METRIC_EXPORT_INTERVAL", 60_000, "milliseconds"),),
}
_DEFAULTS: Final = {
    name: (default, unit) for numbers in _NUMBERS.values() for name, default, unit in numbers
}
# The longest delay or interval an export thread can wait (threading.TIMEOUT_MAX seconds, some
# 292 years): a longer one, as an infinite one, fails the wait and stops the thread.
_MOST_MILLISECONDS: Final = threading.TIMEOUT_MAX * 1000


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


def otlp_endpoint_variable(settings: Settings, signal: OtlpSignal) -> str:
    """The variable ``otlp_endpoint_of`` takes ``signal``'s endpoint from: its own
    ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` when set, else ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
    own = getattr(settings, f"otlp_{signal}_endpoint")
    return f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT" if own else "OTEL_EXPORTER_OTLP_ENDPOINT"


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


def otlp_number(environ: Mapping[str, str], name: str) -> tuple[float, str | None]:
    """``name``'s value in ``environ`` (one of the batch processors' or the metric reader's
    variables), a positive number of its unit (milliseconds or records; finite, and milliseconds
    no longer than a thread's longest wait), and the warning a bad one gets: when it is no such
    number its default is used, as the SDK falls back on it, and the warning says what to
    write. A duration written with its unit (``5s``), where milliseconds go, is told the number
    meant. The default and None when unset."""
    default, unit = _DEFAULTS[name]
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default, None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    # float() takes "inf" and "1e400": no batch size (int()) nor wait is infinite.
    most = _MOST_MILLISECONDS if unit == "milliseconds" else math.inf
    if 0 < value < math.inf and value <= most:
        return value, None
    meant = ""
    if 0 < value < math.inf:
        meant = f" of at most {most:.0f} (a thread's longest wait)"
    if unit == "milliseconds":
        try:
            seconds = go_duration(raw)
        except ValueError:
            seconds = 0.0
        if seconds > 0:
            meant = f" (write {seconds * 1000:g} for {raw.strip()})"
    return default, (
        f"{name}={raw!r} is not a positive number of {unit}{meant}; using {default:g}, the default"
    )


def otlp_number_warnings(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """The warnings of ``otlp_number`` for the variables of each signal exported: those of
    others are read by no exporter."""
    signals: tuple[OtlpSignal, ...] = ("traces", "logs", "metrics")
    return [
        warning
        for signal in signals
        if otlp_exports(settings, signal)
        for name, _, _ in _NUMBERS[signal]
        if (warning := otlp_number(environ, name)[1]) is not None
    ]
