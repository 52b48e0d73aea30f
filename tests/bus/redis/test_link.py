"""The Redis transport's one retry path: what is retried, how failures are recorded, waited out."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from bridge.backoff import Backoff
from bridge.bus.redis.link import OWN_OPTIONS, Link, redis_client, script_named, temporary
from bridge.errors import TransportError
from tests.support import ManualClock, pem_files, refusing_port

URL = "redis://:hunter2@127.0.0.1:1/0"


@pytest.fixture
async def link() -> AsyncIterator[Link]:
    """A link whose backoff is 1 ms, 2 ms, 4 ms (no jitter): failures are waited out quickly."""
    client = Redis.from_url(URL)
    yield Link(URL, client, Backoff(base=0.001, cap=0.004, jitter=0.0), restart_seconds=0.001)
    await client.aclose()


@pytest.mark.parametrize(
    ("refusal", "retried"),
    [
        (OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), True),
        (ReadOnlyError("You can't write against a read only replica."), True),
        (ResponseError("MISCONF Redis is configured to save RDB snapshots"), True),
        (ResponseError("LOADING Redis is loading the dataset in memory"), True),
        (ResponseError("BUSY Redis is busy running a script."), True),
        (ResponseError("TRYAGAIN Multiple keys request during rehashing of slot"), True),
        (ResponseError("MASTERDOWN Link with MASTER is down"), True),
        (ResponseError("NOREPLICAS Not enough good replicas to write."), True),
        (ResponseError("CLUSTERDOWN The cluster is down"), True),
        (ResponseError("Command # 2 (XADD k * e b) of pipeline caused error: OOM command"), True),
        (
            ResponseError(
                "Command # 1 (EVALSHA x 1 k) of pipeline caused error: ('MISCONF Redis is"
                " configured to save RDB snapshots',)"
            ),
            True,
        ),
        (ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), False),
        (ResponseError("NOPERM No permissions to access a key"), False),
        (ResponseError("ERR unknown command 'XAUTOCLAIM'"), False),
    ],
    ids=lambda value: value if isinstance(value, bool) else str(value).split(" ", 1)[0],
)
def test_only_refusals_that_may_clear_count_as_temporary(
    refusal: ResponseError, retried: bool
) -> None:
    """Memory full, read-only, loading and the like may clear (retry); other refusals do not."""
    assert temporary(refusal) is retried


_SCRIPT_REFUSED = (
    "The user executing the script can't run this command or subcommand script: 9136fcf5, on"
    " @user_script:1."
)


def test_a_script_the_acl_refused_is_named_in_the_refusal_told(
    link: Link, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis's words for a script's refused command do not say which: the refusal told names
    the script and its commands, with the code and the hint about the rules."""
    named = script_named(ResponseError(_SCRIPT_REFUSED, status_code="ERR"), "renewal: PEXPIRE")
    with caplog.at_level("WARNING", logger="bridge.bus.redis.link"):
        link.down(named, 1)
    said = caplog.records[0].getMessage()
    assert f"commands: ERR {_SCRIPT_REFUSED[:-1]} (renewal: PEXPIRE) (give the bridge's" in said


def test_other_refusals_of_a_script_are_left_as_redis_said_them() -> None:
    """A script's refusal other than the ACL's (a wrong type, memory full) is not renamed."""
    refused = ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
    assert script_named(refused, "renewal: PEXPIRE") is refused


@pytest.mark.parametrize(("failures", "delay"), [(1, 0.001), (2, 0.002), (3, 0.004), (30, 0.004)])
def test_failures_in_a_row_wait_longer_up_to_the_cap(
    link: Link, failures: int, delay: float
) -> None:
    """The wait after a failure doubles with each one in a row, up to the backoff's cap."""
    assert link.down(RedisConnectionError("refused"), failures) == pytest.approx(delay)


def test_a_reason_ending_in_a_full_stop_reads_as_one_sentence(
    link: Link, caplog: pytest.LogCaptureFixture
) -> None:
    """redis-py ends its reasons with a full stop: the warning drops it before its own "; "."""
    with caplog.at_level("WARNING", logger="bridge.bus.redis.link"):
        link.down(
            RedisConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."), 1
        )
    assert caplog.records[0].getMessage().endswith("Connection refused; retrying with backoff")


def test_loops_failing_alike_are_told_once_and_a_new_reason_again(
    link: Link, caplog: pytest.LogCaptureFixture
) -> None:
    """The loops sharing the link fail together: the same reason is one warning (the URL's
    password redacted), another reason or a failure after reconnecting is one more."""
    with caplog.at_level("WARNING", logger="bridge.bus.redis.link"):
        link.down(RedisConnectionError("Error 111 connecting"), 1)  # the reader
        link.down(RedisConnectionError("Error 111 connecting"), 1)  # the writer, alike
        link.down(RedisConnectionError("Error 111 connecting"), 2)
        link.down(RedisConnectionError("Timeout connecting"), 1)
        link.up()
        link.down(RedisConnectionError("Error 111 connecting"), 1)
    where = "Redis at redis://:<redacted>@127.0.0.1:1/… is unreachable:"
    assert [record.getMessage() for record in caplog.records] == [
        f"{where} Error 111 connecting; retrying with backoff",
        f"{where} Timeout connecting; retrying with backoff",
        f"{where} Error 111 connecting; retrying with backoff",
    ]


PERMISSIONS = (
    "give the bridge's Redis user the rules of docs/redis.md#a-redis-user-for-the-bridge of"
    " the source repository, https://github.com/exesdb/exesdb-bridge; ACL LOG names what was"
    " refused"
)
CREDENTIALS = "the user name and password in EXESDB_BUS must be those of a Redis user that is on"


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (
            RedisConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."),
            "is unreachable: Error 111 connecting to 127.0.0.1:1. Connection refused",
        ),
        (TimeoutError(), "is unreachable: TimeoutError"),
        (
            AuthenticationError(
                "invalid username-password pair or user is disabled.", status_code="WRONGPASS"
            ),
            "refuses the bridge's credentials: WRONGPASS invalid username-password pair or"
            f" user is disabled ({CREDENTIALS})",
        ),
        (
            AuthenticationError("Authentication required.", status_code="NOAUTH"),
            # No password in the URL: where it goes, not that it is wrong.
            "refuses the bridge's credentials: NOAUTH Authentication required (Redis asks for a"
            " password and EXESDB_BUS gives none: write it in the URL before the host, after a"
            " colon and followed by @ (a Redis user's name before that colon),"
            " docs/redis.md#settings of the source repository,"
            " https://github.com/exesdb/exesdb-bridge)",
        ),
        (
            NoPermissionError(
                "this user has no permissions to run the 'xread' command", status_code="NOPERM"
            ),
            "refuses the bridge's commands: NOPERM this user has no permissions to run the"
            f" 'xread' command ({PERMISSIONS})",
        ),
        (
            NoPermissionError(
                "Command # 1 (XREVRANGE exesdb:bus:x + - COUNT 1) of pipeline caused error:"
                " ('this user has no permissions to access one of the keys used as arguments',)",
                status_code="NOPERM",
            ),
            "refuses the bridge's commands: NOPERM this user has no permissions to access one"
            f" of the keys used as arguments (XREVRANGE) ({PERMISSIONS})",
        ),
        (
            ResponseError(
                "The user executing the script can't run this command or subcommand script:"
                " 9136fc, on @user_script:1.",
                status_code="ERR",
            ),
            "refuses the bridge's commands: ERR The user executing the script can't run this"
            f" command or subcommand script: 9136fc, on @user_script:1 ({PERMISSIONS})",
        ),
        (
            # MULTI refused by the ACL: redis-py raises EXEC's error in its place.
            ResponseError("EXEC without MULTI", status_code="ERR"),
            f"refuses the bridge's commands: ERR EXEC without MULTI ({PERMISSIONS})",
        ),
        (
            ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
            "refuses the bridge's commands: WRONGTYPE Operation against a key holding the wrong"
            " kind of value",
        ),
        (
            ResponseError(
                "unknown command 'XADD2', with args beginning with: 'exesdb:bus:x' '*'"
                " 'e' '{\"signed\": \"body\"}' ",
                status_code="ERR",
            ),
            "refuses the bridge's commands: ERR unknown command 'XADD2', with args beginning"
            " with: …",
        ),
    ],
    ids=[
        "refused",
        "timeout",
        "wrongpass",
        "noauth",
        "noperm",
        "noperm-key",
        "script",
        "multi",
        "other",
        "unknown-command",
    ],
)
def test_trouble_tells_unreachable_from_refused(
    link: Link, failure: BaseException, said: str
) -> None:
    """A Redis that cannot be reached is unreachable; one that answers refuses the
    credentials (with what they must be) or the bridge's commands (with where an ACL user's
    rules are, for a permission refused), in Redis's words with their error code (not the
    arguments an unknown command's echoes: part of a signed entry)."""
    link.down(failure, 1)
    assert link.trouble() == said


def test_a_refusal_is_not_hidden_by_another_loop_getting_through(
    link: Link, caplog: pytest.LogCaptureFixture
) -> None:
    """A command refused in one loop keeps the link in trouble while other loops succeed,
    and Redis counts as reachable; the refused loop's own success ends it, said once."""
    reader, lease = object(), object()
    refused = NoPermissionError(
        "this user has no permissions to run the 'xread' command", status_code="NOPERM"
    )
    said = (
        "refuses the bridge's commands: NOPERM this user has no permissions to run the 'xread'"
        f" command ({PERMISSIONS})"
    )
    with caplog.at_level("INFO", logger="bridge.bus.redis.link"):
        link.up(lease)
        for failures in (1, 2, 3):
            link.down(refused, failures, owner=reader)
            link.up(lease)
            assert (link.connected, link.trouble()) == (True, said)
        link.up(reader)
    assert link.trouble() is None
    assert link.connection_errors == 3
    url = "redis://:<redacted>@127.0.0.1:1/…"
    assert [record.getMessage() for record in caplog.records] == [
        f"connected to Redis at {url}",
        f"Redis at {url} {said}; retrying with backoff",
        f"Redis at {url} takes the bridge's commands again",
    ]


def test_a_refusal_aged_out_is_not_said_to_end_again(caplog: pytest.LogCaptureFixture) -> None:
    """A loop refused long ago (its refusal no longer told) whose next try succeeds logs
    nothing: "takes the bridge's commands again" is said only of a refusal still told."""
    clock = ManualClock()
    link = Link(URL, Redis.from_url(URL), Backoff(base=0.1, cap=5.0), clock=clock)
    link.up()
    link.down(NoPermissionError("no permissions", status_code="NOPERM"), 1, owner="lease")
    clock.advance(link.refusal_seconds + 0.1)
    caplog.clear()  # the refusal's warning
    with caplog.at_level("INFO", logger="bridge.bus.redis.link"):
        link.up("lease")
    assert caplog.records == []


def test_a_loop_refused_is_refused_and_redis_not_usable_while_others_get_through() -> None:
    """``refused(owner)`` is that loop's own refusal while it is told; ``usable`` is False while
    any refusal is told (or Redis is unreachable), though ``connected``: Redis answers."""
    clock = ManualClock()
    link = Link(URL, Redis.from_url(URL), Backoff(base=0.1, cap=5.0), clock=clock)
    assert (link.connected, link.usable) == (False, False)
    link.up("writer")
    assert (link.connected, link.usable, link.refused("lease")) == (True, True, False)
    link.down(NoPermissionError("no permissions", status_code="NOPERM"), 1, owner="lease")
    link.up("writer")
    assert (link.connected, link.usable) == (True, False)
    assert (link.refused("lease"), link.refused("writer")) == (True, False)
    clock.advance(link.refusal_seconds + 0.1)  # the lease loop stopped trying
    assert (link.usable, link.refused("lease")) == (True, False)
    link.down(NoPermissionError("no permissions", status_code="NOPERM"), 1, owner="lease")
    link.up("lease")
    assert (link.usable, link.refused("lease")) == (True, False)
    link.down(RedisConnectionError("Connection refused"), 1, owner="writer")
    assert (link.connected, link.usable) == (False, False)


def test_a_refusal_is_told_for_twice_the_cap_and_one_socket_timeout() -> None:
    """A refusal is told until twice the backoff's cap and the client's socket timeout (the
    block time and its margin) have passed without it: 16 s with the transport's defaults,
    as docs/redis.md says."""
    link = Link(URL, Redis.from_url(URL), Backoff(base=0.1, cap=5.0), block_ms=1_000)
    assert link.refusal_seconds == 16.0
    timeout = redis_client(URL, block_ms=1_000).connection_pool.connection_kwargs
    assert link.refusal_seconds == 2 * 5.0 + timeout["socket_timeout"]


def test_a_refusal_no_longer_made_ends_in_time() -> None:
    """A refused loop that stops trying (it waits for the lease) stops being told once it has
    not been refused for ``refusal_seconds``; whichever of Redis unreachable and a refusal
    came last is told."""
    clock = ManualClock()
    link = Link(URL, Redis.from_url(URL), Backoff(base=0.1, cap=5.0), clock=clock)
    link.up()
    link.down(NoPermissionError("no permissions", status_code="NOPERM"), 1, owner="reader")
    clock.advance(link.refusal_seconds)
    assert link.trouble() == f"refuses the bridge's commands: NOPERM no permissions ({PERMISSIONS})"
    clock.advance(0.1)
    assert link.trouble() is None
    link.down(NoPermissionError("no permissions", status_code="NOPERM"), 1, owner="reader")
    link.down(RedisConnectionError("Connection refused"), 1, owner="writer")
    assert link.trouble() == "is unreachable: Connection refused"
    clock.advance(0.1)  # Redis back, loading its data: it answers, and refuses for now
    loading = "Redis is loading the dataset in memory"  # redis-py's error for it, as it makes it
    link.down(BusyLoadingError(loading, status_code="LOADING"), 1)
    assert link.trouble() == f"refuses the bridge's commands: LOADING {loading}"


def test_a_frame_refused_for_good_is_told_until_no_frame_is_refused_for_a_while() -> None:
    """A frame Redis refused (dropped, not retried: an ACL without XADD) is told while other
    commands get through, until ``refusal_seconds`` after the last frame refused."""
    clock = ManualClock()
    link = Link(URL, Redis.from_url(URL), Backoff(base=0.1, cap=5.0), clock=clock)
    link.up()
    link.refused_for_good(ResponseError("ERR The user executing the script can't run this"))
    link.up(object())
    said = "refuses the bridge's commands: ERR The user executing the script can't run this"
    said += f" ({PERMISSIONS})"
    assert link.trouble() == said
    clock.advance(link.refusal_seconds + 0.1)
    assert link.trouble() is None


async def test_a_loop_refused_until_its_acl_is_fixed_recovers(link: Link) -> None:
    """A step refused (NOPERM) again and again is retried, counted and told; once it
    succeeds the link is out of trouble, with nothing restarted."""
    refused = NoPermissionError("no permissions to run the 'xread' command", status_code="NOPERM")
    owner = object()
    told: list[tuple[str | None, bool, bool]] = []

    async def after_its_success() -> float:
        # The loop is still running: its success, not its end, ended the refusal.
        told.append((link.trouble(), link.refused(owner), link.usable))
        link.stopping.set()
        return 0.0

    step = Script(link, refused, refused, refused, 0.0, after_its_success)
    await asyncio.wait_for(link.keep_trying(step, owner=owner), 5)
    assert (step.calls, link.connection_errors) == (5, 3)
    assert told == [(None, False, True)]


class Script:
    """A step that raises or returns each outcome in turn, and stops the link after the last."""

    def __init__(
        self, link: Link, *outcomes: BaseException | float | Callable[[], Awaitable[float]] | None
    ) -> None:
        self.link = link
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self) -> float | None:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if not self.outcomes:
            self.link.stopping.set()
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(outcome):
            return await outcome()
        return outcome


@pytest.mark.parametrize(
    "failure",
    [RedisConnectionError("Connection refused"), OSError("unreachable"), TimeoutError()],
    ids=["connection", "os", "timeout"],
)
async def test_a_failed_step_is_recorded_and_a_later_success_recovers(
    link: Link, failure: BaseException
) -> None:
    """Each failure counts, marks Redis unreachable with its reason, and is heard of by
    ``failed``; the next success marks Redis reachable again."""
    heard: list[bool] = []
    step = Script(link, failure, failure, 0.0)
    await asyncio.wait_for(link.keep_trying(step, failed=lambda: heard.append(True)), 5)
    assert (step.calls, link.connection_errors, heard) == (3, 2, [True, True])
    assert link.connected
    assert link.error is None


async def test_the_reason_of_the_last_failure_is_kept_for_readiness(link: Link) -> None:
    """While Redis fails, ``error`` says why (never the password in the URL)."""
    step = Script(link, 0.0, RedisConnectionError("Connection refused"))
    await asyncio.wait_for(link.keep_trying(step), 5)
    assert not link.connected
    assert link.error == "Connection refused"


async def test_a_step_with_nothing_to_do_leaves_the_state_alone(link: Link) -> None:
    """A step that did not get to Redis (None) marks nothing: a failure stays recorded."""
    step = Script(link, RedisConnectionError("refused"), None)
    await asyncio.wait_for(link.keep_trying(step), 5)
    assert not link.connected


@pytest.mark.parametrize(("handled", "errors"), [(True, 0), (False, 1)])
async def test_a_refusal_the_loop_handles_is_not_a_failure(
    link: Link, handled: bool, errors: int
) -> None:
    """``refused`` may take a refusal as dealt with (stepped again at once, nothing recorded)."""
    seen: list[str] = []

    def refused(exc: ResponseError) -> bool:
        seen.append(str(exc))
        return handled

    step = Script(link, ResponseError("NOGROUP No such consumer group"), 0.0)
    await asyncio.wait_for(link.keep_trying(step, refused=refused), 5)
    assert seen == ["NOGROUP No such consumer group"]
    assert link.connection_errors == errors


async def test_a_bug_in_a_stage_is_counted_and_the_stage_restarts(link: Link) -> None:
    """An unexpected error leaves ``keep_trying``; ``keep_running`` counts it and runs the stage
    again."""
    runs: list[int] = []

    async def stage() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise ValueError("a bug")
        link.stopping.set()

    await asyncio.wait_for(link.keep_running("test", stage), 5)
    assert (runs, link.stage_errors) == ([0, 1], 1)


async def test_a_cancellation_turned_into_a_redis_error_still_stops_the_loop(link: Link) -> None:
    """A loop cancelled while redis-py turns the cancellation into its own error (as it does
    when closing a connection times out) stops instead of retrying forever."""
    started = asyncio.Event()

    async def step() -> float:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RedisConnectionError("Timed out closing connection") from None
        return 0.0

    loop = asyncio.create_task(link.keep_running("test", lambda: link.keep_trying(step)))
    await asyncio.wait_for(started.wait(), 5)
    loop.cancel()
    await asyncio.wait({loop}, timeout=5)
    if not loop.done():  # the failure this test looks for: let the loop go before failing
        link.stopping.set()
        loop.cancel()
        await asyncio.wait({loop}, timeout=5)
        pytest.fail("the cancelled loop kept retrying")
    assert loop.cancelled()
    assert link.connection_errors == 0


async def test_a_failure_at_the_boundary_becomes_a_transport_error(link: Link) -> None:
    """What leaves the transport is a TransportError naming what failed, caused by the Redis
    error, with the password in the URL redacted."""
    cause = RedisConnectionError("Connection refused")
    with pytest.raises(TransportError) as caught, link.boundary("swap k"):
        raise cause
    assert caught.value.__cause__ is cause
    assert "could not swap k: Connection refused" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_a_refusal_at_the_boundary_is_told_until_that_work_gets_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A command refused at the boundary (a lease's take-up on a Redis user without ``+scan``)
    is counted, warned of once and told by ``trouble`` while the loops get through, until that
    same work succeeds; Redis unreachable there is left to the loops to tell."""
    link = Link(URL, Redis.from_url(URL), Backoff(base=0.1, cap=5.0), clock=ManualClock())
    link.up()
    refused = NoPermissionError("no permissions to run the 'scan' command", status_code="NOPERM")
    for _ in range(2):
        with pytest.raises(TransportError), link.boundary("take over the notes"):
            raise refused
        link.up(object())  # a loop's success does not end it
    said = "refuses the bridge's commands: NOPERM no permissions to run the 'scan' command"
    assert link.trouble() == f"{said} ({PERMISSIONS})"
    assert (link.usable, link.connection_errors) == (False, 2)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == [f"Redis at redis://:<redacted>@127.0.0.1:1/… {said} ({PERMISSIONS})"]
    with link.boundary("take over the notes"):
        pass
    assert (link.trouble(), link.usable) == (None, True)
    with pytest.raises(TransportError), link.boundary("swap k"):
        raise RedisConnectionError("Connection refused")
    assert (link.trouble(), link.connection_errors) == (None, 2)


async def test_a_tls_file_gone_since_start_is_told_as_such_not_as_redis_unreachable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A CA file EXESDB_BUS names that goes after start (a rotation half done) fails each new
    connection before Redis is tried: the retries, readiness and the boundary say the file and
    what is wrong with it, not Redis unreachable; while it loads, a failure is Redis's."""
    ca = pem_files(tmp_path)["ca.pem"]
    # A port held refusing: 1, like the other tests', was once found answering (not TLS).
    with refusing_port() as port:
        await _told_the_file_gone(ca, port, caplog)


async def _told_the_file_gone(ca: str, port: int, caplog: pytest.LogCaptureFixture) -> None:
    """The test above, against a port that refuses connections."""
    url = f"rediss://:hunter2@127.0.0.1:{port}/0?ssl_ca_certs={ca}"

    async def failure() -> BaseException:
        """How a PING over a new connection (which loads the TLS files anew) fails."""
        fresh = Redis.from_url(url, socket_connect_timeout=2)
        try:
            with pytest.raises(RedisConnectionError) as failed:
                await fresh.ping()
        finally:
            await fresh.aclose()
        return failed.value

    client = Redis.from_url(url)
    link = Link(url, client, Backoff(base=0.001, cap=0.004, jitter=0.0))
    try:
        with caplog.at_level("WARNING", logger="bridge.bus.redis.link"):
            link.down(await failure(), 1)
            os.unlink(ca)
            link.down(await failure(), 1)
            with pytest.raises(TransportError) as told, link.boundary("read the notes"):
                raise await failure()
    finally:
        await client.aclose()
    gone = (
        f"a TLS file EXESDB_BUS names does not load: query option 'ssl_ca_certs': cannot read"
        f" {ca}: No such file or directory"
    )
    where = f"Redis at rediss://:<redacted>@127.0.0.1:{port}/…"
    warned = [record.getMessage() for record in caplog.records]
    assert warned[0].startswith(f"{where} is unreachable: Error 111 connecting"), warned
    assert warned[1:] == [f"{where} is not connected: {gone}; retrying with backoff"]
    assert link.trouble() == f"is not connected: {gone}"
    assert str(told.value) == f"{where} could not read the notes: {gone}"


def test_a_timeout_given_is_the_socket_timeout_and_ages_the_refusals() -> None:
    """A command timeout given (``EXESDB_REDIS_TIMEOUT_MS``) is the client's socket timeout in
    place of the block time and its margin, and a refusal is told for twice the cap and it."""
    made = redis_client(URL, block_ms=1_000, timeout_ms=2_500).connection_pool.connection_kwargs
    assert made["socket_timeout"] == 2.5
    link = Link(URL, Redis.from_url(URL), Backoff(0.1, 5.0), block_ms=1_000, timeout_ms=2_500)
    assert link.refusal_seconds == 12.5


def test_every_option_the_transport_sets_itself_is_one_exesdb_bus_refuses() -> None:
    """The options redis_client adds to a URL's are all in OWN_OPTIONS, which EXESDB_BUS's query
    may not hold: one the transport sets that a URL could override without a word is caught."""
    made = redis_client(URL, block_ms=1_000).connection_pool.connection_kwargs
    plain = Redis.from_url(URL).connection_pool.connection_kwargs
    added = set(made) - set(plain)
    assert added == {
        "socket_timeout",
        "socket_connect_timeout",
        "retry",
        "health_check_interval",
        "decode_responses",
    }
    assert added <= set(OWN_OPTIONS)


async def _ping_failure(url: str) -> BaseException:
    """How redis-py's PING to ``url`` fails (a connection refused, a host unknown)."""
    client = Redis.from_url(url, socket_connect_timeout=2)
    try:
        with pytest.raises(RedisConnectionError) as failed:
            await client.ping()
    finally:
        await client.aclose()
    return failed.value


@pytest.mark.parametrize(
    ("host", "hint"),
    [
        (None, "nothing listens there: start Redis, or set EXESDB_BUS to where it listens"),
        ("nosuchhost.invalid", "no such host: check the host name in EXESDB_BUS"),
    ],
)
async def test_a_url_nothing_answers_at_says_what_to_do_until_redis_first_answers(
    link: Link, host: str | None, hint: str
) -> None:
    """redis-py's words for a refused connection ("Connect call failed") or an unknown host
    say nothing of what to do: before Redis first answered on the URL, the reason ends with a
    hint; once it answered there (a restart under way), the URL is right and none is added."""
    with refusing_port() as port:
        failure = await _ping_failure(f"redis://{host or '127.0.0.1'}:{port}/0")
    link.down(failure, 1)
    first = link.trouble()
    assert first is not None
    assert first.endswith(f" ({hint})"), first
    link.up()
    link.down(failure, 1)
    again = link.trouble()
    assert again is not None
    assert hint not in again, again


def _failed_from(cause: OSError, host: str = "localhost") -> RedisConnectionError:
    """redis-py's failure to connect to ``host`` as it raises it: its words, from ``cause``."""
    try:
        raise RedisConnectionError(f"Error {cause} connecting to {host}:6379.") from cause
    except RedisConnectionError as failure:
        return failure


# asyncio's words when every address of a host failed, each differently (create_connection):
# localhost on most systems is ::1 and 127.0.0.1.
_EVERY_ADDRESS_REFUSED = OSError(
    "Multiple exceptions: [Errno 111] Connect call failed ('::1', 6379, 0, 0),"
    " [Errno 111] Connect call failed ('127.0.0.1', 6379)"
)
_IPV6_UNUSABLE = OSError(
    "Multiple exceptions: [Errno 99] Cannot assign requested address,"
    " [Errno 111] Connect call failed ('127.0.0.1', 6379)"
)


@pytest.mark.parametrize(
    "cause",
    [_EVERY_ADDRESS_REFUSED, _IPV6_UNUSABLE],
    ids=["refused at ::1 and 127.0.0.1", "no IPv6, refused at 127.0.0.1"],
)
def test_a_host_refused_at_every_address_says_nothing_listens_there(
    link: Link, cause: OSError
) -> None:
    """A host of several addresses (localhost: ::1 and 127.0.0.1) refused at each, or refused
    at one and unreachable at the other, fails with asyncio's one OSError naming each errno, not
    a ConnectionRefusedError: told as nothing listening there too."""
    link.down(_failed_from(cause), 1)
    said = link.trouble()
    assert said is not None
    assert said.endswith(
        " (nothing listens there: start Redis, or set EXESDB_BUS to where it listens)"
    ), said


def test_a_host_failing_otherwise_at_one_address_gets_no_hint_that_nothing_listens(
    link: Link,
) -> None:
    """Refused at one address and timed out at another: something may listen there, behind a
    firewall; no hint is added."""
    cause = OSError(
        "Multiple exceptions: [Errno 110] Connect call failed ('10.0.0.7', 6379),"
        " [Errno 111] Connect call failed ('127.0.0.1', 6379)"
    )
    link.down(_failed_from(cause), 1)
    said = link.trouble()
    assert said is not None
    assert "nothing listens" not in said, said


def test_a_resolver_that_did_not_answer_is_not_told_as_no_such_host(link: Link) -> None:
    """A name the resolver could not look up now (EAI_AGAIN, "Temporary failure in name
    resolution": a DNS server down, a container's network not up yet) says nothing of the
    name: no "no such host" hint, which would send the reader to a host name that is right."""
    cause = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    link.down(_failed_from(cause, "redis"), 1)
    said = link.trouble()
    assert said is not None
    assert "Temporary failure in name resolution" in said, said
    assert "no such host" not in said, said
