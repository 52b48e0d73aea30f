"""``EXESDB_ALERTMANAGER_URL`` is Alertmanager's own URL, to which the bridge adds
``/api/v2/alerts``: one ending in another of Alertmanager's endpoints is refused with the URL
meant, one with a route prefix (``--web.route-prefix``) is taken."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import load_settings
from tests.support import check_config

pytestmark = pytest.mark.usefixtures("clean_env")

_POSTS = "the bridge posts to Alertmanager's own URL + /api/v2/alerts, so give that URL, e.g."


@pytest.mark.parametrize(
    ("url", "said"),
    [
        # Its health, readiness and reload endpoints: a probe's or a script's URL.
        ("http://am:9093/-/healthy", f"ends in /-/healthy: {_POSTS} http://am:9093"),
        ("http://am:9093/-/ready/", f"ends in /-/ready: {_POSTS} http://am:9093"),
        ("http://am:9093/-/reload", f"ends in /-/reload: {_POSTS} http://am:9093"),
        # A scrape config's target.
        ("https://am.example/metrics", f"ends in /metrics: {_POSTS} https://am.example"),
        # The API's other paths, v2's and v1's (removed in Alertmanager 0.27).
        ("http://am:9093/api/v2/status", f"ends in /api/v2/status: {_POSTS} http://am:9093"),
        (
            "http://am:9093/api/v2/alerts/groups",
            f"ends in /api/v2/alerts/groups: {_POSTS} http://am:9093",
        ),
        ("http://am:9093/api/v1/silences", f"ends in /api/v1/silences: {_POSTS} http://am:9093"),
        ("http://am:9093/api/v1/receivers", f"ends in /api/v1/receivers: {_POSTS} http://am:9093"),
        ("http://am:9093/api/v1", f"ends in /api/v1: {_POSTS} http://am:9093"),
        # The web UI's files and the profiles.
        ("http://am:9093/script.js", f"ends in /script.js: {_POSTS} http://am:9093"),
        ("http://am:9093/debug/pprof/", f"ends in /debug/pprof: {_POSTS} http://am:9093"),
        ("http://am:9093/debug/pprof/heap", f"ends in /debug/pprof/heap: {_POSTS} http://am:9093"),
        (
            "http://am:9093/debug/pprof/goroutine",
            f"ends in /debug/pprof/goroutine: {_POSTS} http://am:9093",
        ),
        # A silence's page, by its id (named as <id>): v2's, v1's, and the list's path with one.
        (
            "http://am:9093/api/v2/silence/9d1c6a2e-4f5b-4c1e-9a43-0b6e1f2d3c4a",
            f"ends in /api/v2/silence/<id>: {_POSTS} http://am:9093",
        ),
        (
            "http://am:9093/api/v1/silence/abc",
            f"ends in /api/v1/silence/<id>: {_POSTS} http://am:9093",
        ),
        (
            "http://am:9093/api/v2/silences/abc/",
            f"ends in /api/v2/silences/<id>: {_POSTS} http://am:9093",
        ),
        # Behind a route prefix: the URL meant keeps it, shown as a path may be (it may hold a
        # token), and so is the user's password.
        (
            "https://ops:hunter2@am.example/alertmanager/-/healthy",
            f"ends in /-/healthy: {_POSTS} https://ops:<redacted>@am.example/…",
        ),
    ],
)
def test_a_url_ending_in_another_alertmanager_endpoint_is_refused_with_the_url_meant(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str, said: str
) -> None:
    """EXESDB_ALERTMANAGER_URL ending in one of Alertmanager's endpoints other than the alerts
    API (its health check, /metrics, another API path), where every post would go to that path
    + /api/v2/alerts and get 404, stops check-config (exit 2) naming the variable, the endpoint
    and the URL meant, never a password."""
    status, out, err = check_config(monkeypatch, capsys, EXESDB_ALERTMANAGER_URL=url)
    assert status == 2
    assert out == ""
    assert f"\n  EXESDB_ALERTMANAGER_URL: {said}\n" in err
    assert "hunter2" not in err


@pytest.mark.parametrize(
    "url",
    [
        "http://am:9093",
        "http://am:9093/alertmanager",  # --web.route-prefix=/alertmanager, or a proxy's path
        "http://am:9093/alertmanager/",
        "https://mimir.example/alertmanager",  # Mimir's and Cortex's Alertmanager
        "http://grafana:3000/api/alertmanager/grafana",
        # Kubernetes' API server proxying to the Alertmanager service: /api/v1 of its own.
        "https://k8s.example:6443/api/v1/namespaces/monitoring/services/alertmanager:9093/proxy",
        "http://am:9093/metrics-am",
    ],
)
def test_an_alertmanager_url_with_a_route_prefix_is_taken(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """EXESDB_ALERTMANAGER_URL with a path that is no Alertmanager endpoint, a route prefix or
    a proxy's path, is taken as it is (without a trailing /): the bridge posts to it +
    /api/v2/alerts."""
    monkeypatch.setenv("EXESDB_ALERTMANAGER_URL", url)
    assert load_settings().alertmanager_url == url.rstrip("/")


def test_a_receivers_file_s_alertmanager_url_is_held_to_the_same_rule(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The receivers file's alertmanager.url ending in one of Alertmanager's endpoints stops
    check-config (exit 2) in the same words, naming the file and the key."""
    receivers = tmp_path / "receivers.yml"
    receivers.write_text("alertmanager:\n  url: http://am:9093/alertmanager/-/healthy\n")
    status, _, err = check_config(monkeypatch, capsys, EXESDB_WEBHOOK_CONFIG_FILE=str(receivers))
    assert status == 2
    assert (
        f"\n  EXESDB_WEBHOOK_CONFIG_FILE: {receivers}: alertmanager.url: ends in /-/healthy:"
        f" {_POSTS} http://am:9093/…\n"
    ) in err
