"""The ``outbox`` command's list and the outbox file as ``run`` and ``outbox`` open it
(``bridge.cli.outbox``)."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import pytest

from bridge.sinks.alerts import DeliveryState, Outbox
from bridge.sinks.alerts.outbox import FILE_NAME
from tests.cli.helpers import cli, cli_process, start_bridge_process
from tests.sinks.alerts.helpers import T0, event, observe, one_each
from tests.support import ROOT, BridgeProcess, run_command, wait_until


def test_outbox_on_a_file_that_is_no_outbox_says_so_without_a_traceback(tmp_path: Path) -> None:
    """An alerts.sqlite3 that is no SQLite database is named with the system's words and the
    variable to check, in one line, exit 1, as `run` names it (not a traceback)."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "alerts.sqlite3").write_text("not a database\n")
    listed = cli("outbox", "list", EXESDB_STATE_DIR=str(state))
    assert listed.returncode == 1
    assert listed.stderr == (
        f"exesdb-bridge: cannot open the alert outbox at {state / 'alerts.sqlite3'}: file is not"
        f" a database; set EXESDB_STATE_DIR to the bridge's state directory (now '{state}'), or,"
        " if it is that, move the file out of the way (the bridge refuses it too)\n"
    )


@pytest.mark.parametrize(
    ("command", "status", "said"),
    [
        (
            "outbox list",
            1,
            "exesdb-bridge: cannot open the alert outbox at {path}: file is an SQLite database of"
            " another program's (its tables: 'x'), not an alert outbox; set EXESDB_STATE_DIR to"
            " the bridge's state directory (now '{state}'), or, if it is that, move the file out"
            " of the way (the bridge refuses it too)\n",
        ),
        (
            "outbox retry --all",
            1,
            "exesdb-bridge: cannot open the alert outbox at {path}: file is an SQLite database of"
            " another program's (its tables: 'x'), not an alert outbox; set EXESDB_STATE_DIR to"
            " the bridge's state directory (now '{state}'), or, if it is that, move the file out"
            " of the way (the bridge refuses it too)\n",
        ),
        (
            "run",
            2,
            " ERROR bridge: EXESDB_STATE_DIR: cannot open the alert outbox in '{state}': file is"
            " an SQLite database of another program's (its tables: 'x'), not an alert outbox;"
            " move alerts.sqlite3 out of the way (the bridge then makes a new outbox there), or"
            " give a directory of the bridge's own\n",
        ),
    ],
)
def test_an_sqlite_file_of_another_program_s_is_refused_not_made_an_outbox(
    tmp_path: Path, command: str, status: int, said: str
) -> None:
    """An alerts.sqlite3 that is an SQLite database of another program's is refused as one
    that is no database at all is, on one line (exit 1; exit 2 at start), and left unwritten:
    no "no deliveries" over the outbox's tables made in it."""
    state = tmp_path / "state"
    state.mkdir()
    path = state / "alerts.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE x (a)")
    db.commit()
    db.close()
    before = path.read_bytes()
    completed = cli(*command.split(), EXESDB_STATE_DIR=str(state), EXESDB_HTTP_ADDR="127.0.0.1:0")
    assert completed.returncode == status, completed.stderr
    assert completed.stdout == ""
    assert completed.stderr.endswith(said.format(path=path, state=state)), completed.stderr
    assert "Traceback" not in completed.stderr
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("command", "status", "said"),
    [
        (
            "outbox list",
            1,
            "exesdb-bridge: cannot open the alert outbox at {path}: file is not a database; set"
            " EXESDB_STATE_DIR to the bridge's state directory (now '{state}'), or, if it is"
            " that, move the file out of the way (the bridge refuses it too)\n",
        ),
        (
            "run",
            2,
            " ERROR bridge: EXESDB_STATE_DIR: cannot open the alert outbox in '{state}': file is"
            " not a database; move alerts.sqlite3 out of the way (the bridge then makes a new"
            " outbox there), or give a directory of the bridge's own\n",
        ),
    ],
)
def test_a_one_byte_file_is_refused_not_written_over_by_a_new_outbox(
    tmp_path: Path, command: str, status: int, said: str
) -> None:
    """An alerts.sqlite3 of one byte, which SQLite takes for an empty database, is refused as
    any file that is no database is (exit 1; exit 2 at start), and left as it is."""
    state = tmp_path / "state"
    state.mkdir()
    path = state / "alerts.sqlite3"
    path.write_bytes(b"\n")
    completed = cli(*command.split(), EXESDB_STATE_DIR=str(state), EXESDB_HTTP_ADDR="127.0.0.1:0")
    assert completed.returncode == status, completed.stderr
    assert completed.stdout == ""
    assert completed.stderr.endswith(said.format(path=path, state=state)), completed.stderr
    assert path.read_bytes() == b"\n"


def test_outbox_without_an_outbox_points_at_the_demos_when_there_is_one(tmp_path: Path) -> None:
    """Run where `run --demo` left its outbox and no other, `outbox list` says where the demo's
    is and how to read it; with EXESDB_STATE_DIR set, it does not."""
    demo = tmp_path / ".exesdb-bridge-demo"
    demo.mkdir()
    Outbox(demo / "alerts.sqlite3").close()
    listed = cli("outbox", "list", cwd=tmp_path)
    assert listed.returncode == 1
    assert listed.stderr.rstrip().endswith(
        "; `run --demo` keeps its own in ./.exesdb-bridge-demo:"
        " set EXESDB_STATE_DIR=./.exesdb-bridge-demo"
    ), listed.stderr
    assert cli("outbox", "list", cwd=tmp_path, EXESDB_STATE_DIR=str(demo)).returncode == 0
    elsewhere = cli("outbox", "list", cwd=tmp_path, EXESDB_STATE_DIR=str(tmp_path / "other"))
    assert elsewhere.returncode == 1
    assert "--demo" not in elsewhere.stderr


def test_outbox_without_an_outbox_names_the_whole_path_and_the_variable(tmp_path: Path) -> None:
    """Run where the default state directory is not, `outbox list` names the absolute path it
    looked at and EXESDB_STATE_DIR, the folder as the default it is, unset (exit 1); `outbox
    retry` with nothing to retry, or an empty id ("$ID" unset), is a usage error (exit 2)
    wherever it runs."""
    listed = cli("outbox", "list", cwd=tmp_path)
    assert listed.returncode == 1
    where = tmp_path / ".exesdb-bridge" / "alerts.sqlite3"
    assert listed.stderr == (
        f"exesdb-bridge: no alert outbox at {where}: set EXESDB_STATE_DIR to the bridge's state"
        " directory (unset, so the default './.exesdb-bridge', which does not exist)\n"
    )
    given = cli("outbox", "list", cwd=tmp_path, EXESDB_STATE_DIR="./.exesdb-bridge")
    assert given.stderr.endswith(
        " state directory (now './.exesdb-bridge', which does not exist)\n"
    ), given.stderr
    (tmp_path / ".exesdb-bridge").mkdir()
    empty_folder = cli("outbox", "list", cwd=tmp_path, EXESDB_STATE_DIR="./.exesdb-bridge")
    assert empty_folder.stderr.endswith(" state directory (now './.exesdb-bridge')\n")
    retried = cli("outbox", "retry", cwd=tmp_path)
    assert retried.returncode == 2
    assert retried.stderr.startswith("usage: exesdb-bridge outbox retry ")
    assert retried.stderr.endswith(
        "exesdb-bridge outbox retry: error: give delivery ids (ID ...) or --all\n"
    )
    empty = cli("outbox", "retry", "", cwd=tmp_path)
    assert empty.returncode == 2
    assert "argument ID: '' names no delivery" in empty.stderr, empty.stderr


def test_outbox_given_a_file_for_its_folder_says_so(tmp_path: Path) -> None:
    """EXESDB_STATE_DIR naming the outbox file itself (`…/alerts.sqlite3`, the file `outbox
    list` names) is told so with the setting meant, its folder; naming another file, that it
    is a file, not a folder (exit 1)."""
    state = tmp_path / "state"
    state.mkdir()
    Outbox(state / "alerts.sqlite3").close()
    itself = cli("outbox", "list", EXESDB_STATE_DIR=str(state / "alerts.sqlite3"))
    assert itself.returncode == 1
    assert itself.stderr == (
        f"exesdb-bridge: no alert outbox at {state}/alerts.sqlite3/alerts.sqlite3:"
        f" EXESDB_STATE_DIR names the outbox file itself (now '{state}/alerts.sqlite3'): set it"
        f" to the folder holding it, EXESDB_STATE_DIR={state}\n"
    )
    assert cli("outbox", "list", EXESDB_STATE_DIR=str(state)).returncode == 0
    (tmp_path / "notes.txt").write_text("not a folder\n")
    a_file = cli("outbox", "list", EXESDB_STATE_DIR=str(tmp_path / "notes.txt"))
    assert a_file.returncode == 1
    assert a_file.stderr.endswith(
        f"state directory (now '{tmp_path}/notes.txt', a file, not a folder)\n"
    ), a_file.stderr


def test_run_names_its_outbox_by_the_whole_path(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """The start-up line names the outbox file by its absolute path, since the default state
    directory is relative to the folder the bridge started in."""
    process = start_bridge_process(bridge_processes, tmp_path, EXESDB_STATE_DIR=".state")
    where = tmp_path / ".state" / "alerts.sqlite3"
    wait_until(lambda: "dead-lettered" in process.log(), 15, "the outbox line")
    assert f"outbox {where}: 0 pending, 0 dead-lettered" in process.log()


def test_run_says_how_to_see_and_resend_the_dead_letters_it_finds(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """Dead letters in the outbox at start are counted on the start-up line with the commands
    that list and resend them, each of which runs as given: nothing else would tell an operator
    they wait."""
    url = "https://hooks.example/x"
    outbox = Outbox.in_dir(tmp_path / "state", urls=[url])
    observe(outbox, event("a"), T0)
    outbox.queue.group(url, T0, 0.0, one_each)
    [dead] = outbox.queue.deliveries()
    outbox.queue.finish_attempt(
        dead.id, state=DeliveryState.DEAD, next_attempt_at=T0, status=400, error="HTTP 400", now=T0
    )
    outbox.close()
    process = start_bridge_process(bridge_processes, tmp_path, EXESDB_WEBHOOK_URLS=url)
    wait_until(lambda: "dead-lettered" in process.log(), 15, "the outbox line")
    assert (
        ": 0 pending, 1 dead-lettered (`exesdb-bridge outbox list --state dead` lists them,"
        " `exesdb-bridge outbox retry --all` sends them again)"
    ) in process.log()
    [line] = [line for line in process.log().splitlines() if "dead-lettered (" in line]
    for command in re.findall(r"`exesdb-bridge ([^`]+)`", line):
        ran = cli(*command.split(), EXESDB_STATE_DIR=str(tmp_path / "state"))
        assert ran.returncode == 0, (command, ran.stderr)


_OLD_HOOK: Final = "https://hooks.example/old"


_NEW_HOOK: Final = "https://hooks.example/new"
# The start-up line's command dropping _OLD_HOOK's dead letters: its key, the URL itself, shown
# as a key from before receiver keys is (no digest: the bridge moves those of receivers it runs).
_DROP_OLD: Final = "outbox drop --receiver 'https://hooks.example/…'"


@pytest.mark.parametrize(
    ("dead_for", "urls", "said", "exits"),
    [
        (
            [_OLD_HOOK],
            _NEW_HOOK,
            "1 dead-lettered (`exesdb-bridge outbox list --state dead` lists them; their"
            " receivers are not configured now, so none can be sent again until they are; if"
            " not to be configured again, `exesdb-bridge outbox drop --receiver"
            " 'https://hooks.example/…'` deletes them)",
            {"outbox list --state dead": 0, _DROP_OLD: 0},
        ),
        (
            [_OLD_HOOK],
            f"{_NEW_HOOK},{_OLD_HOOK}",
            "1 dead-lettered (`exesdb-bridge outbox list --state dead` lists them,"
            " `exesdb-bridge outbox retry --all` sends them again)",
            {"outbox list --state dead": 0, "outbox retry --all": 0},
        ),
        (
            [_OLD_HOOK, _NEW_HOOK],
            _NEW_HOOK,
            "2 dead-lettered (`exesdb-bridge outbox list --state dead` lists them,"
            " `exesdb-bridge outbox retry --all` sends again the 1 whose receivers are"
            " configured; 1 for receivers not configured now wait until they are; if not to be"
            " configured again, `exesdb-bridge outbox drop --receiver 'https://hooks.example/…'`"
            " deletes them)",
            # retry --all names the one it leaves, exit 1, as docs/cli.md says.
            {"outbox list --state dead": 0, "outbox retry --all": 1, _DROP_OLD: 0},
        ),
    ],
)
def test_run_offers_to_resend_only_dead_letters_whose_receiver_is_configured(
    bridge_processes: list[BridgeProcess],
    tmp_path: Path,
    dead_for: list[str],
    urls: str,
    said: str,
    exits: dict[str, int],
) -> None:
    """Dead letters at start for a receiver no longer configured (its URL mistyped, then
    corrected) are not offered to `outbox retry --all`, which leaves them: the start-up line
    says their receivers are not configured, offers to drop theirs by receiver key (never the
    configured one's, at the same origin), and each command it names does what it says."""
    for number, url in enumerate(dead_for):  # an alert sent to that receiver alone, refused
        outbox = Outbox.in_dir(tmp_path / "state", urls=[url])
        observe(outbox, event(f"a{number}"), T0)
        outbox.queue.group(url, T0, 0.0, one_each)
        [dead] = outbox.queue.deliveries(DeliveryState.PENDING.value)
        outbox.queue.finish_attempt(
            dead.id, state=DeliveryState.DEAD, next_attempt_at=T0, status=400, error="x", now=T0
        )
        outbox.close()
    process = start_bridge_process(bridge_processes, tmp_path, EXESDB_WEBHOOK_URLS=urls)
    wait_until(lambda: "dead-lettered" in process.log(), 15, "the outbox line")
    [line] = [line for line in process.log().splitlines() if "dead-lettered (" in line]
    assert line.endswith(f": 0 pending, {said}"), line
    ran = {
        command: cli(*shlex.split(command), EXESDB_STATE_DIR=str(tmp_path / "state")).returncode
        for command in re.findall(r"`exesdb-bridge ([^`]+)`", line)
    }
    assert ran == exits
    # Only the receiver named: the configured one's delivery, at the same origin, stays.
    outbox = Outbox(tmp_path / "state" / FILE_NAME)
    left = {d.url == _OLD_HOOK for d in outbox.queue.deliveries()}
    outbox.close()
    assert left == ({False} if _NEW_HOOK in dead_for else set()) if _DROP_OLD in ran else {True}


# This Python's SQLite as RHEL 9's (3.34.1), older than the outbox's queries need.
_OLD_SQLITE: Final = """
import sqlite3, sys
sqlite3.sqlite_version_info, sqlite3.sqlite_version = (3, 34, 1), "3.34.1"
from bridge.cli.parser import main
sys.exit(main(sys.argv[1:]))
"""


# This Python's SQLite as one built without the JSON functions: each connection refuses them.
_SQLITE_WITHOUT_JSON: Final = """
import sqlite3, sys
connect = sqlite3.connect
def refused(action, arg1, arg2, *rest):
    json = action == sqlite3.SQLITE_FUNCTION and (arg2 or "").startswith("json")
    return sqlite3.SQLITE_DENY if json else sqlite3.SQLITE_OK
def without_json(*args, **kwargs):
    db = connect(*args, **kwargs)
    db.set_authorizer(refused)
    return db
sqlite3.connect = without_json
from bridge.cli.parser import main
sys.exit(main(sys.argv[1:]))
"""


# The three commands that open the outbox, the status each exits with when it cannot, and the
# words its refusal begins with.
EACH_OUTBOX_OPENER: Final = pytest.mark.parametrize(
    ("command", "status", "begins"),
    [
        ("run", 2, " ERROR bridge: cannot open the alert outbox: "),
        ("check-config", 2, "exesdb-bridge: bad configuration:\n  cannot open the alert outbox: "),
        ("outbox list", 1, "exesdb-bridge: cannot open the alert outbox: "),
    ],
)


@EACH_OUTBOX_OPENER
def test_an_sqlite_too_old_for_the_outbox_is_named_with_the_version_needed(
    tmp_path: Path, command: str, status: int, begins: str
) -> None:
    """On a Python whose SQLite is older than 3.35 (RHEL 9's), the bridge stops at start,
    check-config says so (exit 2) and the outbox command fails, each saying which SQLite it has
    and which it needs, not blaming EXESDB_STATE_DIR, rather than failing at a query later; the
    outbox file is left as it is."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "alerts.sqlite3").write_bytes(b"")  # as a bridge leaves it at its first open
    done = run_command(
        [sys.executable, "-c", _OLD_SQLITE, *command.split()],
        {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(state)},
    )
    output = done.stdout + done.stderr
    assert done.returncode == status, output
    assert f"{begins}this Python's SQLite is 3.34.1; the outbox needs 3.35.0 or newer" in output
    assert "Traceback" not in output
    assert (state / "alerts.sqlite3").read_bytes() == b""


@EACH_OUTBOX_OPENER
def test_an_sqlite_without_json_functions_is_named_at_start(
    tmp_path: Path, command: str, status: int, begins: str
) -> None:
    """On a Python whose SQLite has no JSON functions (built without them), the bridge stops at
    start, check-config says so (exit 2) and the outbox command fails, each naming what SQLite
    lacks, rather than failing at the outbox's first query of them; the outbox file is left as
    it is."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "alerts.sqlite3").write_bytes(b"")  # as a bridge leaves it at its first open
    done = run_command(
        [sys.executable, "-c", _SQLITE_WITHOUT_JSON, *command.split()],
        {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(state)},
        timeout=20,
    )
    output = done.stdout + done.stderr
    assert done.returncode == status, output
    found = f"this Python's SQLite ({sqlite3.sqlite_version}) has no JSON functions"
    assert f"{begins}{found}" in output
    assert "Traceback" not in output
    assert (state / "alerts.sqlite3").read_bytes() == b""


def test_outbox_list_redacts_webhook_urls(tmp_path: Path) -> None:
    """`outbox list` shows webhook URLs by origin: credentials, path and query may be tokens."""
    from bridge.sinks.alerts import Outbox

    secret_url = "https://user:hunter2@hooks.example/services/x?token=s3cr3t"
    outbox = Outbox.in_dir(tmp_path, urls=[secret_url])
    observe(outbox, event("a1", requires_ack=False, at=datetime.now(UTC)), now=1.0)
    # One delivery of the queued alert, to the secret URL.
    assert outbox.queue.group(secret_url, 1.0, 0.0, lambda alerts: [(b"{}", ["a1"])]) == 1
    outbox.close()
    for extra in ([], ["--json"]):
        result = cli("outbox", "list", *extra, EXESDB_STATE_DIR=str(tmp_path))
        assert result.returncode == 0, result.stderr
        shown = result.stdout.replace("\\u2026", "…")  # JSON escapes the ellipsis
        assert "https://user:<redacted>@hooks.example/…" in shown
        assert "services" not in result.stdout  # a path may hold a token (Slack-style)
        assert "hunter2" not in result.stdout
        assert "s3cr3t" not in result.stdout


def test_outbox_list_names_its_columns_by_the_keys_of_its_json(tmp_path: Path) -> None:
    """Each column of `outbox list` is named by its `--json` key in upper case and shows that
    key's value, so the id under ID is the one `--json` gives as `id` and `outbox retry` takes."""
    _outbox_of(tmp_path, 2)
    table = cli("outbox", "list", EXESDB_STATE_DIR=str(tmp_path))
    as_json = cli("outbox", "list", "--json", EXESDB_STATE_DIR=str(tmp_path))
    assert (table.returncode, as_json.returncode) == (0, 0), table.stderr + as_json.stderr
    header, *rows = table.stdout.splitlines()
    keys = [column.lower() for column in header.split()]
    deliveries = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert keys[0] == "id"
    assert all(set(keys) <= delivery.keys() for delivery in deliveries), keys
    # Every column but the last (a free-text error) is one word: compare them all.
    shown = [row.split()[: len(keys) - 1] for row in rows]
    expected = [[str(delivery[key]) for key in keys[:-1]] for delivery in deliveries]
    assert shown == expected


def test_outbox_list_json_is_a_line_per_delivery_as_the_cli_page_says(tmp_path: Path) -> None:
    """`outbox list --json` prints one JSON object per delivery, a line each, as docs/cli.md
    says (a script reading it as one document, as `alerts list --json` is, would fail)."""
    _outbox_of(tmp_path, 2)
    as_json = cli("outbox", "list", "--json", EXESDB_STATE_DIR=str(tmp_path))
    assert as_json.returncode == 0, as_json.stderr
    lines = as_json.stdout.splitlines()
    assert len(lines) == 2
    assert all(isinstance(json.loads(line), dict) for line in lines)
    said = " ".join((ROOT / "docs" / "cli.md").read_text().split())
    assert "`--json` prints one JSON object per delivery, a line each (JSON lines" in said


def test_outbox_list_shows_a_time_past_the_year_9999_as_its_last_instant(tmp_path: Path) -> None:
    """`outbox list` of an outbox hand-edited to times past the year 9999 (or before the year 1;
    a next attempt so only around the triggers that refuse it, or from before them) shows them
    as the nearest instant a time can be, in the table and in --json, not a traceback."""
    _outbox_of(tmp_path, 1)
    with contextlib.closing(sqlite3.connect(tmp_path / "alerts.sqlite3")) as db, db:
        db.execute("DROP TRIGGER next_attempt_changed")
        db.execute("UPDATE deliveries SET created_at = 1e12, next_attempt_at = -1e12")
    table = cli("outbox", "list", EXESDB_STATE_DIR=str(tmp_path))
    as_json = cli("outbox", "list", "--json", EXESDB_STATE_DIR=str(tmp_path))
    assert (table.returncode, as_json.returncode) == (0, 0), table.stderr + as_json.stderr
    assert "9999-12-31T23:59:59.999Z" in table.stdout
    [delivery] = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert (delivery["created_at"], delivery["next_attempt_at"]) == (
        "9999-12-31T23:59:59.999Z",
        "0001-01-01T00:00:00.000Z",
    )


def _outbox_of(state_dir: Path, count: int) -> None:
    """An outbox in ``state_dir`` with ``count`` deliveries, one alert each, one after another."""
    from bridge.sinks.alerts import AlertEvent, Outbox

    url = "https://hooks.example/"
    outbox = Outbox.in_dir(state_dir, urls=[url])
    for n in range(count):
        alert = AlertEvent(
            alert_id=f"a{n}",
            alertname="node_failure",
            status="firing",
            severity="critical",
            category="system",
            node=f"n{n}",
            title=f"n{n} is down",
            description="stopped answering",
            requires_ack=False,
            at=datetime.now(UTC),
        )
        observe(outbox, alert, now=1.0 + n)
        assert outbox.queue.group(url, 1.0 + n, 0.0, lambda a: [(b"{}", [a[0].alert_id])]) == 1
    outbox.close()


def test_outbox_list_limit_0_lists_every_delivery_as_alerts_list_does(tmp_path: Path) -> None:
    """`outbox list --limit N` lists the N newest deliveries, and --limit 0 every one, as
    `alerts list --limit 0` lists every alert (with --json too)."""
    _outbox_of(tmp_path, 3)
    for extra, rows in (([], 1), (["--json"], 0)):  # the table has a header line
        listed = {}
        for limit in ("2", "0"):
            result = cli("outbox", "list", "--limit", limit, *extra, EXESDB_STATE_DIR=str(tmp_path))
            assert result.returncode == 0, result.stderr
            listed[limit] = len(result.stdout.splitlines()) - rows
        assert listed == {"2": 2, "0": 3}, extra


def test_outbox_list_of_an_empty_outbox_names_the_file_it_read(tmp_path: Path) -> None:
    """An outbox with no deliveries is said to be empty by its whole path, so a user whose bridge
    runs with another EXESDB_STATE_DIR (its status page showing deliveries waiting) sees that
    the command read another folder's outbox, not that the bridge has none."""
    Outbox.in_dir(tmp_path, urls=["https://hooks.example/"]).close()
    listed = cli("outbox", "list", EXESDB_STATE_DIR=str(tmp_path))
    assert (listed.returncode, listed.stdout) == (0, "")
    assert listed.stderr == (
        f"exesdb-bridge: no deliveries in the alert outbox at {tmp_path / 'alerts.sqlite3'}\n"
    )


def test_outbox_list_says_on_stderr_how_many_its_limit_left_out_as_alerts_list_does(
    tmp_path: Path,
) -> None:
    """`outbox list --limit N` below the outbox's count says on stderr how many deliveries of how
    many it left out, in `alerts list`'s words, with --json too (stdout stays JSON lines); a
    limit that lists every one, --limit 0 and the default say nothing."""
    _outbox_of(tmp_path, 3)
    for extra in ([], ["--json"]):
        two = cli("outbox", "list", "--limit", "2", *extra, EXESDB_STATE_DIR=str(tmp_path))
        assert two.returncode == 0, two.stderr
        assert two.stderr == (
            "exesdb-bridge: 1 of 3 deliveries not shown, the 2 newest listed: --limit 0 lists all\n"
        )
        if extra:
            assert [json.loads(line)["alerts"] for line in two.stdout.splitlines()] == [1, 1]
        for every in (["--limit", "3"], ["--limit", "0"], []):
            listed = cli("outbox", "list", *every, *extra, EXESDB_STATE_DIR=str(tmp_path))
            assert (listed.returncode, listed.stderr) == (0, ""), every
    dead = cli("outbox", "list", "--state", "dead", "--limit", "1", EXESDB_STATE_DIR=str(tmp_path))
    assert (dead.returncode, dead.stderr) == (
        0,
        f"exesdb-bridge: no dead deliveries in the alert outbox at {tmp_path / 'alerts.sqlite3'}\n",
    )


def test_outbox_list_says_on_stderr_how_many_notifications_wait_to_be_grouped(
    tmp_path: Path,
) -> None:
    """A notification in its grouping window (the bridge killed within it) is no delivery yet:
    `outbox list` (and `--state pending`, `--json`) says on stderr that it waits, unlisted,
    where the bridge's start counts it pending; `--state dead` does not."""
    from bridge.sinks.alerts import Outbox

    outbox = Outbox.in_dir(tmp_path, urls=["https://hooks.example/"])
    observe(outbox, event("a1", requires_ack=False, at=datetime.now(UTC)), now=1.0)
    outbox.close()
    said = (
        "exesdb-bridge: 1 alert notification(s) not yet in a delivery, not listed: waiting out"
        " the grouping window (EXESDB_WEBHOOK_GROUP_WAIT_MS), they are sent by the bridge that"
        " runs on this EXESDB_STATE_DIR\n"
    )
    for extra in ([], ["--state", "pending"], ["--json"]):
        listed = cli("outbox", "list", *extra, EXESDB_STATE_DIR=str(tmp_path))
        assert listed.returncode == 0, listed.stderr
        assert listed.stderr.endswith(said), (extra, listed.stderr)
    dead = cli("outbox", "list", "--state", "dead", EXESDB_STATE_DIR=str(tmp_path))
    assert (dead.returncode, dead.stderr) == (
        0,
        f"exesdb-bridge: no dead deliveries in the alert outbox at {tmp_path / 'alerts.sqlite3'}\n",
    )


def test_outbox_list_beside_a_bridge_started_again_sees_what_the_bridge_writes_after_it(
    tmp_path: Path,
) -> None:
    """`outbox list` beside a bridge started again on its outbox leaves the bridge's log in
    place: what the bridge writes after the listing is in the next one, not lost."""
    Outbox.in_dir(tmp_path, urls=["https://hooks.example/"]).close()  # the bridge's first run
    outbox = Outbox.in_dir(tmp_path, urls=["https://hooks.example/"])  # and its next
    try:
        first = cli_process("outbox", "list", EXESDB_STATE_DIR=str(tmp_path))
        assert first.returncode == 0, first.stderr
        observe(outbox, event("a1", requires_ack=False, at=datetime.now(UTC)), now=1.0)
        listed = cli_process("outbox", "list", EXESDB_STATE_DIR=str(tmp_path))
        assert listed.returncode == 0, listed.stderr
        assert "1 alert notification(s) not yet in a delivery" in listed.stderr
        assert (tmp_path / f"{FILE_NAME}-wal").exists()
    finally:
        outbox.close()
