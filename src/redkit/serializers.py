"""How values become bytes and back.

JSON (orjson) is the default: fast, and safe to read from the network. msgpack is
optional. pickle is never chosen for you: :class:`PickleSerializer` exists only when asked
for by name, and it signs every value with HMAC-SHA256 so a value written by anyone
without the secret is rejected before it is unpickled.

Every serializer gives back what it was given: a value comes back equal and of the same
type, or ``dumps`` refuses it with a :class:`~redkit.errors.SerializationError` that names
the fix. JSON and msgpack round-trip ``None``, ``bool``, ``int``, ``float`` (NaN and ±inf
included), ``str``, ``bytes``, ``list``, ``tuple``, ``dict`` (any hashable keys of these
types), ``set``, ``frozenset``, ``datetime`` (naive or aware), ``date``, ``time``,
``timedelta``, ``UUID`` and ``Decimal``.

The JSON wire format keeps plain JSON values as they are: a value made only of dicts
with str keys, lists, str, int, finite floats, bools and None is written by orjson
unchanged and read back by one ``orjson.loads``. Anything else is written as ``~`` followed
by JSON in which each non-JSON value is a one-key object: ``{"~t": [1, 2]}`` is the tuple
``(1, 2)`` (see ``_TAGGERS``). A plain dict with one key starting with ``~`` is wrapped as
``{"~": {...}}`` there, so no stored dict is ever mistaken for a tag. Data written before
tagging existed is plain JSON and reads back as before. msgpack uses extension types
for the same values (see ``_EXT``).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import hashlib
import hmac
import sys
import uuid
import zoneinfo
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import orjson

from redkit.errors import ConfigError, MissingDependencyError, SerializationError, TamperedDataError


@runtime_checkable
class Serializer(Protocol):
    """Turns values into bytes and back."""

    name: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class _Refused(Exception):
    """A value no serializer here can give back unchanged (carries the message)."""


# --- JSON --------------------------------------------------------------------------------

_MARK = b"~"  # a tagged payload; never the first byte of a JSON text
_SCALARS = frozenset({str, int, bool, type(None)})
_JSON_KINDS = _SCALARS | {float, dict, list}
_STR = frozenset({str})
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1  # the ints orjson writes


_SMALL = 8  # up to this many items, a loop over them beats collecting their types in a set


def _plain(value: Any) -> bool:
    """True when orjson writes ``value`` as JSON that reads back equal and same-typed."""
    kind = type(value)
    if kind is list:
        return _plain_items(value, len(value))
    if kind is dict:
        return _plain_dict(value)
    return kind in _SCALARS or (kind is float and value - value == 0.0)  # not nan or ±inf


def _plain_dict(value: dict[Any, Any]) -> bool:
    if len(value) > _SMALL:
        if not _STR.issuperset(map(type, value)):
            return False
    else:
        for key in value:
            if type(key) is not str:
                return False
    return _plain_items(value.values(), len(value))


def _plain_kinds(items: Any) -> bool | None:
    """Whether the items' types alone say (one C-level pass, no Python per item); None:
    there are containers or floats to look into."""
    kinds = set(map(type, items))
    if kinds <= _SCALARS:
        return True
    return None if kinds <= _JSON_KINDS else False


def _plain_items(items: Any, size: int) -> bool:
    if size > _SMALL:
        decided = _plain_kinds(items)
        if decided is not None:
            return decided
    for item in items:  # a loop, not a call per item: this is on every write
        kind = type(item)
        if kind in _SCALARS:
            continue
        if kind is list:
            if item and not _plain_items(item, len(item)):
                return False
        elif kind is dict:
            if item and not _plain_dict(item):
                return False
        elif kind is not float or item - item != 0.0:  # another type, or nan or ±inf
            return False
    return True


def _tag_dict(value: dict[Any, Any]) -> Any:
    if not _STR.issuperset(map(type, value)):
        return {"~m": [[_tag(k), _tag(v)] for k, v in value.items()]}
    out = {k: _tag(v) for k, v in value.items()}
    if len(out) == 1 and next(iter(out)).startswith("~"):
        return {"~": out}  # a plain dict that looks like a tag
    return out


def _tag_int(value: int) -> Any:
    return value if _INT64_MIN <= value <= _UINT64_MAX else {"~i": f"{value:x}"}


def _tag_float(value: float) -> Any:
    return value if value - value == 0.0 else {"~f": repr(value)}  # 'nan', 'inf', '-inf'


def _zone(tz: dt.tzinfo | None) -> str | None:
    """The IANA key of a ZoneInfo (kept), None for a fixed offset or no tz."""
    return str(tz.key) if type(tz) is zoneinfo.ZoneInfo else None


def _tag_datetime(value: dt.datetime) -> Any:
    zone = _zone(value.tzinfo)
    if zone is not None:  # the wall time, the zone and fold: exact, even in a DST gap
        return {"~dt": [value.replace(tzinfo=None).isoformat(), zone, value.fold]}
    return {"~dt": [value.isoformat(), None, 1] if value.fold else value.isoformat()}


def _tag_time(value: dt.time) -> Any:
    if value.tzinfo is not None and type(value.tzinfo) is not dt.timezone:
        raise _Refused(
            f"a time with tzinfo {type(value.tzinfo).__name__} cannot be stored: its offset "
            "depends on a date; store a datetime, or a time with a fixed datetime.timezone"
        )
    return {"~tm": [value.isoformat(), 1] if value.fold else value.isoformat()}


_TAGGERS: dict[type, Callable[[Any], Any]] = {
    str: lambda v: v,
    bool: lambda v: v,
    type(None): lambda v: v,
    int: _tag_int,
    float: _tag_float,
    list: lambda v: [_tag(x) for x in v],
    dict: _tag_dict,
    tuple: lambda v: {"~t": [_tag(x) for x in v]},
    set: lambda v: {"~s": [_tag(x) for x in v]},
    frozenset: lambda v: {"~fs": [_tag(x) for x in v]},
    bytes: lambda v: {"~b": base64.b64encode(v).decode("ascii")},
    dt.datetime: _tag_datetime,
    dt.date: lambda v: {"~d": v.isoformat()},
    dt.time: _tag_time,
    dt.timedelta: lambda v: {"~td": [v.days, v.seconds, v.microseconds]},
    uuid.UUID: lambda v: {"~u": str(v)},
}  # and decimal.Decimal, added by _late_types


def _tag(value: Any) -> Any:
    tagger = _TAGGERS.get(type(value))
    if tagger is None:
        _late_types()  # then look again, whatever it says: another thread may have added it
        tagger = _TAGGERS.get(type(value))
        if tagger is None:
            raise _Refused(_refusal(value))
    return tagger(value)


# decimal is imported only when a Decimal is read: most processes never store one, and the
# module costs about 0.3 MiB. A Decimal value exists only once the module is loaded, so
# the writers' tables get the type on the first miss after that.


def _late_types() -> bool:
    """Add ``decimal.Decimal`` to the writers' tables once the decimal module is loaded;
    True when it was added just now (False when another thread may just have added it)."""
    decimal = sys.modules.get("decimal")
    if decimal is None or decimal.Decimal in _TAGGERS:
        return False
    _EXT_BY_TYPE[decimal.Decimal] = (_DECIMAL, str, _decimal)
    _TAGGERS[decimal.Decimal] = lambda v: {"~dec": str(v)}
    return True


def _decimal(text: str) -> Any:
    from decimal import Decimal

    return Decimal(text)


def _datetime(raw: Any) -> dt.datetime:
    if isinstance(raw, str):
        return dt.datetime.fromisoformat(raw)
    iso, zone, fold = raw
    when = dt.datetime.fromisoformat(iso)
    if zone is not None:
        when = when.replace(tzinfo=zoneinfo.ZoneInfo(zone))
    return when.replace(fold=fold)


def _time(raw: Any) -> dt.time:
    if isinstance(raw, str):
        return dt.time.fromisoformat(raw)
    iso, fold = raw
    return dt.time.fromisoformat(iso).replace(fold=fold)


def _dict_items(pairs: Any) -> dict[Any, Any]:
    return {_revive(k): _revive(v) for k, v in pairs}


_REVIVERS: dict[str, Callable[[Any], Any]] = {
    "~": lambda v: {k: _revive(x) for k, x in v.items()},
    "~m": _dict_items,
    "~i": lambda v: int(v, 16),
    "~f": float,
    "~t": lambda v: tuple(map(_revive, v)),
    "~s": lambda v: set(map(_revive, v)),
    "~fs": lambda v: frozenset(map(_revive, v)),
    "~b": lambda v: base64.b64decode(v, validate=True),
    "~dt": _datetime,
    "~d": dt.date.fromisoformat,
    "~tm": _time,
    "~td": lambda v: dt.timedelta(*v),
    "~u": uuid.UUID,
    "~dec": _decimal,
}


def _revive(node: Any) -> Any:
    kind = type(node)
    if kind is list:
        return [_revive(x) for x in node]
    if kind is not dict:
        return node
    if len(node) == 1:
        ((tag, inner),) = node.items()
        if tag.startswith("~"):
            return _REVIVERS[tag](inner)
    return {k: _revive(v) for k, v in node.items()}


class JsonSerializer:
    """JSON through orjson; other common types are tagged (see the module's docstring)."""

    name = "json"

    def dumps(self, value: Any) -> bytes:
        try:
            if _plain(value):
                try:
                    return orjson.dumps(value)
                except orjson.JSONEncodeError:  # an int past 64 bits, or a lone surrogate
                    pass
            return _MARK + orjson.dumps(_tag(value))
        except _Refused as exc:
            raise SerializationError(str(exc)) from None
        except orjson.JSONEncodeError as exc:
            raise SerializationError(f"cannot serialize this value as JSON: {exc}") from None
        except RecursionError:
            raise SerializationError(
                "cannot serialize this value: it is nested too deeply or contains itself"
            ) from None

    def loads(self, data: bytes) -> Any:
        try:
            return orjson.loads(data)  # plain JSON: no other work (a try costs nothing)
        except orjson.JSONDecodeError as exc:
            if data[:1] != _MARK:
                raise SerializationError(f"stored value is not valid JSON: {exc}") from None
        try:
            return _revive(orjson.loads(data[1:]))
        except (orjson.JSONDecodeError, KeyError, ValueError, TypeError, RecursionError):
            raise SerializationError("stored value is not valid tagged JSON") from None


# --- msgpack -----------------------------------------------------------------------------


class MsgpackSerializer:
    """msgpack (``pip install 'redkit[msgpack]'``): compact, binary-safe.

    Plain values use msgpack's own types (msgpack keeps bytes, NaN and int keys) and are
    read exactly as before. A value with other common types is written as ``0xC1`` (a byte
    msgpack never uses) followed by msgpack with extension types (``_EXT``).
    """

    name = "msgpack"

    def __init__(self) -> None:
        try:
            import msgpack
        except ImportError:
            raise MissingDependencyError("msgpack", "msgpack") from None
        self._msgpack = msgpack
        self._ext_type = msgpack.ExtType

    def dumps(self, value: Any) -> bytes:
        try:  # strict_types: a tuple or a subclass is not packed as its base type (lossy)
            return bytes(self._msgpack.packb(value, use_bin_type=True, strict_types=True))
        except (TypeError, ValueError, OverflowError):  # a type msgpack lacks: extensions
            pass
        try:
            return _EXT_MARK + self._pack(value)
        except _Refused as exc:
            raise SerializationError(str(exc)) from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(
                f"cannot serialize a value of type {type(value).__name__} as msgpack: {exc}"
            ) from None

    def loads(self, data: bytes) -> Any:
        try:
            # exactly the old read (a call through functools.partial or with more keywords
            # costs 100+ ns per value: this is on every cache hit)
            return self._msgpack.unpackb(data, raw=False)
        except Exception:  # noqa: S110 - extensions, int keys, or not msgpack: see below
            pass
        try:
            return self._unpack(data[1:] if data[:1] == _EXT_MARK else data)
        except Exception as exc:
            raise SerializationError(f"stored value is not valid msgpack: {exc}") from None

    def _pack(self, value: Any) -> bytes:
        packed = self._msgpack.packb(
            value, use_bin_type=True, strict_types=True, default=self._default
        )
        return bytes(packed)

    def _unpack(self, data: bytes) -> Any:
        return self._msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=self._ext_hook)

    def _default(self, value: Any) -> Any:
        found = _EXT_BY_TYPE.get(type(value))
        if found is None:
            _late_types()  # then look again, whatever it says (as in _tag)
            found = _EXT_BY_TYPE.get(type(value))
            if found is None:
                raise _Refused(_refusal(value))
        code, encode, _ = found
        payload = encode(value)
        if not isinstance(payload, bytes):
            payload = self._pack(payload)
        return self._ext_type(code, payload)

    def _ext_hook(self, code: int, data: bytes) -> Any:
        decode = _EXT_DECODE.get(code)
        if decode is None:
            return self._ext_type(code, data)  # not ours: handed back as msgpack does
        return decode(data if code == _UUID else self._unpack(data))


_EXT_MARK = b"\xc1"
_UUID = 8
_DECIMAL = 9
_EXT: dict[int, tuple[type, Callable[[Any], Any], Callable[[Any], Any]]] = {
    # code: (type, to bytes or a plain value packed again, back from it)
    1: (tuple, list, tuple),
    2: (set, list, set),
    3: (frozenset, list, frozenset),
    4: (dt.datetime, lambda v: _tag_datetime(v)["~dt"], _datetime),
    5: (dt.date, dt.date.isoformat, dt.date.fromisoformat),
    6: (dt.time, lambda v: _tag_time(v)["~tm"], _time),
    7: (dt.timedelta, lambda v: [v.days, v.seconds, v.microseconds], lambda v: dt.timedelta(*v)),
    _UUID: (uuid.UUID, lambda v: v.bytes, lambda v: uuid.UUID(bytes=v)),
    10: (int, lambda v: f"{v:x}", lambda v: int(v, 16)),  # past 64 bits
}
_EXT_BY_TYPE = {kind: (code, enc, dec) for code, (kind, enc, dec) in _EXT.items()}
_EXT_DECODE = {code: dec for code, (_, _, dec) in _EXT.items()} | {_DECIMAL: _decimal}


# --- what cannot round-trip ----------------------------------------------------------------


def _refusal(value: Any) -> str:
    """Why ``value`` is refused, and what to store instead."""
    kind = type(value)
    name = (
        f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__name__
    )
    if isinstance(value, enum.Enum):
        fix = "store member.value (or .name) and look the member up after reading"
    elif dataclasses.is_dataclass(value):
        fix = "store dataclasses.asdict(value) and rebuild the object after reading"
    elif hasattr(value, "model_dump"):
        fix = "store value.model_dump(mode='json') and validate it after reading"
    elif isinstance(value, tuple) and hasattr(value, "_fields"):
        fix = "store value._asdict() or tuple(value)"
    elif isinstance(value, (dict, list, tuple, set, frozenset, str, int, float, bytes)):
        base = next(
            b
            for b in (dict, list, tuple, set, frozenset, str, int, float, bytes)
            if isinstance(value, b)
        )
        fix = f"store {base.__name__}(value): a subclass would come back as a plain {base.__name__}"
    else:
        fix = "convert it to the types listed in the docs, or use serializer='pickle'"
    return f"cannot store a value of type {name}: it would not come back as the same type; {fix}"


# --- pickle ------------------------------------------------------------------------------


class PickleSerializer:
    """pickle, signed with HMAC-SHA256 using ``secret``. Opt-in only.

    A value without a valid signature raises :class:`TamperedDataError` and is never
    unpickled. The secret must be the same on every instance that shares the data.
    """

    name = "pickle"
    _DIGEST = 32

    def __init__(self, secret: str | bytes) -> None:
        key = secret.encode() if isinstance(secret, str) else secret
        if len(key) < 16:
            raise ConfigError("PickleSerializer needs a secret of at least 16 bytes")
        self._key = key
        # pickle is imported by dumps and loads (after the first, a lookup in sys.modules),
        # not kept here: only an application that uses pickle loads it, and a module on the
        # instance would make the serializer impossible to deepcopy or pickle.

    def __repr__(self) -> str:
        return "PickleSerializer(secret=***)"

    def dumps(self, value: Any) -> bytes:
        import pickle

        try:
            body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise SerializationError(
                f"cannot pickle a value of type {type(value).__name__}: {exc}"
            ) from None
        return hmac.new(self._key, body, hashlib.sha256).digest() + body

    def loads(self, data: bytes) -> Any:
        signature, body = data[: self._DIGEST], data[self._DIGEST :]
        expected = hmac.new(self._key, body, hashlib.sha256).digest()
        if len(signature) != self._DIGEST or not hmac.compare_digest(signature, expected):
            raise TamperedDataError("pickled value failed its HMAC check; refusing to unpickle")
        import pickle

        return pickle.loads(body)  # noqa: S301 - the signature was verified above


def get_serializer(
    spec: str | Serializer | None, *, secret: str | bytes | None = None
) -> Serializer:
    """Resolve ``"json"`` (default), ``"msgpack"``, ``"pickle"`` (needs ``secret``) or an object."""
    if spec is None or spec == "json":
        return JsonSerializer()
    if spec == "msgpack":
        return MsgpackSerializer()
    if spec == "pickle":
        if secret is None:
            raise ConfigError(
                "the pickle serializer needs a secret to sign values: secret=... or REDKIT_SECRET"
            )
        return PickleSerializer(secret)
    if isinstance(spec, str):
        raise ConfigError(f"unknown serializer {spec!r}; expected 'json', 'msgpack' or 'pickle'")
    if not isinstance(spec, Serializer):
        raise ConfigError("a serializer needs dumps(value) -> bytes and loads(bytes) -> value")
    return spec
