"""What the pages read: the running bridge, and the components that answer the pages' queries.

The bridge is seen through ``Shown`` (``bridge.http.Served`` is a wider view of the same
object). Components are found by what they offer, as ``HasRoutes`` ones are: the alert sink is an
``AlertSource``, the Prometheus sink a ``NodeSource``, the cluster monitor a ``DownSource``,
once, when the pages' routes are built; a bridge without one shows that it has none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bridge.build import BuildInfo
from bridge.component import Component, Readiness
from bridge.settings import Settings
from bridge.sinks.alerts.admin import AlertQuery, LeaseView, work_queue_lease
from bridge.sinks.alerts.records import (
    ActiveCounts,
    AlertDetail,
    AlertRecord,
    Delivery,
    Recipients,
)
from bridge.sinks.prometheus.nodes import NodeSummary

__all__ = [
    "AlertSource",
    "DownSource",
    "LeaseState",
    "NodeSource",
    "Shown",
    "Switch",
    "alert_source",
    "down_source",
    "lease_state",
    "node_source",
]


class Switch(Protocol):
    """The pubsub integration's switch (``bridge.integration.Integration``)."""

    def enabled(self) -> bool:
        """Whether messages are published (``POST /v1/integration`` turns it)."""


class Shown(Protocol):
    """The running bridge (``bridge.app.Bridge``), as the pages see it."""

    @property
    def settings(self) -> Settings: ...
    @property
    def build(self) -> BuildInfo: ...
    @property
    def node(self) -> str: ...
    @property
    def started_at(self) -> float: ...
    @property
    def clock(self) -> Callable[[], float]:
        """The wall clock (Unix seconds) the pages date what they show by."""

    @property
    def bus_kind(self) -> str: ...
    @property
    def components(self) -> Sequence[Component]: ...
    @property
    def integration(self) -> Switch: ...

    def readiness(self) -> Readiness:
        """Each part's readiness."""


@runtime_checkable
class AlertSource(LeaseView, Protocol):
    """The alerts and what happened to them (the alert sink)."""

    async def list_alerts(
        self, query: AlertQuery, *, by_start: bool = False
    ) -> Sequence[AlertRecord]:
        """The alerts matching ``query`` (as ``GET /v1/alerts`` lists them; ``by_start``: the
        most recently fired first, not the most recently changed)."""

    async def alert_detail(self, alert_id: str) -> AlertDetail | None:
        """One alert with its history and deliveries; None when unknown."""

    def active_counts(self) -> ActiveCounts:
        """Open alerts by severity, as last counted (once a second, not at each call), and
        whether any fired since."""

    def recipients(self) -> Recipients:
        """The receivers alerts go to, by the keys the deliveries carry, and their labels."""

    async def failing_receivers(self) -> Sequence[tuple[Delivery, int, int]]:
        """Each receiver (by key) whose oldest waiting delivery failed an attempt: that
        delivery, how many deliveries wait for it, and how many alerts wait in the grouping
        window that holds."""


@runtime_checkable
class NodeSource(Protocol):
    """The cluster's nodes (the Prometheus sink)."""

    def nodes(self) -> Sequence[NodeSummary]:
        """Each node's health status and resource use."""


@runtime_checkable
class DownSource(Protocol):
    """The nodes held down (the cluster monitor), which outlive their series."""

    def down_nodes(self) -> Mapping[str, float]:
        """Each node held down, with the seconds since it was found so."""


@dataclass(frozen=True, slots=True)
class LeaseState:
    """Whether this replica's alerts are the cluster's (``held``: it holds the work-queue lease,
    or runs the in-process bus, or no alert sink), and if not, who holds the lease, if known
    (``reachable`` False: this replica cannot use Redis, so no one can be known to), or
    whether this replica keeps it without serving the work queue (``kept``: taken back after
    Redis lost its data, its take-up failing). Held and not ``reachable``: this replica holds
    the lease but reads nothing until Redis answers it or the lease runs out."""

    held: bool
    holder: str | None = None
    reachable: bool = True
    kept: bool = False


def lease_state(source: AlertSource | None) -> LeaseState:
    """What ``source`` (the alert sink, if any) says of the work-queue lease now, as
    ``GET /v1/alerts`` says it (``work_queue_lease``: ``kept`` too)."""
    where = "here" if source is None else work_queue_lease(source)
    if source is None:
        return LeaseState(held=True)
    if where == "here":
        return LeaseState(held=True, reachable=source.work_queue_reachable())
    if where == "kept":
        return LeaseState(held=False, kept=True)
    return LeaseState(held=False, holder=source.work_queue_holder(), reachable=where != "unknown")


def alert_source(shown: Shown) -> AlertSource | None:
    """The component that keeps the alerts, if the bridge runs one."""
    return next((c for c in shown.components if isinstance(c, AlertSource)), None)


def node_source(shown: Shown) -> NodeSource | None:
    """The component that knows the cluster's nodes, if the bridge runs one."""
    return next((c for c in shown.components if isinstance(c, NodeSource)), None)


def down_source(shown: Shown) -> DownSource | None:
    """The component that knows which nodes are down, if the bridge runs one."""
    return next((c for c in shown.components if isinstance(c, DownSource)), None)
