"""Configuration from environment variables: the settings loaded and checked, every problem at once.

``load_settings`` is the integration API's entry point (docs/integration.md), hence this module's
name. It reads every variable (``bridge.settings``), then checks them across each other
(``bridge.settings_checks``); it raises one ``ConfigError`` listing each bad value and each
contradiction, one line each, naming the variable, its fault and what is allowed, without ever
echoing a secret (``bridge.settings_errors``).
"""

from __future__ import annotations

from pydantic import ValidationError

from bridge.errors import ConfigError
from bridge.settings import Settings
from bridge.settings_checks import cross_checks, receivers_file_warnings
from bridge.settings_errors import describe_error

__all__ = ["load_settings"]


def load_settings() -> Settings:
    """Read the environment; raise ConfigError listing every problem, one line each."""
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = [describe_error(error, Settings.model_fields) for error in exc.errors()]
        failing = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        fallback = _without(failing)
        if fallback is None:
            raise ConfigError(problems) from None
        # The cross-checks and file warnings of the other variables: every problem at once.
        problems += _not_naming(failing, cross_checks(fallback))
        notes = _not_naming(failing, receivers_file_warnings(fallback))
        raise ConfigError(problems, warnings=notes) from None
    problems = cross_checks(settings)
    if problems:
        # A receivers file with problems may also name a file it cannot read: both are said.
        raise ConfigError(problems, warnings=receivers_file_warnings(settings))
    return settings


def _without(failing: set[str]) -> Settings | None:
    """The settings with the ``failing`` variables at their defaults (None when that fails)."""
    defaults = {
        str(info.validation_alias): info.get_default(call_default_factory=True)
        for info in Settings.model_fields.values()
        if str(info.validation_alias) in failing
    }
    try:
        return Settings(**defaults)
    except ValidationError:
        return None


def _not_naming(variables: set[str], lines: list[str]) -> list[str]:
    return [line for line in lines if not any(variable in line for variable in variables)]
