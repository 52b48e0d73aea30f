"""The only way a test skips: a real binary or feature this machine lacks, which fails instead
under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def require_binary(name: str) -> str:
    """The path of a server binary; skip when missing, except under CI where it fails."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (make test installs it when run as root)")
    return path


def unavailable(message: str) -> NoReturn:
    """Skip a test whose real part this machine cannot provide, except under CI: it fails."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
