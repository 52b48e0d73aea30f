"""The verification stage: size, signature, envelope, payload, freshness and replay.

Mirrors ``validate_secure_message``: the result is the envelope or a ``Rejection``; every
rejection is counted by reason. The signature is checked over the exact bytes before anything is
parsed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Final, TypeVar

import msgspec

from bridge.bus.batches import DecodedBatch, decode_lines, line_number, located
from bridge.bus.decoding import decode_envelope, decode_envelopes
from bridge.bus.envelope import NODE_MAX_LENGTH, Envelope, Rejection, RejectReason
from bridge.bus.replay import ReplayGuard, ReplayVerdict, outside_window
from bridge.bus.signing import Keyring
from bridge.bus.transport import Frame
from bridge.log_throttle import LogThrottle
from bridge.messages.timestamps import format_timestamp, utc_from_seconds
from bridge.source_repository import cite_source

__all__ = ["Verifier"]

_logger = logging.getLogger(__name__)

RejectCounter = Callable[[RejectReason], None]
Refusal = TypeVar("Refusal")

# What an operator does about each reason, in its log line.
_WHAT_TO_DO: Final = {
    RejectReason.INVALID_SIGNATURE: "a sender signs with another key than SECRET_KEY_BASE",
    RejectReason.UNSIGNED: "a sender signs nothing",
    RejectReason.EXPIRED: "a sender's clock is off by more than EXESDB_REPLAY_WINDOW_MS, or it"
    " sends old messages, or EXESDB_REPLAY_MEMORY is full, too small for the rate (each"
    " refusal's detail, at debug, says which)",
    RejectReason.TOO_LARGE: "a sender's body exceeds EXESDB_MAX_BODY_BYTES, or its batch holds"
    " more than a subscriber's queue (EXESDB_BUS_QUEUE_SIZE, EXESDB_ALERT_QUEUE_SIZE,"
    " EXESDB_BUS_QUEUE_BYTES): it is to send smaller batches",
    # INFO: a sender's resend of what the bridge holds is refused so by design.
    RejectReason.REPLAYED: "a copy of one the bridge holds",
    # Not JSON, or no envelope: a sender's own encoding fails before any type is looked at.
    RejectReason.MALFORMED: "a sender's bodies are no well-formed JSON envelopes"
    f" ({cite_source('docs/messages.md#envelope')})",
}
# The envelope's ts judged stale, when a second look tells neither cause (the clock moved on
# across the window's edge since the verdict).
_TS_OUT_OF_WINDOW: Final = (
    "ts is further than EXESDB_REPLAY_WINDOW_MS from the bridge's clock, or older than the ids it"
    " still remembers (EXESDB_REPLAY_MEMORY): give ts the time the message is sent, on a clock"
    " set right"
)
_NOT_OURS: Final = (
    f"a sender's messages are not the bridge's types ({cite_source('docs/messages.md')})"
)
# The nodes a reason's line names, of the refused envelopes since its last line: with several
# replicas, which one to mend (its own messages carry its EXESDB_NODE). Bounded: anyone who
# can write to the bus may claim any name.
_SENDERS_NAMED: Final = 4


class _Claimed(msgspec.Struct):
    """The one field of an envelope a refusal's log line names, read without the rest."""

    node: object = None


class Verifier:
    """Checks incoming messages; shared by the bus transports and HTTP ingest."""

    __slots__ = (
        "_count",
        "_judged",
        "_keyring",
        "_max_bytes",
        "_replay",
        "_senders",
        "_told",
        "_window",
    )

    def __init__(
        self,
        keyring: Keyring,
        replay: ReplayGuard,
        *,
        window_seconds: float,
        max_bytes: int,
        count_rejection: RejectCounter | None = None,
        told: LogThrottle | None = None,
    ) -> None:
        self._keyring = keyring
        self._replay = replay
        self._window = window_seconds
        self._max_bytes = max_bytes
        self._count = count_rejection or (lambda reason: None)
        # Rejections said in the log at most once a minute a reason (anyone who reaches the
        # port could otherwise fill it); None: not logged.
        self._told = told
        # Each reason's nodes named by the envelopes refused since its last line, in order,
        # _SENDERS_NAMED at most, and whether others came too.
        self._senders: dict[RejectReason, tuple[dict[str, None], bool]] = {}
        # The last batch judge_batch passed: (it, its ids, its times, the replay generation).
        self._judged: tuple[list[Envelope], list[str], list[float], int] | None = None

    def with_fresh_replay(self, *, counted: bool = True) -> Verifier:
        """The same checks with a replay memory of its own (for work-queue frames).

        ``counted=False`` leaves its rejections uncounted, for a second path that sees frames
        the first one has already judged (and counted).
        """
        return Verifier(
            self._keyring,
            self._replay.empty_copy(),
            window_seconds=self._window,
            max_bytes=self._max_bytes,
            count_rejection=self._count if counted else None,
            told=self._told if counted else None,
        )

    @property
    def keyring(self) -> Keyring:
        """The keys this verifier accepts."""
        return self._keyring

    @property
    def window_seconds(self) -> float:
        """The replay window."""
        return self._window

    def reject(self, rejection: Rejection, *, sender: str | None = None) -> Rejection:
        """Count a rejection (also those found outside this class, e.g. by HTTP ingest).

        ``sender``: the node the refused envelope names (a bus transport's frame), which the
        log line names, unverified when its signature was what was refused."""
        reason = rejection.reason
        self._count(reason)
        _logger.debug(
            "rejected message: %s (%s)%s",
            reason.value,
            rejection.detail,
            "" if sender is None else f", its envelope naming node {sender!r}",
        )
        if self._told is None:
            return rejection
        if sender is not None:
            self._note_sender(reason, sender)
        if (untold := self._told.due(reason)) is not None:
            # The reason only: a detail may quote what the sender sent (it is told, in the answer).
            _logger.log(
                logging.INFO if reason is RejectReason.REPLAYED else logging.WARNING,
                "refused a message as %s%s: %s%s; counted in exesdb_bus_rejected_total, logged"
                " at most once a minute a reason (each one at debug)",
                reason.value,
                f" ({untold} more since the last line)" if untold else "",
                _WHAT_TO_DO.get(reason, _NOT_OURS),
                _senders_named(reason, *self._senders.pop(reason, ({}, False))),
            )
        return rejection

    def _note_sender(self, reason: RejectReason, sender: str) -> None:
        """Remember ``sender`` among the nodes ``reason``'s next line names."""
        senders, others = self._senders.setdefault(reason, ({}, False))
        if sender in senders or others:
            return
        if len(senders) < _SENDERS_NAMED:
            senders[sender] = None
        else:
            self._senders[reason] = (senders, True)

    def verify_read(
        self, frames: Sequence[Frame], known: Sequence[Envelope | None] | None = None
    ) -> list[Envelope | Rejection]:
        """Verify the frames of one transport read: for each, in order, its envelope or why
        it was refused (counted).

        Each frame's size, signature (over the exact bytes) and envelope are checked on their
        own; the signatures are computed in one loop (``Keyring.verify_each``), the bytes of
        the frames that verify and need decoding are decoded together, as NDJSON ingest decodes
        a batch, and a ``frame.decoded`` (the envelope an in-process publisher built the bytes
        from, which never left this process) stands in for decoding once the bytes verify.
        ``known[i]``, when given, is the envelope another path verified a moment ago from the
        same bytes under the same signature (compared): only its replay check is left, in this
        verifier's own memory.

        The replay checks of the read are made at one instant, as for an ingest batch
        (``ReplayGuard.check_batch``); only when one of them is not fresh (or an id repeats
        within the read) are they made again one by one, in order, so that each frame is
        judged as if it came alone after the ones before it.
        """
        if len(frames) == 1:
            # One alone (an in-process publish): a batch's bookkeeping would cost more.
            verified = known[0] if known is not None else None
            alone = verified if verified is not None else self._authentic(frames[0], None)
            return [alone if isinstance(alone, Rejection) else self._fresh(alone)]
        if known is None:
            known = [None] * len(frames)
        max_bytes = self._max_bytes
        # The frames whose signature is computed here: neither known nor refused before it
        # (unsigned, too large). Their HMACs in one loop, then the bytes of those that verify
        # decoded together.
        signed = [
            index
            for index, (frame, verified) in enumerate(zip(frames, known, strict=True))
            if verified is None and frame.signature and len(frame.body) <= max_bytes
        ]
        verdicts: list[bool | None] = [None] * len(frames)
        for index, ok in zip(
            signed,
            self._keyring.verify_each(
                [frames[index].body for index in signed],
                [frames[index].signature or "" for index in signed],
            ),
            strict=True,
        ):
            verdicts[index] = ok
        decoded = self._decoded(
            frames, [index for index in signed if verdicts[index] and frames[index].decoded is None]
        )
        authentic = self._authentic
        results: list[Envelope | Rejection] = []
        fresh: list[Envelope] = []  # the envelopes left for the replay check, in order
        for frame, verified, envelope, verdict in zip(
            frames, known, decoded, verdicts, strict=True
        ):
            result: Envelope | Rejection
            if verified is not None:
                result = verified
            elif verdict and (taken := frame.decoded or envelope) is not None:
                result = taken  # the common case, without a call
            else:
                result = authentic(frame, envelope, verdict)
            if not isinstance(result, Rejection):
                fresh.append(result)
            results.append(result)
        if fresh and self._replay.check_batch(
            [envelope.id for envelope in fresh], [envelope.unix_ts for envelope in fresh]
        ):
            for index, judged in enumerate(results):
                if not isinstance(judged, Rejection):
                    results[index] = self._fresh(judged)
        return results

    def _authentic(
        self, frame: Frame, decoded: Envelope | None, verdict: bool | None = None
    ) -> Envelope | Rejection:
        """A frame's size, signature (over the exact bytes) and envelope checked: the envelope
        (``frame.decoded``, else ``decoded``, else its bytes decoded now), or why it was
        refused (counted). ``verdict``: whether its signature verified, when already computed."""
        body, signature = frame.body, frame.signature
        if len(body) > self._max_bytes:
            return self.reject(
                Rejection(RejectReason.TOO_LARGE, f"message exceeds {self._max_bytes} bytes")
            )
        if not signature:
            return self.reject(
                Rejection(RejectReason.UNSIGNED, "the message has no signature"),
                sender=self._claimed_node(body),
            )
        if verdict is None:
            verdict = self._keyring.verify(body, signature)
        if not verdict:
            return self.reject(
                Rejection(RejectReason.INVALID_SIGNATURE, "the signature does not match"),
                sender=self._claimed_node(body),
            )
        envelope = frame.decoded or decoded or decode_envelope(body)
        return self.reject(envelope) if isinstance(envelope, Rejection) else envelope

    def _fresh(self, envelope: Envelope) -> Envelope | Rejection:
        """``envelope`` judged for replay alone (and remembered), or its rejection (counted)."""
        verdict = self._replay.check(envelope.id, envelope.unix_ts)
        if verdict is not ReplayVerdict.FRESH:
            rejection = _replay_rejection(verdict, envelope.id, lambda: self._stale(envelope))
            return self.reject(rejection, sender=envelope.node)
        return envelope

    def _stale(self, envelope: Envelope) -> str:
        """Why ``envelope``'s ts is expired, told apart: a clock set wrong (by how much and
        which way), or a memory of ids full (a sender's clock right, the bridge's memory too
        small for the rate), for which the remedies differ."""
        behind, floor = self._replay.expiry(envelope.unix_ts)
        if floor is not None:
            since = format_timestamp(utc_from_seconds(floor))
            return (
                "ts is older than the ids the bridge still remembers (its EXESDB_REPLAY_MEMORY"
                f" is full: it holds those dated after {since}),"
                " and a message so old could be a copy of one it forgot: send each message as it"
                " is made, or raise EXESDB_REPLAY_MEMORY on the bridge"
            )
        if abs(behind) > self._window:
            return (
                f"ts is {outside_window(behind, self._window)}: give ts the time the message is"
                " sent, on a clock set right"
            )
        return _TS_OUT_OF_WINDOW

    def _claimed_node(self, body: bytes) -> str | None:
        """The node a refused frame's body names, if it names one (nothing proves it): read
        only for a verifier whose refusals are logged."""
        if self._told is None:
            return None
        try:
            node = msgspec.json.decode(body, type=_Claimed).node
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        return node if isinstance(node, str) and len(node) <= NODE_MAX_LENGTH else None

    def _decoded(self, frames: Sequence[Frame], wanted: Sequence[int]) -> list[Envelope | None]:
        """The envelopes of the frames of a read at ``wanted`` (those whose bytes verified and
        need decoding), decoded together (the decoder's per-call work shared); None for the
        others, and for every body from the first one the batch decoder refuses on
        (``verify_read`` decodes those alone, and words the rejection)."""
        out: list[Envelope | None] = [None] * len(frames)
        if len(wanted) < 2:
            return out
        envelopes, _ = decode_envelopes([frames[index].body for index in wanted])
        for index, envelope in zip(wanted, envelopes, strict=False):
            out[index] = envelope
        return out

    def verify_batch(
        self,
        batch: DecodedBatch | Sequence[bytes],
        *,
        refuse: Callable[[list[Envelope]], Refusal | None] | None = None,
    ) -> list[Envelope] | Rejection | Refusal:
        """``judge_batch``, then ``admit``: the envelopes of a batch whose enclosing body was
        already authenticated, their ids remembered; or the first line at fault.

        ``refuse``, asked between the two with the judged batch, may turn it away (HTTP
        ingest: a congested subscriber, answered 503); what it returns is returned and no id
        is remembered, so the same batch can be sent again as it is. ``batch`` as for
        ``judge_batch``.
        """
        if not isinstance(batch, DecodedBatch):
            batch = decode_lines(batch)
        judged = self.judge_batch(batch)
        if isinstance(judged, Rejection):
            return judged
        if refuse is not None and (refusal := refuse(judged)) is not None:
            self._judged = None  # let go: the largest batches are refused (413)
            return refusal
        return self.admit(judged, batch.numbers)

    def judge_batch(self, batch: DecodedBatch | Sequence[bytes]) -> list[Envelope] | Rejection:
        """The envelopes of a batch whose enclosing body was already authenticated (its lines,
        decoded here, or as ``decode_ndjson`` decoded them); all or nothing, and no id
        remembered: the caller may still refuse the batch (e.g. 503 when a subscriber is
        congested) and then ``admit`` it or not (``verify_batch`` does both).

        The first line at fault is reported, as if each line were decoded and then checked for
        replay in turn; the replay checks are made at one instant. When it is a line that does
        not decode, a ``LineRejection`` also names the lines after it that do not (replays
        among those are not looked for).
        """
        if not isinstance(batch, DecodedBatch):
            batch = decode_lines(batch)
        envelopes = batch.envelopes
        # The lines before a bad one are judged too: a replay among them is reported first.
        # List comprehensions: map() over an attrgetter makes an argument tuple per call (3.11).
        ids = [envelope.id for envelope in envelopes]
        times = [envelope.unix_ts for envelope in envelopes]
        generation = self._replay.generation
        stale = self._replay.judge_batch(ids, times)
        if stale is not None:
            index, verdict = stale
            rejection = _batch_replay_rejection(
                verdict, envelopes, index, batch.numbers, lambda: self._stale(envelopes[index])
            )
            return self.reject(located(rejection, index, batch.numbers, batch.lines))
        if batch.fault is not None:
            return self.reject(batch.fault)
        self._judged = (envelopes, ids, times, generation)
        return envelopes

    def admit(
        self, envelopes: list[Envelope], numbers: Sequence[int] | None = None
    ) -> list[Envelope] | Rejection:
        """Remember the ids of a judged batch, all at one instant; a Rejection only if a copy
        was admitted since it was judged (``numbers``: each line's number in the body, blank
        lines left out, as ``DecodedBatch`` has them)."""
        judged, self._judged = self._judged, None
        if judged is not None and judged[0] is envelopes:
            # Just judged: unless ids were remembered since, they need not be looked up again.
            failure = self._replay.check_batch(judged[1], judged[2], judged[3])
        else:
            failure = self._replay.check_batch(
                [envelope.id for envelope in envelopes],
                [envelope.unix_ts for envelope in envelopes],
            )
        if failure is not None:
            index, verdict = failure
            rejection = _batch_replay_rejection(
                verdict, envelopes, index, numbers, lambda: self._stale(envelopes[index])
            )
            return self.reject(located(rejection, index, numbers, len(envelopes)))
        return envelopes

    def holds(self, envelope: Envelope) -> bool:
        """Whether ``envelope``'s id is remembered as accepted, whatever its timestamp."""
        return self._replay.holds(envelope.id)

    def forget(self, envelopes: Iterable[Envelope]) -> None:
        """Forget admitted envelopes that were then not taken, so that a resend is accepted."""
        self._replay.forget(envelope.id for envelope in envelopes)


def _senders_named(reason: RejectReason, senders: dict[str, None], others: bool) -> str:
    """What a refusal line says of the nodes the refused envelopes named (``others``: more
    than those): an envelope without a valid signature proves nothing of its node."""
    if not senders:
        return ""
    one = len(senders) == 1 and not others
    said = ("node " if one else "nodes ") + ", ".join(map(repr, senders))
    if others:
        said += " and others"
    said += ", as the envelope says" if one else ", as the envelopes say"
    if reason in (RejectReason.INVALID_SIGNATURE, RejectReason.UNSIGNED):
        said += "; no valid signature proves it"
    return f" (from {said})"


def _replay_rejection(
    verdict: ReplayVerdict, message_id: str, stale: Callable[[], str]
) -> Rejection:
    """The rejection of a message ``verdict`` found not fresh; ``stale`` words why its ts
    expired, asked only then (a flood of copies is refused without a look at the clock)."""
    if verdict is ReplayVerdict.REPLAYED:
        return Rejection(RejectReason.REPLAYED, f"message {message_id} was already accepted", "id")
    return Rejection(RejectReason.EXPIRED, stale(), "ts")


def _batch_replay_rejection(
    verdict: ReplayVerdict,
    envelopes: Sequence[Envelope],
    index: int,
    numbers: Sequence[int] | None,
    stale: Callable[[], str],
) -> Rejection:
    """The rejection of a batch's ``index``-th envelope: one whose id an earlier line of the
    batch has is not said to be accepted already (the batch is refused whole: nothing is)."""
    message_id = envelopes[index].id
    if verdict is ReplayVerdict.REPLAYED:
        for earlier, envelope in enumerate(envelopes[:index]):
            if envelope.id == message_id:
                line = line_number(numbers, earlier)
                detail = f"message {message_id} repeats line {line}'s id in this batch"
                return Rejection(RejectReason.REPLAYED, detail, "id")
    return _replay_rejection(verdict, message_id, stale)
