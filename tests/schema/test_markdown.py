"""docs/messages.md is generated from the models; its envelope table is what the decoder checks."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from bridge.bus import Envelope, Rejection, RejectReason, decode_envelope
from bridge.messages import INSTANCES, TAGS
from bridge.schema import ENVELOPE_FIELDS, describe, render_markdown
from tests.doc_text import page, section

PAGE = page("messages")


def _envelope(**changes: Any) -> dict[str, Any]:
    data = {
        "v": 1,
        "id": "a" * 32,
        "instance": "ex_esdb_health",
        "topic": "cluster:health",
        "tag": "node_health_updated",
        "node": "node1@host",
        "ts": "2026-11-28T00:00:00.123Z",
        "payload": {"status": "healthy"},
    }
    return {**data, **changes}


def _decode(data: dict[str, Any]) -> Envelope | Rejection:
    # A ts from 2026 is fine here: freshness is the verifier's check, not the decoder's.
    return decode_envelope(json.dumps(data).encode())


def _limits(field: str) -> tuple[int, int]:
    """The length range the envelope table states for ``field``."""
    row = next(row for row in ENVELOPE_FIELDS if row.name == field)
    match = re.search(r"(\d+)-(\d+) characters", row.type)
    assert match, row.type
    return int(match.group(1)), int(match.group(2))


def test_the_page_is_what_the_models_generate() -> None:
    """docs/messages.md matches the code; when it does not, `make docs` rewrites it."""
    assert render_markdown() == PAGE, "docs/messages.md is stale: run `make docs`"


@pytest.mark.parametrize("tag", sorted(TAGS))
def test_every_message_type_has_its_fields_on_the_page(tag: str) -> None:
    """Each of the 36 tags has a section under its instance, listing every field of its model."""
    model = TAGS[tag]
    under_instance = section(PAGE, model.INSTANCE)
    assert f"### {tag}\n" in under_instance
    table = section(under_instance, tag, level=3)
    for field in model.model_fields:
        assert f"| `{field}` |" in table, field
    assert len(describe(model)) == len(model.model_fields)


def test_the_page_lists_the_nine_instances_in_bus_order() -> None:
    """The instance sections follow the bus's order."""
    headings = re.findall(r"^## (ex_esdb_\w+)$", PAGE, re.M)
    assert headings == list(INSTANCES)


def test_the_envelope_table_names_exactly_the_fields_the_decoder_requires() -> None:
    """Each documented envelope field, left out, is refused naming it; no other field is taken."""
    names = [row.name for row in ENVELOPE_FIELDS]
    assert isinstance(_decode(_envelope()), Envelope)
    for name in names:
        data = _envelope()
        del data[name]
        rejection = _decode(data)
        assert isinstance(rejection, Rejection)
        assert (rejection.reason, rejection.field) == (RejectReason.MALFORMED, name)
    extra = _decode(_envelope(extra="x"))
    assert isinstance(extra, Rejection)
    assert extra.field == "extra"


@pytest.mark.parametrize(("field", "alphabet"), [("id", "a"), ("topic", "t"), ("node", "n")])
def test_the_documented_lengths_are_the_decoders(field: str, alphabet: str) -> None:
    """The shortest and longest lengths the table states are taken, one beyond either refused."""
    low, high = _limits(field)
    for length, accepted in ((low, True), (high, True), (low - 1, False), (high + 1, False)):
        result = _decode(_envelope(**{field: alphabet * length}))
        assert isinstance(result, Envelope) is accepted, (field, length)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("v", 2),
        ("id", "has spaces in it"),
        ("topic", "a/b"),
        ("ts", "2026-11-28T00:00:00.123"),  # no UTC offset
        ("ts", "2026-11-28T00:00:00.123456789012345678901Z"),  # over 40 characters
    ],
)
def test_values_the_table_rules_out_are_refused(field: str, value: Any) -> None:
    """A version other than 1, a character outside the alphabet, a ts without offset are refused."""
    rejection = _decode(_envelope(**{field: value}))
    assert isinstance(rejection, Rejection)
    assert rejection.field == field


def test_the_envelope_table_lists_the_nine_instances() -> None:
    """The allowed values of ``instance`` are the bus's instances."""
    row = next(row for row in ENVELOPE_FIELDS if row.name == "instance")
    assert row.allowed == INSTANCES


def test_the_system_alert_section_says_where_source_and_metadata_go() -> None:
    """The system_alert section says source becomes a label and metadata `metadata_<key>`
    annotations, bounded and redacted as the alert sink does it: its examples of redacted and
    shown keys are what the sink redacts and shows."""
    from bridge.sinks.alerts.sources import DETAIL_PREFIX, MAX_DETAILS, details_of

    text = " ".join(section(section(PAGE, "ex_esdb_alerts"), "system_alert", level=3).split())
    assert "`source` becomes the alert's `source` **label**" in text
    assert f"**annotation** `{DETAIL_PREFIX}<key>`" in text
    assert f"at most {MAX_DETAILS} entries" in text
    assert "alerts.md#which-component-raised-an-alert" in text
    secret = re.search(r"a key naming a secret \(([^)]*), not `(\w+)`\)", text)
    assert secret, text
    for key in re.findall(r"`(\w+)`", secret.group(1)):
        assert details_of({key: "v"}) == ((DETAIL_PREFIX + key, "<redacted>"),), key
    shown = secret.group(2)
    assert details_of({shown: "v"}) == ((DETAIL_PREFIX + shown, "v"),)
