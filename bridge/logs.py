"""How the bridge logs: one stderr handler, text or JSON lines, nothing a stranger can flood.

``configure_logging`` sets the root logger to ``EXESDB_LOG_LEVEL`` in ``EXESDB_LOG_FORMAT``
(text: ``2030-01-01T12:00:00.123Z INFO bridge: …``; JSON: one object per line with ``ts``,
``level``, ``logger``, ``message`` and, for an error, ``exception``; the time in UTC either
way, whatever the host's zone); it may be called again (the handler and filters are replaced,
not added). When the settings themselves fail to load, ``configure_refusal_logging`` reads
``EXESDB_LOG_FORMAT`` from the raw environment, so that ``run`` reports a bad configuration in
JSON lines too.
Every record the handler writes, whichever module logged it, is shown as the bridge shows all
text (``bridge.redaction.redact_urls``, line by line): its message, exception and stack.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp.http_exceptions import HttpProcessingError

from bridge.hidden import escapes, hidden_shown
from bridge.redaction import redact_urls
from bridge.settings import Settings

__all__ = ["configure_logging", "configure_refusal_logging"]

# Libraries whose debug lines show what may hold a secret, kept at info at most: urllib3 (the
# OTLP/HTTP exporter's client) logs each request line, query string included (an API key).
_NO_DEBUG: Final = ("urllib3",)


def _utc_time(record: logging.LogRecord) -> str:
    """When ``record`` was made, in UTC to the millisecond, ending in ``Z``: as the pages, the
    CLI and the messages show a time, whatever the host's zone."""
    when = datetime.fromtimestamp(record.created, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# What a text line shows escaped (``\u202e``): what would break it, reorder what follows it on
# a terminal or be drawn as nothing, whoever chose it (a sender's node name: "evil\u202e" turned
# "silent for 90s: down" around), as the pages and the commands' tables show it
# (``bridge.hidden``); but the line break and tab of tracebacks and of the bridge's own lines.
_SHOWN_ESCAPED: Final = escapes(keep="\t\n")


class _TextFormatter(logging.Formatter):
    """``2030-01-01T12:00:00.123Z INFO bridge: message``, the time as JSON's ``ts``; a control
    character, line separator, zero-width character or bidirectional control in it shown as its
    escape (JSON lines escape them anyway)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc_time(record)

    def format(self, record: logging.LogRecord) -> str:
        return hidden_shown(super().format(record).translate(_SHOWN_ESCAPED))


class _JsonFormatter(logging.Formatter):
    """One JSON object per line; ``ts`` in UTC to the millisecond, ending in ``Z``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _utc_time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry)


class _Redacted(logging.Filter):
    """A record's message, exception text and stack as ``redact_urls`` shows text, whichever
    module logged it: an error quoting a URL with its password, a header, a ``token=…``. Each
    line is read on its own (a traceback is kept whole, a line to ``MAX_READ`` characters), and
    a record with nothing to redact (most) is left as it is, after a quick look."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format: the handler reports it as it reports any
            return True
        shown = _redacted(message)
        if shown != message:
            record.msg, record.args = shown, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _redacted(record.exc_text)
        if record.stack_info:
            record.stack_info = _redacted(record.stack_info)
        return True


# Formats a record's exception once, for _Redacted, as both formatters would.
_TRACEBACKS: Final = logging.Formatter()


def _redacted(text: str) -> str:
    """``text`` as ``redact_urls`` shows it, each of its lines read on its own."""
    if "\n" not in text:
        return redact_urls(text)
    return "\n".join(redact_urls(line) for line in text.split("\n"))


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
    """Log to stderr at ``EXESDB_LOG_LEVEL`` in ``EXESDB_LOG_FORMAT``, every record redacted."""
    _install(settings.log_format == "json", settings.log_level.upper())


def configure_refusal_logging(environ: Mapping[str, str]) -> bool:
    """For a configuration refused before any settings exist: when ``environ`` sets
    ``EXESDB_LOG_FORMAT`` to ``json`` (in any letter case, blanks around it, as the settings
    take it), log to stderr as ``configure_logging`` would in JSON, warnings and errors whatever
    ``EXESDB_LOG_LEVEL`` says, and return True; otherwise (text, unset or invalid) configure
    nothing and return False."""
    if environ.get("EXESDB_LOG_FORMAT", "").strip().lower() != "json":
        return False
    _install(True, "WARNING")
    return True


def _install(json_lines: bool, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if json_lines else _TextFormatter())
    handler.addFilter(_Redacted())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _NO_DEBUG:
        logging.getLogger(name).setLevel(max(root.level, logging.INFO))
    logger = logging.getLogger("aiohttp.server")
    for old in [f for f in logger.filters if isinstance(f, _MalformedRequests)]:
        logger.removeFilter(old)
    logger.addFilter(_MalformedRequests())
