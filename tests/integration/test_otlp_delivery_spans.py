"""The alert sink's deliveries as spans on real OTLP receivers: each webhook attempt a
CONSUMER span, each webhook request and Alertmanager post a CLIENT span with the HTTP client
conventions, no secret of a URL or an answer's body in any."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from bridge.app import Bridge
from bridge.config import load_settings
from bridge.messages import SystemAlert
from bridge.sinks.alerts import alert_sink
from bridge.sinks.otlp import otlp_component
from tests.integration.otlp_support import (
    SPAN_KIND_CLIENT,
    SPAN_KIND_CONSUMER,
    STATUS_ERROR,
    export_to,
    receiver,
)
from tests.integration.servers.webhook import Answer, webhook_receiver
from tests.support import async_wait_until, free_port

pytestmark = pytest.mark.integration

__all__ = ["receiver", "webhook_receiver"]  # the fixtures, imported for the tests below


@asynccontextmanager
async def _webhook_bridge(
    receiver: Any,
    monkeypatch: pytest.MonkeyPatch,
    state_dir: Path,
    url: str,
    backoff_ms: int,
    **options: Any,
) -> AsyncIterator[Bridge]:
    """A started bridge (``options`` for Bridge) exporting to ``receiver``, whose alert sink
    sends each alert to the webhook ``url`` at once and retries after ``backoff_ms``; closed
    after."""
    export_to(receiver, monkeypatch)
    monkeypatch.setenv("EXESDB_WEBHOOK_URLS", url)
    monkeypatch.setenv("EXESDB_WEBHOOK_GROUP_WAIT_MS", "0")
    monkeypatch.setenv("EXESDB_WEBHOOK_BACKOFF_MS", str(backoff_ms))
    monkeypatch.setenv("EXESDB_STATE_DIR", str(state_dir))
    bridge = Bridge(load_settings(), registry=CollectorRegistry(), **options)
    await bridge.start(serve_http=False)
    try:
        yield bridge
    finally:
        await bridge.aclose()


def _node_down(alert_id: str) -> SystemAlert:
    """A critical SystemAlert, for the topic node_failure (its alertname)."""
    return SystemAlert(
        alert_id=alert_id,
        severity="critical",
        category="system",
        title="node down",
        description="d",
        source="s",
        node="n",
    )


async def test_alert_sink_webhook_attempts_become_consumer_spans(
    receiver: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """Each webhook attempt the alert sink reports on the bus arrives as a 'webhook delivery'
    CONSUMER span, with the HTTP attributes it can know (POST, the receiver's origin,
    error.type)."""
    port = free_port()
    async with _webhook_bridge(
        receiver, monkeypatch, tmp_path, f"http://127.0.0.1:{port}/hooks/secret-token", 100
    ) as bridge:
        bridge.bus.publish("node_failure", _node_down("alert-1"))

        def attempts() -> list[Any]:
            return [
                span
                for span in receiver.spans
                if span.name == "webhook delivery"
                and span.attributes["exesdb.alert_id"] == "alert-1"
            ]

        spans = await async_wait_until(lambda: attempts(), 20, "a webhook delivery span")
        span = spans[0]
        assert span.kind == SPAN_KIND_CONSUMER
        assert span.status_code == STATUS_ERROR
        assert span.attributes["exesdb.status"] == "failed"
        assert span.attributes["exesdb.delivery_method"] == "webhook"
        assert span.attributes["exesdb.recipient"].startswith("http://127.0.0.1:")
        assert span.attributes["http.request.method"] == "POST"
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["server.port"] == port
        assert span.attributes["url.full"] == f"http://127.0.0.1:{port}/…"
        assert span.attributes["error.type"] == "_OTHER"
        assert "secret-token" not in repr(span.attributes)


async def test_webhook_requests_are_http_client_spans_with_the_http_conventions(
    receiver: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, webhook_receiver
) -> None:
    """Each webhook request is a POST CLIENT span with its real duration, the HTTP client
    conventions (method, server address and port, redacted url.full, status code, error.type)
    and the delivery's id; a 503 is an error, the retried 200 is not."""
    hook = webhook_receiver()
    hook.script(503)
    url = hook.url.replace("http://", "http://bridge:secret-password@") + "?token=secret-token"
    # Only the two sinks: no collector raises alerts of its own.
    async with _webhook_bridge(
        receiver, monkeypatch, tmp_path, url, 50, components=[otlp_component, alert_sink]
    ) as bridge:
        bridge.bus.publish("node_failure", _node_down("alert-2"))

        def requests() -> list[Any]:
            return [span for span in receiver.spans if span.name == "POST"]

        failed, delivered = await async_wait_until(
            lambda: len(requests()) >= 2 and requests(), 20, "two webhook request spans"
        )
        await async_wait_until(
            lambda: sum(span.name == "webhook delivery" for span in receiver.spans) >= 2,
            20,
            "the spans of the NotificationStatus messages of both attempts",
        )
    for span in (failed, delivered):
        assert span.kind == SPAN_KIND_CLIENT
        assert span.end_ns > span.start_ns
        assert span.attributes["http.request.method"] == "POST"
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["server.port"] == hook.port
        # The conventions' form: url.full holds neither the user nor the password.
        assert span.attributes["url.full"] == f"http://REDACTED:REDACTED@127.0.0.1:{hook.port}/…"
        assert "secret" not in repr(span.attributes)
    assert failed.attributes["http.response.status_code"] == 503
    assert failed.attributes["error.type"] == "503"
    assert failed.status_code == STATUS_ERROR
    assert delivered.attributes["http.response.status_code"] == 200
    assert "error.type" not in delivered.attributes
    assert delivered.attributes["http.request.resend_count"] == 1
    assert delivered.attributes["exesdb.delivery_id"] == failed.attributes["exesdb.delivery_id"]
    # One CLIENT span per request: the 'webhook delivery' spans of the NotificationStatus
    # messages that tell of them are CONSUMER spans, so span metrics and service graphs built
    # from CLIENT spans count each request once.
    clients = [span for span in receiver.spans if span.kind == SPAN_KIND_CLIENT]
    assert sorted(span.name for span in clients) == ["POST", "POST"]


@asynccontextmanager
async def _posting_to(
    alertmanager: Any, receiver: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> AsyncIterator[Bridge]:
    """A started bridge exporting to ``receiver`` whose alert sink posts to ``alertmanager``."""
    export_to(receiver, monkeypatch)
    monkeypatch.setenv("EXESDB_ALERTMANAGER_URL", f"http://127.0.0.1:{alertmanager.port}")
    monkeypatch.setenv("EXESDB_STATE_DIR", str(tmp_path))
    bridge = Bridge(
        load_settings(), registry=CollectorRegistry(), components=[otlp_component, alert_sink]
    )
    await bridge.start(serve_http=False)
    try:
        yield bridge
    finally:
        await bridge.aclose()


async def test_an_alertmanager_post_span_never_carries_the_answers_body(
    receiver: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, webhook_receiver
) -> None:
    """A 503 from Alertmanager whose body holds a token and a URL with credentials is an ERROR
    span described as a webhook attempt's is, ``HTTP 503``: the body goes to no OTLP receiver."""
    alertmanager = webhook_receiver(path="/api/v2/alerts")
    alertmanager.script(
        Answer(503, text="down: token=s3cret, see http://admin:hunter2@internal.example/x")
    )
    async with _posting_to(alertmanager, receiver, monkeypatch, tmp_path) as bridge:
        bridge.bus.publish("node_failure", _node_down("alert-4"))
        failed = await async_wait_until(
            lambda: next((s for s in receiver.spans if s.kind == SPAN_KIND_CLIENT), None),
            30,
            "the span of the failed Alertmanager post",
        )
    assert failed.status_code == STATUS_ERROR
    assert failed.status_message == "HTTP 503"
    for secret in ("s3cret", "hunter2", "admin"):
        assert secret not in repr(failed)


async def test_alertmanager_posts_are_http_client_spans_with_the_http_conventions(
    receiver: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, webhook_receiver
) -> None:
    """Each post to Alertmanager is a POST CLIENT span with the same HTTP client conventions as
    a webhook request: a 503 is an error with error.type 503, the retried 200 is not."""
    alertmanager = webhook_receiver(path="/api/v2/alerts")
    alertmanager.script(503)
    async with _posting_to(alertmanager, receiver, monkeypatch, tmp_path) as bridge:
        bridge.bus.publish("node_failure", _node_down("alert-3"))

        def posts() -> list[Any]:
            return [span for span in receiver.spans if span.kind == SPAN_KIND_CLIENT]

        # The retry comes after the poster's first pause, 5 s.
        failed, posted = await async_wait_until(
            lambda: len(posts()) >= 2 and posts()[:2], 30, "two Alertmanager post spans"
        )
    for span in (failed, posted):
        assert span.name == "POST"
        assert span.end_ns > span.start_ns
        assert span.attributes["http.request.method"] == "POST"
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["server.port"] == alertmanager.port
        assert span.attributes["url.full"] == f"http://127.0.0.1:{alertmanager.port}/…"
        assert span.attributes["exesdb.alerts"] == 1
    assert failed.attributes["http.response.status_code"] == 503
    assert failed.attributes["error.type"] == "503"
    assert failed.status_code == STATUS_ERROR
    assert posted.attributes["http.response.status_code"] == 200
    assert "error.type" not in posted.attributes
    assert posted.status_code != STATUS_ERROR
