"""The Redis transport's self-metrics (``exesdb_redis_*``), read from its parts at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from bridge.bus.redis.consumer_group import ConsumerGroup
from bridge.bus.redis.lease import Lease
from bridge.bus.redis.link import Link
from bridge.bus.redis.node_name import RedisNodeNameCheck
from bridge.bus.redis.tls_rotation import TLSRotation
from bridge.bus.redis.writer import Writer

__all__ = ["RedisCollector"]


class RedisCollector(Collector):
    """The Redis transport's self-metrics, read at scrape time."""

    def __init__(
        self,
        link: Link,
        writer: Writer,
        lease: Lease,
        group: ConsumerGroup,
        node_name: RedisNodeNameCheck,
        tls: TLSRotation | None = None,
    ) -> None:
        """``tls``: the look at the TLS files the URL names, if any (its gauges only then)."""
        self._link = link
        self._tls = tls if tls is not None and tls.watching else None
        self._node_name = node_name
        self._writer = writer
        self._lease = lease
        self._group = group

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        link, writer, group = self._link, self._writer, self._group
        yield GaugeMetricFamily(
            "exesdb_redis_connected",
            "1 while Redis answers the bridge and refuses none of its commands (its /readyz has "
            "no Redis trouble), else 0: unreachable, or refusing (an ACL, memory full, ...).",
            value=1.0 if link.usable else 0.0,
        )
        yield GaugeMetricFamily(
            "exesdb_redis_buffer_depth",
            "Frames waiting in the local buffer to be written to Redis.",
            value=writer.buffered,
        )
        yield GaugeMetricFamily(
            "exesdb_redis_spool_bytes",
            "Bytes of frames in the spool on disk, not yet written to Redis: ingested ones, the "
            "AlertAcks of acknowledgements at a replica without the work-queue lease, and those an "
            "earlier stop could not write.",
            value=writer.spool_bytes,
        )
        yield GaugeMetricFamily(
            "exesdb_redis_retained",
            "Work-queue frames written that no consumer group is known to have taken yet "
            "(written again should Redis lose its data).",
            value=writer.retained,
        )
        yield GaugeMetricFamily(
            "exesdb_redis_work_queue_leader",
            "1 while this replica holds the work-queue lease (reads the alert consumer group).",
            value=1.0 if self._lease.leading else 0.0,
        )
        yield GaugeMetricFamily(
            "exesdb_redis_work_queue_lease_kept",
            "1 while this replica, having taken the work-queue lease back after Redis lost its "
            "data, keeps it through failed take-ups of the work queue, which no replica serves "
            "meanwhile, else 0.",
            value=1.0 if self._lease.kept else 0.0,
        )
        yield GaugeMetricFamily(
            "exesdb_redis_node_name_shared",
            "1 while another live bridge process on this Redis runs with this replica's "
            "EXESDB_NODE (give each replica its own), else 0.",
            value=1.0 if self._node_name.shared else 0.0,
        )
        if self._tls is not None:
            yield GaugeMetricFamily(
                "exesdb_redis_tls_files_last_reload_successful",
                "1 when the latest change to the TLS files named in EXESDB_BUS's query was taken, "
                "0 while a change that does not load is refused.",
                value=1.0 if self._tls.last_reload_successful else 0.0,
            )
            yield GaugeMetricFamily(
                "exesdb_redis_tls_files_last_reload_success_timestamp_seconds",
                "When the TLS files named in EXESDB_BUS's query that are in force were loaded, in "
                "Unix seconds.",
                value=self._tls.loaded_at,
            )
        yield CounterMetricFamily(
            "exesdb_redis_connection_errors",
            "Redis commands that failed: Redis unreachable, or refusing them (the credentials, "
            "an ACL permission, memory full, ...).",
            value=link.connection_errors,
        )
        yield CounterMetricFamily(
            "exesdb_redis_written",
            "Frames written to Redis streams.",
            value=writer.written,
        )
        yield CounterMetricFamily(
            "exesdb_redis_spooled",
            "Frames stored in the spool on disk to be written to Redis: ingested ones (answered "
            "202) and the AlertAcks of acknowledgements at a replica without the work-queue lease "
            "(answered 200).",
            value=writer.spooled,
        )
        yield CounterMetricFamily(
            "exesdb_redis_spool_errors",
            "Spool operations its disk refused (full, failing, read-only): a write, whose batch "
            "is refused, or a read of what it holds or the deletion of a segment sent, tried "
            "again.",
            value=writer.spool_errors,
        )
        yield CounterMetricFamily(
            "exesdb_redis_stage_errors",
            "Unexpected failures of a Redis bus background stage, each logged and the stage "
            "restarted.",
            value=link.stage_errors,
        )
        yield CounterMetricFamily(
            "exesdb_redis_resigned",
            "Frames signed again with a fresh timestamp (same id) after waiting half the replay "
            "window in the local buffer.",
            value=writer.resigned,
        )
        yield CounterMetricFamily(
            "exesdb_redis_rewritten",
            "Work-queue frames written again because Redis had lost its data.",
            value=writer.rewritten,
        )
        yield CounterMetricFamily(
            "exesdb_redis_work_queue_lease_kept_given_back",
            "Work-queue leases this replica gave back with its take-up still failing three leases "
            "after Redis lost its data while it held the lease, its open alerts then taken up by "
            "no replica.",
            value=self._lease.kept_given_back,
        )
        yield CounterMetricFamily(
            "exesdb_redis_claimed",
            "Work-queue entries claimed from a silent replica.",
            value=group.claimed,
        )
        yield CounterMetricFamily(
            "exesdb_redis_trimmed",
            "Unacknowledged work-queue entries lost to stream trimming.",
            value=group.trimmed,
        )
