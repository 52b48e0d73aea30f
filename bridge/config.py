"""Configuration from environment variables: the settings loaded and checked, every problem at once.

``load_settings`` is the integration API's entry point (docs/integration.md), hence this module's
name. It reads every variable (``bridge.settings``), then checks them across each other
(``bridge.settings_checks``); it raises one ``ConfigError`` listing each bad value and each
contradiction, one line each, naming the variable, its fault and what is allowed, without ever
echoing a secret (``bridge.settings_errors``). Beside a refused value, the checks across values
are made of the values taken: none that the refused one may cause (``_not_caused_by``).
"""

from __future__ import annotations

import itertools
import math
import os
import re
import types
import typing
from typing import Any, Final

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from bridge.errors import ConfigError
from bridge.settings import Settings
from bridge.settings_checks import cross_checks, receivers_file_warnings
from bridge.settings_errors import describe_error

__all__ = ["load_settings"]

_RECEIVERS: Final = "EXESDB_WEBHOOK_URLS"
# Each refused switch or choice is read as each of its values (_readings): past this many
# readings (seven switches refused at once) no check across values is made beside the
# refusals, and a warning says they wait.
_MAX_READINGS: Final = 64
# Each setting's field, by its variable.
_FIELDS: Final = {str(info.validation_alias): info for info in Settings.model_fields.values()}


def load_settings() -> Settings:
    """Read the environment; raise ConfigError listing every problem, one line each."""
    try:
        settings = Settings()
    except ValidationError as exc:
        refusal = _refusal(exc)
        raise ConfigError(refusal.problems, warnings=refusal.warnings) from None
    problems = cross_checks(settings)
    if problems:
        # A receivers file with problems may also name a file it cannot read: both are said.
        raise ConfigError(problems, warnings=receivers_file_warnings(settings))
    return settings


def _refusal(exc: ValidationError) -> ConfigError:
    """Every problem of an environment with values refused (``exc``): each of them, then the
    cross-checks and file warnings of the values taken, and a warning for each problem a check
    against a refused value finds under some reading of it, with that reading (so that the
    problem the next round may bring is no surprise)."""
    problems = [describe_error(error, Settings.model_fields) for error in exc.errors()]
    refused = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
    readings = _readings(refused)
    if not readings:
        waits = "checks across settings wait until the values above are taken: check again then"
        return ConfigError(problems, warnings=[waits])
    receivers = _receivers_taken(exc) if _RECEIVERS in refused else None
    if receivers:
        refused.discard(_RECEIVERS)  # its items taken stand for it
    found = [(read, cross_checks(each, webhook_urls=receivers)) for read, each in readings]
    kept, waiting = _not_caused_by(refused, found)
    notes = _not_naming(refused, receivers_file_warnings(readings[0][1]))
    held = _held_back(waiting, found, kept)
    if waiting and not held:
        names, they = ", ".join(waiting), len(waiting) > 1
        held = [
            f"a check of {names} against the settings {'they go' if they else 'it goes'} with"
            f" waits until {'their values are' if they else 'its value is'} taken: check again"
            " once mended"
        ]
    return ConfigError(problems + kept, warnings=held + notes)


def _held_back(
    waiting: list[str], found: list[tuple[dict[str, Any], list[str]]], kept: list[str]
) -> list[str]:
    """Each problem a reading of the refused values found and ``kept`` leaves out, once, told
    with the reading that finds it (``with EXESDB_CPU_UNHEALTHY at its default (95): ...``; one
    whose words name that reading, ``... with EXESDB_INGEST=true it must ...``, as it is): what
    the next round brings once they are mended. A switch or choice every reading of which finds it
    is left out of its words; a variable read at its default alone is said so."""
    if not waiting:
        return []
    finding: dict[str, list[dict[str, Any]]] = {}
    for read, lines in found:
        for line in lines:
            if line not in kept:
                finding.setdefault(line, []).append(read)
    held = []
    for line, reads in finding.items():
        words = []
        for variable in waiting:
            meanings = _meanings(_FIELDS[variable])
            values = list(dict.fromkeys(read[variable] for read in reads if variable in read))
            if len(meanings) == 1:
                words.append(f"{variable} at its default ({_shown_value(meanings[0])})")
            elif values and len(values) < len(meanings):
                words.append(f"{variable}={'/'.join(_shown_value(v) for v in values)}")
        said = [word for word in words if f"with {word} " not in line]
        if words and not said:
            held.append(line)  # it names its reading itself: "with EXESDB_INGEST=true it must"
        else:
            held.append(f"with {', '.join(said)}: {line}" if said else f"once mended: {line}")
    return held


def _shown_value(value: Any) -> str:
    """A setting's value as the environment writes it (true, not True; unset for None)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 95, as a threshold is written
    return "unset" if value is None else str(value)


def _not_caused_by(
    refused: set[str], found: list[tuple[dict[str, Any], list[str]]]
) -> tuple[list[str], list[str]]:
    """The problems found in every reading of the refused values (``found``: the values read
    and the problems found, for each) that name none of them, and the refused variables whose
    checks wait: the other problems are consequences of a refused value, not problems of the
    values taken (``EXESDB_CPU_DEGRADED=97`` is checked against a refused
    ``EXESDB_CPU_UNHEALTHY`` once that is mended, and an OTLP endpoint against a refused
    protocol)."""
    agreed = [line for line in found[0][1] if all(line in lines for _, lines in found)]
    waiting = {v for v in refused if any(_names(v).search(line) for line in agreed)}
    for variable in refused:
        # A switch or choice whose readings find other problems, all else alike, causes them.
        seen: dict[tuple[Any, ...], frozenset[str]] = {}
        for read, lines in found:
            rest = tuple(value for name, value in sorted(read.items()) if name != variable)
            if seen.setdefault(rest, frozenset(lines)) != frozenset(lines):
                waiting.add(variable)
    return _not_naming(refused, agreed), sorted(waiting)


def _receivers_taken(exc: ValidationError) -> dict[int, str]:
    """The items of ``EXESDB_WEBHOOK_URLS`` taken beside those refused, by item number as the
    problems number them, a URL given twice once (its first): compared with the receivers file
    at once, not after the refused items are mended."""
    refused_items = {
        error["loc"][1]
        for error in exc.errors()
        if error["loc"][:1] == (_RECEIVERS,) and len(error["loc"]) == 2
    }
    # Split as Settings splits the list, so that the numbers are the ones its problems give.
    items = [item.strip() for item in os.environ.get(_RECEIVERS, "").split(",") if item.strip()]
    taken: dict[int, str] = {}
    for index, url in enumerate(items):
        if index not in refused_items and url not in taken.values():
            taken[index + 1] = url
    return taken


def _readings(refused: set[str]) -> list[tuple[dict[str, Any], Settings]]:
    """The settings with each ``refused`` variable read as each value it may have been meant to
    be (a switch as true and false, a choice as each choice) or, for any other, at its default,
    beside the values read; none when they are too many or one fails."""
    variables = sorted(refused)
    meanings = [_meanings(_FIELDS[variable]) for variable in variables]
    if math.prod(len(values) for values in meanings) > _MAX_READINGS:
        return []
    readings = []
    for values in itertools.product(*meanings):
        read = dict(zip(variables, values, strict=True))
        try:
            readings.append((read, Settings(**read)))
        except ValidationError:
            return []
    return readings


def _meanings(info: FieldInfo) -> tuple[Any, ...]:
    """Each value a refused setting may have been meant to be: each of a switch's or a choice's
    (a protocol's, an exporter's), else its default alone."""
    annotation = info.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        # An optional choice (a signal's own protocol): set, it was meant to be one of them.
        chosen = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        annotation = chosen[0] if len(chosen) == 1 else annotation
    if annotation is bool:
        return (False, True)
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    return (info.get_default(call_default_factory=True),)


def _not_naming(variables: set[str], lines: list[str]) -> list[str]:
    named = [_names(variable) for variable in variables]
    return [line for line in lines if not any(name.search(line) for name in named)]


def _names(variable: str) -> re.Pattern[str]:
    """Finds ``variable`` named in a line (not ``EXESDB_NODE`` in ``EXESDB_NODE_FORGET_MS``)."""
    return re.compile(rf"(?<![A-Z0-9_]){variable}(?![A-Z0-9_])")
