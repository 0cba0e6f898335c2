"""Which capability an observed event belongs to, from its name.

Scripts are named after their capability (``lock_acquire``, ``rl_gcra``, ``queue_take``),
notes start with it (``cache.hit``, ``ratelimit.rejected``), a batch that runs scripts
is named by its first (``batch sess_take``); plain commands, batches of them and waits
are ``redis``, calls into user code are ``user``.
"""

from __future__ import annotations

from redkit.ops import Event, Note

#: Script-name prefixes (before the first ``_``) and the capability they belong to.
SCRIPT_PREFIXES = {
    "lock": "locks",
    "rl": "ratelimit",
    "cache": "cache",
    "sess": "sessions",
    "tok": "sessions",
    "queue": "queue",
    "idem": "idempotency",
    "ev": "events",
    "events": "events",
    "stream": "events",
}


def capability(name: str) -> str:
    """The capability of an event named ``name`` (an effect's or a note's name)."""
    if name.startswith(("script ", "batch ")):
        prefix = name.split(" ", 1)[1].split("_", 1)[0]
        return SCRIPT_PREFIXES.get(prefix, prefix)
    if name.startswith("call "):
        return "user"
    if "." in name and name.split(".", 1)[0].islower():
        return name.split(".", 1)[0]  # a note: cache.hit, ratelimit.rejected ...
    return "redis"


def is_note(event: Event) -> bool:
    """True for a capability's note (a decision), False for an effect that did I/O."""
    return type(event.effect) is Note


def note_label(data: object) -> str:
    """The label a note carries: a cache namespace, a limiter's name (of a (name, key) pair)."""
    if isinstance(data, tuple) and data:
        data = data[0]
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else str(data)
