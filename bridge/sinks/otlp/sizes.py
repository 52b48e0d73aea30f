"""How many bytes a span, log record or data point takes in an OTLP export request, estimated.

A collector refuses a request above its limit whole (4 MiB for OTLP/gRPC by default, the
Collector's ``max_recv_msg_size_mib``), every record in it lost; the SDK's processors and
exporters cut batches by count alone. So the sink cuts its requests at ``MAX_REQUEST_BYTES`` as
estimated here: encoded text in UTF-8, plus a few bytes a field for protobuf's tags and lengths,
an estimate that errs upwards (1-10% above the SDK encoder's for real records, measured), never
encoding a record twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import ReadableLogRecord
    from opentelemetry.sdk.metrics.export import DataPointT
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["MAX_REQUEST_BYTES", "log_bytes", "point_bytes", "span_bytes", "text_bytes"]

MAX_REQUEST_BYTES: Final = 3 * 1024 * 1024
"""The most bytes of records in one export request: 1 MiB under the 4 MiB a collector's OTLP/gRPC
receiver takes by default, left for the estimate's error and the request's resource and scope."""

# What a field costs beyond its content (tag, length, the KeyValue / AnyValue around it), and a
# record beyond its fields (ids, times, kind, flags, severity): more than protobuf spends.
_FIELD_BYTES: Final = 8
_RECORD_BYTES: Final = 96
_POINT_BYTES: Final = 48


def text_bytes(text: str) -> int:
    """``text``'s bytes in UTF-8, and its field's."""
    # isascii() is a flag CPython keeps: no encoding for the usual ASCII text.
    size = len(text) if text.isascii() else len(text.encode(errors="surrogatepass"))
    return size + _FIELD_BYTES


def _value_bytes(value: object) -> int:
    if isinstance(value, str):
        return text_bytes(value)
    if isinstance(value, tuple | list):
        return sum(map(_value_bytes, value)) + _FIELD_BYTES
    return 8 + _FIELD_BYTES


def _attributes_bytes(attributes: Mapping[str, object] | None) -> int:
    if not attributes:
        return 0
    return sum(text_bytes(key) + _value_bytes(value) for key, value in attributes.items())


def span_bytes(span: ReadableSpan) -> int:
    """About the bytes ``span`` takes in an export request."""
    events = sum(
        text_bytes(event.name) + _attributes_bytes(event.attributes) + _RECORD_BYTES
        for event in span.events
    )
    description = text_bytes(span.status.description or "")
    named = text_bytes(span.name) + _attributes_bytes(span.attributes)
    return named + events + description + _RECORD_BYTES


def log_bytes(record: ReadableLogRecord) -> int:
    """About the bytes ``record`` takes in an export request."""
    log = record.log_record
    texts = (log.body, log.severity_text or "", log.event_name or "")
    return sum(map(_value_bytes, texts)) + _attributes_bytes(log.attributes) + _RECORD_BYTES


def point_bytes(point: DataPointT) -> int:
    """About the bytes a metric's data ``point`` takes in an export request (its metric's name
    and description are counted once per request, with ``text_bytes``)."""
    buckets = getattr(point, "bucket_counts", ())
    return _attributes_bytes(point.attributes) + 16 * len(buckets) + _POINT_BYTES
