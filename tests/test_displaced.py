"""Files held open, deleted or replaced at their paths: the check and its once-told watch."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.displaced import DisplacedWatch, first_displaced, identity


@pytest.fixture
def held(tmp_path: Path) -> Iterator[list[tuple[Path, tuple[int, int]]]]:
    """Two files held open, each with the identity it had as opened."""
    paths = [tmp_path / "a", tmp_path / "b"]
    descriptors = [os.open(path, os.O_RDWR | os.O_CREAT, 0o600) for path in paths]
    try:
        yield [(path, identity(os.fstat(fd))) for path, fd in zip(paths, descriptors, strict=True)]
    finally:
        for descriptor in descriptors:
            os.close(descriptor)


def test_files_at_their_paths_are_not_displaced(held: list[tuple[Path, tuple[int, int]]]) -> None:
    """Each file still at its path: None."""
    assert first_displaced(held, "the test's") is None


def test_the_first_file_deleted_or_replaced_is_named_with_whose_it_is(
    held: list[tuple[Path, tuple[int, int]]],
) -> None:
    """A file deleted is named as deleted, one replaced (another inode at its path) as replaced,
    the first in ``held`` of those displaced, prefixed with whose it is."""
    (first, _), (second, _) = held
    second.unlink()
    assert first_displaced(held, "the test's") == (
        f"the test's {second} was deleted (EXESDB_STATE_DIR removed?)"
    )
    first.rename(first.with_name("aside"))  # kept, so its inode is not reused
    first.write_bytes(b"")
    assert first_displaced(held, "the test's") == f"the test's {first} was replaced by another file"


def test_a_path_that_cannot_be_looked_up_says_why(tmp_path: Path) -> None:
    """A path the system refuses to look up (a file where a folder was) says the system's
    words."""
    (tmp_path / "folder").write_bytes(b"")
    found = first_displaced([(tmp_path / "folder" / "lock", (0, 0))], "the test's")
    assert str(found).startswith(f"the test's {tmp_path / 'folder' / 'lock'} cannot be looked up")


async def test_a_watch_adds_what_told_says_to_its_log_line_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``told`` is said after the problem in the ERROR line, not in ``problem`` (which readiness
    and refusals show), and asked only as the line is said."""
    asked: list[None] = []

    async def displaced() -> str | None:
        return "gone"

    def told() -> str:
        asked.append(None)
        return " (3 held)"

    watch = DisplacedWatch(
        displaced,
        lambda: None,
        what_to_do="restart",
        label="test",
        back="back",
        logger=logging.getLogger("tests.displaced"),
        told=told,
    )
    with caplog.at_level(logging.INFO, "tests.displaced"):
        assert await watch.check() == "gone: restart"
        assert await watch.check() == "gone: restart"
    assert watch.problem == "gone: restart"
    assert caplog.messages == ["test: gone: restart (3 held)"]
    assert len(asked) == 1
