"""The receivers file (``EXESDB_WEBHOOK_CONFIG_FILE``): webhooks configured as in Alertmanager.

Its top-level ``webhook_configs`` is a list of Alertmanager ``webhook_config`` blocks (``url`` or
``url_file``, ``send_resolved``, ``max_alerts``, ``timeout``, ``http_config``), so a receiver can
be pasted from an Alertmanager configuration, plus three keys of the bridge's own: ``secret`` /
``secret_file`` (the signing key of its deliveries) and ``min_severity``. The optional
``alertmanager`` section gives the Alertmanager poster its ``url``, ``timeout`` and
``http_config``. The optional ``global`` section is Alertmanager's: its ``http_config`` is the
whole ``http_config`` of each receiver that gives none, as Alertmanager applies it (never merged
with one given, nor given to the ``alertmanager`` section, another server: ``_with_global``), and
warned of when no receiver takes it; its other keys set up Alertmanager's other integrations and
are accepted, unread, and warned of (``file_warnings``). ``EXESDB_WEBHOOK_URLS`` receivers are
added to the file's, with the defaults.

The file is read once at start (``read_receivers_file``): validation, the warnings,
``check-config`` and the alert sink all take that one ``ReceiversFileRead``, so they never see two
versions of it. Each receiver has a key under which the outbox keeps its queue and deliveries
(``bridge.receiver_keys``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    ModelWrapValidatorHandler,
    SecretStr,
    ValidationError,
    model_validator,
)

from bridge.client_environment import MIN_SECRET_LENGTH
from bridge.errors import ConfigError
from bridge.go_values import GoBool, GoInt, go_duration, go_duration_up_to, go_int_up_to
from bridge.httpclient import HTTPClientConfig
from bridge.httpclient.files import WatchedFile, read_problem
from bridge.httpclient.schema import SECRET_KEYS, UNSUPPORTED_KEYS
from bridge.messages import SEVERITIES, AlertSeverity
from bridge.receiver_keys import FILE_KEY_PREFIX, ReceiverKeys, receiver_label
from bridge.redaction import redact_urls, safe_url
from bridge.regular_files import MAX_FILE_BYTES, MAX_SECRET_BYTES
from bridge.tlsutil import pem_file_problem
from bridge.urls import require_alertmanager_url, require_http_url
from bridge.yamlconfig import (
    Strict,
    checked_together,
    not_supported,
    parse_yaml,
    read_text,
    read_yaml,
)

__all__ = [
    "AlertmanagerConfig",
    "GlobalConfig",
    "Receiver",
    "ReceiversFile",
    "ReceiversFileRead",
    "WebhookConfig",
    "describe_receivers",
    "file_warnings",
    "go_duration",
    "load_receivers",
    "read_receivers_file",
    "resolve_receivers",
]

_SECRETS: Final = SECRET_KEYS | {"url", "secret"}
_HIDDEN: Final = UNSUPPORTED_KEYS | {"payload"}
# Keys prometheus/common reads into Go maps, where yaml.v2 refuses a key set twice, even by a merge.
_GO_MAPS: Final = frozenset({"http_headers", "proxy_connect_header"})
# Said after "receivers: unknown key": a whole Alertmanager configuration pasted in.
_PASTED_RECEIVERS: Final = (
    " (this file takes the webhook_configs list of an Alertmanager receiver, not Alertmanager's"
    " receivers section: move each receiver's webhook_configs entries to a top-level"
    " webhook_configs)"
)
# Said after "the top level must be a mapping …, not a list": the entries of a receiver's
# webhook_configs pasted without that line, as a receiver block's inner part is.
_PASTED_ENTRIES: Final = (
    " (a list of receivers, '- url: …' entries, goes under a top-level webhook_configs: write"
    " 'webhook_configs:' on a line of its own above it)"
)


# A blank URL is an unset one, as Alertmanager reads it (`url: ''` beside `url_file`).
def _http_url(value: str | None) -> str | None:
    return require_http_url(value) if value else None


def _alertmanager_url(value: str | None) -> str | None:
    return require_alertmanager_url(value) if value else None


HttpUrl = Annotated[str | None, AfterValidator(_http_url)]
AlertmanagerUrl = Annotated[str | None, AfterValidator(_alertmanager_url)]

# Bounded as EXESDB_WEBHOOK_MAX_ALERTS and EXESDB_WEBHOOK_TIMEOUT_MS are, whose values a 0 here
# stands for: past them a value is a slip (a stray zero, milliseconds written as seconds).
MaxAlerts = Annotated[GoInt, go_int_up_to(100_000, zero="EXESDB_WEBHOOK_MAX_ALERTS", example=50)]
Timeout = Annotated[
    float, go_duration_up_to("10m", zero="EXESDB_WEBHOOK_TIMEOUT_MS", example="10s")
]


def _credentials_twice(
    url: object, http_config: object, given_by: str = "http_config sets"
) -> list[str]:
    """A URL's ``user:password@`` beside ``http_config``'s own credentials (as the file gives
    them, ``bearer_token`` included, or checked; ``given_by`` says whose they are): the HTTP
    client cannot send both, and every attempt would fail until the delivery's deadline."""
    if isinstance(http_config, HTTPClientConfig):
        auth: tuple[object, ...] = (
            http_config.authorization,
            http_config.basic_auth,
            http_config.oauth2,
        )
    elif isinstance(http_config, Mapping):
        auth = tuple(http_config.get(key) for key in ("authorization", "basic_auth", "oauth2"))
        # bearer_token(_file): authorization as prometheus/common reads it.
        auth += tuple(http_config.get(key) or None for key in ("bearer_token", "bearer_token_file"))
    else:
        return []
    if not isinstance(url, str) or all(given is None for given in auth):
        return []
    try:
        split = urlsplit(url)
    except ValueError:
        return []
    if split.username is None and split.password is None:
        return []
    return [
        f"url holds credentials (user:password@) and {given_by} authorization, basic_auth or"
        " oauth2: give them in one place"
    ]


def _webhook_problems(values: Mapping[str, Any]) -> list[str]:
    problems = []
    if bool(values.get("url")) == bool(values.get("url_file")):
        problems.append("exactly one of url and url_file")
    if values.get("secret") and values.get("secret_file"):
        problems.append("at most one of secret and secret_file")
    return problems + _credentials_twice(values.get("url"), values.get("http_config"))


def _alertmanager_problems(values: Mapping[str, Any]) -> list[str]:
    return _credentials_twice(values.get("url"), values.get("http_config"))


class WebhookConfig(Strict):
    """One ``webhook_configs`` entry: Alertmanager's keys and the bridge's three."""

    url: HttpUrl = None
    url_file: str | None = None
    send_resolved: GoBool = True
    max_alerts: MaxAlerts = 0
    timeout: Timeout = 0.0
    http_config: HTTPClientConfig = HTTPClientConfig()
    secret: SecretStr | None = None
    secret_file: str | None = None
    min_severity: AlertSeverity | None = None
    payload: Annotated[
        Any, not_supported("deliveries are always Alertmanager's webhook format, version 4")
    ] = None

    @model_validator(mode="wrap")
    @classmethod
    def _check(cls, data: Any, handler: ModelWrapValidatorHandler[WebhookConfig]) -> Any:
        return checked_together(data, handler, _webhook_problems)

    @property
    def shown(self) -> str:
        """How this receiver is shown before it has a key: its URL as safe_url shows it, or
        ``url_file:<path>``."""
        return FILE_KEY_PREFIX + self.url_file if self.url_file else safe_url(self.url or "")

    @property
    def own_files(self) -> tuple[tuple[str, str], ...]:
        """The files its own keys name (``url_file``, ``secret_file``), each with its key, read
        at each attempt as its ``http_config``'s are."""
        own = (("url_file", self.url_file), ("secret_file", self.secret_file))
        return tuple((key, path) for key, path in own if path)

    @property
    def gives_http_config(self) -> bool:
        """Whether the file gives it an ``http_config`` (``{}`` included; a null is none), which
        then wins wholly over ``global.http_config``, as in Alertmanager."""
        return "http_config" in self.model_fields_set

    def relative_to(self, folder: Path) -> WebhookConfig:
        """The same settings with every file path made absolute from ``folder``
        (``gives_http_config`` kept)."""
        update: dict[str, Any] = {
            "url_file": str(folder / self.url_file) if self.url_file else None,
            "secret_file": str(folder / self.secret_file) if self.secret_file else None,
        }
        if self.gives_http_config:  # else the default's, which names no file
            update["http_config"] = self.http_config.relative_to(folder)
        return self.model_copy(update=update)


class AlertmanagerConfig(Strict):
    """``alertmanager``: where and how the Alertmanager poster posts."""

    url: AlertmanagerUrl = None
    timeout: Timeout = 0.0
    http_config: HTTPClientConfig = HTTPClientConfig()

    @model_validator(mode="wrap")
    @classmethod
    def _check(cls, data: Any, handler: ModelWrapValidatorHandler[AlertmanagerConfig]) -> Any:
        return checked_together(data, handler, _alertmanager_problems)

    def relative_to(self, folder: Path) -> AlertmanagerConfig:
        """The same settings with every file path made absolute from ``folder``."""
        return self.model_copy(update={"http_config": self.http_config.relative_to(folder)})


class GlobalConfig(Strict):
    """``global``, Alertmanager's section: its ``http_config`` is that of each receiver giving
    none; its other keys (``resolve_timeout``, ``smtp_*``, ``slack_api_url``, …: those of
    Alertmanager's ``GlobalConfig`` in its ``config/config.go``, up to 0.34) set up what the
    bridge does not do, and are accepted as Alertmanager names them, their values unread."""

    http_config: HTTPClientConfig | None = None
    resolve_timeout: Any = None
    jira_api_url: Any = None
    smtp_from: Any = None
    smtp_hello: Any = None
    smtp_smarthost: Any = None
    smtp_auth_username: Any = None
    smtp_auth_password: Any = None
    smtp_auth_password_file: Any = None
    smtp_auth_secret: Any = None
    smtp_auth_secret_file: Any = None
    smtp_auth_identity: Any = None
    smtp_require_tls: Any = None
    smtp_tls_config: Any = None
    smtp_force_implicit_tls: Any = None
    slack_api_url: Any = None
    slack_api_url_file: Any = None
    slack_app_token: Any = None
    slack_app_token_file: Any = None
    slack_app_url: Any = None
    pagerduty_url: Any = None
    opsgenie_api_url: Any = None
    opsgenie_api_key: Any = None
    opsgenie_api_key_file: Any = None
    wechat_api_url: Any = None
    wechat_api_secret: Any = None
    wechat_api_secret_file: Any = None
    wechat_api_corp_id: Any = None
    victorops_api_url: Any = None
    victorops_api_key: Any = None
    victorops_api_key_file: Any = None
    telegram_api_url: Any = None
    telegram_bot_token: Any = None
    telegram_bot_token_file: Any = None
    webex_api_url: Any = None
    rocketchat_api_url: Any = None
    rocketchat_token: Any = None
    rocketchat_token_file: Any = None
    rocketchat_token_id: Any = None
    rocketchat_token_id_file: Any = None
    mattermost_webhook_url: Any = None
    mattermost_webhook_url_file: Any = None

    @property
    def unread(self) -> tuple[str, ...]:
        """The keys given that the bridge does not read (all but ``http_config``)."""
        return tuple(key for key in _UNREAD_GLOBAL_KEYS if key in self.model_fields_set)

    def relative_to(self, folder: Path) -> GlobalConfig:
        """The same settings with every file path of ``http_config`` made absolute from
        ``folder``, as Alertmanager makes them."""
        if self.http_config is None:
            return self
        return self.model_copy(update={"http_config": self.http_config.relative_to(folder)})


# Its keys the bridge accepts and never reads: a whole global section can be pasted.
_UNREAD_GLOBAL_KEYS: Final = tuple(key for key in GlobalConfig.model_fields if key != "http_config")


class ReceiversFile(Strict):
    """The whole file; every key optional."""

    webhook_configs: tuple[WebhookConfig, ...] = ()
    alertmanager: AlertmanagerConfig | None = None
    global_config: GlobalConfig | None = Field(default=None, alias="global")


def load_receivers(path: str | Path, text: str | None = None) -> ReceiversFile:
    """Read and check the file as written, paths made absolute; ConfigError naming each
    problem. ``text`` is its text when read already (it is then not read again). Its receivers
    are as the file gives them: ``read_receivers_file`` gives ``global.http_config`` to those
    without one."""
    path = Path(path)
    try:
        parsed = parse_yaml(
            read_text(path) if text is None else text,
            path,
            ReceiversFile,
            secret_keys=_SECRETS,
            hidden_keys=_HIDDEN,
            go_maps=_GO_MAPS,
            unread_paths=[("global", key) for key in _UNREAD_GLOBAL_KEYS],
        )
    except ConfigError as exc:
        pasted = f"{path}: receivers: unknown key"
        listed = f"{path}: the top level must be a mapping"
        raise ConfigError(
            [
                problem
                + (_PASTED_RECEIVERS if problem.startswith(pasted) else "")
                + (
                    _PASTED_ENTRIES
                    if problem.startswith(listed) and ", not a list;" in problem
                    else ""
                )
                for problem in exc.problems
            ]
        ) from None
    return parsed.model_copy(
        update={
            "webhook_configs": tuple(
                hook.relative_to(path.parent) for hook in parsed.webhook_configs
            ),
            "alertmanager": parsed.alertmanager and parsed.alertmanager.relative_to(path.parent),
            "global_config": parsed.global_config and parsed.global_config.relative_to(path.parent),
        }
    )


@dataclass(frozen=True, slots=True)
class ReceiversFileRead:
    """The receivers file as read once (``read_receivers_file``): ``path`` as given, what it
    holds that is good on its own (each receiver by its index in ``webhook_configs``, with
    ``global.http_config`` when it gives none, the ``alertmanager`` and ``global`` sections) and
    the file's problems; by index, the good ``min_severity`` of each receiver that is not good
    on its own, so that it is still held to the bridge's (a misspelt key beside it must not hide
    that); and the indices of the receivers whose ``http_config`` is ``global``'s (one not good
    on its own included when it gives none: it takes global's once mended)."""

    path: str
    hooks: tuple[tuple[int, WebhookConfig], ...] = ()
    alertmanager: AlertmanagerConfig | None = None
    problems: tuple[str, ...] = ()
    bad_hooks_severities: tuple[tuple[int, AlertSeverity], ...] = ()
    global_config: GlobalConfig | None = None
    inheriting: tuple[int, ...] = ()


def read_receivers_file(config_file: str | Path) -> ReceiversFileRead:
    """The file read once and checked as ``load_receivers`` checks it, each receiver without an
    ``http_config`` given ``global``'s (``_with_global``, whose problems are the file's too);
    when it is bad, its problems beside the parts that are good on their own, so the checks
    across receivers still run on those and every problem is reported at once."""
    path = Path(config_file)
    try:
        text = read_text(path)
    except ConfigError as exc:
        return ReceiversFileRead(str(config_file), problems=tuple(exc.problems))
    try:
        parsed = load_receivers(path, text)
    except ConfigError as exc:
        read = _good_parts(ReceiversFileRead(str(config_file), problems=tuple(exc.problems)), text)
    else:
        read = ReceiversFileRead(
            str(config_file),
            hooks=tuple(enumerate(parsed.webhook_configs)),
            alertmanager=parsed.alertmanager,
            global_config=parsed.global_config,
        )
    return _with_global(path, read)


def _with_global(path: Path, read: ReceiversFileRead) -> ReceiversFileRead:
    """``read`` with ``global.http_config`` as the ``http_config`` of each receiver that gives
    none, their indices among ``inheriting``, and the problems that makes (credentials in a URL
    beside the inherited ones). As Alertmanager's ``cmp.Or(wh.HTTPConfig,
    c.Global.HTTPConfig)``: a receiver's own ``http_config`` wins wholly, nothing of the global
    one merged into it."""
    inherited = read.global_config.http_config if read.global_config is not None else None
    if inherited is None:
        return read
    hooks: list[tuple[int, WebhookConfig]] = []
    taking: list[int] = []
    problems: list[str] = []
    for index, hook in read.hooks:
        if hook.gives_http_config:
            hooks.append((index, hook))
            continue
        hooks.append((index, hook.model_copy(update={"http_config": inherited})))
        taking.append(index)
        problems += [
            f"{path}: webhook_configs.{index}: {problem}"
            for problem in _credentials_twice(
                hook.url, inherited, "global.http_config, taken as it gives no http_config, sets"
            )
        ]
    return replace(
        read,
        hooks=tuple(hooks),
        problems=read.problems + tuple(problems),
        inheriting=tuple(sorted(read.inheriting + tuple(taking))),
    )


def _good_parts(read: ReceiversFileRead, text: str) -> ReceiversFileRead:
    """``read`` (a file's problems) with the parts of the file that are good on their own,
    paths made absolute: the receivers by index, the ``alertmanager`` and ``global`` sections,
    the good ``min_severity`` of each receiver that is not good, and, when ``global`` has an
    ``http_config``, the indices of those giving none; ``read`` alone when it is no YAML."""
    path = Path(read.path)
    try:
        raw = read_yaml(text, path)
    except ConfigError:
        return read  # no YAML: said in the problems
    raw = raw if isinstance(raw, dict) else {}
    try:
        section = GlobalConfig.model_validate(raw["global"]).relative_to(path.parent)
    except (KeyError, ValidationError):
        section = None
    hooks = raw.get("webhook_configs")
    good: list[tuple[int, WebhookConfig]] = []
    severities: list[tuple[int, AlertSeverity]] = []
    bare: list[int] = []  # not good, and giving no http_config
    for index, hook in enumerate(hooks if isinstance(hooks, list) else ()):
        try:
            good.append((index, WebhookConfig.model_validate(hook).relative_to(path.parent)))
        except ValidationError:
            given = hook if isinstance(hook, dict) else {}
            severities += [
                (index, level) for level in SEVERITIES if level == given.get("min_severity")
            ]
            if given.get("http_config") is None:
                bare.append(index)
    try:
        alertmanager = AlertmanagerConfig.model_validate(raw["alertmanager"]).relative_to(
            path.parent
        )
    except (KeyError, ValidationError):
        alertmanager = None
    return replace(
        read,
        hooks=tuple(good),
        alertmanager=alertmanager,
        bad_hooks_severities=tuple(severities),
        global_config=section,
        inheriting=tuple(bare) if section is not None and section.http_config is not None else (),
    )


@dataclass(frozen=True, slots=True)
class Receiver:
    """One webhook receiver with every default applied: what a delivery worker needs."""

    key: str
    url: str | None = field(repr=False)  # may hold a token in its path
    url_file: str | None
    send_resolved: bool
    max_alerts: int
    timeout: float
    min_severity: AlertSeverity
    secret: SecretStr | None
    secret_file: str | None
    http_config: HTTPClientConfig
    # The keys its rows had in earlier versions (ReceiverKeys.earlier), moved to ``key`` at start.
    legacy_keys: tuple[str, ...] = field(default=(), repr=False)
    # Where it is configured: tells apart receivers on one origin, which their labels may not.
    source: str = ""

    @property
    def label(self) -> str:
        """How it is shown in logs, messages and ``check-config``."""
        return receiver_label(self.key)


def resolve_receivers(
    urls: Sequence[str] | Mapping[int, str],
    receivers_file: ReceiversFileRead | None,
    *,
    secret: SecretStr | None,
    timeout: float,
    max_alerts: int,
    min_severity: AlertSeverity,
    alertmanager_url: str | None = None,
    keys: ReceiverKeys | None = None,
) -> tuple[tuple[Receiver, ...], AlertmanagerConfig | None]:
    """The receivers of ``EXESDB_WEBHOOK_URLS`` (``urls``: all of them, or by item number those
    taken beside a refused one) then of the file (``receivers_file``, as read at start), each
    with the defaults the environment gives and its key from ``keys`` (the outbox's; throwaway
    ones when not given), and the file's ``alertmanager`` section;
    ConfigError listing every problem at once (a bad key or value in the file, a receiver given
    twice, a ``min_severity`` below the bridge's, an ``alertmanager.url`` beside
    ``alertmanager_url``, ``EXESDB_ALERTMANAGER_URL``)."""
    keys = keys or ReceiverKeys.throwaway()
    loaded = receivers_file or ReceiversFileRead("")
    receivers: list[Receiver] = []
    problems: list[str] = list(loaded.problems)
    where: dict[str, str] = {}
    numbered = urls.items() if isinstance(urls, Mapping) else enumerate(urls, 1)
    for number, url in numbered:
        key = keys.key(url=url)
        if key in where:  # never merged: Settings refuses a URL given twice
            problems.append(f"EXESDB_WEBHOOK_URLS item {number}: the same receiver as {where[key]}")
            continue
        receivers.append(
            Receiver(
                key=key,
                url=url,
                url_file=None,
                send_resolved=True,
                max_alerts=max_alerts,
                timeout=timeout,
                min_severity=min_severity,
                secret=secret,
                secret_file=None,
                http_config=HTTPClientConfig(),
                legacy_keys=keys.earlier(url),
                source=f"EXESDB_WEBHOOK_URLS item {number}",
            )
        )
        where[key] = f"EXESDB_WEBHOOK_URLS item {number}"
    floor = SEVERITIES.index(min_severity)
    for index, hook in loaded.hooks:
        name = f"{loaded.path}: webhook_configs.{index}"
        key = keys.key(url=hook.url, url_file=hook.url_file)
        if key in where:
            problems.append(f"{name}: the same receiver as in {where[key]}")
            continue
        where[key] = f"webhook_configs.{index}"
        wanted = hook.min_severity or min_severity
        if SEVERITIES.index(wanted) < floor:
            problems.append(_below_floor(name, wanted, min_severity))
        own_secret = hook.secret is not None or hook.secret_file is not None
        receivers.append(
            Receiver(
                key=key,
                url=hook.url,
                url_file=hook.url_file,
                send_resolved=hook.send_resolved,
                max_alerts=hook.max_alerts or max_alerts,
                timeout=hook.timeout or timeout,
                min_severity=wanted,
                secret=hook.secret if own_secret else secret,
                secret_file=hook.secret_file,
                http_config=hook.http_config,
                legacy_keys=keys.earlier(hook.url),
                source=name,
            )
        )
    problems += [
        _below_floor(f"{loaded.path}: webhook_configs.{index}", wanted, min_severity)
        for index, wanted in loaded.bad_hooks_severities
        if SEVERITIES.index(wanted) < floor
    ]
    if loaded.alertmanager is not None and loaded.alertmanager.url and alertmanager_url:
        problems.append(
            f"{loaded.path}: alertmanager.url is set and so is EXESDB_ALERTMANAGER_URL; "
            "give one of them"
        )
    if problems:
        raise ConfigError(problems)
    return tuple(receivers), loaded.alertmanager


def _below_floor(name: str, wanted: AlertSeverity, min_severity: AlertSeverity) -> str:
    return (
        f"{name}.min_severity: {wanted} is below EXESDB_WEBHOOK_MIN_SEVERITY "
        f"({min_severity}), under which no alert is raised"
    )


def describe_receivers(receivers_file: ReceiversFileRead, *, webhook_secret: bool) -> list[str]:
    """``check-config``'s lines for the file, redacted: one per receiver and one for Alertmanager
    (``webhook_secret``: whether ``EXESDB_WEBHOOK_SECRET`` is set, for receivers without their
    own secret); an ``http_config`` taken from ``global`` is said to be."""
    loaded = receivers_file
    lines = []
    for index, hook in loaded.hooks:
        shown = hook.min_severity or "(EXESDB_WEBHOOK_MIN_SEVERITY)"
        signed = (
            f"secret_file {hook.secret_file}"
            if hook.secret_file
            else "secret <set, redacted>"
            if hook.secret
            else "secret from EXESDB_WEBHOOK_SECRET"
            if webhook_secret
            else "unsigned (no secret, secret_file nor EXESDB_WEBHOOK_SECRET)"
        )
        # 0 is the environment's value here, not Alertmanager's "no limit": say which it is.
        max_alerts = hook.max_alerts or "(EXESDB_WEBHOOK_MAX_ALERTS)"
        inherited = "from global.http_config: " if index in loaded.inheriting else ""
        lines.append(
            f"webhook_configs.{index} {hook.shown}: "
            f"send_resolved={str(hook.send_resolved).lower()}, max_alerts={max_alerts}, "
            f"timeout={_timeout(hook.timeout)}, min_severity={shown}, {signed}; "
            f"{inherited}{hook.http_config.summary()}"
        )
    if loaded.alertmanager is not None:
        section = loaded.alertmanager
        url = safe_url(section.url) if section.url else "(EXESDB_ALERTMANAGER_URL)"
        lines.append(
            f"alertmanager {url}: timeout={_timeout(section.timeout)}; "
            f"{section.http_config.summary()}"
        )
    # File paths are shown as written, and a path may hold what reads as a secret.
    return [redact_urls(line) for line in lines]


def _timeout(seconds: float) -> str:
    return f"{seconds:g}s" if seconds else "(EXESDB_WEBHOOK_TIMEOUT_MS)"


def file_warnings(
    receivers_file: ReceiversFileRead,
    *,
    alertmanager_url: str | None = None,
    own: Mapping[int, Sequence[str]] | None = None,
) -> list[str]:
    """Warnings about the receivers of the file that are good on their own (in a file with
    problems too, to be said beside them), each naming the receiver as ``check-config`` does:
    a file it names that cannot be read now, or a ``tls_config`` file that holds no PEM
    certificate or key (the key and the file, never what it holds), and a
    ``tls_config`` of its own its ``http://`` URL (``alertmanager_url``,
    ``EXESDB_ALERTMANAGER_URL``, for an ``alertmanager`` section without one) never uses (whose
    files are then not warned of: no request reads them), and so an ``oauth2.tls_config`` its
    ``http://`` ``token_url`` never uses (``_unused_token_tls``). Warnings, not errors: each attempt
    reads its files again (so they can rotate), and one may still appear or be fixed before the
    first alert; Alertmanager takes such a ``tls_config`` silently. Then ``global``'s
    (``_global_warnings``). First, a good file that names nothing to send to: an empty one, one
    whose entries are all commented out (a mount or template gone wrong reads so). Each
    receiver's warnings in the file's order, those ``own`` holds for its index (the settings'
    checks of it, already worded) first."""
    parts = receivers_file
    notes: list[str] = []
    if not (parts.problems or parts.hooks) and parts.alertmanager is None:
        notes.append(
            "lists no receiver: its webhook_configs is empty or missing and it has no"
            " alertmanager section, so it sends no alert anywhere (a receiver is an entry"
            " '- url: https://…' under a top-level webhook_configs)"
        )
    takers: list[tuple[str, bool]] = []  # each receiver taking global.http_config, if plain
    for index, hook in parts.hooks:
        who = f"webhook_configs.{index} {hook.shown}"
        notes += own.get(index, ()) if own else ()
        notes += _unreadable(f"{who}: ", hook.own_files)
        notes += _short_secret(who, hook)
        if index in parts.inheriting:  # global's files: warned of once, under their own key
            takers.append((f"webhook_configs.{index}", _plain(hook.url, hook.http_config)))
        else:
            notes += _client_warnings(who, hook.url, hook.http_config)
    if parts.alertmanager is not None:
        section = parts.alertmanager
        notes += _client_warnings(
            "alertmanager", section.url or alertmanager_url, section.http_config, "its posts"
        )
    return notes + _global_warnings(parts.global_config, takers, taken=bool(parts.inheriting))


def _short_secret(who: str, hook: WebhookConfig) -> list[str]:
    """A warning when the receiver's own signing key (its ``secret``, or what its readable
    ``secret_file`` holds) is shorter than ``EXESDB_WEBHOOK_SECRET`` may be without one: every
    delivery carries an HMAC of a known body, from which a short key is found offline."""
    if hook.secret is not None:
        key, length = "its secret", len(hook.secret.get_secret_value())
    elif hook.secret_file is not None:
        try:
            key, length = (
                f"the key in its secret_file {hook.secret_file}",
                len(WatchedFile(hook.secret_file).read()),
            )
        except (OSError, UnicodeDecodeError):
            return []  # _unreadable says so
        if length == 0:
            return []  # each delivery refuses an empty one, saying so
    else:
        return []
    if length >= MIN_SECRET_LENGTH:
        return []
    return [
        f"{who}: {key} is shorter than {MIN_SECRET_LENGTH} characters: one signed delivery"
        " lets anyone who sees it try keys offline; use a long random one, e.g. $(openssl rand"
        " -hex 32)"
    ]


def _plain(url: str | None, config: HTTPClientConfig) -> bool:
    """Whether requests to ``url`` through ``config`` never use its ``tls_config``."""
    # An https:// proxy may be reached with it (Go's client does so): only a plain one is sure.
    tunnelled = config.proxy_from_environment or str(config.proxy_url).startswith("https:")
    return bool(url) and str(url).lower().startswith("http:") and not tunnelled


def _unreadable(
    where: str, files: Iterable[tuple[str, str]], whose: str = "its deliveries"
) -> list[str]:
    """A warning for each of ``files`` (by key) that cannot be read now, or, a ``tls_config``'s,
    used (``_pem_problem``), its key after ``where``, saying that ``whose`` fail."""
    notes = []
    for key, path in files:
        # A certificate, key or CA file may hold more than a secret (a CA bundle's 200 KiB).
        tls = any(key.endswith(ends) for ends in _PEM_KINDS)
        limit = MAX_FILE_BYTES if tls else MAX_SECRET_BYTES
        if (problem := read_problem(path, limit=limit, text=not tls)) is not None:
            said = f"cannot be read now ({problem})"
        elif (problem := _pem_problem(key, path)) is not None:
            said = f"cannot be used now ({problem})"
        else:
            continue
        notes.append(f"{where}{key} {path} {said}; {whose} fail and are retried until it can be")
    return notes


# What each tls_config file must hold for the client to load it (oauth2's tls_config's too).
_PEM_KINDS: Final[Mapping[str, Literal["ca_file", "cert_file", "key"]]] = {
    "tls_config.ca_file": "ca_file",
    "tls_config.cert_file": "cert_file",
    "tls_config.key_file": "key",
}


def _pem_problem(key: str, path: str) -> str | None:
    """What keeps the client from loading a ``tls_config`` file that reads (no PEM certificate
    or key in it, an encrypted key), in a few words; None for other files, or one that will
    do: else only the first delivery would tell."""
    kind = next((kind for ends, kind in _PEM_KINDS.items() if key.endswith(ends)), None)
    if kind is None or (problem := pem_file_problem(path, kind)) is None:
        return None
    return problem.removeprefix(f"{path} ")


def _client_warnings(
    who: str, url: str | None, config: HTTPClientConfig, whose: str = "its deliveries"
) -> list[str]:
    """The files of its own ``config`` that cannot be read now (``whose`` requests, a webhook
    receiver's deliveries or the Alertmanager poster's posts, failing), and a ``tls_config``
    its plain ``url`` never uses, instead of that one's files."""
    if not _plain(url, config):
        return _unreadable(f"{who}: ", config.files, whose) + _unused_token_tls(f"{who}: ", config)
    read = [(key, path) for key, path in config.files if not key.startswith("tls_config.")]
    notes = _unreadable(f"{who}: ", read, whose)
    if config.tls_config.configured:
        notes.append(
            f"{who}: tls_config is set, but its URL is http://, which no TLS protects:"
            " it has no effect (use the https:// URL, or leave tls_config out)"
        )
    return notes + _unused_token_tls(f"{who}: ", config)


def _unused_token_tls(where: str, config: HTTPClientConfig) -> list[str]:
    """The warning, its key after ``where``, for an ``oauth2.tls_config`` its plain
    ``token_url`` never uses (``OAuth2.files`` then leaves its files out, as no token request
    reads them)."""
    oauth2 = config.oauth2
    if oauth2 is None or not oauth2.tls_config.configured:
        return []
    if not _plain(oauth2.token_url, oauth2.endpoint()):
        return []
    return [
        f"{where}oauth2.tls_config is set, but its token_url is http://, which no TLS protects:"
        " it has no effect (use the https:// token_url, or leave oauth2.tls_config out)"
    ]


def _global_warnings(
    section: GlobalConfig | None, takers: Sequence[tuple[str, bool]], *, taken: bool
) -> list[str]:
    """A ``global.http_config`` no receiver takes (``taken``: whether one does, good on its own
    or not); each of its files that cannot be read now, once, naming the good receivers taking
    it (``takers``, each with whether it is plain: a plain one never reads a ``tls_config``,
    which, taken from ``global``, is there for the ``https://`` receivers and not warned of);
    the keys given that the bridge does not read."""
    if section is None:
        return []
    notes = []
    if section.http_config is not None and not taken:
        notes.append(
            "global: http_config is taken by no receiver: only a receiver in webhook_configs"
            " without an http_config of its own takes it, and there is none; EXESDB_WEBHOOK_URLS"
            " receivers and the alertmanager section never take it (list a receiver needing it"
            " in webhook_configs without http_config, or give it those keys in its own)"
        )
    if section.http_config is not None:
        notes += _unused_token_tls("global.http_config.", section.http_config)
    for key, path in section.http_config.files if section.http_config is not None else ():
        readers = [who for who, plain in takers if not (plain and key.startswith("tls_config."))]
        if readers:
            notes += _unreadable(
                "global.http_config.",
                [(key, path)],
                f"the deliveries of the receivers taking it ({', '.join(readers)})",
            )
    if section.unread:
        timeout = "resolve_timeout" in section.unread
        notes.append(
            f"global: {', '.join(section.unread)} ignored: the bridge reads only"
            " global.http_config (the other keys set up Alertmanager's e-mail, Slack, PagerDuty"
            " and other integrations, which the bridge does not have"
            + ("; its resolve_timeout is EXESDB_ALERT_RESOLVE_TIMEOUT_MS" if timeout else "")
            + ")"
        )
    return notes
