"""The licence pyproject.toml declares is the one the repository ships."""

from __future__ import annotations

import tomllib

from tests.support import ROOT


def test_the_license_file_is_the_mit_licence_pyproject_names() -> None:
    """LICENSE holds the MIT licence with the contributors' copyright; pyproject says MIT."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) ")
    assert "exesdb-bridge contributors" in text.splitlines()[2]
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text
