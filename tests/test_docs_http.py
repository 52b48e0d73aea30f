"""docs/http-api.md stays true to the HTTP edge: the ingest recipe works, every route, refusal
and status code is named."""

from __future__ import annotations

import ast
import io
import os
import re
import subprocess
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from typing import Final

import pytest

from bridge.app import Bridge
from bridge.bus import Keyring, Rejection, ReplayGuard, Verifier
from bridge.headers import PLAIN_HTTP_REFUSAL
from bridge.http import build_app
from bridge.messages import format_timestamp
from bridge.settings import Settings
from tests.doc_text import fenced, page, section
from tests.http.helpers import body_of, envelope
from tests.support import ROOT, TEST_SECRET, ThreadedBridge, free_port, require_binary


@pytest.mark.parametrize("finder", ["EXESDB_URL", "EXESDB_HTTP_ADDR"])
def test_the_ingest_recipe_works(monkeypatch: pytest.MonkeyPatch, finder: str) -> None:
    """The Python signing recipe of docs/http-api.md, run as written, gets a 202 from a real
    bridge on another port, found as the CLI finds it: by EXESDB_URL, or in a shell set up as
    the README's (only EXESDB_HTTP_ADDR exported)."""
    [block] = fenced(section(page("http-api"), "Ingest"), "python")
    monkeypatch.setenv("SECRET_KEY_BASE", TEST_SECRET)
    monkeypatch.delenv("EXESDB_URL", raising=False)
    with ThreadedBridge(EXESDB_INGEST="true") as server:
        # A port that is not the default one.
        if finder == "EXESDB_URL":
            monkeypatch.setenv("EXESDB_URL", f"http://{server.host}:{server.port}")
            monkeypatch.setenv("EXESDB_HTTP_ADDR", f"127.0.0.1:{free_port()}")  # URL wins
        else:
            monkeypatch.setenv("EXESDB_HTTP_ADDR", f"0.0.0.0:{server.port}")  # asked on loopback
        printed = io.StringIO()
        with redirect_stdout(printed):
            exec(compile(block, "docs/http-api.md", "exec"), {})  # our own docs
        assert printed.getvalue().strip() == "202"
        assert (
            server.bridge.registry.get_sample_value(
                "exesdb_bus_published_total",
                {"pubsub": "ex_esdb_metrics", "tag": "performance_metric"},
            )
            == 1
        )


@pytest.mark.parametrize("finder", ["EXESDB_URL", "EXESDB_HTTP_ADDR"])
def test_the_node_ingest_recipe_works(finder: str) -> None:
    """The Node.js signing recipe of docs/http-api.md, run by node as written, gets a 202 from a
    real bridge on another port, found as the Python recipe finds it, and its message is
    published."""
    node = require_binary("node")
    [block] = fenced(section(page("http-api"), "Ingest"), "js")
    env = {"PATH": os.environ["PATH"], "SECRET_KEY_BASE": TEST_SECRET}
    with ThreadedBridge(EXESDB_INGEST="true") as server:
        if finder == "EXESDB_URL":
            env["EXESDB_URL"] = f"http://{server.host}:{server.port}"
            env["EXESDB_HTTP_ADDR"] = f"127.0.0.1:{free_port()}"  # URL wins
        else:
            env["EXESDB_HTTP_ADDR"] = f"0.0.0.0:{server.port}"  # asked on loopback
        completed = subprocess.run(
            [node, "-e", block], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert (completed.returncode, completed.stdout) == (0, "202\n"), completed.stderr
        assert (
            server.bridge.registry.get_sample_value(
                "exesdb_bus_published_total",
                {"pubsub": "ex_esdb_metrics", "tag": "performance_metric"},
            )
            == 1
        )


def test_the_errors_section_names_the_one_refusal_that_is_no_json_object() -> None:
    """The Errors section says every refusal is a JSON object with a ``field`` for a 400, and
    names the exception: the plain HTTP request on the TLS port, answered in Go's words."""
    errors = " ".join(section(page("http-api"), "Errors").split())
    assert "Every refusal is a JSON object" in errors
    assert "plain HTTP request sent to the TLS port" in errors
    assert "(security.md#plain-http-on-the-tls-port)" in errors
    assert PLAIN_HTTP_REFUSAL in " ".join(page("security").split())


def test_the_http_page_names_every_status_code_of_ingest() -> None:
    """The Ingest section lists every status ingest can answer."""
    ingest = section(page("http-api"), "Ingest")
    for status in (202, 400, 401, 404, 409, 413, 415, 503):
        assert f"| {status} |" in ingest


def test_the_full_replay_memory_refusal_is_quoted_as_the_bridge_words_it() -> None:
    """The 409 row quotes a ts refused by a full replay memory in the verifier's own words,
    the time it holds ids dated after in its place."""
    row = next(
        line for line in section(page("http-api"), "Ingest").splitlines() if "| 409 |" in line
    )
    quoted = re.search(r"`(ts is older than [^`]*)`", row)
    assert quoted is not None, row
    verifier = Verifier(
        Keyring.from_secrets(TEST_SECRET),
        ReplayGuard(300.0, capacity=1),
        window_seconds=300.0,
        max_bytes=1_048_576,
    )
    sent = format_timestamp(datetime.now(UTC) - timedelta(seconds=2))
    first, second, late = envelope(ts=sent), envelope(), envelope(ts=sent)
    assert not isinstance(verifier.verify_batch([body_of(first), body_of(second)]), Rejection)
    refused = verifier.verify_batch([body_of(late)])  # a new id, as old as the one forgotten
    assert isinstance(refused, Rejection)
    assert refused.detail == re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z", sent, quoted.group(1))


# Answers no client reads: the connection closed before the request was read.
_UNREAD_CODES: Final = {"connection_lost"}


def _refusals() -> set[tuple[int, str]]:
    """Each (status, error code) a refusal of bridge/ answers with, written out in the call."""
    found = set()
    for path in sorted((ROOT / "bridge").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            status, code = node.args[:2]
            if name != "error_response" or not isinstance(status, ast.Constant):
                continue
            if isinstance(code, ast.Constant):
                found.add((int(str(status.value)), str(code.value)))
    return found


def test_every_refusal_the_bridge_answers_is_on_the_pages_with_its_status() -> None:
    """Each error code a route, the listener or the web config answers with is named on
    docs/http-api.md or docs/security.md beside its status (`403 `admin_disabled``)."""
    text = " ".join((page("http-api") + page("security")).split())
    refusals = _refusals()
    assert (403, "admin_disabled") in refusals
    assert (429, "rate_limited") in refusals
    unnamed = sorted(
        f"{status} {code}"
        for status, code in refusals
        if code not in _UNREAD_CODES
        and not re.search(rf"\b{status}\b[^|]{{0,60}}`{code}`", text)
        and not re.search(rf"\| {status} \|[^\n]*?`{code}`", page("http-api"))
    )
    assert unnamed == [], f"name these refusals on docs/http-api.md: {unnamed}"


def test_the_http_page_names_every_route() -> None:
    """Each route the bridge serves (its own, its components') is in docs/http-api.md's table."""
    app = build_app(Bridge(Settings(EXESDB_NODE="n1")))
    routes = {
        f"{route.method} {route.resource.canonical}"
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    assert "POST /v1/alerts/{alert_id}/ack" in routes  # components' routes are counted too
    table = page("http-api").split("\n## ", 1)[0]
    missing = sorted(route for route in routes if f"`{route}`" not in table)
    assert not missing, f"add to the table of docs/http-api.md: {missing}"
