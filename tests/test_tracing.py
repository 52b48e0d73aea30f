"""Client spans of the bridge's own requests: OpenTelemetry's HTTP client conventions."""

from __future__ import annotations

from opentelemetry.semconv.attributes import (
    error_attributes,
    http_attributes,
    server_attributes,
    url_attributes,
)

from bridge import tracing
from bridge.tracing import http_client_span


def test_the_attribute_names_are_the_semantic_conventions_ones() -> None:
    """The names written out in bridge.tracing are the stable constants of
    opentelemetry-semantic-conventions (so none is misspelt)."""
    assert tracing.HTTP_REQUEST_METHOD == http_attributes.HTTP_REQUEST_METHOD
    assert tracing.HTTP_RESPONSE_STATUS_CODE == http_attributes.HTTP_RESPONSE_STATUS_CODE
    assert tracing.HTTP_REQUEST_RESEND_COUNT == http_attributes.HTTP_REQUEST_RESEND_COUNT
    assert tracing.SERVER_ADDRESS == server_attributes.SERVER_ADDRESS
    assert tracing.SERVER_PORT == server_attributes.SERVER_PORT
    assert tracing.URL_FULL == url_attributes.URL_FULL
    assert tracing.ERROR_TYPE == error_attributes.ERROR_TYPE
    assert error_attributes.ErrorTypeValues.OTHER.value == tracing.ERROR_TYPE_OTHER


def test_a_failed_request_span_is_named_after_the_method_with_a_redacted_url() -> None:
    """The span is named POST; url.full hides the path, and the user and password as the
    conventions say (REDACTED:REDACTED@); the port defaults by scheme; error.type and the status
    description are set."""
    span = http_client_span(
        "POST",
        "https://user:pw@hooks.example.com/services/tok3n",
        start_ns=10,
        end_ns=30,
        status=503,
        error_type="503",
        error="HTTP 503",
        resend_count=2,
    )
    assert (span.name, span.start_ns, span.end_ns, span.error) == ("POST", 10, 30, "HTTP 503")
    assert span.attributes == {
        "http.request.method": "POST",
        "url.full": "https://REDACTED:REDACTED@hooks.example.com/…",
        "server.address": "hooks.example.com",
        "server.port": 443,
        "http.response.status_code": 503,
        "error.type": "503",
        "http.request.resend_count": 2,
    }


def test_a_request_to_a_url_with_an_at_past_its_host_names_no_server() -> None:
    """A URL whose password may hold an unencoded ``/`` (an ``@`` past the host): neither
    server.address nor server.port, which may be pieces of it, and url.full shows no host."""
    span = http_client_span(
        "POST",
        "https://u:pa@ss:12/word@hooks.example.com/x",
        start_ns=1,
        end_ns=2,
        status=None,
        error_type="ClientConnectorError",
        error="refused",
    )
    assert span.attributes["url.full"] == "https://REDACTED:REDACTED@…"
    assert not {"server.address", "server.port"} & set(span.attributes)


def test_a_request_without_an_answer_has_no_status_code() -> None:
    """A connection error: no status code, error.type is the error's class name."""
    span = http_client_span(
        "POST",
        "http://127.0.0.1:9/hook",
        start_ns=5,
        end_ns=1,
        status=None,
        error_type="ClientConnectorError",
        error="refused",
    )
    assert "http.response.status_code" not in span.attributes
    assert span.attributes["error.type"] == "ClientConnectorError"
    assert span.end_ns == span.start_ns  # never before its start
