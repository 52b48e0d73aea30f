"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import BridgeProcess


@pytest.fixture
def bridge_processes(tmp_path: Path) -> Iterator[list[BridgeProcess]]:
    """A list to put started ``BridgeProcess`` objects in; every one is stopped afterwards."""
    started: list[BridgeProcess] = []
    yield started
    for process in started:
        process.stop()
