"""Signed messages for the benchmarks: a metrics-heavy mix, built from byte templates.

Envelopes are assembled from per-message-type templates (only ``id`` and ``ts`` change), so the
benchmark client spends little CPU making them and the bridge sees realistic, distinct messages.
Two payload shapes: ``complete`` (every field of the mix set, the payload's timestamp too) and
``minimal`` (only the required fields: no ``node``, ``timestamp`` or other defaulted field), both
written compact. A third way of writing them, ``python``, is the complete shape as Python's
``json.dumps`` writes it by default (a space after each separator, ``µ`` escaped as ``\\u00b5``)
with a newline in the health checks' text and timestamps as ``datetime.isoformat()`` writes them
(microseconds and ``+00:00``): what a Python sender sends unless it is told otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from bridge.messages import TAGS

SECRET: Final = "bench-secret-key-base-with-at-least-32-characters"
NODES: Final = tuple(f"node{n}@bench" for n in range(1, 6))
_RESOURCES: Final = ("cpu", "memory", "disk", "network")

Shape = Literal["complete", "minimal", "python"]
SHAPES: Final[tuple[Shape, ...]] = ("complete", "minimal")
"""The payload shapes (both written compact)."""
WRITTEN: Final[tuple[Shape, ...]] = (*SHAPES, "python")
"""The shapes and the complete one as Python writes it by default: what ingest measures."""


@dataclass(frozen=True, slots=True)
class Template:
    """One message type's envelope, with holes for the id and the timestamp."""

    instance: str
    tag: str
    topic: str
    node: str
    payload: dict[str, Any]
    # Written as json.dumps writes by default: a space after each separator.
    spaced: bool = False
    # The payload's JSON after its opening brace, without ``timestamp`` (filled per message).
    rest: bytes = field(init=False)

    def __post_init__(self) -> None:
        fields = {k: v for k, v in self.payload.items() if k != "timestamp"}
        separators = (", ", ": ") if self.spaced else (",", ":")
        rest = json.dumps(fields, separators=separators).encode()[1:]
        object.__setattr__(self, "rest", rest)

    def render(self, message_id: str, ts: str) -> bytes:
        """The envelope bytes for one message (a payload ``timestamp`` is ``ts`` too)."""
        comma, colon = (", ", ": ") if self.spaced else (",", ":")
        stamp = f'"timestamp"{colon}"{ts}"{comma}' if "timestamp" in self.payload else ""
        return b"".join(
            (
                f'{{"v"{colon}1{comma}"id"{colon}"{message_id}"{comma}"instance"{colon}'
                f'"{self.instance}"{comma}"topic"{colon}"{self.topic}"{comma}"tag"{colon}'
                f'"{self.tag}"{comma}"node"{colon}{json.dumps(self.node)}{comma}"ts"{colon}'
                f'"{ts}"{comma}"payload"{colon}{{{stamp}'.encode(),
                self.rest,
                b"}",
            )
        )

    def minimal(self) -> Template:
        """This message with only the fields its model requires (the rest left to defaults)."""
        model = TAGS[self.tag]
        required = {
            name
            for name, info in model.__pydantic_fields__.items()
            if info.is_required() and name not in model.FILLED
        }
        payload = {k: v for k, v in self.payload.items() if k in required}
        return Template(self.instance, self.tag, self.topic, self.node, payload)

    def as_python_writes(self) -> Template:
        """This message as Python's json.dumps writes it, µ in its unit and a newline in its
        checks' text."""
        payload = dict(self.payload)
        if "unit" in payload:
            payload["unit"] = "µs"
        if "checks" in payload:
            payload["checks"] = {
                name: f"{value}\nlast run fine" for name, value in payload["checks"].items()
            }
        return Template(self.instance, self.tag, self.topic, self.node, payload, spaced=True)


def templates(shape: Shape = "complete", nodes: int = len(NODES)) -> list[Template]:
    """The mix: per node four resource readings, health, a performance, throughput and latency."""
    stamp = "2026-11-28T00:00:00.123Z"
    out: list[Template] = []
    for node in (f"node{n}@bench" for n in range(1, nodes + 1)):
        for index, resource in enumerate(_RESOURCES):
            out.append(
                Template(
                    "ex_esdb_metrics",
                    "resource_usage",
                    "metrics:resources",
                    node,
                    {
                        "timestamp": stamp,
                        "resource_type": resource,
                        "usage_percent": 12.5 + index,
                        "total_available": 1024.0,
                        "current_used": 128.0 + index,
                        "node": node,
                    },
                )
            )
        out.append(
            Template(
                "ex_esdb_health",
                "node_health_updated",
                "cluster:health",
                node,
                {
                    "timestamp": stamp,
                    "node": node,
                    "status": "healthy",
                    "checks": {"disk": "ok"},
                    "load_avg": 0.42,
                    "memory_usage": 41.0,
                    "disk_usage": 63.5,
                },
            )
        )
        out.append(
            Template(
                "ex_esdb_metrics",
                "performance_metric",
                "metrics:performance",
                node,
                {
                    "timestamp": stamp,
                    "metric_name": "append_latency",
                    "value": 1.25,
                    "unit": "ms",
                    "node": node,
                    "component": "store",
                    "tags": {},
                },
            )
        )
        out.append(
            Template(
                "ex_esdb_metrics",
                "throughput_metric",
                "metrics:throughput",
                node,
                {
                    "timestamp": stamp,
                    "operation": "append",
                    "count": 1200,
                    "duration_ms": 1000.0,
                    "rate_per_sec": 1200.0,
                    "node": node,
                },
            )
        )
        out.append(
            Template(
                "ex_esdb_metrics",
                "latency_metric",
                "metrics:latency",
                node,
                {
                    "timestamp": stamp,
                    "operation": "append",
                    "latency_ms": 2.5,
                    "percentile": "p99",
                    "sample_count": 1000,
                    "node": node,
                },
            )
        )
    if shape == "minimal":
        return [template.minimal() for template in out]
    return [template.as_python_writes() for template in out] if shape == "python" else out


def now_ts(shape: Shape = "complete", now: datetime | None = None) -> str:
    """Now (or ``now``) as the wire's RFC 3339 UTC with milliseconds (as isoformat() writes it,
    for ``python``: microseconds and ``+00:00``)."""
    now = now or datetime.now(UTC)
    if shape == "python":
        return now.isoformat(timespec="microseconds")
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class Source:
    """An endless supply of distinct envelopes (fresh ids, current timestamps).

    ``nodes`` sets how many nodes the mix cycles through (eight messages each), so how many
    distinct series a batch updates; ``prefix`` starts every id (random unless given).
    """

    def __init__(
        self, shape: Shape = "complete", nodes: int = len(NODES), prefix: str | None = None
    ) -> None:
        self.shape = shape
        self._templates = templates(shape, nodes)
        self._cycle = itertools.cycle(self._templates)
        self._prefix = os.urandom(10).hex() if prefix is None else prefix
        self._counter = itertools.count()

    def envelopes(self, count: int, *, distinct_ts: bool = False) -> list[bytes]:
        """``count`` envelope bodies, stamped now; with ``distinct_ts``, each a millisecond
        before the next (no two alike: the decoder's cache of parsed timestamps misses)."""
        prefix = self._prefix
        counter = self._counter
        cycle = self._cycle
        if distinct_ts:
            now = datetime.now(UTC)
            stamps = [now_ts(self.shape, now - timedelta(milliseconds=n)) for n in range(count)]
            return [
                next(cycle).render(f"{prefix}{next(counter):012d}", ts) for ts in reversed(stamps)
            ]
        ts = now_ts(self.shape)
        return [next(cycle).render(f"{prefix}{next(counter):012d}", ts) for _ in range(count)]

    def frames(self, count: int) -> list[tuple[bytes, str]]:
        """``count`` envelope bodies, each with its hex HMAC (as on the Redis bus)."""
        key = SECRET.encode()
        return [
            (body, hmac.digest(key, body, hashlib.sha256).hex()) for body in self.envelopes(count)
        ]

    def batch(self, count: int) -> tuple[bytes, str]:
        """An NDJSON body of ``count`` envelopes and its ``X-ExESDB-Signature`` header."""
        body = b"\n".join(self.envelopes(count)) + b"\n"
        return body, sign_header(body)


def membership_body(payload: dict[str, Any], ts: str, **extra: Any) -> bytes:
    """One ClusterMembership envelope of node ``a`` holding ``payload`` (written as given, right
    or wrong), stamped ``ts``, with ``extra`` envelope fields: the odd bodies' benches."""
    envelope = {
        "v": 1,
        "id": "x" * 16,
        "instance": "ex_esdb_lifecycle",
        "topic": "cluster",
        "tag": "cluster_membership_changed",
        "node": "a",
        "ts": ts,
        "payload": payload,
        **extra,
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def sign_header(body: bytes, unix_seconds: int | None = None) -> str:
    """``t=<unix seconds>,v1=<hex HMAC(key, "<t>." + body)>`` for ``body``."""
    t = int(time.time()) if unix_seconds is None else unix_seconds
    mac = hmac.digest(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256)
    return f"t={t},v1={mac.hex()}"
