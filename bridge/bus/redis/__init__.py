"""The bus on Redis (docs/redis.md): streams shared by every application node and bridge replica.

Layout, with ``exesdb`` as the key prefix (``layout.py``)::

    exesdb:bus:<instance>      one stream per bus instance; entry = {e: envelope bytes, s: hex HMAC}
      ├─ XREAD from the tail by every replica            -> Frame(group=False)  (fan-out sinks)
      └─ consumer group "exesdb-bridge", XREADGROUP      -> Frame(group=True, ack=...)
         (only the instances with group subscribers here, and only by the replica holding
         the work-queue lease ``exesdb:bus:leader``; each entry is acknowledged once its
         subscribers returned; when the holder dies its lease lapses after ``claim_idle_ms``
         and the next holder claims its pending entries with XAUTOCLAIM, before newer ones)
    exesdb:state:<name>        records the lease holder keeps for the next (the open alerts),
                               changed only under the lease (``shared_state.py``)
    exesdb:state:replica:<node>  the random id of the process last marking node name <node>:
                               another id read after its own means two processes share the
                               name; deleted at a graceful stop if still its own
                               (``node_name.py``)
    exesdb:spool:<segment>     how far a bridge's spool segment was written (``spool.py``)

One reader at a time, rather than entries spread over every replica, because the alert stage
keeps state: the message that resolves an alert, and the repeats of an ongoing condition, must
meet the firing alert, which the holder keeps in Redis for whoever holds the lease next.

Frames read from Redis are never trusted: they carry bytes and a signature, which the bus
verifies like any other input, a read at a time. ``send`` never blocks: frames wait in a bounded
local buffer that a background task writes with reconnection and backoff, so a Redis outage
loses nothing a local publisher handed over unless the buffer overflows (``send`` then returns
False and the bus counts the drop); ``send_durably`` (HTTP ingest) returns once its frames are
in the spool on disk. ``start`` returns once the fan-out reader knows where each stream ends,
so whatever is written from then on is read here. A Redis unreachable at start ends that wait
at the first failed try (one that does not answer, after 5 s) and leaves the bridge running
and not ready until it connects; so does one that refuses its credentials or a command (an
ACL user without a rule the bridge needs), told as refusing rather than unreachable, until
Redis is put right.

The parts: ``transport.py`` wires them; ``link.py`` (the client, its state, the one retry path),
``writer.py`` (XADD, XACK, re-signing, rewriting after data loss), ``unscripted.py`` (its
batches without a script) and ``spool.py`` (``spool_disk.py``: its disk refusing it),
``fanout.py`` (XREAD), ``lease.py`` and ``consumer_group.py`` (the work queue),
``work_queue.py`` (the lease capability), ``shared_state.py`` (the state capability),
``coordination.py`` (the cluster monitor's keys), ``node_name.py`` (the node name check),
``tls_files.py`` (the TLS files a ``rediss://`` URL names, checked at start and at each failed
try), ``metrics.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.exports import lazy_exports

if TYPE_CHECKING:
    from bridge.bus.redis.layout import GROUP
    from bridge.bus.redis.transport import RedisTransport

__all__ = ["GROUP", "RedisTransport"]

# EXESDB_BUS's check reads ``link.OWN_OPTIONS`` without the transport's metrics and loops.
__getattr__ = lazy_exports(__name__, {"layout": ("GROUP",), "transport": ("RedisTransport",)})
