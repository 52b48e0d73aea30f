"""The running service: its stop, one EXESDB_SHUTDOWN_TIMEOUT_MS for every stage, each taking
what the ones before it left, and a component past it cancelled once it has closed what it holds;
and the line saying where it listens."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge import integration
from bridge.app import Bridge
from bridge.bus import Envelope, Frame
from bridge.bus.redis.spool import Spool
from bridge.component import Context
from bridge.errors import ConfigError
from bridge.messages import NodeHealth, NodeLifecycle, SystemAlert
from bridge.settings_checks import start_warnings
from tests.support import ManualClock, async_wait_until, make_settings


class TakesTime:
    """A component whose stop takes ``seconds`` of the clock, noting what it was left."""

    required = False

    def __init__(self, name: str, context: Context, clock: ManualClock, seconds: float) -> None:
        self.name = name
        self._context = context
        self._clock = clock
        self._seconds = seconds
        self.left: float | None = None

    async def start(self) -> None:
        pass

    def readiness(self) -> str | None:
        return None

    async def aclose(self) -> None:
        self.left = self._context.shutdown.left()
        await asyncio.sleep(0)
        self._clock.now += self._seconds


class Hangs:
    """A component whose stop never ends, and which closes what it holds when cancelled."""

    name = "hangs"
    required = False

    def __init__(self) -> None:
        self.released = False

    async def start(self) -> None:
        pass

    def readiness(self) -> str | None:
        return None

    async def aclose(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            self.released = True


async def test_every_component_stops_within_what_the_ones_before_it_left() -> None:
    """With EXESDB_SHUTDOWN_TIMEOUT_MS=10000 and components taking 2 s, 4 s and 3 s to stop (in
    reverse order of start), they are given 9 s, 7 s and 3 s: one deadline, not 10 s each, 1 s
    before the whole stop's, kept for the bus."""
    clock = ManualClock(100.0)
    made: list[TakesTime] = []

    def factory(name: str, seconds: float) -> Callable[[Context], TakesTime]:
        def build(context: Context) -> TakesTime:
            made.append(TakesTime(name, context, clock, seconds))
            return made[-1]

        return build

    bridge = Bridge(
        make_settings(EXESDB_SHUTDOWN_TIMEOUT_MS="10000"),
        components=[factory("a", 3), factory("b", 4), factory("c", 2)],
        monotonic=clock,
    )
    await bridge.start(serve_http=False)
    await bridge.aclose()
    assert [(c.name, c.left) for c in reversed(made)] == [("c", 9.0), ("b", 7.0), ("a", 3.0)]
    assert bridge.shutdown.left() == 1.0  # what the bus gets to drain


async def test_a_component_past_the_deadline_is_cancelled_after_closing_what_it_holds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A component still stopping when EXESDB_SHUTDOWN_TIMEOUT_MS runs out is cancelled (its
    finally runs), named in a warning, and the components after it still stop."""
    hangs = Hangs()
    stopped: list[str] = []

    class Quick(Hangs):
        name = "quick"

        async def aclose(self) -> None:
            stopped.append(self.name)

    bridge = Bridge(
        make_settings(EXESDB_SHUTDOWN_TIMEOUT_MS="300"),
        components=[lambda context: Quick(), lambda context: hangs],
    )
    await bridge.start(serve_http=False)
    await asyncio.wait_for(bridge.aclose(), 10)
    assert hangs.released
    assert stopped == ["quick"]
    assert "component hangs did not close within EXESDB_SHUTDOWN_TIMEOUT_MS" in caplog.text


async def test_a_cancelled_component_closing_what_it_holds_still_ends_the_stop_in_time() -> None:
    """A component cancelled at its deadline that takes 0.1 s more to close what it holds (the
    alert sink's outbox, under load) and the bus after it end within EXESDB_SHUTDOWN_TIMEOUT_MS:
    the components' deadline comes a quarter (at most 1 s) before the whole stop's."""
    seen_left: list[float] = []

    class ClosesSlowly(Hangs):
        async def aclose(self) -> None:
            try:
                await asyncio.Event().wait()
            finally:
                seen_left.append(bridge.shutdown.left())
                await asyncio.sleep(0.1)  # closing what it holds, cancellation or not

    bridge = Bridge(
        make_settings(EXESDB_SHUTDOWN_TIMEOUT_MS="1000"),
        components=[lambda context: ClosesSlowly()],
    )
    await bridge.start(serve_http=False)
    began = time.monotonic()
    await asyncio.wait_for(bridge.aclose(), 10)
    assert time.monotonic() - began < 1.0
    assert len(seen_left) == 1
    assert seen_left[0] > 0.1  # the reserve (0.25 s) still there at the cancel


async def test_the_listening_line_is_a_url_that_can_be_pasted_for_ipv6_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Listening on an IPv6 address, the start-up line shows it in brackets: http://[::1]:port."""
    caplog.set_level(logging.INFO, logger="bridge.app")
    bridge = Bridge(make_settings(EXESDB_HTTP_ADDR="[::1]:0"), components=[])
    await bridge.start()
    try:
        assert bridge.address is not None
        assert f"listening on http://[::1]:{bridge.address[1]}" in caplog.text
    finally:
        await bridge.aclose()


class Started:
    """A component noting whether it was started, and whether the listener took a connection
    while it started."""

    name = "started"
    required = False

    def __init__(self, context: Context) -> None:
        self._context = context
        self.started = False
        self.refused: bool | None = None

    async def start(self) -> None:
        self.started = True
        port = self._context.bound_port()
        if port is not None:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except ConnectionRefusedError:
                self.refused = True
            else:
                writer.close()
                self.refused = False

    def readiness(self) -> str | None:
        return None

    async def aclose(self) -> None:
        pass


def _noting(made: list[Started]) -> Callable[[Context], Started]:
    def build(context: Context) -> Started:
        made.append(Started(context))
        return made[-1]

    return build


async def test_a_web_config_gone_bad_stops_start_up_before_the_bus_or_a_component_starts(
    tmp_path: Path,
) -> None:
    """A web config file that turns bad between the settings' check and start-up raises
    ConfigError naming it, before the bus or any component started (a failed start has
    nothing to stop), and leaves no bridge installed for the integration's module functions."""
    web_config = tmp_path / "web.yml"
    web_config.write_text("http_server_config:\n  headers: {}\n")
    settings = make_settings(EXESDB_WEB_CONFIG_FILE=str(web_config), EXESDB_HTTP_ADDR="127.0.0.1:0")
    web_config.write_text("tls_server_config: [\n")
    made: list[Started] = []
    bridge = Bridge(settings, components=[_noting(made)])
    with pytest.raises(ConfigError, match=r"web\.yml"):
        await bridge.start()
    assert integration.current() is None
    await bridge.aclose()
    assert not made[0].started
    published = [
        sample.value
        for metric in bridge.registry.collect()
        if metric.name == "exesdb_bus_published"
        for sample in metric.samples
        if sample.name == "exesdb_bus_published_total"
    ]
    assert sum(published) == 0


async def test_a_failed_start_or_a_close_leaves_another_running_bridge_installed(
    tmp_path: Path,
) -> None:
    """The module functions of ``bridge.integration`` act on the bridge running in the process:
    a second bridge whose start fails leaves the first one installed, not none, and so does
    closing that second bridge; a bridge closed uninstalls only itself."""
    running = Bridge(make_settings(), components=[])
    await running.start(serve_http=False)
    try:
        web_config = tmp_path / "web.yml"
        web_config.write_text("http_server_config:\n  headers: {}\n")
        settings = make_settings(
            EXESDB_WEB_CONFIG_FILE=str(web_config), EXESDB_HTTP_ADDR="127.0.0.1:0"
        )
        web_config.write_text("tls_server_config: [\n")
        failed = Bridge(settings, components=[])
        with pytest.raises(ConfigError, match=r"web\.yml"):
            await failed.start()
        assert integration.current() is running.integration
        await failed.aclose()
        assert integration.current() is running.integration
        later = Bridge(make_settings(), components=[])
        await later.start(serve_http=False)
        await running.aclose()
        assert integration.current() is later.integration
        await later.aclose()
        assert integration.current() is None
    finally:
        await running.aclose()


async def test_the_address_is_bound_before_components_start_and_accepts_after() -> None:
    """The port is bound first (a taken one fails before anything runs) but refuses
    connections until every component has started; then it answers."""
    made: list[Started] = []
    bridge = Bridge(
        make_settings(EXESDB_HTTP_ADDR="127.0.0.1:0"),
        components=[_noting(made)],
    )
    await bridge.start()
    try:
        assert made[0].refused is True
        assert bridge.address is not None
        _, writer = await asyncio.open_connection("127.0.0.1", bridge.address[1])
        writer.close()
    finally:
        await bridge.aclose()


async def test_the_start_up_says_ingest_is_on_when_it_is(caplog: pytest.LogCaptureFixture) -> None:
    """With EXESDB_INGEST=true the start-up has an info line saying where ingest is and with
    which key it is signed; without it, no such line."""
    caplog.set_level(logging.INFO, logger="bridge.app")
    for ingest, said in (("true", True), ("false", False)):
        caplog.clear()
        bridge = Bridge(
            make_settings(EXESDB_HTTP_ADDR="127.0.0.1:0", EXESDB_INGEST=ingest), components=[]
        )
        await bridge.start()
        await bridge.aclose()
        lines = [(r.levelname, r.getMessage()) for r in caplog.records]
        line = ("INFO", "ingest on at POST /v1/messages (signed with SECRET_KEY_BASE)")
        assert (line in lines) == said, lines


async def test_a_redis_spool_left_in_the_state_directory_is_warned_of_on_the_in_process_bus(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Frames a run on the Redis bus left in EXESDB_STATE_DIR's spool (Redis down as it
    stopped) are warned of at a start on the in-process bus, which never writes them, naming
    the folder, how many, what writes them and how to drop them; a state directory without them
    says nothing."""
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=4096)
    await spool.open()
    assert await spool.append([Frame("ex_esdb_alerts", b'{"n":1}', "ab" * 32)] * 3)
    await spool.aclose()
    for state_dir, said in ((tmp_path, True), (tmp_path / "other", False)):
        caplog.clear()
        bridge = Bridge(
            make_settings(EXESDB_HTTP_ADDR="127.0.0.1:0", EXESDB_STATE_DIR=str(state_dir)),
            components=[],
        )
        await bridge.start()
        await bridge.aclose()
        warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        line = (
            f"EXESDB_STATE_DIR: {tmp_path / 'spool'} holds 3 frame(s) a run on the Redis bus took"
            " in and did not write to Redis"
        )
        assert any(message.startswith(line) for message in warned) == said, warned
        assert any("EXESDB_BUS" in message for message in warned) == said, warned
        # The way out when that Redis is none to go back to (a mistyped EXESDB_BUS), too.
        drop = (
            f", or, that Redis gone for good (a mistyped EXESDB_BUS), remove {tmp_path / 'spool'}"
        )
        assert any(f"{drop} to drop them" in message for message in warned) == said, warned


def test_an_unset_secret_on_the_in_process_bus_is_said_not_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without SECRET_KEY_BASE (which ingest and a Redis bus refuse), the ephemeral key of the
    in-process bus is an info line, not a warning: nothing outside the process signs or
    verifies with it."""
    caplog.set_level(logging.INFO)
    settings = make_settings(SECRET_KEY_BASE="")
    assert not [note for note in start_warnings(settings, {}) if "SECRET_KEY_BASE" in note]
    Bridge(settings, components=[])
    said = [(r.levelname, r.getMessage()) for r in caplog.records if "SECRET" in r.getMessage()]
    assert said == [
        (
            "INFO",
            "SECRET_KEY_BASE is not set: using an ephemeral key for the in-process bus (ingest"
            " and a Redis bus need it set)",
        )
    ]


async def test_a_stopping_node_says_left_after_its_last_sign_of_life(tmp_path: Path) -> None:
    """A graceful stop's NodeLifecycle left is the node's last message on the instances the
    cluster monitors hear (ex_esdb_health, ex_esdb_lifecycle): one after it (a NodeHealth of the
    health collector still running while the alert sink drains) tracks the node again, and its
    silence then is announced down, a node_failure for a node that left. Here the alert sink
    has a backlog to drain at the stop, while the health collector ticks every 100 ms."""
    settings = make_settings(EXESDB_HEALTH_BROADCAST_INTERVAL="100", EXESDB_STATE_DIR=str(tmp_path))
    bridge = Bridge(settings)
    node = settings.node
    heard: list[Envelope] = []
    bridge.bus.subscribe(
        "recorder", heard.extend, instances=("ex_esdb_health", "ex_esdb_lifecycle"), batch=True
    )
    await bridge.start(serve_http=False)
    try:
        await async_wait_until(
            lambda: any(isinstance(e.payload, NodeHealth) for e in heard), 10, "a NodeHealth"
        )
        for number in range(3_000):
            bridge.bus.publish(
                "alerts",
                SystemAlert(
                    severity="warning",
                    category="system",
                    title=f"backlog {number}",
                    description="what the alert sink drains at the stop",
                    source="test",
                    node=node,
                ),
            )
    finally:
        await bridge.aclose()
    said = [
        e.payload.event if isinstance(e.payload, NodeLifecycle) else e.tag
        for e in heard
        if e.node == node
    ]
    assert "left" in said
    assert said[said.index("left") + 1 :] == []
