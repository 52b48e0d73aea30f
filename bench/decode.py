"""Envelope decoding, the alternatives side by side on the same bytes: CPU per message.

Each decoder takes the same NDJSON lines (both payload shapes) and returns Envelopes; the runs are
interleaved and repeated, and the table shows medians of ``time.process_time``:

- reference: ``json.loads``, field-by-field checks, ``model_validate`` (the stdlib approach);
- jiter + reference: the same checks on ``pydantic_core.from_json``'s parse;
- previous fast path: one ``TypeAdapter`` over a union of TypedDict envelopes holding the models
  as they validate themselves (Python validators for timestamps and derived defaults), the
  Envelope built in Python; a payload missing a defaulted field fails it and the reference
  decodes it again;
- wire schema from Python objects: ``json.loads``, then the wire schema's ``validate_python``;
- one call per batch: the NDJSON lines joined into one JSON array for one ``validate_json``
  (measured only: lines could merge into one element, so a batch could pass that no line does);
- this tree: ``decode_envelopes``, one ``validate_json`` of the wire schema per line;
- the same without the count of the keys a body names (what refusing a key given twice costs:
  measured only, it would take ``{"id": …, "id": …}``);
- the floor: ``validate_json`` alone, nothing done after it (measured only: ``ts`` left as
  text, defaults not filled).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Final, Literal, Union

import pydantic_core
from pydantic import ConfigDict, Discriminator, Field, TypeAdapter, ValidationError
from pydantic_core import SchemaValidator, core_schema
from typing_extensions import TypedDict

from bench._util import median, table
from bench.workload import SHAPES, Shape, Source
from bridge.bus import Envelope, Rejection
from bridge.bus import envelope as wire
from bridge.messages import MESSAGE_TYPES

COUNT: Final = 5_000
_assign: Final = object.__setattr__

Decoder = Callable[[Sequence[bytes]], list[Any]]


def _previous() -> Decoder:
    """The decoder before this round, rebuilt here as it was."""
    strict_str: Any = {"strict": True}
    variants = []
    for (instance, tag), model in MESSAGE_TYPES.items():
        variant = TypedDict(  # type: ignore[misc]  # noqa: UP013 (fields built at run time)
            f"_Envelope_{tag}",
            {
                "v": Annotated[int, Field(ge=1, le=1, strict=True)],
                "id": Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{8,128}$", **strict_str)],
                "instance": Literal[instance],
                "topic": Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$", **strict_str)],
                "tag": Literal[tag],
                "node": Annotated[str, Field(min_length=1, max_length=255, **strict_str)],
                "ts": Annotated[str, Field(max_length=40, **strict_str)],
                "payload": model,
            },
        )
        variant.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
        variants.append(variant)
    validator = TypeAdapter(
        Annotated[Union[tuple(variants)], Discriminator("tag")]  # type: ignore[arg-type]  # noqa: UP007
    ).validator

    def decode(lines: Sequence[bytes]) -> list[Any]:
        out = []
        for line in lines:
            try:
                data = validator.validate_json(line)
            except ValidationError:
                out.append(wire.decode_envelope_reference(line))
                continue
            text = data["ts"]
            ts, unix_ts = wire._INSTANTS.get(text) or wire._instant(text)
            payload = data["payload"]
            out.append(
                Envelope(
                    data["id"], data["instance"], data["topic"], data["tag"], data["node"], ts,
                    payload, unix_ts,
                )
            )  # fmt: skip
        return out

    return decode


def _finish(envelope: Any) -> Any:
    """What ``_decode_fast`` does after its validator (the alternatives using the wire schema)."""
    instant = wire._INSTANTS.get(envelope.ts) or wire._instant(envelope.ts)
    _assign(envelope, "ts", instant[0])
    _assign(envelope, "unix_ts", instant[1])
    payload = envelope.payload
    values = payload.__dict__
    if values.get("node", "") is None:
        values["node"] = envelope.node
        payload.__pydantic_fields_set__.add("node")
    for name in payload.DERIVED:
        if values[name] is None:
            payload.fill_derived(envelope.node)
            break
    return envelope


def _from_python(lines: Sequence[bytes]) -> list[Any]:
    validate = wire._WIRE.validate_python
    return [_finish(validate(json.loads(line))) for line in lines]


def _one_call() -> Decoder:
    with wire._incomplete_models():
        validator = SchemaValidator(core_schema.list_schema(wire._wire_schema()))

    def decode(lines: Sequence[bytes]) -> list[Any]:
        return [_finish(e) for e in validator.validate_json(b"[" + b",".join(lines) + b"]")]

    return decode


def _jiter(lines: Sequence[bytes]) -> list[Any]:
    return [wire.decode_envelope_object(pydantic_core.from_json(line)) for line in lines]


def _this_tree(lines: Sequence[bytes]) -> list[Any]:
    envelopes, failure = wire.decode_envelopes(lines)
    if failure is not None:
        raise RuntimeError(f"refused: {failure}")
    return envelopes


def _unchecked(lines: Sequence[bytes]) -> list[Any]:
    out = []
    for line in lines:
        decoded = wire._decode_unchecked(line)
        out.append(decoded[0] if decoded is not None else wire.decode_envelope_reference(line))
    return out


def _floor(lines: Sequence[bytes]) -> list[Any]:
    validate = wire._WIRE.validate_json
    return [validate(line) for line in lines]


# Rows that do less than decoding (see the module docstring): not compared with this tree's.
MEASURED_ONLY: Final = frozenset(
    {"this tree without the repeated-key check", "floor: validate_json alone"}
)


def decoders() -> dict[str, Decoder]:
    """Each alternative by its name in the table."""
    return {
        "reference (json.loads, checks, model_validate)": lambda lines: [
            wire.decode_envelope_reference(line) for line in lines
        ],
        "jiter parse + the reference's checks": _jiter,
        "previous fast path (TypeAdapter, models' own validators)": _previous(),
        "json.loads + wire schema validate_python": _from_python,
        "one validate_json per batch (a JSON array)": _one_call(),
        "this tree: wire schema validate_json per line": _this_tree,
        "this tree without the repeated-key check": _unchecked,
        "floor: validate_json alone": _floor,
    }


def run(*, quick: bool = False) -> str:
    """Decode the same lines with each alternative, interleaved; the table."""
    repeats = 3 if quick else 7
    lines: dict[Shape, list[bytes]] = {}
    for shape in SHAPES:
        source = Source(shape, nodes=125)
        lines[shape] = [line for _ in range(COUNT // 1_000) for line in _lines(source)]
    alternatives = decoders()
    results: dict[tuple[str, Shape], list[float]] = {
        (name, shape): [] for name in alternatives for shape in SHAPES
    }
    for shape in SHAPES:  # each decodes the same envelopes
        expected = _this_tree(lines[shape])
        for name, decode in alternatives.items():
            if name not in MEASURED_ONLY and not _same(decode(lines[shape]), expected):
                raise RuntimeError(f"{name} decodes {shape} payloads differently")
    for _ in range(repeats):
        for name, decode in alternatives.items():
            for shape in SHAPES:
                started = time.process_time()
                decode(lines[shape])
                elapsed = time.process_time() - started
                results[name, shape].append(elapsed / len(lines[shape]) * 1e6)
    reference = {shape: median(results[next(iter(alternatives)), shape]) for shape in SHAPES}
    rows = []
    for name in alternatives:
        row: list[Any] = [name]
        for shape in SHAPES:
            us = median(results[name, shape])
            row += [us, reference[shape] / us]
        rows.append(row)
    return table(
        f"Envelope decode alternatives, same bytes ({repeats} x {COUNT:,} messages, median)",
        ["decoder", "complete: CPU us/msg", "x reference", "minimal: CPU us/msg", "x reference"],
        rows,
    )


def _lines(source: Source) -> list[bytes]:
    body, _ = source.batch(1_000)
    return [line for line in body.split(b"\n") if line]


def _same(decoded: list[Any], expected: list[Envelope]) -> bool:
    """Same envelopes (defaults drawn from the clock aside)."""
    if len(decoded) != len(expected):
        return False
    for one, other in zip(decoded, expected, strict=True):
        if isinstance(one, Rejection) or (one.id, one.ts, one.node) != (
            other.id,
            other.ts,
            other.node,
        ):
            return False
        if one.payload.model_dump(exclude={"timestamp"}) != other.payload.model_dump(
            exclude={"timestamp"}
        ):
            return False
    return True


if __name__ == "__main__":
    print(run())
