"""no_proxy: the hosts that skip proxy_url, by Go's httpproxy rules (what Alertmanager uses)."""

from __future__ import annotations

import pytest

from bridge.httpclient import ClientSettings, ClientSetupError, HTTPClientConfig
from bridge.httpclient.proxy import ProxyRule

PROXY = "http://proxy.example:3128"


@pytest.mark.parametrize(
    ("url", "no_proxy", "bypassed"),
    [
        ("https://hooks.example.com/a", "", False),
        ("https://hooks.example.com/a", "*", True),
        ("https://hooks.example.com/a", "example.com", True),
        ("https://example.com/a", "example.com", True),
        ("https://notexample.com/a", "example.com", False),
        ("https://hooks.example.com/a", ".example.com", True),
        ("https://example.com/a", ".example.com", False),
        ("https://hooks.example.com/a", "*.example.com", True),
        ("https://HOOKS.Example.COM/a", " other.test , EXAMPLE.com ", True),
        ("https://hooks.example.com/a", "example.com:443", True),
        ("https://hooks.example.com:8443/a", "example.com:443", False),
        ("http://hooks.example.com/a", "hooks.example.com:80", True),
        ("https://10.1.2.3/a", "10.0.0.0/8", True),
        ("https://11.1.2.3/a", "10.0.0.0/8", False),
        ("https://10.1.2.3/a", "10.1.2.3", True),
        ("https://[2001:db8::7]/a", "2001:db8::/32", True),
        ("https://[2001:db8::7]:8443/a", "[2001:db8::7]:8443", True),
        ("https://[2001:db8::7]/a", "2001:db8:0:0:0:0:0:7", True),
        # Go's httpproxy never proxies loopback once no_proxy is set.
        ("http://127.0.0.1:9000/a", "other.test", True),
        ("http://localhost:9000/a", "other.test", True),
        ("http://[::1]:9000/a", "other.test", True),
        ("http://127.0.0.1:9000/a", "", False),
        # A port of digits that are no ASCII digits (a superscript: int() refuses it) is no port.
        ("https://hooks.example.com/a", "other.test:\u00b2, example.com", True),
    ],
)
def test_no_proxy_matches_as_go_httpproxy_does(url: str, no_proxy: str, bypassed: bool) -> None:
    """Names match themselves and their subdomains (a leading dot: subdomains only), addresses
    and CIDR ranges match addresses, a port narrows an entry, * matches all."""
    assert (ProxyRule.configured(PROXY, no_proxy).proxy_for(url) is None) is bypassed


def test_a_host_in_no_proxy_is_asked_directly_without_the_proxys_credentials() -> None:
    """A request to a host in no_proxy has no proxy and no Proxy-Authorization; others keep
    both."""
    settings = ClientSettings(
        HTTPClientConfig.model_validate(
            {"proxy_url": "http://u:p@proxy.example:3128", "no_proxy": "internal.example"}
        )
    )
    direct = settings.request_options("http://hooks.internal.example/a")
    assert (direct.proxy, direct.proxy_headers, direct.headers) == (None, {}, {})
    proxied = settings.request_options("http://hooks.example.com/a")
    assert proxied.proxy == PROXY
    assert "Proxy-Authorization" in proxied.headers


def test_no_proxy_without_proxy_url_is_refused() -> None:
    """no_proxy alone means nothing, and prometheus/common refuses it: so does the bridge."""
    with pytest.raises(ValueError, match="no_proxy needs proxy_url"):
        HTTPClientConfig.model_validate({"no_proxy": "example.com"})


def environment_settings(**environ: str) -> ClientSettings:
    """An http_config with proxy_from_environment, reading ``environ`` as its environment."""
    config = HTTPClientConfig.model_validate({"proxy_from_environment": True})
    return ClientSettings(config, environ=environ)


def test_proxy_from_environment_takes_each_schemes_proxy_and_no_proxy() -> None:
    """HTTPS_PROXY for https URLs, http_proxy (lower case also read) for http ones, a bare
    host:port read as http://, NO_PROXY's hosts and loopback asked directly, as Go does."""
    settings = environment_settings(
        HTTPS_PROXY="http://u:p@secure-proxy.example:3128",
        http_proxy="plain-proxy.example:8080",
        NO_PROXY=".internal.example",
    )
    secure = settings.request_options("https://hooks.example.com/a")
    assert (secure.proxy, list(secure.proxy_headers)) == (
        "http://secure-proxy.example:3128",
        ["Proxy-Authorization"],
    )
    assert settings.request_options("http://hooks.example.com/a").proxy == (
        "http://plain-proxy.example:8080"
    )
    assert settings.request_options("https://hooks.internal.example/a").proxy is None
    assert settings.request_options("http://127.0.0.1:9000/a").proxy is None
    assert environment_settings().request_options("https://hooks.example.com/a").proxy is None


def test_a_proxy_from_the_environment_that_is_no_http_proxy_fails_the_request() -> None:
    """A SOCKS proxy in HTTPS_PROXY cannot be used: ClientSetupError naming the environment,
    its credentials redacted."""
    settings = environment_settings(HTTPS_PROXY="socks5://u:s3cret@proxy.example:1080")
    with pytest.raises(ClientSetupError, match="HTTPS_PROXY") as caught:
        settings.request_options("https://hooks.example.com/a")
    assert "s3cret" not in str(caught.value)


def test_proxy_connect_header_goes_with_the_connect_of_https_requests_only() -> None:
    """proxy_connect_header rides on an https request's CONNECT (where the proxy URL's own
    credentials win, as in Go); a plain-http request through the proxy has no CONNECT and gets
    none of it."""
    settings = ClientSettings(
        HTTPClientConfig.model_validate(
            {
                "proxy_url": "http://u:p@proxy.example:3128",
                "proxy_connect_header": {
                    "X-Tenant": ["a", "b"],
                    "Proxy-Authorization": ["ignored"],
                },
            }
        )
    )
    secure = settings.request_options("https://hooks.example.com/a")
    assert secure.proxy_headers["X-Tenant"] == "a, b"
    assert secure.proxy_headers["Proxy-Authorization"].startswith("Basic ")
    plain = settings.request_options("http://hooks.example.com/a")
    assert "X-Tenant" not in {**plain.proxy_headers, **plain.headers}


def test_proxy_connect_header_without_a_proxy_is_refused() -> None:
    """Headers for a proxy that is not there are refused, as prometheus/common refuses them."""
    with pytest.raises(ValueError, match="proxy_connect_header needs proxy_url"):
        HTTPClientConfig.model_validate({"proxy_connect_header": {"X-Tenant": ["a"]}})
