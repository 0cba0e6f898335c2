"""Cache keys for decorated functions: one key per distinct call, never one for two.

A key is ``NAME/DIGEST``. ``NAME`` identifies the function: ``module.qualname``, or the
``name=`` given at decoration. A function without a stable name (a closure, a lambda, a
bound method, anything whose qualname has ``<locals>``) is refused at decoration unless it
gets ``name=`` or ``key=``: two closures made by one factory share a qualname, and would
otherwise share entries.

``DIGEST`` is BLAKE2b-128 (base64url, 22 characters) of a canonical, type-tagged encoding
of the call's arguments, bound to the signature (``f(1)``, ``f(x=1)`` and ``f()`` with
default ``x=1`` are one call). The encoding is injective: each value is written with its
type and is self-delimiting, so two calls share a key only if every argument has the
same type and value. ``None``, ``nan`` and ``-inf`` differ; so do ``(1, 2)``, ``[1, 2]``
and ``{1, 2}``, ``1``, ``1.0`` and ``True``, ``"a"`` and ``b"a"``, and ``{1: "a"}`` and
``{"1": "a"}``. Sets and dict items are ordered by their encoding, so insertion order never
matters. Python's ``hash()`` is never used (it is salted per process).

Values without a canonical form (arbitrary objects, whose ``repr`` may hold an address)
are refused with :class:`~redkit.errors.ConfigError`: pass ``key=`` or ``ignore=``.
"""

from __future__ import annotations

import binascii
import datetime as dt
import enum
import hashlib
import inspect
import uuid
import zoneinfo
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from redkit.errors import ConfigError

_EMPTY = inspect.Parameter.empty
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_P = inspect.Parameter
_VARIADIC = (_P.VAR_POSITIONAL, _P.VAR_KEYWORD)


class Unkeyable(Exception):
    """A value has no canonical form (carries its type's name)."""


def _str(value: str) -> str:
    return f"s{len(value)}:{value}"


def _bytes(value: bytes) -> str:
    return f"b{len(value)}:{value.decode('latin-1')}"


def _seq(tag: str) -> Callable[[Any], str]:
    def encode(value: Any) -> str:
        return tag + "".join(map(encode_value, value)) + "."

    return encode


def _unordered(tag: str) -> Callable[[Any], str]:
    # ordered by encoding: canonical whatever the insertion order, for any element types
    def encode(value: Any) -> str:
        return tag + "".join(sorted(map(encode_value, value))) + "."

    return encode


def _dict(value: dict[Any, Any]) -> str:
    # encodings are prefix-free, so sorting key+value strings sorts by key
    items = sorted(encode_value(k) + encode_value(v) for k, v in value.items())
    return "m" + "".join(items) + "."


def _tz(tz: dt.tzinfo | None) -> str:
    if tz is None:
        return "_"
    if type(tz) is dt.timezone:
        return "o" + _str(repr(tz))
    if type(tz) is zoneinfo.ZoneInfo:
        return "z" + _str(str(tz.key))
    raise Unkeyable(f"datetime with tzinfo {type(tz).__name__}")


def _datetime(value: dt.datetime) -> str:
    return f"D{value.replace(tzinfo=None).isoformat()}|{value.fold}{_tz(value.tzinfo)}"


def _time(value: dt.time) -> str:
    return f"h{value.replace(tzinfo=None).isoformat()}|{value.fold}{_tz(value.tzinfo)}"


_ENCODERS: dict[type, Callable[[Any], str]] = {  # str and int: see encode_value
    float: lambda v: f"f{v!r};",  # repr is exact: nan, inf, -inf, -0.0 all distinct
    bool: lambda v: "T" if v else "F",
    type(None): lambda v: "N",
    bytes: _bytes,
    bytearray: lambda v: "y" + _bytes(bytes(v))[1:],
    tuple: _seq("t"),
    list: _seq("l"),
    dict: _dict,
    set: _unordered("S"),
    frozenset: _unordered("Z"),
    dt.datetime: _datetime,
    dt.date: lambda v: f"a{v.isoformat()};",
    dt.time: _time,
    dt.timedelta: lambda v: f"r{v.days},{v.seconds},{v.microseconds};",
    Decimal: lambda v: f"c{v};",
    uuid.UUID: lambda v: f"u{v.hex}",
}


def _qualified(cls: type) -> str:
    return _str(f"{cls.__module__}.{cls.__qualname__}")


def _other(value: Any) -> str:
    """Encoders for open families: enum members and named tuples (tagged with the class)."""
    if isinstance(value, enum.Enum):
        return "e" + _qualified(type(value)) + _str(value.name)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return "n" + _qualified(type(value)) + "".join(map(encode_value, value)) + "."
    raise Unkeyable(type(value).__name__)


def encode_value(value: Any) -> str:
    """The canonical, type-tagged, self-delimiting text of ``value`` (raises Unkeyable)."""
    kind = type(value)
    if kind is str:  # the common cases first, without a table lookup and a call
        return f"s{len(value)}:{value}"
    if kind is int:
        return f"i{value:x};"  # hex: str(int) has a limit on digits, hex has none
    encoder = _ENCODERS.get(kind)
    return _other(value) if encoder is None else encoder(value)


def digest(values: Sequence[Any]) -> str:
    """22 characters (BLAKE2b-128, base64url) identifying ``values``; raises Unkeyable."""
    text = "".join(map(encode_value, values))
    raw = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    return binascii.b2a_base64(raw, newline=False)[:22].translate(_URLSAFE).decode("ascii")


def function_name(func: Callable[..., Any], name: str | None, custom: bool) -> str:
    """The stable name of ``func`` in its keys; ConfigError when it has none."""
    if name is not None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"name must be a non-empty str, got {name!r}")
        return name
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    label = f"{module}.{qualname}"
    if inspect.ismethod(func):
        reason = "it is a bound method (every instance would share its entries)"
    elif not isinstance(qualname, str) or not isinstance(module, str):
        reason = f"a {type(func).__name__} has no module-level name"
    elif "<lambda>" in qualname or "<locals>" in qualname:
        reason = "it is defined inside a function (closures made by one factory share a name)"
    else:
        return label
    if custom:  # key= builds the whole key: telling calls apart is up to it
        return label
    raise ConfigError(
        f"cannot cache {label}: {reason}; pass name='...' naming this function uniquely "
        "(e.g. including what the closure captures), or key=lambda ...: '...'"
    )


class CallKey:
    """Builds the cache key of one call of ``func``.

    Args:
        func: the decorated function.
        key: a function of the call's arguments returning the key (str) to use instead.
        ignore: names of parameters left out of the key (e.g. ``("self",)``).
        name: the function's name in its keys (required when it has no stable one).
    """

    def __init__(
        self,
        func: Callable[..., Any],
        key: Callable[..., str] | None = None,
        ignore: Sequence[str] = (),
        name: str | None = None,
    ) -> None:
        if isinstance(ignore, str):
            raise ConfigError(f"ignore must be a sequence of names, e.g. ({ignore!r},)")
        self._custom = key
        self.name = function_name(func, name, key is not None)
        self._prefix = self.name + "/"
        self._signature = inspect.signature(func)
        params = list(self._signature.parameters.values())
        unknown = set(ignore) - {p.name for p in params}
        if unknown:
            raise ConfigError(f"ignore names no parameter of {self.name}: {sorted(unknown)}")
        self._keep = tuple(i for i, p in enumerate(params) if p.name not in ignore)
        self._all = len(self._keep) == len(params)
        self._kept_names = tuple(params[i].name for i in self._keep)
        # the fast path binds calls without inspect when there is no *args or **kwargs
        self._fast = not any(p.kind in _VARIADIC for p in params)
        self._positional = sum(1 for p in params if p.kind is not _P.KEYWORD_ONLY)
        self._defaults = tuple(p.default for p in params)
        self._index = {p.name: i for i, p in enumerate(params) if p.kind is not _P.POSITIONAL_ONLY}
        self._required = tuple(i for i, p in enumerate(params) if p.default is _EMPTY)

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if self._custom is not None:
            custom = self._custom(*args, **kwargs)
            if not isinstance(custom, str):
                raise ConfigError(f"key= of {self.name} must return a str, got {custom!r}")
            return self._prefix + custom
        values = self._bind(args, kwargs)
        if not self._all:
            values = tuple(values[i] for i in self._keep)
        try:
            return self._prefix + digest(values)
        except Unkeyable as exc:
            param = self._unkeyable(values)
            raise ConfigError(
                f"cannot derive a cache key for {self.name}(): argument {param!r} (of type "
                f"{exc}) has no canonical form; leave it out with ignore=({param!r},), or "
                "pass key=lambda ...: '...'"
            ) from None
        except RecursionError:
            raise ConfigError(
                f"cannot derive a cache key for {self.name}(): an argument is nested too "
                "deeply or contains itself; pass key=lambda ...: '...'"
            ) from None

    def _unkeyable(self, values: tuple[Any, ...]) -> str:
        """The name of the first parameter whose value has no canonical form."""
        for name, value in zip(self._kept_names, values, strict=True):
            try:
                encode_value(value)
            except Unkeyable:
                return name
        return "?"  # pragma: no cover - only called after one failed

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """The values of every parameter in signature order, defaults applied."""
        given = len(args)
        if self._fast and given <= self._positional:
            values = [*args, *self._defaults[given:]]
            for name, value in kwargs.items():
                at = self._index.get(name, -1)
                if at < given:  # unknown, positional-only or given twice: let bind say
                    break
                values[at] = value
            else:
                if all(values[i] is not _EMPTY for i in self._required):
                    return tuple(values)
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"{self.name}() called with bad arguments: {exc}") from None
        bound.apply_defaults()  # rebuilds the arguments in signature order
        return tuple(bound.arguments.values())
