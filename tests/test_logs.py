"""How the bridge logs: the format, the level, and what is kept out of the log."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from aiohttp.http_exceptions import BadStatusLine

from bridge.hidden import HIDDEN_CHARACTERS
from bridge.logs import configure_logging
from bridge.sinks.alerts.outbox import FILE_NAME
from tests.support import TEST_SECRET, make_settings, run_bridge, run_command

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


# Formats one record made at 2026-12-03T12:50:50.191Z as `run` would in text, in a process
# whose local zone is the TZ it is given; prints the zone's offset first, to show it is in force.
_TEXT_LINE_AT: Final = """
import logging, time
from bridge.hidden import HIDDEN_CHARACTERS
from bridge.logs import configure_logging
from bridge.settings import Settings

configure_logging(Settings())
record = logging.makeLogRecord(
    {"name": "bridge", "levelno": logging.INFO, "levelname": "INFO", "msg": "stopped"}
)
record.created, record.msecs = 1796302250.191, 191.0
print(time.strftime("%z"))
print(logging.getLogger().handlers[0].format(record))
"""


def test_text_lines_carry_the_time_in_utc_whatever_the_hosts_zone() -> None:
    """EXESDB_LOG_FORMAT=text on a host in New York: the time is UTC in ISO 8601 to the
    millisecond with Z, as JSON's ts and the pages show it, not the local time without a zone."""
    completed = run_command([sys.executable, "-c", _TEXT_LINE_AT], {"TZ": "America/New_York"})
    assert completed.returncode == 0, completed.stderr
    offset, line = completed.stdout.splitlines()
    assert offset == "-0500"
    assert line == "2026-12-03T12:50:50.191Z INFO bridge: stopped"


def test_a_text_line_shows_what_would_break_or_reorder_it_escaped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A sender's node name holding a right-to-left override, a line separator or an ESC is
    written escaped in a text line, so it neither turns the rest of the line around nor breaks
    it on a terminal; a traceback keeps its line breaks, and JSON lines escape them anyway."""
    node = "evil\u202eTSOH@node\u2028x\x1b[2J\u2067"
    configure_logging(make_settings())
    logging.getLogger("bridge.cluster").warning("node %s silent for 90.9s: down", node)
    try:
        raise ValueError(node)
    except ValueError:
        logging.getLogger("bridge.test").exception("failed")
    err = capsys.readouterr().err
    assert err.splitlines()[0].endswith(
        " WARNING bridge.cluster: node evil\\u202eTSOH@node\\u2028x\\u001b[2J\\u2067 silent for"
        " 90.9s: down"
    )
    assert "Traceback (most recent call last):\n" in err
    assert err.rstrip("\n").endswith("ValueError: evil\\u202eTSOH@node\\u2028x\\u001b[2J\\u2067")
    assert not {"\u202e", "\u2028", "\x1b", "\u2067"} & set(err)
    configure_logging(make_settings(EXESDB_LOG_FORMAT="json"))
    logging.getLogger("bridge.cluster").warning("node %s", node)
    line = capsys.readouterr().err
    assert json.loads(line)["message"] == f"node {node}"
    assert not {"\u202e", "\u2028", "\x1b", "\u2067"} & set(line)


def test_a_text_line_shows_every_hidden_character_escaped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every zero-width character and bidirectional control of HIDDEN_CHARACTERS (read from the
    class itself) in a sender's node name is written as its escape in a text line, as the pages
    and the commands' tables show it, so that ``node-1`` with a U+200B after it is not drawn as
    ``node-1``; a JSON line escapes each too."""
    hidden = [chr(c) for c in range(0x10000) if re.fullmatch(f"[{HIDDEN_CHARACTERS}]", chr(c))]
    assert {"\u200b", "\u2060", "\ufeff", "\u202e"} <= set(hidden)
    node = "node-1" + "".join(hidden)
    escaped = "node-1" + "".join(f"\\u{ord(character):04x}" for character in hidden)
    configure_logging(make_settings())
    logging.getLogger("bridge.cluster").warning("node %s silent", node)
    line = capsys.readouterr().err
    assert line.endswith(f" WARNING bridge.cluster: node {escaped} silent\n")
    configure_logging(make_settings(EXESDB_LOG_FORMAT="json"))
    logging.getLogger("bridge.cluster").warning("node %s silent", node)
    line = capsys.readouterr().err
    assert json.loads(line)["message"] == f"node {node} silent"
    assert not set(hidden) & set(line)


def test_a_text_line_shows_a_filler_and_tags_escaped_and_keeps_an_emoji(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An alert title holding a Hangul filler (U+3164) and tags (U+E0041) is written with each
    as its escape in a text line, and a joined emoji in it (U+1F469 U+200D U+1F4BB) whole."""
    emoji = "\U0001f469\u200d\U0001f4bb"
    configure_logging(make_settings())
    logging.getLogger("bridge.sinks").warning("alert %s", f"\u3164 {emoji}\U000e0041")
    line = capsys.readouterr().err
    assert line.endswith(f" WARNING bridge.sinks: alert \\u3164 {emoji}\\U000e0041\n")


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


def _failed_delivery() -> None:
    """What any module may log: an exception whose text quotes a URL with its password."""
    try:
        raise ConnectionError("cannot reach https://alice:hunter2@hooks.example/hook-t0k3n")
    except ConnectionError:
        logging.getLogger("bridge.somewhere").exception("delivery failed")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_every_record_is_written_with_its_secrets_redacted(
    capsys: pytest.CaptureFixture[str], log_format: str
) -> None:
    """Whichever module logs it, a record's message and exception text are written as the
    bridge shows all text: an Authorization header's credentials, a secret pair's value and a
    URL's password and path redacted, the traceback otherwise whole."""
    configure_logging(make_settings(EXESDB_LOG_FORMAT=log_format))
    logging.getLogger("somewhere.else").warning(
        "refused %s (sent %r)", "GET /v1?api_key=k3y-abc", "Authorization: Bearer abc123"
    )
    _failed_delivery()
    err = capsys.readouterr().err
    for secret in ("k3y-abc", "abc123", "hunter2", "t0k3n"):
        assert secret not in err
    if log_format == "json":
        first, second = (json.loads(line) for line in err.splitlines())
        message, exception = first["message"], second["exception"]
    else:
        message, exception = err.split("\n", 1)
    assert message.endswith(
        "refused GET /v1?api_key=<redacted> (sent 'Authorization: Bearer <redacted>')"
    )
    assert exception.count("https://alice:<redacted>@hooks.example/…") == 2  # source and error
    assert "Traceback (most recent call last):" in exception
    assert "in _failed_delivery" in exception


def test_a_records_stack_is_written_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    """A record logged with its stack (``stack_info=True``) has the stack's source lines
    redacted as its message is."""
    configure_logging(make_settings())
    logging.getLogger("bridge.test").warning("here", stack_info=True)  # token=abc123
    err = capsys.readouterr().err
    assert "Stack (most recent call last):" in err
    assert "# token=<redacted>" in err
    assert "abc123" not in err


def test_a_record_with_nothing_to_redact_is_written_as_logged(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A record holding no secret keeps its message and arguments: a node's name, a partition
    key and "the bearer of" read as they were written."""
    configure_logging(make_settings())
    record = logging.LogRecord(
        "bridge.test", logging.WARNING, __file__, 1, "node %s: %s", ("node:ex_esdb@host", "x"), None
    )
    logging.getLogger("bridge.test").handle(record)
    assert record.args == ("node:ex_esdb@host", "x")
    logging.getLogger("bridge.test").warning("partition key=7, for the bearer of news")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith(": node node:ex_esdb@host: x")
    assert lines[1].endswith(": partition key=7, for the bearer of news")


def test_a_url_before_a_colon_is_written_as_the_bridge_logged_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The bridge's own lines that name a URL and then say what befell it (the Alertmanager
    poster's, the Redis link's) are written with the URL whole and the colon after it."""
    configure_logging(make_settings())
    logger = logging.getLogger("bridge.test")
    logger.warning("cannot post to Alertmanager %s: %s", "http://alertmanager:9093", "HTTP 500")
    logger.warning("Redis at %s: %s", "redis://redis:6379", "Connection refused")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith(": cannot post to Alertmanager http://alertmanager:9093: HTTP 500")
    assert lines[1].endswith(": Redis at redis://redis:6379: Connection refused")


def test_a_record_that_cannot_be_formatted_is_reported_not_raised(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A log call whose arguments do not fit its format is reported by logging as it always
    is (``--- Logging error ---``), not raised by the redaction into the caller."""
    configure_logging(make_settings())
    logging.getLogger("bridge.test").warning("%d items", "many")
    assert "--- Logging error ---" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("a path through a file", "EXESDB_STATE_DIR: '"),
        ("an outbox file unopenable", "cannot open the alert outbox '"),
    ],
)
def test_exesdb_bridge_run_writes_a_secret_in_an_error_redacted(
    tmp_path: Path, fault: str, said: str
) -> None:
    """``exesdb-bridge run``'s own output goes through the redaction: an EXESDB_STATE_DIR it
    refuses (a path through a file) or cannot open the outbox in (its file a directory), quoted
    in the error, shows no ``token=`` value."""
    (tmp_path / "a-file").write_text("")
    if fault == "a path through a file":
        state = tmp_path / "a-file" / "token=hunter2"
    else:
        state = tmp_path / "token=hunter2"
        (state / FILE_NAME).mkdir(parents=True)
    completed = run_bridge(
        "run",
        env={
            "SECRET_KEY_BASE": TEST_SECRET,
            "EXESDB_HTTP_ADDR": "127.0.0.1:0",
            "EXESDB_STATE_DIR": str(state),
        },
        cwd=tmp_path,
    )
    assert completed.returncode == 2
    assert "hunter2" not in completed.stderr
    assert said in completed.stderr
    assert "token=<redacted>" in completed.stderr
