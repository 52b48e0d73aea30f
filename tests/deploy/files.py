"""Shared helpers for the deploy file tests: paths, the bridge's known variables, and the shipped
Prometheus rules with the ``exesdb_`` series they select."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import yaml

from bridge.settings import Settings
from tests.support import ROOT

DEPLOY = ROOT / "deploy"
RULE_FILES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
# A series selected by its name, with its label matchers: `exesdb_x_total{a="b", c=~"d"}`.
SELECTOR = re.compile(r"\b(exesdb_[a-z0-9_]*[a-z0-9])\b(?:\{([^}]*)\})?")
# A series a recording rule records, by its name: `exesdb:node_health:count`.
RECORDED = re.compile(r"\b(exesdb:[a-z0-9_:]+)")
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


def rules() -> list[dict[str, Any]]:
    """Every shipped recording and alerting rule."""
    return [
        rule
        for path in RULE_FILES
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
    ]


def metrics_named(text: str) -> set[str]:
    """The ``exesdb_`` series ``text`` (a PromQL expression) selects by name."""
    return {name for name, _ in SELECTOR.findall(text)}
