"""The plug-in point for everything the bridge runs beside the bus: sinks and collectors."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from aiohttp import web

__all__ = ["Component", "HasExposition", "HasRoutes"]


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
        """Stop; idempotent, bounded in time."""


@runtime_checkable
class HasRoutes(Protocol):
    """A component that serves HTTP endpoints of its own."""

    def routes(self) -> list[web.RouteDef]:
        """The aiohttp routes to add to the bridge's server."""


@runtime_checkable
class HasExposition(Protocol):
    """A component whose series ``GET /metrics`` appends after the registry's."""

    def render(self, openmetrics: bool) -> str:
        """Its families as exposition text, without ``# EOF``."""
