"""URLs are shown one way everywhere: origin, a credentials marker, a path marker."""

from __future__ import annotations

import time

import pytest

from bridge.redaction import (
    MAX_READ,
    names_secret,
    redact_sent,
    redact_urls,
    safe_bus_url,
    safe_otlp_endpoint,
    safe_url,
    span_url,
)


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
    ("endpoint", "shown"),
    [
        ("http://collector:4317", "http://collector:4317"),
        ("https://collector:4318/otlp?token=x", "https://collector:4318/…"),
        ("127.0.0.1:4317", "127.0.0.1:4317"),
        ("collector:4317", "collector:4317"),
        ("collector", "collector"),
        ("unix:/run/otel.sock", "unix:/run/otel.sock"),
        ("dns:///collector:4317", "dns:///collector:4317"),
        ("user:pw@collector:4317", "<not a URL>"),
        ("collector:4317?token=x", "<not a URL>"),
        ("two words", "<not a URL>"),
    ],
)
def test_an_otlp_endpoint_the_grpc_exporter_dials_as_it_is_is_shown_whole(
    endpoint: str, shown: str
) -> None:
    """A gRPC endpoint without a URL's scheme (host:port, a target URI) is shown as given; a URL
    as safe_url shows it; one with an @, a query or a blank is not shown."""
    assert safe_otlp_endpoint(endpoint) == shown


@pytest.mark.parametrize(
    ("url", "pieces"),
    [
        # A password with an unencoded "/", "?" or "#" before its "@": what reads as the host
        # (or the user and port) is a piece of the user info.
        ("redis://user:pa@ss/word@host:6379/0", ("user", "pa", "ss", "word")),
        ("https://u:p@x/y@host/path", ("u:", "p@", "x", "y@")),
        ("redis://default:12/w@host:6379", ("default", "12", "w@")),
        ("https://u:1?x@host", ("u:", "1", "x@")),
        ("https://u:p@x#y@host", ("u:", "p@", "x", "y@")),
        ("https://tok/3n@hooks.example/x", ("tok", "3n")),
        # Or a host with an "@" in its path: which it is cannot be told, so neither is shown.
        ("https://hooks.example/notify?to=ops@example.com", ("hooks", "ops")),
    ],
)
def test_a_url_with_an_at_past_its_host_shows_no_piece_of_its_user_info(
    url: str, pieces: tuple[str, ...]
) -> None:
    """A URL with an ``@`` in its path, query or fragment may have a password running to it:
    shown as ``scheme://<redacted>@…`` by safe_url, safe_bus_url, span_url and redact_urls,
    which reads the same again (a receiver key's shown part is read back)."""
    scheme = url.partition(":")[0]
    hidden = f"{scheme}://<redacted>@…"
    shown = [safe_url(url), safe_bus_url(url), span_url(url), redact_urls(f"at {url}: refused")]
    assert shown[:2] == [hidden, hidden]
    assert shown[2] == f"{scheme}://REDACTED:REDACTED@…"
    assert shown[3] == f"at {hidden}: refused"
    assert safe_url(hidden) == hidden
    for piece in pieces:
        assert not any(piece in text.removeprefix(f"{scheme}://") for text in shown), piece


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
        # The bridge's own log lines: a URL, then a colon and what is said of it.
        (
            "cannot post to Alertmanager http://alertmanager:9093: HTTP 500",
            "cannot post to Alertmanager http://alertmanager:9093: HTTP 500",
        ),
        (
            "Redis at redis://:pw@redis:6379/0: connection refused",
            "Redis at redis://:<redacted>@redis:6379/…: connection refused",
        ),
        (
            "webhook receiver https://hooks.example/…#0123456789abcdef: failing",
            "webhook receiver https://hooks.example/…#0123456789abcdef: failing",
        ),
        # Prose around a URL: a full stop, brackets opened before it.
        ("see https://u:pw@h.example/x.", "see https://u:<redacted>@h.example/…."),
        ("(at http://h:80)", "(at http://h:80)"),
        ("<https://h.example:8443>, then", "<https://h.example:8443>, then"),
        ("[http://[::1]:9570]", "[http://[::1]:9570]"),
        # Credentials in a URL right after a bracket: the URL's path (a token) is hidden too.
        ("(http://u:pw@b.example/tok/y)", "(http://u:<redacted>@b.example/…)"),
        ("[https://u:pw@h.example/tok]", "[https://u:<redacted>@h.example/…]"),
        # A bracket the URL opened is its own.
        ("http://[::1]:9570", "http://[::1]:9570"),
        ("https://<redacted>@h.example", "https://<redacted>@h.example"),
        # A scheme alone, named in a sentence, is no URL to hide.
        (
            "(for such a Redis, EXESDB_BUS is redis://)",
            "(for such a Redis, EXESDB_BUS is redis://)",
        ),
        ("give https://.", "give https://."),
        ("https://h.example/tok://)", "https://h.example/…)"),
    ],
)
def test_redact_urls_leaves_punctuation_after_a_url_outside_it(text: str, shown: str) -> None:
    """A colon, full stop or closing bracket that ends a URL in a sentence (``Redis at
    redis://h:6379: refused``) is read as the text's, not the URL's: the URL is shown, not
    ``<not a URL>`` for a port that ends in a colon, and the punctuation stays."""
    assert redact_urls(text) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # A receiver's outbox key, as the log names it: kept whole, its digest telling apart
        # receivers on one origin.
        (
            "webhook receiver https://hooks.example/…#9f023e8242d81c8b failing",
            "webhook receiver https://hooks.example/…#9f023e8242d81c8b failing",
        ),
        # A raw URL with a digest-like fragment is still cut to its origin.
        (
            "to https://hooks.example/services/T0/B0/x#9f023e8242d81c8b",
            "to https://hooks.example/…",
        ),
        (
            "to https://u:pw@hooks.example/…#9f023e8242d81c8b",
            "to https://u:<redacted>@hooks.example/…",
        ),
    ],
)
def test_redact_urls_keeps_a_receivers_outbox_key_whole(text: str, shown: str) -> None:
    """A receiver key (a URL as safe_url shows it, ``#`` and a 16-hex digest) passes through
    redaction unchanged; anything else ending in such a fragment does not."""
    assert redact_urls(text) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "(docs/x.md of the source repository, https://github.com/exesdb/exesdb-bridge)",
            "(docs/x.md of the source repository, https://github.com/exesdb/exesdb-bridge)",
        ),
        (
            "at https://github.com/exesdb/exesdb-bridge.",
            "at https://github.com/exesdb/exesdb-bridge.",
        ),
        # Anything more than the repository's address may be a user's, and is cut as any other.
        ("https://github.com/exesdb/exesdb-bridge/x", "https://github.com/…"),
        ("https://github.com/exesdb/exesdb-bridge?token=t", "https://github.com/…"),
        ("https://github.com/exesdb/exesdb-bridge#t", "https://github.com/…"),
        ("https://u:pw@github.com/exesdb/exesdb-bridge", "https://u:<redacted>@github.com/…"),
    ],
)
def test_redact_urls_keeps_the_source_repository_s_address_whole(text: str, shown: str) -> None:
    """The source repository a log line or an error cites a docs/ page in (``cite_source``) is
    shown whole, so that any install's user can read the page; a URL that is more than it is
    not."""
    assert redact_urls(text) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("redis:/default:hunter2@host:6379", "redis:<redacted>@host:6379"),
        ("redis//default:hunter2@host", "redis//default:<redacted>@host"),
        ("got 'alice:hunter2@hooks.example/x'", "got 'alice:<redacted>@hooks.example/x'"),
        ("user:pa/ss@host", "user:<redacted>@host"),
        (":hunter2@host", ":<redacted>@host"),
        (
            "a https://u:pw@h/x and b:pw@c:6379",
            "a https://u:<redacted>@h/… and b:<redacted>@c:6379",
        ),
        ("https://u:<redacted>@h", "https://u:<redacted>@h"),
        ("alice@example.com at 10:30", "alice@example.com at 10:30"),
        ("collector:4317", "collector:4317"),
        ("at redis://u:p,w@h:6379/0 now", "at redis://u:<redacted>@h:6379/… now"),
        ("'redis://u:p'w@h:6379', then", "'redis://u:<redacted>@h:6379', then"),
        ("https://h/x,https://k", "https://h/…,https://k"),
        # A password holding what reads as a pair or a URL, a user name with a hyphen.
        ("to admin:cGFzc3dvcmQ=@db.example:5432", "to admin:<redacted>@db.example:5432"),
        ("admin:p=ss@db", "admin:<redacted>@db"),
        ("user:S3CRET(http://x.example/a)@host", "user:<redacted>@host"),
        ("svc-account:S3CRET@db", "svc-account:<redacted>@db"),
        ("see db-user:S3CRET@h.example:5432", "see db-user:<redacted>@h.example:5432"),
    ],
)
def test_redact_urls_hides_a_password_even_without_a_scheme(text: str, shown: str) -> None:
    """A ``user:password@`` outside a well-formed URL (a URL mistyped without ``//``) has its
    password redacted; text that only looks similar stays."""
    assert redact_urls(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "node:ex_esdb@host",
        "node:x@host",
        "from node:ex_esdb@host1 to node:exesdb-2@demo.example, ok",
        "leader_node:ex_esdb@host",
        "Peers:a@b",
        "the bearer of news",
        "Bearer of bad news.",
        "a bearer token is required",
        "sent to the bearer jones.",
        "partition key=7",
        "by sort key=region",
        "idempotency key=5 kept",
    ],
)
def test_redact_urls_leaves_text_that_only_looks_like_a_secret(text: str) -> None:
    """Text that holds no secret is shown as it is: a label naming a node before an Erlang node
    name (``node:ex_esdb@host``, which reads as ``user:password@`` but stands in no URL), a word
    after "bearer" (no token), and a pair whose name ends a phrase that names no secret
    (``partition key=7``, judged as PARTITION_KEY)."""
    assert redact_urls(text) == text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # A password where a URL's user info stands, or one no node's name can be.
        ("node:x@host:4369", "node:<redacted>@host:4369"),
        ("alice:hunter2@hooks.example/x", "alice:<redacted>@hooks.example/x"),
        ("admin:pa/ss@db", "admin:<redacted>@db"),
        # A label that names no node: the password of a URL typed without scheme and port.
        ("admin:hunter2@db", "admin:<redacted>@db"),
        ("b:pw@c", "b:<redacted>@c"),
        ("user=bob:pw@host", "user=bob:<redacted>@host"),
        ("nodeadmin:pw@db", "nodeadmin:<redacted>@db"),
        ("admin:hunter2@", "admin:<redacted>@"),
        ("at redis//default:hunter2@host", "at redis//default:<redacted>@host"),
        # After Bearer: a token, or any word where a value is given.
        ("got bearer abc123 back", "got bearer <redacted> back"),
        ("bearer AbCdEf", "bearer <redacted>"),
        ("bearer abcdefghijklmnopqrstu", "bearer <redacted>"),
        ("bearer ab.cd.", "bearer <redacted>"),
        ("header: Bearer abc", "header: Bearer <redacted>"),
        ("note='Bearer abc'", "note='Bearer <redacted>'"),
        # A phrase that names a secret, or a name alone.
        ("api key=7", "api key=<redacted>"),
        ("private key=abc", "private key=<redacted>"),
        ("the key=7", "the key=<redacted>"),
        ("x=1 key=7", "x=1 key=<redacted>"),
        ("sort password=7", "sort password=<redacted>"),
    ],
)
def test_redact_urls_still_hides_what_only_a_secret_looks_like(text: str, shown: str) -> None:
    """Next to what is left as it is, what may be a secret is still hidden: a password where a
    URL's user info stands (before a port or a path, after a mistyped scheme) or one no node's
    name can be, a token after Bearer (a digit, a capital inside, a token68 sign, 20 characters)
    or any word after a ``Bearer`` given as a value, and a pair whose phrase names a secret."""
    assert redact_urls(text) == shown


_SENT_TO = ("https://hooks.example/services/T0/B0/tok3n%2Bx?k=1", "https://b.example/x/y")
_SENT = {
    "Content-Type": "application/json",
    "User-Agent": "exesdb-bridge/1.0",
    "X-ExESDB-Delivery": "d3adb33fd3adb33f",
    "X-ExESDB-Signature": "t=1733400000,v1=" + "ab" * 32,
    "Authorization": "Bearer tok-Xq7rT2vLm9Wc",
    "X-Team": "ops",
}


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # The path sent to, as Express, Django and Spring quote it, escaped or not.
        ("Cannot POST /services/T0/B0/tok3n%2Bx", "Cannot POST /…"),
        (
            "The current path, services/T0/B0/tok3n+x, didn't match",
            "The current path, …, didn't match",
        ),
        ('{"path":"/x/y"}', '{"path":"/…"}'),
        # A credential quoted without its header's name, the signature's MAC without its time.
        ("tok-Xq7rT2vLm9Wc is no token of ours", "<redacted> is no token of ours"),
        ("got Bearer tok-Xq7rT2vLm9Wc", "got <redacted>"),
        (f"MAC {'ab' * 32} at 1733400000", "MAC <redacted> at 1733400000"),
        # What holds no secret stays: the delivery's id, the content type, a short value.
        (
            "delivery d3adb33fd3adb33f: not application/json",
            "delivery d3adb33fd3adb33f: not application/json",
        ),
        ("team ops unknown", "team ops unknown"),
        ("404 page not found", "404 page not found"),
    ],
)
def test_redact_sent_hides_what_the_request_sent_that_an_answer_quotes(
    text: str, shown: str
) -> None:
    """An answer quoting the path a request went to shows it as ``/…``, as ``safe_url`` does,
    and a header value that may be a credential, or a long word of one, as ``<redacted>``;
    what never holds a secret (the headers named ``shown``, a number, a short value) stays."""
    assert redact_sent(text, _SENT_TO, _SENT, shown={"x-exesdb-delivery"}) == shown


# Modules that take URLs apart, and why none of them shows one its own way.
URL_SPLITTERS = {
    "bridge/redaction.py": "the one way a URL is shown",
    "bridge/bus_url.py": "checks EXESDB_BUS's scheme, port and query options; shows none",
    "bridge/urls.py": (
        "checks the URLs the bridge is given and takes their userinfo out for an auth header"
        " (split_userinfo); shows them through redaction, and a link on an origin allowed in"
        " alert metadata (allowed_link) with its path and fragment through redaction too;"
        " reads an OTLP endpoint's scheme as the gRPC exporter does (grpc_dials_tls)"
    ),
    "bridge/cli/healthcheck.py": "connects to the URL it built from EXESDB_HTTP_ADDR",
    "bridge/cli/parser.py": (
        "the host and port of a URL given to healthcheck, for the EXESDB_HTTP_ADDR meant; never"
        " its user or password"
    ),
    "bridge/sinks/otlp/mapping.py": "the host for server.address; shows through redaction",
    "collectors/lifecycle.py": "names the bus's scheme only",
    "bridge/httpclient/proxy.py": "a URL's scheme, host and port against no_proxy; shows none",
    "bridge/receivers.py": "whether a URL holds credentials; shows none",
    "bridge/settings_checks.py": (
        "an OTLP endpoint's path and port, and a webhook URL's path, checked against what the"
        " exporter or receiver takes; shows them through redaction (redact_urls)"
    ),
    "bridge/tracing.py": "the host and port for server.address; url.full through redaction",
    "bridge/build.py": "the folder of an editable install's file:// URL; shows none",
    "bridge/httpclient/redirects.py": (
        "a redirect's Location joined to the URL and its origin compared; shows none"
    ),
    "bridge/cli/client.py": (
        "a --url's or EXESDB_URL's path against the bridge's own paths; shows the base URL"
        " meant through redaction (safe_url)"
    ),
    "bridge/cli/exchange.py": (
        "the client commands' request target, and a redirect's Location joined to the URL and"
        " its origin compared; shows them through redaction (safe_url)"
    ),
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


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Bearer eyJhbGciOi.eyJzdWIi.sig-_~+/=", "Bearer <redacted>"),
        ("got bearer abc123 back", "got bearer <redacted> back"),
        ("Basic dXNlcjpwYXNz", "Basic <redacted>"),
        ("sent basic YTpi, refused", "sent basic <redacted>, refused"),
        ("Basic YWxpY2U6aHVudGVyMg==", "Basic <redacted>"),
        # After Basic only what Basic sends (base64 of user:password): a sentence stays.
        ("a basic check failed", "a basic check failed"),
        ("Basic auth refused", "Basic auth refused"),
        ("Authorization: Bearer abc", "Authorization: Bearer <redacted>"),
        ("authorization: token ghp_x1 (401)", "authorization: token <redacted> (401)"),
        ("Proxy-Authorization: Basic not-base64", "Proxy-Authorization: Basic <redacted>"),
        ("X-Api-Key: k3y then", "X-Api-Key: <redacted> then"),
        ("GET /hook?token=abc&page=2", "GET /hook?token=<redacted>&page=2"),
        ("host/p?access_token=a&sig=b&sv=1", "host/p?access_token=<redacted>&sig=<redacted>&sv=1"),
        ("Server=db;Password=hunter2;", "Server=db;Password=<redacted>;"),
        ("host=db password='a b' dbname=x", "host=db password='<redacted>' dbname=x"),
        ("--db-password=x -v", "--db-password=<redacted> -v"),
        ("password = Bearer abc", "password = <redacted>"),
        (
            '{"user": "u", "api_key": "k\\"1", "n": 1}',
            '{"user": "u", "api_key": "<redacted>", "n": 1}',
        ),
        ("token=abc:def@host", "token=<redacted>"),
        # A name that names no secret keeps its value, read on for what it may hold.
        ("token_count=5 sort_key=a", "token_count=5 sort_key=a"),
        ("url=https://u:pw@h/x", "url=https://u:<redacted>@h/…"),
        ("user=bob:pw@host:6379", "user=bob:<redacted>@host:6379"),
        ("note=Bearer abc", "note=Bearer <redacted>"),
        # ``name: value`` in a sentence is no pair; a name that reads as no ASCII one may be.
        ("session: closed, token: expired", "session: closed, token: expired"),
        ("p\u0430ssword=x", "p\u0430ssword=<redacted>"),
        # A URL's host runs to the first character no host name holds.
        ("jdbc:sqlserver://db;user=sa;password=pw", "jdbc:sqlserver://db/…"),
        # Redacting again changes nothing.
        ("token=<redacted> Bearer <redacted>", "token=<redacted> Bearer <redacted>"),
    ],
)
def test_redact_urls_hides_credentials_in_any_text(text: str, shown: str) -> None:
    """What follows Bearer (and Basic, when it is base64 of user:password), and the value of a
    name=value pair, a quoted "name": value or a header whose name names a secret, is shown as
    <redacted>; the rest of the text as it is."""
    assert redact_urls(text) == shown


@pytest.mark.parametrize(
    "key",
    [
        "p\u0430ssword",  # Cyrillic a
        "t\u03bfken",  # Greek omicron
        "\u0430uthor",  # a harmless word, spelt with a Cyrillic a: a look-alike is never plain
        "pass\u200bword",  # a zero-width space
        "\u043f\u0430\u0440\u043e\u043b\u044c",  # Russian for password
        "gr\u00f6\u00dfe",  # German, with an sharp s: no ASCII letter stands for it
        "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44",  # full width: password
        "p\u00e4ssword",  # an accent dropped, it reads password
    ],
)
def test_a_key_that_reads_as_no_plain_ascii_one_or_as_a_secret_may_name_a_secret(key: str) -> None:
    """A key that is not plain ASCII once compatibility forms are folded and accents dropped
    (another script, a Latin look-alike, an invisible character) may name a secret, as does
    one that then reads as a secret's."""
    assert names_secret(key)


@pytest.mark.parametrize(
    "key", ["r\u00e9gion", "\uff53\uff54\uff52\uff45\uff41\uff4d", "caf\u00e9"]
)
def test_a_key_that_reads_as_a_harmless_ascii_one_is_shown(key: str) -> None:
    """A key with accents or full-width letters that reads as a harmless ASCII key is judged as
    that key (région as region)."""
    assert not names_secret(key)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlserver://db.internal;password=pw", "sqlserver://db.internal/…"),
        # A path typed with backslashes (a browser reads them as slashes; urlsplit, as the host).
        ("https://hooks.example\\services\\T0\\tok3n", "https://hooks.example/…"),
        ("https://u:pw@hooks.example\\tok3n", "https://u:<redacted>@hooks.example/…"),
        ("https://hooks.example%2Ftok3n", "https://hooks.example/…"),
        ("https://hooks.example~tok3n", "https://hooks.example/…"),
        ("https://hooks.example…tok3n", "https://hooks.example/…"),
        # What host names hold stays: letters of any script, digits, ".", "-" and "_".
        ("https://b\u00fccher-1.my_host.example/", "https://b\u00fccher-1.my_host.example"),
    ],
)
def test_safe_url_shows_a_host_only_up_to_a_character_no_host_name_has(
    url: str, shown: str
) -> None:
    """A URL whose host holds a character no host name has (a pair, ``host;password=…``,
    allowed by RFC 3986; a backslash, a ``%``, a ``~``) shows the host up to it, then the
    marker of more, in text too."""
    assert safe_url(url) == shown
    assert redact_urls(f"POST {url} failed") == f"POST {shown} failed"


@pytest.mark.parametrize(
    "text",
    [
        "a" * 50_000,
        "a." * 25_000,
        "x-" * 25_000,
        "a:" * 25_000,
        "a=" * 25_000,
        '"a' * 25_000,
        "a/:" * 16_000,
    ],
    ids=["one word", "dotted", "hyphenated", "colons", "pairs", "quotes", "slash colons"],
)
def test_redact_urls_reads_a_long_text_once_and_only_to_its_bound(text: str) -> None:
    """A long text is read to ``MAX_READ`` characters and ends in ``…`` (48 000 characters of
    ``a/:`` took 1.5 s, 50 000 of others seconds to minutes), the last run left out when it holds
    a colon (it may be a password cut before its ``@``); within the bound it is shown as given."""
    started = time.thread_time()  # CPU time: a loaded host's waits add none
    shown = redact_urls(text)
    assert time.thread_time() - started < 1.0  # milliseconds here; the quadratic reading took 20 s
    assert shown.endswith("…")
    kept = shown.removesuffix("…")
    assert text.startswith(kept)
    assert len(kept) == (0 if ":" in text else MAX_READ)
    assert redact_urls(text[: MAX_READ // 2]) == text[: MAX_READ // 2]


def test_a_password_the_bound_cuts_before_its_at_is_not_shown() -> None:
    """A ``user:password@`` that ``MAX_READ`` cuts before its ``@`` reads as no URL's
    credentials: the run it is in is left out, the words before it shown."""
    words = "word " * ((MAX_READ - 20) // 5)
    shown = redact_urls(f"{words}redis:/alice:hunter2hunter2hunter2@cache.internal:6379 tail")
    assert "hunter2" not in shown
    assert shown == words + "…"


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
def test_redact_urls_takes_little_time_on_long_texts_without_spaces(text: str) -> None:
    """A 16 KiB text without a space (an alert's metadata value) is redacted at once, not in
    the seconds a regular expression scanning ahead from every position takes (a minute at
    64 KiB, the event loop stopped meanwhile)."""
    began = time.thread_time()  # CPU time: a loaded host's waits add none
    redact_urls(text)
    assert time.thread_time() - began < 0.5


def _fastest(text: str, tries: int = 9) -> float:
    """The least CPU time redact_urls took on ``text`` in ``tries`` runs (the noise of a shared
    machine only ever adds time)."""
    best = float("inf")
    for _ in range(tries):
        began = time.thread_time()
        redact_urls(text)
        best = min(best, time.thread_time() - began)
    return best


@pytest.mark.parametrize(
    ("unit", "tail"),
    [("a/:", ""), ("=:", ""), ("a:b/", " x:y@host")],
    ids=["slash colons", "pair colons", "colons before a user info"],
)
def test_redact_urls_takes_time_linear_in_the_length_it_reads(unit: str, tail: str) -> None:
    """Four times the text within ``MAX_READ`` takes about four times as long, not sixteen:
    4 000 characters of ``a/:`` took 14 times what 1 000 took (10 ms), when ``user:password@``
    was a pattern scanning ahead from each colon; found from its ``@``, about 4 times."""
    short = (unit * MAX_READ)[:1_000] + tail
    long = (unit * MAX_READ)[:4_000] + tail
    slowest = _fastest(long)
    assert slowest < 0.1  # a generous deadline: under 1 ms here, 10 to 20 ms when quadratic
    assert slowest / _fastest(short) < 8  # 4 when linear; 13 to 15 when quadratic


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:s3cretpw@127.0.0.1:9682/hook/T?key=k", "http://127.0.0.1:9682/…"),
        ("http://T0KEN@hooks.example/", "http://hooks.example"),
        ("https://:pw@[::1]:8443/x", "https://[::1]:8443/…"),
        ("https://u:pa@ss/word@hooks.example/x", "https://…"),
        ("https://hooks.example:8443", "https://hooks.example:8443"),
    ],
)
def test_a_url_without_its_user_info_shows_no_user_name_nor_its_marker(
    url: str, shown: str
) -> None:
    """safe_url(userinfo=False), as the pages show where alerts go: the origin and the path
    marker, no user name, password or ``<redacted>@``; an ambiguous URL shows its scheme alone."""
    assert safe_url(url, userinfo=False) == shown
