"""Decoding envelopes in forms the fast paths once left to the reference decoder: CPU per body.

``python -m bench.odd_envelopes [--repeats 9] [--names 200000] [--fields 71000] [--baseline REV]``
decodes, in process with ``decode_envelope``, one body of each kind, interleaved and repeated
(``time.process_time``, medians):

- a valid ``cluster_membership_changed`` whose ``affected_nodes`` lists N node names, as senders
  write it (the baseline, same run), with ``"v": 1.0``, opening with a UTF-8 byte order mark,
  with a count written as a string (a form only the models' lax rules take: the pydantic-core
  path), and the last with a node name opening with a colon (``::1``, which that path's first
  key count reads as one more key: its keys are counted again, exactly) or with every listed
  name opening with one (``:n1``, the most strings that count walks);
- envelopes of M unknown payload fields (also beside a ``::1``, so that their keys are counted
  again before the refusal), and of M unknown envelope fields (refused), each beside the
  reference decoder alone on the same body (the baseline: what the fast paths add before it),
  and the fast paths alone (``_decode_fast``: what they spend only to leave it).

Each row prints its median, its baseline's and the ratio. ``--baseline REV`` (repeatable) runs
the same in one process per tree (REV's from ``git archive REV``), interleaved, and prints each
tree's median with this tree's ratio against each REV.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

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
from bench.workload import membership_body
from bridge.bus import Envelope, decode_envelope, decoding
from bridge.bus.decoding import build_decoders
from bridge.bus.problems import decode_envelope_reference

_TS: Final = "2026-12-07T00:00:00.000Z"


def _body(payload: dict[str, Any], **extra: Any) -> bytes:
    return membership_body(payload, _TS, **extra)


def bodies(names: int, fields: int) -> dict[str, bytes]:
    """Each kind of body by figure name (``names`` node names, ``fields`` unknown fields)."""
    affected = [f"n{n % 1000}" for n in range(names)]
    listed = {
        "event": "node_added",
        "affected_nodes": affected,
        "active_nodes": ["a"],
        "originating_node": "a",
    }
    plain = _body(listed)
    lax = {**listed, "total_nodes": "1"}
    unknown = {f"x{n}": n for n in range(fields)}
    return {
        "names, as written": plain,
        'names, "v": 1.0': plain.replace(b'"v":1', b'"v":1.0', 1),
        "names, byte order mark first": b"\xef\xbb\xbf" + plain,
        "names, a count as a string": _body(lax),
        "names, a count as a string and ::1": _body({**lax, "originating_node": "::1"}),
        "names opening with a colon, a count as a string": _body(
            {**lax, "affected_nodes": [f":{name}" for name in affected]}
        ),
        "unknown payload fields": _body({**listed, "affected_nodes": ["a"], **unknown}),
        "unknown payload fields and ::1": _body(
            {**listed, "affected_nodes": ["a"], "originating_node": "::1", **unknown}
        ),
        "unknown envelope fields": _body({**listed, "affected_nodes": ["a"]}, **unknown),
    }


# Each figure's baseline: another figure, or (None) the reference decoder on the same body.
_BASELINES: Final = {
    "names, as written": "names, as written",
    'names, "v": 1.0': "names, as written",
    "names, byte order mark first": "names, as written",
    "names, a count as a string": "names, as written",
    "names, a count as a string and ::1": "names, a count as a string",
    "names opening with a colon, a count as a string": "names, a count as a string",
    "unknown payload fields": None,
    "unknown payload fields and ::1": None,
    "unknown envelope fields": None,
}
_REFERENCE: Final = "the reference decoder alone"
_FAST: Final = "the fast paths alone"


def _measure(given: dict[str, bytes]) -> Callable[[list[str]], dict[str, float]]:
    """What one round measures: CPU ms of ``decode_envelope`` for each body, and of the
    reference decoder alone for those whose baseline it is."""
    build_decoders()
    for name, body in given.items():
        valid = isinstance(decode_envelope(body), Envelope)
        if valid != name.startswith("names"):
            raise RuntimeError(f"{name}: decoded as {'valid' if valid else 'refused'}")

    def measure(_: list[str]) -> dict[str, float]:
        out = {}
        for name, body in given.items():
            started = time.process_time()
            decode_envelope(body)
            out[name] = (time.process_time() - started) * 1000
            if _BASELINES[name] is None:
                started = time.process_time()
                decode_envelope_reference(body)
                out[f"{name}: {_REFERENCE}"] = (time.process_time() - started) * 1000
                started = time.process_time()
                decoding._decode_fast(body)
                out[f"{name}: {_FAST}"] = (time.process_time() - started) * 1000
        return out

    return measure


def _here(given: dict[str, bytes], repeats: int) -> str:
    """This tree's figures beside their baselines, measured in this process."""
    measure = _measure(given)
    samples: dict[str, list[float]] = {}
    measure([])  # warm up: the decoders' first calls
    with settled_heap():
        for _ in range(repeats):
            for name, ms in measure([]).items():
                samples.setdefault(name, []).append(ms)
    rows = []
    for name in given:
        baseline = _BASELINES[name] or f"{name}: {_REFERENCE}"
        ms, base = median(samples[name]), median(samples[baseline])
        shown = _REFERENCE if _BASELINES[name] is None else baseline
        rows.append([name, ms, shown, base, ms / base])
        if _BASELINES[name] is None:
            fast = median(samples[f"{name}: {_FAST}"])
            rows.append([f"{name}: {_FAST}", fast, _REFERENCE, base, fast / base])
    return table(
        f"decode_envelope, CPU ms a body ({repeats} runs, median)",
        ["body", "ms", "baseline", "baseline ms", "x baseline"],
        rows,
    )


def _against(revisions: list[str], given: dict[str, bytes], repeats: int) -> str:
    """Each figure in one worker process per tree, interleaved: this tree's beside each REV's."""
    figures: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="exesdb-bench-odd-") as scratch:
        path = Path(scratch) / "bodies.json"
        path.write_text(json.dumps({name: body.hex() for name, body in given.items()}))
        trees = revision_trees(revisions, Path(scratch))
        with tree_workers(trees, Path(__file__), "--worker", str(path)) as workers:
            for tree in interleaved(trees, repeats):
                for figure, ms in workers[tree.name].ask("measure").items():
                    figures.setdefault(figure, {}).setdefault(tree.name, []).append(ms)
    return baseline_table(
        f"decode_envelope, same bodies ({repeats} runs per tree, interleaved)",
        "CPU ms a body",
        figures,
        trees,
    )


def _worker(path: Path) -> None:
    """One tree's side of ``_against``: ``measure`` answered with each figure's CPU ms."""
    given = {name: bytes.fromhex(text) for name, text in json.loads(path.read_text()).items()}
    measure = _measure(given)
    measure([])  # warm up: the decoders' first calls
    with settled_heap():
        serve(measure)


def main() -> None:
    """Parse the arguments and print the tables."""
    parser = argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--names", type=int, default=200_000, help="node names listed")
    parser.add_argument("--fields", type=int, default=71_000, help="unknown fields")
    add_baseline_argument(parser, "decoder")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker)
        return
    given = bodies(args.names, args.fields)
    print(_here(given, args.repeats))
    if args.baseline:
        print(_against(args.baseline, given, args.repeats))


if __name__ == "__main__":
    main()
