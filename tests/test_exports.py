"""A package's public names are imported from their submodules when first asked for."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys

import pytest

import bridge.messages
from tests.support import ROOT

# The packages whose names come through ``lazy_exports``: each lists them three times (its
# ``TYPE_CHECKING`` imports for type checkers, the ``lazy_exports`` table, ``__all__``).
LAZY_PACKAGES = sorted(
    ".".join(path.parent.relative_to(ROOT).parts)
    for path in (ROOT / "bridge").rglob("__init__.py")
    if "lazy_exports(" in path.read_text()
)


def fresh(code: str) -> str:
    """What ``code`` prints in a new interpreter (nothing imported before it)."""
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return completed.stdout.strip()


def test_a_name_imports_its_own_submodule_alone() -> None:
    """Asking ``bridge.messages`` for the alert severities imports their module alone (built on
    nothing: no model, no pydantic), no other; a model imports its module and what it is built
    on (``_base``, which writes timestamps with ``timestamps``)."""
    printed = fresh(
        "import sys\n"
        "import bridge.messages\n"
        "before = sorted(m for m in sys.modules if m.startswith('bridge.messages.'))\n"
        "bridge.messages.AlertSeverity\n"
        "after = sorted(m for m in sys.modules if m.startswith('bridge.messages.'))\n"
        "bridge.messages.SystemAlert\n"
        "then = sorted(m for m in sys.modules if m.startswith('bridge.messages.'))\n"
        "print(before, after, then)"
    )
    assert printed == (
        "[] ['bridge.messages.severities'] ['bridge.messages._base', 'bridge.messages.alerts',"
        " 'bridge.messages.severities', 'bridge.messages.timestamps']"
    )


def test_a_name_is_the_submodule_s_own_object() -> None:
    """The package hands out the very object its submodule defines, and keeps it."""
    from bridge.messages.registry import model_for

    assert bridge.messages.model_for is model_for
    assert vars(bridge.messages)["model_for"] is model_for


def test_a_function_named_as_its_module_stays_the_function() -> None:
    """``bridge.schema.describe`` is the function even when its module was imported first
    (the import system binds the module to the package's attribute of its name)."""
    printed = fresh(
        "import importlib\n"
        "importlib.import_module('bridge.schema.describe')\n"
        "import bridge.schema\n"
        "from bridge.schema import describe\n"
        "print(type(bridge.schema.describe).__name__, type(describe).__name__)"
    )
    assert printed == "function function"


@pytest.mark.parametrize("package", ["bridge.bus", "bridge.messages", "bridge.schema"])
def test_an_unknown_name_is_an_attribute_error_naming_the_package(package: str) -> None:
    """A name the package does not export fails as for any module, naming the package."""
    module = sys.modules.get(package) or __import__(package, fromlist=["_"])
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'Nothing'"):
        _ = module.Nothing


def _listed(package: str) -> tuple[dict[str, str], dict[str, str], set[str], set[str]]:
    """What ``package``'s ``__init__`` says of its names: each one's submodule by its
    ``TYPE_CHECKING`` imports and by its ``lazy_exports`` table, its ``__all__``, and the
    names it defines or imports eagerly itself."""
    path = ROOT / package.replace(".", "/") / "__init__.py"
    tree = ast.parse(path.read_text())
    typed: dict[str, str] = {}
    lazy: dict[str, str] = {}
    own: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imported in node.body:
                assert isinstance(imported, ast.ImportFrom)
                assert imported.module
                for alias in imported.names:
                    typed[alias.asname or alias.name] = imported.module.removeprefix(package + ".")
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            own.add(node.name)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            own |= {alias.asname or alias.name for alias in node.names}  # imported eagerly
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = {target.id for target in targets if isinstance(target, ast.Name)}
            own |= names
            call = node.value
            if "__getattr__" in names and isinstance(call, ast.Call):
                table = ast.literal_eval(call.args[1])
                lazy = {name: sub for sub, each in table.items() for name in each}
    exported = set(importlib.import_module(package).__all__)
    return typed, lazy, exported, own


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_a_package_lists_its_lazy_names_alike_in_each_place(package: str) -> None:
    """A lazy package's TYPE_CHECKING imports and lazy_exports table name the same names from the
    same submodules, and its __all__ those and what it defines or imports eagerly, no other."""
    typed, lazy, exported, own = _listed(package)
    assert typed == lazy
    assert exported - own == set(lazy)
