"""What a rate limit check answers: :class:`RateLimitResult` and its :class:`LimitState` values.

:func:`parse_reply` reads the reply of every rate limit script (``rl_<algorithm>.lua``):
``{status, retry_after_us, then per limit: remaining, reset_after_us}``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from redkit.errors import ScriptError
from redkit.ratelimit.policy import Limit
from redkit.scripts import check


class LimitState(NamedTuple):
    """One limit's state after a check: what is left and when it is whole again.

    ``reset_after`` is the number of seconds until the limit is fully restored (no usage
    counted against it).
    """

    limit: Limit
    remaining: int
    reset_after: float


def _tightness(state: LimitState) -> tuple[int, float]:
    return state.remaining, -state.reset_after


@dataclass(slots=True)
class RateLimitResult:
    """The answer to a check.

    Attributes:
        allowed: whether the hit was admitted (and charged to every limit).
        retry_after: seconds to wait before the same hit can be admitted; 0 when allowed,
            ``math.inf`` when the cost exceeds a limit's capacity and never will be.
        states: every limit of the policy, in policy order.
        degraded: True when Redis was not asked (or did not answer) and the result comes
            from the failure policy (fail open, or the local fallback limiter).
    """

    allowed: bool
    retry_after: float
    states: tuple[LimitState, ...]
    degraded: bool = False

    @property
    def tightest(self) -> LimitState:
        """The limit with the least remaining (of equals, the one that resets last)."""
        states = self.states
        return states[0] if len(states) == 1 else min(states, key=_tightness)

    @property
    def remaining(self) -> int:
        """What is left of the tightest limit."""
        return self.tightest.remaining

    @property
    def reset_after(self) -> float:
        """Seconds until the tightest limit is fully restored."""
        return self.tightest.reset_after

    @property
    def limit(self) -> Limit:
        """The tightest limit (the one with the least remaining)."""
        return self.tightest.limit


_new = tuple.__new__

# the status every rate limit script replies first
ALLOWED = 0  # admitted (and charged, for a hit)
LIMITED = 1  # rejected; retry after the reported wait
NEVER = 2  # rejected; the cost exceeds a limit's capacity and never fits


def limit_state(limit: Limit, remaining: int, reset_after: float) -> LimitState:
    """A :class:`LimitState`, built without the named tuple's argument handling (hot path)."""
    return _new(LimitState, (limit, remaining, reset_after))


def parse_reply(reply: Any, limits: Sequence[Limit], name: str) -> RateLimitResult:
    """A script's reply ``{status, retry_after_us, (remaining, reset_after_us) per limit}``.

    ``name`` (the script) is for the error message when the reply is not of that shape.
    """
    try:
        status = reply[0]
        if len(limits) == 1 and len(reply) == 4:  # the common policy of one limit
            states: tuple[LimitState, ...] = (limit_state(limits[0], reply[2], reply[3] / 1e6),)
        else:
            states = tuple(
                [
                    limit_state(limit, reply[i], reply[i + 1] / 1e6)
                    for i, limit in zip(range(2, len(reply), 2), limits, strict=True)
                ]
            )
        if status == ALLOWED:
            return RateLimitResult(True, 0.0, states)
        if status == LIMITED:
            return RateLimitResult(False, reply[1] / 1e6, states)
        if status == NEVER:
            return RateLimitResult(False, math.inf, states)
    except (TypeError, ValueError, IndexError):
        pass
    check(name, reply)  # a negative status: the error it stands for
    raise ScriptError(f"{name} replied {reply!r}")
