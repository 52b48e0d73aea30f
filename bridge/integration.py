"""The integration API, after ``ExESDB.PubSubIntegration`` (docs/integration.md).

Module functions act on the installed ``Integration`` (``install()``; the running bridge installs
its own). Every broadcast returns a ``PublishResult``; bad arguments raise ``MessageError`` (a
``ValueError``) naming the field, disabled or not. While disabled, nothing is published.
Arguments may be strings or enums (the Elixir atoms), e.g.
``broadcast_alert("node_failure", "critical", "Node down")``.
With no bridge installed a broadcast checks its arguments as with one, publishes nothing and
returns ``DISABLED``; the first such call logs one warning saying how to install one.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import Any, Concatenate, Final, Never, ParamSpec, Protocol, TypeVar

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from bridge.bus import PublishResult, PublishStatus, check_payload_depth, check_topic
from bridge.choices import did_you_mean, field_refused
from bridge.errors import MessageError
from bridge.messages import (
    TAGS,
    ClusterHealth,
    ClusterMembership,
    ComponentHealth,
    Message,
    PerformanceMetric,
    SystemAlert,
    SystemConfig,
    SystemLifecycle,
    ThroughputMetric,
    input_given,
    pattern_refused,
)
from bridge.operations import OperationRecorder, Tracker
from bridge.source_repository import cite_source

__all__ = [
    "OPERATIONS",
    "Integration",
    "Publisher",
    "broadcast",
    "broadcast_alert",
    "broadcast_audit_event",
    "broadcast_batch",
    "broadcast_cluster_health",
    "broadcast_diagnostic",
    "broadcast_health_update",
    "broadcast_lifecycle_event",
    "broadcast_metrics",
    "broadcast_store_health",
    "broadcast_system_config",
    "broadcast_system_lifecycle",
    "current",
    "disable",
    "enable",
    "enabled",
    "health_broadcast_interval",
    "install",
    "metrics_broadcast_interval",
    "track",
]

_logger = logging.getLogger(__name__)

OPERATIONS: Final = OperationRecorder()
"""Where ``track()`` records; the throughput and latency collectors drain it."""
# EXESDB_HEALTH_BROADCAST_INTERVAL's and EXESDB_METRICS_BROADCAST_INTERVAL's defaults (a test
# holds them to bridge.settings'): the intervals with no bridge, or one built without settings.
_HEALTH_INTERVAL_MS: Final = 30_000
_METRICS_INTERVAL_MS: Final = 60_000

_AUDIT_TAGS: Final = frozenset({"data_change", "admin_action", "access_log", "compliance_event"})
_LIFECYCLE_TAGS: Final = frozenset(
    {
        "node_lifecycle_event",
        "process_lifecycle_event",
        "supervision_event",
        "cluster_membership_changed",
    }
)
_DIAGNOSTIC_TAGS: Final = frozenset(
    {"debug_trace", "performance_analysis", "system_state", "error_analysis"}
)
_CLUSTER_EVENTS: Final = {
    "node_down": "node_removed",
    "node_up": "node_added",
    "partition_detected": "partition_detected",
    "partition_healed": "partition_healed",
    "status_update": None,
}
_BY_KEYWORD: Final = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_NOT_INSTALLED: Final = PublishResult(PublishStatus.DISABLED, reason="no bridge is installed")
_DISABLED: Final = PublishResult(PublishStatus.DISABLED, reason="integration disabled")
# A message refused for its fields names up to this many of its problems, as ingest's 400 does.
_PROBLEMS_WORDED: Final = 10


def _name(value: Any) -> Any:
    """An Elixir-style atom (an Enum) as its string; other values as they are."""
    return value.value if isinstance(value, Enum) else value


def _worded(model: type[Message], error: ErrorDetails) -> str:
    """One of pydantic's errors for ``model``: where, what and the value it got (none for a
    field missing, whose input is the whole message); a word the field does not take, a field
    the model does not have and a string its pattern refuses are said as ``publish`` and ingest
    say them, with the one meant (``must be 'info', …; did you mean 'warning'?``)."""
    where = ".".join(str(part) for part in error["loc"]) or model.__name__
    # The field refused is of the message type by its tag (``not a field of log_entry``), as
    # ``publish`` and ingest name it.
    why = (
        field_refused(error, model.__pydantic_fields__, model.TAG)
        or pattern_refused(error)
        or error["msg"]
    )
    return f"{model.__name__}.{where}: {why}{input_given(error)}"


def _refuse_misspelt(call: Callable[..., Any], misspelt: Mapping[str, Any]) -> None:
    """Raise MessageError naming each keyword ``call`` does not take, and the option meant when
    one is close: an option silently ignored would publish what the caller did not ask for."""
    if not misspelt:
        return
    # Every parameter a keyword can name, the positional ones too (``context=``, ``details=``).
    options = [
        parameter.name
        for parameter in inspect.signature(call).parameters.values()
        if parameter.kind in _BY_KEYWORD and parameter.name != "self"
    ]
    problems = []
    for name in misspelt:
        meant = did_you_mean(name, options) or f"its options: {', '.join(options)}"
        problems.append(f"{name}: is not an option of {call.__name__} ({meant})")
    raise MessageError("; ".join(problems))


def _not_one_of(field: str, given: Any, allowed: Iterable[str]) -> str:
    """A word ``given`` for ``field`` that is none of ``allowed``: the words it takes, and the
    one meant when it is spelt nearly as one, as publish and ingest name it."""
    refused = f"{field}: {given!r} is not one of {', '.join(sorted(allowed))}"
    meant = did_you_mean(given, allowed)
    return f"{refused}; {meant}" if meant else refused


def _jsonable(mapping: Mapping[str, Any] | None, field: str) -> dict[str, Any]:
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping):
        raise MessageError(f"{field}: must be a map, got {type(mapping).__name__}")
    return {str(_name(k)): _name(v) for k, v in mapping.items()}


class Publisher(Protocol):
    """What an ``Integration`` publishes through: a ``bridge.bus.Bus``."""

    @property
    def node(self) -> str:
        """The node the messages come from when they name none."""

    def publish(self, topic: str, payload: Message) -> PublishResult:
        """Sign ``payload`` and put it on its instance."""


class Integration:
    """Broadcasts onto one bus, with a runtime switch and the configured intervals.

    Every broadcast builds its messages (a bad argument raises) before the switch is asked. A
    keyword a helper does not take lands in its ``**misspelt`` (typed ``Never``, so a type
    checker flags it too) and raises ``MessageError`` naming it and the option meant.
    """

    def __init__(
        self,
        bus: Publisher,
        *,
        enabled: bool = True,
        health_interval_ms: int = _HEALTH_INTERVAL_MS,
        metrics_interval_ms: int = _METRICS_INTERVAL_MS,
        recorder: OperationRecorder = OPERATIONS,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.bus = bus
        self.recorder = recorder
        self._timer = timer
        self._enabled = enabled
        self._health_interval_ms = health_interval_ms
        self._metrics_interval_ms = metrics_interval_ms

    # -- the switch --

    def enabled(self) -> bool:
        """True while broadcasts are published."""
        return self._enabled

    def enable(self) -> None:
        """Turn broadcasting on (announced with a SystemConfig message)."""
        self._switch(True)

    def disable(self) -> None:
        """Turn broadcasting off (announced before it goes quiet)."""
        self._switch(False)

    def _switch(self, enabled: bool) -> None:
        if enabled == self._enabled:
            return
        announce = SystemConfig(
            component="pubsub_integration",
            changes={"enabled": enabled},
            previous_config={"enabled": self._enabled},
            node=self.bus.node,
        )
        if enabled:
            self._enabled = True
            self.bus.publish("config", announce)
        else:
            self.bus.publish("config", announce)
            self._enabled = False
        _logger.info("pubsub integration %s", "enabled" if enabled else "disabled")

    def health_broadcast_interval(self) -> int:
        """Milliseconds between health collections."""
        return self._health_interval_ms

    def metrics_broadcast_interval(self) -> int:
        """Milliseconds between throughput, latency and resource collections."""
        return self._metrics_interval_ms

    # -- the one publishing path --

    def build(self, model: type[Message], **fields: Any) -> Message:
        """Build a message, turning a validation failure into a ValueError naming the field."""
        if "node" in model.model_fields and fields.get("node") is None:
            fields["node"] = self.bus.node
        try:
            return model.model_validate(
                {k: _name(v) for k, v in fields.items()}, context={"node": self.bus.node}
            )
        except ValidationError as exc:
            # Every problem, as ingest answers them: three missing fields are one round, not three.
            errors = exc.errors()
            problems = [_worded(model, error) for error in errors[:_PROBLEMS_WORDED]]
            if len(errors) > _PROBLEMS_WORDED:
                problems.append(f"and {len(errors) - _PROBLEMS_WORDED} more problems")
            raise MessageError("; ".join(problems)) from None

    def publish(self, topic: str, message: Message) -> PublishResult:
        """Publish a built message on ``topic`` when enabled (a bad topic raises either way)."""
        try:
            check_topic(topic)
            if self._enabled:
                return self.bus.publish(topic, message)  # refuses a payload nested too deep
            check_payload_depth(message)  # as the bus would, so off raises what on does
            return _DISABLED
        except ValueError as exc:
            raise MessageError(str(exc)) from None

    def broadcast(self, /, tag: str, topic: str | None = None, **fields: Any) -> PublishResult:
        """Publish any of the 36 message types by its tag; ``topic`` defaults to the tag."""
        model = TAGS.get(_name(tag))
        if model is None:
            class_names = {known.__name__: known.TAG for known in TAGS.values()}
            meant = did_you_mean(_name(tag), TAGS, class_names)  # as publish and ingest name it
            raise MessageError(
                f"tag: {tag!r} is not a known message type" + (f"; {meant}" if meant else "")
            )
        return self.publish(topic or model.TAG, self.build(model, **fields))

    # -- the original's helpers, arguments straightened out --

    def broadcast_system_lifecycle(
        self,
        /,
        event: str,
        system_name: str,
        version: str,
        *,
        topic: str = "lifecycle",
        **misspelt: Never,
    ) -> PublishResult:
        """SystemLifecycle (starting, started, stopping, stopped) on topic ``lifecycle``."""
        _refuse_misspelt(self.broadcast_system_lifecycle, misspelt)
        message = self.build(
            SystemLifecycle, event=event, system_name=_name(system_name), version=version
        )
        return self.publish(topic, message)

    def broadcast_system_config(
        self,
        /,
        component: str,
        changes: Mapping[str, Any],
        *,
        previous_config: Mapping[str, Any] | None = None,
        changed_by: str = "system",
        topic: str = "config",
        **misspelt: Never,
    ) -> PublishResult:
        """SystemConfig for ``component`` on topic ``config``."""
        _refuse_misspelt(self.broadcast_system_config, misspelt)
        message = self.build(
            SystemConfig,
            component=component,
            changes=_jsonable(changes, "changes"),
            previous_config=previous_config,
            changed_by=changed_by,
        )
        return self.publish(topic, message)

    def broadcast_health_update(
        self,
        /,
        component: str,
        status: str,
        details: Mapping[str, Any] | None = None,
        *,
        topic: str | None = None,
        **misspelt: Never,
    ) -> PublishResult:
        """ComponentHealth for ``component`` on topic ``<component>:health``."""
        _refuse_misspelt(self.broadcast_health_update, misspelt)
        component = str(_name(component))
        message = self.build(
            ComponentHealth,
            component=component,
            status=status,
            details=_jsonable(details, "details"),
        )
        return self.publish(f"{component}:health" if topic is None else topic, message)

    def broadcast_store_health(
        self,
        /,
        store_id: str,
        component: str,
        status: str,
        details: Mapping[str, Any] | None = None,
        *,
        topic: str | None = None,
        **misspelt: Never,
    ) -> PublishResult:
        """ComponentHealth for a store's component on topic ``<store_id>:health``."""
        _refuse_misspelt(self.broadcast_store_health, misspelt)
        store_id = str(_name(store_id))
        message = self.build(
            ComponentHealth,
            component=component,
            status=status,
            details={**_jsonable(details, "details"), "store_id": store_id},
        )
        return self.publish(f"{store_id}:health" if topic is None else topic, message)

    def broadcast_cluster_health(
        self,
        /,
        nodes: Iterable[str],
        failed_nodes: Iterable[str],
        event_type: str,
        *,
        topic: str = "cluster:health",
        **misspelt: Never,
    ) -> PublishResult:
        """ClusterHealth on ``cluster:health`` from the connected and failed nodes.

        ``event_type`` (``node_down``, ``node_up``, ``partition_detected``, ``partition_healed``
        or ``status_update``) also publishes the matching ClusterMembership on
        ``ex_esdb_lifecycle``. Quorum is a strict majority of all known nodes. Failed nodes are
        down, so they are in neither ``degraded_nodes`` nor ``unhealthy_nodes``: the Prometheus
        sink counts them as ``exesdb_cluster_nodes{state="down"}``. ``topic`` moves the
        ClusterHealth only.
        """
        _refuse_misspelt(self.broadcast_cluster_health, misspelt)
        event = _name(event_type)
        if event not in _CLUSTER_EVENTS:
            raise MessageError(_not_one_of("event_type", event, _CLUSTER_EVENTS))
        failed = sorted({str(_name(n)) for n in failed_nodes})
        connected = sorted({str(_name(n)) for n in nodes} - set(failed))
        total = len(connected) + len(failed)
        quorum = len(connected) * 2 > total
        status = "healthy" if not failed else ("degraded" if quorum else "unhealthy")
        health = self.build(
            ClusterHealth,
            status=status,
            healthy_nodes=len(connected),
            total_nodes=total,
            quorum_status="available" if quorum else "lost",
        )
        membership_event = _CLUSTER_EVENTS[event]
        membership = (
            None
            if membership_event is None
            else self.build(
                ClusterMembership,
                event=membership_event,
                affected_nodes=failed if event == "node_down" else connected,
                active_nodes=connected,
                total_nodes=total,
                quorum_status="available" if quorum else "lost",
            )
        )
        result = self.publish(topic, health)
        if membership is not None:
            self.publish("cluster:membership", membership)
        return result

    def broadcast_metrics(
        self,
        /,
        component: str,
        metrics: Mapping[str, Any],
        *,
        tags: Mapping[str, Any] | None = None,
        topic: str | None = None,
        **misspelt: Never,
    ) -> PublishResult:
        """Metrics of ``component`` on topic ``<component>``.

        Each numeric entry becomes a PerformanceMetric (unit from the name's suffix: ``_ms``,
        ``_seconds``, ``_bytes``, ``_count``, ``_percent``; without one, ``1``); when the map has
        ``duration_ms`` and an ``operations_count`` (or ``success_count`` + ``error_count``), a
        ThroughputMetric too.
        Other entries are skipped, a NaN or an infinity too (no sample can show one: it is
        left out as if not given). Returns the last result; all are validated before any is
        published.
        """
        _refuse_misspelt(self.broadcast_metrics, misspelt)
        component = str(_name(component))
        values = {
            name: value
            for name, value in _jsonable(metrics, "metrics").items()
            if not (isinstance(value, float) and not math.isfinite(value))
        }
        batch: list[Message] = [
            self.build(
                PerformanceMetric,
                metric_name=name,
                value=value,
                unit=_unit_of(name),
                component=component,
                tags=_jsonable(tags, "tags"),
            )
            for name, value in values.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        ]
        count = values.get("operations_count")
        parts = (values.get("success_count"), values.get("error_count"))
        if count is None and all(type(part) is int for part in parts):
            count = sum(parts)  # type: ignore[arg-type]
        if count is not None and values.get("duration_ms"):
            batch.append(
                self.build(
                    ThroughputMetric,
                    operation=component,
                    count=count,
                    duration_ms=values["duration_ms"],
                )
            )
        if not batch:
            raise MessageError("metrics: no numeric value to publish")
        result = _DISABLED
        for message in batch:
            result = self.publish(component if topic is None else topic, message)
        return result

    def broadcast_alert(
        self,
        /,
        alert_type: str,
        severity: str,
        message: str,
        context: Mapping[str, Any] | None = None,
        *,
        category: str = "system",
        description: str | None = None,
        source: str | None = None,
        alert_id: str | None = None,
        requires_ack: bool | None = None,
        topic: str | None = None,
        **misspelt: Never,
    ) -> PublishResult:
        """SystemAlert on the topic named after ``alert_type`` (e.g. ``node_failure``).

        The alert's ``node`` is ``context["node"]`` when given (the node the alert is about),
        else this node. ``description`` defaults to ``message``, ``source`` to ``alert_type``;
        ``alert_id`` and ``requires_ack`` to the message's own defaults.
        """
        _refuse_misspelt(self.broadcast_alert, misspelt)
        alert_type = str(_name(alert_type))
        context_map = _jsonable(context, "context")
        fields: dict[str, Any] = {
            "severity": severity,
            "category": category,
            "title": message,
            "description": message if description is None else description,
            "source": alert_type if source is None else source,
            "node": str(context_map.get("node") or self.bus.node),
            "metadata": context_map,
        }
        if alert_id is not None:
            fields["alert_id"] = alert_id
        if requires_ack is not None:
            fields["requires_ack"] = requires_ack
        return self.publish(
            alert_type if topic is None else topic, self.build(SystemAlert, **fields)
        )

    def broadcast_audit_event(
        self, /, tag: str, *, topic: str = "audit", **fields: Any
    ) -> PublishResult:
        """An audit message (``data_change``, ``admin_action``, ``access_log``,
        ``compliance_event``) on topic ``audit``."""
        return self._broadcast_kind(tag, _AUDIT_TAGS, topic, fields)

    def broadcast_lifecycle_event(
        self, /, tag: str, *, topic: str = "lifecycle", **fields: Any
    ) -> PublishResult:
        """A lifecycle message (node, process, supervision, membership) on ``lifecycle``."""
        return self._broadcast_kind(tag, _LIFECYCLE_TAGS, topic, fields)

    def broadcast_diagnostic(
        self, /, tag: str, *, topic: str = "diagnostics", **fields: Any
    ) -> PublishResult:
        """A diagnostics message (trace, analysis, state, error) on ``diagnostics``."""
        return self._broadcast_kind(tag, _DIAGNOSTIC_TAGS, topic, fields)

    def _broadcast_kind(
        self, tag: str, allowed: frozenset[str], topic: str, fields: dict[str, Any]
    ) -> PublishResult:
        """``tag``'s message from ``fields`` (a field its type lacks raises) on ``topic``."""
        tag = str(_name(tag))
        if tag not in allowed:
            raise MessageError(_not_one_of("tag", tag, allowed))
        return self.broadcast(tag, topic, **fields)

    def broadcast_batch(
        self, /, events: Iterable[tuple[str, Message] | Message]
    ) -> list[PublishResult]:
        """Publish several messages: all are checked first, so a bad one publishes none.

        Each event is a message (published on its tag as topic) or a ``(topic, message)`` pair.
        """
        prepared: list[tuple[str, Message]] = []
        for number, event in enumerate(events):
            if isinstance(event, Message):
                topic, message = event.TAG, event
            elif isinstance(event, tuple) and len(event) == 2:
                topic, message = event
            else:
                raise MessageError(f"events[{number}]: not a message nor a (topic, message) pair")
            if not isinstance(message, Message):
                raise MessageError(f"events[{number}]: not a message")
            try:
                check_topic(topic)
                check_payload_depth(message)  # the bus would refuse it after the others went
            except ValueError as exc:
                raise MessageError(f"events[{number}]: {exc}") from None
            prepared.append((topic, message))
        return [self.publish(topic, message) for topic, message in prepared]

    # -- timing --

    def track(self, operation: str) -> Tracker:
        """Time a block or a function and record its latency and success."""
        return Tracker(str(_name(operation)), self.recorder, self._timer)


def _unit_of(name: str) -> str:
    for suffix, unit in (
        ("_ms", "ms"),
        ("_seconds", "s"),
        ("_bytes", "bytes"),
        ("_count", "count"),
        ("_percent", "percent"),
    ):
        if name.endswith(suffix):
            return unit
    return "1"  # a plain number, as OpenTelemetry writes a unit of none


P = ParamSpec("P")
R = TypeVar("R")


# -- the module-level API, acting on the installed integration --

_installed: Integration | None = None
_warned_not_installed = False
_NOT_INSTALLED_WARNING: Final = (
    "%s() published nothing: no bridge is installed in this process. Start one "
    "(bridge.app.Bridge(settings).start() installs it; see "
    f"{cite_source('examples/integration_api.py')}) or install an Integration with "
    "bridge.integration.install(); until then every broadcast returns DISABLED "
    f"({cite_source('docs/integration.md')})"
)


def install(integration: Integration | None) -> None:
    """Make ``integration`` the one the module functions act on (None to uninstall)."""
    global _installed, _warned_not_installed
    _installed = integration
    if integration is not None:
        _warned_not_installed = False  # a later spell without a bridge is worth a warning again


class _NoBridge:
    """Where broadcasts go with no bridge installed: built (so bad arguments raise as with a
    bridge), then dropped."""

    def __init__(self) -> None:
        self.node = socket.gethostname()  # what EXESDB_NODE defaults to

    def publish(self, topic: str, payload: Message) -> PublishResult:
        check_payload_depth(payload)  # as a bus would refuse it
        return _NOT_INSTALLED


_NO_BRIDGE: Final = Integration(_NoBridge())


def _not_installed(function: str) -> None:
    """Say once per spell without a bridge that broadcasts publish nothing."""
    global _warned_not_installed
    if not _warned_not_installed:
        _warned_not_installed = True
        _logger.warning(_NOT_INSTALLED_WARNING, function)


def current() -> Integration | None:
    """The installed integration, if any."""
    return _installed


def _on_installed(method: Callable[Concatenate[Integration, P], R]) -> Callable[P, R]:
    """``method`` as a module function: called on the installed integration, else on one that
    drops what it builds (and then the warning, once the arguments have been checked). It keeps
    the method's signature (without ``self``, for ``help()`` too), so a type checker refuses
    there what the method refuses (the methods take ``self`` positionally only, so no keyword
    passed through can clash with it)."""

    @functools.wraps(method)
    def on_installed(*args: P.args, **kwargs: P.kwargs) -> R:
        integration = _installed or _NO_BRIDGE
        result = method(integration, *args, **kwargs)
        if integration is _NO_BRIDGE:
            _not_installed(method.__name__)
        return result

    # functools.wraps leaves __wrapped__, so help() and inspect.signature would show the
    # method's (self, /, ...): the module function takes no self.
    signature = inspect.signature(method)
    on_installed.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:]
    )
    return on_installed


broadcast: Final = _on_installed(Integration.broadcast)
broadcast_system_lifecycle: Final = _on_installed(Integration.broadcast_system_lifecycle)
broadcast_system_config: Final = _on_installed(Integration.broadcast_system_config)
broadcast_health_update: Final = _on_installed(Integration.broadcast_health_update)
broadcast_store_health: Final = _on_installed(Integration.broadcast_store_health)
broadcast_cluster_health: Final = _on_installed(Integration.broadcast_cluster_health)
broadcast_metrics: Final = _on_installed(Integration.broadcast_metrics)
broadcast_alert: Final = _on_installed(Integration.broadcast_alert)
broadcast_audit_event: Final = _on_installed(Integration.broadcast_audit_event)
broadcast_lifecycle_event: Final = _on_installed(Integration.broadcast_lifecycle_event)
broadcast_diagnostic: Final = _on_installed(Integration.broadcast_diagnostic)
broadcast_batch: Final = _on_installed(Integration.broadcast_batch)


def enable() -> None:
    """Turn the installed integration on."""
    if _installed is not None:
        _installed.enable()


def disable() -> None:
    """Turn the installed integration off."""
    if _installed is not None:
        _installed.disable()


def enabled() -> bool:
    """True when an integration is installed and enabled."""
    return _installed is not None and _installed.enabled()


def health_broadcast_interval() -> int:
    """Milliseconds between health collections (the default when nothing is installed)."""
    return _installed.health_broadcast_interval() if _installed else _HEALTH_INTERVAL_MS


def metrics_broadcast_interval() -> int:
    """Milliseconds between metrics collections (the default when nothing is installed)."""
    return _installed.metrics_broadcast_interval() if _installed else _METRICS_INTERVAL_MS


def track(operation: str) -> Tracker:
    """Time a block or function as ``operation`` (recorded even with no bridge installed)."""
    return Tracker(str(_name(operation)), _installed.recorder if _installed else OPERATIONS)
