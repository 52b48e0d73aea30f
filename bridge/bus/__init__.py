"""The signed bus: envelopes, signing, verification, transports and subscriptions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.exports import lazy_exports

if TYPE_CHECKING:
    from bridge.bus.batches import DecodedBatch, decode_lines, decode_ndjson
    from bridge.bus.bus import Bus, Durability, PublishResult, PublishStatus
    from bridge.bus.capabilities import (
        Coordinator,
        LocalCoordinator,
        NodeNameCheck,
        SharedState,
        StateChange,
        TransportCapabilities,
        WorkQueueLease,
    )
    from bridge.bus.decoding import build_decoders, decode_envelope
    from bridge.bus.depth import check_payload_depth
    from bridge.bus.envelope import (
        Envelope,
        LineRejection,
        Rejection,
        RejectReason,
        check_topic,
    )
    from bridge.bus.ids import new_message_id
    from bridge.bus.metrics import BusMetrics
    from bridge.bus.queue_depth import register_queue_depth
    from bridge.bus.replay import ReplayGuard, ReplayVerdict
    from bridge.bus.signing import SIGNATURE_HEADER, HeaderCheck, Keyring
    from bridge.bus.subscription import (
        MAX_BATCH,
        BatchHandler,
        BatchSubscription,
        Handler,
        Subscriber,
        Subscription,
    )
    from bridge.bus.transport import (
        WORK_QUEUE_INSTANCES,
        Frame,
        FrameReceiver,
        MemoryTransport,
        Transport,
    )
    from bridge.bus.verify import Verifier

__all__ = [
    "MAX_BATCH",
    "SIGNATURE_HEADER",
    "WORK_QUEUE_INSTANCES",
    "BatchHandler",
    "BatchSubscription",
    "Bus",
    "BusMetrics",
    "Coordinator",
    "DecodedBatch",
    "Durability",
    "Envelope",
    "Frame",
    "FrameReceiver",
    "Handler",
    "HeaderCheck",
    "Keyring",
    "LineRejection",
    "LocalCoordinator",
    "MemoryTransport",
    "NodeNameCheck",
    "PublishResult",
    "PublishStatus",
    "RejectReason",
    "Rejection",
    "ReplayGuard",
    "ReplayVerdict",
    "SharedState",
    "StateChange",
    "Subscriber",
    "Subscription",
    "Transport",
    "TransportCapabilities",
    "Verifier",
    "WorkQueueLease",
    "build_decoders",
    "check_payload_depth",
    "check_topic",
    "decode_envelope",
    "decode_lines",
    "decode_ndjson",
    "new_message_id",
    "register_queue_depth",
]

# ``publish`` signs an envelope without the bus's metrics (prometheus_client) or its loop.
__getattr__ = lazy_exports(
    __name__,
    {
        "batches": ("DecodedBatch", "decode_lines", "decode_ndjson"),
        "bus": ("Bus", "Durability", "PublishResult", "PublishStatus"),
        "capabilities": (
            "Coordinator",
            "LocalCoordinator",
            "NodeNameCheck",
            "SharedState",
            "StateChange",
            "TransportCapabilities",
            "WorkQueueLease",
        ),
        "decoding": ("build_decoders", "decode_envelope"),
        "depth": ("check_payload_depth",),
        "envelope": (
            "Envelope",
            "LineRejection",
            "Rejection",
            "RejectReason",
            "check_topic",
        ),
        "ids": ("new_message_id",),
        "metrics": ("BusMetrics",),
        "queue_depth": ("register_queue_depth",),
        "replay": ("ReplayGuard", "ReplayVerdict"),
        "signing": ("SIGNATURE_HEADER", "HeaderCheck", "Keyring"),
        "subscription": (
            "MAX_BATCH",
            "BatchHandler",
            "BatchSubscription",
            "Handler",
            "Subscriber",
            "Subscription",
        ),
        "transport": (
            "WORK_QUEUE_INSTANCES",
            "Frame",
            "FrameReceiver",
            "MemoryTransport",
            "Transport",
        ),
        "verify": ("Verifier",),
    },
)
