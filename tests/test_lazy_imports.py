"""What ``import redkit`` loads: the core only; each capability on first use.

Every check runs in a fresh interpreter, since this one has imported everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import redkit
import redkit.ratelimit

SRC = Path(__file__).resolve().parents[1] / "src"

#: Modules the core never needs: the capabilities, the outer layers, and standard library
#: modules that only some paths use (pickle: the pickle serializer; decimal: a stored
#: Decimal; multiprocessing: process=True tasks; difflib: a misspelt option).
NOT_AT_IMPORT = (
    "redkit.cache", "redkit.sessions", "redkit.ratelimit", "redkit.queue", "redkit.events",
    "redkit.idempotency", "redkit.locks", "redkit.metrics", "redkit.integrations",
    "redkit.cli", "redkit.dashboard", "redkit.demo", "redkit.embedded",
    "pickle", "decimal", "multiprocessing", "difflib",
)  # fmt: skip


def loaded_after(code: str) -> list[str]:
    """The modules in ``sys.modules`` after ``code`` runs in a new interpreter."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def within(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)]


def test_import_redkit_loads_only_the_core() -> None:
    assert within(loaded_after("import redkit"), NOT_AT_IMPORT) == []


def test_a_facade_loads_no_capability_until_asked() -> None:
    code = "from redkit import AsyncRedkit, Redkit\nRedkit('redis://127.0.0.1:1')"
    assert within(loaded_after(code), NOT_AT_IMPORT) == []


def test_a_name_is_imported_on_first_use() -> None:
    loaded = loaded_after("from redkit import SessionStore")
    assert "redkit.sessions" in loaded
    assert within(loaded, ("redkit.cache", "redkit.queue", "redkit.ratelimit")) == []


def test_the_queue_loads_the_limit_parser_not_the_limiters() -> None:
    loaded = loaded_after("import redkit.queue")
    assert "redkit.ratelimit.policy" in loaded
    never = ("redkit.ratelimit.limiter", "redkit.ratelimit.concurrency", "redkit.cache",
             "redkit.sessions", "redkit.events", "redkit.idempotency", "redkit.locks",
             "multiprocessing", "pickle", "decimal")  # fmt: skip
    assert within(loaded, never) == []


def test_a_subpackage_is_an_attribute_as_before() -> None:
    """``import redkit`` then ``redkit.cache.Cache``: the subpackage is imported then."""
    loaded = loaded_after("import redkit\nassert redkit.cache.Cache is redkit.Cache")
    assert "redkit.cache" in loaded


def test_lazy_names_are_the_real_ones() -> None:
    import redkit.cache
    import redkit.ratelimit.limiter

    assert redkit.Cache is redkit.cache.Cache
    assert redkit.RateLimiter is redkit.ratelimit.limiter.RateLimiter
    assert set(redkit.__all__) <= set(dir(redkit))
    assert set(redkit.ratelimit.__all__) <= set(dir(redkit.ratelimit))


@pytest.mark.parametrize("module", [redkit, redkit.ratelimit], ids=lambda m: m.__name__)
def test_an_unknown_name_is_an_attribute_error(module: types.ModuleType) -> None:
    with pytest.raises(AttributeError, match="'Nope'"):
        module.Nope  # noqa: B018
    assert not hasattr(module, "Nope")


def test_decimal_round_trips_when_imported_after_the_serializers() -> None:
    """The serializers learn Decimal once the decimal module is loaded (see _late_types)."""
    code = (
        "from redkit.serializers import JsonSerializer, MsgpackSerializer\n"
        "import sys\nassert 'decimal' not in sys.modules\n"
        "from decimal import Decimal\n"
        "for s in (JsonSerializer(), MsgpackSerializer()):\n"
        "    value = {'d': Decimal('1.10'), 'n': [Decimal('-0')]}\n"
        "    back = s.loads(s.dumps(value))\n"
        "    assert back == value and str(back['d']) == '1.10', back\n"
    )
    assert "decimal" in loaded_after(code)


def test_the_cli_lists_every_subcommand_and_imports_one_when_run() -> None:
    from redkit.cli import COMMANDS

    code = (
        "import click\nfrom redkit.cli import build\n"
        "group = build()\nassert group.get_command(click.Context(group), 'info') is not None"
    )
    loaded = loaded_after(code)
    assert "redkit.cli.info" in loaded
    assert within(loaded, tuple(f"redkit.cli.{n}" for n in COMMANDS if n != "info")) == []
    help_text = subprocess.run(
        [sys.executable, "-m", "redkit.cli", "--help"], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)}, timeout=60, check=True,
    ).stdout  # fmt: skip
    listed = help_text.split("Commands:")[1].split()
    assert set(COMMANDS) <= set(listed)
