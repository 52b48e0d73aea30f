"""docs/alerts.md names every key the receivers file takes, so a key added to the schema is
documented."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from typing import Final

import pytest
from pydantic import BaseModel

from bridge.receivers import ReceiversFile
from bridge.yamlconfig import Strict
from tests.doc_text import page

pytestmark = pytest.mark.usefixtures("clean_env")


def _schema_keys(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Each key the receivers file's schema takes, as (its dotted path, its own name): the
    models' fields (a list's or a mapping's items under their field) and the keys a model
    takes beside them (``Strict.also_taken``: ``bearer_token``)."""
    given = [(info.alias or name, info.annotation) for name, info in model.model_fields.items()]
    if issubclass(model, Strict):
        given += [(key, None) for key in sorted(model.also_taken)]
    for key, annotation in given:
        yield prefix + key, key
        held = [
            part
            for outer in (annotation, *typing.get_args(annotation))
            for part in (outer, *typing.get_args(outer))
            if isinstance(part, type) and issubclass(part, BaseModel)
        ]
        if held:
            yield from _schema_keys(held[0], f"{prefix}{key}.")


# Keys docs/alerts.md names as a group, not one by one; each must still be a key of the schema
# and named nowhere on its own (else it leaves this list).
_NAMED_AS_A_GROUP: Final = frozenset(
    {
        # "the `*_ref` keys (no secret manager, …)": refused, each by name, saying so.
        "username_ref",
        "password_ref",
        "ca_ref",
        "cert_ref",
        "key_ref",
        # oauth2's JWT bearer grant keys, named `client_certificate_key*` (which names
        # client_certificate_key itself): refused.
        "client_certificate_key_id",
        "client_certificate_key_file",
        "client_certificate_key_ref",
        # Alertmanager's other global keys, named "`smtp_*`, `slack_api_url`, … up to
        # Alertmanager 0.34's GlobalConfig": accepted, unread, warned of.
        "smtp_hello",
        "smtp_auth_username",
        "smtp_auth_password",
        "smtp_auth_password_file",
        "smtp_auth_secret",
        "smtp_auth_secret_file",
        "smtp_auth_identity",
        "smtp_require_tls",
        "smtp_tls_config",
        "smtp_force_implicit_tls",
        "slack_api_url_file",
        "slack_app_token",
        "slack_app_token_file",
        "slack_app_url",
        "opsgenie_api_url",
        "opsgenie_api_key_file",
        "wechat_api_url",
        "wechat_api_secret",
        "wechat_api_secret_file",
        "wechat_api_corp_id",
        "victorops_api_url",
        "victorops_api_key",
        "victorops_api_key_file",
        "telegram_api_url",
        "telegram_bot_token_file",
        "webex_api_url",
        "rocketchat_api_url",
        "rocketchat_token",
        "rocketchat_token_file",
        "rocketchat_token_id",
        "rocketchat_token_id_file",
        "mattermost_webhook_url",
        "mattermost_webhook_url_file",
    }
)


def _named_keys(text: str) -> set[str]:
    """The words of the page's code spans (one may run over a line break), and the keys its
    YAML examples give, written or in a comment (``# or ca: its PEM``)."""
    fences = "\n".join(re.findall(r"^```yaml\n(.*?)^```", text, flags=re.M | re.S))
    outside = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    words = {word for span in re.findall(r"`([^`]+)`", outside) for word in re.split(r"\W+", span)}
    return words | set(re.findall(r"(?<![\w.])(\w+):", fences))


def test_the_alerts_page_names_every_key_of_the_receivers_file() -> None:
    """docs/alerts.md names each key the receivers file takes (webhook_configs entries,
    http_config and its blocks, oauth2's among them, alertmanager, global), save those it names
    as a group (_NAMED_AS_A_GROUP), so a key added to the schema is documented."""
    # Each name by its first path.
    keys = {key: path for path, key in reversed(list(_schema_keys(ReceiversFile)))}
    assert keys["client_secret_file"] == "webhook_configs.http_config.oauth2.client_secret_file"
    assert "bearer_token_file" in keys
    named = _named_keys(page("alerts"))
    assert set(keys) >= _NAMED_AS_A_GROUP, "not a key of the schema: leave it out of the list"
    assert _NAMED_AS_A_GROUP.isdisjoint(named), "named on its own: leave it out of the list"
    unnamed = [path for key, path in keys.items() if key not in named | _NAMED_AS_A_GROUP]
    assert unnamed == [], f"name these keys on docs/alerts.md: {unnamed}"
