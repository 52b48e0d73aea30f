"""What the log says of refused messages: by reason, at most once a minute each."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

from bridge.bus import (
    Envelope,
    Frame,
    Keyring,
    Rejection,
    RejectReason,
    ReplayGuard,
    Verifier,
    new_message_id,
)
from bridge.log_throttle import LogThrottle
from bridge.messages import SystemAlert, utc_now
from tests.support import ManualClock


def verifier_on(clock: ManualClock) -> Verifier:
    """A verifier whose refusals are logged by ``clock``'s minutes."""
    return Verifier(
        Keyring(b"k"),
        ReplayGuard(300),
        window_seconds=300,
        max_bytes=1 << 20,
        told=LogThrottle(clock=clock),
    )


def test_a_reason_refused_again_after_a_minute_is_logged_with_how_many_came_between(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Within a minute of its line a reason's refusals are only counted; the next line, a
    minute on, says how many came between; another reason has lines of its own."""
    clock = ManualClock(0.0)
    verifier = verifier_on(clock)
    unsigned = Rejection(RejectReason.UNSIGNED, "the message has no signature")
    with caplog.at_level(logging.INFO, "bridge.bus.verify"):
        for _ in range(4):
            verifier.reject(unsigned)
            clock.advance(10)
        verifier.reject(Rejection(RejectReason.EXPIRED, "the message is too old"))
        clock.advance(60)
        verifier.reject(unsigned)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "refused a message as unsigned",
        "refused a message as expired",
        "refused a message as unsigned (3 more since the last line)",
    ]
    assert "EXESDB_REPLAY_WINDOW_MS" in caplog.records[1].getMessage()


def test_a_verifier_for_frames_already_judged_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The uncounted copy (a second path seeing frames the first judged and logged) is silent."""
    clock = ManualClock(0.0)
    quiet = verifier_on(clock).with_fresh_replay(counted=False)
    with caplog.at_level(logging.INFO, "bridge.bus.verify"):
        quiet.reject(Rejection(RejectReason.UNSIGNED, "the message has no signature"))
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []


@pytest.mark.parametrize(
    ("reason", "said"),
    [
        (RejectReason.MALFORMED, "a sender's bodies are no well-formed JSON envelopes"),
        # A full replay memory refuses as expired too, the senders' clocks right.
        (
            RejectReason.EXPIRED,
            "a sender's clock is off by more than EXESDB_REPLAY_WINDOW_MS, or it sends old"
            " messages, or EXESDB_REPLAY_MEMORY is full, too small for the rate",
        ),
        (RejectReason.UNKNOWN_TAG, "a sender's messages are not the bridge's types"),
        (RejectReason.INVALID_PAYLOAD, "a sender's messages are not the bridge's types"),
    ],
)
def test_a_refusal_line_says_what_the_senders_got_wrong(
    caplog: pytest.LogCaptureFixture, reason: RejectReason, said: str
) -> None:
    """A body that is no JSON envelope (a sender's encoding at fault) is told so, not as a
    message of a type the bridge does not have, as an unknown tag or a payload its type refuses
    is; an expired one names a full replay memory beside a clock set wrong."""
    with caplog.at_level(logging.INFO, "bridge.bus.verify"):
        verifier_on(ManualClock(0.0)).reject(Rejection(reason, "detail"))
    [record] = caplog.records
    assert record.getMessage().startswith(f"refused a message as {reason.value}: {said}")


def wrongly_signed(node: str) -> Frame:
    """A transport's frame whose envelope names ``node``, signed with another key."""
    body = b'{"v":1,"id":"x","node":' + json.dumps(node).encode() + b',"payload":{}}'
    return Frame("ex_esdb_alerts", body, Keyring(b"another key").sign(body))


def test_a_transport_frame_refused_for_its_signature_is_told_with_the_node_it_names(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A frame read from a shared bus and refused as invalid_signature is told naming the
    node its envelope gives, said to be unproven; never its signature."""
    frame = wrongly_signed("bridge-b")
    with caplog.at_level(logging.INFO, "bridge.bus.verify"):
        verifier_on(ManualClock(0.0)).verify_read([frame])
    [record] = caplog.records
    said = record.getMessage()
    assert said.startswith("refused a message as invalid_signature: "), said
    assert "(from node 'bridge-b', as the envelope says; no valid signature proves it)" in said
    assert str(frame.signature) not in said


def test_the_next_line_names_each_node_refused_since_the_last_four_at_most(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Within a minute of its line each node refused is noted once; the next line names them,
    four at most and says others came, then starts afresh; a body that names no node, or
    an ingest refusal, adds no name."""
    clock = ManualClock(0.0)
    verifier = verifier_on(clock)
    nodes = ["a", "b", "a", "c", "d", "e", "f"]
    with caplog.at_level(logging.INFO, "bridge.bus.verify"):
        verifier.verify_read([wrongly_signed("first")])
        verifier.verify_read([wrongly_signed(node) for node in nodes])
        verifier.verify_read([Frame("ex_esdb_alerts", b"not json", "00")])
        clock.advance(60)
        verifier.reject(Rejection(RejectReason.INVALID_SIGNATURE, "the header does not match"))
        clock.advance(60)
        verifier.verify_read([wrongly_signed("b"), Frame("ex_esdb_alerts", b"[]", "00")])
        clock.advance(60)
        verifier.reject(Rejection(RejectReason.INVALID_SIGNATURE, "the header does not match"))
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 4, said
    assert "(from node 'first', as the envelope says;" in said[0]
    assert "(8 more since the last line)" in said[1]
    assert "(from nodes 'a', 'b', 'c', 'd' and others, as the envelopes say;" in said[1]
    assert "(from node 'b', as the envelope says;" in said[2]
    assert "(1 more since the last line)" in said[3]
    assert " (from " not in said[3]


def test_an_expired_frame_is_told_with_the_node_it_names_as_proven(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A frame refused as expired (its signature verified) is told naming its node, without
    saying that nothing proves it: the clock to set right is that node's."""
    keyring = Keyring(b"k")
    old = utc_now() - timedelta(hours=1)
    alert = SystemAlert(
        severity="info", category="system", title="t", description="d", source="s", node="n"
    )
    body = Envelope(
        new_message_id(),
        "ex_esdb_alerts",
        "t",
        alert.TAG,
        "skewed-node",
        old,
        alert,
        old.timestamp(),
    ).to_bytes()
    with caplog.at_level(logging.INFO, "bridge.bus.verify"):
        verifier_on(ManualClock(0.0)).verify_read(
            [Frame("ex_esdb_alerts", body, keyring.sign(body))]
        )
    [record] = caplog.records
    said = record.getMessage()
    assert said.startswith("refused a message as expired: "), said
    assert "(from node 'skewed-node', as the envelope says)" in said
