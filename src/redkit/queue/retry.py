"""Retry policies: how many times a failed job runs again, and after how long."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from redkit.errors import ConfigError

BACKOFFS = ("fixed", "exponential")


@dataclass(frozen=True)
class Retry:
    """A task's retry policy.

    Args:
        retries: how many times a failed job is run again (0: never).
        backoff: ``"fixed"`` (``base`` every time), ``"exponential"`` (``base * 2**(n-1)``
            before retry ``n``) or a function of the retry number returning seconds.
        base: the delay in seconds the built-in backoffs start from.
        cap: the longest delay, in seconds.
        jitter: spread each delay uniformly over ``[delay / 2, delay]`` so that jobs that
            failed together do not retry together (built-in backoffs only).
    """

    retries: int = 0
    backoff: str | Callable[[int], float] = "exponential"
    base: float = 1.0
    cap: float = 300.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.retries, int) and self.retries >= 0):
            raise ConfigError(f"retries must be an int >= 0, got {self.retries!r}")
        if not callable(self.backoff) and self.backoff not in BACKOFFS:
            raise ConfigError(
                f"backoff must be 'fixed', 'exponential' or a function, got {self.backoff!r}"
            )
        if not (0 <= self.base <= self.cap and math.isfinite(self.cap)):
            raise ConfigError(
                f"backoff needs 0 <= base <= cap, got base={self.base!r}, cap={self.cap!r}"
            )

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first)."""
        if callable(self.backoff):
            seconds = float(self.backoff(retry))
            if not (seconds >= 0 and math.isfinite(seconds)):
                raise ConfigError(f"backoff({retry}) returned {seconds!r}, not >= 0 seconds")
            return seconds
        seconds = self.base if self.backoff == "fixed" else self.base * 2.0 ** min(retry - 1, 60)
        seconds = min(self.cap, seconds)
        return random.uniform(seconds / 2, seconds) if self.jitter else seconds
