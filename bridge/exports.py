"""A package's public names, each imported from its submodule when first asked for.

A command imports what it uses: ``publish`` takes ``Envelope`` from ``bridge.bus`` without the
bus's prometheus_client metrics, ``check-config`` one message module of nine
(docs/performance.md, "Start-up"). A package lists its names by submodule once, in
``lazy_exports``; its ``TYPE_CHECKING`` imports tell type checkers the same.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from types import ModuleType
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, names: Mapping[str, Sequence[str]]) -> Callable[[str], object]:
    """The module ``__getattr__`` of ``package``: each name in ``names[submodule]`` comes from
    ``package.submodule``, imported on first use and then kept on the package.

    Call it from the package's ``__init__``. A public name that is also a submodule's
    (``bridge.schema.describe``, a function in a module of that name) stays the public object
    when the submodule is imported, as it did when the package imported it eagerly."""
    source = {name: submodule for submodule, each in names.items() for name in each}
    clashing = frozenset(source) & frozenset(names)
    if clashing:
        sys.modules[package].__class__ = _keeping(clashing)

    def __getattr__(name: str) -> object:
        if name not in source:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = f"{package}.{source[name]}"
        # __import__ rather than importlib.import_module: -X importtime reports only imports
        # made through it, and the lazy ones are those worth measuring.
        __import__(module)
        value = getattr(sys.modules[module], name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


def _keeping(names: Collection[str]) -> type[ModuleType]:
    """A package class whose ``names`` stay the public objects of those names: importing a
    submodule binds it to the package's attribute of its name (the import system's ``setattr``),
    and this takes the submodule's object of that name instead."""

    class Package(ModuleType):
        def __setattr__(self, name: str, value: Any) -> None:
            if name in names and isinstance(value, ModuleType):
                value = getattr(value, name)
            super().__setattr__(name, value)

    return Package
