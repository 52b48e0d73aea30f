"""Reading a YAML configuration file strictly: every bad key named, every problem at once.

The web config (``EXESDB_WEB_CONFIG_FILE``) and the receivers file
(``EXESDB_WEBHOOK_CONFIG_FILE``) are read the same way: the text must be a YAML mapping, a
pydantic model of ``Strict`` parts checks it, and each problem becomes one line naming the key
by its path in the file (``webhook_configs.0.http_config.basic_auth.password_file: …``) with
what is allowed there. A block's keys are also checked together (``checked_together``: at most
one of two keys, a key that needs another) even when one of them is bad alone, and such a problem
names the block and its keys. Keys of a borrowed schema that the bridge cannot honour are refused
by name with the reason (``not_supported``), unless given Go's zero value (``""``, ``false``, ``0``,
an empty list or mapping), which there means the same as leaving the key out; a null where a
mapping or list goes is likewise taken as an empty one, as Go's YAML reader takes it, while a null
where a value goes is refused as empty (Go would take false or 0: ``send_resolved:`` left empty
would turn resolved notifications off). A key given twice in one mapping is refused, naming its
path and both lines, as Go's strict reader (``yaml.UnmarshalStrict``, which Alertmanager and the
exporter-toolkit use) refuses it, where PyYAML alone would keep the last silently; merges
(``<<``) count as that reader counts them (``_repeated_keys``). Values are taken as that reader
takes them (``bridge.go_values``): the loader reads an unquoted ``y`` or ``n`` as Go does
(``GoWord``).
A value under a secret key is never shown, nor a key below one (a user's name under
``basic_auth_users``): a problem there names the entry's line instead. A value
Alertmanager's dump hides (``<secret>``) is refused where it would be used as the secret it
stands for, not under a key the bridge accepts and never reads (``unread_paths``), naming the key
that would give it from a file where the mapping holding it takes one (``_dump_mask_said``).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar, Final, TypeVar, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails

from bridge.choices import choice_refused, did_you_mean
from bridge.errors import ConfigError
from bridge.go_values import GoWord
from bridge.redaction import redact_urls
from bridge.regular_files import MAX_FILE_BYTES, read_bounded

__all__ = [
    "Strict",
    "check_yaml",
    "checked_together",
    "not_supported",
    "parse_yaml",
    "read_text",
    "read_text_and_bytes",
    "read_yaml",
]

Model = TypeVar("Model", bound=BaseModel)

# PyYAML's context for a line of a mapping it read as a key and found no ": " after.
_NO_COLON: Final = "while scanning a simple key"
# ... and for a ": " inside what it reads as a value (plain text running on from the line above).
_COLON_IN_VALUE: Final = "mapping values are not allowed here"
# ... for a [ or { that its ] or } never closes (the parser stops where it gave up looking,
# often the end of the file), and for a quote never closed: told at the line that opened it.
_UNCLOSED: Final = {
    "while parsing a flow sequence": "a [ opened on this line is not closed by its ]",
    "while parsing a flow mapping": "a { opened on this line is not closed by its }",
}
_QUOTED: Final = "while scanning a quoted scalar"
_STREAM_END: Final = "found unexpected end of stream"
# ... for a line indented as none of the lines beside it, the block it is in not yet ended; and
# that line a key at the indent of the '- ' entries above it (a list's, "a block collection").
_NOT_ENDED: Final = "expected <block end>, but found"
_KEY_FOUND: Final = "expected <block end>, but found '?'"
_LIST: Final = "while parsing a block collection"


# The most values a document may make with its aliases expanded, and the deepest it may nest.
# Anchors and aliases let a file of a kilobyte make a hundred million values (each level of ten
# aliases to the level below: a "billion laughs"), which every reader of the document walks:
# minutes on the event loop at a web config reload. Go's yaml.v2, which Prometheus and
# Alertmanager read with, refuses excessive aliasing too ("document contains excessive
# aliasing"). A file written out in full makes far fewer: 1 MiB of "a," is half a million.
MOST_VALUES: Final = 1_000_000
DEEPEST: Final = 100


class _TooDeep(Exception):
    """A document nested deeper than ``DEEPEST`` levels as written."""


class _GoLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading an unquoted ``y``/``n`` as Go's yaml.v2 does (``GoWord``),
    composing no deeper than ``DEEPEST`` levels (``_TooDeep``): its composer recurses once a
    level, and "[" a thousand times over took a second to run out of stack."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > DEEPEST:
                raise _TooDeep
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _go_bool_or_word(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool | GoWord:
    if node.value in ("y", "Y", "n", "N"):
        return GoWord(node.value)
    return loader.construct_yaml_bool(node)


_GoLoader.add_constructor("tag:yaml.org,2002:bool", _go_bool_or_word)
_GoLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN")
)


class Strict(BaseModel):
    """A part of a configuration file: unknown keys are refused, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)
    # Keys taken beside the fields, which a validator turns into fields (``bearer_token``).
    also_taken: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _null_is_empty(cls, data: Any) -> Any:
        # `basic_auth_users:` with every user commented out is a null: Go reads an empty map.
        if not isinstance(data, Mapping):
            return data
        empty = {
            info.alias or name
            for name, info in cls.model_fields.items()
            if isinstance(info.default, BaseModel | dict | tuple | list)
        }
        return {key: value for key, value in data.items() if value is not None or key not in empty}


def checked_together(
    data: Any,
    handler: Callable[[Any], Model],
    problems_of: Callable[[Mapping[str, Any]], list[str]],
) -> Model:
    """``handler(data)`` (each key on its own), and ``problems_of`` the block's keys taken
    together, for a ``mode="wrap"`` model validator: one ValidationError holds both kinds of
    problem, so a key that is bad alone does not hide a conflict between two others, as an
    ``after`` validator (which runs only when every key is good) would.

    ``problems_of`` reads the keys as the file gives them (a null is an absent key), or the
    checked model's fields when ``data`` is no mapping; each problem names the keys it is about.
    """
    try:
        model = handler(data)
    except ValidationError as exc:
        together = problems_of(data) if isinstance(data, Mapping) else []
        if not together:
            raise
        raise _with_problems(exc.title, exc.errors(), data, together) from None
    together = problems_of(data if isinstance(data, Mapping) else dict(model))
    if together:
        raise _with_problems(type(model).__name__, [], data, together)
    return model


def _with_problems(
    title: str, errors: Collection[Any], data: Any, together: list[str]
) -> ValidationError:
    """A ValidationError holding ``errors`` and one error at the block for each of ``together``."""
    added: list[InitErrorDetails] = [
        {"type": "value_error", "loc": (), "input": data, "ctx": {"error": ValueError(problem)}}
        for problem in together
    ]
    return ValidationError.from_exception_data(title, [*errors, *added])


def _is_zero(value: Any) -> bool:
    """Go's zero value of whatever type the key has there: the key is as good as absent."""
    if isinstance(value, Mapping):
        return all(_is_zero(item) for item in value.values())
    return value is None or value in ("", False, 0) or value == []


def not_supported(why: str) -> Any:
    """A key of the borrowed schema that this bridge refuses, saying why, unless its value is
    Go's zero value (``""``, ``false``, ``0``, empty), which there means the key is not used."""

    def refuse(value: Any) -> Any:
        if not _is_zero(value):
            raise ValueError(f"not supported by exesdb-bridge: {why}")
        return None

    return AfterValidator(refuse)


def read_text(path: Path) -> str:
    """The file's text (a FIFO's too: a shell's ``<(…)``), no more than ``MAX_FILE_BYTES``;
    ConfigError saying why it cannot be read (the path, which the error repeats, shown as
    ``redact_urls`` shows text: a folder may be named ``password=…``)."""
    return _read(path, pipes=True)[0]


def read_text_and_bytes(path: Path) -> tuple[str, bytes]:
    """The file's text, as ``read_text`` reads it (but no FIFO), and the bytes it was decoded
    from, in one read (a hash of the bytes is then of that very text); ConfigError as
    ``read_text``'s."""
    return _read(path, pipes=False)


def _read(path: Path, *, pipes: bool) -> tuple[str, bytes]:
    try:
        data = read_bounded(path, MAX_FILE_BYTES, pipes=pipes)
        # Decoded as Path.read_text decodes (newlines included).
        return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8").read(), data
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([redact_urls(f"{path}: cannot read: {_unreadable(exc, path)}")]) from None


def _unreadable(exc: OSError | UnicodeDecodeError, path: Path) -> str:
    """Why the file at ``path`` could not be read, in the system's few words (the path is said
    already); for a path beginning with ``~`` not found, that only a shell expands it (an env
    file, a systemd unit or a quoted value leaves it as it is), with the path meant."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
    said = exc.strerror or str(exc)
    if isinstance(exc, FileNotFoundError) and str(path).startswith("~"):
        meant = os.path.expanduser(path)  # unchanged when the home folder is unknown
        example = f", e.g. {meant}" if meant != str(path) else ""
        said += (
            "; only a shell expands ~ (not in quotes, an env file, a systemd unit or a"
            f" container's environment): give the full path{example}"
        )
    return said


def parse_yaml(
    text: str,
    path: Path,
    model: type[Model],
    *,
    secret_keys: Collection[str] = (),
    hidden_keys: Collection[str] = (),
    go_maps: Collection[str] = (),
    unread_paths: Collection[tuple[str, ...]] = (),
) -> Model:
    """``text`` checked as ``model``; ConfigError with one line per problem, each naming its key.

    No value under a key in ``secret_keys`` is ever shown; keys in ``hidden_keys`` (refused by
    ``not_supported``) are left out of the "allowed here" lists; the value of a key in
    ``go_maps`` is one Go reads into a map, where no key may come twice even by a merge; what
    lies at or below a path of ``unread_paths`` (``("global", "smtp_auth_password")``) is
    accepted and never read, so Alertmanager's dump mask there is not refused.
    """
    return check_yaml(
        read_yaml(text, path),
        text,
        path,
        model,
        secret_keys=secret_keys,
        hidden_keys=hidden_keys,
        go_maps=go_maps,
        unread_paths=unread_paths,
    )


def read_yaml(text: str, path: Path) -> Any:
    """The document ``text`` as PyYAML's safe loader builds it, booleans read as Go reads them
    (``_GoLoader``), an empty one as an empty mapping; ConfigError when it is not YAML."""
    loader = _GoLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except _TooDeep:
            raise ConfigError([_too_deep(path)]) from None
        raw = None if node is None else loader.construct_document(_bounded(node, path))
    except yaml.YAMLError as exc:
        marked = exc if isinstance(exc, yaml.MarkedYAMLError) else None
        mark = marked.problem_mark if marked is not None else None
        # Only the commonest mistakes are said: the parser's own words may quote the file.
        tab = marked is not None and "\\t" in str(marked.problem)
        why = ": a tab indents it, and YAML indents with spaces only" if tab else ""
        if marked is not None and marked.context == _NO_COLON and marked.context_mark:
            # A line of a mapping without ": " (key:value): the parser stops at the line after
            # it, so the line is the one it began reading as a key.
            mark = marked.context_mark
            why = ": a line among key: value lines has no ': ' (a colon and a space after the key)"
        elif marked is not None and marked.context in _UNCLOSED and _left_open(marked):
            mark = marked.context_mark
            why = f": {_UNCLOSED[marked.context]}"
        elif marked is not None and marked.context == _QUOTED and marked.problem == _STREAM_END:
            mark = marked.context_mark or mark
            why = ": a quote opened on this line is not closed"
        elif marked is not None and marked.problem == _COLON_IN_VALUE:
            why = (
                ": a ': ' where YAML reads a value: a value holding ': ' needs quotes, and a line"
                " above without its own ': ' runs on into this one"
            )
        elif marked is not None and marked.context == _LIST and marked.problem == _KEY_FOUND:
            why = (
                ": a key at the indent of the '- ' above it, where only another '- ' entry may"
                " begin: indent it as its entry's keys are (the first one after its '- ')"
            )
        elif marked is not None and str(marked.problem).startswith(_NOT_ENDED):
            why = (
                ": it is indented as none of the lines beside it: a key lines up with the keys"
                " beside it (an entry's with the first one after its '- '), a '- ' with the"
                " entries beside it"
            )
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError([f"{path}: not valid YAML{where}{why}"]) from None
    finally:
        loader.dispose()
    return {} if raw is None else raw


def _left_open(marked: yaml.MarkedYAMLError) -> bool:
    """Whether the [ or { that ``marked`` was parsing is one never closed: the parser ran past
    its line, or met a closing bracket of the other kind. Not a bracket closed on its line
    that holds a stray ': ' (``[x: y: z]``), which the parser refuses at that ':'."""
    opened, stopped = marked.context_mark, marked.problem_mark
    if opened is None or stopped is None:
        return False
    return stopped.line > opened.line or str(marked.problem).endswith(("got '}'", "got ']'"))


def _too_deep(path: Path) -> str:
    return f"{path}: nested more than {DEEPEST} levels deep: is it the right file?"


def _bounded(root: yaml.Node, path: Path) -> yaml.Node:
    """``root``, a composed document, when it makes at most ``MOST_VALUES`` values with its
    aliases expanded (an anchored node counted each time it is named), nests at most ``DEEPEST``
    levels deep and names no node from inside it (``&a [*a]``, which a walk of the values would
    follow for ever); ConfigError otherwise. Each node is looked at once, however often named.
    A merge (``<<: *anchor``) adds its mapping's entries at the merging mapping's own level;
    one of a mapping it is inside of is refused as such an alias is, and one of itself adds
    nothing (as PyYAML, and ``_repeated_keys``, follow each merge once)."""
    made: dict[int, int] = {}  # the values each node makes, its own included
    deepest: dict[int, int] = {}  # the levels each node makes, its own included
    inside: set[int] = set()  # the nodes whose values are being counted: a path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, counted = stack.pop()
        values, merged = _parts(node)
        if counted:
            inside.discard(id(node))
            made[id(node)] = (
                1
                + sum(made[id(value)] for value in values)
                # A merged mapping's entries, not the mapping: each merge copies them in.
                + sum(made.get(id(mapping), 1) - 1 for mapping in merged)
            )
            deepest[id(node)] = max(
                [1 + deepest[id(value)] for value in values]
                + [deepest.get(id(mapping), 1) for mapping in merged]
                + [1]
            )
            if made[id(node)] > MOST_VALUES:
                raise ConfigError(
                    [
                        f"{path}: its anchors and aliases make more than {MOST_VALUES} values:"
                        " is it the right file? (Prometheus and Alertmanager refuse such"
                        " excessive aliasing too)"
                    ]
                )
            if deepest[id(node)] > DEEPEST:
                raise ConfigError([_too_deep(path)])
            continue
        if id(node) in made:
            continue
        # A merge of a mapping around this one makes a value holding itself, as &a [*a] does
        # (&a {c: {<<: *a}} gives {'c': {'c': ...}}); a mapping merging itself adds nothing.
        if id(node) in inside or any(
            id(mapping) in inside and mapping is not node for mapping in merged
        ):
            raise ConfigError([f"{path}: an alias names a node it is inside of (&a [*a])"])
        inside.add(id(node))
        stack.append((node, True))
        stack.extend((value, False) for value in values if id(value) not in made)
        stack.extend(
            (mapping, False)
            for mapping in merged
            if id(mapping) not in made and id(mapping) not in inside
        )
    return root


def _parts(node: yaml.Node) -> tuple[list[yaml.Node], list[yaml.Node]]:
    """The nodes ``node`` holds (a mapping's keys and values, a sequence's items), and the
    mappings it merges (``<<: *anchor`` or ``<<: [*a, *b]``)."""
    if isinstance(node, yaml.SequenceNode):
        return list(node.value), []
    if not isinstance(node, yaml.MappingNode):
        return [], []
    values: list[yaml.Node] = []
    merged: list[yaml.Node] = []
    for key, value in node.value:
        if key.tag != _MERGE_TAG:
            values += [key, value]
        elif isinstance(value, yaml.SequenceNode):
            merged += value.value
        else:
            merged.append(value)
    return values, merged


def check_yaml(
    raw: Any,
    text: str,
    path: Path,
    model: type[Model],
    *,
    secret_keys: Collection[str] = (),
    hidden_keys: Collection[str] = (),
    go_maps: Collection[str] = (),
    unread_paths: Collection[tuple[str, ...]] = (),
) -> Model:
    """``raw`` (``read_yaml`` of ``text``) checked as ``model``, as ``parse_yaml`` checks it: for a
    caller that reads more than the model from the document, without reading it again."""
    secret, hidden = frozenset(secret_keys), frozenset(hidden_keys)
    if not isinstance(raw, Mapping):
        # Said with the keys meant: a receivers file of bare '- url: …' lines is one list.
        found = "a list" if isinstance(raw, list) else "a single value"
        allowed = ", ".join(_allowed_keys(model, [], hidden))
        raise ConfigError(
            [
                f"{path}: the top level must be a mapping of keys ('key:' lines at the start),"
                f" not {found}; allowed here: {allowed}"
            ]
        )
    # Composed again, not taken from the load: constructing flattens merges into the nodes.
    root = yaml.compose(text, Loader=_GoLoader)
    repeated = [
        f"{path}: {problem}" for problem in _repeated_keys(root, secret, frozenset(go_maps))
    ]
    # A mask under a key never read stands for nothing that would be sent.
    masked = [
        loc
        for loc in _dumped_secrets(raw, [])
        if not any(tuple(loc[: len(unread)]) == unread for unread in unread_paths)
    ]
    dumped = [
        f"{path}: {_shown_key(loc, secret, root)}: {_dump_mask_said(model, loc)}" for loc in masked
    ]
    try:
        parsed = model.model_validate(raw)
    except ValidationError as exc:
        problems = (
            f"{path}: {_describe(error, model, secret, hidden, root)}"
            for error in exc.errors()
            # A dumped secret refused as what it stands for (not a URL) is said once, as dumped.
            if [str(part) for part in error["loc"]] not in masked
        )
        # Keys not shown make the same line twice: once is enough.
        raise ConfigError(list(dict.fromkeys([*repeated, *dumped, *problems]))) from None
    if repeated or dumped:
        raise ConfigError([*repeated, *dumped])
    return parsed


# Alertmanager's configuration dump (`amtool config show`, /api/v2/status) prints every secret
# (a URL, a password, a header's secret) as this; taken as written it would be sent as the secret.
_DUMP_MASK: Final = "<secret>"
# A secret key's file key where it is not the key with ``_file`` after it.
_FILE_KEY_OF: Final = {"secrets": "files"}


def _dump_mask_said(model: type[BaseModel], loc: list[str]) -> str:
    """Why the dump mask at ``loc`` is refused, and what to give: the real value, or the key
    beside it that names a file holding it, when the mapping there takes one (``url_file``
    beside a receiver's ``url``, ``client_secret_file`` beside oauth2's ``client_secret``)."""
    said = "`<secret>` is how Alertmanager's dump hides a secret: give the real value"
    found = _holder(model, loc)
    if found is None:
        return said
    holder, key = found
    taken = {info.alias or name for name, info in holder.model_fields.items()}
    if issubclass(holder, Strict):
        taken |= holder.also_taken
    file_key = _FILE_KEY_OF.get(key, f"{key}_file")
    return f"{said} (or use {file_key})" if file_key in taken else said


def _holder(model: type[BaseModel], loc: list[str]) -> tuple[type[BaseModel], str] | None:
    """The model of the mapping in which the value at ``loc`` sits and its key there (a list's
    items are their list's: a header's ``secrets``), or None when ``loc`` leaves the models."""
    current: type[BaseModel] = model
    keyed = False  # whether the next part is a mapping's own key (a header's name)
    found: tuple[type[BaseModel], str] | None = None
    for index, part in enumerate(loc):
        if keyed or (part.isdigit() and found is not None):
            keyed = False
            continue  # a header's name, or an item of the list just named
        by_name = {info.alias or name: info for name, info in current.model_fields.items()}
        field = by_name.get(part)
        if field is None:
            taken = issubclass(current, Strict) and part in current.also_taken
            return (current, part) if taken and index == len(loc) - 1 else None
        found = (current, part)
        nested = _nested_model(field.annotation)
        if nested is None:  # a value, or a list of them: nothing below it is a key
            return found if all(rest.isdigit() for rest in loc[index + 1 :]) else None
        keyed = _is_mapping(field.annotation)
        current = nested
    return found


def _is_mapping(annotation: Any) -> bool:
    """Whether ``annotation`` is a ``dict[...]``, alone or in a union."""
    return any(
        getattr(candidate, "__origin__", None) is dict
        for candidate in (annotation, *get_args(annotation))
    )


def _dumped_secrets(node: Any, loc: list[str]) -> list[list[str]]:
    """The path of every value in ``node`` that is Alertmanager's dump mask, ``<secret>``."""
    if isinstance(node, str):
        return [loc] if node.strip() == _DUMP_MASK else []
    if isinstance(node, Mapping):
        items: Any = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return []
    return [found for key, value in items for found in _dumped_secrets(value, [*loc, str(key)])]


_MERGE_TAG: Final = "tag:yaml.org,2002:merge"


def _repeated_keys(
    root: yaml.Node | None, secret: frozenset[str], maps: frozenset[str]
) -> list[str]:
    """A line for each key given twice in one mapping of the YAML document ``root``, as Go's
    strict reader (yaml.v2's ``UnmarshalStrict``) refuses it: its path and both lines. A key
    under one in ``secret`` (user names under ``basic_auth_users``) is not shown, nor one that
    looks like no key.

    Merges (``<<: *anchor``) count as Go counts them. In a mapping Go reads into a map (the value
    of a key in ``maps``, such as ``basic_auth_users``), a key comes once however it comes:
    written, or brought by a merge ("already set in map"). Elsewhere (Go's structs) a key written
    after a merge that brings it overrides it, as YAML allows, and of two merges the first wins,
    in both readers; but a key written before a merge that brings it again is refused, since Go
    then takes the merge's value where PyYAML keeps the written one.
    """
    found: list[tuple[int, str]] = []
    # An anchor's node is looked at once for each way it is read, however many aliases name it.
    seen: set[tuple[int, bool, bool]] = set()
    pending: list[tuple[yaml.Node, tuple[str, ...], bool, bool]] = (
        [(root, (), False, False)] if root is not None else []
    )
    while pending:
        node, loc, is_map, via_merge = pending.pop()
        if (id(node), is_map, via_merge) in seen:
            continue
        seen.add((id(node), is_map, via_merge))
        if isinstance(node, yaml.SequenceNode):
            pending += [(item, (*loc, str(i)), False, False) for i, item in enumerate(node.value)]
        if not isinstance(node, yaml.MappingNode):
            continue
        # Each key as first given: written, or (in a map) brought by a merge. Go reads a key as
        # its text (``y`` and ``"y"`` are one user), where PyYAML would make two of them or
        # keep one silently.
        firsts: dict[str, tuple[yaml.Node, bool]] = {}
        for key, value in node.value:
            merge = key.tag == _MERGE_TAG
            if merge:
                pending.append((value, loc, is_map, True))  # its mapping is checked as ours
                # A map merged into another is counted there; a struct's merge matters only
                # after a written key.
                if (is_map and via_merge) or not (is_map or firsts):
                    continue
                brought = _merged_keys(value)
            elif isinstance(key, yaml.ScalarNode):
                pending.append((value, (*loc, key.value), key.value in maps, False))
                brought = [key]
            else:
                continue
            for each in brought:
                first, first_merged = firsts.get(each.value, (None, False))
                if first is None:
                    if is_map or not merge:
                        firsts[each.value] = (each, merge)
                elif first is not each:
                    how = "map" if merge or first_merged else ""
                    if how and not is_map:
                        how = "written, then merged"
                    found.append(_twice(first, each, loc, secret, how))
    # A mapping merged into a map is checked with it and on its own: the same line once.
    return list(dict.fromkeys(problem for _, problem in sorted(found)))


def _merged_keys(value: yaml.Node) -> list[yaml.ScalarNode]:
    """The keys a merge brings: those of the mapping (or the mappings of the list) its value
    names, with the keys of their own merges, each mapping once."""
    keys: list[yaml.ScalarNode] = []
    seen: set[int] = set()
    waiting = [value]
    while waiting:
        node = waiting.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            waiting += reversed(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, item in node.value:
                if key.tag == _MERGE_TAG:
                    waiting.append(item)
                elif isinstance(key, yaml.ScalarNode):
                    keys.append(key)
    return keys


def _twice(
    first: yaml.Node, again: yaml.Node, loc: tuple[str, ...], secret: frozenset[str], how: str
) -> tuple[int, str]:
    """(line, problem) of the key ``first`` given ``again`` in the mapping at ``loc``; ``how``
    is "" (written twice), "map" (a merge counted, in a Go map) or "written, then merged"."""
    earlier, line = sorted((first.start_mark.line + 1, again.start_mark.line + 1))
    lines = f"line {line}" if earlier == line else f"lines {earlier} and {line}"
    merged = ", a merge (<<) counted" if how == "map" else ""
    if secret & set(loc) or not _KEY_NAME.fullmatch(again.value):
        where = ".".join(loc) or "(top level)"
        return line, (
            f"{where}: a key given twice ({lines}{merged}; not shown, as it may be a user's name "
            "or a secret); keep one"
        )
    key = ".".join((*loc, again.value))
    if how == "written, then merged":
        return line, (
            f"{key}: given at line {first.start_mark.line + 1} and again by a merge (<<) after "
            f"it, at line {again.start_mark.line + 1}: Go's YAML reader takes the merge's value "
            "and PyYAML the one written; give it once, or after the merge"
        )
    return line, (
        f"{key}: given twice ({lines}{merged}); keep one, as Go's YAML reader (and so "
        "Alertmanager and the exporter-toolkit) asks"
    )


# An unknown key shown in an error looks like one: anything else (a line of /etc/shadow, of a
# key file) may be a secret of a file named by mistake.
_KEY_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _shown_key(loc: list[str], secret: frozenset[str], root: yaml.Node | None) -> str:
    """The path of ``loc`` as a problem names it: what lies below a key in ``secret`` (a user's
    name under ``basic_auth_users``) is not shown, the line of its entry said instead."""
    cut = next((index + 1 for index, part in enumerate(loc) if part in secret), len(loc))
    if cut == len(loc):
        return ".".join(loc) or "(top level)"
    try:
        below, entry = _located(root, loc[:cut]), _located(root, loc[: cut + 1])
    except Exception:  # an odd document (a key no safe loader builds): the problem without a line
        below = entry = None
    line = entry[1] if entry is not None else None
    at = f"line {line}, " if line is not None else ""
    # Pydantic's marker of a mapping's key: the fault is the (unshown) key, not its value.
    fault = ", at fault," if loc[-1] == _KEY_MARKER else ""
    # Below a list (a header's secrets), what is hidden is an item, not a key.
    hidden = "entry" if below is not None and isinstance(below[0], yaml.SequenceNode) else "key"
    return f"{'.'.join(loc[:cut])} ({at}its {hidden}{fault} not shown)"


_KEY_MARKER: Final = "[key]"


def _located(node: yaml.Node | None, loc: list[str]) -> tuple[yaml.Node, int | None] | None:
    """The node at path ``loc`` of the document ``node`` and the line where its entry starts (its
    key's line in a mapping), or None when the path is not in it."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = _entry(node, part)
            if found is None:
                return None
            key, node = found
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            return None
    return (node, line) if node is not None else None


def _entry(node: yaml.MappingNode, part: str) -> tuple[yaml.Node, yaml.Node] | None:
    """The entry of the mapping ``node`` whose key is ``part`` in a problem's path (``0x1F`` is 31),
    as PyYAML takes it: the last of its own, else the first a merge (``<<: *anchor``) brings."""
    # Merges followed depth first, in order, each mapping once: a merge may name its own anchor.
    waiting: list[yaml.Node] = [node]
    seen: set[int] = set()
    while waiting:
        mapping = waiting.pop()
        if not isinstance(mapping, yaml.MappingNode) or id(mapping) in seen:
            continue
        seen.add(id(mapping))
        own = [
            (key, value)
            for key, value in mapping.value
            if key.tag != _MERGE_TAG and _key_part(key) == part
        ]
        if own:
            return own[-1]  # PyYAML keeps the last of a repeated key
        merged = [
            brought
            for key, value in mapping.value
            if key.tag == _MERGE_TAG
            for brought in (value.value if isinstance(value, yaml.SequenceNode) else [value])
        ]
        waiting.extend(reversed(merged))
    return None


def _key_part(key: yaml.Node) -> str:
    """The key ``key`` as a problem's path has it: as PyYAML loaded it, a boolean as pydantic
    puts it in the path (1 for ``yes``)."""
    # A constructor of its own: one keeps every node it has built.
    loaded = _GoLoader("").construct_object(key, deep=True)
    return str(int(loaded) if isinstance(loaded, bool) else loaded)


def _describe(
    error: Any,
    model: type[BaseModel],
    secret: frozenset[str],
    hidden: frozenset[str],
    root: yaml.Node | None,
) -> str:
    loc = [str(part) for part in error["loc"]]
    key = _shown_key(loc, secret, root)
    if error["type"] == "extra_forbidden":
        keys = _allowed_keys(model, loc[:-1], hidden)
        allowed = "allowed here: " + ", ".join(keys)
        if not _KEY_NAME.fullmatch(loc[-1]):  # another kind of file: its lines are not shown
            where = ".".join(loc[:-1]) or "(top level)"
            return f"{where}: a key that is no name (not shown: is this the file meant?); {allowed}"
        # A misspelling (send_resolve, SEND_RESOLVED) is the usual unknown key: name the one
        # meant first, quoted as a word meant for a value is.
        meant = did_you_mean(loc[-1], keys)
        return f"{key}: unknown key; {meant + ' ' if meant else ''}{allowed}"
    given = error.get("input")
    if given is None and error["type"] != "missing":
        # `send_resolved:` left empty (a template's unset value): Go would take its zero value.
        return (
            f"{key}: empty (null); give a value, or delete the line for the default (Go's YAML "
            "reader would silently take false, 0 or an empty string)"
        )
    if error["type"] == "string_type" and isinstance(given, bool | int | float):
        # Go's reader takes the unquoted text as it is written; PyYAML has already made it a
        # number (0123 is 83) or a boolean (yes), whose text cannot be recovered.
        what = "key" if loc[-1] == _KEY_MARKER else "value"
        return (
            f"{key}: must be text, and YAML reads this unquoted {what} as a "
            f"{'boolean' if isinstance(given, bool) else 'number'}: put it in quotes"
        )
    message = str(error["msg"]).removeprefix("Value error, ")
    # Pydantic's words for Python types, in the file's words.
    message = re.sub(r"a valid dictionary or instance of \w+", "a mapping of keys", message)
    message = message.replace("a valid tuple", "a list").replace("a valid dictionary", "a mapping")
    # In the words of every other refusal (and of the environment's): what it must be.
    message = re.sub(r"^Input should be ", "must be ", message)
    if error["type"] in ("list_type", "tuple_type") and isinstance(given, dict):
        message += ": each entry on a line starting with '- '"
    # A receiver written as its URL alone (`- http://…`, `alertmanager: http://…`): the keys
    # meant, url among them, say how to write it; the value is not shown if one of them is a
    # secret, which it likely is (a webhook's URL may be its key).
    keys = _allowed_keys(model, loc, hidden) if error["type"] == "model_type" else []
    shows_secret = any(part in secret for part in (*loc, *keys))
    # The word meant, as the settings answer EXESDB_WEBHOOK_MIN_SEVERITY=eror; the file takes
    # only the exact word (as Go does) where the settings take warn and WARNING: it names it.
    if error["type"] == "literal_error":
        message = choice_refused(given, str(error["ctx"]["expected"]), hint=not shows_secret)
    if not shows_secret and isinstance(given, str | int | float) and error["type"] != "value_error":
        message += f" (got {given!r})"
    if keys and not isinstance(given, Mapping):
        message += f"; allowed keys here: {', '.join(keys)}"
    return f"{key}: {message}"


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, directly, in a union, or as the items of a list or tuple."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        for item in get_args(candidate):
            if isinstance(item, type) and issubclass(item, BaseModel):
                return item
    return None


def _allowed_keys(model: type[BaseModel], loc: list[str], hidden: frozenset[str]) -> list[str]:
    """The keys a mapping at ``loc`` may hold, by their names in the file."""
    current: type[BaseModel] = model
    for part in loc:
        if part.isdigit():  # an item of a list: the list's field already named its model
            continue
        by_name = {info.alias or name: info for name, info in current.model_fields.items()}
        field = by_name.get(part)
        nested = _nested_model(field.annotation) if field is not None else None
        if nested is None:
            return []
        current = nested
    return [info.alias or name for name, info in current.model_fields.items() if name not in hidden]
