"""Shared helpers for the deploy file tests: paths and the bridge's known variables."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import yaml

from bridge.settings import Settings
from tests.support import ROOT

DEPLOY = ROOT / "deploy"
SETTINGS_VARIABLES = frozenset(
    str(info.validation_alias) for info in Settings.model_fields.values()
)


def load_yaml(path: Path) -> Any:
    """One YAML document."""
    return yaml.safe_load(path.read_text())


def load_all_yaml(path: Path) -> list[Any]:
    """Every non-empty document of a YAML file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def unknown_variables(names: Iterable[str], expanded: Collection[str] = ()) -> list[str]:
    """The names that are neither a bridge setting nor a standard ``OTEL_*`` variable.

    ``expanded`` are helper variables another variable refers to as ``$(NAME)`` (Kubernetes).
    """
    return sorted(
        name
        for name in names
        if name not in SETTINGS_VARIABLES and not name.startswith("OTEL_") and name not in expanded
    )
