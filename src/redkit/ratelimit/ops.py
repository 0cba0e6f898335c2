"""The rate limiting operations: which script, which keys, which arguments, what the reply means.

Every algorithm is one Lua script (``rl_<algorithm>.lua``) that takes all the limits of a
policy at once: it reads every limit's state on the server's clock (``TIME``, or key
expiry for fixed windows), decides, and charges all of them only when all allow the hit.
One check is therefore one EVALSHA, whatever the number of limits. A hit on a policy of
one limit (the common case) runs a lean script of the same algorithm on the same keys
instead (:mod:`redkit.ratelimit.single`).

The keys of one caller (``"user:42"``) share one hash tag, so they live in one cluster
slot; callers spread over the cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from redkit.errors import ConfigError
from redkit.keys import Keyspace
from redkit.ops import Eval
from redkit.ratelimit.policy import Policy
from redkit.ratelimit.results import LimitState, RateLimitResult, parse_reply
from redkit.ratelimit.single import single_hit
from redkit.scripts import Script, script

__all__ = [  # the result types live in redkit.ratelimit.results; re-exported here
    "ALGORITHMS",
    "CONC_ACQUIRE",
    "CONC_EXTEND",
    "CONC_RELEASE",
    "HIT",
    "PEEK",
    "LimitState",
    "Plan",
    "RateLimitResult",
    "algorithm_name",
    "check_cost",
]

Key = str | bytes | int
Finish = Callable[[Any], RateLimitResult]
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


def algorithm_name(algorithm: str) -> str:
    """The canonical name of an algorithm, or a ConfigError listing the choices."""
    name = _ALIASES.get(algorithm, algorithm)
    if name not in ALGORITHMS:
        raise ConfigError(
            f"unknown rate limit algorithm {algorithm!r}; choose one of {sorted(ALGORITHMS)}"
        )
    return name


class Plan:
    """Everything about a check that does not depend on the caller: precomputed once.

    A hit on a one-limit policy whose cost fits runs the algorithm's lean script (see
    :mod:`redkit.ratelimit.single`); everything else (peeks, several limits, costs that
    never fit) runs the general one. For recent callers the keys and the effect of a hit
    of cost 1 (its arguments already encoded) are cached, so the common check allocates
    almost nothing.
    """

    __slots__ = (
        "_cache",
        "_finish_one",
        "_keyspace",
        "_name",
        "_single",
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
        self._single = single_hit(self.algorithm, self.limits[0]) if len(self.limits) == 1 else None
        self._keyspace = keyspace
        self._name = name
        tag = self.algorithm.replace("_", "-")
        self._suffixes = tuple(f"{tag}:{limit.name}" for limit in policy.limits)
        tail: list[int] = []
        for limit in policy.limits:
            tail += (limit.amount, limit.period_us, limit.capacity)
        self._tail = tuple(tail)
        self._cache: dict[Key, tuple[list[str], Eval]] = {}
        single = self._single
        self._finish_one: Finish = (
            self._general if single is None else partial(single.parse, cost=1)
        )

    def _entry(self, key: Key) -> tuple[list[str], Eval]:
        entry = self._cache.get(key)
        if entry is None:
            group = self._keyspace.group("rl", self._name, key)
            keys = [group.key(suffix) for suffix in self._suffixes]
            single = self._single
            if single is not None:
                hit = Eval(single.script, keys, _encoded(single.args(1)))
            else:
                hit = Eval(self.script, keys, _encoded(self.args(HIT, 1)))
            if len(self._cache) >= _KEY_CACHE:
                self._cache.clear()  # cheap and bounded; hot keys come back at once
            entry = self._cache[key] = (keys, hit)
        return entry

    def keys(self, key: Key) -> list[str]:
        """The Redis keys of one caller's limits (one hash tag); recent callers are cached."""
        return self._entry(key)[0]

    def args(self, mode: int, cost: int) -> tuple[int, ...]:
        """The general script's arguments for one check."""
        return (mode, cost, *self._tail)

    def check(self, key: Key, cost: int, mode: int) -> tuple[Eval, Finish]:
        """The script call of one check and what reads its reply (ConfigError: bad cost)."""
        keys, hit = self._entry(key)
        if mode == HIT and type(cost) is int:
            if cost == 1:
                return hit, self._finish_one
            single = self._single
            if single is not None and 1 <= cost <= single.max_cost:
                return Eval(single.script, keys, single.args(cost)), partial(
                    single.parse, cost=cost
                )
        return Eval(self.script, keys, self.args(mode, check_cost(cost))), self._general

    def _general(self, reply: Any) -> RateLimitResult:
        return parse_reply(reply, self.limits, self.script.name)


def _encoded(args: tuple[int | float, ...]) -> tuple[bytes, ...]:
    """Arguments as the bytes redis-py would send (``repr``), so it need not encode them."""
    return tuple(repr(arg).encode() for arg in args)


def check_cost(cost: int) -> int:
    """A cost as an int >= 0, or a ConfigError."""
    if not isinstance(cost, int) or isinstance(cost, bool) or cost < 0:
        raise ConfigError(f"a rate limit cost must be an integer >= 0, got {cost!r}")
    return cost
