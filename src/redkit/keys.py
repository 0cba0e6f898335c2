"""Every key redkit writes is built here.

A key looks like ``{prefix:capability:name}:part``. The part in braces is the Redis
Cluster *hash tag*: every key that one script touches shares it, so the script's keys
land in one slot. User-supplied parts are escaped so that no input can leave its
namespace or its tag: ``{``, ``}``, ``:``, ``%``, glob characters, whitespace and control
characters are percent-encoded, and a part longer than 200 bytes is replaced by a SHA-256
digest (keys stay short and bounded, and two different inputs still get two keys).
"""

from __future__ import annotations

import hashlib
import re

from redkit.errors import ConfigError

MAX_PART_BYTES = 200
_SAFE = re.compile(r"^[A-Za-z0-9_.\-@+=,;!~/]*$")
_UNSAFE_BYTE = re.compile(rb"[^A-Za-z0-9_.\-@+=,;!~/]")
_PREFIX = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def escape(part: str | bytes | int) -> str:
    """Escape one user-supplied key part so it cannot break out of its namespace.

    Safe parts (letters, digits and ``_.-@+=,;!~/``) pass unchanged; everything else is
    percent-encoded; parts longer than ``MAX_PART_BYTES`` become ``#`` + a SHA-256 digest.
    """
    if isinstance(part, int) and not isinstance(part, bool):
        return str(part)
    if isinstance(part, str):
        if len(part) <= MAX_PART_BYTES and _SAFE.match(part):
            return part
        raw = part.encode("utf-8", "surrogatepass")
    elif isinstance(part, bytes):
        raw = part
    else:
        raise ConfigError(f"a key part must be str, bytes or int, not {type(part).__name__}")
    if len(raw) > MAX_PART_BYTES:
        return "#" + hashlib.sha256(raw).hexdigest()
    encoded = _UNSAFE_BYTE.sub(lambda m: b"%%%02X" % m.group()[0], raw).decode("ascii")
    if len(encoded) > MAX_PART_BYTES:
        return "#" + hashlib.sha256(raw).hexdigest()
    return encoded


class KeyGroup:
    """Keys that share one hash tag, so one script may touch all of them on a cluster."""

    __slots__ = ("_base", "tag")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self._base = "{" + tag + "}"

    def key(self, *suffix: str) -> str:
        """A key inside the group. Suffix parts are fixed names chosen by redkit code."""
        if not suffix:
            return self._base
        return self._base + ":" + ":".join(suffix)

    def user_key(self, *parts: str | bytes | int) -> str:
        """A key inside the group whose suffix parts come from the user (escaped)."""
        return self._base + ":" + ":".join(escape(p) for p in parts)

    def shard(self, index: int) -> KeyGroup:
        """Shard ``index`` (1 or more) of this group: a group with a hash tag of its own,
        ``{tag|index}``, so shards spread over a cluster's slots. ``|`` never occurs in an
        escaped part, so no user-supplied name can produce another name's shard."""
        return KeyGroup(f"{self.tag}|{index}")

    def __repr__(self) -> str:
        return f"KeyGroup({self._base!r})"


class Keyspace:
    """The key builder for one prefix. ``Keyspace("app").group("lock", "order:42")``."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        if not _PREFIX.match(prefix):
            raise ConfigError(
                f"prefix {prefix!r} is not valid: use 1-64 characters from letters, "
                "digits, '_', '.', '-'"
            )
        self.prefix = prefix

    def group(self, capability: str, *names: str | bytes | int) -> KeyGroup:
        """The key group of one capability instance; ``names`` are user-supplied and escaped."""
        return KeyGroup(":".join([self.prefix, capability, *(escape(n) for n in names)]))

    def pattern(self, capability: str | None = None) -> str:
        """A ``SCAN MATCH`` pattern for this prefix; admin tools only, never a request path."""
        if capability is None:
            return "{" + self.prefix + ":*"
        return "{" + self.prefix + ":" + capability + ":*"

    def __repr__(self) -> str:
        return f"Keyspace({self.prefix!r})"

