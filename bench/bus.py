"""Bus throughput and CPU per message, against a naive per-message pipeline measured alongside.

Pipelines (each fed the same kind of signed messages, CPU from ``time.process_time``):

- naive: per message ``hmac`` verify, ``json.loads``, pydantic ``model_validate`` and
  ``Gauge.labels(...).set(...)`` (no envelope checks, no replay protection, no bus);
- frames: signed frames as a bus transport delivers them: verify, decode, replay, bus, sink;
- ingest batch: an NDJSON body of 1 000 with one header signature (what ``POST /v1/messages``
  does after reading the body): header check, decode, replay, bus, sink;
- publish: in-process ``bus.publish`` of built messages: serialize, sign, verify, bus, sink.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Final

from prometheus_client import CollectorRegistry

from bench._util import median, table, verified_batch
from bench.naive import naive_sink
from bench.workload import SECRET, Source
from bridge.app import Bridge
from bridge.bus import Envelope, Frame, decode_envelope
from bridge.bus.problems import decode_envelope_reference
from bridge.messages import MESSAGE_TYPES, Message
from bridge.settings import Settings
from bridge.sinks.prometheus.sink import prometheus_sink

CHUNK: Final = 1_000


@dataclass(slots=True)
class Result:
    """CPU microseconds per message, one value per repeat."""

    name: str
    per_message_us: list[float]

    @property
    def us(self) -> float:
        return median(self.per_message_us)


def _settings() -> Settings:
    return Settings(
        SECRET_KEY_BASE=SECRET,
        EXESDB_INGEST=True,
        EXESDB_LOG_LEVEL="warning",
        EXESDB_BUS_QUEUE_SIZE=100_000,
    )


class _Pipeline:
    """A started Bridge (no HTTP server) whose only component is the Prometheus sink."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.bridge = Bridge(_settings(), registry=self.registry, components=[prometheus_sink])
        self.sink_name = "bridge.sinks.prometheus"

    async def start(self) -> None:
        await self.bridge.start(serve_http=False)

    async def drained(self) -> None:
        subscriptions = self.bridge.bus.subscriptions
        # Yield to the subscribers' tasks until they are idle (an Event would need a hook in
        # the bus; this costs a loop iteration per wake-up, the same for every pipeline).
        while not all(s.idle for s in subscriptions):  # noqa: ASYNC110
            await asyncio.sleep(0)

    def rejected(self) -> float:
        return sum(
            self.registry.get_sample_value("exesdb_bus_rejected_total", {"reason": r}) or 0.0
            for r in (
                "invalid_signature",
                "unsigned",
                "malformed",
                "invalid_payload",
                "unknown_instance",
                "unknown_tag",
                "expired",
                "replayed",
                "too_large",
            )
        )

    async def aclose(self) -> None:
        await self.bridge.aclose()


def naive(frames: Sequence[tuple[bytes, str]], sink: Callable[[Message], None]) -> None:
    """The straightforward pipeline the issue names as the baseline."""
    key = SECRET.encode()
    for body, signature in frames:
        expected = hmac.new(key, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise RuntimeError("bad signature")
        data = json.loads(body)
        model = MESSAGE_TYPES[(data["instance"], data["tag"])]
        sink(model.model_validate(data["payload"], context={"node": data["node"]}))


def naive_publish(messages: Sequence[tuple[str, Message]], sink: Callable[[Message], None]) -> None:
    """The baseline for publish: serialize, sign, verify, parse, validate, set, per message."""
    key = SECRET.encode()
    for topic, message in messages:
        body = json.dumps(
            {
                "v": 1,
                "id": uuid.uuid4().hex,
                "instance": message.INSTANCE,
                "topic": topic,
                "tag": message.TAG,
                "node": "bench@host",
                "ts": datetime.now(UTC).isoformat(),
                "payload": message.model_dump(mode="json"),
            }
        ).encode()
        signature = hmac.new(key, body, hashlib.sha256).hexdigest()
        naive([(body, signature)], sink)


async def _frames(pipeline: _Pipeline, frames: Sequence[tuple[bytes, str]]) -> None:
    transport = pipeline.bridge.bus.transport
    for start in range(0, len(frames), CHUNK):
        for body, signature in frames[start : start + CHUNK]:
            # The instance routes Redis frames; the in-process transport ignores it.
            transport.send(Frame("", body, signature))
        await pipeline.drained()


async def _batches(pipeline: _Pipeline, batches: Sequence[tuple[bytes, str]]) -> None:
    bridge = pipeline.bridge
    verifier = bridge.verifier
    for body, header in batches:
        bridge.bus.publish_verified(*verified_batch(verifier, body, header))
        await pipeline.drained()


async def _publish(pipeline: _Pipeline, messages: Sequence[tuple[str, Message]]) -> None:
    bus = pipeline.bridge.bus
    for start in range(0, len(messages), CHUNK):
        for topic, message in messages[start : start + CHUNK]:
            if not bus.publish(topic, message):
                raise RuntimeError("publish refused")
        await pipeline.drained()


async def _measure(
    name: str, run: Callable[[_Pipeline], Awaitable[None]], count: int
) -> tuple[float, str]:
    pipeline = _Pipeline()
    await pipeline.start()
    try:
        started = time.process_time()
        await run(pipeline)
        elapsed = time.process_time() - started
        if pipeline.rejected():
            raise RuntimeError(f"{name}: {pipeline.rejected():.0f} message(s) rejected")
    finally:
        await pipeline.aclose()
    return elapsed / count * 1e6, pipeline.sink_name


def _decoded(frames: Sequence[tuple[bytes, str]]) -> list[tuple[str, Message]]:
    out = []
    for body, _ in frames:
        envelope = decode_envelope(body)
        assert isinstance(envelope, Envelope)
        out.append((envelope.topic, envelope.payload))
    return out


def run(*, quick: bool = False) -> str:
    """Run every pipeline ``repeats`` times; the table of medians."""
    repeats = 3 if quick else 5
    count = 5_000 if quick else 10_000
    source = Source()
    names = ("naive", "frames", "batch", "naive_publish", "publish")
    results = {name: Result(name, []) for name in names}
    decode = {name: Result(name, []) for name in ("reference", "fast")}
    sink_name = ""
    for _ in range(repeats):
        frames = source.frames(count)
        registry = CollectorRegistry()
        sink = naive_sink(registry)
        started = time.process_time()
        naive(frames, sink)
        results["naive"].per_message_us.append((time.process_time() - started) / count * 1e6)

        us, sink_name = asyncio.run(_measure("frames", partial(_frames, frames=frames), count))
        results["frames"].per_message_us.append(us)

        batches = [source.batch(CHUNK) for _ in range(count // CHUNK)]
        us, _ = asyncio.run(_measure("batch", partial(_batches, batches=batches), count))
        results["batch"].per_message_us.append(us)

        messages = _decoded(source.frames(count))
        sink = naive_sink(CollectorRegistry())
        started = time.process_time()
        naive_publish(messages, sink)
        results["naive_publish"].per_message_us.append(
            (time.process_time() - started) / count * 1e6
        )
        us, _ = asyncio.run(_measure("publish", partial(_publish, messages=messages), count))
        results["publish"].per_message_us.append(us)

        bodies = [body for body, _ in frames]
        for name, decoder in (("reference", decode_envelope_reference), ("fast", decode_envelope)):
            started = time.process_time()
            for body in bodies:
                decoder(body)
            decode[name].per_message_us.append((time.process_time() - started) / count * 1e6)

    labels = {
        "naive": "naive per message (hmac+json+pydantic+Gauge.labels().set)",
        "frames": "bridge: signed frames (verify, decode, replay, bus, sink)",
        "batch": "bridge: NDJSON batches of 1000 (header HMAC, decode, replay, bus, sink)",
        "naive_publish": "naive publish (json.dumps+hmac, then the naive pipeline)",
        "publish": "bridge: bus.publish (serialize, sign, verify, replay, bus, sink)",
    }
    baseline_of = {"naive_publish": "naive_publish", "publish": "naive_publish"}
    rows = []
    for name, result in results.items():
        base = results[baseline_of.get(name, "naive")].us
        rows.append([labels[name], 1e6 / result.us, result.us, base / result.us])
    text = table(
        f"Bus pipeline ({repeats} x {count:,} messages, median; sink: {sink_name})",
        ["pipeline", "msgs/s per CPU-s", "CPU us/msg", "x its naive baseline"],
        rows,
    )
    ref = decode["reference"].us
    text += "\n" + table(
        "Envelope decode (same bytes)",
        ["decoder", "CPU us/msg", "x reference"],
        [
            ["reference (json.loads + model_validate)", ref, 1.0],
            ["fast (pydantic-core validate_json)", decode["fast"].us, ref / decode["fast"].us],
        ],
    )
    return text


if __name__ == "__main__":
    print(run())
