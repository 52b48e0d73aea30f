"""Producers: host health, operation throughput and latency, the bridge's lifecycle, demo traffic.

Each collector is a ``bridge.component.Component`` built by a factory that ``default_components()``
lists; the scheduled ones run on a ``Schedule`` and publish nothing while the integration is off.
"""

from __future__ import annotations

from collectors.demo import DemoCluster, demo_component
from collectors.health import HealthCollector, Thresholds, health_collector
from collectors.host import HostProbe, HostSample, IoCounters, PsutilProbe
from collectors.lifecycle import LifecycleCollector, lifecycle_collector, public_config
from collectors.scheduler import CollectorMetrics, Schedule
from collectors.throughput import ThroughputCollector, throughput_collector

__all__ = [
    "CollectorMetrics",
    "DemoCluster",
    "HealthCollector",
    "HostProbe",
    "HostSample",
    "IoCounters",
    "LifecycleCollector",
    "PsutilProbe",
    "Schedule",
    "Thresholds",
    "ThroughputCollector",
    "demo_component",
    "health_collector",
    "lifecycle_collector",
    "public_config",
    "throughput_collector",
]
