"""Stable cache keys for decorated functions.

A key is ``module.qualname:digest`` where the digest is BLAKE2b-128 of the call's
arguments, bound to the function's signature (so ``f(1)`` and ``f(x=1)`` share a key,
defaults included) and serialized canonically with orjson (sorted dict keys). Python's
``hash()`` is never used: it is salted per process, so two instances would never agree.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from redkit.errors import ConfigError

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            pass
    raise TypeError(type(value).__name__)


class CallKey:
    """Builds the cache key of one call of ``func``.

    Args:
        func: the decorated function.
        key: a function of the call's arguments returning the key (str) to use instead.
        ignore: names of parameters left out of the key (e.g. ``("self",)``).
    """

    def __init__(
        self,
        func: Callable[..., Any],
        key: Callable[..., str] | None = None,
        ignore: Sequence[str] = (),
    ) -> None:
        self._func = func
        self._custom = key
        self._ignore = frozenset(ignore)
        self._signature = inspect.signature(func)
        self.name = f"{func.__module__}.{func.__qualname__}"

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if self._custom is not None:
            return f"{self.name}:{self._custom(*args, **kwargs)}"
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"{self.name}() called with bad arguments: {exc}") from None
        bound.apply_defaults()
        items = {k: v for k, v in bound.arguments.items() if k not in self._ignore}
        try:
            payload = orjson.dumps(items, option=_OPTIONS, default=_default)
        except TypeError as exc:
            raise ConfigError(
                f"cannot derive a cache key for {self.name}(): {exc}; pass "
                "key=lambda ...: '...' or leave the argument out with ignore=('name',)"
            ) from None
        return f"{self.name}:{hashlib.blake2b(payload, digest_size=16).hexdigest()}"
