"""The plug-in point for everything the bridge runs beside the bus, and what each is built from.

A component factory takes a ``Context`` (only what components may use: never the ``Bridge``) and
returns a ``Component`` or None when settings leave it off. ``bridge/app.py`` builds the context
and calls the factories; nothing else wires.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, runtime_checkable

from aiohttp import web
from prometheus_client import CollectorRegistry, Metric

from bridge.bus import Bus, TransportCapabilities
from bridge.integration import Integration
from bridge.operations import OperationRecorder
from bridge.routes import AdminGuard
from bridge.settings import Settings
from bridge.tracing import ClientSpan

__all__ = [
    "Component",
    "ComponentFactory",
    "Context",
    "Deadline",
    "HasClientSpans",
    "HasExposition",
    "HasRoutes",
    "Prepares",
    "Readiness",
]

Readiness: TypeAlias = Mapping[str, Mapping[str, Any]]
"""Each part's readiness: ``{name: {"ready", "required", "reason"}}``."""


@runtime_checkable
class Component(Protocol):
    """A long-lived part of the bridge, started after the bus and closed before it.

    ``required`` components make ``/readyz`` answer 503 while they report a reason.
    """

    name: str
    required: bool

    async def start(self) -> None:
        """Begin working (subscriptions are made in the constructor, before the bus starts)."""

    def readiness(self) -> str | None:
        """None when ready, else why not."""

    async def aclose(self) -> None:
        """Stop; idempotent, done by ``Context.shutdown`` (cancelled past it, so whatever it
        holds is closed in a ``finally``)."""


@runtime_checkable
class Prepares(Protocol):
    """A component whose start can fail on what it opens (a file, a directory): it opens it in
    ``prepare()``, before the bus starts, so that such a failure stops start-up before
    anything runs or is published, and the stop after it has nothing to say."""

    async def prepare(self) -> None:
        """Open what ``start()`` needs; idempotent (``start()`` prepares first when not yet)."""


@runtime_checkable
class HasRoutes(Protocol):
    """A component that serves HTTP endpoints of its own."""

    def routes(self) -> list[web.RouteDef]:
        """The aiohttp routes to add to the bridge's server."""


@runtime_checkable
class HasExposition(Protocol):
    """A component whose series ``GET /metrics`` appends after the registry's.

    It renders its own text (faster than prometheus_client's for many series) and hands the
    same families over as values to readers that are not scrapes (the OTLP metrics mirror).
    """

    def render(self, openmetrics: bool) -> str:
        """Its families as exposition text, without ``# EOF``."""

    def collect(self) -> Iterable[Metric]:
        """Its families as prometheus_client families, as a custom collector yields them."""


@runtime_checkable
class HasClientSpans(Protocol):
    """A component that exports the spans of the bridge's own HTTP requests (the OTLP sink)."""

    def record_client_span(self, span: ClientSpan) -> None:
        """Take one finished span; never blocks, never raises."""


class Deadline:
    """When the bridge's stop must be over (``EXESDB_SHUTDOWN_TIMEOUT_MS`` after it begins):
    one budget for every stage, each taking what the ones before it left."""

    __slots__ = ("_at", "_clock", "seconds")

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._at: float | None = None

    def begin(self) -> None:
        """The stop begins now (once: later calls change nothing)."""
        if self._at is None:
            self._at = self._clock() + self.seconds

    def left(self) -> float:
        """Seconds left (all of them before the stop begins, never below 0)."""
        if self._at is None:
            return self.seconds
        return max(0.0, self._at - self._clock())


@dataclass(frozen=True, slots=True)
class Context:
    """What a component or collector is built from.

    ``readiness``, ``expositions`` and ``client_spans`` are read when called, so a component
    built early sees the parts built after it. ``shutdown`` is the stop's deadline, which a
    component's ``aclose`` keeps to. ``bound_port`` is the port the HTTP server listens on once
    it does (None before, or without a server): an ``EXESDB_HTTP_ADDR`` port of 0 made real.
    ``clock`` is the bridge's wall clock (Unix seconds, ``Bridge.clock``), injected in tests.
    ``admin`` is the bridge's one admin guard, its refusals counted, for a component's admin
    routes (None: the component makes its own from the settings).
    """

    settings: Settings
    bus: Bus
    integration: Integration
    registry: CollectorRegistry
    recorder: OperationRecorder
    capabilities: TransportCapabilities
    readiness: Callable[[], Readiness]
    expositions: Callable[[], Sequence[HasExposition]]
    shutdown: Deadline
    client_spans: Callable[[], Sequence[HasClientSpans]] = tuple
    bound_port: Callable[[], int | None] = lambda: None
    clock: Callable[[], float] = time.time
    admin: AdminGuard | None = None


ComponentFactory: TypeAlias = Callable[[Context], Component | None]
"""Builds a component from the context, or None when the settings leave it off."""
