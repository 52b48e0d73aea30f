"""The ``exesdb-bridge schema [TAG] [--json]`` subcommand: a message type's fields in a terminal."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from bridge.messages import Message

__all__ = ["add_schema_command"]

_EXIT_OK: Final = 0
_EXIT_USAGE: Final = 2


class _Commands(Protocol):
    """What ``add_subparsers`` returns, as far as adding a command goes."""

    def add_parser(self, name: str, *args: Any, **kwargs: Any) -> argparse.ArgumentParser: ...


def add_schema_command(commands: _Commands) -> None:
    """Add ``schema`` to the subcommands of ``exesdb-bridge``."""
    schema = commands.add_parser(
        "schema",
        help="print a message type's fields, or list the types by bus instance",
        description=(
            "Print a message type's fields (name, type, required or default, allowed values),"
            " as publish -f takes them; without TAG, list every type by bus instance."
        ),
    )
    schema.add_argument(
        "tag",
        nargs="?",
        metavar="TAG",
        help="the message type, e.g. performance_metric (left out: every type)",
    )
    schema.add_argument(
        "--json",
        action="store_true",
        help="print the type's JSON Schema instead (without TAG: the types by instance, as JSON)",
    )
    schema.set_defaults(handler=run_schema)


def run_schema(args: argparse.Namespace) -> int:
    """Print the tag's fields (or JSON Schema), or every tag; exit 2 naming the closest tag."""
    # Imported here, so that adding the command to a parser builds no message model.
    from bridge.schema.describe import model_named, unknown_tag_message, wire_schema

    if args.tag is None:
        _emit(_tags_json() if args.json else _tags_text())
        return _EXIT_OK
    model = model_named(args.tag)
    if model is None:
        print(f"exesdb-bridge: {unknown_tag_message(args.tag)}", file=sys.stderr)
        return _EXIT_USAGE
    _emit(json.dumps(wire_schema(model), indent=2) if args.json else _fields_text(model))
    return _EXIT_OK


def _emit(text: str) -> None:
    # A reader that stops early (``| head``) is the command line's to handle (bridge.cli.main).
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _tags_json() -> str:
    from bridge.schema.describe import tags_by_instance

    grouped = tags_by_instance()
    return json.dumps({instance: [m.TAG for m in models] for instance, models in grouped.items()})


def _tags_text() -> str:
    from bridge.schema.describe import summary, tags_by_instance

    lines = []
    for instance, models in tags_by_instance().items():
        lines.append(instance)
        tag_width = max(len(m.TAG) for m in models)
        name_width = max(len(m.__name__) for m in models)
        lines.extend(
            f"  {m.TAG:<{tag_width}}  {m.__name__:<{name_width}}  {summary(m)}" for m in models
        )
    return "\n".join(lines)


def _fields_text(model: type[Message]) -> str:
    from bridge.schema.describe import describe, summary

    cells = [("field", "type", "required/default", "allowed values")]
    cells.extend(
        (
            row.name,
            row.type,
            "required" if row.required else _plain(row.default),
            ", ".join(_plain(value) for value in row.allowed),
        )
        for row in describe(model)
    )
    widths = [max(len(cell[column]) for cell in cells) for column in range(3)]
    table = [
        "  ".join(
            [*(text.ljust(width) for text, width in zip(line[:3], widths, strict=True)), line[3]]
        )
        for line in cells
    ]
    heading = f"{model.TAG} ({model.__name__}, bus instance {model.INSTANCE}): {summary(model)}"
    return "\n".join([heading, "", *(line.rstrip() for line in table)])


def _plain(text: str) -> str:
    return text.replace("`", "")
