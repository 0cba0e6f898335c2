"""The rate limiting operations: which script, which keys, which arguments, what the reply means.

Every algorithm is one Lua script (``rl_<algorithm>.lua``) that takes all the limits of a
policy at once: it reads every limit's state on the server's clock (``TIME``, or key
expiry for fixed windows), decides, and charges all of them only when all allow the hit.
One check is therefore one EVALSHA, whatever the number of limits; a policy of one limit
(the common case) is the same script with one key.

The keys of one caller (``"user:42"``) share one hash tag, so they live in one cluster
slot; callers spread over the cluster.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

from redkit.errors import ConfigError, ScriptError
from redkit.keys import Keyspace
from redkit.ops import Eval
from redkit.ratelimit.policy import Limit, Policy
from redkit.ratelimit.results import LimitState, RateLimitResult, parse_gcra, parse_reply
from redkit.scripts import Script, check, script

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
    """Everything about a check that does not depend on the caller: computed once.

    A check is one call of the algorithm's script with the caller's keys, the mode, the
    cost and each limit's parameters (in the units the script works in, already encoded).
    For recent callers the keys and the call of the commonest check (a hit of cost 1) are
    cached, so that it allocates nothing but its result.
    """

    __slots__ = (
        "_cache",
        "_hit_one",
        "_keyspace",
        "_name",
        "_spans",
        "_suffixes",
        "_tail",
        "_unpack",
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
        if self.algorithm == "gcra":
            _check_gcra(policy)
        self.limits = policy.limits
        self.script: Script = _SCRIPTS[self.algorithm]
        self._keyspace = keyspace
        self._name = name
        tag = self.algorithm.replace("_", "-")
        self._suffixes = tuple(f"{tag}:{limit.name}" for limit in policy.limits)
        tail: list[bytes] = []
        for limit in policy.limits:
            tail += (_encode(arg) for arg in _PARAMS[self.algorithm](limit))
        self._tail = tuple(tail)
        self._hit_one = (b"1", b"1", *self._tail)
        per_limit = 1 if self.algorithm == "gcra" else 2
        self._unpack = struct.Struct(">" + "q" * (2 + per_limit * len(self.limits))).unpack
        # GCRA replies each limit's lead; what remains is derived here, as the script would
        self._spans = (
            tuple(
                (x.period_us / x.amount, x.capacity * (x.period_us / x.amount)) for x in self.limits
            )
            if self.algorithm == "gcra"
            else None
        )
        self._cache: dict[Key, tuple[list[str], Eval]] = {}

    def _entry(self, key: Key) -> tuple[list[str], Eval]:
        entry = self._cache.get(key)
        if entry is None:
            group = self._keyspace.group("rl", self._name, key)
            keys = [group.key(suffix) for suffix in self._suffixes]
            if len(self._cache) >= _KEY_CACHE:
                self._cache.clear()  # cheap and bounded; hot keys come back at once
            entry = self._cache[key] = (keys, Eval(self.script, keys, self._hit_one))
        return entry

    def keys(self, key: Key) -> list[str]:
        """The Redis keys of one caller's limits (one hash tag); recent callers are cached."""
        return self._entry(key)[0]

    def args(self, mode: int, cost: int) -> tuple[bytes, ...]:
        """The script's arguments for one check."""
        if mode == HIT and cost == 1 and type(cost) is int:
            return self._hit_one
        return (b"1" if mode == HIT else b"0", b"%d" % check_cost(cost), *self._tail)

    def check(self, key: Key, cost: int, mode: int) -> Eval:
        """The script call of one check (ConfigError: a bad cost)."""
        keys, hit_one = self._entry(key)
        if mode == HIT and cost == 1 and type(cost) is int:
            return hit_one
        return Eval(self.script, keys, self.args(mode, cost))

    def parse(self, reply: Any) -> RateLimitResult:
        """The script's reply as a result (ScriptError: not a reply of this script)."""
        try:
            values = self._unpack(reply)
            if self._spans is not None:
                return parse_gcra(values, self.limits, self._spans)
            return parse_reply(values, self.limits)
        except (struct.error, TypeError, ValueError):
            check(self.script.name, reply)  # a negative status: the error it stands for
            raise ScriptError(f"{self.script.name} replied {reply!r}") from None


def _check_gcra(policy: Policy) -> None:
    for limit in policy.limits:
        if limit.period_us < limit.amount:
            raise ConfigError(
                f"gcra keeps time in microseconds, so a limit admits at most one unit per "
                f"microsecond (1000000/second); {limit} admits more: use token_bucket"
            )


def _encode(arg: int | float) -> bytes:
    """An argument as the bytes redis-py would send (``repr``; floats read back exactly)."""
    return repr(arg).encode()


def _window(limit: Limit) -> tuple[int, int]:
    return limit.amount, limit.period_us


_PARAMS: dict[str, Callable[[Limit], tuple[int | float, ...]]] = {
    # what each script takes per limit: see the header of rl_<algorithm>.lua
    "fixed_window": lambda x: (x.amount, math.ceil(x.period_us / 1000)),
    "gcra": lambda x: (x.period_us / x.amount, x.capacity),
    "token_bucket": lambda x: (x.capacity, x.amount / x.period_us),
    "sliding_window": _window,
    "sliding_log": _window,
}


def check_cost(cost: int) -> int:
    """A cost as an int >= 0, or a ConfigError."""
    if not isinstance(cost, int) or isinstance(cost, bool) or cost < 0:
        raise ConfigError(f"a rate limit cost must be an integer >= 0, got {cost!r}")
    return cost
