"""NDJSON batches: taken whole or not at all, each line at fault listed, every problem of a message
named."""

from __future__ import annotations

import json
from typing import Any, Final

import pytest

from tests.http.helpers import JSON, NDJSON, ServerFactory, body_of, envelope
from tests.support import async_wait_until


async def test_ndjson_batch_is_accepted_whole(serve: ServerFactory) -> None:
    """Several envelopes under one signature are all accepted, in order."""
    server = await serve()
    items = [envelope(topic=f"t{number}") for number in range(5)]
    status, answer = await server.post(body_of(*items) + b"\n", content_type=NDJSON)
    assert (status, answer) == (202, {"accepted": 5})
    await async_wait_until(lambda: len(server.delivered) == 5, what="five")
    assert [item.topic for item in server.delivered] == [f"t{number}" for number in range(5)]


@pytest.mark.parametrize(
    ("bad", "status", "error"),
    [
        (envelope(payload={"status": "sick"}), 400, "invalid_payload"),
        (envelope(tag="nothing"), 400, "unknown_tag"),
        ("duplicate", 409, "replayed"),
    ],
)
async def test_ndjson_batch_is_all_or_nothing(
    serve: ServerFactory, bad: Any, status: int, error: str
) -> None:
    """One bad line refuses the whole batch, naming the line; none is delivered or remembered."""
    server = await serve()
    good = [envelope(), envelope()]
    third = dict(good[0]) if bad == "duplicate" else bad
    answer_status, answer = await server.post(body_of(*good, third), content_type=NDJSON)
    assert answer_status == status
    assert answer["error"] == error
    assert answer["field"].startswith("line 3")
    # A line already accepted is no line at fault: a 409 lists none.
    assert answer.get("problems", []) == ([] if status == 409 else [_top(answer)])
    # Nothing was remembered: the good lines alone go through afterwards, and they are all
    # the bus ever delivers (it keeps order, so the refused batch would have come first).
    assert (await server.post(body_of(*good), content_type=NDJSON))[0] == 202
    await async_wait_until(lambda: len(server.delivered) >= 2, what="the good lines")
    assert [item.id for item in server.delivered] == [line["id"] for line in good]


async def test_a_batch_repeating_an_id_says_so_not_that_it_was_accepted(
    serve: ServerFactory,
) -> None:
    """An NDJSON batch holding one envelope id on two lines is refused 409 ``replayed`` saying
    the line repeats the earlier line's id in this batch (nothing was accepted: the batch is
    refused whole); an id accepted by an earlier request is still said to be accepted."""
    server = await serve()
    first, other = envelope(), envelope()
    body = body_of(other, first, dict(first)) + b"\n"
    status, answer = await server.post(body, content_type=NDJSON)
    assert (status, answer["error"], answer["field"]) == (409, "replayed", "line 3: id")
    assert answer["detail"] == f"line 3: message {first['id']} repeats line 2's id in this batch"
    assert (await server.post(body_of(first), content_type=NDJSON))[0] == 202
    status, answer = await server.post(body_of(other, first), content_type=NDJSON)
    assert (status, answer["field"]) == (409, "line 2: id")
    assert answer["detail"] == f"line 2: message {first['id']} was already accepted"


def _top(answer: dict[str, Any]) -> dict[str, Any]:
    """An ingest refusal's own error, detail and field, as one of its ``problems`` holds them."""
    return {key: answer[key] for key in ("error", "detail", "field")}


async def test_a_batch_refused_for_its_lines_lists_each_line_at_fault(
    serve: ServerFactory,
) -> None:
    """Bad lines 2, 5 and 9 of different kinds: one 400 whose error, detail and field are the
    first bad line's, as before, and whose ``problems`` names the three in order, each worded
    as the answer would be were it the only bad line; the refusal is counted once."""
    server = await serve()
    bad = {
        2: body_of(envelope(tag="no_such_tag")),
        5: b"{not json",
        9: body_of(envelope(payload={"status": "sick"})),
    }
    # Line 7 is blank: the lines are named where the body has them.
    body = b"\n".join(
        b"" if number == 7 else bad.get(number) or body_of(envelope()) for number in range(1, 11)
    )
    status, answer = await server.post(body, content_type=NDJSON)
    assert status == 400
    assert set(answer) == {"error", "detail", "field", "problems", "problems_total"}
    assert (answer["error"], answer["field"]) == ("unknown_tag", "line 2: tag")
    assert answer["detail"].startswith("line 2: 'no_such_tag' is not a message type of")
    assert [(p["field"], p["error"]) for p in answer["problems"]] == [
        ("line 2: tag", "unknown_tag"),
        ("line 5", "malformed"),
        ("line 9: payload.status", "invalid_payload"),
    ]
    assert answer["problems"][0] == _top(answer)
    assert answer["problems_total"] == 3
    assert server.rejected("unknown_tag") == 1
    assert server.rejected("malformed") == server.rejected("invalid_payload") == 0
    for number, problem in zip(bad, answer["problems"], strict=True):
        alone = b"\n".join(
            b"" if n == 7 else bad[n] if n == number else body_of(envelope()) for n in range(1, 11)
        )
        status, single = await server.post(alone, content_type=NDJSON)
        assert (status, _top(single)) == (400, problem)
        assert single["problems"] == [problem]
    assert server.delivered == []


async def test_a_batch_of_25_bad_lines_lists_20_and_counts_25(serve: ServerFactory) -> None:
    """Every second line of 50 is bad: ``problems`` lists the first 20 in order and
    ``problems_total`` counts all 25."""
    server = await serve()
    lines = [body_of(envelope(node="" if n % 2 == 0 else "n@h")) for n in range(1, 51)]
    status, answer = await server.post(b"\n".join(lines), content_type=NDJSON)
    assert status == 400
    assert [p["field"] for p in answer["problems"]] == [f"line {n}: node" for n in range(2, 42, 2)]
    assert {p["error"] for p in answer["problems"]} == {"malformed"}
    assert answer["problems"][0] == _top(answer)
    assert answer["problems_total"] == 25


async def test_a_batch_stops_being_read_at_its_thousandth_bad_line(serve: ServerFactory) -> None:
    """Of 1 500 bad lines the answer lists the first 20 and counts 1 000, not 1 500 (where
    the bridge stops decoding them)."""
    server = await serve()
    status, answer = await server.post(b"{\n" * 1_500, content_type=NDJSON)
    assert status == 400
    assert [p["field"] for p in answer["problems"]] == [f"line {n}" for n in range(1, 21)]
    assert answer["problems_total"] == 1_000


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        (b"not json", "malformed", "body"),
        (body_of(envelope(tag="no_such_tag")), "unknown_tag", "tag"),
        (body_of(envelope(payload={"status": "sick"})), "invalid_payload", "payload.status"),
    ],
    ids=["not-json", "unknown-tag", "invalid-payload"],
)
async def test_a_lone_envelope_refused_lists_itself_as_its_one_problem(
    serve: ServerFactory, body: bytes, error: str, field: str
) -> None:
    """One envelope sent as application/json and refused for what it holds: ``problems`` is
    the answer's own error, detail and field, ``problems_total`` 1."""
    server = await serve()
    status, answer = await server.post(body)
    assert (status, answer["error"], answer["field"]) == (400, error, field)
    assert answer["problems"] == [_top(answer)]
    assert answer["problems_total"] == 1


# A performance metric that names its metric and nothing else: value, unit and component missing.
_METRIC_ONLY: Final = {
    "instance": "ex_esdb_metrics",
    "topic": "metrics",
    "tag": "performance_metric",
    "payload": {"metric_name": "queue_depth"},
}


def _worded(answer: dict[str, Any]) -> dict[str, Any]:
    """An ingest refusal's error, detail, field and fields, as one of its ``problems`` holds
    them."""
    return {key: answer[key] for key in ("error", "detail", "field", "fields")}


async def test_a_payload_missing_three_fields_is_answered_naming_all_three(
    serve: ServerFactory,
) -> None:
    """A performance metric missing value, unit and component is answered one 400 whose detail
    says all three, its ``field`` the first and ``fields`` each, counted as one refusal."""
    server = await serve()
    status, answer = await server.post(body_of(envelope(**_METRIC_ONLY)))
    assert (status, answer["error"], answer["field"]) == (400, "invalid_payload", "payload.value")
    assert answer["fields"] == ["payload.value", "payload.unit", "payload.component"]
    assert answer["detail"] == (
        "payload.value: Field required; payload.unit: Field required;"
        " payload.component: Field required"
    )
    assert answer["problems"] == [_worded(answer)]
    assert answer["problems_total"] == 1
    assert server.rejected("invalid_payload") == 1
    assert server.delivered == []


async def test_a_wrong_word_or_field_is_answered_with_what_is_allowed_and_the_one_meant(
    serve: ServerFactory,
) -> None:
    """A status no node has and a misspelt field are answered naming the words the status takes
    and each one meant, as publish and the integration API name them, the first unknown field
    with the fields the type has, in a batch's later lines too; a field like none is said
    unknown alone."""
    server = await serve()
    payload = {"status": "helthy", "chekcs": {}, "zzz": 1}
    body = b"\n".join([body_of(envelope(payload=payload))] * 2)
    status, answer = await server.post(body, content_type=NDJSON)
    assert (status, answer["error"], answer["field"]) == (
        400,
        "invalid_payload",
        "line 1: payload.status",
    )
    detail = (
        "payload.status: must be 'healthy', 'degraded', 'unhealthy' or 'unknown'; did you mean"
        " 'healthy'?; payload.chekcs: not a field of node_health_updated; did you mean 'checks'?"
        " (its fields: timestamp, node, status, checks, load_avg, memory_usage, disk_usage);"
        " payload.zzz: not a field of node_health_updated"
    )
    assert answer["detail"] == f"line 1: {detail}"
    assert [problem["detail"] for problem in answer["problems"]] == [
        f"line 1: {detail}",
        f"line 2: {detail}",
    ]


async def test_a_batch_line_with_envelope_and_payload_problems_names_them_all(
    serve: ServerFactory,
) -> None:
    """A line whose ts is no timestamp, whose tag is misspelt, and a line whose payload misses
    three fields: each line's entry names every problem it has (the line once, before the
    detail; before each field), the tag meant too, and the batch is counted once, by its first
    problem's error."""
    server = await serve()
    misspelt = envelope(**{**_METRIC_ONLY, "tag": "performance_metrc", "ts": "yesterday"})
    body = b"\n".join([body_of(envelope()), body_of(misspelt), body_of(envelope(**_METRIC_ONLY))])
    status, answer = await server.post(body, content_type=NDJSON)
    assert (status, answer["error"]) == (400, "malformed")
    first, second = answer["problems"]
    assert first == _worded(answer)
    assert first["fields"] == ["line 2: ts", "line 2: tag"]
    assert first["detail"].startswith("line 2: ts must be an RFC 3339 date-time with seconds")
    assert first["detail"].endswith("; did you mean 'performance_metric'?")
    assert second["error"] == "invalid_payload"
    assert second["fields"] == [
        f"line 3: payload.{name}" for name in ("value", "unit", "component")
    ]
    assert second["detail"] == (
        "line 3: payload.value: Field required; payload.unit: Field required;"
        " payload.component: Field required"
    )
    assert answer["problems_total"] == 2
    assert server.rejected("malformed") == 1
    assert server.rejected("unknown_tag") == server.rejected("invalid_payload") == 0


async def test_a_message_with_many_problems_is_answered_with_ten_and_a_count(
    serve: ServerFactory,
) -> None:
    """A payload with 12 unknown keys besides its three missing fields names its first ten
    problems and says how many more it has."""
    unknown = {f"key{n:02}": n for n in range(12)}
    payload = {"metric_name": "queue_depth", **unknown}
    server = await serve()
    status, answer = await server.post(body_of(envelope(**{**_METRIC_ONLY, "payload": payload})))
    assert status == 400
    assert len(answer["fields"]) == 10
    assert answer["fields"][:4] == [
        "payload.value",
        "payload.unit",
        "payload.component",
        "payload.key00",
    ]
    assert answer["detail"].endswith(
        "; payload.key06: not a field of performance_metric; and 5 more problems"
    )


@pytest.mark.parametrize(
    ("lines", "status", "field"),
    [
        ([b"good", b"", b"  ", b"bad"], 400, "line 4: node"),
        ([b"", b"\r", b"not json"], 400, "line 3"),
        ([b"good", b"", b"good again"], 409, "line 3: id"),
    ],
    ids=["bad-after-blank-lines", "lone-line-after-blank-lines", "replay-after-a-blank-line"],
)
async def test_ndjson_refusals_name_the_line_where_the_body_has_it(
    serve: ServerFactory, lines: list[bytes], status: int, field: str
) -> None:
    """Blank lines count: a refused NDJSON line is named by its line in the body, not by its
    place among the envelopes."""
    server = await serve()
    good = body_of(envelope())
    parts = {
        b"good": good,
        b"good again": good,
        b"bad": body_of(envelope(node="a\u0000b")),
        b"not json": b"{not json",
    }
    body = b"\n".join(parts.get(line, line) for line in lines)
    answer_status, answer = await server.post(body, content_type=NDJSON)
    assert (answer_status, answer.get("field")) == (status, field), answer
    assert server.delivered == []


async def test_ndjson_with_no_envelope_is_malformed(serve: ServerFactory) -> None:
    """An empty NDJSON body answers 400 naming the body."""
    server = await serve()
    status, answer = await server.post(b"\n\n", content_type=NDJSON)
    assert (status, answer["error"], answer["field"]) == (400, "malformed", "body")
    assert "problems" not in answer  # a body-level refusal: no line is at fault


async def test_two_envelopes_sent_as_json_are_told_to_go_as_ndjson(serve: ServerFactory) -> None:
    """A JSON body holding two envelopes answers 400 saying to send several as NDJSON."""
    server = await serve()
    body = body_of(envelope(), envelope())
    status, answer = await server.post(body, content_type=JSON)
    assert (status, answer["error"], answer["field"]) == (400, "malformed", "body")
    assert "send several as application/x-ndjson" in answer["detail"]
    assert server.delivered == []


async def test_ndjson_lines_split_at_carriage_returns_are_told_to_end_in_line_feeds(
    serve: ServerFactory,
) -> None:
    """NDJSON whose envelopes are split by a CR alone is one line holding several: 400 saying
    each line ends in a line feed, not only to send them as NDJSON, which it did."""
    server = await serve()
    body = json.dumps(envelope()).encode() + b"\r" + json.dumps(envelope()).encode()
    status, answer = await server.post(body, content_type=NDJSON)
    assert (status, answer["error"], answer["field"]) == (400, "malformed", "line 1")
    assert "each line ending in a line feed" in answer["detail"]
    assert server.delivered == []
