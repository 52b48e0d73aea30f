"""The state series kept past the series TTL while their node is heard: feature toggles, lifecycles.

A gauge set by a rare message (a FeatureToggle, a SystemLifecycle, a node's start) is not written
again within ``EXESDB_SERIES_TTL_MS``; were it left to expire, a toggle's panel would go blank
ten minutes after the toggle, and on could not be told from never toggled. Its node's signs of
life (its NodeHealth about itself, its own NodeLifecycle other than a farewell) write it again
instead, so it lasts until its state changes or the TTL after the node fell silent (by default
long before the cluster monitor forgets the node). The series stay in the store as any other:
counted against its caps, refused at them, and dropped by it.

A node keeps at most ``KEPT_PER_METRIC`` series of each metric: past them the oldest-written (by
their own message: a sign of life writes all alike) are let go, a state set whole, and counted;
they expire with the TTL as any other series. So a holder of a signing key inventing feature
names for a live node pins no more of the cap than that, and the newest states are the ones kept.
"""

from __future__ import annotations

import math
from typing import Final

from bridge.sinks.prometheus.store import Family, Series, SeriesStore

__all__ = ["KEPT_PER_METRIC", "KeptStates"]

KEPT_PER_METRIC: Final = 256
"""How many series of one metric a node keeps at most (256 feature toggles, 64 systems'
lifecycle state sets of four)."""

# A node's kept series are written again at most this often (a share of the TTL): a sign of
# life then costs a comparison, however many are kept.
_REFRESHES_PER_TTL = 10


class _Metric:
    """One node's kept groups of one family (a series' labels, or a state set's), by their first
    labels, oldest-written first, and how many series they hold."""

    __slots__ = ("count", "groups")

    def __init__(self) -> None:
        self.count = 0
        self.groups: dict[tuple[str, ...], tuple[tuple[str, ...], ...]] = {}

    def add(self, labels: tuple[tuple[str, ...], ...]) -> int:
        """Keep a new group as the newest written; the series let go past the limit."""
        self.groups[labels[0]] = labels
        self.count += len(labels)
        released = 0
        while self.count > KEPT_PER_METRIC:
            gone = len(self.groups.pop(next(iter(self.groups))))
            self.count -= gone
            released += gone
        return released

    def forget_dropped(self, family: Family) -> None:
        """Let go of the groups with a series the store no longer holds."""
        self.groups = {
            first: labels
            for first, labels in self.groups.items()
            if all(family.series(key) is not None for key in labels)
        }
        self.count = sum(map(len, self.groups.values()))


class _Node:
    """One node's kept series, by family, and when they are next written again."""

    __slots__ = ("due", "every", "metrics", "series")

    def __init__(self, every: float) -> None:
        self.due = -math.inf
        self.every = every
        self.metrics: dict[Family, _Metric] = {}
        # The series of every group, gathered at the next refresh after the groups changed
        # (None until then): signs of life outnumber changes by far.
        self.series: list[Series] | None = None

    def refresh(self, now: float) -> None:
        """Write the series again at ``now``, a sign of life at or past ``due``."""
        self.due = now + self.every
        series = self.series
        if series is None:
            series = self.series = [
                one
                for family, metric in self.metrics.items()
                for labels in metric.groups.values()
                for key in labels
                if (one := family.series(key)) is not None
            ]
        for one in series:
            one.touched = now


class KeptStates:
    """Each node's state series, written again by ``heard`` so they do not expire while it is.

    Holds only series the store holds (let go whenever the store drops series), at most
    ``KEPT_PER_METRIC`` of each family a node; those let go past it are counted in ``released``
    (a counter labelled by metric).
    """

    __slots__ = ("_every", "_released", "nodes")

    def __init__(self, store: SeriesStore, released: Family) -> None:
        self._every = store.ttl_seconds / _REFRESHES_PER_TTL
        self._released = released
        # By node name; changed in place, so a hot path may hold it and ``refresh`` a node
        # whose ``due`` it reached without a call to ``heard``.
        self.nodes: dict[str, _Node] = {}
        store.on_drop(self._forget_dropped)

    def keep(self, node: str, family: Family, *labels: tuple[str, ...]) -> None:
        """Keep the series of each of ``labels`` (just written, inside ``SeriesStore.writing()``),
        together (a state set's), while ``node`` is heard; nothing when the cap refused them."""
        kept = self.nodes.get(node)
        metric = kept.metrics.get(family) if kept is not None else None
        if metric is not None:
            held = metric.groups.pop(labels[0], None)
            if held is not None:
                metric.groups[labels[0]] = held  # written again: now the newest
                return
        if any(family.series(key) is None for key in labels):
            return
        if kept is None:
            kept = self.nodes[node] = _Node(self._every)
        if metric is None:
            metric = kept.metrics[family] = _Metric()
        released = metric.add(labels)
        kept.series = None
        if released:
            self._released.add((family.name,), float(released))

    def heard(self, node: str, now: float) -> None:
        """A sign of life of ``node`` at ``now`` (inside ``SeriesStore.writing()``)."""
        kept = self.nodes.get(node)
        if kept is not None and now >= kept.due:
            kept.refresh(now)

    def _forget_dropped(self) -> None:
        """Let go of the series the store dropped, and of nodes left with none."""
        empty = []
        for node, kept in self.nodes.items():
            kept.series = None
            for family, metric in list(kept.metrics.items()):
                metric.forget_dropped(family)
                if not metric.groups:
                    del kept.metrics[family]
            if not kept.metrics:
                empty.append(node)
        for node in empty:
            del self.nodes[node]
