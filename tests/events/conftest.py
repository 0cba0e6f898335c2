"""Helpers for the events tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tests.flavours import poll as poll  # shared; re-exported for the tests here

from redkit import Redkit


async def apoll(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """The async :func:`poll`."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check}")
        await asyncio.sleep(0.02)


def kill_subscribers(rk: Redkit, client_name: str) -> int:
    """CLIENT KILL every connection named ``client_name`` on every node; how many."""
    if rk.cluster:
        replies = [
            _kill_on(rk.client.get_redis_connection(node), client_name)
            for node in rk.client.get_primaries()
        ]
        return sum(replies)
    return _kill_on(rk.client, client_name)


def _kill_on(client: Any, client_name: str) -> int:
    killed = 0
    for entry in client.client_list():
        if entry.get("name") == client_name:
            killed += int(client.execute_command("CLIENT", "KILL", "ID", entry["id"]))
    return killed
