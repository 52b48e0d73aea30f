"""The state series kept past the series TTL while their node is heard: feature toggles, lifecycles.

A gauge set by a rare message (a FeatureToggle, a SystemLifecycle, a node's start) is not written
again within ``EXESDB_SERIES_TTL_MS``; were it left to expire, a toggle's panel would go blank
ten minutes after the toggle, and on could not be told from never toggled. Its node's signs of
life (its NodeHealth about itself, its own NodeLifecycle other than a farewell) write it again
instead, so it lasts until its state changes or the TTL after the node fell silent (by default
long before the cluster monitor forgets the node). The series stay in the store as any other:
counted against its caps, refused at them, and dropped by it.
"""

from __future__ import annotations

import math

from bridge.sinks.prometheus.store import Family, Series, SeriesStore

__all__ = ["KeptStates"]

# A node's kept series are written again at most this often (a share of the TTL): a sign of
# life then costs a comparison, however many are kept.
_REFRESHES_PER_TTL = 10


class _Node:
    """One node's kept series, by family and labels, and when they are next written again."""

    __slots__ = ("due", "every", "series")

    def __init__(self, every: float) -> None:
        self.due = -math.inf
        self.every = every
        self.series: dict[tuple[Family, tuple[str, ...]], Series] = {}

    def refresh(self, now: float) -> None:
        """Write the series again at ``now``, a sign of life at or past ``due``."""
        self.due = now + self.every
        for series in self.series.values():
            series.touched = now


class KeptStates:
    """Each node's state series, written again by ``heard`` so they do not expire while it is.

    Holds only series the store holds (let go whenever the store drops series), so it is
    bounded by the store's caps.
    """

    __slots__ = ("_every", "nodes")

    def __init__(self, store: SeriesStore) -> None:
        self._every = store.ttl_seconds / _REFRESHES_PER_TTL
        # By node name; changed in place, so a hot path may hold it and ``refresh`` a node
        # whose ``due`` it reached without a call to ``heard``.
        self.nodes: dict[str, _Node] = {}
        store.on_drop(self._forget_dropped)

    def keep(self, node: str, family: Family, labels: tuple[str, ...]) -> None:
        """Keep the series of ``labels`` (just written, inside ``SeriesStore.writing()``) while
        ``node`` is heard; nothing when the cap refused it."""
        series = family.series(labels)
        if series is not None:
            kept = self.nodes.get(node)
            if kept is None:
                kept = self.nodes[node] = _Node(self._every)
            kept.series[family, labels] = series

    def heard(self, node: str, now: float) -> None:
        """A sign of life of ``node`` at ``now`` (inside ``SeriesStore.writing()``)."""
        kept = self.nodes.get(node)
        if kept is not None and now >= kept.due:
            kept.refresh(now)

    def _forget_dropped(self) -> None:
        """Let go of the series the store dropped, and of nodes left with none."""
        empty = []
        for node, kept in self.nodes.items():
            kept.series = {
                key: series
                for key, series in kept.series.items()
                if key[0].series(key[1]) is series
            }
            if not kept.series:
                empty.append(node)
        for node in empty:
            del self.nodes[node]
