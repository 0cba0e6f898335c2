"""ops.Once: a one-effect flow the drivers run without a generator."""

from __future__ import annotations

import pytest

from redkit import AsyncRedkit, Redkit, errors, ops


def _once(fail: bool) -> ops.Once[str]:
    return ops.Once(
        ops.Call("INCRBY", "{once}:not-a-number", "x"),  # an error reply
        lambda reply: f"reply {reply}",
        (lambda exc: f"handled {type(exc).__name__}") if fail else None,
    )


def test_once_finishes_and_fails(rk: Redkit, prefix: str) -> None:
    key = f"{prefix}:once"
    assert rk.run(ops.Once(ops.Call("INCRBY", key, 2), int)) == 2
    assert rk.run(_once(fail=True)) == "handled RedisCommandError"
    with pytest.raises(errors.RedisCommandError) as info:
        rk.run(_once(fail=False))
    assert info.value.__cause__ is not None  # chained to redis-py's error


async def test_async_once_finishes_and_fails(ark: AsyncRedkit, prefix: str) -> None:
    key = f"{prefix}:once"
    assert await ark.run(ops.Once(ops.Call("INCRBY", key, 3), int)) == 3
    assert await ark.run(_once(fail=True)) == "handled RedisCommandError"
    with pytest.raises(errors.RedisCommandError):
        await ark.run(_once(fail=False))


def test_once_inside_a_generator_flow(rk: Redkit, prefix: str) -> None:
    key = f"{prefix}:inside"

    def flow() -> ops.Flow[list[object]]:
        first = yield from ops.Once(ops.Call("INCRBY", key, 5), int)
        handled = yield from _once(fail=True)
        return [first, handled]

    assert rk.run(flow()) == [5, "handled RedisCommandError"]
    with pytest.raises(errors.RedisCommandError):
        rk.run(iter(_once(fail=False)))  # type: ignore[arg-type]
