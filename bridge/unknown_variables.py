"""Set ``EXESDB_*`` and ``OTEL_*`` variables nothing reads, each named with the one it may mean.

A misspelt name is ignored like any other, so a required setting looks missing or a default
stays in force without a word; ``run`` and ``check-config`` warn of each such variable, with
the closest setting's name (``EXESDB_WEBHOOK_URL``: did you mean ``EXESDB_WEBHOOK_URLS``?).
An ``OTEL_*`` name is judged against every variable the bridge or the installed OpenTelemetry
SDK reads (its ``environment_variables`` modules list them), and named only when it is that
close to one of them (``OTEL_EXPORTER_OTLP_ENDPIONT``): other SDKs and instrumentations have
variables of their own, which an environment shared with them may set. A variable spelt nearly as
a setting without the prefix (``SECRET_KEY`` for ``SECRET_KEY_BASE``) is named only while that
setting is unset: other programs sharing the environment read names of their own such as
``SECRET_KEY``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Set
from typing import Final

from bridge.choices import meant_said, word_meant
from bridge.probe_settings import variable_value
from bridge.source_repository import cite_source

__all__ = [
    "SETTINGS_WITHOUT_PREFIX",
    "sdk_variables",
    "set_beside",
    "setting_meant",
    "unknown_variable_warnings",
]

# Prefixes of the variables meant for the bridge: a set one it does not know is likely a typo.
_OURS: Final = ("EXESDB_",)
_OTEL: Final = "OTEL_"
# Where a variable that is no setting and like none is pointed.
_SETTINGS_PAGE: Final = f"the settings: {cite_source('docs/configuration.md')}"
# The suffix of a variable naming the file a secret is in (Docker's and Kubernetes' convention).
_FILE: Final = "_FILE"
# The settings named without a prefix (as Phoenix names its key): known here without the model.
SETTINGS_WITHOUT_PREFIX: Final = frozenset({"SECRET_KEY_BASE"})
# Names other tools give what the bridge calls otherwise, which spelling alone would not lead to
# (EXESDB_REDIS_URL is nearest to EXESDB_REDIS_BUFFER_SIZE; the Redis URL goes in EXESDB_BUS).
_ALSO_CALLED: Final = {
    "EXESDB_REDIS_URL": "EXESDB_BUS",
    "EXESDB_REDIS": "EXESDB_BUS",
    "EXESDB_BUS_URL": "EXESDB_BUS",
    "EXESDB_PORT": "EXESDB_HTTP_ADDR",
    "EXESDB_HOST": "EXESDB_HTTP_ADDR",
    "EXESDB_ADDR": "EXESDB_HTTP_ADDR",
    "EXESDB_ADDRESS": "EXESDB_HTTP_ADDR",
    "EXESDB_LISTEN": "EXESDB_HTTP_ADDR",
    "EXESDB_LISTEN_ADDRESS": "EXESDB_HTTP_ADDR",
    "EXESDB_BIND": "EXESDB_HTTP_ADDR",
    # node_exporter's flag, --web.listen-address, as `run --web.listen-address` gives it.
    "EXESDB_WEB_LISTEN_ADDRESS": "EXESDB_HTTP_ADDR",
    "EXESDB_DEBUG": "EXESDB_LOG_LEVEL",
    # Alike to both EXESDB_LOG_LEVEL and EXESDB_LOG_FORMAT, so near neither: a level is meant.
    "EXESDB_LOG": "EXESDB_LOG_LEVEL",
    "EXESDB_VERBOSE": "EXESDB_LOG_LEVEL",
    # The health check asks the address the bridge listens on (nearest: ..._USERNAME).
    "EXESDB_HEALTHCHECK_ADDR": "EXESDB_HTTP_ADDR",
    "EXESDB_HEALTHCHECK_URL": "EXESDB_HTTP_ADDR",
}
# Names of what is given otherwise than by a variable, with where it is given instead
# (EXESDB_HEALTHCHECK_TIMEOUT is nearest to EXESDB_HEALTHCHECK_USERNAME).
_GIVEN_ELSEWHERE: Final = {
    "EXESDB_HEALTHCHECK_TIMEOUT": (
        "the health check's timeout is its option: exesdb-bridge healthcheck --timeout S"
    ),
    # Nothing is near it by spelling: only the list of settings would be named.
    "EXESDB_DEMO": "demo traffic is an option of run: exesdb-bridge run --demo",
    # Nearest is ..._PASSWORD_FILE, which would then be given the password for a path.
    "EXESDB_HEALTHCHECK_PASSWORD": (
        "the health check reads its password from a file: put it in one and give that file's"
        " path in EXESDB_HEALTHCHECK_PASSWORD_FILE"
    ),
}
# How alike an unread OTEL_* name and a read one must be (difflib's ratio, prefix left out) for
# the one to be taken for a misspelling of the other: typos (ENDPIONT, OTEL_SKD_DISABLED, a
# signal's name in the singular) score 0.91 or more; OTEL_PYTHON_CONFIGURATOR, which
# opentelemetry-instrument reads, 0.86 (to OTEL_PYTHON_METER_CONFIGURATOR).
_OTEL_LIKENESS: Final = 0.9
# How alike a set name and an unset setting without a prefix must be (difflib's ratio, in upper
# case): SECRET_KEY scores 0.8 to SECRET_KEY_BASE, SECRET_KEYBASE 0.97; another program's
# SECRET_KEY_PATH scores 0.8 too, and is named: a warning, and only while the key is unset.
_UNPREFIXED_LIKENESS: Final = 0.8


def set_beside(
    environ: Mapping[str, str],
    own: Set[str],
    prefixes: tuple[str, ...] = (*_OURS, _OTEL),
    *,
    near_misses: bool = True,
) -> dict[str, str]:
    """The variables of ``environ`` named with one of ``prefixes`` (in any case) and set to more
    than blanks, but for ``own``, and (``near_misses``) those spelt nearly as an unset setting
    without a prefix: when ``own`` are settings, the only ones ``unknown_variable_warnings`` may
    warn of. A command reading a few settings judges the others only when there are some, the
    names of every setting being costly to get (pydantic's model of them all)."""
    beside = {
        name: value
        for name, value in environ.items()
        if name.upper().startswith(prefixes)
        and name not in own
        and variable_value(environ, name) is not None
    }
    if near_misses:
        beside |= {name: environ[name] for name in _near_misses(environ) if name not in own}
    return beside


def unknown_variable_warnings(environ: Mapping[str, str], known: Set[str]) -> list[str]:
    """A warning for each ``EXESDB_*`` variable of ``environ`` (in any case) that is not among
    the ``known`` settings' names, naming the closest of them when one is close; and for each
    ``OTEL_*`` one that neither a setting nor the OpenTelemetry SDK is but that is close to
    one of them (``_unread_otel``)."""
    notes = []
    for name in sorted(environ):
        # Names are case-sensitive: a lower-case one is ignored, so it is named too. One set to
        # the empty string or blanks is unset, as a setting's is, so has nothing to be ignored.
        if name in known or variable_value(environ, name) is None:
            continue
        if name.upper().startswith(_OURS):
            notes.append(_unknown_setting(name, known))
        elif name.upper().startswith(_OTEL) and (note := _unread_otel(name, known)) is not None:
            notes.append(note)
    notes += [
        f"{name} is set but is not a setting of the bridge (ignored) and {meant} is unset; "
        + (_file_convention(name.upper(), {meant}) or meant_said(meant, name=True))
        for name, meant in _near_misses(environ).items()
        if name not in known
    ]
    return notes


def _file_convention(name: str, known: Set[str]) -> str | None:
    """What to say of ``name`` (in upper case) when it is a setting of ``known`` with the
    ``_FILE`` suffix of Docker's and Kubernetes' secrets added; None otherwise. Spelling alone
    would name the setting, which the person would then set to the file's path
    (``EXESDB_ADMIN_TOKEN=/run/secrets/token``, taken as the token itself). A setting without
    the prefix is named so with it too (``EXESDB_SECRET_KEY_BASE_FILE``)."""
    stem = name.removesuffix(_FILE)
    if stem == name or stem.endswith(_FILE):
        return None
    if stem not in known and _stem(stem) in SETTINGS_WITHOUT_PREFIX & known:
        stem = _stem(stem)
    if stem not in known:
        return None
    return (
        f"{stem} takes the value itself, not a file's path: "
        f'{stem}="$(cat FILE)" reads it from the file'
    )


def _near_misses(environ: Mapping[str, str]) -> dict[str, str]:
    """Each variable of ``environ`` set to more than blanks and spelt nearly as a setting without
    a prefix that is unset, with that setting (``SECRET_KEY``: ``SECRET_KEY_BASE``)."""
    unset = sorted(s for s in SETTINGS_WITHOUT_PREFIX if variable_value(environ, s) is None)
    if not unset:
        return {}
    near = {
        name: word_meant(name, unset, likeness=_UNPREFIXED_LIKENESS)
        for name in sorted(environ)
        if name not in SETTINGS_WITHOUT_PREFIX
        and not name.upper().startswith((*_OURS, _OTEL))
        and variable_value(environ, name) is not None
    }
    return {name: setting for name, setting in near.items() if setting is not None}


def _unknown_setting(name: str, known: Set[str]) -> str:
    upper = name.upper()
    if upper in _GIVEN_ELSEWHERE:
        hint = _GIVEN_ELSEWHERE[upper]
    elif (file_hint := _file_convention(upper, known)) is not None:
        hint = file_hint
    else:
        meant = setting_meant(upper, known)
        hint = meant_said(meant, name=True) if meant else _SETTINGS_PAGE
    return f"{name} is set but is not a setting of the bridge (ignored); {hint}"


def setting_meant(name: str, known: Set[str], *, likeness: float = 0.6) -> str | None:
    """The setting of ``known`` that an ``EXESDB_*`` ``name`` (in upper case) most likely means:
    itself, the one it is another name for (``EXESDB_PORT``: ``EXESDB_HTTP_ADDR``), else the
    closest by spelling, at least ``likeness`` alike (difflib's ratio, the prefix left out);
    None when none is."""
    if name in _ALSO_CALLED:
        return _ALSO_CALLED[name]
    # Compared without the common prefix, which would make every name look close.
    return word_meant(name, sorted(known), likeness=likeness, prefix=_OURS[0])


def _unread_otel(name: str, known: Set[str]) -> str | None:
    """The warning for an ``OTEL_*`` ``name`` that neither the bridge (``known``) nor the
    OpenTelemetry SDK reads and that is spelt nearly as one they do, naming that one; None for
    one that is read, or that is no such near miss (another SDK's, an instrumentation's)."""
    read = sdk_variables() | {setting for setting in known if setting.startswith(_OTEL)}
    if name in read:
        return None
    upper = name.upper()
    if any(upper.startswith(f"{variable}_") for variable in read):
        # An extension of a read name is not its misspelling: the OpenTelemetry Operator sets
        # OTEL_RESOURCE_ATTRIBUTES_POD_NAME to be named in OTEL_RESOURCE_ATTRIBUTES.
        return None
    meant = (
        upper if upper in read else word_meant(upper, read, likeness=_OTEL_LIKENESS, prefix=_OTEL)
    )
    if meant is None:
        return None
    return (
        f"{name} is set but neither the bridge nor its OpenTelemetry SDK reads it (ignored); "
        + meant_said(meant, name=True)
    )


@functools.cache
def sdk_variables() -> frozenset[str]:
    """Every ``OTEL_*`` variable the installed OpenTelemetry API and SDK read, as their
    ``environment_variables`` modules list them (the Python SDK's own ``OTEL_PYTHON_*`` ones,
    underscored names there, included). Imported only when an ``OTEL_*`` variable that is no
    setting is set: the client commands import no OpenTelemetry otherwise."""
    from opentelemetry import environment_variables as api
    from opentelemetry.sdk import environment_variables as sdk

    return frozenset(
        value
        for module in (api, sdk)
        for value in vars(module).values()
        if isinstance(value, str) and value.startswith(_OTEL)
    )


def _stem(name: str) -> str:
    for prefix in _OURS:
        name = name.removeprefix(prefix)
    return name
