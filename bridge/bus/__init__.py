"""The signed bus: envelopes, signing, verification, transports and subscriptions."""

from __future__ import annotations

from bridge.bus.bus import (
    MAX_BATCH,
    BatchHandler,
    BatchSubscription,
    Bus,
    Durability,
    Handler,
    PublishResult,
    PublishStatus,
    Subscription,
    register_queue_depth,
)
from bridge.bus.envelope import (
    Envelope,
    Rejection,
    RejectReason,
    check_topic,
    decode_envelope,
    new_message_id,
)
from bridge.bus.metrics import BusMetrics
from bridge.bus.replay import ReplayGuard, ReplayVerdict
from bridge.bus.signing import SIGNATURE_HEADER, HeaderCheck, Keyring
from bridge.bus.transport import Frame, FrameReceiver, MemoryTransport, Transport
from bridge.bus.verify import Verifier

__all__ = [
    "MAX_BATCH",
    "SIGNATURE_HEADER",
    "BatchHandler",
    "BatchSubscription",
    "Bus",
    "BusMetrics",
    "Durability",
    "Envelope",
    "Frame",
    "FrameReceiver",
    "Handler",
    "HeaderCheck",
    "Keyring",
    "MemoryTransport",
    "PublishResult",
    "PublishStatus",
    "RejectReason",
    "Rejection",
    "ReplayGuard",
    "ReplayVerdict",
    "Subscription",
    "Transport",
    "Verifier",
    "check_topic",
    "decode_envelope",
    "new_message_id",
    "register_queue_depth",
]
