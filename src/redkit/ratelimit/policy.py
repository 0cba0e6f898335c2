"""Rate limit policies: ``"100/minute"``, ``"10/second; 1000/hour"``, bursts.

A policy is one or more :class:`Limit` values. Every limit of a policy is checked on each
hit and all of them are charged only when all of them allow it. The grammar, per limit::

    <amount> ("/" | "per") [<count>] <unit> ["burst" <n>]

where ``unit`` is one of ``second``, ``minute``, ``hour``, ``day`` (or ``s``, ``sec``,
``m``, ``min``, ``h``, ``hr``, ``d``, and plurals), and limits are separated by ``;`` or
``,``: ``"5/10 seconds"``, ``"10 per second burst 20; 1000/hour"``.

The scripts count in Lua numbers (doubles) and keep time in microseconds since the epoch,
so a limit is bounded where those stay exact: an amount or burst of at most
:data:`MAX_AMOUNT` (2**52; a count plus a cost then stays below 2**53), and a period (for
a burst above the amount: the time a full burst takes to refill) of at most
:data:`MAX_PERIOD` seconds (100 years). A limit beyond either is a ``ConfigError`` when
it is made, not a wrong answer later.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from redkit.errors import ConfigError

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
MAX_AMOUNT = 2**52
MAX_PERIOD = 100 * 365 * 86400.0
_ITEM = re.compile(
    r"^\s*(?P<amount>\d+)\s*(?:/|\s+per\s+)\s*(?P<count>\d+(?:\.\d+)?)?\s*"
    r"(?P<unit>[a-z]+)\s*(?:\s+burst\s+(?P<burst>\d+))?\s*$",
    re.IGNORECASE,
)
_EXPECTED = (
    "expected limits like '100/minute' or '10/second; 1000/hour' (units: second, minute, "
    "hour, day; a count such as '5/10 seconds'; optionally 'burst N')"
)


@dataclass(frozen=True, slots=True)
class Limit:
    """``amount`` units of cost per ``period`` seconds; ``burst`` is the bucket size.

    ``burst`` matters for the token bucket and GCRA (how much may be spent at once after
    a quiet spell); the window algorithms allow at most ``amount`` per window. It
    defaults to ``amount``.
    """

    amount: int
    period: float
    burst: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or self.amount < 1:
            raise ConfigError(f"a limit's amount must be a positive integer, got {self.amount!r}")
        if not (self.period > 0 and math.isfinite(self.period)) or self.period < 1e-3:
            raise ConfigError(f"a limit's period must be at least 1 ms, got {self.period!r}s")
        if self.burst is not None and (not isinstance(self.burst, int) or self.burst < 1):
            raise ConfigError(f"a limit's burst must be a positive integer, got {self.burst!r}")
        if max(self.amount, self.capacity) > MAX_AMOUNT:
            raise ConfigError(
                f"a limit's amount and burst can be at most 2**52 ({MAX_AMOUNT:,}), the most "
                f"the scripts count exactly; got {self}"
            )
        if self.period * max(1.0, self.capacity / self.amount) > MAX_PERIOD:
            raise ConfigError(
                f"a limit's period (and the time a full burst takes to refill) can be at most "
                f"{MAX_PERIOD / 86400:.0f} days; got {self}"
            )

    @property
    def capacity(self) -> int:
        """The most that may be spent at once: ``burst``, else ``amount``."""
        return self.amount if self.burst is None else self.burst

    @property
    def period_us(self) -> int:
        """The period in microseconds (what the Lua scripts take)."""
        return round(self.period * 1_000_000)

    @property
    def name(self) -> str:
        """A stable identifier, e.g. ``10-per-1s`` (used in keys and HTTP headers)."""
        # exact: two different periods must never share a name (names are key suffixes)
        period = f"{self.period_us / 1_000_000:.6f}".rstrip("0").rstrip(".").replace(".", "_")
        burst = "" if self.burst is None else f"-b{self.burst}"
        return f"{self.amount}-per-{period}s{burst}"

    def __str__(self) -> str:
        burst = "" if self.burst is None else f" burst {self.burst}"
        return f"{self.amount}/{self.period:g}s{burst}"


@dataclass(frozen=True, slots=True)
class Policy:
    """The limits one limiter enforces together (all or nothing)."""

    limits: tuple[Limit, ...]

    def __post_init__(self) -> None:
        if not self.limits:
            raise ConfigError(f"a rate limit policy needs at least one limit: {_EXPECTED}")
        names = [limit.name for limit in self.limits]
        if len(set(names)) != len(names):
            raise ConfigError(f"a rate limit policy lists the same limit twice: {names}")

    def __str__(self) -> str:
        return "; ".join(str(limit) for limit in self.limits)


def parse_limit(text: str) -> Limit:
    """Parse one limit such as ``"10/second"`` or ``"5 per 10 minutes burst 8"``."""
    match = _ITEM.match(text)
    unit = _unit_seconds(match["unit"]) if match else None
    if match is None or unit is None:
        raise ConfigError(f"rate limit {text.strip()!r} is not valid: {_EXPECTED}")
    count = float(match["count"]) if match["count"] else 1.0
    burst = int(match["burst"]) if match["burst"] else None
    return Limit(int(match["amount"]), count * unit, burst)


def _unit_seconds(word: str) -> int | None:
    word = word.lower()
    if word not in _UNITS and len(word) > 2 and word.endswith("s"):
        word = word[:-1]  # plurals; never "ms", which is not minutes
    return _UNITS.get(word)


def parse_policy(
    spec: str | Limit | Policy | Iterable[Limit | str], *, burst: int | None = None
) -> Policy:
    """A :class:`Policy` from a string, a :class:`Limit`, a policy, or a list of either.

    Args:
        spec: e.g. ``"10/second; 1000/hour"``.
        burst: a bucket size for every limit that does not name its own.

    Raises:
        ConfigError: the spec does not parse; the message says what was expected.
    """
    if isinstance(spec, Policy):
        limits = spec.limits
    elif isinstance(spec, Limit):
        limits = (spec,)
    elif isinstance(spec, str):
        items = [item for item in re.split(r"[;,]", spec) if item.strip()]
        limits = tuple(parse_limit(item) for item in items)
    else:
        try:
            limits = tuple(parse_limit(x) if isinstance(x, str) else x for x in spec)
        except TypeError:
            raise ConfigError(f"rate limit policy {spec!r} is not valid: {_EXPECTED}") from None
        if not all(isinstance(x, Limit) for x in limits):
            raise ConfigError(f"rate limit policy {spec!r} is not valid: {_EXPECTED}")
    if burst is not None:
        limits = tuple(
            x if x.burst is not None else Limit(x.amount, x.period, burst) for x in limits
        )
    return Policy(limits)
