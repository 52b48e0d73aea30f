"""The series store: label sets with values, kept as pre-rendered exposition lines.

Each series keeps its sample line (``name{a="x"} 1.0``) ready to print, rebuilt only when its
value changes, and each family caches its joined text until a series in it changes, so a scrape
is mostly string joins. Series not written for ``ttl_seconds`` expire; past ``max_series`` new
label sets are refused and counted, and so are those that would take the exposition past
``max_bytes`` (long label values), so a misbehaving publisher cannot exhaust memory; a refusal
looks through the series held only when one of them can have expired (the store keeps the
earliest write among them), so refusing costs about the same however many are held. A tenth of
either cap is kept for the series of the bridge's own node (``own_node``) that the bridge itself
writes (``own_write``), so a flood from other senders, even one naming the bridge's node, cannot
shut out the series that show what the bridge itself is doing. ``collect``
reads the same families as prometheus_client ``Metric`` objects, for readers that want values
rather than text (the OTLP mirror).
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from typing import Final

from prometheus_client import Metric
from prometheus_client.samples import Sample

__all__ = [
    "MAX_SERIES",
    "MAX_SERIES_BYTES",
    "Family",
    "MetricType",
    "Series",
    "SeriesStore",
    "escape_label_value",
    "format_value",
]

MAX_SERIES: Final = 10_000
"""How many series the store holds by default (``EXESDB_MAX_SERIES``)."""
MAX_SERIES_BYTES: Final = 64 * 1024 * 1024
"""How many bytes of exposition the store's series make at most by default
(``EXESDB_MAX_SERIES_BYTES``)."""

_SWEEP_EVERY_SECONDS: Final = 1.0
# The share of the cap only series labelled with the bridge's own node may use.
_OWN_SHARE: Final = 10
# What a sample line adds to its prefix at most: a float's repr (``-1.2345678901234567e-308``)
# and the newline; counted with the prefix against the byte cap.
_VALUE_BYTES: Final = 25


class MetricType(Enum):
    """The exposition type of a family."""

    COUNTER = "counter"
    GAUGE = "gauge"
    SUMMARY = "summary"


def escape_label_value(value: str) -> str:
    """A label value escaped for both text 0.0.4 and OpenMetrics."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")
    return value


def _escape_help(text: str, openmetrics: bool) -> str:
    """HELP text as each format escapes it: both escape backslash and line feed; OpenMetrics'
    grammar (its ``escaped-string``) escapes the double quote too, text 0.0.4 does not."""
    text = text.replace("\\", r"\\").replace("\n", r"\n")
    return text.replace('"', r"\"") if openmetrics else text


def format_value(value: float) -> str:
    """A sample value as Prometheus reads it (``+Inf``, ``-Inf``, ``NaN`` spelled out)."""
    if math.isfinite(value):
        return repr(float(value))
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


class Series:
    """One series of a family: its value and its sample line, written by ``Family``."""

    __slots__ = ("created", "family", "line", "prefix", "touched", "value")

    def __init__(self, family: Family, prefix: str, value: float, created: float) -> None:
        self.family = family
        self.prefix = prefix
        self.value = value
        self.created = created
        self.touched = created
        # The sample line, built at the next scrape after a change (None until then): writes
        # outnumber scrapes by far, so formatting on every write would be wasted work.
        self.line: str | None = None

    def render(self) -> str:
        line = self.line
        if line is None:
            line = self.line = self.prefix + format_value(self.value) + "\n"
        return line

    def put(self, value: float, now: float) -> None:
        """Set a gauge series, for a writer inside ``SeriesStore.writing()`` that holds it (see
        ``Family.series``); ``now`` is that ``writing()``'s time."""
        self.touched = now
        if self.value != value:
            self.value = value
            self.line = None
            self.family._cache = None

    def add(self, amount: float, now: float) -> None:
        """Add to a counter series, as ``put`` sets a gauge."""
        self.touched = now
        self.value += amount
        self.line = None
        self.family._cache = None


class Family:
    """One metric family: its metadata and its series, keyed by label values."""

    __slots__ = (
        "_cache",
        "_lock",
        "_node_at",
        "_sample_name",
        "_series",
        "_state_sets",
        "_store",
        "expires",
        "help",
        "kind",
        "labelnames",
        "name",
    )

    def __init__(
        self,
        store: SeriesStore,
        name: str,
        kind: MetricType,
        help_text: str,
        labelnames: Sequence[str],
        expires: bool,
    ) -> None:
        self._store = store
        self._lock = store._lock
        self.name = name
        self.kind = kind
        self.help = help_text
        self.labelnames = tuple(labelnames)
        self.expires = expires
        # Where the node label is, to tell the bridge's own series at the cap (see _admit).
        self._node_at = self.labelnames.index("node") if "node" in self.labelnames else None
        self._sample_name = name + "_total" if kind is MetricType.COUNTER else name
        self._series: dict[tuple[str, ...], Series] = {}
        # Each state set's series by its labels (without the state), with the states they are
        # for: put_state's lookups made once.
        self._state_sets: dict[tuple[str, ...], tuple[tuple[str, ...], tuple[Series, ...]]] = {}
        self._cache: str | None = None

    def _prefix(self, labels: tuple[str, ...]) -> str:
        if not labels:
            return self._sample_name + " "
        pairs = ",".join(
            f'{name}="{escape_label_value(value)}"'
            for name, value in zip(self.labelnames, labels, strict=True)
        )
        return f"{self._sample_name}{{{pairs}}} "

    def _prefixes(
        self, labels: tuple[str, ...], keys: list[tuple[str, ...]], now: float
    ) -> list[str] | None:
        """The sample-line prefixes of new series ``keys`` (of ``labels``), once the store's
        caps admit them (an expiring family's); None when refused."""
        if not self.expires:
            return [self._prefix(key) for key in keys]
        return self._store._admit(self, labels, keys, now)

    def _get(self, labels: tuple[str, ...], now: float) -> Series | None:
        series = self._series.get(labels)
        if series is None:
            if len(labels) != len(self.labelnames):
                raise ValueError(
                    f"{self.name}: {len(labels)} label value(s) given, "
                    f"{len(self.labelnames)} expected ({', '.join(self.labelnames)})"
                )
            prefixes = self._prefixes(labels, [labels], now)
            if prefixes is None:
                return None
            series = self._series[labels] = Series(self, prefixes[0], 0.0, now)
            self._cache = None
        return series

    def set(self, labels: tuple[str, ...], value: float) -> bool:
        """Set a gauge (or summary quantile) series; False when the cap refused a new one."""
        with self._store.writing():
            return self.put(labels, value)

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> bool:
        """Add to a counter series; False when the cap refused a new one."""
        with self._store.writing():
            return self.add(labels, amount)

    # The writes themselves, for a writer inside ``SeriesStore.writing()`` (the lock held and
    # the time read once for a whole batch of writes).

    def series(self, labels: tuple[str, ...]) -> Series | None:
        """The series of ``labels`` when it exists: a writer may hold it and ``Series.put`` to
        it directly until the store drops series (``SeriesStore.on_drop``)."""
        return self._series.get(labels)

    def put(self, labels: tuple[str, ...], value: float) -> bool:
        """``set`` inside ``SeriesStore.writing()``."""
        now = self._store._now
        series = self._series.get(labels)
        if series is None:
            series = self._get(labels, now)
            if series is None:
                return False
        series.touched = now
        if series.value != value:
            series.value = value
            series.line = None
            self._cache = None
        return True

    def add(self, labels: tuple[str, ...], amount: float = 1.0) -> bool:
        """``inc`` inside ``SeriesStore.writing()``."""
        now = self._store._now
        series = self._series.get(labels)
        if series is None:
            series = self._get(labels, now)
            if series is None:
                return False
        series.add(amount, now)
        return True

    def put_state(self, labels: tuple[str, ...], states: tuple[str, ...], current: str) -> bool:
        """A state set inside ``SeriesStore.writing()``: ``labels + (state,)`` is 1 for
        ``current`` and 0 for the other ``states``.

        All of the states are admitted or none, so the cap never leaves half a state set.
        """
        now = self._store._now
        found = self._state_sets.get(labels)
        if found is None or found[0] != states:
            return self._put_new_state(labels, states, current, now)
        for state, series in zip(states, found[1], strict=True):
            value = 1.0 if state == current else 0.0
            series.touched = now
            if series.value != value:
                series.value = value
                series.line = None
                self._cache = None
        return True

    def _put_new_state(
        self, labels: tuple[str, ...], states: tuple[str, ...], current: str, now: float
    ) -> bool:
        # The state set's series looked up one by one (and made where missing), then kept
        # together for the next write of these labels.
        known = self._series
        keys = [(*labels, state) for state in states]
        found = list(map(known.get, keys))
        if None in found:
            if len(keys[0]) != len(self.labelnames):
                raise ValueError(f"{self.name}: wrong number of label values")
            missing = [key for key, series in zip(keys, found, strict=True) if series is None]
            prefixes = self._prefixes(labels, missing, now)
            if prefixes is None:
                return False
            made = dict(zip(missing, prefixes, strict=True))
            for state, key in zip(states, keys, strict=True):
                prefix = made.get(key)
                if prefix is not None:
                    known[key] = Series(self, prefix, 1.0 if state == current else 0.0, now)
                    self._cache = None
        for state, series in zip(states, found, strict=True):
            if series is None:
                continue  # just made
            value = 1.0 if state == current else 0.0
            series.touched = now
            if series.value != value:
                series.value = value
                series.line = None
                self._cache = None
        self._state_sets[labels] = (states, tuple(map(known.__getitem__, keys)))
        return True

    def _expire(self, cutoff: float) -> tuple[int, int, float]:
        # The series dropped, their bytes, and the earliest write among those kept (inf when
        # none is).
        stale = []
        oldest = math.inf
        for key, series in self._series.items():
            touched = series.touched
            if touched < cutoff:
                stale.append(key)
            elif touched < oldest:
                oldest = touched
        size = 0
        for key in stale:
            size += _size(self._series.pop(key).prefix)
        if stale:
            self._cache = None
            self._state_sets.clear()  # some may hold a series just dropped
        return len(stale), size, oldest

    def _metric(self, epoch: float) -> Metric:
        metric = Metric(self.name, self.help, self.kind.value)
        created = self.name + "_created" if self.kind is MetricType.COUNTER else None
        samples = metric.samples
        for key, series in self._series.items():
            labels = dict(zip(self.labelnames, key, strict=True))
            samples.append(Sample(self._sample_name, labels, series.value))
            if created is not None:
                samples.append(Sample(created, labels, series.created + epoch))
        return metric

    def _body(self) -> str:
        if self._cache is None:
            self._cache = "".join([series.render() for series in self._series.values()])
        return self._cache

    def _header(self, openmetrics: bool) -> str:
        # Text 0.0.4 names a counter's metadata after its sample; OpenMetrics after the family.
        name = self.name if openmetrics else self._sample_name
        if not self._series:
            return ""
        help_text = _escape_help(self.help, openmetrics)
        return f"# HELP {name} {help_text}\n# TYPE {name} {self.kind.value}\n"


def _size(prefix: str) -> int:
    """The bytes a series with ``prefix`` takes in the exposition, at most (UTF-8)."""
    return len(prefix.encode()) + _VALUE_BYTES


class SeriesStore:
    """Families of series with expiry and a cardinality cap, rendered as exposition text.

    Thread-safe. ``clock`` is monotonic seconds and ``wall_clock`` Unix seconds (both injected
    in tests); a counter's ``_created`` is its creation on ``clock``, dated by ``wall_clock``'s
    reading when the store was made, so it stays the same from one collection to the next.
    ``own_node`` (the bridge's ``EXESDB_NODE``) may use the whole cap when ``own_write()`` says
    the write under way is the bridge's own (without ``own_write``, every write naming it);
    series with another node, or none, or written for a sender naming the bridge's node, stop a
    tenth short of it, so the bridge's own series always find room. ``max_bytes`` caps the
    exposition text of those series as ``max_series`` caps their number, with the same share.
    """

    def __init__(
        self,
        *,
        ttl_seconds: float = 600.0,
        max_series: int = MAX_SERIES,
        max_bytes: int = MAX_SERIES_BYTES,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        namespace: str = "exesdb_prometheus",
        own_node: str | None = None,
        own_write: Callable[[], bool] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._clock = clock
        self._now = clock()  # the time of the writes under way (see writing())
        self.ttl_seconds = ttl_seconds
        self.max_series = max_series
        self.max_bytes = max_bytes
        self.own_node = own_node
        self._own_write = own_write
        # Other series stop short of the cap by the share kept for own_node's (none without one).
        self._shared_limit = max_series - (max_series // _OWN_SHARE if own_node is not None else 0)
        self._shared_bytes = max_bytes - (max_bytes // _OWN_SHARE if own_node is not None else 0)
        self._families: dict[str, Family] = {}
        self._count = 0
        self._bytes = 0  # the exposition bytes of the series under the caps (see _size)
        self._last_sweep = clock()
        # No series written at or after this can have expired: the earliest write among the
        # series kept by the last sweep, lowered by each new series. Writes only move a
        # series' time later, so until ``now - ttl`` passes it a sweep would find nothing,
        # and at the cap a refused series costs no scan (see _sweep).
        self._oldest = math.inf
        self._epoch = wall_clock() - self._last_sweep
        self._on_drop: list[Callable[[], None]] = []
        # Self-metrics, rendered with the rest; they never expire and are not capped.
        self._series_gauge = self.family(
            f"{namespace}_series",
            MetricType.GAUGE,
            "Series the Prometheus sink holds (under the cardinality cap).",
            expires=False,
        )
        self._bytes_gauge = self.family(
            f"{namespace}_series_bytes",
            MetricType.GAUGE,
            "Exposition bytes of the series the Prometheus sink holds (under the byte cap, "
            "EXESDB_MAX_SERIES_BYTES).",
            expires=False,
        )
        self._limit_gauge = self.family(
            f"{namespace}_series_limit",
            MetricType.GAUGE,
            "The cardinality cap (EXESDB_MAX_SERIES).",
            expires=False,
        )
        self._bytes_limit_gauge = self.family(
            f"{namespace}_series_bytes_limit",
            MetricType.GAUGE,
            "The byte cap (EXESDB_MAX_SERIES_BYTES).",
            expires=False,
        )
        self._refused = self.family(
            f"{namespace}_series_refused",
            MetricType.COUNTER,
            "New label sets refused because the cardinality cap (or the byte cap) was reached, "
            "by metric.",
            ("metric",),
            expires=False,
        )
        self._expired = self.family(
            f"{namespace}_series_expired",
            MetricType.COUNTER,
            "Series dropped because they were not reported again within EXESDB_SERIES_TTL_MS.",
            expires=False,
        )
        # Each scan reads every series held: what expiry costs, and what a flood of new label
        # sets at the cap would cost were refusals not spared it (see _sweep).
        self._scans = self.family(
            f"{namespace}_series_scans",
            MetricType.COUNTER,
            "Scans of every series held for those past EXESDB_SERIES_TTL_MS (at most one a "
            "second, or at the cap one each time one of them can have expired).",
            expires=False,
        )
        self._limit_gauge.set((), float(max_series))
        self._bytes_limit_gauge.set((), float(max_bytes))
        self._expired.inc((), 0.0)
        self._scans.inc((), 0.0)

    def family(
        self,
        name: str,
        kind: MetricType,
        help_text: str,
        labelnames: Sequence[str] = (),
        *,
        expires: bool = True,
    ) -> Family:
        """Declare a family (once per name); ``expires=False`` for self-metrics."""
        with self._lock:
            if name in self._families:
                raise ValueError(f"metric family {name!r} is already declared")
            family = self._families[name] = Family(self, name, kind, help_text, labelnames, expires)
            return family

    def on_drop(self, forget: Callable[[], None]) -> None:
        """Call ``forget`` whenever series are dropped: a writer holding ``Series`` lets go."""
        self._on_drop.append(forget)

    @contextmanager
    def writing(self) -> Iterator[float]:
        """Hold the store for a batch of writes, all made at one reading of the clock (given):
        inside, ``Family.put``, ``add``, ``put_state`` and ``Series.put`` write without taking
        the lock again."""
        with self._lock:
            # Nested (a set() inside a batch): the inner reading is later, as good for both.
            now = self._now = self._clock()
            yield now

    @property
    def families(self) -> tuple[Family, ...]:
        """Every declared family, in declaration order."""
        return tuple(self._families.values())

    def __len__(self) -> int:
        """Series under the cap (self-metrics excluded)."""
        return self._count

    def _admit(
        self, family: Family, labels: tuple[str, ...], keys: list[tuple[str, ...]], now: float
    ) -> list[str] | None:
        # Only a new label set gets here, never a write to a known series: no hot-path cost.
        # The series are counted first: one refused at the series cap builds no line.
        count = len(keys)
        own = functools.cache(lambda: self._own(family, labels))
        if not self._fits(
            lambda: self._count, count, self.max_series, self._shared_limit, own, now
        ):
            self._refused.inc((family.name,), float(count))
            return None
        prefixes = [family._prefix(key) for key in keys]
        size = sum(map(_size, prefixes))
        if not self._fits(lambda: self._bytes, size, self.max_bytes, self._shared_bytes, own, now):
            self._refused.inc((family.name,), float(count))
            return None
        self._count += count
        self._bytes += size
        if now < self._oldest:
            self._oldest = now
        return prefixes

    def _fits(
        self,
        held: Callable[[], int],
        more: int,
        cap: int,
        shared: int,
        own: Callable[[], bool],
        now: float,
    ) -> bool:
        """Whether ``more`` fits beside what is ``held`` (series or bytes): under the ``shared``
        part of the ``cap``, or, for the bridge's own node, under the whole; expired series are
        swept away first when it does not."""
        if held() + more <= shared:
            return True
        limit = cap if own() else shared
        if held() + more > limit:
            self._sweep(now, force=True)
        return held() + more <= limit

    def _own(self, family: Family, labels: tuple[str, ...]) -> bool:
        """Whether new series of ``labels`` may use the share of the caps kept for the bridge's
        own node: labelled with it, and written by the bridge itself."""
        at = family._node_at
        return (
            at is not None
            and at < len(labels)
            and labels[at] == self.own_node
            and (self._own_write is None or self._own_write())
        )

    def _sweep(self, now: float, force: bool = False) -> None:
        if not force and now - self._last_sweep < min(_SWEEP_EVERY_SECONDS, self.ttl_seconds):
            return
        cutoff = now - self.ttl_seconds
        if cutoff <= self._oldest:
            return  # nothing written before the cutoff: nothing to expire, no scan
        self._last_sweep = now
        self._scans.inc(())
        dropped = 0
        freed = 0
        oldest = math.inf
        for family in self._families.values():
            if family.expires and family._series:
                gone, size, kept = family._expire(cutoff)
                dropped += gone
                freed += size
                oldest = min(oldest, kept)
        self._oldest = oldest
        if dropped:
            self._count -= dropped
            self._bytes -= freed
            self._expired.inc((), float(dropped))
            for forget in self._on_drop:
                forget()

    def _scrape(self) -> None:
        # What every read does first: expire what is due, then count what is left.
        self._sweep(self._clock())
        self._series_gauge.set((), float(self._count))
        self._bytes_gauge.set((), float(self._bytes))

    def collect(self) -> list[Metric]:
        """Every family that has series, as prometheus_client families (what ``render`` shows).

        Counters carry a ``_created`` sample per series in Unix seconds, as prometheus_client's
        own counters do: a series that expired and came back has a new one.
        """
        with self._lock:
            self._scrape()
            return [f._metric(self._epoch) for f in self._families.values() if f._series]

    def values(self, name: str) -> dict[tuple[str, ...], float]:
        """One family's series as ``{label values: value}`` (empty when it has none): a small
        structured read for pages, without building every family as ``collect`` does."""
        with self._lock:
            self._scrape()
            family = self._families.get(name)
            if family is None:
                return {}
            return {labels: series.value for labels, series in family._series.items()}

    def ages(self, name: str) -> dict[tuple[str, ...], float]:
        """Seconds since each series of one family was last written, keyed as ``values``."""
        with self._lock:
            self._scrape()
            family = self._families.get(name)
            if family is None:
                return {}
            now = self._clock()
            return {labels: now - series.touched for labels, series in family._series.items()}

    def render(self, openmetrics: bool = False) -> str:
        """Every family as exposition text (no ``# EOF``: the caller ends the document)."""
        with self._lock:
            self._scrape()
            parts: list[str] = []
            for family in self._families.values():
                if family._series:
                    parts.append(family._header(openmetrics))
                    parts.append(family._body())
            return "".join(parts)
