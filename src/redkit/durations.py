"""Durations given by the user: seconds as a number, or a :class:`datetime.timedelta`.

Every option that takes a duration goes through :func:`seconds`, so a bad value (negative,
NaN, infinite, a string, a bool) is refused where it is given, with a
:class:`~redkit.errors.ConfigError` naming the parameter, instead of failing later on the
server.
"""

from __future__ import annotations

import datetime as dt
import math
import reprlib
from typing import Literal, overload

from redkit.errors import ConfigError

Duration = float | dt.timedelta
"""Seconds (int or float) or a :class:`datetime.timedelta`."""

MAX_SECONDS = 1e15
"""The longest duration accepted (about 31 million years): its milliseconds plus the
current time still fit the 63 bits Redis keeps expiry times in."""


@overload
def seconds(
    value: Duration,
    name: str,
    *,
    allow_none: Literal[False] = ...,
    allow_zero: bool = ...,
    allow_inf: bool = ...,
) -> float: ...


@overload
def seconds(
    value: Duration | None,
    name: str,
    *,
    allow_none: Literal[True],
    allow_zero: bool = ...,
    allow_inf: bool = ...,
) -> float | None: ...


def seconds(
    value: Duration | None,
    name: str,
    *,
    allow_none: bool = False,
    allow_zero: bool = False,
    allow_inf: bool = False,
) -> float | None:
    """``value`` in seconds, checked; raises ConfigError naming ``name`` when it is bad.

    Args:
        value: seconds (int or float, not bool) or a timedelta.
        name: the parameter's name, for the error message.
        allow_none: accept None (returned as is; its meaning is the caller's).
        allow_zero: accept 0 (otherwise the duration must be positive).
        allow_inf: accept ``math.inf`` (otherwise at most :data:`MAX_SECONDS`).
    """
    if type(value) is float:  # the common case, checked first
        number = value
    elif value is None:
        if allow_none:
            return None
        raise ConfigError(f"{name} must be {_expected(allow_zero, allow_none)}, got None")
    elif isinstance(value, dt.timedelta):
        number = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = _float(value)
    else:
        raise ConfigError(
            f"{name} must be {_expected(allow_zero, allow_none)}, "
            f"got {type(value).__name__} {reprlib.repr(value)}"
        )
    if number > 0 and (number <= MAX_SECONDS or (allow_inf and number == math.inf)):
        return number
    if number == 0 and allow_zero:
        return 0.0
    if number > MAX_SECONDS:
        raise ConfigError(
            f"{name} must be at most {MAX_SECONDS:.0e} seconds, got {reprlib.repr(value)}"
        )
    raise ConfigError(
        f"{name} must be {_expected(allow_zero, allow_none)}, got {reprlib.repr(value)}"
    )


def _float(value: float) -> float:
    try:
        return float(value)
    except OverflowError:  # an int too large for a float
        return math.inf


def _expected(allow_zero: bool, allow_none: bool) -> str:
    what = "0 or more seconds" if allow_zero else "a positive number of seconds"
    return f"{what} (a number or a timedelta{', or None' if allow_none else ''})"
