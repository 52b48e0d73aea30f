"""Alerts posted to a real Alertmanager, and through it to a webhook receiver."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.messages import AlertAck, NodeLifecycle
from bridge.receivers import load_receivers, read_receivers_file
from bridge.sinks.alerts.payload import build_payloads, fingerprint
from tests.integration.servers.alertmanager import AlertmanagerServer, alertmanager_server
from tests.integration.servers.webhook import WebhookReceiver, webhook_receiver
from tests.sinks.alerts.helpers import alert_bridge, stored, system_alert
from tests.support import ROOT, async_wait_until, check_config, http_get, wait_until
from tests.webconfig.files import WebFiles, basic, bcrypt_hash

pytestmark = pytest.mark.integration

__all__ = ["alertmanager_server", "webhook_receiver"]


def held(server: AlertmanagerServer, alert_id: str) -> dict[str, Any] | None:
    """The alert Alertmanager holds for ``alert_id``, if any."""
    for alert in server.alerts():
        if alert["labels"].get("alert_id") == alert_id:
            return alert
    return None


def notified(receiver: WebhookReceiver, alert_id: str, status: str) -> dict[str, Any] | None:
    """The first payload Alertmanager sent about ``alert_id`` in ``status``."""
    for request in receiver.requests:
        body = request.json()
        if any(
            a["labels"].get("alert_id") == alert_id and a["status"] == status
            for a in body["alerts"]
        ):
            return dict(body)
    return None


async def test_alertmanager_holds_and_routes_the_bridges_alerts(
    tmp_path: Path, alertmanager_server, webhook_receiver
) -> None:
    """A bridge alert shows in /api/v2/alerts, linking to its page under EXESDB_EXTERNAL_URL,
    and reaches Alertmanager's webhook receiver."""
    receiver: WebhookReceiver = webhook_receiver()
    server: AlertmanagerServer = alertmanager_server(webhook_url=receiver.url)
    async with alert_bridge(
        tmp_path,
        serve_http=False,
        EXESDB_ALERTMANAGER_URL=server.url,
        EXESDB_EXTERNAL_URL="https://bridge.example/b",
    ) as (bridge, sink, _watcher):
        bridge.bus.publish("disk_full", system_alert("am-1"))
        alert = await async_wait_until(lambda: held(server, "am-1"), within=15, what="am-1 held")
        assert alert["labels"] == {
            "alertname": "disk_full",
            "severity": "critical",
            "category": "system",
            "node": "n1",
            "alert_id": "am-1",
            "source": "test",
        }
        assert alert["status"]["state"] == "active"
        assert alert["annotations"]["title"] == "alert am-1"
        # What amtool shows as Summary: Alertmanager's convention.
        assert alert["annotations"]["summary"] == "alert am-1"
        assert alert["generatorURL"] == "https://bridge.example/b/alerts/am-1"
        # Our fingerprint function is Alertmanager's own.
        assert alert["fingerprint"] == fingerprint(alert["labels"])
        body = await async_wait_until(
            lambda: notified(receiver, "am-1", "firing"), within=15, what="AM's notification"
        )
        # Alertmanager's own payload has the fields the bridge's webhooks have, but for those
        # later Alertmanagers added (notification_reason in 0.32, routeLabels in 0.34).
        record = stored(sink.outbox, "am-1")
        assert record is not None
        ours = json.loads(build_payloads([record], max_alerts=1, external_url=server.url)[0][0])
        assert set(body) <= set(ours)
        assert set(ours) - set(body) <= {"notification_reason", "routeLabels"}
        assert set(body["alerts"][0]) == set(ours["alerts"][0])
        assert body["version"] == "4"


async def test_without_an_external_url_alertmanagers_generator_url_opens_the_alerts_page(
    tmp_path: Path, alertmanager_server
) -> None:
    """With EXESDB_EXTERNAL_URL unset and EXESDB_HTTP_ADDR at port 0, the alert Alertmanager
    holds links to the listen address with the port bound + /alerts/{id}, as a webhook's does,
    and that link answers a plain GET with the alert's page."""
    server: AlertmanagerServer = alertmanager_server()
    async with alert_bridge(tmp_path, EXESDB_ALERTMANAGER_URL=server.url) as (bridge, _sink, _):
        bridge.bus.publish("disk_full", system_alert("am:2"))
        alert = await async_wait_until(lambda: held(server, "am:2"), within=15, what="am:2 held")
        assert bridge.address is not None
        host, port = bridge.address
        assert alert["generatorURL"] == f"http://{host}:{port}/alerts/am%3A2"
        status, body = await asyncio.to_thread(http_get, alert["generatorURL"])
    assert status == 200
    assert "alert am:2" in body.decode()


async def test_alertmanager_accepts_the_source_label_and_metadata_annotations(
    tmp_path: Path, alertmanager_server, webhook_receiver
) -> None:
    """A SystemAlert's source and metadata (keys of any characters, values of any JSON) are
    accepted by a real Alertmanager, held as a label and annotations, and routed on."""
    receiver: WebhookReceiver = webhook_receiver()
    server: AlertmanagerServer = alertmanager_server(webhook_url=receiver.url)
    metadata = {"stream id": "orders-7", "lag.ms": 1500, "tags": ["a", "b"], "api-token": "x1"}
    async with alert_bridge(tmp_path, serve_http=False, EXESDB_ALERTMANAGER_URL=server.url) as (
        bridge,
        _sink,
        _watcher,
    ):
        alert = system_alert("am-src", source="projection-runner", metadata=metadata)
        bridge.bus.publish("projection_stalled", alert)
        held_alert = await async_wait_until(
            lambda: held(server, "am-src"), within=15, what="am-src held"
        )
        body = await async_wait_until(
            lambda: notified(receiver, "am-src", "firing"), within=15, what="AM's notification"
        )
    assert held_alert["labels"]["source"] == "projection-runner"
    expected = {
        "metadata_stream_id": "orders-7",
        "metadata_lag_ms": "1500",
        "metadata_tags": '["a", "b"]',
        "metadata_api_token": "<redacted>",
    }
    assert expected.items() <= held_alert["annotations"].items()
    routed = body["alerts"][0]
    assert routed["labels"]["source"] == "projection-runner"
    assert expected.items() <= routed["annotations"].items()


async def test_resolve_reaches_alertmanager_with_ends_at(
    tmp_path: Path, alertmanager_server, webhook_receiver
) -> None:
    """A node coming back resolves node_failure in Alertmanager, which sends the resolve on."""
    receiver: WebhookReceiver = webhook_receiver()
    server: AlertmanagerServer = alertmanager_server(webhook_url=receiver.url)
    async with alert_bridge(tmp_path, serve_http=False, EXESDB_ALERTMANAGER_URL=server.url) as (
        bridge,
        _sink,
        _watcher,
    ):
        bridge.bus.publish("lifecycle", NodeLifecycle(node="n5", event="down", cluster_size=2))
        await async_wait_until(
            lambda: notified(receiver, "node_failure:n5", "firing"), within=15, what="firing"
        )
        bridge.bus.publish(
            "lifecycle", NodeLifecycle(node="n5", event="reconnected", cluster_size=3)
        )
        body = await async_wait_until(
            lambda: notified(receiver, "node_failure:n5", "resolved"), within=20, what="resolved"
        )
    assert body["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"


def active_severities(server: AlertmanagerServer, alert_id: str) -> list[str]:
    """The severities of the alerts for ``alert_id`` Alertmanager holds active."""
    return sorted(
        alert["labels"]["severity"]
        for alert in server.alerts(active_only=True)
        if alert["labels"].get("alert_id") == alert_id
    )


async def test_an_alert_changing_severity_is_one_active_alert_in_alertmanager(
    tmp_path: Path, alertmanager_server
) -> None:
    """An alert raised at warning, then at critical, is held active by Alertmanager at
    critical alone (its severity label makes it another alert there), and once resolved at
    neither: the warning one is not left active until its endsAt, minutes later."""
    server: AlertmanagerServer = alertmanager_server()
    async with alert_bridge(tmp_path, serve_http=False, EXESDB_ALERTMANAGER_URL=server.url) as (
        bridge,
        _sink,
        _watcher,
    ):
        bridge.bus.publish("disk_full", system_alert("am-sev", severity="warning"))
        await async_wait_until(
            lambda: active_severities(server, "am-sev") == ["warning"], 15, "warning active"
        )
        bridge.bus.publish("disk_full", system_alert("am-sev", severity="critical"))
        await async_wait_until(
            lambda: active_severities(server, "am-sev") == ["critical"], 15, "critical alone"
        )
        bridge.bus.publish("alerts", AlertAck(alert_id="am-sev", ack_by="ops", resolution="ok"))
        await async_wait_until(
            lambda: active_severities(server, "am-sev") == [], 15, "neither active"
        )


async def test_an_alert_dated_by_a_clock_far_ahead_still_resolves_in_alertmanager(
    tmp_path: Path, alertmanager_server
) -> None:
    """A SystemAlert whose sender's clock is years ahead starts no later than the bridge's now,
    so acknowledged with a resolution it ends in Alertmanager, rather than standing active
    until its start came round."""
    server: AlertmanagerServer = alertmanager_server()
    async with alert_bridge(tmp_path, serve_http=False, EXESDB_ALERTMANAGER_URL=server.url) as (
        bridge,
        sink,
        _watcher,
    ):
        ahead = system_alert("am-ahead").model_copy(
            update={"timestamp": datetime(2999, 1, 1, tzinfo=UTC)}
        )
        bridge.bus.publish("disk_full", ahead)
        await async_wait_until(lambda: held(server, "am-ahead"), within=15, what="am-ahead held")
        bridge.bus.publish(
            "alerts", AlertAck(alert_id="am-ahead", ack_by="ops", resolution="clock fixed")
        )
        await async_wait_until(
            lambda: (held(server, "am-ahead") or {}).get("status", {}).get("state") != "active",
            within=20,
            what="am-ahead no longer active in Alertmanager",
        )
        record = stored(sink.outbox, "am-ahead")
        assert record is not None
        assert record.starts_at <= time.time()


async def test_an_alert_dated_before_the_year_1000_does_not_stop_the_posts(
    tmp_path: Path, alertmanager_server
) -> None:
    """An alert whose message is dated in the year 1 reaches Alertmanager with an RFC 3339
    startsAt (four digits of year), so the post holding it, and every other alert in it, is
    taken rather than refused whole."""
    server: AlertmanagerServer = alertmanager_server()
    async with alert_bridge(tmp_path, serve_http=False, EXESDB_ALERTMANAGER_URL=server.url) as (
        bridge,
        _sink,
        _watcher,
    ):
        early = system_alert("am-early").model_copy(
            update={"timestamp": datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC)}
        )
        bridge.bus.publish("disk_full", early)
        bridge.bus.publish("disk_full", system_alert("am-now"))
        await async_wait_until(
            lambda: held(server, "am-early") and held(server, "am-now"),
            within=15,
            what="both alerts held",
        )


async def test_the_poster_reaches_an_alertmanager_behind_tls_and_basic_auth_by_its_http_config(
    tmp_path: Path, alertmanager_server
) -> None:
    """An Alertmanager served over HTTPS with a private CA and basic auth (its own
    --web.config.file) holds the bridge's alert when the receivers file's alertmanager section
    gives tls_config.ca_file and basic_auth with a password_file."""
    files = WebFiles(tmp_path / "am-web")
    server: AlertmanagerServer = alertmanager_server(
        web_config=(
            f"tls_server_config:\n  cert_file: {files.folder / 'server.pem'}\n"
            f"  key_file: {files.folder / 'server.key'}\n"
            f"basic_auth_users:\n  bridge: {bcrypt_hash('am-pw')}\n"
        ),
        context=files.client_context(),
        headers={"Authorization": basic("bridge", "am-pw")},
    )
    assert server.url.startswith("https://")
    assert http_get(server.url + "/api/v2/alerts", context=files.client_context())[0] == 401
    (tmp_path / "am-password").write_text("am-pw\n")
    config = tmp_path / "receivers.yml"
    config.write_text(
        f"alertmanager:\n  url: {server.url}\n  http_config:\n"
        f"    tls_config: {{ca_file: {files.ca_file}}}\n"
        "    basic_auth: {username: bridge, password_file: am-password}\n"
    )
    async with alert_bridge(
        tmp_path / "state", serve_http=False, EXESDB_WEBHOOK_CONFIG_FILE=str(config)
    ) as (bridge, _sink, _watcher):
        bridge.bus.publish("disk_full", system_alert("am-tls"))
        alert = await async_wait_until(
            lambda: held(server, "am-tls"), within=15, what="am-tls held"
        )
    assert alert["status"]["state"] == "active"


def test_a_receiver_block_dumped_by_alertmanager_loads_unchanged(
    tmp_path: Path, alertmanager_server
) -> None:
    """The webhook_config Alertmanager prints in its status (its defaults filled in, with
    follow_redirects: true) reads as a receiver as it is, following 307 and 308 redirects."""
    url = "https://hooks.example:8443/alerts"
    server: AlertmanagerServer = alertmanager_server(webhook_url=url)
    status, body = http_get(server.url + "/api/v2/status", timeout=10.0)
    assert status == 200, body
    dumped = yaml.safe_load(json.loads(body)["config"]["original"])
    [hook] = dumped["receivers"][0]["webhook_configs"]
    if hook.get("url") == "<secret>":  # newer versions hide it: the user types it again
        hook["url"] = url
    path = tmp_path / "receivers.yml"
    path.write_text(yaml.safe_dump({"webhook_configs": [hook]}))

    assert hook["http_config"]["follow_redirects"] is True
    [loaded] = load_receivers(path).webhook_configs
    assert loaded.http_config.follow_redirects is True
    assert (loaded.url, loaded.send_resolved, loaded.max_alerts) == (url, True, 0)


def test_receivers_take_global_http_config_as_a_real_alertmanager_gives_it(
    tmp_path: Path, alertmanager_server
) -> None:
    """One global section and one list of webhook_configs, given to Alertmanager and to the
    bridge: each receiver has the http_config Alertmanager's status shows it has (global's,
    whole, when it gives none or a null one; its own alone, {} included, otherwise)."""
    section = {
        "resolve_timeout": "5m",
        "smtp_smarthost": "smtp.example.com:587",
        "http_config": {
            "authorization": {"credentials_file": "/run/secrets/global-token"},
            "proxy_url": "http://proxy.example.com:3128",
        },
    }
    hooks: list[dict[str, Any]] = [
        {"url": "http://none.example.com/hook"},
        {
            "url": "http://own.example.com/hook",
            "http_config": {"basic_auth": {"username": "u", "password_file": "/run/pw"}},
        },
        {"url": "http://empty.example.com/hook", "http_config": {}},
        {"url": "http://null.example.com/hook", "http_config": None},
    ]
    server: AlertmanagerServer = alertmanager_server(global_section=section, webhook_configs=hooks)
    status, body = http_get(server.url + "/api/v2/status", timeout=10.0)
    assert status == 200, body
    dumped = yaml.safe_load(json.loads(body)["config"]["original"])
    theirs = [hook.get("http_config") or {} for hook in dumped["receivers"][0]["webhook_configs"]]
    path = tmp_path / "receivers.yml"
    path.write_text(json.dumps({"global": section, "webhook_configs": hooks}))
    read = read_receivers_file(path)
    assert read.problems == ()
    ours = [hook.http_config for _, hook in read.hooks]
    shown = [
        ("authorization" in their, "basic_auth" in their, bool(their.get("proxy_url")))
        for their in theirs
    ]
    # Global's whole, the receiver's own alone, an empty one of its own, global's again.
    assert shown == [
        (True, False, True),
        (False, True, False),
        (False, False, False),
        (True, False, True),
    ]
    assert [
        (mine.authorization is not None, mine.basic_auth is not None, bool(mine.proxy_url))
        for mine in ours
    ] == shown


async def test_a_webhook_receiver_at_alertmanagers_api_is_warned_of_and_refused_as_warned(
    tmp_path: Path, alertmanager_server, monkeypatch, capsys
) -> None:
    """A webhook URL that is Alertmanager's /api/v2/alerts (a webhook's notification is no body
    that API takes) is warned of by check-config, saying to use EXESDB_ALERTMANAGER_URL; a real
    Alertmanager answers the delivery 400, as the warning says, and it is dead-lettered."""
    server: AlertmanagerServer = alertmanager_server()
    url = f"{server.url}/api/v2/alerts"
    status, _, err = check_config(
        monkeypatch, capsys, EXESDB_WEBHOOK_URLS=url, EXESDB_WEBHOOK_SECRET="k" * 32
    )
    assert status == 0, err
    assert (
        f"exesdb-bridge: warning: EXESDB_WEBHOOK_URLS item 1 {server.url}/…: its path ends in"
        " /api/v2/alerts, Alertmanager's alerts API, which takes a list of alerts, not a"
        " webhook's notification, and answers every delivery 400: for Alertmanager to take the"
        " bridge's alerts, set EXESDB_ALERTMANAGER_URL to its own URL (this one without"
        " /api/v2/alerts) instead"
    ) in err.splitlines()
    async with alert_bridge(tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=url) as (
        bridge,
        sink,
        _watcher,
    ):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: sink.outbox.queue.depth().dead == 1, what="a dead letter")
        [dead] = sink.outbox.queue.deliveries("dead")
        assert dead.last_status == 400, dead


def test_a_replica_failing_its_scrapes_holds_back_its_own_alerts_not_its_deployments(
    alertmanager_server,
) -> None:
    """Under the shipped inhibit rules, a replica Prometheus cannot scrape (a lease holder
    killed) has its own alerts held back, but not the alert that no replica of its deployment
    holds the work-queue lease, nor a cluster alert: neither carries an ``instance``."""
    shipped = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
    server: AlertmanagerServer = alertmanager_server(inhibit_rules=shipped["inhibit_rules"])
    replica = {"job": "exesdb-bridge", "instance": "10.0.0.1:9570"}
    deployment = {"job": "exesdb-bridge", "namespace": "exesdb"}
    sent = [
        {"alertname": "ExesdbBridgeScrapeFailing", "severity": "critical", **replica},
        {"alertname": "ExesdbBusDropping", "severity": "warning", **replica},
        {"alertname": "ExesdbRedisWorkQueueLeaseUnheld", "severity": "critical", **deployment},
        {"alertname": "ExesdbNodeDown", "severity": "critical", "state": "down"},
    ]
    request = urllib.request.Request(
        server.url + "/api/v2/alerts",
        data=json.dumps([{"labels": labels} for labels in sent]).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200

    def states() -> dict[str, str] | None:
        found = {a["labels"]["alertname"]: a["status"]["state"] for a in server.alerts()}
        # Inhibition is marked as each alert's group is flushed, after its group_wait.
        return found if found.get("ExesdbBusDropping") == "suppressed" else None

    assert wait_until(states, 30, "the replica's own alert held back") == {
        "ExesdbBridgeScrapeFailing": "active",
        "ExesdbBusDropping": "suppressed",
        "ExesdbRedisWorkQueueLeaseUnheld": "active",
        "ExesdbNodeDown": "active",
    }
