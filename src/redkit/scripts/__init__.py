"""The Lua script registry.

Each atomic operation is one ``.lua`` file in this package, named ``<name>-<numkeys>.lua``
(``<name>.lua`` when the key count varies). Every script starts with a header comment
that lists its KEYS, ARGV and what it returns. :func:`script` loads a file once, by name,
and the drivers in :mod:`redkit.ops` run it by EVALSHA, falling back to EVAL (which also
caches it on that node) when the server answers NOSCRIPT after a ``SCRIPT FLUSH``, a
restart or a failover. Every :class:`~redkit.ops.Eval` checks its key count against the
file name.

Shared snippets live in files whose names start with ``_`` (``_clock.lua``); a script
pulls one in with a line ``--!include _clock.lua``, replaced by the file's text when the
script is loaded, so a snippet is written once. A snippet may include others; each file
goes into a script once, however many of its snippets include it, so a script that needs
a few helpers includes the small snippet that has them, not every helper of its family
(each helper a script defines costs a closure on every call).

Status codes: a script that fails for a reason the caller must hear about returns a
negative integer (alone, or as the first element of its reply). :data:`STATUS` maps each
code to an error class and message, and :func:`check` raises it; zero and positive values
are the script's own outcomes, documented in its header.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from redkit import errors
from redkit.errors import ConfigError

#: Negative status codes a script may return, and what they mean.
STATUS: dict[int, tuple[type[errors.RedkitError], str]] = {
    -1: (errors.DataError, "the key holds another Redis type than this operation uses"),
    -2: (errors.DataError, "the stored value is not an integer"),
    -3: (errors.DataError, "the stored value is not in redkit's format"),
    -4: (errors.ConfigError, "an argument is out of the range this operation accepts"),
    -5: (errors.LockNotOwnedError, "the caller does not hold it"),
    -6: (
        errors.IdempotencyMismatchError,
        "this idempotency key was used before with other arguments; use a new key for a "
        "new operation",
    ),
    -7: (
        errors.IdempotencyConflictError,
        "the claim on this idempotency key expired while its call ran (raise lease=)",
    ),
}


def check(name: str, reply: Any) -> Any:
    """``reply`` of script ``name``, or the error its negative status code stands for."""
    code = reply[0] if isinstance(reply, list) and reply else reply
    if type(code) is int and code < 0:
        try:
            kind, meaning = STATUS[code]
        except KeyError:
            raise errors.ScriptError(f"script {name} returned unknown status {code}") from None
        raise kind(f"{name}: {meaning}")
    return reply


@dataclass(frozen=True, slots=True)
class Script:
    """A loaded Lua script: its source, SHA-1 and declared key count (None when variadic)."""

    name: str
    source: bytes
    sha: str
    numkeys: int | None

    def check_keys(self, count: int) -> None:
        """Raise if ``count`` keys do not match the count in the file name."""
        if self.numkeys is not None and count != self.numkeys:
            raise ConfigError(
                f"script {self.name} takes {self.numkeys} keys, was given {count}"
            )


@cache
def _index() -> dict[str, tuple[str, int | None]]:
    found: dict[str, tuple[str, int | None]] = {}
    for entry in resources.files(__package__).iterdir():
        filename = entry.name
        if not filename.endswith(".lua") or filename.startswith("_"):
            continue
        stem = filename[:-4]
        base, sep, count = stem.rpartition("-")
        if sep and count.isdigit():
            found[base] = (filename, int(count))
        else:
            found[stem] = (filename, None)
    return found


@cache
def script(name: str) -> Script:
    """The script called ``name`` (file ``name-N.lua`` or ``name.lua`` in this package)."""
    try:
        filename, numkeys = _index()[name]
    except KeyError:
        raise ConfigError(f"no Lua script named {name!r} in redkit.scripts") from None
    source = _resolve(resources.files(__package__).joinpath(filename).read_bytes(), filename)
    sha = hashlib.sha1(source, usedforsecurity=False).hexdigest()
    return Script(name=name, source=source, sha=sha, numkeys=numkeys)


_INCLUDE = b"--!include "


def _resolve(source: bytes, filename: str, seen: set[str] | None = None) -> bytes:
    """``source`` with each ``--!include _x.lua`` line replaced by that file's text, its
    own includes resolved; a file already included (``seen``) is left out."""
    if _INCLUDE not in source:
        return source
    seen = set() if seen is None else seen
    lines = []
    for line in source.splitlines(keepends=True):
        if line.startswith(_INCLUDE):
            included = line[len(_INCLUDE) :].strip().decode()
            if not included.startswith("_"):
                raise ConfigError(f"{filename}: only _-files can be included, not {included}")
            if included in seen:
                continue
            seen.add(included)
            text = resources.files(__package__).joinpath(included).read_bytes()
            line = _resolve(text if text.endswith(b"\n") else text + b"\n", included, seen)
        lines.append(line)
    return b"".join(lines)


def names() -> list[str]:
    """All script names, sorted."""
    return sorted(_index())
