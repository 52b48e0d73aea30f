"""The web configuration in force: loaded at start, reloaded when its files change.

It starts from the file as read at start (a ``Judged``), without reading it again. At most once
per ``check_interval`` (on a request, or before a TLS connection is made, never in its
handshake) the file and the files it names are read and hashed (a few KiB; file times can miss
a quick rewrite); when any changed, they are read again ``SETTLE_SECONDS`` later, and only when
both reads agree (a file being written, by ``cat >`` or a slow copy, is not taken half-way)
everything is loaded again and, if good, takes over at once: the users, headers and rate limit
for the next request, the certificate, key and client CA for the next connection. A bad new
version keeps the old one in force and is logged once. Turning TLS on or off needs a restart
(the listening socket is one or the other), as do changing ``curve_preferences`` and turning
basic auth off (a file whose users are all gone, commented out or not yet written, would
otherwise open every endpoint); a new version requiring no client certificate where the old one
did is taken with a warning.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from bridge.errors import ConfigError
from bridge.regular_files import MAX_FILE_BYTES
from bridge.tlsutil import Stamp, stamp_file, stamp_files
from bridge.webconfig.basic_auth import BUSY_LIMITS, CACHE_SIZE, BasicAuthChecker
from bridge.webconfig.loading import Judged, Loaded, judge, tls_files
from bridge.webconfig.rate_limit import RateLimiter
from bridge.webconfig.schema import RateLimit, TLSServerConfig, WebConfig
from bridge.webconfig.tls import apply_handshake_settings

__all__ = ["CHECK_INTERVAL_SECONDS", "SETTLE_SECONDS", "LiveWebConfig"]

_logger = logging.getLogger(__name__)

CHECK_INTERVAL_SECONDS: Final = 1.0
# How long a changed file must read the same before it is taken: a writer still at it has
# written more by then (an editor's or a deployment's rename is one step, and waits no longer).
SETTLE_SECONDS: Final = 0.1
# The most times ``reload`` looks again at files that keep changing before it gives up.
_SETTLE_LOOKS: Final = 20
# How much client_auth_type asks of a client: 2 a verified certificate, 1 any, 0 none.
_CLIENT_AUTH_DEMANDS: Final = {"RequireAnyClientCert": 1, "RequireAndVerifyClientCert": 2}


def _stamp(path: Path, config: WebConfig) -> Stamp:
    # The files as judge() reads them: no further than a file it refuses by its size.
    files = stamp_files(tls_files(config.tls), limit=MAX_FILE_BYTES)
    return (stamp_file(str(path), limit=MAX_FILE_BYTES), *files)


def _client_auth_demand(tls: TLSServerConfig | None) -> int:
    return _CLIENT_AUTH_DEMANDS.get(tls.client_auth_type, 0) if tls is not None else 0


def _curves(config: WebConfig) -> tuple[str, ...]:
    return config.tls.curve_preferences if config.tls is not None else ()


class LiveWebConfig:
    """The web config file in force, for the HTTP server's TLS and the web-config middleware."""

    def __init__(
        self,
        judged: Judged,
        *,
        registry: CollectorRegistry | None = None,
        check_interval: float = CHECK_INTERVAL_SECONDS,
        cache_size: int = CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """Start from the file as read at start (``judged``: ``Settings.web_config()``, not read
        again here), taking over its server context; ConfigError when it is bad (start-up
        stops, exit status 2). A change since that read is taken at the first look."""
        if judged.loaded is None:
            raise ConfigError(list(judged.problems))
        self.path = judged.path
        self._clock = clock
        self._wall_clock = wall_clock
        self._interval = check_interval
        loaded = judged.loaded
        self._loaded = loaded
        self._stamp = judged.stamp
        self._refused: Stamp | None = None
        # A changed stamp, and when it was first read: taken once a later read agrees with it.
        self._changed: tuple[Stamp, float] | None = None
        self._next_look = clock() + check_interval
        checks = Counter(
            "exesdb_web_config_password_checks",
            "Basic auth passwords checked with bcrypt, by result (accepted, refused).",
            ["result"],
            registry=registry,
        )
        for result in ("accepted", "refused"):
            checks.labels(result)
        busy = Counter(
            "exesdb_web_config_password_checks_busy",
            "Requests answered 429 password_checks_busy, their password not checked, by limit: "
            "too many checks waiting for their client (client) or in all (all).",
            ["limit"],
            registry=registry,
        )
        for limit in BUSY_LIMITS:
            busy.labels(limit)
        self.limiter = self._limiter(loaded.config.rate_limit)
        self.auth = BasicAuthChecker(
            loaded.config.basic_auth_users,
            cache_size=cache_size,
            checked=lambda accepted: checks.labels("accepted" if accepted else "refused").inc(),
            busy=lambda limit: busy.labels(limit).inc(),
        )
        Gauge(
            "exesdb_web_config_password_checks_waiting",
            "Basic auth password checks waiting their turn or running.",
            registry=registry,
        ).set_function(lambda: float(self.auth.waiting))
        # The listening socket's context, for the server's whole life (see bridge.webconfig.tls).
        self.ssl_context = loaded.context
        if self.ssl_context is not None:
            self.ssl_context.sni_callback = self._hand_over
        self._reloaded = Gauge(
            "exesdb_web_config_last_reload_successful",
            "1 when the latest change to EXESDB_WEB_CONFIG_FILE (or a file it names) was taken, "
            "0 while a bad one is refused and the previous version stays in force.",
            registry=registry,
        )
        self._reloaded_at = Gauge(
            "exesdb_web_config_last_reload_success_timestamp_seconds",
            "When the web config in force was loaded, in Unix seconds.",
            registry=registry,
        )
        self._reloaded.set(1)
        self._reloaded_at.set(wall_clock())

    def _limiter(self, limit: RateLimit) -> RateLimiter | None:
        return (
            RateLimiter(limit.interval, limit.burst, clock=self._clock) if limit.enabled else None
        )

    @property
    def config(self) -> WebConfig:
        """The configuration in force."""
        return self._loaded.config

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """The headers every response gets."""
        return self._loaded.config.http_server_config.headers.items()

    def refresh(self) -> bool:
        """Look at the files if it is time; True when a changed file was taken."""
        now = self._clock()
        if now < self._next_look:
            return False
        self._next_look = now + self._interval
        return self._look()

    @property
    def refused(self) -> bool:
        """Whether the file as it is now was refused (the version before stays in force)."""
        return self._refused is not None

    async def reload(self) -> bool:
        """Look at the files now (on SIGHUP), and again while a change settles; True when a
        changed file was taken."""
        for _ in range(_SETTLE_LOOKS):
            if self._look():
                return True
            if self._changed is None:
                return False
            await asyncio.sleep(max(0.0, self._changed[1] + SETTLE_SECONDS - self._clock()))
        return False

    def _look(self) -> bool:
        """Look at the files now; True when a changed file, read the same twice, was taken."""
        now = self._clock()
        stamp = _stamp(self.path, self._loaded.config)
        if stamp == self._stamp:
            self._changed = None
            if self._refused is not None:  # put back as it was: what is in force is the file
                self._refused = None
                self._reloaded.set(1)
            return False
        if stamp == self._refused:  # already logged
            self._changed = None
            return False
        if self._changed is None or self._changed[0] != stamp:
            self._changed = (stamp, now)  # new: read again once a writer would have written more
            self._next_look = min(self._next_look, now + SETTLE_SECONDS)
            return False
        if now < self._changed[1] + SETTLE_SECONDS:
            self._next_look = min(self._next_look, self._changed[1] + SETTLE_SECONDS)
            return False
        self._changed = None
        judged = judge(self.path)
        if judged.loaded is not None and judged.stamp[:1] != stamp[:1]:
            # Rewritten again between the reads and the load: that version must settle too.
            self._changed = (judged.stamp[:1] + stamp[1:], now)
            self._next_look = min(self._next_look, now + SETTLE_SECONDS)
            return False
        try:
            loaded = self._acceptable(judged)
        except ConfigError as exc:
            self._refused = stamp
            self._reloaded.set(0)
            _logger.error(
                "web config %s not reloaded, the previous one stays in force: %s",
                self.path,
                "; ".join(exc.problems),
            )
            return False
        old_tls, new_tls = self._loaded.config.tls, loaded.config.tls
        if old_tls is not None and _client_auth_demand(new_tls) < _client_auth_demand(old_tls):
            _logger.warning(
                "web config %s: client_auth_type is %s where it was %s: connections are let in "
                "with less proof (an unverified certificate, or none)",
                self.path,
                new_tls.client_auth_type if new_tls is not None else "NoClientCert",
                old_tls.client_auth_type,
            )
        if loaded.config.rate_limit != self._loaded.config.rate_limit:
            self.limiter = self._limiter(loaded.config.rate_limit)
        self._loaded = loaded
        # The files as loaded: a change since is seen at the next look.
        self._stamp = judged.stamp
        self._refused = None
        self.auth.replace(loaded.config.basic_auth_users)
        tls = loaded.config.tls
        if self.ssl_context is not None and tls is not None:
            apply_handshake_settings(tls, self.ssl_context)
        self._reloaded.set(1)
        self._reloaded_at.set(self._wall_clock())
        _logger.info("web config %s reloaded: %s", self.path, loaded.config.summary())
        return True

    def _acceptable(self, judged: Judged) -> Loaded:
        """The new version ``judged`` if it is good and can take over without a restart;
        ConfigError with every reason it cannot."""
        loaded = judged.loaded
        if loaded is None:
            raise ConfigError(list(judged.problems))
        if (loaded.context is None) != (self.ssl_context is None):
            raise ConfigError(
                [f"{self.path}: tls_server_config: turning TLS on or off needs a restart"]
            )
        if _curves(loaded.config) != _curves(self._loaded.config):
            # The listening context's curves (see bridge.webconfig.tls), which no call puts
            # back to OpenSSL's defaults.
            raise ConfigError(
                [f"{self.path}: tls_server_config.curve_preferences: changing it needs a restart"]
            )
        if self.auth.enabled and not loaded.config.basic_auth_users:
            # A file with every user gone is more often half-written or mis-edited than meant.
            raise ConfigError(
                [f"{self.path}: basic_auth_users: turning basic auth off needs a restart"]
            )
        return loaded

    def _hand_over(
        self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        # Runs in OpenSSL's ClientHello callback. No look here: the connection's client-auth
        # mode, versions and ciphers were fixed when it was made, so a file taken now (its
        # ClientHello late, under load) would let it in under the old ones with the new file in
        # force. The look before the connection was made (``refresh``) is the one that counts.
        newest = self._loaded.context
        if newest is not None and newest is not self.ssl_context:
            connection.context = newest
