"""Envelope decoding, the alternatives side by side on the same bytes: CPU per message.

Each decoder takes the same NDJSON lines (both payload shapes) and returns Envelopes; the runs are
interleaved and repeated, with the heap settled as a bridge process settles it, and the table
shows medians of ``time.process_time``:

- reference: ``json.loads``, field-by-field checks, ``model_validate`` (the stdlib approach);
- jiter + reference: the same checks on ``pydantic_core.from_json``'s parse;
- previous fast path: one ``TypeAdapter`` over a union of TypedDict envelopes holding the models
  as they validate themselves (Python validators for timestamps and derived defaults), the
  Envelope built in Python; a payload missing a defaulted field fails it and the reference
  decodes it again;
- wire schema from Python objects: ``json.loads`` (or orjson's, when orjson is installed), then
  the wire schema's ``validate_python``;
- one call per batch: the NDJSON lines joined into one JSON array for one ``validate_json``
  (measured only: lines could merge into one element, so a batch could pass that no line does);
- pydantic-core per line: the wire schema's ``validate_json`` for each line, then what the
  decoder does after it (the fast path before msgspec; now the second path, for lax input);
- msgspec + ``model_construct``: this tree's Structs, the models built by pydantic's
  ``model_construct`` instead of the generated builders (what building them that way costs);
- this tree: ``decode_envelopes``: msgspec Structs generated from the models per line, their
  values made the models' by generated code, the batch's key count and id/topic alphabets
  checked at once, and every payload read (its model built, as the other rows build it);
- the same with the payloads left unbuilt (what ingest's sinks cost: they read ``fields``);
- the same without the count of the keys a body names (what refusing a key given twice costs:
  measured only, it would take ``{"id": …, "id": …}``);
- floors, measured only: msgspec decoding the Structs alone (no models, no Envelopes, ``ts`` and
  defaults left as they are), and pydantic-core's ``validate_json`` alone.

Every line has its own timestamp (a millisecond apart), so the cache of parsed timestamps misses
as it does on a live bus; ``--timestamps repeated`` stamps each batch of 1 000 with one.

    .venv/bin/python -m bench.decode [--quick] [--timestamps distinct|repeated] [--baseline REV]
        [--names ascii|cyrillic|persian]

``--names`` writes the node names (``node1@bench``, in the envelope and the payloads) in
Cyrillic (a Russian word for node) or in Persian with a ZWNJ between two letters that join (a
joiner where RFC 5892 takes one), raw in UTF-8 as senders write them: what names outside ASCII
cost.

``--baseline REV`` (repeatable) measures ``decode_envelopes`` instead, as the two "this tree"
rows do, on the same bytes in one process per tree (REV's from ``git archive REV``), interleaved
and repeated: each tree's median and this tree's ratio against each REV.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union

import msgspec
import pydantic_core
from pydantic import ConfigDict, Discriminator, Field, TypeAdapter, ValidationError
from pydantic_core import SchemaValidator, core_schema
from typing_extensions import TypedDict

from bench._util import (
    add_baseline_argument,
    argument_parser,
    baseline_table,
    interleaved,
    median,
    revision_trees,
    serve,
    settled_heap,
    table,
    tree_workers,
)
from bench.workload import SHAPES, Shape, Source
from bridge.bus import Envelope, Rejection, structs
from bridge.bus import decoding as wire
from bridge.messages import MESSAGE_TYPES

COUNT: Final = 5_000

Decoder = Callable[[Sequence[bytes]], list[Any]]


def _previous() -> Decoder:
    """The decoder before this round, rebuilt here as it was."""
    # Imported here, not with the module: see _jiter.
    from bridge.bus.problems import decode_envelope_reference

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
                out.append(decode_envelope_reference(line))
                continue
            text = data["ts"]
            instant = wire._INSTANTS.get(text) or wire._instant(text)
            if instant is None:  # no timestamp: the reference refuses it, wording why
                out.append(decode_envelope_reference(line))
                continue
            ts, unix_ts, _ = instant
            payload = data["payload"]
            out.append(
                Envelope(
                    data["id"], data["instance"], data["topic"], data["tag"], data["node"], ts,
                    payload, unix_ts,
                )
            )  # fmt: skip
        return out

    return decode


def _finish(validated: Any) -> Any:
    """What the pydantic-core path does after its validator (the alternatives using the wire
    schema), on the benchmark's lines: each of them a valid envelope."""
    instant = wire._INSTANTS.get(validated.ts) or wire._instant(validated.ts)
    if instant is None:
        raise ValueError(f"not a timestamp: {validated.ts!r}")
    payload = validated.payload
    values = payload.__dict__
    if values.get("node", "") is None:
        values["node"] = validated.node
        payload.__pydantic_fields_set__.add("node")
    for name in payload.DERIVED:
        if values[name] is None:
            payload.fill_derived(validated.node)
            break
    return Envelope(
        validated.id, validated.instance, validated.topic, validated.tag, validated.node,
        instant[0], payload, instant[1],
    )  # fmt: skip


def _pydantic_core(lines: Sequence[bytes]) -> list[Any]:
    from bridge.bus.problems import decode_envelope_reference  # see _jiter

    out = []
    for line in lines:
        decoded = wire._decode_unchecked(line)
        out.append(decoded[0] if decoded is not None else decode_envelope_reference(line))
    return out


def _construct() -> Decoder:
    """msgspec's Structs, the models built with ``model_construct`` (defaults and timestamps
    done in Python around it)."""
    # Here, not at the top: a baseline tree's worker imports this module too, and a tree before
    # structs.py was split has no bridge.bus.instants.
    from bridge.bus.instants import timestamp

    decoder, builders = structs.CLEAN
    # Each wire envelope Struct's message type, by the tag it is decoded on.
    payloads = {}
    for kind in builders:
        assert issubclass(kind, msgspec.Struct), kind
        tag = kind.__struct_config__.tag
        assert isinstance(tag, str), kind
        payloads[kind] = structs.PAYLOADS[tag]

    def decode(lines: Sequence[bytes]) -> list[Any]:
        out = []
        for line in lines:
            wire_envelope = decoder.decode(line)
            instant = wire._INSTANTS.get(wire_envelope.ts) or wire._instant(wire_envelope.ts)
            if instant is None:  # the benchmark's lines are valid envelopes
                raise ValueError(f"not a timestamp: {wire_envelope.ts!r}")
            payload = payloads[wire_envelope.__class__]
            given = {
                name: value
                for name, value in msgspec.structs.asdict(wire_envelope.payload).items()
                if value is not msgspec.UNSET
            }
            if given.get("timestamp") is not None:
                given["timestamp"] = timestamp(given["timestamp"])
            if "node" in payload.model.FILLED and given.get("node") is None:
                given["node"] = wire_envelope.node
            for name in payload.model.DERIVED:
                given.setdefault(name, None)  # for fill_derived, not the model's default
            message = payload.model.model_construct(**given)
            if any(getattr(message, name, 0) is None for name in payload.model.DERIVED):
                message.fill_derived(wire_envelope.node)
            out.append(
                Envelope(
                    wire_envelope.id, wire_envelope.instance, wire_envelope.topic, payload.tag,
                    wire_envelope.node, instant[0], message, instant[1],
                )
            )  # fmt: skip
        return out

    return decode


def _msgspec_alone(lines: Sequence[bytes]) -> list[Any]:
    decode = structs.CLEAN[0].decode
    return [decode(line) for line in lines]


def _from_python(loads: Callable[[bytes], Any]) -> Decoder:
    validate = wire._wire()[0].validate_python

    def decode(lines: Sequence[bytes]) -> list[Any]:
        return [_finish(validate(loads(line))) for line in lines]

    return decode


def _one_call() -> Decoder:
    # The schema built before the models are marked incomplete, as the decoder's own is: marked,
    # each model's wire schema rebuilds it (model_rebuild) and loses the wire schema's defaults.
    schema = core_schema.list_schema(wire._wire_schema())
    with wire._incomplete_models():
        validator = SchemaValidator(schema)

    def decode(lines: Sequence[bytes]) -> list[Any]:
        return [_finish(e) for e in validator.validate_json(b"[" + b",".join(lines) + b"]")]

    return decode


def _jiter(lines: Sequence[bytes]) -> list[Any]:
    # Imported here, not with the module: a --baseline worker runs this script on a revision's
    # bridge, which may have the reference decoder in bridge.bus.decoding (before the split).
    from bridge.bus.problems import decode_envelope_object

    return [decode_envelope_object(pydantic_core.from_json(line)) for line in lines]


def _this_tree(lines: Sequence[bytes]) -> list[Any]:
    envelopes, failure = wire.decode_envelopes(lines)
    if failure is not None:
        raise RuntimeError(f"refused: {failure}")
    return envelopes


def _this_tree_built(lines: Sequence[bytes]) -> list[Any]:
    envelopes = _this_tree(lines)
    for envelope in envelopes:
        envelope.payload  # noqa: B018 (built when first read)
    return envelopes


def _unchecked(lines: Sequence[bytes]) -> list[Any]:
    envelopes = wire._decode_structs(lines, b"".join(lines))[0]
    if None in envelopes:
        raise RuntimeError("a line missed the msgspec path")
    return envelopes


def _floor(lines: Sequence[bytes]) -> list[Any]:
    validate = wire._wire()[0].validate_json
    return [validate(line) for line in lines]


# Rows that do less than decoding (see the module docstring): not compared with this tree's.
MEASURED_ONLY: Final = frozenset(
    {
        "this tree without the repeated-key check",
        "floor: msgspec Structs alone (no models)",
        "floor: pydantic-core validate_json alone",
    }
)


def decoders() -> dict[str, Decoder]:
    """Each alternative by its name in the table."""
    from bridge.bus.problems import decode_envelope_reference  # see _jiter

    alternatives: dict[str, Decoder] = {
        "reference (json.loads, checks, model_validate)": lambda lines: [
            decode_envelope_reference(line) for line in lines
        ],
        "jiter parse + the reference's checks": _jiter,
        "previous TypeAdapter path (models' own validators)": _previous(),
        "json.loads + wire schema validate_python": _from_python(json.loads),
    }
    try:
        import orjson
    except ImportError:
        pass
    else:
        alternatives["orjson.loads + wire schema validate_python"] = _from_python(orjson.loads)
    alternatives.update(
        {
            "one validate_json per batch (a JSON array)": _one_call(),
            "pydantic-core: wire schema validate_json per line": _pydantic_core,
            "msgspec Structs + model_construct": _construct(),
            "this tree: msgspec Structs, generated builders": _this_tree_built,
            "this tree, the payloads' models left unbuilt": _this_tree,
            "this tree without the repeated-key check": _unchecked,
            "floor: msgspec Structs alone (no models)": _msgspec_alone,
            "floor: pydantic-core validate_json alone": _floor,
        }
    )
    return alternatives


def disagreeing(
    alternatives: Mapping[str, Decoder], lines: Mapping[Shape, Sequence[bytes]]
) -> list[str]:
    """Which of ``alternatives`` (those measured only aside) decode the ``lines`` of a shape
    otherwise than this tree's ``decode_envelopes``, as ``"name: shape"``."""
    found = []
    for shape, batch in lines.items():
        expected = _this_tree(batch)
        for name, decode in alternatives.items():
            if name not in MEASURED_ONLY and not _same(decode(batch), expected):
                found.append(f"{name}: {shape}")
    return found


# The node names of --names: each node{n}@bench as it is written instead.
NAMES: Final = {
    "ascii": b"node",
    "cyrillic": "\u0443\u0437\u0435\u043b".encode(),
    "persian": "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645".encode(),
}
_NODE_NAME: Final = re.compile(rb'"node(\d+@bench)"')


def run(
    *,
    quick: bool = False,
    distinct_ts: bool = True,
    baseline: Sequence[str] = (),
    names: str = "ascii",
) -> str:
    """Decode the same lines with each alternative, interleaved; the table (or, given
    ``baseline`` revisions, this tree's decoder beside theirs)."""
    repeats = 3 if quick else 7
    lines = {shape: _lines(Source(shape, nodes=125), distinct_ts) for shape in SHAPES}
    if names != "ascii":
        written = b'"' + NAMES[names] + rb'\1"'
        lines = {
            shape: [_NODE_NAME.sub(written, line) for line in batch]
            for shape, batch in lines.items()
        }
    if baseline:
        return _against(baseline, repeats, lines, distinct_ts)
    alternatives = decoders()
    results: dict[tuple[str, Shape], list[float]] = {
        (name, shape): [] for name in alternatives for shape in SHAPES
    }
    differing = disagreeing(alternatives, lines)  # each decodes the same envelopes
    if differing:
        raise RuntimeError(f"decoded otherwise than this tree: {', '.join(differing)}")
    with settled_heap():
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
        f"Envelope decode alternatives, same bytes ({repeats} x {COUNT:,} messages,"
        f" {_stamps(distinct_ts)}, median)",
        ["decoder", "complete: CPU us/msg", "x reference", "minimal: CPU us/msg", "x reference"],
        rows,
    )


# What a tree's worker measures: its decode_envelopes, the payloads built and left unbuilt.
_TREE_ROWS: Final = {
    "decode_envelopes, payloads built": _this_tree_built,
    "decode_envelopes, payloads unbuilt": _this_tree,
}


def _against(
    revisions: Sequence[str], repeats: int, lines: dict[Shape, list[bytes]], distinct_ts: bool
) -> str:
    """This tree's ``decode_envelopes`` beside each revision's, one worker process per tree on
    the same lines, interleaved."""
    figures: dict[str, dict[str, list[float]]] = {
        f"{row}, {shape}": {} for row in _TREE_ROWS for shape in SHAPES
    }
    with tempfile.TemporaryDirectory(prefix="exesdb-bench-decode-") as scratch:
        given = Path(scratch) / "lines.json"
        text = {shape: [line.decode() for line in lines[shape]] for shape in SHAPES}
        given.write_text(json.dumps(text))
        trees = revision_trees(revisions, Path(scratch))
        with tree_workers(trees, Path(__file__), "--worker", str(given)) as workers:
            for tree in interleaved(trees, repeats):
                for figure, us in workers[tree.name].ask("measure").items():
                    figures[figure].setdefault(tree.name, []).append(us)
    return baseline_table(
        f"decode_envelopes, same bytes ({repeats} x {COUNT:,} messages per shape, "
        f"{_stamps(distinct_ts)}, interleaved)",
        "CPU us/msg",
        figures,
        trees,
    )


def _worker(given: Path) -> None:
    """One tree's side of ``_against``: ``measure`` answered with CPU us per message by
    figure, this process's ``bridge`` decoding the lines in ``given``."""
    text = json.loads(given.read_text())
    lines = {shape: [line.encode() for line in text[shape]] for shape in text}

    def measure(_: list[str]) -> dict[str, float]:
        out = {}
        for row, decode in _TREE_ROWS.items():
            for shape, batch in lines.items():
                started = time.process_time()
                decode(batch)
                out[f"{row}, {shape}"] = (time.process_time() - started) / len(batch) * 1e6
        return out

    measure([])  # warm up: the decoders' first calls
    with settled_heap():
        serve(measure)


def _stamps(distinct_ts: bool) -> str:
    return "a timestamp per line" if distinct_ts else "one timestamp per 1,000 lines"


def _lines(source: Source, distinct_ts: bool) -> list[bytes]:
    if distinct_ts:
        return source.envelopes(COUNT, distinct_ts=True)
    return [line for _ in range(COUNT // 1_000) for line in source.envelopes(1_000)]


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


def main() -> None:
    """Parse the arguments and print the table."""
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats, not 7")
    parser.add_argument("--timestamps", choices=["distinct", "repeated"], default="distinct")
    add_baseline_argument(parser, "decoder")
    parser.add_argument("--names", choices=list(NAMES), default="ascii")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker)
        return
    print(
        run(
            quick=args.quick,
            distinct_ts=args.timestamps == "distinct",
            baseline=args.baseline,
            names=args.names,
        )
    )


if __name__ == "__main__":
    main()
