"""Helpers shared by the tests, one module per job: waiting, ports and sockets, HTTP requests,
server processes, bridge commands and bridges, real binaries, files, certificates, memory.

Every name is re-exported here: tests import them from ``tests.support``.
"""

from __future__ import annotations

from tests.support.binaries import require_binary, unavailable
from tests.support.blank_names import (
    DEFAULT_IGNORABLE_ASTRAL,
    DEFAULT_IGNORABLE_BMP,
    blank_in_the_pattern,
    drawn_as_nothing,
)
from tests.support.bridges import BridgeProcess, ThreadedBridge, ingesting_bridge, make_settings
from tests.support.certificates import DAMAGED_CA_NAMES, damaged_ca_files, pem_files, rsa_key_pem
from tests.support.commands import (
    PLAIN_RUNS,
    bridge_env,
    check_config,
    is_bridge_variable,
    run_bridge,
    run_command,
    run_in_process,
    run_without_terminal,
)
from tests.support.files import FifoReleaser, FileOpens, withhold
from tests.support.http_requests import http_get, post_signed, signed_post
from tests.support.memory import alive, collector_off
from tests.support.network import (
    answered_unread,
    free_port,
    listens,
    refusing_port,
    stop_accepting,
    stop_serving,
    unread_bound,
    unread_by_server,
)
from tests.support.processes import spawn_logged, start_listening, terminate
from tests.support.values import (
    ADMIN_TOKEN,
    ALERTMANAGER_GLOBAL,
    ROOT,
    TEST_SECRET,
    critical_alert_body,
    nested_map,
    undated_health_from_ahead,
)
from tests.support.waiting import ManualClock, async_wait_until, each_turn_until, wait_until

__all__ = [
    "ADMIN_TOKEN",
    "ALERTMANAGER_GLOBAL",
    "DAMAGED_CA_NAMES",
    "DEFAULT_IGNORABLE_ASTRAL",
    "DEFAULT_IGNORABLE_BMP",
    "PLAIN_RUNS",
    "ROOT",
    "TEST_SECRET",
    "BridgeProcess",
    "FifoReleaser",
    "FileOpens",
    "ManualClock",
    "ThreadedBridge",
    "alive",
    "answered_unread",
    "async_wait_until",
    "blank_in_the_pattern",
    "bridge_env",
    "check_config",
    "collector_off",
    "critical_alert_body",
    "damaged_ca_files",
    "drawn_as_nothing",
    "each_turn_until",
    "free_port",
    "http_get",
    "ingesting_bridge",
    "is_bridge_variable",
    "listens",
    "make_settings",
    "nested_map",
    "pem_files",
    "post_signed",
    "refusing_port",
    "require_binary",
    "rsa_key_pem",
    "run_bridge",
    "run_command",
    "run_in_process",
    "run_without_terminal",
    "signed_post",
    "spawn_logged",
    "start_listening",
    "stop_accepting",
    "stop_serving",
    "terminate",
    "unavailable",
    "undated_health_from_ahead",
    "unread_bound",
    "unread_by_server",
    "wait_until",
    "withhold",
]
