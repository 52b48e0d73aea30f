"""A receivers file's tls_config against real HTTPS receivers: private CAs (in a file, a
bundle or inline), the name checked, the lowest version, no check at all, a client certificate
(in-process bridge)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from bridge.receivers import file_warnings, read_receivers_file
from bridge.sinks.alerts import DeliveryState
from tests.integration.receivers_file_support import (
    configured,
    delivered,
    served_by,
    signed_with,
    write,
)
from tests.integration.servers.webhook import WebhookReceiver, webhook_receiver
from tests.sinks.alerts.helpers import system_alert
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["webhook_receiver"]  # the fixture, imported for the tests below


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
