"""The probes, and the routes components add to the edge: ``/healthz`` answers 200, ``/readyz``
200 when ready and 503 with its reasons, a component's route failing mid-answer ends it."""

from __future__ import annotations

import asyncio

from aiohttp import web

from tests.http.helpers import ServerFactory


async def test_healthz_answers_200(serve: ServerFactory) -> None:
    """/healthz answers 200 while the process runs."""
    server = await serve()
    assert (await server.get("/healthz"))[0] == 200


class _Component:
    def __init__(self, name: str, required: bool, reason: str | None) -> None:
        self.name = name
        self.required = required
        self.reason = reason

    async def start(self) -> None:
        pass

    def readiness(self) -> str | None:
        return self.reason

    async def aclose(self) -> None:
        pass


async def test_readyz_answers_200_when_ready(serve: ServerFactory) -> None:
    """/readyz answers 200 when the bus and required parts are ready; optional ones are reported."""
    server = await serve(
        components=[lambda bridge: _Component("otlp", False, "collector unreachable")]
    )
    status, answer = await server.get("/readyz")
    assert status == 200
    assert answer["ready"] is True
    assert answer["checks"]["bus"]["ready"] is True
    assert answer["checks"]["otlp"] == {
        "ready": False,
        "required": False,
        "reason": "collector unreachable",
    }


async def test_readyz_answers_503_with_reasons(serve: ServerFactory) -> None:
    """A required part that is not ready makes /readyz answer 503 with its reason."""
    server = await serve(components=[lambda bridge: _Component("alerts", True, "outbox full")])
    status, answer = await server.get("/readyz")
    assert status == 503
    assert answer["ready"] is False
    assert answer["checks"]["alerts"]["reason"] == "outbox full"


class _FailingMidAnswer(_Component):
    """A component serving /failing: an answer begun, then a fault."""

    def routes(self) -> list[web.RouteDef]:
        async def failing(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(b"begun ")
            raise RuntimeError("a fault after the answer began")

        return [web.get("/failing", failing)]


async def test_a_fault_after_an_answer_began_ends_it_without_a_second_answer(
    serve: ServerFactory,
) -> None:
    """A route that fails once its answer is under way is not answered a second time (a 500
    written into the open body): the answer ends there."""
    server = await serve(components=[lambda bridge: _FailingMidAnswer("failing", False, None)])
    assert server.bridge.address is not None
    reader, writer = await asyncio.open_connection(*server.bridge.address)
    try:
        writer.write(b"GET /failing HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        sent = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    assert sent.startswith(b"HTTP/1.1 200")
    assert sent.count(b"HTTP/1.1") == 1
    assert b"begun" in sent
