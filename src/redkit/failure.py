"""What a capability on a request path does when Redis is unavailable.

Such a capability (the session store, the token revoker, the rate limiters) takes these
three options, with the same meaning everywhere:

``on_error``
    ``"closed"``: the call raises :class:`redkit.errors.ConnectionError`.
    ``"open"``: the call is answered without Redis by the capability's documented rule
    (a fresh session, "not revoked", "admitted", a cache miss ...), and the failure is
    logged and counted. A capability may offer more (the limiters' ``"local"``). The
    default is ``"closed"`` wherever failing open would weaken a protection (sessions,
    token checks, limiters) and ``"open"`` for the cache, which only saves work.
``deadline``
    Seconds one call to Redis may take, connect and reply, with no retries
    (:meth:`redkit.client.RedkitCore.with_timeout`); ``None`` keeps the client's own
    timeouts and retries. It bounds what a dead or stalled server costs a request.
``cooldown``
    After a failure, seconds during which the capability does not ask Redis at all and
    answers by its policy at once (0: ask again at once), so an outage costs each request
    nothing rather than a timeout.

"Redis unavailable" means a :class:`redkit.errors.ConnectionError` (the server cannot be
reached, timed out, the deadline included, dropped the connection, or the cluster is
down) or an error reply that says the server cannot serve anyone right now (``LOADING``,
``READONLY``, ``MASTERDOWN``, ``CLUSTERDOWN``, ``TRYAGAIN``, ``BUSY``, ``OOM``): see
:func:`unavailable`. Any other :class:`~redkit.errors.RedisCommandError` (the server
refused the command) or a :class:`~redkit.errors.DataError` (a key holds data of the
wrong kind) is not an outage: it is raised whatever the policy, so that a bug or a bad
key never passes for a dead server (which ``"open"`` would wave through).

:class:`FailurePolicy` keeps the state (policy, failure count, cooldown) and the logging
(at most one warning per ``LOG_EVERY`` seconds, so an outage does not flood the log);
:meth:`FailurePolicy.guard` wraps a flow with it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, Protocol, TypedDict, TypeVar

import redis.exceptions as rex
from typing_extensions import Self

from redkit import errors, ops


class Timed(Protocol):
    """A facade or core that makes a sibling whose commands give up after ``seconds``."""

    def with_timeout(self, seconds: float) -> Self: ...


TimedT = TypeVar("TimedT", bound=Timed)

T = TypeVar("T")
OnError = Literal["closed", "open"]
ON_ERROR: tuple[OnError, ...] = ("closed", "open")
LOG_EVERY = 10.0
# error replies that say the server cannot serve now, not that the command was wrong
_DOWN_REPLIES = (
    "LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY ", "OOM"
)  # fmt: skip
_DOWN_CLASSES = (
    rex.ReadOnlyError,
    rex.OutOfMemoryError,
    rex.BusyLoadingError,
    rex.TryAgainError,
    rex.MasterDownError,
)

log = logging.getLogger("redkit")

_FAILING = {"closed": "failing closed", "open": "failing open"}


class FailureOptions(TypedDict, total=False):
    """The options every capability on a request path takes besides its own ``on_error``."""

    deadline: float | None
    cooldown: float


def unavailable(exc: errors.RedkitError) -> errors.ConnectionError | None:
    """``exc`` as a ConnectionError when it means the server is unavailable, else None."""
    if isinstance(exc, errors.ConnectionError):
        return exc
    # redis-py strips the code from the replies it has classes for (READONLY, OOM, LOADING)
    cause = exc.__cause__
    if isinstance(exc, errors.RedisCommandError) and (
        isinstance(cause, _DOWN_CLASSES) or str(exc).startswith(_DOWN_REPLIES)
    ):
        down = errors.ConnectionError(f"Redis cannot serve now: {exc}")
        down.__cause__ = exc
        return down
    return None


def check_deadline(deadline: float | None) -> float | None:
    """``deadline`` if it is None or a positive, finite number of seconds; else ConfigError."""
    if deadline is None:
        return None
    if isinstance(deadline, bool) or not isinstance(deadline, (int, float)):
        raise errors.ConfigError(f"deadline must be a number of seconds or None, got {deadline!r}")
    if not (deadline > 0 and math.isfinite(deadline)):
        raise errors.ConfigError(f"deadline must be a positive number of seconds, got {deadline!r}")
    return float(deadline)


def with_deadline(rk: TimedT, deadline: float | None) -> TimedT:
    """The core to run a capability's flows on: ``rk``, or its sibling that gives up after
    ``deadline`` seconds (a handed-in client keeps its own timeouts)."""
    return rk if deadline is None else rk.with_timeout(deadline)


class FailurePolicy:
    """The failure state of one capability object: policy, failure count, cooldown.

    Args:
        what: names the object in log lines and errors (``"sessions"``, ``"rate limiter
            'api'"``).
        on_error: one of ``choices``.
        cooldown: seconds to skip Redis after a failure.
        choices: the policies this capability offers (``"closed"`` and ``"open"``).
        failing: what each policy does, for the log line (``{"open": "serving fresh
            sessions"}``); defaults to "failing closed" / "failing open".
        logger: where the warnings go.
    """

    __slots__ = (
        "_failing",
        "_last_log",
        "_log",
        "cooldown",
        "down_until",
        "failures",
        "on_error",
        "what",
    )

    def __init__(
        self,
        what: str,
        on_error: str = "closed",
        cooldown: float = 1.0,
        *,
        choices: Sequence[str] = ON_ERROR,
        failing: Mapping[str, str] | None = None,
        logger: logging.Logger = log,
    ) -> None:
        if on_error not in choices:
            raise errors.ConfigError(
                f"on_error must be one of {', '.join(map(repr, choices))}; got {on_error!r}"
            )
        if isinstance(cooldown, bool) or not isinstance(cooldown, (int, float)):
            raise errors.ConfigError(f"cooldown must be a number of seconds, got {cooldown!r}")
        if not (cooldown >= 0 and math.isfinite(cooldown)):
            raise errors.ConfigError(f"cooldown must be >= 0 seconds, got {cooldown!r}")
        self.what = what
        self.on_error = on_error
        self.cooldown = float(cooldown)
        self.failures = 0
        self.down_until = 0.0
        self._failing = {**_FAILING, **(failing or {})}
        self._log = logger
        self._last_log = -math.inf

    def cooling_down(self) -> bool:
        """True while the capability skips Redis after a failure."""
        return self.down_until > 0.0 and time.monotonic() < self.down_until

    def failed(self, exc: errors.ConnectionError | None) -> None:
        """Record a failure (``exc`` None: skipped during the cooldown); raise if closed."""
        now = time.monotonic()
        if exc is not None:
            self.down_until = now + self.cooldown
        self.failures += 1
        if now - self._last_log >= LOG_EVERY:
            self._last_log = now
            self._log.warning(  # the error as text: a record kept by a handler must not
                "%s: Redis unavailable (%s); %s (%d failures so far)",  # keep its traceback
                self.what,
                str(exc) if exc is not None else "cooling down after an error",
                self._failing.get(self.on_error, f"failing {self.on_error}"),
                self.failures,
            )
        if self.on_error == "closed":
            if exc is not None:
                raise exc
            raise errors.ConnectionError(
                f"{self.what}: Redis failed less than {self.cooldown}s ago; "
                "failing closed until the cooldown ends"
            )

    def guard(
        self, flow: ops.Flow[T], fallback: Callable[[errors.ConnectionError | None], T]
    ) -> ops.Flow[T]:
        """``flow``, answered by ``fallback`` when Redis is unavailable (or cooling down).

        When failing closed the error is raised instead. ``fallback`` gets the error
        (None during a cooldown, when Redis was not asked).
        """
        if self.down_until and self.cooling_down():
            flow.close()
            self.failed(None)
            return fallback(None)
        try:
            return (yield from flow)
        except errors.RedkitError as exc:
            down = unavailable(exc)
            if down is None:
                raise
            self.failed(down)
            return fallback(down)


class Guarded:
    """What a capability with a :class:`FailurePolicy` (``self._failure``) shows of it."""

    _failure: FailurePolicy

    @property
    def on_error(self) -> str:
        """What a call does when Redis is unavailable (``"closed"``, ``"open"`` ...)."""
        return self._failure.on_error

    @property
    def failures(self) -> int:
        """How many calls the failure policy answered instead of Redis."""
        return self._failure.failures
