"""The HTTP edge (docs/http-api.md) through a real aiohttp server on a free loopback port."""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import hmac
import io
import json
import logging
import re
import secrets
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest
from aiohttp import web

from bridge.app import Bridge, default_components
from bridge.bodies import MAX_GZIP_MEMBERS
from bridge.bus import (
    SIGNATURE_HEADER,
    Durability,
    Envelope,
    Frame,
    Keyring,
    LocalCoordinator,
    TransportCapabilities,
)
from bridge.bus.decoding import decode_envelopes
from bridge.bus.problems import decode_envelope_reference
from bridge.cluster import cluster_monitor
from bridge.component import ComponentFactory
from bridge.http import build_app
from bridge.messages import Message, format_timestamp
from bridge.settings import Settings
from bridge.sinks.prometheus import prometheus_sink
from tests.messages.test_models import CASES
from tests.support import (
    ADMIN_TOKEN,
    ROOT,
    TEST_SECRET,
    alive,
    answered_unread,
    async_wait_until,
    collector_off,
    make_settings,
    unread_bound,
    unread_by_server,
)

KEYRING = Keyring.from_secrets(TEST_SECRET)
JSON = "application/json"
NDJSON = "application/x-ndjson"


def envelope(**changes: Any) -> dict[str, Any]:
    """A valid envelope as a dict, stamped now with a fresh id."""
    data: dict[str, Any] = {
        "v": 1,
        "id": secrets.token_hex(12),
        "instance": "ex_esdb_health",
        "topic": "cluster:health",
        "tag": "node_health_updated",
        "node": "node2@host",
        "ts": format_timestamp(datetime.now(UTC)),
        "payload": {"status": "healthy"},
    }
    data.update(changes)
    return data


# The envelope fields of an AlertAck (its payload given with them).
ACK: Final = {"instance": "ex_esdb_alerts", "topic": "alerts", "tag": "alert_acknowledged"}


def body_of(*envelopes: dict[str, Any]) -> bytes:
    """One envelope as JSON, or several as NDJSON."""
    return b"\n".join(json.dumps(item).encode() for item in envelopes)


def signed(body: bytes, keyring: Keyring = KEYRING, at: float | None = None) -> str:
    """The X-ExESDB-Signature header for ``body``."""
    return keyring.sign_header(body, int(time.time() if at is None else at))


class Server:
    """A running bridge, its base URL and a client session."""

    def __init__(self, bridge: Bridge, session: aiohttp.ClientSession) -> None:
        self.bridge = bridge
        self.session = session
        assert bridge.address is not None
        host, port = bridge.address
        self.url = f"http://{host}:{port}"
        self.delivered: list[Envelope] = []

    async def post(
        self,
        body: bytes,
        content_type: str | None = JSON,
        signature: str | None = "sign",
        headers: dict[str, str] | None = None,
        path: str = "/v1/messages",
    ) -> tuple[int, dict[str, Any]]:
        """POST to ingest (signed with the test key unless told otherwise)."""
        sent = dict(headers or {})
        if content_type is not None:
            sent["Content-Type"] = content_type
        if signature == "sign":
            sent[SIGNATURE_HEADER] = signed(body)
        elif signature is not None:
            sent[SIGNATURE_HEADER] = signature
        async with self.session.post(self.url + path, data=body, headers=sent) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else {}

    async def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.get(self.url + path, headers=headers) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text

    def rejected(self, reason: str) -> float:
        value = self.bridge.registry.get_sample_value(
            "exesdb_bus_rejected_total", {"reason": reason}
        )
        return value or 0.0


ServerFactory = Callable[..., Awaitable[Server]]


@pytest.fixture
async def serve() -> AsyncIterator[ServerFactory]:
    """Start in-process bridges on 127.0.0.1:0 with the given settings; all closed afterwards."""
    started: list[tuple[Bridge, aiohttp.ClientSession]] = []

    async def start(components: list[ComponentFactory] | None = None, **env: str) -> Server:
        defaults = {
            "EXESDB_HTTP_ADDR": "127.0.0.1:0",
            "EXESDB_INGEST": "true",
            "EXESDB_ADMIN_TOKEN": ADMIN_TOKEN,
        }
        settings = make_settings(**{**defaults, **env})
        bridge = Bridge(settings, components=components or [])
        await bridge.start()
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        started.append((bridge, session))
        server = Server(bridge, session)
        bridge.bus.subscribe("test-inbox", server.delivered.append)
        return server

    yield start
    for bridge, session in started:
        await session.close()
        await bridge.aclose()


# -- ingest --


async def test_ingest_accepts_a_signed_envelope(serve: ServerFactory) -> None:
    """A signed envelope answers 202 and reaches the bus's subscribers, verified."""
    server = await serve()
    item = envelope()
    status, answer = await server.post(body_of(item))
    assert (status, answer) == (202, {"accepted": 1})
    await async_wait_until(lambda: server.delivered, what="delivery")
    (delivered,) = server.delivered
    assert (delivered.id, delivered.node, delivered.topic) == (
        item["id"],
        "node2@host",
        "cluster:health",
    )


async def test_ingest_hands_subscribers_each_payload_as_its_message_model(
    serve: ServerFactory,
) -> None:
    """Every message type, complete and minimal, ingested in one NDJSON batch reaches an
    in-process subscriber with its payload the model the reference decoder builds of it (a
    default drawn from the clock or randomness compared for its type)."""
    server = await serve()
    items = [
        envelope(instance=model.INSTANCE, tag=model.TAG, topic=model.TAG, payload=payload)
        for model, case in CASES.items()
        for payload in (case.full, case.minimal)
    ]
    status, answer = await server.post(body_of(*items), content_type=NDJSON)
    assert (status, answer) == (202, {"accepted": len(items)})
    await async_wait_until(lambda: len(server.delivered) == len(items), what="delivery")
    for item, delivered in zip(items, server.delivered, strict=True):
        reference = decode_envelope_reference(json.dumps(item).encode())
        assert isinstance(reference, Envelope)
        payload = delivered.payload
        assert type(payload) is type(reference.payload)
        assert payload.model_fields_set == reference.payload.model_fields_set
        # Left out, and made from the clock (timestamps) or randomness (ids).
        drawn = {
            name
            for name, info in type(payload).__pydantic_fields__.items()
            if name not in item["payload"]
            and (
                info.default_factory not in (None, dict, list)
                or isinstance(reference.payload.__dict__[name], datetime)
            )
        }
        assert payload.model_dump(exclude=drawn) == reference.payload.model_dump(exclude=drawn)
        for name in drawn:
            assert type(payload.__dict__[name]) is type(reference.payload.__dict__[name])


async def test_healthy_node_readings_leave_their_models_unbuilt_through_every_component(
    serve: ServerFactory, tmp_path: Path
) -> None:
    """A healthy NodeHealth from a node already heard (an eighth of the ingest mix) goes through
    every default component, the cluster monitor's and the alert sink's steps too, without its
    payload's model being built: they read ``fields``."""
    server = await serve(default_components(), EXESDB_STATE_DIR=str(tmp_path))
    nodes = [f"node{number}@host" for number in range(4)]

    async def ingest() -> list[Envelope]:
        items = [envelope(node=node, payload={"status": "healthy"}) for node in nodes]
        assert await server.post(body_of(*items), content_type=NDJSON) == (202, {"accepted": 4})
        ids = {item["id"] for item in items}
        # The bridge publishes too (its own health, membership): its messages are left aside.
        await async_wait_until(
            lambda: (
                ids <= {item.id for item in server.delivered}
                and all(subscription.idle for subscription in server.bridge.bus.subscriptions)
            ),
            what="every subscriber done",
        )
        return [item for item in server.delivered if item.id in ids]

    await ingest()  # the nodes heard a first time (tracked: their payloads are read)
    again = await ingest()
    assert not any(isinstance(item.fields, Message) for item in again)
    assert [item.fields.status for item in again] == ["healthy"] * len(nodes)


async def test_a_node_health_about_the_bridges_own_node_is_warned_of_once(
    serve: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A NodeHealth ingested about this bridge's own EXESDB_NODE (another sender speaking for
    it) logs one warning naming the node, however many come; other nodes' log none."""
    server = await serve()
    own = server.bridge.node
    with caplog.at_level("WARNING", logger="bridge.http"):
        assert (await server.post(body_of(envelope())))[0] == 202
        assert not caplog.records
        for _ in range(2):
            status, _answer = await server.post(body_of(envelope(node=own)))
            assert status == 202
    [warning] = caplog.records
    assert f"a NodeHealth about node {own!r}, this bridge's own EXESDB_NODE" in (
        warning.getMessage()
    )


async def test_ingest_accepts_a_retired_key(serve: ServerFactory) -> None:
    """A body signed with a key from EXESDB_SECRET_KEY_BASE_PREVIOUS is accepted."""
    old = "the-previous-secret-key-base-of-32-chars-or-more"
    server = await serve(EXESDB_SECRET_KEY_BASE_PREVIOUS=old)
    body = body_of(envelope())
    status, _ = await server.post(body, signature=signed(body, Keyring.from_secrets(old)))
    assert status == 202


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        (b"not json", "malformed", "body"),
        (b"", "malformed", "body"),
        (b"[1]", "malformed", "body"),
        (body_of(envelope(v=2)), "malformed", "v"),
        (body_of(envelope(id="x")), "malformed", "id"),
        (body_of(envelope(ts="yesterday")), "malformed", "ts"),
        (body_of(envelope(instance="ex_esdb_nothing")), "unknown_instance", "instance"),
        (body_of(envelope(tag="no_such_tag")), "unknown_tag", "tag"),
        (body_of(envelope(payload={"status": "sick"})), "invalid_payload", "payload.status"),
        (body_of(envelope(payload={})), "invalid_payload", "payload.status"),
        (body_of(envelope(**ACK, payload={"alert_id": "a1", "ack_by": "\u202eops"})),
         "invalid_payload", "payload.ack_by"),
        (json.dumps(envelope(**ACK, payload={"alert_id": "a1", "ack_by": "o\u2028ps"}),
                    ensure_ascii=False).encode(), "invalid_payload", "payload.ack_by"),
        (body_of(envelope(**ACK, payload={"alert_id": "a1", "ack_by": "x" * 201})),
         "invalid_payload", "payload.ack_by"),
        (body_of(envelope(**ACK, payload={"alert_id": "a1", "ack_by": "   "})),
         "invalid_payload", "payload.ack_by"),
        (json.dumps(envelope(**ACK, payload={"alert_id": "a1", "ack_by": "\u3000\xa0"}),
                    ensure_ascii=False).encode(), "invalid_payload", "payload.ack_by"),
    ],
    # Named: a body's own bytes (a fresh id and time each collection) would differ between the
    # pytest-xdist workers, which refuse to run when they collect different tests.
    ids=[
        "not-json", "empty", "not-an-object", "version-2", "short-id", "ts-not-a-time",
        "unknown-instance", "unknown-tag", "status-unknown", "status-missing", "ack-by-bidi",
        "ack-by-line-separator", "ack-by-too-long", "ack-by-blank", "ack-by-unicode-blank",
    ],
)  # fmt: skip
async def test_ingest_answers_400_naming_the_field(
    serve: ServerFactory, body: bytes, error: str, field: str | None
) -> None:
    """A signed but bad envelope answers 400 with a JSON body naming the reason and field."""
    server = await serve()
    status, answer = await server.post(body)
    assert status == 400
    assert answer["error"] == error
    assert answer.get("field") == field
    assert answer["detail"]
    assert server.rejected(error) == 1
    assert server.delivered == []


@pytest.mark.parametrize(
    ("changed", "detail"),
    [
        (
            {"instance": "ex_esdb_healt"},
            "unknown bus instance 'ex_esdb_healt'; allowed: ex_esdb_system, ex_esdb_health,",
        ),
        (
            {"tag": "node_health"},
            "'node_health' is not a message type of ex_esdb_health; its types: "
            "node_health_updated, cluster_health_updated, component_health_updated, "
            "health_check_completed",
        ),
        (
            {"tag": "system_alert"},
            "'system_alert' is not a message type of ex_esdb_health; its types: "
            "node_health_updated, cluster_health_updated, component_health_updated, "
            "health_check_completed (system_alert is one of ex_esdb_alerts)",
        ),
    ],
)
async def test_an_unknown_instance_or_tag_is_answered_with_what_is_allowed(
    serve: ServerFactory, changed: dict[str, str], detail: str
) -> None:
    """unknown_instance lists the nine instances; unknown_tag lists the instance's tags and,
    for a tag of another instance, names that one, so the sender can correct the envelope."""
    server = await serve()
    status, answer = await server.post(body_of(envelope(**changed)))
    assert status == 400
    assert answer["detail"].startswith(detail)


async def test_an_unknown_tag_like_one_of_its_instance_is_answered_with_the_tag_meant(
    serve: ServerFactory,
) -> None:
    """An envelope whose tag is like one of its instance's (``node_health_update``) is answered
    400 naming the tag meant, as ``publish`` and ``schema`` name it, in each of a batch's
    problems too; one like none is answered without."""
    server = await serve()
    status, answer = await server.post(body_of(envelope(tag="node_health_update")))
    assert (status, answer["error"]) == (400, "unknown_tag")
    assert answer["detail"] == (
        "'node_health_update' is not a message type of ex_esdb_health; its types:"
        " node_health_updated, cluster_health_updated, component_health_updated,"
        " health_check_completed; did you mean 'node_health_updated'?"
    )
    lines = [
        body_of(envelope(tag=tag))
        for tag in ("node_health_updated", "nosuch", "healthcheck_completed")
    ]
    status, answer = await server.post(b"\n".join(lines), content_type=NDJSON)
    assert status == 400
    nosuch, meant = (problem["detail"] for problem in answer["problems"])
    assert nosuch.startswith("line 2: 'nosuch' is not a message type of ex_esdb_health")
    assert "did you mean" not in nosuch
    assert meant.startswith("line 3: 'healthcheck_completed' is not a message type of")
    assert meant.endswith("; did you mean 'health_check_completed'?")


async def test_an_unknown_instance_like_one_of_the_bus_is_answered_with_the_instance_meant(
    serve: ServerFactory,
) -> None:
    """An envelope whose instance is like one of the bus's (``ex_esdb_healt``) is answered 400
    naming the instance meant, as the message stream's ``?instance=`` does, alone, as a batch's
    line, and after the envelope's other problems; one like none is answered without."""
    server = await serve()
    status, answer = await server.post(body_of(envelope(instance="ex_esdb_healt")))
    assert (status, answer["error"]) == (400, "unknown_instance")
    assert answer["detail"].startswith("unknown bus instance 'ex_esdb_healt'; allowed: ")
    assert answer["detail"].endswith("; did you mean 'ex_esdb_health'?")
    lines = [envelope(instance=one) for one in ("ex_esdb_health", "nosuch", "EX_ESDB_ALERT")]
    status, answer = await server.post(body_of(*lines), content_type=NDJSON)
    assert status == 400
    nosuch, meant = (problem["detail"] for problem in answer["problems"])
    assert nosuch.startswith("line 2: unknown bus instance 'nosuch'")
    assert "did you mean" not in nosuch
    assert meant.startswith("line 3: unknown bus instance 'EX_ESDB_ALERT'")
    assert meant.endswith("; did you mean 'ex_esdb_alerts'?")
    # Among the envelope's other problems: said after them, with the instance meant.
    status, answer = await server.post(body_of(envelope(instance="ex_esdb_metric", bogus=1)))
    assert status == 400
    assert answer["detail"].startswith("unknown envelope field 'bogus'; unknown bus instance")
    assert answer["detail"].endswith("; did you mean 'ex_esdb_metrics'?")


_LONG_NAME: Final = "k" * 200_000
_CUT_NAME: Final = "k" * 64 + "..."


def _long_key_twice() -> bytes:
    once = body_of(envelope(payload={"status": "healthy", _LONG_NAME: 1}))
    return once[:-2] + f', "{_LONG_NAME}": 2}}}}'.encode()


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        (body_of(envelope(**{_LONG_NAME: 1})), "malformed", _CUT_NAME),
        (body_of(envelope(instance=_LONG_NAME)), "unknown_instance", "instance"),
        (body_of(envelope(tag=_LONG_NAME)), "unknown_tag", "tag"),
        (body_of(envelope(tag=[_LONG_NAME])), "unknown_tag", "tag"),
        (body_of(envelope(payload={"status": "healthy", _LONG_NAME: 1})), "invalid_payload",
         f"payload.{_CUT_NAME}"),
        (_long_key_twice(), "malformed", f"payload.{_CUT_NAME}"),
    ],
    ids=["envelope-field", "instance", "tag", "tag-not-text", "payload-field", "key-twice"],
)  # fmt: skip
async def test_a_refusal_quotes_a_long_name_cut_short(
    serve: ServerFactory, body: bytes, error: str, field: str
) -> None:
    """A key, tag or instance of 200 000 characters is refused in a short answer: its detail and
    field quote the name's first 64 characters and ``...``, not the name sent back whole."""
    server = await serve()
    status, answer = await server.post(body)
    assert (status, answer["error"], answer.get("field")) == (400, error, field)
    assert len(json.dumps(answer)) < 1000, answer["detail"][:200]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compressed_body_is_signed_as_it_expands(
    serve: ServerFactory, encoding: str
) -> None:
    """With Content-Encoding the signature covers the body expanded (202); one over the
    compressed bytes is refused with a detail saying to sign before compressing."""
    server = await serve()
    body = body_of(envelope())
    packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    headers = {"Content-Encoding": encoding}
    status, _ = await server.post(packed, signature=signed(body), headers=headers)
    assert status == 202
    again = body_of(envelope())
    packed = gzip.compress(again) if encoding == "gzip" else zlib.compress(again)
    status, answer = await server.post(packed, signature=signed(packed), headers=headers)
    assert (status, answer["error"]) == (401, "invalid_signature")
    assert answer["detail"].endswith("sign the body before compressing)")
    status, answer = await server.post(again, signature=signed(packed))
    assert "compressing" not in answer["detail"]  # no hint where nothing was compressed


async def test_a_compressed_body_is_expanded_and_its_signature_checked_off_the_event_loop(
    serve: ServerFactory,
) -> None:
    """A small gzip body that expands to a large one, unsigned by any key, is answered 401 while
    the event loop goes on serving: it never stalls for most of the time the answer takes."""
    limit = 64 * 1024 * 1024
    server = await serve(EXESDB_MAX_BODY_BYTES=str(limit))
    packed = gzip.compress(b" " * limit)  # some 64 KB, which expand to the limit
    stalls: list[float] = []
    answered = asyncio.Event()

    async def tick() -> None:
        while not answered.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.001)  # a timer fired only once the loop is free: not a wait
            stalls.append(time.perf_counter() - before)

    ticker = asyncio.create_task(tick())
    start = time.perf_counter()
    status, answer = await server.post(
        packed, signature=signed(b"another body"), headers={"Content-Encoding": "gzip"}
    )
    took = time.perf_counter() - start
    answered.set()
    await ticker
    assert (status, answer["error"]) == (401, "invalid_signature")
    # On the loop, expanding 64 MiB and its HMAC were one stall of nearly all of it.
    assert max(stalls) < took / 4, (max(stalls), took)


@pytest.mark.parametrize(("size", "apart"), [(1024 * 1024, True), (512 * 1024, False)])
async def test_a_body_of_a_mebibyte_or_more_has_its_signature_checked_off_the_loop(
    serve: ServerFactory, monkeypatch: pytest.MonkeyPatch, size: int, apart: bool
) -> None:
    """A body sent as it is of 1 MiB or more has its HMAC computed in the worker thread, not on
    the event loop (up to a quarter-second for the largest limit); a smaller one on the loop,
    where the hand-over would cost more than the HMAC."""
    server = await serve(EXESDB_MAX_BODY_BYTES=str(4 * 1024 * 1024))
    body = body_of(envelope()) + b" " * (size - len(body_of(envelope())))
    threads: list[threading.Thread] = []
    check = Keyring.check_header

    def noted(keyring: Keyring, *args: Any) -> Any:
        threads.append(threading.current_thread())
        return check(keyring, *args)

    monkeypatch.setattr(Keyring, "check_header", noted)
    headers = {"Content-Type": NDJSON, SIGNATURE_HEADER: signed(body)}
    # A file-like body: aiohttp's client warns of a large one given as bytes.
    async with server.session.post(
        server.url + "/v1/messages", data=io.BytesIO(body), headers=headers
    ) as response:
        assert response.status == 202
    assert [thread is threading.main_thread() for thread in threads] == [not apart]


@pytest.mark.parametrize(("size", "apart"), [(4 * 1024, True), (4 * 1024 - 1, False)])
async def test_a_large_json_envelope_is_decoded_off_the_loop(
    serve: ServerFactory, monkeypatch: pytest.MonkeyPatch, size: int, apart: bool
) -> None:
    """An ``application/json`` body of 4 KiB or more, one envelope decoded in one go (up to
    3.5 s of the loop for 1 MiB refused), is decoded in the worker thread; a smaller one on the
    loop, where the hand-over would cost about as much as the decoding."""
    server = await serve()
    item = envelope(payload={"status": "healthy", "checks": {"note": ""}})
    item["payload"]["checks"]["note"] = "x" * (size - len(body_of(item)))
    body = body_of(item)
    assert len(body) == size
    threads: list[threading.Thread] = []
    decode = decode_envelopes

    def noted(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread())
        return decode(*args, **kwargs)

    monkeypatch.setattr("bridge.bus.batches.decode_envelopes", noted)
    assert await server.post(body) == (202, {"accepted": 1})
    assert [thread is threading.main_thread() for thread in threads] == [not apart]


def _noting_threads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, int]]:
    """Each later call of ``decode_envelopes``: whether on the main thread, and its lines."""
    calls: list[tuple[bool, int]] = []
    decode = decode_envelopes

    def noted(lines: Sequence[bytes], *args: Any, **kwargs: Any) -> Any:
        calls.append((threading.current_thread() is threading.main_thread(), len(lines)))
        return decode(lines, *args, **kwargs)

    monkeypatch.setattr("bridge.bus.batches.decode_envelopes", noted)
    return calls


@pytest.mark.parametrize(("size", "apart"), [(4 * 1024, True), (4 * 1024 - 1, False)])
async def test_a_large_ndjson_line_is_decoded_off_the_loop(
    serve: ServerFactory, monkeypatch: pytest.MonkeyPatch, size: int, apart: bool
) -> None:
    """An NDJSON line of 4 KiB or more, one envelope decoded in one go, is decoded alone in the
    worker thread, in its place among the lines around it, which are decoded on the loop; with
    none so large, the batch is decoded on the loop in one group."""
    server = await serve()
    item = envelope(payload={"status": "healthy", "checks": {"note": ""}})
    item["payload"]["checks"]["note"] = "x" * (size - len(body_of(item)))
    assert len(body_of(item)) == size
    calls = _noting_threads(monkeypatch)
    body = body_of(envelope(), envelope(), item, envelope())
    assert await server.post(body, content_type=NDJSON) == (202, {"accepted": 4})
    assert calls == ([(True, 2), (False, 1), (True, 1)] if apart else [(True, 4)])


async def test_a_large_ndjson_line_at_fault_is_named_by_its_number(
    serve: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused line decoded in the worker thread is named by its number in the body (blank
    lines counted), before the lines at fault after it."""
    server = await serve()
    large = envelope(tag="nosuch", payload={"status": "healthy", "checks": {"note": "x" * 8192}})
    lines = [body_of(envelope()), b"", body_of(large), body_of(envelope(tag="nosuch"))]
    calls = _noting_threads(monkeypatch)
    status, answer = await server.post(b"\n".join(lines), content_type=NDJSON)
    assert (status, answer["field"]) == (400, "line 3: tag")
    assert answer["detail"].startswith("line 3: 'nosuch' is not a message type of")
    assert [problem["field"] for problem in answer["problems"]] == ["line 3: tag", "line 4: tag"]
    assert calls == [(True, 1), (False, 1)]


async def test_a_request_is_answered_while_a_body_of_millions_of_lines_is_decoded(
    serve: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a signed NDJSON body of four million short lines is cut and decoded, the loop
    serves others: a /healthz asked once the body's signature is being checked is answered
    before the body is, which still names its line at fault by its number."""
    server = await serve(EXESDB_MAX_BODY_BYTES=str(8 * 1024 * 1024))
    blank = 4 * 1024 * 1024  # newlines: the last line is the one after them
    body = body_of(envelope()) + b"\n" * blank + b"{}"
    checking = threading.Event()  # set in the thread the check may run in
    check = Keyring.check_header

    def noted(keyring: Keyring, *args: Any) -> Any:
        checking.set()
        return check(keyring, *args)

    async def post() -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": NDJSON, SIGNATURE_HEADER: signed(body)}
        # A file-like body: aiohttp's client warns of a large one given as bytes.
        sent = io.BytesIO(body)
        async with server.session.post(
            server.url + "/v1/messages", data=sent, headers=headers
        ) as r:
            return r.status, await r.json()

    monkeypatch.setattr(Keyring, "check_header", noted)
    posted = asyncio.create_task(post())
    await async_wait_until(checking.is_set, what="the body's signature being checked")
    assert await server.get("/healthz") == (200, {"status": "ok"})
    # Decoded in one go, the body held the loop until it was answered, /healthz after it.
    assert not posted.done()
    status, answer = await posted
    assert (status, answer["field"]) == (400, f"line {blank + 1}: id")


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_a_body_expanding_to_several_mebibytes_is_checked_as_sent(
    serve: ServerFactory, coding: str
) -> None:
    """A compressed body that expands to several MiB (in gzip, two members) is expanded byte for
    byte: its signature matches, and its JSON is then judged (400: not JSON)."""
    server = await serve(EXESDB_MAX_BODY_BYTES=str(4 * 1024 * 1024))
    body = b"{" + bytes(range(32, 127)) * 36_000 + b"}"  # 3.4 MB, not JSON
    half = len(body) // 2 + 7
    packed = (
        gzip.compress(body[:half]) + gzip.compress(body[half:])
        if coding == "gzip"
        else zlib.compress(body)
    )
    status, answer = await server.post(
        packed, signature=signed(body), headers={"Content-Encoding": coding}
    )
    assert (status, answer["error"], answer["field"]) == (400, "malformed", "body")
    assert answer["detail"].startswith("not JSON"), answer["detail"]


def _raw(text: str) -> bytes:
    """An envelope's JSON with ``{{...}}`` standing for the rest of a valid envelope's fields."""
    fields = json.dumps(envelope())[1:-1]
    return text.replace("...", fields).encode()


_DEEP = "[" * 10_000 + "]" * 10_000
# 62 arrays in a payload's object: its innermost the 65th level of the envelope.
_DEEP_65 = b"[" * 62 + b"]" * 62
_VALID_PAYLOAD = '"payload": {"status": "healthy"}'

# (name, body, error, field): bad input at the edges of JSON, each answered 400 naming a field.
INPUT_EDGES = [
    (
        "nested 10 000 deep, past the JSON parser's recursion",
        _raw("{...}").replace(b'"healthy"', _DEEP.encode(), 1),
        "payload.status" + ".0" * 62,
    ),
    (
        "a payload's object nested past 64 levels",
        _raw("{...}").replace(b'"healthy"', b'"healthy", "checks": {"a": ' + _DEEP_65 + b"}", 1),
        "payload.checks.a" + ".0" * 61,
    ),
    (
        "a 5 000-digit number",
        json.dumps(envelope(v=1)).replace('"v": 1', '"v": ' + "9" * 5000).encode(),
        "v",
    ),
    *(
        (
            f"{text} in a float",
            body_of(envelope(payload={"status": "healthy", "load_avg": 0.5})).replace(
                b"0.5", text.encode()
            ),
            "payload.load_avg",
        )
        for text in ("NaN", "Infinity", "-Infinity", "1e400")
    ),
    (
        "NaN deep in a payload's object",
        body_of(envelope(payload={"status": "healthy", "checks": {"disk": [0.5]}})).replace(
            b"0.5", b"NaN"
        ),
        "payload.checks.disk.0",
    ),
    (
        "NaN as text in a float",
        body_of(envelope(payload={"status": "healthy", "load_avg": "NaN"})),
        "payload.load_avg",
    ),
    ("invalid UTF-8", body_of(envelope(node="node\xff@host")).replace(b"\\u00ff", b"\xff"), "body"),
    # Valid JSON in another encoding, which Python's json.loads would detect and read.
    ("UTF-16 with a byte order mark", body_of(envelope()).decode().encode("utf-16"), "body"),
    ("UTF-16 without one", body_of(envelope()).decode().encode("utf-16-le"), "body"),
    ("UTF-32", body_of(envelope()).decode().encode("utf-32"), "body"),
    # U+D800 as UTF-8 would write it, were it text: no UTF-8 (json.loads read it as a surrogate).
    (
        "a surrogate's bytes in a payload string",
        body_of(envelope(payload={"status": "healthy", "checks": {"disk": "ok"}})).replace(
            b'"ok"', b'"o\xed\xa0\x80k"'
        ),
        "body",
    ),
    ("id twice", _raw('{"id": "abcdefgh12345678", ...}'), "id"),
    (
        "a payload key twice",
        body_of(envelope()).replace(b'{"status"', b'{"status": "degraded", "status"'),
        "payload.status",
    ),
    (
        "a nested key twice",
        body_of(envelope(payload={"status": "healthy", "checks": {"disk": {"a": 1}}})).replace(
            b'{"a": 1}', b'{"a": 1, "a": 2}'
        ),
        "payload.checks.disk.a",
    ),
    ("NUL in node", body_of(envelope(node="node\u0000host")), "node"),
    ("a tab in node", body_of(envelope(node="node\thost")), "node"),
    ("DEL in node", body_of(envelope(node="node\x7fhost")), "node"),
    # json.dumps writes it as the escape \ud800: valid JSON, no valid text.
    ("a lone surrogate in node", body_of(envelope(node="node\ud800host")), "node"),
    ("C1 in node", body_of(envelope(node="node\x85host")), "node"),
    (
        "a lone surrogate in a payload's object",
        body_of(envelope(payload={"status": "healthy", "checks": {"disk": "\udc00"}})),
        "payload.checks.disk",
    ),
    (
        "NUL in the payload's node",
        body_of(envelope(payload={"status": "healthy", "node": "a\u0000b"})),
        "payload.node",
    ),
    (
        "C1 in a label",
        body_of(
            envelope(
                tag="performance_metric",
                instance="ex_esdb_metrics",
                payload={"metric_name": "m\x9b", "value": 1, "unit": "ms", "component": "c"},
            )
        ),
        "payload.metric_name",
    ),
    (
        "ESC in an alert id (the alert_id label of its notifications)",
        body_of(
            envelope(
                tag="system_alert",
                instance="ex_esdb_alerts",
                topic="disk",
                payload={
                    "alert_id": "disk\x1b[2J",
                    "severity": "critical",
                    "category": "system",
                    "title": "t",
                    "description": "d",
                    "source": "s",
                },
            )
        ),
        "payload.alert_id",
    ),
    (
        "a payload timestamp before year 1 in UTC",
        body_of(envelope(payload={"status": "healthy", "timestamp": "0001-01-01T00:00:00+14:00"})),
        "payload.timestamp",
    ),
    (
        "a payload timestamp after year 9999 in UTC",
        body_of(envelope(payload={"status": "healthy", "timestamp": "9999-12-31T23:59:59-14:00"})),
        "payload.timestamp",
    ),
    # Whole numbers the decoder takes (up to 4 300 digits) that no sink carries: the
    # Prometheus sink's float() overflowed on one of 309 digits, the 202 already given.
    *(
        (
            f"an integer field of {digits} digits",
            body_of(
                envelope(
                    tag="cluster_health_updated",
                    payload={"status": "healthy", "healthy_nodes": 1, "total_nodes": 1},
                )
            ).replace(b'"total_nodes": 1', b'"total_nodes": 1' + b"0" * (digits - 1)),
            "payload.total_nodes",
        )
        for digits in (20, 400)
    ),
    (
        "a count of 2^63",
        body_of(
            envelope(
                tag="throughput_metric",
                instance="ex_esdb_metrics",
                payload={"operation": "append", "count": 2**63, "duration_ms": 1000},
            )
        ),
        "payload.count",
    ),
]


@pytest.mark.parametrize(
    ("body", "field"), [(b, f) for _, b, f in INPUT_EDGES], ids=[n for n, _, _ in INPUT_EDGES]
)
async def test_bad_input_at_the_edges_answers_400_naming_a_field(
    serve: ServerFactory, body: bytes, field: str
) -> None:
    """Deep nesting, huge numbers, a number no float holds, invalid UTF-8, a key given twice and
    control characters in a label value each answer 400 naming the field, counted in
    exesdb_bus_rejected_total by its error; nothing is delivered."""
    server = await serve()
    status, answer = await server.post(body)
    assert (status, answer.get("field")) == (400, field), answer
    assert answer["error"] in ("malformed", "invalid_payload")
    assert server.rejected(answer["error"]) == 1
    assert server.delivered == []


@pytest.mark.parametrize(
    ("body", "field"), [(b, f) for _, b, f in INPUT_EDGES], ids=[n for n, _, _ in INPUT_EDGES]
)
async def test_bad_input_at_the_edges_in_ndjson_names_its_line(
    serve: ServerFactory, body: bytes, field: str
) -> None:
    """The same input as the second line of an NDJSON batch names ``line 2`` (and the field);
    alone in an NDJSON body it names ``line 1``."""
    server = await serve()
    status, answer = await server.post(body_of(envelope()) + b"\n" + body, content_type=NDJSON)
    where = "line 2" if field == "body" else f"line 2: {field}"
    assert (status, answer.get("field")) == (400, where), answer
    status, answer = await server.post(body, content_type=NDJSON)
    assert (status, answer.get("field")) == (400, "line 1" if field == "body" else field), answer
    assert server.delivered == []


# The envelope fields of a SystemAlert, and a payload of one.
SYSTEM_ALERT: Final = {"instance": "ex_esdb_alerts", "topic": "disk_full", "tag": "system_alert"}
ALERT: Final = {
    "severity": "error",
    "category": "system",
    "title": "disk full",
    "description": "d",
    "source": "tests",
    "node": "node2@host",
}


@pytest.mark.parametrize("alert_id", [".", ".."])
async def test_an_alert_id_a_links_path_drops_answers_400_naming_it(
    serve: ServerFactory, alert_id: str
) -> None:
    """A SystemAlert whose alert_id is ``.`` or ``..``, which a browser takes out of the path of
    its page's link and generatorURL (``/alerts/..`` is ``/``), answers 400 naming
    ``payload.alert_id`` and saying why; nothing is delivered, and ``...`` is taken."""
    server = await serve()
    payload = {**ALERT, "alert_id": alert_id}
    status, answer = await server.post(body_of(envelope(**SYSTEM_ALERT, payload=payload)))
    assert (status, answer["error"], answer.get("field")) == (
        400,
        "invalid_payload",
        "payload.alert_id",
    ), answer
    assert "an alert id must not be . or .. (a link's path drops them" in answer["detail"]
    assert server.delivered == []
    payload["alert_id"] = "..."
    status, answer = await server.post(body_of(envelope(**SYSTEM_ALERT, payload=payload)))
    assert status == 202, answer


_SIGN: Final = 'send t=<unix seconds>,v1=<hex HMAC-SHA256(SECRET_KEY_BASE, "<t>." + body)>'


def _malformed(fault: str) -> str:
    return f"the {SIGNATURE_HEADER} header is malformed ({fault}"


_OTHER_KEY: Final = (
    "does not match the body: signed with a key other than the bridge's SECRET_KEY_BASE, or the "
    "body changed after it was signed"
)


@pytest.mark.parametrize(
    ("signature", "error", "detail"),
    [
        (None, "unsigned", f"the {SIGNATURE_HEADER} header is missing: {_SIGN}"),
        ("", "unsigned", f"the {SIGNATURE_HEADER} header is missing: {_SIGN}"),
        ("garbage", "invalid_signature", _malformed("it has no t=<unix seconds>")),
        ("sha256=" + "ab" * 32, "invalid_signature", "header is malformed"),  # GitHub's form
        ("t=1x,v1=" + "ab" * 32, "invalid_signature", _malformed("t is not a number of seconds")),
        ("t=1700000000,v1=abc", "invalid_signature", _malformed("it has no v1=<64 hex digits>")),
        ("leading-zero", "invalid_signature", _malformed("t has a leading zero")),
        ("wrong-key", "invalid_signature", _OTHER_KEY),
        ("tampered", "invalid_signature", _OTHER_KEY),
    ],
)
async def test_ingest_answers_401_for_a_missing_or_bad_signature(
    serve: ServerFactory, signature: str | None, error: str, detail: str
) -> None:
    """No signature, a malformed one, a wrong key or tampered bytes answer 401; the detail says
    which (for a malformed one, what is wrong: a t with a leading zero is malformed, not a
    mismatch), and how to sign when the header is missing or malformed."""
    server = await serve()
    body = body_of(envelope())
    header: str | None = signature
    if signature == "wrong-key":
        header = signed(body, Keyring.from_secrets("a-wrong-key-that-is-long-enough-to-use"))
    elif signature == "tampered":
        header = signed(body)
        body = body.replace(b"healthy", b"degraded")
    elif signature == "leading-zero":  # signed over "0<t>.": t as sent, a zero before it
        t = f"0{int(time.time())}"
        mac = hmac.new(TEST_SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        header = f"t={t},v1={mac}"
    status, answer = await server.post(body, signature=header)
    assert status == 401
    assert answer["error"] == error
    assert detail in answer["detail"]
    assert answer["field"] == SIGNATURE_HEADER
    assert server.rejected(error) == 1
    assert server.delivered == []


async def test_ingest_answers_409_for_a_replayed_message(serve: ServerFactory) -> None:
    """The same envelope accepted once answers 409 when sent again, even freshly signed."""
    server = await serve()
    body = body_of(envelope())
    assert (await server.post(body))[0] == 202
    status, answer = await server.post(body)
    assert status == 409
    assert (answer["error"], answer["field"]) == ("replayed", "id")
    assert server.rejected("replayed") == 1


@pytest.mark.parametrize("skew", [-3_600, 3_600])
async def test_ingest_answers_409_for_an_expired_header_timestamp(
    serve: ServerFactory, skew: int
) -> None:
    """A valid signature whose t is outside the replay window (past or future) answers 409,
    saying by how much and which way t is off the bridge's clock, the window and what to do."""
    server = await serve(EXESDB_REPLAY_WINDOW_MS="60000")
    body = body_of(envelope())
    signed_at = int(time.time() + skew)
    status, answer = await server.post(body, signature=signed(body, at=signed_at))
    assert status == 409
    assert answer["error"] == "expired"
    assert server.rejected("expired") == 1
    way = "behind" if skew < 0 else "ahead of"
    told = re.fullmatch(
        rf"the X-ExESDB-Signature timestamp t={signed_at} is (\d+) s {way} the bridge's clock,"
        r" outside its replay window of 60 s \(EXESDB_REPLAY_WINDOW_MS\): sign each request as"
        r" it is sent, on a clock set right",
        answer["detail"],
    )
    assert told is not None, answer["detail"]
    assert abs(int(told.group(1)) - abs(skew)) <= 2  # the seconds between signing and judging


@pytest.mark.parametrize("skew", [-3_600, 3_600])
async def test_ingest_answers_409_for_an_expired_envelope_timestamp(
    serve: ServerFactory, skew: int
) -> None:
    """A fresh header over an envelope whose ts is outside the window answers 409."""
    server = await serve(EXESDB_REPLAY_WINDOW_MS="60000")
    ts = format_timestamp(datetime.now(UTC) + timedelta(seconds=skew))
    status, answer = await server.post(body_of(envelope(ts=ts)))
    assert status == 409
    assert (answer["error"], answer["field"]) == ("expired", "ts")
    assert answer["detail"] == (
        "ts is further than EXESDB_REPLAY_WINDOW_MS from the bridge's clock, or older than the"
        " ids it still remembers (EXESDB_REPLAY_MEMORY): give ts the time the message is sent, on"
        " a clock set right"
    )


@pytest.mark.parametrize("chunked", [False, True])
async def test_ingest_answers_413_over_the_body_limit(serve: ServerFactory, chunked: bool) -> None:
    """A body over EXESDB_MAX_BODY_BYTES answers 413, with or without a Content-Length."""
    server = await serve(EXESDB_MAX_BODY_BYTES="2048")
    body = body_of(envelope(payload={"status": "healthy", "checks": {"pad": "x" * 4096}}))
    data: Any = body
    if chunked:

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 512):
                yield body[start : start + 512]

        data = chunks()
    headers = {"Content-Type": JSON, SIGNATURE_HEADER: signed(body)}
    async with server.session.post(
        server.url + "/v1/messages", data=data, headers=headers
    ) as response:
        assert response.status == 413
        answer = await response.json()
    assert answer["error"] == "too_large"
    assert server.rejected("too_large") == 1


async def _answer_to_expect(server: Server, head: str) -> bytes:
    """The status line ingest answers to ``head`` (a POST /v1/messages with ``Expect:
    100-continue``), sent without its body."""
    assert server.bridge.address is not None
    reader, writer = await asyncio.open_connection(*server.bridge.address)
    try:
        writer.write(
            b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            + head.encode()
            + b"\r\n"
        )
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("env", "head", "status"),
    [
        ({}, f"Content-Type: {JSON}\r\nContent-Length: 99999999\r\n{SIGNATURE_HEADER}: x\r\n", 413),
        ({}, f"Content-Type: {JSON}\r\nContent-Length: 99\r\n", 401),
        ({}, f"Content-Type: text/plain\r\nContent-Length: 99\r\n{SIGNATURE_HEADER}: x\r\n", 415),
        (
            {},
            f"Content-Type: {JSON}\r\nContent-Encoding: br\r\nContent-Length: 99\r\n"
            f"{SIGNATURE_HEADER}: x\r\n",
            415,
        ),
        ({"EXESDB_INGEST": "false"}, f"Content-Type: {JSON}\r\nContent-Length: 99\r\n", 404),
    ],
)
async def test_expect_continue_is_answered_with_a_refusal_the_head_decides(
    serve: ServerFactory, env: dict[str, str], head: str, status: int
) -> None:
    """A POST to ingest with ``Expect: 100-continue`` whose head alone is refused (a
    Content-Length over the limit, no signature, a content type or coding refused, ingest off)
    is answered with that refusal, not ``100 Continue``: the client is not asked for the body."""
    server = await serve(**env)
    assert (await _answer_to_expect(server, head)).startswith(f"HTTP/1.1 {status} ".encode())


async def test_expect_continue_is_answered_100_for_a_head_ingest_takes(
    serve: ServerFactory,
) -> None:
    """A head ingest would read the body of is answered ``100 Continue``; the body sent then is
    taken."""
    server = await serve()
    body = body_of(envelope())
    headers = {"Content-Type": JSON, SIGNATURE_HEADER: signed(body)}
    async with server.session.post(
        server.url + "/v1/messages", data=body, headers=headers, expect100=True
    ) as response:
        assert response.status == 202, await response.text()
    head = f"Content-Type: {JSON}\r\nContent-Length: 99\r\n{SIGNATURE_HEADER}: x\r\n"
    assert await _answer_to_expect(server, head) == b"HTTP/1.1 100 Continue\r\n"


async def test_ingest_accepts_a_body_at_the_limit(serve: ServerFactory) -> None:
    """A body of exactly EXESDB_MAX_BODY_BYTES is accepted."""
    server = await serve(EXESDB_MAX_BODY_BYTES="2048")
    item = envelope(payload={"status": "healthy", "checks": {"pad": ""}})
    pad = 2048 - len(body_of(item))
    item["payload"]["checks"]["pad"] = "x" * pad
    body = body_of(item)
    assert len(body) == 2048
    assert (await server.post(body))[0] == 202


async def test_ingest_accepts_a_body_at_the_limit_sent_in_many_chunks(
    serve: ServerFactory,
) -> None:
    """A body of exactly EXESDB_MAX_BODY_BYTES sent chunked, in pieces of 100 bytes, is read
    whole, in order: its signature over the body matches and it is accepted."""
    server = await serve(EXESDB_MAX_BODY_BYTES="2048")
    item = envelope(payload={"status": "healthy", "checks": {"pad": ""}})
    item["payload"]["checks"]["pad"] = "x" * (2048 - len(body_of(item)))
    body = body_of(item)
    assert len(body) == 2048
    assert server.bridge.address is not None
    port = server.bridge.address[1]

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 100):
            yield body[start : start + 100]
            # Each piece its own read: the next is sent once the bridge read this one (a turn
            # of the loop let two pieces in each read).
            await async_wait_until(lambda: unread_by_server(port) == 0, what="the piece read")

    headers = {"Content-Type": JSON, SIGNATURE_HEADER: signed(body)}
    async with server.session.post(
        server.url + "/v1/messages", data=chunks(), headers=headers
    ) as response:
        assert response.status == 202, await response.text()


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
async def test_ingest_answers_415_for_other_content_types(
    serve: ServerFactory, content_type: str | None
) -> None:
    """Only application/json and application/x-ndjson are accepted; the refusal is counted in
    exesdb_bus_rejected_total under its error code."""
    server = await serve()
    shown = server.bridge.registry.get_sample_value(
        "exesdb_bus_rejected_total", {"reason": "unsupported_media_type"}
    )
    assert shown == 0.0  # the series is there before the first refusal
    status, answer = await server.post(body_of(envelope()), content_type=content_type)
    assert status == 415
    assert answer["error"] == "unsupported_media_type"
    assert server.rejected("unsupported_media_type") == 1


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/integration"])
async def test_a_content_type_too_long_to_be_json_is_refused_415_unparsed(
    serve: ServerFactory, path: str
) -> None:
    """A Content-Type of 7 KiB (``application/json`` and 1 000 parameters, which aiohttp's parse
    takes some 0.1 s of the loop for) is refused 415 saying its length, not parsed, on ingest
    and on an admin route."""
    server = await serve()
    content_type = JSON + "".join(f";p{n}=v" for n in range(1_000))
    body = b'{"enabled": false}' if path == "/v1/integration" else body_of(envelope())
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    status, answer = await server.post(body, content_type=content_type, headers=headers, path=path)
    shown = f"a Content-Type of {len(content_type)} characters"
    assert (status, answer.get("error")) == (415, "unsupported_media_type"), answer
    assert answer["detail"].endswith(f"not {shown})" if path == "/v1/integration" else shown)
    assert server.bridge.integration.enabled()
    assert server.delivered == []


@pytest.mark.parametrize("encoding", ["foo", "x-gzip", "compress", "gzip, deflate", "br", "zstd"])
async def test_ingest_answers_415_for_a_content_encoding_it_does_not_expand(
    serve: ServerFactory, encoding: str
) -> None:
    """A Content-Encoding other than gzip, deflate or identity is refused with 415 naming it and
    the codings taken (``Accept-Encoding``), counted, rather than its body read as sent."""
    server = await serve()
    body = body_of(envelope())
    headers = {"Content-Type": JSON, SIGNATURE_HEADER: signed(body), "Content-Encoding": encoding}
    async with server.session.post(server.url + "/v1/messages", data=body, headers=headers) as r:
        answer = await r.json()
        assert (r.status, answer["error"]) == (415, "unsupported_media_type")
        assert repr(encoding) in answer["detail"]
        assert r.headers["Accept-Encoding"] == "gzip, deflate"
    assert server.rejected("unsupported_media_type") == 1
    assert server.delivered == []
    status, answer = await server.post(body, headers={"Content-Encoding": "identity"})
    assert status == 202, answer
    body = body_of(envelope())
    packed = gzip.compress(body)
    status, answer = await server.post(
        packed, signature=signed(body), headers={"Content-Encoding": " GZIP"}
    )
    assert status == 202, answer


@pytest.mark.parametrize("codings", [("gzip", "gzip"), ("gzip", "identity"), ("identity", "br")])
async def test_a_content_encoding_on_two_lines_is_read_as_one_list(
    serve: ServerFactory, codings: tuple[str, str]
) -> None:
    """Content-Encoding given on two header lines is one list (RFC 9110), as if on one line:
    two codings are refused 415 naming both, not the first line's taken alone (a body gzipped
    twice expanded once, ``gzip`` then ``identity`` read as gzip)."""
    server = await serve()
    body = body_of(envelope())
    sent = (
        gzip.compress(gzip.compress(body)) if codings == ("gzip", "gzip") else gzip.compress(body)
    )
    headers = [
        ("Content-Type", JSON),
        (SIGNATURE_HEADER, signed(body)),
        *(("Content-Encoding", coding) for coding in codings),
    ]
    async with server.session.post(server.url + "/v1/messages", data=sent, headers=headers) as r:
        answer = await r.json()
        assert (r.status, answer["error"]) == (415, "unsupported_media_type"), answer
        assert repr(", ".join(codings)) in answer["detail"]
    assert server.rejected("unsupported_media_type") == 1
    assert server.delivered == []


async def test_ingest_accepts_a_charset_parameter(serve: ServerFactory) -> None:
    """application/json; charset=utf-8 is application/json."""
    server = await serve()
    status, _ = await server.post(
        body_of(envelope()), content_type="application/json; charset=utf-8"
    )
    assert status == 202


@pytest.mark.parametrize("charset", ["latin-1", "utf-16", "iso-8859-1"])
async def test_ingest_refuses_a_charset_other_than_utf8(serve: ServerFactory, charset: str) -> None:
    """A body labelled with a charset other than UTF-8 is refused 415 naming it and counted,
    rather than read as UTF-8; the same body labelled utf8 is taken."""
    server = await serve()
    body = body_of(envelope())
    status, answer = await server.post(body, content_type=f"{NDJSON}; charset={charset}")
    assert (status, answer["error"]) == (415, "unsupported_media_type")
    assert repr(charset) in answer["detail"]
    assert server.rejected("unsupported_media_type") == 1
    assert server.delivered == []
    status, answer = await server.post(body, content_type=f"{NDJSON}; charset=UTF8")
    assert status == 202, answer
    status, answer = await server.post(body_of(envelope()), content_type=f"{JSON}; charset=ascii")
    assert status == 202, answer


async def test_ingest_answers_404_when_off(serve: ServerFactory) -> None:
    """With EXESDB_INGEST=false the endpoint answers 404 and says how to turn it on."""
    server = await serve(EXESDB_INGEST="false")
    status, answer = await server.post(body_of(envelope()))
    assert status == 404
    assert "EXESDB_INGEST" in answer["detail"]


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/no/such/path", 404, "not_found"),
        ("POST", "/metrics", 405, "method_not_allowed"),
        ("DELETE", "/v1/messages", 405, "method_not_allowed"),
    ],
)
async def test_a_path_or_method_not_served_is_refused_in_the_json_error_shape(
    serve: ServerFactory, method: str, path: str, status: int, code: str
) -> None:
    """An unknown path or a method a path does not take gets the JSON error every refusal has
    (405 with Allow), not aiohttp's plain-text "404: Not Found"."""
    server = await serve()
    async with server.session.request(method, server.url + path) as response:
        assert response.status == status
        assert response.content_type == JSON
        answer = await response.json()
    assert answer["error"] == code
    assert answer["detail"]
    if status == 405:
        assert response.headers["Allow"] in answer["detail"]


async def test_ndjson_batch_is_accepted_whole(serve: ServerFactory) -> None:
    """Several envelopes under one signature are all accepted, in order."""
    server = await serve()
    items = [envelope(topic=f"t{number}") for number in range(5)]
    status, answer = await server.post(body_of(*items) + b"\n", content_type=NDJSON)
    assert (status, answer) == (202, {"accepted": 5})
    await async_wait_until(lambda: len(server.delivered) == 5, what="five")
    assert [item.topic for item in server.delivered] == [f"t{number}" for number in range(5)]


@pytest.mark.parametrize(
    ("bad", "status", "error"),
    [
        (envelope(payload={"status": "sick"}), 400, "invalid_payload"),
        (envelope(tag="nothing"), 400, "unknown_tag"),
        ("duplicate", 409, "replayed"),
    ],
)
async def test_ndjson_batch_is_all_or_nothing(
    serve: ServerFactory, bad: Any, status: int, error: str
) -> None:
    """One bad line refuses the whole batch, naming the line; none is delivered or remembered."""
    server = await serve()
    good = [envelope(), envelope()]
    third = dict(good[0]) if bad == "duplicate" else bad
    answer_status, answer = await server.post(body_of(*good, third), content_type=NDJSON)
    assert answer_status == status
    assert answer["error"] == error
    assert answer["field"].startswith("line 3")
    # A line already accepted is no line at fault: a 409 lists none.
    assert answer.get("problems", []) == ([] if status == 409 else [_top(answer)])
    # Nothing was remembered: the good lines alone go through afterwards, and they are all
    # the bus ever delivers (it keeps order, so the refused batch would have come first).
    assert (await server.post(body_of(*good), content_type=NDJSON))[0] == 202
    await async_wait_until(lambda: len(server.delivered) >= 2, what="the good lines")
    assert [item.id for item in server.delivered] == [line["id"] for line in good]


async def test_a_batch_repeating_an_id_says_so_not_that_it_was_accepted(
    serve: ServerFactory,
) -> None:
    """An NDJSON batch holding one envelope id on two lines is refused 409 ``replayed`` saying
    the line repeats the earlier line's id in this batch (nothing was accepted: the batch is
    refused whole); an id accepted by an earlier request is still said to be accepted."""
    server = await serve()
    first, other = envelope(), envelope()
    body = body_of(other, first, dict(first)) + b"\n"
    status, answer = await server.post(body, content_type=NDJSON)
    assert (status, answer["error"], answer["field"]) == (409, "replayed", "line 3: id")
    assert answer["detail"] == f"line 3: message {first['id']} repeats line 2's id in this batch"
    assert (await server.post(body_of(first), content_type=NDJSON))[0] == 202
    status, answer = await server.post(body_of(other, first), content_type=NDJSON)
    assert (status, answer["field"]) == (409, "line 2: id")
    assert answer["detail"] == f"line 2: message {first['id']} was already accepted"


def _top(answer: dict[str, Any]) -> dict[str, Any]:
    """An ingest refusal's own error, detail and field, as one of its ``problems`` holds them."""
    return {key: answer[key] for key in ("error", "detail", "field")}


async def test_a_batch_refused_for_its_lines_lists_each_line_at_fault(
    serve: ServerFactory,
) -> None:
    """Bad lines 2, 5 and 9 of different kinds: one 400 whose error, detail and field are the
    first bad line's, as before, and whose ``problems`` names the three in order, each worded
    as the answer would be were it the only bad line; the refusal is counted once."""
    server = await serve()
    bad = {
        2: body_of(envelope(tag="no_such_tag")),
        5: b"{not json",
        9: body_of(envelope(payload={"status": "sick"})),
    }
    # Line 7 is blank: the lines are named where the body has them.
    body = b"\n".join(
        b"" if number == 7 else bad.get(number) or body_of(envelope()) for number in range(1, 11)
    )
    status, answer = await server.post(body, content_type=NDJSON)
    assert status == 400
    assert set(answer) == {"error", "detail", "field", "problems", "problems_total"}
    assert (answer["error"], answer["field"]) == ("unknown_tag", "line 2: tag")
    assert answer["detail"].startswith("line 2: 'no_such_tag' is not a message type of")
    assert [(p["field"], p["error"]) for p in answer["problems"]] == [
        ("line 2: tag", "unknown_tag"),
        ("line 5", "malformed"),
        ("line 9: payload.status", "invalid_payload"),
    ]
    assert answer["problems"][0] == _top(answer)
    assert answer["problems_total"] == 3
    assert server.rejected("unknown_tag") == 1
    assert server.rejected("malformed") == server.rejected("invalid_payload") == 0
    for number, problem in zip(bad, answer["problems"], strict=True):
        alone = b"\n".join(
            b"" if n == 7 else bad[n] if n == number else body_of(envelope()) for n in range(1, 11)
        )
        status, single = await server.post(alone, content_type=NDJSON)
        assert (status, _top(single)) == (400, problem)
        assert single["problems"] == [problem]
    assert server.delivered == []


async def test_a_batch_of_25_bad_lines_lists_20_and_counts_25(serve: ServerFactory) -> None:
    """Every second line of 50 is bad: ``problems`` lists the first 20 in order and
    ``problems_total`` counts all 25."""
    server = await serve()
    lines = [body_of(envelope(node="" if n % 2 == 0 else "n@h")) for n in range(1, 51)]
    status, answer = await server.post(b"\n".join(lines), content_type=NDJSON)
    assert status == 400
    assert [p["field"] for p in answer["problems"]] == [f"line {n}: node" for n in range(2, 42, 2)]
    assert {p["error"] for p in answer["problems"]} == {"malformed"}
    assert answer["problems"][0] == _top(answer)
    assert answer["problems_total"] == 25


async def test_a_batch_stops_being_read_at_its_thousandth_bad_line(serve: ServerFactory) -> None:
    """Of 1 500 bad lines the answer lists the first 20 and counts 1 000, not 1 500 (where
    the bridge stops decoding them)."""
    server = await serve()
    status, answer = await server.post(b"{\n" * 1_500, content_type=NDJSON)
    assert status == 400
    assert [p["field"] for p in answer["problems"]] == [f"line {n}" for n in range(1, 21)]
    assert answer["problems_total"] == 1_000


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        (b"not json", "malformed", "body"),
        (body_of(envelope(tag="no_such_tag")), "unknown_tag", "tag"),
        (body_of(envelope(payload={"status": "sick"})), "invalid_payload", "payload.status"),
    ],
    ids=["not-json", "unknown-tag", "invalid-payload"],
)
async def test_a_lone_envelope_refused_lists_itself_as_its_one_problem(
    serve: ServerFactory, body: bytes, error: str, field: str
) -> None:
    """One envelope sent as application/json and refused for what it holds: ``problems`` is
    the answer's own error, detail and field, ``problems_total`` 1."""
    server = await serve()
    status, answer = await server.post(body)
    assert (status, answer["error"], answer["field"]) == (400, error, field)
    assert answer["problems"] == [_top(answer)]
    assert answer["problems_total"] == 1


# A performance metric that names its metric and nothing else: value, unit and component missing.
_METRIC_ONLY: Final = {
    "instance": "ex_esdb_metrics",
    "topic": "metrics",
    "tag": "performance_metric",
    "payload": {"metric_name": "queue_depth"},
}


def _worded(answer: dict[str, Any]) -> dict[str, Any]:
    """An ingest refusal's error, detail, field and fields, as one of its ``problems`` holds
    them."""
    return {key: answer[key] for key in ("error", "detail", "field", "fields")}


async def test_a_payload_missing_three_fields_is_answered_naming_all_three(
    serve: ServerFactory,
) -> None:
    """A performance metric missing value, unit and component is answered one 400 whose detail
    says all three, its ``field`` the first and ``fields`` each, counted as one refusal."""
    server = await serve()
    status, answer = await server.post(body_of(envelope(**_METRIC_ONLY)))
    assert (status, answer["error"], answer["field"]) == (400, "invalid_payload", "payload.value")
    assert answer["fields"] == ["payload.value", "payload.unit", "payload.component"]
    assert answer["detail"] == (
        "payload.value: Field required; payload.unit: Field required;"
        " payload.component: Field required"
    )
    assert answer["problems"] == [_worded(answer)]
    assert answer["problems_total"] == 1
    assert server.rejected("invalid_payload") == 1
    assert server.delivered == []


async def test_a_wrong_word_or_field_is_answered_with_what_is_allowed_and_the_one_meant(
    serve: ServerFactory,
) -> None:
    """A status no node has and a misspelt field are answered naming the words the status takes
    and each one meant, as publish and the integration API name them, the first unknown field
    with the fields the type has, in a batch's later lines too; a field like none is said
    unknown alone."""
    server = await serve()
    payload = {"status": "helthy", "chekcs": {}, "zzz": 1}
    body = b"\n".join([body_of(envelope(payload=payload))] * 2)
    status, answer = await server.post(body, content_type=NDJSON)
    assert (status, answer["error"], answer["field"]) == (
        400,
        "invalid_payload",
        "line 1: payload.status",
    )
    detail = (
        "payload.status: must be 'healthy', 'degraded', 'unhealthy' or 'unknown'; did you mean"
        " 'healthy'?; payload.chekcs: not a field of node_health_updated; did you mean 'checks'?"
        " (its fields: timestamp, node, status, checks, load_avg, memory_usage, disk_usage);"
        " payload.zzz: not a field of node_health_updated"
    )
    assert answer["detail"] == f"line 1: {detail}"
    assert [problem["detail"] for problem in answer["problems"]] == [
        f"line 1: {detail}",
        f"line 2: {detail}",
    ]


async def test_a_batch_line_with_envelope_and_payload_problems_names_them_all(
    serve: ServerFactory,
) -> None:
    """A line whose ts is no timestamp, whose tag is misspelt, and a line whose payload misses
    three fields: each line's entry names every problem it has (the line once, before the
    detail; before each field), the tag meant too, and the batch is counted once, by its first
    problem's error."""
    server = await serve()
    misspelt = envelope(**{**_METRIC_ONLY, "tag": "performance_metrc", "ts": "yesterday"})
    body = b"\n".join([body_of(envelope()), body_of(misspelt), body_of(envelope(**_METRIC_ONLY))])
    status, answer = await server.post(body, content_type=NDJSON)
    assert (status, answer["error"]) == (400, "malformed")
    first, second = answer["problems"]
    assert first == _worded(answer)
    assert first["fields"] == ["line 2: ts", "line 2: tag"]
    assert first["detail"].startswith("line 2: ts must be an RFC 3339 timestamp; 'performance_m")
    assert first["detail"].endswith("; did you mean 'performance_metric'?")
    assert second["error"] == "invalid_payload"
    assert second["fields"] == [
        f"line 3: payload.{name}" for name in ("value", "unit", "component")
    ]
    assert second["detail"] == (
        "line 3: payload.value: Field required; payload.unit: Field required;"
        " payload.component: Field required"
    )
    assert answer["problems_total"] == 2
    assert server.rejected("malformed") == 1
    assert server.rejected("unknown_tag") == server.rejected("invalid_payload") == 0


async def test_a_message_with_many_problems_is_answered_with_ten_and_a_count(
    serve: ServerFactory,
) -> None:
    """A payload with 12 unknown keys besides its three missing fields names its first ten
    problems and says how many more it has."""
    unknown = {f"key{n:02}": n for n in range(12)}
    payload = {"metric_name": "queue_depth", **unknown}
    server = await serve()
    status, answer = await server.post(body_of(envelope(**{**_METRIC_ONLY, "payload": payload})))
    assert status == 400
    assert len(answer["fields"]) == 10
    assert answer["fields"][:4] == [
        "payload.value",
        "payload.unit",
        "payload.component",
        "payload.key00",
    ]
    assert answer["detail"].endswith(
        "; payload.key06: not a field of performance_metric; and 5 more problems"
    )


@pytest.mark.parametrize(
    ("lines", "status", "field"),
    [
        ([b"good", b"", b"  ", b"bad"], 400, "line 4: node"),
        ([b"", b"\r", b"not json"], 400, "line 3"),
        ([b"good", b"", b"good again"], 409, "line 3: id"),
    ],
    ids=["bad-after-blank-lines", "lone-line-after-blank-lines", "replay-after-a-blank-line"],
)
async def test_ndjson_refusals_name_the_line_where_the_body_has_it(
    serve: ServerFactory, lines: list[bytes], status: int, field: str
) -> None:
    """Blank lines count: a refused NDJSON line is named by its line in the body, not by its
    place among the envelopes."""
    server = await serve()
    good = body_of(envelope())
    parts = {
        b"good": good,
        b"good again": good,
        b"bad": body_of(envelope(node="a\u0000b")),
        b"not json": b"{not json",
    }
    body = b"\n".join(parts.get(line, line) for line in lines)
    answer_status, answer = await server.post(body, content_type=NDJSON)
    assert (answer_status, answer.get("field")) == (status, field), answer
    assert server.delivered == []


async def test_ndjson_with_no_envelope_is_malformed(serve: ServerFactory) -> None:
    """An empty NDJSON body answers 400 naming the body."""
    server = await serve()
    status, answer = await server.post(b"\n\n", content_type=NDJSON)
    assert (status, answer["error"], answer["field"]) == (400, "malformed", "body")
    assert "problems" not in answer  # a body-level refusal: no line is at fault


async def test_two_envelopes_sent_as_json_are_told_to_go_as_ndjson(serve: ServerFactory) -> None:
    """A JSON body holding two envelopes answers 400 saying to send several as NDJSON."""
    server = await serve()
    body = body_of(envelope(), envelope())
    status, answer = await server.post(body, content_type=JSON)
    assert (status, answer["error"], answer["field"]) == (400, "malformed", "body")
    assert "send several as application/x-ndjson" in answer["detail"]
    assert server.delivered == []


async def test_ndjson_lines_split_at_carriage_returns_are_told_to_end_in_line_feeds(
    serve: ServerFactory,
) -> None:
    """NDJSON whose envelopes are split by a CR alone is one line holding several: 400 saying
    each line ends in a line feed, not only to send them as NDJSON, which it did."""
    server = await serve()
    body = json.dumps(envelope()).encode() + b"\r" + json.dumps(envelope()).encode()
    status, answer = await server.post(body, content_type=NDJSON)
    assert (status, answer["error"], answer["field"]) == (400, "malformed", "line 1")
    assert "each line ending in a line feed" in answer["detail"]
    assert server.delivered == []


# -- probes and metrics --


async def test_healthz_answers_200(serve: ServerFactory) -> None:
    """/healthz answers 200 while the process runs."""
    server = await serve()
    assert (await server.get("/healthz"))[0] == 200


class _Component:
    def __init__(self, name: str, required: bool, reason: str | None) -> None:
        self.name = name
        self.required = required
        self.reason = reason

    async def start(self) -> None:
        pass

    def readiness(self) -> str | None:
        return self.reason

    async def aclose(self) -> None:
        pass


async def test_readyz_answers_200_when_ready(serve: ServerFactory) -> None:
    """/readyz answers 200 when the bus and required parts are ready; optional ones are reported."""
    server = await serve(
        components=[lambda bridge: _Component("otlp", False, "collector unreachable")]
    )
    status, answer = await server.get("/readyz")
    assert status == 200
    assert answer["ready"] is True
    assert answer["checks"]["bus"]["ready"] is True
    assert answer["checks"]["otlp"] == {
        "ready": False,
        "required": False,
        "reason": "collector unreachable",
    }


async def test_readyz_answers_503_with_reasons(serve: ServerFactory) -> None:
    """A required part that is not ready makes /readyz answer 503 with its reason."""
    server = await serve(components=[lambda bridge: _Component("alerts", True, "outbox full")])
    status, answer = await server.get("/readyz")
    assert status == 503
    assert answer["ready"] is False
    assert answer["checks"]["alerts"]["reason"] == "outbox full"


async def test_metrics_speaks_text_openmetrics_and_gzip(serve: ServerFactory) -> None:
    """/metrics answers Prometheus text 0.0.4, OpenMetrics on request, gzip when accepted."""
    server = await serve()
    async with server.session.get(server.url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "exesdb_bus_rejected_total" in await response.text()
    headers = {"Accept": "application/openmetrics-text; version=1.0.0"}
    async with server.session.get(server.url + "/metrics", headers=headers) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert (await response.text()).endswith("# EOF\n")
    async with server.session.get(
        server.url + "/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    ) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert b"exesdb_build_info" in gzip.decompress(await response.read())


async def test_metrics_gives_the_prometheus_sinks_caps_as_configured(serve: ServerFactory) -> None:
    """/metrics gives EXESDB_MAX_SERIES as exesdb_prometheus_series_limit and
    EXESDB_MAX_SERIES_BYTES as exesdb_prometheus_series_bytes_limit, to draw and alert on what
    is held against."""
    server = await serve(
        [prometheus_sink], EXESDB_MAX_SERIES="5000", EXESDB_MAX_SERIES_BYTES="3145728"
    )
    async with server.session.get(server.url + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    assert "\nexesdb_prometheus_series_limit 5000.0\n" in text
    assert "\nexesdb_prometheus_series_bytes_limit 3145728.0\n" in text


async def test_metrics_pipelined_by_a_client_reading_nothing_are_rendered_as_the_socket_takes_them(
    serve: ServerFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A client pipelining requests for /metrics and reading no answer has them rendered only
    as the sockets take them, not every one kept in the bridge's memory (an exposition under
    64 KiB: aiohttp waits for the socket only past that); its leaving logs no traceback."""
    server = await serve()
    assert server.bridge.address is not None
    rendered: list[str] = []
    render = server.bridge.render_metrics

    def counted(accept: str) -> tuple[bytes, str]:
        rendered.append(accept)
        return render(accept)

    monkeypatch.setattr(server.bridge, "render_metrics", counted)
    size = len(render("")[0])
    bound = unread_bound(size)
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    with caplog.at_level(logging.DEBUG, logger="bridge.listener.guard"):
        answered = await answered_unread(
            server.bridge.address, request, 2 * bound + 10, lambda: len(rendered)
        )
        assert 0 < answered <= bound, (answered, bound)
        await async_wait_until(
            lambda: any(
                r.levelno >= logging.ERROR or "went away" in r.getMessage() for r in caplog.records
            ),
            what="the handler told the client left",
        )
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("request_line", ["GET /nope", "GET /alerts/a/b/c", "POST /healthz"])
async def test_a_request_for_a_path_or_method_not_served_is_let_go_with_its_connection(
    serve: ServerFactory, request_line: str
) -> None:
    """A request for a path not served (404) or a method a path does not take (405) is let go
    with its connection, not kept in a cycle for the collector, which the bridge's thresholds
    run some 500 requests later: a megabyte head each, they held 450 MB."""
    server = await serve()
    assert server.bridge.address is not None
    mark = secrets.token_hex(8)
    with collector_off():
        for _ in range(3):
            reader, writer = await asyncio.open_connection(*server.bridge.address)
            writer.write(
                f"{request_line} HTTP/1.1\r\nHost: x\r\nX-Mark: {mark}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            await writer.drain()
            assert (await asyncio.wait_for(reader.read(), 10)).split(b" ")[1] in (b"404", b"405")
            writer.close()
        await async_wait_until(
            lambda: not alive(web.BaseRequest, lambda r: r.headers.get("X-Mark") == mark),
            what="the requests let go",
        )


async def test_head_metrics_sends_no_body_even_when_gzip_is_accepted(serve: ServerFactory) -> None:
    """HEAD /metrics with ``Accept-Encoding: gzip`` answers headers only: on a keep-alive
    connection the next answer starts right after them, with no stray bytes between."""
    server = await serve()
    assert server.bridge.address is not None
    reader, writer = await asyncio.open_connection(*server.bridge.address)
    try:
        writer.write(
            b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        answers = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, rest = answers.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-length: " in head.lower()
    assert rest.startswith(b"HTTP/1.1 200"), rest[:40]


@pytest.mark.parametrize("coding", ["gzip, chunked", "identity, chunked", "deflate, chunked"])
async def test_a_transfer_coding_other_than_chunked_is_501_and_the_connection_closes(
    serve: ServerFactory, coding: str
) -> None:
    """A body framed ``Transfer-Encoding: gzip, chunked`` (or identity, deflate) is not read as
    if the codings before chunked were not there: 501 naming the header, and the connection
    closes, so nothing sent after it on that connection is read as a request; the switch it
    would have turned off stays on."""
    server = await serve()
    assert server.bridge.address is not None
    reader, writer = await asyncio.open_connection(*server.bridge.address)
    body = b'{"enabled": false}'
    try:
        writer.write(
            b"POST /v1/integration HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {ADMIN_TOKEN}\r\nTransfer-Encoding: {coding}\r\n\r\n".encode()
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
            + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        await writer.drain()
        answers = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, rest = answers.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 501"), head
    assert b"connection: close" in head.lower()
    assert json.loads(rest) == {
        "error": "not_implemented",
        "detail": f"Transfer-Encoding {coding!r} is not one the bridge applies: send the body"
        " chunked or with a Content-Length",
        "field": "Transfer-Encoding",
    }
    assert server.bridge.integration.enabled()


async def test_an_http_1_0_request_with_a_transfer_encoding_is_400_and_the_connection_closes(
    serve: ServerFactory,
) -> None:
    """An HTTP/1.0 request with ``Transfer-Encoding: chunked`` and keep-alive is not read as
    chunked (RFC 9112 6.1: its framing is faulty; Go's server frames it by Content-Length): 400
    naming the header, the connection closes, and what follows is not read as a request."""
    server = await serve()
    assert server.bridge.address is not None
    reader, writer = await asyncio.open_connection(*server.bridge.address)
    body = b'{"enabled": false}'
    try:
        writer.write(
            b"POST /v1/integration HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n"
            + f"Content-Type: application/json\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n".encode()
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
            + b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        )
        await writer.drain()
        answers = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, rest = answers.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 400"), head
    assert b"keep-alive" not in head.lower()
    assert json.loads(rest) == {
        "error": "bad_request",
        "detail": "Transfer-Encoding is not part of HTTP/1.0: send the body with a"
        " Content-Length, or the request as HTTP/1.1",
        "field": "Transfer-Encoding",
    }
    assert server.bridge.integration.enabled()


@pytest.mark.parametrize(
    ("accept_encoding", "gzipped"),
    [
        ("gzip", True),
        ("GZIP", True),
        ("br, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip; q=0.000, identity", False),
        ("identity", False),
        ("", False),
    ],
)
async def test_metrics_gzips_only_when_gzip_is_acceptable(
    serve: ServerFactory, accept_encoding: str, gzipped: bool
) -> None:
    """gzip when Accept-Encoding names it with a weight above 0; ``gzip;q=0`` refuses it."""
    server = await serve()
    headers = {"Accept-Encoding": accept_encoding}
    async with server.session.get(
        server.url + "/metrics", headers=headers, auto_decompress=False
    ) as response:
        body = await response.read()
    assert response.status == 200
    assert (response.headers.get("Content-Encoding") == "gzip") is gzipped
    assert b"exesdb_build_info" in (gzip.decompress(body) if gzipped else body)


async def test_metrics_gzips_at_the_fastest_level_with_a_content_length(
    serve: ServerFactory,
) -> None:
    """A gzipped /metrics is compressed at zlib's fastest level (the gzip header's XFL is 4),
    whole, and sent with its Content-Length rather than chunked."""
    server = await serve()
    async with server.session.get(
        server.url + "/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    ) as response:
        body = await response.read()
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Length"] == str(len(body))
    assert "Transfer-Encoding" not in response.headers
    assert body[:2] == b"\x1f\x8b"
    assert body[8] == 4  # XFL: "compressor used fastest algorithm" (RFC 1952, 2.3.1)
    assert b"exesdb_build_info" in gzip.decompress(body)


async def test_metrics_answers_text_to_a_scraper_weighting_text_above_openmetrics(
    serve: ServerFactory,
) -> None:
    """Prometheus' ``scrape_protocols: [PrometheusText0.0.4, OpenMetricsText1.0.0]`` lists both,
    text weighted higher: it gets text 0.0.4, not OpenMetrics."""
    server = await serve()
    headers = {
        "Accept": "text/plain;version=0.0.4;q=0.6,"
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,*/*;q=0.4"
    }
    async with server.session.get(server.url + "/metrics", headers=headers) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "# EOF" not in await response.text()


async def test_metrics_answers_text_for_an_accept_it_cannot_read(serve: ServerFactory) -> None:
    """An OpenMetrics version prometheus_client cannot compare gets text 0.0.4, not a 500."""
    server = await serve()
    headers = {"Accept": "application/openmetrics-text; version=one"}
    async with server.session.get(server.url + "/metrics", headers=headers) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "# EOF" not in await response.text()


# -- admin --


@pytest.mark.parametrize("path", ["/v1/integration", "/v1/stream"])
async def test_admin_endpoints_answer_403_without_a_configured_token(
    serve: ServerFactory, path: str
) -> None:
    """With no EXESDB_ADMIN_TOKEN, admin endpoints answer 403 saying how to enable them."""
    server = await serve(EXESDB_ADMIN_TOKEN="")
    status, answer = await server.get(path, token="anything")
    assert status == 403
    assert "EXESDB_ADMIN_TOKEN" in answer["detail"]


@pytest.mark.parametrize("token", [None, "", "wrong-token", ADMIN_TOKEN + "x", "é"])
async def test_admin_endpoints_answer_401_for_a_missing_or_wrong_token(
    serve: ServerFactory, token: str | None
) -> None:
    """Without the right bearer token admin endpoints answer 401; the detail says to send one
    when none came, and that the one sent is not the token when one came."""
    server = await serve()
    status, answer = await server.get("/v1/integration", token=token)
    assert status == 401
    assert answer["error"] == "unauthorized"
    if token:
        assert answer["detail"] == "the admin token sent is not the bridge's EXESDB_ADMIN_TOKEN"
    else:
        assert answer["detail"].startswith("send Authorization: Bearer <EXESDB_ADMIN_TOKEN>")


async def test_an_admin_token_configured_with_surrounding_whitespace_is_taken_trimmed(
    serve: ServerFactory,
) -> None:
    """EXESDB_ADMIN_TOKEN read from a file with its line break (a Kubernetes secret made with
    --from-file) is the token without it, as the token sent is: it is accepted."""
    server = await serve(EXESDB_ADMIN_TOKEN=f" {ADMIN_TOKEN}\n")
    assert (await server.get("/v1/integration", token=ADMIN_TOKEN))[0] == 200


async def test_get_integration_reports_switch_and_intervals(serve: ServerFactory) -> None:
    """GET /v1/integration answers enabled and both intervals in milliseconds."""
    server = await serve(EXESDB_HEALTH_BROADCAST_INTERVAL="1000")
    status, answer = await server.get("/v1/integration", token=ADMIN_TOKEN)
    assert status == 200
    assert answer == {
        "enabled": True,
        "health_broadcast_interval": 1000,
        "metrics_broadcast_interval": 60_000,
    }


async def test_post_integration_switches_at_runtime(serve: ServerFactory) -> None:
    """POST /v1/integration {"enabled": false} turns broadcasting off, true turns it back on."""
    server = await serve()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for enabled in (False, True):
        async with server.session.post(
            server.url + "/v1/integration", json={"enabled": enabled}, headers=auth
        ) as response:
            assert response.status == 200
            assert (await response.json())["enabled"] is enabled
        assert server.bridge.integration.enabled() is enabled


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/integration"])
@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", b"not gzip at all"),
        ("deflate", b"not deflate either"),
    ],
    ids=["not-gzip", "not-deflate"],
)
async def test_a_compressed_body_that_does_not_expand_answers_400_naming_the_body(
    serve: ServerFactory,
    path: str,
    encoding: str,
    body: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A body whose Content-Encoding does not decode answers 400 naming the body, on ingest
    (counted as malformed) and on an admin route, and closes the connection: no 500, no
    traceback in the log."""
    server = await serve()
    headers = {"Content-Encoding": encoding, "Authorization": f"Bearer {ADMIN_TOKEN}"}
    status, answer = await server.post(body, headers=headers, path=path)
    assert (status, answer.get("error"), answer.get("field")) == (400, "malformed", "body")
    assert encoding in answer["detail"]
    # aiohttp reads the rest of a body once the answer is sent: then the connection closes.
    registry = server.bridge.registry
    await async_wait_until(
        lambda: registry.get_sample_value("exesdb_http_connections") == 0,
        what="the connection closed",
    )
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    if path == "/v1/messages":
        assert server.rejected("malformed") == 1
    assert server.delivered == []
    assert server.bridge.integration.enabled()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b'{"enabled": "no"}', "enabled"),
        (b"[]", "enabled"),
        (b"[" * 100_000, "body"),
        (b'{"enabled": \xff}', "body"),
    ],
)
async def test_post_integration_refuses_a_bad_body(
    serve: ServerFactory, body: bytes, field: str
) -> None:
    """A body that is not {"enabled": bool} answers 400 naming the field (or the body)."""
    server = await serve()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": JSON}
    async with server.session.post(
        server.url + "/v1/integration", data=body, headers=headers
    ) as response:
        assert (response.status, (await response.json())["field"]) == (400, field)
    assert server.bridge.integration.enabled()


async def test_post_integration_refuses_a_key_given_twice_naming_it(
    serve: ServerFactory,
) -> None:
    """{"enabled": true, "enabled": false} is 400 malformed naming enabled, as ingest refuses a
    key given twice (parsers differ on which one counts), and the switch is left as it is."""
    server = await serve()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": JSON}
    async with server.session.post(
        server.url + "/v1/integration",
        data=b'{"enabled": true, "enabled": false}',
        headers=headers,
    ) as response:
        answer = await response.json()
    assert (response.status, answer) == (
        400,
        {"error": "malformed", "detail": "the key 'enabled' is given twice", "field": "enabled"},
    )
    assert server.bridge.integration.enabled()


@pytest.mark.parametrize(
    ("body", "field", "meant"),
    [
        (b'{"enabled": false, "for": "1h"}', "for", None),
        (b'{"enable": false}', "enable", "enabled"),
    ],
)
async def test_post_integration_refuses_an_unknown_field_naming_it(
    serve: ServerFactory, body: bytes, field: str, meant: str | None
) -> None:
    """A field the switch does not take is 400 invalid naming it (and the one meant when one is
    close), as the ack route's are, and the switch is left as it is: none is ignored."""
    server = await serve()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": JSON}
    async with server.session.post(
        server.url + "/v1/integration", data=body, headers=headers
    ) as response:
        answer = await response.json()
    assert (response.status, answer["error"], answer["field"]) == (400, "invalid", field)
    hint = f"; did you mean {meant!r}?" if meant else ""
    assert answer["detail"] == f"unknown field {field!r}{hint} (the fields: enabled)"
    assert server.bridge.integration.enabled()


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        ({}, "(none sent)"),
        ({"Content-Type": "text/plain"}, "(not text/plain)"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "application/x-www-form"),
        ({"Content-Type": f"{JSON}; charset=latin-1"}, "not 'latin-1'"),
        ({"Content-Type": f"{JSON}; charset=bogus"}, "not 'bogus'"),
        ({"Content-Type": JSON, "Content-Encoding": "br"}, "'br'"),
    ],
    ids=["none", "text", "form", "latin-1", "bogus-charset", "brotli"],
)
async def test_post_integration_refuses_a_body_that_is_not_json_with_415(
    serve: ServerFactory, headers: dict[str, str], said: str
) -> None:
    """As the ack route and ingest do: a Content-Type other than application/json, a charset
    other than UTF-8 (an unknown one included, not a 500) or a Content-Encoding the bridge does
    not expand is 415 unsupported_media_type saying what was sent, the switch left as it is."""
    server = await serve()
    sent = {"Authorization": f"Bearer {ADMIN_TOKEN}", **headers}
    async with server.session.post(
        server.url + "/v1/integration",
        data=b'{"enabled": false}',
        headers=sent,
        skip_auto_headers=["Content-Type"],
    ) as response:
        answer = await response.json()
    assert (response.status, answer["error"]) == (415, "unsupported_media_type")
    assert said in answer["detail"]
    assert server.bridge.integration.enabled()


async def test_stream_delivers_published_messages_as_server_sent_events(
    serve: ServerFactory,
) -> None:
    """GET /v1/stream sends each verified message as an SSE event naming its tag."""
    server = await serve()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with server.session.get(
        server.url + "/v1/stream", params={"topic": "cluster:*"}, headers=auth
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert (await response.content.readline()).startswith(b": connected")
        other = body_of(envelope(topic="elsewhere"))
        wanted = envelope()
        assert (await server.post(other))[0] == 202
        assert (await server.post(body_of(wanted)))[0] == 202
        event = await asyncio.wait_for(_next_line(response), 10)
        data = await asyncio.wait_for(_next_line(response), 10)
    assert event == b"event: node_health_updated\n"
    assert data.startswith(b"data: ")
    assert json.loads(data[6:])["id"] == wanted["id"]


async def test_a_head_of_the_stream_is_refused_not_streamed(serve: ServerFactory) -> None:
    """HEAD /v1/stream answers 405 naming GET: an endless stream has no head to give, and
    streamed on a HEAD its events would pass for the next answer on the connection."""
    server = await serve()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with server.session.head(server.url + "/v1/stream", headers=auth) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET"
    assert not any(s.name == "stream" for s in server.bridge.bus.subscriptions)


async def test_a_stream_client_that_does_not_read_holds_megabytes_not_its_thousand_messages(
    serve: ServerFactory,
) -> None:
    """A stream client that reads nothing holds at most about 8 MiB of events in the bridge
    however large the messages: of 60 messages of a megabyte each, those past it are dropped
    for that client and counted, not kept (1 000 of them would be a gigabyte)."""
    server = await serve()
    assert server.bridge.address is not None
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel keeps little
    client.setblocking(False)
    await asyncio.get_running_loop().sock_connect(client, server.bridge.address)
    reader, writer = await asyncio.open_connection(sock=client)
    writer.write(
        f"GET /v1/stream HTTP/1.1\r\nHost: bridge\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
        "\r\n".encode()
    )
    assert b"200" in await reader.readline()
    await async_wait_until(
        lambda: any(s.name == "stream" for s in server.bridge.bus.subscriptions),
        what="the stream subscribed",
    )
    metadata = {f"k{n}": "x" * 65_000 for n in range(15)}  # a megabyte a message
    big = envelope(
        instance="ex_esdb_logging",
        tag="log_entry",
        payload={"level": "info", "message": "m", "module": "app", "metadata": metadata},
    )
    try:
        for _ in range(60):
            assert (await server.post(body_of({**big, "id": secrets.token_hex(8)})))[0] == 202
        dropped = server.bridge.registry.get_sample_value(
            "exesdb_bus_dropped_total", {"subscriber": "stream"}
        )
    finally:
        writer.close()
    # At most 8 MiB queued, and what the socket buffers and the write under way hold.
    assert (dropped or 0.0) >= 30, dropped


async def _next_line(response: aiohttp.ClientResponse) -> bytes:
    """The next SSE line that is neither blank nor a comment."""
    while True:
        line = await response.content.readline()
        if line.strip() and not line.startswith(b":"):
            return line


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"instance": "ex_esdb_nothing"}, "instance"),
        ({"topic": "a b"}, "topic"),
        ({"instances": "ex_esdb_alerts"}, "instances"),  # misspelt: not every message instead
    ],
)
async def test_stream_refuses_bad_filters(
    serve: ServerFactory, query: dict[str, str], field: str
) -> None:
    """An unknown instance, a bad topic pattern or an unknown parameter answers 400 naming it."""
    server = await serve()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with server.session.get(
        server.url + "/v1/stream", params=query, headers=auth
    ) as response:
        assert response.status == 400
        assert (await response.json())["field"] == field


_STREAM_INSTANCES = (
    "allowed: ex_esdb_system, ex_esdb_health, ex_esdb_metrics, ex_esdb_lifecycle, ex_esdb_alerts,"
    " ex_esdb_audit, ex_esdb_diagnostics, ex_esdb_security, ex_esdb_logging"
)


@pytest.mark.parametrize(
    ("instance", "detail"),
    [
        ("ex_esdb_healt", f"unknown bus instance 'ex_esdb_healt'; {_STREAM_INSTANCES};"
         " did you mean 'ex_esdb_health'?"),
        ("EX_ESDB_ALERTS", f"unknown bus instance 'EX_ESDB_ALERTS'; {_STREAM_INSTANCES};"
         " did you mean 'ex_esdb_alerts'?"),
        ("nosuch", f"unknown bus instance 'nosuch'; {_STREAM_INSTANCES}"),
    ],
    ids=["misspelt", "upper-case", "like-none"],
)  # fmt: skip
async def test_stream_names_the_instances_it_takes_when_one_is_unknown(
    serve: ServerFactory, instance: str, detail: str
) -> None:
    """An unknown ?instance= is answered with the nine it takes, as ingest's unknown_instance
    is, so that curl's user need not look them up, and the one meant when it is spelt nearly as
    one, as a misspelt setting's word is."""
    server = await serve()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with server.session.get(
        server.url + "/v1/stream", params={"instance": instance}, headers=auth
    ) as response:
        assert response.status == 400
        assert (await response.json())["detail"] == detail


async def test_shutdown_is_not_held_by_a_connected_stream_client(serve: ServerFactory) -> None:
    """Closing the bridge with an SSE client attached ends the stream at once."""
    server = await serve()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with server.session.get(server.url + "/v1/stream", headers=auth) as response:
        assert (await response.content.readline()).startswith(b": connected")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(server.bridge.aclose(), 15)
        # Well under aiohttp's 2 s shutdown timeout: streams end at once, not when it runs out.
        assert loop.time() - started < 1.5
    assert all(subscription.name != "stream" for subscription in server.bridge.bus.subscriptions)


async def test_a_stream_client_gone_before_the_head_is_written_leaves_no_subscription() -> None:
    """A client that disconnects while the stream's response head is being prepared (a response
    hook, such as the web config's headers, may wait) leaves no subscription behind."""
    bridge = Bridge(
        make_settings(EXESDB_HTTP_ADDR="127.0.0.1:0", EXESDB_ADMIN_TOKEN=ADMIN_TOKEN),
        components=[],
    )
    await bridge.start(serve_http=False)
    held: list[web.BaseRequest] = []
    release = asyncio.Event()

    async def hold(request: web.BaseRequest, response: web.StreamResponse) -> None:
        if request.path == "/v1/stream":
            held.append(request)
            await release.wait()

    app = build_app(bridge)
    app.on_response_prepare.append(hold)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]

    def streams() -> int:
        return sum(1 for s in bridge.bus.subscriptions if s.name == "stream")

    try:
        async with aiohttp.ClientSession() as session:
            client = asyncio.create_task(
                session.get(
                    f"http://127.0.0.1:{port}/v1/stream",
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                )
            )
            await async_wait_until(lambda: held, what="the stream's head held")
            assert streams() == 1
            client.cancel()  # the client gives up and its connection closes
            await asyncio.gather(client, return_exceptions=True)
        await async_wait_until(
            lambda: held[0].transport is None or held[0].transport.is_closing(),
            what="the server seeing the client gone",
        )
        release.set()
        await async_wait_until(lambda: streams() == 0, what="the subscription gone")
    finally:
        release.set()
        await runner.cleanup()
        await bridge.aclose()


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


def _documented_access() -> dict[tuple[str, str], str]:
    """(method, path) → its access column in docs/http-api.md's table of routes."""
    table = (ROOT / "docs" / "http-api.md").read_text().split("| method and path |")[1]
    access: dict[tuple[str, str], str] = {}
    for line in table.split("\n\n")[0].splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        for method, path in re.findall(r"`([A-Z]+) (/[^`]*)`", cells[0]):
            access[(method, path)] = cells[-1]
    return access


async def test_every_route_but_the_documented_open_ones_needs_the_admin_token(
    serve: ServerFactory, tmp_path: Path
) -> None:
    """Every route the bridge serves is in docs/http-api.md's table; each marked admin answers
    401 without the token in a header, however else it is offered (query string, cookie), and
    each marked open answers without it."""
    server = await serve(default_components(), EXESDB_STATE_DIR=str(tmp_path))
    documented = _documented_access()
    served = {
        (route.method, route.resource.canonical)
        for route in build_app(server.bridge).router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    assert served == set(documented)
    token = ADMIN_TOKEN
    for method, path in sorted(served):
        url = server.url + path.replace("{alert_id}", "a1").replace("{name}", "pages.css")
        offers: list[dict[str, Any]] = [
            {},
            {"params": {"token": token}},
            {"params": {"access_token": token}},
            {"params": {"admin_token": token}},
            {"cookies": {"token": token, "EXESDB_ADMIN_TOKEN": token}},
            {"headers": {"Authorization": f"Basic {token}"}},
        ]
        for offer in offers:
            async with server.session.request(method, url, json={}, **offer) as response:
                if "admin token" in documented[(method, path)]:
                    assert response.status == 401, (method, path, offer)
                elif documented[(method, path)] == "open":
                    assert response.status != 401, (method, path, offer)


def _packed(coding: str, body: bytes) -> bytes:
    return gzip.compress(body) if coding == "gzip" else zlib.compress(body)


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
@pytest.mark.parametrize(
    ("damage", "detail"),
    [
        (lambda packed: packed[: len(packed) // 2], "cut short"),
        (lambda packed: packed[:-4], "cut short"),  # only the trailer's last bytes missing
        (lambda packed: packed + b"junk", "follow the end"),
    ],
    ids=["half", "trailer", "trailing-bytes"],
)
async def test_a_compressed_ingest_body_cut_short_or_with_bytes_after_answers_400_naming_the_body(
    serve: ServerFactory, coding: str, damage: Callable[[bytes], bytes], detail: str
) -> None:
    """A gzip or deflate ingest body cut short (or followed by other bytes) answers 400
    malformed naming the body, counted, rather than 401 for the part that arrived."""
    server = await serve()
    body = body_of(envelope())
    status, answer = await server.post(
        damage(_packed(coding, body)),
        signature=signed(body),
        headers={"Content-Encoding": coding},
    )
    assert (status, answer.get("error"), answer.get("field")) == (400, "malformed", "body")
    assert detail in answer["detail"]
    assert coding in answer["detail"]
    assert server.rejected("malformed") == 1
    assert server.delivered == []


async def test_a_gzip_body_of_several_members_is_taken_whole(serve: ServerFactory) -> None:
    """A gzip ingest body of two members one after another (RFC 1952) expands to both, as
    ``gzip.decompress`` reads it, and is verified and taken as the whole NDJSON batch."""
    server = await serve()
    first, second = body_of(envelope()) + b"\n", body_of(envelope())
    status, answer = await server.post(
        gzip.compress(first) + gzip.compress(second),
        NDJSON,
        signature=signed(first + second),
        headers={"Content-Encoding": "gzip"},
    )
    assert (status, answer) == (202, {"accepted": 2})


async def test_a_gzip_body_of_too_many_members_answers_400_naming_the_body(
    serve: ServerFactory,
) -> None:
    """A gzip body of more members than MAX_GZIP_MEMBERS (here 1 MiB of empty ones, which
    expand to nothing and cost a copy each) answers 400 malformed naming the body."""
    server = await serve()
    status, answer = await server.post(
        gzip.compress(b"") * ((1 << 20) // 20),
        signature=signed(b""),
        headers={"Content-Encoding": "gzip"},
    )
    assert (status, answer.get("error"), answer.get("field")) == (400, "malformed", "body")
    assert f"more than {MAX_GZIP_MEMBERS} members" in answer["detail"]


class _FailingMidAnswer(_Component):
    """A component serving /failing: an answer begun, then a fault."""

    def routes(self) -> list[web.RouteDef]:
        async def failing(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(b"begun ")
            raise RuntimeError("a fault after the answer began")

        return [web.get("/failing", failing)]


async def test_a_fault_after_an_answer_began_ends_it_without_a_second_answer(
    serve: ServerFactory,
) -> None:
    """A route that fails once its answer is under way is not answered a second time (a 500
    written into the open body): the answer ends there."""
    server = await serve(components=[lambda bridge: _FailingMidAnswer("failing", False, None)])
    assert server.bridge.address is not None
    reader, writer = await asyncio.open_connection(*server.bridge.address)
    try:
        writer.write(b"GET /failing HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        sent = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    assert sent.startswith(b"HTTP/1.1 200")
    assert sent.count(b"HTTP/1.1") == 1
    assert b"begun" in sent


@functools.cache
def _bomb(coding: str) -> bytes:
    """128 MiB of newlines, compressed to about 128 KiB."""
    expanded = b"\n" * (128 << 20)
    return gzip.compress(expanded, 9) if coding == "gzip" else zlib.compress(expanded, 9)


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/v1/messages", NDJSON),
        ("/v1/integration", JSON),
        ("/v1/alerts/a1/ack", JSON),
    ],
)
async def test_a_compressed_body_expanding_past_the_limit_is_refused_unexpanded(
    serve: ServerFactory, tmp_path: Path, coding: str, path: str, content_type: str
) -> None:
    """A body whose Content-Encoding expands it past EXESDB_MAX_BODY_BYTES (a 128 KiB gzip or
    deflate bomb of 128 MiB) is answered 413 too_large on every route that reads a body, and is
    never expanded whole in memory."""
    server = await serve(default_components(), EXESDB_STATE_DIR=str(tmp_path))
    bomb = _bomb(coding)
    headers = {
        "Content-Type": content_type,
        "Content-Encoding": coding,
        "Authorization": f"Bearer {ADMIN_TOKEN}",
        SIGNATURE_HEADER: signed(b""),
    }
    tracemalloc.start()
    try:
        async with server.session.post(server.url + path, data=bomb, headers=headers) as response:
            assert response.status == 413
            answer = await response.json()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20
    # In the one error shape every refusal has, on the admin routes too.
    assert answer["error"] == "too_large"
    assert "EXESDB_MAX_BODY_BYTES" in answer["detail"]


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Padding", "a" * 9000)],  # one field over 8 KiB
        [(f"X-H{number}", "a") for number in range(200)],  # more fields than 128
    ],
    ids=["long-field", "many-fields"],
)
async def test_an_oversized_request_head_is_refused_before_any_route(
    serve: ServerFactory, headers: list[tuple[str, str]]
) -> None:
    """A request head with a field over 8 KiB or more than 128 fields is answered 400 (the
    aiohttp parser's limits) before any handler reads it, and the bridge keeps serving."""
    server = await serve()
    host, port = server.bridge.address or ("", 0)
    reader, writer = await asyncio.open_connection(host, port)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    writer.write(f"GET /healthz HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode())
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    assert status_line.split()[1] == b"400"
    assert (await server.get("/healthz"))[0] == 200


async def test_refused_messages_are_logged_by_reason_at_most_once_a_minute_each(
    serve: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A sender signing with another key is told in the log at once, by the refusal's code and
    what to do, not once a request (anyone reaching the port could fill the log); another
    code gets its own line; a replay is INFO; no detail the sender wrote is logged."""
    server = await serve()
    wrong = Keyring(b"not the bridge's key")
    with caplog.at_level(logging.INFO, "bridge.bus.verify"):
        for _ in range(5):
            body = body_of(envelope(node="<sender's-text>"))
            status, _ = await server.post(body, signature=wrong.sign_header(body, int(time.time())))
            assert status == 401
        body = body_of(envelope())
        assert (await server.post(body))[0] == 202
        assert (await server.post(body))[0] == 409
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "bridge.bus.verify"]
    assert [(level, text.split(":")[0]) for level, text in lines] == [
        ("WARNING", "refused a message as invalid_signature"),
        ("INFO", "refused a message as replayed"),
    ]
    assert "another key than SECRET_KEY_BASE" in lines[0][1]
    assert "sender's-text" not in caplog.text
