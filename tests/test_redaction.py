"""URLs are shown one way everywhere: origin, a credentials marker, a path marker."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.redaction import redact_urls, safe_url, span_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://user:pw@hooks.example:8443/a/b?token=x#f",
            "https://user:<redacted>@hooks.example:8443/…",
        ),
        (
            "rediss://user:secret@redis.example:6380/2",
            "rediss://user:<redacted>@redis.example:6380/…",
        ),
        ("redis://:pw@host:6379", "redis://:<redacted>@host:6379"),
        ("https://tok3n@host/", "https://<redacted>@host"),
        ("http://[::1]:9000/", "http://[::1]:9000"),
        ("https://hooks.example/services/T0/B0/tok3n", "https://hooks.example/…"),
        ("redis://localhost", "redis://localhost"),
        ("notaurl", "<not a URL>"),
        ("http://host:99999/", "<not a URL>"),
    ],
)
def test_safe_url_shows_origin_and_markers_only(url: str, shown: str) -> None:
    """Passwords, paths and queries are replaced by markers; scheme, host and port stay."""
    assert safe_url(url) == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://user:pw@hooks.example:8443/a?t=x",
            "https://REDACTED:REDACTED@hooks.example:8443/…",
        ),
        ("https://tok3n@host/", "https://REDACTED:REDACTED@host"),
        ("redis://:pw@host:6379", "redis://REDACTED:REDACTED@host:6379"),
        # A URL already shown (a NotificationStatus's recipient) reads the same.
        ("https://user:<redacted>@host/…", "https://REDACTED:REDACTED@host/…"),
        ("https://hooks.example/services/tok3n", "https://hooks.example/…"),
        ("notaurl", "<not a URL>"),
    ],
)
def test_span_url_marks_user_info_as_the_semantic_conventions_do(url: str, shown: str) -> None:
    """A span's url.full holds no user name or password: any user info reads
    REDACTED:REDACTED@ (OpenTelemetry's url.full rule); the rest is as safe_url shows it."""
    assert span_url(url) == shown


def test_redact_urls_rewrites_every_url_in_a_text() -> None:
    """Each URL inside free text is shown as safe_url shows it; other words stay."""
    text = "bad values 'https://user:pw@host/x' and https://h2/hook-tok3n, memory"
    assert (
        redact_urls(text) == "bad values 'https://user:<redacted>@host/…' and https://h2/…, memory"
    )


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("redis:/default:hunter2@host:6379", "redis:<redacted>@host:6379"),
        ("redis//default:hunter2@host", "redis//default:<redacted>@host"),
        ("got 'alice:hunter2@hooks.example/x'", "got 'alice:<redacted>@hooks.example/x'"),
        ("user:pa/ss@host", "user:<redacted>@host"),
        (":hunter2@host", ":<redacted>@host"),
        ("a https://u:pw@h/x and b:pw@c", "a https://u:<redacted>@h/… and b:<redacted>@c"),
        ("https://u:<redacted>@h", "https://u:<redacted>@h"),
        ("alice@example.com at 10:30", "alice@example.com at 10:30"),
        ("collector:4317", "collector:4317"),
        ("at redis://u:p,w@h:6379/0 now", "at redis://u:<redacted>@h:6379/… now"),
        ("'redis://u:p'w@h:6379', then", "'redis://u:<redacted>@h:6379', then"),
        ("https://h/x,https://k", "https://h/…,https://k"),
    ],
)
def test_redact_urls_hides_a_password_even_without_a_scheme(text: str, shown: str) -> None:
    """A ``user:password@`` outside a well-formed URL (a URL mistyped without ``//``) has its
    password redacted; text that only looks similar stays."""
    assert redact_urls(text) == shown


# Modules that take URLs apart, and why none of them shows one its own way.
URL_SPLITTERS = {
    "bridge/redaction.py": "the one way a URL is shown",
    "bridge/config.py": "checks EXESDB_BUS's scheme; shows settings through redaction",
    "bridge/urls.py": (
        "checks the URLs the bridge is given and takes their userinfo out for an auth header"
        " (split_userinfo); shows them through redaction"
    ),
    "bridge/healthcheck.py": "connects to the URL it built from EXESDB_HTTP_ADDR",
    "bridge/sinks/otlp/mapping.py": "the host for server.address; shows through redaction",
    "collectors/lifecycle.py": "names the bus's scheme only",
    "bridge/httpclient/proxy.py": "a URL's scheme, host and port against no_proxy; shows none",
    "bridge/receivers.py": "whether a URL holds credentials; shows none",
    "bridge/tracing.py": "the host and port for server.address; url.full through redaction",
    "bridge/build.py": "the folder of an editable install's file:// URL; shows none",
}


def test_only_known_modules_take_urls_apart() -> None:
    """A module splitting URLs is one of the known ones, each with a reason that is not showing
    a URL its own way (that is bridge.redaction's job): a new one needs a look first."""
    from tests.support import ROOT

    splitting = {
        str(path.relative_to(ROOT))
        for folder in ("bridge", "collectors")
        for path in (ROOT / folder).rglob("*.py")
        if any(name in path.read_text() for name in ("urlsplit", "urlparse", "yarl"))
    }
    assert splitting == set(URL_SPLITTERS)


# The two forms redact_urls replaces, as one regular expression: what it finds is what
# redact_urls must find (this expression, searched, is quadratic on long texts; redact_urls not).
_URL = r"\b[a-zA-Z][a-zA-Z0-9+.-]*://(?:[^\s/?#]*@)?[^\s,'\"]+"
_USERINFO = r"(?P<name>[^\s:/@,'\"]*):[^\s@,'\"]+@"
_REFERENCE = re.compile(f"(?P<url>{_URL})|{_USERINFO}")
# Pieces that make URLs, user infos and the near misses between them.
_PIECES = [
    "http://", "://", ":/", "a", "B", "1", ":", "/", "@", ",", " ", "\n", ".", "-", "+", "'",
    '"', "?", "#", "_", "é", "!", "u:p@", "h:99", "[::1]", "<redacted>",
]  # fmt: skip


def _reference(text: str) -> str:
    return _REFERENCE.sub(
        lambda m: safe_url(m["url"]) if m["url"] is not None else f"{m['name']}:<redacted>@", text
    )


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40).map("".join))
def test_redact_urls_replaces_what_the_regular_expression_finds(text: str) -> None:
    """redact_urls finds exactly the URLs and user infos the regular expression of the two
    forms finds, tried in its order at each position, and shows them the same way."""
    assert redact_urls(text) == _reference(text)


@pytest.mark.parametrize(
    "text",
    [
        "x" * 16_384,
        "a:" * 8_192,
        "a." * 8_192,
        "u:p@" + "a:" * 8_192,
        "x:http://y@" * 1_500,
        "http://h," * 1_800 + "@",
    ],
    ids=["word", "colons", "dots", "colons after a user info", "user infos", "urls"],
)
def test_redact_urls_takes_linear_time_on_long_texts_without_spaces(text: str) -> None:
    """A 16 KiB text without a space (an alert's metadata value) is redacted at once, not in
    the seconds a regular expression scanning ahead from every position takes (a minute at
    64 KiB, the event loop stopped meanwhile)."""
    began = time.perf_counter()
    redact_urls(text)
    assert time.perf_counter() - began < 0.5
