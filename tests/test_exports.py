"""A package's public names are imported from their submodules when first asked for."""

from __future__ import annotations

import subprocess
import sys

import pytest

import bridge.messages


def fresh(code: str) -> str:
    """What ``code`` prints in a new interpreter (nothing imported before it)."""
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return completed.stdout.strip()


def test_a_name_imports_its_own_submodule_alone() -> None:
    """Asking ``bridge.messages`` for the alert severities imports their module, no other."""
    printed = fresh(
        "import sys\n"
        "import bridge.messages\n"
        "before = sorted(m for m in sys.modules if m.startswith('bridge.messages.'))\n"
        "bridge.messages.AlertSeverity\n"
        "after = sorted(m for m in sys.modules if m.startswith('bridge.messages.'))\n"
        "print(before, after)"
    )
    assert printed == "[] ['bridge.messages._base', 'bridge.messages.alerts']"


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
