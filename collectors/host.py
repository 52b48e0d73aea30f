"""Readings of the host and of the bridge's own process, behind a protocol tests can fake.

CPU use is the busy share of the CPU time the host spent between two readings (the ``/proc/stat``
deltas psutil's ``cpu_times()`` gives): the first reading comes only once ``cpu_window`` seconds
have passed since the probe was made, so it never covers just the bridge's own start-up. Network
bytes are those of every interface but loopback, as node_exporter's dashboards count them
(``device!="lo"``): traffic within the host (a local Redis, Prometheus scraping on loopback) is no
network throughput, and loopback counts each of its bytes as received and as sent.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import psutil

__all__ = ["HostProbe", "HostSample", "IoCounters", "PsutilProbe", "busy_percent"]

# CPU time that is not work: idle, and waiting for I/O (as psutil.cpu_percent counts it). Guest
# time is already part of user and nice time on Linux, so it is left out of the total.
_NOT_BUSY: Final = ("idle", "iowait")
_COUNTED_TWICE: Final = ("guest", "guest_nice")
# Loopback interfaces by name: Linux's lo, the BSDs' and macOS's lo0, Windows's "Loopback
# Pseudo-Interface 1".
_LOOPBACK: Final = re.compile(r"lo\d*|loopback.*", re.IGNORECASE)


def _every_nic() -> Mapping[str, Any]:
    return psutil.net_io_counters(pernic=True)


def busy_percent(before: Any, after: Any) -> float:
    """The busy share (0-100) of the CPU time between two ``psutil.cpu_times()`` readings."""
    was = before._asdict()  # a named tuple whose fields differ by platform
    deltas = {name: max(value - was[name], 0.0) for name, value in after._asdict().items()}
    total = sum(deltas.values()) - sum(deltas.get(name, 0.0) for name in _COUNTED_TWICE)
    busy = total - sum(deltas.get(name, 0.0) for name in _NOT_BUSY)
    return round(min(max(busy / total * 100, 0.0), 100.0), 1) if total > 0 else 0.0


@dataclass(frozen=True, slots=True)
class HostSample:
    """One reading of the host's resources and this process (``cpu_percent`` None until the
    probe has watched the CPU for a whole window)."""

    cpu_percent: float | None
    cpu_count: int
    memory_percent: float
    memory_total: float
    memory_used: float
    disk_percent: float
    disk_total: float
    disk_used: float
    load_average: float | None
    rss_bytes: float
    open_fds: int | None


@dataclass(frozen=True, slots=True)
class IoCounters:
    """Cumulative disk and network byte counters (None where the host has none)."""

    disk_read_bytes: int | None
    disk_write_bytes: int | None
    net_received_bytes: int | None
    net_sent_bytes: int | None


class HostProbe(Protocol):
    """Where the collectors read the host from."""

    def sample(self) -> HostSample:
        """Resource usage now."""

    def io(self) -> IoCounters:
        """Cumulative I/O byte counters now."""


class PsutilProbe:
    """The real host, through psutil; ``disk_path`` is the file system whose usage counts.

    CPU use covers the time since the previous reading; the first one waits until
    ``cpu_window`` seconds (the health interval) have passed since construction.
    """

    def __init__(
        self,
        disk_path: str = "/",
        *,
        cpu_window: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        cpu_times: Callable[[], Any] = psutil.cpu_times,
        nic_counters: Callable[[], Mapping[str, Any]] = _every_nic,
    ) -> None:
        self._disk_path = disk_path
        self._nic_counters = nic_counters
        self._process = psutil.Process(os.getpid())
        self._clock = clock
        self._cpu_times = cpu_times
        self._first_at: float | None = clock() + cpu_window
        self._last_times = cpu_times()

    def cpu_percent(self) -> float | None:
        """The host's CPU use since the previous reading; None within the first window."""
        if self._first_at is not None:
            if self._clock() < self._first_at:
                return None
            self._first_at = None
        before, self._last_times = self._last_times, self._cpu_times()
        return busy_percent(before, self._last_times)

    def sample(self) -> HostSample:
        memory = psutil.virtual_memory()
        disk = psutil.disk_usage(self._disk_path)
        try:
            load: float | None = os.getloadavg()[0]
        except OSError:  # not every platform has a load average
            load = None
        try:
            open_fds: int | None = self._process.num_fds()
        except (AttributeError, psutil.Error):  # num_fds() is POSIX only
            open_fds = None
        return HostSample(
            cpu_percent=self.cpu_percent(),
            cpu_count=psutil.cpu_count() or 1,
            memory_percent=float(memory.percent),
            memory_total=float(memory.total),
            memory_used=float(memory.total - memory.available),
            disk_percent=float(disk.percent),
            disk_total=float(disk.total),
            disk_used=float(disk.used),
            load_average=load,
            rss_bytes=float(self._process.memory_info().rss),
            open_fds=open_fds,
        )

    def io(self) -> IoCounters:
        try:
            disk = psutil.disk_io_counters()
        except NotImplementedError:  # no /proc/diskstats nor /sys/block (gVisor): no counters
            disk = None
        nics = [
            counters
            for name, counters in self._nic_counters().items()
            if not _LOOPBACK.fullmatch(name)
        ]
        return IoCounters(
            disk_read_bytes=disk.read_bytes if disk else None,
            disk_write_bytes=disk.write_bytes if disk else None,
            net_received_bytes=sum(nic.bytes_recv for nic in nics) if nics else None,
            net_sent_bytes=sum(nic.bytes_sent for nic in nics) if nics else None,
        )
