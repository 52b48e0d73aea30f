# ruff: noqa: E501  (PromQL expressions read best on one line)
"""The Alerts and bridge internals dashboard: alerts, security, audit, and the bridge itself."""

from __future__ import annotations

from ..panels import Dashboard, P, Q, Row, query_variable, series, stat, zero_one
from ..queries import ACTIVE_ALERTS, INSTANCE, NODE, RATE

PANELS: list[P | Row] = [
    Row("Bridge"),
    stat(
        "Up",
        f'up{{job="exesdb-bridge", {INSTANCE}}}',
        "none",
        "{{instance}}",
        defaults=zero_one(("down", "red"), ("up", "green")),
    ),
    stat(
        "Version",
        f"exesdb_build_info{{{INSTANCE}}}",
        "none",
        "{{version}}",
        options={"textMode": "name"},
    ),
    stat(
        "Integration",
        f"exesdb_integration_enabled{{{INSTANCE}}}",
        "none",
        "{{instance}}",
        defaults=zero_one(("disabled", "orange"), ("enabled", "green")),
    ),
    # The most one replica holds: on the Redis bus each holds the same series, and a sum would
    # reach the limit with no replica at it.
    stat("Series held", f"max(exesdb_prometheus_series{{{INSTANCE}}})", "short"),
    stat("Series limit", f"min(exesdb_prometheus_series_limit{{{INSTANCE}}})", "short"),
    stat(
        "Scrape duration", f'max(scrape_duration_seconds{{job="exesdb-bridge", {INSTANCE}}})', "s"
    ),
    series(
        "Bridge process memory and CPU",
        [
            Q(
                f'max by (instance) (process_resident_memory_bytes{{job="exesdb-bridge", {INSTANCE}}})',
                "resident {{instance}}",
            ),
            Q(
                f'sum by (instance) (rate(process_cpu_seconds_total{{job="exesdb-bridge", {INSTANCE}}}[{RATE}]))',
                "CPU {{instance}}",
                unit="percentunit",
            ),
        ],
        "bytes",
        description="The bridge process, from prometheus_client's process collector: its resident memory, and, right axis, the CPU it uses, 100% being one core busy the whole time.",
    ),
    series(
        "Bridge file descriptors and uptime",
        [
            Q(
                f'max by (instance) (process_open_fds{{job="exesdb-bridge", {INSTANCE}}})',
                "open {{instance}}",
            ),
            Q(
                f'max by (instance) (process_max_fds{{job="exesdb-bridge", {INSTANCE}}})',
                "limit {{instance}}",
            ),
            Q(
                f"time() - max by (instance) (exesdb_start_time_seconds{{{INSTANCE}}})",
                "up for {{instance}}",
                unit="s",
            ),
        ],
        "short",
        description="Open file descriptors and the limit (the HTTP connection cap is lowered to fit it: HTTP connections). Up for, right axis: since the bridge started (exesdb_start_time_seconds: when the bridge started, in Unix seconds); each drop is a restart.",
    ),
    Row("Bus"),
    series(
        "Published by bus instance",
        [
            Q(
                f"sum by (pubsub) (rate(exesdb_bus_published_total{{{INSTANCE}}}[{RATE}]))",
                "{{pubsub}}",
            )
        ],
        "ops",
    ),
    series(
        "Rejected by reason",
        [
            Q(
                f"sum by (reason) (rate(exesdb_bus_rejected_total{{{INSTANCE}}}[{RATE}]))",
                "{{reason}}",
            )
        ],
        "ops",
    ),
    series(
        "Subscriber queue depth",
        [Q(f"sum by (subscriber) (exesdb_bus_queue_depth{{{INSTANCE}}})", "{{subscriber}}")],
        "short",
    ),
    series(
        "Dropped and failed messages",
        [
            Q(
                f"sum by (subscriber) (rate(exesdb_bus_dropped_total{{{INSTANCE}}}[{RATE}]))",
                "dropped {{subscriber}}",
            ),
            Q(
                f"sum by (subscriber) (rate(exesdb_sink_errors_total{{{INSTANCE}}}[{RATE}]))",
                "failed {{subscriber}}",
            ),
        ],
        "ops",
    ),
    series(
        "Prometheus sink series",
        [
            Q(f"max by (instance) (exesdb_prometheus_series{{{INSTANCE}}})", "held {{instance}}"),
            Q(
                f"sum(rate(exesdb_prometheus_series_expired_total{{{INSTANCE}}}[{RATE}]))",
                "expired/s",
            ),
            Q(
                f"sum(rate(exesdb_prometheus_series_refused_total{{{INSTANCE}}}[{RATE}]))",
                "refused/s",
            ),
            Q(
                f"sum(rate(exesdb_prometheus_kept_series_released_total{{{INSTANCE}}}[{RATE}]))",
                "kept states let go/s",
            ),
            Q(
                f"sum(rate(exesdb_prometheus_series_scans_total{{{INSTANCE}}}[{RATE}]))",
                "expiry scans/s",
            ),
            Q(
                f"max by (instance) (exesdb_prometheus_series_bytes{{{INSTANCE}}})",
                "exposition bytes {{instance}}",
                unit="bytes",
            ),
            Q(
                f"max by (instance) (exesdb_prometheus_series_bytes_limit{{{INSTANCE}}})",
                "byte cap {{instance}}",
                unit="bytes",
            ),
        ],
        "short",
        width=24,
        description="Series the Prometheus sink holds (under the cardinality cap, EXESDB_MAX_SERIES: Series limit), series dropped because they were not reported again within EXESDB_SERIES_TTL_MS, new label sets refused because the cardinality cap (or the byte cap) was reached, and scans of every series held for those past EXESDB_SERIES_TTL_MS (at most one a second, or at the cap one each time one of them can have expired). Exposition bytes, right axis, each replica's: of the series held, against the byte cap EXESDB_MAX_SERIES_BYTES (byte cap; series other than the bridge's own are refused from nine tenths of it).",
    ),
    series(
        "Messages translated by the Prometheus sink",
        [
            Q(
                f"sum by (pubsub) (rate(exesdb_prometheus_messages_total{{{INSTANCE}}}[{RATE}]))",
                "{{pubsub}}",
            )
        ],
        "ops",
    ),
    series(
        "Collector runs",
        [
            Q(
                f"sum by (collector, result) (rate(exesdb_collector_runs_total{{{INSTANCE}}}[{RATE}]))",
                "{{collector}} {{result}}",
            ),
            Q(
                f"sum by (collector) (rate(exesdb_collector_skipped_total{{{INSTANCE}}}[{RATE}]))",
                "{{collector}} skipped",
            ),
            Q(
                f"max by (collector) (exesdb_collector_duration_seconds{{{INSTANCE}}})",
                "{{collector}} duration",
                unit="s",
            ),
        ],
        "ops",
        description="Collections run per second, by collector and result (ok, error), and ticks skipped because the collector's previous run was still going (a collector slower than its interval). Duration, right axis: how long the collector's latest run took.",
    ),
    Row("Redis bus"),
    series(
        "Redis connection",
        [
            Q(
                f"max by (instance) (exesdb_redis_connected{{{INSTANCE}}})",
                "connected {{instance}}",
            ),
            Q(
                f"max by (instance) (exesdb_redis_node_name_shared{{{INSTANCE}}})",
                "node name shared {{instance}}",
            ),
            Q(
                f"sum by (instance) (rate(exesdb_redis_connection_errors_total{{{INSTANCE}}}[{RATE}]))",
                "failed commands {{instance}}",
                unit="ops",
            ),
        ],
        "short",
        description="Connected: 1 while Redis answers the replica and refuses none of its commands, else 0 (ExesdbRedisUnusable fires after 5 minutes at 0; a deployment none of whose replicas is connected is not told as ExesdbRedisWorkQueueLeaseUnheld). Node name shared: 1 while another live bridge process on this Redis runs with the replica's EXESDB_NODE (ExesdbNodeNameShared fires after 5 minutes). Failed commands per second, right axis: Redis unreachable or refusing them (the credentials, an ACL permission, memory full). Only on the Redis bus.",
    ),
    series(
        "Redis TLS files",
        [
            Q(
                f"max by (instance) (exesdb_redis_tls_files_last_reload_successful{{{INSTANCE}}})",
                "reload successful {{instance}}",
            ),
            Q(
                f"time() - max by (instance) (exesdb_redis_tls_files_last_reload_success_timestamp_seconds{{{INSTANCE}}})",
                "in force for {{instance}}",
                unit="s",
            ),
        ],
        "short",
        description="Reload successful: 1 when the latest change to the TLS files named in EXESDB_BUS's query (ssl_ca_certs, ssl_certfile, ssl_keyfile) was taken, 0 while one that does not load is refused and the files loaded before stay in force (ExesdbRedisTLSFilesReloadFailed fires after 15 minutes). In force for, right axis: how long since the files in force were loaded. Only on the Redis bus with TLS files.",
    ),
    series(
        "Redis write backlog",
        [
            Q(
                f"max by (instance) (exesdb_redis_buffer_depth{{{INSTANCE}}})",
                "buffered {{instance}}",
            ),
            Q(
                f"max by (instance) (exesdb_redis_retained{{{INSTANCE}}})",
                "retained {{instance}}",
            ),
            Q(
                f"max by (instance) (exesdb_redis_spool_bytes{{{INSTANCE}}})",
                "spooled {{instance}}",
                unit="bytes",
            ),
        ],
        "short",
        description="Buffered: frames the bridge published itself (collectors, alert stage) waiting in memory to be written to Redis, growing while Redis is unreachable; beyond EXESDB_REDIS_BUFFER_SIZE they are refused and counted (dropped transport, under Dropped and failed messages). Retained: work-queue frames written that no consumer group is known to have taken yet, written again should Redis lose its data. Spooled, right axis: bytes in the spool on disk not yet written to Redis (ingested batches answered 202, acknowledgements answered 200). Only on the Redis bus.",
    ),
    series(
        "Redis frames written and spooled",
        [
            Q(
                f"sum by (instance) (rate(exesdb_redis_written_total{{{INSTANCE}}}[{RATE}]))",
                "written {{instance}}",
            ),
            Q(
                f"sum by (instance) (rate(exesdb_redis_spooled_total{{{INSTANCE}}}[{RATE}]))",
                "spooled {{instance}}",
            ),
            Q(
                f"sum by (instance) (rate(exesdb_redis_spool_errors_total{{{INSTANCE}}}[{RATE}]))",
                "refused by the spool's disk {{instance}}",
            ),
        ],
        "ops",
        description="Frames written to Redis streams per second, and frames stored in the spool on disk on their way there (ingested ones, and acknowledgements at a replica without the work-queue lease): written falling to 0 while spooled goes on is Redis not taking writes. Refused by the spool's disk: spool operations its disk refused (full, failing, read-only): a write, whose batch is refused, or a read or the deletion of a segment sent, tried again; the bus's /readyz check says which, naming the file. Only on the Redis bus.",
    ),
    series(
        "Redis recoveries and losses",
        [
            Q(
                f"sum by (instance) (increase(exesdb_redis_stage_errors_total{{{INSTANCE}}}[5m]))",
                "stage restarted {{instance}}",
            ),
            Q(
                f"sum by (instance) (increase(exesdb_redis_resigned_total{{{INSTANCE}}}[5m]))",
                "signed again {{instance}}",
            ),
            Q(
                f"sum by (instance) (increase(exesdb_redis_rewritten_total{{{INSTANCE}}}[5m]))",
                "written again after a data loss {{instance}}",
            ),
            Q(
                f"sum by (instance) (increase(exesdb_redis_claimed_total{{{INSTANCE}}}[5m]))",
                "claimed from a silent replica {{instance}}",
            ),
            Q(
                f"sum by (instance) (increase(exesdb_redis_trimmed_total{{{INSTANCE}}}[5m]))",
                "lost to trimming {{instance}}",
            ),
            Q(
                f"sum by (instance) (increase(exesdb_bus_waited_total{{{INSTANCE}}}[5m]))",
                "taken late after waiting in Redis {{instance}}",
            ),
            Q(
                f"sum by (instance) (increase(exesdb_prometheus_late_readings_total{{{INSTANCE}}}[5m]))",
                "readings sent late, no gauge set {{instance}}",
            ),
        ],
        "short",
        width=24,
        description="Per 5 minutes. Stage restarted: a Redis bus background stage failed unexpectedly, was logged and restarted. Signed again: frames re-signed with a fresh timestamp after waiting half the replay window in the local buffer (a long Redis outage). Written again after a data loss: work-queue frames written anew because Redis lost its data. Claimed from a silent replica: work-queue entries another replica left unacknowledged, taken over. Lost to trimming: unacknowledged work-queue entries trimmed away before a replica took them (raise EXESDB_REDIS_STREAM_MAXLEN above an outage's worth of traffic). Taken late after waiting in Redis: work-queue messages taken past the replay window, fresh when Redis took them, while every replica was down, or the lease holder's alert stage failing, longer than EXESDB_REPLAY_WINDOW_MS. Readings sent late, no gauge set: health and metric readings sent more than half EXESDB_REPLAY_WINDOW_MS after they were made (held in a replica's spool or buffer through a Redis outage), which set no gauge, as they say how things were. Only on the Redis bus.",
    ),
    Row("Alerts"),
    series(
        "Alerts raised by category",
        [
            Q(
                f"sum by (category) (max by (severity, category) (rate(exesdb_alerts_total[{RATE}]))) * 60",
                "{{category}}",
            )
        ],
        "short",
        description="Alerts raised per minute (a host resource's MetricAlert once per crossing or severity, not again with every sample while it breaches).",
    ),
    series(
        "Active alerts by severity",
        [
            Q(f"sum by (severity) ({ACTIVE_ALERTS})", "{{severity}}"),
            Q(
                f"sum(exesdb_alerts_pending{{{INSTANCE}}} unless exesdb_redis_work_queue_leader == 0)",
                "pending",
            ),
        ],
        "short",
        description="Alerts open (firing or acknowledged) in the alert outbox, by severity; on the Redis bus the work-queue lease holder's. Pending: health conditions degraded or unhealthy for less than EXESDB_ALERT_FOR_MS, not yet alerted on; they alert once they have lasted it.",
    ),
    series(
        "Acknowledgements and notifications",
        [
            Q(
                "max by (severity) (increase(exesdb_alert_acknowledgements_total[5m]))",
                "acknowledged {{severity}}",
            ),
            Q(
                "max by (method, status) (increase(exesdb_alert_notifications_total[5m]))",
                "{{method}} {{status}}",
            ),
            Q(
                "max by (level) (increase(exesdb_alert_escalations_total[5m]))",
                "escalated to {{level}}",
            ),
        ],
        "short",
        description="Per 5 minutes: alerts acknowledged, by the severity the alert had; alert notification outcomes, by delivery method and status; alert escalations, by the level reached.",
    ),
    series(
        "Webhook deliveries",
        [
            Q(
                f"sum by (result) (rate(exesdb_webhook_deliveries_total{{{INSTANCE}}}[{RATE}]))",
                "{{result}}",
            ),
        ],
        "ops",
        description="Delivery attempts by result: delivered, retry, rejected, expired, stale.",
    ),
    series(
        "Webhook outbox",
        [
            Q(f"sum(exesdb_webhook_outbox_depth{{{INSTANCE}}})", "waiting"),
            # By state: needs_action (what ExesdbWebhookDeadLetters fires on), superseded.
            Q(
                f"sum by (state) (exesdb_webhook_dead_letters{{{INSTANCE}}})",
                "dead-lettered, {{state}}",
            ),
        ],
        "short",
        description="Alert notifications waiting, and dead letters by state: needs_action "
        "(the receiver has not heard of each of their alerts since: `exesdb-bridge outbox "
        "list`) or superseded (it took a later delivery of each).",
    ),
    series(
        "Webhook delivery latency",
        [
            Q(
                f"histogram_quantile(0.95, sum by (le) (rate(exesdb_webhook_delivery_seconds_bucket{{{INSTANCE}}}[{RATE}])))",
                "p95",
            ),
        ],
        "s",
    ),
    series(
        "Webhook notifications queued again or left out",
        [
            Q(
                f"sum by (reason) (increase(exesdb_webhook_renotified_total{{{INSTANCE}}}[5m]))",
                "queued again, {{reason}}",
            ),
            Q(
                f"sum(increase(exesdb_webhook_stale_total{{{INSTANCE}}}[5m]))",
                "left out as stale",
            ),
        ],
        "short",
        width=24,
        description="Per 5 minutes. Queued again: alerts queued again for a receiver, by reason: dead_lettered (their latest notification to it was dead-lettered; queued at once when the receiver takes deliveries again) or changed_in_flight (left out of an attempt in flight to it, another replica changed them since). Left out as stale: alert notifications left out of a delivery, never to be sent, because another replica notified their alert since or it resolved before they reached a receiver with send_resolved false.",
    ),
    series(
        "Alertmanager posts",
        [
            Q(
                f"sum by (result) (rate(exesdb_alertmanager_posts_total{{{INSTANCE}}}[{RATE}]))",
                "{{result}}",
            )
        ],
        "ops",
    ),
    series(
        "Resolves of unknown alerts forgotten",
        [
            Q(
                f"sum by (instance) (increase(exesdb_alerts_resolves_forgotten_total{{{INSTANCE}}}[5m]))",
                "{{instance}}",
            )
        ],
        "short",
        description="Resolves of alerts the bridge did not know (a node's return taken before its down) forgotten at the cap of 10 000, per 5 minutes: a flood of returns of distinct nodes, or a misbehaving sender; a late firing sent before one forgotten opens its alert again. ExesdbAlertResolvesForgotten fires for 15 minutes after each.",
    ),
    series(
        "Alerts refused and stale events",
        [
            Q(
                f"sum by (instance) (increase(exesdb_alerts_refused_total{{{INSTANCE}}}[5m]))",
                "refused at the cap {{instance}}",
            ),
            Q(
                f"sum by (instance) (increase(exesdb_alerts_stale_events_total{{{INSTANCE}}}[5m]))",
                "stale events left out {{instance}}",
            ),
        ],
        "short",
        description="Per 5 minutes: new alerts refused because the cap on open alerts (50 000) was reached, and alert events left out because their message was sent before the event that last changed their alert (delivered late or again: a down redelivered after the return that resolved it re-opens nothing). On the Redis bus, at the work-queue lease holder.",
    ),
    series(
        "Work-queue lease (Redis bus)",
        [
            # A deployment's replicas share one lease: the targets of one job in one namespace.
            Q(
                f"sum by (job, namespace) (exesdb_redis_work_queue_leader{{{INSTANCE}}})",
                "holders {{job}} {{namespace}}",
            ),
            Q(
                f"max by (instance) (exesdb_redis_work_queue_lease_kept{{{INSTANCE}}})",
                "kept {{instance}}",
            ),
            Q(
                f"sum by (instance) (increase(exesdb_redis_work_queue_lease_kept_given_back_total{{{INSTANCE}}}[5m]))",
                "given back still failing {{instance}}",
            ),
        ],
        "short",
        description="Holders: the replicas of a deployment (a job in a namespace) that hold the work-queue lease, 1 but for a hand-over (ExesdbRedisWorkQueueLeaseUnheld fires after 2 minutes at 0, ExesdbRedisWorkQueueLeaseHeldBySeveral after 2 minutes above 1). Kept: 1 while a replica that took the work-queue lease back after Redis lost its data keeps it through failed take-ups, the work queue served by no replica (ExesdbRedisWorkQueueLeaseKept fires after 5 minutes). Given back: leases it gave back still failing, per 5 minutes, its open alerts then taken up by no replica (ExesdbRedisWorkQueueLeaseGivenBack). Only on the Redis bus.",
    ),
    Row("OpenTelemetry export"),
    series(
        "OTLP records exported",
        [
            Q(
                f"sum by (signal) (rate(exesdb_otlp_exported_total{{{INSTANCE}}}[{RATE}]))",
                "{{signal}}",
            )
        ],
        "ops",
    ),
    series(
        "OTLP failures, drops and queue",
        [
            Q(
                f"sum by (signal) (rate(exesdb_otlp_export_failures_total{{{INSTANCE}}}[{RATE}]))",
                "failed {{signal}}",
            ),
            Q(
                f"sum by (signal) (rate(exesdb_otlp_dropped_total{{{INSTANCE}}}[{RATE}]))",
                "dropped {{signal}}",
            ),
            Q(f"sum by (signal) (exesdb_otlp_queue_depth{{{INSTANCE}}})", "queued {{signal}}"),
        ],
        "short",
    ),
    Row("HTTP edge"),
    series(
        "Web config",
        [
            Q(
                f"max by (instance) (exesdb_web_config_last_reload_successful{{{INSTANCE}}})",
                "reload successful {{instance}}",
            ),
            Q(
                f"time() - max by (instance) (exesdb_web_config_last_reload_success_timestamp_seconds{{{INSTANCE}}})",
                "in force for {{instance}}",
                unit="s",
            ),
        ],
        "short",
        description="Reload successful: 1 when the latest change to EXESDB_WEB_CONFIG_FILE (or a file it names) was taken, 0 while a bad one is refused and the version loaded before stays in force (ExesdbWebConfigReloadFailed fires after 15 minutes). In force for, right axis: how long since the web config in force was loaded. Only with EXESDB_WEB_CONFIG_FILE.",
    ),
    series(
        "HTTP connections",
        [
            Q(f"max by (instance) (exesdb_http_connections{{{INSTANCE}}})", "open {{instance}}"),
            Q(f"max by (instance) (exesdb_http_max_connections{{{INSTANCE}}})", "cap {{instance}}"),
            Q(
                f"max by (instance) (exesdb_http_bodies_held_bytes{{{INSTANCE}}})",
                "bodies held {{instance}}",
                unit="bytes",
            ),
            Q(
                f"max by (instance) (exesdb_http_heads_held_bytes{{{INSTANCE}}})",
                "heads held {{instance}}",
                unit="bytes",
            ),
        ],
        "short",
        description="Open HTTP connections and the cap in force (EXESDB_HTTP_MAX_CONNECTIONS, or lower when the descriptor limit allows fewer). At the cap a new connection closes the one idle longest, else the one reading a body slowest; with every connection busy otherwise, 32 more are taken for /healthz, /readyz and /metrics only (any other request there is answered 503 too_many_connections). The bytes the requests in progress hold of bodies (at most EXESDB_MAX_BODIES_BYTES, 64 MiB unset) and of heads (at most 16 MiB): near either, the slowest is closed or the request answered 503 overloaded.",
    ),
    series(
        "HTTP connections closed by reason",
        [
            Q(
                f"sum by (reason) (rate(exesdb_http_connections_closed_total{{{INSTANCE}}}[{RATE}]))",
                "{{reason}}",
            )
        ],
        "ops",
        description="Connections the bridge closed: a head, TLS handshake or body too slow (header_timeout, body_timeout), the longest idle one at the cap (evicted), the slowest body read at the cap with none idle (slow_body), the longest stalled of more than 32 answers their clients do not read (stalled), an answer its client took nothing of (write_timeout), or over the cap and its reserve (refused); a request the parser refused (bad_request), in another HTTP version (unsupported_version), whose body or head took those held past their budget (body_budget, head_budget; the slowest closed instead: slow_body, slow_head), or whose head is over 1 MiB, answered 431 (head_too_large). Idle connections closed after their timeout are not counted.",
    ),
    series(
        "TLS handshakes failed by kind",
        [
            Q(
                f"sum by (kind) (rate(exesdb_http_tls_handshake_failures_total{{{INSTANCE}}}[{RATE}]))",
                "{{kind}}",
            )
        ],
        "ops",
        description="plain_http: plain HTTP sent to the TLS port (answered 400); client_certificate: none, or one the client CA does not sign; server_certificate: the client refused the bridge's; version_or_cipher: none in common; closed: the client left mid-handshake (a port check). Each kind is logged at most once a minute. Only with TLS in EXESDB_WEB_CONFIG_FILE.",
    ),
    series(
        "Basic auth checks and admin tokens refused",
        [
            Q(
                f"sum by (result) (rate(exesdb_web_config_password_checks_total{{{INSTANCE}}}[{RATE}]))",
                "checked, {{result}}",
            ),
            Q(
                f"sum by (reason) (rate(exesdb_http_admin_refused_total{{{INSTANCE}}}[{RATE}]))",
                "admin token {{reason}}, answered 401",
            ),
            Q(
                f"sum by (limit) (rate(exesdb_web_config_password_checks_busy_total{{{INSTANCE}}}[{RATE}]))",
                "answered 429, {{limit}} limit",
            ),
            Q(
                f"max by (instance) (exesdb_web_config_password_checks_waiting{{{INSTANCE}}})",
                "waiting {{instance}}",
                unit="short",
            ),
        ],
        "ops",
        width=24,
        description="Passwords checked with bcrypt per second by result (each outcome is remembered, so a scraper resending the same credentials costs one check: a growing refused rate is someone guessing), and requests answered 429 password_checks_busy, unchecked, by the limit they met (client or all). Waiting, right axis: checks waiting their turn or running; staying near 12 is a flood (a check from any other address is then answered 429). The checks only with basic_auth_users in EXESDB_WEB_CONFIG_FILE. Admin token missing or wrong: admin requests answered 401 unauthorized, by reason; a steady wrong rate is someone trying tokens, or a client holding one since changed.",
    ),
    Row("Security, audit and logs"),
    series(
        "Authentication events",
        [
            Q(
                f"sum by (event_type) (max by (node, event_type, method) (rate(exesdb_auth_events_total{{{NODE}}}[{RATE}])))",
                "{{event_type}}",
            )
        ],
        "ops",
    ),
    series(
        "Access violations",
        [
            Q(
                f"sum by (violation_type) (max by (node, violation_type, severity) (increase(exesdb_access_violations_total{{{NODE}}}[5m])))",
                "{{violation_type}}",
            ),
            Q(
                f"sum by (alert_type) (max by (node, alert_type, severity) (increase(exesdb_security_alerts_total{{{NODE}}}[5m])))",
                "security alert {{alert_type}}",
            ),
        ],
        "short",
    ),
    series(
        "Audited data changes",
        [
            Q(
                f"sum by (action) (max by (node, resource_type, action) (rate(exesdb_audit_data_changes_total{{{NODE}}}[{RATE}])))",
                "{{action}}",
            )
        ],
        "ops",
    ),
    series(
        "Audited accesses by result",
        [
            Q(
                f"sum by (result) (max by (node, resource_type, result) (rate(exesdb_audit_access_total{{{NODE}}}[{RATE}])))",
                "{{result}}",
            )
        ],
        "ops",
    ),
    series(
        "Audited admin actions and compliance events",
        [
            Q(
                f"sum by (action) (max by (node, action) (increase(exesdb_audit_admin_actions_total{{{NODE}}}[5m])))",
                "admin {{action}}",
            ),
            Q(
                f"sum by (event_type) (max by (node, event_type) (increase(exesdb_audit_compliance_events_total{{{NODE}}}[5m])))",
                "compliance {{event_type}}",
            ),
        ],
        "short",
        description="Per 5 minutes: audited admin actions, by type, and compliance events, by type.",
    ),
    series(
        "Log entries by level",
        [
            Q(
                f"sum by (level) (max by (node, level) (rate(exesdb_log_entries_total{{{NODE}}}[{RATE}])))",
                "{{level}}",
            )
        ],
        "ops",
    ),
    series(
        "Diagnostics",
        [
            Q(
                f"sum by (component) (max by (node, component) (increase(exesdb_debug_traces_total{{{NODE}}}[5m])))",
                "traces {{component}}",
            ),
            Q(
                f"sum by (error_type) (max by (node, error_type) (increase(exesdb_error_analyses_total{{{NODE}}}[5m])))",
                "errors {{error_type}}",
            ),
            Q(
                f"max by (error_type) (exesdb_error_frequency{{{NODE}}})",
                "frequency {{error_type}}",
            ),
            Q(
                f"sum by (severity) (max by (node, component, analysis_type, severity) (increase(exesdb_performance_analyses_total{{{NODE}}}[5m])))",
                "performance analyses {{severity}}",
            ),
        ],
        "short",
        description="Per 5 minutes: debug traces, by component; error analyses, by error type; performance analyses, by severity. Frequency: how often an error type occurred, as of its latest analysis (the highest a node reported).",
    ),
    series(
        "Sessions",
        [
            Q(
                f"sum by (event_type) (max by (node, event_type) (increase(exesdb_session_events_total{{{NODE}}}[5m])))",
                "{{event_type}}",
            )
        ],
        "short",
    ),
]

BRIDGE_INTERNALS = Dashboard(
    "exesdb-bridge-internals",
    "ExESDB / Alerts & bridge internals",
    "Alerts, security, audit and logs, and the bridge itself: bus, Redis bus, sinks, webhooks, OTLP, HTTP edge.",
    PANELS,
    [query_variable("instance", "Bridge", "label_values(exesdb_build_info, instance)")],
)
