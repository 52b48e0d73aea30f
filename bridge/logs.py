"""How the bridge logs: one stderr handler, text or JSON lines, nothing a stranger can flood.

``configure_logging`` sets the root logger to ``EXESDB_LOG_LEVEL`` in ``EXESDB_LOG_FORMAT``
(JSON: one object per line with ``ts``, ``level``, ``logger``, ``message`` and, for an error,
``exception``); it may be called again (the handler and filters are replaced, not added).
"""

from __future__ import annotations

import errno
import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp.http_exceptions import HttpProcessingError

from bridge.config import Settings

__all__ = ["configure_logging"]

# How often a listener out of descriptors is told (asyncio logs every accept refused).
_OUT_OF_DESCRIPTORS_EVERY: Final = 60.0
_OUT_OF_DESCRIPTORS: Final = frozenset({errno.EMFILE, errno.ENFILE})

# Libraries whose debug lines show what may hold a secret, kept at info at most: urllib3 (the
# OTLP/HTTP exporter's client) logs each request line, query string included (an API key).
_NO_DEBUG: Final = ("urllib3",)


class _JsonFormatter(logging.Formatter):
    """One JSON object per line; ``ts`` in UTC to the millisecond, ending in ``Z``."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "ts": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class _MalformedRequests(logging.Filter):
    """aiohttp logs each request head it refuses with a traceback quoting the bytes at fault:
    anyone reaching the port could flood the log, or put a token of theirs in it. Kept out
    (the sender is answered 400); at debug, one line naming the refusal."""

    def filter(self, record: logging.LogRecord) -> bool:
        refused = record.exc_info[1] if record.exc_info else None
        if not isinstance(refused, HttpProcessingError):
            return True
        if not logging.getLogger().isEnabledFor(logging.DEBUG):
            return False
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
        record.msg = "refused a malformed request from %s: %s (%d)"
        record.args = (remote, type(refused).__name__, refused.code)
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


class _OutOfDescriptors(logging.Filter):
    """asyncio logs each accept the descriptor limit refuses as an error with a traceback, up to
    128 at once (and stops accepting for a second): a flood of connections from anyone reaching
    the port would fill the log. One warning a minute instead, naming what to raise; those
    left out are counted in the next."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._told: float | None = None
        self._untold = 0

    def filter(self, record: logging.LogRecord) -> bool:
        refused = record.exc_info[1] if record.exc_info else None
        if (
            not isinstance(refused, OSError)
            or refused.errno not in _OUT_OF_DESCRIPTORS
            # asyncio's words for a refused accept: another error (a file, an outbound
            # connection out of descriptors) keeps its own message and traceback
            or not str(record.msg).startswith("socket.accept() out of system resource")
        ):
            return True
        now = self._clock()
        if self._told is not None and now - self._told < _OUT_OF_DESCRIPTORS_EVERY:
            self._untold += 1
            return False
        record.msg = (
            "the HTTP listener is out of file descriptors (%s): it stops accepting for a second;"
            " raise the descriptor limit (LimitNOFILE, ulimit -n) or lower"
            " EXESDB_HTTP_MAX_CONNECTIONS"
        )
        record.args = (refused.strerror,)
        if self._untold:
            record.msg += " (%d more accepts refused since the last warning)"
            record.args += (self._untold,)
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        self._told, self._untold = now, 0
        return True


def configure_logging(settings: Settings) -> None:
    """Log to stderr at ``EXESDB_LOG_LEVEL`` in ``EXESDB_LOG_FORMAT``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter()
        if settings.log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in _NO_DEBUG:
        logging.getLogger(name).setLevel(max(root.level, logging.INFO))
    for name, kind in (("aiohttp.server", _MalformedRequests), ("asyncio", _OutOfDescriptors)):
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, kind)]:
            logger.removeFilter(old)
        logger.addFilter(kind())
