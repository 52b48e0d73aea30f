"""The host probe's I/O counters: network bytes leave loopback out."""

from __future__ import annotations

import socket
from collections import namedtuple

import psutil
import pytest

from collectors import ThroughputCollector
from collectors.host import PsutilProbe
from tests.collectors.fakes import make_integration
from tests.support import unavailable

Nic = namedtuple("Nic", "bytes_sent bytes_recv")


def test_network_bytes_are_every_interface_but_loopback() -> None:
    """Received and sent bytes add up the interfaces, leaving out lo, lo0 and Windows's loopback."""
    nics = {
        "lo": Nic(10**9, 10**9),
        "lo0": Nic(10**8, 10**8),
        "Loopback Pseudo-Interface 1": Nic(10**7, 10**7),
        "eth0": Nic(300, 4000),
        "wlan0": Nic(20, 100),
        "long0": Nic(1, 1),  # a name that merely starts with lo
    }
    counters = PsutilProbe(nic_counters=lambda: nics).io()
    assert (counters.net_received_bytes, counters.net_sent_bytes) == (4101, 321)


def test_a_host_with_loopback_alone_has_no_network_bytes() -> None:
    """With no interface but loopback the network counters are None, as with no interface."""
    only_loopback = PsutilProbe(nic_counters=lambda: {"lo": Nic(5, 5)}).io()
    assert only_loopback.net_received_bytes is None
    assert only_loopback.net_sent_bytes is None
    assert PsutilProbe(nic_counters=dict).io().net_received_bytes is None


def test_a_host_that_shows_no_disk_counters_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the kernel shows no disk counters (gVisor, as on Cloud Run, where psutil raises)
    the disk counters are None, as on a host psutil finds no disk on: the throughput collector
    is still made, and the network's counters are still read."""

    def no_disk_counters(*args: object, **kwargs: object) -> None:
        raise NotImplementedError("/proc/diskstats nor /sys/block are available on this system")

    monkeypatch.setattr(psutil, "disk_io_counters", no_disk_counters)
    probe = PsutilProbe(nic_counters=lambda: {"eth0": Nic(300, 4000)})
    counters = probe.io()
    assert (counters.disk_read_bytes, counters.disk_write_bytes) == (None, None)
    assert (counters.net_received_bytes, counters.net_sent_bytes) == (4000, 300)
    ThroughputCollector(make_integration(), probe=probe)


def test_traffic_on_loopback_is_not_counted_on_this_host() -> None:
    """Bytes sent over 127.0.0.1 do not show in the real probe's network counters."""
    nics = psutil.net_io_counters(pernic=True)
    if "lo" not in nics or len(nics) < 2:
        unavailable("this host has no lo interface beside another one")
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname()) as client,
    ):
        peer, _ = server.accept()
        with peer:
            client.sendall(b"x" * 1_000_000)
            received = 0
            while received < 1_000_000:
                received += len(peer.recv(1 << 16))
    counted = PsutilProbe().io()
    after = psutil.net_io_counters(pernic=True)
    assert counted.net_received_bytes is not None
    # The counters only grow: read after the probe, the other interfaces' sum bounds it, where
    # lo's megabyte (at least) would have pushed it past.
    others = sum(nic.bytes_recv for name, nic in after.items() if name != "lo")
    assert counted.net_received_bytes <= others
