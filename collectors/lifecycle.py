"""The lifecycle collector: SystemLifecycle and the start-up SystemConfig.

Listed after the sinks that record lifecycle (Prometheus, OTLP), so it starts after them:
``start()`` publishes ``starting``, the SystemConfig of the running bridge (no secrets), then
``started``. Components close in reverse order, so on shutdown it publishes ``stopping`` then
``stopped`` before those sinks close and while the bus still runs: they see both before the bus
drains. (The Integration itself publishes a SystemConfig whenever it is enabled or disabled at
runtime.)
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlsplit

from bridge import __version__
from bridge.component import Context
from bridge.integration import Integration
from bridge.messages import SystemConfig, SystemLifecycle
from bridge.otlp_settings import otlp_enabled
from bridge.settings import Settings

__all__ = ["SYSTEM_NAME", "LifecycleCollector", "lifecycle_collector", "public_config"]

SYSTEM_NAME: Final = "exesdb_bridge"


def public_config(settings: Settings) -> dict[str, Any]:
    """What the bridge runs with, safe to publish: no secrets, no URL credentials."""
    return {
        "version": __version__,
        "node": settings.node,
        "bus": urlsplit(settings.bus).scheme or settings.bus,
        "http_addr": settings.http_addr,
        "pubsub_integration": settings.pubsub_integration,
        "health_broadcast_interval": settings.health_broadcast_interval,
        "metrics_broadcast_interval": settings.metrics_broadcast_interval,
        "ingest": settings.ingest,
        "series_ttl_ms": settings.series_ttl_ms,
        "max_series": settings.max_series,
        "otlp": otlp_enabled(settings),
        "webhooks": len(settings.webhook_urls),
    }


class LifecycleCollector:
    """Announces the bridge's own start and stop on ``ex_esdb_system``."""

    name = "lifecycle_collector"
    required = False

    def __init__(
        self,
        integration: Integration,
        *,
        config: dict[str, Any] | None = None,
        version: str = __version__,
    ) -> None:
        self._integration = integration
        self._config = config or {}
        self._version = version
        self._started = False
        self._closed = False

    def _lifecycle(self, event: str) -> None:
        self._integration.publish(
            "lifecycle",
            self._integration.build(
                SystemLifecycle, event=event, system_name=SYSTEM_NAME, version=self._version
            ),
        )

    async def start(self) -> None:
        """Publish ``starting``, the SystemConfig, then ``started``."""
        if self._started:
            return
        self._started = True
        self._lifecycle("starting")
        self._integration.publish(
            "config",
            self._integration.build(
                SystemConfig, component=SYSTEM_NAME, changes=self._config, changed_by="system"
            ),
        )
        self._lifecycle("started")

    def readiness(self) -> str | None:
        """Never holds up readiness."""
        return None

    async def aclose(self) -> None:
        """Publish ``stopping`` then ``stopped`` (once)."""
        if self._closed:
            return
        self._closed = True
        if self._started:
            self._lifecycle("stopping")
            self._lifecycle("stopped")


def lifecycle_collector(context: Context) -> LifecycleCollector:
    """The factory ``default_components()`` lists."""
    return LifecycleCollector(context.integration, config=public_config(context.settings))
