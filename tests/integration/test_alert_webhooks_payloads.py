"""What a real webhook receiver gets (in-process bridge): signed, grouped payloads, in order.

Signatures that verify with the recipe of docs/alerts.md, alerts grouped and split per window,
their source and metadata shown and redacted, a resolve never before its firing, escalations.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.messages import NodeLifecycle
from bridge.sinks.alerts.sources import MAX_DETAIL_VALUE
from tests.integration.servers.webhook import HANG, WebhookReceiver, webhook_receiver
from tests.integration.webhooks_support import FAST, SECRET
from tests.sinks.alerts.helpers import T0, alert_bridge, system_alert
from tests.support import ROOT, ManualClock, async_wait_until

pytestmark = pytest.mark.integration

__all__ = ["webhook_receiver"]  # the fixture, imported for the tests below


def readme_verify() -> Any:
    """The signature recipe of docs/alerts.md, executed as documented."""
    text = (ROOT / "docs" / "alerts.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None, "docs/alerts.md has no Python recipe"
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "docs/alerts.md", "exec"), namespace)
    return namespace["verify"]


async def test_signature_verifies_with_the_readme_recipe(tmp_path: Path, webhook_receiver) -> None:
    """X-ExESDB-Signature verifies with the recipe of docs/alerts.md; headers are complete."""
    verify = readme_verify()
    receiver: WebhookReceiver = webhook_receiver()
    async with alert_bridge(
        tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **FAST
    ) as (bridge, _sink, _watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        [request] = await async_wait_until(lambda: receiver.accepted(), what="a delivery")
    header = request.headers["X-ExESDB-Signature"]
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert verify(SECRET, header, request.body)
    assert not verify(SECRET, header, request.body + b" ")
    assert not verify("another-secret", header, request.body)
    assert request.headers["Content-Type"] == "application/json"
    assert re.fullmatch(r"exesdb-bridge/\S+", request.headers["User-Agent"])
    assert request.json()["version"] == "4"


@pytest.mark.parametrize("header", ["t=²,v1=00", "t=,v1=00", "v1=00", "t=12a,v1=00", ""])
def test_the_readme_recipe_refuses_a_malformed_header_without_raising(header: str) -> None:
    """The receiver's check of docs/alerts.md answers False to a header whose t is missing or
    no ASCII number (a superscript two), rather than raising into the receiver."""
    assert readme_verify()(SECRET, header, b"{}") is False


async def test_deliveries_go_unsigned_without_a_secret(tmp_path: Path, webhook_receiver) -> None:
    """With EXESDB_WEBHOOK_SECRET unset there is no signature header."""
    receiver: WebhookReceiver = webhook_receiver()
    env: dict[str, Any] = {**FAST, "EXESDB_WEBHOOK_URLS": receiver.url}
    del env["EXESDB_WEBHOOK_SECRET"]
    async with alert_bridge(tmp_path, serve_http=False, **env) as (bridge, _sink, _watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        [request] = await async_wait_until(lambda: receiver.accepted(), what="a delivery")
    assert "X-ExESDB-Signature" not in request.headers
    assert request.delivery_id


async def test_a_url_listing_urls_in_its_query_is_one_receiver(
    tmp_path: Path, webhook_receiver
) -> None:
    """A webhook URL whose query lists URLs (?to=https://b|https://c, as a relay takes them) is
    one receiver, posted to at its path with that query whole."""
    receiver: WebhookReceiver = webhook_receiver()
    url = f"{receiver.url}?to=https://b.example/x|https://c.example/y"
    async with alert_bridge(tmp_path, serve_http=False, **FAST, EXESDB_WEBHOOK_URLS=url) as (
        bridge,
        _sink,
        _watcher,
    ):
        bridge.bus.publish("disk_full", system_alert("a1"))
        [request] = await async_wait_until(lambda: receiver.accepted(), what="a delivery")
    assert request.path == "/hook"
    assert request.query == {"to": "https://b.example/x|https://c.example/y"}


async def test_alerts_in_one_window_are_grouped_and_split(tmp_path: Path, webhook_receiver) -> None:
    """Seven alerts in one window arrive as payloads of 3, 3 and 1 with truncatedAlerts."""
    receiver: WebhookReceiver = webhook_receiver()
    env: dict[str, Any] = {
        **FAST,
        "EXESDB_WEBHOOK_GROUP_WAIT_MS": "300",
        "EXESDB_WEBHOOK_MAX_ALERTS": "3",
    }
    async with alert_bridge(
        tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **env
    ) as (bridge, _sink, _watcher):
        for number in range(7):
            bridge.bus.publish("disk_full", system_alert(f"a{number}", node=f"n{number}"))
        await async_wait_until(lambda: len(receiver.accepted()) == 3, what="three payloads")
    bodies = [r.json() for r in receiver.requests]
    assert [len(b["alerts"]) for b in bodies] == [3, 3, 1]
    assert [b["truncatedAlerts"] for b in bodies] == [4, 4, 6]
    assert receiver.accepted_alert_ids() == {f"a{n}" for n in range(7)}


async def test_a_receiver_is_told_which_component_raised_an_alert_and_its_metadata(
    tmp_path: Path, webhook_receiver
) -> None:
    """A SystemAlert's source reaches a real receiver as the ``source`` label (and in
    commonLabels), its metadata as ``metadata_*`` annotations, a secret among them redacted."""
    receiver: WebhookReceiver = webhook_receiver()
    metadata = {"stream": "orders", "lag": 12, "password": "hunter2"}
    async with alert_bridge(
        tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **FAST
    ) as (bridge, _sink, _watcher):
        bridge.bus.publish(
            "backup_failed", system_alert("b1", source="backup-job", metadata=metadata)
        )
        await async_wait_until(lambda: len(receiver.accepted()) == 1, what="the alert delivered")
    body = receiver.requests[0].json()
    [alert] = body["alerts"]
    assert alert["labels"]["source"] == "backup-job"
    assert body["commonLabels"]["source"] == "backup-job"
    assert alert["annotations"] == {
        "summary": "alert b1",
        "title": "alert b1",
        "description": "something broke",
        "metadata_lag": "12",
        "metadata_password": "<redacted>",
        "metadata_stream": "orders",
    }
    assert b"hunter2" not in receiver.requests[0].body


async def test_a_runbook_link_on_an_allowed_origin_reaches_a_receiver_whole(
    tmp_path: Path, webhook_receiver
) -> None:
    """With EXESDB_ALERT_LINK_ORIGINS naming the wiki, a SystemAlert's runbook link reaches a
    real receiver whole (and is stored so for Alertmanager and the alert's page), while a link
    of another origin and one with a password on the wiki are still cut to their origin."""
    receiver: WebhookReceiver = webhook_receiver()
    metadata = {
        "runbook": "https://wiki.example/runbooks/disk-full#free-space",
        "hook": "https://hooks.example/services/T0/B0/s3cr3t",
        "mirror": "https://ops:hunter2@wiki.example/runbooks/disk-full",
    }
    async with alert_bridge(
        tmp_path,
        serve_http=False,
        EXESDB_WEBHOOK_URLS=receiver.url,
        EXESDB_ALERT_LINK_ORIGINS="https://wiki.example,https://runbooks.example:8443",
        **FAST,
    ) as (bridge, sink, _watcher):
        bridge.bus.publish("disk_full", system_alert("d1", source="disk-watch", metadata=metadata))
        await async_wait_until(lambda: len(receiver.accepted()) == 1, what="the alert delivered")
        [stored] = sink.outbox.alerts.find(alert_id="d1", limit=1)
    [alert] = receiver.requests[0].json()["alerts"]
    expected = {
        "metadata_hook": "https://hooks.example/…",
        "metadata_mirror": "https://ops:<redacted>@wiki.example/…",
        "metadata_runbook": "https://wiki.example/runbooks/disk-full#free-space",
    }
    assert {k: v for k, v in alert["annotations"].items() if k.startswith("metadata_")} == expected
    assert dict(stored.details) == expected
    assert b"s3cr3t" not in receiver.requests[0].body
    assert b"hunter2" not in receiver.requests[0].body


async def test_long_metadata_values_without_spaces_are_shown_cut_without_stopping_the_bridge(
    tmp_path: Path, webhook_receiver
) -> None:
    """Metadata values of 16 KiB without a space (a blob, a run of ``a:a:``) reach a real
    receiver cut and redacted within two seconds of the event loop's time: showing them took
    seconds of it each (the URL redaction scanned ahead from every position), the whole bridge
    stopped."""
    receiver: WebhookReceiver = webhook_receiver()
    metadata = {
        "blob": "x" * 16_384,
        "colons": "a:" * 8_192,
        "dots": "a." * 8_192,
        "target": "alice:hunter2@db/" + "a:" * 8_192,
    }
    async with alert_bridge(
        tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **FAST
    ) as (bridge, _sink, _watcher):
        # The CPU time of the event loop's thread (this one): a loaded host's waits add none.
        began = time.thread_time()
        bridge.bus.publish("dump", system_alert("big", source="dumper", metadata=metadata))
        await async_wait_until(lambda: len(receiver.accepted()) == 1, what="the alert delivered")
        took = time.thread_time() - began
    [alert] = receiver.requests[0].json()["alerts"]
    annotations = alert["annotations"]
    assert took < 2, f"the alert took {took:.1f} s of the event loop to reach the receiver"
    assert annotations["metadata_blob"] == "x" * (MAX_DETAIL_VALUE - 1) + "…"
    # The run the cut falls in holds a colon (it may be a user:password cut before its @): out.
    assert annotations["metadata_target"] == "alice:<redacted>@…"
    assert b"hunter2" not in receiver.requests[0].body


async def test_resolve_is_sent_with_the_same_fingerprint(tmp_path: Path, webhook_receiver) -> None:
    """A node going down and coming back sends firing, then resolved for the same fingerprint."""
    receiver: WebhookReceiver = webhook_receiver()
    async with alert_bridge(
        tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=receiver.url, **FAST
    ) as (bridge, _sink, _watcher):
        bridge.bus.publish("lifecycle", NodeLifecycle(node="n4", event="down", cluster_size=2))
        await async_wait_until(lambda: len(receiver.accepted()) == 1, what="the firing alert")
        bridge.bus.publish("lifecycle", NodeLifecycle(node="n4", event="down", cluster_size=2))
        bridge.bus.publish(
            "lifecycle", NodeLifecycle(node="n4", event="reconnected", cluster_size=3)
        )
        await async_wait_until(lambda: len(receiver.accepted()) == 2, what="the resolve")
    firing, resolved = (r.json() for r in receiver.requests)
    assert (firing["status"], resolved["status"]) == ("firing", "resolved")
    assert firing["alerts"][0]["labels"]["alertname"] == "node_failure"
    assert firing["alerts"][0]["labels"]["node"] == "n4"
    assert firing["alerts"][0]["fingerprint"] == resolved["alerts"][0]["fingerprint"]
    assert resolved["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"


async def test_a_resolve_never_overtakes_its_firing_waiting_for_a_retry(
    tmp_path: Path, webhook_receiver
) -> None:
    """A firing notification the receiver answered 503 is retried before the resolve that came
    after it, so the receiver's last word on the alert is resolved, not firing."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(503)
    clock = ManualClock(T0)
    async with alert_bridge(
        tmp_path, serve_http=False, clock=clock, EXESDB_WEBHOOK_URLS=receiver.url, **FAST
    ) as (bridge, sink, _watcher):
        bridge.bus.publish("lifecycle", NodeLifecycle(node="n4", event="down", cluster_size=2))
        await async_wait_until(lambda: receiver.requests, what="the firing refused")
        bridge.bus.publish(
            "lifecycle", NodeLifecycle(node="n4", event="reconnected", cluster_size=3)
        )
        await async_wait_until(
            lambda: sink.outbox.queue.depth().queued == 1, what="the resolve held in the window"
        )
        assert len(sink.outbox.queue.deliveries()) == 1
        clock.advance(60)  # the firing's retry is due
        sink.workers[next(iter(sink.workers))].wake()
        await async_wait_until(lambda: len(receiver.accepted()) == 2, what="both delivered")
    assert [r.json()["status"] for r in receiver.accepted()] == ["firing", "resolved"]


async def test_a_resolve_made_while_its_firing_is_in_flight_goes_after_it(
    tmp_path: Path, webhook_receiver
) -> None:
    """An alert resolved while the receiver hangs on its firing notification: the firing is
    retried after the timeout and only then the resolve goes out."""
    receiver: WebhookReceiver = webhook_receiver()
    receiver.script(HANG)
    async with alert_bridge(
        tmp_path,
        serve_http=False,
        EXESDB_WEBHOOK_URLS=receiver.url,
        EXESDB_WEBHOOK_TIMEOUT_MS="1000",
        **FAST,
    ) as (bridge, sink, _watcher):
        bridge.bus.publish("lifecycle", NodeLifecycle(node="n5", event="down", cluster_size=2))
        await async_wait_until(lambda: receiver.requests, what="the firing in flight")
        bridge.bus.publish(
            "lifecycle", NodeLifecycle(node="n5", event="reconnected", cluster_size=3)
        )
        await async_wait_until(
            lambda: sink.outbox.alerts.find(state="resolved"), what="resolved while in flight"
        )
        await async_wait_until(lambda: len(receiver.accepted()) == 2, what="both delivered")
    assert [r.json()["status"] for r in receiver.accepted()] == ["firing", "resolved"]


async def test_escalation_notifies_again_with_the_level(tmp_path: Path, webhook_receiver) -> None:
    """An unacknowledged critical alert is re-sent with escalation_level level2, then level3."""
    receiver: WebhookReceiver = webhook_receiver()
    async with alert_bridge(
        tmp_path,
        serve_http=False,
        EXESDB_WEBHOOK_URLS=receiver.url,
        EXESDB_ESCALATION_AFTER_MS="300",
        **FAST,
    ) as (bridge, _sink, _watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: len(receiver.accepted()) == 3, what="three notifications")
    levels = [r.json()["alerts"][0]["labels"].get("escalation_level") for r in receiver.requests]
    assert levels == [None, "level2", "level3"]
