"""``exesdb-bridge schema``, run in this process as a process runs it (``run_in_process``): a
type's fields, its JSON Schema, the tags."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from bridge.messages import INSTANCES, TAGS
from bridge.schema import render_markdown
from tests.doc_text import fenced, page, section
from tests.support import TEST_SECRET, run_command, run_in_process


def schema(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``exesdb-bridge schema ARGS`` in this process (``run_in_process``); capture its
    output."""
    return run_in_process("schema", *args)


def test_a_tag_prints_its_fields() -> None:
    """`schema performance_metric` prints one row per field with its type and default; exit 0."""
    completed = schema("performance_metric")
    assert completed.returncode == 0, completed.stderr
    rows = {line.split()[0]: line for line in completed.stdout.splitlines()[3:] if line}
    assert set(rows) == set(TAGS["performance_metric"].model_fields)
    assert re.search(
        r"^metric_name\s+string \(1-4096 characters, no control, format or invisible characters\)"
        r"\s+required",
        rows["metric_name"],
    )
    assert "the envelope's node" in rows["node"]


def test_allowed_values_are_printed() -> None:
    """A field with a fixed set of values lists them."""
    completed = schema("system_alert")
    [severity] = [line for line in completed.stdout.splitlines() if line.startswith("severity ")]
    assert severity.endswith("info, warning, error, critical")


def test_json_prints_the_payloads_json_schema() -> None:
    """`--json` prints a JSON Schema: properties, allowed values, the fields a payload must have."""
    completed = schema("system_alert", "--json")
    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    assert document["properties"]["severity"]["enum"] == ["info", "warning", "error", "critical"]
    assert "node" not in document["required"]  # the envelope's node fills it in
    assert "title" in document["required"]


def test_without_a_tag_every_tag_is_listed_by_instance() -> None:
    """`schema` alone lists the 36 tags, each indented under its bus instance."""
    completed = schema()
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert [line for line in lines if not line.startswith(" ")] == list(INSTANCES)
    listed = [line.split()[0] for line in lines if line.startswith(" ")]
    assert sorted(listed) == sorted(TAGS)


def test_without_a_tag_json_maps_instances_to_tags() -> None:
    """`schema --json` is an object of instance to tags."""
    document = json.loads(schema("--json").stdout)
    assert list(document) == list(INSTANCES)
    assert sorted(tag for tags in document.values() for tag in tags) == sorted(TAGS)


def test_help_says_what_schema_alone_and_with_json_print() -> None:
    """`schema --help` says that without TAG it lists every type, and what --json prints then,
    as the command's row of docs/cli.md does."""
    completed = schema("--help")
    assert completed.returncode == 0, completed.stderr
    said = " ".join(completed.stdout.split())
    assert "without TAG, list every type by bus instance" in said
    assert "(without TAG: the types by instance, as JSON)" in said
    [row] = [
        line for line in page("cli").splitlines() if line.startswith("| `exesdb-bridge schema")
    ]
    assert "without TAG, every type by bus instance (with `--json`, as JSON" in row


def test_an_unknown_tag_exits_2_naming_the_closest() -> None:
    """A misspelt tag is a usage error (exit 2) that names the tag meant, quoted as ingest and
    every other refusal quote the word meant, and prints nothing."""
    completed = schema("performance_metrics")
    assert completed.returncode == 2
    assert completed.stderr == (
        "exesdb-bridge: unknown message type 'performance_metrics'; did you mean"
        " 'performance_metric'? (exesdb-bridge schema lists them all)\n"
    )
    assert completed.stdout == ""


def test_an_unknown_tag_like_no_tag_names_none() -> None:
    """A tag nothing like any (``nosuch``) is a usage error that suggests no tag, which would
    point the wrong way, and says where the tags are listed."""
    completed = schema("nosuch")
    assert completed.returncode == 2
    assert completed.stderr == (
        "exesdb-bridge: unknown message type 'nosuch' (exesdb-bridge schema lists them all)\n"
    )


def test_publish_refuses_an_unknown_tag_in_the_same_words() -> None:
    """`publish` and `schema` word an unknown message type alike, naming the tag meant."""
    published = run_in_process(
        "publish", "performance_metrics", env={"SECRET_KEY_BASE": TEST_SECRET}
    )
    assert published.returncode == 2
    assert published.stderr == schema("performance_metrics").stderr


def test_a_bus_instance_given_as_a_tag_is_named_as_one_with_its_types() -> None:
    """`schema ex_esdb_health` (an instance, as examples/sign.sh takes one) says it is an
    instance and lists its message types, rather than guessing a tag by spelling; exit 2."""
    completed = schema("ex_esdb_health")
    assert completed.returncode == 2
    assert completed.stderr == (
        "exesdb-bridge: 'ex_esdb_health' is a bus instance, not a message type; its types:"
        " node_health_updated, cluster_health_updated, component_health_updated,"
        " health_check_completed (give the type alone: its instance follows from it)\n"
    )


def test_publish_given_an_instance_before_the_tag_says_to_give_the_tag_alone() -> None:
    """`publish ex_esdb_health node_health_updated` (sign.sh's order) is a usage error that says
    the first is a bus instance, not only that the tag is an unrecognized argument."""
    completed = run_in_process(
        "publish",
        "ex_esdb_health",
        "node_health_updated",
        "-f",
        "status=healthy",
        env={"SECRET_KEY_BASE": TEST_SECRET},
    )
    assert completed.returncode == 2
    assert completed.stderr.splitlines()[-1] == (
        "exesdb-bridge publish: error: unrecognized arguments: node_health_updated"
        " ('ex_esdb_health' is a bus instance: publish takes the message type alone, and its"
        " instance follows from it)"
    )


def test_the_cli_page_shows_the_real_output() -> None:
    """The sample in docs/cli.md is what the command prints."""
    [sample] = fenced(section(page("cli"), "Message types"), "")
    command, _, output = sample.partition("\n")
    assert command == "$ exesdb-bridge schema performance_metric"
    assert output == schema("performance_metric").stdout


def test_the_docs_writer_s_help_is_help_not_a_file_to_write(tmp_path: Path) -> None:
    """`python -m bridge.schema --help` (make docs's writer) prints its usage and writes no file
    named --help; given PATH, it writes the message reference there."""
    helped = run_command([sys.executable, "-m", "bridge.schema", "--help"], cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: python -m bridge.schema [-h] PATH")
    assert list(tmp_path.iterdir()) == []
    written = run_command([sys.executable, "-m", "bridge.schema", "messages.md"], cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert (tmp_path / "messages.md").read_text() == render_markdown()
