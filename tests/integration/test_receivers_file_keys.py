"""Deliveries waiting for a receiver stay its own across restarts that change how it is
configured: keys of earlier versions, a URL moved into the receivers file, a url_file's path
spelt another way, its secret volume rotated, two url_files linked to one file (in-process
bridge, real receivers)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bridge.receiver_keys import ReceiverKeys
from bridge.sinks.alerts import AlertRecord, Outbox, build_payloads
from bridge.sinks.alerts.records import Delivery
from bridge.sinks.alerts.sources import alert_events
from tests.integration.receivers_file_support import FAST, configured, write
from tests.integration.servers.webhook import WebhookReceiver, webhook_receiver
from tests.sinks.alerts.helpers import alert_bridge, envelope, system_alert
from tests.support import async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["webhook_receiver"]  # the fixture, imported for the tests below


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
