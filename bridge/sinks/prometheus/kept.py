"""The state series kept past the series TTL while their node is heard: feature toggles, lifecycles.

A gauge set by a rare message (a FeatureToggle, a SystemLifecycle) is not written again within
``EXESDB_SERIES_TTL_MS``; were it left to expire, a toggle's panel would go blank ten minutes
after the toggle, and on could not be told from never toggled. Its node's signs of life (its
NodeHealth about itself, its own NodeLifecycle: what keeps ``exesdb_node_start_time_seconds``)
write it again instead, so it lasts until its state changes or the TTL after the node fell
silent (it is down then, and the cluster monitor forgets it later still). The series stay in the
store as any other: counted against its caps, refused at them, and dropped by it.
"""

from __future__ import annotations

import math

from bridge.sinks.prometheus.store import Family, Series, SeriesStore

__all__ = ["KeptStates"]

# A node's kept series are written again at most this often (a share of the TTL): a sign of
# life then costs a comparison, however many are kept.
_REFRESHES_PER_TTL = 10


class KeptStates:
    """Each node's state series, written again by ``heard`` so they do not expire while it is.

    Holds only series the store holds (let go whenever the store drops series), so it is
    bounded by the store's caps.
    """

    __slots__ = ("_every", "_nodes", "_refreshed")

    def __init__(self, store: SeriesStore) -> None:
        self._every = store.ttl_seconds / _REFRESHES_PER_TTL
        self._nodes: dict[str, dict[tuple[Family, tuple[str, ...]], Series]] = {}
        # When each node's series were last written again by a sign of life.
        self._refreshed: dict[str, float] = {}
        store.on_drop(self._forget_dropped)

    def keep(self, node: str, family: Family, labels: tuple[str, ...]) -> None:
        """Keep the series of ``labels`` (just written, inside ``SeriesStore.writing()``) while
        ``node`` is heard; nothing when the cap refused it."""
        series = family.series(labels)
        if series is not None:
            self._nodes.setdefault(node, {})[family, labels] = series

    def heard(self, node: str, now: float) -> None:
        """A sign of life of ``node`` at ``now`` (inside ``SeriesStore.writing()``)."""
        kept = self._nodes.get(node)
        if kept is None or now - self._refreshed.get(node, -math.inf) < self._every:
            return
        self._refreshed[node] = now
        for series in kept.values():
            series.touched = now

    def _forget_dropped(self) -> None:
        """Let go of the series the store dropped, and of nodes left with none."""
        nodes: dict[str, dict[tuple[Family, tuple[str, ...]], Series]] = {}
        for node, kept in self._nodes.items():
            left = {key: series for key, series in kept.items() if key[0].series(key[1]) is series}
            if left:
                nodes[node] = left
        self._nodes = nodes
        self._refreshed = {node: at for node, at in self._refreshed.items() if node in nodes}
