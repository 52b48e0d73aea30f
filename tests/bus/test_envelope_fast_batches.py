"""The fast decoders against the reference decoder on batches: valid ones taken at once, escapes in
their values read as each line alone, a key given twice or a control character refused at its
line."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

import bridge.bus.decoding as decoding_module
from bridge.bus import Envelope, Rejection, RejectReason, decode_envelope, structs
from bridge.bus.batch_scans import is_clean
from bridge.bus.decoding import decode_envelopes
from bridge.bus.problems import decode_envelope_reference
from bridge.messages import AlertAck, LogEntry, Message
from tests.bus.envelope_helpers import ENVELOPE, HEALTH, body_of, health_of
from tests.messages.helpers import CASES


def _compact(bodies: list[bytes]) -> list[bytes]:
    """``bodies`` as compact JSON, each with an id of its own."""
    out = []
    for number, body in enumerate(bodies):
        data = json.loads(body)
        data["id"] = f"{data['tag'][:20]}{number:08d}"
        out.append(json.dumps(data, separators=(",", ":")).encode())
    return out


@pytest.mark.parametrize("escapes", [False, True], ids=["no-escapes", "escapes"])
def test_a_batch_of_valid_envelopes_is_taken_at_once(
    escapes: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of valid envelopes passes the key count at once: every type's complete and
    minimal payloads (nested maps and lists of strings among them), their quotes counted when
    no string holds an escape; else, compact, the keys' closing quotes. No body is decoded
    alone."""
    if escapes:
        nodes = ['a"quoted"node', "back\\slash", 'x"y']
        bodies = _compact([health_of(node=node) for node in nodes])
        assert all(b"\\" in body for body in bodies)
    else:
        payloads = [(m, p) for m, case in CASES.items() for p in (case.full, case.minimal)]
        bodies = _compact([body_of(payload, model) for model, payload in payloads])
        assert b"\\" not in b"".join(bodies)

    def alone(*args: Any) -> Any:
        raise AssertionError("a body was decoded alone")

    monkeypatch.setattr(decoding_module, "_decode_each", alone)
    envelopes, failure = decode_envelopes(bodies)
    assert failure is None
    assert len(envelopes) == len(bodies)


@pytest.mark.parametrize("model", [m for m in CASES if m.DERIVED] + [AlertAck], ids=lambda m: m.TAG)
def test_a_decoded_message_s_fields_set_is_not_changed_by_another_s(model: type[Message]) -> None:
    """Decoded messages of one type and shape may share their (never written) set of fields
    set: filling one's derived fields, or ``model_copy`` with an update, leaves the others'
    as the reference decodes it."""
    full, minimal = CASES[model].full, CASES[model].minimal
    for payload in (minimal, full, minimal, full):  # each shape after the other
        bodies = [body_of(payload, model, id=f"message{n:04d}") for n in range(2)]
        envelopes, failure = decode_envelopes(bodies)
        assert failure is None
        expected = decode_envelope_reference(bodies[0])
        assert isinstance(expected, Envelope)
        first, second = (envelope.payload for envelope in envelopes)
        changed = first.model_copy(update={"node": "elsewhere"})
        assert changed.model_fields_set == expected.payload.model_fields_set | {"node"}
        assert first.model_fields_set == expected.payload.model_fields_set
        assert second.model_fields_set == expected.payload.model_fields_set


def _writers() -> dict[str, list[bytes]]:
    """Batches as other writers write them: Python's json.dumps defaults (spaces after the
    separators, ``\\u00b5`` for µ), Go's encoding/json (compact, ``\\u003c`` for <), a log
    line quoting JSON (``\\":``), a newline in a message, an emoji (a surrogate pair), and
    payload timestamps with microseconds or an offset."""
    entry = CASES[LogEntry].full
    lines = {
        "python": [
            json.dumps(
                {
                    **json.loads(body_of({**entry, "message": "took 5 µs"}, LogEntry)),
                    "id": f"py{n:06d}",
                }
            ).encode()
            for n in range(3)
        ],
        "go": [
            json.dumps(
                {**json.loads(body_of(entry, LogEntry)), "id": f"golang{n:04d}"},
                separators=(",", ":"),
            )
            .replace("<", "\\u003c")
            .encode()
            for n in range(3)
        ],
    }
    messages = {
        "quoted-json": 'sent {"id": "x", "ok": true} to {"a":1}',
        "newline": "line one\nline two",
        "unicode": "took 5 µs ✓ 😀",
    }
    for name, message in messages.items():
        lines[name] = [
            body_of({**entry, "message": message}, LogEntry, id=f"{name[:8]}{n:04d}")
            for n in range(3)
        ]
    for name, stamp in {"micro": "2026-11-28T00:00:00.123456Z", "offset": "+00:00"}.items():
        text = stamp if name == "micro" else "2026-11-28T01:00:00.123456" + stamp
        lines[name] = [
            body_of({**entry, "timestamp": text}, LogEntry, id=f"{name}{n:04d}") for n in range(3)
        ]
    return lines


@pytest.mark.parametrize(("writer", "lines"), list(_writers().items()), ids=list(_writers()))
def test_a_batch_with_escapes_in_its_values_is_taken_at_once(
    writer: str, lines: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches as other writers write them (escapes in string values, spaces, JSON quoted in
    a message, payload timestamps in other RFC 3339 forms) decode on the msgspec path at once,
    cut from their body or not, as each line alone does by the reference."""
    expected = [decode_envelope_reference(line) for line in lines]
    assert all(isinstance(envelope, Envelope) for envelope in expected)
    whole = b"\n".join(lines) + b"\n"
    if writer != "newline":
        assert is_clean(whole)

    def alone(*args: Any) -> Any:
        raise AssertionError("a body was decoded alone")

    monkeypatch.setattr(decoding_module, "_decode_each", alone)
    assert decode_envelopes(lines, whole) == decode_envelopes(lines) == (expected, None)


@pytest.mark.parametrize("spaced", [False, True], ids=["compact", "spaced"])
@pytest.mark.parametrize(
    ("key", "field"),
    [('"i\\u0064"', "id"), ('"\\u0069d"', "id"), ('"tag"', "tag")],
    ids=["escaped-id", "escaped-first", "plain"],
)
@pytest.mark.parametrize("where", ["envelope", "payload"])
def test_a_key_given_twice_escaped_in_a_batch_with_escapes_is_refused_at_its_line(
    key: str, field: str, where: str, spaced: bool
) -> None:
    """A key given twice, once written with an escape (``"i\\u0064"`` is ``"id"``), in a batch
    whose other lines hold escapes in their values (µ as ``\\u00b5``, quoted JSON), is refused
    at its line as alone, naming the key: the quotes are counted, the escaped ones aside."""
    entry = {**CASES[LogEntry].full, "message": 'took 5 µs: {"a": 1}'}
    good = [body_of(entry, LogEntry, id=f"message{n:04d}") for n in range(3)]
    if where == "envelope":
        value = '"log_entry"' if field == "tag" else '"01JDX0Y8C7H1V4N0W5Z3Q2M6TB"'
        repeated = good[1][:-1] + f", {key}: {value}}}".encode()
        expected_field = field
    else:  # in the payload's metadata (a map: any key is taken), after its plain spelling
        plain = json.dumps(json.loads(key))
        repeated = good[1].replace(
            b'"metadata": {', f'"metadata": {{{plain}: "0", {key}: "1", '.encode()
        )
        expected_field = f"payload.metadata.{field}"
    if not spaced:
        repeated = repeated.replace(b'": ', b'":').replace(b", ", b",")
    rejection = decode_envelope_reference(repeated)
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.field) == (RejectReason.MALFORMED, expected_field)
    lines = [good[0], repeated, good[2]]
    whole = b"\n".join(lines)
    assert decode_envelopes(lines, whole) == decode_envelopes(lines)
    assert decode_envelopes(lines, whole) == ([decode_envelope_reference(good[0])], (1, rejection))
    assert decode_envelope(repeated) == rejection


@pytest.mark.parametrize("fault", ["escaped-key-twice", "control-in-label", "none"])
@pytest.mark.parametrize("escapes", ["few", "many"])
def test_escapes_anywhere_in_a_long_batch_are_read_as_each_line_alone(
    escapes: str, fault: str
) -> None:
    """In a batch of 60 lines written as json.dumps writes them (µ as ``\\u00b5``, quoted JSON,
    newlines in free text), with a few escapes or with dozens in every line, a key given twice
    (once escaped) or a control character in a label near the end is refused at its line as
    alone, and a batch without either is taken whole: as the reference decodes each line."""
    per_line = 1 if escapes == "few" else 40
    message = 'took 5 µs: {"a": "b"}\n' * per_line
    lines = [
        body_of({**CASES[LogEntry].full,
                 "message": message if n % 30 == 0 or per_line > 1 else "x"},
                LogEntry, id=f"message{n:04d}")
        for n in range(60)
    ]  # fmt: skip
    if fault == "escaped-key-twice":
        lines[55] = lines[55][:-1] + b', "i\\u0064": "01JDX0Y8C7H1V4N0W5Z3Q2M6TB"}'
    elif fault == "control-in-label":
        lines[55] = body_of({**CASES[LogEntry].full, "node": "a\u0007b"}, LogEntry)
    expected_lines = [decode_envelope_reference(line) for line in lines]
    refused = [(n, e) for n, e in enumerate(expected_lines) if isinstance(e, Rejection)]
    expected = (expected_lines[:55], refused[0]) if refused else (expected_lines, None)
    assert len(refused) == (fault != "none")
    whole = b"\n".join(lines) + b"\n"
    assert decode_envelopes(lines, whole) == decode_envelopes(lines) == expected


def test_a_long_run_of_backslashes_before_a_quote_is_counted_in_linear_time() -> None:
    """A value of 40 000 backslashes escaped and then a quote (an 80 kB envelope) is decoded
    in well under a second: each run of backslashes is read once (counted once per run length,
    it took some 13 s of CPU, the event loop held)."""
    line = health_of(payload={**HEALTH, "checks": {"disk": "\\" * 40_000 + '"'}})
    started = time.process_time()
    decoded = decode_envelopes([line], line)
    assert time.process_time() - started < 1.0
    assert decoded == ([decode_envelope_reference(line)], None)


def test_one_odd_line_is_the_only_one_decoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """In a batch of 40, a line only the pydantic-core path takes (a payload timestamp without
    its offset) and one with a key given twice are the only ones decoded again; the rest
    are decoded once, by msgspec, and all is as each line alone decodes it."""
    lines = [health_of(id=f"id{n:08d}") for n in range(40)]
    lines[7] = health_of(id="id00000007", payload={**HEALTH, "timestamp": "2026-11-28T00:00:00"})
    lines[30] = lines[30][:-1] + b', "node": "other@host"}'
    expected = ([decode_envelope(line) for line in lines[:30]], (30, decode_envelope(lines[30])))
    again: list[bytes] = []
    for name in ("_decode_unchecked", "decode_envelope_reference"):
        decoder = getattr(decoding_module, name)

        def counted(body: bytes, decoder: Any = decoder) -> Any:
            again.append(body)
            return decoder(body)

        monkeypatch.setattr(decoding_module, name, counted)
    decoded: list[bytes] = []

    class Counted:
        def __init__(self, decoder: Any) -> None:
            self.wrapped = decoder

        def decode(self, body: bytes) -> Any:
            decoded.append(body)
            return self.wrapped.decode(body)

    for name in ("CLEAN", "CHECKED"):
        decoder, builders = getattr(structs, name)
        monkeypatch.setattr(structs, name, (Counted(decoder), builders))
    assert decode_envelopes(lines, b"\n".join(lines)) == expected
    assert again == [lines[7], lines[30]]
    assert decoded == lines


def test_a_batch_as_json_dumps_writes_it_is_decoded_once_a_line_by_msgspec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch as Python's json.dumps writes it by default (spaces, µ as ``\\u00b5``, a newline
    escaped in some lines' free text, isoformat() timestamps) is decoded once a line, by
    msgspec: the lines holding the newline by the decoder checking the label patterns, the
    others by the clean one, none by the other paths; as each line alone decodes it."""
    stamp = "2026-11-28T00:00:00.123456+00:00"
    lines = [
        json.dumps(
            {
                **ENVELOPE,
                "id": f"id{n:08d}",
                "ts": stamp,
                "payload": {**HEALTH, "timestamp": stamp, "checks": {"disk": text}},
            }
        ).encode()
        for n, text in enumerate("ok\nlast run fine" if n % 8 == 3 else "5 µs" for n in range(40))
    ]
    expected = ([decode_envelope_reference(line) for line in lines], None)
    again: list[bytes] = []
    for name in ("_decode_unchecked", "decode_envelope_reference"):
        decoder = getattr(decoding_module, name)

        def counted(body: bytes, decoder: Any = decoder) -> Any:
            again.append(body)
            return decoder(body)

        monkeypatch.setattr(decoding_module, name, counted)
    decoded: dict[str, list[bytes]] = {"CLEAN": [], "CHECKED": []}

    class Counted:
        def __init__(self, decoder: Any, name: str) -> None:
            self.wrapped, self.name = decoder, name

        def decode(self, body: bytes) -> Any:
            decoded[self.name].append(body)
            return self.wrapped.decode(body)

    for name in ("CLEAN", "CHECKED"):
        decoder, builders = getattr(structs, name)
        monkeypatch.setattr(structs, name, (Counted(decoder, name), builders))
    assert decode_envelopes(lines, b"\n".join(lines) + b"\n") == expected
    assert again == []
    assert decoded["CHECKED"] == [line for line in lines if b"\\n" in line]
    assert decoded["CLEAN"] == [line for line in lines if b"\\n" not in line]


@pytest.mark.parametrize("control", ["\n", "\x85", "\x7f", "\x1b"], ids=repr)
@pytest.mark.parametrize("ascii_only", [True, False], ids=["escaped", "raw"])
def test_a_control_character_in_a_label_is_refused_in_a_batch_with_escapes_elsewhere(
    control: str, ascii_only: bool
) -> None:
    """In a batch whose other lines hold escapes (a newline in a log message, µ), a control
    character in a label value (escaped or raw) is refused at its line, naming the field; the
    lines around it, whose controls are in free text, are taken."""
    entry = CASES[LogEntry].full
    free = body_of({**entry, "message": f"a{control}b µs"}, LogEntry, ascii_only=ascii_only)
    label = body_of({**entry, "node": f"a{control}b"}, LogEntry, ascii_only=ascii_only)
    lines = [free, label, free]
    rejection = decode_envelope_reference(label)
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.field) == (RejectReason.INVALID_PAYLOAD, "payload.node")
    expected = ([decode_envelope_reference(free)], (1, rejection))
    assert decode_envelopes(lines, b"\n".join(lines)) == decode_envelopes(lines) == expected
    assert decode_envelopes([free, free], b"\n".join([free, free]))[1] is None
