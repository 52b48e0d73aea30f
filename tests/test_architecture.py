"""The structure stays as designed: imports point one way and nobody guesses what a transport is.

Read from the source with ``ast`` (every import counts, ``TYPE_CHECKING`` ones too), so the
checks hold for code that is never run in a test. Nothing in the package is there only for the
tests, and the tests keep their own rules (a docstring each, no unexplained fixed sleep).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Final

import pytest

from bridge import integration
from bridge.bus import WORK_QUEUE_INSTANCES
from bridge.messages import INSTANCES
from tests.support import ROOT

# One worker runs these checks under make test's --dist loadgroup: each worker running any of
# them parses the whole project first (some 4 s of CPU on a quiet 2-core host, 9 s on a busy one).
GROUP: Final = "architecture"
pytestmark = pytest.mark.xdist_group(GROUP)

PACKAGES = ("bridge", "collectors")
# The edge: where the process, HTTP and wiring live. Only the edge may import the edge.
# The command line, and the pages for people served by bridge.http.
EDGE_PACKAGES = ("bridge.cli", "bridge.pages")
EDGE = frozenset(
    {"bridge.app", "bridge.http", "bridge.__main__"}
    | {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for package in EDGE_PACKAGES
        for path in (ROOT / package.replace(".", "/")).rglob("*.py")
    }
)
# Imports each lower layer must never make (a module may import its own layer and below).
FORBIDDEN = {
    "bridge.bus": ("bridge.sinks", "collectors", "bridge.cluster", "bridge.component"),
    "bridge.messages": ("bridge.bus", "bridge.sinks", "collectors", "bridge.integration"),
    "bridge.sinks": ("collectors",),
    "collectors": ("bridge.sinks",),
}
# Calls that find out at run time what an object is.
PROBES = frozenset({"getattr", "hasattr", "isinstance", "issubclass", "type"})
# Calls that import a module named by a string.
DYNAMIC_IMPORTS = frozenset({"import_module", "__import__"})
# Words naming a transport or what it may offer (bridge.bus.capabilities).
TRANSPORT_WORDS = ("transport", "capabilit", "coordinator", "lease", "hand_over", "shared_state")
# Where the protocols of a transport and of what it offers are declared.
TRANSPORT_PROTOCOLS = ("bridge.bus.transport", "bridge.bus.capabilities")


_PARSED: dict[str, ast.Module] = {}


def _parse(source: str, where: str) -> ast.Module:
    """``source`` (the text of ``where``) parsed once per worker, whatever name later calls
    give it: each check below walks every file of the project."""
    if source not in _PARSED:
        _PARSED[source] = ast.parse(source, where)
    return _PARSED[source]


@cache
def _walk(source: str, where: str) -> tuple[ast.AST, ...]:
    """Every node of ``source``, in ``ast.walk``'s order."""
    return tuple(ast.walk(_parse(source, where)))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _resolve(name: str) -> str | None:
    """The project module ``name`` refers to (a package for a name inside it), or None."""
    modules = _modules()
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


@cache
def _imports(module: str) -> frozenset[str]:
    """The project modules ``module`` imports, wherever the import statement stands."""
    path = _modules()[module]
    return _imports_in(path.read_text(), module, package=path.name == "__init__.py")


def _imports_in(source: str, module: str, *, package: bool = False) -> frozenset[str]:
    """The project modules ``source`` (the text of ``module``) imports: import statements
    anywhere (under ``if TYPE_CHECKING:``, in a function), relative ones, and modules named
    to ``importlib.import_module`` or ``__import__``."""
    found: set[str] = set()
    for node in _walk(source, module):
        if isinstance(node, ast.Import):
            found.update(r for alias in node.names if (r := _resolve(alias.name)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module if package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    parent = parent.rpartition(".")[0]
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                target = f"{base}.{alias.name}"
                resolved = target if target in _modules() else _resolve(base)
                if resolved:
                    found.add(resolved)
        elif (
            isinstance(node, ast.Call)
            and _called(node) in DYNAMIC_IMPORTS
            and node.args
            and isinstance(named := node.args[0], ast.Constant)
            and isinstance(named.value, str)
            and (resolved := _resolve(named.value))
        ):
            found.add(resolved)
    found.discard(module)
    return frozenset(found)


def _called(call: ast.Call) -> str:
    """The name of what ``call`` calls: ``f`` for ``f(…)`` and for ``x.f(…)``."""
    func = call.func
    return (
        func.id
        if isinstance(func, ast.Name)
        else func.attr
        if isinstance(func, ast.Attribute)
        else ""
    )


def _cycles() -> Iterator[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in _imports(module):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in _modules():
        if module not in index:
            visit(module)
    return iter(found)


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_the_import_graph_has_no_cycle() -> None:
    """No module reaches itself through its imports: dependencies point one way."""
    assert list(_cycles()) == []


@pytest.mark.parametrize("module", sorted(set(_modules()) - EDGE))
def test_only_the_edge_imports_the_edge(module: str) -> None:
    """Components, the bus, collectors and the cluster monitor never import app, http or cli."""
    assert not (_imports(module) & EDGE), f"{module} imports {sorted(_imports(module) & EDGE)}"


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_higher_ones(layer: str) -> None:
    """The bus knows no sink or collector; messages know no bus; sinks and collectors are apart."""
    wrong = {
        (module, target)
        for module in _modules()
        if _within(module, layer)
        for target in _imports(module)
        if any(_within(target, higher) for higher in FORBIDDEN[layer])
    }
    assert wrong == set()


def _class_members(cls: ast.ClassDef) -> set[str]:
    """What ``cls`` defines: its methods and properties, the names its body annotates or
    assigns, and the attributes its methods set on ``self``."""
    found: set[str] = set()
    for node in cls.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.add(node.name)
        elif isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            found.update(target.id for target in targets if isinstance(target, ast.Name))
    for sub in ast.walk(cls):
        if isinstance(sub, ast.AnnAssign | ast.Assign):
            targets = [sub.target] if isinstance(sub, ast.AnnAssign) else sub.targets
            found.update(
                target.attr
                for target in targets
                if isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
            )
    return found


@cache
def _transport_classes() -> dict[str, frozenset[str]]:
    """The protocols of a transport and of what it offers (``TRANSPORT_PROTOCOLS``' Protocol
    classes), and the container of its capabilities, each with the classes of bridge/bus that
    implement it: those defining every member it declares, whatever their name."""
    protocols: dict[str, set[str]] = {}
    for module in TRANSPORT_PROTOCOLS:
        path = _modules()[module]
        for node in _walk(path.read_text(), str(path)):
            if isinstance(node, ast.ClassDef) and any(
                ast.unparse(base) == "Protocol" for base in node.bases
            ):
                declared = _class_members(node)
                protocols[node.name] = {name for name in declared if not name.startswith("__")}
    implementers: dict[str, set[str]] = {name: set() for name in protocols}
    for module, path in _modules().items():
        if not _within(module, "bridge.bus"):
            continue
        for node in _walk(path.read_text(), str(path)):
            if isinstance(node, ast.ClassDef) and node.name not in protocols:
                defined = _class_members(node)
                for name, declared in protocols.items():
                    if declared <= defined:
                        implementers[name].add(node.name)
    return {
        "TransportCapabilities": frozenset(),
        **{name: frozenset(found) for name, found in implementers.items()},
    }


@cache
def _transport_types() -> frozenset[str]:
    """Every class name ``_transport_classes`` holds: protocols, implementers, the container."""
    classes = _transport_classes()
    return frozenset(classes) | frozenset().union(*classes.values())


def _names_in(node: ast.AST) -> set[str]:
    """The names and attribute names within ``node``, and those of string annotations."""
    found: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            found.add(sub.attr)
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            found.update(re.findall(r"\w+", sub.value))
    return found


def _typed_as(source: str, where: str, types: frozenset[str]) -> frozenset[str]:
    """The names ``source`` gives one of ``types``: parameters and variables (``self._x`` too)
    annotated with one, functions or properties returning one, and the names assigned one of
    those (``self._x = x``)."""
    found: set[str] = set()
    nodes = _walk(source, where)
    for node in nodes:
        if isinstance(node, ast.arg) and node.annotation is not None:
            if _names_in(node.annotation) & types:
                found.add(node.arg)
        elif isinstance(node, ast.AnnAssign) and _names_in(node.annotation) & types:
            found.add(_own_name(node.target))  # empty for ``x[i]: T``, dropped below
        elif (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.returns is not None
            and _names_in(node.returns) & types
        ):
            found.add(node.name)
    found.discard("")
    # ``x = y``, ``self._x = self.y``: ``x`` typed as ``y`` is (``x = y.z``: as ``z``, not ``y``).
    copies = [
        (_own_name(node.value), _own_name(target))
        for node in nodes
        if isinstance(node, ast.Assign)
        for target in node.targets
    ]
    grown = True
    while grown:
        before = len(found)
        found.update(target for value, target in copies if value in found and target)
        grown = len(found) > before
    return frozenset(found)


def _own_name(node: ast.AST) -> str:
    """``x`` for the name ``x`` and for ``….x``; empty for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else ""


def _mentions_transport(node: ast.AST, typed: frozenset[str] = frozenset()) -> bool:
    """Whether ``node`` names a transport or a capability: a name, an attribute or a string
    with one of ``TRANSPORT_WORDS``, one of their classes, or a name ``typed`` as one."""

    def words(sub: ast.AST) -> str:
        if isinstance(sub, ast.Name):
            return sub.id
        if isinstance(sub, ast.Attribute):
            return sub.attr
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            return sub.value
        return ""

    names = [words(sub) for sub in ast.walk(node)]
    known = _transport_types() | typed
    return any(
        name in known or any(word in name.lower() for word in TRANSPORT_WORDS) for name in names
    )


def _probe_call(node: ast.AST, typed: frozenset[str]) -> bool:
    """Whether ``node`` is a ``PROBES`` call on, or for, a transport or a capability."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in PROBES
        and any(_mentions_transport(argument, typed) for argument in node.args)
    )


def _type_compared(node: ast.AST, typed: frozenset[str]) -> bool:
    """Whether ``node`` compares a ``type(…)`` with a transport or a capability (``type(x) is
    RedisTransport``: the class compared with is outside the call)."""
    return (
        isinstance(node, ast.Compare)
        and any(
            isinstance(side, ast.Call) and _called(side) == "type"
            for side in (node.left, *node.comparators)
        )
        and any(_mentions_transport(side, typed) for side in node.comparators)
    )


def _probes(source: str, where: str) -> Iterator[str]:
    typed = _typed_as(source, where, _transport_types())
    for node in _walk(source, where):
        if isinstance(node, ast.expr) and (_probe_call(node, typed) or _type_compared(node, typed)):
            yield f"{where}:{node.lineno} {ast.unparse(node)}"
        elif isinstance(node, ast.Match) and any(
            isinstance(pattern, ast.MatchClass)
            and (_mentions_transport(node.subject, typed) or _mentions_transport(pattern.cls))
            for case in node.cases
            for pattern in ast.walk(case.pattern)
        ):
            # ``match transport: case RedisTransport(): …`` is isinstance by another name.
            yield f"{where}:{node.lineno} match {ast.unparse(node.subject)}"


def test_no_transport_is_probed_outside_the_bus() -> None:
    """What a transport offers is declared (bridge.bus.capabilities), never guessed elsewhere."""
    found = [
        probe
        for module, path in _modules().items()
        if not _within(module, "bridge.bus")
        for probe in _probes(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert found == []


def _concrete_transports_named(source: str, where: str) -> Iterator[str]:
    """Names of a class implementing ``Transport`` (``MemoryTransport``, ``RedisTransport``,
    found by their members): in an import, a name or an attribute."""
    concrete = _transport_classes()["Transport"]
    for node in _walk(source, where):
        if isinstance(node, ast.ImportFrom | ast.Import):
            names = [alias.name.rpartition(".")[2] for alias in node.names]
        elif isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        else:
            continue
        for name in names:
            if name in concrete:
                yield f"{where}:{node.lineno} {name}"


def test_only_the_app_names_a_concrete_transport() -> None:
    """Outside bridge/bus, only bridge/app.py, which picks the transport, names one: the rest
    is given a ``Transport`` and what it offers, and cannot tell which it is."""
    found = [
        name
        for module, path in _modules().items()
        if not _within(module, "bridge.bus") and module != "bridge.app"
        for name in _concrete_transports_named(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert found == []


def test_the_concrete_transport_finder_finds_a_name() -> None:
    """The check above can fail: a concrete transport imported, named or reached as an
    attribute is found; the ``Transport`` protocol is not."""
    sample = (
        "from bridge.bus.redis import RedisTransport\n"
        "import bridge.bus\n"
        "def f(t: Transport) -> None:\n"
        "    bridge.bus.MemoryTransport\n"
    )
    assert sorted(_concrete_transports_named(sample, "s.py")) == [
        "s.py:1 RedisTransport",
        "s.py:4 MemoryTransport",
    ]


def _names_the_bus(node: ast.expr) -> bool:
    """Whether ``node`` is a bus by its name: ``bus``, ``self._bus``, ``bridge.bus``."""
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")
    return name.lstrip("_").endswith("bus")


def _transport_reads(source: str, where: str) -> Iterator[str]:
    """Reads of the Bus's ``transport``: what it offers comes to a component declared
    (``bridge.bus.capabilities``, passed by the app), not found on the transport behind it.
    Other ``.transport`` attributes (asyncio's and aiohttp's connections) are not the bus's.
    A bus is known by its name, or by its type (a name ``_typed_as`` a ``Bus``)."""
    buses = _typed_as(source, where, frozenset({"Bus"}))
    for node in _walk(source, where):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "transport"
            and (_names_the_bus(node.value) or _own_name(node.value) in buses)
        ):
            yield f"{where}:{node.lineno} {ast.unparse(node)}"


def test_no_bus_transport_is_read_outside_the_bus() -> None:
    """Nothing outside bridge/bus/ reaches through the Bus to its transport: capability
    discovery cannot come back by that door."""
    found = [
        read
        for module, path in _modules().items()
        if not _within(module, "bridge.bus")
        for read in _transport_reads(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert found == []


def test_the_transport_read_finder_finds_a_read() -> None:
    """The check above can fail: the bus's transport read by any name of the bus, or by a name
    typed as a Bus (or assigned one), is found; a connection's or a request's transport is not."""
    sample = (
        "def f(self, bus, bridge, request, connection, carrier: Bus):\n"
        "    bus.transport.send(b'')\n"
        "    self._bus.transport\n"
        "    bridge.bus.transport\n"
        "    request.transport.is_closing()\n"
        "    connection.transport.abort()\n"
        "    carrier.transport\n"
        "    self._carrier = carrier\n"
        "    self._carrier.transport\n"
    )
    assert sorted(_transport_reads(sample, "s.py")) == [
        "s.py:2 bus.transport",
        "s.py:3 self._bus.transport",
        "s.py:4 bridge.bus.transport",
        "s.py:7 carrier.transport",
        "s.py:9 self._carrier.transport",
    ]


def test_the_probe_finder_finds_a_probe() -> None:
    """The check above can fail: it spots getattr on a transport, isinstance of one, and
    probes of a capability or for one by name."""
    sample = (
        "def f(bus, MemoryTransport, RedisWorkQueue, lease):\n"
        "    getattr(bus.transport, 'hand_over', None)\n"
        "    isinstance(bus.transport, MemoryTransport)\n"
        "    isinstance(lease, RedisWorkQueue)\n"
        "    hasattr(bus, 'transport')\n"
        "    getattr(bus, 'name')\n"
        "    isinstance(bus, str)\n"
        "    issubclass(bus.transport_type, MemoryTransport)\n"
        "    type(lease) is RedisWorkQueue\n"
        "    match bus.transport:\n"
        "        case MemoryTransport(): pass\n"
        "    match bus.name:\n"
        "        case 'memory': pass\n"
    )
    assert len(list(_probes(sample, "sample.py"))) == 7


def test_the_probe_finder_finds_a_transport_by_its_type_whatever_its_name() -> None:
    """The check above can fail on names without a transport's words: a probe of a name
    annotated as a transport or a capability (or assigned from one, or a property returning
    one) is found, as is a probe for a class implementing one (found by its members)."""
    sample = (
        "class Sink:\n"
        "    def __init__(self, q: WorkQueueLease | None, other: str) -> None:\n"
        "        self._q = q\n"
        "        self._held: 'Coordinator | None' = None\n"
        "        hasattr(q, 'hand_over')\n"
        "    @property\n"
        "    def held(self) -> Coordinator:\n"
        "        return self._held\n"
        "    def f(self, thing, other: str) -> None:\n"
        "        getattr(self._q, 'release', None)\n"
        "        getattr(self._held, 'swap', None)\n"
        "        isinstance(self.held, object)\n"
        "        isinstance(thing, WorkQueue)\n"
        "        type(thing) is RedisCoordinator\n"
        "        match thing:\n"
        "            case MemoryTransport(): pass\n"
        "        getattr(other, 'name')\n"
        "        isinstance(thing, str)\n"
    )
    found = sorted(_probes(sample, "s.py"), key=lambda probe: int(probe.split(" ")[0][5:]))
    assert found == [
        "s.py:5 hasattr(q, 'hand_over')",
        "s.py:10 getattr(self._q, 'release', None)",
        "s.py:11 getattr(self._held, 'swap', None)",
        "s.py:12 isinstance(self.held, object)",
        "s.py:13 isinstance(thing, WorkQueue)",
        "s.py:14 type(thing) is RedisCoordinator",
        "s.py:15 match thing",
    ]


def test_the_import_finder_finds_every_kind_of_import() -> None:
    """The edge and layer checks can fail: an import under ``TYPE_CHECKING``, one inside a
    function, a relative one and a module named to ``import_module`` each count."""
    sample = (
        "from typing import TYPE_CHECKING\n"
        "import importlib\n"
        "if TYPE_CHECKING:\n"
        "    from bridge.app import Bridge\n"
        "def f():\n"
        "    import bridge.cli\n"
        "    importlib.import_module('bridge.pages')\n"
        "    __import__('collectors.demo')\n"
        "from ...http import ingest\n"
        "from .. import bus\n"
    )
    found = _imports_in(sample, "bridge.sinks.alerts.sample")
    assert found >= {
        "bridge.app",
        "bridge.cli",
        "bridge.pages",
        "collectors.demo",
        "bridge.http",
        "bridge.sinks",
    }


# Where the alert stage's instances are written out: the one definition, WORK_QUEUE_INSTANCES.
WORK_QUEUE_HOME = "bridge/bus/transport.py"


def _instance_lists(source: str, where: str) -> Iterator[str]:
    """Literal sets, tuples and lists naming three or more of the alert stage's instances, other
    than the list of all nine: a second definition of the stage's instances."""
    for node in _walk(source, where):
        if isinstance(node, ast.Set | ast.Tuple | ast.List):
            names = {
                element.value
                for element in node.elts
                if isinstance(element, ast.Constant) and isinstance(element.value, str)
            }
            if len(names & WORK_QUEUE_INSTANCES) >= 3 and names != set(INSTANCES):
                yield f"{where}:{node.lineno} {sorted(names & WORK_QUEUE_INSTANCES)}"


def test_the_alert_stages_instances_are_written_out_once() -> None:
    """WORK_QUEUE_INSTANCES is the one list of the alert stage's bus instances: the shared
    transport and the alert sink read it, nobody writes the list out again."""
    found = [
        found
        for path in _modules().values()
        for found in _instance_lists(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert [where.partition(":")[0] for where in found] == [WORK_QUEUE_HOME], found


def test_the_instance_list_finder_finds_a_second_list() -> None:
    """The check above can fail: a copy of the stage's instances, or of most of them, is found;
    the list of all nine and a pair of instances are not."""
    sample = (
        "A = ('ex_esdb_alerts', 'ex_esdb_health', 'ex_esdb_lifecycle', 'ex_esdb_metrics',"
        " 'ex_esdb_security')\n"
        "B = {'ex_esdb_alerts', 'ex_esdb_metrics', 'ex_esdb_security', 'ex_esdb_audit'}\n"
        f"C = {list(INSTANCES)!r}\n"
        "D = ['ex_esdb_lifecycle', 'ex_esdb_health']\n"
    )
    assert [line.split(" ")[0] for line in _instance_lists(sample, "s.py")] == ["s.py:1", "s.py:2"]


# Where an error answer's JSON object is made: bridge.routes.error_body, for every route.
ERROR_BODY_HOME = "bridge/routes.py"


def _error_bodies(source: str, where: str) -> Iterator[str]:
    """Dict literals with both an ``error`` and a ``detail`` key: an error answer's shape
    written out again instead of asked of ``error_body``."""
    for node in _walk(source, where):
        if isinstance(node, ast.Dict):
            keys = {key.value for key in node.keys if isinstance(key, ast.Constant)}
            if {"error", "detail"} <= keys:
                yield f"{where}:{node.lineno}"


def test_error_answers_are_shaped_in_one_place() -> None:
    """Every route's error answer, and each problem an answer lists, comes from
    bridge.routes.error_body: no other module writes the shape out."""
    found = [
        found
        for path in _modules().values()
        for found in _error_bodies(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert [where.partition(":")[0] for where in found] == [ERROR_BODY_HOME], found


def test_the_error_body_finder_finds_a_second_shape() -> None:
    """The check above can fail: a dict naming error and detail is found; one naming only one
    of them is not."""
    sample = (
        "def f(r):\n"
        "    return {'error': r.code, 'detail': r.text, 'field': None}\n"
        "A = {'error': 'x'}\n"
        "B = {'detail': 'y', 'error': 'x'}\n"
    )
    assert sorted(_error_bodies(sample, "s.py")) == ["s.py:2", "s.py:4"]


def _generator_files() -> list[Path]:
    """The dashboards' generator (grafana/): a script and the package beside it, not installed."""
    return sorted((ROOT / "grafana").rglob("*.py"))


@cache
def _rows() -> dict[str, str]:
    """docs/architecture.md's module rows: each module's path and its job as the row says it."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    found = re.findall(r"^\| `((?:bridge|collectors|grafana)/[\w/]+\.py)` \| (.*) \|$", text, re.M)
    return dict(found)


def _documented_modules() -> set[str]:
    return set(_rows())


def _first_sentence(path: Path) -> str:
    docstring = ast.get_docstring(_parse(path.read_text(), str(path))) or ""
    return docstring.splitlines()[0] if docstring else ""


def _as_row(sentence: str) -> str:
    """A docstring's first sentence as its row shows it: Markdown code, no pointer into docs/."""
    return re.sub(r" \([^()]*docs/[^()]*\)", "", sentence).replace("``", "`")


def test_the_architecture_page_names_every_module() -> None:
    """docs/architecture.md has a row for every module (the dashboards' generator's too), and
    every row is a module that exists."""
    paths = [*_modules().values(), *_generator_files()]
    actual = {str(path.relative_to(ROOT)) for path in paths}
    documented = _documented_modules()
    assert sorted(actual - documented) == [], "add these modules to docs/architecture.md"
    assert sorted(documented - actual) == [], "docs/architecture.md names modules that are gone"


@pytest.mark.parametrize("path", sorted(_rows()))
def test_each_row_is_its_modules_first_sentence(path: str) -> None:
    """A module's row in docs/architecture.md says what its docstring's first sentence says."""
    assert _rows()[path] == _as_row(_first_sentence(ROOT / path))


# A module this long does several jobs (the bus, the Redis transport and the outbox each did).
MODULE_LINES: Final = 900


def test_no_module_grows_to_several_jobs_length() -> None:
    """No module of bridge/, collectors/ or grafana/ reaches 900 lines: split it where its jobs
    are."""
    lengths = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in [*_modules().values(), *_generator_files()]
    }
    assert {path: n for path, n in lengths.items() if n >= MODULE_LINES} == {}


@pytest.mark.parametrize("module", sorted(_modules()))
def test_every_module_opens_with_its_job(module: str) -> None:
    """Each module's docstring opens with one sentence saying what it does."""
    path = _modules()[module]
    docstring = ast.get_docstring(_parse(path.read_text(), str(path)))
    assert docstring, f"{path.relative_to(ROOT)} has no docstring"
    assert docstring.splitlines()[0].rstrip().endswith("."), "the first line is one sentence"


# What the package offers to code outside it, unused inside it by design: the integration API.
OUTWARD: Final = frozenset(integration.__all__)


def _referenced(source: str, where: str, *, package: bool) -> Iterator[str]:
    """Names ``source`` uses: read, called, taken as an attribute or imported (a package's own
    ``__init__`` re-exporting a name does not count as a use)."""
    for node in _walk(source, where):
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Attribute):
            yield node.attr
        elif isinstance(node, ast.alias) and not package:
            yield node.name.rpartition(".")[2]


def _unused(sources: dict[str, str]) -> Iterator[str]:
    """Public module-level functions and classes of ``sources`` (path: text) that no module of
    them uses: dead code, or code only a test calls."""
    used = {
        name
        for where, source in sources.items()
        for name in _referenced(source, where, package=where.endswith("__init__.py"))
    }
    for where, source in sources.items():
        for node in _parse(source, where).body:
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and not node.name.startswith("_")
                and node.name not in used
                and node.name not in OUTWARD
            ):
                yield f"{where}:{node.lineno} {node.name}"


def test_every_public_function_and_class_is_used_by_the_package() -> None:
    """Nothing in bridge/ or collectors/ is there only for the tests (or for nobody): a test
    reaches the behaviour through the path the bridge takes."""
    sources = {str(path.relative_to(ROOT)): path.read_text() for path in _modules().values()}
    assert list(_unused(sources)) == []


def test_the_unused_finder_finds_a_function_only_a_test_calls() -> None:
    """The check above can fail: a function no module calls is found, though its package's
    ``__init__`` re-exports it; one called elsewhere, and the integration API, are not."""
    sources = {
        "p/__init__.py": "from p.a import helper, used\n",
        "p/a.py": "def helper(): pass\ndef used(): pass\ndef broadcast_alert(): pass\n",
        "p/b.py": "from p.a import used\nused()\n",
    }
    assert list(_unused(sources)) == ["p/a.py:1 helper"]


# Public methods a library calls, never the package: the hooks our classes fill in.
LIBRARY_HOOKS: Final = {
    "settings_customise_sources": "pydantic-settings' BaseSettings",
    "formatTime": "logging.Formatter",
    "on_emit": "opentelemetry's LogRecordProcessor",
    "force_flush": "opentelemetry's LogRecordProcessor",
    "handle_starttag": "html.parser.HTMLParser",
    "handle_endtag": "html.parser.HTMLParser",
    "handle_data": "html.parser.HTMLParser",
    "readinto": "io.BufferedReader, reading an io.RawIOBase",
}


def _methods_unused(sources: dict[str, str]) -> Iterator[str]:
    """Public methods and properties of module-level classes in ``sources`` whose name no
    module of them uses (nor a string names, for ``getattr``): dead, or there only for a test
    to call. A name shared with a method used elsewhere counts as used: the check can miss a
    dead method, never accuse a live one."""
    used = {
        name
        for where, source in sources.items()
        for node in _walk(source, where)
        for name in (
            [node.id]
            if isinstance(node, ast.Name)
            else [node.attr]
            if isinstance(node, ast.Attribute)
            else re.findall(r"\w+", node.value)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            else []
        )
    }
    for where, source in sources.items():
        for cls in _parse(source, where).body:
            if not isinstance(cls, ast.ClassDef):
                continue
            for node in cls.body:
                if (
                    isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                    and not node.name.startswith("_")
                    and node.name not in used
                    and node.name not in LIBRARY_HOOKS
                ):
                    yield f"{where}:{node.lineno} {cls.name}.{node.name}"


def test_every_public_method_is_used_by_the_package() -> None:
    """No public method or property of bridge/ or collectors/ is there only for the tests (or
    for nobody), bar the library hooks listed above: a test observes through what the bridge
    itself uses, its metrics and its answers."""
    sources = {str(path.relative_to(ROOT)): path.read_text() for path in _modules().values()}
    assert list(_methods_unused(sources)) == []


def test_the_method_finder_finds_a_method_only_a_test_calls() -> None:
    """The check above can fail: a method and a property no module uses are found; one called
    elsewhere, one named by a string, a private one and a library hook are not."""
    sources = {
        "p/a.py": (
            "class Guard:\n"
            "    @property\n"
            "    def stalled_count(self): pass\n"
            "    def helper(self): pass\n"
            "    def used(self): pass\n"
            "    def by_name(self): pass\n"
            "    def _own(self): pass\n"
            "    def formatTime(self): pass\n"
        ),
        "p/b.py": "def f(guard):\n    guard.used()\n    getattr(guard, 'by_name')()\n",
    }
    assert list(_methods_unused(sources)) == [
        "p/a.py:3 Guard.stalled_count",
        "p/a.py:4 Guard.helper",
    ]


# Test modules: what a test says it shows, and how it waits.
TESTS: Final = ROOT / "tests"


def _tests_without_docstring(source: str, where: str) -> Iterator[str]:
    for node in _walk(source, where):
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test_")
            and not ast.get_docstring(node)
        ):
            yield f"{where}:{node.lineno} {node.name}"


def test_every_test_states_its_behaviour_in_a_docstring() -> None:
    """Each test function has a docstring saying the behaviour it shows: the suite reads as the
    specification."""
    found = [
        missing
        for path in sorted(TESTS.rglob("test_*.py"))
        for missing in _tests_without_docstring(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert found == []


def _unexplained_sleeps(source: str, where: str) -> Iterator[str]:
    """``sleep(n)`` calls, n anything but a literal 0 (a yield to the loop), with no comment on
    their line saying why: a fixed sleep is no way to wait for something (wait on a condition
    with a deadline), nor is one given by a name (``sleep(DELAY)``)."""
    lines = source.splitlines()
    for node in _walk(source, where):
        if (
            isinstance(node, ast.Call)
            and _called(node) == "sleep"
            and node.args
            and not (isinstance(seconds := node.args[0], ast.Constant) and seconds.value == 0)
            and "#" not in lines[node.lineno - 1]
        ):
            yield f"{where}:{node.lineno} {ast.unparse(node)}"


def test_no_test_waits_with_an_unexplained_fixed_sleep() -> None:
    """A test that sleeps a fixed time says on that line why it is not a wait (a paced
    publisher, a slow subscriber); waits go through tests/support/waiting.py's wait_until."""
    found = [
        sleep
        for path in sorted(TESTS.rglob("*.py"))
        if path != TESTS / "support" / "waiting.py"
        for sleep in _unexplained_sleeps(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert found == []


SKIPPING: Final = frozenset({"skip", "skipif", "xfail", "importorskip"})


def _skips(source: str, where: str) -> Iterator[str]:
    """``pytest.skip``, ``pytest.importorskip``, ``pytest.xfail`` and the ``mark`` ones: ways a
    test can end without showing its behaviour (``pytest.skip.Exception``, caught, is not)."""
    nodes = list(_walk(source, where))
    reached_into = {id(node.value) for node in nodes if isinstance(node, ast.Attribute)}
    for node in sorted(nodes, key=lambda node: getattr(node, "lineno", 0)):
        if (
            isinstance(node, ast.Attribute)
            and id(node) not in reached_into
            and node.attr in SKIPPING
            and (
                (isinstance(node.value, ast.Name) and node.value.id == "pytest")
                or (isinstance(node.value, ast.Attribute) and node.value.attr == "mark")
            )
        ):
            yield f"{where}:{node.lineno} {ast.unparse(node)}"


def test_the_only_skip_is_a_missing_server_outside_ci() -> None:
    """A test skips only through tests/support/binaries.py's unavailable(), which fails under
    CI=true instead: no other skip or expected failure hides a test from make test."""
    found = [
        skip
        for path in sorted(TESTS.rglob("*.py"))
        for skip in _skips(path.read_text(), str(path.relative_to(ROOT)))
    ]
    # The line aside: where unavailable() sits moves as tests/support/binaries.py grows.
    assert [f"{skip.partition(':')[0]} {skip.partition(' ')[2]}" for skip in found] == [
        "tests/support/binaries.py pytest.skip"
    ]


# Library privates that have no public way, read by tests all the same (imports, such as
# opentelemetry's ``semconv._incubating``, and module names in strings are not attribute reads).
LIBRARY_PRIVATES: Final = {
    # argparse offers no public way to list a parser's options and subcommands, which the
    # docs tests compare with docs/cli.md and the README.
    "_actions": "argparse.ArgumentParser",
    "_SubParsersAction": "argparse",
    # A named tuple's documented copy with changes (the underscore keeps it apart from field
    # names): bridge.bus.Frame is one.
    "_replace": "typing.NamedTuple",
    # And its documented field names: bridge.probe_settings.ProbeSettings lists the variables
    # the health check reads with them.
    "_fields": "typing.NamedTuple",
    # And its documented dict of fields: collectors.host compares two readings with it.
    "_asdict": "typing.NamedTuple",
    # The documented exit without the interpreter's teardown (the underscore is its only name):
    # `run` ends with it once stopped (bridge.cli.service).
    "_exit": "os",
    # The documented stack of every thread, by id (the underscore is its only name): a stop
    # running long says where each thread is (bridge.stop_watch), the event loop's too.
    "_current_frames": "sys",
}


def _names_defined(sources: dict[str, str]) -> frozenset[str]:
    """Every name ``sources`` define: functions, classes, arguments, names and attributes
    assigned, names imported, and strings (``__slots__``' attribute names)."""
    found: set[str] = set()
    for where, source in sources.items():
        for node in _walk(source, where):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                found.add(node.name)
            elif isinstance(node, ast.Attribute | ast.Name) and isinstance(node.ctx, ast.Store):
                found.add(_own_name(node))
            elif isinstance(node, ast.arg):
                found.add(node.arg)
            elif isinstance(node, ast.alias):
                found.add((node.asname or node.name).rpartition(".")[2])
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
    return frozenset(found)


def _library_private_reads(sources: dict[str, str]) -> Iterator[str]:
    """``x._name`` in ``sources`` where no module of them defines ``_name``: a private of a
    library (``site._server``, ``registry._names_to_collectors``), bar those with no public
    way (``LIBRARY_PRIVATES``)."""
    ours = _names_defined(sources)
    for where, source in sources.items():
        for node in _walk(source, where):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and node.attr not in ours
                and node.attr not in LIBRARY_PRIVATES
            ):
                yield f"{where}:{node.lineno} {ast.unparse(node)}"


def test_the_package_reads_no_private_attribute_of_a_library() -> None:
    """bridge/ and collectors/ reach libraries through their public ways (the public
    ``registry.collect()``, not ``registry._names_to_collectors``), bar the library privates
    listed above."""
    sources = {str(path.relative_to(ROOT)): path.read_text() for path in _modules().values()}
    assert list(_library_private_reads(sources)) == []


def test_the_library_private_finder_finds_a_read() -> None:
    """The check above can fail: a library's private attribute, read or called, is found; the
    package's own privates (an attribute set, a slot, a method, a module) and the allowed
    ones are not."""
    sources = {
        "p/a.py": (
            "class Store:\n"
            "    __slots__ = ('_slot',)\n"
            "    def _helper(self): pass\n"
            "    def f(self, other, registry, site, parts):\n"
            "        self._cache = {}\n"
            "        other._cache, other._slot, other._helper()\n"
            "        registry._names_to_collectors\n"
            "        site._server.close()\n"
            "        parts._replace(path='')\n"
        ),
        "p/b.py": "from p import _own\n_own.x\n",
    }
    assert list(_library_private_reads(sources)) == [
        "p/a.py:7 registry._names_to_collectors",
        "p/a.py:8 site._server",
    ]


def _private_reads(source: str, where: str) -> Iterator[str]:
    """``x._name`` where ``x`` is not ``self`` or ``cls`` (a test's own helper class): a test
    reaching into what the unit under test keeps to itself, rather than asking it through a
    public method, a metric it exports or an argument it was built with."""
    for node in _walk(source, where):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and node.attr not in LIBRARY_PRIVATES
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            yield f"{where}:{node.lineno} {ast.unparse(node)}"


def test_no_test_reads_what_the_unit_keeps_private() -> None:
    """Tests observe behaviour through public seams: no ``unit._attribute`` reads, bar the
    library privates listed above."""
    found = [
        read
        for path in sorted(TESTS.rglob("*.py"))
        for read in _private_reads(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert found == []


def test_the_private_read_finder_finds_a_read() -> None:
    """The check above can fail: a unit's private attribute, a private method patched on a
    class and one reached through a chain are found; ``self._x``, dunders, the allowed
    argparse privates and module names in strings are not."""
    sample = (
        "import argparse, importlib\n"
        "class Helper:\n"
        "    def f(self, sink, Family, replica, parser):\n"
        "        sink._pending\n"
        "        Family._expire\n"
        "        replica.transport._writer._retained\n"
        "        self._own, cls.__name__, parser._actions, argparse._SubParsersAction\n"
        "        importlib.import_module('bench._util')\n"
    )
    assert sorted(_private_reads(sample, "t.py")) == [
        "t.py:4 sink._pending",
        "t.py:5 Family._expire",
        "t.py:6 replica.transport._writer",
        "t.py:6 replica.transport._writer._retained",
    ]


def test_the_test_checks_find_what_they_look_for() -> None:
    """The two checks above can fail: a test without a docstring and a bare sleep, of a number
    or of a name, are found; a test with one, a yield to the loop and a sleep with its reason
    are not."""
    sample = (
        "import asyncio, time\n"
        "def test_a():\n"
        "    time.sleep(0.5)\n"
        "async def test_b():\n"
        '    """Shows b."""\n'
        "    await asyncio.sleep(0)\n"
        "    await asyncio.sleep(0.01)  # a paced publisher, not a wait\n"
        "    await asyncio.sleep(DELAY)\n"
        "    await asyncio.sleep(DELAY)  # a slow receiver, as the test asks\n"
    )
    assert list(_tests_without_docstring(sample, "t.py")) == ["t.py:2 test_a"]
    assert sorted(_unexplained_sleeps(sample, "t.py")) == [
        "t.py:3 time.sleep(0.5)",
        "t.py:8 asyncio.sleep(DELAY)",
    ]


def test_the_skip_finder_finds_every_way_to_skip() -> None:
    """The skip check can fail: a skip, an importorskip and the mark decorators are found; a
    test's own ``skip`` variable and other marks are not."""
    sample = (
        "import pytest\n"
        "pytest.skip('x')\n"
        "yaml = pytest.importorskip('yaml')\n"
        "@pytest.mark.skipif(True, reason='x')\n"
        "@pytest.mark.xfail\n"
        "@pytest.mark.parametrize('skip', [1])\n"
        "def test_a(skip): skip.skip\n"
        "pytest.raises(pytest.skip.Exception)\n"
    )
    assert list(_skips(sample, "t.py")) == [
        "t.py:2 pytest.skip",
        "t.py:3 pytest.importorskip",
        "t.py:4 pytest.mark.skipif",
        "t.py:5 pytest.mark.xfail",
    ]


# Where a test's module and names come from that are ours: a name of theirs starting with "_"
# is kept by the unit (or by another test module) to itself.
OWN_PACKAGES: Final = ("bridge", "collectors", "bench", "tests")
# Privates tests import or patch all the same, by test module; each with why no public way fits.
PRIVATES_ALLOWED: Final = {
    # The decoder's fast paths are tested one by one against the reference decoder
    # (differentially), and batches are checked to stay on the fast path (no body decoded
    # alone), and a refused body of unknown fields not counted twice: nothing public shows
    # which path decoded a batch, or which count refused a body, but the time it took.
    "tests/bus/envelope_helpers.py": {
        "bridge.bus.decoding._decode_fast",
        "bridge.bus.decoding._decode_structs",
        "bridge.bus.decoding._named_once",
    },
    "tests/bus/test_envelope_fast.py": {"bridge.bus.decoding._decode_fast"},
    "tests/bus/test_envelope_fast_values.py": {"bridge.bus.decoding._decode_each"},
    "tests/bus/test_envelope_fast_fields.py": {
        "bridge.bus.decoding._decode_fast",
        "bridge.bus.decoding._decode_each",
    },
    "tests/bus/test_envelope_fast_generated.py": {"bridge.bus.decoding._decode_fast"},
    "tests/bus/test_envelope_fast_batches.py": {
        "bridge.bus.decoding._decode_each",
        "bridge.bus.decoding._decode_unchecked",
    },
    "tests/bus/test_envelope_fast_lax.py": {
        "bridge.bus.decoding._decode_fast",
        "bridge.bus.decoding._decode_unchecked",
        "bridge.bus.decoding._keys_in",
    },
    "tests/bus/test_envelope_differential.py": {
        "bridge.bus.decoding._decode_fast",
    },
    # docs/alerts.md must list every word the metadata redaction rule judges a key by: the
    # words themselves are what is compared.
    "tests/test_docs.py": {
        "bridge.redaction._ABOUT_A_SECRET",
        "bridge.redaction._HARMLESS_KEY_KINDS",
        "bridge.redaction._SECRET_PARTS",
        "bridge.redaction._SECRET_WORDS",
    },
    # The status page's ages are kept a second: a minute here, so that a slow machine's five
    # requests fall within it. The bridge's HTTP app builds the page routes with the real
    # clock, so no clock or interval can be handed to them through a bridge.
    "tests/pages/test_long_lists.py": {"bridge.pages.routes._AGES_KEPT_SECONDS"},
}


def _own(module: str) -> bool:
    return any(_within(module, package) for package in OWN_PACKAGES)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_imports(source: str, where: str) -> Iterator[str]:
    """``from <ours> import _name``, and ``monkeypatch.setattr`` of a ``_name`` on a module or
    class of ours (``setattr(module, "_name", ...)``, or by its dotted path) or on an object the
    test holds (a unit): a test relying on what a unit keeps to itself, or on another test
    module's own helper. A library's privates and a test's own helper class's are not ours."""
    tree = _parse(source, where)
    # What each name bound by an import stands for: "bridge.bus.decoding", "bridge.cli.main".
    bound: dict[str, str] = {}
    for node in _walk(source, where):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound[alias.asname or alias.name.split(".")[0]] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                if _own(node.module) and _private(alias.name):
                    yield f"{where}:{node.lineno} {node.module}.{alias.name}"
    loops = _loops_over_names(tree)
    for node in _walk(source, where):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "setattr"
            and node.args
        ):
            continue
        target = node.args[0]
        names: list[str | None]
        if isinstance(target, ast.Constant) and isinstance(target.value, str):
            # monkeypatch.setattr("bridge.module._name", value)
            module, _, path_name = target.value.rpartition(".")
            names = [path_name]
        elif len(node.args) > 1:
            names = _names_given(node, loops)
            if isinstance(target, ast.Name) and target.id in bound:
                module = bound[target.id]  # a module or class imported: ours or a library's
            elif isinstance(target, ast.Name) and target.id in ("self", "cls"):
                continue  # a test's own helper class
            else:
                # An object the test holds: a unit built from our package.
                for name in names:
                    if name is not None and _private(name):
                        yield f"{where}:{node.lineno} {ast.unparse(target)}.{name}"
                continue
        else:
            continue
        if not _own(module):
            continue
        for name in names:
            if name is None:  # what it patches is hidden from this check: named, it is seen
                yield f"{where}:{node.lineno} {module}.<a name given at run time>"
            elif _private(name):
                yield f"{where}:{node.lineno} {module}.{name}"


def _loops_over_names(tree: ast.AST) -> dict[ast.AST, list[str]]:
    """The names a call's second argument stands for, where it is the variable of an enclosing
    ``for name in ("a", "b"):`` loop: ``setattr(module, name, ...)`` in it patches each."""
    found: dict[ast.AST, list[str]] = {}
    for loop in ast.walk(tree):  # outer loops first: an inner one over the same name wins
        if not (
            isinstance(loop, ast.For)
            and isinstance(loop.target, ast.Name)
            and isinstance(loop.iter, ast.Tuple | ast.List)
        ):
            continue
        names = [
            element.value
            for element in loop.iter.elts
            if isinstance(element, ast.Constant) and isinstance(element.value, str)
        ]
        if len(names) < len(loop.iter.elts):
            continue
        for node in ast.walk(loop):
            if (
                isinstance(node, ast.Call)
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Name)
                and node.args[1].id == loop.target.id
            ):
                found[node] = names
    return found


def _names_given(call: ast.Call, loops: dict[ast.AST, list[str]]) -> list[str | None]:
    """The attribute names a patch's name argument stands for; None for one only the run tells."""
    node = call.args[1]
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if call in loops:
        return list(loops[call])
    return [None]


def test_no_test_imports_or_patches_what_the_unit_keeps_private() -> None:
    """Tests go through public seams: no ``from bridge... import _name`` (nor from another test
    module), and no private of ours patched by name, bar the few listed above with their
    reason; one listed that no test uses any more is struck from the list."""
    found, used = [], set()
    for path in sorted(TESTS.rglob("*.py")):
        where = str(path.relative_to(ROOT))
        for use in _private_imports(path.read_text(), where):
            name = use.split(" ", 1)[1]
            if name in PRIVATES_ALLOWED.get(where, set()):
                used.add((where, name))
            else:
                found.append(use)
    assert found == []
    listed = {(where, name) for where, names in PRIVATES_ALLOWED.items() for name in names}
    assert listed - used == set()


def test_the_private_import_finder_finds_an_import_and_a_patch() -> None:
    """The check above can fail: a private imported from the package or from a test module
    and one patched by name (on a module or on an object the test holds, named in the call or
    by a loop over names) or by path are found, and so is a patch of ours whose name only the
    run tells; public names, dunders, a library's privates and a test's own helper class's are
    not."""
    sample = (
        "import bridge.bus.decoding as decoding, ssl\n"
        "from bridge.cli.outbox import _not_retryable, main\n"
        "from tests.test_config import _check_config\n"
        "from bridge import __version__\n"
        "from opentelemetry.semconv import _incubating\n"
        "def test_a(monkeypatch, sink):\n"
        "    from bridge.cli.service import _DEMO_STATE_DIR\n"
        "    monkeypatch.setattr(decoding, '_decode_each', None)\n"
        "    monkeypatch.setattr('bridge.pages.routes._AGES_KEPT_SECONDS', 60.0)\n"
        "    monkeypatch.setattr(decoding, 'decode_envelope', None)\n"
        "    monkeypatch.setattr(sink.outbox, '_send', None)\n"
        "    monkeypatch.setattr('os._exit', None)\n"
        "    monkeypatch.setattr(ssl, '_create_default_https_context', None)\n"
        "    monkeypatch.setattr(sink, 'send', None)\n"
        "    for name in ('_decode_fast', 'decode_envelope'):\n"
        "        monkeypatch.setattr(decoding, name, None)\n"
        "    monkeypatch.setattr(decoding, sink.name, None)\n"
        "    monkeypatch.setattr(ssl, sink.name, None)\n"
        "class Helper:\n"
        "    def f(self, monkeypatch):\n"
        "        monkeypatch.setattr(self, '_calls', 0)\n"
    )
    assert sorted(_private_imports(sample, "t.py")) == [
        "t.py:11 sink.outbox._send",
        "t.py:16 bridge.bus.decoding._decode_fast",
        "t.py:17 bridge.bus.decoding.<a name given at run time>",
        "t.py:2 bridge.cli.outbox._not_retryable",
        "t.py:3 tests.test_config._check_config",
        "t.py:7 bridge.cli.service._DEMO_STATE_DIR",
        "t.py:8 bridge.bus.decoding._decode_each",
        "t.py:9 bridge.pages.routes._AGES_KEPT_SECONDS",
    ]


def test_the_checks_run_on_one_worker(request: pytest.FixtureRequest) -> None:
    """Under ``--dist loadgroup`` (make test) the checks of this module are one group, sent to
    one worker, which parses the project once for all of them."""
    grouped = bool(request.config.getoption("loadgroup", default=False))
    assert request.node.nodeid.endswith(f"@{GROUP}") == grouped, request.node.nodeid
