"""What a cache does when Redis fails: fail open (the default) or closed.

``on_error="open"``: a read that Redis cannot answer is a miss (``get`` returns its
default, ``get_or_set`` runs the loader and returns its value without storing it), and a
write that fails (``set``, ``add``, ``set_many``, ``touch``, ``incr``) is logged and
dropped. Invalidations (``delete``, ``invalidate_tags``, ``clear``) raise whatever the
policy: one that failed silently would leave values the application believes gone.
``on_error="closed"``: every failure raises. Failures are counted as ``cache.error``
notes and logged at most once per ``_LOG_EVERY`` seconds, so an outage does not flood
the log.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Literal, TypeVar

from redkit import errors, ops

OnError = Literal["open", "closed"]
ON_ERROR: tuple[OnError, ...] = ("open", "closed")
#: The failures ``on_error`` decides about: the server unreachable, slow, or refusing
#: (``LOADING``, ``READONLY``, out of memory). Data errors are never absorbed.
UNAVAILABLE = (errors.ConnectionError, errors.RedisCommandError)

T = TypeVar("T")
log = logging.getLogger("redkit.cache")
_LOG_EVERY = 10.0


class FailurePolicy:
    """The failure policy of one cache namespace."""

    __slots__ = ("_last_log", "_note", "namespace", "observers", "on_error")

    def __init__(
        self, namespace: str, on_error: str, observers: Sequence[ops.Observer] = ()
    ) -> None:
        if on_error not in ON_ERROR:
            raise errors.ConfigError(
                f"on_error must be one of {', '.join(ON_ERROR)}; got {on_error!r}"
            )
        self.namespace = namespace
        self.on_error: OnError = on_error
        self._note = (ops.Note("cache.error", namespace),)
        self.observers = observers
        self._last_log = -math.inf

    def absorbs(self, exc: BaseException, what: str) -> bool:
        """True when ``exc`` is a Redis failure to answer by the policy (logged)."""
        if self.on_error != "open" or not isinstance(exc, UNAVAILABLE):
            return False
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY:
            self._last_log = now
            log.warning("cache %r: %s failed (%s); failing open", self.namespace, what, exc)
        return True

    def guarded(self, flow: ops.Flow[T], fallback: T, what: str) -> ops.Flow[T]:
        """``flow``, or ``fallback`` when Redis fails and the policy is ``"open"``."""
        if self.on_error == "closed":
            return flow
        return self._open(flow, fallback, what)

    def _open(self, flow: ops.Flow[T], fallback: T, what: str) -> ops.Flow[T]:
        try:
            return (yield from flow)
        except UNAVAILABLE as exc:
            self.absorbs(exc, what)
            yield from self._note if self.observers else ()
            return fallback

    def failed(self, exc: BaseException, what: str) -> ops.Flow[bool]:
        """A flow: True (noted) when ``exc`` is absorbed by the policy, False to raise it."""
        if not self.absorbs(exc, what):
            return False
        yield from self._note if self.observers else ()
        return True
