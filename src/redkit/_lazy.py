"""Imports deferred to first use: optional dependencies (failing with the command that
installs them) and a package's exported names (PEP 562)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from types import ModuleType

from redkit.errors import MissingDependencyError


def require(module: str, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise MissingDependencyError naming ``pip install 'redkit[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(package or module.split(".")[0], extra) from None


def exports(
    package: str, sources: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` (PEP 562) for the names it exports
    without importing them: ``sources`` maps each module to its names, space-separated.

    A name is imported from its module when first looked up (``package.Name`` or ``from
    package import Name``) and then kept in the package, so later lookups are ordinary.
    A subpackage is imported when first looked up too (``package.sub.Name`` after ``import
    package``), as it was found when the package imported everything at once.
    Define them under ``if not TYPE_CHECKING:`` with the same names imported under ``if
    TYPE_CHECKING:``, so that mypy sees the real names and still flags a misspelt one.
    """
    where = {name: module for module, names in sources.items() for name in names.split()}
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is not None:
            value = getattr(importlib.import_module(module), name)
        elif not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}"):
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__
