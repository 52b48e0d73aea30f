"""The alert admin API on its own, served on a loopback port: what it accepts and how it refuses."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr, ValidationError

from bridge.app import Bridge
from bridge.messages import AlertAck, format_timestamp, utc_from_seconds
from bridge.routes import MAX_NAME_SHOWN, AdminGuard
from bridge.sinks.alerts.admin import AckRequest, AlertKeeper, AlertQuery, alert_routes
from bridge.sinks.alerts.records import (
    Acknowledgement,
    AlertDetail,
    AlertRecord,
    AlertState,
    HistoryEntry,
    HistoryEvent,
)
from bridge.sinks.alerts.sink import AlertSink
from tests.sinks.alerts.helpers import T0, alert_bridge, stored, system_alert
from tests.sinks.alerts.test_payload import record
from tests.support import ADMIN_TOKEN, ManualClock, async_wait_until

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Keeper:
    """Holds a few alerts and records what the routes asked of it."""

    def __init__(self, records: Sequence[AlertRecord]) -> None:
        self.records = list(records)
        self.queries: list[AlertQuery] = []
        self.acks: list[Acknowledgement] = []
        self.holding = True
        self.holder: str | None = None
        self.reachable = True
        self.kept = False
        # Each alert's history, oldest first; an alert without one here is told as unknown.
        self.histories: dict[str, tuple[HistoryEntry, ...]] = {}

    async def list_alerts(
        self, query: AlertQuery, *, after: AlertRecord | None = None
    ) -> list[AlertRecord]:
        self.queries.append(query)
        first = 0 if after is None else self.records.index(after) + 1
        return [
            r
            for r in self.records[first:]
            if query.state in (None, r.state) and query.alert_id in (None, r.alert_id)
        ][: query.limit]

    async def acknowledge(self, ack: Acknowledgement) -> AlertRecord | None:
        self.acks.append(ack)
        return next((r for r in self.records if r.alert_id == ack.alert_id), None)

    async def alert_detail(self, alert_id: str) -> AlertDetail | None:
        found = next((r for r in self.records if r.alert_id == alert_id), None)
        if found is None or alert_id not in self.histories:
            return None
        return AlertDetail(found, self.histories[alert_id], (), ())

    def holds_work_queue(self) -> bool:
        return self.holding

    def work_queue_holder(self) -> str | None:
        return self.holder

    def work_queue_reachable(self) -> bool:
        return self.reachable

    def work_queue_lease_kept(self) -> bool:
        return self.kept


@asynccontextmanager
async def served(
    keeper: AlertKeeper, token: str | None = ADMIN_TOKEN, middlewares: Sequence[Any] = ()
) -> AsyncIterator[str]:
    """The admin routes on a free loopback port, bodies left to bridge.bodies to expand as the
    bridge's server leaves them; yields the base URL."""
    app = web.Application(handler_args={"auto_decompress": False}, middlewares=middlewares)
    app.add_routes(alert_routes(AdminGuard(SecretStr(token) if token else None), keeper))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def request(
    base: str,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One request with ``headers`` as given (none added), by default the admin token and a body
    as application/json; (status, JSON body)."""
    if headers is None:
        headers = AUTH if body is None else AUTH | {"Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, base + path, data=body, headers=headers, skip_auto_headers=["Content-Type"]
        ) as answer,
    ):
        return answer.status, await answer.json()


@pytest.fixture
def keeper() -> Keeper:
    """Two alerts: a1 firing, a2 acknowledged."""
    return Keeper([record("a1"), record("a2", state=AlertState.ACKNOWLEDGED, ack_by="ops")])


async def test_list_passes_each_filter_and_shows_the_alerts(keeper: Keeper) -> None:
    """?state=, ?alert_id= and ?limit= reach the keeper as one query; the alerts come back."""
    async with served(keeper) as base:
        status, body = await request(base, "GET", "/v1/alerts?state=acknowledged&limit=5")
        assert status == 200
        assert [a["alert_id"] for a in body["alerts"]] == ["a2"]
        assert body["alerts"][0] == keeper.records[1].as_json()
        status, body = await request(base, "GET", "/v1/alerts?alert_id=a1")
        assert [a["alert_id"] for a in body["alerts"]] == ["a1"]
        status, body = await request(base, "GET", "/v1/alerts?alert_id=nope")
        assert (status, body) == (
            200,
            {
                "alerts": [],
                "work_queue_holder": True,
                "work_queue_holder_name": None,
                "work_queue_lease": "here",
                "work_queue_reachable": True,
            },
        )
    assert keeper.queries[0] == AlertQuery(state=AlertState.ACKNOWLEDGED, limit=5)
    # The first page of at most the default 1 000.
    assert keeper.queries[1] == AlertQuery(alert_id="a1", limit=20)


async def test_a_head_of_the_list_sends_no_body_before_the_next_answer(keeper: Keeper) -> None:
    """``HEAD /v1/alerts`` answers headers alone: the list (sent a page at a time) written after
    them would open the next answer on the connection, which a client or proxy reusing it reads
    as garbage."""
    async with served(keeper) as base:
        host, port = base.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        auth = f"Authorization: {AUTH['Authorization']}\r\n"
        head = f"HEAD /v1/alerts HTTP/1.1\r\nHost: x\r\n{auth}\r\n"
        get = f"GET /v1/alerts HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
        writer.write((head + get).encode())
        answers = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        await writer.wait_closed()
    headers, after = answers.split(b"\r\n\r\n", 1)
    assert headers.startswith(b"HTTP/1.1 200 ")
    assert after.startswith(b"HTTP/1.1 200 "), after[:80]


async def test_a_client_gone_while_the_list_is_sent_is_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client that goes away while a long list is sent (``alerts list --limit 0`` stopped, a
    proxy's timeout) ends the answer quietly, as a whole answer's send does: no ERROR line with
    a traceback for it."""
    long = {"title": "t" * 4000, "description": "d" * 4000}
    keeper = Keeper([record(f"a{n:05d}", **long) for n in range(2000)])  # some 17 MB of JSON
    ended = asyncio.Event()

    @web.middleware
    async def noting_the_end(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        finally:
            ended.set()

    async with served(keeper, middlewares=[noting_the_end]) as base:
        host, port = base.removeprefix("http://").rsplit(":", 1)
        with caplog.at_level("INFO"):
            reader, writer = await asyncio.open_connection(host, int(port))
            auth = f"Authorization: {AUTH['Authorization']}\r\n"
            writer.write(f"GET /v1/alerts?limit=10000 HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode())
            assert (await reader.read(1000)).startswith(b"HTTP/1.1 200 ")
            writer.transport.abort()  # gone, the rest of the answer unread
            await asyncio.wait_for(ended.wait(), 10)
    assert len(keeper.queries) < 100  # the answer stopped early, not sent to the end
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


class SettingBackBetweenPages:
    """A real alert sink whose first alert listed is acknowledged, the wall clock set back an
    hour, before the list's second page is read."""

    def __init__(self, sink: AlertSink, clock: ManualClock, back: float = 3600) -> None:
        self.sink, self.clock, self.back = sink, clock, back
        self.first: AlertRecord | None = None

    async def list_alerts(
        self, query: AlertQuery, *, after: AlertRecord | None = None
    ) -> Sequence[AlertRecord]:
        if after is not None and self.first is None:
            self.first = (await self.sink.list_alerts(query.model_copy(update={"limit": 1})))[0]
            self.clock.now -= self.back
            await self.sink.acknowledge(Acknowledgement(self.first.alert_id, "ops"))
        return await self.sink.list_alerts(query, after=after)

    async def acknowledge(self, ack: Acknowledgement) -> AlertRecord | None:
        raise NotImplementedError  # the list does not acknowledge

    async def alert_detail(self, alert_id: str) -> AlertDetail | None:
        raise NotImplementedError  # asked only after an acknowledgement

    def holds_work_queue(self) -> bool:
        return self.sink.holds_work_queue()

    def work_queue_holder(self) -> str | None:
        return self.sink.work_queue_holder()

    def work_queue_reachable(self) -> bool:
        return self.sink.work_queue_reachable()

    def work_queue_lease_kept(self) -> bool:
        return self.sink.work_queue_lease_kept()


async def more_than_a_page(bridge: Bridge, sink: AlertSink, clock: ManualClock) -> list[str]:
    """Alerts a00 to a24 (more than a page of the list), each stored a second after the one
    before; their ids, oldest first."""
    ids = [f"a{n:02d}" for n in range(25)]
    for alert_id in ids:
        bridge.bus.publish("disk_full", system_alert(alert_id))
        await async_wait_until(partial(stored, sink.outbox, alert_id), what=alert_id)
        clock.advance(1.0)
    return ids


async def test_an_alert_changed_between_pages_with_the_clock_set_back_is_listed_once(
    tmp_path: Path,
) -> None:
    """An alert acknowledged while the list is sent, the wall clock set back (its updated_at
    now below the page being read), is listed once, not again in a later page."""
    clock = ManualClock(T0)
    async with alert_bridge(tmp_path, clock=clock, serve_http=False) as (bridge, sink, _):
        ids = await more_than_a_page(bridge, sink, clock)
        keeper = SettingBackBetweenPages(sink, clock)
        async with served(keeper) as base:
            status, body = await request(base, "GET", "/v1/alerts")
        assert status == 200
        assert keeper.first is not None
        assert keeper.first.alert_id == "a24"
        changed = stored(sink.outbox, "a24")
        assert changed is not None
        assert changed.updated_at < T0  # it did go back in the order
    assert [alert["alert_id"] for alert in body["alerts"]] == ids[::-1]


class ChangingBetweenPages(SettingBackBetweenPages):
    """A real alert sink whose alert ``alert_id`` (not listed yet) is acknowledged, a second
    later, before the list's second page is read."""

    def __init__(self, sink: AlertSink, clock: ManualClock, alert_id: str) -> None:
        super().__init__(sink, clock, back=-1.0)
        self.alert_id = alert_id

    async def list_alerts(
        self, query: AlertQuery, *, after: AlertRecord | None = None
    ) -> Sequence[AlertRecord]:
        if after is not None and self.first is None:
            self.first = stored(self.sink.outbox, self.alert_id)
            self.clock.now -= self.back
            await self.sink.acknowledge(Acknowledgement(self.alert_id, "ops"))
        return await self.sink.list_alerts(query, after=after)


async def test_an_alert_changed_before_its_page_is_read_is_left_out_and_listed_first_next(
    tmp_path: Path,
) -> None:
    """An alert acknowledged while the list is sent, before its page is read, moves ahead of
    the pages read and is left out of that answer (the pages follow the last alert listed, not
    a snapshot: docs/http-api.md); the next answer lists it first."""
    clock = ManualClock(T0)
    async with alert_bridge(tmp_path, clock=clock, serve_http=False) as (bridge, sink, _):
        ids = await more_than_a_page(bridge, sink, clock)
        keeper = ChangingBetweenPages(sink, clock, "a00")  # the oldest: in the second page
        async with served(keeper) as base:
            status, body = await request(base, "GET", "/v1/alerts")
            assert status == 200
            assert [alert["alert_id"] for alert in body["alerts"]] == ids[:0:-1]
            status, body = await request(base, "GET", "/v1/alerts")
        assert status == 200
    assert [a["alert_id"] for a in body["alerts"]] == ["a00", *ids[:0:-1]]
    assert body["alerts"][0]["state"] == "acknowledged"


async def test_an_alert_listed_again_in_a_capped_page_leaves_the_limit_filled(
    tmp_path: Path,
) -> None:
    """An alert read again in the last page a ``limit`` leaves room for (changed with the wall
    clock set back to within that page) takes no place of the limit: the list still holds
    ``limit`` alerts, the one after the page's last included."""
    clock = ManualClock(T0)
    async with alert_bridge(tmp_path, clock=clock, serve_http=False) as (bridge, sink, _):
        ids = await more_than_a_page(bridge, sink, clock)
        # Acknowledged at T0 + 2.5 s: between a02 and a03, inside the second page.
        keeper = SettingBackBetweenPages(sink, clock, back=22.5)
        async with served(keeper) as base:
            status, body = await request(base, "GET", "/v1/alerts?limit=24")
        assert status == 200
        assert keeper.first is not None
        assert keeper.first.alert_id == "a24"
    assert [alert["alert_id"] for alert in body["alerts"]] == ids[::-1][:24]


async def test_list_says_whether_the_alerts_are_current(keeper: Keeper) -> None:
    """A replica without the work-queue lease lists what it has and says it is not the holder,
    naming the one that is, so a client can tell "no alerts" from "ask that replica"."""
    keeper.holding, keeper.holder = False, "bridge-1:5f3a"
    async with served(keeper) as base:
        status, body = await request(base, "GET", "/v1/alerts")
    assert (status, len(body["alerts"]), body["work_queue_holder"]) == (200, 2, False)
    assert body["work_queue_holder_name"] == "bridge-1:5f3a"
    assert body["work_queue_lease"] == "elsewhere"


@pytest.mark.parametrize(
    ("holding", "reachable", "kept", "lease"),
    [
        (True, True, False, "here"),
        (True, False, False, "here"),
        (False, True, False, "elsewhere"),
        (False, False, False, "unknown"),
        (False, True, True, "kept"),
        (False, False, True, "unknown"),
    ],
    ids=[
        "holder",
        "holder-cut-off",
        "another-holds-it",
        "redis-unreachable",
        "kept",
        "kept-cut-off",
    ],
)
async def test_list_says_which_replica_holds_the_lease_or_that_none_can_be_known(
    keeper: Keeper, holding: bool, reachable: bool, kept: bool, lease: str
) -> None:
    """work_queue_lease says here (this replica holds the lease, even cut off from Redis until
    it lapses), elsewhere (another replica holds it), kept (this replica keeps the lease without
    serving the work queue, as the status page's banner says), or unknown (Redis does not
    answer this replica, which does not hold it), beside the older work_queue_holder."""
    keeper.holding, keeper.reachable, keeper.holder = holding, reachable, "bridge-1:5f3a"
    keeper.kept = kept
    async with served(keeper) as base:
        status, body = await request(base, "GET", "/v1/alerts")
    assert (status, body["work_queue_lease"], body["work_queue_holder"]) == (200, lease, holding)
    assert body["work_queue_reachable"] is reachable


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("state=bogus", "state"),
        ("state=", "state"),
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("limit=%2B5", "limit"),
        ("limit=5.0", "limit"),
        ("limit=%EF%BC%95", "limit"),  # a fullwidth 5, which int() reads as 5
        ("limit=%D9%A5", "limit"),  # an Arabic-Indic 5, likewise
        ("limit=", "limit"),
        ("state=bogus&limit=0", "state"),
        ("alert_id=a%01b", "alert_id"),
        ("alert_id=%00", "alert_id"),
        ("alert_id=a%0Ab", "alert_id"),  # a line break
        ("alert_id=a%7F", "alert_id"),  # DEL
        ("alert_id=a%C2%85", "alert_id"),  # NEL, a C1 control
        pytest.param("alert_id=" + "a" * 4097, "alert_id", id="alert_id-4097-characters"),
    ],
)
async def test_list_refuses_a_bad_query_naming_the_parameter(
    keeper: Keeper, query: str, field: str
) -> None:
    """A bad ?state= or ?limit=, or an ?alert_id= holding a control character or longer than
    4 096 characters (no alert's id does: ingest refuses them), is a 400 "invalid" naming the
    parameter and what is allowed."""
    async with served(keeper) as base:
        status, body = await request(base, "GET", f"/v1/alerts?{query}")
    assert (status, body["error"], body["field"]) == (400, "invalid", field)
    allowed = {
        "state": "state must be 'firing', 'acknowledged' or 'resolved'",
        "limit": "limit must be an integer from 1 to 10000",
        "alert_id": "alert_id must not contain control characters (no alert id holds one)",
    }
    if len(query) > 4096:
        allowed["alert_id"] = "alert_id must be a string of 1-4096 characters"
    assert body["detail"] == allowed[field]
    assert keeper.queries == []


async def test_list_refuses_an_empty_alert_id_saying_to_leave_it_out(keeper: Keeper) -> None:
    """An empty ?alert_id= (no alert's id is empty) is a 400 "invalid" naming alert_id, as an
    empty ?state= or ?limit= is, not an empty list that reads as no such alert."""
    async with served(keeper) as base:
        status, body = await request(base, "GET", "/v1/alerts?alert_id=")
    assert (status, body["error"], body["field"]) == (400, "invalid", "alert_id")
    assert body["detail"] == (
        "alert_id must not be empty (no alert id is): give an alert's id, as GET /v1/alerts"
        " lists it, or leave alert_id out to list every alert"
    )
    assert keeper.queries == []


@pytest.mark.parametrize(
    ("given", "meant"), [("acknowleged", "acknowledged"), ("FIRING", "firing")]
)
async def test_list_refuses_a_misspelt_state_naming_the_one_meant(
    keeper: Keeper, given: str, meant: str
) -> None:
    """A misspelt ?state= is refused with the states there are and the one it was meant as."""
    async with served(keeper) as base:
        status, body = await request(base, "GET", f"/v1/alerts?state={given}")
    assert (status, body["field"]) == (400, "state")
    assert body["detail"] == (
        f"state must be 'firing', 'acknowledged' or 'resolved'; did you mean {meant!r}?"
    )
    assert keeper.queries == []


@pytest.mark.parametrize(
    ("query", "meant"),
    [
        ("alertid=a1", "alert_id"),
        ("id=a1", "alert_id"),
        ("state=firing&limt=5", "limit"),
        ("page=2", None),
    ],
)
async def test_list_refuses_an_unknown_parameter_naming_it(
    keeper: Keeper, query: str, meant: str | None
) -> None:
    """A misspelt filter is a 400 "invalid" naming it, the one meant when one is close (as an
    unknown body field is answered) and the three there are, not the whole list as if no filter
    were given."""
    name = query.rpartition("&")[2].partition("=")[0]
    async with served(keeper) as base:
        status, body = await request(base, "GET", f"/v1/alerts?{query}")
    assert (status, body["error"], body["field"]) == (400, "invalid", name)
    said = f" (did you mean {meant!r}?)" if meant else ""
    assert body["detail"] == (
        f"unknown query parameter {name!r}{said}; allowed: alert_id, limit, state"
    )
    assert keeper.queries == []


async def test_list_names_a_long_unknown_parameter_cut_short(keeper: Keeper) -> None:
    """An unknown query parameter of 5 000 characters is named cut to MAX_NAME_SHOWN characters
    with an ellipsis, in the detail and the field alike, as an unknown body field is."""
    async with served(keeper) as base:
        status, body = await request(base, "GET", "/v1/alerts?" + "y" * 5_000 + "=1")
    assert (status, body["error"]) == (400, "invalid")
    assert body["field"] == "y" * (MAX_NAME_SHOWN - 1) + "…"
    shown = "'" + "y" * (MAX_NAME_SHOWN - 2) + "…"
    assert body["detail"] == f"unknown query parameter {shown}; allowed: alert_id, limit, state"
    assert keeper.queries == []


@pytest.mark.parametrize("query", ["state=firing&state=resolved", "limit=5&limit=6"])
async def test_list_refuses_a_parameter_given_twice_naming_it(keeper: Keeper, query: str) -> None:
    """A filter given twice is a 400 "invalid" naming it: only the first would count, not the
    union or the last one a reader may expect."""
    name = query.partition("=")[0]
    async with served(keeper) as base:
        status, body = await request(base, "GET", f"/v1/alerts?{query}")
    assert (status, body["error"], body["field"]) == (400, "invalid", name)
    assert body["detail"] == f"query parameter {name!r} given twice"
    assert keeper.queries == []


async def test_ack_passes_the_acknowledgement_and_shows_the_alert(keeper: Keeper) -> None:
    """A valid body becomes one Acknowledgement of the alert in the path; a null note is none."""
    async with served(keeper) as base:
        status, body = await request(
            base,
            "POST",
            "/v1/alerts/a1/ack",
            body=b'{"ack_by": "ops", "ack_note": null, "resolution": "fixed"}',
        )
    assert (status, body) == (200, {"alert": keeper.records[0].as_json()})
    assert keeper.acks == [Acknowledgement("a1", "ops", None, "fixed")]


@pytest.mark.parametrize(
    ("body", "field", "meant"),
    [
        (b'{"ack_by": "alice", "resolutoin": "fixed"}', "resolutoin", "resolution"),
        (b'{"ackby": "alice"}', "ackby", "ack_by"),
        (b'{"by": "alice"}', "by", "ack_by"),
        (b'{"ack_by": "alice", "ack_note": "n", "note": "n"}', "note", "ack_note"),
        (b'{"ack_by": "alice", "extra": 1}', "extra", None),
        (b'{"ack_by": "alice", "RESOLUTION": "fixed"}', "RESOLUTION", "resolution"),
    ],
)
async def test_ack_refuses_an_unknown_field_naming_it_and_the_one_meant(
    keeper: Keeper, body: bytes, field: str, meant: str | None
) -> None:
    """A field the body does not take is a 400 "invalid" naming it (and the field meant when one
    is close, in any letter case), nothing acknowledged: a misspelt resolution would acknowledge
    without resolving."""
    async with served(keeper) as base:
        status, answer = await request(base, "POST", "/v1/alerts/a1/ack", body=body)
    assert (status, answer["error"], answer["field"]) == (400, "invalid", field)
    hint = f"; did you mean {meant!r}?" if meant else ""
    fields = "(the fields: ack_by, ack_note, resolution, starts_at)"
    assert answer["detail"] == f"unknown field {field!r}{hint} {fields}"
    assert keeper.acks == []


@pytest.mark.parametrize(
    "body", [b"{}", b'{"ack_note": "rebooting"}', b'{"resolution": "fixed", "starts_at": null}']
)
async def test_ack_without_ack_by_is_told_it_is_missing(keeper: Keeper, body: bytes) -> None:
    """A body without ack_by is a 400 "invalid" naming ack_by as missing, with a body that gives
    it, not with what an ack_by sent would have to be; nothing acknowledged."""
    async with served(keeper) as base:
        status, answer = await request(base, "POST", "/v1/alerts/a1/ack", body=body)
    assert (status, answer) == (
        400,
        {
            "error": "invalid",
            "detail": 'ack_by is missing: give it, {"ack_by": "..."}',
            "field": "ack_by",
        },
    )
    assert keeper.acks == []


async def test_ack_names_a_long_unknown_field_cut_short(keeper: Keeper) -> None:
    """An unknown field of 100 000 characters is named cut to MAX_NAME_SHOWN characters with an
    ellipsis, in the detail and the field alike: the refusal is never as large as the body."""
    name = "x" * 100_000
    body = json.dumps({"ack_by": "alice", name: 1}).encode()
    async with served(keeper) as base:
        status, answer = await request(base, "POST", "/v1/alerts/a1/ack", body=body)
    assert (status, answer["error"]) == (400, "invalid")
    assert answer["field"] == "x" * (MAX_NAME_SHOWN - 1) + "…"
    shown = "'" + "x" * (MAX_NAME_SHOWN - 2) + "…"
    assert (
        answer["detail"]
        == f"unknown field {shown} (the fields: ack_by, ack_note, resolution, starts_at)"
    )
    assert len(json.dumps(answer)) < 400
    assert keeper.acks == []


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        (b"not json", "malformed", "body"),
        (b"[" * 10_000 + b"]" * 10_000, "malformed", "body"),
        (b'["ack_by"]', "malformed", "body"),
        (b'"ops"', "malformed", "body"),
        (b"{}", "invalid", "ack_by"),
        (b'{"ack_by": ""}', "invalid", "ack_by"),
        (b'{"ack_by": null}', "invalid", "ack_by"),
        (b'{"ack_by": 5}', "invalid", "ack_by"),
        (b'{"ack_by": "' + b"x" * 4097 + b'"}', "invalid", "ack_by"),
        (b'{"ack_by": "ops", "ack_note": "' + b"x" * 4097 + b'"}', "invalid", "ack_note"),
        (b'{"ack_by": "ops", "ack_note": ""}', "invalid", "ack_note"),
        (b'{"ack_by": "ops", "ack_note": ["x"]}', "invalid", "ack_note"),
        (b'{"ack_by": "ops", "resolution": 1}', "invalid", "resolution"),
        (b'{"ack_by": 1, "resolution": 1}', "invalid", "ack_by"),
    ],
)
async def test_ack_refuses_a_bad_body_naming_the_field(
    keeper: Keeper, body: bytes, error: str, field: str
) -> None:
    """A body that is not a JSON object is "malformed" (the field is the body); a bad field is
    "invalid", named."""
    async with served(keeper) as base:
        status, answer = await request(base, "POST", "/v1/alerts/a1/ack", body=body)
    assert (status, answer["error"], answer.get("field")) == (400, error, field)
    if error == "invalid" and field != "ack_by":
        assert answer["detail"] == f"{field} must be a string of 1-4096 characters"
    assert keeper.acks == []


@pytest.mark.parametrize(
    ("body", "field", "shown"),
    [
        (b'{"ack_by": "alice", "ack_by": "mallory"}', "ack_by", "'ack_by'"),
        (
            b'{"ack_by": "ops", "resolution": "fixed", "resolution": "no"}',
            "resolution",
            "'resolution'",
        ),
        (
            b'{"ack_by": "ops", "' + b"k" * 100 + b'": 1, "' + b"k" * 100 + b'": 2}',
            "k" * 79 + "…",
            "'" + "k" * 78 + "…",
        ),
    ],
    ids=["ack_by", "resolution", "long-key"],
)
async def test_ack_refuses_a_key_given_twice_naming_it(
    keeper: Keeper, body: bytes, field: str, shown: str
) -> None:
    """A key given twice in the body is 400 malformed naming it (cut at 80 characters), as
    ingest refuses one: parsers differ on which of the two counts, so which name acknowledged
    or whether the alert was resolved would be a guess. Nothing is acknowledged."""
    async with served(keeper) as base:
        status, answer = await request(base, "POST", "/v1/alerts/a1/ack", body=body)
    assert (status, answer["error"], answer["field"]) == (400, "malformed", field)
    assert answer["detail"] == f"the key {shown} is given twice"
    assert keeper.acks == []


@pytest.mark.parametrize(
    "name",
    [
        "x" * 201,
        "ops\x00",
        "ops\nack_by: admin",
        "ops\r",
        "\x1b[31mops",
        "o\tps",
        "ops\x7f",
        "ops\x85",
        "ops\x9b2J",
        "ops\u2028ack_by: admin",
        "\u202eadmin",
        "ops\u2066x\u2069",
        "ops\u200f",
        "ops\u061cx",
        "   ",
        "\xa0",
        "\u3000",
        " \u2003\u205f\u1680\u202f ",
        "\u200b",
        "\ufeff\u2060\u3164",
        "\U000e0041\U000e0001\U000e0100",
        "\U0001d173\U0001bca0",
        "\u2800",
        "\u0301",
        " \u0301\u20dd ",
    ],
    ids=[
        "201-chars",
        "nul",
        "newline",
        "cr",
        "esc",
        "tab",
        "del",
        "c1-nel",
        "c1-csi",
        "line-separator",
        "rlo",
        "isolate",
        "rlm",
        "alm",
        "spaces",
        "no-break-space",
        "ideographic-space",
        "unicode-blanks",
        "zero-width-space",
        "invisibles",
        "tags-and-variation-selectors",
        "astral-invisibles",
        "braille-blank",
        "combining-mark",
        "combining-marks-among-spaces",
    ],
)
async def test_ack_refuses_a_blank_name_one_with_a_control_character_or_over_200_characters(
    keeper: Keeper, name: str
) -> None:
    """ack_by is a name of 1-200 characters (what the status page's field takes), not blank,
    with no control character, C0, DEL or C1, line or paragraph separator or bidirectional
    control: a NUL, line break or ESC would forge lines in logs, terminals and the alert's
    history, a U+202E reorder what follows it, and spaces or other Unicode whitespace alone
    (U+00A0, U+3000), or characters drawn as nothing (U+200B, U+FEFF, past the BMP U+E0001 or
    U+1D173, the braille blank U+2800), or combining marks with no letter (U+0301), show as no
    one. The refusal is 400 invalid naming ack_by and what it takes."""
    async with served(keeper) as base:
        status, answer = await request(
            base, "POST", "/v1/alerts/a1/ack", body=json.dumps({"ack_by": name}).encode()
        )
    assert (status, answer["error"], answer["field"]) == (400, "invalid", "ack_by")
    assert answer["detail"] == (
        "ack_by must be a string of 1-200 characters that is not blank (spaces, other whitespace,"
        " invisible characters or combining marks only), with no control character (such as NUL,"
        " a line break, a tab or ESC, or a bidirectional control such as U+202E)"
    )
    assert keeper.acks == []


@pytest.mark.parametrize(
    "name",
    ["x" * 200, "Zoë Ångström", "Zoe\u0308", "ops (on call)", "名前", " ops ", "\u3000名前"],
)
async def test_ack_takes_a_name_of_up_to_200_printable_characters(
    keeper: Keeper, name: str
) -> None:
    """A name of 200 characters, one outside ASCII, or one with blanks around it, is taken as
    given."""
    async with served(keeper) as base:
        status, _ = await request(
            base, "POST", "/v1/alerts/a1/ack", body=json.dumps({"ack_by": name}).encode()
        )
    assert status == 200
    assert keeper.acks == [Acknowledgement("a1", name, None, None)]


@pytest.mark.parametrize("model", [AckRequest, AlertAck], ids=["admin-api", "bus"])
def test_ack_by_is_as_long_at_the_admin_api_as_on_the_bus(model: type[BaseModel]) -> None:
    """The admin API's ack_by and AlertAck's (an acknowledgement sent on the bus) take a name
    of up to the same 200 characters, and refuse a longer one alike, naming ack_by."""
    fields = {"alert_id": "a1"} if model is AlertAck else {}
    model.model_validate({**fields, "ack_by": "x" * 200})
    with pytest.raises(ValidationError) as refused:
        model.model_validate({**fields, "ack_by": "x" * 201})
    assert [error["loc"] for error in refused.value.errors()] == [("ack_by",)]


_NAME_CHARACTERS = st.characters(codec="utf-8") | st.sampled_from(
    [chr(c) for c in (*range(0x2026, 0x2030), *range(0x2064, 0x206B), *range(0x200B, 0x2011))]
    + ["\u061b", "\u061c", "\u061d", "\x00", "\n", "\x7f", "\x85", "\xa0", " ", "\u3000"]
)


@settings(max_examples=500, deadline=None)
@given(name=st.text(_NAME_CHARACTERS, min_size=1, max_size=20))
def test_ack_by_takes_the_names_an_alert_ack_from_the_bus_takes(name: str) -> None:
    """The admin API's ack_by and AlertAck's (an acknowledgement sent on the bus) refuse the
    same characters: whatever the one takes (up to its 200 characters), the other takes."""
    try:
        AckRequest.model_validate({"ack_by": name})
    except ValidationError:
        taken_here = False
    else:
        taken_here = True
    try:
        AlertAck.model_validate({"alert_id": "a1", "ack_by": name})
    except ValidationError:
        taken_on_the_bus = False
    else:
        taken_on_the_bus = True
    assert taken_here == taken_on_the_bus


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        ({}, "(none sent)"),
        ({"Content-Type": "text/plain"}, "(not text/plain)"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "application/x-www-form"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, "(not multipart/form-data)"),
        ({"Content-Type": "application/json; charset=latin-1"}, "not 'latin-1'"),
        ({"Content-Type": "application/json; charset=bogus"}, "not 'bogus'"),
        ({"Content-Type": "application/json", "Content-Encoding": "br"}, "'br'"),
    ],
    ids=["none", "text", "form", "multipart", "latin-1", "bogus-charset", "brotli"],
)
async def test_ack_refuses_a_body_that_is_not_json_with_415(
    keeper: Keeper, headers: dict[str, str], said: str
) -> None:
    """As ingest does: a Content-Type other than application/json, a charset other than UTF-8
    (an unknown one included) or a Content-Encoding the bridge does not expand is 415
    unsupported_media_type saying what was sent, and nothing is acknowledged, whatever the body
    holds."""
    async with served(keeper) as base:
        status, answer = await request(
            base, "POST", "/v1/alerts/a1/ack", body=b'{"ack_by": "ops"}', headers=AUTH | headers
        )
    assert (status, answer["error"]) == (415, "unsupported_media_type")
    assert said in answer["detail"]
    assert "field" not in answer
    assert keeper.acks == []


@pytest.mark.parametrize(
    ("content_type", "coding"),
    [
        ("application/json; charset=utf-8", None),
        ("Application/JSON; charset=UTF-8", None),
        ("application/json; charset=us-ascii", None),
        ("application/json", "gzip"),
        ("application/json", "identity"),
    ],
)
async def test_ack_takes_json_labelled_utf8_ascii_or_compressed(
    keeper: Keeper, content_type: str, coding: str | None
) -> None:
    """application/json with a UTF-8 or ASCII charset, in any letter case, plain or gzipped, is
    read."""
    body = b'{"ack_by": "ops"}'
    headers = AUTH | {"Content-Type": content_type}
    if coding is not None:
        headers["Content-Encoding"] = coding
        body = gzip.compress(body) if coding == "gzip" else body
    async with served(keeper) as base:
        status, _ = await request(base, "POST", "/v1/alerts/a1/ack", body=body, headers=headers)
    assert status == 200
    assert keeper.acks == [Acknowledgement("a1", "ops", None, None)]


async def test_ack_of_an_unknown_alert_is_a_404(keeper: Keeper) -> None:
    """Acknowledging an alert nobody knows answers 404 unknown_alert naming alert_id."""
    async with served(keeper) as base:
        status, body = await request(base, "POST", "/v1/alerts/nope/ack", body=b'{"ack_by": "x"}')
    assert (status, body) == (
        404,
        {"error": "unknown_alert", "detail": "no alert 'nope'", "field": "alert_id"},
    )


async def test_ack_of_an_id_longer_than_an_alert_ack_carries_is_refused_unstored(
    keeper: Keeper,
) -> None:
    """An alert id over 4 096 characters (AlertAck's limit) answers 400 naming alert_id, and
    nothing is acknowledged."""
    async with served(keeper) as base:
        path = "/v1/alerts/" + "a" * 4097 + "/ack"
        status, body = await request(base, "POST", path, body=b'{"ack_by": "x"}')
    assert (status, body["error"], body["field"]) == (400, "invalid", "alert_id")
    assert body["detail"] == "alert_id must be a string of 1-4096 characters"
    assert keeper.acks == []


@pytest.mark.parametrize(
    "quoted_id",
    ["a%01b", "%00", "a%0Ab", "a%7F", "a%C2%85"],  # C0, NUL, a line break, DEL, NEL (C1)
)
async def test_ack_of_an_id_holding_a_control_character_is_refused_naming_it(
    keeper: Keeper, quoted_id: str
) -> None:
    """An alert id holding a control character (ingest refuses them in an alert id) answers 400
    "invalid" naming alert_id in GET /v1/alerts?alert_id='s words, not 404, nothing
    acknowledged."""
    async with served(keeper) as base:
        path = f"/v1/alerts/{quoted_id}/ack"
        status, body = await request(base, "POST", path, body=b'{"ack_by": "x"}')
    assert (status, body) == (
        400,
        {
            "error": "invalid",
            "detail": "alert_id must not contain control characters (no alert id holds one)",
            "field": "alert_id",
        },
    )
    assert keeper.acks == []


@pytest.mark.parametrize(
    ("token", "headers", "status", "error"),
    [
        (ADMIN_TOKEN, {}, 401, "unauthorized"),
        (ADMIN_TOKEN, {"Authorization": "Bearer wrong"}, 401, "unauthorized"),
        (None, AUTH, 403, "admin_disabled"),
    ],
)
@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/alerts"), ("POST", "/v1/alerts/a1/ack")])
async def test_both_routes_need_the_admin_token(
    keeper: Keeper,
    token: str | None,
    headers: dict[str, str],
    status: int,
    error: str,
    method: str,
    path: str,
) -> None:
    """Without the admin token (or with none configured) nothing is read or changed."""
    async with served(keeper, token) as base:
        answer = await request(base, method, path, body=b'{"ack_by": "x"}', headers=headers)
    assert (answer[0], answer[1]["error"]) == (status, error)
    assert (keeper.queries, keeper.acks) == ([], [])


HOUR = 3600.0
# What a time earlier than the episode's start is said to be when the history does not tell.
EITHER = "it resolved and fired again since, or that time is mistyped"


def _entries(*entries: tuple[float, HistoryEvent]) -> tuple[HistoryEntry, ...]:
    """A history of ``(at, event)`` entries, oldest first."""
    return tuple(HistoryEntry(at, event, "") for at, event in entries)


def _shown(seconds: float) -> str:
    """``seconds`` as the admin API shows a time."""
    return format_timestamp(utc_from_seconds(seconds))


FIRED, RESOLVED, TAKEN_OVER = HistoryEvent.FIRED, HistoryEvent.RESOLVED, HistoryEvent.TAKEN_OVER
CHANGED = HistoryEvent.SEVERITY_CHANGED


@pytest.mark.parametrize(
    ("history", "given", "said"),
    [
        # Fired, resolved an hour later and fired again: the first episode's start given late.
        (_entries((T0 - 2 * HOUR, FIRED), (T0 - HOUR, RESOLVED), (T0, FIRED)), T0 - 2 * HOUR,
         f"it resolved at {_shown(T0 - HOUR)} and fired again since"),
        # Its only episode, 15:00 typed for 15:21.
        (_entries((T0, FIRED)), T0 - 21 * 60,
         "it has not resolved since then, so no episode of it started then: that time is"
         " mistyped"),
        # Resolved at the time given, between two episodes: no episode started then either.
        (_entries((T0 - 2 * HOUR, FIRED), (T0 - HOUR, RESOLVED), (T0, FIRED)), T0 - 600,
         "it has not resolved since then, so no episode of it started then: that time is"
         " mistyped"),
        # A day off, within the week a resolved alert is kept: an earlier record of it would
        # still be here.
        (_entries((T0, FIRED)), T0 - 24 * HOUR,
         "it has not resolved since then, so no episode of it started then: that time is"
         " mistyped"),
        # Eight days off: an episode then may have resolved and been forgotten since.
        (_entries((T0, FIRED)), T0 - 8 * 24 * HOUR, EITHER),
        # Taken over from another replica since: what happened there is not in this history.
        (_entries((T0 - 2 * HOUR, FIRED), (T0 + 1, TAKEN_OVER)), T0 - HOUR, EITHER),
        # Cut to its newest entries (a severity changing often), none as old as the time given.
        (_entries((T0, FIRED), *[(T0 + n, CHANGED) for n in range(1, 100)]), T0 - HOUR, EITHER),
        # No history found.
        (None, T0 - HOUR, EITHER),
    ],
    ids=["fired again", "one episode", "between episodes", "a day off", "past the week kept",
         "taken over", "cut short", "no history"],
)  # fmt: skip
async def test_an_ack_for_an_earlier_time_says_what_the_alert_s_history_tells_of_it(
    keeper: Keeper, history: tuple[HistoryEntry, ...] | None, given: float, said: str
) -> None:
    """An ack naming a time earlier than the start of the alert's episode firing now is 409
    another_episode saying, by the alert's history, that it resolved after that time (when) and
    fired again, or that it did not, so that time is mistyped; where the history does not reach
    back to that time (taken over from another replica, cut to its newest entries, or begun
    more than the week a resolved alert is kept after it), that it is either."""
    if history is not None:
        keeper.histories["a1"] = history
    ack = {"ack_by": "bob", "starts_at": _shown(given)}
    async with served(keeper) as base:
        status, body = await request(
            base, "POST", "/v1/alerts/a1/ack", body=json.dumps(ack).encode()
        )
    assert (status, body["error"], body["field"]) == (409, "another_episode", "starts_at")
    assert (
        f" given, which is earlier: {said} ({_shown(T0)} names the episode firing now)"
        in (body["detail"])
    )
