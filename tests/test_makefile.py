"""The Makefile a newcomer types `make` in: the quick start's targets named before anything runs."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.support import ROOT, require_binary


def test_make_alone_lists_the_targets_and_makes_nothing(tmp_path: Path) -> None:
    """``make`` with no target names ``make run``, ``make test`` and the other targets, each one
    of the Makefile's, and would make nothing, where it used to make the virtualenv alone (the
    first rule) and say no more."""
    require_binary("make")
    # A dry run in an empty folder: what a bare `make` would do there, none of it done.
    completed = subprocess.run(
        ["make", "--dry-run", "--file", str(ROOT / "Makefile")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    named = re.findall(r"'make ([a-z-]+) ", completed.stdout)
    assert {"run", "test"} <= set(named), completed.stdout
    rules = (ROOT / "Makefile").read_text()
    assert [target for target in named if f"\n{target}:" not in rules] == []
    assert "-m venv" not in completed.stdout
    assert not list(tmp_path.iterdir())


def test_make_clean_removes_every_state_folder_the_readme_and_the_defaults_make(
    tmp_path: Path,
) -> None:
    """``make clean`` removes the state folders ``make run`` makes (``.exesdb-bridge``, the
    demo's ``.exesdb-bridge-demo``) and each ``EXESDB_STATE_DIR`` the README's commands give (a
    second bridge's ``.exesdb-bridge-2``), and the editable install's ``exesdb_bridge.egg-info``,
    and leaves any other folder alone."""
    require_binary("make")
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"EXESDB_STATE_DIR=(\.[\w.-]+)", readme))
    assert ".exesdb-bridge-2" in named, "the README's second bridge has a folder of its own"
    made = named | {".exesdb-bridge", ".exesdb-bridge-demo", "exesdb_bridge.egg-info"}
    for folder in (*made, "keep-me"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "alerts.sqlite3").write_bytes(b"")
    subprocess.run(
        ["make", "--file", str(ROOT / "Makefile"), "clean"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keep-me"]


def _make(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``make`` with the repository's Makefile in ``tmp_path``, beside a copy of its
    pyproject.toml (a prerequisite of the install rules), in ``env`` if given."""
    require_binary("make")
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    return subprocess.run(
        ["make", "--file", str(ROOT / "Makefile"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_make_run_with_a_python_too_old_says_so_and_makes_no_virtualenv(tmp_path: Path) -> None:
    """A Python older than the bridge needs (this one, against a minimum raised past it) is
    refused before a .venv is made, saying which it is and how to name another (one missing:
    one installed, not a newer one), where pip said only "requires a different Python" and left
    a .venv every make after failed on."""
    completed = _make(tmp_path, "run", f"PYTHON={sys.executable}", "MIN_PYTHON=3.99")
    version = f"Python {platform.python_version()}"
    assert completed.returncode == 2
    assert completed.stderr.startswith(
        f"exesdb-bridge needs Python 3.99 or newer, and {sys.executable} is {version}: name a"
        " newer one, as make run PYTHON=/path/to/python3 (no python3.11 to python3.14 on the PATH"
        " runs and is new enough)\n"
    )
    assert not (tmp_path / ".venv").exists()
    assert not (tmp_path / ".venv").exists()


def test_the_python_suggested_is_one_on_the_path(tmp_path: Path) -> None:
    """A refused Python is answered with the newest python3.X on the PATH that runs and is new
    enough (python3.13 here, a shim of this Python), never one not installed (python3.12 was
    named whatever the PATH held)."""
    shims = tmp_path / "shims"
    shims.mkdir()
    shim = shims / "python3.13"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"}
    missing = _make(tmp_path, "test", "PYTHON=python3.99", env=env)
    assert missing.returncode == 2
    assert missing.stderr.startswith(
        "exesdb-bridge needs Python 3.11 or newer, and python3.99 is missing: name one"
        " installed, e.g. make test PYTHON=python3.13\n"
    ), missing.stderr


def test_a_python_on_the_path_that_does_not_run_is_missing_and_another_is_named(
    tmp_path: Path,
) -> None:
    """A python3.12 on the PATH that does not run (pyenv's shim of a version not installed,
    which says so in lines of its own) is called missing in one line, none of the shim's words
    inside it, and the example named is another Python than the one refused."""
    shims = tmp_path / "shims"
    shims.mkdir()
    shim = shims / "python3.12"
    shim.write_text(
        "#!/bin/sh\n"
        "echo 'pyenv: python3.12: command not found' >&2\n"
        "echo >&2\n"
        "echo 'The python3.12 command exists in these Python versions:' >&2\n"
        "exit 127\n"
    )
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"}
    completed = _make(tmp_path, "run", "PYTHON=python3.12", env=env)
    assert completed.returncode == 2
    # The example is a Python this host has (3.11 at least, which the suite runs on).
    assert re.match(
        "exesdb-bridge needs Python 3.11 or newer, and python3.12 is missing: name one"
        r" installed, e.g. make run PYTHON=python3\.1[134]\n",
        completed.stderr,
    ), completed.stderr
    assert "pyenv" not in completed.stderr
    assert not (tmp_path / ".venv").exists()


def test_a_python_without_venv_is_given_its_own_debian_venv_package(tmp_path: Path) -> None:
    """A Python without ensurepip (Debian's, its venv split out) is given the venv package of
    its own version, python3.X-venv (installed as root, else named), not python3-venv, which is
    the default python3's: no help to a python3.11 beside Ubuntu 22.04's python3.10."""
    shims = tmp_path / "shims"
    shims.mkdir()
    # This Python as Debian ships it: ensurepip left out, so no venv can be made.
    python = shims / "python-without-venv"
    python.write_text(
        "#!/bin/sh\n"
        'case "$*" in *ensurepip*) exit 1 ;; *"-m venv"*) exit 1 ;; esac\n'
        f'exec {sys.executable} "$@"\n'
    )
    # apt-get as root would install: it notes what it was asked for instead.
    asked = tmp_path / "apt-get.args"
    apt_get = shims / "apt-get"
    apt_get.write_text(f'#!/bin/sh\necho "$*" >>{asked}\n')
    for shim in (python, apt_get):
        shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"}
    completed = _make(tmp_path, "run", f"PYTHON={python}", env=env)
    assert completed.returncode == 2
    package = f"python{sys.version_info.major}.{sys.version_info.minor}-venv"
    said = asked.read_text() if asked.exists() else completed.stdout
    assert package in said, said
    assert "python3-venv" not in said + completed.stdout


def test_an_empty_python_is_the_default_one_and_its_version_still_checked(
    tmp_path: Path,
) -> None:
    """PYTHON= given empty (a script's unset variable) names python3, as leaving it out does:
    empty, the check's line began with "-c", which make took as "ignore its errors", and went on
    to run "m venv .venv"."""
    completed = _make(tmp_path, "run", "PYTHON=", "MIN_PYTHON=3.99")
    assert completed.returncode == 2
    assert completed.stderr.startswith(
        "exesdb-bridge needs Python 3.99 or newer, and python3 is Python "
    ), completed.stderr
    assert "(ignored)" not in completed.stderr
    assert not (tmp_path / ".venv").exists()


def test_a_virtualenv_an_older_python_made_is_named_to_remove(tmp_path: Path) -> None:
    """A .venv made by a Python older than the bridge needs (before the check, or copied in)
    is named, with how to make it again, instead of being handed to pip to refuse."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp_path / ".venv")], check=True
    )
    completed = _make(tmp_path, "run", "MIN_PYTHON=3.99")
    assert completed.returncode == 2
    assert completed.stderr.startswith(
        f".venv was made with Python {platform.python_version()}, older than the Python 3.99"
        " exesdb-bridge needs: remove it (rm -rf .venv) and make it again with a newer one, as"
        " make run PYTHON=/path/to/python3 (no python3.11 to python3.14 on the PATH runs and is"
        " new enough)\n"
    )
    assert "pip install" not in completed.stdout


def test_the_makefile_s_oldest_python_is_the_package_s() -> None:
    """MIN_PYTHON in the Makefile is pyproject.toml's requires-python, so that make refuses
    exactly the Pythons pip would."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    minimum = re.search(r"^MIN_PYTHON := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert minimum is not None
    assert pyproject["project"]["requires-python"] == f">={minimum.group(1)}"


def test_the_readme_names_every_package_make_test_installs() -> None:
    """Each Debian package the Makefile's ``servers`` rule installs when missing is named in the
    README's paragraph on what ``make test`` installs, so a reader without root knows them all."""
    packages = re.findall(r'missing="\$\$missing ([a-z0-9.-]+)"', (ROOT / "Makefile").read_text())
    readme = (ROOT / "README.md").read_text()
    paragraph = readme[readme.index("`make test` installs the real servers") :]
    paragraph = paragraph[: paragraph.index("\n\n")]
    assert len(packages) >= 10
    assert [name for name in packages if f"`{name}`" not in paragraph] == []
