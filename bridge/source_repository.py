"""Where any install's user reads the docs/ pages and examples, which a pip install does not ship.

A message a user sees (a log line, an error, a help) cites such a file with ``cite_source``:
a bare ``docs/redis.md`` is a path only a checkout has.
"""

from __future__ import annotations

from typing import Final

__all__ = ["SOURCE_REPOSITORY", "cite_source"]

# pyproject's [project.urls] and deploy/Dockerfile's org.opencontainers.image.source name it too.
SOURCE_REPOSITORY: Final = "https://github.com/exesdb/exesdb-bridge"


def cite_source(path: str) -> str:
    """``path`` (``docs/redis.md#settings``, ``examples/integration_api.py``) named where any
    install's user can read it: ``docs/redis.md#settings of the source repository,
    https://github.com/...``."""
    return f"{path} of the source repository, {SOURCE_REPOSITORY}"
