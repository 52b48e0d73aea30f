"""Spans of the bridge's own HTTP requests (webhooks, Alertmanager), for the sink exporting them.

A client builds a ``ClientSpan`` (a value: times, attributes, error) when a request ends and
hands it to the ``HasClientSpans`` components of the ``Context`` (the OTLP sink, when OTLP is
on); without one, nothing is recorded and nothing from OpenTelemetry is imported. Recording
never waits: the OTLP sink queues the span for its export thread.

Attributes follow OpenTelemetry's semantic conventions for HTTP client spans (stable since
1.23; tests pin these names to the ``opentelemetry-semantic-conventions`` package's constants):
the span is named after the method, ``url.full`` is the URL as ``bridge.redaction.span_url``
shows it (paths and queries of webhook URLs often hold tokens; user info as the conventions'
``REDACTED:REDACTED@``), and ``error.type`` is the status
code of a failed answer or the exception's class name when no answer came.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from bridge.redaction import at_past_host, span_url
from bridge.urls import DEFAULT_PORTS

__all__ = [
    "ERROR_TYPE",
    "ERROR_TYPE_OTHER",
    "HTTP_REQUEST_METHOD",
    "HTTP_RESPONSE_STATUS_CODE",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "URL_FULL",
    "ClientSpan",
    "http_client_span",
]

HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
HTTP_REQUEST_RESEND_COUNT: Final = "http.request.resend_count"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
URL_FULL: Final = "url.full"
ERROR_TYPE: Final = "error.type"
ERROR_TYPE_OTHER: Final = "_OTHER"
"""The conventions' ``error.type`` for a failure whose kind is not known."""

SpanValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class ClientSpan:
    """A finished CLIENT span: times in nanoseconds since the epoch; ``error`` (the status
    description) set when the request failed."""

    name: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, SpanValue] = field(default_factory=dict)
    error: str | None = None


def http_client_span(
    method: str,
    url: str,
    *,
    start_ns: int,
    end_ns: int,
    status: int | None,
    error_type: str | None,
    error: str | None,
    resend_count: int = 0,
    extra: Mapping[str, SpanValue] | None = None,
) -> ClientSpan:
    """The span of one HTTP request to ``url`` (shown redacted), with the HTTP conventions."""
    attributes: dict[str, SpanValue] = {HTTP_REQUEST_METHOD: method, URL_FULL: span_url(url)}
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        parts, port = None, None
    if parts is not None and at_past_host(parts):  # its host may be a piece of a password
        parts, port = None, None
    if parts is not None and parts.hostname:
        attributes[SERVER_ADDRESS] = parts.hostname
    if port is not None:
        attributes[SERVER_PORT] = port
    if status is not None:
        attributes[HTTP_RESPONSE_STATUS_CODE] = status
    if error_type is not None:
        attributes[ERROR_TYPE] = error_type
    if resend_count > 0:
        attributes[HTTP_REQUEST_RESEND_COUNT] = resend_count
    attributes.update(extra or {})
    return ClientSpan(method, start_ns, max(end_ns, start_ns), attributes, error)
