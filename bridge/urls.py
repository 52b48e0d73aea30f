"""The bridge's URLs: those it is given, checked one way, and its own, built one way.

Every URL setting (``EXESDB_WEBHOOK_URLS``, ``EXESDB_ALERTMANAGER_URL``, ``EXESDB_URL``,
``EXESDB_EXTERNAL_URL``, the origins of ``EXESDB_ALERT_LINK_ORIGINS``), the receivers file's
``url`` and ``proxy_url``, and the client commands' ``--url`` are checked here. A problem
shows the URL only as ``safe_url`` shows it, and text that is no URL at all not at all (it may
be a URL mistyped around a password). ``link_origin`` is the origin a link in alert metadata is
judged by, and ``allowed_link`` how one on an allowed origin is shown. ``grpc_dials_tls`` reads an
OTLP endpoint as the SDK's gRPC exporter does, to say whether it is dialled with TLS, and
``grpc_tls_unsaid`` whether it was written without a scheme that says so.

``own_url`` is the bridge's own base URL, from the address it listens on: for a client on this
host (the command line's default target, the health check, the start-up line) or, given the name
other hosts reach this one by, for them (the links in alerts).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Final, Literal
from urllib.parse import unquote, urlparse, urlsplit, urlunsplit

from bridge.hidden import NODE_REFUSED
from bridge.redaction import redact_urls, safe_url

__all__ = [
    "DEFAULT_PORTS",
    "HTTP_SCHEMES",
    "PICKED_PORT",
    "allowed_link",
    "commas_in_queries",
    "grpc_dials_tls",
    "grpc_tls_unsaid",
    "http_url_problem",
    "link_origin",
    "names_a_host",
    "otlp_endpoint_problem",
    "own_url",
    "require_alertmanager_url",
    "require_bridge_url",
    "require_external_url",
    "require_http_url",
    "require_link_origin",
    "split_userinfo",
    "url_meant",
    "url_root",
]

HTTP_SCHEMES: Final = ("http", "https")
DEFAULT_PORTS: Final = {"http": 80, "https": 443}
"""The port a URL of each scheme means when it gives none."""
# Why a client on this host cannot find a bridge told to listen on port 0.
PICKED_PORT: Final = (
    "port 0 is a free port the bridge picks as it starts (its start-up line names it), "
    "so no command can find it there"
)
# A DNS name: dot-separated labels of letters, digits, '-' and '_' (as container names have).
_HOST_NAME: Final = re.compile(r"[\w]([\w-]*[\w])?(\.[\w]([\w-]*[\w])?)*\.?", re.ASCII)
# Target URIs gRPC resolves itself (unix:/path, dns:///host:port, ipv4:addr, ...).
_GRPC_TARGET_SCHEMES: Final = frozenset(
    {"dns", "unix", "unix-abstract", "ipv4", "ipv6", "vsock", "xds", "google-c2p"}
)
# The characters of a name gRPC's resolver (c-ares) will look up.
_GRPC_NAME: Final = re.compile(r"[A-Za-z0-9._*/-]+")
_OTLP_SIGNALS: Final = ("traces", "logs", "metrics")
# http or https and a mistyped ``://`` (``:/``, ``//``, ``:///``, a colon alone before no port),
# then the rest of the URL meant.
_SCHEME_SLIP: Final = re.compile(
    r"(?P<scheme>(?i:https?))(?P<between>:/+|/+|:(?![\d/]))(?P<rest>.*)", re.DOTALL
)
# A scheme, perhaps mistyped, before the rest: no host:port typed without one (ftp:/host).
_SCHEME_START: Final = re.compile(r"(?i:https?)[:/]|[A-Za-z][A-Za-z0-9+.-]*(?::/|//)")
# A comment written after a value in an env file, and a URL written after another.
_COMMENT: Final = re.compile(r"\s#")
_SECOND_URL: Final = re.compile(r"(?P<between>[\s;|]+)(?i:https?)://")
_URL_START: Final = re.compile(r"(?i:https?)://")
# Alertmanager's own endpoints (its ui/web.go and api/v2: the API, v1 before 0.27; the health,
# readiness and reload endpoints; its metrics and profiles; the web UI's files), which a URL
# copied from a probe, a scrape config or an API call ends in. What comes before one is the
# Alertmanager's URL, with any route prefix (--web.route-prefix) kept. Each is fixed text but a
# silence's id, which the refusal names as <id>, so it may name the rest (a path may hold a token:
# what comes before is not shown). Go's pprof handlers, by name.
_ALERTMANAGER_ENDPOINT: Final = re.compile(
    r"(?:/api/v[12](?:/(?:alerts(?:/groups)?|status|receivers|silences|silences?/(?P<id>[^/]+)))?"
    r"|/-/(?:healthy|ready|reload)|/metrics"
    r"|/debug/pprof(?:/(?:allocs|block|cmdline|goroutine|heap|mutex|profile|symbol"
    r"|threadcreate|trace))?"
    r"|/script\.js|/favicon\.ico|/index\.html)$"
)
_HTTP_ENDPOINT: Final = "an http:// or https:// URL with a host, e.g. http://collector:4318"
# What no link shown whole holds: a space (it would be text with a URL in it), nor any character
# a node name refuses anywhere (hidden.NODE_REFUSED): a control character (urlsplit drops a tab
# or line break: a client would read another URL than the one shown), a zero-width character,
# a bidirectional control (the text shown after it reordered), a tag, a noncharacter or another
# drawn as nothing: the link would not go where it reads.
_NOT_LINK: Final = re.compile(rf"[\s{NODE_REFUSED}]")
_GRPC_ENDPOINT: Final = (
    "a URL with a host (http://collector:4317), host:port, a host (port 443) or a gRPC target "
    "URI (unix:/path)"
)


def http_url_problem(url: str, what: str = "URL") -> str | None:
    """Why ``url`` is no http:// or https:// ``what`` with a host (and a valid port); None when
    it is one."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"not a {what}; allowed: an http:// or https:// {what} with a host"
    joined = _joined_text(url, parts.netloc, what)
    if joined is not None:
        return joined
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        return (
            f"its port is not a number from 0 to 65535; allowed: an http:// or https:// {what}"
            " with a host"
        )
    if not parts.scheme or not parts.netloc:
        return f"not a {what}; allowed: an http:// or https:// {what} with a host"
    if parts.scheme not in HTTP_SCHEMES or not parts.hostname:
        return f"{safe_url(url)!r} is not an http:// or https:// {what} with a host"
    if any(char.isspace() for char in parts.hostname):
        # Taken as it is, every attempt fails to resolve it (and the URL shows cut at it).
        return (
            "its host holds a blank (a space), which no host name has; allowed: an http:// or"
            f" https:// {what} with a host"
        )
    if "\\" in parts.netloc:  # the HTTP client (aiohttp's yarl) refuses it at each attempt
        return (
            "its host holds a backslash, which the HTTP client refuses (a path is written with"
            f" /); allowed: an http:// or https:// {what} with a host"
        )
    if "{{" in url:
        # Alertmanager expands Go templates in a webhook URL; sent as written, it would reach
        # some other path without a word.
        return f"holds a template ({{{{ … }}}}), which the bridge does not expand; give the {what}"
    return None


def _joined_text(url: str, netloc: str, what: str) -> str | None:
    """Why ``url`` holds more than one URL: a comment an env file kept in the value, or a second
    URL after a blank, ``;`` or ``|``; None otherwise. A ``;`` or ``|`` before a URL in a query
    that holds one already is no second URL: it lists URLs as a query's value. A password
    (before the host's ``@``) may hold anything and is not looked in; a blank in the host is the
    host check's to name."""
    userinfo, at, _ = netloc.rpartition("@")
    # A blank before the URL is no separator: urlsplit, and the clients, drop it.
    rest = (url.replace(userinfo + at, "", 1) if at else url).lstrip()
    if _COMMENT.search(rest):
        # docker's --env-file, compose's env_file and systemd's EnvironmentFile= keep a "#" after
        # a value in it: the path would end in a blank and the comment be its fragment.
        return (
            f"holds a comment (' #…') after the {what}: an env file (docker --env-file, systemd"
            " EnvironmentFile=) keeps it as part of the value; put the comment on a line of its"
            f" own; allowed: an http:// or https:// {what} with a host"
        )
    query = _query_span(rest)
    for joined in _SECOND_URL.finditer(rest):
        between = joined.group("between")
        in_query = query[0] < joined.start() < query[1]
        if (
            in_query
            and not any(char.isspace() for char in between)
            and _URL_START.search(rest, query[0], joined.start())
        ):
            # A list of URLs as a query's value (?to=https://b|https://c) is one URL, which a
            # relay reads them from. Not after a blank: a URL's query holds it encoded.
            continue
        between = between.strip()
        if 0 <= rest.find("#") < joined.start():
            where = "the second in its fragment, which is never sent"
        elif in_query:
            where = "with the second in its query"
        else:
            where = "at a path no one serves"
        return (
            f"holds a second URL after {repr(between) if between else 'a blank'}, and taken as"
            f" one it would go to the first one's host, {where}; give one URL per setting or"
            " entry (EXESDB_WEBHOOK_URLS separates several with commas); allowed: an http:// or"
            f" https:// {what} with a host"
        )
    return None


def commas_in_queries(items: Sequence[str]) -> dict[int, str]:
    """The items of a comma-separated list of URLs (``EXESDB_WEBHOOK_URLS``, split at every
    comma) that a comma in a query may have cut, by index, with why; shown without the URLs.

    The list is split at every comma, and a comma in a URL is written ``%2C``. After an item
    with a query, an item that is no URL (``?tags=a,b``: ``b``) was likely the query's rest, and
    is told so rather than "not a URL", as is each such item after it (``?tags=a,b,c``: ``c``
    too); an item whose query holds a URL (``?to=https://b``),
    followed by a URL, is refused as ambiguous, either reading being likely (a relay's list of
    URLs, or two receivers), with how to write each."""
    cut: dict[int, str] = {}
    rest_of: dict[int, int] = {}  # an item told as a query's rest: the index of the query's item
    for index in range(1, len(items)):
        # The item whose query this one may be the rest of: the one before, or the one whose
        # rest that is (?tags=a,b,c: c, as b, is item 1's).
        owner = rest_of.get(index - 1, index - 1)
        before = items[owner]
        start, end = _query_span(before)
        if start < 0:
            continue
        if not _URL_START.match(items[index]):
            if "://" not in items[index]:
                rest_of[index] = owner
                cut[index] = (
                    f"not a URL, and it follows item {owner + 1}'s query: the list is split at"
                    " every comma, so a comma in a URL is written %2C (?tags=a%2Cb), or the URL"
                    " goes in the receivers file (EXESDB_WEBHOOK_CONFIG_FILE)"
                )
        elif "://" in before[start:end]:
            cut[owner] = (
                f"its query holds a URL and a comma follows it, so whether item {index + 1} is a"
                " receiver of its own or the rest of this query is a guess; the list is split at"
                " every comma: write a comma of the query as %2C (?to=URL%2CURL), or, for"
                " receivers of their own, the URL in the query percent-encoded"
                " (?to=https%3A%2F%2Fhost%2Fpath)"
            )
    return cut


def _query_span(url: str) -> tuple[int, int]:
    """Where ``url``'s query is: from its ``?`` to its fragment's ``#`` or the end; (-1, -1)
    when it has none (a ``?`` after the ``#`` is the fragment's)."""
    question, hash_ = url.find("?"), url.find("#")
    if question < 0 or 0 <= hash_ < question:
        return (-1, -1)
    return (question, hash_ if hash_ >= 0 else len(url))


def otlp_endpoint_problem(
    value: str, protocol: Literal["grpc", "http/protobuf"], *, general: bool = False
) -> str | None:
    """Why the OpenTelemetry SDK's OTLP exporter for ``protocol`` could never send to the
    endpoint ``value`` (the ``general`` one, ``OTEL_EXPORTER_OTLP_ENDPOINT``, when told so);
    None when it could (reachable or not). Never shows the value, only the URL it was likely
    meant as (``url_meant``) when it was typed without its scheme.

    http/protobuf: the exporter posts with requests to ``value`` (plus ``/v1/<signal>`` for the
    general endpoint, which therefore must not end in such a path already: it would post to
    ``/v1/traces/v1/traces``), which needs an http(s) URL with a host and a valid port. grpc: the
    exporter dials the URL's ``host:port`` or, when the value has none (``collector:4317``,
    ``collector``, ``unix:/path``), the value itself as a gRPC target; refused are only those
    gRPC cannot parse or look up as a name (no host, a port that is no number, a name with a
    space) and a port above 65535, which gRPC would dial modulo 65536; a ``user:password@``
    is refused saying where credentials go instead, as the gRPC exporter never sends it.
    """
    if protocol == "http/protobuf":
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a port that is not one
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in HTTP_SCHEMES or not _is_host(parts.hostname):
            # The specification's OTLP/HTTP endpoint is a URL, its scheme included: host:port
            # (as a gRPC one may be written) is answered with the URL meant.
            meant = url_meant(value)
            if meant is not None:
                return (
                    "not usable with http/protobuf: it has no scheme; allowed: an http:// or "
                    f"https:// URL with a host, e.g. {meant}"
                )
            return f"not usable with http/protobuf; allowed: {_HTTP_ENDPOINT}"
        path = parts.path.rstrip("/")
        for signal in _OTLP_SIGNALS:
            if general and path.endswith(f"/v1/{signal}"):
                return (
                    f"ends in /v1/{signal}, and the http/protobuf exporter adds /v1/<signal> to "
                    "this one: give the collector's base URL (http://collector:4318), or a "
                    "signal's whole URL in its own OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT"
                )
        return None
    try:
        target = urlsplit(value).netloc or value  # as the SDK's OTLPExporterMixin picks it
    except ValueError:
        target = value
    scheme, sep, _ = target.partition(":")
    if sep and scheme.lower() in _GRPC_TARGET_SCHEMES:
        return None
    if "@" in target:
        return (
            "holds credentials (user:password@), which the grpc exporter does not send: give "
            "them as a header in OTEL_EXPORTER_OTLP_HEADERS instead"
        )
    if not _grpc_host_port_ok(target):
        return f"not usable with grpc; allowed: {_GRPC_ENDPOINT}"
    return None


def grpc_tls_unsaid(endpoint: str) -> tuple[str, str] | None:
    """For an OTLP gRPC endpoint whose scheme does not say whether TLS is used, what is said of
    it and the ``host[:port]`` dialled; None for an ``http://`` or ``https://`` URL or a gRPC
    target URI (``unix:/path``, ``dns:///host``). The SDK's exporter dials it with TLS unless
    ``OTEL_EXPORTER_OTLP_INSECURE`` says otherwise, as the specification's Insecure option has
    it for an endpoint without the http or https scheme: one written as ``host[:port]``
    (``collector:4317``: "has no scheme"), and a URL of another scheme, of which the exporter
    dials the ``host:port`` (``grpc://collector:4317``, a mistyped ``htp://``)."""
    try:
        parts = urlsplit(endpoint)
    except ValueError:
        return None
    if parts.netloc:
        if parts.scheme.lower() in HTTP_SCHEMES:
            return None
        return (f"has the scheme {parts.scheme!r}, neither http nor https", parts.netloc)
    scheme, sep, _ = endpoint.partition(":")
    if sep and scheme.lower() in _GRPC_TARGET_SCHEMES:
        return None
    return ("has no scheme", endpoint)


def url_root(url: str) -> str | None:
    """``url`` without its path, query and fragment, when it has a path (``http://host:9570/v1``:
    ``http://host:9570``, the URL of a bridge served at its root); None when it has none."""
    parts = urlsplit(url)
    if not parts.path.strip("/"):
        return None
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def grpc_dials_tls(endpoint: str, signal: str, environ: Mapping[str, str]) -> bool:
    """Whether the SDK's gRPC exporter of ``signal`` (``traces``, ``logs``, ``metrics``) dials
    ``endpoint`` with TLS, as its ``OTLPExporterMixin`` decides: always for ``https://``; else
    as ``OTEL_EXPORTER_OTLP_<SIGNAL>_INSECURE``, else ``OTEL_EXPORTER_OTLP_INSECURE``, says when
    set (``true``, in any letter case: without); else unless the endpoint is an ``http://`` URL
    (``collector:4317`` is dialled with TLS)."""
    scheme = urlparse(endpoint).scheme  # as the exporter parses it
    if scheme == "https":
        return True
    for name in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE"):
        insecure = environ.get(name)
        if insecure is not None:
            return insecure.lower() != "true"
    return scheme != "http"


def _is_host(host: str | None) -> bool:
    """A host requests would connect to: a name without spaces or controls, or an address."""
    return bool(host) and not any(c.isspace() or not c.isprintable() for c in host or "")


def _grpc_host_port_ok(target: str) -> bool:
    """gRPC's split of ``host[:port]``: ``[v6]:port``, one colon for ``host:port``, more for a
    bare IPv6 address; an empty port means 443."""
    if target.startswith("["):
        host, closed, rest = target[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            return False
        port = rest[1:]
    elif target.count(":") == 1:
        host, _, port = target.partition(":")
    else:
        host, port = target, ""
    if port and not (port.isascii() and port.isdigit() and int(port) <= 65535):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return _GRPC_NAME.fullmatch(host) is not None
    return True


def require_http_url(url: str, what: str = "URL") -> str:
    """``url`` when it is an http:// or https:// ``what`` with a host; ValueError saying why not
    (what a pydantic validator raises), with the URL meant when it was typed without its
    scheme."""
    problem = http_url_problem(url, what)
    if problem is not None:
        meant = url_meant(url)
        raise ValueError(problem if meant is None else f"{problem}, e.g. {meant}")
    return url


def link_origin(url: str) -> str | None:
    """The origin of ``url`` as ``EXESDB_ALERT_LINK_ORIGINS`` compares origins:
    ``scheme://host[:port]``, scheme and host in lower case, the scheme's default port left out,
    an IPv6 address in brackets; None unless ``url`` is an http:// or https:// URL with a host
    and a valid port and without user info (a ``user@`` before the host is never part of an
    origin: such a link is redacted)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if parts.scheme not in HTTP_SCHEMES or not _is_host(host) or "@" in parts.netloc:
        return None
    shown = f"[{host}]" if ":" in (host or "") else host
    return f"{parts.scheme}://{shown}" + (
        "" if port is None or port == DEFAULT_PORTS[parts.scheme] else f":{port}"
    )


def allowed_link(text: str, origins: frozenset[str]) -> str | None:
    """``text`` shown as a link that opens, when it is one URL alone (once trimmed) whose
    ``link_origin`` is one of ``origins`` (``EXESDB_ALERT_LINK_ORIGINS``): its path and fragment
    kept, each as ``redact_urls`` shows text (a ``token=…`` in them still redacted), its query
    shown as ``?…`` (a token rides there under names no rule can know); None for anything else
    (a URL with user info has no origin here, one whose path ends in ``…`` was cut already),
    which is then shown as text is."""
    url = text.strip()
    if _NOT_LINK.search(url) or link_origin(url) not in origins:
        return None
    parts = urlsplit(url)
    if parts.path.endswith("…"):
        return None  # a URL already cut (to its origin, ``/…``, or at its length): no page
    query = "?…" if parts.query else ""
    fragment = "#" + redact_urls(parts.fragment) if parts.fragment else ""
    return f"{parts.scheme}://{parts.netloc}{redact_urls(parts.path)}{query}{fragment}"


def require_link_origin(origin: str) -> str:
    """``origin`` as ``link_origin`` gives it when it is an origin alone (``scheme://host[:port]``,
    a trailing ``/`` allowed); ValueError saying why not: a wildcard, no http(s) URL with a host,
    a user name or password, or a path, query or fragment (shown only as ``safe_url`` shows it)."""
    if "*" in origin and "@" not in origin:  # a * in a password: refused as user info below
        # Meant as "any origin" (or any subdomain), it would be compared as written, and a list
        # that allowed any origin would let every link in alert metadata through whole.
        raise ValueError(
            "a wildcard (*) is not allowed: only links on the origins listed are shown whole;"
            " list each origin explicitly, e.g. https://wiki.example,https://runbooks.example:8443"
            " (every path on an origin is allowed)"
        )
    require_http_url(origin)
    parts = urlsplit(origin)
    if "@" in parts.netloc:
        raise ValueError(
            "must not hold a user name or password (before an @): a link with user info is"
            " always redacted; give the origin alone, e.g. https://wiki.example"
        )
    if parts.path not in ("", "/"):
        extra = "a path"
    elif parts.query or parts.fragment or "?" in origin or "#" in origin:
        extra = "a query or fragment"
    else:
        extra = ""
    if extra:
        raise ValueError(
            f"{safe_url(origin)!r} has {extra}; allowed: an origin alone (scheme, host and port),"
            " e.g. https://wiki.example or https://wiki.example:8443 (every path on it is allowed)"
        )
    shown = link_origin(origin)
    if shown is None:  # a host no client would connect to (a space in it)
        raise ValueError(f"{safe_url(origin)!r} is not an http:// or https:// origin with a host")
    return shown


def url_meant(text: str) -> str | None:
    """The http:// or https:// URL ``text`` was likely meant as, shown as ``safe_url`` shows it:
    ``host:port`` typed without its scheme (the likeliest slip, as ``EXESDB_HTTP_ADDR`` is
    written), or with its ``://`` mistyped (``http:/host``, ``http//host``, ``https:///host``);
    None when no URL is sure (``http:8080``: a host named http, or a port?)."""
    slip = _SCHEME_SLIP.match(text)
    if slip is not None:
        if slip["between"] == "://":
            return None  # a scheme well typed: what is wrong is elsewhere
        meant = f"{slip['scheme'].lower()}://{slip['rest']}"
    elif _SCHEME_START.match(text) or "://" in text or ":" not in text:
        return None
    else:
        meant = f"http://{text}"
    return safe_url(meant) if http_url_problem(meant) is None else None


def require_alertmanager_url(url: str) -> str:
    """``url`` when it is Alertmanager's own URL (a route prefix kept: ``http://am:9093/am``), to
    which the poster adds ``/api/v2/alerts``; ValueError for one ending in one of Alertmanager's
    endpoints already (``/api/v2/alerts``, ``/api/v2``, ``/api/v2/silence/<id>``, ``/-/healthy``,
    ``/metrics``, ``/debug/pprof/heap``: every post would go to that path + ``/api/v2/alerts``
    and fail with 404), and for one with a query or
    fragment (the web UI's address, ``http://am:9093/#/alerts``: the path added after the ``#``
    is no path, and every post would go to ``/`` and fail with 405)."""
    parts = urlsplit(require_http_url(url))
    path = parts.path.rstrip("/")
    # The URL meant is the one given without what is wrong, shown as a URL may be shown.
    if (endpoint := _ALERTMANAGER_ENDPOINT.search(path)) is not None:
        meant = urlunsplit(parts._replace(path=path[: endpoint.start()], query="", fragment=""))
        ends = (
            path[endpoint.start() : endpoint.start("id")] + "<id>"
            if endpoint["id"]
            else endpoint[0]
        )
        raise ValueError(
            f"ends in {ends}: the bridge posts to Alertmanager's own URL + /api/v2/alerts,"
            f" so give that URL, e.g. {safe_url(meant)}"
        )
    if parts.query or parts.fragment or "?" in url or "#" in url:
        meant = urlunsplit(parts._replace(path=path, query="", fragment=""))
        raise ValueError(
            "has a query or fragment (? or #), as the address of Alertmanager's web UI has "
            "(/#/alerts): the bridge posts to Alertmanager's own URL + /api/v2/alerts, "
            f"so give that URL without them, e.g. {safe_url(meant)}"
        )
    return url


def require_bridge_url(url: str) -> str:
    """``url`` (``--url``, ``EXESDB_URL``: an http:// or https:// URL already) when it holds no
    query or fragment; ValueError otherwise: the client commands add the bridge's paths
    (``/v1/alerts``) to it, which after a ``?`` or ``#`` would be part of them, and every request
    would go to the page at the URL's own path (the status page)."""
    parts = urlsplit(url)
    if parts.query or parts.fragment or "?" in url or "#" in url:
        meant = urlunsplit(parts._replace(path=parts.path.rstrip("/"), query="", fragment=""))
        raise ValueError(
            "has a query or fragment (? or #), after which the paths the commands add"
            " (/v1/alerts, /v1/messages) would land; allowed: the bridge's URL without them,"
            f" e.g. {safe_url(meant)}"
        )
    return url


def require_external_url(url: str) -> str:
    """``url`` (``EXESDB_EXTERNAL_URL``, an http:// or https:// URL already) when it holds no user
    name or password, query or fragment; ValueError otherwise: every webhook and Alertmanager
    post carries it, and each alert's link is it with a path added (``/alerts/<id>``), which
    after a query or fragment would be part of them and open no alert."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise ValueError(
            "must not hold a user name or password (before an @): it is the link sent in "
            "every alert, to every receiver; give the URL people open (their browser asks "
            "for any login)"
        )
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError(
            f"{safe_url(url)!r} has a query or fragment (? or #); allowed: the bridge's URL "
            "without them, as alert links add their path (/alerts/…) to it, which after a ? or "
            "# would open no alert"
        )
    return url


def names_a_host(url: str) -> bool:
    """Whether ``url``'s authority is a host (a DNS name or an IP address) and a port only: a
    node name such as ``db-1@host`` or one with a space would not be read as one."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        return False
    host = parts.hostname or ""
    if "@" in parts.netloc or not host:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return _HOST_NAME.fullmatch(host) is not None
    return True


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without its ``user:password@``, and that pair percent-decoded (as URLs carry it),
    or ``url`` as it is and None when it has none. The host stays as written (an IPv6 address
    keeps its brackets)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    host = parts.netloc.rpartition("@")[2]
    pair = (unquote(parts.username), unquote(parts.password or ""))
    return urlunsplit(parts._replace(netloc=host)), pair


def own_url(host: str, port: int, *, tls: bool = False, for_others: str | None = None) -> str:
    """The base URL of the bridge listening on ``host:port`` (``https`` with ``tls``).

    A wildcard host (``0.0.0.0``, ``::``, empty) is asked on loopback by a client on this host,
    and by name by the others: ``for_others`` is that name (the node name), whose URL this is
    then. An IPv6 address goes in brackets; any other host is used as it is.
    """
    scheme = "https" if tls else "http"
    try:
        address = ipaddress.ip_address(host or "0.0.0.0")  # noqa: S104 - the wildcard address
    except ValueError:  # a name
        return f"{scheme}://{host}:{port}"
    if address.is_unspecified:
        if for_others is not None:
            return own_url(for_others, port, tls=tls)
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    shown = f"[{address}]" if address.version == 6 else str(address)
    return f"{scheme}://{shown}:{port}"
