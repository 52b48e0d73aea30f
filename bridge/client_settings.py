"""The settings the client commands read, each checked as ``Settings`` checks it, and no others.

``publish``, ``tail``, ``alerts`` and ``outbox`` each read a model of their own here
(``BridgeLocation``, ``AdminClientSettings``, ``PublishSettings``, ``OutboxSettings``): a bad
value in a variable a command never uses stops the service but not the command; one it uses is
refused in ``load_settings``' words (``read_settings``). ``Settings`` declares these variables
with the types defined here, so a value is checked one way whoever reads it, and reads the
environment as ``FromEnvironment`` does. The commands read their values without pydantic first
(``bridge.client_environment``), and come here only for a value those checks do not take as it
is (``read_client_settings``): to have it judged, and a refusal worded, here.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Annotated, Any, Final, Self, TypeVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ModelWrapValidatorHandler,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, InitErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bridge.client_environment import (
    DEFAULT_STATE_DIR,
    MAX_NODE_LENGTH,
    MIN_SECRET_LENGTH,
    AdminClientValues,
    BridgeAddress,
    ClientValues,
    OutboxValues,
    PublishValues,
    admin_token_problem,
    state_dir_problem,
)
from bridge.errors import ConfigError
from bridge.hidden import NODE_PATTERN
from bridge.messages._base import node_joiners_placed
from bridge.probe_settings import DEFAULT_HTTP_ADDR, NOT_TEXT, holds_no_text, split_addr
from bridge.settings_errors import describe_error
from bridge.urls import require_bridge_url, require_http_url

__all__ = [
    "DEFAULT_STATE_DIR",
    "MIN_SECRET_LENGTH",
    "AdminClientSettings",
    "AdminToken",
    "BaseUrl",
    "BridgeLocation",
    "BridgeUrl",
    "FromEnvironment",
    "ListenAddress",
    "NodeName",
    "OutboxSettings",
    "PublishSettings",
    "SettingsModel",
    "SigningKey",
    "SigningKeyText",
    "StateDir",
    "Trimmed",
    "raised_again",
    "read_client_settings",
    "read_settings",
    "setting",
    "trimmed",
]

# A client command's settings model, for the functions that read any of them.
SettingsModel = TypeVar("SettingsModel", bound="FromEnvironment")
Values = TypeVar("Values", bound=ClientValues)


def setting(variable: str, **kwargs: Any) -> Any:
    """A settings field read from the environment variable ``variable``."""
    return Field(validation_alias=variable, **kwargs)


def trimmed(value: Any) -> Any:
    """``value`` without the blanks around it, when it is text."""
    # A blank around a name, path, URL, switch or protocol is a stray one (an env file's
    # "X= /srv/x", a quoted YAML value): " /tmp/x" would be a folder named so in the working
    # directory, " n1 " a node apart from "n1", "http://am:9093 " no URL, "true " no switch,
    # and " https://bridge.example" (which Python's URL parser takes) the start of every
    # alert's link. Blanks only are unset already (FromEnvironment).
    return value.strip() if isinstance(value, str) else value


def _token(value: Any) -> Any:
    # A token kept in a file (a Kubernetes secret) ends in a line break: trimmed, for the
    # bridge, its pages and the client commands alike; nothing left is no token.
    if isinstance(value, str):
        if (problem := admin_token_problem(token := value.strip())) is not None:
            raise ValueError(problem)
        return token or None
    return value


def _base_url(value: str | None) -> str | None:
    return require_http_url(value).rstrip("/") if value else None


def _bridge_url(value: str | None) -> str | None:
    return require_bridge_url(value) if value else None


def _listen_address(value: str) -> str:
    split_addr(value)
    return value


def _state_dir(value: str) -> str:
    if (problem := state_dir_problem(value)) is not None:
        raise ValueError(problem)
    return value


# A name or a path, taken without the blanks around it.
Trimmed = Annotated[str, BeforeValidator(trimmed)]
# The constraints first: pydantic then words a refusal as one of a string ("at most 255
# characters"), not of any sized value.
NodeName = Annotated[
    str,
    Field(min_length=1, max_length=MAX_NODE_LENGTH, pattern=NODE_PATTERN),
    BeforeValidator(trimmed),
    AfterValidator(node_joiners_placed),  # a message's node name's rule (NodeLabel)
]
# An http:// or https:// URL with a host, its trailing slashes left out (unset: None).
BaseUrl = Annotated[str | None, BeforeValidator(trimmed), AfterValidator(_base_url)]
# EXESDB_URL: a BaseUrl without a query or fragment, after which the commands' paths would go.
BridgeUrl = Annotated[BaseUrl, AfterValidator(_bridge_url)]
# host:port, as the bridge listens (``split_addr``).
ListenAddress = Annotated[str, AfterValidator(_listen_address)]
AdminToken = Annotated[SecretStr | None, BeforeValidator(_token)]
# SECRET_KEY_BASE and each previous key: taken as they are (UTF-8 text, as every setting).
SigningKeyText = SecretStr
SigningKey = SecretStr | None
# EXESDB_STATE_DIR: a path, trimmed, not one beginning with ~ (``state_dir_problem``).
StateDir = Annotated[str, BeforeValidator(trimmed), AfterValidator(_state_dir)]


class _Environment(EnvSettingsSource):
    """The environment as the settings read it: a variable set to blanks only is unset, as one
    set to the empty string is (``env_ignore_empty``), for every setting."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        value, key, is_complex = super().get_field_value(field, field_name)
        if isinstance(value, str) and not value.strip():
            return None, key, is_complex
        return value, key, is_complex


class FromEnvironment(BaseSettings):
    """Settings read from the environment, one variable each, as every model of them reads it;
    a value holding bytes that are not UTF-8 text is refused, whichever setting holds it."""

    # A variable set to the empty string is unset (docker compose's ${X:-}, an empty Kubernetes
    # value), as the OpenTelemetry environment-variable specification asks: its default, never
    # a refusal or an empty path; so is one set to blanks only (_Environment). Each model is
    # built when first read, not at import: a process reads one of them (the service
    # ``Settings``, a client command its own).
    model_config = SettingsConfigDict(
        case_sensitive=True,
        extra="ignore",
        frozen=True,
        populate_by_name=False,
        env_ignore_empty=True,
        defer_build=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """pydantic-settings' sources, the environment read as ``_Environment`` reads it."""
        return init_settings, _Environment(settings_cls), dotenv_settings, file_secret_settings

    @model_validator(mode="wrap")
    @classmethod
    def _text_only(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        # On Linux the environment keeps a byte that is no UTF-8 as a lone surrogate (PEP 383),
        # which every string check takes and which fails only where it is encoded: a label,
        # a page or a header (EXESDB_REVISION=$'\xff' had / and /metrics answer 500). Refused
        # here for every setting of every model, never shown (it may be a secret); the other
        # values judged with these unset, so that every problem is said at once.
        if not isinstance(data, dict):
            return handler(data)
        refused = sorted(name for name, value in data.items() if holds_no_text(value))
        if not refused:
            return handler(data)
        errors: list[InitErrorDetails] = [
            {
                "type": "value_error",
                "loc": (name,),
                "input": None,
                "ctx": {"error": ValueError(NOT_TEXT)},
            }
            for name in refused
        ]
        try:
            handler({name: value for name, value in data.items() if name not in refused})
        except ValidationError as exc:
            errors += [raised_again(error) for error in exc.errors(include_url=False)]
        raise ValidationError.from_exception_data(cls.__name__, errors)


class BridgeLocation(FromEnvironment):
    """Where a running bridge is: ``EXESDB_URL``, else the address it listens on
    (``EXESDB_HTTP_ADDR``), over https when its web config file turns TLS on."""

    url: BridgeUrl = setting("EXESDB_URL", default=None)
    # None when not set (not DEFAULT_HTTP_ADDR): a command then says it asked the default address.
    http_addr: ListenAddress | None = setting("EXESDB_HTTP_ADDR", default=None)
    web_config_file: Trimmed | None = setting("EXESDB_WEB_CONFIG_FILE", default=None)

    @property
    def listen(self) -> tuple[str, int]:
        """``EXESDB_HTTP_ADDR`` as (host, port), its default's when it is not set."""
        return split_addr(self.http_addr or DEFAULT_HTTP_ADDR)


class AdminClientSettings(BridgeLocation):
    """What ``tail`` and ``alerts`` read: where the bridge is, and the admin token."""

    admin_token: AdminToken = setting("EXESDB_ADMIN_TOKEN", default=None)


class PublishSettings(BridgeLocation):
    """What ``publish`` reads: where the bridge is, the key it signs with and the node it names."""

    secret_key_base: SigningKey = setting("SECRET_KEY_BASE", default=None)
    node: NodeName = setting("EXESDB_NODE", default_factory=socket.gethostname)


class OutboxSettings(FromEnvironment):
    """What ``outbox`` reads: the state directory holding the alert outbox."""

    state_dir: StateDir = setting("EXESDB_STATE_DIR", default=DEFAULT_STATE_DIR)


def raised_again(error: ErrorDetails) -> InitErrorDetails:
    """``error`` as one to raise again among others (a ``ValidationError`` made anew)."""
    kept: InitErrorDetails = {"type": error["type"], "loc": error["loc"], "input": error["input"]}
    if "ctx" in error:
        kept["ctx"] = error["ctx"]  # a value error's own message is in it
    return kept


def read_settings(model: type[SettingsModel]) -> SettingsModel:
    """``model`` read from the environment; ConfigError listing each refused value, one line
    each, as ``load_settings`` words it."""
    try:
        return model()
    except ValidationError as exc:
        problems = [describe_error(error, model.model_fields) for error in exc.errors()]
        raise ConfigError(problems) from None


# Each client command's values (bridge.client_environment) and the model that judges them.
_MODELS: Final[Mapping[type[ClientValues], type[FromEnvironment]]] = {
    BridgeAddress: BridgeLocation,
    AdminClientValues: AdminClientSettings,
    PublishValues: PublishSettings,
    OutboxValues: OutboxSettings,
}


def read_client_settings(kind: type[Values]) -> Values:
    """``kind``'s values read by its model here, when ``read_plainly`` left them to it;
    ConfigError as ``read_settings`` says."""
    model = read_settings(_MODELS[kind])
    return kind(**{name: getattr(model, name) for name in kind.VARIABLES})
