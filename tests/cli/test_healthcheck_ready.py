"""``exesdb-bridge healthcheck --ready``: the parts not ready named on one line, and only the
bridge's own answer taken as ready."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from aiohttp import web

from bridge.cli.healthcheck import LIVENESS, READINESS, Endpoint, probe
from tests.cli.healthcheck_helpers import (
    PASSWORD,
    Handler,
    Server,
    answer,
    healthcheck,
    healthcheck_process,
    rotate_badly,
    secured_bridge,
)
from tests.support import free_port
from tests.webconfig.files import WebFiles


def test_ready_command_names_the_parts_not_ready_over_https(tmp_path: Path) -> None:
    """A bridge behind TLS, client certificates and basic auth whose Redis bus cannot be reached
    is alive but not ready: `healthcheck` exits 0, `healthcheck --ready` exits 1 with one line
    naming the part not ready and its reason, as the bridge's /readyz body gives them."""
    redis_port = free_port()
    bridge, env = secured_bridge(tmp_path, bus=f"redis://127.0.0.1:{redis_port}/0")
    bridge.start(tmp_path)
    try:
        alive = healthcheck(**env)
        not_ready = healthcheck("--ready", **env)
    finally:
        bridge.stop()
    assert alive.returncode == 0, alive.stderr
    assert not_ready.returncode == 1, not_ready.stdout
    assert not_ready.stdout == ""
    assert not_ready.stderr.startswith(
        f"not ready: https://127.0.0.1:{bridge.port}/readyz answered 503 Service Unavailable: "
        f"waiting for bus (Redis at redis://127.0.0.1:{redis_port}/… is unreachable: "
    )
    assert not_ready.stderr.count("\n") == 1
    assert PASSWORD not in not_ready.stderr


def readyz_answer(status: int, checks: dict[str, dict[str, object]]) -> Handler:
    """A handler answering ``status`` with a /readyz body of ``checks``, as the bridge's."""

    async def handle(request: web.Request) -> web.Response:
        return web.json_response({"ready": status == 200, "checks": checks}, status=status)

    return handle


async def test_a_not_ready_line_names_only_required_parts_on_one_line(server: Server) -> None:
    """A 503 line names each required part not ready with its reason, its line breaks made
    spaces; parts ready, or not required, are not named."""
    checks: dict[str, dict[str, object]] = {
        "bus": {"ready": False, "required": True, "reason": "Redis is\nunreachable"},
        "prometheus": {"ready": True, "required": True, "reason": None},
        "alerts": {"ready": False, "required": True, "reason": None},
        "otlp": {"ready": False, "required": False, "reason": "collector unreachable"},
    }
    await server.start(readyz_answer(503, checks))
    url = server.url(path="/readyz")
    verdict = await asyncio.to_thread(probe, url, endpoint=READINESS)
    assert not verdict.healthy
    assert verdict.line == (
        f"not ready: {url} answered 503 Service Unavailable: waiting for bus (Redis is "
        "unreachable), alerts"
    )


async def test_a_503_that_is_not_the_bridge_s_is_not_ready_without_parts(server: Server) -> None:
    """A 503 whose body is not a /readyz body is not ready, the line giving the status alone."""
    await server.start(answer(503))
    url = server.url(path="/readyz")
    verdict = await asyncio.to_thread(probe, url, endpoint=READINESS)
    assert verdict.line == f"not ready: {url} answered 503 Service Unavailable"


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (503, "not ready: {url} answered 503 Service Unavailable"),
        (
            200,
            "not ready: {url} answered 200, but not as the bridge's /readyz answers: another"
            " server listens there; EXESDB_HTTP_ADDR must be the address the bridge listens on",
        ),
    ],
)
async def test_a_readyz_body_nested_past_the_parser_s_depth_is_not_the_bridge_s(
    server: Server, status: int, line: str
) -> None:
    """A body within the size read but nested deeper than Python's JSON reader goes (60 000
    ``[``: RecursionError, no ValueError) is no /readyz body of the bridge's: the verdict is the
    status alone, one line, rather than the probe stopping on a traceback."""

    async def deep(request: web.Request) -> web.Response:
        return web.Response(status=status, text="[" * 60_000)

    await server.start(deep)
    url = server.url(path="/readyz")
    verdict = await asyncio.to_thread(probe, url, endpoint=READINESS)
    assert (verdict.healthy, verdict.line) == (False, line.format(url=url))
    assert not verdict.from_bridge


@pytest.mark.parametrize(("endpoint", "path"), [(LIVENESS, "/healthz"), (READINESS, "/readyz")])
async def test_another_server_s_200_at_the_address_is_not_the_bridge_healthy(
    server: Server, endpoint: Endpoint, path: str
) -> None:
    """Another server holding the address and answering 200 to anything (the bridge could not
    listen there, or EXESDB_HTTP_ADDR names another service) is unhealthy, saying so."""
    await server.start(answer(200))
    url = server.url(path=path)
    verdict = await asyncio.to_thread(probe, url, endpoint=endpoint)
    assert not verdict.healthy
    assert verdict.line == (
        f"{endpoint.bad}: {url} answered 200, but not as the bridge's {path} answers: another"
        " server listens there; EXESDB_HTTP_ADDR must be the address the bridge listens on"
    )


@pytest.mark.parametrize(("endpoint", "path"), [(LIVENESS, "/healthz"), (READINESS, "/readyz")])
@pytest.mark.parametrize(
    ("status", "reason"),
    [(404, "Not Found"), (405, "Method Not Allowed"), (501, "Not Implemented")],
)
async def test_another_server_s_404_at_the_address_says_another_server_listens_there(
    server: Server, endpoint: Endpoint, path: str, status: int, reason: str
) -> None:
    """A status the bridge never answers its probes with (another server's 404, a 405 of one
    serving that path to POST only, or python -m http.server's 501) says another server listens
    there, as its 200 does, not the status alone as though the bridge had answered it."""
    await server.start(answer(status))
    url = server.url(path=path)
    verdict = await asyncio.to_thread(probe, url, endpoint=endpoint)
    assert (verdict.healthy, verdict.status, verdict.from_bridge) == (False, status, False)
    assert verdict.line == (
        f"{endpoint.bad}: {url} answered {status} {reason}, which the bridge's {path} never"
        " answers: another server listens there; EXESDB_HTTP_ADDR must be the address the bridge"
        " listens on"
    )


@pytest.mark.parametrize(
    ("handler", "code", "line"),
    [
        pytest.param(readyz_answer(200, {}), 0, "ready: {url} answered 200, its ", id="ready"),
        pytest.param(
            answer(401, **{"WWW-Authenticate": 'Basic realm="exesdb-bridge"'}),
            1,
            "not ready: {url} answered 401, the bridge asking for credentials, its ",
            id="bridge-401",
        ),
        pytest.param(
            answer(200),
            1,
            "not ready: {url} answered 200, but not as the bridge answers, its ",
            id="other-200",
        ),
    ],
)
async def test_unverified_readiness_is_only_the_bridge_s_own_200(
    server: Server, tmp_path: Path, handler: Handler, code: int, line: str
) -> None:
    """A refused file whose certificate does not verify the one served: --ready asks again
    unverified and without credentials, and only the bridge's own /readyz 200 is ready; its 401
    in its realm says it runs, not that it is ready."""
    files = WebFiles(tmp_path)
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    await server.start(handler, ssl_context=serving)
    path = files.write(rotate_badly(files, "mismatched-key") + "colour: vermilion\n")
    completed = await asyncio.to_thread(
        healthcheck_process,
        "--ready",
        EXESDB_HTTP_ADDR=f"127.0.0.1:{server.port}",
        EXESDB_WEB_CONFIG_FILE=str(path),
    )
    assert completed.returncode == code, completed.stdout + completed.stderr
    shown = completed.stdout if code == 0 else completed.stderr
    assert shown.startswith(line.format(url=server.url("https", "/readyz"))), shown
    assert [request.path for request in server.seen] == ["/readyz"]
