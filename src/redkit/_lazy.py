"""Optional dependencies, imported when first used, failing with the command that installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from redkit.errors import MissingDependencyError


def require(module: str, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise MissingDependencyError naming ``pip install 'redkit[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(package or module.split(".")[0], extra) from None
