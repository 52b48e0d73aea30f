"""``GET /metrics``: content negotiation and one document from the registry and the stores.

The ``prometheus_client`` registry (bus self-metrics, process metrics, build info) is rendered by
the library; the sink's series come pre-rendered from their ``SeriesStore``. In OpenMetrics the
document ends with one ``# EOF``, after both parts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from bridge.component import HasExposition

__all__ = ["OPENMETRICS_TYPE", "TEXT_TYPE", "negotiate", "render"]

TEXT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
_EOF: Final = b"# EOF\n"


def negotiate(accept: str) -> tuple[bool, str]:
    """(OpenMetrics?, content type) for an ``Accept`` header, as prometheus_client decides it."""
    for accepted in accept.split(","):
        media_type, *params = (part.strip() for part in accepted.split(";"))
        if media_type == "application/openmetrics-text":
            version = next(
                (p.partition("=")[2] for p in params if p.startswith("version=")), "1.0.0"
            )
            if version in ("", "1.0.0", "1.0"):
                return True, OPENMETRICS_TYPE
    return False, TEXT_TYPE


def render(
    registry: CollectorRegistry, sources: Iterable[HasExposition], openmetrics: bool
) -> bytes:
    """The whole exposition: the registry's families, then each source's (e.g. a store)."""
    if openmetrics:
        document: bytes = generate_openmetrics(registry)  # type: ignore[no-untyped-call]
        head = document.removesuffix(_EOF)
    else:
        head = generate_latest(registry)
    tail = "".join(source.render(openmetrics) for source in sources).encode()
    return head + tail + (_EOF if openmetrics else b"")
