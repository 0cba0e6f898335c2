"""What a limiter does when Redis is unavailable: fail closed, fail open, or limit locally.

The rules are the core's (:mod:`redkit.failure`): what counts as unavailable, the
cooldown, the logging. A limiter adds a third policy, ``"local"``: admit by an
in-process limiter of the same policy until Redis answers again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal, Protocol, TypeVar

from redkit import ops
from redkit.failure import FailurePolicy, Timed, unavailable
from redkit.keys import Keyspace

OnError = Literal["closed", "open", "local"]
ON_ERROR: tuple[OnError, ...] = ("closed", "open", "local")

log = logging.getLogger("redkit.ratelimit")


class LimiterClient(Timed, Protocol):
    """What a limiter needs of a facade (sync or async): its keys and a deadline sibling."""

    @property
    def keys(self) -> Keyspace: ...

    @property
    def observers(self) -> Sequence[ops.Observer]: ...


C = TypeVar("C", bound=LimiterClient)


def limiter_policy(name: str, on_error: str, cooldown: float) -> FailurePolicy:
    """The failure policy of the limiter called ``name``."""
    return FailurePolicy(
        f"rate limiter {name!r}",
        on_error,
        cooldown,
        choices=ON_ERROR,
        failing={"local": "failing over to the local limiter"},
        logger=log,
    )


__all__ = [
    "ON_ERROR",
    "FailurePolicy",
    "LimiterClient",
    "OnError",
    "limiter_policy",
    "unavailable",
]
