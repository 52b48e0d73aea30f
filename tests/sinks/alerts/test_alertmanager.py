"""The alerts posted to Alertmanager: labels, endsAt while firing and once resolved; what a
wake posts."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bridge.httpclient.client import basic_auth
from bridge.sinks.alerts.alertmanager import AlertmanagerPoster, PostResult, alertmanager_alert
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.records import AlertState
from bridge.sinks.alerts.sources import AlertEvent
from bridge.sinks.alerts.thread import DbThread
from tests.sinks.alerts.helpers import T0, alert_bridge, system_alert
from tests.sinks.alerts.test_payload import record
from tests.support import ManualClock, async_wait_until


def test_firing_alert_ends_four_intervals_ahead() -> None:
    """A firing alert's endsAt is now + 4 intervals, so it lapses if the bridge stops posting."""
    posted = alertmanager_alert(record(), now=T0 + 10, interval=60, generator_url="http://b")
    assert posted["startsAt"] == "2027-01-15T08:00:00.000Z"
    assert posted["endsAt"] == "2027-01-15T08:04:10.000Z"
    assert posted["generatorURL"] == "http://b"


def test_resolved_alert_carries_its_real_end() -> None:
    """A resolved alert is posted with the time it ended."""
    resolved = record(state=AlertState.RESOLVED, ends_at=T0 + 30)
    posted = alertmanager_alert(resolved, now=T0 + 100, interval=60, generator_url="http://b")
    assert posted["endsAt"] == "2027-01-15T08:00:30.000Z"


def test_escalation_level_is_an_annotation_not_a_label() -> None:
    """Escalating does not change the label set, so Alertmanager sees the same alert."""
    posted = alertmanager_alert(record(level=2), now=T0, interval=60, generator_url="http://b")
    assert "escalation_level" not in posted["labels"]
    assert posted["annotations"]["escalation_level"] == "level2"
    assert posted["labels"]["alert_id"] == "a1"


def test_the_title_is_also_the_summary_annotation() -> None:
    """Alertmanager's convention (what ``amtool alert query`` shows as Summary): ``summary``
    carries the alert's title, beside ``title`` and ``description``."""
    posted = alertmanager_alert(record(), now=T0, interval=60, generator_url="http://b")
    assert posted["annotations"] == {
        "summary": "node n1 is down",
        "title": "node n1 is down",
        "description": "went silent",
        "escalation_level": "level1",
    }


class Receiver:
    """An HTTP server on a free loopback port recording each POSTed alert list."""

    def __init__(self, status: int = 200) -> None:
        self.posts: list[list[dict[str, Any]]] = []
        self.authorizations: list[str | None] = []
        self.tenants: list[str | None] = []
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.status = status

    async def start(self) -> Receiver:
        async def take(request: web.Request) -> web.Response:
            self.posts.append(await request.json())
            self.authorizations.append(request.headers.get("Authorization"))
            self.tenants.append(request.headers.get("X-Scope-OrgID"))
            return web.json_response({}, status=self.status)

        app = web.Application()
        app.router.add_post("/api/v2/alerts", take)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def firing_event(alert_id: str) -> AlertEvent:
    return AlertEvent(
        alert_id,
        "disk_full",
        "firing",
        "warning",
        "system",
        "n1",
        "t",
        "d",
        False,
        datetime.fromtimestamp(T0, UTC),
    )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A started Receiver answering 200 (a test may change its ``status``), stopped after."""
    started = await Receiver().start()
    yield started
    await started.stop()


@asynccontextmanager
async def poster_to(
    url: str, tmp_path: Path, **options: Any
) -> AsyncIterator[tuple[AlertmanagerPoster, Outbox, ManualClock]]:
    """A poster to ``url`` (not started) of a new outbox's alerts on a hand-moved clock, with
    ``options`` for AlertmanagerPoster; the poster, its database thread and the outbox are
    closed after."""
    outbox = Outbox.in_dir(tmp_path)
    db = DbThread()
    clock = ManualClock(T0)
    poster = AlertmanagerPoster(
        url,
        alerts=outbox.alerts,
        db=db,
        external_url=lambda: "http://b",
        timeout=5,
        clock=clock,
        **options,
    )
    try:
        yield poster, outbox, clock
    finally:
        await poster.aclose()
        db.close()
        outbox.close()


async def test_alerts_read_as_the_lease_went_are_not_posted(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A read of the alerts that returns after this replica gave the work-queue lease up (the
    outbox's disk hung meanwhile) posts nothing of them: the holder's posts are current, and
    these may fire again an alert it resolved since."""
    caplog.set_level(logging.INFO)
    holding = True
    entered, release = threading.Event(), threading.Event()
    async with poster_to(receiver.url, tmp_path, holding=lambda: holding) as (
        poster,
        outbox,
        clock,
    ):
        outbox.alerts.apply([firing_event("a1")], clock.now)
        current = outbox.alerts.current

        def hanging(*args: Any, **kwargs: Any) -> Any:
            """The outbox's read of the current alerts, hanging until released."""
            entered.set()
            release.wait(30)
            return current(*args, **kwargs)

        outbox.alerts.current = hanging  # type: ignore[method-assign]
        poster.start()
        await async_wait_until(entered.is_set, what="the read hanging")
        holding = False
        release.set()
        await async_wait_until(
            lambda: (
                receiver.posts
                or "posts left to the replica holding the work-queue lease" in caplog.text
            ),
            what="a post, or the poster standing by",
        )
    assert receiver.posts == []


async def test_a_wake_posts_only_changed_alerts_and_the_interval_posts_all(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Between full re-posts, a wake posts only the alerts changed since the last post."""
    async with poster_to(receiver.url, tmp_path) as (poster, outbox, clock):
        outbox.alerts.apply([firing_event(f"old{n}") for n in range(100)], clock.now - 10)
        poster.start()
        await async_wait_until(lambda: len(receiver.posts) == 1, what="the first, full post")
        clock.advance(30)
        outbox.alerts.apply([firing_event(f"new{n}") for n in range(3)], clock.now)
        poster.wake()
        await async_wait_until(lambda: len(receiver.posts) == 2, what="the wake's post")
        assert [len(post) for post in receiver.posts] == [100, 3]
        assert {a["labels"]["alert_id"] for a in receiver.posts[1]} == {"new0", "new1", "new2"}
        # Each alert links to its own page on the bridge.
        assert {a["generatorURL"] for a in receiver.posts[1]} == {
            f"http://b/alerts/new{n}" for n in range(3)
        }
        clock.advance(31)  # the re-post interval (60 s) has passed
        poster.wake()
        await async_wait_until(lambda: len(receiver.posts) == 3, what="the full re-post")
        assert len(receiver.posts[2]) == 103


async def test_a_replica_without_the_work_queue_posts_nothing_and_in_full_once_it_holds_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    """On Redis only the work-queue lease holder posts (its alerts alone are current): without
    the lease the poster posts nothing, a wake notwithstanding, and looks again each second;
    once it holds the lease it posts every alert at once."""
    holding = False
    pauses: list[float] = []

    async def sleep(seconds: float, wake: asyncio.Event) -> None:
        pauses.append(seconds)
        await asyncio.sleep(0.01)  # the test's pace, whatever pause the poster asks for

    async with poster_to(receiver.url, tmp_path, sleep=sleep, holding=lambda: holding) as (
        poster,
        outbox,
        clock,
    ):
        outbox.alerts.apply([firing_event("a1"), firing_event("a2")], clock.now)
        poster.start()
        poster.wake()
        await async_wait_until(lambda: len(pauses) >= 3, what="three looks without the lease")
        assert receiver.posts == []
        assert set(pauses) == {1.0}
        holding = True
        await async_wait_until(lambda: receiver.posts, what="the full post")
        assert {a["labels"]["alert_id"] for a in receiver.posts[0]} == {"a1", "a2"}


async def test_the_last_holder_goes_on_posting_while_redis_cannot_be_reached(
    tmp_path: Path, receiver: Receiver
) -> None:
    """While Redis cannot be reached nobody holds the lease: the replica that held it last goes
    on posting (else Alertmanager would resolve its alerts after four intervals), one that did
    not posts nothing, and once Redis answers again only the holder posts."""
    holding, reachable = True, True
    pauses: list[float] = []

    async def sleep(seconds: float, wake: asyncio.Event) -> None:
        pauses.append(seconds)
        await asyncio.sleep(0.01)  # the test's pace, whatever pause the poster asks for

    options = {"holding": lambda: holding, "reachable": lambda: reachable}
    async with poster_to(receiver.url, tmp_path, sleep=sleep, **options) as (
        poster,
        outbox,
        clock,
    ):
        outbox.alerts.apply([firing_event("a1")], clock.now)
        poster.start()
        await async_wait_until(lambda: receiver.posts, what="the holder's post")
        holding, reachable = False, False  # Redis gone: the lease lapses
        posted = len(receiver.posts)
        await async_wait_until(lambda: len(receiver.posts) > posted, what="the last holder's")
        reachable = True  # Redis back, another replica holds the lease
        await async_wait_until(lambda: pauses[-3:] == [1.0] * 3, what="standing by")
        posted, looked = len(receiver.posts), len(pauses)
        await async_wait_until(lambda: len(pauses) >= looked + 3, what="three looks")
        reachable = False  # one that did not hold the lease last does not post either
        await async_wait_until(lambda: len(pauses) >= looked + 6, what="three more looks")
        assert len(receiver.posts) == posted


async def test_a_failing_alertmanager_is_retried_after_growing_pauses(
    tmp_path: Path, receiver: Receiver
) -> None:
    """After failed posts the poster waits 5 s, 10 s, 20 s… (never past the interval) and counts
    each failure; a success waits for the next interval, and the pauses start again from 5 s."""
    receiver.status = 500
    pauses: list[float] = []
    results: list[PostResult] = []

    async def sleep(seconds: float, wake: asyncio.Event) -> None:
        pauses.append(seconds)
        receiver.status = 200 if len(pauses) == 6 else 500  # one success after six failures
        await asyncio.sleep(0)

    async with poster_to(
        receiver.url,
        tmp_path,
        interval=60,
        count=results.append,
        sleep=sleep,
        random=lambda: 0.5,  # no jitter
    ) as (poster, outbox, clock):
        outbox.alerts.apply([firing_event("a1")], clock.now)
        poster.start()
        await async_wait_until(lambda: len(pauses) >= 8, what="failures, a success, a failure")
    assert pauses[:8] == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0, 60.0, 5.0]
    assert results[:8] == [PostResult.FAILED] * 6 + [PostResult.OK, PostResult.FAILED]


async def test_the_receivers_file_gives_the_poster_its_url_and_http_config(
    tmp_path: Path, receiver: Receiver
) -> None:
    """The alertmanager section of EXESDB_WEBHOOK_CONFIG_FILE: its url replaces
    EXESDB_ALERTMANAGER_URL and its http_config authorizes every post."""
    (tmp_path / "am-password").write_text("am-pass\n")
    config = tmp_path / "receivers.yml"
    config.write_text(
        f"alertmanager:\n  url: {receiver.url}\n  timeout: 5s\n  http_config:\n"
        "    basic_auth: {username: bridge, password_file: am-password}\n"
    )
    async with alert_bridge(
        tmp_path / "state", serve_http=False, EXESDB_WEBHOOK_CONFIG_FILE=str(config)
    ) as (bridge, _, _):
        bridge.bus.publish("disk_full", system_alert("am-1"))
        await async_wait_until(
            lambda: any(a["labels"]["alert_id"] == "am-1" for p in receiver.posts for a in p),
            what="a post with the alert",
        )
    assert set(receiver.authorizations) == {basic_auth("bridge", "am-pass")}


async def test_a_new_password_in_the_posters_password_file_is_used_without_a_restart(
    tmp_path: Path, receiver: Receiver
) -> None:
    """The alertmanager section's password_file is read again at each post, as a receiver's
    is: rotated as a deployment rotates a secret (a new file renamed over the old), the next
    post carries the new password."""
    password = tmp_path / "am-password"
    password.write_text("first-pass\n")
    config = tmp_path / "receivers.yml"
    config.write_text(
        f"alertmanager:\n  url: {receiver.url}\n  http_config:\n"
        f"    basic_auth: {{username: bridge, password_file: {password}}}\n"
    )

    def posts_of(alert_id: str) -> list[int]:
        """The indexes of the posts carrying ``alert_id``."""
        return [
            n
            for n, alerts in enumerate(receiver.posts)
            if any(alert["labels"]["alert_id"] == alert_id for alert in alerts)
        ]

    async with alert_bridge(
        tmp_path / "state", serve_http=False, EXESDB_WEBHOOK_CONFIG_FILE=str(config)
    ) as (bridge, _, _):
        bridge.bus.publish("disk_full", system_alert("am-rot-1"))
        await async_wait_until(lambda: posts_of("am-rot-1"), what="a post with the first alert")
        rotated = tmp_path / "am-password.new"
        rotated.write_text("second-pass\n")
        rotated.replace(password)
        bridge.bus.publish("disk_full", system_alert("am-rot-2"))
        await async_wait_until(lambda: posts_of("am-rot-2"), what="a post with the second alert")
    assert receiver.authorizations[posts_of("am-rot-1")[0]] == basic_auth("bridge", "first-pass")
    assert receiver.authorizations[posts_of("am-rot-2")[0]] == basic_auth("bridge", "second-pass")


async def test_the_posters_http_config_takes_http_headers_and_a_bearer_token_file(
    tmp_path: Path, receiver: Receiver
) -> None:
    """The alertmanager section's http_config reads as a receiver's does: a legacy
    bearer_token_file and http_headers (a multi-tenant Alertmanager's X-Scope-OrgID) go with
    every post."""
    (tmp_path / "am-token").write_text("am-t0ken\n")
    config = tmp_path / "receivers.yml"
    config.write_text(
        f"alertmanager:\n  url: {receiver.url}\n  http_config:\n"
        "    bearer_token_file: am-token\n"
        "    http_headers:\n      X-Scope-OrgID: {values: [team-a]}\n"
    )
    async with alert_bridge(
        tmp_path / "state", serve_http=False, EXESDB_WEBHOOK_CONFIG_FILE=str(config)
    ) as (bridge, _, _):
        bridge.bus.publish("disk_full", system_alert("am-2"))
        await async_wait_until(lambda: receiver.posts, what="a post")
    assert set(receiver.authorizations) == {"Bearer am-t0ken"}
    assert set(receiver.tenants) == {"team-a"}


async def test_a_refusal_quoting_the_posts_token_does_not_log_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A proxy in front of Alertmanager (its path holding a key) that refuses the post quoting
    the path and the bearer token it got (without naming it a header) is warned about with the
    path shown as ``/…`` and the token as ``<redacted>``."""
    token, key = "am-t0ken-Xq7rT2vLm9Wc", "key-Zt4bN8sKd1Yhf"

    async def refuse(request: web.Request) -> web.Response:
        credentials = request.headers["Authorization"].removeprefix("Bearer ")
        text = f"POST {request.path}: {credentials} is no token this proxy knows"
        return web.Response(status=401, text=text)

    app = web.Application()
    app.router.add_post(f"/am/{key}/api/v2/alerts", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    (tmp_path / "am-token").write_text(f"{token}\n")
    config = tmp_path / "receivers.yml"
    config.write_text(
        f"alertmanager:\n  url: http://127.0.0.1:{runner.addresses[0][1]}/am/{key}\n"
        "  http_config:\n"
        "    bearer_token_file: am-token\n"
    )
    caplog.set_level(logging.WARNING, "bridge.sinks.alerts.alertmanager")
    try:
        async with alert_bridge(
            tmp_path / "state", serve_http=False, EXESDB_WEBHOOK_CONFIG_FILE=str(config)
        ) as (bridge, _, _):
            bridge.bus.publish("disk_full", system_alert("am-3"))
            await async_wait_until(lambda: caplog.records, what="the refusal warned of")
    finally:
        await runner.cleanup()
    [said] = [r.getMessage() for r in caplog.records]
    assert "it answered 401: POST /…: <redacted> is no token this proxy knows" in said, said
    assert token not in caplog.text
    assert key not in caplog.text


@pytest.mark.parametrize("configured", [True, False])
async def test_the_posts_counter_shows_each_result_at_0_only_with_a_poster(
    tmp_path: Path, receiver: Receiver, configured: bool
) -> None:
    """With an Alertmanager configured, exesdb_alertmanager_posts_total is 0 for ok and failed
    from the start, before any post (no alert is open, so none goes out); without one it has
    no series."""
    env: dict[str, Any] = {"EXESDB_ALERTMANAGER_URL": receiver.url} if configured else {}
    async with alert_bridge(tmp_path / "state", serve_http=False, **env) as (bridge, sink, _):
        assert (sink.alertmanager is not None) is configured
        shown = {
            result: bridge.registry.get_sample_value(
                "exesdb_alertmanager_posts_total", {"result": result.value}
            )
            for result in PostResult
        }
    assert shown == {result: 0.0 if configured else None for result in PostResult}
    assert receiver.posts == []


async def test_every_open_alert_is_posted_however_many_and_however_many_changed(
    tmp_path: Path, receiver: Receiver
) -> None:
    """More than 10 000 open alerts all go out in the full post, a page of 1 000 per post; a
    wake after more than 10 000 changes posts every one of them too."""

    def posted(after: int) -> set[str]:
        return {a["labels"]["alert_id"] for post in receiver.posts[after:] for a in post}

    async with poster_to(receiver.url, tmp_path) as (poster, outbox, clock):
        first = [f"old{n:05}" for n in range(10_500)]
        outbox.alerts.apply([firing_event(alert_id) for alert_id in first], clock.now - 10)
        poster.start()
        await async_wait_until(lambda: posted(0) == set(first), what="every alert posted")
        assert max(len(post) for post in receiver.posts) == 1000
        done = len(receiver.posts)
        clock.advance(30)
        later = [f"new{n:05}" for n in range(10_500)]
        outbox.alerts.apply([firing_event(alert_id) for alert_id in later], clock.now)
        poster.wake()
        await async_wait_until(lambda: posted(done) >= set(later), what="every change posted")
        assert posted(done) == set(later)


async def test_a_severity_change_posts_the_labels_alertmanager_held_before_as_resolved(
    tmp_path: Path, receiver: Receiver
) -> None:
    """The severity is a label, so Alertmanager holds an alert whose severity changed as
    another: the post of the change also ends the one it held (its labels, endsAt the change's
    time), once, so that it does not stay active until its endsAt, four intervals ahead."""

    def sent(post: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return sorted((a["labels"]["severity"], a["endsAt"]) for a in post)

    async with poster_to(receiver.url, tmp_path) as (poster, outbox, clock):
        outbox.alerts.apply([firing_event("a1")], clock.now)
        poster.start()
        await async_wait_until(lambda: len(receiver.posts) == 1, what="the first post")
        clock.advance(10)
        changed = replace(firing_event("a1"), severity="critical")
        outbox.alerts.apply([changed], clock.now)
        clock.advance(1)
        poster.wake()
        await async_wait_until(lambda: len(receiver.posts) == 2, what="the change's post")
        assert sent(receiver.posts[1]) == [
            ("critical", "2027-01-15T08:04:11.000Z"),  # four intervals after the post
            ("warning", "2027-01-15T08:00:10.000Z"),  # when the severity changed
        ]
        assert {a["labels"]["alert_id"] for a in receiver.posts[1]} == {"a1"}
        clock.advance(60)
        at = datetime.fromtimestamp(clock.now, UTC)
        outbox.alerts.apply([replace(changed, status="resolved", at=at)], clock.now)
        poster.wake()
        await async_wait_until(lambda: len(receiver.posts) == 3, what="the resolve's post")
        assert sent(receiver.posts[2]) == [("critical", "2027-01-15T08:01:11.000Z")]


async def test_a_page_of_severity_changes_goes_out_in_posts_of_at_most_1000_alerts(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A page of 1 000 alerts that all changed severity is 2 000 alerts to post (each also at
    its former severity, resolved): two posts of 1 000, not one of 2 000."""
    ids = [f"a{n:04}" for n in range(1000)]
    async with poster_to(receiver.url, tmp_path) as (poster, outbox, clock):
        outbox.alerts.apply([firing_event(alert_id) for alert_id in ids], clock.now)
        poster.start()
        await async_wait_until(lambda: len(receiver.posts) == 1, what="the first post")
        clock.advance(10)
        critical = [replace(firing_event(alert_id), severity="critical") for alert_id in ids]
        outbox.alerts.apply(critical, clock.now)
        poster.wake()
        await async_wait_until(lambda: len(receiver.posts) == 3, what="the change's posts")
        assert [len(post) for post in receiver.posts] == [1000, 1000, 1000]
        changes = [
            (alert["labels"]["severity"], alert["labels"]["alert_id"])
            for post in receiver.posts[1:]
            for alert in post
        ]
        assert sorted(changes) == sorted(
            (severity, alert_id) for severity in ("critical", "warning") for alert_id in ids
        )


async def test_a_failed_post_is_logged_without_the_urls_credentials(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp's InvalidURL names the URL it refused: the warning shows it redacted."""
    results: list[PostResult] = []
    async with poster_to(
        "http://bridge:hunter2@127.0.0.1:99999", tmp_path, count=results.append
    ) as (poster, outbox, clock):
        outbox.alerts.apply([firing_event("a1")], clock.now)
        caplog.set_level(logging.WARNING, "bridge.sinks.alerts.alertmanager")
        poster.start()
        await async_wait_until(lambda: results, what="a failed post")
    assert results[0] is PostResult.FAILED
    assert "cannot post to Alertmanager" in caplog.text
    assert "InvalidURL" in caplog.text or "InvalidUrl" in caplog.text
    assert "hunter2" not in caplog.text


async def test_a_run_of_failed_posts_is_logged_once_and_its_end_once(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """While Alertmanager answers 500, the first failed post is a warning saying why and the
    retries after it are counted, not logged; the post it takes again is one line saying how
    many failed, as a webhook receiver's are told."""
    receiver.status = 500
    results: list[PostResult] = []

    async def no_pause(seconds: float, wake: asyncio.Event) -> None:
        await asyncio.sleep(0)  # retries at once: the test counts lines, not waits

    caplog.set_level(logging.INFO, "bridge.sinks.alerts.alertmanager")
    async with poster_to(receiver.url, tmp_path, count=results.append, sleep=no_pause) as (
        poster,
        outbox,
        clock,
    ):
        outbox.alerts.apply([firing_event("a1")], clock.now)
        poster.start()
        await async_wait_until(lambda: len(results) >= 3, what="three failed posts")
        receiver.status = 200
        await async_wait_until(lambda: PostResult.OK in results, what="a post taken")
    failed = results.index(PostResult.OK)
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert said[0] == (
        "WARNING",
        f"cannot post to Alertmanager {receiver.url}/…: it answered 500: {{}};"
        " trying again until it takes them (counted in exesdb_alertmanager_posts_total)",
    )
    assert said[1:] == [
        (
            "INFO",
            f"Alertmanager {receiver.url}/… takes posts again after {failed} failed post(s)",
        )
    ]


async def _refusal_logged(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    answer: Callable[[web.Request], Awaitable[web.Response]],
) -> tuple[str, list[str]]:
    """Alertmanager's URL at a server on a free loopback port answering each post with
    ``answer``, and what the poster logged once its first post was refused."""
    results: list[PostResult] = []
    app = web.Application()
    app.router.add_post("/api/v2/alerts", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    caplog.set_level(logging.WARNING, "bridge.sinks.alerts.alertmanager")
    try:
        async with poster_to(url, tmp_path, count=results.append) as (poster, outbox, clock):
            outbox.alerts.apply([firing_event("a1")], clock.now)
            poster.start()
            await async_wait_until(lambda: results, what="a refused post")
    finally:
        await runner.cleanup()
    return url, [r.getMessage() for r in caplog.records]


async def test_a_refusal_with_a_page_of_lines_is_logged_on_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A URL that is not Alertmanager's (Prometheus's: Go's "404 page not found" and a line
    break; a proxy's HTML page) is warned about on one line, the answer's lines joined."""

    async def not_found(request: web.Request) -> web.Response:
        return web.Response(status=404, text="404 page not found\n<p>\n  try /graph\n</p>\n")

    url, logged = await _refusal_logged(tmp_path, caplog, not_found)
    assert logged == [
        f"cannot post to Alertmanager {url}/…: it answered 404: 404 page not found <p> try"
        " /graph </p>; trying again until it takes them (counted in"
        " exesdb_alertmanager_posts_total)"
    ]


async def test_a_refusing_html_page_showing_no_text_is_logged_as_its_title_escaped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A proxy's HTML page (by its Content-Type) whose body shows no text is quoted as its
    title, a control character in it (a terminal's escape) shown as its escape, not sent to the
    terminal reading the log."""
    page = "\n<html><head><title>Bad \x1b[2J gateway</title></head><body> </body></html>"

    async def bad_gateway(request: web.Request) -> web.Response:
        return web.Response(status=502, text=page, content_type="text/html")

    url, logged = await _refusal_logged(tmp_path, caplog, bad_gateway)
    assert logged == [
        f"cannot post to Alertmanager {url}/…: it answered 502: Bad \\u001b[2J gateway;"
        " trying again until it takes them (counted in exesdb_alertmanager_posts_total)"
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "quoted"),
    [
        (b"<nil>", "text/plain", "<nil>"),  # Go's nil, said as plain text
        (b"<no value>\n", "application/octet-stream", "<no value>"),  # no markup: as it came
        (
            b"<html><body><h1>Bad</h1> gateway</body></html>",
            "application/octet-stream",
            "Bad gateway",
        ),
        (b"<html><body></body></html>", "application/octet-stream", "an HTML page"),
    ],
)
async def test_a_refusal_is_read_as_a_page_only_when_it_is_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, body: bytes, content_type: str, quoted: str
) -> None:
    """A refusal starting with "<" is read as an HTML page only when its Content-Type is not
    another's and it is markup; else it is quoted as it came."""

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=500, body=body, content_type=content_type)

    url, logged = await _refusal_logged(tmp_path, caplog, refuse)
    assert logged == [
        f"cannot post to Alertmanager {url}/…: it answered 500: {quoted};"
        " trying again until it takes them (counted in exesdb_alertmanager_posts_total)"
    ]


async def test_changes_while_alertmanager_fails_do_not_post_faster_than_the_first_retry(
    tmp_path: Path,
) -> None:
    """While Alertmanager fails, a change still cuts the pause short, but to no less than the
    first retry's: alerts changing steadily do not make a post (and a warning) each."""
    receiver = await Receiver(status=500).start()
    outbox = Outbox.in_dir(tmp_path)
    db = DbThread()
    poster = AlertmanagerPoster(
        receiver.url,
        alerts=outbox.alerts,
        db=db,
        external_url=lambda: "http://b",
        timeout=5,
        interval=1,  # the first retry after 1 s
    )
    outbox.alerts.apply([firing_event("a1")], T0)
    poster.start()
    try:
        await async_wait_until(lambda: len(receiver.posts) == 1, what="the first, failed post")
        began = asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - began < 1.5:
            poster.wake()
            await asyncio.sleep(0.02)  # a change every 20 ms, as a steady stream of alerts
    finally:
        await poster.aclose()
        await receiver.stop()
        db.close()
        outbox.close()
    # The first post, then one a second at most (one more for a post under way at the start).
    assert len(receiver.posts) <= 4, f"{len(receiver.posts)} posts in 1.5 s"


async def test_a_change_cuts_a_failed_posts_pause_to_the_first_retry_on_the_injected_clock(
    tmp_path: Path, receiver: Receiver
) -> None:
    """While Alertmanager fails and an alert changes every half second, each post follows the
    one before by exactly the first retry's 5 s on the poster's clock: the pause a change cuts
    short holds for what is left of 5 s on that clock, no less (a post per change) and no more
    (the time already waited counted on another clock)."""
    receiver.status = 500
    posted_at: list[float] = []
    started: list[tuple[AlertmanagerPoster, ManualClock]] = []  # once poster_to has made them

    async def sleep(seconds: float, wake: asyncio.Event) -> None:
        # wait_or_wake on the hand-moved clock: a change (a wake) every 0.5 s of it.
        [(poster, clock)] = started
        waited = 0.0
        while waited < seconds and not wake.is_set():
            step = min(0.5, seconds - waited)
            clock.advance(step)
            waited += step
            if step == 0.5:
                poster.wake()
        await asyncio.sleep(0)

    async with poster_to(
        receiver.url,
        tmp_path,
        interval=60,
        sleep=sleep,
        count=lambda result: posted_at.append(started[0][1].now),
        random=lambda: 0.5,  # no jitter
    ) as (poster, outbox, clock):
        started.append((poster, clock))
        outbox.alerts.apply([firing_event("a1")], clock.now)
        poster.start()
        await async_wait_until(lambda: len(posted_at) >= 4, what="four failed posts")
    gaps = [later - earlier for earlier, later in itertools.pairwise(posted_at)]
    assert gaps == [pytest.approx(5.0, abs=1e-9)] * len(gaps)
