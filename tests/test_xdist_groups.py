"""make test's pytest-xdist groups hold: a module whose servers start once runs on one worker."""

from __future__ import annotations

import pytest

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
