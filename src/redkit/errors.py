"""Every error redkit raises.

The family::

    RedkitError                      base of everything below
    ├── ConfigError                  bad settings, policy strings, arguments (also ValueError)
    ├── ConnectionError              the server cannot be reached or timed out
    │                                (also the builtin ConnectionError)
    ├── EmbeddedServerError          the embedded Valkey cannot be found or started
    ├── RedisCommandError            the server refused a command (wraps redis-py's ResponseError)
    ├── ScriptError                  a Lua script reported an unknown status code
    ├── DataError                    stored data is not what the operation expects
    │                                (wrong type, not redkit's format, corrupted)
    ├── SerializationError           a value cannot be encoded or decoded (also TypeError)
    │   └── TamperedDataError        a signed value failed its HMAC check
    ├── LockError                    locks
    │   ├── LockNotAcquiredError     acquiring timed out
    │   ├── LockNotOwnedError        release/extend by someone who does not hold it
    │   └── LockLostError            the lock expired (or was taken) while held
    ├── RateLimitExceededError       acquire() on a rate or concurrency limiter timed out
    ├── JobFailedError               a job failed for good, was dead-lettered or cancelled
    ├── JobNotFinishedError          Job.result() timed out (also TimeoutError)
    ├── JobTimeoutError              a job ran past its task's timeout (also TimeoutError)
    ├── JobCrashedError              the process running a process-pool job died
    ├── JobCancelledError            a running job was asked to stop (raised in its handler)
    ├── IdempotencyError             idempotency keys
    │   ├── IdempotencyConflictError another call with the same key is still running
    │   ├── IdempotencyMismatchError the key was used before with other arguments
    │   └── IdempotentCallFailedError the first call with the key failed, and that was kept
    ├── SubscriptionOverflowError    an events subscription fell too far behind ("disconnect")
    └── MissingDependencyError       an optional extra is not installed (also ImportError)

redis-py's exceptions never escape a redkit call: the drivers wrap them at the boundary
(see :mod:`redkit.ops`).
"""

from __future__ import annotations

import builtins
from typing import Any


class RedkitError(Exception):
    """Base class of every error redkit raises."""


class ConfigError(RedkitError, ValueError):
    """A setting, argument or policy string is not valid. The message names it."""


class ConnectionError(RedkitError, builtins.ConnectionError):  # noqa: A001 - the builtin's meaning
    """The server could not be reached, or did not answer within the timeout.

    Also an instance of the builtin :class:`ConnectionError` (and so of :class:`OSError`),
    so code that handles network failures generically handles this one too.
    """


class EmbeddedServerError(RedkitError):
    """The embedded Valkey server could not be found or started."""


class RedisCommandError(RedkitError):
    """The server answered a command with an error."""


class ScriptError(RedkitError):
    """A Lua script returned a status code that no table entry explains."""


class DataError(RedkitError):
    """Data stored under a key is not what the operation expects.

    The key holds another Redis type, a value redkit did not write, or a value of the
    wrong kind (``incr`` on a non-integer). Argument errors are :class:`ConfigError`.
    """


class SerializationError(RedkitError, TypeError):
    """A value could not be serialized or deserialized."""


class TamperedDataError(SerializationError):
    """A signed value did not match its signature and was rejected unread."""


class LockError(RedkitError):
    """Base class of lock errors."""


class LockNotAcquiredError(LockError):
    """The lock was not acquired within the timeout."""


class LockNotOwnedError(LockError):
    """The caller tried to release or extend a lock it does not hold."""


class LockLostError(LockError):
    """The lock expired or passed to another owner while its holder still worked."""


class RateLimitExceededError(RedkitError):
    """A limiter did not admit the caller within its timeout.

    ``retry_after`` is the limiter's estimate, in seconds, of when it would have
    (``math.inf`` when the cost can never fit); ``result`` is the last check's result.
    """

    def __init__(self, message: str, retry_after: float, result: object = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.result = result


class JobFailedError(RedkitError):
    """The job failed for good (retries used up), was dead-lettered or was cancelled.

    ``error`` holds the last failure's ``type``, ``message``, ``traceback`` and
    ``attempts`` (None when the job never failed, e.g. cancelled).
    """

    def __init__(self, message: str, error: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.error = error


class JobNotFinishedError(RedkitError, TimeoutError):
    """The job did not finish within the time given to ``Job.result``."""


class JobTimeoutError(RedkitError, TimeoutError):
    """A job ran longer than its task's ``timeout``; recorded as the job's error."""


class JobCrashedError(RedkitError):
    """The child process running a ``process=True`` task died (killed, crashed, out of memory)."""


class JobCancelledError(RedkitError):
    """The running job was cancelled: raised inside its handler by ``check_cancelled()``."""


class IdempotencyError(RedkitError):
    """Base class of idempotency-key errors."""


class IdempotencyConflictError(IdempotencyError):
    """Another call with the same idempotency key is running (and this one did not wait,
    or waited past its timeout). Retry later: the running call's result will be replayed."""


class IdempotencyMismatchError(IdempotencyError):
    """The idempotency key was used before with different arguments (another fingerprint).

    A key names one operation; send a new key for a new operation.
    """


class IdempotentCallFailedError(IdempotencyError):
    """The first call with this key raised, and the ``on_failure="keep"`` policy stored it.

    ``error`` holds the stored failure's ``type`` and ``message``.
    """

    def __init__(self, message: str, error: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.error = error


class MissingDependencyError(RedkitError, ImportError):
    """An optional dependency is missing; the message gives the install command."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; install it with: pip install 'redkit[{extra}]'"
        )
        self.package = package
        self.extra = extra


class SubscriptionOverflowError(RedkitError):
    """An events subscription with ``overflow="disconnect"`` fell too far behind.

    Its local buffer was full; the subscription is closed, and what it had buffered was
    delivered before this error.
    """


__all__ = [
    "ConfigError",
    "ConnectionError",
    "DataError",
    "EmbeddedServerError",
    "IdempotencyConflictError",
    "IdempotencyError",
    "IdempotencyMismatchError",
    "IdempotentCallFailedError",
    "JobCancelledError",
    "JobCrashedError",
    "JobFailedError",
    "JobNotFinishedError",
    "JobTimeoutError",
    "LockError",
    "LockLostError",
    "LockNotAcquiredError",
    "LockNotOwnedError",
    "MissingDependencyError",
    "RateLimitExceededError",
    "RedisCommandError",
    "RedkitError",
    "ScriptError",
    "SerializationError",
    "SubscriptionOverflowError",
    "TamperedDataError",
]

