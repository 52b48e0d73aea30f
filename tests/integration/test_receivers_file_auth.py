"""What a receivers file sends a real receiver beside the alert: basic auth, http_headers,
global.http_config's credentials, a signature or the warning that there is none; a header the
HTTP client refuses fails the attempt (in-process bridge)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trustme

from bridge.receivers import Receiver, resolve_receivers
from bridge.sinks.alerts.delivery import Outcome, WebhookSender
from tests.integration.receivers_file_support import (
    configured,
    delivered,
    delivery_to,
    served_by,
    write,
)
from tests.integration.servers.webhook import WebhookReceiver, webhook_receiver
from tests.sinks.alerts.helpers import system_alert
from tests.support import ALERTMANAGER_GLOBAL, async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["webhook_receiver"]  # the fixture, imported for the tests below


def resolve(url: str) -> Receiver:
    """The receiver EXESDB_WEBHOOK_URLS makes of ``url``, with the defaults."""
    [receiver], _ = resolve_receivers(
        [url], None, secret=None, timeout=5.0, max_alerts=0, min_severity="warning"
    )
    return receiver


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
