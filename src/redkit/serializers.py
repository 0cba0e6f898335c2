"""How values become bytes and back.

JSON (orjson) is the default: fast, safe to read from the network, and it handles
``datetime``, ``date``, ``UUID``, ``Enum`` and dataclasses. msgpack is optional. pickle is
never chosen for you: :class:`PickleSerializer` exists only when asked for by name, and it
signs every value with HMAC-SHA256 so a value written by anyone without the secret is
rejected before it is unpickled.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from typing import Any, Protocol, runtime_checkable

import orjson

from redkit.errors import ConfigError, MissingDependencyError, SerializationError, TamperedDataError


@runtime_checkable
class Serializer(Protocol):
    """Turns values into bytes and back."""

    name: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class JsonSerializer:
    """JSON through orjson. Tuples come back as lists; sets are not supported."""

    name = "json"
    _OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

    def dumps(self, value: Any) -> bytes:
        try:
            return orjson.dumps(value, option=self._OPTIONS)
        except TypeError as exc:
            raise SerializationError(
                f"cannot serialize a value of type {_type_name(value, exc)} as JSON; "
                "convert it to dict/list/str/number first, or choose another serializer"
            ) from None

    def loads(self, data: bytes) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise SerializationError(f"stored value is not valid JSON: {exc}") from None


class MsgpackSerializer:
    """msgpack (``pip install 'redkit[msgpack]'``): compact, binary-safe."""

    name = "msgpack"

    def __init__(self) -> None:
        try:
            import msgpack
        except ImportError:
            raise MissingDependencyError("msgpack", "msgpack") from None
        self._msgpack = msgpack

    def dumps(self, value: Any) -> bytes:
        try:
            return bytes(self._msgpack.packb(value, use_bin_type=True))
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"cannot serialize a value of type {type(value).__name__} as msgpack: {exc}"
            ) from None

    def loads(self, data: bytes) -> Any:
        try:
            return self._msgpack.unpackb(data, raw=False)
        except Exception as exc:
            raise SerializationError(f"stored value is not valid msgpack: {exc}") from None


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

    def __repr__(self) -> str:
        return "PickleSerializer(secret=***)"

    def dumps(self, value: Any) -> bytes:
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
        return pickle.loads(body)  # noqa: S301 - signature verified above


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
            raise ConfigError("the pickle serializer needs secret=... to sign values")
        return PickleSerializer(secret)
    if isinstance(spec, str):
        raise ConfigError(f"unknown serializer {spec!r}; expected 'json', 'msgpack' or 'pickle'")
    if not isinstance(spec, Serializer):
        raise ConfigError("a serializer needs dumps(value) -> bytes and loads(bytes) -> value")
    return spec


def _type_name(value: Any, exc: TypeError) -> str:
    # orjson names the offending type in its message ("Type is not JSON serializable: X")
    text = str(exc)
    marker = "Type is not JSON serializable: "
    if marker in text:
        return text.split(marker, 1)[1]
    return type(value).__name__
