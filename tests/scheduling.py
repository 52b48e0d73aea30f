"""The order make test's workers take the suite in: waiting on servers beside the busy tests.

Under ``--dist loadgroup`` pytest-xdist hands each worker one unit of work at a time in the
order collected (make test keeps that order: ``--no-loadscope-reorder``): a test alone, or every
test of an ``xdist_group`` together. In file order the integration modules, which mostly wait on
real servers and bridge processes, came one after another, and the four workers waited on them
together while the two cores idled (a quarter of a minute at a time); then the unit tests kept
both cores busy on their own. Here each integration module is one unit, as a module starting its
servers once already is, and the units are spread through the first two thirds of the other
tests, the slow modules first: while a worker waits on one, the others keep the cores busy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import pytest

# The part of the lone tests the groups are spread through: the last groups start while a
# third of the lone tests is left for the other workers, so no worker is left alone at the end
# with a long group.
_SPREAD: Final = 2 / 3
_INTEGRATION: Final = Path(__file__).parent / "integration"


def group_integration_module(item: pytest.Item) -> None:
    """Mark ``item``, a test of a module under ``tests/integration`` without a group, with its
    module's (``group_of``), which pytest-xdist then reads."""
    if item.get_closest_marker("xdist_group") is None and (group := group_of(item)):
        item.add_marker(pytest.mark.xdist_group(group))


def group_of(item: pytest.Item) -> str | None:
    """The group ``item`` runs in under ``--dist loadgroup``: its ``xdist_group`` marker's name
    (read as pytest-xdist reads it), else its module's if under ``tests/integration``."""
    marker = item.get_closest_marker("xdist_group")
    if marker is not None:
        return str(marker.args[0] if marker.args else marker.kwargs.get("name", "default"))
    if _INTEGRATION in item.path.parents:
        return f"module-{item.path.stem}"
    return None


def interleaved(items: Sequence[pytest.Item]) -> list[pytest.Item]:
    """``items`` with each group's tests together, the groups spread evenly through the first
    ``_SPREAD`` of the lone tests, those of slow modules first, then by size; the lone tests and
    each group's tests keep their order."""
    groups: dict[str, list[pytest.Item]] = {}
    alone: list[pytest.Item] = []
    for item in items:
        if (group := group_of(item)) is None:
            alone.append(item)
        else:
            groups.setdefault(group, []).append(item)
    # sorted() is stable: groups alike keep the order collected, the same on every worker.
    ordered = sorted(
        groups.values(),
        key=lambda tests: (tests[0].get_closest_marker("slow") is None, -len(tests)),
    )
    result: list[pytest.Item] = []
    step = len(alone) * _SPREAD / max(len(ordered), 1)
    taken = 0
    for index, tests in enumerate(ordered):
        until = round(index * step)
        result.extend(alone[taken:until])
        taken = max(taken, until)
        result.extend(tests)
    result.extend(alone[taken:])
    return result
