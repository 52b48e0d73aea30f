"""Fakes for the collector tests: virtual time, a host probe, a bus to publish on."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from dataclasses import replace
from typing import Any, TypeVar

from bridge.bus import (
    Bus,
    Keyring,
    PublishResult,
    PublishStatus,
)
from bridge.integration import Integration
from bridge.messages import Message
from bridge.operations import OperationRecorder
from collectors.host import HostSample, IoCounters
from tests.bus.helpers import SECRET, build_bus

M = TypeVar("M", bound=Message)


class VirtualTime:
    """A clock and a sleep that advance virtual seconds instantly."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


SAMPLE = HostSample(
    cpu_percent=10.0,
    cpu_count=4,
    memory_percent=50.0,
    memory_total=8e9,
    memory_used=4e9,
    disk_percent=30.0,
    disk_total=1e11,
    disk_used=3e10,
    load_average=0.5,
    rss_bytes=5e7,
    open_fds=12,
)


CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait irq softirq steal guest guest_nice")


def cpu_times(busy: float, idle: float, iowait: float = 0.0, guest: float = 0.0) -> CpuTimes:
    """Cumulative CPU times as Linux's ``psutil.cpu_times()`` gives them (seconds)."""
    return CpuTimes(busy, 0.0, 0.0, idle, iowait, 0.0, 0.0, 0.0, guest, 0.0)


class FakeProbe:
    """A host whose readings the test sets."""

    def __init__(self, sample: HostSample = SAMPLE) -> None:
        self.next = sample
        self.counters = IoCounters(1000, 2000, 3000, 4000)
        self.fail: Exception | None = None

    def sample(self) -> HostSample:
        if self.fail is not None:
            raise self.fail
        return self.next

    def set(self, **changes: Any) -> None:
        self.next = replace(self.next, **changes)

    def io(self) -> IoCounters:
        return self.counters


class RecordingIntegration(Integration):
    """An integration whose publishes are kept in ``published`` instead of sent."""

    published: list[tuple[str, Message]]

    def publish(self, topic: str, message: Message) -> PublishResult:
        if not self.enabled():
            return PublishResult(PublishStatus.DISABLED, reason="integration disabled")
        self.published.append((topic, message))
        return PublishResult(PublishStatus.PUBLISHED, "id")

    def of(self, model: type[M]) -> list[M]:
        """What was published of one type."""
        return [message for _, message in self.published if isinstance(message, model)]


def make_bus(node: str = "n1") -> Bus:
    """A fresh in-process bus (not started)."""
    return build_bus(Keyring.from_secrets(SECRET), node=node).bus


def make_integration(node: str = "n1", enabled: bool = True) -> RecordingIntegration:
    """A recording integration with its own recorder."""
    integration = RecordingIntegration(
        make_bus(node), enabled=enabled, recorder=OperationRecorder()
    )
    integration.published = []
    return integration
