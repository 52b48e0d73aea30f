"""The envelope: its wire form, its decoding and every rejection reason decode can give."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from bridge.bus import Envelope, Rejection, RejectReason, check_topic, decode_envelope
from bridge.bus.problems import with_every_problem
from bridge.messages import TAGS, ClusterMembership, NodeHealth, SystemAlert

TS = "2026-11-28T00:00:00.123Z"


def _envelope(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "v": 1,
        "id": "01JDX0Y8C7H1V4N0W5Z3Q2M6TB",
        "instance": "ex_esdb_health",
        "topic": "cluster:health",
        "tag": "node_health_updated",
        "node": "node1@host",
        "ts": TS,
        "payload": {"status": "healthy"},
    }
    data.update(changes)
    return data


def _decode(data: Any) -> Envelope | Rejection:
    return decode_envelope(json.dumps(data).encode())


def _rejection(data: Any) -> Rejection:
    result = _decode(data)
    assert isinstance(result, Rejection), result
    return result


def test_decodes_a_valid_envelope() -> None:
    """A well-formed envelope decodes into its routing data and a validated payload."""
    envelope = _decode(_envelope())
    assert isinstance(envelope, Envelope)
    assert (envelope.id, envelope.instance, envelope.topic, envelope.tag, envelope.node) == (
        "01JDX0Y8C7H1V4N0W5Z3Q2M6TB",
        "ex_esdb_health",
        "cluster:health",
        "node_health_updated",
        "node1@host",
    )
    assert envelope.ts == datetime(2026, 11, 28, 0, 0, 0, 123_000, tzinfo=UTC)
    assert envelope.unix_ts == envelope.ts.timestamp()
    assert isinstance(envelope.payload, NodeHealth)


def test_payload_node_defaults_to_the_envelope_node() -> None:
    """A payload without its own node takes the envelope's."""
    envelope = _decode(_envelope())
    assert isinstance(envelope, Envelope)
    assert isinstance(envelope.payload, NodeHealth)
    assert envelope.payload.node == "node1@host"


def test_payload_keeps_its_own_node() -> None:
    """A payload's own node (e.g. the node an alert is about) is kept."""
    envelope = _decode(_envelope(payload={"status": "healthy", "node": "node9@host"}))
    assert isinstance(envelope, Envelope)
    assert isinstance(envelope.payload, NodeHealth)
    assert envelope.payload.node == "node9@host"


def test_accepts_keys_in_any_order_and_text_input() -> None:
    """Keys may come in any order, and a str body decodes like bytes."""
    data = dict(reversed(list(_envelope().items())))
    assert isinstance(decode_envelope(json.dumps(data)), Envelope)


def test_timestamps_with_offsets_are_converted_to_utc() -> None:
    """An RFC 3339 timestamp with an offset is read as the same instant in UTC."""
    envelope = _decode(_envelope(ts="2026-11-28T02:00:00.123+02:00"))
    assert isinstance(envelope, Envelope)
    assert envelope.ts == datetime(2026, 11, 28, 0, 0, 0, 123_000, tzinfo=UTC)


def test_to_bytes_round_trips() -> None:
    """The wire form decodes back to an equal envelope."""
    alert = SystemAlert(
        severity="critical",
        category="system",
        title='Node "down"',
        description="ünïcode ✓",
        source="monitor",
        node="node2@host",
        metadata={"nested": {"list": [1, 2.5, None, True]}},
    )
    ts = datetime(2026, 11, 28, 0, 0, 0, 123_000, tzinfo=UTC)
    original = Envelope(
        "abcdef0123456789", "ex_esdb_alerts", "node_failure", "system_alert",
        'node "1" \\ ünïcode@host', ts, alert, ts.timestamp(),
    )  # fmt: skip
    body = original.to_bytes()
    assert json.loads(body)["v"] == 1
    decoded = decode_envelope(body)
    assert decoded == original
    assert isinstance(decoded, Envelope)
    assert decoded.to_bytes() == body


def test_to_bytes_is_compact_utf8_json_with_the_spec_keys() -> None:
    """The wire form is one JSON object with exactly the eight envelope keys."""
    envelope = _decode(_envelope())
    assert isinstance(envelope, Envelope)
    data = json.loads(envelope.to_bytes().decode("utf-8"))
    assert set(data) == {"v", "id", "instance", "topic", "tag", "node", "ts", "payload"}
    assert data["ts"] == TS


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[1, 2]",
        b'"a string"',
        b"null",
    ],
)
def test_rejects_bodies_that_are_not_an_object_as_malformed(body: bytes) -> None:
    """Bytes that are not a JSON object are malformed (never an exception)."""
    result = decode_envelope(body)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.MALFORMED
    assert result.field is None


@pytest.mark.parametrize("levels", [70, 100_000])
def test_arrays_nested_past_the_limit_are_refused_naming_the_first_too_deep(levels: int) -> None:
    """A body of arrays nested past the limit, deeper than the JSON parser recurses or not, is
    refused for its nesting, naming the first array past it (never "not JSON", never an
    exception)."""
    result = decode_envelope(b"[" * levels + b"]" * levels)
    assert isinstance(result, Rejection)
    assert result.reason is RejectReason.MALFORMED
    assert "nested deeper than 64 levels" in result.detail
    assert result.field == ".".join(["0"] * 64)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'[{"a": 1, "a": 2}]', "0.a"),
        (b"[1, NaN]", "1"),
        (b'[{"x": [1e400]}]', "0.x.0"),
        (b'["\\ud800"]', "0"),
    ],
)
def test_a_body_that_is_an_array_names_the_place_at_fault_as_its_nesting_is_named(
    body: bytes, field: str
) -> None:
    """A key given twice, a number no float holds or a lone surrogate within a body that is a
    JSON array is named by its indexes and keys, as its nesting is (``0.x.0``), never with a
    leading dot (``.0.x.0``)."""
    result = decode_envelope(body)
    assert isinstance(result, Rejection)
    assert (result.reason, result.field) == (RejectReason.MALFORMED, field)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"v": 2}, "v"),
        ({"v": True}, "v"),
        ({"v": "1"}, "v"),
        ({"id": "short"}, "id"),
        ({"id": "x" * 129}, "id"),
        ({"id": "has space in it"}, "id"),
        ({"id": 12345678}, "id"),
        ({"topic": ""}, "topic"),
        ({"topic": "bad topic"}, "topic"),
        ({"topic": "t" * 129}, "topic"),
        ({"topic": None}, "topic"),
        ({"node": ""}, "node"),
        ({"node": 7}, "node"),
        ({"node": "n" * 256}, "node"),
        ({"ts": "yesterday"}, "ts"),
        ({"ts": "2026-11-28T00:00:00"}, "ts"),  # no offset
        ({"ts": 1_800_000_000}, "ts"),
        ({"ts": "0001-01-01T00:00:00+01:00"}, "ts"),  # before year 1 in UTC
        ({"ts": "9999-12-31T23:59:59-01:00"}, "ts"),  # after year 9999 in UTC
        ({"extra": 1}, "extra"),
    ],
)
def test_rejects_bad_envelope_fields_as_malformed_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    """A missing, extra or ill-formed envelope field is malformed, and the field is named."""
    rejection = _rejection(_envelope(**changes))
    assert rejection.reason is RejectReason.MALFORMED
    assert rejection.field == field
    assert rejection.detail


@pytest.mark.parametrize(
    "missing", ["v", "id", "instance", "topic", "tag", "node", "ts", "payload"]
)
def test_rejects_a_missing_envelope_field_as_malformed(missing: str) -> None:
    """Each of the eight envelope fields is required."""
    data = _envelope()
    del data[missing]
    rejection = _rejection(data)
    assert (rejection.reason, rejection.field) == (RejectReason.MALFORMED, missing)


@pytest.mark.parametrize("instance", ["ex_esdb_nothing", "", 3, None, ["ex_esdb_health"]])
def test_rejects_an_unknown_instance(instance: Any) -> None:
    """An instance outside the nine is unknown_instance, naming the field."""
    rejection = _rejection(_envelope(instance=instance))
    assert (rejection.reason, rejection.field) == (RejectReason.UNKNOWN_INSTANCE, "instance")


@pytest.mark.parametrize(
    ("instance", "tag"),
    [
        ("ex_esdb_health", "no_such_tag"),
        ("ex_esdb_health", "system_alert"),  # a real tag, but of another instance
        ("ex_esdb_health", 5),
        ("ex_esdb_health", None),
    ],
)
def test_rejects_an_unknown_tag(instance: str, tag: Any) -> None:
    """A tag that is not a message type of the instance is unknown_tag, naming the field."""
    rejection = _rejection(_envelope(instance=instance, tag=tag))
    assert (rejection.reason, rejection.field) == (RejectReason.UNKNOWN_TAG, "tag")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"status": "sick"}, "payload.status"),
        ({}, "payload.status"),
        ({"status": "healthy", "load_avg": "high"}, "payload.load_avg"),
        ({"status": "healthy", "unknown_field": 1}, "payload.unknown_field"),
        ({"status": "healthy", "checks": []}, "payload.checks"),
        ([], "payload"),
        ("healthy", "payload"),
        (None, "payload"),
    ],
)
def test_rejects_an_invalid_payload_naming_the_field(payload: Any, field: str) -> None:
    """A payload failing its model is invalid_payload, and the field path is named."""
    rejection = _rejection(_envelope(payload=payload))
    assert (rejection.reason, rejection.field) == (RejectReason.INVALID_PAYLOAD, field)
    assert field in rejection.detail


def _every_problem(data: Any) -> Rejection:
    body = json.dumps(data).encode()
    return with_every_problem(body, _rejection(data))


def test_a_refusal_words_every_problem_of_the_envelope_and_its_payload() -> None:
    """An envelope with no id, a bad topic and a payload with two problems is refused for its
    first (the id missing); asked for every problem, each of the others is worded beside it,
    in order, as it would be alone."""
    data = _envelope(topic="bad topic", payload={"status": "sick", "load_avg": "high"})
    del data["id"]
    first = _rejection(data)
    assert (first.reason, first.field, first.also) == (RejectReason.MALFORMED, "id", ())
    rejection = _every_problem(data)
    assert (rejection.reason, rejection.detail, rejection.field) == (
        first.reason,
        first.detail,
        first.field,
    )
    assert [(p.reason, p.field) for p in rejection.also] == [
        (RejectReason.MALFORMED, "topic"),
        (RejectReason.INVALID_PAYLOAD, "payload.status"),
        (RejectReason.INVALID_PAYLOAD, "payload.load_avg"),
    ]
    assert rejection.also_found == 3
    assert rejection.also[0] == _rejection(_envelope(topic="bad topic"))


def test_a_misspelt_word_is_refused_naming_the_words_and_when_said_the_one_meant() -> None:
    """A status spelt nearly as one the field takes is refused naming the words it takes; the
    one meant (a difflib run) only when the refusal is to be said, not when only counted."""
    data = _envelope(payload={"status": "Helthy"})
    words = "payload.status: must be 'healthy', 'degraded', 'unhealthy' or 'unknown'"
    assert _rejection(data).detail == words
    assert _every_problem(data).detail == f"{words}; did you mean 'healthy'?"


def test_an_unknown_field_is_said_with_the_fields_of_its_type_once_and_counted_without() -> None:
    """A payload's fields its type lacks are refused as such; when the refusal is said, the first
    of them names the one meant and lists the type's fields, the others neither list again,
    and a refusal only counted lists nothing."""
    data = _envelope(payload={"status": "healthy", "chekcs": {}, "zzz": 1})
    assert _rejection(data).detail == "payload.chekcs: not a field of node_health_updated"
    said = _every_problem(data)
    assert said.detail == (
        "payload.chekcs: not a field of node_health_updated; did you mean 'checks'? (its fields:"
        " timestamp, node, status, checks, load_avg, memory_usage, disk_usage)"
    )
    assert [p.detail for p in said.also] == ["payload.zzz: not a field of node_health_updated"]


def test_a_payload_of_many_unknown_fields_is_refused_naming_ten_and_counting_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A payload with 50 000 unknown fields beside a bad one is refused for the bad one, its
    first nine unknown fields worded beside it and all of them counted; pydantic is never asked
    about the unknown fields past those worded (each one an error it would build)."""
    unknown = {f"f{n}": n for n in range(50_000)}
    data = _envelope(payload={**unknown, "status": "sick"})
    asked: list[int] = []
    validate = NodeHealth.model_validate.__func__  # type: ignore[attr-defined]

    def noted(model: type[NodeHealth], /, obj: Any, **options: Any) -> NodeHealth:
        asked.append(len(obj))
        return validate(model, obj, **options)

    monkeypatch.setattr(NodeHealth, "model_validate", classmethod(noted))
    rejection = _every_problem(data)
    assert (rejection.reason, rejection.field) == (RejectReason.INVALID_PAYLOAD, "payload.status")
    assert [p.field for p in rejection.also] == [f"payload.f{n}" for n in range(9)]
    assert rejection.also_found == 50_000
    assert asked
    assert max(asked) <= len(NodeHealth.__pydantic_fields__) + 10


def _membership(affected: list[Any], active: list[Any] | None = None) -> dict[str, Any]:
    payload = {"event": "node_added", "affected_nodes": affected, "active_nodes": active or ["a"]}
    return _envelope(
        instance="ex_esdb_lifecycle",
        tag="cluster_membership_changed",
        payload={**payload, "originating_node": "a"},
    )


def _log_summary(counts: dict[str, Any]) -> dict[str, Any]:
    payload = {"time_period": "1h", "log_counts": counts, "nodes_reporting": ["a"]}
    return _envelope(instance="ex_esdb_logging", tag="log_summary", payload=payload)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_membership([1] * 12_000), id="wrong-from-the-start"),
        pytest.param(_membership(["a"] * 10_000 + [1] * 3_000), id="wrong-at-the-end"),
        pytest.param(_membership(["a"] * 12_999 + [1]), id="one-wrong-last"),
        pytest.param(_membership([1 if n % 700 == 0 else "a" for n in range(12_000)]), id="sparse"),
        pytest.param(
            _membership([1 if n % 3_000 == 5 else "a" for n in range(12_000)], [2] * 9_000),
            id="a-few-then-the-next-field",
        ),
        pytest.param(_log_summary({f"k{n}": -1 for n in range(6_000)}), id="object"),
    ],
)
def test_a_long_list_of_wrong_items_is_refused_naming_its_first_ten_and_counting_all(
    data: dict[str, Any],
) -> None:
    """A payload whose lists (or objects) hold thousands of wrong items, at their start, at
    their end or here and there, is refused naming the first ten problems as pydantic words
    them for the whole payload (a word the field does not take as every refusal says it), in
    its order, and counting every other one."""
    model = TAGS[data["tag"]]
    with pytest.raises(ValidationError) as raised:
        model.model_validate(data["payload"])
    errors = raised.value.errors()
    words = [
        (
            ".".join(map(str, ("payload", *error["loc"]))),
            error["msg"].replace("Input should be ", "must be ")
            if error["type"] == "literal_error"
            else error["msg"],
        )
        for error in errors[:10]
    ]
    said = [(field, f"{field}: {msg}") for field, msg in words]
    first = _rejection(data)
    assert (first.field, first.detail) == said[0]
    rejection = _every_problem(data)
    problems = [rejection, *rejection.also]
    assert [(p.field, p.detail) for p in problems] == said
    assert rejection.also_found == len(errors) - 1


def test_a_long_list_of_wrong_items_is_never_handed_to_the_model_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A payload with 50 000 wrong node names is refused without its model validating more than
    a window of them (pydantic builds each error it finds, ~6 µs each, holding the GIL): its
    items are checked a window at a time, their errors counted, not built."""
    data = _membership([1] * 50_000, [2] * 50_000)
    longest: list[int] = []
    validate = ClusterMembership.model_validate.__func__  # type: ignore[attr-defined]

    def noted(model: type[ClusterMembership], /, obj: Any, **options: Any) -> ClusterMembership:
        longest.append(max(len(obj["affected_nodes"]), len(obj["active_nodes"])))
        return validate(model, obj, **options)

    monkeypatch.setattr(ClusterMembership, "model_validate", classmethod(noted))
    first = _rejection(data)
    rejection = _every_problem(data)
    assert (first.field, rejection.field) == ("payload.affected_nodes.0",) * 2
    assert rejection.also_found == 99_999
    assert longest
    assert max(longest) <= 100


def test_a_node_the_envelope_refuses_is_not_refused_again_in_its_payload() -> None:
    """A payload without a node of its own is not refused for the envelope's bad node, which
    it would have taken: that problem is the envelope's alone."""
    rejection = _every_problem(_envelope(node="", payload={"status": "sick"}))
    assert rejection.field == "node"
    assert [p.field for p in rejection.also] == ["payload.status"]


@pytest.mark.parametrize(
    "topic", ["a", "store1:health", "cluster:health", "node_failure", "a.b-c:d_e", "x" * 128]
)
def test_accepts_valid_topics(topic: str) -> None:
    """Topics of 1-128 characters from [A-Za-z0-9_.:-] are accepted."""
    assert check_topic(topic) == topic


@pytest.mark.parametrize("topic", ["", "x" * 129, "has space", "star*", "é", "a/b", "a\n", None, 5])
def test_rejects_invalid_topics(topic: Any) -> None:
    """Anything else is refused with a ValueError naming the topic."""
    with pytest.raises(ValueError, match="topic"):
        check_topic(topic)


@pytest.mark.parametrize(
    "ts", ["2026-11-28T00:00:00.123z", "2026-11-28t00:00:00.123z", "2026-11-28 00:00:00.123z"]
)
def test_a_ts_with_a_lower_case_z_is_taken_as_rfc_3339_allows(ts: str) -> None:
    """RFC 3339 lets "T" and "Z" be written "t" and "z": the envelope's ts takes either."""
    envelope = _decode(_envelope(ts=ts))
    assert isinstance(envelope, Envelope), envelope
    assert envelope.ts == datetime(2026, 11, 28, 0, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    "ts",
    [
        "2026-11-28T00:00Z",  # no seconds
        "2026-11-28T00Z",  # the hour alone
        "20261128T000000Z",  # ISO 8601's basic format
        "2026-11-28T000000Z",
        "2026-W48-5T00:00:00Z",  # a week date
        "2026-11-28T00:00:00+0100",  # an offset without its colon
        "2026-11-28T00:00:00+01",
        "2026-11-28T00:00:00+01:00:30",  # an offset with seconds
        "2026-11-28T00:00:00,5Z",  # a comma before the fraction
        "2026-11-28T00:00:00.Z",  # a point without a fraction
    ],
)
def test_a_ts_in_iso_8601_but_not_rfc_3339_is_refused(ts: str) -> None:
    """The envelope's ts is RFC 3339's date-time with its offset, as its refusal says: forms
    only ISO 8601 (and so fromisoformat) reads are malformed, naming ts, as a payload timestamp
    in them is invalid."""
    rejection = _rejection(_envelope(ts=ts))
    assert (rejection.reason, rejection.field) == (RejectReason.MALFORMED, "ts"), rejection
    assert rejection.detail == (
        "ts must be an RFC 3339 date-time with seconds and its UTC offset (2026-11-28T00:00:00Z)"
    )
