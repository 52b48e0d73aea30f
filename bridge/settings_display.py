"""How a setting's value is shown: a secret as set or unset, a URL without its credentials.

``check-config`` and the settings' ``repr`` show every setting this way, and a refused value
(``bridge.settings_errors``) is shown no other way: which variables hold a URL or a secret is
said here, once.
"""

from __future__ import annotations

from typing import Final

from pydantic import SecretStr

from bridge.redaction import redact_urls, safe_bus_url, safe_url

__all__ = ["SECRET_VARIABLES", "URL_VARIABLES", "shown_setting"]

# Settings holding URLs: a bad value is never echoed (a mistyped one may still hold a password
# that redact_urls cannot find); the message shows it only as safe_url does.
URL_VARIABLES: Final = frozenset(
    {
        "EXESDB_BUS",
        "EXESDB_WEBHOOK_URLS",
        "EXESDB_ALERTMANAGER_URL",
        "EXESDB_URL",
        "EXESDB_EXTERNAL_URL",
        "EXESDB_ALERT_LINK_ORIGINS",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    }
)

# URL settings that cannot hold a secret, shown whole once taken (a refused value is still
# shown as safe_url shows it): EXESDB_EXTERNAL_URL is refused with a user name, password, query
# or fragment, and every alert sends it, its path included (the base of each generatorURL, which
# the operator checks here); EXESDB_ALERT_LINK_ORIGINS holds origins only.
_SHOWN_WHOLE: Final = frozenset({"EXESDB_EXTERNAL_URL", "EXESDB_ALERT_LINK_ORIGINS"})

# Lists each item of which is a receiver, numbered as run's log numbers them.
_NUMBERED: Final = frozenset({"EXESDB_WEBHOOK_URLS"})

SECRET_VARIABLES: Final = frozenset(
    {
        "SECRET_KEY_BASE",
        "EXESDB_SECRET_KEY_BASE_PREVIOUS",
        "EXESDB_ADMIN_TOKEN",
        "EXESDB_WEBHOOK_SECRET",
    }
)


def shown_setting(variable: str, value: object) -> str:
    """``variable``'s ``value`` as text: a secret as ``<set, redacted>`` or ``<empty>``, unset as
    ``<unset>``, each URL as ``safe_url`` shows it (a Redis bus with its database number) but for
    those that cannot hold a secret (``EXESDB_EXTERNAL_URL``: whole), a list comma-separated;
    receivers (``EXESDB_WEBHOOK_URLS``), when more than one, each with its item number."""
    if variable in _SHOWN_WHOLE and value:
        return ",".join(value) if isinstance(value, tuple) else str(value)
    if variable in URL_VARIABLES and value:
        if variable == "EXESDB_BUS" and "://" in str(value):
            # Its database number shown (no secret), which redact_urls would hide again.
            return safe_bus_url(str(value))
        # Shown as safe_url shows each, never searched for in text: a password may hold
        # characters that end a URL in free text.
        items = value if isinstance(value, tuple) else (value,)
        if variable in _NUMBERED and len(items) > 1:
            # Receivers on one origin show alike: each is numbered as run's log numbers it
            # beside its outbox key ("webhook receiver https://…#3f0c… is EXESDB_WEBHOOK_URLS
            # item 2").
            return redact_urls(
                ", ".join(
                    f"{_shown_url(str(url))} (item {number})" for number, url in enumerate(items, 1)
                )
            )
        value = ",".join(_shown_url(str(item)) for item in items)
    return _show(value)


def _shown_url(value: str) -> str:
    # A word such as EXESDB_BUS=memory is no URL and holds no credentials.
    return safe_url(value) if "://" in value or "@" in value else value


def _show(value: object) -> str:
    if isinstance(value, SecretStr):
        return "<set, redacted>" if value.get_secret_value() else "<empty>"
    if value is None:
        return "<unset>"
    if isinstance(value, tuple):
        if not value:
            return "<empty>"
        if isinstance(value[0], SecretStr):
            return f"<{len(value)} set, redacted>"
        return redact_urls(",".join(str(item) for item in value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # as it is typed and documented: 85, not 85.0
    return redact_urls(str(value))
