"""Walks of a decoded payload's values: its keys and strings counted, its floats found finite.

What a body names is checked against what its envelope holds (``bridge.bus.decoding``): a key
given twice is kept once by either fast decoder, so the keys and string values the decoded
payload holds, at any depth, are counted (``keys_in``, ``strings_in``), the fields that may hold
objects or lists of strings found once per model (``object_fields``, ``string_lists``). Every
walk stops past MAX_DEPTH, whatever the decoders took.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Final, get_args, get_origin

from bridge.bus.depth import MAX_DEPTH
from bridge.messages import Message

__all__ = ["TOO_DEEP", "finite", "keys_in", "object_fields", "string_lists", "strings_in"]

TOO_DEEP: Final = 1 << 62
"""What ``keys_in`` counts for a value nested past MAX_DEPTH: more keys than any body names, so
that the decoders leave it to the reference (which refuses it)."""


def _walker(
    level: Callable[[Callable[[Any], int]], Callable[[Any], int]], deepest: Callable[[Any], int]
) -> Callable[[Any], int]:
    """A walk of a payload field's value, one function per level of nesting (a closure over the
    next, as cheap as a recursive function), ``deepest`` past MAX_DEPTH: never deeper than the
    envelope may be, whatever the decoders took."""
    walk = deepest
    for _ in range(MAX_DEPTH - 2):  # the envelope and its payload are the first two levels
        walk = level(walk)
    return walk


def _counting_keys(inner: Callable[[Any], int]) -> Callable[[Any], int]:
    def keys_in(value: Any) -> int:
        if isinstance(value, dict):
            return len(value) + sum(map(inner, value.values()))
        if isinstance(value, list):
            return sum(map(inner, value))
        return 0

    return keys_in


def _counting_strings(inner: Callable[[Any], int]) -> Callable[[Any], int]:
    def strings_in(value: Any) -> int:
        if isinstance(value, str):
            return 1
        if isinstance(value, dict):
            return sum(map(inner, value.values()))
        if isinstance(value, list):
            return sum(map(inner, value))
        return 0

    return strings_in


keys_in: Final = _walker(
    _counting_keys, lambda value: TOO_DEEP if isinstance(value, dict | list) else 0
)
"""The keys of the JSON objects in a payload field's ``value``, at any depth; TOO_DEEP for one
nested past MAX_DEPTH."""
strings_in: Final = _walker(_counting_strings, lambda value: int(isinstance(value, str)))
"""The string values in a payload field's ``value`` (keys aside), at any depth (up to
MAX_DEPTH: a deeper one has TOO_DEEP keys)."""


def finite(value: Any) -> bool:
    """False when ``value`` is or holds (at any depth) a float that is not finite."""
    if value.__class__ is float:
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(map(finite, value.values()))
    if isinstance(value, list):
        return all(map(finite, value))
    return True


def object_fields(model: type[Message]) -> tuple[str, ...]:
    """The fields of ``model`` whose values may hold JSON objects (Any, dicts, and lists of
    anything but strings)."""
    return tuple(
        name
        for name, info in model.__pydantic_fields__.items()
        if _holds_objects(info.annotation) and not _is_string_list(info.annotation)
    )


def _holds_objects(annotation: Any) -> bool:
    if annotation is Any or get_origin(annotation) in (dict, list):
        return True
    return any(_holds_objects(arg) for arg in get_args(annotation))


def string_lists(model: type[Message]) -> tuple[str, ...]:
    """The fields of ``model`` whose values are lists of strings (a cluster's node names): each
    item one string value and no key, so counted by the list's length (walking 200 000 names
    twice took some 45 ms, several times what decoding them takes)."""
    return tuple(
        name for name, info in model.__pydantic_fields__.items() if _is_string_list(info.annotation)
    )


def _is_string_list(annotation: Any) -> bool:
    if get_origin(annotation) is not list:
        return False
    (item,) = get_args(annotation)
    if get_origin(item) is Annotated:
        item = get_args(item)[0]
    return item is str
