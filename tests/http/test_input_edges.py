"""Bad input at the edges of what ingest reads, answered 400 naming the field, or the line of an
NDJSON body."""

from __future__ import annotations

import json

import pytest

from tests.http.helpers import NDJSON, ServerFactory, body_of, envelope


def _raw(text: str) -> bytes:
    """An envelope's JSON with ``{{...}}`` standing for the rest of a valid envelope's fields."""
    fields = json.dumps(envelope())[1:-1]
    return text.replace("...", fields).encode()


_DEEP = "[" * 10_000 + "]" * 10_000


# 62 arrays in a payload's object: its innermost the 65th level of the envelope.
_DEEP_65 = b"[" * 62 + b"]" * 62


_VALID_PAYLOAD = '"payload": {"status": "healthy"}'


# (name, body, error, field): bad input at the edges of JSON, each answered 400 naming a field.
INPUT_EDGES = [
    (
        "nested 10 000 deep, past the JSON parser's recursion",
        _raw("{...}").replace(b'"healthy"', _DEEP.encode(), 1),
        "payload.status" + ".0" * 62,
    ),
    (
        "a payload's object nested past 64 levels",
        _raw("{...}").replace(b'"healthy"', b'"healthy", "checks": {"a": ' + _DEEP_65 + b"}", 1),
        "payload.checks.a" + ".0" * 61,
    ),
    (
        "a 5 000-digit number",
        json.dumps(envelope(v=1)).replace('"v": 1', '"v": ' + "9" * 5000).encode(),
        "v",
    ),
    *(
        (
            f"{text} in a float",
            body_of(envelope(payload={"status": "healthy", "load_avg": 0.5})).replace(
                b"0.5", text.encode()
            ),
            "payload.load_avg",
        )
        for text in ("NaN", "Infinity", "-Infinity", "1e400")
    ),
    (
        "NaN deep in a payload's object",
        body_of(envelope(payload={"status": "healthy", "checks": {"disk": [0.5]}})).replace(
            b"0.5", b"NaN"
        ),
        "payload.checks.disk.0",
    ),
    (
        "NaN as text in a float",
        body_of(envelope(payload={"status": "healthy", "load_avg": "NaN"})),
        "payload.load_avg",
    ),
    ("invalid UTF-8", body_of(envelope(node="node\xff@host")).replace(b"\\u00ff", b"\xff"), "body"),
    # Valid JSON in another encoding, which Python's json.loads would detect and read.
    ("UTF-16 with a byte order mark", body_of(envelope()).decode().encode("utf-16"), "body"),
    ("UTF-16 without one", body_of(envelope()).decode().encode("utf-16-le"), "body"),
    ("UTF-32", body_of(envelope()).decode().encode("utf-32"), "body"),
    # U+D800 as UTF-8 would write it, were it text: no UTF-8 (json.loads read it as a surrogate).
    (
        "a surrogate's bytes in a payload string",
        body_of(envelope(payload={"status": "healthy", "checks": {"disk": "ok"}})).replace(
            b'"ok"', b'"o\xed\xa0\x80k"'
        ),
        "body",
    ),
    ("id twice", _raw('{"id": "abcdefgh12345678", ...}'), "id"),
    (
        "a payload key twice",
        body_of(envelope()).replace(b'{"status"', b'{"status": "degraded", "status"'),
        "payload.status",
    ),
    (
        "a nested key twice",
        body_of(envelope(payload={"status": "healthy", "checks": {"disk": {"a": 1}}})).replace(
            b'{"a": 1}', b'{"a": 1, "a": 2}'
        ),
        "payload.checks.disk.a",
    ),
    ("NUL in node", body_of(envelope(node="node\u0000host")), "node"),
    ("a tab in node", body_of(envelope(node="node\thost")), "node"),
    ("DEL in node", body_of(envelope(node="node\x7fhost")), "node"),
    # json.dumps writes it as the escape \ud800: valid JSON, no valid text.
    ("a lone surrogate in node", body_of(envelope(node="node\ud800host")), "node"),
    ("C1 in node", body_of(envelope(node="node\x85host")), "node"),
    (
        "a lone surrogate in a payload's object",
        body_of(envelope(payload={"status": "healthy", "checks": {"disk": "\udc00"}})),
        "payload.checks.disk",
    ),
    (
        "NUL in the payload's node",
        body_of(envelope(payload={"status": "healthy", "node": "a\u0000b"})),
        "payload.node",
    ),
    (
        "C1 in a label",
        body_of(
            envelope(
                tag="performance_metric",
                instance="ex_esdb_metrics",
                payload={"metric_name": "m\x9b", "value": 1, "unit": "ms", "component": "c"},
            )
        ),
        "payload.metric_name",
    ),
    (
        "ESC in an alert id (the alert_id label of its notifications)",
        body_of(
            envelope(
                tag="system_alert",
                instance="ex_esdb_alerts",
                topic="disk",
                payload={
                    "alert_id": "disk\x1b[2J",
                    "severity": "critical",
                    "category": "system",
                    "title": "t",
                    "description": "d",
                    "source": "s",
                },
            )
        ),
        "payload.alert_id",
    ),
    (
        "a payload timestamp before year 1 in UTC",
        body_of(envelope(payload={"status": "healthy", "timestamp": "0001-01-01T00:00:00+14:00"})),
        "payload.timestamp",
    ),
    (
        "a payload timestamp after year 9999 in UTC",
        body_of(envelope(payload={"status": "healthy", "timestamp": "9999-12-31T23:59:59-14:00"})),
        "payload.timestamp",
    ),
    # Whole numbers the decoder takes (up to 4 300 digits) that no sink carries: the
    # Prometheus sink's float() overflowed on one of 309 digits, the 202 already given.
    *(
        (
            f"an integer field of {digits} digits",
            body_of(
                envelope(
                    tag="cluster_health_updated",
                    payload={"status": "healthy", "healthy_nodes": 1, "total_nodes": 1},
                )
            ).replace(b'"total_nodes": 1', b'"total_nodes": 1' + b"0" * (digits - 1)),
            "payload.total_nodes",
        )
        for digits in (20, 400)
    ),
    (
        "a count of 2^63",
        body_of(
            envelope(
                tag="throughput_metric",
                instance="ex_esdb_metrics",
                payload={"operation": "append", "count": 2**63, "duration_ms": 1000},
            )
        ),
        "payload.count",
    ),
]


@pytest.mark.parametrize(
    ("body", "field"), [(b, f) for _, b, f in INPUT_EDGES], ids=[n for n, _, _ in INPUT_EDGES]
)
async def test_bad_input_at_the_edges_answers_400_naming_a_field(
    serve: ServerFactory, body: bytes, field: str
) -> None:
    """Deep nesting, huge numbers, a number no float holds, invalid UTF-8, a key given twice and
    control characters in a label value each answer 400 naming the field, counted in
    exesdb_bus_rejected_total by its error; nothing is delivered."""
    server = await serve()
    status, answer = await server.post(body)
    assert (status, answer.get("field")) == (400, field), answer
    assert answer["error"] in ("malformed", "invalid_payload")
    assert server.rejected(answer["error"]) == 1
    assert server.delivered == []


@pytest.mark.parametrize(
    ("body", "field"), [(b, f) for _, b, f in INPUT_EDGES], ids=[n for n, _, _ in INPUT_EDGES]
)
async def test_bad_input_at_the_edges_in_ndjson_names_its_line(
    serve: ServerFactory, body: bytes, field: str
) -> None:
    """The same input as the second line of an NDJSON batch names ``line 2`` (and the field);
    alone in an NDJSON body it names ``line 1``."""
    server = await serve()
    status, answer = await server.post(body_of(envelope()) + b"\n" + body, content_type=NDJSON)
    where = "line 2" if field == "body" else f"line 2: {field}"
    assert (status, answer.get("field")) == (400, where), answer
    status, answer = await server.post(body, content_type=NDJSON)
    assert (status, answer.get("field")) == (400, "line 1" if field == "body" else field), answer
    assert server.delivered == []
