"""What a test of memory counts: objects alive, with the cycle collector off."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    """The cycle collector off (after a collection), as the bridge's raised thresholds leave it
    for hundreds of requests: what a cycle holds stays held, what nothing holds is let go."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def alive(kind: type, which: Callable[[Any], bool] = lambda _: True) -> int:
    """How many objects of ``kind`` (those ``which`` picks) are alive."""
    return sum(1 for found in gc.get_objects() if isinstance(found, kind) and which(found))
