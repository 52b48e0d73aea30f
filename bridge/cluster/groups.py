"""The cluster monitor's grouped alerts: node downs past the per-interval budget alerted as one.

What it means for users: docs/redis.md#cluster-membership. Past ``ALERTS_PER_INTERVAL`` downs
within one health interval a storm begins (counted in ``exesdb_cluster_down_storms_total``):
every further down until ``storm_intervals`` pass without one joins one group, whose one
SystemAlert ``node_failure`` goes out at most once per interval. The group's alert resolves (an
AlertAck with a ``resolution``) once every node it stands for is back, has left or is
forgotten; a group whose nodes all came back before it went out is never raised. A node evicted
at the cap while down is not back: it stays in its group until heard again, or until the
monitor cannot remember it (``let_go``), which leaves the group's alert open.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Counter

from bridge.messages import AlertAck, Message, SystemAlert

__all__ = ["ALERTS_PER_INTERVAL", "NAMED", "NAME_SHOWN", "DownGroups"]

# The package's logger: the monitor's lines (``logger`` in JSON logs) are bridge.cluster's.
_logger = logging.getLogger("bridge.cluster")

# node_failure alerts of their own per health interval; further downs in it are grouped.
ALERTS_PER_INTERVAL: Final = 10
# Nodes a grouped alert (or a log line) names, and the characters of each name shown: a grouped
# alert's description stays under 4 096 characters.
NAMED: Final = 20
NAME_SHOWN: Final = 120

Publish = Callable[[str, Message], object]
"""``Bus.publish``: what it returns is true when the message went out."""


@dataclass(slots=True)
class _Group:
    """Downs past the per-interval alert budget: their one SystemAlert, and how many of its
    nodes are still down (it resolves when none is)."""

    alert_id: str
    count: int = 0
    named: tuple[str, ...] = ()
    down: int = 0
    raised: bool = False
    let_go: int = 0  # nodes let go still down: the alert stays open, never resolved here


class DownGroups:
    """Which downs have a node_failure alert of their own, and the grouped alerts of the rest."""

    def __init__(
        self,
        publish: Publish,
        *,
        node: str,
        interval: float,
        storm_intervals: int,
        registry: CollectorRegistry,
    ) -> None:
        """``publish`` sends the grouped alerts and their resolutions, from ``node``;
        ``interval`` is the health interval (seconds), a storm ends ``storm_intervals`` of
        them after its last down."""
        self._publish = publish
        self._node = node
        self._interval = interval
        self._storm_intervals = storm_intervals
        self._alerted: deque[float] = deque(maxlen=ALERTS_PER_INTERVAL)
        self._group: _Group | None = None  # the grouped downs waiting for their SystemAlert
        # Grouped alerts with nodes still down (or a resolve still to publish), and which group
        # each of those nodes is in: at most one entry a tracked node.
        self._groups: dict[str, _Group] = {}
        self._members: dict[str, str] = {}
        self._storm_until = float("-inf")
        self._last_group = float("-inf")
        self._storms = Counter(
            "exesdb_cluster_down_storms",
            f"Storms of node downs (more than {ALERTS_PER_INTERVAL} within one health interval), "
            "during which downs are grouped into one node_failure alert per interval.",
            registry=registry,
        )

    def grouped(self, name: str, found: float) -> str | None:
        """None when this down (found at ``found``) may have a node_failure alert of its own,
        else the id of the grouped alert it joins.

        More than ALERTS_PER_INTERVAL downs within one interval start a storm: every down until
        three intervals pass without one is grouped, so a long flood is not ten alerts an
        interval. Downs are timed when found, not when announced: a flood's announcements,
        ``PER_TICK`` at a time, may trail long after, and a node first heard after the last of
        its downs was found, then silent itself, must still get an alert naming it.
        """
        alerted = self._alerted
        calm = found >= self._storm_until
        if calm and (len(alerted) < ALERTS_PER_INTERVAL or found - alerted[0] >= self._interval):
            alerted.append(found)
            return None
        if calm:
            self._storms.inc()
        self._storm_until = max(self._storm_until, found + self._storm_intervals * self._interval)
        if self._group is None:
            self._group = _Group(f"node_failure:group:{secrets.token_hex(6)}")
            self._groups[self._group.alert_id] = self._group
        group = self._group
        group.count += 1
        group.down += 1
        self._members[name] = group.alert_id
        if len(group.named) < NAMED:
            group.named += (name[:NAME_SHOWN],)
        return group.alert_id

    def uncount(self, name: str, *, grouped: bool, down: bool) -> None:
        """Take back what a refused announcement of ``name`` counted (counted again when it is
        retried): ``grouped``, it joined the grouped alert; ``down``, it announced a down."""
        if grouped and self._group is not None:
            self._group.count -= 1
            self._group.named = tuple(n for n in self._group.named if n != name[:NAME_SHOWN])
            self.back(name)
        elif down and self._alerted:
            self._alerted.pop()

    def back(self, name: str) -> None:
        """``name`` is no longer down (heard again, left or forgotten): one node fewer down in
        the grouped alert it is in, if any."""
        alert_id = self._members.pop(name, None)
        group = self._groups.get(alert_id) if alert_id is not None else None
        if group is None:
            return
        group.down -= 1
        if group.down <= 0 and not group.raised and not group.let_go:
            # All back before their alert went out: there is nothing to raise, nor to resolve.
            del self._groups[group.alert_id]
            if self._group is group:
                self._group = None

    def let_go(self, name: str) -> None:
        """``name`` is not remembered though still down (evicted, past the bound of the
        monitor's memory of evicted downs): the grouped alert it is in will not be resolved
        here, but it is still raised if it has not been; the group is then let go too."""
        alert_id = self._members.pop(name, None)
        group = self._groups.get(alert_id) if alert_id is not None else None
        if group is not None:
            group.down -= 1
            group.let_go += 1

    def publish(self, now: float) -> None:
        """The grouped downs' one SystemAlert, at most once per health interval."""
        group = self._group
        if group is None or group.count <= 0 or now - self._last_group < self._interval:
            return
        more = group.count - len(group.named)
        named = ", ".join(group.named) + (f" and {more} more" if more > 0 else "")
        alert = SystemAlert(
            alert_id=group.alert_id,
            severity="critical",
            category="system",
            title=f"{group.count} nodes are down",
            description=(
                f"{group.count} nodes went silent within one health interval (more than "
                f"{ALERTS_PER_INTERVAL} in it, so alerted as one): {named}"
            ),
            source="cluster monitor",
            node=self._node,
            metadata={"nodes_down": group.count, "nodes": list(group.named)},
        )
        if self._publish("node_failure", alert):
            group.raised = True
            self._group = None
            self._last_group = now

    def resolve(self) -> None:
        """Resolve each raised grouped alert whose nodes are all back, left or forgotten."""
        for alert_id, group in list(self._groups.items()):
            if not group.raised or group.down > 0:
                continue
            if group.let_go:
                # Some of its nodes were let go still down: memory pressure resolves no outage.
                del self._groups[alert_id]
                _logger.warning(
                    "grouped alert %s stays open: %d node(s) of it evicted down past what the "
                    "monitor remembers (it needs an acknowledgement)",
                    alert_id,
                    group.let_go,
                )
                continue
            resolution = f"all {group.count} nodes are back, have left or are forgotten"
            ack = AlertAck(alert_id=alert_id, ack_by="cluster monitor", resolution=resolution)
            if not self._publish("alert_acknowledged", ack):
                return  # refused (e.g. the Redis buffer is full): tried again next tick
            del self._groups[alert_id]
            _logger.info("grouped alert %s resolved: %s", alert_id, resolution)
