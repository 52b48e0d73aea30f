"""Real-server fixtures for the integration tests (one module per server in ``servers/``)."""

from __future__ import annotations

import pytest

from tests.integration.servers.chromium import (
    bidi_browser,
    browser,
    quit_after_its_group,
    shared_chromium,
)
from tests.integration.servers.prometheus import start_prometheus

__all__ = ["bidi_browser", "browser", "shared_chromium", "start_prometheus"]


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """The shared Chromium quit after the last test of its group (``quit_after_its_group``)."""
    quit_after_its_group(item, nextitem)
