"""What a rate limit check answers: :class:`RateLimitResult` and its :class:`LimitState` values.

:func:`parse_reply` reads the reply of the rate limit scripts (``rl_<algorithm>.lua``) once
unpacked (big-endian 64-bit integers in one string, cheaper for the server to reply than
an array): ``status, retry_after_us, then per limit: remaining, reset_after_us``;
:func:`parse_gcra` reads GCRA's, which gives each limit's lead instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from redkit.ratelimit.policy import Limit


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


def parse_reply(values: Sequence[int], limits: Sequence[Limit]) -> RateLimitResult:
    """A script's unpacked reply ``status, retry_after_us, (remaining, reset_after_us)...``."""
    if len(limits) == 1:  # the common policy of one limit
        states: tuple[LimitState, ...] = (limit_state(limits[0], values[2], values[3] / 1e6),)
    else:
        states = tuple(
            [
                limit_state(limit, values[i], values[i + 1] / 1e6)
                for i, limit in zip(range(2, len(values), 2), limits, strict=True)
            ]
        )
    return _result(values, states)


def parse_gcra(
    values: Sequence[int], limits: Sequence[Limit], spans: Sequence[tuple[float, float]]
) -> RateLimitResult:
    """rl_gcra's unpacked reply ``status, retry_after_us, lead_ns...`` as a result.

    ``spans``: each limit's emission interval and burst tolerance (``burst * interval``),
    in microseconds, computed as the script computes them.
    """
    if len(limits) == 1:  # the common policy of one limit
        interval, tolerance = spans[0]
        states: tuple[LimitState, ...] = (
            _gcra_state(limits[0], interval, tolerance, values[2] / 1000),
        )
    else:
        states = tuple(
            [
                _gcra_state(limit, interval, tolerance, lead / 1000)
                for limit, (interval, tolerance), lead in zip(
                    limits, spans, values[2:], strict=True
                )
            ]
        )
    return _result(values, states)


_floor, _ceil = math.floor, math.ceil


def _gcra_state(limit: Limit, interval: float, tolerance: float, ahead: float) -> LimitState:
    remaining = _floor((tolerance - ahead) / interval + 1e-9)
    return _new(LimitState, (limit, remaining if remaining > 0 else 0, _ceil(ahead) / 1e6))


def _result(values: Sequence[int], states: tuple[LimitState, ...]) -> RateLimitResult:
    status = values[0]
    if status == ALLOWED:
        return RateLimitResult(True, 0.0, states)
    if status == LIMITED:
        return RateLimitResult(False, values[1] / 1e6, states)
    if status == NEVER:
        return RateLimitResult(False, math.inf, states)
    raise ValueError(f"unknown status {status}")
