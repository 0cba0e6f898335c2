"""The cache's failure policy: :mod:`redkit.failure`, with each failure reported as a note.

What the policies mean for the cache (see docs/cache.md): with ``on_error="open"`` (the
cache's default) a read Redis cannot answer is a miss (``get`` returns its default,
``get_or_set`` runs the loader and stores nothing) and a failed write (``set``, ``add``,
``set_many``, ``touch``, ``incr``) is logged and dropped; invalidations (``delete``,
``invalidate_tags``, ``clear``) raise whatever the policy, since one that failed silently
would leave values the application believes gone. ``"closed"`` raises. Each failure, and
each call answered without Redis during the cooldown, is a ``cache.error`` note.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, TypeVar

from redkit import errors, ops
from redkit.failure import FailurePolicy, unavailable

T = TypeVar("T")
log = logging.getLogger("redkit.cache")
_FAILED: Any = object()


def _failed(_: errors.ConnectionError | None) -> Any:
    return _FAILED


class CacheFailures:
    """The failure policy of one cache namespace.

    Args:
        namespace: names the cache in log lines and notes.
        on_error: ``"open"`` or ``"closed"``.
        cooldown: seconds to skip Redis after a failure.
        observers: the facade's live list of observers (notes are skipped while empty).
    """

    __slots__ = ("_note", "observers", "policy")

    def __init__(
        self, namespace: str, on_error: str, cooldown: float, observers: Sequence[ops.Observer]
    ) -> None:
        self.policy = FailurePolicy(f"cache {namespace!r}", on_error, cooldown, logger=log)
        self._note = (ops.Note("cache.error", namespace),)
        self.observers = observers

    @property
    def on_error(self) -> str:
        return self.policy.on_error

    def cooling(self) -> bool:
        """True while the cache skips Redis after a failure."""
        return bool(self.policy.down_until) and self.policy.cooling_down()

    def failed(self, exc: BaseException | None) -> ops.Flow[bool]:
        """A flow: True (noted) when ``exc`` is an outage that ``"open"`` answers (None: a
        call skipped during the cooldown); raises it when closed; False for other errors
        (see :func:`redkit.failure.unavailable`)."""
        down = None
        if exc is not None:
            down = unavailable(exc) if isinstance(exc, errors.RedkitError) else None
            if down is None:
                return False
        self.policy.failed(down)  # raises when failing closed
        yield from self._note if self.observers else ()
        return True

    def guarded(self, flow: ops.Flow[T], fallback: T) -> ops.Flow[T]:
        """``flow``, or ``fallback`` when Redis is unavailable and the policy is ``"open"``."""
        result = yield from self.policy.guard(flow, _failed)
        if result is _FAILED:
            yield from self._note if self.observers else ()
            return fallback
        return result
