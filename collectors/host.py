"""Readings of the host and of the bridge's own process, behind a protocol tests can fake."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

import psutil

__all__ = ["HostProbe", "HostSample", "IoCounters", "PsutilProbe"]


@dataclass(frozen=True, slots=True)
class HostSample:
    """One reading of the host's resources and this process."""

    cpu_percent: float
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
    """The real host, through psutil; ``disk_path`` is the file system whose usage counts."""

    def __init__(self, disk_path: str = "/") -> None:
        self._disk_path = disk_path
        self._process = psutil.Process(os.getpid())
        # The first cpu_percent() call has nothing to compare with: prime it now.
        psutil.cpu_percent(interval=None)

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
            cpu_percent=float(psutil.cpu_percent(interval=None)),
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
        disk = psutil.disk_io_counters()
        net = psutil.net_io_counters()
        return IoCounters(
            disk_read_bytes=disk.read_bytes if disk else None,
            disk_write_bytes=disk.write_bytes if disk else None,
            net_received_bytes=net.bytes_recv if net else None,
            net_sent_bytes=net.bytes_sent if net else None,
        )
