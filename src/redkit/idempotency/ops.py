"""The operations of idempotency keys: keys, scripts, reply parsing and the one run flow.

A key's record is one hash, ``{prefix:idem:<name>:<key>}:rec``, next to its wake-up list
``...:wake`` and its recovery points ``...:steps``. While a call runs, the record holds
the owner's token and expires with the owner's lease (renewed while the call runs); once
done it holds the stored outcome and expires after the retention time. The recovery
points outlive a failed or killed run (they expire after the retention time), so that
the next run skips the steps already committed. :func:`run_flow` is the whole protocol,
written once for sync and async: claim, run the user's call (an
:class:`~redkit.ops.UserCall`), then store the outcome or release the claim;
:func:`step_flow` runs one recovery point.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import secrets
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from redkit import ops
from redkit.errors import (
    ConfigError,
    DataError,
    IdempotencyConflictError,
    IdempotencyMismatchError,
    IdempotentCallFailedError,
    RedkitError,
    SerializationError,
)
from redkit.scripts import check, script

if TYPE_CHECKING:
    from redkit.failure import FailurePolicy
    from redkit.keys import Keyspace
    from redkit.serializers import Serializer

log = logging.getLogger("redkit.idempotency")

OnFailure = Literal["release", "keep"]
ON_FAILURE: tuple[OnFailure, ...] = ("release", "keep")

CLAIM = script("idem_claim")
COMPLETE = script("idem_complete")
RELEASE = script("idem_release")
RENEW = script("idem_renew")
STEP = script("idem_step")

# the claim script's outcomes (its failures are negative STATUS codes: -6 a mismatch)
UNPROTECTED, CLAIMED, RUNNING, DONE = 0, 1, 2, 3
SIGNAL_TTL_MS = 5_000


@dataclass(frozen=True, slots=True)
class Keys:
    """The keys of one idempotency key: its record, wake-up list and recovery points."""

    record: str
    wake: str
    steps: str


def keys_for(keyspace: Keyspace, name: str, key: str) -> Keys:
    """The keys of idempotency key ``key`` in namespace ``name`` (one hash tag)."""
    if not isinstance(key, str) or not key:
        raise ConfigError(f"an idempotency key must be a non-empty string, got {key!r}")
    group = keyspace.group("idem", name, key)
    return Keys(group.key("rec"), group.key("wake"), group.key("steps"))


def fingerprint_of(args: tuple[Any, ...], kwargs: dict[str, Any], secret: bytes = b"") -> str:
    """The call's arguments as canonical JSON (sorted keys), digested: an HMAC-SHA256
    keyed by ``secret``, or a plain SHA-256 without one."""
    try:
        text = json.dumps([list(args), kwargs], sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"fingerprint=True needs JSON-serializable arguments ({exc}); pass "
            "fingerprint=<function of the arguments returning str> or fingerprint=False"
        ) from None
    if secret:
        return hmac_fingerprint(secret, text.encode())
    return hashlib.sha256(text.encode()).hexdigest()


def hmac_fingerprint(secret: bytes, *parts: bytes) -> str:
    """An HMAC-SHA256 of ``parts`` (length-prefixed, so no two part lists collide)."""
    message = b"".join(len(part).to_bytes(8, "big") + part for part in parts)
    return hmac.digest(secret, message, "sha256").hex()


@dataclass(frozen=True, slots=True)
class Settings:
    """What one :class:`~redkit.idempotency.Idempotency` object decided once."""

    name: str
    lease: float
    retention: float
    wait: bool
    wait_timeout: float
    on_failure: OnFailure

    def __post_init__(self) -> None:
        for option in ("lease", "retention", "wait_timeout"):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{option} must be a number of seconds, got {value!r}")
            if not (value > 0 or (option == "wait_timeout" and value == 0)):
                raise ConfigError(f"{option} must be a positive number of seconds, got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f"{option} must be finite, got {value!r}")
        if self.on_failure not in ON_FAILURE:
            raise ConfigError(f"on_failure must be 'release' or 'keep', got {self.on_failure!r}")

    @property
    def lease_ms(self) -> int:
        return max(1, int(self.lease * 1000))

    @property
    def retention_ms(self) -> int:
        return max(1, int(self.retention * 1000))


@dataclass(frozen=True, slots=True)
class Claim:
    """What the claim script answered: one of CLAIMED, RUNNING, DONE (UNPROTECTED: not
    asked, the store is down and the policy is open). ``steps``: the recovery points an
    earlier run committed, by name."""

    status: int
    pttl_ms: int = 0
    stored: bytes = b""
    steps: dict[str, bytes] = field(default_factory=dict)


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def parse_claim(reply: Any) -> Claim:
    """The claim script's reply as a :class:`Claim` (a mismatch raises, from STATUS)."""
    check("idem_claim", reply)
    status = int(reply[0])
    if status == RUNNING:
        return Claim(status, pttl_ms=int(reply[1]))
    if status == DONE:
        return Claim(status, stored=_bytes(reply[1]))
    if status == CLAIMED:
        pairs = reply[1:]
        steps = {_bytes(pairs[i]).decode(): _bytes(pairs[i + 1]) for i in range(0, len(pairs), 2)}
        return Claim(status, steps=steps)
    raise DataError(f"idem_claim returned an unknown status {status}")


def encode_ok(serializer: Serializer, value: Any) -> bytes:
    """The stored form of a result."""
    return serializer.dumps({"ok": value})


def encode_error(serializer: Serializer, exc: BaseException) -> bytes:
    """The stored form of a failure (its type and message, never its traceback)."""
    return serializer.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}})


def decode(serializer: Serializer, name: str, key: str, stored: bytes) -> Any:
    """The stored result, or the stored failure raised as IdempotentCallFailedError."""
    try:
        outcome = serializer.loads(stored)
    except SerializationError as exc:
        raise DataError(
            f"idempotency {name!r}: the stored result of {key!r} is unreadable"
        ) from exc
    if not isinstance(outcome, dict):
        raise DataError(f"idempotency {name!r}: the stored result of {key!r} is not redkit's")
    if "error" in outcome:
        error = outcome["error"]
        raise IdempotentCallFailedError(
            f"the first call with idempotency key {key!r} failed with "
            f"{error.get('type')}: {error.get('message')}; use a new key to try again",
            error,
        )
    return outcome.get("ok")


@dataclass(frozen=True, slots=True)
class Run:
    """One idempotent call: where, with which fingerprint, and what to run.

    ``call(current)`` runs the user's code while renewing the lease of ``current.token``
    (with ``current`` visible to :func:`step_flow`); ``failed(value)`` says whether a
    returned value counts as a failure (an HTTP 5xx).
    """

    keys: Keys
    key: str
    fingerprint: str
    call: Callable[[Current], Any]
    wait: bool
    failed: Callable[[Any], bool] | None = None


@dataclass(frozen=True, slots=True)
class Current:
    """The idempotent call running in this context: what :func:`step_flow` needs."""

    name: str
    keys: Keys
    token: str  # '' when running unprotected (the store is down, the policy open)
    fingerprint: str
    steps: dict[str, bytes]


#: The idempotent call running in this context (set while its user code runs).
CURRENT: ContextVar[Current | None] = ContextVar("redkit_idempotency_current", default=None)


def claim_flow(settings: Settings, run: Run, token: str) -> ops.Flow[Claim]:
    """Claim the key, waiting for a running owner when ``run.wait``; CLAIMED or DONE."""
    deadline = time.monotonic() + settings.wait_timeout
    args = (token, run.fingerprint, settings.lease_ms, int(run.wait))
    keys = (run.keys.record, run.keys.steps)
    while True:
        try:
            claim = parse_claim((yield ops.Eval(CLAIM, keys, args)))
        except IdempotencyMismatchError:
            raise IdempotencyMismatchError(
                f"idempotency key {run.key!r} was used before with other arguments; "
                "use a new key for a new operation"
            ) from None
        if claim.status != RUNNING:
            return claim
        remaining = deadline - time.monotonic()
        if not run.wait or remaining <= 0:
            raise IdempotencyConflictError(
                f"a call with idempotency key {run.key!r} is still running; retry later"
            )
        lease_left = claim.pttl_ms / 1000 if claim.pttl_ms > 0 else remaining
        yield from ops.wait_signal(run.keys.wake, min(remaining, lease_left))


def _unprotected(_: object) -> Claim:
    return Claim(UNPROTECTED)


def run_flow(
    settings: Settings, serializer: Serializer, failure: FailurePolicy, run: Run
) -> ops.Flow[Any]:
    """The whole call: claim (under the store-down policy), run, store or release."""
    token = secrets.token_hex(16)
    claim = yield from failure.guard(claim_flow(settings, run, token), _unprotected)
    if claim.status == UNPROTECTED:  # on_error="open" and the store is down
        current = Current(settings.name, run.keys, "", run.fingerprint, {})
        return (yield ops.UserCall(run.call, current))
    if claim.status == DONE:
        yield ops.Note("idempotency.replay", settings.name)
        return decode(serializer, settings.name, run.key, claim.stored)
    current = Current(settings.name, run.keys, token, run.fingerprint, claim.steps)
    try:
        value = yield ops.UserCall(run.call, current)
        keep = run.failed is None or not run.failed(value) or settings.on_failure == "keep"
        stored = encode_ok(serializer, value) if keep else None
    except Exception as exc:
        if settings.on_failure == "keep" and not isinstance(exc, RedkitError):
            yield from _finish(settings, run, token, encode_error(serializer, exc))
        else:
            yield from _finish(settings, run, token, None)
        raise
    except BaseException:  # cancellation, exit: a retry may run
        yield from _finish(settings, run, token, None)
        raise
    yield from _finish(settings, run, token, stored)
    return value


def _finish(settings: Settings, run: Run, token: str, stored: bytes | None) -> ops.Flow[None]:
    """Store ``stored`` (None: release the claim); a failure here is logged, not raised:
    the user's code has run, and its lease expiring lets a retry run again."""
    keys = (run.keys.record, run.keys.wake)
    try:
        if stored is None:
            done = yield ops.Eval(RELEASE, keys, (token, SIGNAL_TTL_MS))
        else:
            args = (token, stored, settings.retention_ms, SIGNAL_TTL_MS)
            done = yield ops.Eval(COMPLETE, (*keys, run.keys.steps), args)
        done = check("idem_release" if stored is None else "idem_complete", done)
    except RedkitError as exc:
        log.warning(
            "idempotency %r: could not %s key %r (%s); a retry after the lease will run again",
            settings.name,
            "release" if stored is None else "store the result of",
            run.key,
            exc,
        )
        return
    if not done:
        log.warning(
            "idempotency %r: the lease of key %r expired while its call ran; another call "
            "may have run too (raise lease=)",
            settings.name,
            run.key,
        )


def renew_flow(settings: Settings, keys: Keys, token: str) -> ops.Flow[bool]:
    """Extend the lease of ``token``'s claim; False when it is no longer the owner."""
    reply = yield ops.Eval(RENEW, (keys.record,), (token, settings.lease_ms))
    return bool(check("idem_renew", reply))


def step_flow(
    settings: Settings, serializer: Serializer, current: Current, step: str, call: Callable[[], Any]
) -> ops.Flow[Any]:
    """One recovery point: the result an earlier run committed for ``step``, or ``call()``
    run now and committed (owner-checked) before it is returned."""
    if not isinstance(step, str) or not step:
        raise ConfigError(f"a step name must be a non-empty string, got {step!r}")
    if step in current.steps:
        yield ops.Note("idempotency.step_replay", settings.name)
        return serializer.loads(current.steps[step])
    value = yield ops.UserCall(call)
    if not current.token:  # unprotected: nothing to commit to
        return value
    stored = serializer.dumps(value)
    args = (current.token, step, stored, settings.retention_ms, current.fingerprint)
    check("idem_step", (yield ops.Eval(STEP, (current.keys.record, current.keys.steps), args)))
    current.steps[step] = stored
    return value
