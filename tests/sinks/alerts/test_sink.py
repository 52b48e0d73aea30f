"""The alert sink inside a bridge: alert states from the bus, the admin API, escalation."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.bus import Frame, LocalCoordinator, MemoryTransport, TransportCapabilities
from bridge.errors import BridgeError, TransportError
from bridge.messages import (
    SEVERITIES,
    AlertAck,
    AlertEscalation,
    NodeHealth,
    NodeLifecycle,
    SystemAlert,
)
from bridge.settings import Settings
from bridge.sinks.alerts import Outbox
from bridge.sinks.alerts.index import encode
from bridge.sinks.alerts.outbox import FILE_NAME
from bridge.sinks.alerts.records import Acknowledgement
from bridge.sinks.alerts.thread import DbThread
from tests.doc_text import page, section
from tests.sinks.alerts.helpers import (
    T0,
    Lease,
    LeaseTransport,
    alert_bridge,
    critical_cpu,
    envelope,
    hold,
    sink_bridge,
    stored,
    system_alert,
)
from tests.sinks.alerts.test_alertmanager import Receiver, receiver
from tests.sinks.alerts.test_index import State, Store
from tests.sinks.alerts.test_payload import record
from tests.support import ADMIN_TOKEN, ManualClock, async_wait_until

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

__all__ = ["receiver"]  # the fixture, imported for the tests below


async def call(
    bridge: Any, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """One HTTP request to the bridge; (status, JSON body)."""
    host, port = bridge.address
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            f"http://{host}:{port}{path}",
            json=body,
            headers=AUTH if headers is None else headers,
        ) as response,
    ):
        return response.status, await response.json()


async def test_alerts_api_lists_states_and_needs_the_admin_token(tmp_path: Path) -> None:
    """GET /v1/alerts shows each alert's state, level, severity, labels and times (admin only)."""
    async with alert_bridge(tmp_path) as (bridge, _sink, _):
        bridge.bus.publish("disk_full", system_alert("a1"))
        _status, body = await async_wait_until(
            lambda: _listed(bridge), what="the alert in /v1/alerts"
        )
        [alert] = body["alerts"]
        assert alert["alert_id"] == "a1"
        assert (alert["state"], alert["level"], alert["severity"]) == (
            "firing",
            "level1",
            "critical",
        )
        assert alert["labels"]["alertname"] == "disk_full"
        assert alert["starts_at"].endswith("Z")
        assert (await call(bridge, "GET", "/v1/alerts", headers={}))[0] == 401
        assert (await call(bridge, "GET", "/v1/alerts?state=bogus"))[0] == 400


async def test_the_start_up_log_tells_receivers_on_one_origin_apart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Receivers on one origin (every Slack webhook is https://hooks.slack.com/…) share their
    shown URL: the start-up log names each by the key the outbox and the pages show, with where
    it is configured, so a key in `outbox list` leads to its line in the configuration."""
    config = tmp_path / "receivers.yml"
    config.write_text("webhook_configs:\n  - url: https://hooks.example/services/T0/B2/c\n")
    urls = "https://hooks.example/services/T0/B0/a,https://hooks.example/services/T0/B1/b"
    with caplog.at_level("INFO", logger="bridge.sinks.alerts"):
        async with alert_bridge(
            tmp_path / "state",
            serve_http=False,
            EXESDB_WEBHOOK_URLS=urls,
            EXESDB_WEBHOOK_CONFIG_FILE=str(config),
        ) as (_, sink, _):
            keys = list(sink.workers)
    said = [r.getMessage() for r in caplog.records if r.name.startswith("bridge.sinks.alerts")]
    lines = [line for line in said if " is " in line]
    sources = ["EXESDB_WEBHOOK_URLS item 1", "EXESDB_WEBHOOK_URLS item 2"]
    sources.append(f"{config}: webhook_configs.0")
    assert lines == [
        f"alerts: webhook receiver {key} is {source}"
        for key, source in zip(keys, sources, strict=True)
    ]
    assert len(set(keys)) == 3
    assert all(key.startswith("https://hooks.example/…#") for key in keys)
    assert "T0" not in caplog.text


def field_of(sink: Any, alert_id: str, name: str) -> Any:
    record = stored(sink.outbox, alert_id)
    return None if record is None else getattr(record, name)


async def _listed(bridge: Any) -> tuple[int, Any] | None:
    status, body = await call(bridge, "GET", "/v1/alerts")
    return (status, body) if status == 200 and body["alerts"] else None


async def test_ack_publishes_alertack_and_404s_unknown_alerts(tmp_path: Path) -> None:
    """POST /v1/alerts/{id}/ack acknowledges, publishes AlertAck; unknown ids answer 404."""
    async with alert_bridge(tmp_path) as (bridge, sink, watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: stored(sink.outbox, "a1"), what="the alert stored")
        status, body = await call(
            bridge, "POST", "/v1/alerts/a1/ack", {"ack_by": "ops", "ack_note": "on it"}
        )
        assert status == 200
        assert (body["alert"]["state"], body["alert"]["ack_by"]) == ("acknowledged", "ops")
        acks = await async_wait_until(lambda: watcher.of(AlertAck), what="AlertAck on the bus")
        assert acks[0].alert_id == "a1"
        assert (await call(bridge, "POST", "/v1/alerts/nope/ack", {"ack_by": "ops"}))[0] == 404
        assert (await call(bridge, "POST", "/v1/alerts/a1/ack", {"ack_by": ""}))[0] == 400


@pytest.mark.parametrize(
    ("content_type", "body", "status", "field"),
    [
        ("application/x-www-form-urlencoded", b"ack_by=ops", 415, None),
        ("text/plain", b'{"ack_by": "ops"}', 415, None),
        (None, b'{"ack_by": "ops"}', 415, None),
        ("application/json", b'{"ack_by": "ops\\u0000"}', 400, "ack_by"),
        ("application/json", b'{"ack_by": "ops\\n2027-01-15 alert resolved"}', 400, "ack_by"),
        ("application/json", b'{"ack_by": "\\u001b[2Jops"}', 400, "ack_by"),
        ("application/json", b'{"ack_by": "' + b"o" * 201 + b'"}', 400, "ack_by"),
    ],
    ids=["form", "text", "no-type", "nul", "newline", "esc", "201-chars"],
)
async def test_the_bridge_refuses_an_ack_not_sent_as_json_or_by_a_printable_name(
    tmp_path: Path, content_type: str | None, body: bytes, status: int, field: str | None
) -> None:
    """Through the bridge's own HTTP server: an ack whose body is not application/json is 415
    unsupported_media_type (not counted as a refused message), one whose ack_by holds a control
    character or more than 200 characters 400 naming ack_by; neither acknowledges the alert or
    publishes an AlertAck. The status page's request (application/json, the token in
    X-ExESDB-Admin-Token) is then taken."""
    async with alert_bridge(tmp_path) as (bridge, sink, watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: stored(sink.outbox, "a1"), what="the alert stored")
        assert bridge.address is not None
        host, port = bridge.address
        headers = AUTH | ({"Content-Type": content_type} if content_type else {})
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://{host}:{port}/v1/alerts/a1/ack",
                data=body,
                headers=headers,
                skip_auto_headers=["Content-Type"],
            ) as response,
        ):
            answer = await response.json()
        expected = "unsupported_media_type" if status == 415 else "invalid"
        assert (response.status, answer["error"], answer.get("field")) == (status, expected, field)
        record = stored(sink.outbox, "a1")
        assert record is not None
        assert (record.state.value, record.ack_by) == ("firing", None)
        rejected = bridge.registry.get_sample_value(
            "exesdb_bus_rejected_total", {"reason": "unsupported_media_type"}
        )
        assert rejected == 0.0
        page = {"Content-Type": "application/json", "X-ExESDB-Admin-Token": ADMIN_TOKEN}
        status, answer = await call(bridge, "POST", "/v1/alerts/a1/ack", {"ack_by": "ops"}, page)
        assert (status, answer["alert"]["ack_by"]) == (200, "ops")
        await async_wait_until(lambda: watcher.of(AlertAck), what="the page's AlertAck")
    assert [ack.ack_by for ack in watcher.of(AlertAck)] == ["ops"]


async def test_an_ack_that_changes_nothing_publishes_no_alertack(tmp_path: Path) -> None:
    """Acknowledging an alert acknowledged already, or resolved, answers it as it is and
    publishes no AlertAck: the bus never says bob acknowledged what alice had."""
    async with alert_bridge(tmp_path) as (bridge, sink, watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        bridge.bus.publish("disk_full", system_alert("a2"))
        await async_wait_until(lambda: stored(sink.outbox, "a2"), what="the alerts stored")
        assert (await call(bridge, "POST", "/v1/alerts/a1/ack", {"ack_by": "alice"}))[0] == 200
        status, body = await call(bridge, "POST", "/v1/alerts/a1/ack", {"ack_by": "bob"})
        assert (status, body["alert"]["ack_by"]) == (200, "alice")
        done = {"ack_by": "alice", "resolution": "fixed"}
        assert (await call(bridge, "POST", "/v1/alerts/a1/ack", done))[0] == 200
        status, body = await call(
            bridge, "POST", "/v1/alerts/a1/ack", {"ack_by": "bob", "resolution": "again"}
        )
        assert (status, body["alert"]["state"], body["alert"]["resolution"]) == (
            200,
            "resolved",
            "fixed",
        )
        # The last ack, of another alert, comes after any the ones before published.
        assert (await call(bridge, "POST", "/v1/alerts/a2/ack", {"ack_by": "carol"}))[0] == 200
        await async_wait_until(
            lambda: any(ack.alert_id == "a2" for ack in watcher.of(AlertAck)), what="a2's ack"
        )
    assert [(ack.alert_id, ack.ack_by, ack.resolution) for ack in watcher.of(AlertAck)] == [
        ("a1", "alice", None),
        ("a1", "alice", "fixed"),
        ("a2", "carol", None),
    ]


async def _episodes(bridge: Any, watcher: Any) -> tuple[str, str]:
    """a1 fired a minute ago, resolved by an ack, and fired again now: the starts_at of the
    first episode and of the one firing since, as GET /v1/alerts shows them."""
    a_minute_ago = datetime.now(UTC) - timedelta(minutes=1)
    bridge.bus.publish("disk_full", system_alert("a1", at=a_minute_ago))
    [first] = (await async_wait_until(lambda: _listed(bridge), what="a1 listed"))[1]["alerts"]
    done = {"ack_by": "alice", "resolution": "fixed"}
    assert (await call(bridge, "POST", "/v1/alerts/a1/ack", done))[0] == 200
    await async_wait_until(lambda: watcher.of(AlertAck), what="the resolution's AlertAck")
    bridge.bus.publish("disk_full", system_alert("a1"))

    async def fired_again() -> str | None:
        [alert] = await _alerts(bridge)
        return alert["starts_at"] if alert["state"] == "firing" else None

    return first["starts_at"], await async_wait_until(fired_again, what="a1 firing again")


async def test_an_ack_for_an_episode_that_ended_is_answered_409_and_changes_nothing(
    tmp_path: Path,
) -> None:
    """POST /v1/alerts/{id}/ack naming the episode it is for (``starts_at``, as listed) after
    the alert resolved and fired again is 409 another_episode saying when it resolved, from its
    history: the alert firing since stays firing and no AlertAck is published; named by its own
    starts_at, it is acknowledged."""
    async with alert_bridge(tmp_path) as (bridge, _sink, watcher):
        first, second = await _episodes(bridge, watcher)
        late = {"ack_by": "bob", "starts_at": first}
        status, body = await call(bridge, "POST", "/v1/alerts/a1/ack", late)
        assert (status, body["error"], body["field"]) == (409, "another_episode", "starts_at")
        # How far apart, to the millisecond: the first episode fired a minute before, give or take.
        gap = r"1 min( \d+(\.\d+)? s)?"
        told = re.fullmatch(
            re.escape(f"the current episode of alert 'a1' started at {second}, ")
            + f"({gap})"
            + re.escape(f" after the {first} given, which is earlier: it resolved at ")
            + r"(?P<resolved>\S+)"
            + re.escape(
                f" and fired again since ({second} names the episode firing now); it is left as"
                " it is"
            ),
            body["detail"],
        )
        assert told is not None, body["detail"]
        assert _at(first) < _at(told["resolved"]) < _at(second)  # alice's resolution
        [alert] = await _alerts(bridge)
        assert (alert["state"], alert["ack_by"]) == ("firing", None)
        status, body = await call(
            bridge, "POST", "/v1/alerts/a1/ack", {"ack_by": "bob", "starts_at": second}
        )
        assert (status, body["alert"]["state"], body["alert"]["ack_by"]) == (
            200,
            "acknowledged",
            "bob",
        )
        await async_wait_until(lambda: len(watcher.of(AlertAck)) == 2, what="bob's AlertAck")
    acks = [(ack.ack_by, ack.alert_starts_at) for ack in watcher.of(AlertAck)]
    assert acks == [("alice", _at(first)), ("bob", _at(second))]


async def test_an_ack_naming_a_time_after_the_episode_began_is_409_not_said_to_have_fired_again(
    tmp_path: Path,
) -> None:
    """POST /v1/alerts/{id}/ack whose ``starts_at`` is later than the start of the alert's only
    episode (a typo) is 409 another_episode naming both times, that it is later and by how much,
    and that no episode started then: it does not say the alert fired again since, which it did
    not."""
    async with alert_bridge(tmp_path) as (bridge, _sink, _watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        [alert] = (await async_wait_until(lambda: _listed(bridge), what="a1 listed"))[1]["alerts"]
        began = alert["starts_at"]
        later = (_at(began) + timedelta(hours=1, seconds=1)).isoformat(timespec="milliseconds")
        typo = {"ack_by": "bob", "starts_at": later.replace("+00:00", "Z")}
        status, body = await call(bridge, "POST", "/v1/alerts/a1/ack", typo)
        assert (status, body["error"], body["field"]) == (409, "another_episode", "starts_at")
        assert body["detail"] == (
            f"the current episode of alert 'a1' started at {began}, 1 h 1 s before the"
            f" {typo['starts_at']} given, which is later: no episode of it started then, so that"
            f" time is mistyped ({began} names the episode firing now); it is left as it is"
        )
        [alert] = await _alerts(bridge)
        assert (alert["state"], alert["ack_by"]) == ("firing", None)


async def test_an_ack_naming_the_episode_s_start_to_the_second_is_told_to_give_its_milliseconds(
    tmp_path: Path,
) -> None:
    """POST /v1/alerts/{id}/ack whose ``starts_at`` is the start of the alert's episode cut to
    the second (typed so, or copied from a page showing seconds) is 409 another_episode saying
    so and to give it to the millisecond, not that the alert may have fired again."""
    async with alert_bridge(tmp_path) as (bridge, _sink, _watcher):
        sent = (datetime.now(UTC) - timedelta(seconds=10)).replace(microsecond=250_000)
        bridge.bus.publish("disk_full", system_alert("a1", at=sent))
        [alert] = (await async_wait_until(lambda: _listed(bridge), what="a1 listed"))[1]["alerts"]
        began = alert["starts_at"]
        assert began.endswith(".250Z")
        typo = {"ack_by": "bob", "starts_at": began.replace(".250Z", "Z")}
        status, body = await call(bridge, "POST", "/v1/alerts/a1/ack", typo)
        assert (status, body["error"], body["field"]) == (409, "another_episode", "starts_at")
        assert body["detail"] == (
            f"the current episode of alert 'a1' started at {began}, 0.25 s after the"
            f" {began.replace('.250Z', '.000Z')} given, which is earlier: that is its start to"
            f" the second only: give it to the millisecond ({began} names the episode firing"
            " now); it is left as it is"
        )


async def test_an_ack_naming_another_time_than_a_resolved_alert_began_says_it_is_resolved(
    tmp_path: Path,
) -> None:
    """POST /v1/alerts/{id}/ack whose ``starts_at`` is a day before the start of an alert that
    has resolved is 409 another_episode naming its last episode's start and end and how far
    before it the time given is, and that none of it is firing: not "the episode firing now"."""
    async with alert_bridge(tmp_path) as (bridge, _sink, _watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        [alert] = (await async_wait_until(lambda: _listed(bridge), what="a1 listed"))[1]["alerts"]
        began = alert["starts_at"]
        done = {"ack_by": "alice", "resolution": "fixed"}
        status, body = await call(bridge, "POST", "/v1/alerts/a1/ack", done)
        assert (status, body["alert"]["state"]) == (200, "resolved")
        ended = body["alert"]["ends_at"]
        a_day_before = (_at(began) - timedelta(days=1)).isoformat(timespec="milliseconds")
        typo = {"ack_by": "bob", "starts_at": a_day_before.replace("+00:00", "Z")}
        status, body = await call(bridge, "POST", "/v1/alerts/a1/ack", typo)
        assert (status, body["error"], body["field"]) == (409, "another_episode", "starts_at")
        assert body["detail"] == (
            f"the last episode of alert 'a1' started at {began}, 1 day after the"
            f" {typo['starts_at']} given, which is earlier, and resolved at {ended}: no episode"
            " of it is firing to acknowledge; it is left as it is"
        )
        [alert] = await _alerts(bridge)
        assert (alert["state"], alert["ack_by"]) == ("resolved", "alice")


async def test_an_alertack_for_an_episode_that_ended_changes_nothing(tmp_path: Path) -> None:
    """An AlertAck naming an episode that ended (``alert_starts_at``: it comes back over the
    bus, or was made on a page shown before the alert fired again) leaves the alert firing
    since as it is; one naming none (a sender of before the field) acknowledges it."""
    async with alert_bridge(tmp_path) as (bridge, sink, watcher):
        first, _second = await _episodes(bridge, watcher)
        stale = AlertAck(alert_id="a1", ack_by="late", alert_starts_at=_at(first))
        bridge.bus.publish("alert_acknowledged", stale)
        bridge.bus.publish("disk_full", system_alert("a2"))  # handled after the ack
        await async_wait_until(lambda: stored(sink.outbox, "a2"), what="a2 stored")
        record = stored(sink.outbox, "a1")
        assert record is not None
        assert (record.state.value, record.ack_by) == ("firing", None)
        bridge.bus.publish("alert_acknowledged", AlertAck(alert_id="a1", ack_by="old sender"))
        acknowledged = await async_wait_until(
            lambda: (r := stored(sink.outbox, "a1")) and r.ack_by == "old sender" and r,
            what="the ack of an old sender applied",
        )
        assert acknowledged.state.value == "acknowledged"


async def _alerts(bridge: Any) -> list[Any]:
    """The alerts GET /v1/alerts lists."""
    status, body = await call(bridge, "GET", "/v1/alerts")
    assert status == 200
    return list(body["alerts"])


def _at(listed: str) -> datetime:
    """A ``starts_at`` as GET /v1/alerts shows it, as a time."""
    return datetime.fromisoformat(listed)


class CountingDb(DbThread):
    """The sink's database thread, counting the calls asked of it (``asked``)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    async def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        self.asked += 1
        return await super().call(fn, *args, **kwargs)


async def test_two_acks_at_once_publish_one_alertack(tmp_path: Path) -> None:
    """Two people acknowledging one firing alert at the same moment: the one stored first is
    published, the other answered with it and not published (it changed nothing), as when they
    come one after the other."""
    db = CountingDb()
    async with alert_bridge(tmp_path, serve_http=False, db=db) as (bridge, sink, watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        bridge.bus.publish("disk_full", system_alert("a2"))
        await async_wait_until(lambda: stored(sink.outbox, "a2"), what="the alerts stored")
        release = await hold(db)
        asked = db.asked
        acks = [
            asyncio.ensure_future(sink.acknowledge(Acknowledgement("a1", who)))
            for who in ("alice", "bob")
        ]
        await async_wait_until(lambda: db.asked >= asked + 2, what="both acks at the outbox")
        release.set()
        answers = await asyncio.gather(*acks)
        assert {answer.ack_by for answer in answers if answer is not None} == {"alice"}
        # The last ack, of another alert, comes after any the two published.
        await sink.acknowledge(Acknowledgement("a2", "carol"))
        await async_wait_until(
            lambda: any(ack.alert_id == "a2" for ack in watcher.of(AlertAck)), what="a2's ack"
        )
    assert [(ack.alert_id, ack.ack_by) for ack in watcher.of(AlertAck)] == [
        ("a1", "alice"),
        ("a2", "carol"),
    ]


async def test_derived_alerts_fire_once_and_resolve(tmp_path: Path) -> None:
    """A node going down fires node_failure once however often it is said; its return resolves."""
    async with alert_bridge(tmp_path) as (bridge, sink, _):
        for _ in range(3):
            bridge.bus.publish("lifecycle", NodeLifecycle(node="n7", event="down", cluster_size=2))
        record = await async_wait_until(
            lambda: stored(sink.outbox, "node_failure:n7"), what="node_failure fired"
        )
        assert (record.severity, record.node) == ("critical", "n7")
        bridge.bus.publish(
            "lifecycle", NodeLifecycle(node="n7", event="reconnected", cluster_size=3)
        )
        await async_wait_until(
            lambda: field_of(sink, "node_failure:n7", "state") == "resolved", what="resolved"
        )


async def test_a_healthy_reading_resolves_its_own_nodes_alerts_and_no_others(
    tmp_path: Path,
) -> None:
    """A healthy NodeHealth resolves its node's alerts (a resource's threshold alert by that
    resource's check), fired before or earlier in its batch, while other nodes' alerts stay
    firing; one of a node with no alert raises nothing."""
    cpu = "metric_threshold:n1:cpu_usage_percent"
    async with alert_bridge(tmp_path, serve_http=False) as (bridge, sink, _):
        bridge.bus.publish("health", NodeHealth(node="n2", status="unhealthy"))
        bridge.bus.publish(
            "metric_alert",
            critical_cpu(),
        )
        await async_wait_until(
            lambda: stored(sink.outbox, cpu) and stored(sink.outbox, "node_health:n2"),
            what="n1's and n2's alerts",
        )
        # One batch: n3 fires and turns healthy, n1 and n4 report healthy.
        bridge.bus.publish_verified(
            [
                envelope(NodeHealth(node="n3", status="degraded")),
                envelope(NodeHealth(node="n3", status="healthy")),
                envelope(
                    NodeHealth(node="n1", status="healthy", checks={"cpu": {"status": "healthy"}})
                ),
                envelope(NodeHealth(node="n4", status="healthy")),
            ]
        )
        await async_wait_until(
            lambda: (
                field_of(sink, "node_health:n3", "state") == "resolved"
                and field_of(sink, cpu, "state") == "resolved"
            ),
            what="n3's and n1's alerts resolved",
        )
        assert field_of(sink, "node_health:n2", "state") == "firing"
        assert stored(sink.outbox, "node_health:n4") is None


async def test_severity_filter_drops_alerts_below_the_minimum(tmp_path: Path) -> None:
    """With EXESDB_WEBHOOK_MIN_SEVERITY=error a degraded (warning) node raises nothing."""
    async with alert_bridge(tmp_path, EXESDB_WEBHOOK_MIN_SEVERITY="error") as (bridge, sink, _):
        bridge.bus.publish("health", NodeHealth(node="n1", status="degraded"))
        bridge.bus.publish("health", NodeHealth(node="n2", status="unhealthy"))
        await async_wait_until(lambda: stored(sink.outbox, "node_health:n2"), what="critical kept")
        assert stored(sink.outbox, "node_health:n1") is None


async def test_unacknowledged_alert_escalates_level_by_level(tmp_path: Path) -> None:
    """A requires_ack alert left alone escalates level1→2→3, with an AlertEscalation per step."""
    clock = ManualClock(T0)
    async with alert_bridge(tmp_path, clock=clock, EXESDB_ESCALATION_AFTER_MS="1000") as (
        bridge,
        sink,
        watcher,
    ):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: stored(sink.outbox, "a1"), what="the alert stored")
        clock.advance(1.0)
        await async_wait_until(lambda: field_of(sink, "a1", "level") == 2, what="level2")
        clock.advance(1.0)
        await async_wait_until(lambda: field_of(sink, "a1", "level") == 3, what="level3")
        clock.advance(5.0)
        steps = await async_wait_until(
            lambda: len(watcher.of(AlertEscalation)) == 2 and watcher.of(AlertEscalation),
            what="two AlertEscalation messages",
        )
        assert [(s.from_level, s.to_level) for s in steps] == [
            ("level1", "level2"),
            ("level2", "level3"),
        ]
        assert field_of(sink, "a1", "level") == 3


async def test_an_alert_turning_critical_needs_an_ack_and_escalates_from_then(
    tmp_path: Path,
) -> None:
    """A node degraded (warning, no ack needed) then unhealthy (critical) needs acknowledging
    as one unhealthy from the start does: unacknowledged, it escalates a period after it
    turned critical, not before."""
    clock = ManualClock(T0)
    async with alert_bridge(tmp_path, clock=clock, EXESDB_ESCALATION_AFTER_MS="60000") as (
        bridge,
        sink,
        _watcher,
    ):
        bridge.bus.publish("health", NodeHealth(node="n1", status="degraded"))
        await async_wait_until(
            lambda: field_of(sink, "node_health:n1", "severity") == "warning", what="the warning"
        )
        clock.advance(120.0)  # two periods as a warning: nothing to escalate
        bridge.bus.publish("health", NodeHealth(node="n1", status="unhealthy"))
        await async_wait_until(
            lambda: field_of(sink, "node_health:n1", "severity") == "critical", what="critical"
        )
        assert field_of(sink, "node_health:n1", "requires_ack") is True
        await sink.housekeeping.housekeep()
        assert field_of(sink, "node_health:n1", "level") == 1
        clock.advance(60.0)
        await sink.housekeeping.housekeep()
        assert field_of(sink, "node_health:n1", "level") == 2


async def test_a_wall_clock_set_back_holds_no_escalation_back(tmp_path: Path) -> None:
    """A wall clock set back an hour restarts an unacknowledged alert's escalation period from
    the jump: it escalates a period later, not an hour and a period later, and only once."""
    clock = ManualClock(T0)
    async with alert_bridge(tmp_path, clock=clock, EXESDB_ESCALATION_AFTER_MS="60000") as (
        bridge,
        sink,
        watcher,
    ):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: stored(sink.outbox, "a1"), what="the alert stored")
        clock.advance(30.0)
        clock.now -= 3600.0  # an NTP step, a VM resumed
        await sink.housekeeping.housekeep()
        assert field_of(sink, "a1", "level") == 1
        clock.advance(59.0)
        await sink.housekeeping.housekeep()
        assert field_of(sink, "a1", "level") == 1
        clock.advance(1.0)
        await sink.housekeeping.housekeep()
        assert field_of(sink, "a1", "level") == 2
        steps = await async_wait_until(lambda: watcher.of(AlertEscalation), what="announced")
        assert [(s.from_level, s.to_level) for s in steps] == [("level1", "level2")]


class GroupTransport(MemoryTransport):
    """Hands frames over as work-queue (group) frames whose ack records what was on disk."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__()
        self.state_dir = state_dir
        self.acked: list[tuple[str, bool]] = []

    def send(self, frame: Frame) -> bool:
        envelope = frame.decoded
        assert envelope is not None

        def ack() -> None:
            alert_id = getattr(envelope.payload, "alert_id", "")
            # A separate connection sees only what was committed (as `exesdb-bridge outbox`
            # opens it beside the bridge that holds the directory).
            reader = Outbox(self.state_dir / FILE_NAME)
            self.acked.append((alert_id, stored(reader, alert_id) is not None))
            reader.close()

        return super().send(frame._replace(group=True, ack=ack))


async def test_group_frames_are_acked_only_after_the_outbox_commit(tmp_path: Path) -> None:
    """On a work-queue transport the alert is committed before the bus acknowledges the frame."""
    transport = GroupTransport(tmp_path)
    async with alert_bridge(tmp_path, serve_http=False, transport=transport) as (bridge, sink, _):
        assert sink.subscription.group
        for number in range(5):
            bridge.bus.publish("disk_full", system_alert(f"g{number}"))
        await async_wait_until(lambda: len(transport.acked) == 5, what="five acks")
    assert transport.acked == [(f"g{n}", True) for n in range(5)]


async def test_unusable_state_dir_stops_start_naming_the_variable(tmp_path: Path) -> None:
    """A state directory that cannot hold the outbox fails start-up with EXESDB_STATE_DIR named."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(BridgeError, match="EXESDB_STATE_DIR"):
        async with alert_bridge(blocker / "state"):
            pass


async def test_a_failed_start_stops_without_waiting_out_the_shutdown_deadline(
    tmp_path: Path,
) -> None:
    """A sink whose outbox never opened, started on a running bus (a bridge opens it before
    its bus starts), drops what it queued at once, not at the deadline."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    settings = Settings(
        EXESDB_STATE_DIR=str(blocker / "state"),
        EXESDB_SHUTDOWN_TIMEOUT_MS="600000",
    )
    bridge, sink = sink_bridge(settings, bridge_deadline=True)
    await bridge.bus.start()
    with pytest.raises(BridgeError, match="EXESDB_STATE_DIR"):
        await sink.start()
    bridge.bus.publish("disk_full", system_alert("a1"))
    await async_wait_until(lambda: sink.subscription.depth > 0, what="the alert queued")
    async with asyncio.timeout(30):  # far below the 600 s deadline the drain would wait for
        await bridge.aclose()


async def test_only_the_work_queue_holder_escalates(tmp_path: Path) -> None:
    """Without the work-queue lease a replica's housekeeping neither escalates nor auto-resolves
    (its alert states are stale once the lease moved on); with it, escalation resumes."""
    clock = ManualClock(T0)
    transport = LeaseTransport()
    async with alert_bridge(
        tmp_path, clock=clock, transport=transport, EXESDB_ESCALATION_AFTER_MS="1000"
    ) as (bridge, sink, watcher):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: stored(sink.outbox, "a1"), what="the alert stored")
        clock.advance(5.0)
        await sink.housekeeping.housekeep()  # what the housekeeping loop runs every tick
        await sink.housekeeping.housekeep()
        assert field_of(sink, "a1", "level") == 1
        assert watcher.of(AlertEscalation) == []
        transport.lease.leading = True
        await async_wait_until(lambda: field_of(sink, "a1", "level") == 2, what="level2")


async def test_without_the_work_queue_lease_no_open_alert_is_shown(tmp_path: Path) -> None:
    """exesdb_alerts_active is 0 for every severity while the replica does not hold the lease,
    its outbox's open alerts notwithstanding (the holder's are the cluster's), and shows them
    from the moment it holds it, and no longer once it lost it."""
    transport = LeaseTransport()
    async with alert_bridge(tmp_path, transport=transport) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("a1", severity="critical"))
        await async_wait_until(lambda: stored(sink.outbox, "a1"), what="the alert stored")
        await sink.housekeeping.housekeep()  # the gauges refreshed from the outbox

        def shown() -> dict[str, float | None]:
            return {
                severity: bridge.registry.get_sample_value(
                    "exesdb_alerts_active", {"severity": severity}
                )
                for severity in SEVERITIES
            }

        assert shown() == dict.fromkeys(SEVERITIES, 0)
        transport.lease.leading = True
        assert shown() == {**dict.fromkeys(SEVERITIES, 0), "critical": 1}
        transport.lease.leading = False
        assert shown() == dict.fromkeys(SEVERITIES, 0)


class TakenLease(Lease):
    """A work-queue lease taken as the Redis transport's is: its ``on_lead`` callbacks awaited
    (taking the open alerts up), and only then held."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], Awaitable[None]]] = []

    def on_lead(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Kept, for ``take`` to await."""
        self.callbacks.append(callback)

    async def take(self) -> None:
        """Take the lease: each callback, then held."""
        for callback in self.callbacks:
            await callback()
        self.leading = True


class SharedTransport(MemoryTransport):
    """The in-process transport with a lease taken as ``TakenLease`` is and the open alerts kept
    in a ``Store`` (as on Redis)."""

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.lease = TakenLease()
        self.state = State(store, "b")

    @property
    def capabilities(self) -> TransportCapabilities:
        return TransportCapabilities(
            shared=False, coordinator=LocalCoordinator(), lease=self.lease, state=self.state
        )


async def test_taking_the_lease_shows_the_open_alerts_taken_up_at_once(tmp_path: Path) -> None:
    """A replica taking the work-queue lease shows in exesdb_alerts_active the open alerts it
    took up from Redis from the moment it holds the lease, not a housekeeping tick later with
    the counts of its outbox before."""
    store = Store()
    store.holder = "b"
    store.records = {"a1": encode(record("a1", severity="critical"))}
    transport = SharedTransport(store)
    async with alert_bridge(tmp_path, transport=transport) as (bridge, sink, _):
        # The gauges refreshed from the outbox: nothing open in it yet.
        await sink.housekeeping.housekeep()
        await transport.lease.take()
        shown = bridge.registry.get_sample_value("exesdb_alerts_active", {"severity": "critical"})
        assert shown == 1
        assert stored(sink.outbox, "a1")


async def test_a_change_made_before_the_lease_taken_back_is_taken_up_is_refused(
    tmp_path: Path,
) -> None:
    """A change of alert states while Redis has the lease as this replica's but it has not taken
    it up yet (a batch that waited out a hung outbox call, the lease given up and taken back
    meanwhile: its outbox may be behind another holder's changes) is refused, Redis left as it
    was; once taken up, the alert is stored."""
    store = Store()
    store.holder = "b"
    transport = SharedTransport(store)
    async with alert_bridge(tmp_path, transport=transport) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(
            lambda: bridge.registry.get_sample_value(
                "exesdb_sink_errors_total", {"subscriber": "alerts"}
            ),
            what="the batch refused",
        )
        assert not store.records
        assert stored(sink.outbox, "a1") is None
        await transport.lease.take()
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: stored(sink.outbox, "a1"), what="a1 stored")
        assert set(store.records or ()) == {"a1"}


async def test_the_holder_publishes_no_alertack_for_an_ack_it_answers_another_episode(
    tmp_path: Path,
) -> None:
    """On Redis the work-queue holder answers an ack for an episode that ended 409
    another_episode as the in-process bus does: the alert firing since left as it is and no
    AlertAck published (the metric sinks would count an acknowledgement nobody made)."""
    store = Store()
    store.holder = "b"
    transport = SharedTransport(store)
    async with alert_bridge(tmp_path, transport=transport) as (bridge, _sink, watcher):
        await transport.lease.take()
        first, _second = await _episodes(bridge, watcher)
        status, body = await call(
            bridge, "POST", "/v1/alerts/a1/ack", {"ack_by": "bob", "starts_at": first}
        )
        assert (status, body["error"]) == (409, "another_episode"), body
        # Published after any AlertAck the refused ack would have: the bus keeps the order.
        bridge.bus.publish("disk_full", system_alert("a2"))
        await async_wait_until(
            lambda: any(a.alert_id == "a2" for a in watcher.of(SystemAlert)), what="a2 seen"
        )
        [alert] = [a for a in await _alerts(bridge) if a["alert_id"] == "a1"]
        assert (alert["state"], alert["ack_by"]) == ("firing", None)
    assert [ack.ack_by for ack in watcher.of(AlertAck)] == ["alice"]


class Unanswering(State):
    """A replica's view of a ``Store`` whose reads Redis stops answering once ``refusing`` is
    set (unreachable, or a Redis user without ``+hmget``: NOPERM)."""

    refusing = False

    async def read(self, name: str, keys: Collection[str]) -> dict[str, bytes] | None:
        if self.refusing:
            raise TransportError("NOPERM this user has no permissions to run the 'hmget' command")
        return await super().read(name, keys)


class Unreachable(State):
    """A replica's view of a ``Store`` that Redis stops answering once ``down`` is set."""

    down = False

    async def holds(self, name: str) -> bool:
        if self.down:
            raise TransportError("Redis at redis://redis:6379/… is unreachable: Error 111")
        return await super().holds(name)


async def test_escalation_and_expiry_waiting_on_redis_is_told_once_not_at_every_pass(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """While Redis does not answer the work-queue holder, housekeeping (a pass a second) says
    once that escalation and expiry wait, not at every pass, and once that they go on when it
    answers again."""
    store = Store()
    store.holder = "b"
    transport = SharedTransport(store)
    transport.state = state = Unreachable(store, "b")
    async with alert_bridge(tmp_path, transport=transport, serve_http=False) as (bridge, sink, _):
        await transport.lease.take()
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: stored(sink.outbox, "a1"), what="a1 stored")
        # The test's passes alone: one of the loop's, past its look at Redis as it goes down,
        # would end the outage the test's next pass begins.
        await sink.housekeeping.aclose()
        with caplog.at_level("INFO", logger="bridge.sinks.alerts.housekeeping"):
            state.down = True
            for _ in range(3):
                await sink.housekeeping.housekeep()
            state.down = False
            await sink.housekeeping.housekeep()
    said = [r.getMessage() for r in caplog.records if r.name == "bridge.sinks.alerts.housekeeping"]
    assert said[0] == (
        "alerts: escalation and expiry wait: Redis at redis://redis:6379/… is unreachable: Error"
        " 111"
    )
    [went_on] = said[1:]
    assert re.fullmatch(
        r"alerts: escalation and expiry go on again after \d+ failed pass\(es\) in [\d.]+s",
        went_on,
    ), said


@contextlib.asynccontextmanager
async def firing_left_pending(
    tmp_path: Path, receiver: Receiver, transport: SharedTransport, store: Store
) -> AsyncIterator[Any]:
    """A bridge on ``transport`` that held the work-queue lease (replica b of ``store``) while
    ``receiver`` refused its firing of a1, then lost the lease to replica a."""
    store.holder = "b"
    receiver.status = 503
    async with alert_bridge(
        tmp_path,
        transport=transport,
        EXESDB_WEBHOOK_URLS=receiver.url + "/api/v2/alerts",
        EXESDB_WEBHOOK_BACKOFF_MS="50",  # retried at once when the receiver is back
        EXESDB_WEBHOOK_MAX_BACKOFF_MS="50",
    ) as (bridge, _sink, _):
        await transport.lease.take()
        bridge.bus.publish("disk_full", system_alert("a1"))
        await async_wait_until(lambda: receiver.posts, what="the firing tried and refused")
        transport.lease.leading = False
        store.holder = "a"
        yield bridge


def delivered(bridge: Any) -> float | None:
    """How many deliveries ``bridge`` made."""
    return bridge.registry.get_sample_value(
        "exesdb_webhook_deliveries_total", {"result": "delivered"}
    )


async def test_without_the_lease_a_pending_delivery_goes_unchecked_while_redis_cannot_tell(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A replica that lost the work-queue lease with a firing pending (its receiver down) sends
    it once the receiver is back, although Redis cannot tell whether another replica notified
    a newer state of the alert since: a notification held back for as long as Redis is away
    (or for good, without ``+hmget``) is worse than the rare stale one."""
    store = Store()
    transport = SharedTransport(store)
    transport.state = state = Unanswering(store, "b")
    async with firing_left_pending(tmp_path, receiver, transport, store) as bridge:
        state.refusing = True
        receiver.status = 200
        await async_wait_until(lambda: delivered(bridge), what="the firing delivered, unchecked")
        payload: Any = receiver.posts[-1]  # a webhook's body, where Alertmanager takes a list
        assert [alert["labels"]["alert_id"] for alert in payload["alerts"]] == ["a1"]


class FirstAnswerLease(TakenLease):
    """A taken lease whose store has not answered yet (a replica just started): unreachable
    until ``first_answer`` is awaited, which answers at once."""

    async def first_answer(self, within: float) -> bool:
        """Redis's first answer comes while the caller waits."""
        self.reachable = True
        return True


class Asked(State):
    """A replica's view of a ``Store`` that counts the reads of its alert states."""

    reads = 0

    async def read(self, name: str, keys: Collection[str]) -> dict[str, bytes] | None:
        self.reads += 1
        return await super().read(name, keys)


async def test_a_delivery_due_before_redis_first_answered_waits_to_be_checked(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A replica without the lease whose firing is due before Redis first answered (just
    started, the firing left pending when it stopped) waits for that answer and asks Redis
    whether another replica notified a newer state since, rather than send it unchecked (a
    restarted replica sent a firing another had resolved meanwhile)."""
    store = Store()
    transport = SharedTransport(store)
    transport.lease = lease = FirstAnswerLease()
    transport.state = state = Asked(store, "b")
    async with firing_left_pending(tmp_path, receiver, transport, store) as bridge:
        lease.reachable = False  # as if just started: Redis not answered yet
        asked_before = state.reads
        receiver.status = 200
        await async_wait_until(lambda: delivered(bridge), what="the firing delivered, checked")
        assert state.reads > asked_before


async def test_alerts_api_filters_by_alert_id(tmp_path: Path) -> None:
    """GET /v1/alerts?alert_id= (the link in every webhook) lists just that alert, or none."""
    async with alert_bridge(tmp_path) as (bridge, sink, _):
        bridge.bus.publish("disk_full", system_alert("a1"))
        bridge.bus.publish("disk_full", system_alert("a2"))
        await async_wait_until(lambda: len(sink.outbox.alerts.find()) == 2, what="two alerts")
        status, body = await call(bridge, "GET", "/v1/alerts?alert_id=a2")
        assert (status, [a["alert_id"] for a in body["alerts"]]) == (200, ["a2"])
        # On the in-process bus this bridge holds the work queue: its (empty) answer is current,
        # and there is no lease holder to name.
        empty = {
            "alerts": [],
            "work_queue_holder": True,
            "work_queue_holder_name": None,
            "work_queue_lease": "here",
            "work_queue_reachable": True,
        }
        assert await call(bridge, "GET", "/v1/alerts?alert_id=nope") == (200, empty)
        assert _documented_answer() == empty


def _documented_answer() -> dict[str, Any]:
    """The answer docs/http-api.md's Alerts section opens with, its alerts ``[...]`` as none."""
    alerts = " ".join(section(section(page("http-api"), "Admin API"), "Alerts", 3).split())
    found = re.search(r'`(\{"alerts": \[\.\.\.\],[^`]*\})`', alerts)
    assert found is not None, "the Alerts section opens with GET /v1/alerts's answer"
    answer: dict[str, Any] = json.loads(found.group(1).replace("[...]", "[]"))
    return answer


async def test_stage_failures_count_as_sink_errors_and_the_stage_goes_on(tmp_path: Path) -> None:
    """A broken outbox file makes housekeeping and the webhook worker fail: each failure is
    counted in exesdb_sink_errors_total{subscriber="alerts"} and the loops keep running."""
    hook = "http://127.0.0.1:9/hook"
    async with alert_bridge(tmp_path, serve_http=False, EXESDB_WEBHOOK_URLS=hook) as (
        bridge,
        _sink,
        _,
    ):

        def errors() -> float:
            value = bridge.registry.get_sample_value(
                "exesdb_sink_errors_total", {"subscriber": "alerts"}
            )
            return value or 0.0

        assert errors() == 0
        db = sqlite3.connect(tmp_path / "alerts.sqlite3", isolation_level=None)
        db.execute("DROP TABLE deliveries")
        db.close()
        await async_wait_until(lambda: errors() >= 4, what="failures counted, again and again")
