"""What a limiter does when Redis is unavailable: fail closed, fail open, or limit locally.

The server is *unavailable* when it cannot be reached, does not answer within the
limiter's deadline, or answers that it cannot serve anyone right now (an error reply
``LOADING``, ``READONLY``, ``MASTERDOWN``, ``CLUSTERDOWN``, ``TRYAGAIN``, ``BUSY`` or
``OOM``). Such a failure is counted, logged (at most once per ``_LOG_EVERY`` seconds, so
an outage does not flood the log), and opens a short *cooldown*: for ``cooldown`` seconds
the limiter does not ask Redis at all and answers by its policy at once, so a dead server
costs each request nothing rather than a timeout. Failing closed raises
:class:`redkit.errors.ConnectionError`.

Any other error reply is not an outage: it is raised as it came, whatever ``on_error``
says, and is neither counted nor cooled down (another Redis type at a limiter's key is a
:class:`redkit.errors.DataError`, any other refusal a
:class:`redkit.errors.RedisCommandError`).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Literal

from redkit import errors

OnError = Literal["closed", "open", "local"]
ON_ERROR: tuple[OnError, ...] = ("closed", "open", "local")
# error replies that say the server cannot serve now, not that the command was wrong
_DOWN_REPLIES = ("LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "OOM")

log = logging.getLogger("redkit.ratelimit")
_LOG_EVERY = 10.0


def unavailable(exc: errors.RedkitError) -> errors.ConnectionError | None:
    """``exc`` as a ConnectionError when it means the server is unavailable, else None."""
    if isinstance(exc, errors.ConnectionError):
        return exc
    if isinstance(exc, errors.RedisCommandError) and str(exc).startswith(_DOWN_REPLIES):
        down = errors.ConnectionError(f"Redis cannot serve the check now: {exc}")
        down.__cause__ = exc
        return down
    return None


class FailurePolicy:
    """The failure state of one limiter: policy, failure count, cooldown."""

    __slots__ = ("_last_log", "cooldown", "down_until", "failures", "name", "on_error")

    def __init__(self, name: str, on_error: str, cooldown: float) -> None:
        if on_error not in ON_ERROR:
            raise errors.ConfigError(
                f"on_error must be one of {', '.join(ON_ERROR)}; got {on_error!r}"
            )
        if not (cooldown >= 0 and math.isfinite(cooldown)):
            raise errors.ConfigError(f"cooldown must be >= 0 seconds, got {cooldown!r}")
        self.name = name
        self.on_error: OnError = on_error
        self.cooldown = cooldown
        self.failures = 0
        self.down_until = 0.0
        self._last_log = -math.inf

    def cooling_down(self) -> bool:
        """True while the limiter skips Redis after a failure."""
        return self.down_until > 0.0 and time.monotonic() < self.down_until

    def failed(self, exc: errors.ConnectionError | None) -> None:
        """Record a failure (``exc`` None: skipped during the cooldown); raise if failing closed."""
        now = time.monotonic()
        if exc is not None:
            self.down_until = now + self.cooldown
        self.failures += 1
        if now - self._last_log >= _LOG_EVERY:
            self._last_log = now
            log.warning(
                "rate limiter %r: Redis unavailable (%s); failing %s (%d failures so far)",
                self.name,
                exc if exc is not None else "cooling down after an error",
                {"closed": "closed", "open": "open", "local": "over to the local limiter"}[
                    self.on_error
                ],
                self.failures,
            )
        if self.on_error == "closed":
            if exc is not None:
                raise exc
            raise errors.ConnectionError(
                f"rate limiter {self.name!r}: Redis failed less than {self.cooldown}s ago; "
                "failing closed until the cooldown ends"
            )
