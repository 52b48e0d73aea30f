"""What a probe costs: ``exesdb-bridge healthcheck`` imports none of the bridge's libraries."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.cli.healthcheck_helpers import PASSWORD
from tests.support import free_port, run_command
from tests.webconfig.files import bcrypt_hash

# What the bridge itself runs on: a probe importing any of these pays for the whole bridge.
HEAVY = ("aiohttp", "pydantic", "pydantic_settings", "opentelemetry", "prometheus_client", "redis")


# What of bridge.cli a plain probe imports: the probe and its options.
PROBE = {"bridge.cli.healthcheck", "bridge.cli.healthcheck_options"}


def modules_imported_by_healthcheck(*args: str, site: bool = True, **env: str) -> set[str]:
    """The modules ``python -X importtime -m bridge healthcheck`` imports; without ``site``
    (``-S``), those of the probe alone, as an installed bridge's: no ``.pth`` of the site
    packages runs, whatever the venv holds."""
    flags = [] if site else ["-S"]
    completed = run_command(
        [sys.executable, *flags, "-X", "importtime", "-m", "bridge", "healthcheck", *args], env
    )
    lines = [line for line in completed.stderr.splitlines() if line.startswith("import time:")]
    assert lines, completed.stderr
    return {line.rsplit("|", 1)[1].strip() for line in lines}


def imported_by_healthcheck(*args: str, **env: str) -> set[str]:
    """The top-level packages ``python -X importtime -m bridge healthcheck`` imports."""
    return {name.split(".")[0] for name in modules_imported_by_healthcheck(*args, site=True, **env)}


def test_command_imports_none_of_the_bridge_s_libraries() -> None:
    """A probe without a web config imports no aiohttp, pydantic, OpenTelemetry, prometheus_client
    or redis, nor dataclasses (with inspect, a sixth of its own imports' cost) or pathlib: it
    stays cheap enough to run every few seconds."""
    imported = imported_by_healthcheck(EXESDB_HTTP_ADDR=f"127.0.0.1:{free_port()}")
    assert "bridge" in imported
    assert imported.isdisjoint(HEAVY), sorted(imported & set(HEAVY))
    alone = modules_imported_by_healthcheck(site=False, EXESDB_HTTP_ADDR=f"127.0.0.1:{free_port()}")
    assert "bridge.cli.healthcheck" in alone
    assert alone.isdisjoint({"dataclasses", "inspect", "pathlib"}), sorted(alone)


def test_command_with_a_web_config_imports_its_reader_but_not_the_server(tmp_path: Path) -> None:
    """With basic auth in a web config the probe reads the file (pydantic) but imports none of
    the serving side: no aiohttp, OpenTelemetry, prometheus_client or redis."""
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  probe: '{bcrypt_hash(PASSWORD)}'\n")
    (tmp_path / "password").write_text(PASSWORD)
    imported = imported_by_healthcheck(
        EXESDB_HTTP_ADDR=f"127.0.0.1:{free_port()}",
        EXESDB_WEB_CONFIG_FILE=str(tmp_path / "web.yml"),
        EXESDB_HEALTHCHECK_USERNAME="probe",
        EXESDB_HEALTHCHECK_PASSWORD_FILE=str(tmp_path / "password"),
    )
    assert "pydantic" in imported
    assert imported.isdisjoint(set(HEAVY) - {"pydantic", "pydantic_settings"}), sorted(
        imported & set(HEAVY)
    )


def test_ready_command_stays_on_the_light_path() -> None:
    """``healthcheck --ready`` is the same light probe: no parser, none of the bridge's
    libraries; the probe and its options alone."""
    modules = modules_imported_by_healthcheck(
        "--ready", EXESDB_HTTP_ADDR=f"127.0.0.1:{free_port()}"
    )
    assert {name for name in modules if name.startswith("bridge.cli.")} == PROBE
    assert {name.split(".")[0] for name in modules}.isdisjoint(HEAVY)


def test_command_with_an_option_it_does_not_take_goes_to_the_full_command_line() -> None:
    """``healthcheck --help`` is answered by bridge.cli's parser (so the check of the light path
    above can see an import it does not make); tests/test_cli_imports.py holds what that imports.
    A plain probe runs bridge.cli.healthcheck (and its options) without the parser or its
    subcommands."""
    assert "bridge.cli.parser" in modules_imported_by_healthcheck("--help")
    light = modules_imported_by_healthcheck(EXESDB_HTTP_ADDR=f"127.0.0.1:{free_port()}")
    assert {name for name in light if name.startswith("bridge.cli.")} == PROBE
