"""The client commands' settings read from the environment without pydantic, when plainly good.

``publish``, ``tail``, ``alerts`` and ``outbox`` start a new interpreter per call, and importing
pydantic-settings (with asyncio and pydantic's dataclasses) to read three variables cost each of
them more than the rest of its work (docs/performance.md, "Start-up"). Each command's values are
read here with the checks ``bridge.client_settings``' model of them applies (the same functions
where it has them: ``split_addr``, ``http_url_problem``, ``is_node_name``); a value these checks
do not take as it is, ``read_plainly`` leaves to that model (``read_client_settings``), which
takes it or refuses it in ``load_settings``' words, so a refusal reads the same either way.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Final, Protocol, TypeVar

from bridge.hidden import is_node_name
from bridge.probe_settings import DEFAULT_HTTP_ADDR, split_addr, variable_value
from bridge.urls import http_url_problem

__all__ = [
    "DEFAULT_STATE_DIR",
    "MAX_NODE_LENGTH",
    "MIN_SECRET_LENGTH",
    "AdminClientValues",
    "BridgeAddress",
    "ClientValues",
    "Location",
    "OutboxValues",
    "PublishValues",
    "Secret",
    "SecretValue",
    "admin_token_problem",
    "env_file_slips",
    "read_plainly",
    "state_dir_problem",
]

DEFAULT_STATE_DIR: Final = "./.exesdb-bridge"
# The shortest SECRET_KEY_BASE a bridge with ingest or a Redis bus runs with: so ``publish``
# knows a shorter key for one no bridge it can post to has.
MIN_SECRET_LENGTH: Final = 32
# The longest EXESDB_NODE (``bridge.client_settings.NodeName``).
MAX_NODE_LENGTH: Final = 255
# A comment written after a value in an env file, which docker's --env-file and systemd's
# EnvironmentFile= keep in the value: "X=v # note" is "v # note", and "X="v" # note" (systemd
# drops the quotes) is "v# note".
_ENV_FILE_COMMENT: Final = re.compile(r"\s#|#\s")
# The quotes a value may be wrapped in: docker's --env-file keeps them, and compose those of an
# environment list's "- NAME="value"" (systemd's EnvironmentFile= drops them).
_QUOTES: Final = "\"'"
# The URL settings whose check refuses such a comment itself, saying so (bridge.urls).
_URLS_REFUSING_COMMENTS: Final = frozenset(
    {
        "EXESDB_URL",
        "EXESDB_EXTERNAL_URL",
        "EXESDB_WEBHOOK_URLS",
        "EXESDB_ALERTMANAGER_URL",
        "EXESDB_ALERT_LINK_ORIGINS",
    }
)


def env_file_slips(environ: Mapping[str, str], names: Iterable[str]) -> list[str]:
    """A warning for each of the settings ``names`` whose value in ``environ`` holds what reads
    as a comment an env file kept in it, or is wholly in quotes, which ``docker --env-file``
    keeps, naming the variable only (its value may be a secret); for ``run`` and
    ``check-config`` one with a refused value too, as the slip may be why."""
    notes = []
    for name in sorted(set(names)):
        value = environ.get(name, "").strip()
        if name not in _URLS_REFUSING_COMMENTS and _ENV_FILE_COMMENT.search(value):
            notes.append(
                f"{name} holds what reads as a comment written after its value in an env file (a"
                " '#' beside a blank; the value not shown): docker --env-file and systemd"
                " EnvironmentFile= keep it as part of the value; put the comment on a line of"
                " its own"
            )
        elif len(value) > 1 and value[0] == value[-1] and value[0] in _QUOTES:
            notes.append(
                f"{name} is in quotes ({value[0]}…{value[0]}, the value not shown): docker"
                " --env-file keeps them as part of the value, as compose does those of"
                f" '- {name}=\"…\"' under environment:; write it without quotes"
            )
    return notes


class SecretValue(Protocol):
    """A secret as the commands use it: ``Secret`` here, pydantic's ``SecretStr`` in the models."""

    def get_secret_value(self) -> str: ...


class Location(Protocol):
    """Where a bridge is, as ``BridgeAddress`` and the model ``BridgeLocation`` hold it."""

    @property
    def url(self) -> str | None: ...
    @property
    def http_addr(self) -> str | None: ...
    @property
    def web_config_file(self) -> str | None: ...
    @property
    def listen(self) -> tuple[str, int]: ...


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret read from the environment, its value kept out of ``repr``."""

    value: str = field(repr=False)

    def get_secret_value(self) -> str:
        """The secret itself."""
        return self.value


@dataclass(frozen=True, kw_only=True)
class ClientValues:
    """What a client command reads; ``VARIABLES``: each field's environment variable."""

    VARIABLES: ClassVar[Mapping[str, str]] = {}


@dataclass(frozen=True, kw_only=True)
class BridgeAddress(ClientValues):
    """Where a running bridge is (``bridge.client_settings.BridgeLocation``)."""

    VARIABLES: ClassVar[Mapping[str, str]] = {
        "url": "EXESDB_URL",
        "http_addr": "EXESDB_HTTP_ADDR",
        "web_config_file": "EXESDB_WEB_CONFIG_FILE",
    }

    url: str | None
    # None when EXESDB_HTTP_ADDR is not set: a command then says it asked the default address.
    http_addr: str | None
    web_config_file: str | None

    @property
    def listen(self) -> tuple[str, int]:
        """``EXESDB_HTTP_ADDR`` as (host, port), its default's when it is not set."""
        return split_addr(self.http_addr or DEFAULT_HTTP_ADDR)


@dataclass(frozen=True, kw_only=True)
class AdminClientValues(BridgeAddress):
    """What ``tail`` and ``alerts`` read (``AdminClientSettings``)."""

    VARIABLES: ClassVar[Mapping[str, str]] = {
        **BridgeAddress.VARIABLES,
        "admin_token": "EXESDB_ADMIN_TOKEN",
    }

    admin_token: SecretValue | None


@dataclass(frozen=True, kw_only=True)
class PublishValues(BridgeAddress):
    """What ``publish`` reads (``PublishSettings``)."""

    VARIABLES: ClassVar[Mapping[str, str]] = {
        **BridgeAddress.VARIABLES,
        "secret_key_base": "SECRET_KEY_BASE",
        "node": "EXESDB_NODE",
    }

    secret_key_base: SecretValue | None
    node: str


@dataclass(frozen=True, kw_only=True)
class OutboxValues(ClientValues):
    """What ``outbox`` reads (``OutboxSettings``)."""

    VARIABLES: ClassVar[Mapping[str, str]] = {"state_dir": "EXESDB_STATE_DIR"}

    state_dir: str


Values = TypeVar("Values", bound=ClientValues)


class _NotPlain(Exception):
    """A value the model must judge: it may refuse it, and only it words the refusal."""


def _url(value: str | None) -> str | None:
    # BaseUrl: trimmed, an http(s) URL with a host, its trailing slashes left out; no query or
    # fragment (require_bridge_url).
    if value is None:
        return None
    url = value.strip()
    if http_url_problem(url) is not None or "?" in url or "#" in url:
        raise _NotPlain
    return url.rstrip("/")


def _http_addr(value: str | None) -> str | None:
    # ListenAddress: as the bridge listens (split_addr), taken as given; unset, None (``listen``
    # is then the default's).
    if value is None:
        return None
    try:
        split_addr(value)
    except ValueError:
        raise _NotPlain from None
    return value


def _trimmed(value: str | None) -> str | None:
    return None if value is None else value.strip()


def admin_token_problem(token: str) -> str | None:
    """Why ``token`` (trimmed) cannot be the admin token, or None: a character past printable
    ASCII, which no client sends as the bridge compares it (a browser's fetch sends Latin-1
    bytes, or refuses the request, http.client sends Latin-1, curl UTF-8), so the status page's
    Acknowledge and the ``alerts`` commands would be refused with the right token. The token
    itself is never shown."""
    if all(" " <= character <= "~" for character in token):
        return None
    return (
        "holds a character other than printable ASCII, which browsers and HTTP clients send"
        " as other bytes than the bridge compares (or cannot send), so acknowledging from the"
        " status page or the alerts command would be refused; allowed: printable ASCII, e.g."
        " $(openssl rand -hex 16)"
    )


def _token(value: str | None) -> Secret | None:
    # AdminToken: trimmed (a token kept in a file ends in a line break), printable ASCII.
    if value is None:
        return None
    if admin_token_problem(token := value.strip()) is not None:
        raise _NotPlain
    return Secret(token)


def _secret(value: str | None) -> Secret | None:
    # SECRET_KEY_BASE is taken as it is, blanks and all.
    return None if value is None else Secret(value)


def _node(value: str | None) -> str:
    # NodeName: trimmed, 1 to 255 characters, a node name (is_node_name); unset, the host's name.
    if value is None:
        return socket.gethostname()
    node = value.strip()
    if not 1 <= len(node) <= MAX_NODE_LENGTH or not is_node_name(node):
        raise _NotPlain
    return node


def state_dir_problem(state_dir: str) -> str | None:
    """Why ``state_dir`` (trimmed) names no folder the user meant, judged by its text alone:
    one beginning with ``~``, which only a shell expands (unquoted, at the start of a word), so
    that the bridge would keep its state in a folder named ``~`` in the working directory (one
    a later ``rm -rf ~`` takes for the home folder); None otherwise."""
    if not state_dir.startswith("~"):
        return None
    meant = os.path.expanduser(state_dir)
    example = f", e.g. {meant}" if meant != state_dir else ""
    return (
        "begins with ~, which only a shell expands (not in quotes, an env file, a systemd unit"
        " or a container's environment), so the bridge would make a folder named"
        f" {state_dir.partition('/')[0]!r} in its working directory; allowed: the full"
        f" path{example}"
    )


def _state_dir(value: str | None) -> str:
    # StateDir: trimmed, and no path beginning with ~ (state_dir_problem).
    if value is None:
        return DEFAULT_STATE_DIR
    if state_dir_problem(state_dir := value.strip()) is not None:
        raise _NotPlain
    return state_dir


_READERS: Final[Mapping[str, Callable[[str | None], object]]] = {
    "EXESDB_URL": _url,
    "EXESDB_HTTP_ADDR": _http_addr,
    "EXESDB_WEB_CONFIG_FILE": _trimmed,
    "EXESDB_ADMIN_TOKEN": _token,
    "SECRET_KEY_BASE": _secret,
    "EXESDB_NODE": _node,
    "EXESDB_STATE_DIR": _state_dir,
}


def read_plainly(kind: type[Values], environ: Mapping[str, str]) -> Values | None:
    """``kind``'s values from ``environ`` (unset, empty or blanks only: the default, as every
    setting), or None when one of them is not plainly good: ``read_client_settings`` then has
    the model judge it."""
    values = {}
    for name, variable in kind.VARIABLES.items():
        value = variable_value(environ, variable)
        try:
            if value is not None:
                value.encode()  # an undecodable byte (a surrogate escape): the model judges it
            values[name] = _READERS[variable](value)
        except (_NotPlain, UnicodeEncodeError):
            return None
    return kind(**values)
