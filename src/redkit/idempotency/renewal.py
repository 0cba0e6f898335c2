"""Lease renewal for synchronous idempotent calls: one thread per object, not per call.

Starting a thread for every call would cost more than the call's two round trips, and
most calls end long before their first renewal is due. :class:`Renewals` keeps the
running calls of one :class:`~redkit.idempotency.Idempotency` in a table; one daemon
thread renews each every ``every`` seconds while it is registered, and exits when the
table has been empty for a while (an object made per request leaves no thread behind).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable

from redkit.idempotency.ops import Keys

log = logging.getLogger("redkit.idempotency")
IDLE_EXIT = 5.0  # seconds without a registered call before the thread exits


class Renewals:
    """The leases of the calls running on one object, renewed by one thread.

    ``renew(keys, token)`` extends one lease (True) or says it is lost (False); a call
    that raises is logged and retried at the next round.
    """

    def __init__(self, name: str, every: float, renew: Callable[[Keys, str], bool]) -> None:
        self.name, self.every, self._renew = name, every, renew
        self._cond = threading.Condition()
        self._calls: dict[int, tuple[float, Keys, str]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, keys: Keys, token: str) -> int:
        """Renew ``token``'s lease from now on, until :meth:`remove`; a handle."""
        with self._cond:
            handle = next(self._ids)
            self._calls[handle] = (time.monotonic() + self.every, keys, token)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, daemon=True, name=f"redkit-idem-renew:{self.name}"
                )
                self._thread.start()
            return handle

    def remove(self, handle: int) -> None:
        """Stop renewing (the call ended)."""
        with self._cond:
            self._calls.pop(handle, None)

    def _due(self) -> list[tuple[int, Keys, str]] | None:
        """Wait for the next renewals that are due; None when the thread should exit."""
        idle_since = time.monotonic()
        with self._cond:
            while True:
                now = time.monotonic()
                if not self._calls:
                    if now - idle_since >= IDLE_EXIT:
                        self._thread = None
                        return None
                    self._cond.wait(IDLE_EXIT)
                    continue
                idle_since = now
                nearest = min(due for due, _, _ in self._calls.values())
                if nearest > now:
                    self._cond.wait(nearest - now)
                    continue
                due = [(h, k, t) for h, (at, k, t) in self._calls.items() if at <= now]
                for handle, keys, token in due:
                    self._calls[handle] = (now + self.every, keys, token)
                return due

    def _loop(self) -> None:
        while (due := self._due()) is not None:
            for handle, keys, token in due:
                try:
                    kept = self._renew(keys, token)
                except Exception:  # a blip: keep trying until the lease says otherwise
                    log.warning("idempotency %r: renewing a lease failed", self.name, exc_info=True)
                    continue
                if not kept:
                    with self._cond:
                        running = self._calls.pop(handle, None) is not None
                    if running:  # (a call that ended meanwhile gave its claim up itself)
                        log.warning(
                            "idempotency %r: a lease was lost while its call ran", self.name
                        )
