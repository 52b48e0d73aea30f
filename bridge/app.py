"""The running service: configuration in, bus, sinks, collectors and HTTP server wired together.

Start order: components are built (sinks subscribe); what can fail is opened (components'
files, the web config, the listening socket, bound but not accepting yet), so a failure stops
start-up before anything runs; the bus starts, components start, then the HTTP server accepts.
Stop order is the reverse, and the bus drains its subscribers before it stops, all within one
``EXESDB_SHUTDOWN_TIMEOUT_MS``: each stage gets what the ones before it left.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from bridge.build import build_info, register_build_metrics
from bridge.bus import (
    Bus,
    BusMetrics,
    Keyring,
    MemoryTransport,
    ReplayGuard,
    Transport,
    Verifier,
    build_decoders,
    register_queue_depth,
    replay_file,
)
from bridge.cluster import cluster_monitor
from bridge.component import (
    Component,
    ComponentFactory,
    Context,
    Deadline,
    HasClientSpans,
    HasExposition,
    Prepares,
    Readiness,
)
from bridge.errors import BridgeError
from bridge.expect_continue import close_unasked, take_expectations
from bridge.http import HANDLER_ARGS, build_app
from bridge.integration import Integration, install
from bridge.integration import current as current_integration
from bridge.listener import (
    ConnectionGuard,
    Limits,
    Listener,
    named_refusals,
    no_server_header,
    raise_descriptor_limit,
    refuse_other_versions,
)
from bridge.log_throttle import LogThrottle
from bridge.routes import AdminGuard, admin_refusals
from bridge.settings import Settings
from bridge.settings_checks import start_warnings
from bridge.sinks.alerts import alert_sink
from bridge.sinks.otlp import otlp_component
from bridge.sinks.prometheus import exposition, prometheus_sink
from collectors import health_collector, lifecycle_collector, throughput_collector

if TYPE_CHECKING:
    from bridge.webconfig import LiveWebConfig

__all__ = ["Bridge", "build_transport"]

_logger = logging.getLogger(__name__)

# The share of EXESDB_SHUTDOWN_TIMEOUT_MS requests in progress get to finish (at most 2 s).
_REQUESTS_SHARE: Final = 0.25
_REQUESTS_MAX_SECONDS: Final = 2.0
# What a component past the deadline still gets to close what it holds (cancelled after it).
_LAST_WORDS_SECONDS: Final = 0.1
# The share of EXESDB_SHUTDOWN_TIMEOUT_MS kept from the components for what runs after their
# deadline (at most 1 s): a cancelled component closing what it holds (the alert outbox), the
# last words of those after it, and the bus's stop, whose transport has floors of its own (the
# Redis spool's last write, the node name forgotten). Without it all of that ran past the setting
# (0.7-1 s under load), which an orchestrator's stop grace is set from.
_AFTER_COMPONENTS_SHARE: Final = 0.25
_AFTER_COMPONENTS_MAX_SECONDS: Final = 1.0
# What to do when the listening address cannot be bound, by errno (the OS's words say only what).
_LISTEN_HINTS: Final = {
    errno.EADDRINUSE: (
        "another process listens there: stop it, or set EXESDB_HTTP_ADDR to a free port"
    ),
    errno.EADDRNOTAVAIL: "this host has no such address: give one it has, or 0.0.0.0 for every one",
    errno.EACCES: "a port below 1024 needs privileges: give a port from 1024 up",
}
# When the host is a name the resolver does not know (socket.gaierror: its own codes, not errno's).
_UNRESOLVED_HINT: Final = (
    "the host name does not resolve: give an IP address (0.0.0.0 for every one) or a name "
    "this host resolves"
)


def build_transport(settings: Settings, registry: CollectorRegistry | None = None) -> Transport:
    """The bus transport ``EXESDB_BUS`` asks for (its self-metrics go to ``registry``)."""
    if settings.uses_redis:
        from bridge.bus.redis import RedisTransport

        return RedisTransport.from_settings(settings, registry)
    return MemoryTransport()


def _keyring(settings: Settings) -> Keyring:
    secret = settings.secret_key_base.get_secret_value() if settings.secret_key_base else ""
    # Unset: an ephemeral key, fine for the in-process bus (config refuses it for ingest/Redis),
    # which nothing outside the process signs or verifies: said, not warned of.
    if not secret:
        _logger.info(
            "SECRET_KEY_BASE is not set: using an ephemeral key for the in-process bus (ingest"
            " and a Redis bus need it set)"
        )
    return Keyring.from_secrets(
        secret or secrets.token_hex(32),
        (key.get_secret_value() for key in settings.secret_key_base_previous),
    )


class Bridge:
    """Everything one bridge process runs."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: CollectorRegistry | None = None,
        transport: Transport | None = None,
        components: list[ComponentFactory] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        keep_replay: bool = False,
    ) -> None:
        """``keep_replay``: with ingest on, keep its replay memory across a graceful restart in
        ``EXESDB_STATE_DIR`` (``bridge.bus.replay_file``; the ``run`` command's bridge, whose
        alert sink holds that directory)."""
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.clock = clock  # the wall clock every message's time is judged by
        self.started_at = clock()
        self.build = build_info(settings.revision)
        keyring = _keyring(settings)
        self.bus_metrics = BusMetrics(self.registry)
        self._replay = ReplayGuard(settings.replay_window_ms / 1000, settings.replay_memory, clock)
        self._keeps_replay = keep_replay and settings.ingest
        self._replay_kept = False  # loaded, so that the stop may write it back
        self.verifier = Verifier(
            keyring,
            self._replay,
            window_seconds=settings.replay_window_ms / 1000,
            max_bytes=settings.max_body_bytes,
            count_rejection=self.bus_metrics.count_rejection,
            told=LogThrottle(),
        )
        transport = transport or build_transport(settings, self.registry)
        if settings.ingest or transport.capabilities.shared:
            # Messages come in as bytes: the decoders are built now, before the heap is
            # frozen, rather than for the first batch (the in-process bus decodes none).
            build_decoders()
        self.bus = Bus(
            node=settings.node,
            keyring=keyring,
            # On a shared transport, messages taken in by HTTP ingest (whose ids the ingest
            # verifier remembers) come back over the bus: the bus needs a replay memory of its
            # own, or this replica would refuse its own ingest as replayed.
            verifier=(
                self.verifier.with_fresh_replay()
                if transport.capabilities.shared
                else self.verifier
            ),
            metrics=self.bus_metrics,
            transport=transport,
            queue_size=settings.bus_queue_size,
            queue_bytes=settings.bus_queue_bytes,
            clock=clock,
        )
        self.integration = Integration(
            self.bus,
            enabled=settings.pubsub_integration,
            health_interval_ms=settings.health_broadcast_interval,
            metrics_interval_ms=settings.metrics_broadcast_interval,
        )
        self._register_self_metrics()
        self.shutdown = Deadline(settings.shutdown_timeout_ms / 1000, monotonic)
        # The components' own deadline, the reserve before the whole stop's kept for the bus.
        self._components_shutdown = Deadline(
            self.shutdown.seconds
            - min(_AFTER_COMPONENTS_MAX_SECONDS, self.shutdown.seconds * _AFTER_COMPONENTS_SHARE),
            monotonic,
        )
        self._requests_share = min(_REQUESTS_MAX_SECONDS, self.shutdown.seconds * _REQUESTS_SHARE)
        self.components: list[Component] = []
        # One admin guard for every admin route, the edge's and the alert sink's: its
        # refusals counted, so that a token guessed at shows on /metrics.
        self.admin = AdminGuard(settings.admin_token, refused=admin_refusals(self.registry))
        self.context = Context(
            settings=settings,
            bus=self.bus,
            integration=self.integration,
            registry=self.registry,
            recorder=self.integration.recorder,
            capabilities=transport.capabilities,
            readiness=self.readiness,
            expositions=self._expositions,
            shutdown=self._components_shutdown,
            client_spans=self._client_spans,
            bound_port=self._bound_port,
            clock=clock,
            admin=self.admin,
        )
        for factory in components if components is not None else default_components():
            component = factory(self.context)
            if component is not None:
                self.components.append(component)
        self.connections = ConnectionGuard(
            Limits(
                header_timeout=settings.http_header_timeout_ms / 1000,
                body_timeout=settings.http_body_timeout_ms / 1000,
                idle_timeout=settings.http_idle_timeout_ms / 1000,
                write_timeout=settings.http_write_timeout_ms / 1000,
                max_connections=settings.http_max_connections,
                max_body_bytes=settings.max_body_bytes,
                max_bodies_bytes=settings.max_bodies_bytes,
            ),
            registry=self.registry,
        )
        self._runner: web.AppRunner | None = None
        self._listener: Listener | None = None
        self.web_config: LiveWebConfig | None = None
        self._closed = False
        # The step of the stop under way, for a stop that runs long to say (bridge.stop_watch).
        self.stopping = "not begun"
        self.address: tuple[str, int] | None = None

    def _bound_port(self) -> int | None:
        return self.address[1] if self.address is not None else None

    def _register_self_metrics(self) -> None:
        register_queue_depth(self.bus, self.registry)
        register_build_metrics(self.registry, self.build, self.started_at)
        Gauge(
            "exesdb_integration_enabled",
            "1 while the pubsub integration is enabled, else 0.",
            registry=self.registry,
        ).set_function(lambda: 1.0 if self.integration.enabled() else 0.0)

    # -- life cycle --

    async def start(self, *, serve_http: bool = True) -> None:
        """Log the settings' start warnings (``settings_checks.start_warnings``), then start the
        bus, the components and (unless told not to) the HTTP server.

        What can fail (a component's files, the web config, the address) is opened first: a
        failure raises before the bus starts, so nothing has run, published or joined, and the
        module functions of ``bridge.integration`` act on what they acted on before (another
        bridge running in the process, or none).
        """
        # Here, not in the run command: a bridge embedded in an application warns of what its
        # settings (and a misspelt variable beside them) leave unsaid, too.
        for note in start_warnings(self.settings):
            _logger.warning("%s", note)
        before = current_integration()
        install(self.integration)
        try:
            await self._start(serve_http)
        except BaseException:
            if current_integration() is self.integration:
                install(before)
            raise

    async def _start(self, serve_http: bool) -> None:
        for component in self.components:
            if isinstance(component, Prepares):
                await component.prepare()
        if not self.settings.uses_redis:
            # After the components' files: this bridge alone has the directory now.
            self._tell_of_a_redis_spool()
        if self._keeps_replay:
            # After the components' files: a second bridge on the directory stopped there.
            taken = replay_file.load(self._replay, self.settings.state_dir)
            self._replay_kept = True
            if taken:
                _logger.info(
                    "ingest replay memory: the ids of %d message(s) verified before the last stop"
                    " (ingested, and the collectors' own) remembered: sent again, they are refused",
                    taken,
                )
        if serve_http:
            await self._bind()
        await self.bus.start()
        for component in self.components:
            await component.start()
        if self._listener is not None:
            await self._listener.start_serving()
            scheme = "https" if self.web_config and self.web_config.ssl_context else "http"
            assert self.address is not None  # set by _bind()
            bound, port = self.address
            shown = f"[{bound}]" if ":" in bound else bound  # an IPv6 address, as in a URL
            _logger.info("listening on %s://%s:%d", scheme, shown, port)
            if self.settings.ingest:
                _logger.info("ingest on at POST /v1/messages (signed with SECRET_KEY_BASE)")

    def _tell_of_a_redis_spool(self) -> None:
        """Warn of frames a run on the Redis bus left in this state directory's spool: the
        in-process bus never writes them, and they would wait there unsaid."""
        from bridge.bus.redis.spool import FOLDER, waiting

        folder = Path(self.settings.state_dir) / FOLDER
        if folder.is_dir() and (count := waiting(folder)):
            _logger.warning(
                "EXESDB_STATE_DIR: %s holds %d frame(s) a run on the Redis bus took in and did"
                " not write to Redis (batches ingest answered 202, acknowledgements, what it"
                " published as it stopped); the in-process bus leaves them there: run this"
                " bridge on that Redis again (EXESDB_BUS) to write them, or, that Redis gone for"
                " good (a mistyped EXESDB_BUS), remove %s to drop them",
                folder,
                count,
                folder,
            )

    async def _bind(self) -> None:
        """Load the web config and bind the listening socket, which accepts nothing until
        ``start_serving()``: a connection before then is refused, as with no server at all."""
        host, port = self.settings.listen
        app = build_app(self)
        if (web_config := self.settings.web_config()) is not None:
            # Imported here, as Settings reads the file: its models, TLS and basic auth are
            # for a bridge given one.
            from bridge.webconfig import LiveWebConfig
            from bridge.webconfig import install as install_web_config

            # TLS, basic auth and headers (docs/security.md), from the file as read at start
            # (the checks saw that version); a bad file: ConfigError.
            self.web_config = LiveWebConfig(web_config, registry=self.registry)
            install_web_config(app, self.web_config)
        ssl_context = self.web_config.ssl_context if self.web_config else None
        # Outermost: the body deadline and the probe reserve apply before anything else.
        app.middlewares.insert(0, self.connections.middleware)
        # 100 Continue when a route reads the body, after every check (with take_expectations).
        app.on_response_prepare.append(close_unasked)
        # Last of the runner's shutdown hooks (after the streams are ended), once it has closed
        # the idle connections: requests in progress get their share to finish here, not in its
        # server's shutdown, whose wait for them fails on one ending as it runs out.
        app.on_shutdown.append(self._end_requests)
        self.connections.fit(raise_descriptor_limit())
        # Each connection's protocol is made by the listener (named_refusals), not by the
        # runner's server, with the settings the server would give it.
        handler_args: dict[str, Any] = {
            **HANDLER_ARGS,
            "access_log": None,
            "keepalive_timeout": self.connections.limits.idle_timeout,
        }
        self._runner = web.AppRunner(app, shutdown_timeout=self._requests_share, **handler_args)
        await self._runner.setup()
        server = self._runner.server
        assert server is not None  # set by setup()
        no_server_header(server)
        take_expectations(server)
        refuse_other_versions(server)  # after: an HTTP/2.0 Expect is taken off too
        try:
            self._listener = await self.connections.serve(
                named_refusals(server, self.connections.bad_request, **handler_args),
                host,
                port,
                ssl_context,
                before_handshake=self.web_config.refresh if self.web_config else lambda: None,
            )
        except OSError as exc:  # taken, not ours to bind, no such address, no such name
            unresolved = isinstance(exc, socket.gaierror)
            hint = _UNRESOLVED_HINT if unresolved else _LISTEN_HINTS.get(exc.errno or 0)
            raise BridgeError(
                f"cannot listen on {self.settings.http_addr} (EXESDB_HTTP_ADDR): {exc}"
                + (f"; {hint}" if hint else "")
            ) from exc
        # The bound socket's name: a port of 0 becomes the one the system chose.
        sockets = self._listener.sockets
        self.address = (sockets[0].getsockname()[0], sockets[0].getsockname()[1])

    async def _end_requests(self, _app: web.Application) -> None:
        await self.connections.end_requests(self._requests_share)

    async def aclose(self) -> None:
        """Stop taking requests, stop components, drain and stop the bus, all within
        ``EXESDB_SHUTDOWN_TIMEOUT_MS`` (``shutdown``); idempotent."""
        if self._closed:
            return
        self._closed = True
        self.shutdown.begin()
        self._components_shutdown.begin()
        self.stopping = "the HTTP server's close (requests in progress finishing)"
        if self._listener is not None:
            self._listener.close()  # no new connections; the runner closes the open ones
            self.connections.close()  # and TLS handshakes still under way end here
            # Bodies still arriving come in before the runner's shutdown, which reads no more.
            await self.connections.settle(self._requests_share)
        if self._runner is not None:
            await self._runner.cleanup()  # requests in progress get their share to finish
            # Their answers are sent within what is left of the three shares requests may hold
            # the stop for (docs/configuration.md); then no connection's socket is left open.
            spent = self.shutdown.seconds - self.shutdown.left()
            await self.connections.let_go(max(0.0, 3 * self._requests_share - spent))
        clean = True
        for component in reversed(self.components):
            self.stopping = f"the close of component {component.name}"
            try:
                await asyncio.wait_for(
                    component.aclose(),
                    max(self._components_shutdown.left(), _LAST_WORDS_SECONDS),
                )
            except TimeoutError:
                clean = False
                _logger.warning(
                    "component %s did not close within EXESDB_SHUTDOWN_TIMEOUT_MS (%gs): cancelled",
                    component.name,
                    self.shutdown.seconds,
                )
            except Exception:
                clean = False
                _logger.exception("component %s did not close cleanly", component.name)
        self.stopping = "the bus's close (its subscribers draining, then its transport)"
        await self.bus.aclose(self.shutdown.left())
        if current_integration() is self.integration:  # not another bridge started since
            install(None)
        if self._replay_kept and clean:
            # Only after a stop that stored all it took: a resend is then refused as held.
            self.stopping = "the ingest replay memory's write to EXESDB_STATE_DIR"
            try:
                replay_file.save(self._replay, self.settings.state_dir)
            except OSError as exc:
                _logger.warning("ingest replay memory not written: %s", exc)
        self.stopping = "done"

    # -- what the HTTP edge asks --

    @property
    def node(self) -> str:
        """This bridge's node name (``EXESDB_NODE``)."""
        return self.settings.node

    @property
    def bus_kind(self) -> str:
        """``redis`` or ``memory``: where the bus runs (``EXESDB_BUS``)."""
        return "redis" if self.settings.uses_redis else "memory"

    def readiness(self) -> Readiness:
        """Each part's readiness: ``{name: {"ready", "required", "reason"}}``."""
        checks: dict[str, dict[str, Any]] = {}
        reason = self.bus.readiness()
        checks["bus"] = {"ready": reason is None, "required": True, "reason": reason}
        node_name = self.context.capabilities.node_name
        if node_name is not None:
            # Optional: every process under the shared name is told, and each still carries
            # the bus; a required check would take them all out of service at once.
            reason = node_name.problem()
            checks["node_name"] = {"ready": reason is None, "required": False, "reason": reason}
        for component in self.components:
            reason = component.readiness()
            checks[component.name] = {
                "ready": reason is None,
                "required": component.required,
                "reason": reason,
            }
        return checks

    def render_metrics(self, accept: str) -> tuple[bytes, str]:
        """The exposition body and its content type for an ``Accept`` header."""
        fmt = exposition.negotiate(accept)
        return exposition.render(self.registry, self._expositions(), fmt), fmt.content_type

    def _expositions(self) -> list[HasExposition]:
        return [c for c in self.components if isinstance(c, HasExposition)]

    def _client_spans(self) -> list[HasClientSpans]:
        return [c for c in self.components if isinstance(c, HasClientSpans)]


def default_components() -> list[ComponentFactory]:
    """The sinks and collectors a bridge runs, each deciding from settings whether it is on."""
    # Components close in reverse order. The cluster monitor's ``left`` must be the node's last
    # word on the bus: a NodeHealth after it (the collectors still running while the alert sink
    # drains) tracks the node again, and its silence then raises node_failure. So the monitor
    # closes after the collectors, and before the alert sink, which still hears its last words.
    return [
        prometheus_sink,
        otlp_component,
        alert_sink,
        cluster_monitor,
        health_collector,
        throughput_collector,
        lifecycle_collector,
    ]
