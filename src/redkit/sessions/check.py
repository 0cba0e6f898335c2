"""The startup check: will this server keep sessions and revocations as long as promised?"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from redkit import ops
from redkit.client import info_flow
from redkit.errors import RedkitError

if TYPE_CHECKING:
    from redkit.client import CoreBase

log = logging.getLogger("redkit.sessions")


def server_warnings(policy: str | None, persistence: bool | None) -> list[str]:
    """What can silently drop sessions or un-revoke tokens on a server with these settings."""
    found: list[str] = []
    if policy and policy.startswith("allkeys-"):
        found.append(
            f"maxmemory-policy is {policy}: under memory pressure Redis evicts any key, so "
            "users are logged out at random and revoked tokens become valid again; "
            "set maxmemory-policy to noeviction"
        )
    elif policy and policy.startswith("volatile-"):
        found.append(
            f"maxmemory-policy is {policy}: every session and deny-list entry has a TTL, so "
            "under memory pressure Redis may evict them (logouts, revoked tokens valid "
            "again); noeviction is the only policy that cannot"
        )
    if persistence is False:
        found.append(
            "the server has no persistence (no RDB snapshots, no AOF): a restart logs "
            "everyone out and forgets every revoked token; enable appendonly yes"
        )
    return found


def check_flow(rk: CoreBase, what: str) -> ops.Flow[list[str]]:
    """Read the server's settings and log a warning for each risk to ``what``."""
    try:
        info = yield from info_flow(rk)
    except RedkitError as exc:  # e.g. CONFIG is disabled on a managed service
        log.info("%s: could not check eviction policy and persistence: %s", what, exc)
        return []
    found = server_warnings(info.maxmemory_policy, info.persistence)
    for message in found:
        log.warning("%s on %s: %s", what, rk.target, message)
    return found
