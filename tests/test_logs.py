"""How the bridge logs: the format, the level, and what is kept out of the log."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest
from aiohttp.http_exceptions import BadStatusLine

from bridge.logs import configure_logging
from tests.support import make_settings

_LOGGERS = ("", "aiohttp.server", "asyncio", "urllib3")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Each test configures logging afresh; the suite's own set-up comes back afterwards."""
    kept = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).filters[:])
        for name in _LOGGERS
    }
    levels = {name: logging.getLogger(name).level for name in _LOGGERS}
    yield
    for name, (handlers, filters) in kept.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.filters[:] = filters
        logger.setLevel(levels[name])


def _refused_head() -> None:
    """What aiohttp logs when it refuses a request head: a traceback quoting the bytes."""
    try:
        raise BadStatusLine("GET /?token=stolen HTTP/9")
    except BadStatusLine:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "192.0.2.7")


def test_json_lines_carry_time_level_logger_message_and_exception(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """EXESDB_LOG_FORMAT=json: one JSON object per line, ts in UTC to the millisecond with Z,
    the level in lower case, and a traceback under ``exception``."""
    configure_logging(make_settings(EXESDB_LOG_FORMAT="json"))
    logging.getLogger("bridge.test").info("hello %s", "there")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("bridge.test").exception("failed")
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert {k: first[k] for k in ("level", "logger", "message")} == {
        "level": "info",
        "logger": "bridge.test",
        "message": "hello there",
    }
    assert "exception" not in first
    assert second["level"] == "error"
    assert "ValueError: boom" in second["exception"]


def test_text_lines_below_the_level_are_left_out(capsys: pytest.CaptureFixture[str]) -> None:
    """EXESDB_LOG_LEVEL=warning: info lines are not written; warnings are, as text."""
    configure_logging(make_settings(EXESDB_LOG_LEVEL="warning"))
    logging.getLogger("bridge.test").info("quiet")
    logging.getLogger("bridge.test").warning("loud")
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith(" WARNING bridge.test: loud")


def test_a_refused_request_head_never_reaches_the_log_above_debug(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A malformed request aiohttp refuses is not logged at info (no traceback, none of the
    sender's bytes); at debug it is one line naming the refusal."""
    configure_logging(make_settings())
    _refused_head()
    assert capsys.readouterr().err == ""
    configure_logging(make_settings(EXESDB_LOG_LEVEL="debug"))
    _refused_head()
    [line] = capsys.readouterr().err.splitlines()
    assert "refused a malformed request from 192.0.2.7: BadStatusLine (400)" in line
    assert "stolen" not in line


def test_configuring_again_replaces_the_handler_and_the_filter(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Called twice, each line is still written once and the refusal filter stands once."""
    configure_logging(make_settings())
    configure_logging(make_settings())
    logging.getLogger("bridge.test").warning("once")
    assert capsys.readouterr().err.count("once") == 1
    assert len(logging.getLogger("aiohttp.server").filters) == 1


def test_urllib3_stays_at_info_when_the_bridge_logs_debug() -> None:
    """urllib3's debug lines show request lines, query strings included (an API key): even at
    EXESDB_LOG_LEVEL=debug it logs at info at most."""
    configure_logging(make_settings(EXESDB_LOG_LEVEL="debug"))
    assert logging.getLogger().isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("urllib3").isEnabledFor(logging.DEBUG)
