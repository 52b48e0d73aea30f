"""Whether files held open in ``EXESDB_STATE_DIR`` are still the files at their paths, told once.

A state directory removed under a running bridge (``rm -rf``, a tmp cleaner, a volume mounted
over it) leaves the bridge writing to files that are gone, or to new ones it never opened: what
it took meanwhile would be lost at the next start, without a word. The alert outbox and the
Redis bus spool each compare what they hold (device and inode) with what the path names now
(``first_displaced``: a stat each, microseconds) on their own thread, and a ``DisplacedWatch``
keeps the last answer for readiness and ingest, saying it once in the log as it changes.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the logger is given: `outbox list`, which checks files, loads no logging
    import logging

__all__ = ["DisplacedWatch", "first_displaced", "identity"]


def identity(found: os.stat_result) -> tuple[int, int]:
    """What tells one file from another: its device and inode number."""
    return found.st_dev, found.st_ino


def first_displaced(held: Iterable[tuple[Path, tuple[int, int]]], whose: str) -> str | None:
    """Why the first of ``held`` (each a path and the ``identity`` of the file opened there) is
    no longer the file at its path, deleted or replaced, in words naming ``whose`` it is (``the
    alert outbox's``); None while each is. Only a file held open keeps its inode number its own:
    a file made later at the path may get the number of one deleted but not held."""
    for path, opened in held:
        try:
            there = identity(os.stat(path))
        except FileNotFoundError:
            return f"{whose} {path} was deleted (EXESDB_STATE_DIR removed?)"
        except OSError as exc:
            return f"{whose} {path} cannot be looked up: {exc}"
        if there != opened:
            return f"{whose} {path} was replaced by another file"
    return None


class DisplacedWatch:
    """Keeps what ``displaced`` (a check run off the event loop: a disk that hangs would hold it)
    last found in ``problem``, with ``what_to_do`` after it, calling ``changed`` as it changes;
    ``logger`` says it at ERROR once, prefixed ``label`` and followed by what ``told`` adds
    then (the log's alone), and ``back`` at INFO should the files come back (moved back where
    they were)."""

    __slots__ = (
        "_back",
        "_changed",
        "_displaced",
        "_label",
        "_logger",
        "_told",
        "_what_to_do",
        "problem",
    )

    def __init__(
        self,
        displaced: Callable[[], Awaitable[str | None]],
        changed: Callable[[], None],
        *,
        what_to_do: str,
        label: str,
        back: str,
        logger: logging.Logger,
        told: Callable[[], str] = lambda: "",
    ) -> None:
        self._displaced = displaced
        self._changed = changed
        self._what_to_do = what_to_do
        self._label = label
        self._back = back
        self._logger = logger
        self._told = told
        # What the last check found, with what to do; None while the files are at their paths.
        self.problem: str | None = None

    async def check(self) -> str | None:
        """Ask again: ``problem`` as it is now."""
        return self.found(await self._displaced())

    def found(self, displaced: str | None) -> str | None:
        """Take what a check run elsewhere found (``displaced``'s answer): ``problem`` now."""
        problem = None if displaced is None else f"{displaced}: {self._what_to_do}"
        if problem != self.problem:
            self.problem = problem
            if problem is None:
                self._logger.info("%s: %s", self._label, self._back)
            else:
                self._logger.error("%s: %s%s", self._label, problem, self._told())
            self._changed()
        return problem
