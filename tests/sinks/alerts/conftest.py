"""Fixtures of the alert sink's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.sinks.alerts.outbox import Outbox
from tests.sinks.alerts.helpers import URL


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    """An outbox with one webhook URL."""
    box = Outbox.in_dir(tmp_path / "state", urls=[URL])
    yield box
    box.close()
