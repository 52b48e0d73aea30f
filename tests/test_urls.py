"""The bridge's URLs: those it is given checked one way, its own built one way."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bridge.sinks.alerts.sink import external_url
from bridge.urls import (
    http_url_problem,
    link_origin,
    otlp_endpoint_problem,
    own_url,
    split_userinfo,
    url_meant,
)
from tests.config.helpers import OTLP_ENDPOINTS_ACCEPTED, OTLP_ENDPOINTS_REFUSED
from tests.support import make_settings
from tests.webconfig.files import WebFiles


@pytest.mark.parametrize(
    ("host", "port", "here", "elsewhere"),
    [
        ("0.0.0.0", 9570, "http://127.0.0.1:9570", "http://bridge-1:9570"),
        ("", 9570, "http://127.0.0.1:9570", "http://bridge-1:9570"),
        ("::", 8080, "http://[::1]:8080", "http://bridge-1:8080"),
        ("127.0.0.1", 1, "http://127.0.0.1:1", "http://127.0.0.1:1"),
        ("::1", 9570, "http://[::1]:9570", "http://[::1]:9570"),
        ("2001:db8::7", 9570, "http://[2001:db8::7]:9570", "http://[2001:db8::7]:9570"),
        ("bridge.example", 80, "http://bridge.example:80", "http://bridge.example:80"),
    ],
)
def test_a_listen_address_becomes_the_url_asked_here_and_from_elsewhere(
    host: str, port: int, here: str, elsewhere: str
) -> None:
    """A wildcard host is loopback for a client on this host and the node name for the others;
    IPv6 goes in brackets; names stay as they are."""
    assert own_url(host, port) == here
    assert own_url(host, port, for_others="bridge-1") == elsewhere
    assert own_url(host, port, tls=True).startswith("https://")


@pytest.mark.parametrize(
    ("addr", "url"),
    [
        ("0.0.0.0:9570", "http://bridge-1:9570"),
        ("[::]:9570", "http://bridge-1:9570"),
        ("[::1]:9570", "http://[::1]:9570"),
        ("10.0.0.5:9570", "http://10.0.0.5:9570"),
    ],
)
def test_the_default_external_url_is_the_address_others_reach(addr: str, url: str) -> None:
    """Unset EXESDB_EXTERNAL_URL: the listen address, a wildcard named by EXESDB_NODE, IPv6 in
    brackets; set, it is used as it is."""
    assert external_url(make_settings(EXESDB_HTTP_ADDR=addr, EXESDB_NODE="bridge-1")) == url
    given = make_settings(EXESDB_HTTP_ADDR=addr, EXESDB_EXTERNAL_URL="https://alerts.example/b")
    assert external_url(given) == "https://alerts.example/b"


def test_the_default_external_url_is_https_when_the_web_config_serves_tls(tmp_path: Path) -> None:
    """With TLS on in EXESDB_WEB_CONFIG_FILE the links in alerts are https URLs."""
    files = WebFiles(tmp_path)
    path = files.write(files.tls_config())
    settings = make_settings(
        EXESDB_HTTP_ADDR="0.0.0.0:9443", EXESDB_NODE="bridge-1", EXESDB_WEB_CONFIG_FILE=str(path)
    )
    assert external_url(settings) == "https://bridge-1:9443"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://hooks.example/t0k3n", None),
        ("http://[::1]:9570", None),
        ("ftp://u:pw@h/t0k3n", "'ftp://u:<redacted>@h/…' is not an http:// or https:// URL"),
        ("http://", "not a URL; allowed: an http:// or https:// URL with a host"),
        ("hooks.example/t0k3n", "not a URL; allowed"),
        ("http:/u:pw@host", "not a URL; allowed"),
        ("http://host:99999/", "its port is not a number from 0 to 65535; allowed"),
        (
            "https://hooks.example\\services\\T0\\t0k3n",
            "its host holds a backslash, which the HTTP client refuses",
        ),
        ("https://hooks.exa mple/t0k3n", "its host holds a blank (a space), which no host name"),
        ("http://u:pw@hooks t0k3n:8080/", "its host holds a blank (a space), which no host name"),
        ("https://u:p w@hooks.example/t0k3n", None),  # the password's, not the host's
        # Two URLs in one, or an env file's comment: the first host would get a path it lacks.
        ("http://a.example/t0k3n http://b.example/t0k3n", "holds a second URL after a blank,"),
        ("http://a.example/t0k3n;https://b.example/", "holds a second URL after ';', and"),
        ("http://a.example/t0k3n | http://b.example/", "holds a second URL after '|', and"),
        ("http://a.example:9093 # t0k3n", "holds a comment (' #…') after the URL: an env file"),
        ("http://a.example/go?to=http://b.example/", None),  # a URL in a query is one URL
        # A list of URLs as a query's value, after a URL there: one URL, the relay's.
        ("https://a.example/t0k3n?to=https://b|https://c", None),
        ("https://a.example/t0k3n?k=v&to=https://b;https://c", None),
        ("https://a.example/t0k3n?to=1|https://c", "holds a second URL after '|', and taken as"),
        ("https://a.example/t0k3n?to=https://b https://c", "holds a second URL after a blank"),
        ("https://a.example/t0k3n?to=https://b | https://c", "holds a second URL after '|'"),
        ("https://a.example/t0k3n#to=https://b|https://c", "holds a second URL after '|'"),
        ("http://a.example/my hook", None),  # a blank in a path: sent as %20
        (" http://a.example/t0k3n", None),  # a blank before: dropped, as the clients drop it
    ],
)
def test_a_url_given_is_http_or_https_with_a_host_and_never_echoed(
    url: str, problem: str | None
) -> None:
    """The one check: an http:// or https:// URL with a host and a valid port; its problem
    shows the URL only as safe_url does, and text that is no URL not at all."""
    found = http_url_problem(url)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(problem)
        assert "pw" not in found
        assert "t0k3n" not in found


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("https://a.example/t0k3n|https://c", "at a path no one serves;"),
        ("https://a.example/t0k3n?to=1|https://c", "with the second in its query;"),
        ("https://a.example/t0k3n?to=1#x|https://c", "the second in its fragment, which is never"),
    ],
)
def test_a_second_url_is_said_to_land_where_it_would(url: str, where: str) -> None:
    """A second URL refused says where the first one's request would carry it: its path, its
    query or its fragment (never sent)."""
    found = http_url_problem(url)
    assert found is not None
    assert f"it would go to the first one's host, {where}" in found


def _requests_refuses(url: str) -> bool:
    """Whether the OTLP/HTTP exporter's client (requests) refuses to send to ``url`` at all."""
    import requests

    session = requests.Session()
    try:
        session.prepare_request(requests.Request("POST", url))
        session.get_adapter(url)
    except requests.RequestException:
        return True
    finally:
        session.close()
    return False


@pytest.mark.parametrize(
    "value",
    [v for p, v in OTLP_ENDPOINTS_ACCEPTED + OTLP_ENDPOINTS_REFUSED if p == "http/protobuf"],
)
def test_the_http_endpoint_check_refuses_what_the_exporter_client_refuses(value: str) -> None:
    """For http/protobuf the bridge refuses exactly the endpoints the SDK's HTTP client
    (requests) cannot post to once the exporter appended its path."""
    url = f"{value.removesuffix('/')}/v1/traces"  # as the SDK's exporter builds it
    assert (otlp_endpoint_problem(value, "http/protobuf") is not None) == _requests_refuses(url)


# gRPC's own words for a target it cannot resolve whatever the network holds.
_GRPC_UNUSABLE = (
    "Failed to parse port",
    "host must not be empty",
    "Unparsable name",
    "Misformatted domain name",
)


def _grpc_failure(value: str) -> str:
    """What a real gRPC channel to the target the SDK's exporter dials for ``value`` reports."""
    import grpc

    target = urlsplit(value).netloc or value  # as OTLPExporterMixin picks its target
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        try:
            call(b"", timeout=5)
        except grpc.RpcError as exc:
            return str(exc.details())
    return ""


@pytest.mark.parametrize(
    "value",
    [v for p, v in OTLP_ENDPOINTS_ACCEPTED + OTLP_ENDPOINTS_REFUSED if p == "grpc"],
)
def test_the_grpc_endpoint_check_refuses_what_grpc_cannot_resolve(value: str) -> None:
    """For grpc the bridge refuses the targets gRPC itself cannot parse or resolve as a name,
    and a port above 65535 (gRPC would dial it modulo 65536); it accepts the rest, however
    unreachable."""
    problem = otlp_endpoint_problem(value, "grpc")
    if value.endswith(":99999"):
        assert problem is not None
        return
    unusable = any(words in _grpc_failure(value) for words in _GRPC_UNUSABLE)
    assert (problem is not None) == unusable


@pytest.mark.parametrize(
    ("url", "split"),
    [
        ("http://127.0.0.1:9570", ("http://127.0.0.1:9570", None)),
        (
            "https://alice:s%40cret@bridge:9570/x?y=1",
            ("https://bridge:9570/x?y=1", ("alice", "s@cret")),
        ),
        ("http://token@[::1]:8080", ("http://[::1]:8080", ("token", ""))),
    ],
)
def test_split_userinfo_takes_the_credentials_out_of_a_url(
    url: str, split: tuple[str, tuple[str, str] | None]
) -> None:
    """A URL's user:password@ comes off, percent-decoded, the host left as written; a URL
    without one is as it was."""
    assert split_userinfo(url) == split


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://wiki.example/runbooks/disk-full?x=1#a", "https://wiki.example"),
        ("HTTPS://Wiki.Example:443/a", "https://wiki.example"),
        ("http://wiki.example:80", "http://wiki.example"),
        ("http://wiki.example:443/a", "http://wiki.example:443"),
        ("https://runbooks.example:8443/db", "https://runbooks.example:8443"),
        ("http://[2001:DB8::7]:8080/a", "http://[2001:db8::7]:8080"),
        ("https://bob:pw@wiki.example/a", None),
        ("https://t0k3n@wiki.example/a", None),
        ("ftp://wiki.example/a", None),
        ("https://wiki.example:99999/a", None),
        ("https:///runbooks", None),
        ("wiki.example/runbooks", None),
    ],
)
def test_a_links_origin_is_written_one_way_and_user_info_makes_it_none(
    url: str, origin: str | None
) -> None:
    """link_origin gives scheme, host and port in lower case without a default port (one
    origin, one spelling); a URL with user info, of another scheme or with no host has none."""
    assert link_origin(url) == origin


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("127.0.0.1:9570", "http://127.0.0.1:9570"),
        ("hooks.example:8080/t0k3n", "http://hooks.example:8080/…"),
        ("http:/127.0.0.1:9570", "http://127.0.0.1:9570"),
        ("http//user:pw@h.example/x", "http://user:<redacted>@h.example/…"),
        ("HTTPS:///bridge.example:8443", "https://bridge.example:8443"),
        ("https:bridge.example", "https://bridge.example"),
        ("http:8080", None),  # a host named http, or a port without its host?
        ("https//", None),
        ("http:/h.example:99999", None),
        ("hooks.example/alerts", None),
        ("ftp:/h.example", None),
    ],
)
def test_a_mistyped_url_is_answered_with_the_url_meant_or_with_none(
    typed: str, meant: str | None
) -> None:
    """A host:port without its scheme, or a URL whose :// is mistyped, is answered with the URL
    it was meant as (credentials redacted), never with the scheme taken for a host
    (http://http/…); None when no URL is sure."""
    assert url_meant(typed) == meant
