"""Helpers for the page tests: a bridge with the two sinks the pages read, what to publish, and
how a page is fetched and read."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import aiohttp

from bridge.bus import Envelope, new_message_id
from bridge.component import ComponentFactory
from bridge.messages import (
    Message,
    NodeHealth,
    NodeLifecycle,
    ResourceUsage,
    SystemAlert,
    utc_now,
)
from bridge.sinks.alerts import AlertRecord, AlertSink, alert_sink
from bridge.sinks.alerts.admin import AlertQuery
from bridge.sinks.prometheus import prometheus_sink
from tests.support import ADMIN_TOKEN, ThreadedBridge, post_signed, wait_until

NODE = "bridge-pages"
# What Chromium sends navigating to a page.
BROWSER_ACCEPT: Final = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
)


@contextmanager
def page_bridge(state_dir: Path, *extra: ComponentFactory, **env: str) -> Iterator[ThreadedBridge]:
    """A bridge serving the pages, with the Prometheus and alert sinks (and ``extra``), in a
    thread of its own (so a blocking browser can drive it); admin token ``ADMIN_TOKEN`` unless
    ``env`` unsets it."""
    settings: dict[str, str] = {
        "EXESDB_STATE_DIR": str(state_dir),
        "EXESDB_ADMIN_TOKEN": ADMIN_TOKEN,
        "EXESDB_NODE": NODE,
        **env,
    }
    settings = {name: value for name, value in settings.items() if value}
    with ThreadedBridge([prometheus_sink, alert_sink, *extra], **settings) as server:
        yield server


def sink_of(server: ThreadedBridge) -> AlertSink:
    """The bridge's alert sink."""
    return next(c for c in server.bridge.components if isinstance(c, AlertSink))


def publish(server: ThreadedBridge, topic: str, message: Message) -> None:
    """Publish ``message`` on the bridge's bus (from its own loop)."""
    server.call(server.bridge.bus.publish, topic, message)


def raise_alert(
    server: ThreadedBridge,
    alert_id: str,
    title: str,
    severity: str = "critical",
    node: str = "db-1@cluster",
    source: str = "tests",
    metadata: dict[str, Any] | None = None,
) -> AlertRecord:
    """Publish a SystemAlert and wait until the alert sink holds it."""
    publish(
        server,
        "system_alert",
        SystemAlert(
            alert_id=alert_id,
            severity=severity,
            category="system",
            title=title,
            description="raised by a page test",
            source=source,
            node=node,
            metadata=metadata or {},
        ),
    )
    return wait_for_alert(server, alert_id, lambda record: True)


def wait_for_alert(server: ThreadedBridge, alert_id: str, condition: Any) -> AlertRecord:
    """Wait until the sink holds ``alert_id`` in a state ``condition`` accepts."""

    def found() -> AlertRecord | None:
        records = server.run(sink_of(server).list_alerts(AlertQuery(alert_id=alert_id)))
        return records[0] if records and condition(records[0]) else None

    return wait_until(found, 15, f"alert {alert_id}")


def report_node(
    server: ThreadedBridge,
    node: str,
    status: str,
    cpu: float | None,
    memory: float,
    disk: float | None = None,
) -> None:
    """Publish a node's health (memory and disk use in it) and its CPU use (unless None)."""
    publish(
        server,
        "node_health_updated",
        NodeHealth(node=node, status=status, memory_usage=memory, disk_usage=disk),
    )
    if cpu is None:
        return
    publish(
        server,
        "resource_usage",
        ResourceUsage(
            resource_type="cpu",
            usage_percent=cpu,
            total_available=8,
            current_used=cpu * 0.08,
            node=node,
        ),
    )


def report_from(
    server: ThreadedBridge, node: str, status: str, *, interval_ms: int | None = None
) -> None:
    """POST ``node``'s NodeHealth to the bridge's signed ingest (``EXESDB_INGEST=true``) as that
    node would: the envelope names it, so the cluster monitor tracks it as a node of its own.
    With ``interval_ms``, its NodeLifecycle joined first, declaring that interval as a bridge
    does at its start (the cluster monitor times its silence by it)."""
    if interval_ms is not None:
        joined = NodeLifecycle(
            node=node, event="joined", cluster_size=1, metadata={"interval_ms": interval_ms}
        )
        post_signed(server.url, _from(node, "node_lifecycle_event", joined).to_bytes())
    health = NodeHealth(node=node, status=status, memory_usage=35.0)
    post_signed(server.url, _from(node, "node_health_updated", health).to_bytes())


def _from(node: str, topic: str, payload: Message) -> Envelope:
    """``payload`` on ``topic`` in an envelope naming ``node`` as its publisher."""
    return Envelope(
        id=new_message_id(),
        instance=payload.INSTANCE,
        topic=topic,
        tag=payload.TAG,
        node=node,
        ts=utc_now(),
        payload=payload,
    )


def row_words(row: str) -> list[str]:
    """A table row's words, each age (a ``<time data-since>``) as one word ``since=<moment>``."""
    row = re.sub(r'<time [^>]*data-since="(\d+)"[^>]*>.*?</time>', r" since=\1 ", row)
    return re.sub(r"<[^>]+>", " ", row).split()


def moments_only(markup: str) -> str:
    """``markup`` with each counted time (``<time data-since>``, ``data-until``) read as its
    moment only, whatever text it shows."""
    return re.sub(r'<time [^>]*data-(?:since|until)="(\d+)"[^>]*>.*?</time>', r"\1", markup)


def table_cells(table: str) -> list[list[str]]:
    """The text of each cell of each row of ``table``'s body."""
    body = table.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in body.split("<tr>")[1:]
    ]


async def fetch(client: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, Any, str]:
    """GET ``url``: status, headers and body."""
    async with client.get(url, headers=headers) as response:
        return response.status, response.headers, await response.text()
