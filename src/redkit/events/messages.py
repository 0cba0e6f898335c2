"""What subscribers and consumers receive (:class:`Message`, :class:`Gap`) and how typed
payloads are encoded and validated (:class:`Codec`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from redkit.errors import ConfigError
from redkit.serializers import Serializer


@dataclass(slots=True)
class Message:
    """One message of a topic.

    ``id`` is the stream entry id (durable) or the sequence number as text (fan-out);
    ``seq`` is the fan-out sequence number (None for durable messages); ``deliveries``
    how many times a durable consumer group has delivered it (1 the first time).
    Acknowledge a durable message with ``consumer.ack(message)`` or ``message.ack()``.
    """

    topic: str
    data: Any
    id: str
    seq: int | None = None
    deliveries: int = 1
    _ack: Callable[[Message], None] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    def ack(self) -> None:
        """Acknowledge this durable message (sent with the consumer's next read or flush)."""
        if self._ack is None:
            raise ConfigError("only a message read by a durable consumer can be acknowledged")
        self._ack(self)


@dataclass(frozen=True, slots=True)
class Gap:
    """Fan-out messages of ``topic`` numbered ``first`` to ``last`` never reached this
    subscriber: it was reconnecting (``reason="reconnect"``), or its buffer was full
    (``reason="overflow"``)."""

    topic: str
    first: int
    last: int
    reason: Literal["reconnect", "overflow"]

    @property
    def missed(self) -> int:
        """How many messages were missed."""
        return self.last - self.first + 1


class InvalidMessageError(Exception):
    """A payload that does not decode or does not validate against the topic's model."""


class Codec:
    """Encodes payloads with the facade's serializer, and builds ``model`` on receive.

    ``model`` may be a dataclass, a pydantic model or a msgspec Struct (or any type
    msgspec can convert to); None passes decoded values through.
    """

    __slots__ = ("_build", "_dump", "model", "serializer")

    def __init__(self, serializer: Serializer, model: type | None) -> None:
        self.serializer, self.model = serializer, model
        self._build, self._dump = _adapters(model)

    def encode(self, data: Any) -> bytes:
        return self.serializer.dumps(self._dump(data))

    def decode(self, payload: bytes) -> Any:
        """The value (a ``model`` instance when set); InvalidMessageError says why not."""
        try:
            value = self.serializer.loads(payload)
        except Exception as exc:
            raise InvalidMessageError(f"cannot decode: {exc}") from exc
        if self.model is None:
            return value
        try:
            return self._build(value)
        except Exception as exc:
            name = getattr(self.model, "__name__", repr(self.model))
            raise InvalidMessageError(f"not a valid {name}: {exc}") from exc


def _same(value: Any) -> Any:
    return value


def _adapters(model: type | None) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    if model is None:
        return _same, _same
    if not isinstance(model, type):
        raise ConfigError(f"model must be a class, got {model!r}")
    if hasattr(model, "model_validate") and hasattr(model, "model_dump"):  # pydantic v2

        def dump_pydantic(value: Any) -> Any:
            return value.model_dump(mode="json") if isinstance(value, model) else value  # type: ignore[attr-defined]

        return model.model_validate, dump_pydantic
    if dataclasses.is_dataclass(model):
        return _dataclass_builder(model), _dump_dataclass
    try:
        import msgspec  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise ConfigError(
            f"model {model.__name__} is not a dataclass or a pydantic model, and msgspec is "
            "not installed to convert to it"
        ) from None

    def build_msgspec(value: Any) -> Any:
        return msgspec.convert(value, model)

    return build_msgspec, msgspec.to_builtins


def _dump_dataclass(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _dataclass_builder(model: type) -> Callable[[Any], Any]:
    fields = {f.name: f for f in dataclasses.fields(model)}
    simple: dict[type | None, tuple[type, ...]] = {
        int: (int,),
        float: (int, float),
        str: (str,),
        bool: (bool,),
    }

    def build(value: Any) -> Any:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {type(value).__name__}")
        unknown = set(value) - set(fields)
        if unknown:
            raise TypeError(f"unknown fields {sorted(unknown)}")
        for name, spec in fields.items():  # plain field types are checked, others trusted
            kinds = simple.get(_named(spec.type))
            if name in value and kinds and not _is(value[name], kinds):
                raise TypeError(f"field {name!r} must be {kinds[-1].__name__}")
        return model(**value)

    return build


_NAMES = {"int": int, "float": float, "str": str, "bool": bool}


def _named(annotation: Any) -> type | None:
    if isinstance(annotation, str):
        return _NAMES.get(annotation)
    return annotation if annotation in (int, float, str, bool) else None


def _is(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in kinds:
        return False
    return isinstance(value, kinds)
