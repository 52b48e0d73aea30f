"""The fast decoders against the reference decoder on the envelope's fields and odd bodies: keys
given twice, control characters, lone surrogates, nesting, and the bounds the docs give."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

import bridge
import bridge.bus.decoding as decoding_module
from bridge.bus import Envelope, Rejection, RejectReason, decode_envelope, depth
from bridge.bus.decoding import _decode_fast, decode_envelopes
from bridge.bus.depth import MAX_DEPTH
from bridge.bus.problems import decode_envelope_reference
from bridge.client_settings import NodeName
from bridge.messages import SystemAlert
from tests.bus.envelope_helpers import (
    ENVELOPE,
    HEALTH,
    NODE,
    SEPARATORS,
    TS,
    body_of,
    decoded_alike,
    health_of,
    pairs_json,
    with_number,
)
from tests.messages.helpers import CASES

_FIRST = next(iter(CASES))


EDGE_CASES: dict[str, bytes | str] = {
    "text input": body_of(HEALTH, _FIRST).decode(),
    "version as float": b"",
    "not json": b"{nope",
    "empty": b"",
    "top-level array": b"[1, 2]",
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "deep payload": b'{"v":1,"payload":' + b'{"a":' * 5_000 + b"1" + b"}" * 5_001,
    "utf-8 bom": b"\xef\xbb\xbf" + body_of(HEALTH, _FIRST),
    "invalid utf-8": body_of(HEALTH, _FIRST).replace(b"node1", b"n\xffde1"),
    "trailing garbage": body_of(HEALTH, _FIRST) + b"x",
    "surrounding whitespace": b" \n" + body_of(HEALTH, _FIRST) + b"\n ",
}


FIELD_CASES: list[tuple[str, Any]] = [
    ("v", 1.0),
    ("v", True),
    ("v", "1"),
    ("v", 2),
    ("v", 0),
    ("v", None),
    ("id", "short"),
    ("id", "x" * 129),
    ("id", "x" * 128),
    ("id", "abcdefgh\n"),
    ("id", "abcdefgh!"),
    ("id", 12345678),
    ("topic", ""),
    ("topic", "a" * 129),
    ("topic", "a b"),
    ("topic", "a:b\n"),
    ("topic", ["a"]),
    ("node", ""),
    ("node", "n" * 255),
    ("node", "n" * 256),
    ("node", "é" * 255),
    ("node", "é" * 256),
    ("node", None),
    ("node", 7),
    ("ts", "2026-11-28T02:00:00.123+02:00"),
    ("ts", "2026-11-28T00:00:00.123"),
    ("ts", "2026-11-28T00:00:00.123456Z"),
    ("ts", "2026-11-28T00:00:00Z"),
    ("ts", "2026-11-28"),
    ("ts", "0001-01-01T00:00:00+01:00"),
    ("ts", "9999-12-31T23:59:59-01:00"),
    ("ts", "2026-11-28T00:00:00.123Z" + " " * 20),
    ("ts", "not a time"),
    ("ts", 1764288000),
    ("ts", None),
    ("instance", "ex_esdb_metrics"),
    ("instance", "ex_esdb_nothing"),
    ("instance", 3),
    ("tag", "resource_usage"),
    ("tag", "nothing_like_it"),
    ("tag", None),
    ("payload", None),
    ("payload", []),
    ("payload", "healthy"),
    ("payload", {}),
    ("payload", {**HEALTH, "extra": 1}),
    ("payload", {**HEALTH, "status": "fine"}),
    ("payload", {**HEALTH, "node": None}),
    ("payload", {"status": "healthy", "timestamp": TS}),
    ("payload", {**HEALTH, "node": "other@host"}),
    ("payload", {**HEALTH, "load_avg": 1e400}),
    ("payload", {**HEALTH, "memory_usage": -1}),
    ("payload", {**HEALTH, "checks": {"big": 10**40, "nested": [1.5, None, True]}}),
    ("payload", {**HEALTH, "timestamp": "2026-11-28T03:00:00.123456+03:00"}),
    ("payload", {**HEALTH, "timestamp": "2026-11-28T00:00:00"}),
    ("payload", {**HEALTH, "timestamp": 1764288000}),
    ("extra", 1),
]


@pytest.mark.parametrize(("field", "value"), FIELD_CASES, ids=lambda x: repr(x)[:40])
def test_envelope_fields_decode_the_same_either_way(field: str, value: Any) -> None:
    """Every odd envelope field value gives the reference's Envelope or Rejection."""
    decoded_alike(health_of(**{field: value}))


@pytest.mark.parametrize(
    "missing", ["v", "id", "instance", "topic", "tag", "node", "ts", "payload"]
)
def test_a_missing_envelope_field_is_refused_as_the_reference_does(missing: str) -> None:
    """Leaving out any envelope key gives the reference's rejection naming it."""
    data = json.loads(health_of())
    del data[missing]
    rejection = decoded_alike(json.dumps(data).encode())
    assert isinstance(rejection, Rejection)
    assert rejection.field == missing


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_odd_bodies_decode_the_same_either_way(name: str) -> None:
    """Bodies that are barely or not JSON give the reference's result, never an exception."""
    body = EDGE_CASES[name] or health_of().replace(b'"v": 1', b'"v": 1.0')
    decoded_alike(body)


@pytest.mark.parametrize(
    "body",
    [
        # Duplicate keys: the last one wins in both parsers.
        health_of()[:-1] + b', "node": "other@host"}',
        health_of()[:-1] + b', "tag": "resource_usage"}',
        health_of()[:-1] + b', "payload": {"status": "degraded"}}',
        # A lone surrogate escape: json.loads takes it, pydantic-core refuses it (then falls back).
        health_of().replace(b'"node1@host"', b'"\\ud800x"', 1),
        health_of().replace(b'"node1@host"', b'"n\\u0000x"', 1),
        # UTF-16: json.loads detects it, pydantic-core does not (then falls back).
        health_of().decode().encode("utf-16"),
    ],
    ids=["dup-node", "dup-tag", "dup-payload", "surrogate", "nul", "utf-16"],
)
def test_parser_corner_cases_decode_the_same_either_way(body: bytes) -> None:
    """Where the two JSON parsers could differ, the result is still the reference's."""
    decoded_alike(body)


@pytest.mark.parametrize("style", list(SEPARATORS))
@pytest.mark.parametrize(
    ("pairs", "field"),
    [
        ([*ENVELOPE.items(), ("id", "01JDX0Y8C7H1V4N0W5Z3Q2M6TC"), ("payload", HEALTH)], "id"),
        ([*ENVELOPE.items(), ("payload", HEALTH), ("node", "other@host")], "node"),
        ([*ENVELOPE.items(), ("payload", HEALTH), ("payload", HEALTH)], "payload"),
        ([*ENVELOPE.items(), ("payload", [("status", "degraded"), ("status", "healthy")])],
         "payload.status"),
        ([*ENVELOPE.items(), ("payload", [("status", "healthy"), ("node", "a"), ("node", "a")])],
         "payload.node"),
        ([*ENVELOPE.items(), ("payload", [("status", "healthy"),
          ("checks", [("disk", [("x", [1, [("a", 1), ("b", 2), ("a", 3)]])])])])],
         "payload.checks.disk.x.1.a"),
    ],
)  # fmt: skip
def test_a_key_given_twice_is_refused_either_way_naming_it(
    pairs: list[tuple[str, Any]], field: str, style: str
) -> None:
    """A key repeated in the envelope, the payload or deeper, however the JSON is spaced, is
    refused as malformed by both decoders, naming the key where it repeats."""
    body = pairs_json(pairs, SEPARATORS[style]).encode()
    assert _decode_fast(body) is None
    rejection = decoded_alike(body)
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.field) == (RejectReason.MALFORMED, field)
    envelopes, failure = decode_envelopes([health_of(), body])
    assert len(envelopes) == 1
    assert failure == (1, rejection)


@pytest.mark.parametrize("style", [style for style in SEPARATORS if style != "lines"])
@pytest.mark.parametrize("escaped", [False, True], ids=["clean", "escaped"])
def test_a_key_given_twice_in_a_batch_cut_from_its_body_is_refused_as_alone(
    style: str, escaped: bool
) -> None:
    """A batch decoded with the body its lines were cut from (blank, spaced and CRLF lines
    around them), as ingest decodes it, refuses a key given twice as each line alone would, on
    clean bytes (the quotes counted in the body) and with an escape (the keys in the lines)."""
    node = "node\\u00e9@host" if escaped else NODE  # a backslash: the bytes are not clean
    pairs = [*ENVELOPE.items(), ("node", node), ("payload", HEALTH), ("node", "other@host")]
    repeated = pairs_json(pairs, SEPARATORS[style]).encode()
    good = health_of(node=node)
    whole = b"\n \t\n" + good + b"\r\n\n" + repeated + b"\n" + good + b"\n"
    lines = [line for line in whole.split(b"\n") if line and not line.isspace()]
    rejection = decoded_alike(repeated)
    assert isinstance(rejection, Rejection)
    expected = ([decoded_alike(good)], (1, rejection))
    assert decode_envelopes(lines, whole) == decode_envelopes(lines) == expected


def test_a_clean_batch_cut_from_its_body_decodes_on_the_fast_path_as_its_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Clean lines decoded with the body they were cut from (CRLF endings, blank and spaced
    lines between) give what the lines alone give, the batch on the fast path: the quotes
    counted in the body are the lines' own."""
    lines = [health_of(id=f"id{n:08d}") for n in range(3)]
    whole = b"\r\n".join(lines) + b"\r\n\n  \n"
    cut = [line for line in whole.split(b"\n") if line and not line.isspace()]
    expected = decode_envelopes(cut)

    def alone(*args: Any) -> Any:
        raise AssertionError("a body was decoded alone")

    monkeypatch.setattr(decoding_module, "_decode_each", alone)
    assert decode_envelopes(cut, whole) == expected
    assert expected[1] is None
    assert len(expected[0]) == len(lines)


@pytest.mark.parametrize(
    "body",
    [
        # An escaped key is the same key.
        health_of()[:-1] + b', "n\\u006fde": "other@host"}',
        health_of().replace(b'{"status"', b'{"st\\u0061tus": "degraded", "status"'),
        # A quote and colon inside strings, and strings opening with a colon: no key repeats.
        health_of(node='a":b', topic="x:y").replace(b": ", b":").replace(b", ", b","),
        health_of(payload={**HEALTH, "checks": {"::1": "up", 'say "x": y': ":"}}),
        health_of(payload={**HEALTH, "checks": {"a": {"a": {"a": 1}}, "b": [{"a": 1}, {"a": 1}]}}),
    ],
    ids=["escaped-envelope-key", "escaped-payload-key", "quoted-colons", "colon-strings",
         "same-keys-nested"],
)  # fmt: skip
def test_keys_that_look_alike_decode_the_same_either_way(body: bytes) -> None:
    """Escaped keys, quotes and colons inside strings and equal keys in different objects are
    read alike by both decoders (the fast path leaves the doubtful ones to the reference)."""
    decoded_alike(body)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"node": "node\x00host"}, "node"),
        ({"node": "node\nhost"}, "node"),
        ({"node": "node\x7fhost"}, "node"),
        ({"node": "node\x9fhost"}, "node"),
        ({"payload": {**HEALTH, "node": "a\x00b"}}, "payload.node"),
        ({"payload": {"status": "healthy", "node": "a\x80"}}, "payload.node"),
        (
            {
                "instance": "ex_esdb_alerts",
                "tag": "system_alert",
                "payload": {"severity": "warning", "category": "system", "title": "t",
                            "description": "d", "source": "a\x00b", "node": NODE},
            },
            "payload.source",
        ),
    ],
)  # fmt: skip
def test_control_characters_in_node_and_labels_are_refused_either_way(
    changes: dict[str, Any], field: str
) -> None:
    """A C0 (NUL included), DEL or C1 control character in the envelope's node or a payload
    string that becomes a label value is refused by both decoders, naming the field."""
    for ascii_only in (True, False):
        data = json.loads(health_of())
        data.update(changes)
        body = json.dumps(data, ensure_ascii=ascii_only).encode()
        rejection = decoded_alike(body)
        assert isinstance(rejection, Rejection)
        assert rejection.field == field


@pytest.mark.parametrize("alert_id", [".", "..", "...", ".a", "a..", "%2e%2e", "a/.."])
@pytest.mark.parametrize("title", ["disk full", "disk µ full"], ids=["ascii", "utf-8"])
def test_an_alert_id_of_one_or_two_dots_alone_is_refused_either_way(
    alert_id: str, title: str
) -> None:
    """A SystemAlert's alert_id of ``.`` or ``..`` (which a link's path drops: no page link or
    generatorURL would reach the alert) is refused by both decoders, from clean bytes or not,
    naming ``payload.alert_id`` and saying why; any other id with dots is taken."""
    payload = {
        "alert_id": alert_id,
        "severity": "error",
        "category": "system",
        "title": title,
        "description": "d",
        "source": "tests",
        "node": NODE,
    }
    for ascii_only in (True, False):
        decoded = decoded_alike(body_of(payload, SystemAlert, ascii_only=ascii_only))
        if alert_id in (".", ".."):
            assert isinstance(decoded, Rejection)
            assert decoded.field == "payload.alert_id"
            assert decoded.detail.startswith("payload.alert_id: an alert id must not be . or ..")
        else:
            assert isinstance(decoded, Envelope)
            assert decoded.payload.alert_id == alert_id  # type: ignore[attr-defined]


@pytest.mark.parametrize("node", ["a\ud800b", "\udfff", "a\udc80"])
def test_a_lone_surrogate_in_node_is_refused_either_way(node: str) -> None:
    """An unpaired surrogate escape (``\\ud800``) in the envelope's node, which no UTF-8 text
    can carry, is refused by both decoders and on a batch's path, naming ``node``."""
    data = json.loads(health_of())
    data["node"] = node
    body = json.dumps(data).encode()  # the surrogate as its escape
    rejection = decoded_alike(body)
    assert isinstance(rejection, Rejection)
    assert rejection.field == "node"
    good = health_of()
    assert decode_envelopes([good, body, good])[1] == (1, rejection)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**HEALTH, "checks": {"disk": "a\ud800"}}, "payload.checks.disk"),
        ({**HEALTH, "checks": {"disk": [1, {"x": "\udfff"}]}}, "payload.checks.disk.1.x"),
        ({**HEALTH, "checks": {"disk": {"\ud800": 1}}}, "payload.checks.disk"),
        ({**HEALTH, "checks": {"disk": "\ud800"}, "load_avg": "1.5"}, "payload.checks.disk"),
    ],
    ids=["value", "deep", "key", "lax"],
)
def test_a_lone_surrogate_anywhere_is_refused_either_way_naming_where(
    payload: dict[str, Any], field: str
) -> None:
    """An unpaired surrogate escape in a payload's free-form object (a value or a key, at any
    depth), which no envelope sent on could carry, is refused as malformed by both decoders
    and on a batch's path, naming where it is; a paired one (an emoji) is taken."""
    body = json.dumps(json.loads(health_of()) | {"payload": payload}).encode()
    rejection = decoded_alike(body)
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.field) == (RejectReason.MALFORMED, field)
    assert "lone surrogate" in rejection.detail
    assert decode_envelopes([health_of(), body])[1] == (1, rejection)
    paired = body.replace(b"\\ud800", b"\\ud83d\\ude00").replace(b"\\udfff", b"\\ud83d\\ude00")
    taken = decoded_alike(paired)
    assert isinstance(taken, Envelope)
    assert json.loads(taken.to_bytes())["payload"]["checks"]


def _nested(levels: int, inner: Any = 1) -> Any:
    """``inner`` in ``levels`` arrays, objects and arrays by turns (``[{"x": [...]}]``)."""
    value = inner
    for level in reversed(range(levels)):
        value = [value] if level % 2 == 0 else {"x": value}
    return value


@pytest.mark.parametrize("lax", [False, True], ids=["msgspec", "pydantic-core"])
def test_nesting_up_to_the_limit_is_taken_and_sent_on(lax: bool) -> None:
    """An envelope nested exactly MAX_DEPTH deep (the envelope, its payload, ``checks`` and 61
    levels in it) is taken by a fast path as the reference takes it, and its wire form, which
    every sink and transport writes, decodes to it again."""
    payload = {**HEALTH, "checks": {"a": _nested(MAX_DEPTH - 3)}}
    if lax:
        payload["load_avg"] = "1.5"
    body = health_of(payload=payload)
    assert _decode_fast(body) is not None
    envelope = decoded_alike(body)
    assert isinstance(envelope, Envelope)
    assert decode_envelope(envelope.to_bytes()) == envelope


@pytest.mark.parametrize("lax", [False, True], ids=["msgspec", "pydantic-core"])
@pytest.mark.parametrize("levels", [MAX_DEPTH - 2, 300, 900])
def test_nesting_past_the_limit_is_refused_either_way_naming_where(levels: int, lax: bool) -> None:
    """One level more (or hundreds more, which some parsers take and no serializer writes) is
    refused as malformed by both decoders and on a batch's path, naming the first object or
    array past the limit."""
    payload = {**HEALTH, "checks": {"a": _nested(levels)}}
    if lax:
        payload["load_avg"] = "1.5"
    body = health_of(payload=payload)
    rejection = decoded_alike(body)
    assert isinstance(rejection, Rejection)
    where = "payload.checks.a" + ".0.x" * ((MAX_DEPTH - 3) // 2) + ".0"
    assert (rejection.reason, rejection.field) == (RejectReason.MALFORMED, where)
    assert f"deeper than {MAX_DEPTH} levels" in rejection.detail
    assert decode_envelopes([health_of(), body, health_of()])[1] == (1, rejection)


def _nested_text(levels: int) -> bytes:
    """``_nested(levels)``'s JSON, written without recursing (json.dumps would not go so deep)."""
    openings = [b"[" if level % 2 == 0 else b'{"x":' for level in range(levels)]
    closings = [b"]" if level % 2 == 0 else b"}" for level in reversed(range(levels))]
    return b"".join(openings) + b"1" + b"".join(closings)


@pytest.mark.parametrize("lax", [False, True], ids=["msgspec", "pydantic-core"])
def test_nesting_deeper_than_the_parser_goes_is_refused_naming_where(lax: bool) -> None:
    """10 000 levels, past the recursion of json.loads, get the nesting rejection of 65 levels
    (the limit and where the first level past it is), alone and in a batch: not "not JSON"."""
    payload = {**HEALTH, "checks": {"a": "#"}}
    if lax:
        payload["load_avg"] = "1.5"
    body = with_number(health_of(payload=payload), _nested_text(10_000).decode())
    rejection = decoded_alike(body)
    assert isinstance(rejection, Rejection)
    where = "payload.checks.a" + ".0.x" * ((MAX_DEPTH - 3) // 2) + ".0"
    assert (rejection.reason, rejection.field) == (RejectReason.MALFORMED, where)
    assert rejection.detail.startswith(f"nested deeper than {MAX_DEPTH} levels of")
    assert decode_envelopes([health_of(), body, health_of()])[1] == (1, rejection)
    with pytest.raises(ValueError, match=f"^{re.escape(where)}: nested deeper than 64 levels"):
        depth.check_depth(body)


def test_the_docs_give_the_nesting_limit_in_force() -> None:
    """docs/messages.md (generated) and docs/http-api.md name MAX_DEPTH as the limit."""
    docs = Path(bridge.__file__).parent.parent / "docs"
    for page in ("messages.md", "http-api.md"):
        text = " ".join((docs / page).read_text().split())
        assert f"more than {MAX_DEPTH} levels" in text or (f"at most {MAX_DEPTH} levels" in text), (
            page
        )


# A length bound as docs/messages.md's envelope table words it: "8-128 characters", "at most 40
# characters".
_DOCUMENTED_BOUND = re.compile(r"(?:(\d+)-)?(\d+) characters")


# Each bounded envelope field: a value of it ``length`` characters long (a timestamp's fraction
# as long as it takes: Python reads any number of its digits).
_OF_LENGTH: dict[str, Any] = {
    "id": lambda length: "x" * length,
    "topic": lambda length: "a" * length,
    "node": lambda length: "n" * length,
    "ts": lambda length: "2026-11-28T00:00:00." + "1" * (length - 21) + "Z",
}


def test_the_docs_give_the_envelope_bounds_in_force() -> None:
    """Each length docs/messages.md gives an envelope field (id, topic, node, ts) is the one
    both decoders keep to: its shortest and longest taken, one character fewer or more refused
    naming the field; and ``EXESDB_NODE`` takes the longest node the envelope does."""
    docs = Path(bridge.__file__).parent.parent / "docs"
    rows: dict[str, str] = {}
    for line in (docs / "messages.md").read_text().splitlines():
        if line.startswith("| `"):
            rows.setdefault(line.split("`")[1], line)  # the envelope's table comes first
    for name, of_length in _OF_LENGTH.items():
        bound = _DOCUMENTED_BOUND.search(rows[name])
        assert bound is not None, rows[name]
        longest = int(bound.group(2))
        taken = [longest]
        refused = [longest + 1]
        if bound.group(1) is not None:
            taken.append(int(bound.group(1)))
            refused.append(int(bound.group(1)) - 1)
        for length in taken:
            body = health_of(**{name: of_length(length)})
            assert isinstance(decode_envelope(body), Envelope), (name, length)
            assert isinstance(decode_envelope_reference(body), Envelope), (name, length)
        for length in refused:
            body = health_of(**{name: of_length(length)})
            for decoded in (decode_envelope(body), decode_envelope_reference(body)):
                assert isinstance(decoded, Rejection), (name, length)
                assert decoded.field == name, (name, length)
        if name == "node":
            node = TypeAdapter(NodeName)
            assert node.validate_python(of_length(longest)) == of_length(longest)
            with pytest.raises(ValidationError):
                node.validate_python(of_length(longest + 1))
