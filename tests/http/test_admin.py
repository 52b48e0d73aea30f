"""The admin routes (``/v1/integration``, docs/http-api.md): the admin token required, the switch
and intervals read and set, a bad body refused naming its fault."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bridge.app import default_components
from bridge.http import build_app
from bridge.sinks.alerts import alert_sink
from tests.http.helpers import JSON, ServerFactory
from tests.support import ADMIN_TOKEN, ROOT


@pytest.mark.parametrize("path", ["/v1/integration", "/v1/stream"])
async def test_admin_endpoints_answer_403_without_a_configured_token(
    serve: ServerFactory, path: str
) -> None:
    """With no EXESDB_ADMIN_TOKEN, admin endpoints answer 403 saying how to enable them."""
    server = await serve(EXESDB_ADMIN_TOKEN="")
    status, answer = await server.get(path, token="anything")
    assert status == 403
    assert "EXESDB_ADMIN_TOKEN" in answer["detail"]


@pytest.mark.parametrize("token", [None, "", "wrong-token", ADMIN_TOKEN + "x", "é"])
async def test_admin_endpoints_answer_401_for_a_missing_or_wrong_token(
    serve: ServerFactory, token: str | None
) -> None:
    """Without the right bearer token admin endpoints answer 401; the detail says to send one
    when none came, and that the one sent is not the token when one came."""
    server = await serve()
    status, answer = await server.get("/v1/integration", token=token)
    assert status == 401
    assert answer["error"] == "unauthorized"
    if token:
        assert answer["detail"] == "the admin token sent is not the bridge's EXESDB_ADMIN_TOKEN"
    else:
        assert answer["detail"].startswith("send Authorization: Bearer <EXESDB_ADMIN_TOKEN>")


async def test_admin_refusals_are_counted_by_reason_on_every_admin_route(
    serve: ServerFactory,
) -> None:
    """Each 401 of an admin route, the edge's (/v1/integration) and the alert sink's
    (/v1/alerts, the ack), is counted in exesdb_http_admin_refused_total by reason, missing or
    wrong, both shown at 0 from the start: nothing else tells of a token guessed at."""
    server = await serve(components=[alert_sink])

    def refused(reason: str) -> float | None:
        return server.bridge.registry.get_sample_value(
            "exesdb_http_admin_refused_total", {"reason": reason}
        )

    assert (refused("missing"), refused("wrong")) == (0.0, 0.0)
    assert (await server.get("/v1/integration"))[0] == 401
    assert (await server.get("/v1/integration", token="guess-1"))[0] == 401
    assert (await server.get("/v1/alerts", token="guess-2"))[0] == 401
    status, _ = await server.post(
        b'{"ack_by": "x"}',
        signature=None,
        headers={"Authorization": "Bearer guess-3"},
        path="/v1/alerts/a/ack",
    )
    assert status == 401
    assert (await server.get("/v1/alerts", token=ADMIN_TOKEN))[0] == 200
    assert (refused("missing"), refused("wrong")) == (1.0, 3.0)


@pytest.mark.parametrize(
    ("bearer", "header", "which"),
    [
        (ADMIN_TOKEN, "stale-token", "the X-ExESDB-Admin-Token one is not"),
        ("stale-token", ADMIN_TOKEN, "the Authorization: Bearer one is not"),
        ("guess-1", "guess-2", "neither is"),
    ],
    ids=["header-wrong", "bearer-wrong", "both-wrong"],
)
async def test_an_admin_request_whose_two_token_headers_disagree_is_answered_401_saying_so(
    serve: ServerFactory, bearer: str, header: str, which: str
) -> None:
    """Authorization: Bearer and X-ExESDB-Admin-Token carrying different tokens are refused 401
    saying they disagree and which is not the token, counted as wrong (the wrong one was
    silently ignored beside a right bearer token); the same token in both is let in."""
    server = await serve()

    async def get_integration(headers: dict[str, str]) -> tuple[int, Any]:
        async with server.session.get(server.url + "/v1/integration", headers=headers) as answer:
            return answer.status, await answer.json()

    status, answer = await get_integration(
        {"Authorization": f"Bearer {bearer}", "X-ExESDB-Admin-Token": header}
    )
    assert status == 401
    assert answer["error"] == "unauthorized"
    assert answer["detail"].startswith(
        "Authorization: Bearer and X-ExESDB-Admin-Token carry different tokens ("
    )
    assert which in answer["detail"]
    assert ADMIN_TOKEN not in answer["detail"]
    refused = server.bridge.registry.get_sample_value(
        "exesdb_http_admin_refused_total", {"reason": "wrong"}
    )
    assert refused == 1.0
    both = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-ExESDB-Admin-Token": ADMIN_TOKEN}
    assert (await get_integration(both))[0] == 200


async def test_an_admin_token_configured_with_surrounding_whitespace_is_taken_trimmed(
    serve: ServerFactory,
) -> None:
    """EXESDB_ADMIN_TOKEN read from a file with its line break (a Kubernetes secret made with
    --from-file) is the token without it, as the token sent is: it is accepted."""
    server = await serve(EXESDB_ADMIN_TOKEN=f" {ADMIN_TOKEN}\n")
    assert (await server.get("/v1/integration", token=ADMIN_TOKEN))[0] == 200


async def test_get_integration_reports_switch_and_intervals(serve: ServerFactory) -> None:
    """GET /v1/integration answers enabled and both intervals in milliseconds."""
    server = await serve(EXESDB_HEALTH_BROADCAST_INTERVAL="1000")
    status, answer = await server.get("/v1/integration", token=ADMIN_TOKEN)
    assert status == 200
    assert answer == {
        "enabled": True,
        "health_broadcast_interval": 1000,
        "metrics_broadcast_interval": 60_000,
    }


async def test_post_integration_switches_at_runtime(serve: ServerFactory) -> None:
    """POST /v1/integration {"enabled": false} turns broadcasting off, true turns it back on."""
    server = await serve()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for enabled in (False, True):
        async with server.session.post(
            server.url + "/v1/integration", json={"enabled": enabled}, headers=auth
        ) as response:
            assert response.status == 200
            assert (await response.json())["enabled"] is enabled
        assert server.bridge.integration.enabled() is enabled


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b'{"enabled": "no"}', "enabled"),
        (b"[]", "enabled"),
        (b"[" * 100_000, "body"),
        (b'{"enabled": \xff}', "body"),
    ],
)
async def test_post_integration_refuses_a_bad_body(
    serve: ServerFactory, body: bytes, field: str
) -> None:
    """A body that is not {"enabled": bool} answers 400 naming the field (or the body)."""
    server = await serve()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": JSON}
    async with server.session.post(
        server.url + "/v1/integration", data=body, headers=headers
    ) as response:
        assert (response.status, (await response.json())["field"]) == (400, field)
    assert server.bridge.integration.enabled()


async def test_post_integration_refuses_a_key_given_twice_naming_it(
    serve: ServerFactory,
) -> None:
    """{"enabled": true, "enabled": false} is 400 malformed naming enabled, as ingest refuses a
    key given twice (parsers differ on which one counts), and the switch is left as it is."""
    server = await serve()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": JSON}
    async with server.session.post(
        server.url + "/v1/integration",
        data=b'{"enabled": true, "enabled": false}',
        headers=headers,
    ) as response:
        answer = await response.json()
    assert (response.status, answer) == (
        400,
        {"error": "malformed", "detail": "the key 'enabled' is given twice", "field": "enabled"},
    )
    assert server.bridge.integration.enabled()


@pytest.mark.parametrize(
    ("body", "field", "meant"),
    [
        (b'{"enabled": false, "for": "1h"}', "for", None),
        (b'{"enable": false}', "enable", "enabled"),
    ],
)
async def test_post_integration_refuses_an_unknown_field_naming_it(
    serve: ServerFactory, body: bytes, field: str, meant: str | None
) -> None:
    """A field the switch does not take is 400 invalid naming it (and the one meant when one is
    close), as the ack route's are, and the switch is left as it is: none is ignored."""
    server = await serve()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": JSON}
    async with server.session.post(
        server.url + "/v1/integration", data=body, headers=headers
    ) as response:
        answer = await response.json()
    assert (response.status, answer["error"], answer["field"]) == (400, "invalid", field)
    hint = f"; did you mean {meant!r}?" if meant else ""
    assert answer["detail"] == f"unknown field {field!r}{hint} (the fields: enabled)"
    assert server.bridge.integration.enabled()


@pytest.mark.parametrize("body", [b"{}", b"[]", b"true"])
async def test_post_integration_without_enabled_is_told_it_is_missing(
    serve: ServerFactory, body: bytes
) -> None:
    """A body without enabled ({}, or one that is no object) is 400 invalid naming enabled as
    missing, in the ack route's words, and the switch is left as it is."""
    server = await serve()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": JSON}
    async with server.session.post(
        server.url + "/v1/integration", data=body, headers=headers
    ) as response:
        answer = await response.json()
    assert (response.status, answer) == (
        400,
        {
            "error": "invalid",
            "detail": 'enabled is missing: give it, {"enabled": true|false}',
            "field": "enabled",
        },
    )
    assert server.bridge.integration.enabled()


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        ({}, "(none sent)"),
        ({"Content-Type": "text/plain"}, "(not text/plain)"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "application/x-www-form"),
        ({"Content-Type": f"{JSON}; charset=latin-1"}, "not 'latin-1'"),
        ({"Content-Type": f"{JSON}; charset=bogus"}, "not 'bogus'"),
        ({"Content-Type": JSON, "Content-Encoding": "br"}, "'br'"),
    ],
    ids=["none", "text", "form", "latin-1", "bogus-charset", "brotli"],
)
async def test_post_integration_refuses_a_body_that_is_not_json_with_415(
    serve: ServerFactory, headers: dict[str, str], said: str
) -> None:
    """As the ack route and ingest do: a Content-Type other than application/json, a charset
    other than UTF-8 (an unknown one included, not a 500) or a Content-Encoding the bridge does
    not expand is 415 unsupported_media_type saying what was sent, the switch left as it is."""
    server = await serve()
    sent = {"Authorization": f"Bearer {ADMIN_TOKEN}", **headers}
    async with server.session.post(
        server.url + "/v1/integration",
        data=b'{"enabled": false}',
        headers=sent,
        skip_auto_headers=["Content-Type"],
    ) as response:
        answer = await response.json()
    assert (response.status, answer["error"]) == (415, "unsupported_media_type")
    assert said in answer["detail"]
    assert server.bridge.integration.enabled()


def _documented_access() -> dict[tuple[str, str], str]:
    """(method, path) → its access column in docs/http-api.md's table of routes."""
    table = (ROOT / "docs" / "http-api.md").read_text().split("| method and path |")[1]
    access: dict[tuple[str, str], str] = {}
    for line in table.split("\n\n")[0].splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        for method, path in re.findall(r"`([A-Z]+) (/[^`]*)`", cells[0]):
            access[(method, path)] = cells[-1]
    return access


async def test_every_route_but_the_documented_open_ones_needs_the_admin_token(
    serve: ServerFactory, tmp_path: Path
) -> None:
    """Every route the bridge serves is in docs/http-api.md's table; each marked admin answers
    401 without the token in a header, however else it is offered (query string, cookie), and
    each marked open answers without it."""
    server = await serve(default_components(), EXESDB_STATE_DIR=str(tmp_path))
    documented = _documented_access()
    served = {
        (route.method, route.resource.canonical)
        for route in build_app(server.bridge).router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    assert served == set(documented)
    token = ADMIN_TOKEN
    for method, path in sorted(served):
        url = server.url + path.replace("{alert_id}", "a1").replace("{name}", "pages.css")
        offers: list[dict[str, Any]] = [
            {},
            {"params": {"token": token}},
            {"params": {"access_token": token}},
            {"params": {"admin_token": token}},
            {"cookies": {"token": token, "EXESDB_ADMIN_TOKEN": token}},
            {"headers": {"Authorization": f"Basic {token}"}},
        ]
        for offer in offers:
            async with server.session.request(method, url, json={}, **offer) as response:
                if "admin token" in documented[(method, path)]:
                    assert response.status == 401, (method, path, offer)
                elif documented[(method, path)] == "open":
                    assert response.status != 401, (method, path, offer)
