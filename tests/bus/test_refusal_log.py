"""What the log says of refused messages: by reason, at most once a minute each."""

from __future__ import annotations

import logging

import pytest

from bridge.bus import Keyring, Rejection, RejectReason, ReplayGuard, Verifier
from bridge.log_throttle import LogThrottle
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
        (RejectReason.UNKNOWN_TAG, "a sender's messages are not the bridge's types"),
        (RejectReason.INVALID_PAYLOAD, "a sender's messages are not the bridge's types"),
    ],
)
def test_a_refusal_line_says_what_the_senders_got_wrong(
    caplog: pytest.LogCaptureFixture, reason: RejectReason, said: str
) -> None:
    """A body that is no JSON envelope (a sender's encoding at fault) is told so, not as a
    message of a type the bridge does not have, as an unknown tag or a payload its type refuses
    is."""
    with caplog.at_level(logging.INFO, "bridge.bus.verify"):
        verifier_on(ManualClock(0.0)).reject(Rejection(reason, "detail"))
    [record] = caplog.records
    assert record.getMessage().startswith(f"refused a message as {reason.value}: {said}")
