"""Ingest and the bus's store: a batch the transport cannot take answered 503 or 413, one a stop
ended taken again, none lost."""

from __future__ import annotations

import asyncio
import io
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bridge.app import Bridge
from bridge.bus import (
    SIGNATURE_HEADER,
    Durability,
    Frame,
    Keyring,
    LocalCoordinator,
    TransportCapabilities,
)
from bridge.cluster import cluster_monitor
from bridge.http import build_app
from bridge.settings import Settings
from bridge.sinks.alerts import alert_sink
from bridge.sinks.prometheus import prometheus_sink
from tests.http.helpers import NDJSON, Server, ServerFactory, body_of, envelope, signed
from tests.support import ADMIN_TOKEN, async_wait_until, critical_alert_body, make_settings


class BoundedTransport:
    """A shared-bus transport whose store takes ``room`` frames, then refuses."""

    name = "bounded"

    def __init__(self, room: int) -> None:
        self.room = room
        self.sent: list[Frame] = []

    async def start(self, receive: Any, group_instances: frozenset[str] = frozenset()) -> None:
        """Nothing comes back on this transport."""

    def send(self, frame: Frame) -> bool:
        if len(self.sent) >= self.room:
            return False
        self.sent.append(frame)
        return True

    async def send_durably(self, frames: Sequence[Frame]) -> Durability:
        if len(self.sent) + len(frames) > self.room:
            return Durability.FULL
        self.sent.extend(frames)
        return Durability.COMMITTED

    @property
    def capabilities(self) -> TransportCapabilities:
        return TransportCapabilities(shared=True, coordinator=LocalCoordinator())

    def attach(self, *, resign: Any, dropped: Any) -> None:
        """Frames never wait here."""

    def readiness(self) -> str | None:
        return None

    def hearing(self) -> str | None:
        return None

    async def aclose(self, seconds: float | None = None) -> None:
        """Nothing to close."""


async def test_ingest_answers_503_when_the_transport_cannot_store_the_batch() -> None:
    """A batch that would overflow a shared bus's store (the spool on Redis) gets 503, and goes
    in when resent."""
    transport = BoundedTransport(room=2)
    settings = make_settings(EXESDB_HTTP_ADDR="127.0.0.1:0", EXESDB_INGEST="true")
    bridge = Bridge(settings, components=[], transport=transport)
    await bridge.start()
    try:
        async with aiohttp.ClientSession() as session:
            server = Server(bridge, session)
            batch = body_of(envelope(), envelope(), envelope())
            status, answer = await server.post(batch, NDJSON)
            assert (status, answer["error"]) == (503, "overloaded")
            assert transport.sent == []
            transport.room = 10
            status, answer = await server.post(batch, NDJSON)
            assert (status, answer) == (202, {"accepted": 3})
            assert len(transport.sent) == 3
    finally:
        await bridge.aclose()


async def test_ingest_is_not_refused_for_the_cluster_monitor_s_full_queue(
    serve: ServerFactory,
) -> None:
    """The cluster monitor (a batch subscriber, not required) never pushes back: a batch
    overflowing its queue is accepted, and what it cannot take is dropped and counted."""
    server = await serve([cluster_monitor], EXESDB_BUS_QUEUE_SIZE="2")
    nodes = [f"node{n}@host" for n in range(5)]
    status, answer = await server.post(body_of(*(envelope(node=node) for node in nodes)), NDJSON)
    assert (status, answer) == (202, {"accepted": 5})
    dropped = server.bridge.registry.get_sample_value(
        "exesdb_bus_dropped_total", {"subscriber": "cluster"}
    )
    assert dropped == 3


async def test_a_batch_larger_than_a_subscribers_whole_queue_is_413_not_503(
    serve: ServerFactory,
) -> None:
    """A batch holding more messages for a subscriber than its whole queue ever holds is 413
    ``too_large`` saying to send smaller batches: a 503 would have the sender resend it forever.
    The refusal is counted once, and none of its ids is remembered: its messages sent again in
    smaller batches are taken."""
    server = await serve([prometheus_sink], EXESDB_BUS_QUEUE_SIZE="3")
    refused = [envelope() for _ in range(4)]
    status, answer = await server.post(body_of(*refused), NDJSON)
    assert (status, answer["error"], answer["field"]) == (413, "too_large", "body")
    assert "4 messages for subscriber 'prometheus'" in answer["detail"]
    assert "smaller batches" in answer["detail"]
    assert server.rejected("too_large") == 1
    status, answer = await server.post(body_of(*refused[:3]), NDJSON)
    assert (status, answer) == (202, {"accepted": 3})
    await async_wait_until(
        lambda: all(subscription.idle for subscription in server.bridge.bus.subscriptions),
        what="the sink's queue drained",
    )
    status, answer = await server.post(body_of(refused[3]), NDJSON)
    assert (status, answer) == (202, {"accepted": 1})
    assert server.rejected("too_large") == 1


async def test_a_batch_larger_than_a_queue_is_logged_as_that_not_as_a_body_too_large(
    serve: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The refusal's log line for a batch more than a subscriber's whole queue holds names the
    queue's bounds, not only EXESDB_MAX_BODY_BYTES, which the body is well within."""
    server = await serve([prometheus_sink], EXESDB_BUS_QUEUE_SIZE="3")
    with caplog.at_level(logging.INFO, "bridge.bus.verify"):
        status, _ = await server.post(body_of(*(envelope() for _ in range(4))), NDJSON)
    assert status == 413
    [line] = [r.getMessage() for r in caplog.records if r.name == "bridge.bus.verify"]
    assert line.startswith("refused a message as too_large")
    assert "EXESDB_BUS_QUEUE_SIZE" in line


async def test_a_large_batch_on_a_shared_bus_is_signed_with_the_loop_serving_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The frames of a large batch for a shared bus (Redis) are encoded and signed with the
    event loop let run between groups of them: a task waiting for its turn runs between the
    first frame signed and the last, and the batch is stored whole, in order."""
    transport = BoundedTransport(room=20_000)
    limit = str(4 * 1024 * 1024)
    settings = make_settings(
        EXESDB_HTTP_ADDR="127.0.0.1:0", EXESDB_INGEST="true", EXESDB_MAX_BODY_BYTES=limit
    )
    bridge = Bridge(settings, components=[], transport=transport)
    await bridge.start()
    items = [envelope() for _ in range(8_000)]
    batch = body_of(*items)
    header = signed(batch)
    turns = 0
    seen: list[int] = []  # the loop's turns as each frame is signed
    sign = Keyring.sign

    def noted(keyring: Keyring, body: bytes) -> str:
        seen.append(turns)
        return sign(keyring, body)

    async def count() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)  # not a wait: one turn of the loop each

    monkeypatch.setattr(Keyring, "sign", noted)
    counter = asyncio.create_task(count())
    try:
        async with aiohttp.ClientSession() as session:
            url = Server(bridge, session).url + "/v1/messages"
            headers = {"Content-Type": NDJSON, SIGNATURE_HEADER: header}
            # A file-like body: aiohttp's client warns of a large one given as bytes.
            async with session.post(url, data=io.BytesIO(batch), headers=headers) as response:
                status, answer = response.status, await response.json()
    finally:
        counter.cancel()
        await bridge.aclose()
    assert (status, answer) == (202, {"accepted": 8_000})
    assert len(seen) == 8_000
    # Made in one go, some 15 us a frame, they held the loop 70-160 ms for 1 MiB of them.
    assert seen[0] < seen[-1]
    assert [frame.decoded.id for frame in transport.sent if frame.decoded] == [
        item["id"] for item in items
    ]


async def test_a_durable_publish_cancelled_while_its_frames_are_made_stores_none_of_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A publisher on a shared bus cancelled while its batch's frames are made (an ingest
    request ended by the bridge's stop) stores none of them and hands them all to ``lost``:
    ingest forgets their ids, so the sender's resend is taken."""
    transport = BoundedTransport(room=20_000)
    settings = make_settings(EXESDB_HTTP_ADDR="127.0.0.1:0", EXESDB_INGEST="true")
    bridge = Bridge(settings, components=[], transport=transport)
    await bridge.start(serve_http=False)
    try:
        admitted = bridge.verifier.verify_batch([body_of(envelope()) for _ in range(8_000)])
        assert isinstance(admitted, list)
        publishing: asyncio.Task[Any] | None = None
        sign = Keyring.sign

        def cancelling(keyring: Keyring, body: bytes) -> str:
            if publishing is not None:
                publishing.cancel()  # taken at the publisher's next wait
            return sign(keyring, body)

        monkeypatch.setattr(Keyring, "sign", cancelling)
        publishing = asyncio.create_task(
            bridge.bus.publish_verified_durably(admitted, 5.0, lost=bridge.verifier.forget)
        )
        with pytest.raises(asyncio.CancelledError):
            await publishing
        assert transport.sent == []
        assert not any(bridge.verifier.holds(item) for item in admitted)
    finally:
        await bridge.aclose()


class StallingTransport(BoundedTransport):
    """A shared-bus transport whose store waits for ``release``, then fails (a disk refusing
    the spool's write)."""

    def __init__(self) -> None:
        super().__init__(room=100)
        self.release = asyncio.Event()
        self.stores = 0

    async def send_durably(self, frames: Sequence[Frame]) -> Durability:
        self.stores += 1
        if self.stores > 1:
            return await super().send_durably(frames)
        await self.release.wait()
        return Durability.FAILED


async def test_an_uncommitted_batch_whose_store_then_fails_is_counted_and_taken_again() -> None:
    """A batch answered 202 ``"committed": false`` whose store then fails is counted as dropped
    and its ids forgotten: the sender's resend is taken, not refused as replayed."""
    transport = StallingTransport()
    settings = make_settings(EXESDB_HTTP_ADDR="127.0.0.1:0", EXESDB_INGEST="true")
    bridge = Bridge(settings, components=[], transport=transport)
    await bridge.start(serve_http=False)
    runner = web.AppRunner(build_app(bridge, commit_wait_seconds=0.05))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]

    def dropped() -> float:
        sample = {"subscriber": "transport"}
        return bridge.registry.get_sample_value("exesdb_bus_dropped_total", sample) or 0.0

    try:
        batch = body_of(envelope(), envelope(), envelope())
        headers = {"Content-Type": NDJSON}
        url = f"http://127.0.0.1:{port}/v1/messages"
        async with aiohttp.ClientSession() as session:

            async def post() -> tuple[int, Any]:
                sent = {**headers, SIGNATURE_HEADER: signed(batch)}
                async with session.post(url, data=batch, headers=sent) as response:
                    return response.status, await response.json()

            assert await post() == (202, {"accepted": 3, "committed": False})
            transport.release.set()
            await async_wait_until(lambda: dropped() == 3, what="the failed store counted")
            assert await post() == (202, {"accepted": 3})
            assert len(transport.sent) == 3
    finally:
        transport.release.set()
        await runner.cleanup()
        await bridge.aclose()


class ClosingTransport(BoundedTransport):
    """A shared-bus transport whose stores wait for its close, which fails them (a spool whose
    disk hung, then refused the writes; or ends them as ``settles_as`` says) or, ``hangs``,
    leaves them unfinished."""

    def __init__(self, *, hangs: bool, settles_as: Durability = Durability.FAILED) -> None:
        super().__init__(room=100)
        self.hangs = hangs
        self.settles_as = settles_as
        self.storing = asyncio.Event()
        self.stores: list[asyncio.Future[Durability]] = []

    async def send_durably(self, frames: Sequence[Frame]) -> Durability:
        self.stores.append(asyncio.get_running_loop().create_future())
        self.storing.set()
        return await self.stores[-1]

    async def aclose(self, seconds: float | None = None) -> None:
        for store in self.stores:
            if not self.hangs and not store.done():
                store.set_result(self.settles_as)


async def restarted_takes(settings: Settings, batch: bytes) -> tuple[int, Any]:
    """What a bridge started again on ``settings`` (its replay memory kept) answers ``batch``."""
    transport = BoundedTransport(room=100)
    bridge = Bridge(settings, components=[], transport=transport, keep_replay=True)
    await bridge.start()
    try:
        async with aiohttp.ClientSession() as session:
            return await Server(bridge, session).post(batch, NDJSON)
    finally:
        await bridge.aclose()


@pytest.mark.parametrize("hangs", [False, True], ids=["failed-at-close", "unfinished-at-close"])
async def test_a_batch_whose_ingest_a_stop_ended_unanswered_and_unstored_is_taken_again(
    tmp_path: Path, hangs: bool
) -> None:
    """A batch whose ingest request the bridge's stop ended unanswered, whose store the
    transport's close then fails or leaves unfinished, has its ids forgotten before the stop
    keeps the replay memory: the resend after the restart is taken, not refused as replayed."""
    settings = make_settings(
        EXESDB_HTTP_ADDR="127.0.0.1:0",
        EXESDB_INGEST="true",
        EXESDB_STATE_DIR=str(tmp_path),
        EXESDB_SHUTDOWN_TIMEOUT_MS="400",
    )
    transport = ClosingTransport(hangs=hangs)
    bridge = Bridge(settings, components=[], transport=transport, keep_replay=True)
    await bridge.start()
    batch = body_of(envelope(), envelope())
    await post_ended_by_the_stop(bridge, transport, batch)
    assert await restarted_takes(settings, batch) == (202, {"accepted": 2})


async def post_ended_by_the_stop(bridge: Bridge, transport: ClosingTransport, batch: bytes) -> None:
    """Post ``batch`` to the started ``bridge`` and stop it while the batch's store is under
    way: the request ends unanswered."""
    try:
        async with aiohttp.ClientSession() as session:
            sent = asyncio.ensure_future(Server(bridge, session).post(batch, NDJSON))
            await async_wait_until(transport.storing.is_set, what="the store under way")
            await bridge.aclose()
            with pytest.raises(aiohttp.ClientError):  # ended unanswered
                await sent
    finally:
        await bridge.aclose()


async def test_a_batch_a_stop_ended_unanswered_but_stored_after_is_published() -> None:
    """A batch whose ingest request the stop ended unanswered, but which the transport's close
    then stores after all, counts in exesdb_bus_published_total (and not as dropped)."""
    settings = make_settings(
        EXESDB_HTTP_ADDR="127.0.0.1:0", EXESDB_INGEST="true", EXESDB_SHUTDOWN_TIMEOUT_MS="400"
    )
    transport = ClosingTransport(hangs=False, settles_as=Durability.COMMITTED)
    bridge = Bridge(settings, components=[], transport=transport)
    await bridge.start()
    await post_ended_by_the_stop(bridge, transport, body_of(envelope(), envelope()))
    published = sum(
        sample.value
        for metric in bridge.registry.collect()
        if metric.name == "exesdb_bus_published"
        for sample in metric.samples
        if sample.name == "exesdb_bus_published_total"
    )
    assert published == 2
    dropped = {"subscriber": "transport"}
    assert not bridge.registry.get_sample_value("exesdb_bus_dropped_total", dropped)


async def test_a_batch_answered_uncommitted_whose_store_a_stop_left_unfinished_is_taken_again(
    tmp_path: Path,
) -> None:
    """A batch answered 202 ``"committed": false`` whose store the stop leaves unfinished is
    counted as dropped and its ids forgotten before the stop keeps the replay memory: the
    resend after the restart is taken, not refused as replayed."""
    settings = make_settings(
        EXESDB_HTTP_ADDR="127.0.0.1:0",
        EXESDB_INGEST="true",
        EXESDB_STATE_DIR=str(tmp_path),
        EXESDB_SHUTDOWN_TIMEOUT_MS="400",
    )
    transport = ClosingTransport(hangs=True)
    bridge = Bridge(settings, components=[], transport=transport, keep_replay=True)
    await bridge.start(serve_http=False)
    runner = web.AppRunner(build_app(bridge, commit_wait_seconds=0.05))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    batch = body_of(envelope(), envelope())
    try:
        headers = {"Content-Type": NDJSON, SIGNATURE_HEADER: signed(batch)}
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/messages"
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=batch, headers=headers) as response,
        ):
            assert (response.status, await response.json()) == (
                202,
                {"accepted": 2, "committed": False},
            )
    finally:
        await runner.cleanup()
        await bridge.aclose()
    dropped = {"subscriber": "transport"}
    assert bridge.registry.get_sample_value("exesdb_bus_dropped_total", dropped) == 2
    assert await restarted_takes(settings, batch) == (202, {"accepted": 2})


class FailingOnceTransport(BoundedTransport):
    """A shared-bus transport whose first store raises (a bug or a fault below the bus)."""

    def __init__(self) -> None:
        super().__init__(room=100)
        self.stores = 0

    async def send_durably(self, frames: Sequence[Frame]) -> Durability:
        self.stores += 1
        if self.stores == 1:
            raise RuntimeError("the store broke")
        return await super().send_durably(frames)


async def test_a_batch_whose_store_raises_answers_500_and_is_taken_again() -> None:
    """A batch whose store raises is answered 500 ``internal`` in the one error shape and its
    ids are forgotten: the sender's resend is taken, not refused as replayed (the batch would be
    lost)."""
    transport = FailingOnceTransport()
    settings = make_settings(EXESDB_HTTP_ADDR="127.0.0.1:0", EXESDB_INGEST="true")
    bridge = Bridge(settings, components=[], transport=transport)
    await bridge.start()
    try:
        async with aiohttp.ClientSession() as session:
            server = Server(bridge, session)
            batch = body_of(envelope(), envelope())
            sent = {"Content-Type": NDJSON, SIGNATURE_HEADER: signed(batch)}
            async with session.post(server.url + "/v1/messages", data=batch, headers=sent) as r:
                assert r.status == 500
                assert (await r.json())["error"] == "internal"
            assert await server.post(batch, NDJSON) == (202, {"accepted": 2})
            assert len(transport.sent) == 2
    finally:
        await bridge.aclose()


async def test_an_alert_stored_in_an_outbox_file_removed_before_any_look_is_answered_503(
    serve: ServerFactory, tmp_path: Path
) -> None:
    """The state directory removed under an in-process bridge and an alert ingested before the
    alert sink's next look at it (about a second apart): the outbox commits it to the deleted
    file, so ingest answers 503 not_committed naming that file rather than 202; the bridge is
    not ready from then on, and the resend (its ids forgotten) is answered so too."""
    state = tmp_path / "state"
    server = await serve([alert_sink], EXESDB_STATE_DIR=str(state))
    assert (await server.get("/readyz"))[0] == 200
    body = critical_alert_body("removed-1", "state directory removed", "just before it")
    shutil.rmtree(state)
    status, answer = await server.post(body)
    assert (status, answer["error"]) == (503, "not_committed"), answer
    assert f"{state / 'alerts.sqlite3'} was deleted (EXESDB_STATE_DIR" in answer["detail"]
    status, ready = await server.get("/readyz")
    assert status == 503
    assert answer["detail"] == ready["checks"]["alerts"]["reason"] + "; retry later"
    assert await server.post(body) == (status, answer)


async def _listed_alert(server: Server, alert_id: str) -> None:
    """Ingest a critical alert ``alert_id`` and wait until the outbox has stored it."""
    assert (await server.post(critical_alert_body(alert_id, "disk full", "on n1")))[0] == 202

    async def listed() -> bool:
        status, answer = await server.get(f"/v1/alerts?alert_id={alert_id}", token=ADMIN_TOKEN)
        return status == 200 and len(answer["alerts"]) == 1

    await async_wait_until(listed)


async def _ack(server: Server, alert_id: str) -> tuple[int, dict[str, Any]]:
    return await server.post(
        b'{"ack_by": "ops"}',
        signature=None,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        path=f"/v1/alerts/{alert_id}/ack",
    )


async def test_an_ack_stored_in_an_outbox_file_removed_is_answered_503_and_so_is_its_retry(
    serve: ServerFactory, tmp_path: Path
) -> None:
    """The state directory removed and an alert acknowledged before the sink's next look: the
    ack, committed to the deleted file, is answered 503 not_committed, the bridge is not ready
    at once (not at the next housekeeping pass), and the retry, which finds the alert
    acknowledged in that file, is answered so too rather than 200."""
    state = tmp_path / "state"
    server = await serve([alert_sink], EXESDB_STATE_DIR=str(state))
    await _listed_alert(server, "ack-removed-1")
    shutil.rmtree(state)
    status, answer = await _ack(server, "ack-removed-1")
    assert (status, answer["error"]) == (503, "not_committed"), answer
    assert f"{state / 'alerts.sqlite3'} was deleted (EXESDB_STATE_DIR" in answer["detail"]
    assert "lost at the next start" in answer["detail"]
    assert (await server.get("/readyz"))[0] == 503
    status, again = await _ack(server, "ack-removed-1")
    assert (status, again["error"]) == (503, "not_committed"), again


async def test_an_ack_of_an_alert_acknowledged_before_its_outbox_file_went_is_answered_503(
    serve: ServerFactory, tmp_path: Path
) -> None:
    """An alert acknowledged (200), then the state directory removed: an ack sent again before
    the sink's next look finds it acknowledged in the deleted file and stores nothing, but is
    answered 503 not_committed, not 200: the acknowledgement is lost at the next start."""
    state = tmp_path / "state"
    server = await serve([alert_sink], EXESDB_STATE_DIR=str(state))
    await _listed_alert(server, "ack-removed-2")
    assert (await _ack(server, "ack-removed-2"))[0] == 200
    shutil.rmtree(state)
    status, answer = await _ack(server, "ack-removed-2")
    assert (status, answer["error"]) == (503, "not_committed"), answer
    assert f"{state / 'alerts.sqlite3'} was deleted (EXESDB_STATE_DIR" in answer["detail"]
