"""The web configuration file's schema: exporter-toolkit's ``--web.config.file``, read strictly.

The keys are those of the Prometheus exporter-toolkit (``tls_server_config``,
``http_server_config``, ``basic_auth_users``), so a file written for node_exporter reads the same
here. Values of that schema the bridge cannot honour are refused by key, saying why, as unknown
keys are (``curve_preferences`` of more than one curve, ``RequireAnyClientCert`` without a client
CA): nothing in the file is silently ignored except ``http2`` (the bridge speaks HTTP/1.1 only).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ModelWrapValidatorHandler,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bridge.go_values import GoBool, GoInt, go_duration_up_to, go_int_up_to
from bridge.tlsutil import pem_certificates
from bridge.yamlconfig import Strict, check_yaml, checked_together, read_yaml

__all__ = [
    "CLIENT_AUTH_TYPES",
    "TLS_VERSIONS",
    "HTTPServerConfig",
    "RateLimit",
    "ResponseHeaders",
    "TLSServerConfig",
    "WebConfig",
    "parse_web_config",
    "tls_section",
]

CLIENT_AUTH_TYPES: Final = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
ClientAuthType = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]
# RequireAnyClientCert's old name, which the toolkit still takes.
_OLD_REQUIRE_ANY: Final = "RequireClientCert"
TLS_VERSIONS: Final = ("TLS10", "TLS11", "TLS12", "TLS13")
TLSVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
# The client-auth types that verify a certificate. Python's ssl cannot accept a certificate
# without verifying it, so RequireAnyClientCert verifies too, and needs client_ca_file: the
# system's CAs, which the other two verify against without one (Go's rule), would let in any
# certificate they issued, where Go's RequireAnyClientCert lets in any at all.
_VERIFYING: Final = frozenset(
    {"RequireAnyClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"}
)
# A bcrypt hash as htpasswd -B and every bcrypt library write it: $2<v>$<cost>$<53 characters>.
# The minor version is required: the bcrypt package refuses the original "$2$" at every check.
_BCRYPT: Final = re.compile(r"\$2[abxy]\$(\d\d)\$[./A-Za-z0-9]{53}")
_BCRYPT_START: Final = re.compile(r"\$2[abxy]\$")
# A line as htpasswd prints it, user:hash (no blank, no $ in the name).
_HTPASSWD_LINE: Final = re.compile(r"[^\s$:]+:\$2[abxy]\$")
# Keys whose empty value the toolkit takes as unset (its IsEnabled and path checks test for "").
_BLANK_IS_UNSET: Final = frozenset(
    {"cert_file", "cert", "key_file", "key", "client_ca_file", "client_ca", "client_auth_type"}
)
# Keys of the schema that names are shown for but whose values never are.
_SECRET_KEYS: Final = frozenset({"basic_auth_users", "key"})
# Keys the toolkit reads into Go maps, where yaml.v2 refuses a key set twice, even by a merge.
_GO_MAPS: Final = frozenset({"basic_auth_users", "headers"})
# Go's names of the curves the toolkit takes in curve_preferences.
CurveName = Literal["CurveP256", "CurveP384", "CurveP521", "X25519"]


def _header_value(value: str | None) -> str | None:
    if value is not None and any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must be one line of printable characters")
    # A blank value leaves the header unset (the toolkit would send it empty, which says nothing).
    return value or None


HeaderValue = Annotated[str | None, AfterValidator(_header_value)]


def _one_curve(value: tuple[str, ...]) -> tuple[str, ...]:
    if len(value) > 1:
        # Python's ssl has set_ecdh_curve (one group) and no way to set a list of them.
        raise ValueError(
            "Python's ssl sets one curve only: give one of CurveP256, CurveP384, CurveP521 and"
            " X25519, or leave the key out (OpenSSL's defaults)"
        )
    return value


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("empty")  # worded by check_yaml as every null where a value goes
    return value


class ResponseHeaders(Strict):
    """The headers the toolkit lets a web config add to every response (its names, exactly)."""

    content_security_policy: HeaderValue = Field(None, alias="Content-Security-Policy")
    # The toolkit refuses any other value of these two, a blank or null one included (Go reads a
    # null as ""), so neither is left unset as a blank free-form one is.
    x_frame_options: Annotated[Literal["deny", "sameorigin"] | None, BeforeValidator(_not_null)] = (
        Field(None, alias="X-Frame-Options")
    )
    x_content_type_options: Annotated[Literal["nosniff"] | None, BeforeValidator(_not_null)] = (
        Field(None, alias="X-Content-Type-Options")
    )
    x_xss_protection: HeaderValue = Field(None, alias="X-XSS-Protection")
    strict_transport_security: HeaderValue = Field(None, alias="Strict-Transport-Security")

    def items(self) -> tuple[tuple[str, str], ...]:
        """(name, value) of each header that is set."""
        return tuple(
            (name, value)
            for name, value in self.model_dump(by_alias=True).items()
            if value  # blank means unset
        )


class HTTPServerConfig(Strict):
    """``http_server_config``."""

    # Accepted for files written for the toolkit; the bridge serves HTTP/1.1 only.
    http2: GoBool = True
    headers: ResponseHeaders = ResponseHeaders()


def _toolkit_spellings(data: Any) -> Any:
    """``tls_server_config`` as the toolkit reads it: an empty string (a template's blank value)
    or a null is an unset key, and RequireClientCert is the old name it still takes for
    RequireAnyClientCert."""
    if not isinstance(data, Mapping):
        return data
    data = {k: v for k, v in data.items() if v not in ("", None) or k not in _BLANK_IS_UNSET}
    if data.get("client_auth_type") == _OLD_REQUIRE_ANY:
        data["client_auth_type"] = "RequireAnyClientCert"
    return data


def _given(value: Any) -> bool:
    """Whether a key's value sets anything: not null, blank or an empty list (Go's zero values;
    ``false`` is a choice, since ``prefer_server_cipher_suites`` defaults to true)."""
    return value is not None and value != "" and value != []


def _tls_server_problems(values: Mapping[str, Any], *, old_name: bool = False) -> list[str]:
    """What the keys of ``tls_server_config`` (as ``_toolkit_spellings`` gives them) get wrong
    together (``old_name``: the file wrote RequireAnyClientCert as RequireClientCert). While TLS
    is off (the toolkit's rule: no certificate, key, client CA or client-auth type), each other
    key given is one: it would do nothing, and an allow-list or a minimum version that protects
    nothing must not pass for one that does (the toolkit silently serves HTTP)."""
    if not _BLANK_IS_UNSET & set(values):
        return [
            f"{key} does nothing while TLS is off: give cert_file and key_file (or cert and key) "
            "to turn TLS on, or leave it out"
            for key in TLSServerConfig.model_fields
            if key not in _BLANK_IS_UNSET and _given(values.get(key))
        ]
    problems = [
        f"at most one of {inline_key} and {file_key}"
        for file_key, inline_key in (("cert_file", "cert"), ("key_file", "key"))
        if values.get(file_key) and values.get(inline_key)
    ]
    missing = [
        f"{file_key} (or {inline_key})"
        for file_key, inline_key in (("cert_file", "cert"), ("key_file", "key"))
        if not values.get(file_key) and not values.get(inline_key)
    ]
    if missing:
        problems.append(f"TLS needs {' and '.join(missing)}")
    if values.get("client_ca_file") and values.get("client_ca"):
        problems.append("at most one of client_ca and client_ca_file")
    given = next((key for key in ("client_ca_file", "client_ca") if values.get(key)), "")
    auth_type = values.get("client_auth_type", "NoClientCert")
    if auth_type not in CLIENT_AUTH_TYPES:  # said by the key's own check
        auth_type = None
    if given and auth_type == "NoClientCert":
        problems.append(
            f"{given} is set but client_auth_type is NoClientCert; "
            "use RequireAndVerifyClientCert to check client certificates"
        )
    if auth_type == "RequireAnyClientCert" and not given:
        written = f"{_OLD_REQUIRE_ANY} (RequireAnyClientCert)" if old_name else auth_type
        problems.append(
            f"client_auth_type {written} needs client_ca_file or client_ca (Python's"
            " ssl verifies every certificate it asks for, so it cannot take any certificate as"
            " Go does)"
        )
    if values.get("client_allowed_sans") and auth_type and auth_type not in _VERIFYING:
        problems.append(
            "client_allowed_sans needs a client_auth_type that checks certificates "
            "(RequireAndVerifyClientCert, VerifyClientCertIfGiven or RequireAnyClientCert)"
        )
    low, high = values.get("min_version", "TLS12"), values.get("max_version", "TLS13")
    if (
        low in TLS_VERSIONS
        and high in TLS_VERSIONS
        and TLS_VERSIONS.index(low) > (TLS_VERSIONS.index(high))
    ):
        problems.append(f"min_version {low} is above max_version")
    return problems


class TLSServerConfig(Strict):
    """``tls_server_config``: paths are relative to the web config file's folder."""

    @model_validator(mode="wrap")
    @classmethod
    def _check(cls, data: Any, handler: ModelWrapValidatorHandler[TLSServerConfig]) -> Any:
        # The old name, as written, is what a problem about it names.
        old = isinstance(data, Mapping) and data.get("client_auth_type") == _OLD_REQUIRE_ANY
        data = _toolkit_spellings(data)
        return checked_together(
            data, handler, lambda values: _tls_server_problems(values, old_name=old)
        )

    cert_file: str | None = None
    key_file: str | None = None
    cert: str | None = None  # the certificate (chain) inline, PEM
    key: SecretStr | None = None  # the key inline, PEM
    client_auth_type: ClientAuthType = "NoClientCert"
    client_ca_file: str | None = None
    client_ca: Annotated[str | None, AfterValidator(pem_certificates)] = None
    # Checked on each request, as the handshake cannot be (see bridge.webconfig.tls).
    client_allowed_sans: tuple[str, ...] = ()
    min_version: TLSVersionName = "TLS12"
    max_version: TLSVersionName = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: GoBool = True
    # One curve, the only one offered (see bridge.webconfig.tls); none: OpenSSL's defaults.
    curve_preferences: Annotated[tuple[CurveName, ...], AfterValidator(_one_curve)] = ()

    @property
    def enabled(self) -> bool:
        """TLS is on when a certificate, key, client CA or client-auth type is given (toolkit)."""
        return bool(self.model_fields_set & _BLANK_IS_UNSET)

    @property
    def system_client_cas(self) -> bool:
        """True when client certificates are verified against the system's CAs, as Go verifies
        them when no client CA is given."""
        verifying = self.client_auth_type in _VERIFYING
        return verifying and not (self.client_ca_file or self.client_ca)

    def relative_to(self, folder: Path) -> TLSServerConfig:
        """The same settings with the file paths made absolute from ``folder``."""
        update = {
            key: str(folder / path)
            for key in ("cert_file", "key_file", "client_ca_file")
            if (path := getattr(self, key))
        }
        return self.model_copy(update=update)


def _bcrypt_hash(value: Any) -> str:
    """A user's hash; run before the type check, so that a number (``alice: 123``) is told it
    must be a bcrypt hash at once, not first to be quoted and then, quoted, to be a hash."""
    if isinstance(value, str) and value.startswith("$2$"):
        # Go's bcrypt takes this first form; the bcrypt package refuses it at every check, so no
        # password would ever be accepted. Still never show the value.
        raise ValueError(
            "the original $2$ bcrypt form is not supported (the bcrypt package cannot check "
            "it): hash the password again, with htpasswd -nBC 10 \"\" | tr -d ':\\n' ($2y$) "
            "or Python's bcrypt.hashpw ($2b$)"
        )
    if isinstance(value, str) and _HTPASSWD_LINE.match(value):
        # A whole htpasswd line (htpasswd -nB alice prints "alice:$2y$…") as the value.
        raise ValueError(
            "holds a name and a colon before its bcrypt hash, as htpasswd prints a user's line"
            " (user:$2y$…): give the hash alone, from its $2 on; the user's name is the key"
        )
    match = _BCRYPT.fullmatch(value) if isinstance(value, str) else None
    if isinstance(value, str) and match is None and _BCRYPT_START.match(value):
        # A hash that starts as one and is not whole: cut short, or changed, in the pasting.
        raise ValueError(
            "starts as a bcrypt hash but is not a whole one ($2y$, two digits of cost, $, then"
            " 53 characters of ./A-Za-z0-9: 60 in all): copy it again whole, or make a new one,"
            " e.g. with htpasswd -nBC 10 \"\" | tr -d ':\\n'"
        )
    if not isinstance(value, str) or match is None or not 4 <= int(match.group(1)) <= 31:
        # Never show the value: it is a password hash.
        raise ValueError(
            "must be a bcrypt hash ($2y$, $2b$, $2a$ or $2x$), "
            "e.g. from htpasswd -nBC 10 \"\" | tr -d ':\\n'"
        )
    return value


def _users_mapping(value: Any) -> Any:
    """``basic_auth_users`` as given; an htpasswd line pasted under it as written
    (``alice:$2y$…``, no space after the colon), which YAML reads as one text, not a mapping,
    is told so, never shown."""
    if isinstance(value, str) and _HTPASSWD_LINE.match(value):
        raise ValueError(
            "must be a mapping of user: bcrypt hash lines, and YAML reads what is under it as"
            " one text: a user's line as htpasswd prints it (user:$2y$…) needs a space after"
            " its colon (user: $2y$…)"
        )
    return value


# The most rate_limit takes, where the toolkit takes any Go duration and int: past them a value is
# a slip (a stray zero, milliseconds written as seconds), as past the environment's settings' and
# the receivers file's bounds; a burst past a float's range would stop the bridge at start.
_Interval = Annotated[float, go_duration_up_to("24h", zero="no limit", example="1s")]
_Burst = Annotated[GoInt, go_int_up_to(1_000_000, example=10)]


class RateLimit(Strict):
    """``rate_limit``: at most ``burst`` requests at once, then one per ``interval``."""

    interval: _Interval = 0.0  # 0: no limit
    burst: _Burst = 0

    @property
    def enabled(self) -> bool:
        """True when requests are limited (a non-zero interval, the toolkit's rule)."""
        return self.interval > 0


class WebConfig(Strict):
    """The whole file; every key optional, an empty file means plain HTTP without auth."""

    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = HTTPServerConfig()
    basic_auth_users: Annotated[
        dict[str, Annotated[str, BeforeValidator(_bcrypt_hash)]], BeforeValidator(_users_mapping)
    ] = {}
    rate_limit: RateLimit = RateLimit()

    @field_validator("basic_auth_users")
    @classmethod
    def _check_users(cls, users: dict[str, str]) -> dict[str, str]:
        for name in users:
            if not name or ":" in name:
                # Basic auth sends "user:password": a name with a colon could never log in.
                raise ValueError("a user name must be non-empty and have no colon")
        return users

    @property
    def tls(self) -> TLSServerConfig | None:
        """The TLS settings when TLS is on, else None."""
        tls = self.tls_server_config
        return tls if tls is not None and tls.enabled else None

    def summary(self) -> str:
        """What the file sets, without a path's content, a user name or a hash."""
        tls = self.tls
        parts = [
            "TLS off"
            if tls is None
            else f"TLS on ({tls.min_version}-{tls.max_version}, "
            f"client certificates: {tls.client_auth_type}"
            + (" against the system's CAs" if tls.system_client_cas else "")
            + (f", {len(tls.client_allowed_sans)} allowed SANs" if tls.client_allowed_sans else "")
            + ")"
        ]
        users = len(self.basic_auth_users)
        parts.append(f"basic auth: {users} user{'' if users == 1 else 's'}" if users else "no auth")
        headers = [name for name, _ in self.http_server_config.headers.items()]
        parts.append(f"headers: {', '.join(headers)}" if headers else "no extra headers")
        limit = self.rate_limit
        if limit.enabled:
            parts.append(f"rate limit: burst {limit.burst}, one more every {limit.interval:g}s")
        return "; ".join(parts)


def parse_web_config(text: str, path: Path, *, raw: Any = None) -> WebConfig:
    """The file's text as a WebConfig with absolute paths; ConfigError naming each bad key.

    ``raw`` is ``read_yaml``'s reading of ``text``, for a caller that has it already.
    """
    config = check_yaml(
        read_yaml(text, path) if raw is None else raw,
        text,
        path,
        WebConfig,
        secret_keys=_SECRET_KEYS,
        go_maps=_GO_MAPS,
    )
    if config.tls_server_config is not None:
        config = config.model_copy(
            update={"tls_server_config": config.tls_server_config.relative_to(path.parent)}
        )
    return config


def tls_section(raw: Any, path: Path) -> tuple[TLSServerConfig | None, bool]:
    """The ``tls_server_config`` of ``raw`` (``read_yaml`` of the file) alone, whatever the rest
    holds: the section, paths made absolute, when it is good and turns TLS on (else None), and
    whether it gives a certificate, key, client CA or client-auth type, which turn TLS on (the
    toolkit's rule), good or not. So that a file with bad keys elsewhere has its certificates
    checked in the same pass, and a bridge refusing it can still be reached."""
    section = raw.get("tls_server_config") if isinstance(raw, Mapping) else None
    meant = isinstance(section, Mapping) and any(
        section.get(key) not in ("", None) for key in _BLANK_IS_UNSET
    )
    try:
        tls = TLSServerConfig.model_validate(section)
    except ValidationError:
        return None, meant
    return (tls.relative_to(path.parent) if tls.enabled else None), meant
