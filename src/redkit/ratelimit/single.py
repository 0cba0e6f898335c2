"""Lean hits for the common case: a policy of one limit.

The general scripts (``rl_<algorithm>.lua``) take any number of limits and check them all
before charging any; that costs loops, tables and extra reads. A one-limit policy needs
none of it, so a hit on one (with ``1 <= cost <= capacity``) runs a specialised script,
``rl_<algorithm>_one``, which does the least work the algorithm allows and, where it can,
replies with one integer instead of an array (an array reply costs the server about as
much as a ``GET``). Both scripts use the same keys and stored values, so hits, peeks
(always the general script) and costs that never fit (also the general script) see one
state. Everything that does not depend on the caller is computed here, once.

Each class below turns a cost into the script's arguments and the script's reply into a
:class:`~redkit.ratelimit.ops.RateLimitResult`, exactly as the general script would have
reported it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from redkit.errors import ScriptError
from redkit.ratelimit.policy import Limit
from redkit.ratelimit.results import RateLimitResult, limit_state, parse_reply
from redkit.scripts import Script, script

_EXACT = 2**53  # integers a Lua number (a double) holds exactly


class SingleHit:
    """How one algorithm hits a one-limit policy: the script, its arguments, its reply."""

    __slots__ = ("limit", "max_cost", "script")

    def __init__(self, limit: Limit, name: str, max_cost: int) -> None:
        self.limit = limit
        self.script: Script = script(name)
        self.max_cost = max_cost

    def args(self, cost: int) -> tuple[int | float, ...]:  # pragma: no cover - abstract
        """The script's arguments for a hit of ``cost`` (1 <= cost <= max_cost)."""
        raise NotImplementedError

    def parse(self, reply: Any, cost: int) -> RateLimitResult:
        """The standard reply ``{allowed, retry_after_us, remaining, reset_after_us}``."""
        return parse_reply(reply, (self.limit,), self.script.name)

    def _bad(self, reply: Any) -> ScriptError:
        return ScriptError(f"{self.script.name} replied {reply!r}")


class FixedOne(SingleHit):
    """Fixed window: INCRBY, PTTL (PEXPIRE on a first hit); one packed integer back."""

    __slots__ = ("_amount", "_period_ms", "_scale")

    def __init__(self, limit: Limit) -> None:
        super().__init__(limit, "rl_fixed_one", limit.amount)
        self._amount = limit.amount
        self._period_ms = math.ceil(limit.period_us / 1000)
        self._scale = limit.amount + 1

    @staticmethod
    def fits(limit: Limit) -> bool:
        """Whether ``ttl_ms * (amount + 1) + count`` stays exact in a Lua number."""
        period_ms = math.ceil(limit.period_us / 1000)
        return period_ms * (limit.amount + 1) + limit.amount < _EXACT

    def args(self, cost: int) -> tuple[int, ...]:
        return (cost, self._amount, self._period_ms)

    def parse(self, reply: Any, cost: int) -> RateLimitResult:
        if type(reply) is not int:
            raise self._bad(reply)
        allowed = reply >= 0
        ttl_ms, count = divmod(reply if allowed else -1 - reply, self._scale)
        reset = ttl_ms / 1000
        state = limit_state(self.limit, max(0, self._amount - count), reset)
        return RateLimitResult(allowed, 0.0 if allowed else reset, (state,))


class GcraOne(SingleHit):
    """GCRA: TIME, GET, SET; the TAT's lead over now (ns) back as one integer."""

    __slots__ = ("_interval", "_tolerance")

    def __init__(self, limit: Limit) -> None:
        super().__init__(limit, "rl_gcra_one", limit.capacity)
        # the very float operations rl_gcra performs, so that both report alike
        self._interval = limit.period_us / limit.amount
        self._tolerance = limit.capacity * self._interval

    def args(self, cost: int) -> tuple[float, ...]:
        increment = cost * self._interval
        return (increment, self._tolerance - increment)

    def parse(self, reply: Any, cost: int) -> RateLimitResult:
        if type(reply) is not int:
            raise self._bad(reply)
        allowed = reply >= 0
        ahead = (reply if allowed else -1 - reply) / 1000  # us
        remaining = math.floor((self._tolerance - ahead) / self._interval + 1e-9)
        state = limit_state(self.limit, max(0, remaining), math.ceil(ahead) / 1e6)
        if allowed:
            return RateLimitResult(True, 0.0, (state,))
        slack = self._tolerance - cost * self._interval
        return RateLimitResult(False, math.ceil(ahead - slack) / 1e6, (state,))


class TokenOne(SingleHit):
    """Token bucket: TIME, HMGET, HSET, PEXPIRE."""

    __slots__ = ("_args",)

    def __init__(self, limit: Limit) -> None:
        super().__init__(limit, "rl_token_one", limit.capacity)
        self._args = (limit.capacity, limit.amount / limit.period_us)

    def args(self, cost: int) -> tuple[int | float, ...]:
        return (cost, *self._args)


class SlidingOne(SingleHit):
    """Sliding window counter: TIME, HMGET, HSET, PEXPIRE."""

    __slots__ = ("_args",)

    def __init__(self, limit: Limit) -> None:
        super().__init__(limit, "rl_sliding_one", limit.amount)
        self._args = (limit.amount, limit.period_us)

    def args(self, cost: int) -> tuple[int, ...]:
        return (cost, *self._args)


class LogOne(SingleHit):
    """Sliding log: TIME, ZREMRANGEBYSCORE, ZCARD, ZADD, PEXPIRE; remaining back when admitted."""

    __slots__ = ("_args", "_period")

    def __init__(self, limit: Limit) -> None:
        super().__init__(limit, "rl_log_one", limit.amount)
        self._args = (limit.amount, limit.period_us)
        self._period = limit.period_us / 1e6

    def args(self, cost: int) -> tuple[int, ...]:
        return (cost, *self._args)

    def parse(self, reply: Any, cost: int) -> RateLimitResult:
        if type(reply) is int:
            return RateLimitResult(True, 0.0, (limit_state(self.limit, reply, self._period),))
        return super().parse(reply, cost)


def single_hit(algorithm: str, limit: Limit) -> SingleHit | None:
    """The lean hit for ``algorithm`` on a one-limit policy, or None to use the general one."""
    if algorithm == "fixed_window":
        return FixedOne(limit) if FixedOne.fits(limit) else None
    return _LEAN[algorithm](limit)


_LEAN: dict[str, Callable[[Limit], SingleHit]] = {
    "gcra": GcraOne,
    "token_bucket": TokenOne,
    "sliding_window": SlidingOne,
    "sliding_log": LogOne,
}
