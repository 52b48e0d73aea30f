"""Which text fields of a message a sink makes label values of, found by marking each in turn."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pydantic import ValidationError

from bridge.bus import Envelope
from bridge.messages import Message
from tests.messages.helpers import CASES
from tests.sinks.prometheus_support import envelope

MARK = "labelmark"
# What a label value may not hold (a C0 control, DEL and a C1 control), each between letters.
CONTROLS = ("\x00", "\x01", "\t", "\n", "\x1b", "\x7f", "\x85", "\x9b")


def fields_reaching(model: type[Message], labels: Callable[[Envelope], Iterable[str]]) -> list[str]:
    """The top-level text fields of ``model`` whose value shows in a label value ``labels``
    gives for its envelope: each field of the model's complete example set in turn to
    ``MARK`` (fields that cannot hold it, as enums and timestamps, left out)."""
    full = CASES[model].full
    found = []
    for field, value in full.items():
        if not isinstance(value, str):
            continue
        try:
            marked = envelope(model.TAG, **{**full, field: MARK})
        except ValidationError:
            continue
        if any(MARK in label for label in labels(marked)):
            found.append(field)
    return found


def takes_a_control_character(model: type[Message], field: str) -> list[str]:
    """The control characters ``model`` takes in ``field`` (in its complete example)."""
    taken = []
    for control in CONTROLS:
        try:
            model.model_validate({**CASES[model].full, field: f"label{control}mark"})
        except ValidationError:
            continue
        taken.append(control)
    return taken
