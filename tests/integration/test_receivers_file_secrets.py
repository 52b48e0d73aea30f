"""The files a receivers file names for a URL, credentials or a signing key, read again at
each attempt: a rotated one used without a restart, one unreadable, half written, grown or
holding no URL failing the attempt (its content never shown) until it is put right
(in-process bridge)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.httpclient.client import basic_auth
from bridge.messages import NotificationStatus
from bridge.receivers import file_warnings, read_receivers_file, resolve_receivers
from bridge.redaction import safe_url
from bridge.regular_files import MAX_SECRET_BYTES
from bridge.sinks.alerts import DeliveryState
from bridge.sinks.alerts.delivery import Outcome, WebhookSender
from tests.integration.receivers_file_support import configured, delivery_to, signed_with, write
from tests.integration.servers.webhook import Answer, WebhookReceiver, webhook_receiver
from tests.sinks.alerts.helpers import system_alert
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["webhook_receiver"]  # the fixture, imported for the tests below


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
