"""``run --demo`` and ``check-config --demo``: the demo's own state folder, apart from a real
bridge's, and its warnings."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Final

import pytest

from tests.cli.helpers import cli
from tests.integration.servers.redis import RedisServer
from tests.support import ROOT, BridgeProcess, wait_until

# Set to "" (docker compose's ${X:-}) or to blanks only is unset, for these as for every setting.
_UNSET_BY_BLANKS: Final = (
    "EXESDB_STATE_DIR",
    "EXESDB_NODE",
    "EXESDB_LOG_LEVEL",
    "EXESDB_ALERT_FOR_MS",
    "EXESDB_PUBSUB_INTEGRATION",
    "EXESDB_WEBHOOK_URL",
)


# Where `run --demo` keeps its state without EXESDB_STATE_DIR (docs/configuration.md): the demo
# test below finds its outbox there, and `make clean` must remove it.
_DEMO_STATE_FOLDER: Final = ".exesdb-bridge-demo"


@pytest.mark.parametrize(
    ("empty", "value"),
    [((), ""), (_UNSET_BY_BLANKS, ""), (_UNSET_BY_BLANKS, "  ")],
    ids=["unset", "empty", "blanks"],
)
def test_the_demo_keeps_its_alerts_apart_from_a_real_bridge_run_from_the_same_folder(
    bridge_processes: list[BridgeProcess], tmp_path: Path, empty: tuple[str, ...], value: str
) -> None:
    """`run --demo` without EXESDB_STATE_DIR keeps its state in ./.exesdb-bridge-demo, not the
    ./.exesdb-bridge of a bridge run later from the same folder, whose receivers would otherwise
    be sent the demo's made-up alerts as they escalate."""
    process = BridgeProcess(["--demo"])
    process.env.update(dict.fromkeys(empty, value))
    bridge_processes.append(process)
    process.start(tmp_path)
    wait_until(lambda: "dead-lettered" in process.log(), 15, "the outbox line")
    where = tmp_path / _DEMO_STATE_FOLDER / "alerts.sqlite3"
    assert f"outbox {where}: 0 pending" in process.log()
    assert not (tmp_path / ".exesdb-bridge").exists()
    assert "is not a setting" not in process.log()


def test_the_demo_warns_that_its_alerts_go_to_the_configured_receivers(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """`run --demo` with receivers and Alertmanager configured says at start, as a WARNING,
    that its made-up alerts will be delivered to them, naming the variables, not the URLs."""
    process = BridgeProcess(["--demo"])
    process.env.update(
        {
            "EXESDB_WEBHOOK_URLS": "http://127.0.0.1:9/a?token=s3cret,http://127.0.0.1:9/b",
            "EXESDB_ALERTMANAGER_URL": "http://127.0.0.1:9",
        }
    )
    bridge_processes.append(process)
    process.start(tmp_path)
    wait_until(lambda: "made-up alerts" in process.log(), 15, "the demo's warning")
    [line] = [line for line in process.log().splitlines() if "made-up alerts" in line]
    assert "WARNING" in line
    assert "EXESDB_WEBHOOK_URLS (2 receivers) and EXESDB_ALERTMANAGER_URL" in line
    assert "s3cret" not in process.log()


def test_a_demo_and_a_real_bridge_never_share_a_state_directory(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """A bridge run without --demo on a directory a demo used (as a container's volume is,
    the image setting EXESDB_STATE_DIR) exits 2 naming EXESDB_STATE_DIR before it would deliver
    the demo's made-up alerts; a demo on a real bridge's directory exits 2 too, its outbox
    untouched."""
    demo_dir, real_dir = tmp_path / "demo-volume", tmp_path / "real-volume"
    demo = BridgeProcess(["--demo"], EXESDB_STATE_DIR=str(demo_dir))
    bridge_processes.append(demo)
    demo.start(tmp_path)
    assert demo.stop() == 0
    real = cli("run", EXESDB_STATE_DIR=str(demo_dir), EXESDB_HTTP_ADDR="127.0.0.1:0")
    assert real.returncode == 2
    assert f"EXESDB_STATE_DIR ({demo_dir}) holds the state of a demo" in real.stderr
    checked = cli("check-config", EXESDB_STATE_DIR=str(demo_dir))
    assert checked.returncode == 2
    assert f"EXESDB_STATE_DIR ({demo_dir}) holds the state of a demo" in checked.stderr
    assert "`check-config --demo` checks the configuration `run --demo` starts" in checked.stderr
    assert cli("check-config", "--demo", EXESDB_STATE_DIR=str(demo_dir)).returncode == 0
    first = BridgeProcess(EXESDB_STATE_DIR=str(real_dir))
    bridge_processes.append(first)
    first.start(tmp_path)
    assert first.stop() == 0
    before = (real_dir / "alerts.sqlite3").stat().st_mtime_ns
    again = cli("run", "--demo", EXESDB_STATE_DIR=str(real_dir), EXESDB_HTTP_ADDR="127.0.0.1:0")
    assert again.returncode == 2
    assert f"EXESDB_STATE_DIR ({real_dir}) holds a real bridge's alert outbox" in again.stderr
    checked = cli("check-config", "--demo", EXESDB_STATE_DIR=str(real_dir))
    assert checked.returncode == 2
    assert f"EXESDB_STATE_DIR ({real_dir}) holds a real bridge's alert outbox" in checked.stderr
    assert (real_dir / "alerts.sqlite3").stat().st_mtime_ns == before
    assert not (real_dir / "demo-state").exists()


def test_check_config_demo_checks_the_folder_run_demo_takes_and_makes_nothing(
    tmp_path: Path,
) -> None:
    """`check-config --demo` with EXESDB_STATE_DIR unset shows and checks ./.exesdb-bridge-demo,
    as `run --demo` takes it, without making it; a demo's folder and a refused setting are
    listed together, all mended in one round."""
    checked = cli("check-config", "--demo", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert re.search(r"^EXESDB_STATE_DIR +\./\.exesdb-bridge-demo$", checked.stdout, re.M)
    assert not (tmp_path / _DEMO_STATE_FOLDER).exists()
    demo_dir = tmp_path / "volume"
    demo_dir.mkdir()
    (demo_dir / "demo-state").write_text("marked by a demo\n")
    refused = cli("check-config", EXESDB_STATE_DIR=str(demo_dir), EXESDB_HTTP_ADDR="nowhere")
    assert refused.returncode == 2
    assert "EXESDB_HTTP_ADDR" in refused.stderr
    assert f"EXESDB_STATE_DIR ({demo_dir}) holds the state of a demo" in refused.stderr


def test_a_demo_takes_up_its_own_folder_left_unmarked_by_an_earlier_version(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """`run --demo` without EXESDB_STATE_DIR starts on the ./.exesdb-bridge-demo a demo of a
    version that did not mark it left (an outbox, no demo-state file): it is the demo's own
    folder, not a real bridge's outbox."""
    first = BridgeProcess(["--demo"])
    bridge_processes.append(first)
    first.start(tmp_path)
    assert first.stop() == 0
    (tmp_path / _DEMO_STATE_FOLDER / "demo-state").unlink()
    again = BridgeProcess(["--demo"])
    bridge_processes.append(again)
    again.start(tmp_path)
    assert "holds a real bridge's alert outbox" not in again.log()


def test_a_demo_does_not_wait_on_a_fifo_in_place_of_its_mark(
    bridge_processes: list[BridgeProcess], tmp_path: Path
) -> None:
    """`run --demo` on a directory whose demo-state is a FIFO starts without waiting on it for
    a reader (which held start-up and SIGTERM): the FIFO marks the directory as the demo's."""
    state = tmp_path / "state"
    state.mkdir()
    demo = BridgeProcess(["--demo"], EXESDB_STATE_DIR=str(state))
    bridge_processes.append(demo)
    os.mkfifo(state / "demo-state")
    demo.start(tmp_path)  # it waited, without a reader to come, past its start's deadline
    assert demo.stop() == 0


def test_the_demo_on_a_redis_bus_warns_to_run_it_on_one_replica_only(
    bridge_processes: list[BridgeProcess],
    tmp_path: Path,
    redis_server: Callable[[], RedisServer],
) -> None:
    """`run --demo` on a shared Redis bus says at start, as a WARNING, that each replica run
    with --demo publishes the simulated cluster again: its alerts would come once per replica."""
    process = BridgeProcess(["--demo"])
    process.env.update({"EXESDB_BUS": redis_server().url})
    bridge_processes.append(process)
    process.start(tmp_path)
    wait_until(lambda: "on one replica only" in process.log(), 15, "the demo's warning")
    [line] = [line for line in process.log().splitlines() if "on one replica only" in line]
    assert "WARNING" in line


def test_check_config_demo_gives_the_warnings_run_demo_starts_with_in_the_same_words(
    bridge_processes: list[BridgeProcess],
    tmp_path: Path,
    redis_server: Callable[[], RedisServer],
) -> None:
    """`check-config --demo` warns, in `run --demo`'s words and order, of every warning that run
    logs as it starts: the demo's made-up alerts going to the receivers configured, the demo on
    a shared Redis bus, the bridge's own start warnings (unsigned webhooks)."""
    process = BridgeProcess(["--demo"], state_dir=tmp_path / "state")
    process.env.update(
        {
            "EXESDB_WEBHOOK_URLS": "http://127.0.0.1:9/a",
            "EXESDB_ALERTMANAGER_URL": "http://127.0.0.1:9",
            "EXESDB_BUS": redis_server().url,
        }
    )
    bridge_processes.append(process)
    process.start(tmp_path)
    # Up to its listening line: later ones are about what it then does (a receiver failing).
    started = process.log().partition(" listening on ")[0]
    logged = re.findall(r"^\S+ WARNING [\w.]+: (.*)$", started, re.M)
    checked = cli("check-config", "--demo", cwd=tmp_path, **process.env)
    assert checked.returncode == 0, checked.stderr
    warned = re.findall(r"^exesdb-bridge: warning: (.*)$", checked.stderr, re.M)
    assert warned == logged
    assert sum(note.startswith("demo: ") for note in logged) == 2, logged


def test_make_clean_removes_the_state_folders_a_bridge_run_from_the_clone_makes() -> None:
    """`make clean` removes ./.exesdb-bridge and the demo's ./.exesdb-bridge-demo alike, so
    no outbox of made-up alerts is left behind."""
    from bridge.settings import Settings

    dry = subprocess.run(
        ["make", "-n", "clean"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    for folder in (Settings.model_fields["state_dir"].default, _DEMO_STATE_FOLDER):
        assert Path(folder).name in dry, folder
