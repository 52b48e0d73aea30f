"""How the bridge logs: one stderr handler, text or JSON lines, nothing a stranger can flood.

``configure_logging`` sets the root logger to ``EXESDB_LOG_LEVEL`` in ``EXESDB_LOG_FORMAT``
(JSON: one object per line with ``ts``, ``level``, ``logger``, ``message`` and, for an error,
``exception``); it may be called again (the handler and filters are replaced, not added).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp.http_exceptions import HttpProcessingError

from bridge.config import Settings

__all__ = ["configure_logging"]

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
    logger = logging.getLogger("aiohttp.server")
    for old in [f for f in logger.filters if isinstance(f, _MalformedRequests)]:
        logger.removeFilter(old)
    logger.addFilter(_MalformedRequests())
