"""Which bus messages become alert events, with what name, severity, id and status."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bridge.bus import Envelope
from bridge.messages import (
    AccessViolation,
    ClusterHealth,
    ComponentHealth,
    Message,
    MetricAlert,
    NodeHealth,
    NodeLifecycle,
    NotificationStatus,
    SecurityAlert,
    SystemAlert,
)
from bridge.sinks.alerts.outbox import Outbox
from bridge.sinks.alerts.sources import (
    MAX_DETAIL_NAME,
    MAX_DETAIL_VALUE,
    MAX_DETAILS,
    MAX_DETAILS_CHARS,
    SOURCE_TYPES,
    alert_event,
    alert_events,
    derived_id,
    details_of,
    meets,
)
from bridge.sinks.alerts.transitions import on_event
from tests.messages.helpers import ALL_MODELS
from tests.sinks.alerts.helpers import envelope
from tests.sinks.label_support import fields_reaching, takes_a_control_character


def test_system_alert_is_named_after_its_topic() -> None:
    """A SystemAlert's alertname is its topic, and it keeps its own id, severity and ack need."""
    alert = SystemAlert(
        alert_id="a1",
        severity="error",
        category="network",
        title="t",
        description="d",
        source="s",
        node="n1",
    )
    event = alert_event(envelope(alert, topic="node_failure"))
    assert event is not None
    assert (event.alertname, event.alert_id, event.severity, event.category, event.node) == (
        "node_failure",
        "a1",
        "error",
        "network",
        "n1",
    )
    assert event.requires_ack
    assert event.firing


def test_a_system_alerts_source_and_metadata_reach_its_event() -> None:
    """A SystemAlert's source and metadata become the event's source and its details, each
    value a string and each name a label name under ``metadata_``."""
    alert = SystemAlert(
        severity="warning",
        category="data",
        title="t",
        description="d",
        source="backup-job",
        node="n1",
        metadata={"stream": "orders", "lag": 12, "replica-set": ["a", "b"], "ok": None},
    )
    event = alert_event(envelope(alert))
    assert event is not None
    assert event.source == "backup-job"
    assert event.details == (
        ("metadata_lag", "12"),
        ("metadata_ok", "null"),
        ("metadata_replica_set", '["a", "b"]'),
        ("metadata_stream", "orders"),
    )


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"api_token": "t0ps3cret"}, {"metadata_api_token": "<redacted>"}),
        ({"DB_Password": "hunter2"}, {"metadata_DB_Password": "<redacted>"}),
        ({"X-Api-Key": "k1"}, {"metadata_X_Api_Key": "<redacted>"}),
        ({"aws_access_key_id": "AKIA"}, {"metadata_aws_access_key_id": "<redacted>"}),
        ({"key": "k2"}, {"metadata_key": "<redacted>"}),
        ({"passphrase": "p"}, {"metadata_passphrase": "<redacted>"}),
        ({"bearer": "b"}, {"metadata_bearer": "<redacted>"}),
        ({"jwt": "j"}, {"metadata_jwt": "<redacted>"}),
        (
            {"headers": {"X-Api-Key": "k3", "accept": "json"}},
            {"metadata_headers": '{"X-Api-Key": "<redacted>", "accept": "json"}'},
        ),
        (
            {"conn": {"user": "u", "secret": "s3"}},
            {"metadata_conn": '{"user": "u", "secret": "<redacted>"}'},
        ),
        (
            {"target": "https://bob:pw@hooks.example/x"},
            {"metadata_target": "https://bob:<redacted>@hooks.example/…"},
        ),
        ({"<b>x</b>": "y"}, {"metadata__b_x__b_": "y"}),
        ({"": "empty"}, {"metadata__": "empty"}),
        ({"k" * 200: "v"}, {"metadata_" + "k" * MAX_DETAIL_NAME: "v"}),
        ({"long": "x" * 5000}, {"metadata_long": "x" * (MAX_DETAIL_VALUE - 1) + "…"}),
        (
            {"a-b": "1", "a.b": "2"},
            {"metadata_a_b": "1", "metadata": "1 more metadata entries not shown"},
        ),
    ],
    ids=[
        "secret key",
        "password key",
        "api key header",
        "access key",
        "bare key",
        "passphrase",
        "bearer",
        "jwt",
        "nested api key header",
        "nested secret",
        "url credentials",
        "markup in key",
        "empty key",
        "long key",
        "long value",
        "colliding keys",
    ],
)
def test_metadata_annotations_are_bounded_and_never_show_a_secret(
    metadata: dict[str, object], expected: dict[str, str]
) -> None:
    """Metadata annotations have label-name keys of bounded length, values capped in length,
    secrets redacted (by key, nested too, and URL credentials), and a collision counted."""
    assert dict(details_of(metadata)) == expected


_SECRET_KEYS = [
    "api_token", "DB_Password", "X-Api-Key", "apiKey", "APIKEY", "xapikey", "aws_access_key_id",
    "key", "private_key", "client_secret", "SECRET_KEY_BASE", "SECRETKEYBASE", "passphrase",
    "db_pass", "pwd", "githubToken", "refresh-token", "bearer", "jwt", "Authorization",
    "auth_header", "session_id", "cookie", "signature", "credentials", "pin",
    # Keys of a kind that is secret, whatever the word before key (the rule of 2f02a11 showed
    # them: it redacted a key only after a word on an allow-list).
    "app_key", "APP_KEY", "DD_APP_KEY", "DD-APPLICATION-KEY", "Ocp-Apim-Subscription-Key",
    "subscription_key", "x-functions-key", "stripe_key", "tls_key", "cert_key", "kms_key",
    "aes_key", "enc_key", "data_key", "unseal_key", "recovery_key", "vault_key", "mailgun_key",
    "OPENAI_KEY", "anthropic_key", "google_maps_key", "segment_write_key", "write_key",
    "server_key", "admin_key", "root_key", "deploy_key", "webhook_key", "gpg_key", "pgp_key",
    "priv_key", "user_key", "integration_key", "consumer_key", "wallet_key", "primary_key",
    # PagerDuty's integration keys, which Alertmanager types as secrets.
    "routing_key", "service_key",
    # Plurals.
    "keys", "api_keys", "private_keys", "access_keys", "tokens", "signatures", "sessions",
    # One-word forms.
    "dbpass", "DBPASS", "rootpass", "pgpass", "adminpass", "userpass", "passcode", "passwort",
    "authkey", "TS_AUTHKEY", "privkey", "sshkey", "hmackey", "masterkey", "signingkey",
    "sessionkey", "encryptionkey", "JSESSIONID", ".ASPXAUTH", "PHPSESSID",
    # Secrets under other names: short passwords, one-time codes, recovery phrases, Azure SAS
    # tokens, HMAC keys, connection strings (a password inside).
    "pw", "bind_pw", "root_pw", "otp", "totp", "mfa_code", "verification_code", "mnemonic",
    "seed_phrase", "sas", "hmac", "dsn", "sentry_dsn", "connection_string", "ConnectionString",
    "private", "max_tokens", "tokens_used", "token_id", "key_id",
]  # fmt: skip
_NOT_SECRET_KEYS = [
    "token_count", "tokenizer", "token_type", "token_expires_at", "keyspace", "keyboard",
    "sort_key", "sort_keys", "SortKey", "partition_key", "PartitionKey", "rowkey", "public_key",
    "ssh_public_key", "foreign_key", "cache_key", "idempotency_key", "dedup_key", "shard_key",
    "lookup_key", "group_key", "groupKey", "object_key", "bucket_key", "index_key", "map_key",
    "label_key", "metric_key", "event_key", "message_key", "key_name", "secret_name",
    "password_length", "author", "commit_author", "authority", "auth_method", "session_count",
    "key_ttl", "bypass", "compass", "passes", "passive", "passenger", "pass_rate", "monkey",
    "hotkey", "stream", "lag_ms", "client_id", "user", "credit", "footprint", "snapshot",
    "build_snapshot", "kansas",
]  # fmt: skip


@pytest.mark.parametrize("key", _SECRET_KEYS)
def test_a_metadata_key_naming_a_secret_has_its_value_redacted(key: str) -> None:
    """A key that names a secret, written in any case and with any separators or none, has its
    value shown as <redacted>, at the top and nested."""
    name = "metadata_" + re.sub(r"[^A-Za-z0-9_]", "_", key)
    assert dict(details_of({key: "s3cr3t"})) == {name: "<redacted>"}
    assert dict(details_of({"nested": {key: "s3cr3t"}})) == {
        "metadata_nested": f'{{"{key}": "<redacted>"}}'
    }


@pytest.mark.parametrize("key", _NOT_SECRET_KEYS)
def test_a_metadata_key_about_a_secret_or_merely_like_one_is_shown(key: str) -> None:
    """A key that counts, names or times a secret (token_count, secret_name), a key that is not
    a secret's (sort_key, keyspace) or a word that only holds one (author, bypass) keeps its
    value."""
    name = "metadata_" + re.sub(r"[^A-Za-z0-9_]", "_", key)
    assert dict(details_of({key: 42})) == {name: "42"}
    assert dict(details_of({"nested": {key: 42}})) == {"metadata_nested": f'{{"{key}": 42}}'}


@pytest.mark.parametrize(
    "key",
    [
        "p\u0430ssword",
        "t\u03bfken_value",
        "pass\u200bword",
        "\uff41\uff50\uff49_\uff4b\uff45\uff59",
    ],
    ids=["cyrillic a", "greek omicron", "zero-width space", "full-width api_key"],
)
def test_a_metadata_key_spelt_with_look_alikes_has_its_value_redacted(key: str) -> None:
    """A key spelt with a letter of another script that looks Latin, an invisible character or
    full-width letters has its value shown as <redacted>, at the top and nested."""
    [(_name, value)] = details_of({key: "s3cr3t"})
    assert value == "<redacted>"
    nested = json.loads(dict(details_of({"nested": {key: "s3cr3t"}}))["metadata_nested"])
    assert nested == {key: "<redacted>"}


def test_a_secret_in_the_value_of_a_harmless_metadata_key_is_redacted() -> None:
    """A harmless key's value is shown with the credentials in it redacted: a URL's password,
    a Bearer token, a secret query parameter, a connection string's password, a header."""
    metadata = {
        "conn": "postgres://app:pw1@db.internal/app",
        "header": "Bearer tok2",
        "callback": "/hooks/deploy?token=tok3&attempt=2",
        "settings": "Server=db;Password=pw4;",
        "request": {"line": "Authorization: Basic dXNlcjpwYXNz"},
    }
    assert dict(details_of(metadata)) == {
        "metadata_conn": "postgres://app:<redacted>@db.internal/…",
        "metadata_header": "Bearer <redacted>",
        "metadata_callback": "/hooks/deploy?token=<redacted>&attempt=2",
        "metadata_settings": "Server=db;Password=<redacted>;",
        "metadata_request": '{"line": "Authorization: Basic <redacted>"}',
    }


def test_a_long_metadata_value_shows_no_part_of_a_secret_its_cut_falls_in() -> None:
    """Of a value longer than is read (a megabyte may come), a user:password@ the cut falls in
    before its @ is left out: no part of the password shows, even once a long URL before it is
    shown as its origin."""
    value = "https://h.example/" + "p" * 4068 + " alice:hunter2@db.internal and more"
    [(_name, shown)] = details_of({"note": value})
    assert shown == "https://h.example/… …"
    assert "hunt" not in shown


# EXESDB_ALERT_LINK_ORIGINS as Settings holds it (bridge.urls.link_origin's form).
LINKS = frozenset({"https://wiki.example", "https://runbooks.example:8443"})


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (
            "https://wiki.example/runbooks/disk-full",
            "https://wiki.example/runbooks/disk-full",
        ),
        (
            "  https://wiki.example/runbooks/disk-full#free-space\n",
            "https://wiki.example/runbooks/disk-full#free-space",
        ),
        (
            "https://runbooks.example:8443/db/replica-lag",
            "https://runbooks.example:8443/db/replica-lag",
        ),
        # The same origin written with its default port, or in capitals.
        ("HTTPS://Wiki.Example:443/Disk_full", "https://Wiki.Example:443/Disk_full"),
        ("https://wiki.example", "https://wiki.example"),
    ],
)
def test_a_link_on_an_allowed_origin_is_shown_whole(value: str, shown: str) -> None:
    """A metadata value that is one URL alone (once trimmed) on an origin of
    EXESDB_ALERT_LINK_ORIGINS keeps its path and fragment: the runbook link opens."""
    assert dict(details_of({"runbook": value}, LINKS)) == {"metadata_runbook": shown}


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        # Another origin: another host, scheme, port or a subdomain.
        ("https://hooks.slack.example/services/T0/B0/s3cr3t", "https://hooks.slack.example/…"),
        ("http://wiki.example/runbooks/disk-full", "http://wiki.example/…"),
        ("https://runbooks.example/db", "https://runbooks.example/…"),
        ("https://cdn.wiki.example/a", "https://cdn.wiki.example/…"),
        ("https://wiki.example.evil.example/a", "https://wiki.example.evil.example/…"),
        # User info, even on an allowed origin.
        ("https://bob:hunter2@wiki.example/runbooks", "https://bob:<redacted>@wiki.example/…"),
        ("https://t0k3n@wiki.example/runbooks", "https://<redacted>@wiki.example/…"),
        # A URL inside longer text: the whole value must be the link.
        ("see https://wiki.example/runbooks/disk-full", "see https://wiki.example/…"),
        (
            "https://wiki.example/runbooks https://evil.example/t0k3n",
            "https://wiki.example/… https://evil.example/…",
        ),
        ("https://wiki.example/a\tb", "https://wiki.example/…\tb"),
        # Longer than a value is shown: cut, it would not open.
        ("https://wiki.example/" + "a" * MAX_DETAIL_VALUE, "https://wiki.example/…"),
    ],
)
def test_any_other_url_is_cut_to_its_origin_as_without_allowed_origins(
    value: str, shown: str
) -> None:
    """A URL of another origin, with user info, inside longer text or too long to be shown
    whole is redacted exactly as it is with no origin allowed."""
    assert dict(details_of({"link": value}, LINKS)) == {"metadata_link": shown}
    assert details_of({"link": value}, LINKS) == details_of({"link": value})


@pytest.mark.parametrize(
    "hidden",
    [
        "\u2066",  # a bidirectional isolate
        "\u202e",  # a right-to-left override
        "\ufeff",  # a zero-width no-break space
        "\u00ad",  # the soft hyphen
        "\u3164",  # a Hangul filler
        "\U000e0001",  # a tag
        "\ufdd0",  # a noncharacter
        "\U0010ffff",  # the last noncharacter
        "\x9b",  # a C1 control character (CSI)
    ],
)
def test_a_link_holding_a_character_a_node_name_refuses_is_not_shown_whole(hidden: str) -> None:
    """A URL on an allowed origin holding a character a node name may not hold (hidden.py's one
    set: a bidirectional control, a zero-width, format or default ignorable character, a tag, a
    noncharacter, a control character) is cut to its origin: the link would not open where it
    reads."""
    value = f"https://wiki.example/runbooks/{hidden}disk-full"
    assert dict(details_of({"runbook": value}, LINKS)) == {
        "metadata_runbook": "https://wiki.example/…"
    }


def test_an_allowed_links_query_is_left_out_and_its_path_still_redacted() -> None:
    """An allowed link's query is shown as ``?…`` (a token rides there under any name), and
    what may be a secret in its path or fragment is redacted as in any text."""
    metadata = {
        "page": "https://wiki.example/index.php?title=Disk_full&t=s3cr3t#step-2",
        "shared": "https://wiki.example/share/token=s3cr3t#access_token=s3cr3t",
        "bounce": "https://wiki.example/out/https://evil.example/s3cr3t",
    }
    assert dict(details_of(metadata, LINKS)) == {
        "metadata_bounce": "https://wiki.example/out/https://evil.example/…",
        "metadata_page": "https://wiki.example/index.php?…#step-2",
        "metadata_shared": "https://wiki.example/share/token=<redacted>#access_token=<redacted>",
    }


def test_a_link_under_a_key_naming_a_secret_or_nested_is_never_shown_whole() -> None:
    """A link on an allowed origin under a key naming a secret is ``<redacted>``; one inside a
    JSON value is no value of its own and is cut to its origin."""
    metadata = {
        "runbook_token": "https://wiki.example/runbooks/disk-full",
        "links": {"runbook": "https://wiki.example/runbooks/disk-full"},
        "many": ["https://wiki.example/runbooks/disk-full"],
    }
    assert dict(details_of(metadata, LINKS)) == {
        "metadata_links": '{"runbook": "https://wiki.example/…"}',
        "metadata_many": '["https://wiki.example/…"]',
        "metadata_runbook_token": "<redacted>",
    }


def test_without_allowed_origins_every_url_in_metadata_shows_its_origin() -> None:
    """With EXESDB_ALERT_LINK_ORIGINS empty (the default) a runbook link is cut to its origin,
    as it always was."""
    value = "https://wiki.example/runbooks/disk-full"
    expected = (("metadata_runbook", "https://wiki.example/…"),)
    assert details_of({"runbook": value}) == expected
    assert details_of({"runbook": value}, frozenset()) == expected


def test_a_system_alerts_runbook_link_reaches_its_event_whole_on_an_allowed_origin() -> None:
    """alert_events() hands the allowed origins to the metadata annotations of a SystemAlert."""
    alert = SystemAlert(
        alert_id="disk-n1",
        severity="critical",
        category="system",
        title="Disk full",
        description="/data at 98 %",
        source="disk-watch",
        node="n1",
        metadata={"runbook": "https://wiki.example/runbooks/disk-full"},
    )
    [allowed] = alert_events(envelope(alert, topic="disk_full"), links=LINKS)
    [default] = alert_events(envelope(alert, topic="disk_full"))
    assert allowed.details == (("metadata_runbook", "https://wiki.example/runbooks/disk-full"),)
    assert default.details == (("metadata_runbook", "https://wiki.example/…"),)


def test_metadata_past_the_cap_is_counted_not_dropped_silently() -> None:
    """Past MAX_DETAILS entries the first ones (by key) are kept and the rest counted."""
    details = dict(details_of({f"k{n:02}": str(n) for n in range(MAX_DETAILS + 5)}))
    assert len(details) == MAX_DETAILS + 1
    assert details["metadata_k00"] == "0"
    assert f"metadata_k{MAX_DETAILS:02}" not in details
    assert details["metadata"] == "5 more metadata entries not shown"


def test_metric_alert_is_a_performance_threshold_alert() -> None:
    """A MetricAlert becomes metric_threshold/performance with an id stable per node and metric."""
    metric = MetricAlert(
        metric_name="cpu",
        current_value=97,
        threshold_value=95,
        threshold_type="max",
        severity="critical",
        node="n2",
    )
    event = alert_event(envelope(metric))
    assert event is not None
    assert (event.alertname, event.category, event.severity, event.alert_id) == (
        "metric_threshold",
        "performance",
        "critical",
        "metric_threshold:n2:cpu",
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [("low", "info"), ("medium", "warning"), ("high", "error"), ("critical", "critical")],
)
def test_security_severities_map_to_alert_severities(given: str, expected: str) -> None:
    """SecurityAlert and AccessViolation severities map low→info … critical→critical."""
    security = SecurityAlert(
        alert_type="brute_force", severity=given, description="many logins", node="n1"
    )
    violation = AccessViolation(
        violation_type="invalid_token",
        resource="/streams",
        action="read",
        source_ip="10.0.0.1",
        severity=given,
    )
    first = alert_event(envelope(security, id="s" * 16))
    second = alert_event(envelope(violation, id="v" * 16, node="n9"))
    assert first is not None
    assert second is not None
    assert (first.alertname, first.severity, first.category) == (
        "brute_force",
        expected,
        "security",
    )
    assert (second.alertname, second.severity, second.node) == ("invalid_token", expected, "n9")
    assert first.alert_id == "brute_force:" + "s" * 16


@pytest.mark.parametrize(
    ("named", "node"),
    [
        pytest.param("db-1", "db-1", id="a node name is taken"),
        pytest.param("db-1\x1b[2J\nalerts: resolved everything", "n9", id="control characters"),
        pytest.param("db-1\n", "n9", id="a final newline"),
        pytest.param("db\x85", "n9", id="a C1 control"),
        pytest.param("x" * 4097, "n9", id="too long"),
        pytest.param("", "n9", id="empty"),
        pytest.param(7, "n9", id="not a string"),
    ],
)
def test_an_access_violation_names_its_node_in_metadata_only_as_a_label(
    named: object, node: str
) -> None:
    """An AccessViolation's metadata ``node`` becomes its alert's node only when every message's
    ``node`` could be it (no control character, at most 4 096 characters); else the sender's."""
    violation = AccessViolation(
        violation_type="invalid_token",
        resource="/streams",
        action="read",
        source_ip="10.0.0.1",
        severity="high",
        metadata={"node": named},
    )
    event = alert_event(envelope(violation, id="v" * 16, node="n9"))
    assert event is not None
    assert event.node == node


@pytest.mark.parametrize(
    ("message", "alert_id", "status", "severity"),
    [
        (NodeHealth(node="n1", status="degraded"), "node_health:n1", "firing", "warning"),
        (NodeHealth(node="n1", status="unhealthy"), "node_health:n1", "firing", "critical"),
        (NodeHealth(node="n1", status="healthy"), "node_health:n1", "resolved", None),
        (
            ComponentHealth(component="store", node="n1", status="unhealthy"),
            "component_health:n1:store",
            "firing",
            "critical",
        ),
        (
            ComponentHealth(component="store", node="n1", status="healthy"),
            "component_health:n1:store",
            "resolved",
            None,
        ),
        (
            NodeLifecycle(node="n3", event="down", cluster_size=2),
            "node_failure:n3",
            "firing",
            "critical",
        ),
        (
            NodeLifecycle(node="n3", event="reconnected", cluster_size=3),
            "node_failure:n3",
            "resolved",
            None,
        ),
        (
            NodeLifecycle(node="n3", event="joined", cluster_size=3),
            "node_failure:n3",
            "resolved",
            None,
        ),
    ],
)
def test_bridge_derives_its_own_alerts(
    message: Message, alert_id: str, status: str, severity: str | None
) -> None:
    """Health and lifecycle changes fire or resolve the condition's stable alert id."""
    event = alert_event(envelope(message, node="publisher"))
    assert event is not None
    assert (event.alert_id, event.status) == (alert_id, status)
    if severity is not None:
        assert event.severity == severity
        assert event.node == alert_id.split(":")[1]  # the subject, not the publisher


def test_a_heartbeat_resolves_only_a_node_failure_that_may_be_active() -> None:
    """A node's heartbeat (a joined marked so) resolves its node_failure only where it may be
    active, as a health reading does; a return (joined, reconnected) resolves it whatever the
    alert, for the store to remember."""
    beat = NodeLifecycle(node="n3", event="joined", cluster_size=3, metadata={"heartbeat": True})
    joined = NodeLifecycle(node="n3", event="joined", cluster_size=3)
    assert alert_event(envelope(beat), active=lambda _: False) is None
    active = alert_event(envelope(beat), active=lambda alert_id: alert_id == "node_failure:n3")
    assert active is not None
    assert active.status == "resolved"
    back = alert_event(envelope(joined), active=lambda _: False)
    assert back is not None
    assert back.status == "resolved"


@pytest.mark.parametrize(
    "message",
    [
        NodeHealth(node="n1", status="unknown"),
        NodeLifecycle(node="n1", event="joining", cluster_size=1),
        ClusterHealth(status="healthy", healthy_nodes=1, total_nodes=1),
        NotificationStatus(alert_id="a", delivery_method="webhook", recipient="r", status="sent"),
    ],
)
def test_other_messages_are_not_alerts(message: Message) -> None:
    """Messages that say nothing about an alert condition yield no event."""
    assert alert_event(envelope(message)) is None


@pytest.mark.parametrize(
    ("severity", "minimum", "expected"),
    [
        ("info", "warning", False),
        ("warning", "warning", True),
        ("critical", "error", True),
        ("error", "critical", False),
        ("bogus", "info", False),
    ],
)
def test_severity_filter_orders_info_warning_error_critical(
    severity: str, minimum: str, expected: bool
) -> None:
    """``meets`` keeps severities at or above EXESDB_WEBHOOK_MIN_SEVERITY."""
    assert meets(severity, minimum) is expected


def test_healthy_node_health_resolves_the_resources_threshold_alerts() -> None:
    """A NodeHealth check saying a resource is healthy resolves its threshold alert."""
    health = NodeHealth(
        node="n1",
        status="degraded",
        checks={
            "cpu": {"usage_percent": 20.0, "status": "healthy"},
            "memory": {"usage_percent": 90.0, "status": "degraded"},
            "process": {"rss_bytes": 1},
        },
    )
    events = alert_events(envelope(health))
    resolved = [e.alert_id for e in events if not e.firing]
    assert resolved == ["metric_threshold:n1:cpu_usage_percent"]
    assert [e.alert_id for e in events if e.firing] == ["node_health:n1"]


def test_only_event_alerts_auto_resolve() -> None:
    """Only alerts that no message clears (event alerts) are marked to auto-resolve."""

    def metric(name: str) -> MetricAlert:
        return MetricAlert(
            metric_name=name,
            current_value=9,
            threshold_value=1,
            threshold_type="max",
            severity="warning",
            node="n1",
        )

    def auto(message: Message) -> bool:
        event = alert_event(envelope(message))
        assert event is not None
        return event.auto_resolve

    assert auto(metric("stream.append.latency_p99_ms"))
    assert not auto(metric("cpu_usage_percent"))
    assert not auto(NodeLifecycle(node="n1", event="down", cluster_size=2))
    assert not auto(NodeHealth(node="n1", status="degraded"))
    assert auto(
        SystemAlert(
            severity="warning",
            category="system",
            title="t",
            description="d",
            source="s",
            node="n1",
        )
    )


def test_a_new_crossing_after_a_resolve_notifies_again(tmp_path: Path) -> None:
    """The review's reproduction: cross, recover, cross again notifies twice, not once."""
    outbox = Outbox.in_dir(tmp_path, urls=["http://r"])
    crossing = MetricAlert(
        metric_name="cpu_usage_percent",
        current_value=90,
        threshold_value=85,
        threshold_type="max",
        severity="warning",
        node="n1",
    )
    healthy = NodeHealth(node="n1", status="healthy", checks={"cpu": {"status": "healthy"}})
    try:
        assert outbox.alerts.apply(alert_events(envelope(crossing)), 1.0).changed
        assert outbox.alerts.apply(alert_events(envelope(healthy)), 2.0).changed
        assert outbox.alerts.apply(alert_events(envelope(crossing)), 10_000.0).changed
        [record] = outbox.alerts.find()
        assert record.state == "firing"
    finally:
        outbox.close()


def test_a_node_healthy_without_the_resources_check_leaves_its_threshold_alert() -> None:
    """A NodeHealth saying only that the whole node is healthy (the review's ``sign.sh ...
    '{"status": "healthy"}'``) resolves node_health, not a resource's threshold alert: that
    takes the resource's own check."""
    events = alert_events(envelope(NodeHealth(node="n2", status="healthy")))
    assert [(e.alert_id, e.status) for e in events] == [("node_health:n2", "resolved")]
    checked = NodeHealth(
        node="n2",
        status="healthy",
        checks={"cpu": {"status": "healthy"}, "memory": True, "disk": {"usage_percent": 1}},
    )
    assert [(e.alert_id, e.status) for e in alert_events(envelope(checked))] == [
        ("node_health:n2", "resolved"),
        ("metric_threshold:n2:cpu_usage_percent", "resolved"),
    ]


def test_only_the_source_types_make_alert_events() -> None:
    """Every message type outside SOURCE_TYPES (the alert sink's routed tags) gives no event."""
    from tests.sinks.prometheus_support import envelope as any_envelope
    from tests.sinks.test_prometheus_translate import GOLDEN

    sources = {model.TAG for model in SOURCE_TYPES}
    others = [case for case in GOLDEN if case.tag not in sources]
    assert len({case.tag for case in others}) == 36 - len(sources)
    for case in others:
        item = any_envelope(case.tag, case.topic, **case.fields)
        assert alert_event(item) is None, case.tag
        assert alert_events(item) == [], case.tag


def test_a_derived_id_too_long_for_an_alert_ack_is_cut_to_fit_keeping_conditions_apart() -> None:
    """A derived alert id fits in 4 096 characters: a short one as it reads, a longer one cut
    and ending in a digest of the whole, the same for the same parts, another for others."""
    assert derived_id("node_health", "n1") == "node_health:n1"
    node = "n" * 4096
    first = derived_id("component_health", node, "a" * 100)
    second = derived_id("component_health", node, "b" * 100)
    assert len(first) == len(second) == 4096
    assert first != second
    assert first == derived_id("component_health", node, "a" * 100)
    assert derived_id("x", "y" * 4094) == "x:" + "y" * 4094  # exactly 4 096: as it reads


def test_metadata_annotations_stop_at_their_total_size_and_count_the_rest() -> None:
    """Values are kept (by key) while they fit MAX_DETAILS_CHARS together; the rest are
    counted, so an alert's annotations stay bounded however large each value may be."""
    metadata = {f"k{n}": "v" * MAX_DETAIL_VALUE for n in range(8)}
    details = dict(details_of(metadata))
    kept = [name for name in details if name != "metadata"]
    assert sum(len(details[name]) for name in kept) <= MAX_DETAILS_CHARS
    assert len(kept) == MAX_DETAILS_CHARS // MAX_DETAIL_VALUE
    assert details["metadata"] == f"{8 - len(kept)} more metadata entries not shown"


def _alert_labels(marked: Envelope) -> list[str]:
    """Every label value of the alerts ``marked`` raises, as their notifications carry them."""
    records = [on_event(None, event, 0.0).record for event in alert_events(marked)]
    return [value for record in records if record is not None for value in record.labels.values()]


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda model: model.TAG)
def test_every_field_that_becomes_an_alert_label_refuses_control_characters(
    model: type[Message],
) -> None:
    """Each text field of a message that becomes a label of the alert it raises (its node,
    id, source, a metric's name) refuses a control character when the message is read, so
    that none reaches a receiver or Alertmanager."""
    taken = {
        field: controls
        for field in fields_reaching(model, _alert_labels)
        if (controls := takes_a_control_character(model, field))
    }
    assert taken == {}


def test_the_alert_label_field_finder_finds_a_system_alerts_id_source_and_node() -> None:
    """The finder the test above relies on finds the fields a SystemAlert's labels are made of."""
    assert sorted(fields_reaching(SystemAlert, _alert_labels)) == ["alert_id", "node", "source"]
