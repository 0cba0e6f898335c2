"""The rate limiting operations: which script, which keys, which arguments, what the reply means.

Every algorithm is one Lua script (``rl_<algorithm>.lua``) that takes all the limits of a
policy at once: it reads every limit's state on the server's clock (``TIME``, or key
expiry for fixed windows), decides, and charges all of them only when all allow the hit.
One check is therefore one EVALSHA, whatever the number of limits.

The keys of one caller (``"user:42"``) share one hash tag, so they live in one cluster
slot; callers spread over the cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from redkit.errors import ConfigError, ScriptError
from redkit.keys import Keyspace
from redkit.ratelimit.policy import Limit, Policy
from redkit.scripts import Script, script

HIT = 1
PEEK = 0
_KEY_CACHE = 4096

ALGORITHMS: dict[str, str] = {
    "fixed_window": "rl_fixed",
    "sliding_window": "rl_sliding",
    "sliding_log": "rl_log",
    "token_bucket": "rl_token",
    "gcra": "rl_gcra",
}
_ALIASES = {
    "fixed": "fixed_window",
    "sliding": "sliding_window",
    "sliding_window_counter": "sliding_window",
    "log": "sliding_log",
    "token": "token_bucket",
}
_BURSTY = {"token_bucket", "gcra"}
_SCRIPTS = {name: script(file) for name, file in ALGORITHMS.items()}

CONC_ACQUIRE = script("rl_conc_acquire")
CONC_RELEASE = script("rl_conc_release")
CONC_EXTEND = script("rl_conc_extend")


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


def algorithm_name(algorithm: str) -> str:
    """The canonical name of an algorithm, or a ConfigError listing the choices."""
    name = _ALIASES.get(algorithm, algorithm)
    if name not in ALGORITHMS:
        raise ConfigError(
            f"unknown rate limit algorithm {algorithm!r}; choose one of {sorted(ALGORITHMS)}"
        )
    return name


class Plan:
    """Everything about a check that does not depend on the caller: precomputed once."""

    __slots__ = (
        "_cache",
        "_keyspace",
        "_name",
        "_suffixes",
        "_tail",
        "algorithm",
        "limits",
        "script",
    )

    def __init__(self, keyspace: Keyspace, name: str, algorithm: str, policy: Policy) -> None:
        self.algorithm = algorithm_name(algorithm)
        if self.algorithm not in _BURSTY and any(x.burst is not None for x in policy.limits):
            raise ConfigError(
                f"burst applies to the token_bucket and gcra algorithms, not {self.algorithm}"
            )
        self.limits = policy.limits
        self.script: Script = _SCRIPTS[self.algorithm]
        self._keyspace = keyspace
        self._name = name
        tag = self.algorithm.replace("_", "-")
        self._suffixes = tuple(f"{tag}:{limit.name}" for limit in policy.limits)
        tail: list[int] = []
        for limit in policy.limits:
            tail += (limit.amount, limit.period_us, limit.capacity)
        self._tail = tuple(tail)
        self._cache: dict[str | bytes | int, list[str]] = {}

    def keys(self, key: str | bytes | int) -> list[str]:
        """The Redis keys of one caller's limits (one hash tag); recent callers are cached."""
        keys = self._cache.get(key)
        if keys is None:
            group = self._keyspace.group("rl", self._name, key)
            keys = [group.key(suffix) for suffix in self._suffixes]
            if len(self._cache) >= _KEY_CACHE:
                self._cache.clear()  # cheap and bounded; hot keys come back at once
            self._cache[key] = keys
        return keys

    def args(self, mode: int, cost: int) -> tuple[int, ...]:
        """The script arguments of one check."""
        return (mode, cost, *self._tail)

    def parse(self, reply: Any) -> RateLimitResult:
        """The script's reply as a result."""
        try:
            retry = int(reply[1])
            states = tuple(
                [
                    LimitState(limit, int(reply[i]), int(reply[i + 1]) / 1e6)
                    for i, limit in zip(range(2, len(reply), 2), self.limits, strict=True)
                ]
            )
            allowed = reply[0] == 1
        except (TypeError, ValueError, IndexError):
            raise ScriptError(f"{self.script.name} replied {reply!r}") from None
        return RateLimitResult(allowed, math.inf if retry < 0 else retry / 1e6, states)


def check_cost(cost: int) -> int:
    """A cost as an int >= 0, or a ConfigError."""
    if not isinstance(cost, int) or isinstance(cost, bool) or cost < 0:
        raise ConfigError(f"a rate limit cost must be an integer >= 0, got {cost!r}")
    return cost
