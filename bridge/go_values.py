"""Values as Go's YAML reader takes them: durations, booleans and whole numbers, with ranges.

The receivers file and the web config borrow Go schemas (Alertmanager's, the exporter-toolkit's),
read there by yaml.v2, so a value is taken here as Go takes it: a duration as
``time.ParseDuration`` reads it (``go_duration``: ``1m30s``, never a number without a unit); a
boolean (``GoBool``) only unquoted, ``true``/``false``, ``yes``/``no``, ``on``/``off`` or
``y``/``n``, never text in quotes or a number; a whole number (``GoInt``) no text in quotes nor a
boolean. Where text goes an unquoted ``y`` or ``n`` is that text, as in Go (``GoWord``, which
``bridge.yamlconfig``'s loader makes of it). ``go_duration_up_to`` and ``go_int_up_to`` bound
them, where a value past the range is a slip.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BeforeValidator

__all__ = [
    "GoBool",
    "GoInt",
    "GoWord",
    "go_duration",
    "go_duration_up_to",
    "go_int_up_to",
]

# Go's time.ParseDuration (Alertmanager's `timeout`, the toolkit's `rate_limit.interval`): "1m30s".
_DURATION: Final = re.compile(r"(?:(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+")
_PART: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
# The words Go's yaml.v2 reads as a boolean (YAML 1.1): each in lower case, capitalised or upper
# case, no other.
_GO_BOOLEAN_WORDS: Final = frozenset(
    spelt
    for word in ("y", "yes", "on", "true", "n", "no", "off", "false")
    for spelt in (word, word.capitalize(), word.upper())
)
# A whole number as text: in a YAML file, one written in quotes.
_WHOLE: Final = re.compile(r"[-+]?[0-9]+")
_UNIT_SECONDS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def go_duration(value: Any) -> float:
    """A Go duration (``10s``, ``1m30s``, ``0``) in seconds; ValueError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool) and value == 0:
        return 0.0
    if isinstance(value, int | float) and not isinstance(value, bool):
        # As Go says "missing unit": a number alone is no duration, and which unit is meant is
        # the writer's to say (Alertmanager's examples are in seconds).
        raise ValueError(
            f"{value!r} has no unit: must be a duration such as 10s, 1m30s or 500ms "
            f"({value}s for seconds)"
        )
    if not isinstance(value, str):
        raise ValueError("must be a duration such as 10s, 1m30s or 500ms")
    text = value.strip()
    if text == "0":
        return 0.0
    if not _DURATION.fullmatch(text):
        raise ValueError(f"{value!r} is not a duration such as 10s, 1m30s or 500ms")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(text))


def go_duration_up_to(longest: str, *, zero: str, example: str) -> BeforeValidator:
    """The validator of a Go duration (``go_duration``) in seconds from 0 to ``longest`` (as
    written: ``10m``), for an ``Annotated[float, ...]``: past it a value is a slip (a stray zero,
    milliseconds written as seconds), refused naming the range, what 0 stands for (``zero``)
    and an ``example``."""
    most = go_duration(longest)

    def bounded(value: Any) -> float:
        seconds = go_duration(value)
        if seconds > most:
            raise ValueError(
                f"must be a duration from 0 ({zero}) to {longest}, e.g. {example} (got {value!r})"
            )
        return seconds

    return BeforeValidator(bounded)


def _go_bool(value: Any) -> bool:
    """A boolean as Go's YAML reader takes one: only an unquoted ``true``/``false`` (or YAML 1.1's
    ``yes``/``no``, ``on``/``off``, ``y``/``n``, which ``read_yaml`` reads as Go does);
    ValueError for text (one of those words in quotes told to go without them) or a number,
    which Go refuses ("cannot unmarshal !!str")."""
    if isinstance(value, bool):
        return value
    if isinstance(value, GoWord):
        return value in ("y", "Y")
    got = f" (got {value!r})" if isinstance(value, str | int | float) else ""
    # Only such a word in quotes reads as text here: unquoted, the reader made it a boolean.
    quoted = isinstance(value, str) and value.strip() in _GO_BOOLEAN_WORDS
    how = " without quotes, as Go's YAML reader asks" if quoted else ""
    raise ValueError(f"must be true or false{how} (it also takes yes/no, on/off and y/n){got}")


GoBool = Annotated[bool, BeforeValidator(_go_bool)]


def _go_int(value: Any) -> Any:
    """A whole number as Go's YAML reader takes one into an int or uint (``max_alerts``,
    ``burst``): ValueError for text (a number in quotes, ``'5'``, told to go without them) or a
    boolean, which Go refuses ("cannot unmarshal !!str") where pydantic alone would take them."""
    if isinstance(value, bool):
        raise ValueError(f"must be a whole number, not a boolean (got {str(value).lower()})")
    if isinstance(value, str):
        # Only a number in quotes reads as one here: unquoted, the reader made it an int.
        quoted = _WHOLE.fullmatch(value.strip()) is not None
        how = " without quotes, as Go's YAML reader asks" if quoted else ""
        raise ValueError(f"must be a whole number{how} (got {value!r})")
    return value


GoInt = Annotated[int, BeforeValidator(_go_int)]


def go_int_up_to(most: int, *, example: int, zero: str = "") -> AfterValidator:
    """The validator of a ``GoInt`` from 0 to ``most``, for an ``Annotated[GoInt, ...]``: past
    it a value is a slip, refused naming the range, what 0 stands for (``zero``, if anything
    but 0) and an ``example``."""
    lowest = f"0 ({zero})" if zero else "0"

    def bounded(value: int) -> int:
        if not 0 <= value <= most:
            raise ValueError(
                f"must be a whole number from {lowest} to {most}, e.g. {example} (got {value})"
            )
        return value

    return AfterValidator(bounded)


class GoWord(str):
    """An unquoted ``y``, ``Y``, ``n`` or ``N``: a boolean to Go's yaml.v2 (YAML 1.1) where one
    goes (``GoBool``), and the text as written where text goes (a user's name, a header's value),
    as Go takes it; PyYAML alone reads it as text, which a boolean key must refuse in quotes."""

    __slots__ = ()
