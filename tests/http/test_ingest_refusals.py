"""Ingest's refusals (docs/http-api.md), each a status and a named reason: the field, signature,
timestamp, content type or route at fault named."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Final

import pytest
from multidict import CIMultiDict

from bridge.bus import SIGNATURE_HEADER, Keyring
from bridge.messages import FeatureToggle, format_timestamp
from tests.http.helpers import JSON, NDJSON, ServerFactory, body_of, envelope, signed
from tests.support import ADMIN_TOKEN, TEST_SECRET

# The envelope fields of an AlertAck (its payload given with them).
ACK: Final = {"instance": "ex_esdb_alerts", "topic": "alerts", "tag": "alert_acknowledged"}


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        (b"not json", "malformed", "body"),
        (b"", "malformed", "body"),
        (b"[1]", "malformed", "body"),
        (body_of(envelope(v=2)), "malformed", "v"),
        (body_of(envelope(id="x")), "malformed", "id"),
        (body_of(envelope(ts="yesterday")), "malformed", "ts"),
        (body_of(envelope(instance="ex_esdb_nothing")), "unknown_instance", "instance"),
        (body_of(envelope(tag="no_such_tag")), "unknown_tag", "tag"),
        (body_of(envelope(payload={"status": "sick"})), "invalid_payload", "payload.status"),
        (body_of(envelope(payload={})), "invalid_payload", "payload.status"),
        (body_of(envelope(**ACK, payload={"alert_id": "a1", "ack_by": "\u202eops"})),
         "invalid_payload", "payload.ack_by"),
        (json.dumps(envelope(**ACK, payload={"alert_id": "a1", "ack_by": "o\u2028ps"}),
                    ensure_ascii=False).encode(), "invalid_payload", "payload.ack_by"),
        (body_of(envelope(**ACK, payload={"alert_id": "a1", "ack_by": "x" * 201})),
         "invalid_payload", "payload.ack_by"),
        (body_of(envelope(**ACK, payload={"alert_id": "a1", "ack_by": "   "})),
         "invalid_payload", "payload.ack_by"),
        (json.dumps(envelope(**ACK, payload={"alert_id": "a1", "ack_by": "\u3000\xa0"}),
                    ensure_ascii=False).encode(), "invalid_payload", "payload.ack_by"),
    ],
    # Named: a body's own bytes (a fresh id and time each collection) would differ between the
    # pytest-xdist workers, which refuse to run when they collect different tests.
    ids=[
        "not-json", "empty", "not-an-object", "version-2", "short-id", "ts-not-a-time",
        "unknown-instance", "unknown-tag", "status-unknown", "status-missing", "ack-by-bidi",
        "ack-by-line-separator", "ack-by-too-long", "ack-by-blank", "ack-by-unicode-blank",
    ],
)  # fmt: skip
async def test_ingest_answers_400_naming_the_field(
    serve: ServerFactory, body: bytes, error: str, field: str | None
) -> None:
    """A signed but bad envelope answers 400 with a JSON body naming the reason and field."""
    server = await serve()
    status, answer = await server.post(body)
    assert status == 400
    assert answer["error"] == error
    assert answer.get("field") == field
    assert answer["detail"]
    assert server.rejected(error) == 1
    assert server.delivered == []


@pytest.mark.parametrize(
    ("changed", "field"),
    [
        ({"node": " "}, "node"),
        ({"node": "\u3000\xa0"}, "node"),
        ({"payload": {"status": "healthy", "node": " \t "}}, "payload.node"),
        ({"payload": {"status": "healthy", "node": "\u2003"}}, "payload.node"),
    ],
    ids=["node-space", "node-unicode-blank", "payload-node-tab", "payload-node-em-space"],
)
async def test_a_blank_node_name_answers_400_naming_the_field(
    serve: ServerFactory, changed: dict[str, object], field: str
) -> None:
    """A node name of blanks only, written raw, in the envelope or the payload, answers 400
    naming the field and saying a node name must not be blank, counted in
    exesdb_bus_rejected_total; nothing is delivered (no series, member or alert for " ")."""
    server = await serve()
    status, answer = await server.post(json.dumps(envelope(**changed), ensure_ascii=False).encode())
    error = "malformed" if field == "node" else "invalid_payload"
    assert (status, answer["error"], answer["field"]) == (400, error, field)
    assert "blank at its start or end" in answer["detail"]
    assert server.rejected(error) == 1
    assert server.delivered == []


@pytest.mark.parametrize(
    ("changed", "detail"),
    [
        (
            {"instance": "ex_esdb_healt"},
            "unknown bus instance 'ex_esdb_healt'; allowed: ex_esdb_system, ex_esdb_health,",
        ),
        (
            {"tag": "node_health"},
            "'node_health' is not a message type of ex_esdb_health; its types: "
            "node_health_updated, cluster_health_updated, component_health_updated, "
            "health_check_completed",
        ),
        (
            {"tag": "system_alert"},
            "'system_alert' is not a message type of ex_esdb_health; its types: "
            "node_health_updated, cluster_health_updated, component_health_updated, "
            "health_check_completed (system_alert is one of ex_esdb_alerts)",
        ),
    ],
)
async def test_an_unknown_instance_or_tag_is_answered_with_what_is_allowed(
    serve: ServerFactory, changed: dict[str, str], detail: str
) -> None:
    """unknown_instance lists the nine instances; unknown_tag lists the instance's tags and,
    for a tag of another instance, names that one, so the sender can correct the envelope."""
    server = await serve()
    status, answer = await server.post(body_of(envelope(**changed)))
    assert status == 400
    assert answer["detail"].startswith(detail)


async def test_an_unknown_tag_like_one_of_its_instance_is_answered_with_the_tag_meant(
    serve: ServerFactory,
) -> None:
    """An envelope whose tag is like one of its instance's (``node_health_update``) is answered
    400 naming the tag meant, as ``publish`` and ``schema`` name it, in each of a batch's
    problems too; one like none is answered without."""
    server = await serve()
    status, answer = await server.post(body_of(envelope(tag="node_health_update")))
    assert (status, answer["error"]) == (400, "unknown_tag")
    assert answer["detail"] == (
        "'node_health_update' is not a message type of ex_esdb_health; its types:"
        " node_health_updated, cluster_health_updated, component_health_updated,"
        " health_check_completed; did you mean 'node_health_updated'?"
    )
    lines = [
        body_of(envelope(tag=tag))
        for tag in ("node_health_updated", "nosuch", "healthcheck_completed")
    ]
    status, answer = await server.post(b"\n".join(lines), content_type=NDJSON)
    assert status == 400
    nosuch, meant = (problem["detail"] for problem in answer["problems"])
    assert nosuch.startswith("line 2: 'nosuch' is not a message type of ex_esdb_health")
    assert "did you mean" not in nosuch
    assert meant.startswith("line 3: 'healthcheck_completed' is not a message type of")
    assert meant.endswith("; did you mean 'health_check_completed'?")


async def test_an_unknown_instance_like_one_of_the_bus_is_answered_with_the_instance_meant(
    serve: ServerFactory,
) -> None:
    """An envelope whose instance is like one of the bus's (``ex_esdb_healt``) is answered 400
    naming the instance meant, as the message stream's ``?instance=`` does, alone, as a batch's
    line, and after the envelope's other problems; one like none is answered without."""
    server = await serve()
    status, answer = await server.post(body_of(envelope(instance="ex_esdb_healt")))
    assert (status, answer["error"]) == (400, "unknown_instance")
    assert answer["detail"].startswith("unknown bus instance 'ex_esdb_healt'; allowed: ")
    assert answer["detail"].endswith("; did you mean 'ex_esdb_health'?")
    lines = [envelope(instance=one) for one in ("ex_esdb_health", "nosuch", "EX_ESDB_ALERT")]
    status, answer = await server.post(body_of(*lines), content_type=NDJSON)
    assert status == 400
    nosuch, meant = (problem["detail"] for problem in answer["problems"])
    assert nosuch.startswith("line 2: unknown bus instance 'nosuch'")
    assert "did you mean" not in nosuch
    assert meant.startswith("line 3: unknown bus instance 'EX_ESDB_ALERT'")
    assert meant.endswith("; did you mean 'ex_esdb_alerts'?")
    # Among the envelope's other problems: said after them, with the instance meant.
    status, answer = await server.post(body_of(envelope(instance="ex_esdb_metric", bogus=1)))
    assert status == 400
    assert answer["detail"].startswith("unknown envelope field 'bogus'; unknown bus instance")
    assert answer["detail"].endswith("; did you mean 'ex_esdb_metrics'?")


_LONG_NAME: Final = "k" * 200_000


_CUT_NAME: Final = "k" * 64 + "..."


def _long_key_twice() -> bytes:
    once = body_of(envelope(payload={"status": "healthy", _LONG_NAME: 1}))
    return once[:-2] + f', "{_LONG_NAME}": 2}}}}'.encode()


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        (body_of(envelope(**{_LONG_NAME: 1})), "malformed", _CUT_NAME),
        (body_of(envelope(instance=_LONG_NAME)), "unknown_instance", "instance"),
        (body_of(envelope(tag=_LONG_NAME)), "unknown_tag", "tag"),
        (body_of(envelope(tag=[_LONG_NAME])), "unknown_tag", "tag"),
        (body_of(envelope(payload={"status": "healthy", _LONG_NAME: 1})), "invalid_payload",
         f"payload.{_CUT_NAME}"),
        (_long_key_twice(), "malformed", f"payload.{_CUT_NAME}"),
    ],
    ids=["envelope-field", "instance", "tag", "tag-not-text", "payload-field", "key-twice"],
)  # fmt: skip
async def test_a_refusal_quotes_a_long_name_cut_short(
    serve: ServerFactory, body: bytes, error: str, field: str
) -> None:
    """A key, tag or instance of 200 000 characters is refused in a short answer: its detail and
    field quote the name's first 64 characters and ``...``, not the name sent back whole."""
    server = await serve()
    status, answer = await server.post(body)
    assert (status, answer["error"], answer.get("field")) == (400, error, field)
    assert len(json.dumps(answer)) < 1000, answer["detail"][:200]


# The envelope fields of a SystemAlert, and a payload of one.
SYSTEM_ALERT: Final = {"instance": "ex_esdb_alerts", "topic": "disk_full", "tag": "system_alert"}


ALERT: Final = {
    "severity": "error",
    "category": "system",
    "title": "disk full",
    "description": "d",
    "source": "tests",
    "node": "node2@host",
}


@pytest.mark.parametrize("alert_id", [".", ".."])
async def test_an_alert_id_a_links_path_drops_answers_400_naming_it(
    serve: ServerFactory, alert_id: str
) -> None:
    """A SystemAlert whose alert_id is ``.`` or ``..``, which a browser takes out of the path of
    its page's link and generatorURL (``/alerts/..`` is ``/``), answers 400 naming
    ``payload.alert_id`` and saying why; nothing is delivered, and ``...`` is taken."""
    server = await serve()
    payload = {**ALERT, "alert_id": alert_id}
    status, answer = await server.post(body_of(envelope(**SYSTEM_ALERT, payload=payload)))
    assert (status, answer["error"], answer.get("field")) == (
        400,
        "invalid_payload",
        "payload.alert_id",
    ), answer
    assert "an alert id must not be . or .. (a link's path drops them" in answer["detail"]
    assert server.delivered == []
    payload["alert_id"] = "..."
    status, answer = await server.post(body_of(envelope(**SYSTEM_ALERT, payload=payload)))
    assert status == 202, answer


# Payload timestamps that are not RFC 3339 date-times with seconds, which pydantic's datetime
# alone reads (a Unix time in seconds or milliseconds, as a number or text, a bare date, a time
# without seconds): refused as the envelope's ts is.
NOT_RFC3339: Final = [
    0,
    "0",
    1764288000,
    "1764288000",
    1764288000123,
    "1764288000123",
    1764288000.5,
    "2026-11-28",
    "2026-11-28T00:00",
    "2026-11-28T00:00Z",
    True,
]
# The RFC 3339 forms the docs promise, and the instant each names.
RFC3339: Final = {
    "2026-11-28T00:00:00Z": "2026-11-28T00:00:00.000Z",
    "2026-11-28T02:00:00.123456+02:00": "2026-11-28T00:00:00.123Z",
    "2026-11-28T00:00:00": "2026-11-28T00:00:00.000Z",  # no offset: UTC
    "2026-11-28t00:00:00.5z": "2026-11-28T00:00:00.500Z",
    "2026-11-28 00:00:00.123456789Z": "2026-11-28T00:00:00.123Z",
}


@pytest.mark.parametrize(("field", "tag"), [("timestamp", "system_alert"), ("last_check", None)])
async def test_a_payload_timestamp_not_rfc3339_answers_400_naming_it(
    serve: ServerFactory, field: str, tag: str | None
) -> None:
    """A payload timestamp (a SystemAlert's ``timestamp``, a ComponentHealth's ``last_check``)
    given as a Unix time, a bare date or a time without seconds answers 400 invalid_payload
    naming it, each form; the RFC 3339 forms the docs promise are taken, as the instant named."""
    server = await serve()
    if tag:
        fields, base = SYSTEM_ALERT, ALERT
    else:
        fields = {"tag": "component_health_updated", "topic": "health"}
        base = {"component": "store", "status": "healthy"}
    for value in NOT_RFC3339:
        payload = {**base, field: value}
        status, answer = await server.post(body_of(envelope(**fields, payload=payload)))
        assert (status, answer["error"], answer.get("field")) == (
            400,
            "invalid_payload",
            f"payload.{field}",
        ), (value, answer)
        assert "RFC 3339" in answer["detail"], answer
    assert server.delivered == []
    for value in RFC3339:
        payload = {**base, field: value}
        status, answer = await server.post(body_of(envelope(**fields, payload=payload)))
        assert status == 202, (value, answer)
    taken = [format_timestamp(getattr(e.payload, field)) for e in server.delivered]
    assert taken == list(RFC3339.values())


METRIC: Final = {"instance": "ex_esdb_metrics", "topic": "metrics", "tag": "performance_metric"}
METRIC_PAYLOAD: Final = {"metric_name": "m", "unit": "ms", "component": "store", "value": 1}
THROUGHPUT: Final = {**METRIC, "tag": "throughput_metric"}
THROUGHPUT_PAYLOAD: Final = {"operation": "append", "count": 10, "duration_ms": 1000}


@pytest.mark.parametrize(
    ("fields", "base", "field"),
    [(METRIC, METRIC_PAYLOAD, "value"), (THROUGHPUT, THROUGHPUT_PAYLOAD, "count")],
    ids=["float", "int"],
)
async def test_a_number_field_given_a_bool_answers_400_naming_it(
    serve: ServerFactory, fields: dict[str, str], base: dict[str, object], field: str
) -> None:
    """true or false in a number field (a PerformanceMetric's float ``value``, a
    ThroughputMetric's int ``count``) answers 400 invalid_payload naming it, not a series at
    1.0; the number given as text ("10") is taken as the number."""
    server = await serve()
    for given in (True, False):
        payload = {**base, field: given}
        status, answer = await server.post(body_of(envelope(**fields, payload=payload)))
        assert (status, answer["error"], answer.get("field")) == (
            400,
            "invalid_payload",
            f"payload.{field}",
        ), (given, answer)
    assert server.delivered == []
    status, answer = await server.post(body_of(envelope(**fields, payload={**base, field: "10"})))
    assert status == 202, answer
    assert [getattr(e.payload, field) for e in server.delivered] == [10]


TOGGLE: Final = {"instance": "ex_esdb_system", "topic": "system", "tag": "feature_toggle_changed"}
TOGGLE_PAYLOAD: Final = {"feature": "snapshots", "previous_state": True, "changed_by": "ops"}


async def test_a_boolean_field_given_text_or_a_number_answers_400_naming_it(
    serve: ServerFactory,
) -> None:
    """Text or a number in a boolean field (a FeatureToggle's ``enabled``: "true", "yes", "0",
    1, 0, which pydantic's lax bool reads) answers 400 invalid_payload naming it and saying it
    takes true or false, each counted as refused; false itself is taken."""
    server = await serve()
    refused: list[object] = ["true", "yes", "0", 1, 0]
    for given in refused:
        payload = {**TOGGLE_PAYLOAD, "enabled": given}
        status, answer = await server.post(body_of(envelope(**TOGGLE, payload=payload)))
        assert (status, answer["error"], answer.get("field"), answer["detail"]) == (
            400,
            "invalid_payload",
            "payload.enabled",
            "payload.enabled: Input should be a boolean, true or false",
        ), given
    assert server.rejected("invalid_payload") == len(refused)
    assert server.delivered == []
    payload = {**TOGGLE_PAYLOAD, "enabled": False}
    status, answer = await server.post(body_of(envelope(**TOGGLE, payload=payload)))
    assert status == 202, answer
    assert [type(e.payload) for e in server.delivered] == [FeatureToggle]
    assert server.delivered[0].payload.model_dump()["enabled"] is False


_SIGN: Final = 'send t=<unix seconds>,v1=<hex HMAC-SHA256(SECRET_KEY_BASE, "<t>." + body)>'


def _malformed(fault: str) -> str:
    return f"the {SIGNATURE_HEADER} header is malformed ({fault}"


_OTHER_KEY: Final = (
    "does not match the body: signed with a key other than the bridge's SECRET_KEY_BASE, or the "
    "body changed after it was signed"
)


@pytest.mark.parametrize(
    ("signature", "error", "detail"),
    [
        (None, "unsigned", f"the {SIGNATURE_HEADER} header is missing: {_SIGN}"),
        ("", "unsigned", f"the {SIGNATURE_HEADER} header is missing: {_SIGN}"),
        (" , ", "unsigned", f"the {SIGNATURE_HEADER} header is missing: {_SIGN}"),
        ("garbage", "invalid_signature", _malformed("it has no t=<unix seconds>")),
        ("sha256=" + "ab" * 32, "invalid_signature", "header is malformed"),  # GitHub's form
        ("t=1x,v1=" + "ab" * 32, "invalid_signature", _malformed("t is not a number of seconds")),
        ("t=1700000000,v1=abc", "invalid_signature", _malformed("it has no v1=<64 hex digits>")),
        ("leading-zero", "invalid_signature", _malformed("t has a leading zero")),
        # Entries past the 16th are not read: the match there, the answer says so, not a key.
        (
            "past-16-entries",
            "invalid_signature",
            _malformed("it has 18 entries, and only the first 16 are read"),
        ),
        ("wrong-key", "invalid_signature", _OTHER_KEY),
        # 16 entries and a trailing comma: an empty entry is not counted, the key is blamed.
        ("wrong-key-16-entries,", "invalid_signature", _OTHER_KEY),
        ("tampered", "invalid_signature", _OTHER_KEY),
    ],
)
async def test_ingest_answers_401_for_a_missing_or_bad_signature(
    serve: ServerFactory, signature: str | None, error: str, detail: str
) -> None:
    """No signature, a malformed one, a wrong key or tampered bytes answer 401; the detail says
    which (for a malformed one, what is wrong: a t with a leading zero, or a match past the
    entries read, is malformed, not a mismatch), and how to sign when the header is missing or
    malformed."""
    server = await serve()
    body = body_of(envelope())
    header: str | None = signature
    if signature == "wrong-key":
        header = signed(body, Keyring.from_secrets("a-wrong-key-that-is-long-enough-to-use"))
    elif signature == "tampered":
        header = signed(body)
        body = body.replace(b"healthy", b"degraded")
    elif signature == "leading-zero":  # signed over "0<t>.": t as sent, a zero before it
        t = f"0{int(time.time())}"
        mac = hmac.new(TEST_SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        header = f"t={t},v1={mac}"
    elif signature == "wrong-key-16-entries,":
        header = signed(body, Keyring.from_secrets("a-wrong-key-that-is-long-enough-to-use"))
        header = header.replace(",v1=", f",v1={'ab' * 32}" * 14 + ",v1=", 1) + ","
    elif signature == "past-16-entries":  # the matching v1 after 16 that match no key
        header = signed(body).replace(",v1=", f",v1={'ab' * 32}" * 16 + ",v1=", 1)
    status, answer = await server.post(body, signature=header)
    assert status == 401
    assert answer["error"] == error
    assert detail in answer["detail"]
    assert answer["field"] == SIGNATURE_HEADER
    assert server.rejected(error) == 1
    assert server.delivered == []


async def test_a_signature_on_two_header_lines_is_read_as_one_list(serve: ServerFactory) -> None:
    """X-ExESDB-Signature sent as two lines (t on one, v1 on the other) is read as RFC 9110 has
    a list field's lines combined, t=…,v1=…, and the message taken: the first line alone had no
    v1 and was refused as malformed."""
    server = await serve()
    body = body_of(envelope())
    t, v1 = signed(body).split(",")
    headers = CIMultiDict([("Content-Type", JSON), (SIGNATURE_HEADER, t), (SIGNATURE_HEADER, v1)])
    async with server.session.post(f"{server.url}/v1/messages", data=body, headers=headers) as sent:
        assert (sent.status, await sent.json()) == (202, {"accepted": 1})


@pytest.mark.parametrize(
    ("lines", "status"), [(["", "signed"], 202), (["signed", ""], 202), (["", ""], 401)]
)
async def test_an_empty_signature_line_is_no_entry(
    serve: ServerFactory, lines: list[str], status: int
) -> None:
    """An empty X-ExESDB-Signature line beside the signed one is an empty entry of the list,
    ignored: the first line empty did not make the signed message "missing" its signature;
    empty lines alone are still missing."""
    server = await serve()
    body = body_of(envelope())
    values = [signed(body) if line == "signed" else line for line in lines]
    headers = CIMultiDict([("Content-Type", JSON), *((SIGNATURE_HEADER, v) for v in values)])
    async with server.session.post(f"{server.url}/v1/messages", data=body, headers=headers) as sent:
        answer = await sent.json()
    assert sent.status == status, answer
    assert status == 202 or answer["error"] == "unsigned"


async def test_ingest_answers_409_for_a_replayed_message(serve: ServerFactory) -> None:
    """The same envelope accepted once answers 409 when sent again, even freshly signed."""
    server = await serve()
    body = body_of(envelope())
    assert (await server.post(body))[0] == 202
    status, answer = await server.post(body)
    assert status == 409
    assert (answer["error"], answer["field"]) == ("replayed", "id")
    assert server.rejected("replayed") == 1


@pytest.mark.parametrize("skew", [-3_600, 3_600])
async def test_ingest_answers_409_for_an_expired_header_timestamp(
    serve: ServerFactory, skew: int
) -> None:
    """A valid signature whose t is outside the replay window (past or future) answers 409,
    saying by how much and which way t is off the bridge's clock, the window and what to do."""
    server = await serve(EXESDB_REPLAY_WINDOW_MS="60000")
    body = body_of(envelope())
    signed_at = int(time.time() + skew)
    status, answer = await server.post(body, signature=signed(body, at=signed_at))
    assert status == 409
    assert answer["error"] == "expired"
    assert server.rejected("expired") == 1
    way = "behind" if skew < 0 else "ahead of"
    told = re.fullmatch(
        rf"the X-ExESDB-Signature timestamp t={signed_at} is (\d+) s {way} the bridge's clock,"
        r" outside its replay window of 60 s \(EXESDB_REPLAY_WINDOW_MS\): sign each request as"
        r" it is sent, on a clock set right",
        answer["detail"],
    )
    assert told is not None, answer["detail"]
    assert abs(int(told.group(1)) - abs(skew)) <= 2  # the seconds between signing and judging


class SteppingClock:
    """A wall clock that moves ``step`` seconds on after each reading."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.step = 0.0

    def __call__(self) -> float:
        reading = self.now
        self.now += self.step
        return reading


async def test_an_expired_header_timestamp_is_told_by_the_reading_it_was_judged_by(
    serve: ServerFactory,
) -> None:
    """The bridge's clock judges the signature's t, and the refusal tells the offset from
    that same reading: t 75 s ahead is told as 75 s even when the clock has moved 30 s on
    since (a second reading would say 45 s, inside the 60 s window it was refused for)."""
    clock = SteppingClock(1_900_000_000.0)  # far from the real time: only this clock judges
    server = await serve(clock=clock, EXESDB_REPLAY_WINDOW_MS="60000")
    clock.step = 30.0
    body = body_of(envelope())
    status, answer = await server.post(body, signature=signed(body, at=clock.now + 75))
    assert (status, answer["error"]) == (409, "expired")
    assert " is 75 s ahead of the bridge's clock, outside" in answer["detail"], answer["detail"]


async def test_a_time_just_outside_the_window_is_not_told_as_the_window_itself(
    serve: ServerFactory,
) -> None:
    """A signature's t, or an envelope's ts, refused 60.3 s behind a 60 s window is told as
    60.3 s, not rounded to "60 s behind ..., outside its replay window of 60 s"."""
    clock = SteppingClock(1_900_000_000.3)  # far from the real time: only this clock judges
    server = await serve(clock=clock, EXESDB_REPLAY_WINDOW_MS="60000")
    body = body_of(envelope())
    status, answer = await server.post(body, signature=signed(body, at=1_900_000_000 - 60))
    assert (status, answer["error"]) == (409, "expired")
    assert (
        " is 60.3 s behind the bridge's clock, outside its replay window of 60 s "
        in (answer["detail"])
    ), answer["detail"]
    ts = format_timestamp(datetime.fromtimestamp(1_900_000_000.3 - 60.3, UTC))
    body = body_of(envelope(ts=ts))
    status, answer = await server.post(body, signature=signed(body, at=1_900_000_000))
    assert (status, answer["error"]) == (409, "expired")
    assert answer["detail"].startswith(
        "ts is 60.3 s behind the bridge's clock, outside its replay window of 60 s "
    ), answer["detail"]


@pytest.mark.parametrize("skew", [-3_600, 3_600])
async def test_ingest_answers_409_for_an_expired_envelope_timestamp(
    serve: ServerFactory, skew: int
) -> None:
    """A fresh header over an envelope whose ts is outside the window answers 409, saying by
    how much and which way ts is off the bridge's clock, the window and what to do."""
    server = await serve(EXESDB_REPLAY_WINDOW_MS="60000")
    ts = format_timestamp(datetime.now(UTC) + timedelta(seconds=skew))
    status, answer = await server.post(body_of(envelope(ts=ts)))
    assert status == 409
    assert (answer["error"], answer["field"]) == ("expired", "ts")
    way = "behind" if skew < 0 else "ahead of"
    assert re.fullmatch(
        rf"ts is 3\d\d\d s {way} the bridge's clock, outside its replay window of 60 s"
        r" \(EXESDB_REPLAY_WINDOW_MS\): give ts the time the message is sent, on a clock set"
        r" right",
        answer["detail"],
    ), answer["detail"]


async def test_an_envelope_older_than_a_full_replay_memory_is_told_so_not_a_clock_set_wrong(
    serve: ServerFactory,
) -> None:
    """An envelope inside the window but dated before the ids a full EXESDB_REPLAY_MEMORY still
    holds (it could be a copy of one forgotten) answers 409 expired saying so, and to raise
    the memory, not to set a clock right: the sender's is."""
    server = await serve(EXESDB_REPLAY_MEMORY="1000")
    first = envelope(ts=format_timestamp(datetime.now(UTC) - timedelta(seconds=2)))
    assert (await server.post(body_of(first)))[0] == 202
    metrics = [
        envelope(
            instance="ex_esdb_metrics",
            topic="metrics",
            tag="performance_metric",
            payload={"metric_name": "m", "value": 1, "unit": "u", "component": "c"},
        )
        for _ in range(1_000)
    ]
    assert (await server.post(body_of(*metrics), content_type=NDJSON))[0] == 202
    late = envelope(ts=first["ts"])  # a new id, as old as the one the full memory forgot
    status, answer = await server.post(body_of(late))
    assert (status, answer["error"], answer["field"]) == (409, "expired", "ts")
    assert answer["detail"].startswith(
        "ts is older than the ids the bridge still remembers (its EXESDB_REPLAY_MEMORY is full:"
        f" it holds those dated after {first['ts']}), and a message so old could be a copy of"
        " one it forgot: send each message as it is made, or raise EXESDB_REPLAY_MEMORY"
    ), answer["detail"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
async def test_ingest_answers_415_for_other_content_types(
    serve: ServerFactory, content_type: str | None
) -> None:
    """Only application/json and application/x-ndjson are accepted; the refusal is counted in
    exesdb_bus_rejected_total under its error code."""
    server = await serve()
    shown = server.bridge.registry.get_sample_value(
        "exesdb_bus_rejected_total", {"reason": "unsupported_media_type"}
    )
    assert shown == 0.0  # the series is there before the first refusal
    status, answer = await server.post(body_of(envelope()), content_type=content_type)
    assert status == 415
    assert answer["error"] == "unsupported_media_type"
    assert server.rejected("unsupported_media_type") == 1


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/integration"])
async def test_a_content_type_too_long_to_be_json_is_refused_415_unparsed(
    serve: ServerFactory, path: str
) -> None:
    """A Content-Type of 7 KiB (``application/json`` and 1 000 parameters, which aiohttp's parse
    takes some 0.1 s of the loop for) is refused 415 saying its length, not parsed, on ingest
    and on an admin route."""
    server = await serve()
    content_type = JSON + "".join(f";p{n}=v" for n in range(1_000))
    body = b'{"enabled": false}' if path == "/v1/integration" else body_of(envelope())
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    status, answer = await server.post(body, content_type=content_type, headers=headers, path=path)
    shown = f"a Content-Type of {len(content_type)} characters"
    assert (status, answer.get("error")) == (415, "unsupported_media_type"), answer
    assert answer["detail"].endswith(f"not {shown})" if path == "/v1/integration" else shown)
    assert server.bridge.integration.enabled()
    assert server.delivered == []


@pytest.mark.parametrize("encoding", ["foo", "x-gzip", "compress", "gzip, deflate", "br", "zstd"])
async def test_ingest_answers_415_for_a_content_encoding_it_does_not_expand(
    serve: ServerFactory, encoding: str
) -> None:
    """A Content-Encoding other than gzip, deflate or identity is refused with 415 naming it and
    the codings taken (``Accept-Encoding``), counted, rather than its body read as sent."""
    server = await serve()
    body = body_of(envelope())
    headers = {"Content-Type": JSON, SIGNATURE_HEADER: signed(body), "Content-Encoding": encoding}
    async with server.session.post(server.url + "/v1/messages", data=body, headers=headers) as r:
        answer = await r.json()
        assert (r.status, answer["error"]) == (415, "unsupported_media_type")
        assert repr(encoding) in answer["detail"]
        assert r.headers["Accept-Encoding"] == "gzip, deflate"
    assert server.rejected("unsupported_media_type") == 1
    assert server.delivered == []
    status, answer = await server.post(body, headers={"Content-Encoding": "identity"})
    assert status == 202, answer
    body = body_of(envelope())
    packed = gzip.compress(body)
    status, answer = await server.post(
        packed, signature=signed(body), headers={"Content-Encoding": " GZIP"}
    )
    assert status == 202, answer


@pytest.mark.parametrize("codings", [("gzip", "gzip"), ("gzip", "identity"), ("identity", "br")])
async def test_a_content_encoding_on_two_lines_is_read_as_one_list(
    serve: ServerFactory, codings: tuple[str, str]
) -> None:
    """Content-Encoding given on two header lines is one list (RFC 9110), as if on one line:
    two codings are refused 415 naming both, not the first line's taken alone (a body gzipped
    twice expanded once, ``gzip`` then ``identity`` read as gzip)."""
    server = await serve()
    body = body_of(envelope())
    sent = (
        gzip.compress(gzip.compress(body)) if codings == ("gzip", "gzip") else gzip.compress(body)
    )
    headers = [
        ("Content-Type", JSON),
        (SIGNATURE_HEADER, signed(body)),
        *(("Content-Encoding", coding) for coding in codings),
    ]
    async with server.session.post(server.url + "/v1/messages", data=sent, headers=headers) as r:
        answer = await r.json()
        assert (r.status, answer["error"]) == (415, "unsupported_media_type"), answer
        assert repr(", ".join(codings)) in answer["detail"]
    assert server.rejected("unsupported_media_type") == 1
    assert server.delivered == []


async def test_ingest_accepts_a_charset_parameter(serve: ServerFactory) -> None:
    """application/json; charset=utf-8 is application/json."""
    server = await serve()
    status, _ = await server.post(
        body_of(envelope()), content_type="application/json; charset=utf-8"
    )
    assert status == 202


@pytest.mark.parametrize("charset", ["latin-1", "utf-16", "iso-8859-1"])
async def test_ingest_refuses_a_charset_other_than_utf8(serve: ServerFactory, charset: str) -> None:
    """A body labelled with a charset other than UTF-8 is refused 415 naming it and counted,
    rather than read as UTF-8; the same body labelled utf8 is taken."""
    server = await serve()
    body = body_of(envelope())
    status, answer = await server.post(body, content_type=f"{NDJSON}; charset={charset}")
    assert (status, answer["error"]) == (415, "unsupported_media_type")
    assert repr(charset) in answer["detail"]
    assert server.rejected("unsupported_media_type") == 1
    assert server.delivered == []
    status, answer = await server.post(body, content_type=f"{NDJSON}; charset=UTF8")
    assert status == 202, answer
    status, answer = await server.post(body_of(envelope()), content_type=f"{JSON}; charset=ascii")
    assert status == 202, answer


async def test_ingest_answers_404_when_off(serve: ServerFactory) -> None:
    """With EXESDB_INGEST=false the endpoint answers 404 and says how to turn it on."""
    server = await serve(EXESDB_INGEST="false")
    status, answer = await server.post(body_of(envelope()))
    assert status == 404
    assert "EXESDB_INGEST" in answer["detail"]


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/no/such/path", 404, "not_found"),
        ("POST", "/metrics", 405, "method_not_allowed"),
        ("DELETE", "/v1/messages", 405, "method_not_allowed"),
    ],
)
async def test_a_path_or_method_not_served_is_refused_in_the_json_error_shape(
    serve: ServerFactory, method: str, path: str, status: int, code: str
) -> None:
    """An unknown path or a method a path does not take gets the JSON error every refusal has
    (405 with Allow), not aiohttp's plain-text "404: Not Found"."""
    server = await serve()
    async with server.session.request(method, server.url + path) as response:
        assert response.status == status
        assert response.content_type == JSON
        answer = await response.json()
    assert answer["error"] == code
    assert answer["detail"]
    if status == 405:
        assert response.headers["Allow"] in answer["detail"]


async def test_refused_messages_are_logged_by_reason_at_most_once_a_minute_each(
    serve: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A sender signing with another key is told in the log at once, by the refusal's code and
    what to do, not once a request (anyone reaching the port could fill the log); another
    code gets its own line; a replay is INFO; no detail the sender wrote is logged."""
    server = await serve()
    wrong = Keyring(b"not the bridge's key")
    with caplog.at_level(logging.INFO, "bridge.bus.verify"):
        for _ in range(5):
            body = body_of(envelope(node="<sender's-text>"))
            status, _ = await server.post(body, signature=wrong.sign_header(body, int(time.time())))
            assert status == 401
        body = body_of(envelope())
        assert (await server.post(body))[0] == 202
        assert (await server.post(body))[0] == 409
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "bridge.bus.verify"]
    assert [(level, text.split(":")[0]) for level, text in lines] == [
        ("WARNING", "refused a message as invalid_signature"),
        ("INFO", "refused a message as replayed"),
    ]
    assert "another key than SECRET_KEY_BASE" in lines[0][1]
    assert "sender's-text" not in caplog.text
