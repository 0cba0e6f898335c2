"""The Lua script registry.

Each atomic operation is one ``.lua`` file in this package, named ``<name>-<numkeys>.lua``
(``<name>.lua`` when the key count varies). Every script starts with a header comment
that lists its KEYS, ARGV and what it returns. :func:`script` loads a file once, by name,
and the drivers in :mod:`redkit.ops` run it by EVALSHA, falling back to EVAL (which also
caches it on that node) when the server answers NOSCRIPT after a ``SCRIPT FLUSH``, a
restart or a failover.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from redkit.errors import ConfigError


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
        if not filename.endswith(".lua"):
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
    source = resources.files(__package__).joinpath(filename).read_bytes()
    sha = hashlib.sha1(source, usedforsecurity=False).hexdigest()
    return Script(name=name, source=source, sha=sha, numkeys=numkeys)


def names() -> list[str]:
    """All script names, sorted."""
    return sorted(_index())
