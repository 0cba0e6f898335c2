"""redkit for django: one module per capability (see the docs page of each capability).

``redkit.integrations.django.RedkitCache`` is the cache backend (in :mod:`.cache`); it is
imported on first access, so importing this package does not import Django.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RedkitCache"]


def __getattr__(name: str) -> Any:
    if name == "RedkitCache":
        from redkit.integrations.django.cache import RedkitCache

        return RedkitCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
