"""``docs/messages.md``: the envelope and every message type's fields, rendered as Markdown."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

from bridge.bus.envelope import (
    ID_MAX_LENGTH,
    ID_MIN_LENGTH,
    NODE_MAX_LENGTH,
    TOPIC_MAX_LENGTH,
    TS_MAX_LENGTH,
)
from bridge.messages import (
    INSTANCES,
    MAX_NAME,
    NAME_REFUSES,
    NODE_REFUSES,
    Message,
)
from bridge.schema.describe import (
    RULES,
    STRING_CAP,
    FieldDoc,
    describe,
    summary,
    tags_by_instance,
)

__all__ = ["ENVELOPE_FIELDS", "render_markdown"]

ENVELOPE_FIELDS: Final[tuple[FieldDoc, ...]] = (
    FieldDoc("v", "integer", True, "", ("1",)),
    FieldDoc(
        "id",
        f"string of {ID_MIN_LENGTH}-{ID_MAX_LENGTH} characters from `A-Z a-z 0-9 _ -`",
        True,
        "",
        (),
    ),
    FieldDoc("instance", "string", True, "", tuple(INSTANCES)),
    FieldDoc(
        "topic",
        f"string of 1-{TOPIC_MAX_LENGTH} characters from `A-Z a-z 0-9 _ . : -`",
        True,
        "",
        (),
    ),
    FieldDoc("tag", "string", True, "", ("a tag of `instance` (below)",)),
    FieldDoc(
        "node",
        f"string (1-{NODE_MAX_LENGTH} characters, not blank, no control, format or invisible"
        " characters)",
        True,
        "",
        (),
    ),
    FieldDoc(
        "ts",
        f"timestamp (RFC 3339) with its UTC offset, at most {TS_MAX_LENGTH} characters",
        True,
        "",
        (),
    ),
    FieldDoc("payload", "object", True, "", ("the fields of `tag` (below)",)),
)
"""The envelope's fields, as the decoder in ``bridge.bus.decoding`` checks them."""

_HEAD: Final = """\
# Messages

<!-- Generated from the models in bridge/messages by `make docs`; do not edit by hand.
     tests/schema/test_markdown.py fails when this page no longer matches the code. -->

Every message travels in an **envelope** naming its bus instance, topic, type (`tag`) and
publishing node; its **payload** holds the fields of its type. The {tags} types are grouped below by
the nine bus instances. In a terminal, `exesdb-bridge schema TAG` prints the same table for one
type and `exesdb-bridge schema TAG --json` its JSON Schema; `exesdb-bridge schema` lists the tags
(see [CLI](cli.md)). How a message is signed and sent: [HTTP API](http-api.md#ingest).

## Envelope

{envelope}

- No other field is accepted; a missing or unknown one is refused as `malformed`, naming it.
- A key given twice in any object, envelope or payload, is refused as `malformed`, naming it
  (`id`, `payload.checks.disk`).
- Objects and arrays nest at most 64 levels deep, the envelope being the first level and its
  payload the second: deeper is refused as `malformed`, naming the first past the limit.
- No string or key holds an escaped lone surrogate (`\\ud800` unpaired: valid JSON, but no
  text): refused as `malformed`, naming where.
- Every number is finite: `NaN`, `Infinity` and `-Infinity` (which are not JSON), a number past
  a float's range (`1e400`) and a whole number of more than 4,300 digits are refused as
  `malformed` wherever they are, naming where (`payload.value`, `payload.checks.disk.0`).
- `id` must be new: an id already accepted within `EXESDB_REPLAY_WINDOW_MS` is refused
  (`replayed`). A `ts` further than that from the receiver's clock is refused (`expired`);
  on the Redis bus the work queue judges it against when Redis took the entry, so an alert
  that waited there for a replica is not lost ([Running on Redis](redis.md)).
- An unknown `instance` is refused as `unknown_instance`, a `tag` that is not one of the
  instance's as `unknown_tag`, a payload that does not fit its type as `invalid_payload`, with
  `field` naming the culprit (`payload.severity`). See
  [configuration](configuration.md) for the replay settings.

## Payloads

- **required** fields must be in the payload; any other field takes the default shown when it is
  left out. A default computed from other fields or from the envelope (such as "the envelope's
  `node`") is also taken when the field is `null`.
- A field the type does not list is refused.
- Every string is at most {cap} characters; "1-4096 characters" is a tighter limit of that field.
- A string that becomes a Prometheus label value (`component`, `operation`, `metric_name`, ...:
  "no control, format or invisible characters") may not hold a C0 control character (NUL
  included), DEL or a C1 control character, nor any character a node name may not hold (below):
  `disk` and `disk` with a U+200B after it would be two series that look the same on
  `/metrics` and the dashboards. Unlike a node name it may be blank (`" "`), or blank at an
  end, and it holds no joiner (U+200C, U+200D) anywhere: it names a part of a program
  (`component`, `unit`), which no word of a script that needs one names. The JSON
  Schema's `pattern` names those of the BMP alone, as a node name's does. A SystemAlert's
  `alert_id`, a label of its webhooks and of Alertmanager's alerts, refuses the same.
- A node name (the envelope's `node`, a payload's `node`, `originating_node` and the nodes a
  list names: "not blank at either end, no control, format or invisible characters") becomes
  a label value on `/metrics`, a cluster member on the status page and an alert's node, each
  found by reading it, so every character of it must show. It may not be blank at its start
  or end (whitespace: spaces, other Unicode whitespace, the braille blank U+2800;
  `" node-1"` would be another node than `node-1`, looking the same, and `" "` a series, a
  cluster member and alerts for no one seen) nor hold a control character, {node_refuses}:
  `node-1` and `node-1` with a U+200B, a U+3164 or a tag character after it would look the
  same on the status page, in alerts and in `/metrics`, and a bidirectional control reorders
  the text shown after it.
  By Unicode 15.1's properties: its general categories Cc, Cf, Zl, Zp and Co, its
  Default_Ignorable_Code_Point and Noncharacter_Code_Point characters. Unassigned code points
  are taken (which are changes with each version of Unicode, and each is drawn as a box), and
  so is a lone combining mark (U+0301, drawn on a dotted circle). What a host name holds in
  Unicode (IDNA2008: letters, marks and digits of any script, `-`) is taken, `ex_esdb@host-1`,
  `ex_esdb@узел-1` and `ノード-1` alike. So are the joiners U+200C (ZWNJ) and U+200D (ZWJ),
  format characters, where IDNA2008 takes them in a host name (RFC 5892 Appendix A, its
  CONTEXTJ rules): right after a virama (Devanagari's U+0915 U+094D U+200D U+0937, a half
  form), or a ZWNJ between two letters that join, marks between them skipped (Persian's
  U+06CC U+200C U+062E); and between two characters that show, never at either end. Anywhere
  else (`ab` and `cd` with one between) a joiner changes nothing drawn, and is refused. A
  virama is a character of Canonical_Combining_Class 9 (Python's unicodedata); which letters
  join which, Unicode 18.0's joining types say (the idna package's table). An emoji of one
  code point (🚀), a flag (🇩🇪) or one with a skin tone (👍🏽) is taken; one needing the
  variation selector U+FE0F (the red heart, U+2764 U+FE0F) or the joiner U+200D (a family, a
  rainbow flag) is not: either after `node-1` is drawn as nothing.
  Blanks between other characters are kept (`"node 1"`). The envelope's is refused as
  `malformed`, a payload's as `invalid_payload`, each naming the field; `EXESDB_NODE` refuses
  the same. The JSON Schema's `pattern` names the characters of the BMP (no pattern every
  engine reads can name those past U+FFFF), and takes a joiner between any two characters that
  show (no pattern says RFC 5892's rule). Other text (titles, descriptions) may hold them:
  the status and alert pages show zero-width characters, bidirectional controls and the others
  no one's text needs (Hangul fillers such as U+3164, tags, noncharacters, a run of variation
  selectors) as their escapes (`\\u200b`), an emoji's own joiner, U+FE0F and flag tags kept, and
  a word's joiners where a node name takes them.
- A name shown as who did something (`ack_by`: "not blank, no control characters, line
  separators or bidirectional controls") may not be blank, spaces or other Unicode whitespace
  only (U+00A0 and U+3000 too) or characters drawn as nothing (U+200B, U+2060, U+FEFF, U+3164,
  U+E0001, U+1D173: Unicode's default ignorable ones, and the braille blank U+2800) or
  combining marks with no letter to sit on (U+0301 alone), which would show as no one (the
  JSON Schema's `pattern` refuses these but those past U+FFFF and the marks, which no pattern
  every engine reads can name); nor hold a control
  character, nor {name_refuses},
  which would break its line or reorder the text shown after it on the alert page, in its history
  and in logs; nor more than {max_name} characters: the [admin API](http-api.md#alerts)'s
  `ack_by` refuses the same.
- A number field given as text is taken when the text is a JSON number (RFC 8259 section 6:
  `"1.5"`, `"-2"`, `"1e3"`), read as that number would be: in an integer field `"10"` is 10,
  `"1e1"` and `"10.0"` are 10 as 1e1 and 10.0 are, and `"10.5"` is refused as 10.5 is, in the
  same words. Any other text is `invalid_payload`, naming the field (`payload.value`), though
  some parsers read it (and others read it otherwise): spaces (`" 10 "`), a plus sign
  (`"+10"`), leading zeros (`"010"`), digit separators (`"1_000"`), a bare point (`".5"`,
  `"5."`), `"NaN"` and `"inf"`. So is text that reads as an infinity (`"1e400"`), and `true` or
  `false`. The one infinity a payload can hold is a `rate_per_sec` derived from a
  `duration_ms` too small for a finite rate.
- A boolean field takes `true` or `false` alone: text (`"true"`, `"yes"`, `"0"`) or a number
  (`1`, `0`) is `invalid_payload`, naming the field (`payload.enabled`).
- An integer field takes a whole number in any JSON spelling: `10`, `10.0` and `1e1` are 10, as
  JSON Schema's `integer` counts them and as a sender's JSON library may write a whole float. A
  fractional part is `invalid_payload`, naming the field (`payload.count: Input should be a
  valid integer, got a number with a fractional part`). A whole number written with a fraction
  or an exponent is read as a float is: past 2^53 it becomes the nearest float's value
  (`9007199254740993.0` is 9007199254740992, `9007199254740993` exact). At most
  9223372036854775807 (2^63 - 1, what a signed 64-bit integer holds): a larger one is
  `invalid_payload`, naming the field (`payload.healthy_nodes`), rather than taken and then
  failing the sinks that carry it (no float holds one of 309 digits).
- Timestamps are RFC 3339 date-times with seconds (`2026-11-28T00:00:00Z`, a fraction
  optional); one without a UTC offset is taken as UTC. A Unix time (`0`, `"1764288000"`), a
  bare date or a time without seconds is `invalid_payload`, naming the field. They are kept to
  the millisecond and sent on as `2026-11-28T00:00:00.123Z`.
- Every type has `timestamp`: when it happened, by default when the message was built.

| bus instance | message types (tags) |
|---|---|
{index}
"""


# What the sinks make of a message type, by tag, where its fields do not say (most of these the
# alerts, docs/alerts.md): written after the type's table.
_BECOMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "system_alert": (
            "Becomes an alert ([Alerts](alerts.md#webhook-payload)): the envelope's `topic` is its"
            " `alertname`; `alert_id`, `severity`, `category` and `node` are labels, `title` and"
            " `description` annotations. `source` becomes the alert's `source` **label**, what a"
            " receiver routes, silences and inhibits on. Each `metadata` entry becomes an"
            " **annotation** `metadata_<key>`, the key reduced to `A-Z a-z 0-9 _` and the value"
            " text (anything but a string as JSON), at most 16 entries, the rest counted in a"
            " `metadata` annotation; a key naming a secret (`api_token`, `password`, `session_id`,"
            " not `token_count`) or spelt in another script has its value shown as"
            " `<redacted>`, and credentials in any value (URL passwords, `Bearer` tokens,"
            " `password=…`) are redacted, a URL shown as its origin unless it is a link on an"
            " origin of `EXESDB_ALERT_LINK_ORIGINS` ([Which component raised an"
            " alert](alerts.md#which-component-raised-an-alert)). The alert page shows both."
        ),
        "alert_acknowledged": (
            "Acknowledges the alert `alert_id` ([Alerts](alerts.md#states-and-escalation)), a"
            " `resolution` resolving it too. `alert_starts_at`, the alert's `starts_at` as"
            " `GET /v1/alerts` lists it, names the episode acknowledged: an AlertAck that arrives"
            " once that episode ended (the alert resolved and fired again) changes nothing. Left"
            " out (null), the ack is for the episode firing when it arrives. The bridge's own"
            " AlertAcks name the episode where its maker or the bridge knows it; a bridge of a"
            " version before the field refuses an AlertAck that carries it (its models forbid"
            " unknown fields), so during a rolling upgrade on Redis acknowledge on an upgraded"
            " work-queue holder."
        ),
        "metric_alert": (
            "Becomes a `metric_threshold` alert ([Alerts](alerts.md)), one per `node` and"
            " `metric_name`."
        ),
        "security_alert": (
            "Becomes an alert named by its `alert_type` ([Alerts](alerts.md)), the severities"
            " mapped low→info, medium→warning, high→error, critical→critical."
        ),
        "access_violation": (
            "Becomes an alert named by its `violation_type` ([Alerts](alerts.md)), the severities"
            " mapped as a SecurityAlert's; its `node` label is the envelope's `node` (the node"
            " that saw it), or `metadata.node` when that could be any message's `node` (1 to"
            " 4 096 characters, no control character), for a sender reporting for another node"
            " (the `--demo` cluster's simulated nodes)."
        ),
        "health_check_completed": (
            "Counted in `exesdb_health_checks_total` by `result`, `exesdb_health_check_success`"
            " 1 only on `pass` ([Metrics](metrics.md)); a span, ERROR unless `pass`"
            " ([OpenTelemetry](opentelemetry.md)). The bridge's own check, `host_resources`,"
            " fails exactly when the NodeHealth of the same collection is unhealthy (a resource"
            " at its `EXESDB_*_UNHEALTHY` threshold, with no `EXESDB_ALERT_FOR_MS` hold: `error`"
            " names it, `details` holds each resource's status) or unknown (the reading failed,"
            " `error` says why); a degraded node's passes."
        ),
    }
)


def render_markdown() -> str:
    """The whole of ``docs/messages.md``."""
    grouped = tags_by_instance()
    index = "\n".join(
        f"| [`{instance}`](#{instance}) | "
        + ", ".join(f"[`{model.TAG}`](#{model.TAG})" for model in models)
        + " |"
        for instance, models in grouped.items()
    )
    parts = [
        _HEAD.format(
            envelope=_table(ENVELOPE_FIELDS),
            tags=sum(len(models) for models in grouped.values()),
            cap=f"{STRING_CAP:,}",
            index=index,
            name_refuses=NAME_REFUSES,
            node_refuses=NODE_REFUSES,
            max_name=MAX_NAME,
        ),
    ]
    for instance, models in grouped.items():
        parts.append(f"## {instance}\n\n{_instance_summary(models[0])}\n")
        parts.extend(_section(model) for model in models)
    return "\n".join(parts).rstrip("\n") + "\n"


def _instance_summary(model: type[Message]) -> str:
    # Each instance's module opens with "``<instance>``: what its messages are about."
    doc = (sys.modules[model.__module__].__doc__ or "").strip().splitlines()[0]
    text = doc.partition(": ")[2] or doc
    return text[:1].upper() + text[1:]


def _section(model: type[Message]) -> str:
    rule = RULES.get(model.TAG)
    lines = [
        f"### {model.TAG}\n",
        f"`{model.__name__}`: {summary(model)}.\n",
        _table(describe(model)),
        "",
    ]
    if rule is not None:
        lines.extend([rule, ""])
    if (becomes := _BECOMES.get(model.TAG)) is not None:
        lines.extend([becomes, ""])
    return "\n".join(lines)


def _table(rows: Iterable[FieldDoc]) -> str:
    lines = ["| field | type | required / default | allowed values |", "|---|---|---|---|"]
    for row in rows:
        default = "required" if row.required else row.default
        allowed = ", ".join(_code(value) for value in row.allowed)
        lines.append(f"| `{row.name}` | {row.type} | {default} | {allowed} |")
    return "\n".join(lines)


def _code(value: str) -> str:
    # Descriptions of values (with their own backquotes or spaces) stay prose.
    return value if " " in value else f"`{value}`"
