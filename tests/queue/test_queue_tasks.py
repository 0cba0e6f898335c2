"""A task's arguments are checked at enqueue as Python checks a call, with the messages of
``inspect.Signature.bind`` (the fast check is a function with the task's parameters)."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from redkit.errors import ConfigError
from redkit.queue.retry import Retry
from redkit.queue.tasks import TaskDef, binder


def every_kind(a, b=1, /, c=2, *args, d, e=3, **kw): ...
def positional_only(a, /): ...
def positional_only_and_kwargs(a, /, **kw): ...
def keyword_only(*, a, b=None): ...
def anything(*args, **kw): ...
def nothing() -> None: ...
def names_of_the_stub(bind, _=1, None_=2): ...


class Handler:
    def method(self, x: int, *, y: int = 0) -> None: ...


FUNCTIONS: list[Callable[..., Any]] = [
    every_kind, positional_only, positional_only_and_kwargs, keyword_only, anything,
    nothing, names_of_the_stub, Handler().method, lambda x, y=2: None,
]  # fmt: skip
ARGS = [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4, 5)]
KWARGS: list[dict[str, Any]] = [
    {}, {"a": 1}, {"b": 2}, {"c": 3}, {"d": 4}, {"x": 1}, {"y": 1}, {"a": 1, "d": 2},
    {"d": 1, "e": 2, "c": 3}, {"bind": 1}, {"_": 2}, {"kw": 1}, {"unknown": 1},
]  # fmt: skip


def bind_error(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    try:
        inspect.signature(func).bind(*args, **kwargs)
    except TypeError as exc:
        return str(exc)
    return ""


@pytest.mark.parametrize("func", FUNCTIONS, ids=lambda f: f.__name__)
def test_the_fast_check_agrees_with_signature_bind(func: Callable[..., Any]) -> None:
    bind = binder(inspect.signature(func))
    assert bind is not None
    for args, kwargs in itertools.product(ARGS, KWARGS):
        try:
            bind(*args, **kwargs)
            accepted = True
        except TypeError:
            accepted = False
        assert accepted == (bind_error(func, args, kwargs) == ""), (args, kwargs)


@pytest.mark.parametrize("func", FUNCTIONS, ids=lambda f: f.__name__)
def test_wrong_arguments_raise_config_error_with_bind_s_message(func: Callable[..., Any]) -> None:
    task = TaskDef(func, "t", Retry(0, "fixed", 1.0, 1.0, False), None)
    for args, kwargs in itertools.product(ARGS, KWARGS):
        expected = bind_error(func, args, kwargs)
        if not expected:
            task.check(args, dict(kwargs))
            continue
        with pytest.raises(ConfigError) as caught:
            task.check(args, dict(kwargs))
        assert str(caught.value) == f"task 't': {expected}"
