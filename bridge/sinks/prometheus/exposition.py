"""``GET /metrics``: the format and compression prometheus_client negotiates, and one document.

prometheus_client decides the format (``choose_encoder``) and renders its registry (bus
self-metrics, process metrics, build info) in it; the sink's series come pre-rendered from their
``SeriesStore`` in the same format. In OpenMetrics the document ends with one ``# EOF``, after
both parts. Whether to gzip is prometheus_client's ``gzip_accepted``; an explicit refusal
(``q=0``) of a format or of gzip is honoured, which prometheus_client does not read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, gzip_accepted
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE

from bridge.component import HasExposition

__all__ = ["OPENMETRICS_TYPE", "TEXT_TYPE", "Format", "gzip_wanted", "negotiate", "render"]

TEXT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4
_OPENMETRICS_MEDIA_TYPE: Final = "application/openmetrics-text"
_EOF: Final = b"# EOF\n"


@dataclass(frozen=True, slots=True)
class Format:
    """The exposition format an ``Accept`` header gets, as prometheus_client chose it."""

    openmetrics: bool
    content_type: str
    encode: Callable[[CollectorRegistry], bytes]


_TEXT: Final = Format(False, TEXT_TYPE, choose_encoder("")[0])


def negotiate(accept: str) -> Format:
    """The format for an ``Accept`` header: prometheus_client's choice, text 0.0.4 by default.

    prometheus_client ignores weights, so a media type given ``q=0`` ("not this", RFC 9110,
    12.4.2) is left out before it chooses.
    """
    wanted = ",".join(item for item in accept.split(",") if _weight(item) != 0.0)
    try:
        encode, content_type = choose_encoder(wanted)
    except (TypeError, ValueError):
        # prometheus_client cannot compare a version such as "version=x": serve the default.
        return _TEXT
    return Format(content_type.startswith(_OPENMETRICS_MEDIA_TYPE), content_type, encode)


def gzip_wanted(accept_encoding: str) -> bool:
    """True when ``Accept-Encoding`` names gzip (prometheus_client's test) with a weight above 0.

    prometheus_client ignores weights, but ``gzip;q=0`` means "not gzip" (RFC 9110, 12.4.2).
    """
    return gzip_accepted(accept_encoding) and not _refused(accept_encoding, "gzip")


def _refused(accept_encoding: str, coding: str) -> bool:
    return any(
        item.split(";")[0].strip().lower() == coding and _weight(item) == 0.0
        for item in accept_encoding.split(",")
    )


def _weight(item: str) -> float | None:
    """The ``q`` of one item of an ``Accept`` or ``Accept-Encoding`` list; None when absent."""
    for param in item.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return None  # a malformed weight is ignored, as if absent
    return None


def render(registry: CollectorRegistry, sources: Iterable[HasExposition], fmt: Format) -> bytes:
    """The whole exposition: the registry's families, then each source's (e.g. a store)."""
    head = fmt.encode(registry)
    if fmt.openmetrics:
        head = head.removesuffix(_EOF)
    tail = "".join(source.render(fmt.openmetrics) for source in sources).encode()
    return head + tail + (_EOF if fmt.openmetrics else b"")
