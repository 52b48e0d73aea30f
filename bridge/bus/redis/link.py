"""The connection to Redis: one client, whether Redis answers or refuses, how every loop retries."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import errno
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from types import MappingProxyType
from typing import Any, Final

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection, RedisSSLContext, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.exceptions import TimeoutError as RedisTimeout

from bridge.backoff import Backoff
from bridge.bus.redis.layout import RAW_REPLIES
from bridge.bus.redis.tls_files import tls_file_problems
from bridge.errors import TransportError
from bridge.redaction import redact_urls, safe_url
from bridge.source_repository import cite_source
from bridge.tasks import cancel_and_wait

__all__ = [
    "OWN_OPTIONS",
    "RETRYABLE",
    "USER_RULES",
    "Link",
    "command_seconds",
    "linger",
    "reason",
    "redis_client",
    "redis_pool",
    "script_named",
    "temporary",
]

_logger = logging.getLogger(__name__)

RETRYABLE: Final = (RedisError, OSError, asyncio.TimeoutError)
"""What a Redis command raises when Redis is unreachable, slow, or refuses it."""
_RETRIES_ARE_OURS: Final = (
    "the Redis transport's own retrying: reconnection with backoff, counted and told in readiness"
)
OWN_OPTIONS: Final = MappingProxyType(
    {
        "socket_timeout": (
            "the Redis transport's own, above the XREAD block time so that a blocked read is not"
            " taken for a dead server: EXESDB_REDIS_TIMEOUT_MS sets it"
        ),
        "socket_connect_timeout": (
            "the Redis transport's own, short so that an unreachable Redis is told in readiness"
            " within seconds"
        ),
        "health_check_interval": (
            "the Redis transport's own, so that a connection dropped while idle (by Redis or a"
            " proxy) is replaced before it fails a command"
        ),
        "decode_responses": (
            "the Redis transport's own, off: entries are read as bytes, the bytes that were"
            " signed (redis-py reads the query's 'false' as true)"
        ),
        "retry": _RETRIES_ARE_OURS,
        "retry_on_timeout": _RETRIES_ARE_OURS,
        "retry_on_error": _RETRIES_ARE_OURS,
    }
)
"""The connection options ``redis_client`` sets (or whose work it does) itself, each with what a
URL's query would override: redis-py lets the query win without a word, so ``EXESDB_BUS``
refuses them."""

# Refusals a Redis gives while it cannot take writes for now (memory full, a read-only replica
# after a failover, a failing RDB save, loading its data set): retried with backoff.
_TEMPORARY_REPLIES: Final = (
    "OOM",
    "READONLY",
    "MISCONF",
    "LOADING",
    "BUSY",
    "TRYAGAIN",
    "MASTERDOWN",
    "NOREPLICAS",
    "CLUSTERDOWN",
)

# Where Redis's words for a refusal inside a script name the script, after the refusal's own.
_SCRIPT_NAMED: Final = re.compile(r"\. script: [0-9a-f]{40}, on @user_script:\d+")

# Redis's words as it cuts short the blocked reads of a primary turning into a replica.
_TURNED_REPLICA: Final = "(master -> replica?)"

# What the bridge does after a refusal, said after it: a READONLY refusal (or a blocked read cut
# short, UNBLOCKED with _TURNED_REPLICA) comes of a primary that a failover demoted, and
# redis-py's client keeps its connections to it (only its Sentinel client drops them), while the
# name the URL gives may lead to the new primary now (DNS, a load balancer, a Kubernetes
# Service): the pool's connections are closed, and the next connect afresh.
_RETRYING: Final = "; retrying with backoff"
_RECONNECTING: Final = (
    "; reconnecting (a failover may have moved the name it is reached by to the new primary)"
    " and retrying with backoff"
)

# How long a Redis may go on refusing writes READONLY through reconnections before it is told to
# be a read replica that EXESDB_BUS names, not a primary a failover demoted: a failover moves a
# name to the new primary within seconds (a Service, a managed endpoint) or a DNS TTL.
_READ_REPLICA_SECONDS: Final = 60.0

# Where the rules of the bridge's Redis user are, for each refusal of one of them.
USER_RULES: Final = cite_source("docs/redis.md#a-redis-user-for-the-bridge")
# What the bridge's words add to Redis's when Redis refuses its credentials, or one of its
# commands or keys (an ACL user without a rule the bridge needs).
_CREDENTIALS_HINT: Final = (
    "the user name and password in EXESDB_BUS must be those of a Redis user that is on"
)
# NOAUTH: the URL gives no password, and Redis asks for one (requirepass, or the default user
# off): where it goes, not that it is wrong. In words: the log's redaction would hide a URL
# written out with a password in it.
_NOAUTH_HINT: Final = (
    "Redis asks for a password and EXESDB_BUS gives none: write it in the URL before the host,"
    " after a colon and followed by @ (a Redis user's name before that colon),"
    f" {cite_source('docs/redis.md#settings')}"
)
_PERMISSIONS_HINT: Final = (
    f"give the bridge's Redis user the rules of {USER_RULES}; ACL LOG names what was refused"
)
# A database number past the databases Redis has (SELECT refused as a connection opens).
_DATABASE_REFUSED: Final = "DB index is out of range"
_DATABASE_HINT: Final = (
    "the database number EXESDB_BUS ends with must be below Redis's number of databases,"
    " its databases setting: 16 by default, /0 to /15"
)
# Redis's TLS certificate not signed by a CA the bridge trusts (a rediss:// URL without the
# private CA's file), and what to do about it.
_UNTRUSTED: Final = "CERTIFICATE_VERIFY_FAILED"
# OpenSSL's words for a certificate whose signer is not trusted (1.1 spells "self signed"); not
# a name or date that does not verify, which another CA file would not help.
_UNTRUSTED_SIGNER: Final = (
    "issuer certificate",
    "self-signed certificate",
    "self signed certificate",
    "unable to verify the first certificate",
)
_UNTRUSTED_HINT: Final = (
    "Redis's certificate is checked against the system's CAs, or the file EXESDB_BUS names"
    " in ?ssl_ca_certs=FILE: give that the CA which signed it,"
    f" {cite_source('docs/redis.md#settings')}"
)
# A rediss:// URL at a Redis without TLS: the client's handshake waits for an answer that never
# comes, and the connection times out.
_PLAIN_REDIS_HINT: Final = (
    "with rediss:// the bridge speaks TLS first, which a Redis without TLS never answers: for"
    " such a Redis, EXESDB_BUS is redis://"
)
# Nothing listening at the URL's port, or no such host, before Redis first answered there: the
# URL is wrong or Redis is not started (redis-py's words say only "Connect call failed").
_NOTHING_LISTENS_HINT: Final = (
    "nothing listens there: start Redis, or set EXESDB_BUS to where it listens"
)
_NO_SUCH_HOST_HINT: Final = "no such host: check the host name in EXESDB_BUS"
# The resolver's answers that the name has no address (not a resolver that failed to answer:
# EAI_AGAIN, "Temporary failure in name resolution", says nothing of the name).
_NO_SUCH_NAME: Final = frozenset(
    {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
)
# asyncio's words for a host none of whose addresses it could connect to: each one's errno.
_ERRNO_SAID: Final = re.compile(r"\[Errno (\d+)\]")
# What an address nothing listens at fails with: refused, or of a family or network this host
# cannot reach (an IPv6 address on a host without IPv6).
_NOTHING_THERE: Final = frozenset(
    {errno.ECONNREFUSED, errno.EADDRNOTAVAIL, errno.ENETUNREACH, errno.EAFNOSUPPORT}
)
# A Lua script's command refused by the ACL: Redis answers ERR, not NOPERM.
_SCRIPT_DENIED: Final = "The user executing the script can't"
# A transaction whose MULTI the ACL refused: redis-py raises EXEC's error, not MULTI's NOPERM.
_MULTI_DENIED: Final = "EXEC without MULTI"
# redis-py's words around the error of one command of a pipeline; its asyncio pipeline gives
# the error's arguments as a tuple.
_PIPELINE: Final = re.compile(
    r"Command # \d+ \((?P<command>.*?)\) of pipeline caused error: (?P<error>.*)", re.S
)

Step = Callable[[], Awaitable[float | None]]

# Why a connection failed while a TLS file of the URL does not load, before what is wrong with
# it: redis-py loads them before it connects, so Redis was not even tried.
_TLS_FILE_BAD: Final = "a TLS file EXESDB_BUS names does not load"
# What a failure holds when it came of the network, not of a file: refused, reset, timed out, no
# such host (redis-py's own ConnectionError and TimeoutError hold one of these as their cause).
_NETWORK_ERRORS: Final = (ConnectionError, TimeoutError, socket.gaierror)

# Where the refusals of frames dropped are kept among the loops' (no loop's success ends them).
_DROPPED_FRAMES: Final = object()

# How long opening a connection may take before it fails (the client's connect timeout).
_CONNECT_SECONDS: Final = 2.0
# How much longer than a blocking read's block time a command waits for Redis's answer before
# the client gives up on it (the socket timeout): a blocked read is not taken for a dead server.
_ANSWER_MARGIN_SECONDS: Final = 5.0

# The tail of Redis's "ERR unknown command 'X', with args beginning with: …": it echoes the
# command's first arguments (up to 128 bytes: part of a signed entry), which are not shown.
_ARGS_ECHOED: Final = "with args beginning with:"

# A reader whose last read was small waits this long before the next: what arrives meanwhile
# comes in one read rather than many (each round trip costs more CPU than several messages).
_LINGER_SECONDS: Final = 0.005


class Link:
    """The Redis client the transport's background loops share, its state and retry policy.

    Every loop runs through ``keep_trying``: a failed step is recorded (``connection_errors``
    counts it, ``trouble`` says why) and waited out with ``backoff``, longer while failures
    follow each other. A Redis that cannot be reached (refused connection, timeout, no such
    host) is one state for every loop: ``connected`` (Redis answers) turns False, and the next
    success of any loop marks Redis reachable again. A Redis that answers but refuses (the
    credentials, or a command or key its ACL user lacks) may refuse one loop while the others
    get through: that refusal is the loop's owner's (``refused``), told until that loop
    succeeds (or stops hitting it for ``refusal_seconds``), so a fixed ACL is taken without a
    restart and the others' successes do not hide it; a frame refused and dropped
    (``refused_for_good``) is told for ``refusal_seconds``. ``usable``: Redis answers and
    refuses nothing. What leaves the transport for a caller (coordination, shared state) goes
    through ``boundary``, which turns a Redis failure into ``TransportError``.
    """

    def __init__(
        self,
        url: str,
        client: Redis,
        backoff: Backoff,
        *,
        block_ms: int = 1_000,
        timeout_ms: int | None = None,
        restart_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``block_ms``: how long the loops' blocking reads wait, ``timeout_ms`` how long a
        command waits for its answer (both as given to ``redis_client``);
        ``restart_seconds``: how long a stage that failed unexpectedly waits to restart;
        ``clock`` (monotonic seconds) ages the refusals."""
        self.url = url
        self.client = client
        for command in RAW_REPLIES:
            client.set_response_callback(command, _as_sent)
        self.backoff = backoff
        self.stopping = asyncio.Event()
        self.connected = False  # whether Redis answers (if only to refuse)
        self.answered = asyncio.Event()  # Redis has answered since the start
        self.error: str | None = None  # why Redis is unreachable (None: not tried yet)
        self._down_said = "is unreachable"  # or, a TLS file not loading, "is not connected"
        self._unreachable_since = 0.0  # when it last failed so
        self.connection_errors = 0
        self.stage_errors = 0
        # A loop still refused is refused again within its backoff's wait (at most the cap) and
        # the time its step takes to get to the refused command (a blocking read, a command,
        # each answered within the socket timeout): a refusal not heard again for twice the cap
        # and one socket timeout is no longer made. With the transport's defaults (a 5 s cap,
        # 1 s blocking reads, so a 6 s socket timeout) that is docs/redis.md's 16 s.
        self.refusal_seconds = 2 * backoff.cap + _answer_seconds(block_ms, timeout_ms)
        self._restart_seconds = restart_seconds
        self._clock = clock
        self._refusals: dict[object, tuple[float, str]] = {}  # owner -> (when, what was said)
        self._reconnect_after = 0.0  # when a READONLY refusal may close the connections again
        # The READONLY refusals going on: when the first and the last came, the reconnections
        # since, and whether the URL was told to name a read replica.
        self._readonly: tuple[float, float, int, bool] = (0.0, -float("inf"), 0, False)
        self._when_down: list[Callable[[], None]] = []

    async def command(self, *args: str | bytes | int) -> Any:
        """Send one command as it is written; the reply of a ``RAW_REPLIES`` command comes as
        Redis sent it."""
        return await self.client.execute_command(*args)  # type: ignore[no-untyped-call]

    def when_down(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on every failed command (e.g. to ask whether Redis lost its data)."""
        self._when_down.append(callback)

    def trouble(self) -> str | None:
        """What keeps the bus from Redis now, said after "Redis at <url> " (``is unreachable:
        …``, ``is not connected: a TLS file EXESDB_BUS names does not load: …``, ``refuses the
        bridge's credentials: …``, ``refuses the bridge's commands: …``: whichever came last),
        or None."""
        latest = max(self._refused(), default=None)
        unreachable = not self.connected and self.error is not None
        if unreachable and (latest is None or latest[0] <= self._unreachable_since):
            return f"{self._down_said}: {self.error}"
        if latest is not None:
            return latest[1]
        return None if self.connected else "is not connected yet"

    @property
    def usable(self) -> bool:
        """True while Redis answers and refuses none of the bridge's commands (``trouble`` is
        None): False while it is unreachable, before it first answered, and while a refusal
        is told."""
        return self.connected and not self._refused()

    def refused(self, owner: object) -> bool:
        """Whether Redis refuses the commands of ``owner``'s loop now (refused within
        ``refusal_seconds``, and not succeeded since)."""
        refusal = self._refusals.get(owner)
        return refusal is not None and self._current(refusal)

    def up(self, owner: object = None) -> None:
        """Record a command of ``owner``'s loop that succeeded."""
        if not self.connected:
            _logger.info("connected to Redis at %s", safe_url(self.url))
        self._taken(owner)
        self.connected = True
        self.answered.set()
        self.error = None

    def _taken(self, owner: object) -> None:
        """End ``owner``'s refusal, if any: its command got through."""
        refused = self._refusals.pop(owner, None)
        if refused is not None and self._current(refused) and not self._refused():
            # Only a refusal still told is news when it ends: one aged out was dropped unsaid.
            _logger.info("Redis at %s takes the bridge's commands again", safe_url(self.url))

    def down(self, exc: BaseException, failures: int, *, owner: object = None) -> float:
        """Record a failed command, the ``failures``-th in a row of ``owner``'s loop; returns
        how long to wait before the next try."""
        self.connection_errors += 1
        for callback in self._when_down:
            callback()
        if self._told_refused(exc, owner, _RECONNECTING if _demoted(exc) else _RETRYING):
            return self.backoff.delay(failures)
        files = self._tls_files(exc)
        said, why = (
            # A Redis that answered on this URL speaks TLS if it uses it: not told otherwise.
            (
                "is unreachable",
                _unreachable(
                    exc,
                    tls=self.url.startswith("rediss:"),
                    answered=self.answered.is_set(),
                ),
            )
            if files is None
            else ("is not connected", f"{_TLS_FILE_BAD}: {files}")
        )
        # Once per outage and reason: the loops sharing the link fail together, alike.
        if self.connected or (failures == 1 and why != self.error):
            _logger.warning("Redis at %s %s: %s%s", safe_url(self.url), said, why, _RETRYING)
        self._down_said = said
        self.connected = False
        self.error = why
        self._unreachable_since = self._clock()
        return self.backoff.delay(failures)

    def refused_aside(self, exc: BaseException, owner: object) -> bool:
        """Record a refusal of a command whose caller goes on without it (shared state at the
        boundary, the writer's look at what was taken): counted, logged once while it lasts, and
        told until ``owner``'s next success (``taken_aside``) or ``refusal_seconds`` after the
        last; False (nothing recorded) when Redis did not refuse ``exc``."""
        if _refusal(exc) is None:
            return False
        self.connection_errors += 1
        return self._told_refused(exc, owner, "")

    def taken_aside(self, owner: object) -> None:
        """Record that a command ``refused_aside`` under ``owner`` got through."""
        self._taken(owner)

    def _told_refused(self, exc: BaseException, owner: object, then: str) -> bool:
        """File Redis's refusal of ``exc`` under ``owner``, warned of once per refusal while it
        lasts (the loops sharing the link may be refused alike); False when Redis did not
        answer."""
        said = _refusal(exc)
        if said is None:
            return False
        if _alike(said) not in {_alike(what) for _, what in self._refused()}:
            _logger.warning("Redis at %s %s%s", safe_url(self.url), said, then)
        self._refusals[owner] = (self._clock(), said)
        return True

    def refused_for_good(self, exc: ResponseError) -> None:
        """Record a refusal that is not tried again (a frame Redis refused, dropped): told
        until ``refusal_seconds`` after the last, whatever else gets through (the writer
        logs and counts each frame)."""
        said = _refusal(exc)
        if said is not None:
            self._refusals[_DROPPED_FRAMES] = (self._clock(), said)

    def _refused(self) -> list[tuple[float, str]]:
        """The refusals still being made."""
        return [refusal for refusal in self._refusals.values() if self._current(refusal)]

    def _current(self, refusal: tuple[float, str]) -> bool:
        """Whether ``refusal`` is still being made: heard within ``refusal_seconds``."""
        return refusal[0] >= self._clock() - self.refusal_seconds

    async def pause(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        """Wait ``seconds``, or less when the transport stops (or ``wake`` is set) meanwhile."""
        # asyncio.timeout rather than wait_for: on Python 3.11 wait_for can swallow a
        # cancellation that arrives as the wait ends, and the loop would not stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                if wake is None:
                    await self.stopping.wait()
                else:
                    await _either(self.stopping, wake)

    async def keep_trying(
        self,
        step: Step,
        *,
        refused: Callable[[ResponseError], bool] | None = None,
        failed: Callable[[], None] | None = None,
        owner: object = None,
        wake: asyncio.Event | None = None,
    ) -> None:
        """Run ``step`` again and again until the transport stops, through Redis failures.

        ``step`` returns None when it did not get to Redis (nothing to do) or learnt nothing of
        a refusal it was told (it steps again at once, its refusal standing), else how long to
        wait before the next step; ``wake``, set, ends that wait at once (not a backoff).
        ``refused`` may deal with a refusal itself (True: step again at once, nothing
        recorded); ``failed`` hears of each failure before the wait. The loop's refusals are
        filed under ``owner`` (``refused(owner)`` asks after them), by default one of its own.
        """
        if owner is None:
            owner = object()
        failures = 0
        try:
            while not self.stopping.is_set():
                if _cancel_requested():
                    raise asyncio.CancelledError
                failure: BaseException
                try:
                    wait = await step()
                except ResponseError as exc:
                    if refused is not None and refused(exc):
                        continue
                    failure = exc
                except RETRYABLE as exc:
                    failure = exc
                else:
                    if wait is not None:
                        failures = 0
                        self.up(owner)
                        if wait > 0:
                            await self.pause(wait, wake)
                    continue
                if _cancel_requested():
                    raise asyncio.CancelledError from failure
                failures += 1
                if failed is not None:
                    failed()
                wait = self.down(failure, failures, owner=owner)
                if _demoted(failure):
                    await self._reconnect(wait)
                await self.pause(wait)
        finally:
            self._refusals.pop(owner, None)  # a loop that ended is refused nothing any more

    async def _reconnect(self, wait: float) -> None:
        """Close the client's connections (``_RECONNECTING``), at most once per ``wait`` (the
        backoff step of the refusal that asks): the loops refused together close them once.
        Those in use close as they are given back, so that no command under way is cut."""
        now = self._clock()
        self._still_demoted(now)
        if now < self._reconnect_after:
            return
        self._reconnect_after = now + wait
        first, last, reconnections, told = self._readonly
        self._readonly = (first, last, reconnections + 1, told)
        pool = self.client.connection_pool
        with contextlib.suppress(*RETRYABLE):
            # redis-py 7.0 and later (pyproject pins it); the method has no annotations.
            await pool.update_active_connections_for_reconnect()  # type: ignore[no-untyped-call]
            await pool.disconnect(inuse_connections=False)

    def _still_demoted(self, now: float) -> None:
        """Note a READONLY refusal at ``now``: one going on for ``_READ_REPLICA_SECONDS``
        through reconnections comes of a read replica, told once while the refusals go on (none
        for ``refusal_seconds`` ends them)."""
        first, last, reconnections, told = self._readonly
        if now - last > self.refusal_seconds:
            first, reconnections, told = now, 0, False
        if not told and reconnections and now - first >= _READ_REPLICA_SECONDS:
            told = True
            _logger.warning(
                "Redis at %s has refused the bridge's writes READONLY for %d s through %d"
                " reconnection(s): EXESDB_BUS names a read replica (or a name that a failover"
                " did not move to the new primary); point EXESDB_BUS at the primary, or at a"
                " name that leads to it through a failover (a Sentinel-managed Service, a managed"
                " Redis's primary endpoint): until then the bridge writes nothing there (its"
                " frames wait in its buffer and spool, /readyz answers 503), and reconnects at"
                " most once every %g s",
                safe_url(self.url),
                now - first,
                reconnections,
                self.backoff.cap,
            )
        self._readonly = (first, now, reconnections, told)

    async def keep_running(self, name: str, stage: Callable[[], Awaitable[None]]) -> None:
        """Run one background stage; a bug in it is logged and counted, and the stage restarts."""
        while not self.stopping.is_set():
            try:
                await stage()
            except asyncio.CancelledError:
                raise
            except Exception:
                if _cancel_requested():
                    raise asyncio.CancelledError from None
                self.stage_errors += 1
                _logger.exception("Redis bus stage %s failed; restarting it", name)
                await self.pause(self._restart_seconds)

    @contextlib.contextmanager
    def boundary(self, doing: str, *, work: str | None = None) -> Iterator[None]:
        """Turn a Redis failure inside the block into ``TransportError`` (saying what was
        being done, and where), for a caller outside the transport. A refusal (an ACL user
        without a rule) is told as the loops' are, until that same work gets through: its
        caller may only log it, and a lease never taken up for it would look ready. ``work``
        names that work when ``doing`` varies (a claim names its key, which the next claim may
        not share): its next success ends the refusal, not the next of the same key."""
        owner = ("boundary", doing if work is None else work)
        try:
            yield
        except RETRYABLE as exc:
            files = None if self.refused_aside(exc, owner) else self._tls_files(exc)
            why = reason(exc) if files is None else f"{_TLS_FILE_BAD}: {files}"
            raise TransportError(f"Redis at {safe_url(self.url)} could not {doing}: {why}") from exc
        self.taken_aside(owner)

    def _tls_files(self, exc: BaseException) -> str | None:
        """What keeps redis-py from loading the TLS files the URL names, when something does
        (``tls_file_problems``) and ``exc`` may come of it, else None. Asked at each failure
        but the network's: the files were fine at start, and their words (``No such file or
        directory``) would read as Redis's. Not once the client's pool has loaded them: its
        connections read them no more, so the files as they are now (a rotation waiting) are
        not why they fail."""
        pool = self.client.connection_pool
        if isinstance(pool, _OneTLSContextPool) and pool.tls_loaded:
            return None
        cause: BaseException | None = exc
        seen = set()
        while cause is not None and id(cause) not in seen:
            if isinstance(cause, _NETWORK_ERRORS):
                return None  # the network's: the files are not read (a CA bundle takes ms)
            seen.add(id(cause))
            cause = cause.__cause__ or cause.__context__
        problems = tls_file_problems(self.url)
        return redact_urls("; ".join(problems)) if problems else None


def redis_client(url: str, *, block_ms: int, timeout_ms: int | None = None) -> Redis:
    """The transport's client for ``url``, whose blocking reads wait up to ``block_ms`` and
    whose commands wait up to ``timeout_ms`` for an answer (the socket timeout, above
    ``block_ms``; None: 5 s above it); it sets the options of ``OWN_OPTIONS`` (``EXESDB_BUS``
    may not)."""
    return Redis.from_pool(redis_pool(url, block_ms=block_ms, timeout_ms=timeout_ms))


def redis_pool(
    url: str, *, block_ms: int, timeout_ms: int | None = None, load_tls: bool = False
) -> ConnectionPool:
    """The connection pool of ``redis_client(url, block_ms=block_ms, timeout_ms=timeout_ms)``: a
    new one loads the TLS files ``url`` names anew, once, and its connections keep them
    (``_OneTLSContextPool``). ``load_tls``: load them now (OSError or ssl.SSLError when they do
    not load), not as its first connection opens."""
    pool = _OneTLSContextPool.from_url(
        url,
        socket_connect_timeout=_CONNECT_SECONDS,
        socket_timeout=_answer_seconds(block_ms, timeout_ms),
        retry=Retry(NoBackoff(), 0),  # reconnection is ours, with backoff and readiness
        health_check_interval=10,
        decode_responses=False,  # the default, said here: entries are verified as the bytes signed
    )
    if load_tls:
        pool.load_tls()
    return pool


class _OneTLSContextPool(ConnectionPool):
    """A pool whose TLS connections share one TLS context, loaded from the files once.

    redis-py loads the TLS files as each new connection of a pool first opens: one opened
    while a file is half-written (a rotation under way, a certificate written before its key)
    would fail, and the bus would turn not ready until the file is whole. Here the first load
    that succeeds is every connection's, until ``TLSRotation`` gives the client a new pool.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._tls: RedisSSLContext | None = None  # built as it is first asked for, kept after

    def make_connection(self) -> AbstractConnection:
        connection: AbstractConnection = super().make_connection()  # type: ignore[no-untyped-call]
        if isinstance(connection, SSLConnection):
            if self._tls is None:
                self._tls = connection.ssl_context  # its settings are every connection's
            connection.ssl_context = self._tls
        return connection

    @property
    def tls_loaded(self) -> bool:
        """Whether its TLS context was loaded: its connections read the files no more."""
        return self._tls is not None and self._tls.context is not None

    def load_tls(self) -> None:
        """Load the TLS files now, if not yet loaded (OSError or ssl.SSLError when they do not
        load)."""
        if self._tls is None:
            self.make_connection()  # never opened: only for the context it shares
        if self._tls is not None:
            self._tls.get()


def command_seconds(block_ms: int, timeout_ms: int | None = None) -> float:
    """The longest a command of a client made by ``redis_client`` may last, connecting
    included, when blocking reads wait up to ``block_ms`` and answers up to ``timeout_ms``:
    then it has an answer or failed."""
    return _CONNECT_SECONDS + _answer_seconds(block_ms, timeout_ms)


def _answer_seconds(block_ms: int, timeout_ms: int | None) -> float:
    """How long a command waits for Redis's answer (the client's socket timeout): ``timeout_ms``
    (``EXESDB_REDIS_TIMEOUT_MS``), or by default ``_ANSWER_MARGIN_SECONDS`` above the blocking
    reads' ``block_ms``, so a blocked read is not taken for a dead server."""
    if timeout_ms is None:
        return block_ms / 1000 + _ANSWER_MARGIN_SECONDS
    return timeout_ms / 1000


def linger(read: int, batch: int) -> float:
    """How long a reader waits before its next read, having read ``read`` entries of at most
    ``batch``: a moment after a small read, none after a large one (it may be behind)."""
    return _LINGER_SECONDS if read < batch // 4 else 0.0


def _as_sent(response: Any, **kwargs: Any) -> Any:
    return response


async def _either(first: asyncio.Event, second: asyncio.Event) -> None:
    """Wait until ``first`` or ``second`` is set."""
    waits = [asyncio.ensure_future(event.wait()) for event in (first, second)]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(*waits)


def _cancel_requested() -> bool:
    """True when this task was asked to stop but the request got lost on the way: redis-py
    may replace a cancellation with its own error (e.g. a timeout while it closes a TLS
    connection), and a loop that took that for a Redis failure would never stop."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def temporary(exc: ResponseError) -> bool:
    """True for a refusal that may clear by itself (retry), False for one that will not."""
    if isinstance(exc, (OutOfMemoryError, ReadOnlyError)):
        return True
    return _code(exc) in _TEMPORARY_REPLIES


def _demoted(exc: BaseException) -> bool:
    """True for a READONLY refusal, or a blocked read that Redis cut short as it turned into a
    replica (``UNBLOCKED … (master -> replica?)``): the primary the client is connected to
    was demoted."""
    if isinstance(exc, ReadOnlyError):
        return True
    if not isinstance(exc, ResponseError):
        return False
    code = _code(exc)
    return code == "READONLY" or (code == "UNBLOCKED" and _TURNED_REPLICA in str(exc))


def script_named(exc: ResponseError, script: str) -> ResponseError:
    """``exc`` with ``script`` (what the script is for and the commands it runs) added to
    Redis's words when the ACL refused the script one of its commands or keys, which Redis's
    words do not name (``… can't run this command or subcommand script: <sha>…``); else
    ``exc``."""
    if _SCRIPT_DENIED not in str(exc):
        return exc
    return ResponseError(f"{str(exc).rstrip('.')} ({script})", status_code=exc.status_code)


def _refusal(exc: BaseException) -> str | None:
    """What a failure says after "Redis at <url> " when Redis answered it with a refusal
    (the credentials, or a command), with what to do about an ACL's; None when Redis could
    not be reached."""
    if isinstance(exc, (AuthenticationError, AuthorizationError)):
        noauth = getattr(exc, "status_code", None) == "NOAUTH"
        hint = _NOAUTH_HINT if noauth else _CREDENTIALS_HINT
        return f"refuses the bridge's credentials: {reason(exc)} ({hint})"
    if not isinstance(exc, ResponseError) and getattr(exc, "status_code", None) is None:
        return None  # no answer from Redis (a reply's error carries its code: LOADING, ERR)
    said = f"refuses the bridge's commands: {reason(exc)}"
    words = _pipeline_error(exc)[1]
    if isinstance(exc, NoPermissionError) or _SCRIPT_DENIED in words or _MULTI_DENIED in words:
        said += f" ({_PERMISSIONS_HINT})"
    elif _DATABASE_REFUSED in words:
        said += f" ({_DATABASE_HINT})"
    return said


def _alike(said: str) -> str:
    """A refusal's words without the script they name (``… script: <sha1>, on
    @user_script:<line>``): Redis refusing each of the bridge's scripts and its other commands
    the same (``OOM``) is one refusal, warned of once."""
    return _SCRIPT_NAMED.sub("", said)


def _unreachable(exc: BaseException, *, tls: bool, answered: bool) -> str:
    """Why Redis could not be reached, with what to do when its TLS certificate's signer is
    not trusted, and, before Redis first ``answered`` on the URL, when a ``tls`` connection
    timed out (a Redis without TLS), nothing listened at the port or the host is unknown (a
    Redis that answered there before is restarting: no hint)."""
    why = reason(exc)
    if _UNTRUSTED in why and any(words in why for words in _UNTRUSTED_SIGNER):
        return f"{why} ({_UNTRUSTED_HINT})"
    if answered:
        return why
    if tls and isinstance(exc, RedisTimeout):
        return f"{why} ({_PLAIN_REDIS_HINT})"
    if _refused(exc.__cause__):
        return f"{why} ({_NOTHING_LISTENS_HINT})"
    if isinstance(exc.__cause__, socket.gaierror) and exc.__cause__.errno in _NO_SUCH_NAME:
        return f"{why} ({_NO_SUCH_HOST_HINT})"
    return why


def _refused(cause: BaseException | None) -> bool:
    """Whether connecting failed as nothing listened: refused, or, for a host of several
    addresses (``localhost``: ``::1`` and ``127.0.0.1``), refused at one and refused or not
    reachable from here at each other, which asyncio tells in one OSError naming each errno."""
    if isinstance(cause, ConnectionRefusedError):
        return True
    # Only asyncio's combined one: a plain OSError without an errno (a subclass is one failure).
    if not isinstance(cause, OSError) or type(cause) is not OSError or cause.errno is not None:
        return False
    errnos = {int(number) for number in _ERRNO_SAID.findall(str(cause))}
    return errno.ECONNREFUSED in errnos and errnos <= _NOTHING_THERE


def reason(exc: BaseException) -> str:
    """Redis's words for a failure on one line: with the error code redis-py takes off
    (``NOPERM``, ``WRONGPASS``), and for a command of a pipeline its name (not its arguments,
    which may be a signed entry) unless the words name it; the arguments Redis echoes of an
    unknown command are left out (``with args beginning with: …``)."""
    command, text = _pipeline_error(exc)
    echoed = text.find(_ARGS_ECHOED)
    if echoed >= 0:
        text = f"{text[: echoed + len(_ARGS_ECHOED)]} …"
    code = getattr(exc, "status_code", None)
    if isinstance(code, str) and code and not text.startswith(code):
        text = f"{code} {text}"
    text = " ".join(text.split()).rstrip(".")  # redis-py ends its own with one
    if command and f"'{command.lower()}'" not in text.lower():
        text += f" ({command})"
    return text or type(exc).__name__


def _pipeline_error(exc: BaseException) -> tuple[str | None, str]:
    """The command of a pipeline a failure came from (its name, None for a command on its
    own), and the failure's words without redis-py's account of the pipeline."""
    text = str(exc)
    found = _PIPELINE.fullmatch(text)
    if found is None:
        return None, text
    error = found["error"]
    with contextlib.suppress(ValueError, SyntaxError):
        args = ast.literal_eval(error)  # the asyncio pipeline's tuple of the error's arguments
        if isinstance(args, tuple) and args and isinstance(args[0], str):
            error = args[0]
    return found["command"].split(" ", 1)[0].upper() or None, error


def _code(exc: BaseException) -> str:
    """A refusal's error code (``OOM``, ``NOPERM``): the one redis-py took off, or its first
    word."""
    code = getattr(exc, "status_code", None)
    if isinstance(code, str) and code:
        return code
    return _pipeline_error(exc)[1].split(" ", 1)[0]
