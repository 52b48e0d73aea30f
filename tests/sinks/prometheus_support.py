"""Helpers for the Prometheus sink tests: envelopes from fields, and the sink's text."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bridge.bus import Envelope
from bridge.messages import TAGS
from bridge.sinks.prometheus import SeriesStore, Translator
from tests.support import ManualClock

NODE = "n1"
SELF_PREFIXES = ("exesdb_prometheus_",)


def envelope(tag: str, topic: str | None = None, node: str = NODE, **fields: Any) -> Envelope:
    """A verified-looking envelope carrying the ``tag`` message built from ``fields``."""
    model = TAGS[tag]
    payload = model.model_validate(fields, context={"node": node})
    ts = datetime(2026, 11, 28, tzinfo=UTC)
    return Envelope(
        "msg-00000001", model.INSTANCE, topic or tag, tag, node, ts, payload, ts.timestamp()
    )


def families_text(store: SeriesStore, openmetrics: bool = False) -> str:
    """The store's text without its self-metrics and the always-present alert gauges."""
    kept: list[str] = []
    skipping = False
    for line in store.render(openmetrics).splitlines(keepends=True):
        if line.startswith("# HELP "):
            skipping = line.split()[2].startswith(SELF_PREFIXES)
        if not skipping:
            kept.append(line)
    return "".join(kept)


def sample(store: SeriesStore, name: str, **labels: str) -> float | None:
    """A sample's value as the store's structured read (``collect``) has it, or None."""
    for family in store.collect():
        for item in family.samples:
            if item.name == name and item.labels == labels:
                return float(item.value)
    return None


def translate(*envelopes: Envelope, clock: ManualClock | None = None) -> SeriesStore:
    """A fresh store with ``envelopes`` translated into it."""
    store = SeriesStore(clock=clock or ManualClock())
    Translator(store).handle_batch(envelopes, propagate)
    return store


def propagate(envelope: Envelope) -> None:
    """A ``handle_batch`` failure callback that lets the translation error through."""
    raise  # called inside handle_batch's ``except``: re-raises the error it caught
