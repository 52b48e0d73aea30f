"""``GET /metrics``: the format and compression the request wants most, and one document.

The format is the most wanted of those prometheus_client serves, by the ``Accept`` header's
weights (``negotiate``), and prometheus_client renders its registry (bus self-metrics, process
metrics, build info) in it; the sink's series come pre-rendered from their
``SeriesStore`` in the same format. In OpenMetrics the document ends with one ``# EOF``, after
both parts. Whether to gzip is prometheus_client's ``gzip_accepted``; an explicit refusal
(``q=0``) of a format or of gzip is honoured, which prometheus_client does not read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Final

from prometheus_client import CollectorRegistry, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, gzip_accepted
from prometheus_client.openmetrics import exposition as openmetrics_exposition
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE
from prometheus_client.registry import Collector

from bridge.component import HasExposition

__all__ = ["OPENMETRICS_TYPE", "TEXT_TYPE", "Format", "gzip_wanted", "negotiate", "render"]

TEXT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4
_OPENMETRICS_MEDIA_TYPE: Final = "application/openmetrics-text"
_OPENMETRICS_1: Final = f"{_OPENMETRICS_MEDIA_TYPE}; version=1.0.0;"
_TEXT_MEDIA_TYPE: Final = "text/plain"
_EOF: Final = b"# EOF\n"


@dataclass(frozen=True, slots=True)
class Format:
    """The exposition format an ``Accept`` header gets, as prometheus_client chose it."""

    openmetrics: bool
    content_type: str
    encode: Callable[[Collector], bytes]


_TEXT: Final = Format(False, TEXT_TYPE, choose_encoder("")[0])
# A name prometheus_client's OpenMetrics "underscores" escaping leaves as it is: it tests each
# character of a sample's name as a label name's (no colon), in a loop of Python calls. Not one
# beginning with "__", a label name Prometheus reserves, which "allow-utf-8" would quote.
_PLAIN_NAME: Final = re.compile(r"(?!__)[a-zA-Z_][a-zA-Z0-9_]*").fullmatch


class _Collected(Collector):
    """Families already collected, read again as a registry (``collect`` is all an encoder
    asks of one)."""

    __slots__ = ("_families",)

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def _sparing(encode: Callable[[Collector], bytes]) -> Callable[[Collector], bytes]:
    """``encode`` itself, or for prometheus_client's OpenMetrics encoder with its "underscores"
    escaping (what an ``Accept`` without ``escaping=`` gets) the same bytes made cheaper.

    That escaping replaces each character of a sample's name not allowed in a label name, a
    character at a time (about a third of the registry's rendering); when every metric, sample and
    label name is plain (``_PLAIN_NAME``), it changes nothing, and neither does "allow-utf-8",
    which passes such names through whole: the families are collected once and rendered with
    that. A name that is not plain has them rendered as asked.
    """
    if not (
        isinstance(encode, partial)
        and encode.func is openmetrics_exposition.generate_latest
        and encode.keywords.get("escaping") == openmetrics_exposition.UNDERSCORES
    ):
        return encode
    whole: Callable[[Collector], bytes] = partial(encode, escaping=openmetrics_exposition.ALLOWUTF8)

    def sparing(registry: Collector) -> bytes:
        families = list(registry.collect())
        names: set[str] = set()
        for family in families:
            names.add(family.name)
            for sample in family.samples:
                names.add(sample.name)
                names.update(sample.labels)
        return (whole if all(map(_PLAIN_NAME, names)) else encode)(_Collected(families))

    return sparing


def negotiate(accept: str) -> Format:
    """The format for an ``Accept`` header: the most wanted one prometheus_client can serve,
    text 0.0.4 when there is none.

    The media types are taken by weight, highest first, in the order given when weights tie
    (RFC 9110, 12.5.1), as client_golang's ``expfmt.Negotiate`` takes them; each is served as
    prometheus_client serves it when asked for that type alone. prometheus_client reads the list
    in its order and ignores weights, so Prometheus' ``scrape_protocols: [PrometheusText0.0.4,
    OpenMetricsText1.0.0]`` (text weighted above OpenMetrics, both listed) would get OpenMetrics.
    A type given ``q=0`` ("not this", RFC 9110, 12.4.2) is never chosen; wildcards, other
    types and an OpenMetrics version other than 1.0.0 (0.0.1, or a later one the series are not
    rendered in, which prometheus_client would claim) are passed over, as client_golang passes
    them over.
    """
    weighted = [(_weight(item), item) for item in accept.split(",")]
    # sorted() is stable: items of equal weight stay in the order given.
    ranked = sorted(
        ((1.0 if weight is None else weight, item) for weight, item in weighted),
        key=lambda pair: -pair[0],
    )
    for weight, item in ranked:
        if weight <= 0.0:
            break  # this and every item after it refused
        media, _, params = item.partition(";")
        media = media.strip().lower()
        if media not in (_OPENMETRICS_MEDIA_TYPE, _TEXT_MEDIA_TYPE):
            continue
        try:
            encode, content_type = choose_encoder(f"{media};{params}" if params else media)
        except (TypeError, ValueError):
            continue  # prometheus_client cannot compare a version such as "version=x"
        openmetrics = content_type.startswith(_OPENMETRICS_MEDIA_TYPE)
        if openmetrics and not content_type.startswith(_OPENMETRICS_1):
            continue
        if openmetrics or media == _TEXT_MEDIA_TYPE:
            return Format(openmetrics, content_type, _sparing(encode))
    return _TEXT


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
