"""``http_config`` as prometheus/common reads it: authorization, oauth2, TLS, a proxy and headers.

The keys and rules are those of prometheus/common's ``HTTPClientConfig`` (what Alertmanager's
receivers and Prometheus' scrape jobs take), so a block written for them reads the same here:
at most one of ``authorization``, ``basic_auth`` and ``oauth2``; a value or its ``*_file``, never
both; a client certificate only with its key; ``bearer_token`` / ``bearer_token_file``
(deprecated there) taken as ``authorization``; ``no_proxy`` and ``proxy_from_environment`` as
Go's httpproxy reads them (``bridge.httpclient.proxy``), ``proxy_connect_header`` on the CONNECT
of https requests; ``http_headers`` (values inline, as secrets or from files), none of
prometheus/common's reserved headers nor the bridge's own ``X-ExESDB-*``. Paths are relative to
the file's folder, as there. ``oauth2`` takes the client-credentials grant's keys and, for the
token endpoint, a ``tls_config`` and proxy keys of its own (``bridge.httpclient.oauth2`` fetches
the token); it needs ``client_id``, ``token_url`` and one of ``client_secret`` and
``client_secret_file`` (prometheus/common would take neither, an empty secret: the grant is for
confidential clients, RFC 6749 section 4.4). A CA may be given inline (``tls_config.ca``, checked
when the file is read). What the bridge cannot do is refused by name, saying why (the JWT bearer
grant's keys among them); ``enable_http2`` is accepted and has no effect (the bridge's client
speaks HTTP/1.1); ``follow_redirects`` is true by default, as there, and follows 307 and 308 only
(``bridge.httpclient.redirects``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final

from pydantic import (
    AfterValidator,
    ModelWrapValidatorHandler,
    SecretStr,
    field_validator,
    model_validator,
)

from bridge.go_values import GoBool
from bridge.redaction import safe_url
from bridge.tlsutil import pem_certificates
from bridge.urls import require_http_url
from bridge.webconfig.schema import TLS_VERSIONS, TLSVersionName
from bridge.yamlconfig import Strict, checked_together, not_supported

__all__ = [
    "RESERVED_HEADERS",
    "SECRET_KEYS",
    "UNSUPPORTED_KEYS",
    "Authorization",
    "BasicAuth",
    "HTTPClientConfig",
    "HeaderSource",
    "OAuth2",
    "TLSConfig",
    "canonical_header",
]

# Keys whose values are never shown, in an error or anywhere else.
SECRET_KEYS: Final = frozenset(
    {
        "credentials",
        "password",
        "bearer_token",
        "proxy_url",
        "key",
        "client_secret",
        "secrets",
        "proxy_connect_header",
    }
)
# oauth2's keys of the JWT bearer grant (RFC 7523), which the bridge does not make.
_JWT_KEYS: Final = (
    "client_certificate_key_id",
    "client_certificate_key",
    "client_certificate_key_file",
    "client_certificate_key_ref",
    "signature_algorithm",
    "iss",
    "audience",
    "claims",
)
# Keys of prometheus/common refused by name (left out of "allowed here" lists).
UNSUPPORTED_KEYS: Final = frozenset(
    {
        "credentials_ref",
        "username_ref",
        "password_ref",
        "ca_ref",
        "cert_ref",
        "key_ref",
        "client_secret_ref",
        *_JWT_KEYS,
    }
)
_NO_REFS: Final = "there is no secret manager; use the *_file key"
_CLIENT_CREDENTIALS: Final = "client_credentials"
_JWT_GRANT: Final = (
    "the bridge makes the client_credentials grant only, not the JWT bearer grant (RFC 7523)"
)
_NOTHING: Final = "no http_config"
_BEARER_KEYS: Final = ("bearer_token", "bearer_token_file")


def _both(values: Mapping[str, Any], first: str, second: str) -> list[str]:
    """The problem of a block giving both ``first`` and ``second``, prometheus/common's rule
    (a null or ``""`` is not given, as in Go)."""
    return (
        [f"at most one of {first} and {second}"] if values.get(first) and values.get(second) else []
    )


def _authorization_problems(values: Mapping[str, Any]) -> list[str]:
    return _both(values, "credentials", "credentials_file")


def _basic_auth_problems(values: Mapping[str, Any]) -> list[str]:
    return _both(values, "username", "username_file") + _both(values, "password", "password_file")


def _tls_problems(values: Mapping[str, Any]) -> list[str]:
    problems = _both(values, "ca", "ca_file") + _both(values, "cert", "cert_file")
    problems += _both(values, "key", "key_file")
    has_cert = bool(values.get("cert_file") or values.get("cert"))
    if has_cert != bool(values.get("key_file") or values.get("key")):
        problems.append("a client certificate needs both cert_file (or cert) and key_file (or key)")
    given, high = values.get("min_version"), values.get("max_version")
    # Without min_version the client speaks TLS 1.2 at least, as Go's does.
    low = "TLS12" if given is None else given
    if (
        low in TLS_VERSIONS
        and high in TLS_VERSIONS
        and TLS_VERSIONS.index(low) > TLS_VERSIONS.index(high)
    ):
        problems.append(
            f"min_version {low} is above max_version {high}"
            if given is not None
            else f"max_version {high} is below the default min_version TLS12, so no version is "
            f"left: give min_version {high} too"
        )
    return problems


def _proxy_problems(values: Mapping[str, Any]) -> list[str]:
    """prometheus/common's ``ProxyConfig`` rules, for ``http_config`` and ``oauth2`` alike."""
    problems = []
    proxy_url, no_proxy = values.get("proxy_url"), values.get("no_proxy")
    # True as Go reads it (a quoted "yes" is refused by the key's own check).
    from_environment = values.get("proxy_from_environment") is True
    if from_environment and (proxy_url or no_proxy):
        problems.append(
            "proxy_from_environment takes the proxy and its exceptions from HTTP_PROXY, "
            "HTTPS_PROXY and NO_PROXY: give neither proxy_url nor no_proxy with it"
        )
    elif no_proxy and not proxy_url:
        problems.append("no_proxy needs proxy_url (the hosts it names skip that proxy)")
    if values.get("proxy_connect_header") and not (proxy_url or from_environment):
        problems.append("proxy_connect_header needs proxy_url or proxy_from_environment")
    return problems


def _client_problems(values: Mapping[str, Any]) -> list[str]:
    problems = _both(values, "bearer_token", "bearer_token_file")
    bearer = next((key for key in _BEARER_KEYS if values.get(key)), None)
    if values.get("oauth2") is not None:
        # prometheus/common: "at most one of basic_auth, oauth2 & authorization".
        others = [key for key in ("authorization", "basic_auth") if values.get(key) is not None]
        others += [bearer] if bearer else []
        if others:
            problems.append(
                f"oauth2 cannot be given with {' or '.join(others)}: its token is the request's"
                " Authorization header; give one of them"
            )
    if bearer and values.get("authorization") is not None:
        problems.append("authorization cannot be given with bearer_token or bearer_token_file")
    elif values.get("basic_auth") is not None and (
        bearer or values.get("authorization") is not None
    ):
        problems.append(f"at most one of basic_auth and {bearer or 'authorization'}")
    return problems + _proxy_problems(values)


def _oauth2_problems(values: Mapping[str, Any]) -> list[str]:
    problems = [
        f"{key} is required ({what})"
        for key, what in (
            ("client_id", "the bridge's client id at the token endpoint"),
            ("token_url", "where the token is asked for"),
        )
        if not values.get(key)
    ]
    if bool(values.get("client_secret")) == bool(values.get("client_secret_file")):
        problems.append(
            "exactly one of client_secret and client_secret_file (the client-credentials grant"
            " is for clients with a secret, RFC 6749 section 4.4)"
        )
    params = values.get("endpoint_params")
    if values.get("scopes") and isinstance(params, Mapping) and "scope" in params:
        # golang.org/x/oauth2 refuses it at every token request ("cannot overwrite parameter").
        problems.append("endpoint_params cannot hold scope beside scopes: give the scopes once")
    return problems + _proxy_problems(values)


def _check_proxy_url(value: str | None) -> str | None:
    # Blank is no proxy, as prometheus/common reads it (a template's empty value).
    return require_http_url(value, "proxy URL") if value else None


def _check_connect_header(
    value: dict[str, tuple[SecretStr, ...]],
) -> dict[str, tuple[SecretStr, ...]]:
    for name, values in value.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"{name!r} is not a header name")
        for one in values:
            _header_value(one.get_secret_value())  # the message shows no value
    return value


def _bearer_as_authorization(data: Any) -> Any:
    """prometheus/common's rule: ``bearer_token`` (or ``bearer_token_file``) is ``authorization``
    of type Bearer. When given beside another (``_client_problems`` says so) it is dropped."""
    if not isinstance(data, Mapping) or not set(_BEARER_KEYS) & set(data):
        return data
    for key in _BEARER_KEYS:
        if isinstance(data.get(key), bool | int | float):
            # Named here: once moved under authorization, the error would name a key not written.
            raise ValueError(
                f"{key} must be text, and YAML reads this unquoted value as a "
                f"{'boolean' if isinstance(data[key], bool) else 'number'}: put it in quotes"
            )
    data = dict(data)
    token, token_file = (data.pop(key, None) for key in _BEARER_KEYS)
    if data.get("authorization") is None and not (token and token_file):
        if token:
            data["authorization"] = {"credentials": token}
        elif token_file:
            data["authorization"] = {"credentials_file": token_file}
    return data


def _absolute(folder: Path, path: str | None) -> str | None:
    return str(folder / path) if path else path


class Authorization(Strict):
    """``authorization``: the header ``Authorization: <type> <credentials>``."""

    type: str = "Bearer"
    credentials: SecretStr | None = None
    credentials_file: str | None = None
    credentials_ref: Annotated[Any, not_supported(_NO_REFS)] = None

    @field_validator("type")
    @classmethod
    def _check_type(cls, value: str) -> str:
        value = value.strip() or "Bearer"
        if value.lower() == "basic":
            raise ValueError('cannot be "basic": use basic_auth instead')
        if any(c.isspace() or ord(c) < 32 for c in value):
            raise ValueError("must be one word, e.g. Bearer")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _check(cls, data: Any, handler: ModelWrapValidatorHandler[Authorization]) -> Any:
        return checked_together(data, handler, _authorization_problems)


class BasicAuth(Strict):
    """``basic_auth``: a user name and password (each inline or from a file)."""

    username: str | None = None
    username_file: str | None = None
    password: SecretStr | None = None
    password_file: str | None = None
    username_ref: Annotated[Any, not_supported(_NO_REFS)] = None
    password_ref: Annotated[Any, not_supported(_NO_REFS)] = None

    @field_validator("username")
    @classmethod
    def _check_username(cls, value: str | None) -> str | None:
        if value and ":" in value:
            raise ValueError("basic auth cannot carry a colon in the user name")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _check(cls, data: Any, handler: ModelWrapValidatorHandler[BasicAuth]) -> Any:
        return checked_together(data, handler, _basic_auth_problems)


class TLSConfig(Strict):
    """``tls_config`` of a client: the CA to trust, a client certificate, the server's name."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure_skip_verify: GoBool = False
    min_version: TLSVersionName | None = None
    max_version: TLSVersionName | None = None
    ca: Annotated[str | None, AfterValidator(pem_certificates)] = None
    cert: str | None = None  # a client certificate inline, PEM
    key: SecretStr | None = None  # its key inline, PEM
    ca_ref: Annotated[Any, not_supported(_NO_REFS)] = None
    cert_ref: Annotated[Any, not_supported(_NO_REFS)] = None
    key_ref: Annotated[Any, not_supported(_NO_REFS)] = None

    @model_validator(mode="wrap")
    @classmethod
    def _check(cls, data: Any, handler: ModelWrapValidatorHandler[TLSConfig]) -> Any:
        return checked_together(data, handler, _tls_problems)

    @property
    def configured(self) -> bool:
        """True when anything is set (else the client's defaults apply)."""
        return bool(self.model_dump(exclude_defaults=True))

    @property
    def files(self) -> tuple[tuple[str, str], ...]:
        """The files this reads (and reads again when they change), each with its key."""
        named = (
            ("ca_file", self.ca_file),
            ("cert_file", self.cert_file),
            ("key_file", self.key_file),
        )
        return tuple((key, path) for key, path in named if path)

    def relative_to(self, folder: Path) -> TLSConfig:
        """The same settings with the file paths made absolute from ``folder``."""
        return self.model_copy(
            update={
                "ca_file": _absolute(folder, self.ca_file),
                "cert_file": _absolute(folder, self.cert_file),
                "key_file": _absolute(folder, self.key_file),
            }
        )


# prometheus/common's ReservedHeaders (by canonical name), and the bridge's own.
RESERVED_HEADERS: Final = frozenset(
    {
        "Authorization",
        "Host",
        "Content-Encoding",
        "Content-Length",
        "Content-Type",
        "User-Agent",
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Www-Authenticate",
        "Accept-Encoding",
        "X-Prometheus-Remote-Write-Version",
        "X-Prometheus-Remote-Read-Version",
        "X-Prometheus-Scrape-Timeout-Seconds",
        "X-Amz-Date",
        "X-Amz-Security-Token",
        "X-Amz-Content-Sha256",
    }
)
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field name


def canonical_header(name: str) -> str:
    """``name`` as Go's ``http.CanonicalHeaderKey`` writes it: ``x-api-key`` → ``X-Api-Key``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _header_value(value: str) -> str:
    if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
        raise ValueError("a header value must be one line of printable characters")
    return value


class HeaderSource(Strict):
    """One ``http_headers`` entry: its values given inline, as secrets, or read from files; each
    is one more value of the header."""

    values: tuple[Annotated[str, AfterValidator(_header_value)], ...] = ()
    secrets: tuple[SecretStr, ...] = ()
    files: tuple[str, ...] = ()


class OAuth2(Strict):
    """``oauth2``: the client-credentials grant (RFC 6749 section 4.4) whose token each request
    carries as ``Authorization: Bearer``; ``tls_config`` and the proxy keys are the token
    endpoint's own."""

    client_id: str = ""
    client_secret: SecretStr | None = None
    client_secret_file: str | None = None
    scopes: tuple[str, ...] = ()
    token_url: str = ""
    endpoint_params: dict[str, str] = {}
    grant_type: str = _CLIENT_CREDENTIALS
    tls_config: TLSConfig = TLSConfig()
    proxy_url: str | None = None
    no_proxy: str | None = None
    proxy_from_environment: GoBool = False
    proxy_connect_header: dict[str, tuple[SecretStr, ...]] = {}
    client_secret_ref: Annotated[Any, not_supported(_NO_REFS)] = None
    client_certificate_key_id: Annotated[Any, not_supported(_JWT_GRANT)] = None
    client_certificate_key: Annotated[Any, not_supported(_JWT_GRANT)] = None
    client_certificate_key_file: Annotated[Any, not_supported(_JWT_GRANT)] = None
    client_certificate_key_ref: Annotated[Any, not_supported(_JWT_GRANT)] = None
    signature_algorithm: Annotated[Any, not_supported(_JWT_GRANT)] = None
    iss: Annotated[Any, not_supported(_JWT_GRANT)] = None
    audience: Annotated[Any, not_supported(_JWT_GRANT)] = None
    claims: Annotated[Any, not_supported(_JWT_GRANT)] = None

    _check_proxy = field_validator("proxy_url")(_check_proxy_url)
    _check_connect = field_validator("proxy_connect_header")(_check_connect_header)

    @model_validator(mode="wrap")
    @classmethod
    def _check(cls, data: Any, handler: ModelWrapValidatorHandler[OAuth2]) -> Any:
        return checked_together(data, handler, _oauth2_problems)

    @field_validator("token_url")
    @classmethod
    def _check_token_url(cls, value: str) -> str:
        return require_http_url(value, "token URL") if value else value

    @field_validator("grant_type")
    @classmethod
    def _check_grant(cls, value: str) -> str:
        # "" is Go's zero value: prometheus/common's default, client_credentials.
        if value not in ("", _CLIENT_CREDENTIALS):
            raise ValueError(f"must be {_CLIENT_CREDENTIALS}; {_JWT_GRANT}")
        return _CLIENT_CREDENTIALS

    @property
    def files(self) -> tuple[tuple[str, str], ...]:
        """The files this reads, each with its key under ``oauth2``; its ``tls_config``'s only
        when the token request makes a TLS handshake (an https:// ``token_url`` or proxy)."""
        found = [("client_secret_file", self.client_secret_file)] if self.client_secret_file else []
        proxied = self.proxy_from_environment or str(self.proxy_url).startswith("https:")
        if self.token_url.lower().startswith("https:") or proxied:
            found += [(f"tls_config.{key}", path) for key, path in self.tls_config.files]
        return tuple((f"oauth2.{key}", path) for key, path in found)

    def endpoint(self) -> HTTPClientConfig:
        """The ``http_config`` of the token requests: this block's TLS and proxy, nothing else."""
        return HTTPClientConfig(
            tls_config=self.tls_config,
            proxy_url=self.proxy_url,
            no_proxy=self.no_proxy,
            proxy_from_environment=self.proxy_from_environment,
            proxy_connect_header=self.proxy_connect_header,
        )

    def relative_to(self, folder: Path) -> OAuth2:
        """The same settings with the file paths made absolute from ``folder``."""
        return self.model_copy(
            update={
                "client_secret_file": _absolute(folder, self.client_secret_file),
                "tls_config": self.tls_config.relative_to(folder),
            }
        )

    def summary(self) -> str:
        """What is set, without a secret: the client, the token URL as ``safe_url`` shows it,
        where the secret comes from, the scopes and the names of the endpoint parameters."""
        secret = (
            f"client_secret_file {self.client_secret_file}"
            if self.client_secret_file
            else "client_secret <set, redacted>"
        )
        parts = [f"oauth2 client_id {self.client_id} at {safe_url(self.token_url)} ({secret})"]
        if self.scopes:
            parts.append(f"scopes {' '.join(self.scopes)}")
        if self.endpoint_params:
            parts.append(f"endpoint_params {', '.join(self.endpoint_params)} <values not shown>")
        endpoint = self.endpoint().summary()
        if endpoint != _NOTHING:
            parts.append(f"for the token: {endpoint}")
        return ", ".join(parts)


class HTTPClientConfig(Strict):
    """``http_config``: how the bridge's client talks to one server."""

    also_taken: ClassVar[frozenset[str]] = frozenset(_BEARER_KEYS)  # as authorization
    authorization: Authorization | None = None
    basic_auth: BasicAuth | None = None
    tls_config: TLSConfig = TLSConfig()
    proxy_url: str | None = None
    # prometheus/common's default. True: 307 and 308 followed, 301, 302 and 303 failed attempts;
    # false: every redirect answered as it came (bridge.httpclient.redirects).
    follow_redirects: GoBool = True
    enable_http2: GoBool = True  # accepted for files written for Alertmanager; no effect
    oauth2: OAuth2 | None = None  # bridge.httpclient.oauth2: the token in Authorization
    no_proxy: str | None = None  # bridge.httpclient.proxy: hosts reached without proxy_url
    proxy_from_environment: GoBool = False  # HTTP(S)_PROXY and NO_PROXY, as Go reads them
    # Sent to the proxy with the CONNECT of an https:// request, as Go's transport sends them.
    proxy_connect_header: dict[str, tuple[SecretStr, ...]] = {}
    http_headers: dict[str, HeaderSource] = {}

    @model_validator(mode="wrap")
    @classmethod
    def _check(cls, data: Any, handler: ModelWrapValidatorHandler[HTTPClientConfig]) -> Any:
        return checked_together(
            data, lambda given: handler(_bearer_as_authorization(given)), _client_problems
        )

    _check_proxy = field_validator("proxy_url")(_check_proxy_url)
    _check_connect = field_validator("proxy_connect_header")(_check_connect_header)

    @field_validator("http_headers")
    @classmethod
    def _check_headers(cls, value: dict[str, HeaderSource]) -> dict[str, HeaderSource]:
        for name in value:
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"{name!r} is not a header name")
            if canonical_header(name) in RESERVED_HEADERS or canonical_header(name).startswith(
                "X-Exesdb-"
            ):
                raise ValueError(f"setting header {canonical_header(name)!r} is not allowed")
        for source in value.values():
            for secret in source.secrets:
                _header_value(secret.get_secret_value())  # the message shows no value
        return value

    @property
    def files(self) -> tuple[tuple[str, str], ...]:
        """Every file this names (secrets and TLS), each with its key as a request's error
        names it (``tls_config.ca_file``), for the start-up check."""
        found = [(f"tls_config.{key}", path) for key, path in self.tls_config.files]
        if self.authorization is not None and self.authorization.credentials_file:
            found.append(("authorization.credentials_file", self.authorization.credentials_file))
        if self.basic_auth is not None:
            auth = self.basic_auth
            named = (("username_file", auth.username_file), ("password_file", auth.password_file))
            found += [(f"basic_auth.{key}", path) for key, path in named if path]
        if self.oauth2 is not None:
            found += self.oauth2.files
        for name, source in self.http_headers.items():
            found += [(f"http_headers.{name}.files", path) for path in source.files]
        return tuple(found)

    def relative_to(self, folder: Path) -> HTTPClientConfig:
        """The same settings with every file path made absolute from ``folder``."""
        update: dict[str, Any] = {
            "tls_config": self.tls_config.relative_to(folder),
            "http_headers": {
                name: source.model_copy(
                    update={"files": tuple(str(folder / path) for path in source.files)}
                )
                for name, source in self.http_headers.items()
            },
        }
        if self.authorization is not None:
            update["authorization"] = self.authorization.model_copy(
                update={"credentials_file": _absolute(folder, self.authorization.credentials_file)}
            )
        if self.oauth2 is not None:
            update["oauth2"] = self.oauth2.relative_to(folder)
        if self.basic_auth is not None:
            update["basic_auth"] = self.basic_auth.model_copy(
                update={
                    "username_file": _absolute(folder, self.basic_auth.username_file),
                    "password_file": _absolute(folder, self.basic_auth.password_file),
                }
            )
        return self.model_copy(update=update)

    def summary(self) -> str:
        """What is set, without a secret: auth kind and files, TLS files, proxy origin."""
        parts: list[str] = []
        if self.authorization is not None:
            source = (
                f"credentials_file {self.authorization.credentials_file}"
                if self.authorization.credentials_file
                else "credentials <set, redacted>"
                if self.authorization.credentials
                else "no credentials"
            )
            parts.append(f"authorization {self.authorization.type} ({source})")
        if self.basic_auth is not None:
            auth = self.basic_auth
            user = auth.username or (
                f"username_file {auth.username_file}" if auth.username_file else ""
            )
            secret = (
                f"password_file {auth.password_file}"
                if auth.password_file
                else "password <set, redacted>"
                if auth.password
                else "no password"
            )
            parts.append(f"basic_auth {user} ({secret})".replace("  ", " "))
        if self.oauth2 is not None:
            parts.append(self.oauth2.summary())
        tls = self.tls_config
        if tls.configured:
            inline = {"ca": "ca <inline>", "cert": "cert <inline>", "key": "key <set, redacted>"}
            # A boolean as the file writes it (insecure_skip_verify true), not Python's True.
            shown = [
                inline.get(key, f"{key} {'true' if value is True else value}")
                for key, value in tls.model_dump(exclude_defaults=True).items()
            ]
            parts.append("tls_config " + ", ".join(shown))
        if self.proxy_url:
            skipped = f" (not for {self.no_proxy})" if self.no_proxy else ""
            parts.append(f"proxy {safe_url(self.proxy_url)}{skipped}")
        if self.proxy_from_environment:
            parts.append("proxy from the environment")
        if not self.follow_redirects:
            parts.append("follows no redirect")
        if self.proxy_connect_header:
            names = ", ".join(self.proxy_connect_header)
            parts.append(f"proxy CONNECT headers {names} <set, redacted>")
        for name, header in self.http_headers.items():
            given = [f"{len(header.values)} value(s)"] if header.values else []
            given += ["secrets <set, redacted>"] if header.secrets else []
            given += [f"files {', '.join(header.files)}"] if header.files else []
            parts.append(f"header {name} ({'; '.join(given) or 'empty'})")
        return "; ".join(parts) if parts else _NOTHING
