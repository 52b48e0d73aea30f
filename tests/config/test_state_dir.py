"""An ``EXESDB_STATE_DIR`` start-up would refuse is refused by ``check-config`` too, in the same
words, with nothing made or changed: a folder on the kernel's file systems, or one the user may
not write, or an outbox file there it may not read and write."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.sinks.alerts import Outbox
from bridge.sinks.alerts.outbox import FILE_NAME
from tests.cli.helpers import cli
from tests.support import run_command, unavailable, withhold

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.mark.parametrize(
    ("state_dir", "said"),
    [
        (
            "/proc/nope",
            "'/proc', where '/proc/nope' is made, is on the kernel's proc file system, which"
            " holds no files; allowed: a directory on a disk (in a container, a volume)",
        ),
        (
            "/proc",
            "'/proc' is on the kernel's proc file system, which holds no files; allowed: a"
            " directory on a disk (in a container, a volume)",
        ),
        (
            "/sys/nope/deeper",
            "'/sys', where '/sys/nope/deeper' is made, is on the kernel's sysfs file system,"
            " which holds no files; allowed: a directory on a disk (in a container, a volume)",
        ),
    ],
)
@pytest.mark.parametrize("command", ["run", "check-config"])
def test_a_state_directory_on_the_kernel_s_file_systems_is_refused_by_both(
    command: str, state_dir: str, said: str
) -> None:
    """EXESDB_STATE_DIR in /proc or /sys, where no folder can be made nor file written, stops
    start-up and check-config alike (exit 2) naming the variable and the file system, rather than
    check-config passing what start-up refuses."""
    completed = cli(command, EXESDB_HTTP_ADDR="127.0.0.1:0", EXESDB_STATE_DIR=state_dir)
    assert completed.returncode == 2, completed.stderr
    assert f"exesdb-bridge: bad configuration:\n  EXESDB_STATE_DIR: {said}\n" in completed.stderr


@pytest.fixture
def without_overrides() -> list[str]:
    """The prefix that runs a command as this user without the capabilities that let root write
    any folder (setpriv), so that a folder's mode refuses it as it refuses another user."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        unavailable("setpriv (util-linux) is needed to run a command as root without its overrides")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.fixture
def folders(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path`` holding ``read-only`` (mode 0555: searched, not written) and ``locked``
    (mode 0: not even searched), given back their modes afterwards for their removal."""
    read_only = tmp_path / "read-only"
    locked = tmp_path / "locked"
    read_only.mkdir(mode=0o555)
    locked.mkdir(mode=0)
    yield tmp_path
    read_only.chmod(0o700)
    locked.chmod(0o700)


@pytest.mark.parametrize(
    ("state_dir", "named"),
    [
        ("read-only", "read-only"),
        ("read-only/state", "read-only/state"),
        ("read-only/state/deeper", "read-only/state"),  # the first folder it would make
        ("locked/state", "locked/state"),
        ("locked/state/deeper", "locked/state/deeper"),
    ],
    ids=["unwritable", "made in one unwritable", "made deeper", "unsearchable", "deeper in it"],
)
def test_check_config_refuses_a_state_directory_start_up_may_not_write_in_its_words(
    folders: Path, without_overrides: list[str], state_dir: str, named: str
) -> None:
    """A state directory the user may not write, make or search a folder on the way to stops
    check-config (exit 2) on the line start-up stops on (exit 2), which names the folder the
    system refuses and its uid, and check-config makes nothing, where start-up would try."""
    before = sorted(folders.rglob("*"))
    state, refused = folders / state_dir, folders / named
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(state)}
    line = (
        f"EXESDB_STATE_DIR: cannot open the alert outbox in '{state}': [Errno 13] Permission"
        f" denied: '{refused}'; the bridge's user (uid {os.geteuid()}) may not write there: give"
        " a directory it may write, or make this one writable by it (chown, chmod u+w)\n"
    )
    bridge = [*without_overrides, sys.executable, "-m", "bridge"]
    checked = run_command([*bridge, "check-config"], env)
    assert checked.returncode == 2, checked.stderr
    assert checked.stdout == ""
    assert f"exesdb-bridge: bad configuration:\n  {line}" in checked.stderr
    assert sorted(folders.rglob("*")) == before
    started = run_command([*bridge, "run"], env)
    assert started.returncode == 2, started.stderr
    assert started.stderr.endswith(f" ERROR bridge: {line}")


def test_check_config_passes_a_state_directory_it_may_make(tmp_path: Path) -> None:
    """A state directory missing in a folder the user may write passes check-config (exit 0),
    which leaves it missing: start-up makes it."""
    state = tmp_path / "state" / "deeper"
    completed = cli("check-config", EXESDB_HTTP_ADDR="127.0.0.1:0", EXESDB_STATE_DIR=str(state))
    assert completed.returncode == 0, completed.stderr
    assert list(tmp_path.iterdir()) == []


def test_check_config_refuses_an_outbox_file_start_up_may_not_read_in_its_words(
    tmp_path: Path,
) -> None:
    """An outbox file the user may not read and write, in a folder it may, stops check-config
    (exit 2) on the line start-up stops on, naming the file and to make it that user's, and
    check-config leaves the file as it was."""
    state = tmp_path / "state"
    Outbox.in_dir(state).close()
    outbox = state / FILE_NAME
    prefix = withhold(outbox)
    before = {path.name: path.read_bytes() for path in state.iterdir()}
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(state)}
    line = (
        f"EXESDB_STATE_DIR: cannot open the alert outbox in '{state}': [Errno 13] Permission"
        f" denied: '{outbox}'; the bridge's user (uid {os.geteuid()}) may not read and write it:"
        " make it that user's (chown), or run the bridge as its owner\n"
    )
    checked = run_command([*prefix, sys.executable, "-m", "bridge", "check-config"], env)
    assert checked.returncode == 2, checked.stderr
    assert f"exesdb-bridge: bad configuration:\n  {line}" in checked.stderr
    assert {path.name: path.read_bytes() for path in state.iterdir()} == before
    started = run_command([*prefix, sys.executable, "-m", "bridge", "run"], env)
    assert started.stderr.endswith(f" ERROR bridge: {line}")
