"""The checkout's editable install, as ``make run`` and ``make test`` make it: quiet and cheap."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

# What the build backend reads of the checkout: its metadata and the packages it installs.
PROJECT_FILES = ("pyproject.toml", "README.md", "LICENSE")
PACKAGES = ("bridge", "collectors")


def test_the_editable_install_warns_of_nothing_and_imports_nothing_at_start(tmp_path: Path) -> None:
    """``pip install -e .`` of the checkout (the Makefile's, into a venv of its own) shows no
    warning from the build backend, and leaves a plain path in a .pth, no import hook."""
    project = tmp_path / "project"
    project.mkdir()
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, project / name)
    for name in PACKAGES:
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = ["install", "--quiet", "--no-deps", "--editable", str(project)]
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), *install],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "BuildBackendWarning" not in completed.stderr, completed.stderr
    [site_packages] = (venv / "lib").glob("python3*/site-packages")
    installed = sorted(path.name for path in site_packages.iterdir())
    assert not [name for name in installed if name.endswith(".py")], installed
    [pth] = site_packages.glob("*.pth")
    assert pth.read_text().split() == [str(project.resolve())]
