"""What each message type holds, described for people and tools.

``describe`` gives a type's fields as rows, ``wire_schema`` its payload's JSON Schema,
``render_markdown`` the page ``docs/messages.md`` (``make docs`` writes it), and
``add_schema_command`` the ``exesdb-bridge schema`` subcommand. The command line adds the
subcommand to every parser, so the rest, which builds every message model, is imported when
first asked for (``bridge.exports``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.exports import lazy_exports
from bridge.schema.command import add_schema_command

if TYPE_CHECKING:
    from bridge.schema.describe import (
        DERIVED_DEFAULTS,
        RULES,
        FieldDoc,
        closest_tag,
        describe,
        model_named,
        tags_by_instance,
        unknown_tag_message,
        wire_schema,
    )
    from bridge.schema.markdown import ENVELOPE_FIELDS, render_markdown

__all__ = [
    "DERIVED_DEFAULTS",
    "ENVELOPE_FIELDS",
    "RULES",
    "FieldDoc",
    "add_schema_command",
    "closest_tag",
    "describe",
    "model_named",
    "render_markdown",
    "tags_by_instance",
    "unknown_tag_message",
    "wire_schema",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "describe": (
            "DERIVED_DEFAULTS",
            "RULES",
            "FieldDoc",
            "closest_tag",
            "describe",
            "model_named",
            "tags_by_instance",
            "unknown_tag_message",
            "wire_schema",
        ),
        "markdown": ("ENVELOPE_FIELDS", "render_markdown"),
    },
)
