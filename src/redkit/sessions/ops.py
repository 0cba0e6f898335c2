"""The session and token operations: scripts, keys, ids, and reply parsing.

Key layout (``p`` is the prefix)::

    {p:sess:<session id>}:s         hash: 'd:<key>' data fields, 'm:<name>' metadata
    {p:sess:<session id>}:taken     the same hash, for a few seconds after a rotation took it;
                                    or, for a minute, the end mark of an id ended before its
                                    session was created (see sess_destroy)
    {p:sess:u:<user>}:index         sorted set: session id -> absolute deadline (ms)
    {p:sess:u:<user>}:gen           generation: raised by every "log out everywhere"
    {p:tok:j:<jti>}:deny            deny-list entry, expires with the token
    {p:tok:u:<user>}:before         watermark (ms): tokens issued at or before it are revoked
    {p:tok:u:<user>}:fam:<family>   refresh-token family: 'cur' token id, 'rev' flag

A session and its user's index hash to different slots (a session is found by its id
alone, and the id is pure randomness); a login or rotation sends the creation of the new
session and its index entry in one pipelined batch, and the index's generation and the
end mark keep anything from outliving a logout (see docs/sessions.md).
A user's watermark and families share one tag; a deny-list entry is found by the token
id alone, so a revocation check is one round trip (a script and an EXISTS, pipelined).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from redkit import ops
from redkit.errors import ConfigError, DataError, RedkitError
from redkit.keys import KeyGroup, Keyspace
from redkit.scripts import Script, check, script

LOAD = script("sess_load")
CREATE = script("sess_create")
UPDATE = script("sess_update")
TAKE = script("sess_take")
DESTROY = script("sess_destroy")
INDEX_ADD = script("sess_index_add")
GEN = script("sess_gen")
INDEX_LIST = script("sess_index_list")
END_ALL = script("sess_end_all")
TOK_REVOKE = script("tok_revoke")
TOK_REVOKE_ALL = script("tok_revoke_all")
TOK_CHECK = script("tok_check")
TOK_FAMILY_NEW = script("tok_family_new")
TOK_FAMILY_ROTATE = script("tok_family_rotate")
TOK_FAMILY_REVOKE = script("tok_family_revoke")

ID_BYTES = 32  # 256 bits from secrets: far beyond OWASP's 64-bit minimum of entropy
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
DATA = "d:"
META_CREATED, META_SEEN, META_DEADLINE = "m:c", "m:s", "m:a"
META_USER, META_IP, META_UA, META_GEN = "m:u", "m:ip", "m:ua", "m:g"
META_EXPIRY = "m:x"  # the session's own expiry (Session.expire_in), ms; capped by m:a
META_TAKER = "m:t"  # on a taken session: the rotation that took it
# how long a rotation retried after its reply was lost (a timeout after the server ran it)
# still gets its first answer: a taken session back, a refresh token rotated, not reused
RETRY_MS = 10_000
# how long an ended id's end mark lives: longer than a creation can stay on its way (a
# pipelined batch that redis-py retries: (retries + 1) * (connect + socket timeout) + retries
# seconds, 31 s with the default settings)
ENDED_MS = 60_000
MAX_META_CHARS = 512  # user agents are attacker-chosen; keep the stored copy bounded


def checked(lua: Script, keys: Sequence[str], args: Sequence[ops.EncodableT] = ()) -> ops.Flow[Any]:
    """Run ``lua`` and return its reply, or raise the error its status code stands for."""
    return check(lua.name, (yield ops.Eval(lua, keys, args)))


def integer(value: Any, what: str) -> int:
    """``value`` (a reply or a stored field) as an int; DataError when it is not one."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DataError(f"{what} is not an integer (not written by redkit?): {value!r}") from None


def new_id() -> str:
    """A fresh session id: 256 random bits, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(ID_BYTES)


def valid_id(value: str | None) -> bool:
    """True when ``value`` has the shape of an id redkit issues (anything else is ignored)."""
    return value is not None and _ID_RE.match(value) is not None


def handle_of(session_id: str) -> str:
    """The public handle of a session: names it in listings without being a credential."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:20]


def session_key(keys: Keyspace, session_id: str) -> str:
    return keys.group("sess", session_id).key("s")


def taken_key(keys: Keyspace, session_id: str) -> str:
    """Where a rotation leaves the session it took, for a retry of that take (same tag)."""
    return keys.group("sess", session_id).key("taken")


def index_keys(keys: Keyspace, user: str) -> tuple[str, str]:
    """The user's index of sessions and its generation counter (one hash tag)."""
    group = keys.group("sess", "u", user)
    return group.key("index"), group.key("gen")


def token_group(keys: Keyspace, user: str | None) -> KeyGroup:
    """The group of a user's token keys; tokens without a subject share one group."""
    return keys.group("tok", "_") if user is None else keys.group("tok", "u", user)


def deny_key(keys: Keyspace, jti: str) -> str:
    """The deny-list entry of token ``jti``: found by the id alone, whatever the subject."""
    return keys.group("tok", "j", jti).key("deny")


def ms(seconds: float) -> int:
    return round(seconds * 1000)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def epoch_ms(value: datetime | float | int, *, up: bool = False) -> int:
    """Milliseconds since the epoch from a datetime (naive = UTC) or epoch seconds.

    Rounded down, as the scripts read the server's clock (``now_ms`` floors ``TIME``): an
    instant at or before a watermark then never lands past it (rounding to the nearest put
    a token issued in the watermark's millisecond, just before it, in the next one, and
    let it through). ``up`` rounds up instead, for an expiry: an entry outlives its token.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        micros = (value - _EPOCH) // _MICROSECOND  # exact: no float in between
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"expected a datetime or epoch seconds, got {value!r}")
    else:  # to the microsecond first: 1.001 * 1000 is 1000.9999999999999 in floats
        micros = round(float(value) * 1_000_000)
    return -(-micros // 1000) if up else micros // 1000


def from_ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, tz=timezone.utc)


def text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def clip(value: str | None) -> str:
    return "" if value is None else value[:MAX_META_CHARS]


def pairs(flat: Sequence[Any]) -> dict[str, bytes]:
    """HGETALL's flat reply as a dict with str fields and bytes values."""
    out: dict[str, bytes] = {}
    for i in range(0, len(flat) - 1, 2):
        value = flat[i + 1]
        out[text(flat[i])] = value if isinstance(value, bytes) else str(value).encode()
    return out


@dataclass(frozen=True)
class Record:
    """A stored session split into its metadata and its raw (still serialized) data."""

    created_ms: int
    seen_ms: int
    deadline_ms: int
    user: str | None
    generation: int
    ip: str | None
    user_agent: str | None
    raw: dict[str, bytes]
    expiry_ms: int | None = None

    @classmethod
    def parse(cls, fields: Mapping[str, bytes]) -> Record:
        def meta(name: str) -> str | None:
            value = fields.get(name)
            return None if value is None else text(value)

        def number(name: str) -> int:
            return integer(fields.get(name, b"0"), f"session field {name!r}")

        return cls(
            created_ms=number(META_CREATED),
            seen_ms=number(META_SEEN),
            deadline_ms=number(META_DEADLINE),
            user=meta(META_USER),
            generation=number(META_GEN),
            ip=meta(META_IP),
            user_agent=meta(META_UA),
            raw={k[len(DATA) :]: v for k, v in fields.items() if k.startswith(DATA)},
            expiry_ms=number(META_EXPIRY) if META_EXPIRY in fields else None,
        )


@dataclass(frozen=True)
class SessionInfo:
    """One of a user's sessions, as listed for a "where you're logged in" page.

    ``handle`` names the session for :meth:`SessionStore.end`; it is derived from the id
    but is not the id, so showing it cannot leak a credential.
    """

    handle: str
    created: datetime | None
    last_seen: datetime | None
    ip: str | None
    user_agent: str | None
    current: bool = False


def info_from_hmget(session_id: str, reply: Sequence[Any], current: str | None) -> SessionInfo:
    created, seen, ip, agent = (None if v is None else text(v) for v in reply[:4])
    return SessionInfo(
        handle=handle_of(session_id),
        created=from_ms(integer(created, "session field 'm:c'")) if created else None,
        last_seen=from_ms(integer(seen, "session field 'm:s'")) if seen else None,
        ip=ip or None,
        user_agent=agent or None,
        current=session_id == current,
    )


LIST_FIELDS = (META_CREATED, META_SEEN, META_IP, META_UA, META_USER)


@dataclass(frozen=True)
class Birth:
    """A session a login or rotation creates: its id, the token that names this creation
    (a retry gets the first answer; a rewrite must present it), and its deadlines."""

    id: str
    token: str
    created: int  # ms since the epoch; 0 = the server's now
    deadline: int  # ms since the epoch; 0 = created + the absolute timeout
    expire: str  # a pending Session.expire_in, ms from now ('' = none)


def together(effects: Sequence[ops.Call | ops.Eval]) -> ops.Flow[list[Any]]:
    """The effects in one round trip: a lone one as it is, several as a pipelined batch
    (whose error replies come back as values: see :func:`value`)."""
    if len(effects) == 1:
        return [(yield effects[0])]
    return list((yield ops.Batch(effects)))


def value(reply: Any) -> Any:
    """A batch reply, or the error it carries raised."""
    if isinstance(reply, RedkitError):
        raise reply
    return reply


def taken(reply: Any) -> Record | None:
    """What a take found: the old session's record, or None when it had ended or was taken."""
    reply = check(TAKE.name, value(reply))
    return Record.parse(pairs(reply)) if reply else None
