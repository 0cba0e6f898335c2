"""``redkit info`` and the command group, through click's CliRunner on real servers."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import time

import click
import pytest
from click.testing import CliRunner, Result

import redkit.cli
from redkit.cli import COMMANDS, build
from redkit.embedded import free_port

VARIABLES = (
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "REDIS_USERNAME",
    "REDIS_DB",
    "REDKIT_PREFIX",
    "REDKIT_EMBEDDED",
    "REDKIT_CONNECT_TIMEOUT",
    "REDKIT_SOCKET_TIMEOUT",
    "REDKIT_RETRIES",
)


def invoke(*args: str, **env: str) -> Result:
    """Run ``redkit *args`` with only ``env`` of redkit's variables set."""
    environ: dict[str, str | None] = dict.fromkeys(VARIABLES)
    environ.update(env)
    return CliRunner().invoke(build(), list(args), env=environ, catch_exceptions=False)


def test_info_reports_engine_mode_and_prefix(target_url: str, prefix: str) -> None:
    result = invoke("info", "--url", target_url, "--prefix", prefix)
    assert result.exit_code == 0, result.output
    assert "(--url)" in result.stdout
    assert f"key prefix:       {prefix}" in result.stdout
    assert "maxmemory policy: " in result.stdout
    engine = next(line for line in result.stdout.splitlines() if line.startswith("engine:"))
    assert engine.split()[1] in {"redis", "valkey"}
    expected_mode = "cluster" if target_url.startswith("redis+cluster") else "standalone"
    assert f"mode:             {expected_mode}" in result.stdout


def test_info_honors_redis_url(standalone_url: str) -> None:
    result = invoke("info", REDIS_URL=standalone_url, REDKIT_PREFIX="fromenv")
    assert result.exit_code == 0, result.output
    assert "(REDIS_URL)" in result.stdout
    assert "key prefix:       fromenv" in result.stdout
    assert standalone_url.removeprefix("redis://") in result.stdout


def test_url_option_wins_over_redis_url(standalone_url: str) -> None:
    result = invoke("info", "--url", standalone_url, REDIS_URL="redis://127.0.0.1:1/0")
    assert result.exit_code == 0, result.output
    assert "(--url)" in result.stdout


def test_info_with_nothing_configured_uses_embedded_server() -> None:
    result = invoke("info")
    assert result.exit_code == 0, result.output
    assert "embedded Valkey" in result.stdout
    assert "engine:           valkey " in result.stdout


def test_info_embedded_forbidden() -> None:
    result = invoke("info", REDKIT_EMBEDDED="0")
    assert result.exit_code == 1
    assert "REDKIT_EMBEDDED=0" in result.stderr
    assert "Traceback" not in result.output


def test_unreachable_is_one_line_error_with_masked_password() -> None:
    url = f"redis://alice:s3cret-pw@127.0.0.1:{free_port()}/0"
    start = time.monotonic()
    result = invoke("info", REDIS_URL=url, REDKIT_CONNECT_TIMEOUT="0.5", REDKIT_RETRIES="1")
    elapsed = time.monotonic() - start
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: Redis at redis://alice:***@127.0.0.1:")
    assert "unreachable" in lines[0]
    assert "s3cret-pw" not in result.output
    assert elapsed < 10


@pytest.mark.parametrize(
    ("variable", "value"),
    [("REDIS_URL", "http://localhost"), ("REDIS_PORT", "abc"), ("REDKIT_SOCKET_TIMEOUT", "-1")],
)
def test_bad_setting_names_the_variable(variable: str, value: str) -> None:
    result = invoke("info", **{variable: value})
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {variable} ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_every_command_module_is_registered() -> None:
    """Adding a subcommand is one module in redkit.cli plus its name in COMMANDS."""
    modules = {
        info.name
        for info in pkgutil.iter_modules(redkit.cli.__path__)
        if not info.name.startswith("_")
    }
    assert modules == set(COMMANDS)
    group = build()
    for name in COMMANDS:
        command = importlib.import_module(f"redkit.cli.{name}").command
        assert isinstance(command, click.Command)
        assert group.get_command(click.Context(group), name) is command
        assert command.help, f"redkit {name} needs a help text"


def test_help_lists_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.stdout


def test_missing_click_prints_install_command() -> None:
    code = "import sys; sys.modules['click'] = None\nfrom redkit.cli import main\nmain(['info'])"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 1
    assert "pip install 'redkit[cli]'" in proc.stderr
    assert "Traceback" not in proc.stderr
