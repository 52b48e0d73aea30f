"""EXESDB_WEBHOOK_CONFIG_FILE against real receivers: private CAs, bearer tokens, basic auth,
send_resolved, secrets rotated in their files while the bridge runs (in-process bridge)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web

from bridge.app import Bridge
from bridge.httpclient.client import basic_auth
from bridge.messages import NodeHealth, NodeLifecycle, NotificationStatus
from bridge.receiver_keys import ReceiverKeys
from bridge.receivers import Receiver, file_warnings, read_receivers_file, resolve_receivers
from bridge.redaction import safe_url
from bridge.regular_files import MAX_SECRET_BYTES
from bridge.sinks.alerts import AlertRecord, AlertSink, DeliveryState, Outbox, build_payloads
from bridge.sinks.alerts.delivery import Outcome, WebhookSender
from bridge.sinks.alerts.records import Delivery
from bridge.sinks.alerts.sources import alert_events
from bridge.sinks.alerts.thread import DbThread
from tests.integration.servers.webhook import (
    HANG,
    Answer,
    Received,
    WebhookReceiver,
    webhook_receiver,
)
from tests.sinks.alerts.helpers import Watcher, alert_bridge, envelope, system_alert
from tests.support import ALERTMANAGER_GLOBAL, async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["webhook_receiver"]  # the fixture, imported for the tests below

FAST: dict[str, Any] = {
    "EXESDB_WEBHOOK_BACKOFF_MS": "50",
    "EXESDB_WEBHOOK_MAX_BACKOFF_MS": "200",
    "EXESDB_WEBHOOK_GROUP_WAIT_MS": "0",
}


def served_by(ca: trustme.CA) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 signed by ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def resolve(url: str) -> Receiver:
    """The receiver EXESDB_WEBHOOK_URLS makes of ``url``, with the defaults."""
    [receiver], _ = resolve_receivers(
        [url], None, secret=None, timeout=5.0, max_alerts=0, min_severity="warning"
    )
    return receiver


def delivery_to(key: str, body: bytes = b"{}") -> Delivery:
    """A pending delivery of one alert, as the outbox hands a worker."""
    return Delivery(
        id="d" * 16,
        url=key,
        body=body,
        alert_ids=("a1",),
        created_at=0.0,
        attempts=0,
        next_attempt_at=0.0,
        state=DeliveryState.PENDING,
        last_status=None,
        last_error=None,
        finished_at=None,
    )


def configured(
    state: Path, config: Path, **env: str
) -> contextlib.AbstractAsyncContextManager[tuple[Bridge, AlertSink, Watcher]]:
    """An in-process bridge on ``state`` with the receivers file ``config`` (and the settings
    ``env``), retrying fast."""
    return alert_bridge(
        state, serve_http=False, EXESDB_WEBHOOK_CONFIG_FILE=str(config), **{**FAST, **env}
    )


async def delivered(
    state: Path,
    config: Path,
    receiver: WebhookReceiver,
    alert_id: str,
    what: str = "an accepted delivery",
    **env: str,
) -> None:
    """Publish one alert through a bridge on the receivers file ``config`` (and the settings
    ``env``) and wait until ``receiver`` accepted a delivery."""
    async with configured(state, config, **env) as (bridge, _, _):
        bridge.bus.publish("disk_full", system_alert(alert_id))
        await async_wait_until(lambda: receiver.accepted(), what=what)


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` and return the path."""
    path.write_text(text)
    return path


def outbox_empty(sink: AlertSink) -> bool:
    """Nothing is queued or pending in ``sink``'s outbox."""
    depth = sink.outbox.queue.depth()
    return depth.queued == 0 and depth.pending == 0


async def resumed(state: Path, receiver: WebhookReceiver, config: Path) -> Delivery:
    """The one delivery a bridge started again on ``state`` with the receivers file ``config``
    sends once ``receiver`` takes it."""
    async with configured(state, config) as (_, sink, _):
        await async_wait_until(lambda: receiver.accepted(), what="the delivery, resumed")
        [delivered] = sink.outbox.queue.deliveries()
    return delivered


async def delivers_old_1_and_2(state: Path, receiver: WebhookReceiver, **env: Any) -> None:
    """A bridge started on ``state`` with ``env`` delivers the stored alerts old-1 and old-2 to
    ``receiver``, under its receiver's own key."""
    async with alert_bridge(state, serve_http=False, **env, **FAST) as (_, sink, _):
        await async_wait_until(
            lambda: receiver.accepted_alert_ids() >= {"old-1", "old-2"}, what="both delivered"
        )
        assert {d.url for d in sink.outbox.queue.deliveries()} == {sink.receivers[0].key}


async def test_https_receiver_with_a_private_ca_and_a_bearer_token_gets_the_alert(
    tmp_path: Path, webhook_receiver
) -> None:
    """tls_config.ca_file and authorization.credentials_file reach an HTTPS receiver that trusts
    only its private CA's certificate and demands a bearer token; the body is signed with the
    receiver's own secret, not EXESDB_WEBHOOK_SECRET."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    receiver: WebhookReceiver = webhook_receiver(
        ssl_context=served_by(ca), authorization="Bearer s3cr3t-t0ken"
    )
    write(tmp_path / "token", "s3cr3t-t0ken\n")
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {receiver.url}
    secret: receiver-own-signing-key
    http_config:
      authorization:
        credentials_file: token
      tls_config:
        ca_file: ca.pem
""",
    )
    await delivered(
        tmp_path / "state", config, receiver, "tls-1", EXESDB_WEBHOOK_SECRET="bridge-wide-key"
    )
    [request] = receiver.requests
    assert request.headers["Authorization"] == "Bearer s3cr3t-t0ken"
    assert request.alert_ids() == ["tls-1"]
    assert signed_with("receiver-own-signing-key", request)


async def test_a_ca_bundle_labelled_in_latin_1_is_not_warned_of_and_is_trusted(
    tmp_path: Path, webhook_receiver
) -> None:
    """A CA bundle whose labels are Latin-1 (no UTF-8) loads as OpenSSL reads it, which skips
    the text between PEM blocks: no start-up warning that it cannot be read, and the HTTPS
    receiver its CA signed for gets the alert."""
    ca = trustme.CA()
    label = "# Soci\u00e9t\u00e9 G\u00e9n\u00e9rale Racine\n".encode("latin-1")
    (tmp_path / "bundle.pem").write_bytes(label + ca.cert_pem.bytes())
    receiver: WebhookReceiver = webhook_receiver(ssl_context=served_by(ca))
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {receiver.url}
    secret: {"k" * 32}
    http_config:
      tls_config:
        ca_file: bundle.pem
""",
    )
    assert file_warnings(read_receivers_file(config)) == []
    await delivered(tmp_path / "state", config, receiver, "latin-1")
    assert receiver.requests[0].alert_ids() == ["latin-1"]


async def test_a_password_file_in_latin_1_is_warned_of_and_fails_each_attempt(
    tmp_path: Path, webhook_receiver
) -> None:
    """A basic_auth password_file that is no UTF-8 text (a password saved in Latin-1) is warned
    of at start as not UTF-8 text, and each attempt fails saying so, nothing sent."""
    receiver: WebhookReceiver = webhook_receiver(authorization=basic_auth("ops", "pass\u00e9"))
    (tmp_path / "password").write_bytes("pass\u00e9\n".encode("latin-1"))
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {receiver.url}
    secret: {"k" * 32}
    http_config:
      basic_auth: {{username: ops, password_file: password}}
""",
    )
    assert file_warnings(read_receivers_file(config)) == [
        f"webhook_configs.0 {safe_url(receiver.url)}: basic_auth.password_file"
        f" {tmp_path / 'password'} cannot be read now (not UTF-8 text); its deliveries fail and"
        " are retried until it can be"
    ]
    async with configured(tmp_path / "state", config) as (bridge, sink, watcher):
        bridge.bus.publish("disk_full", system_alert("latin-1"))
        await async_wait_until(
            lambda: any(s.status == "failed" for s in watcher.of(NotificationStatus)),
            what="a failed attempt reported",
        )
        [delivery] = sink.outbox.queue.deliveries()
    assert (delivery.last_error or "").endswith(
        f"cannot read basic_auth.password_file {tmp_path / 'password'}: not UTF-8 text"
    ), delivery.last_error
    assert receiver.requests == []


async def test_https_receiver_trusted_through_an_inline_ca_gets_the_alert(
    tmp_path: Path, webhook_receiver
) -> None:
    """tls_config.ca given inline (the PEM in the receivers file, as prometheus/common takes it)
    is the CA the bridge trusts for an HTTPS receiver with a private certificate."""
    ca = trustme.CA()
    receiver: WebhookReceiver = webhook_receiver(ssl_context=served_by(ca))
    pem = ca.cert_pem.bytes().decode()
    indented = "".join(f"          {line}\n" for line in pem.splitlines())
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {receiver.url}
    http_config:
      tls_config:
        ca: |
{indented}""",
    )
    await delivered(tmp_path / "state", config, receiver, "inline-ca-1")
    assert receiver.requests[0].alert_ids() == ["inline-ca-1"]


async def test_credentials_with_a_line_break_inside_fail_the_attempt_until_the_file_is_fixed(
    tmp_path: Path, webhook_receiver
) -> None:
    """A credentials_file with a line break in the middle fails each attempt, recorded and
    reported (NotificationStatus failed) without showing the secret, nothing sent; once the
    file is fixed the retry is delivered."""
    receiver: WebhookReceiver = webhook_receiver(authorization="Bearer s3cr3t-t0ken")
    token = write(tmp_path / "token", "s3cr3t-t0ken\nsecond-line\n")
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {receiver.url}
    http_config:
      authorization:
        credentials_file: token
""",
    )
    async with configured(tmp_path / "state", config) as (bridge, sink, watcher):
        bridge.bus.publish("disk_full", system_alert("nl-1"))
        await async_wait_until(
            lambda: any(s.status == "failed" for s in watcher.of(NotificationStatus)),
            what="a failed attempt reported",
        )
        [delivery] = sink.outbox.queue.deliveries()
        assert delivery.state is DeliveryState.PENDING
        assert delivery.attempts >= 1
        assert "Authorization header" in (delivery.last_error or "")
        assert "s3cr3t" not in (delivery.last_error or "")
        assert receiver.requests == []
        write(token, "s3cr3t-t0ken\n")
        await async_wait_until(lambda: receiver.accepted(), what="the retry delivered")


@pytest.mark.parametrize(
    "typed",
    ["127.0.0.1:{port}/hook?t0ken=s3cr3t", "http://hooks.invalid\\services\\s3cr3t"],
    ids=["without-scheme", "backslashed-path"],
)
async def test_a_url_file_not_an_http_url_fails_the_attempt_without_showing_the_url(
    tmp_path: Path, webhook_receiver, caplog: pytest.LogCaptureFixture, typed: str
) -> None:
    """A url_file holding a URL typed without its scheme or with its path in backslashes (a
    token in it) fails each attempt with a reason naming the key, never the URL, in the outbox,
    NotificationStatus and the log; once the file holds the whole URL the retry is
    delivered."""
    receiver: WebhookReceiver = webhook_receiver()
    url_file = write(tmp_path / "hook-url", typed.format(port=receiver.port) + "\n")
    config = write(tmp_path / "receivers.yml", "webhook_configs:\n  - url_file: hook-url\n")
    async with configured(tmp_path / "state", config) as (bridge, sink, watcher):
        bridge.bus.publish("disk_full", system_alert("uf-1"))
        failed = await async_wait_until(
            lambda: [s for s in watcher.of(NotificationStatus) if s.status == "failed"],
            what="a failed attempt reported",
        )
        [delivery] = sink.outbox.queue.deliveries()
        assert "url_file" in (delivery.last_error or "")
        shown = [delivery.last_error or "", failed[0].error_reason or "", caplog.text]
        leaked = f"{receiver.port}/hook"
        assert not [text for text in shown if "s3cr3t" in text or leaked in text]
        write(url_file, receiver.url + "\n")
        await async_wait_until(lambda: receiver.accepted(), what="the retry delivered")


async def test_a_file_receiver_without_a_secret_is_warned_of_at_start_and_sent_unsigned(
    tmp_path: Path, webhook_receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A receivers-file receiver with no secret of its own and no EXESDB_WEBHOOK_SECRET gets
    unsigned deliveries, and the start says so once, naming it; one with a secret is not
    named."""
    unsigned: WebhookReceiver = webhook_receiver()
    signed: WebhookReceiver = webhook_receiver()
    config = write(
        tmp_path / "receivers.yml",
        f"webhook_configs:\n  - url: {unsigned.url}\n  - url: {signed.url}\n    secret: s3cr3t\n",
    )
    caplog.set_level("WARNING", "bridge")
    async with configured(tmp_path / "state", config) as (bridge, _sink, _):
        bridge.bus.publish("disk_full", system_alert("us-1"))
        [request] = await async_wait_until(lambda: unsigned.accepted(), what="the delivery")
    assert "X-ExESDB-Signature" not in request.headers
    # The bridge's start logs the settings' warnings (the alert sink says nothing again).
    warned = [r.getMessage() for r in caplog.records if "unsigned" in r.getMessage()]
    assert len(warned) == 1
    assert f"127.0.0.1:{unsigned.port}/" in warned[0]
    assert f":{signed.port}/" not in warned[0]


async def test_a_header_the_http_client_refuses_fails_the_attempt() -> None:
    """A request aiohttp refuses to send (ValueError: a control character in a header) is a
    failed attempt to retry, its error naming no header value, not an error escaping the
    worker."""

    class BadHeaders(WebhookSender):
        def headers(self, delivery_id: str, body: bytes) -> dict[str, str]:
            return {**super().headers(delivery_id, body), "X-Broken": "one\ntwo"}

    # A listening socket is enough: the request fails after connecting, before any byte.
    with socket.create_server(("127.0.0.1", 0)) as server:
        url = f"http://127.0.0.1:{server.getsockname()[1]}/hook"
        sender = BadHeaders(resolve(url))
        try:
            result = await sender.send(delivery_to(url))
        finally:
            await sender.aclose()
    assert (result.outcome, result.error_type) == (Outcome.RETRY, "ValueError")
    assert "one" not in (result.error or "")


async def test_a_templated_url_in_url_file_fails_the_attempt_instead_of_posting_elsewhere(
    tmp_path: Path, webhook_receiver
) -> None:
    """A url_file holding an Alertmanager template ({{ … }}), which the bridge does not expand,
    fails the attempt naming url_file; nothing is posted to the literal path."""
    receiver: WebhookReceiver = webhook_receiver()
    url_file = write(tmp_path / "hook-url", receiver.url + "/{{ .GroupLabels.alertname }}\n")
    [hook], _ = resolve_receivers(
        [],
        read_receivers_file(
            write(tmp_path / "receivers.yml", "webhook_configs:\n  - url_file: hook-url\n")
        ),
        secret=None,
        timeout=5.0,
        max_alerts=0,
        min_severity="warning",
    )
    sender = WebhookSender(hook)
    try:
        result = await sender.send(delivery_to(hook.key))
    finally:
        await sender.aclose()
    assert (result.outcome, result.error_type) == (Outcome.RETRY, "ClientSetupError")
    assert f"url_file {url_file}: holds a template" in (result.error or "")
    assert receiver.requests == []


async def test_without_the_private_ca_the_https_receiver_is_not_trusted(
    tmp_path: Path, webhook_receiver
) -> None:
    """Without tls_config.ca_file the system's CAs do not trust the private CA: the attempt fails
    with a certificate error and is kept for retrying, nothing is sent."""
    receiver: WebhookReceiver = webhook_receiver(ssl_context=served_by(trustme.CA()))
    config = write(tmp_path / "receivers.yml", f"webhook_configs:\n  - url: {receiver.url}\n")
    async with configured(tmp_path / "state", config) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("tls-2"))
        await async_wait_until(
            lambda: any(d.attempts for d in sink.outbox.queue.deliveries()), what="a failed attempt"
        )
        [delivery] = sink.outbox.queue.deliveries()
    assert delivery.state is DeliveryState.PENDING
    assert "certificate" in (delivery.last_error or "").lower()
    assert receiver.requests == []


async def test_tls_config_server_name_is_the_name_checked_in_the_receivers_certificate(
    tmp_path: Path, webhook_receiver
) -> None:
    """A receiver reached by address whose certificate names only hooks.example.test gets the
    alert when tls_config.server_name gives that name (sent as SNI and checked)."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("hooks.example.test").configure_cert(context)
    receiver: WebhookReceiver = webhook_receiver(ssl_context=context)
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {receiver.url}
    http_config:
      tls_config: {{ca_file: ca.pem, server_name: hooks.example.test}}
""",
    )
    await delivered(tmp_path / "state", config, receiver, "sni-1")
    assert [r.alert_ids() for r in receiver.requests] == [["sni-1"]]


async def test_tls_config_min_version_refuses_a_receiver_speaking_an_older_tls(
    tmp_path: Path, webhook_receiver
) -> None:
    """Of two receivers speaking TLS 1.2 at most, the one whose tls_config says min_version
    TLS13 is never sent the alert (the handshake fails); the one saying TLS12 gets it."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    receivers: list[WebhookReceiver] = []
    for _ in range(2):
        context = served_by(ca)
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        receivers.append(webhook_receiver(ssl_context=context))
    strict, lenient = receivers
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {strict.url}
    http_config:
      tls_config: {{ca_file: ca.pem, min_version: TLS13}}
  - url: {lenient.url}
    http_config:
      tls_config: {{ca_file: ca.pem, min_version: TLS12}}
""",
    )
    async with configured(tmp_path / "state", config) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("tls13-1"))
        await async_wait_until(lambda: lenient.accepted(), what="the TLS 1.2 delivery")
        strict_key = sink.receivers[0].key
        await async_wait_until(
            lambda: any(d.attempts for d in sink.outbox.queue.deliveries() if d.url == strict_key),
            what="a failed attempt to the TLS 1.3 receiver",
        )
        [delivery] = [d for d in sink.outbox.queue.deliveries() if d.url == strict_key]
    assert delivery.state is DeliveryState.PENDING
    assert strict.requests == []


async def test_insecure_skip_verify_reaches_a_receiver_whose_certificate_is_not_trusted(
    tmp_path: Path, webhook_receiver
) -> None:
    """tls_config.insecure_skip_verify: true delivers to an HTTPS receiver whose certificate no
    trusted CA signed."""
    receiver: WebhookReceiver = webhook_receiver(ssl_context=served_by(trustme.CA()))
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {receiver.url}
    http_config:
      tls_config: {{insecure_skip_verify: true}}
""",
    )
    await delivered(tmp_path / "state", config, receiver, "skip-1")
    assert [r.alert_ids() for r in receiver.requests] == [["skip-1"]]


async def test_a_receiver_demanding_basic_auth_gets_the_alert(
    tmp_path: Path, webhook_receiver
) -> None:
    """basic_auth with username and password_file sends the Basic credentials it demands."""
    receiver: WebhookReceiver = webhook_receiver(authorization="Basic YWxlcnRzOnBhc3M=")
    write(tmp_path / "password", "pass")
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {receiver.url}
    http_config:
      basic_auth:
        username: alerts
        password_file: password
""",
    )
    await delivered(tmp_path / "state", config, receiver, "basic-1")
    assert [r.answer.status for r in receiver.requests] == [200]


async def test_a_receivers_own_max_alerts_splits_its_deliveries_alone(
    tmp_path: Path, webhook_receiver
) -> None:
    """A receiver's max_alerts: 2 gets five alerts raised together in deliveries of at most two
    (truncatedAlerts counting the rest of the group), while a receiver without one gets them
    as EXESDB_WEBHOOK_MAX_ALERTS allows, five in one."""
    small: WebhookReceiver = webhook_receiver()
    large: WebhookReceiver = webhook_receiver()
    config = write(
        tmp_path / "receivers.yml",
        f"webhook_configs:\n  - url: {small.url}\n    max_alerts: 2\n  - url: {large.url}\n",
    )
    ids = [f"many-{n}" for n in range(5)]
    # Published together, well within the group wait: one group of five.
    async with configured(
        tmp_path / "state",
        config,
        EXESDB_WEBHOOK_MAX_ALERTS="50",
        EXESDB_WEBHOOK_GROUP_WAIT_MS="200",
    ) as (bridge, _, _):
        for alert_id in ids:
            bridge.bus.publish("disk_full", system_alert(alert_id))
        await async_wait_until(
            lambda: small.accepted_alert_ids() == large.accepted_alert_ids() == set(ids),
            what="every alert delivered to both",
        )
    assert [len(r.alert_ids()) for r in large.requests] == [5]
    assert sorted(len(r.alert_ids()) for r in small.requests) == [1, 2, 2]
    assert sorted(r.json()["truncatedAlerts"] for r in small.requests) == [3, 3, 4]


async def test_send_resolved_false_gets_the_firing_but_not_the_resolved_notification(
    tmp_path: Path, webhook_receiver
) -> None:
    """Of two receivers, the one with send_resolved: false hears of the alert firing only."""
    every: WebhookReceiver = webhook_receiver()
    firing_only: WebhookReceiver = webhook_receiver()
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {every.url}
  - url: {firing_only.url}
    send_resolved: false
""",
    )
    async with configured(tmp_path / "state", config) as (bridge, sink, _):
        bridge.bus.publish("lifecycle", NodeLifecycle(node="n9", event="down", cluster_size=2))
        await async_wait_until(lambda: len(firing_only.accepted()) == 1, what="the firing")
        bridge.bus.publish(
            "lifecycle", NodeLifecycle(node="n9", event="reconnected", cluster_size=3)
        )
        await async_wait_until(lambda: len(every.accepted()) == 2, what="the resolve")
        # Nothing is left waiting for the other receiver: it was judged and left out.
        await async_wait_until(
            lambda: outbox_empty(sink),
            what="an empty outbox",
        )
    assert [r.json()["status"] for r in every.requests] == ["firing", "resolved"]
    assert [r.json()["status"] for r in firing_only.requests] == ["firing"]


def failing_firing_only(
    tmp_path: Path, webhook_receiver: Callable[[], WebhookReceiver]
) -> tuple[WebhookReceiver, Path]:
    """A receiver answering 503, and a receivers file naming it with send_resolved: false."""
    firing_only = webhook_receiver()
    firing_only.default = Answer(503)
    config = write(
        tmp_path / "receivers.yml",
        f"webhook_configs:\n  - url: {firing_only.url}\n    send_resolved: false\n",
    )
    return firing_only, config


async def fire_and_resolve_while_failing(
    bridge: Bridge, sink: AlertSink, receiver: WebhookReceiver
) -> None:
    """Node n9 goes down (an attempt to ``receiver`` fails) and comes back (the alert
    resolved), then ``receiver`` answers 200 again."""
    bridge.bus.publish("lifecycle", NodeLifecycle(node="n9", event="down", cluster_size=2))
    await async_wait_until(lambda: receiver.requests, what="a failed attempt")
    bridge.bus.publish("lifecycle", NodeLifecycle(node="n9", event="reconnected", cluster_size=3))
    await async_wait_until(
        lambda: not sink.outbox.alerts.find(state="firing"), what="the alert resolved"
    )
    receiver.default = Answer(200)


async def test_send_resolved_false_is_not_sent_a_firing_that_resolved_while_it_waited(
    tmp_path: Path, webhook_receiver
) -> None:
    """A receiver with send_resolved: false, failing while an alert fired and resolved, is not
    sent the firing once it answers again: it would never hear of the resolve and keep the
    alert firing (Alertmanager's next flush no longer holds it); the notification is kept in a
    delivery in state stale, counted in exesdb_webhook_stale_total."""
    firing_only, config = failing_firing_only(tmp_path, webhook_receiver)
    async with configured(tmp_path / "state", config) as (bridge, sink, _):
        await fire_and_resolve_while_failing(bridge, sink, firing_only)

        def stale_counted() -> float | None:
            return bridge.registry.get_sample_value("exesdb_webhook_stale_total")

        # Counted once the delivery's stale state is written: the outbox may be seen empty
        # between the two.
        await async_wait_until(
            lambda: outbox_empty(sink) and stale_counted(), what="an empty outbox, stale counted"
        )
        [stale] = sink.outbox.queue.deliveries(state="stale")
        assert stale.last_error is not None
        assert "send_resolved: false" in stale.last_error
        assert stale_counted() == 1
    assert not firing_only.accepted()


class LeftOutMeanwhile(DbThread):
    """The sink's database thread, on which the first ``withhold`` of a delivery finds it left
    out already: another withhold ran just before (as the open-alert index's does when the
    work-queue lease is taken up), and was counted by ``count``."""

    def __init__(self) -> None:
        super().__init__()
        self.count: Callable[[int], None] = lambda count: None
        self.raced = False  # the raced withhold has returned (its caller resumes at once)

    async def call(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn``, after one more withhold of the same the first time it is ``withhold``."""
        if getattr(fn, "__name__", "") != "withhold" or self.raced:
            return await super().call(fn, *args, **kwargs)
        _left, withheld = await super().call(fn, *args, **kwargs)
        self.count(withheld)
        result = await super().call(fn, *args, **kwargs)
        self.raced = True
        return result


async def test_notifications_left_out_meanwhile_are_not_counted_stale_twice(
    tmp_path: Path, webhook_receiver
) -> None:
    """A send_resolved: false receiver's delivery whose resolved alerts were left out meanwhile
    (the delivery no longer pending once the check withholds them) is not counted again in
    exesdb_webhook_stale_total: one notification, counted once."""
    firing_only, config = failing_firing_only(tmp_path, webhook_receiver)
    db = LeftOutMeanwhile()
    bridge_of = alert_bridge(
        tmp_path / "state", serve_http=False, db=db, EXESDB_WEBHOOK_CONFIG_FILE=str(config), **FAST
    )
    async with bridge_of as (bridge, sink, _):
        db.count = sink.metrics.withheld
        await fire_and_resolve_while_failing(bridge, sink, firing_only)
        await async_wait_until(lambda: db.raced, what="the check's withhold")
        assert sink.outbox.queue.count(DeliveryState.STALE.value) == 1
        assert bridge.registry.get_sample_value("exesdb_webhook_stale_total") == 1
    assert not firing_only.accepted()


async def test_a_receiver_told_of_an_alert_hears_its_resolve_after_it_eased_below_its_minimum(
    tmp_path: Path, webhook_receiver
) -> None:
    """A critical-only receiver told of an unhealthy node hears of it easing to degraded
    (warning) and of its resolve: it is never left with the alert firing; a degraded node
    it was never told of stays unheard of."""
    critical: WebhookReceiver = webhook_receiver()
    config = write(
        tmp_path / "receivers.yml",
        f"webhook_configs:\n  - url: {critical.url}\n    min_severity: critical\n",
    )
    async with configured(tmp_path / "state", config) as (bridge, sink, _):
        bridge.bus.publish("health", NodeHealth(node="n1", status="unhealthy"))
        await async_wait_until(lambda: len(critical.accepted()) == 1, what="the firing")
        bridge.bus.publish("health", NodeHealth(node="n1", status="degraded"))
        bridge.bus.publish("health", NodeHealth(node="n2", status="degraded"))
        bridge.bus.publish("health", NodeHealth(node="n1", status="healthy"))
        bridge.bus.publish("health", NodeHealth(node="n2", status="healthy"))
        await async_wait_until(
            lambda: not sink.outbox.alerts.find(state="firing") and outbox_empty(sink),
            what="both resolved and an empty outbox",
        )
    heard = [
        (alert["labels"]["node"], alert["labels"]["severity"], alert["status"])
        for request in critical.accepted()
        for alert in request.json()["alerts"]
    ]
    assert heard[0] == ("n1", "critical", "firing")
    assert heard[-1] == ("n1", "warning", "resolved")
    assert all(node == "n1" for node, _, _ in heard)


async def test_a_receiver_added_while_an_alert_fires_hears_nothing_of_its_resolve(
    tmp_path: Path, webhook_receiver
) -> None:
    """A receiver added (a restart with a new receivers file) while an alert is open was never
    told of it: its resolve goes to the receiver that got the firing, none to the new one, as
    Alertmanager sends nothing to a receiver it never notified."""
    told: WebhookReceiver = webhook_receiver()
    added: WebhookReceiver = webhook_receiver()
    before = write(tmp_path / "before.yml", f"webhook_configs:\n  - url: {told.url}\n")
    after = write(
        tmp_path / "after.yml", f"webhook_configs:\n  - url: {told.url}\n  - url: {added.url}\n"
    )
    async with configured(tmp_path / "state", before) as (bridge, sink, _):
        bridge.bus.publish("lifecycle", NodeLifecycle(node="n9", event="down", cluster_size=2))
        await async_wait_until(lambda: len(told.accepted()) == 1, what="the firing")
        # Recorded as delivered too, else the restart sends it again (at least once).
        await async_wait_until(
            lambda: sink.outbox.queue.depth().pending == 0, what="the firing recorded delivered"
        )
    async with configured(tmp_path / "state", after) as (bridge, sink, _):
        bridge.bus.publish(
            "lifecycle", NodeLifecycle(node="n9", event="reconnected", cluster_size=3)
        )
        await async_wait_until(lambda: len(told.accepted()) == 2, what="the resolve")
        await async_wait_until(
            lambda: outbox_empty(sink),
            what="an empty outbox",
        )
    assert [r.json()["status"] for r in told.requests] == ["firing", "resolved"]
    assert added.requests == []


async def test_a_receivers_own_timeout_gives_up_on_a_hung_attempt(
    tmp_path: Path, webhook_receiver
) -> None:
    """A receiver's timeout (a Go duration) overrides EXESDB_WEBHOOK_TIMEOUT_MS: its hung
    attempt is given up on after 300ms, not the bridge-wide minute, and retried."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(HANG)
    config = write(
        tmp_path / "receivers.yml",
        f"webhook_configs:\n  - url: {receiver.url}\n    timeout: 300ms\n",
    )
    async with alert_bridge(
        tmp_path / "state",
        serve_http=False,
        EXESDB_WEBHOOK_CONFIG_FILE=str(config),
        EXESDB_WEBHOOK_TIMEOUT_MS="60000",
        **FAST,
    ) as (bridge, _, watcher):
        bridge.bus.publish("disk_full", system_alert("slow-1"))
        await async_wait_until(lambda: receiver.accepted(), what="the retry accepted")
        failed = await async_wait_until(
            lambda: [s for s in watcher.of(NotificationStatus) if s.status == "failed"],
            what="the failed attempt reported",
        )
    assert failed[0].error_reason == "timed out after 0.3s; will retry"
    assert len(receiver.requests) == 2


async def test_a_new_token_in_the_credentials_file_is_used_without_a_restart(
    tmp_path: Path, webhook_receiver
) -> None:
    """Rewriting credentials_file while the bridge runs: the next delivery carries the new
    token (the file is read again when it changed)."""
    receiver: WebhookReceiver = webhook_receiver(authorization="Bearer first")
    token = write(tmp_path / "token", "first")
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {receiver.url}
    http_config:
      authorization:
        credentials_file: {token}
""",
    )
    async with configured(tmp_path / "state", config) as (bridge, _, _):
        bridge.bus.publish("disk_full", system_alert("rot-1"))
        await async_wait_until(lambda: len(receiver.accepted()) == 1, what="the first delivery")
        # Rotated as a deployment does: a new file renamed over the old one.
        write(tmp_path / "token.new", "second\n").replace(token)
        receiver.authorization = "Bearer second"
        bridge.bus.publish("disk_full", system_alert("rot-2"))
        await async_wait_until(lambda: len(receiver.accepted()) == 2, what="the second delivery")
    assert [r.headers["Authorization"] for r in receiver.requests] == [
        "Bearer first",
        "Bearer second",
    ]


async def test_global_http_config_takes_a_receiver_giving_none_to_its_https_server(
    tmp_path: Path, webhook_receiver
) -> None:
    """A receiver without http_config reaches an HTTPS receiver that trusts only its private CA
    and demands a bearer token with global.http_config's CA and token file (Alertmanager's whole
    global section pasted), that file rotated while the bridge runs; a receiver giving its own
    http_config (the CA alone) sends no token."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    guarded: WebhookReceiver = webhook_receiver(
        ssl_context=served_by(ca), authorization="Bearer first"
    )
    own: WebhookReceiver = webhook_receiver(ssl_context=served_by(ca))
    token = write(tmp_path / "token", "first\n")
    config = write(
        tmp_path / "receivers.yml",
        ALERTMANAGER_GLOBAL
        + f"""
webhook_configs:
  - url: {guarded.url}
  - url: {own.url}
    http_config:
      tls_config:
        ca_file: ca.pem
""",
    )
    async with configured(tmp_path / "state", config) as (bridge, _, _):
        bridge.bus.publish("disk_full", system_alert("global-1"))
        await async_wait_until(
            lambda: len(guarded.accepted()) == 1 and len(own.accepted()) == 1,
            what="the first delivery to each receiver",
        )
        # Rotated as a deployment does: a new file renamed over the old one.
        write(tmp_path / "token.new", "second\n").replace(token)
        guarded.authorization = "Bearer second"
        bridge.bus.publish("disk_full", system_alert("global-2"))
        await async_wait_until(
            lambda: len(guarded.accepted()) == 2, what="the second delivery, with the new token"
        )
    assert [r.headers["Authorization"] for r in guarded.requests] == [
        "Bearer first",
        "Bearer second",
    ]
    assert [request.alert_ids() for request in guarded.requests] == [["global-1"], ["global-2"]]
    assert own.requests
    assert all("Authorization" not in request.headers for request in own.requests)


def signed_with(key: str, request: Received) -> bool:
    """True when ``request``'s X-ExESDB-Signature is the HMAC of its body under ``key``."""
    fields = dict(part.split("=", 1) for part in request.headers["X-ExESDB-Signature"].split(","))
    mac = hmac.new(key.encode(), f"{fields['t']}.".encode() + request.body, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), fields["v1"])


async def test_a_retry_reads_the_url_password_and_signing_key_files_again(
    tmp_path: Path, webhook_receiver
) -> None:
    """Rewriting url_file, basic_auth.password_file and secret_file while a delivery waits:
    its next attempt goes to the new URL with the new password, signed with the new key."""
    old: WebhookReceiver = webhook_receiver()
    old.default = Answer(503)
    new: WebhookReceiver = webhook_receiver(authorization=basic_auth("alerts", "second"))
    url, password, key = tmp_path / "url", tmp_path / "password", tmp_path / "key"
    write(url, old.url + "\n")
    write(password, "first\n")
    write(key, "key-one\n")
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url_file: {url}
    secret_file: {key}
    http_config:
      basic_auth: {{username: alerts, password_file: {password}}}
""",
    )
    async with configured(tmp_path / "state", config) as (bridge, _, _):
        bridge.bus.publish("disk_full", system_alert("files-1"))
        await async_wait_until(lambda: old.requests, what="the attempt to the old URL")
        # Rotated as a deployment does: new files renamed over the old ones.
        for path, text in ((password, "second"), (key, "key-two"), (url, new.url)):
            write(path.with_suffix(".new"), text + "\n").replace(path)
        await async_wait_until(lambda: new.accepted(), what="the attempt to the new URL")
    first = old.requests[0]
    assert first.headers["Authorization"] == basic_auth("alerts", "first")
    assert signed_with("key-one", first)
    [request] = new.requests
    assert request.alert_ids() == ["files-1"]
    assert signed_with("key-two", request)


async def test_an_emptied_secret_file_fails_the_attempt_instead_of_sending_unsigned(
    tmp_path: Path, webhook_receiver
) -> None:
    """A secret_file found empty (a rotation half written) fails the attempt, naming the file,
    rather than sending the alert unsigned; the retry after it is refilled is signed."""
    receiver: WebhookReceiver = webhook_receiver()
    key = write(tmp_path / "key", "")
    config = write(
        tmp_path / "receivers.yml",
        f"webhook_configs:\n  - url: {receiver.url}\n    secret_file: {key}\n",
    )
    async with configured(tmp_path / "state", config) as (bridge, _, watcher):
        bridge.bus.publish("disk_full", system_alert("empty-key-1"))
        failed = await async_wait_until(
            lambda: [s for s in watcher.of(NotificationStatus) if s.status == "failed"],
            what="the failed attempt reported",
        )
        assert failed[0].error_reason == f"secret_file {key} is empty; will retry"
        write(key.with_suffix(".new"), "key-two\n").replace(key)
        [request] = await async_wait_until(lambda: receiver.accepted(), what="the delivery")
    assert receiver.requests == [request]
    assert signed_with("key-two", request)


@pytest.mark.parametrize("key", ["secret_file", "url_file"])
async def test_a_file_grown_over_its_limit_fails_the_attempt_until_it_is_put_right(
    tmp_path: Path, webhook_receiver, key: str
) -> None:
    """A secret_file or url_file grown over 64 KiB (a log copied over it by mistake) fails the
    attempt, naming the file and its limit, as an unreadable one does, rather than reading it
    whole on the event loop; the retry after it is put right delivers, nothing lost."""
    receiver: WebhookReceiver = webhook_receiver()
    path = write(tmp_path / "file", ("key-one" if key == "secret_file" else receiver.url) + "\n")
    hook = (
        f"url: {receiver.url}\n    secret_file: {path}"
        if key == "secret_file"
        else f"{key}: {path}"
    )
    config = write(tmp_path / "receivers.yml", f"webhook_configs:\n  - {hook}\n")
    async with configured(tmp_path / "state", config) as (bridge, _, watcher):
        whole = path.read_text()
        write(path.with_suffix(".new"), whole + "#" * (MAX_SECRET_BYTES + 1)).replace(path)
        bridge.bus.publish("disk_full", system_alert("grown-1"))
        failed = await async_wait_until(
            lambda: [s for s in watcher.of(NotificationStatus) if s.status == "failed"],
            what="the failed attempt reported",
        )
        assert failed[0].error_reason == (
            f"cannot read {key} {path}: larger than 64 KiB, the most this file may hold: is it"
            " the right file?; will retry"
        )
        write(path.with_suffix(".new"), whole).replace(path)
        [request] = await async_wait_until(lambda: receiver.accepted(), what="the delivery")
    assert request.alert_ids() == ["grown-1"]
    assert receiver.requests == [request]


async def test_deliveries_waiting_under_a_key_of_an_earlier_version_are_delivered(
    tmp_path: Path, webhook_receiver
) -> None:
    """An outbox whose receiver keys were an unkeyed digest (or the raw URL, earlier still) has
    its waiting deliveries and queued alerts adopted by the receiver at start, and sent."""
    receiver: WebhookReceiver = webhook_receiver()
    old_outbox = Outbox.in_dir(tmp_path / "state")
    digest_key, raw_key = ReceiverKeys.throwaway().earlier(receiver.url)[1], receiver.url
    now = time.time()

    def build(records: Sequence[AlertRecord]) -> list[tuple[bytes, list[str]]]:
        return build_payloads(records, max_alerts=10, external_url="http://b")

    old_outbox.queue.queue_for([digest_key])
    old_outbox.alerts.apply([alert_events(envelope(system_alert("old-1")))[0]], now)
    assert old_outbox.queue.group(digest_key, now, 0.0, build) == 1
    old_outbox.queue.queue_for([raw_key])
    old_outbox.alerts.apply([alert_events(envelope(system_alert("old-2")))[0]], now)
    old_outbox.close()
    await delivers_old_1_and_2(tmp_path / "state", receiver, EXESDB_WEBHOOK_URLS=receiver.url)


async def test_pending_deliveries_of_a_url_move_with_it_into_the_file(
    tmp_path: Path, webhook_receiver
) -> None:
    """A delivery waiting for a URL of EXESDB_WEBHOOK_URLS is delivered after the URL moves into
    the receivers file (with a token now): the outbox keys receivers, not the configuration."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.default = receiver.default.__class__(503)  # down for now
    async with alert_bridge(
        tmp_path / "state", serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **FAST
    ) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("moved-1"))
        await async_wait_until(lambda: receiver.requests, what="a failed attempt")
        [waiting] = sink.outbox.queue.deliveries()
        assert waiting.url == sink.receivers[0].key
    receiver.default = receiver.default.__class__(200)
    receiver.authorization = "Bearer moved"
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {receiver.url}
    http_config:
      authorization: {{credentials: moved}}
""",
    )
    delivered = await resumed(tmp_path / "state", receiver, config)
    assert delivered.id == waiting.id
    assert receiver.accepted()[0].alert_ids() == ["moved-1"]


class ForwardProxy:
    """A plain-HTTP forward proxy on 127.0.0.1: takes absolute-form requests, forwards them,
    and records the target URL and Proxy-Authorization of each."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> ForwardProxy:
        async def forward(request: web.Request) -> web.Response:
            self.seen.append((str(request.url), request.headers.get("Proxy-Authorization")))
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
            async with (
                aiohttp.ClientSession() as session,
                session.request(
                    request.method, request.url, data=await request.read(), headers=headers
                ) as answer,
            ):
                return web.Response(status=answer.status, body=await answer.read())

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]
        return self

    async def aclose(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


HOP_BY_HOP = {"proxy-authorization", "proxy-connection", "connection", "host", "content-length"}


async def test_a_receiver_behind_proxy_url_gets_the_alert_through_the_proxy(
    tmp_path: Path, webhook_receiver
) -> None:
    """proxy_url sends the request through the proxy, its credentials as Proxy-Authorization
    (to the proxy only) and the receiver's own authorization to the receiver."""
    receiver: WebhookReceiver = webhook_receiver(authorization="Bearer through")
    proxy = await ForwardProxy().start()
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {receiver.url}
    http_config:
      authorization: {{credentials: through}}
      proxy_url: http://proxy-user:proxy-pass@127.0.0.1:{proxy.port}
""",
    )
    try:
        await delivered(
            tmp_path / "state", config, receiver, "proxied-1", what="a delivery via the proxy"
        )
    finally:
        await proxy.aclose()
    assert proxy.seen == [(receiver.url, basic_auth("proxy-user", "proxy-pass"))]
    [request] = receiver.requests
    assert "Proxy-Authorization" not in request.headers
    assert request.alert_ids() == ["proxied-1"]


async def test_with_no_proxy_a_loopback_receiver_is_reached_without_the_proxy(
    tmp_path: Path, webhook_receiver
) -> None:
    """Once no_proxy is set, a receiver on loopback is asked directly, as Go's httpproxy (and so
    Alertmanager) does: the alert arrives and the proxy sees nothing."""
    receiver: WebhookReceiver = webhook_receiver()
    proxy = await ForwardProxy().start()
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {receiver.url}
    http_config:
      proxy_url: http://127.0.0.1:{proxy.port}
      no_proxy: other.example
""",
    )
    try:
        await delivered(tmp_path / "state", config, receiver, "direct-1", what="a direct delivery")
    finally:
        await proxy.aclose()
    assert proxy.seen == []
    assert receiver.requests[0].alert_ids() == ["direct-1"]


async def test_http_headers_reach_the_receiver_and_a_rotated_header_file_is_used(
    tmp_path: Path, webhook_receiver
) -> None:
    """http_headers (as Alertmanager's http_config has them) are sent with each delivery, a
    header read from a file is read again after it changes, and the signature stays on top."""
    receiver: WebhookReceiver = webhook_receiver()
    write(tmp_path / "api-key", "key-1\n")
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {receiver.url}
    secret: receiver-signing-key
    http_config:
      http_headers:
        X-Api-Key:
          files: [api-key]
        X-Team:
          values: [ops]
""",
    )
    async with configured(tmp_path / "state", config) as (bridge, _, _):
        bridge.bus.publish("disk_full", system_alert("headers-1"))
        await async_wait_until(lambda: len(receiver.accepted()) == 1, what="the first delivery")
        write(tmp_path / "api-key", "key-2\n")
        bridge.bus.publish("disk_full", system_alert("headers-2"))
        await async_wait_until(lambda: len(receiver.accepted()) == 2, what="the second delivery")
    first, second = receiver.accepted()
    assert (first.headers["X-Api-Key"], second.headers["X-Api-Key"]) == ("key-1", "key-2")
    assert first.headers["X-Team"] == "ops"
    assert "X-ExESDB-Signature" in first.headers


@pytest.mark.parametrize("given", ["cert_file and key_file", "cert and key inline"])
async def test_a_receiver_demanding_a_client_certificate_gets_the_one_tls_config_gives(
    tmp_path: Path, webhook_receiver, given: str
) -> None:
    """tls_config.cert_file and key_file, or cert and key given inline (PEM in the receivers
    file), are the client certificate the bridge presents to a receiver that requires one from
    its CA."""
    server_ca, client_ca = trustme.CA(), trustme.CA()
    context = served_by(server_ca)
    context.verify_mode = ssl.CERT_REQUIRED
    client_ca.configure_trust(context)
    receiver: WebhookReceiver = webhook_receiver(ssl_context=context)
    server_ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    leaf = client_ca.issue_cert("bridge@example.test")

    def block(pem: bytes) -> str:
        return "".join(f"          {line}\n" for line in pem.decode().splitlines())

    if given == "cert_file and key_file":
        leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
        leaf.private_key_pem.write_to_path(str(tmp_path / "client.key"))
        client = "        cert_file: client.pem\n        key_file: client.key\n"
    else:
        client = (
            f"        cert: |\n{block(leaf.cert_chain_pems[0].bytes())}"
            f"        key: |\n{block(leaf.private_key_pem.bytes())}"
        )
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {receiver.url}
    http_config:
      tls_config:
        ca_file: ca.pem
{client}""",
    )
    await delivered(tmp_path / "state", config, receiver, "mtls-1")
    assert receiver.requests[0].alert_ids() == ["mtls-1"]


class ConnectProxy:
    """A CONNECT proxy on 127.0.0.1: records the target and headers of each CONNECT, then
    pipes bytes both ways (an https:// request's TLS runs end to end through it)."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, dict[str, str]]] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> ConnectProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, target, _ = head[0].split(" ", 2)
        headers = dict(line.split(": ", 1) for line in head[1:] if line)
        self.connects.append((target, headers))
        if method != "CONNECT":
            writer.close()
            return
        host, _, port = target.rpartition(":")
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    async def aclose(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_an_https_receiver_behind_a_proxy_gets_the_alert_with_proxy_connect_header(
    tmp_path: Path, webhook_receiver
) -> None:
    """An https:// receiver behind proxy_url is reached through a CONNECT tunnel whose request
    carries proxy_connect_header and the proxy URL's credentials; the receiver's own
    authorization goes inside the tunnel only."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    receiver: WebhookReceiver = webhook_receiver(
        ssl_context=served_by(ca), authorization="Bearer inside"
    )
    proxy = await ConnectProxy().start()
    config = write(
        tmp_path / "receivers.yml",
        f"""
webhook_configs:
  - url: {receiver.url}
    http_config:
      authorization: {{credentials: inside}}
      tls_config: {{ca_file: ca.pem}}
      proxy_url: http://proxy-user:proxy-pass@127.0.0.1:{proxy.port}
      proxy_connect_header:
        X-Proxy-Tenant: [tenant-7]
""",
    )
    try:
        await delivered(
            tmp_path / "state", config, receiver, "tunnel-1", what="a delivery via CONNECT"
        )
    finally:
        await proxy.aclose()
    [(target, headers)] = proxy.connects
    assert target == receiver.url.split("/")[2]
    assert headers["X-Proxy-Tenant"] == "tenant-7"
    assert headers["Proxy-Authorization"] == basic_auth("proxy-user", "proxy-pass")
    assert "Authorization" not in headers
    assert receiver.requests[0].headers["Authorization"] == "Bearer inside"


async def test_a_pending_delivery_of_a_url_file_survives_a_new_spelling_of_its_path(
    tmp_path: Path, webhook_receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery waiting for a url_file receiver is delivered after a restart that spells the
    file's path another way (relative, then absolute): receivers are keyed by the file itself."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.default = receiver.default.__class__(503)  # down for now
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "hook-url", receiver.url + "\n")
    write(tmp_path / "receivers.yml", "webhook_configs:\n  - url_file: hook-url\n")
    async with alert_bridge(
        tmp_path / "state", serve_http=False, EXESDB_WEBHOOK_CONFIG_FILE="receivers.yml", **FAST
    ) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("spelled-1"))
        await async_wait_until(lambda: receiver.requests, what="a failed attempt")
        [waiting] = sink.outbox.queue.deliveries()
    receiver.default = receiver.default.__class__(200)
    config = write(
        tmp_path / "receivers.yml", f"webhook_configs:\n  - url_file: {tmp_path / 'hook-url'}\n"
    )
    delivered = await resumed(tmp_path / "state", receiver, config)
    assert delivered.id == waiting.id
    assert receiver.accepted()[0].alert_ids() == ["spelled-1"]


async def test_deliveries_an_earlier_version_keyed_by_a_url_file_path_as_spelled_are_delivered(
    tmp_path: Path, webhook_receiver
) -> None:
    """Deliveries and queued alerts stored under a url_file receiver's path as an earlier
    version spelled it (here with a `..` in it) are adopted at start and sent."""
    receiver: WebhookReceiver = webhook_receiver()
    (tmp_path / "sub").mkdir()
    write(tmp_path / "hook-url", receiver.url + "\n")
    old_outbox = Outbox.in_dir(tmp_path / "state")
    spelled = f"url_file:{tmp_path}/sub/../hook-url"
    now = time.time()

    def build(records: Sequence[AlertRecord]) -> list[tuple[bytes, list[str]]]:
        return build_payloads(records, max_alerts=10, external_url="http://b")

    old_outbox.queue.queue_for([spelled])
    old_outbox.alerts.apply([alert_events(envelope(system_alert("old-1")))[0]], now)
    assert old_outbox.queue.group(spelled, now, 0.0, build) == 1
    old_outbox.alerts.apply([alert_events(envelope(system_alert("old-2")))[0]], now)
    old_outbox.close()
    config = write(tmp_path / "receivers.yml", "webhook_configs:\n  - url_file: hook-url\n")
    await delivers_old_1_and_2(tmp_path / "state", receiver, EXESDB_WEBHOOK_CONFIG_FILE=str(config))


async def test_a_pending_delivery_of_a_url_file_survives_its_secret_volume_rotating(
    tmp_path: Path, webhook_receiver
) -> None:
    """A delivery waiting for a url_file receiver is delivered after a restart across a rotation
    as Kubernetes makes it (the file a link into a folder swapped for a new one): the key is
    the path as configured, not where its links led."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.default = receiver.default.__class__(503)  # down for now
    volume = tmp_path / "volume"
    (volume / "..2026_12_01").mkdir(parents=True)
    write(volume / "..2026_12_01" / "url", receiver.url + "\n")
    (volume / "..data").symlink_to("..2026_12_01")
    (volume / "url").symlink_to("..data/url")
    config = write(
        tmp_path / "receivers.yml", f"webhook_configs:\n  - url_file: {volume / 'url'}\n"
    )
    async with configured(tmp_path / "state", config) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("rotated-1"))
        await async_wait_until(lambda: receiver.requests, what="a failed attempt")
        [waiting] = sink.outbox.queue.deliveries()
    # The kubelet's rotation: a new folder, the ..data link swapped to it, the old folder gone.
    (volume / "..2026_12_02").mkdir()
    write(volume / "..2026_12_02" / "url", receiver.url + "\n")
    (volume / "..data.tmp").symlink_to("..2026_12_02")
    (volume / "..data.tmp").replace(volume / "..data")
    (volume / "..2026_12_01" / "url").unlink()
    (volume / "..2026_12_01").rmdir()
    receiver.default = receiver.default.__class__(200)
    delivered = await resumed(tmp_path / "state", receiver, config)
    assert delivered.id == waiting.id
    assert receiver.accepted()[0].alert_ids() == ["rotated-1"]


async def test_two_url_file_receivers_linked_to_one_file_keep_their_own_deliveries(
    tmp_path: Path, webhook_receiver
) -> None:
    """Two receivers whose url_files are links to one file stay two receivers across a restart:
    neither takes the other's deliveries for an earlier spelling of its own path."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.default = receiver.default.__class__(503)  # down: the deliveries wait
    write(tmp_path / "hook-url", receiver.url + "\n")
    for name in ("first", "second"):
        (tmp_path / name).symlink_to(tmp_path / "hook-url")
    config = write(
        tmp_path / "receivers.yml",
        f"webhook_configs:\n  - url_file: {tmp_path / 'first'}\n"
        f"  - url_file: {tmp_path / 'second'}\n",
    )
    env = {"EXESDB_WEBHOOK_CONFIG_FILE": str(config), **FAST}
    async with alert_bridge(tmp_path / "state", serve_http=False, **env) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("linked-1"))
        await async_wait_until(
            lambda: len(sink.outbox.queue.deliveries()) == 2, what="two deliveries"
        )
        keys = {receiver.key for receiver in sink.receivers}
    async with alert_bridge(tmp_path / "state", serve_http=False, **env) as (_, sink, _):
        assert {d.url for d in sink.outbox.queue.deliveries()} == keys
