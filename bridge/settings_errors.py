"""A setting's value pydantic refused, said in one line: the variable, its fault, what it takes.

pydantic's own messages name neither the variable nor, for a number, its unit and range, and
may echo what they were given; ``describe_error`` words each error as ``load_settings`` reports
it, showing a given value only as ``bridge.settings_display`` allows.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from typing import Any, Final

from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from bridge.choices import choice_refused
from bridge.go_values import go_duration
from bridge.messages import pattern_refused
from bridge.probe_settings import value_problem
from bridge.redaction import redact_urls
from bridge.settings_display import SECRET_VARIABLES, URL_VARIABLES

__all__ = ["describe_error", "number_kind"]

# What a boolean setting takes, as docs/configuration.md says it.
_BOOLEAN_ALLOWED: Final = (
    "must be true or false (also 1/0, yes/no, on/off, t/f, y/n, in any letter case)"
)
# pydantic's errors for a number setting that is no number, or out of its range.
_NUMBER_ERRORS: Final = frozenset(
    {
        "int_parsing",
        "int_from_float",
        "int_type",
        "float_parsing",
        "float_type",
        "finite_number",
        "greater_than",
        "greater_than_equal",
        "less_than_equal",
    }
)
# A size typed with a unit: binary as these docs (MiB) and Kubernetes (Mi) write it, or a
# decimal one (MB, M), which people use for either.
_SIZE: Final = re.compile(r"(\d+(?:\.\d+)?) ?([kKMGT])(i?)B?")
_SIZE_POWER: Final = {"k": 1, "K": 1, "M": 2, "G": 3, "T": 4}


def describe_error(error: ErrorDetails, fields: Mapping[str, FieldInfo]) -> str:
    """``error`` (one of a ``ValidationError``'s) as one line naming its variable; ``fields``
    are the settings' fields, whose annotations say what a number setting takes."""
    variable = str(error["loc"][0]) if error["loc"] else "configuration"
    message = redact_urls(str(error["msg"]).removeprefix("Value error, "))
    if error["type"] == "bool_parsing":
        message = _BOOLEAN_ALLOWED  # pydantic's message does not say what it takes
    if error["type"] == "literal_error":
        # In the words of the other settings, the word meant named as EXESDB_BUS=memroy's is.
        message = choice_refused(error.get("input"), str(error["ctx"]["expected"]))
        if variable.endswith("_PROTOCOL") and str(error.get("input")).strip() == "http/json":
            # The specification lists http/json; the Python SDK ships no exporter for it.
            message += (
                ": the OpenTelemetry Python SDK has no http/json exporter, only grpc (OTLP/gRPC)"
                " and http/protobuf (OTLP/HTTP)"
            )
    if said := pattern_refused(error):
        # Said in words, as ingest says it: pydantic's message quotes the pattern, the very
        # characters refused (EXESDB_NODE's).
        message = said
    if error["type"] == "string_too_long":
        # pydantic's message names neither the length nor the variable, and would be followed
        # by the whole value (a node name of thousands of characters).
        given = error.get("input")
        length = f"{len(given)} characters" if isinstance(given, str) else "a value too long"
        return f"{variable}: has {length}; at most {error['ctx']['max_length']} are allowed"
    if error["type"] == "greater_than" and (fraction := _fraction_meant(variable, error)):
        return f"{variable}: {fraction}"  # the hint shows the value
    if error["type"] in _NUMBER_ERRORS and len(error["loc"]) == 1:
        # pydantic's "Input should be a valid integer" names neither the unit nor the range.
        info = next((i for i in fields.values() if i.validation_alias == variable), None)
        message = _number_allowed(variable, info, error.get("input")) or message
    if len(error["loc"]) > 1 and isinstance(error["loc"][1], int):
        # One item of a comma-separated list; the message shows it as it may be shown.
        return f"{variable} item {error['loc'][1] + 1}: {message}"
    if variable in SECRET_VARIABLES:
        return f"{variable}: {message}"
    given = error.get("input")
    if variable in URL_VARIABLES:
        return f"{variable}: {message}"  # the message shows the URL as it may be shown
    return value_problem(variable, message, given)


def _number_allowed(variable: str, info: FieldInfo | None, given: object) -> str | None:
    """What a number setting (``variable``, its field ``info``) takes, its unit and range
    (``must be a whole number of milliseconds from 100 to 86400000, e.g. 30000``), and a duration
    given with a unit (``5s``) in milliseconds; None for a variable that is no number setting."""
    if info is None:
        return None
    kind, bounds = number_kind(info)
    if kind is None:
        return None
    in_ms = variable.endswith(("_MS", "_INTERVAL"))
    # The Python SDK's exporters read seconds where the specification says milliseconds.
    in_seconds = variable.startswith("OTEL_") and variable.endswith("_TIMEOUT")
    if in_seconds:
        what = "a number of seconds"
    elif kind is float:
        what = "a number (percent)" if _is_threshold(variable) else "a number"
    elif in_ms:
        what = "a whole number of milliseconds"
    else:
        what = "a whole number of bytes" if variable.endswith("_BYTES") else "a whole number"
    low = next((b.ge for b in bounds if hasattr(b, "ge")), None)
    above = next((b.gt for b in bounds if hasattr(b, "gt")), None)
    high = next((b.le for b in bounds if hasattr(b, "le")), None)
    if kind is int and above is not None:
        low, above = above + 1, None
    if low is not None and high is not None:
        what += f" from {low} to {high}"
    elif low is not None:
        what += f", at least {low}"
    elif above is not None:
        what += f" above {above:g}"
        if high is not None:
            what += f" and at most {high:g}"
    if _is_threshold(variable):
        what += f" ({high:g} turns that status off)"
    if isinstance(info.default, int | float) and not isinstance(info.default, bool):
        what += f", e.g. {info.default:g}" if kind is float else f", e.g. {info.default}"
    if in_ms and isinstance(given, str):
        what += _duration_in_ms(given.strip())
    if variable.endswith("_BYTES") and isinstance(given, str):
        what += _size_in_bytes(given.strip())
    if in_seconds:
        what += "; the Python SDK reads seconds, not the specification's milliseconds"
    if isinstance(given, str) and "_" in given:
        what += "; digits grouped with _ are not taken (a stray one would change the number)"
    return f"must be {what}"


def _duration_in_ms(given: str) -> str:
    """``given``, a duration typed with a unit as the receivers file writes one (``8s``, Go's
    ``1h30m``), in milliseconds, as a refusal of a milliseconds setting ends with it (``; 8s is
    8000``); "" for another, or one that is no whole number of milliseconds."""
    try:
        ms = go_duration(given) * 1000
    except ValueError:
        return ""
    if given == "0" or abs(ms - round(ms)) > 1e-6:  # a float's sum: 0.1s is 100.00000000000001
        return ""
    return f"; {given} is {round(ms)}"


def _size_in_bytes(given: str) -> str:
    """``given``, a size typed with a unit (``1MiB``, ``128M``), in bytes, as a bytes setting's
    refusal ends with it (``; 1MiB is 1048576``; a decimal unit both ways); "" for another."""
    size = _SIZE.fullmatch(given)
    if size is None:
        return ""
    number, letter, binary = size[1], size[2], size[3]
    power = _SIZE_POWER[letter]
    in_binary = float(number) * 1024**power
    if binary:
        return f"; {given} is {int(in_binary)}" if in_binary.is_integer() else ""
    in_decimal = float(number) * 1000**power
    if not (in_binary.is_integer() and in_decimal.is_integer()):
        return ""
    unit = letter.upper() if letter != "k" else "K"
    return (
        f"; {given} is {int(in_binary)} as {unit}iB, {int(in_decimal)} as"
        f" {'k' if unit == 'K' else unit}B"
    )


def _is_threshold(variable: str) -> bool:
    """True for a resource threshold, ``EXESDB_CPU_DEGRADED`` and its kind (percent)."""
    return variable.endswith(("_DEGRADED", "_UNHEALTHY"))


def _fraction_meant(variable: str, error: ErrorDetails) -> str | None:
    """The hint for a resource threshold given as a fraction (``0.85`` for 85 %), which would
    judge nearly every sample degraded; None for any other value or setting."""
    try:
        given = float(error.get("input"))
    except (TypeError, ValueError):
        return None
    if not _is_threshold(variable) or not 0 < given < 1:  # 1: "above 1" says it all
        return None
    return (
        f"{given:g} looks like a fraction; thresholds are percent (above 1, at most 100), "
        f"e.g. {given * 100:g}"
    )


def number_kind(info: FieldInfo) -> tuple[type | None, list[Any]]:
    """``int`` or ``float`` and the bounds of the setting ``info`` is the field of
    (``Annotated[int, Field(ge=0)] | None`` included), or None when it is no number."""
    return _number_kind(info.annotation, list(info.metadata))


def _number_kind(annotation: Any, metadata: list[Any]) -> tuple[type | None, list[Any]]:
    """``int`` or ``float`` and the bounds of an annotation and its ``metadata``, or None when
    it is no number."""
    if annotation in (int, float):
        return annotation, metadata
    args = typing.get_args(annotation)
    # Annotated[int, Field(ge=0)]: the bounds follow the type.
    metadata = metadata + [m for arg in args if isinstance(arg, FieldInfo) for m in arg.metadata]
    for arg in args:
        if not isinstance(arg, FieldInfo) and arg is not type(None):
            kind, found = _number_kind(arg, [])
            if kind is not None:
                return kind, metadata + found
    return None, metadata
