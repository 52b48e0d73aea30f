"""Receivers resolved with the environment's defaults and EXESDB_WEBHOOK_URLS, and start-up
stopped (exit 2) by a bad receivers file, every problem named at once beside its warnings."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from bridge.config import load_settings
from bridge.errors import ConfigError
from bridge.messages import AlertSeverity
from bridge.receivers import AlertmanagerConfig, Receiver, read_receivers_file, resolve_receivers
from tests.receivers_support import write
from tests.support import run_bridge, run_in_process

pytestmark = pytest.mark.usefixtures("clean_env")


def resolved(
    urls: list[str], path: Path | None, min_severity: AlertSeverity = "error"
) -> tuple[tuple[Receiver, ...], AlertmanagerConfig | None]:
    """The receivers of ``urls`` and of the receivers file at ``path``, as a bridge resolves
    them whose EXESDB_WEBHOOK_MIN_SEVERITY is ``min_severity`` (timeout 7 s, 50 alerts a
    delivery, no EXESDB_WEBHOOK_SECRET)."""
    return resolve_receivers(
        urls,
        read_receivers_file(path) if path is not None else None,
        secret=None,
        timeout=7.0,
        max_alerts=50,
        min_severity=min_severity,
    )


def test_defaults_come_from_the_environment_and_min_severity_may_not_go_below_it(
    tmp_path: Path,
) -> None:
    """Unset per-receiver values take EXESDB_WEBHOOK_*; a min_severity under the bridge's own
    is refused (such alerts are never raised); a URL in both places is refused."""
    path = write(
        tmp_path,
        "webhook_configs:\n  - url: http://a/hook\n  - url: http://b/hook\n    max_alerts: 3\n",
    )
    receivers, _ = resolved(["http://env/hook"], path)
    assert [(r.max_alerts, r.timeout, r.min_severity) for r in receivers] == [
        (50, 7.0, "error"),
        (50, 7.0, "error"),
        (3, 7.0, "error"),
    ]
    path.write_text(
        "webhook_configs:\n  - {url: 'http://env/hook'}\n"
        "  - {url: 'http://b', min_severity: info}\n"
    )
    with pytest.raises(ConfigError) as caught:
        resolved(["http://env/hook"], path)
    assert [problem.split(": ", 1)[1] for problem in caught.value.problems] == [
        "webhook_configs.0: the same receiver as in EXESDB_WEBHOOK_URLS item 1",
        "webhook_configs.1.min_severity: info is below EXESDB_WEBHOOK_MIN_SEVERITY (error), "
        "under which no alert is raised",
    ]


def test_every_problem_of_the_receivers_file_is_reported_in_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad value in one receiver does not hide a receiver given twice, a min_severity below
    the bridge's or an Alertmanager URL given twice: every problem at once, by key."""
    path = write(
        tmp_path,
        "webhook_configs:\n"
        "  - {url: 'http://a/hook', timeout: soon}\n"
        "  - {url: 'http://env/hook'}\n"
        "  - {url: 'http://b/hook', min_severity: info}\n"
        "alertmanager: {url: 'http://am:9093'}\n",
    )
    monkeypatch.setenv("EXESDB_WEBHOOK_CONFIG_FILE", str(path))
    monkeypatch.setenv("EXESDB_WEBHOOK_URLS", "http://env/hook")
    monkeypatch.setenv("EXESDB_WEBHOOK_MIN_SEVERITY", "error")
    monkeypatch.setenv("EXESDB_ALERTMANAGER_URL", "http://other:9093")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    prefix = f"EXESDB_WEBHOOK_CONFIG_FILE: {path}: "
    assert all(problem.startswith(prefix) for problem in caught.value.problems)
    assert [problem.removeprefix(prefix).split(":")[0] for problem in caught.value.problems] == [
        "webhook_configs.0.timeout",
        "webhook_configs.1",
        "webhook_configs.2.min_severity",
        "alertmanager.url is set and so is EXESDB_ALERTMANAGER_URL; give one of them",
    ]


@pytest.mark.parametrize(
    "bad", ["send_resolve: false", "timeout: soon", "max_alerts: -1", "http_config: {colour: red}"]
)
def test_a_receiver_with_a_bad_key_is_still_held_to_the_minimum_severity(
    tmp_path: Path, bad: str
) -> None:
    """A receiver whose other key is bad has its min_severity below EXESDB_WEBHOOK_MIN_SEVERITY
    reported too, in the same pass: the one problem does not hide the other."""
    path = write(
        tmp_path,
        f"webhook_configs:\n  - url: http://a/hook\n    {bad}\n    min_severity: info\n",
    )
    with pytest.raises(ConfigError) as caught:
        resolved([], path)
    problems = [problem.split(": ", 1)[1] for problem in caught.value.problems]
    assert problems[0].startswith(f"webhook_configs.0.{bad.split(':')[0]}")
    assert problems[-1] == (
        "webhook_configs.0.min_severity: info is below EXESDB_WEBHOOK_MIN_SEVERITY (error), "
        "under which no alert is raised"
    )


def test_a_url_given_twice_to_resolve_receivers_is_a_problem_not_merged() -> None:
    """A URL twice in the list (which the settings refuse already) is a problem naming both
    items, never one receiver made of two."""
    with pytest.raises(ConfigError) as caught:
        resolved(["http://a/hook", "http://b/hook", "http://a/hook"], None)
    assert caught.value.problems == (
        "EXESDB_WEBHOOK_URLS item 3: the same receiver as EXESDB_WEBHOOK_URLS item 1",
    )


def test_a_url_given_twice_in_the_webhook_urls_stops_start_up_with_exit_2(tmp_path: Path) -> None:
    """`exesdb-bridge run` with a URL twice in EXESDB_WEBHOOK_URLS exits 2 naming the variable
    and the items, before listening, the URL's credentials unshown."""
    completed = run_bridge(
        "run",
        env={
            "EXESDB_WEBHOOK_URLS": "http://u:pw@h/hook,http://u:pw@h/hook",
            "EXESDB_HTTP_ADDR": "127.0.0.1:0",
        },
    )
    assert completed.returncode == 2
    assert "EXESDB_WEBHOOK_URLS: items 1 and 2 are the same URL" in completed.stderr
    assert "pw" not in completed.stderr


def test_a_bad_alertmanager_section_does_not_hide_a_receiver_given_twice(tmp_path: Path) -> None:
    """Receivers that are good on their own are still compared when another part is bad."""
    path = write(
        tmp_path,
        "webhook_configs:\n  - {url: 'http://a/hook'}\n  - {url: 'http://a/hook'}\n"
        "alertmanager: {url: 'ftp://am'}\n",
    )
    with pytest.raises(ConfigError) as caught:
        resolved([], path, min_severity="warning")
    assert [problem.split(": ")[1] for problem in caught.value.problems] == [
        "alertmanager.url",
        "webhook_configs.1",
    ]


def test_a_bad_receivers_file_stops_start_up_with_exit_2_naming_the_key(tmp_path: Path) -> None:
    """`exesdb-bridge run` with a bad file exits 2 and names EXESDB_WEBHOOK_CONFIG_FILE and the
    key, before listening."""
    path = write(tmp_path, "webhook_configs:\n  - url: http://h\n    sent_resolved: false\n")
    completed = run_bridge(
        "run", env={"EXESDB_WEBHOOK_CONFIG_FILE": str(path), "EXESDB_HTTP_ADDR": "127.0.0.1:0"}
    )
    assert completed.returncode == 2
    assert "EXESDB_WEBHOOK_CONFIG_FILE" in completed.stderr
    assert "webhook_configs.0.sent_resolved: unknown key" in completed.stderr


@pytest.mark.parametrize("command", ["run", "check-config"])
@pytest.mark.parametrize("written", ["warn", "WARNING"])
def test_a_misspelt_word_in_the_file_stops_start_up_naming_the_key_and_the_word_meant(
    tmp_path: Path, command: str, written: str
) -> None:
    """`run` and `check-config` with `min_severity: warn` (or `WARNING`, or a TLS version in
    lower case) in the receivers file exit 2 naming each key and the word meant, as a misspelt
    EXESDB_WEBHOOK_MIN_SEVERITY is answered: the file, unlike it, takes only the exact word."""
    path = write(
        tmp_path,
        f"webhook_configs:\n  - url: http://h/hook\n    min_severity: {written}\n"
        "    http_config: {tls_config: {min_version: tls13}}\n",
    )
    env = {"EXESDB_WEBHOOK_CONFIG_FILE": str(path), "EXESDB_HTTP_ADDR": "127.0.0.1:0"}
    run = run_bridge if command == "run" else run_in_process
    completed = run(command, env=env)
    assert completed.returncode == 2
    said = f"EXESDB_WEBHOOK_CONFIG_FILE: {path}: webhook_configs.0."
    assert [line.strip() for line in completed.stderr.splitlines()[1:3]] == [
        f"{said}http_config.tls_config.min_version: must be 'TLS10', 'TLS11', 'TLS12' or"
        " 'TLS13'; did you mean 'TLS13'? (got 'tls13')",
        f"{said}min_severity: must be 'info', 'warning', 'error' or 'critical';"
        f" did you mean 'warning'? (got {written!r})",
    ]


def test_a_number_past_its_bound_in_the_file_stops_check_config_with_exit_2(
    tmp_path: Path,
) -> None:
    """A max_alerts or timeout past what the environment's settings take (100000, 10m) stops
    `check-config` (exit 2), naming the key and its range, every one at once."""
    path = write(
        tmp_path,
        "webhook_configs:\n  - {url: http://h, max_alerts: 100001, timeout: 100000h}\n"
        "alertmanager: {timeout: 11m}\n",
    )
    completed = run_in_process("check-config", env={"EXESDB_WEBHOOK_CONFIG_FILE": str(path)})
    assert completed.returncode == 2
    problems = [line.split(": ", 2)[2] for line in completed.stderr.splitlines()[1:4]]
    assert problems == [
        "webhook_configs.0.max_alerts: must be a whole number from 0 (EXESDB_WEBHOOK_MAX_ALERTS)"
        " to 100000, e.g. 50 (got 100001)",
        "webhook_configs.0.timeout: must be a duration from 0 (EXESDB_WEBHOOK_TIMEOUT_MS) to 10m,"
        " e.g. 10s (got '100000h')",
        "alertmanager.timeout: must be a duration from 0 (EXESDB_WEBHOOK_TIMEOUT_MS) to 10m,"
        " e.g. 10s (got '11m')",
    ]


def test_an_alertmanager_url_in_both_places_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alertmanager.url and EXESDB_ALERTMANAGER_URL together: one must go."""
    monkeypatch.setenv(
        "EXESDB_WEBHOOK_CONFIG_FILE", str(write(tmp_path, "alertmanager: {url: http://a}\n"))
    )
    monkeypatch.setenv("EXESDB_ALERTMANAGER_URL", "http://b")
    with pytest.raises(ConfigError, match="give one of them"):
        load_settings()


# One receiver with a mistyped key, one that names a file missing now.
BAD_AND_UNREADABLE = """
webhook_configs:
  - url: https://bad.example.com/hook
    sent_resolved: false
  - url: https://fine.example.com/hook
    secret_file: missing-secret
"""


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_a_file_with_problems_is_also_warned_of_for_what_it_cannot_read(
    tmp_path: Path, command: str
) -> None:
    """A receivers file with problems stops `check-config` and `run` (exit 2) naming each, and
    the files its good receivers name that cannot be read now are warned of beside them, so that
    the file is mended in one go."""
    path = write(tmp_path, BAD_AND_UNREADABLE)
    env = {"EXESDB_WEBHOOK_CONFIG_FILE": str(path), "EXESDB_HTTP_ADDR": "127.0.0.1:0"}
    # run in a process of its own (it serves once it starts); check-config in this one.
    completed = (run_bridge if command == "run" else run_in_process)(command, env=env)
    assert completed.returncode == 2
    lines = completed.stderr.splitlines()
    assert lines[0] == "exesdb-bridge: bad configuration:"
    assert "webhook_configs.0.sent_resolved: unknown key" in lines[1]
    assert lines[2] == (
        "exesdb-bridge: warning: EXESDB_WEBHOOK_CONFIG_FILE webhook_configs.1"
        f" https://fine.example.com/…: secret_file {tmp_path / 'missing-secret'} cannot be read"
        " now (No such file or directory); its deliveries fail and are retried until it can be"
    )
    assert len(lines) == 3, completed.stderr


def test_a_bad_variable_beside_the_file_keeps_its_warnings(tmp_path: Path) -> None:
    """A bad value of another variable does not hide the receivers file's warnings."""
    path = write(tmp_path, BAD_AND_UNREADABLE)
    completed = run_in_process(
        "check-config", env={"EXESDB_WEBHOOK_CONFIG_FILE": str(path), "EXESDB_INGEST": "maybe"}
    )
    assert completed.returncode == 2
    assert "  EXESDB_INGEST: must be true or false" in completed.stderr
    assert "  EXESDB_WEBHOOK_CONFIG_FILE: " in completed.stderr
    last = completed.stderr.splitlines()[-1]
    assert last.startswith("exesdb-bridge: warning: EXESDB_WEBHOOK_CONFIG_FILE webhook_configs.1 ")
    assert "secret_file" in last
    assert "cannot be read now" in last


def test_a_device_given_as_the_receivers_file_is_refused_unread(tmp_path: Path) -> None:
    """A receivers file that is a device (a link to /dev/zero, say) is refused at once saying
    what it is: read whole, /dev/zero took 6 GB in 5 s (/dev/null here: a test without the
    refusal ends)."""
    path = tmp_path / "receivers.yml"
    path.symlink_to("/dev/null")
    said = f"{path}: cannot read: a character device, not a regular file"
    assert read_receivers_file(path).problems == (said,)


def test_a_receivers_file_a_shell_gives_as_a_pipe_is_read(tmp_path: Path) -> None:
    """A receivers file given as a FIFO, as a shell's <(…) gives one, is read: it is read
    once, at start, and its writer is there."""
    path = tmp_path / "receivers.yml"
    os.mkfifo(path)

    def write_once() -> None:
        with path.open("w") as pipe:  # waits for the reader
            pipe.write("webhook_configs:\n  - url: https://hooks.example/alerts\n")

    writer = threading.Thread(target=write_once, daemon=True)
    writer.start()
    read = read_receivers_file(path)
    writer.join(10)
    urls = [str(hook.url) for _, hook in read.hooks]
    assert (read.problems, urls) == ((), ["https://hooks.example/alerts"])
