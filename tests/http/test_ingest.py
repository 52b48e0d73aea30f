"""Ingest (POST /v1/messages, docs/http-api.md) takes a signed envelope and hands each subscriber
its message model."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from bridge.app import default_components
from bridge.bus import Envelope, Keyring
from bridge.bus.problems import decode_envelope_reference
from bridge.messages import Message
from tests.http.helpers import NDJSON, ServerFactory, body_of, envelope, signed
from tests.messages.helpers import CASES
from tests.support import async_wait_until


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
