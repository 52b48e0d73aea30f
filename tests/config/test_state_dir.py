"""An ``EXESDB_STATE_DIR`` start-up would refuse is refused by ``check-config`` too, in the same
words, with nothing made or changed: a folder on the kernel's file systems, or one the user may
not write, or an outbox file there it may not read and write."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.sinks.alerts.outbox import FILE_NAME, LOCK_NAME
from tests.cli.helpers import cli
from tests.support import ROOT, run_command, unavailable, withhold

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


# Run in a mount namespace of its own with /sys remounted read-only, as a container has it:
# whether /sys is read-only there, then what unusable_state_dir says of a folder in it.
_IN_A_READ_ONLY_SYS = (
    "import os, sys; from bridge.state_dir import unusable_state_dir;"
    " print(bool(os.statvfs('/sys').f_flag & os.ST_RDONLY)); print(unusable_state_dir(sys.argv[1]))"
)


def test_a_state_directory_in_a_read_only_sys_is_refused_as_on_sysfs_not_as_read_only() -> None:
    """In a /sys mounted read-only (as Docker mounts it), EXESDB_STATE_DIR is refused as on the
    kernel's sysfs file system, which holds no files, not as on a read-only one: a writable
    mount there would be no remedy."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        unavailable("a read-only /sys of a mount namespace's own needs root and unshare")
    remount = 'mount -o remount,bind,ro /sys && exec "$@"'
    state_dir = "/sys/nope"
    python = [sys.executable, "-c", _IN_A_READ_ONLY_SYS, state_dir]
    completed = run_command(["unshare", "-m", "sh", "-c", remount, "sh", *python], {})
    if completed.returncode != 0:
        unavailable(f"/sys cannot be remounted read-only here: {completed.stderr.strip()}")
    read_only, said = completed.stdout.splitlines()
    assert read_only == "True"
    assert said == (
        f"'/sys', where '{state_dir}' is made, is on the kernel's sysfs file system, which holds"
        " no files; allowed: a directory on a disk (in a container, a volume)"
    )


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


def _as_this_user() -> str:
    """How check-config names the user it runs as in a warning: name and uid."""
    uid = os.geteuid()
    return f"as {pwd.getpwuid(uid).pw_name} (uid {uid})"


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
def test_check_config_warns_of_a_state_directory_this_user_may_not_write_in_run_s_words(
    folders: Path, without_overrides: list[str], state_dir: str, named: str
) -> None:
    """A state directory the user may not write, make or search a folder on the way to is a
    warning of check-config (exit 0: it may run as another user than the bridge's), naming that
    user and quoting the line start-up stops on (exit 2), which names the folder the system
    refuses and its uid; check-config makes nothing, where start-up would try."""
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
    assert checked.returncode == 0, checked.stderr
    assert "EXESDB_STATE_DIR" in checked.stdout
    assert f"exesdb-bridge: warning: {_as_this_user()}, run would stop: {line}" in checked.stderr
    assert "bad configuration" not in checked.stderr
    assert sorted(folders.rglob("*")) == before
    started = run_command([*bridge, "run"], env)
    assert started.returncode == 2, started.stderr
    assert started.stderr.endswith(f" ERROR bridge: {line}")


def test_check_config_passes_the_shipped_systemd_unit_s_state_directory_before_systemd_makes_it(
    folders: Path, without_overrides: list[str]
) -> None:
    """The documented recipe for the shipped unit (DynamicUser=yes, StateDirectory=): check-config
    run as another user, for a state directory systemd has not made yet in a folder that user
    may not write, passes (exit 0) with a warning that names the user, not a refusal."""
    state = folders / "read-only" / "exesdb-bridge"
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(state)}
    checked = run_command([*without_overrides, sys.executable, "-m", "bridge", "check-config"], env)
    assert checked.returncode == 0, checked.stderr
    assert f"exesdb-bridge: warning: {_as_this_user()}, run would stop: " in checked.stderr


def test_check_config_passes_a_state_directory_it_may_make(tmp_path: Path) -> None:
    """A state directory missing in a folder the user may write passes check-config (exit 0),
    which leaves it missing: start-up makes it."""
    state = tmp_path / "state" / "deeper"
    completed = cli("check-config", EXESDB_HTTP_ADDR="127.0.0.1:0", EXESDB_STATE_DIR=str(state))
    assert completed.returncode == 0, completed.stderr
    assert list(tmp_path.iterdir()) == []


# `exesdb-bridge check-config` under a seccomp(2) filter answering faccessat2 (439 on every
# architecture) with EPERM, as container runtimes' older default profiles do (Docker before
# 20.10.6): a classic BPF program, loaded with prctl, then the command run as `python -m bridge`.
_UNDER_OLD_SECCOMP = """
import ctypes, runpy, struct, sys
program = b"".join(
    struct.pack("HBBI", *instruction)
    for instruction in [
        (0x20, 0, 0, 0),  # load the syscall's number
        (0x15, 0, 1, 439),  # faccessat2?
        (0x06, 0, 0, 0x00050000 | 1),  # then fail it with EPERM
        (0x06, 0, 0, 0x7FFF0000),  # else allow it
    ]
)
class Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) or libc.prctl(
    PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(Program(4, program)), 0, 0
):
    sys.exit(f"seccomp: errno {ctypes.get_errno()}")
sys.argv = ["exesdb-bridge", *sys.argv[1:]]
runpy.run_module("bridge", run_name="__main__")
"""


def test_check_config_passes_a_writable_state_directory_where_seccomp_refuses_faccessat2(
    tmp_path: Path,
) -> None:
    """Under a seccomp profile answering faccessat2 with EPERM (older container runtimes'),
    check-config passes a state directory the user may write (exit 0) without a warning: it asks
    its access with the real ids, as glibc does without faccessat2, when they are the effective
    ones."""
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(tmp_path)}
    checked = run_command([sys.executable, "-c", _UNDER_OLD_SECCOMP, "check-config"], env)
    if checked.stderr.startswith("seccomp:"):
        unavailable(f"a seccomp filter cannot be loaded here: {checked.stderr.strip()}")
    assert checked.returncode == 0, checked.stderr
    assert "run would stop" not in checked.stderr, checked.stderr


@pytest.fixture
def left_by_a_killed_bridge(tmp_path: Path) -> Path:
    """A state directory as a bridge killed (SIGKILL) leaves it: the outbox file and its lock,
    and SQLite's -wal and -shm beside them (the outbox is in WAL mode)."""
    state = tmp_path / "state"
    killed = (
        "import os, signal, sys; from bridge.sinks.alerts import Outbox;"
        " Outbox.in_dir(sys.argv[1]); os.kill(os.getpid(), signal.SIGKILL)"
    )
    subprocess.run([sys.executable, "-c", killed, str(state)], cwd=ROOT, check=False, timeout=60)
    left = {path.name for path in state.iterdir()}
    assert left >= {LOCK_NAME, FILE_NAME, f"{FILE_NAME}-wal", f"{FILE_NAME}-shm"}, left
    return state


@pytest.mark.parametrize("name", [LOCK_NAME, FILE_NAME, f"{FILE_NAME}-wal", f"{FILE_NAME}-shm"])
@pytest.mark.parametrize("whose", ["another user's", "its own"])
def test_check_config_warns_of_a_file_in_the_state_directory_run_may_not_open(
    left_by_a_killed_bridge: Path, without_overrides: list[str], name: str, whose: str
) -> None:
    """A file the outbox's opening reads and writes (its lock, the outbox, SQLite's -wal and
    -shm a killed bridge left) that the user may not read and write, in a folder it may, is a
    warning of check-config (exit 0) quoting the line start-up stops on (exit 2), which names
    the file (SQLite's own "unable to open database file" names none) and what to do: chmod for
    the file's owner, chown for another's; the other files are left as they were."""
    state = left_by_a_killed_bridge
    file, uid = state / name, os.geteuid()
    if whose == "its own":
        file.chmod(0)
        prefix = without_overrides
        hint = f"owns {{it}} but may not read and write it: chmod u+rw {file}"
    else:
        if uid != 0:
            unavailable("a file of another user's, as the bridge's is to an operator, needs root")
        prefix = withhold(file)
        hint = (
            f"may not read and write {{it}}, uid 65534's: make it that user's (chown {uid}"
            f" {file}), or run the bridge as its owner"
        )
    before = {path.name: path.read_bytes() for path in state.iterdir() if path != file}
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(state)}
    opening = f"EXESDB_STATE_DIR: cannot open the alert outbox in '{state}': "
    line = (
        f"{opening}[Errno 13] Permission denied: '{file}'; the bridge's user (uid {uid})"
        f" {hint.format(it='it')}\n"
    )
    checked = run_command([*prefix, sys.executable, "-m", "bridge", "check-config"], env)
    assert checked.returncode == 0, checked.stderr
    assert f"exesdb-bridge: warning: {_as_this_user()}, run would stop: {line}" in checked.stderr
    assert {p.name: p.read_bytes() for p in state.iterdir() if p != file} == before
    if name in (LOCK_NAME, FILE_NAME):
        run_line = line  # the system's words name the file
    else:
        run_line = (
            f"{opening}unable to open database file; the bridge's user (uid {uid})"
            f" {hint.format(it=repr(str(file)))}\n"
        )
    started = run_command([*prefix, sys.executable, "-m", "bridge", "run"], env)
    assert started.returncode == 2, started.stderr
    assert started.stderr.endswith(f" ERROR bridge: {run_line}"), started.stderr


@pytest.mark.parametrize("name", [f"{FILE_NAME}-wal", f"{FILE_NAME}-shm"])
def test_check_config_passes_sqlite_s_own_files_the_user_may_only_read(
    left_by_a_killed_bridge: Path, without_overrides: list[str], name: str
) -> None:
    """SQLite's -wal or -shm a killed bridge left, the user's own but read-only (mode 0400), pass
    check-config without a warning (exit 0): SQLite opens them read-only and the bridge's
    opening makes them its user's mode (0600), as it starts."""
    state = left_by_a_killed_bridge
    (state / name).chmod(0o400)
    env = {"EXESDB_HTTP_ADDR": "127.0.0.1:0", "EXESDB_STATE_DIR": str(state)}
    checked = run_command([*without_overrides, sys.executable, "-m", "bridge", "check-config"], env)
    assert checked.returncode == 0, checked.stderr
    assert "run would stop" not in checked.stderr, checked.stderr
