"""Benchmarks that no other test runs, in their quickest mode: they still run on this tree
(mypy sees their types, not a query on a table or a schema built in the wrong order)."""

from __future__ import annotations

from bench.decode import decoders, disagreeing
from bench.workload import SHAPES, Source


def test_every_decode_alternative_decodes_as_this_tree_does() -> None:
    """`python -m bench.decode`'s alternatives, built as it builds them, each decode a few
    lines of both payload shapes into the envelopes `decode_envelopes` makes."""
    lines = {shape: Source(shape, nodes=125).envelopes(16, distinct_ts=True) for shape in SHAPES}
    assert disagreeing(decoders(), lines) == []
