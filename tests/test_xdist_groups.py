"""make test's pytest-xdist groups hold: a module whose servers start once runs on one worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.scheduling import group_of, interleaved

GROUP = "grouping-check"

pytestmark = pytest.mark.xdist_group(GROUP)


def test_a_grouped_test_carries_its_group_under_loadgroup(request: pytest.FixtureRequest) -> None:
    """Under ``--dist loadgroup`` (make test) a test marked ``xdist_group`` carries the group in
    its node id, which is how pytest-xdist sends the group to one worker; pytest 9.2 drops the
    suffix without a word (pytest-xdist issue 1386), and every group then runs on every worker,
    building the container image once per worker."""
    # xdist tells each worker its --dist as the option ``loadgroup`` (a worker's own is "no").
    grouped = bool(request.config.getoption("loadgroup", default=False))
    assert request.node.nodeid.endswith(f"@{GROUP}") == grouped, request.node.nodeid


def test_each_integration_module_is_one_unit_spread_through_the_lone_tests(
    request: pytest.FixtureRequest,
) -> None:
    """Each integration module is a group of its own, each group's tests come together, and the
    last group starts before the last quarter of the lone tests (``tests/scheduling.py``): the
    workers wait on servers beside the busy tests, not together. Under ``--dist loadgroup`` (make
    test) the suite runs in that order, each test carrying its group in its node id."""
    items = request.session.items
    order = interleaved(items)
    groups = [group_of(item) for item in order]
    for item, group in zip(order, groups, strict=True):
        if "/integration/" in item.nodeid:
            marker = item.get_closest_marker("xdist_group")
            module = f"module-{Path(item.nodeid.partition('::')[0]).stem}"
            assert group == (module if marker is None else marker.args[0]), item.nodeid
    runs = [group for index, group in enumerate(groups) if index == 0 or group != groups[index - 1]]
    named = [group for group in runs if group is not None]
    assert len(named) == len(set(named)), "a group's tests apart"
    last = max(index for index, group in enumerate(groups) if group is not None)
    assert groups[last:].count(None) >= groups.count(None) / 4
    if request.config.getoption("loadgroup", default=False):
        assert [item.nodeid for item in items] == [item.nodeid for item in order]
        assert all(
            item.nodeid.endswith(f"@{group}")
            for item, group in zip(items, groups, strict=True)
            if group is not None
        )
