"""Real-server fixtures for the integration tests (one module per server in ``servers/``)."""

from __future__ import annotations

from tests.integration.servers.prometheus import start_prometheus

__all__ = ["start_prometheus"]
