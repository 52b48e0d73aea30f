"""A package's public names, each imported from its submodule when first asked for.

A command imports what it uses: ``publish`` takes ``Envelope`` from ``bridge.bus`` without the
bus's prometheus_client metrics, ``check-config`` one message module of nine
(docs/performance.md, "Start-up"). A package lists its names by submodule once, in
``lazy_exports``; its ``TYPE_CHECKING`` imports tell type checkers the same.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType

__all__ = ["lazy_exports"]


def lazy_exports(package: str, names: Mapping[str, Sequence[str]]) -> Callable[[str], object]:
    """The module ``__getattr__`` of ``package``: each name in ``names[submodule]`` comes from
    ``package.submodule``, imported on first use and then kept on the package.

    A name that is also a submodule's (``bridge.schema.describe``, the function and its module)
    stays the function: importing the submodule binds the package's attribute to the module,
    so it is bound again after every import made here."""
    source = {name: submodule for submodule, each in names.items() for name in each}
    clashing = {name: source[name] for name in source if name in names}

    def __getattr__(name: str) -> object:
        if name not in source:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = f"{package}.{source[name]}"
        # __import__ rather than importlib.import_module: -X importtime reports only imports
        # made through it, and the lazy ones are those worth measuring.
        __import__(module)
        value = getattr(sys.modules[module], name)
        namespace = vars(sys.modules[package])
        namespace[name] = value
        for clash, submodule in clashing.items():
            if isinstance(namespace.get(clash), ModuleType):
                namespace[clash] = getattr(sys.modules[f"{package}.{submodule}"], clash)
        return value

    return __getattr__
