"""Render time of the Prometheus sink's store against prometheus_client's ``generate_latest``.

    .venv/bin/python -m bench.render [--runs 7] [--sizes 1000,10000,50000]

For each size, the same series (gauges and counters with node/operation/quantile-style labels)
are put in a ``SeriesStore`` and in an equivalent ``CollectorRegistry``; each render is timed
``--runs`` times in this same process and the medians are printed with their ratios.

- ``generate_latest``: prometheus_client rendering its registry (text 0.0.4).
- ``store dirty``: the store rendering after one write in every family (each family's text is
  rebuilt from its pre-rendered lines; nothing is cached).
- ``store cached``: the store rendering with nothing changed since the last scrape.
- ``update+render``: every series written once, then rendered, for both (what one scrape
  interval of fresh data costs end to end).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest

from bench._util import argument_parser
from bridge.sinks.prometheus.store import Family, MetricType, SeriesStore

_FAMILIES = 4  # two gauge and two counter families share the series
Labels = tuple[str, str, str]


def _labels(size: int) -> list[Labels]:
    per_family = size // _FAMILIES
    return [(f"node-{i % 7}", f"operation_{i // 5}", str(i % 5)) for i in range(per_family)]


@dataclass(frozen=True)
class _Built:
    """The same series in the store (each family with whether it counts, and its label values)
    and in a registry (its counters and gauges apart, each with the same label values)."""

    store: SeriesStore
    families: list[tuple[Family, bool, list[Labels]]]
    registry: CollectorRegistry
    counters: list[Counter]
    gauges: list[Gauge]
    labels: list[Labels]


def _build(size: int) -> _Built:
    labels = _labels(size)
    built = _Built(
        SeriesStore(ttl_seconds=3600, max_series=size + 10), [], CollectorRegistry(), [], [], labels
    )
    labelnames = ("node", "operation", "slot")
    for index in range(_FAMILIES):
        counter = index % 2 == 1
        name = f"bench_family_{index}"
        kind = MetricType.COUNTER if counter else MetricType.GAUGE
        family = built.store.family(name, kind, "A benchmark family.", labelnames)
        if counter:
            counted = Counter(name, "A benchmark family.", labelnames, registry=built.registry)
            for n, label in enumerate(labels):
                family.inc(label, float(n) * 1.5)
                counted.labels(*label).inc(float(n) * 1.5)
            built.counters.append(counted)
        else:
            gauge = Gauge(name, "A benchmark family.", labelnames, registry=built.registry)
            for n, label in enumerate(labels):
                family.set(label, float(n) * 1.5)
                gauge.labels(*label).set(float(n) * 1.5)
            built.gauges.append(gauge)
        built.families.append((family, counter, labels))
    return built


def _median(function: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _measure(size: int, runs: int) -> tuple[float, float, float, float, float]:
    built = _build(size)
    store, families, registry = built.store, built.families, built.registry
    assert len(store) == size // _FAMILIES * _FAMILIES
    tick = [0.0]

    def dirty() -> bytes:
        tick[0] += 1
        for family, counter, labels in families:
            if counter:
                family.inc(labels[0])
            else:
                family.set(labels[0], tick[0])
        return store.render().encode()

    def cached() -> bytes:
        return store.render().encode()

    def client_update_render() -> bytes:
        for counted in built.counters:
            for label in built.labels:
                counted.labels(*label).inc(1.0)
        for gauge in built.gauges:
            for n, label in enumerate(built.labels):
                gauge.labels(*label).set(float(n))
        return generate_latest(registry)

    def store_update_render() -> bytes:
        tick[0] += 1
        for family, counter, labels in families:
            for n, label in enumerate(labels):
                family.inc(label) if counter else family.set(label, float(n) + tick[0])
        return store.render().encode()

    return (
        _median(lambda: generate_latest(registry), runs),
        _median(dirty, runs),
        _median(cached, runs),
        _median(client_update_render, runs),
        _median(store_update_render, runs),
    )


def main() -> None:
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sizes", default="1000,10000,50000")
    args = parser.parse_args()
    print(
        f"{'series':>7} | {'generate_latest':>15} | {'store dirty':>11} | {'ratio':>6} | "
        f"{'store cached':>12} | {'ratio':>6} | {'client upd+render':>17} | "
        f"{'store upd+render':>16} | {'ratio':>6}"
    )
    print("-" * 121)
    for size in (int(size) for size in args.sizes.split(",")):
        client, ours, warm, client_full, ours_full = _measure(size, args.runs)
        print(
            f"{size:>7} | {client * 1000:>12.2f} ms | {ours * 1000:>8.2f} ms | "
            f"{client / ours:>5.1f}x | {warm * 1000:>9.2f} ms | {client / warm:>5.0f}x | "
            f"{client_full * 1000:>14.2f} ms | {ours_full * 1000:>13.2f} ms | "
            f"{client_full / ours_full:>5.1f}x"
        )


if __name__ == "__main__":
    main()
