"""The state directory and the outbox file in it, refused before anything starts in the same words
by ``run``, ``check-config`` and ``outbox``."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.sinks.alerts import Outbox
from bridge.sinks.alerts.outbox import FILE_NAME
from tests.cli.helpers import cli
from tests.sinks.alerts.helpers import T0, event, observe
from tests.support import FifoReleaser, run_command, unavailable


@pytest.mark.parametrize(
    ("state_dir", "said"),
    [
        ("a-file", "'a-file' is a file, not a directory; allowed: a directory (made when missing)"),
        (
            "a-file/state",
            "'a-file' in 'a-file/state' is a file, not a directory; allowed: a path of"
            " directories (those missing are made)",
        ),
    ],
    ids=["a file", "a path through a file"],
)
@pytest.mark.parametrize("command", ["run", "check-config"])
def test_a_state_directory_that_is_a_file_is_refused_as_one_before_start(
    tmp_path: Path, command: str, state_dir: str, said: str
) -> None:
    """EXESDB_STATE_DIR naming a file, or a path through one, stops start-up and check-config
    (exit 2) as the other bad values do: the variable, that it is a file, not a directory."""
    (tmp_path / "a-file").write_text("")
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": state_dir}
    completed = cli(command, cwd=tmp_path, **env)
    assert completed.returncode == 2
    assert f"exesdb-bridge: bad configuration:\n  EXESDB_STATE_DIR: {said}\n" in completed.stderr
    assert (tmp_path / "a-file").read_text() == ""


@pytest.mark.parametrize("command", ["run", "check-config", "outbox list"])
def test_a_state_directory_beginning_with_a_tilde_is_refused_not_made_in_the_working_folder(
    tmp_path: Path, command: str
) -> None:
    """EXESDB_STATE_DIR=~/state, as an env file or a quoted value leaves it, stops start-up,
    check-config and outbox (exit 2) saying only a shell expands ~ and giving the full path,
    rather than making a folder named ~ in the working folder."""
    home = tmp_path / "home"
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": "~/state", "HOME": str(home)}
    completed = cli(*command.split(), cwd=tmp_path, **env)
    assert completed.returncode == 2, completed.stderr
    assert (
        "exesdb-bridge: bad configuration:\n  EXESDB_STATE_DIR: begins with ~, which only a shell"
        " expands (not in quotes, an env file, a systemd unit or a container's environment), so"
        " the bridge would make a folder named '~' in its working directory; allowed: the full"
        f" path, e.g. {home}/state (got '~/state')\n"
    ) in completed.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("command", "status", "said"),
    [
        (
            "check-config",
            2,
            "exesdb-bridge: bad configuration:\n  EXESDB_STATE_DIR: '{state}' cannot be used: File"
            " name too long; allowed: a directory (made when missing)\n",
        ),
        (
            "run",
            2,
            "exesdb-bridge: bad configuration:\n  EXESDB_STATE_DIR: '{state}' cannot be used: File"
            " name too long; allowed: a directory (made when missing)\n",
        ),
        (
            "outbox list",
            1,
            "exesdb-bridge: cannot open the alert outbox at {state}/alerts.sqlite3: [Errno 36] File"
            " name too long: ",
        ),
    ],
)
def test_a_state_directory_named_longer_than_the_system_takes_is_told_not_a_traceback(
    tmp_path: Path, command: str, status: int, said: str
) -> None:
    """EXESDB_STATE_DIR with a name longer than the file system takes stops start-up and
    check-config (exit 2) as other bad values do, and `outbox list` (exit 1), each on a line
    with the system's words, not with a traceback."""
    state = tmp_path / ("s" * 300)
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(state)}
    completed = cli(*command.split(), cwd=tmp_path, **env)
    assert "Traceback" not in completed.stderr, completed.stderr
    assert completed.returncode == status
    assert said.format(state=state) in completed.stderr


@pytest.fixture
def unsearchable(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """A folder the commands a test runs may not search, and the command prefix that runs them
    so: root may search any folder, so as root they run without the capabilities that let it."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    locked.chmod(0)
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            unavailable(
                "setpriv (util-linux) is needed to run a command as root without its overrides"
            )
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    yield locked, prefix
    locked.chmod(0o700)


@pytest.mark.parametrize(
    ("command", "status", "said"),
    [
        (
            "check-config",
            0,
            "exesdb-bridge: warning: as {user} (uid {uid}), run would stop: EXESDB_STATE_DIR:"
            " cannot open the alert outbox in '{state}': [Errno 13] Permission denied: '{state}';"
            " the bridge's user (uid {uid}) may not write there: ",
        ),
        (
            "run",
            2,
            "ERROR bridge: EXESDB_STATE_DIR: cannot open the alert outbox in '{state}': [Errno 13]"
            " Permission denied: '{state}'; the bridge's user (uid {uid}) may not write there: ",
        ),
        (
            "outbox list",
            1,
            "exesdb-bridge: cannot open the alert outbox at {state}/alerts.sqlite3: [Errno 13]"
            " Permission denied: '{state}/alerts.sqlite3'; this user (uid {uid}) may not read and"
            " write it: run the command as the user the bridge runs as (the file's owner), or as"
            " root\n",
        ),
    ],
)
def test_a_state_directory_in_a_folder_it_may_not_search_is_told_not_a_traceback(
    unsearchable: tuple[Path, list[str]], command: str, status: int, said: str
) -> None:
    """EXESDB_STATE_DIR in a folder the user may not search stops `run` (exit 2) on a line
    check-config warns of (exit 0: it may run as another user than the bridge's), naming the
    user it runs as, and `outbox list` fails (exit 1), each on one line naming the fault and
    what to do, not with a traceback."""
    locked, prefix = unsearchable
    state = locked / "state"
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(state)}
    completed = run_command([*prefix, sys.executable, "-m", "bridge", *command.split()], env)
    assert "Traceback" not in completed.stderr, completed.stderr
    assert completed.returncode == status
    user = pwd.getpwuid(os.geteuid()).pw_name
    assert said.format(state=state, uid=os.geteuid(), user=user) in completed.stderr


def test_outbox_list_of_an_outbox_it_may_not_read_says_to_run_as_the_bridge_s_user(
    unsearchable: tuple[Path, list[str]],
) -> None:
    """`outbox list` run by another user than the bridge's, who may not read and write its
    outbox file (the bridge makes it its user's alone), says so and to run it as the bridge's
    user or root (exit 1), not SQLite's "unable to open database file" with a doubt about
    EXESDB_STATE_DIR."""
    locked, prefix = unsearchable
    if os.geteuid() != 0:
        unavailable(
            "a file of another user's, as the bridge's outbox is to an operator, needs root"
        )
    locked.chmod(0o755)
    Outbox.in_dir(locked).close()
    outbox = locked / FILE_NAME
    os.chown(outbox, 65534, 65534)  # the bridge's user's (nobody), mode 0600
    listed = run_command(
        [*prefix, sys.executable, "-m", "bridge", "outbox", "list"],
        {"EXESDB_STATE_DIR": str(locked)},
    )
    assert listed.returncode == 1
    assert listed.stderr == (
        f"exesdb-bridge: cannot open the alert outbox at {outbox}: [Errno 13] Permission denied:"
        f" '{outbox}'; this user (uid 0) may not read and write it: run the command as the user"
        " the bridge runs as (the file's owner), or as root\n"
    )


def _not_a_file(outbox: Path, kind: str) -> contextlib.AbstractContextManager[object]:
    """Put ``kind`` (a directory, a FIFO, a socket) where the outbox file ``outbox`` goes; the
    context it lasts (a FIFO's reader waiting for a writer is let go after 3 s: a test that
    one must not wait fails rather than hangs; a socket's listener is closed at its end)."""
    outbox.parent.mkdir(parents=True, exist_ok=True)
    if kind == "FIFO":
        return FifoReleaser(outbox)
    if kind == "socket":
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(outbox))
        return listener
    outbox.mkdir()
    return contextlib.nullcontext()


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("directory", "a directory"),
        ("FIFO", "a FIFO (named pipe)"),
        ("socket", "a socket"),
    ],
)
@pytest.mark.parametrize(
    ("command", "status"), [("run", 2), ("check-config", 2), ("outbox list", 1)]
)
def test_an_outbox_path_that_is_no_file_is_named_not_its_directory(
    tmp_path: Path, kind: str, said: str, command: str, status: int
) -> None:
    """A directory, a FIFO or a socket where the outbox file goes stops start-up and
    check-config (exit 2, in the same words) and `outbox list` (exit 1) at once, naming
    EXESDB_STATE_DIR's outbox file and what is there, not the directory with SQLite's "unable
    to open database file" or "disk I/O error"; no wait on the FIFO, no traceback, and nothing
    made in its place."""
    state = tmp_path / "state"
    outbox = state / FILE_NAME
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(state)}
    with _not_a_file(outbox, kind) as made:
        completed = cli(*command.split(), **env)  # type: ignore[arg-type]
    assert "Traceback" not in completed.stderr, completed.stderr
    assert completed.returncode == status, completed.stderr
    refusal = (
        f"it is {said}, not a file; move it out of the way (the bridge keeps its outbox in that"
        " file), or give a directory of the bridge's own\n"
    )
    if command == "run":
        assert completed.stderr.endswith(
            f"ERROR bridge: EXESDB_STATE_DIR: cannot open the alert outbox '{outbox}': {refusal}"
        )
    elif command == "check-config":
        assert completed.stdout == ""
        assert completed.stderr.startswith(
            "exesdb-bridge: bad configuration:\n  EXESDB_STATE_DIR: cannot open the alert outbox"
            f" '{outbox}': {refusal}"
        ), completed.stderr
    else:
        assert completed.stderr == (
            f"exesdb-bridge: cannot open the alert outbox at {outbox}: {refusal}"
        )
    assert not isinstance(made, FifoReleaser) or made.released == 0
    assert sorted(path.name for path in state.iterdir()) == [FILE_NAME]


def _cut_short(outbox: Path) -> str:
    """A stopped bridge's outbox at ``outbox``, cut 100 bytes short; the refusal's words."""
    Outbox.in_dir(outbox.parent).close()
    whole = outbox.read_bytes()
    outbox.write_bytes(whole[:-100])
    return (
        f"file is an SQLite database cut short ({len(whole) - 100} bytes, not a whole number of"
        " its 4096-byte pages): part of the outbox is lost; restore it whole, or move it out of"
        " the way for a new one"
    )


def _no_database(outbox: Path) -> str:
    """Text at ``outbox``; the refusal's words, SQLite's and what to do."""
    outbox.parent.mkdir()
    outbox.write_text("not a database\n")
    return (
        "file is not a database; move alerts.sqlite3 out of the way (the bridge then makes a new"
        " outbox there), or give a directory of the bridge's own"
    )


@pytest.mark.parametrize(
    ("command", "begins"),
    [("run", " ERROR bridge: "), ("check-config", "exesdb-bridge: bad configuration:\n  ")],
)
@pytest.mark.parametrize("fault", [_cut_short, _no_database], ids=["cut short", "no database"])
def test_check_config_refuses_an_outbox_run_refuses_in_the_same_words(
    tmp_path: Path, command: str, begins: str, fault: Callable[[Path], str]
) -> None:
    """An outbox file cut short, or no SQLite database, stops check-config as it stops start-up:
    exit 2 and the same line, saying what to do, the file left as it was and, by check-config,
    nothing made beside it."""
    state = tmp_path / "state"
    said = fault(state / FILE_NAME)
    before = {path.name: path.read_bytes() for path in state.iterdir()}
    completed = cli(command, EXESDB_HTTP_ADDR="127.0.0.1:0", EXESDB_STATE_DIR=str(state))
    assert completed.returncode == 2, completed.stderr
    assert completed.stdout == ""
    line = f"EXESDB_STATE_DIR: cannot open the alert outbox in '{state}': {said}\n"
    assert f"{begins}{line}" in completed.stderr, completed.stderr
    after = {path.name: path.read_bytes() for path in state.iterdir()}
    assert after[FILE_NAME] == before[FILE_NAME]
    if command == "check-config":  # run takes the directory's lock file before it opens
        assert after == before


def listed_problems(said: str) -> list[str]:
    """The problems a refusal of the configuration lists (each on a line of its own, indented
    under ``bad configuration:``), in order."""
    return [line.removeprefix("  ") for line in said.splitlines() if line.startswith("  ")]


@pytest.mark.parametrize(
    ("env", "refusals"),
    [
        (
            {"EXESDB_ALERTMANAGER_URL": "ftp://alerts:hunter2-am@am.example/"},
            ["EXESDB_ALERTMANAGER_URL: 'ftp://alerts:<redacted>@am.example' is not an http://"],
        ),
        (
            {"EXESDB_INGEST": "true", "SECRET_KEY_BASE": "hunter2-short"},
            ["SECRET_KEY_BASE: has 13 characters; with EXESDB_INGEST=true it must be set"],
        ),
        (
            {
                "EXESDB_ALERTMANAGER_URL": "ftp://alerts:hunter2-am@am.example/",
                "EXESDB_INGEST": "maybe",
            },
            [
                "EXESDB_INGEST: must be true or false",
                "EXESDB_ALERTMANAGER_URL: 'ftp://alerts:<redacted>@am.example' is not an http://",
            ],
        ),
    ],
    ids=["a value refused", "values at odds", "two values refused"],
)
@pytest.mark.parametrize("fault", [_cut_short, _no_database], ids=["cut short", "no database"])
@pytest.mark.parametrize("command", ["check-config", "run"])
def test_bad_settings_and_the_outbox_s_fault_are_listed_at_once(
    tmp_path: Path,
    command: str,
    env: dict[str, str],
    refusals: list[str],
    fault: Callable[[Path], str],
) -> None:
    """check-config and run with bad settings and an outbox file start-up would refuse list
    every problem in one go (exit 2): the settings' first, then the outbox's in start-up's words,
    so that a second round finds nothing new; no secret of the settings is shown."""
    state = tmp_path / "state"
    said = fault(state / FILE_NAME)
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(state), **env}
    completed = cli(command, **env)  # type: ignore[arg-type]
    assert completed.returncode == 2, completed.stderr
    assert completed.stdout == ""
    lines = completed.stderr.splitlines()
    assert lines[0] == "exesdb-bridge: bad configuration:"
    problems = listed_problems(completed.stderr)
    assert len(problems) == len(refusals) + 1, completed.stderr
    for problem, refusal in zip(problems, refusals, strict=False):
        assert problem.startswith(refusal), completed.stderr
    assert problems[-1] == f"EXESDB_STATE_DIR: cannot open the alert outbox in '{state}': {said}"
    assert "hunter2" not in completed.stderr


def test_run_demo_with_bad_settings_lists_the_fault_of_the_demo_s_own_outbox(
    tmp_path: Path,
) -> None:
    """`run --demo` with a bad setting and EXESDB_STATE_DIR unset lists the fault of the outbox
    in the demo's own folder (./.exesdb-bridge-demo, which it would open) beside the setting's,
    not of one in the folder a run without --demo uses (exit 2)."""
    demo_outbox = tmp_path / ".exesdb-bridge-demo" / FILE_NAME
    said = _no_database(demo_outbox)
    _no_database(tmp_path / ".exesdb-bridge" / FILE_NAME)  # a real run's: not looked at
    completed = cli("run", "--demo", cwd=tmp_path, EXESDB_INGEST="maybe")
    assert completed.returncode == 2, completed.stderr
    problems = listed_problems(completed.stderr)
    assert [problem.split(":")[0] for problem in problems] == [
        "EXESDB_INGEST",
        "EXESDB_STATE_DIR",
    ], completed.stderr
    assert problems[1] == (
        f"EXESDB_STATE_DIR: cannot open the alert outbox in './.exesdb-bridge-demo': {said}"
    )


@pytest.mark.parametrize(
    ("state_dir", "refusal"),
    [
        ("~/state", "EXESDB_STATE_DIR: begins with ~, which only a shell expands"),
        ("{long}", "EXESDB_STATE_DIR: '{long}' cannot be used: File name too long"),
    ],
    ids=["refused", "unusable"],
)
def test_check_config_looks_for_no_outbox_where_the_state_directory_is_at_fault(
    tmp_path: Path, state_dir: str, refusal: str
) -> None:
    """check-config with EXESDB_STATE_DIR refused (a path beginning with ~) or naming a
    directory the bridge could not use (a name longer than the system takes) beside another bad
    setting lists their problems alone, one for the directory: no outbox is looked for in it
    (exit 2)."""
    long = str(tmp_path / ("s" * 300))
    env = {"EXESDB_STATE_DIR": state_dir.format(long=long), "EXESDB_INGEST": "maybe"}
    completed = cli(
        "check-config", cwd=tmp_path, HOME=str(tmp_path), EXESDB_HTTP_ADDR="127.0.0.1:0", **env
    )
    assert completed.returncode == 2, completed.stderr
    problems = listed_problems(completed.stderr)
    assert [problem.split(":")[0] for problem in problems] == [
        "EXESDB_INGEST",
        "EXESDB_STATE_DIR",
    ], completed.stderr
    assert problems[1].startswith(refusal.format(long=long)), completed.stderr
    assert "alert outbox" not in completed.stderr


def test_outbox_list_of_an_outbox_cut_short_says_what_to_do_and_no_more(tmp_path: Path) -> None:
    """`outbox list` on an outbox cut short says so in the bridge's words, which end with what to
    do (restore it, or move it out of the way), and nothing after them: no doubt about
    EXESDB_STATE_DIR, which is the bridge's (exit 1)."""
    state = tmp_path / "state"
    said = _cut_short(state / FILE_NAME)
    listed = cli("outbox", "list", EXESDB_STATE_DIR=str(state))
    assert listed.returncode == 1
    assert listed.stderr == (
        f"exesdb-bridge: cannot open the alert outbox at {state / FILE_NAME}: {said}\n"
    )


def test_check_config_makes_and_changes_nothing_in_the_state_directory(tmp_path: Path) -> None:
    """check-config reads the outbox a bridge left without writing a byte or making a file
    beside it (no log, no shared memory: a read-only SQLite open makes both), and makes no state
    directory where there is none (exit 0 for each)."""
    state = tmp_path / "state"
    outbox = Outbox.in_dir(state)
    observe(outbox, event("a"), T0)
    outbox.close()
    before = {path.name: path.read_bytes() for path in state.iterdir()}
    assert not (state / f"{FILE_NAME}-wal").exists()
    completed = cli("check-config", EXESDB_STATE_DIR=str(state))
    assert completed.returncode == 0, completed.stderr
    assert {path.name: path.read_bytes() for path in state.iterdir()} == before
    missing = tmp_path / "missing"
    assert cli("check-config", EXESDB_STATE_DIR=str(missing)).returncode == 0
    assert not missing.exists()
